"""Progress a person can read while a long command runs (``backfill --engine local``, ``verify``,
``replicate --drain``): one rich bar per table or bucket with its parts done, items done, rate and ETA.

Bars are drawn only on a terminal and never with ``-v`` (logs then) or a machine-readable option:
there :func:`bars_wanted` is False, nothing is polled and the command prints its plain lines only.
The core never sees rich: it reports through a plain callable, and the CLI turns that into a
:class:`Snapshot` for :meth:`ProgressBoard.show`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn, TimeRemainingColumn
from rich.text import Text

T = TypeVar("T")
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Snapshot:
    """Where one operation stands: ``done`` of ``total`` units (None: not known yet)."""

    done: int
    total: int | None = None
    parts: str = ""  # "3/8 segments", "2 partitions"
    note: str = ""  # "plan 12 s", "≈ ItemCount"


def bars_wanted(console: Console, *, plain: bool = False) -> bool:
    """Bars only on a terminal, without ``-v`` (the root command's verbose flag) and without ``plain``
    (an option asking for machine-readable output)."""
    if plain or not console.is_terminal:
        return False
    context = click.get_current_context(silent=True)
    return not (context is not None and context.find_root().params.get("verbose"))


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} {task.fields['unit']}/s" if speed else f"- {task.fields['unit']}/s")


class _Count(ProgressColumn):
    def render(self, task: Task) -> Text:
        total = "?" if task.total is None else f"{task.fields['about']}{task.total:,.0f}"
        return Text(f"{task.completed:,.0f}/{total} {task.fields['unit']}")


class ProgressBoard:
    """A rich Progress with one line per key (a table, a bucket), or nothing at all when disabled.
    ``show`` may be called from any thread."""

    def __init__(self, console: Console, *, enabled: bool) -> None:
        self.enabled = enabled
        self._lines: dict[str, TaskID] = {}
        self._lock = threading.Lock()
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            TextColumn("{task.fields[parts]}"),
            _Count(),
            _Rate(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[note]}"),
            console=console,
            refresh_per_second=4,
            speed_estimate_period=10.0,
        )

    def __enter__(self) -> ProgressBoard:
        if self.enabled:
            self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self.enabled:
            self._progress.stop()

    def show(self, key: str, snapshot: Snapshot, *, unit: str = "items", approximate: bool = False) -> None:
        """Update (or start) the line of ``key``."""
        if not self.enabled:
            return
        with self._lock:
            if key not in self._lines:
                self._lines[key] = self._progress.add_task(
                    key, total=None, unit=unit, about="~" if approximate else "", parts="", note=""
                )
            task = self._lines[key]
        total = snapshot.total
        if total is not None:
            total = max(total, snapshot.done)  # an approximate total never shows more done than total
        self._progress.update(task, completed=snapshot.done, total=total, parts=snapshot.parts, note=snapshot.note)

    def follow(
        self,
        key: str,
        snapshot: Callable[[], Snapshot],
        work: Callable[[], T],
        *,
        unit: str = "items",
        approximate: bool = False,
        every: float = POLL_SECONDS,
    ) -> T:
        """Run ``work`` here while a thread shows ``snapshot()`` every ``every`` seconds; one last snapshot
        when it ends. A failing snapshot (a throttled read of the state) is skipped, never fatal."""
        if not self.enabled:
            return work()
        stop = threading.Event()

        def poll() -> None:
            while not stop.wait(every):
                self._show_quietly(key, snapshot, unit, approximate)

        self._show_quietly(key, snapshot, unit, approximate)
        thread = threading.Thread(target=poll, name="ferry-progress", daemon=True)
        thread.start()
        try:
            return work()
        finally:
            stop.set()
            thread.join()
            self._show_quietly(key, snapshot, unit, approximate)

    def _show_quietly(self, key: str, snapshot: Callable[[], Snapshot], unit: str, approximate: bool) -> None:
        try:
            self.show(key, snapshot(), unit=unit, approximate=approximate)
        except Exception:  # progress is a view: a failed read of it must not end the work
            return
