"""Line 6's deciding parts: when the target "reflects" a write (with negative controls: an older
version, a tombstone that is not a delete, a wrong ETag), the ledger that keeps one pending write per
key, the summary, and the harness end to end on a few seconds of traffic."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from bench.common import bench_emulator
from bench.lag import (
    LagPlan,
    Ledger,
    Write,
    bucket_reflects,
    lag_summary,
    measure,
    rows_for,
    table_reflects,
)
from ferry.tables.protocol import TOMBSTONE_ATTRIBUTE, TOMBSTONE_VALUE
from ferry_dev.emulator import Emulator, use_dummy_credentials

TOMBSTONE = {"pk": {"S": "k"}, "sk": {"N": "0"}, TOMBSTONE_ATTRIBUTE: TOMBSTONE_VALUE}


def _write(expect: str | None, kind: str = "table", key: str = "k") -> Write:
    return Write(kind, key, "put" if expect else "delete", expect, done_at=100.0)


@pytest.mark.unit
def test_a_table_write_shows_only_with_its_own_version() -> None:
    write = _write("7")
    assert table_reflects(write, {"pk": {"S": "k"}, "version": {"N": "7"}})
    # negative controls: the previous version, no item, a tombstone, a number written differently
    assert not table_reflects(write, {"pk": {"S": "k"}, "version": {"N": "6"}})
    assert not table_reflects(write, None)
    assert not table_reflects(write, {**TOMBSTONE, "version": {"N": "7"}})
    assert not table_reflects(write, {"pk": {"S": "k"}, "version": {"S": "7"}})


@pytest.mark.unit
def test_a_table_delete_shows_as_no_item_or_a_real_tombstone() -> None:
    delete = _write(None)
    assert table_reflects(delete, None)
    assert table_reflects(delete, TOMBSTONE)
    # negative controls: the item still there; a user attribute that only shares the marker's name
    assert not table_reflects(delete, {"pk": {"S": "k"}, "version": {"N": "7"}})
    assert not table_reflects(delete, {"pk": {"S": "k"}, TOMBSTONE_ATTRIBUTE: {"S": "user data"}})


@pytest.mark.unit
def test_an_object_write_shows_with_its_etag_and_a_delete_as_absence() -> None:
    assert bucket_reflects(_write('"abc"', "bucket"), '"abc"')
    assert not bucket_reflects(_write('"abc"', "bucket"), '"old"')
    assert not bucket_reflects(_write('"abc"', "bucket"), None)
    assert bucket_reflects(_write(None, "bucket"), None)
    assert not bucket_reflects(_write(None, "bucket"), '"abc"')


@pytest.mark.unit
def test_the_ledger_keeps_one_pending_write_per_key() -> None:
    ledger = Ledger()
    assert ledger.reserve("table", "k")
    assert not ledger.reserve("table", "k")  # reserved: not written again until it shows
    assert ledger.reserve("bucket", "k")  # another kind, another key space
    assert ledger.pending("table") == []  # reserved, not yet written: nothing to watch
    write = _write("1")
    ledger.add(write)
    assert ledger.pending("table") == [write]
    ledger.seen(write, 100.25)
    ledger.seen(write, 101.0)  # the first sighting counts
    assert write.lag == pytest.approx(0.25)
    assert ledger.reserve("table", "k")
    ledger.release("table", "k")  # a failed write: the key is free again
    ledger.release("bucket", "k")
    assert ledger.outstanding() == 0


@pytest.mark.unit
def test_reservations_are_exclusive_across_threads() -> None:
    ledger = Ledger()
    won: list[int] = []
    barrier = threading.Barrier(8)

    def claim(i: int) -> None:
        barrier.wait()
        if ledger.reserve("table", "hot"):
            won.append(i)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1


@pytest.mark.unit
def test_the_summary_counts_unreflected_writes_and_takes_percentiles() -> None:
    writes = [_write(str(i)) for i in range(100)]
    for i, w in enumerate(writes[:99]):
        w.seen_at = w.done_at + (i + 1) / 100
    summary = lag_summary(writes)
    assert (summary["writes"], summary["reflected"], summary["never_reflected"]) == (100, 99, 1)
    assert summary["p50"] == pytest.approx(0.50)
    assert summary["p99"] == pytest.approx(0.99)
    plan = LagPlan(seconds=1, table_rate=1, bucket_rate=1, settle_timeout=1)
    pollers = {"table": {"p50": None, "p99": None}, "bucket": {"p50": None, "p99": None}}
    result: dict[str, Any] = {"table": summary, "bucket": lag_summary([]), "pollers": pollers, "dlq_depth": 0}
    rows = rows_for(result, plan)
    # one write never seen fails the line even though every percentile is fast
    assert [r.met for r in rows] == [False, False, False]


@pytest.mark.functional
def test_a_short_run_sees_every_write_through_the_real_pollers() -> None:
    # GIVEN a fresh emulator (initialize creates the state table and the events queue under their
    # default names, which the session's emulator shares with other tests) and a few seconds of traffic
    plan = LagPlan(seconds=3.0, table_rate=10.0, bucket_rate=3.0, settle_timeout=30.0)
    use_dummy_credentials()
    # WHEN the harness runs
    with Emulator(kind=bench_emulator()) as emu:
        result = measure(plan, emu.endpoint_url)
    # THEN every write was seen on the target, nothing was dead-lettered, and the pollers applied them
    assert result["table"]["writes"] >= 10 and result["bucket"]["writes"] >= 3
    assert result["table"]["never_reflected"] == 0 and result["bucket"]["never_reflected"] == 0
    assert result["dlq_depth"] == 0
    assert result["pollers"]["table"]["records_applied"] >= result["table"]["writes"]
    assert result["errors"] == {"writers": [], "watcher": []}


class _Gate:
    def __init__(self, opened_at: float | None) -> None:
        self.opened_at = opened_at


class _Poller:
    def __init__(self, gate: _Gate | None) -> None:
        self.gate = gate


class _Replication:
    """What ``answer`` reads of LocalReplication."""

    def __init__(self, opened_at: float | None = 5.0) -> None:
        self.stream_pollers = [_Poller(_Gate(opened_at))]
        self.bucket_pollers = [_Poller(None)]
        self.drained = False

    @property
    def pollers(self) -> list[_Poller]:
        return [*self.stream_pollers, *self.bucket_pollers]

    def drain(self, timeout: float) -> None:
        self.drained = True

    def catch_ups(self) -> dict[str, Any]:
        from ferry_dev.hold import CatchUp

        return {"table": CatchUp(40, 2.0), "bucket": None}


@pytest.mark.unit
def test_the_replication_process_drains_only_after_the_release_and_reports_the_catch_up(monkeypatch) -> None:
    from bench import lag

    monkeypatch.setattr(lag, "_poller_stats", lambda _: {"table": {"records_applied": 40}})
    replication = _Replication()
    drained = lag.answer(replication, "drain")  # type: ignore[arg-type]
    assert replication.drained and drained["opened_at"] == 5.0
    assert drained["catch_ups"] == {"table": {"applied": 40, "seconds": 2.0}, "bucket": None}
    caught = lag.answer(replication, "caught-up table")  # type: ignore[arg-type]
    assert (caught["applied"], caught["seconds"], caught["opened_at"]) == (40, 2.0, 5.0)
    with pytest.raises(ValueError):
        lag.answer(replication, "catch everything")  # type: ignore[arg-type]
    # a gate that never opens (no release): no drain, an error after the wait
    monkeypatch.setattr(lag, "_wait_for", lambda *_: (_ for _ in ()).throw(TimeoutError("the release")))
    held = _Replication(opened_at=None)
    with pytest.raises(TimeoutError):
        lag.answer(held, "drain")  # type: ignore[arg-type]
    assert not held.drained
