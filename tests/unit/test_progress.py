"""ferry_cli.progress: the bars follow the work to its last numbers, and are nothing at all when disabled."""

from __future__ import annotations

import io
import re

import click
import pytest
from click.testing import CliRunner
from rich.console import Console

from ferry_cli.progress import ProgressBoard, Snapshot, bars_wanted

pytestmark = pytest.mark.unit

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=200), out


def test_follow_shows_the_last_snapshot_even_when_the_work_ends_before_the_first_poll() -> None:
    # GIVEN a board on a terminal and work that ends at once
    console, out = _terminal()
    done = iter(range(100))
    # WHEN it is followed with a long poll interval
    with ProgressBoard(console, enabled=True) as board:
        result = board.follow("copy t", lambda: Snapshot(next(done) * 4, 8, "1/8 segments"), lambda: "ok", every=60)
    # THEN the work's result comes back, and the final frame shows the snapshot taken after it ended
    assert result == "ok"
    text = ANSI.sub("", out.getvalue())
    assert "copy t" in text and "4/8 items" in text


def test_a_failing_snapshot_never_ends_the_work() -> None:
    console, _ = _terminal()

    def broken() -> Snapshot:
        raise RuntimeError("state table throttled")

    with ProgressBoard(console, enabled=True) as board:
        assert board.follow("copy t", broken, lambda: 7, every=0.01) == 7


def test_a_disabled_board_reads_nothing_and_prints_nothing() -> None:
    console, out = _terminal()
    calls: list[int] = []

    def snapshot() -> Snapshot:
        calls.append(1)
        return Snapshot(1, 1)

    with ProgressBoard(console, enabled=False) as board:
        assert board.follow("copy t", snapshot, lambda: 3) == 3
        board.show("copy t", Snapshot(1, 2))
    assert calls == [] and out.getvalue() == ""


def test_an_approximate_total_is_marked_and_never_below_what_is_done() -> None:
    console, out = _terminal()
    with ProgressBoard(console, enabled=True) as board:
        board.show("verify t", Snapshot(12, 10, "8/8 segments"), approximate=True)
    text = ANSI.sub("", out.getvalue())
    assert "12/~12 items" in text and "8/8 segments" in text


def test_bars_only_on_a_terminal_without_verbose_or_a_plain_option() -> None:
    terminal, _ = _terminal()
    pipe = Console(file=io.StringIO())
    seen: dict[str, bool] = {}

    @click.group()
    @click.option("-v", "--verbose", is_flag=True)
    def root(verbose: bool) -> None:
        pass

    @root.command()
    def run() -> None:
        seen["terminal"] = bars_wanted(terminal)
        seen["plain"] = bars_wanted(terminal, plain=True)
        seen["pipe"] = bars_wanted(pipe)

    assert CliRunner().invoke(root, ["run"]).exit_code == 0
    assert seen == {"terminal": True, "plain": False, "pipe": False}
    assert CliRunner().invoke(root, ["-v", "run"]).exit_code == 0
    assert seen["terminal"] is False
