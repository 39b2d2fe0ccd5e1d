"""The switch through the CLI on the emulator (docs/switching.md): `ferry reverse`, `ferry replicate --reverse`,
`ferry cutover`, `ferry rollback` against real tables, streams and the state table.

GIVEN a table migrated with ferry (init, its copy recorded done, live replication drained, verified)
WHEN the switch's commands run, are refused, time out or are rerun after a crash
THEN each step is recorded once per pair, refusals write nothing, a rerun finishes what was left, and a
direction turned off applies nothing more (each with its negative control).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from ferry.switch import FORWARD, consumer_passed
from ferry.tables.protocol import PHASE_LIVE
from ferry.tables.state import COPY_DONE, TABLE, CopyRun, StateStore
from ferry.twoway import Conflict, TwoWayStore, pair_id
from ferry.wire import key_text
from ferry_cli.main import cli
from ferry_cli.specfile import load_spec
from ferry_dev.replication import DirectionOff, LocalReplication
from tests.conftest import create_table, scan_all

pytestmark = pytest.mark.functional


@dataclass
class Migration:
    ddb: Any
    spec: str  # the spec file's path
    old: str
    new: str
    switch: TwoWayStore

    def run(self, *args: str) -> Any:
        return CliRunner().invoke(cli, [args[0], "--spec", self.spec, *args[1:]])

    def put(self, table: str, pk: str, value: str) -> None:
        self.ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "v": {"S": value}})

    def items(self, table: str) -> dict[str, str]:
        return {i["pk"]["S"]: i.get("v", {}).get("S", "") for i in scan_all(self.ddb, table)}

    def steps(self) -> dict[str, float]:
        return self.switch.steps(TABLE, self.old, self.new)


def _text(result: Any) -> str:
    return " ".join(result.output.split())


def _initialised(ddb: Any, emulator: Any, unique: str, tmp_path: Path) -> Migration:
    """`ferry init` of an insert-only table with two items; nothing copied yet."""
    old, new, state = f"old-{unique}", f"new-{unique}", f"state-{unique}"
    create_table(ddb, old)
    body = {
        "region": "us-east-1",
        "endpoint_url": emulator.endpoint_url,
        "state_table": state,
        "tables": [{"source": old, "target": new, "protocol": "insert-only"}],
        "replication": {"phase_cache_seconds": 0, "on_failure_queue": f"failures-{unique}"},
    }
    path = tmp_path / "ferry.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    m = Migration(ddb, str(path), old, new, TwoWayStore(ddb, state))
    for pk in ("a", "b"):
        m.put(old, pk, "1")
    assert m.run("init").exit_code == 0
    return m


def _copied(m: Migration, *, verified: bool = True) -> Migration:
    """The copy made (the items written as the backfill writes them, its run recorded done, the phase live),
    a live change replicated by `ferry replicate --drain` (the pollers' checkpoint), then `ferry verify`."""
    for pk, value in m.items(m.old).items():
        m.put(m.new, pk, value)
    store = StateStore(m.ddb, load_spec(m.spec).state_table)
    now = time.time()
    run = CopyRun("insert-only", "scan", "batch", COPY_DONE, started_at=now - 2, finished_at=now - 1, items=2)
    store.save_copy(m.old, run)
    store.set_phase(m.old, PHASE_LIVE)
    m.put(m.old, "c", "1")
    assert m.run("replicate", "--drain").exit_code == 0
    if verified:
        assert m.run("verify").exit_code == 0
    return m


@pytest.fixture
def migration(ddb: Any, emulator: Any, unique: str, tmp_path: Path) -> Migration:
    """Migrated, verified, `ferry reverse` run and its consumer drained once (`ferry replicate --reverse`)."""
    m = _copied(_initialised(ddb, emulator, unique, tmp_path))
    result = m.run("reverse")
    assert result.exit_code == 0, result.output
    result = m.run("replicate", "--reverse", "--drain")
    assert result.exit_code == 0, result.output
    return m


def test_reverse_is_refused_before_the_copy_is_done_then_runs_once(ddb, emulator, unique, tmp_path):
    # GIVEN a table initialised, its copy not done
    m = _initialised(ddb, emulator, unique, tmp_path)
    # WHEN ferry reverse runs THEN it refuses (exit 1) naming the table and its phase, and writes nothing
    result = m.run("reverse")
    assert result.exit_code == 1, result.output
    assert f"table {m.old!r} is in phase backfill" in _text(result)
    assert m.steps() == {}
    assert not ddb.describe_table(TableName=m.new)["Table"].get("StreamSpecification", {}).get("StreamEnabled")
    # AND every later step refuses until it has run
    for args in (("replicate", "--reverse", "--drain"), ("cutover", "--force"), ("rollback",)):
        result = m.run(*args)
        assert result.exit_code == 1 and "run `ferry reverse --spec" in _text(result), (args, result.output)
    assert m.steps() == {}
    # WHEN the copy is done THEN ferry reverse records its steps and says what to run next
    _copied(m)
    result = m.run("reverse")
    assert result.exit_code == 0, result.output
    assert f"ferry replicate --spec {m.spec} --reverse" in _text(result)
    first = m.steps()
    assert set(first) == {"reverse", "capture"}
    assert ddb.describe_table(TableName=m.new)["Table"]["StreamSpecification"]["StreamEnabled"]
    # AND a rerun is idempotent: the same steps at the same times
    result = m.run("reverse")
    assert result.exit_code == 0, result.output
    assert m.steps() == first


def test_cutover_confirm_switched_drains_forward_then_turns_it_off(migration):
    m = migration
    # GIVEN forward replication running (negative control: it copies a change of the old table)
    forward = LocalReplication(load_spec(m.spec)).start(idle_sleep=0.1)
    try:
        m.put(m.old, "before", "1")
        deadline = time.monotonic() + 20
        while "before" not in m.items(m.new):
            assert time.monotonic() < deadline, "forward replication did not copy the change"
            time.sleep(0.2)
        # WHEN the verdict is GO THEN cutover says to switch
        result = m.run("cutover")
        assert result.exit_code == 0, result.output
        assert "verdict: GO" in _text(result) and "forced" not in _text(result)
        # WHEN the user confirms the switch THEN forward is drained, then turned off, each step recorded
        result = m.run("cutover", "--confirm-switched", "--timeout", "30")
        assert result.exit_code == 0, result.output
        steps = m.steps()
        assert steps["switched"] <= steps["forward_drained"] <= steps["forward_disabled"]
        text = _text(result)
        for command in ("verify --spec", "rollback --spec", "--confirm-switched"):
            assert command in text, command
        assert f"ferry verify --spec {m.spec} --reverse" in text
        # AND a change on the old table is no longer copied by the running forward pollers
        applied = forward.applied()
        m.put(m.old, "after", "1")
        time.sleep(2.5)
        assert "after" not in m.items(m.new)
        assert forward.applied() == applied
    finally:
        forward.stop()
    # AND a new forward `ferry replicate` refuses to start
    result = m.run("replicate", "--drain")
    assert result.exit_code == 1 and "forward replication is off" in _text(result), result.output
    assert "after" not in m.items(m.new)


def test_cutover_refused_on_no_go_forced_then_interrupted_and_finished_by_a_rerun(ddb, emulator, unique, tmp_path):
    # GIVEN a migration never verified (a real NO-GO), reverse begun
    m = _copied(_initialised(ddb, emulator, unique, tmp_path), verified=False)
    assert m.run("reverse").exit_code == 0
    # WHEN ferry cutover runs THEN it refuses with the verdict's reasons, and records nothing
    result = m.run("cutover")
    assert result.exit_code == 1, result.output
    assert "NO-GO" in _text(result) and "never verified" in _text(result) and "--force" in _text(result)
    assert set(m.steps()) == {"reverse", "capture"}
    # WHEN forced THEN it says so, records it, and tells the user to switch
    result = m.run("cutover", "--force")
    assert result.exit_code == 0, result.output
    assert "forced (--force) over the verdict NO-GO" in _text(result)
    assert "GO: switch the service to the new resources now" in _text(result)
    assert f"ferry cutover --spec {m.spec} --confirm-switched" in _text(result)
    assert set(m.steps()) == {"reverse", "capture", "forced"}
    # GIVEN a change of the old table not applied yet, then a crash right after `switched` was recorded
    m.put(m.old, "late", "1")
    time.sleep(1.1)  # after the record's creation time (a stream rounds it down to the second)
    m.switch.record_step(TABLE, m.old, m.new, "switched")
    switched = m.steps()["switched"]
    # WHEN rerun while nothing applies the change THEN it times out naming what is in flight, nothing turned off
    result = m.run("cutover", "--confirm-switched", "--timeout", "1")
    assert result.exit_code == 1, result.output
    assert f"table {m.old}: 1 stream records not applied yet" in _text(result) and "still in flight" in _text(result)
    assert "forward_drained" not in m.steps() and "forward_disabled" not in m.steps()
    # WHEN forward replication drains and the cutover reruns, without --force THEN it completes: once switched,
    # the verdict (still NO-GO) is not asked again
    assert m.run("replicate", "--drain").exit_code == 0
    result = m.run("cutover", "--confirm-switched", "--timeout", "30")
    assert result.exit_code == 0, result.output
    steps = m.steps()
    assert steps["switched"] == switched and {"forward_drained", "forward_disabled"} <= set(steps)
    assert "late" in m.items(m.new)


def test_rollback_names_differences_and_conflicts_then_rolls_back(migration):
    m = migration
    # GIVEN the old table drifted on a key (written there directly)
    m.put(m.old, "drift", "1")
    # WHEN ferry rollback runs THEN exit 1, naming the key and how to resolve it
    result = m.run("rollback", "--timeout", "10")
    assert result.exit_code == 1, result.output
    text = _text(result)
    assert "drift" in text and f"ferry verify --spec {m.spec} --repair --from old|new" in text
    # WHEN the drift is gone but a change of the new side is not replicated back THEN rollback times out
    m.ddb.delete_item(TableName=m.old, Key={"pk": {"S": "drift"}})
    m.put(m.new, "a", "2")
    m.put(m.new, "n1", "1")
    result = m.run("rollback", "--timeout", "1")
    assert result.exit_code == 1 and "still in flight" in _text(result), result.output
    # WHEN reverse replication drained THEN the new side's change is on the old side, which equals the new one
    assert m.run("replicate", "--reverse", "--drain").exit_code == 0
    assert m.items(m.old) == m.items(m.new) == {"a": "2", "b": "1", "c": "1", "n1": "1"}
    result = m.run("rollback", "--timeout", "10")
    assert result.exit_code == 0, result.output
    assert "the old side equals the new one: switch the service back" in _text(result)
    # WHEN a conflict is open THEN exit 1 naming its key; closed THEN exit 0
    key = key_text({"pk": {"S": "k9"}})
    m.switch.record_conflict(Conflict(TABLE, pair_id(m.old, m.new), key, m.new, m.old, time.time(), "x", "y"))
    result = m.run("rollback", "--timeout", "10")
    assert result.exit_code == 1 and f"open conflict: key {key}" in _text(result), result.output
    m.switch.close_conflict(TABLE, m.old, m.new, key)
    # WHEN the user confirms the switch back THEN reverse is turned off and the old side is authoritative
    result = m.run("rollback", "--confirm-switched", "--timeout", "10")
    assert result.exit_code == 0, result.output
    assert f"the old side is authoritative: tables {m.old}" in _text(result)
    assert {"reverse_disabled", "rolled_back"} <= set(m.steps())
    # AND a change of the new side is no longer replicated back; cutover refuses
    m.put(m.new, "n2", "1")
    result = m.run("replicate", "--reverse", "--drain")
    assert result.exit_code == 1 and "reverse replication is off" in _text(result), result.output
    assert "n2" not in m.items(m.old)
    result = m.run("cutover", "--force")
    assert result.exit_code == 1 and "rolled back" in _text(result), result.output


# --- the pure parts, no emulator -------------------------------------------------------------------


def test_deployed_drain_needs_the_function_to_read_changes_made_after_the_moment():
    # switched at t=1000; CloudWatch's window is the last 300 s
    assert consumer_passed(0.0, 1000, 1010, 300)  # nothing old in any batch
    assert consumer_passed(100.0, 1000, 1500, 300)  # batches at >= 1200 read records made after 1100
    assert not consumer_passed(250.0, 1000, 1500, 300)  # a batch at 1200 may have read a record of 950
    assert not consumer_passed(None, 1000, 5000, 300)  # no datapoint: idle or stuck, unknown


def test_a_direction_off_is_kept_and_a_failed_read_keeps_the_last_answer():
    class Steps:
        def __init__(self) -> None:
            self.answers: list[Any] = [{}, RuntimeError("throttled"), {"forward_disabled": 1.0}, {}]

        def steps(self, *pair: str) -> dict[str, float]:
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

    now = [0.0]
    off = DirectionOff(Steps(), [(TABLE, "a", "b")], FORWARD, recheck=1.0, clock=lambda: now[0])  # type: ignore[arg-type]
    assert off() is False
    now[0] = 0.5
    assert off() is False  # not re-read within the recheck interval
    now[0] = 1.5
    assert off() is False  # the read failed: the last answer stands
    now[0] = 3.0
    assert off() is True
    now[0] = 5.0
    assert off() is True  # kept once off (the step is never cleared)
