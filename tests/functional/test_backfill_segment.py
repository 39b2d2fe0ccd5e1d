"""copy_segment against the emulator, under both protocols: exact copies, insert-only against live
writes (tombstones block resurrection), replay in batches of 25 with UnprocessedItems sent again,
checkpoints resume, failures come back as data."""

from __future__ import annotations

import random
import threading
from dataclasses import replace
from typing import Any

import pytest

from ferry.spec import parse_spec
from ferry.tables.backfill import copy_segment, plan_backfill
from ferry.tables.protocol import tombstone_for
from ferry.tables.setup import init_tables
from ferry.tables.state import SEGMENT_DONE, SEGMENT_RUNNING, SegmentCheckpoint, StateStore
from ferry.wire import items_equal, key_of
from ferry_dev.workload import make_big_item, make_item, seed_table
from tests.conftest import create_table, scan_all

pytestmark = pytest.mark.functional
KEYS = ("pk", "sk")


def _setup(
    ddb: Any, emulator: Any, unique: str, items: int, splits: int = 3, protocol: str = "insert-only"
) -> tuple[Any, Any]:
    source, target, state = f"src-{unique}", f"dst-{unique}", f"state-{unique}"
    create_table(ddb, source, hash_key=("pk", "S"), range_key=("sk", "N"))
    seed_table(ddb, source, items, seed=3)
    spec = parse_spec(
        {
            "region": "us-east-1",
            "endpoint_url": emulator.endpoint_url,
            "state_table": state,
            "tables": [{"source": source, "target": target, "protocol": protocol}],
            "backfill": {"splits": splits, "write_concurrency": 4},
            "replication": {"phase_cache_seconds": 0},
        }
    )
    init_tables(spec, ddb)
    return spec, plan_backfill(spec, spec.tables[0], ddb)


BOTH = pytest.mark.parametrize("protocol", ["replay", "insert-only"])


def _by_key(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {repr(sorted(key_of(i, KEYS).items())): i for i in items}


@BOTH
def test_every_segment_copies_every_item_type_exactly(ddb, emulator, unique, protocol):
    # GIVEN a source with all ten types, 38-digit numbers, nested binaries and a ~400 KB item
    _spec, plan = _setup(ddb, emulator, unique, items=120, protocol=protocol)
    # WHEN every segment is copied
    results = [copy_segment(plan, s) for s in range(plan.total_segments)]
    # THEN every segment is done and the target equals the source, item by item
    assert all(r.status == SEGMENT_DONE for r in results)
    assert sum(r.written for r in results) == 120
    source, target = _by_key(scan_all(ddb, plan.source)), _by_key(scan_all(ddb, plan.target))
    assert source.keys() == target.keys()
    assert all(items_equal(source[k], target[k]) for k in source)


def test_backfill_never_overwrites_a_live_write_nor_resurrects_a_delete(ddb, emulator, unique):
    # GIVEN the live path already wrote a newer version of one key and a tombstone for another
    _spec, plan = _setup(ddb, emulator, unique, items=30, splits=1)
    rng = random.Random(1)
    newer = make_item(rng, 3, version=999)
    ddb.put_item(TableName=plan.target, Item=newer)
    deleted_key = {"pk": {"S": "user#000004"}, "sk": {"N": "4"}}
    ddb.put_item(TableName=plan.target, Item=tombstone_for(deleted_key))
    # WHEN the backfill copies the (older) scanned images
    result = copy_segment(plan, 0)
    # THEN both keys were skipped: the live version and the tombstone are untouched
    assert result.skipped == 2 and result.written == 28
    got = ddb.get_item(TableName=plan.target, Key=key_of(newer, KEYS))["Item"]
    assert items_equal(got, newer)
    assert ddb.get_item(TableName=plan.target, Key=deleted_key)["Item"] == tombstone_for(deleted_key)


@BOTH
def test_a_rerun_resumes_from_the_checkpoint_and_skips_finished_segments(ddb, emulator, unique, protocol):
    # GIVEN segment 0 checkpointed half way (its first page only) and segment 1 finished
    _spec, plan = _setup(ddb, emulator, unique, items=200, splits=2, protocol=protocol)
    small_pages = replace(plan, page_size=25)
    store = StateStore(ddb, plan.state_table)
    first_page = ddb.scan(TableName=plan.source, Segment=0, TotalSegments=2, Limit=25)
    for item in first_page["Items"]:
        ddb.put_item(TableName=plan.target, Item=item)
    store.save_segment(
        plan.source, SegmentCheckpoint(0, 2, SEGMENT_RUNNING, first_page["LastEvaluatedKey"], 25, 25, 0, 1)
    )
    finished = copy_segment(small_pages, 1)
    assert finished.status == SEGMENT_DONE and not finished.resumed
    # WHEN both segments run again
    resumed, again = copy_segment(small_pages, 0), copy_segment(small_pages, 1)
    # THEN segment 0 continued after its checkpoint (no item of page 1 re-scanned) ...
    assert resumed.resumed and resumed.status == SEGMENT_DONE
    assert resumed.skipped == 0, "items before the checkpoint were scanned again"
    in_segment = ddb.scan(TableName=plan.source, Segment=0, TotalSegments=2, Select="COUNT")["Count"]
    assert resumed.scanned == resumed.written == in_segment
    # ... segment 1 was not scanned again, and the copy is complete
    assert again.resumed and again.read_units == 0
    assert len(scan_all(ddb, plan.target)) == 200


@BOTH
def test_a_failing_segment_is_reported_as_data_with_its_checkpoint(ddb, emulator, unique, protocol):
    # GIVEN a target that disappeared after planning
    _spec, plan = _setup(ddb, emulator, unique, items=20, splits=1, protocol=protocol)
    ddb.delete_table(TableName=plan.target)
    # WHEN the segment runs
    result = copy_segment(plan, 0)
    # THEN it fails with the error in its result and in the state table; nothing raised
    assert result.status == "failed" and "ResourceNotFound" in result.error
    cp = StateStore(ddb, plan.state_table).load_segment(plan.source, 1, 0)
    assert cp is not None and cp.status == "failed" and "ResourceNotFound" in cp.error


def test_budget_is_split_across_tasks_from_provisioned_capacity(ddb, emulator, unique):
    # GIVEN a provisioned source (100 RCU) and target (40 WCU)
    source, target = f"psrc-{unique}", f"pdst-{unique}"
    create_table(ddb, source, provisioned=(100, 10))
    create_table(ddb, target, provisioned=(10, 40))
    spec = parse_spec(
        {
            "region": "us-east-1",
            "endpoint_url": emulator.endpoint_url,
            "tables": [{"source": source, "target": target}],
            "backfill": {"splits": 4, "read_percent": 0.5, "write_percent": 0.25},
        }
    )
    # WHEN the backfill is planned
    plan = plan_backfill(spec, spec.tables[0], ddb)
    # THEN each of the 4 tasks gets its share of the allowed percentage
    assert plan.read_units_per_task == pytest.approx(100 * 0.5 / 4)
    assert plan.write_units_per_task == pytest.approx(40 * 0.25 / 4)


@BOTH
def test_big_item_near_400kb_is_copied(ddb, emulator, unique, protocol):
    _spec, plan = _setup(ddb, emulator, unique, items=3, splits=1, protocol=protocol)
    big = make_big_item(50)
    ddb.put_item(TableName=plan.source, Item=big)
    copy_segment(plan, 0)
    got = ddb.get_item(TableName=plan.target, Key=key_of(big, KEYS))["Item"]
    assert items_equal(got, big)


def test_the_budget_is_shared_by_the_tasks_that_run_at_once(ddb: Any, emulator: Any, unique: str) -> None:
    """8 segments on 4 task slots run in two waves of 4: each task may use a quarter of the
    budget, not an eighth (which held the job to half its share); never more than the whole."""
    source, target = f"src-{unique}", f"dst-{unique}"
    create_table(ddb, source, provisioned=(400, 200))
    create_table(ddb, target, provisioned=(400, 200))
    spec = parse_spec(
        {
            "region": "us-east-1",
            "endpoint_url": emulator.endpoint_url,
            "tables": [{"source": source, "target": target}],
            "backfill": {"splits": 8, "read_percent": 0.5, "write_percent": 0.5},
        }
    )
    mapping = spec.tables[0]
    every = plan_backfill(spec, mapping, ddb)
    assert (every.read_units_per_task, every.write_units_per_task) == (200 / 8, 100 / 8)
    waves = plan_backfill(spec, mapping, ddb, concurrent_tasks=4)
    assert (waves.read_units_per_task, waves.write_units_per_task) == (200 / 4, 100 / 4)
    roomy = plan_backfill(spec, mapping, ddb, concurrent_tasks=64)  # more slots than segments
    assert roomy.write_units_per_task * roomy.total_segments == 100
    with pytest.raises(ValueError):
        plan_backfill(spec, mapping, ddb, concurrent_tasks=0)


# --- replay: BatchWriteItem ----------------------------------------------------------------------


class _BatchRecorder:
    """Records every BatchWriteItem sent. For the first ``refuse`` calls it does what DynamoDB may do under
    load: only the first half of the request is processed (sent on), the rest comes back unprocessed."""

    def __init__(self, client: Any, refuse: int = 0) -> None:
        self.sizes: list[int] = []
        self.refuse = refuse
        self._lock = threading.Lock()
        self._call = threading.local()  # a call's hooks run in its thread; the copier's calls run in several
        client.meta.events.register("provide-client-params.dynamodb.BatchWriteItem", self._params)
        client.meta.events.register("after-call.dynamodb.BatchWriteItem", self._answer)

    def _params(self, params: dict[str, Any], **_: Any) -> None:
        ((table, requests),) = params["RequestItems"].items()
        self._call.held = None
        with self._lock:
            self.sizes.append(len(requests))
            refuse = self.refuse > 0
            self.refuse -= refuse
        if refuse:
            half = len(requests) // 2
            params["RequestItems"] = {table: requests[:half]}
            self._call.held = (table, requests[half:])

    def _answer(self, parsed: dict[str, Any], **_: Any) -> None:
        if getattr(self._call, "held", None):
            table, requests = self._call.held
            parsed.setdefault("UnprocessedItems", {})[table] = requests


def test_a_replay_copy_writes_batches_of_25_unconditionally(ddb, emulator, unique):
    # GIVEN a replay table whose target already holds an older image of one key (written before the copy)
    _spec, plan = _setup(ddb, emulator, unique, items=120, splits=2, protocol="replay")
    older = make_item(random.Random(9), 3, version=999)
    ddb.put_item(TableName=plan.target, Item=older)
    recorder = _BatchRecorder(ddb)
    # WHEN both segments are copied
    results = [copy_segment(plan, s, ddb) for s in range(2)]
    # THEN every item went in BatchWriteItem requests of at most 25 (no PutItem), and the scanned image
    # replaced the older one: the replay copy is unconditional (its consumer is held until the release)
    assert all(r.status == SEGMENT_DONE for r in results)
    assert sum(recorder.sizes) == 120 and max(recorder.sizes) == 25
    assert sum(r.batch_requests for r in results) == len(recorder.sizes)
    assert sum(r.put_requests for r in results) == 0 and sum(r.written for r in results) == 120
    source, target = _by_key(scan_all(ddb, plan.source)), _by_key(scan_all(ddb, plan.target))
    assert source.keys() == target.keys() and all(items_equal(source[k], target[k]) for k in source)


def test_unprocessed_items_are_sent_again_with_backoff_never_dropped(ddb, emulator, unique):
    # GIVEN a replay copy whose first three BatchWriteItem calls come back half unprocessed
    _spec, plan = _setup(ddb, emulator, unique, items=60, splits=1, protocol="replay")
    recorder = _BatchRecorder(ddb, refuse=3)
    # WHEN the segment is copied
    result = copy_segment(plan, 0, ddb)
    # THEN the unprocessed items were sent again (counted), and every item is in the target
    assert result.status == SEGMENT_DONE and result.written == 60
    assert result.resent > 0 and result.resent == sum(recorder.sizes) - 60
    assert result.batch_requests == len(recorder.sizes) > 3
    assert len(scan_all(ddb, plan.target)) == 60
