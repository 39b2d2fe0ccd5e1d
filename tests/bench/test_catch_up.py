"""Line 6's catch-up: the held backlog is exactly the N stream records and M object changes the row
names (no key twice in a BatchWriteItem, overwrites and deletes of keys that exist), the verdict needs
every held change applied and no difference (negative controls), and a small catch-up end to end."""

from __future__ import annotations

from typing import Any

import pytest

from bench.catch_up import CatchUpPlan, cpu_note, measure, object_changes, operations, rows_for, split, table_backlog
from bench.common import bench_emulator
from ferry_dev.emulator import Emulator, use_dummy_credentials


@pytest.mark.unit
def test_the_shares_add_up_to_the_total() -> None:
    assert split(100, (0.6, 0.25, 0.15)) == [60, 25, 15]
    assert split(7, (0.6, 0.25, 0.15)) == [4, 2, 1]
    assert sum(split(2001, (0.7, 0.2, 0.1))) == 2001


@pytest.mark.unit
@pytest.mark.parametrize("n", [1, 7, 100, 2000])
def test_the_table_backlog_makes_exactly_n_changes_of_keys_that_exist(n: int) -> None:
    batches = table_backlog(n)
    assert sum(len(b) for b in batches) == n
    assert all(1 <= len(b) <= 25 for b in batches)
    written: set[str] = set()
    for batch in batches:
        keys = [(r["PutRequest"]["Item"] if "PutRequest" in r else r["DeleteRequest"]["Key"])["pk"]["S"] for r in batch]
        assert len(keys) == len(set(keys))  # BatchWriteItem refuses a key twice in one request
        for request, key in zip(batch, keys, strict=True):
            if "DeleteRequest" in request:
                assert key in written  # a delete removes an item the backlog created
            written.add(key)
    counts = operations(batches)
    assert counts["PutRequest"] + counts["DeleteRequest"] == n
    if n == 2000:
        assert counts == {"PutRequest": 1700, "DeleteRequest": 300}


@pytest.mark.unit
def test_the_object_changes_create_before_they_overwrite_or_delete() -> None:
    creates, overwrites, deletes = object_changes(100)
    assert (len(creates), len(overwrites), len(deletes)) == (70, 20, 10)
    created = {key for _, key in creates}
    assert {key for _, key in overwrites} <= created and {key for _, key in deletes} <= created
    assert {op for op, _ in deletes} == {"delete"} and {op for op, _ in creates + overwrites} == {"put"}


def _result(table_applied: int = 100, bucket_applied: int = 19, different: int = 0, dlq: int = 0) -> dict[str, Any]:
    caught = {"seconds": 2.0, "release_to_drained": 2.4}
    return {
        "queued": 19,
        "table": {**caught, "applied": table_applied},
        "bucket": {**caught, "applied": bucket_applied},
        "dlq_depth": dlq,
        "verify": {"table": {"missing": 0, "different": different}, "bucket": {"missing": 0}},
    }


@pytest.mark.unit
def test_the_catch_up_passes_only_with_everything_applied_and_no_difference() -> None:
    plan = CatchUpPlan(records=100, events=10)
    rows = rows_for(_result(), plan)
    assert rows[0].ferry == "2.0 s (50 records/s)"
    assert rows[1].ferry.startswith("2.0 s") and "19 queued messages" in rows[1].measure
    assert rows[-1].met is True
    # negative controls: a record not applied, a message not applied, one difference, a dead letter
    for broken in (_result(table_applied=99), _result(bucket_applied=18), _result(different=1), _result(dlq=1)):
        assert rows_for(broken, plan)[-1].met is False


@pytest.mark.unit
def test_the_note_says_where_the_catch_up_spent_its_time_per_record() -> None:
    caught = {"seconds": 0.5, "cpu_seconds": {"emulator": 0.37, "pollers": 0.16}}
    assert cpu_note(caught, 100, "records") == (
        "CPU per record: emulator 3.7 ms, pollers' process 1.6 ms (wall 5.0 ms)"
    )
    assert cpu_note({"seconds": 0.5}, 100, "records") == "CPU not measured"


@pytest.mark.functional
def test_a_small_held_backlog_is_applied_whole_after_the_release() -> None:
    # GIVEN a fresh emulator (the spec's state table and queues have fixed names)
    use_dummy_credentials()
    plan = CatchUpPlan(records=60, events=10)
    # WHEN the backlog is written while the pollers are held, then released
    with Emulator(kind=bench_emulator()) as emu:
        result = measure(plan, emu.endpoint_url)
    # THEN each kind caught up on everything held and the targets equal the sources
    assert result["table"]["applied"] == 60
    assert result["bucket"]["applied"] == result["queued"] >= 10
    assert result["verify"] == {
        "table": {"missing": 0, "extra": 0, "different": 0, "tombstone": 0},
        "bucket": {"missing": 0, "extra": 0, "different": 0},
    }
    assert result["dlq_depth"] == 0
    assert rows_for(result, plan)[-1].met is True
