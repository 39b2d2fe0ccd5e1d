"""The run log against the emulator: what a real copy, a real handler invocation and a release record in
the state table, so that a report can be made from the state alone."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from chalicelib import bucket_events, table_stream

from ferry.aws import stream_arn_of
from ferry.buckets.backfill import BucketPlan, begin_bucket_copy, reconcile_partition
from ferry.clients import AwsTarget, TableClients, make_client
from ferry.release import release_table
from ferry.runlog import CLOCK_SKEW_SECONDS, LAG_SAMPLE_ATTRIBUTES, CopySample, LagSample, RunLog
from ferry.spec import BucketMapping, Spec, parse_spec, spec_to_dict
from ferry.tables.backfill import capacity_budget, copy_segment, plan_backfill
from ferry.tables.copy_run import begin_copy, finish_copy
from ferry.tables.schema import describe_shape
from ferry.tables.state import BUCKET, COPY_SK, TABLE, StateStore, create_state_table
from ferry_dev.sqs_poller import SqsPoller
from ferry_dev.stream_poller import StreamPoller
from tests.conftest import create_table
from tests.functional.test_backfill_segment import _setup

pytestmark = pytest.mark.functional
EVENTS = Path(__file__).resolve().parent.parent / "events"


def _copy(ddb: Any, emulator: Any, unique: str, items: int, protocol: str) -> tuple[Any, Any]:
    """A whole table copy as its job runs it: begin, every split, finish. (spec, the finished run)"""
    spec, _ = _setup(ddb, emulator, unique, items=items, protocol=protocol)
    clients, mapping = TableClients.of(ddb), spec.tables[0]
    run = begin_copy(spec, mapping, clients)
    plan = plan_backfill(spec, mapping, clients)
    results = [copy_segment(plan, split, clients) for split in range(plan.splits)]
    assert all(r.status == "done" for r in results)
    return spec, finish_copy(spec, mapping, clients, run, sum(r.written for r in results))


@pytest.mark.parametrize("protocol", ["replay", "insert-only"])
def test_a_backfill_records_copy_samples_that_add_up_to_its_items_within_the_run(ddb, emulator, unique, protocol):
    # GIVEN a source of 150 items in 3 splits
    # WHEN it is copied (replay: BatchWriteItem; insert-only: conditional PutItem)
    spec, run = _copy(ddb, emulator, unique, 150, protocol)
    source = spec.tables[0].source
    # THEN its copy samples count every item once, by split, inside the run's start and finish
    samples = RunLog(ddb, spec.state_table).copy_samples(source, TABLE)
    assert samples and sum(s.items for s in samples) == 150
    assert {s.split for s in samples} <= {0, 1, 2}
    assert all(run.started_at <= s.started <= s.ended <= run.finished_at for s in samples)
    # units as the copier charged its budget: the emulator's ConsumedCapacity where it answers one (moto's
    # BatchWriteItem reports a few units for 25 items), else DynamoDB's rules
    assert sum(s.read_units for s in samples) > 0 and sum(s.write_units for s in samples) > 0
    assert sum(s.bytes for s in samples) > 150 * 100  # ~1 KB items and one near 400 KB
    assert [s.started for s in samples] == sorted(s.started for s in samples)
    # ... and the run keeps its budgets (units/s of the whole copy) for the report
    loaded = StateStore(ddb, spec.state_table).load_copy(source)
    assert loaded is not None
    settings = spec.backfill
    shape = describe_shape(ddb, source, "source")
    assert loaded.read_budget == round(
        capacity_budget(shape, settings.read_percent, settings.on_demand_read_units, write=False), 3
    )
    assert loaded.write_budget > 0 and loaded.estimated_seconds >= 0


def test_a_restart_reads_only_its_own_copy_log_and_a_resumed_run_keeps_it(ddb, emulator, unique):
    spec, _ = _copy(ddb, emulator, unique, 40, "insert-only")
    mapping, clients = spec.tables[0], TableClients.of(ddb)
    runlog, store = RunLog(ddb, spec.state_table), StateStore(ddb, spec.state_table)

    def this_run() -> list[CopySample]:
        run = store.load_copy(mapping.source)
        assert run is not None
        return runlog.copy_samples(mapping.source, TABLE, since=run.started_at - CLOCK_SKEW_SECONDS)

    assert sum(s.items for s in this_run()) == 40
    # a rerun with the same settings resumes the run: its samples are still its own
    begin_copy(spec, mapping, clients)
    assert sum(s.items for s in this_run()) == 40
    # `ferry backfill --restart` starts afresh: a new run, whose log has none of the old samples,
    # which stay (nothing is deleted: the jobs need no delete permission for the run log)
    time.sleep(CLOCK_SKEW_SECONDS + 0.1)
    begin_copy(spec, mapping, clients, restart=True)
    assert this_run() == []
    assert sum(s.items for s in runlog.copy_samples(mapping.source, TABLE)) == 40
    # negative control: without `since`, an old run's samples would be counted as the new run's
    assert runlog.copy_samples(mapping.source, TABLE) != this_run()


def test_a_copy_run_recorded_before_the_budgets_still_loads(ddb, unique):
    state = f"state-{unique}"
    create_state_table(ddb, state)
    old = {"pk": {"S": "table#old"}, "sk": {"S": COPY_SK}, "status": {"S": "done"}, "started_at": {"N": "5.5"}}
    ddb.put_item(TableName=state, Item={**old, "finished_at": {"N": "9"}, "items": {"N": "3"}})
    run = StateStore(ddb, state).load_copy("old")
    assert run is not None and (run.items, run.read_budget, run.write_budget, run.estimated_seconds) == (3, 0, 0, 0)


def test_a_handler_invocation_through_the_local_poller_records_one_lag_sample_per_batch(
    monkeypatch: pytest.MonkeyPatch, ddb: Any, streams: Any, sqs: Any, where: AwsTarget, unique: str
) -> None:
    # GIVEN a replicated table whose handler is fed by the local poller, and 7 changes on the source
    source, target, state = f"src-{unique}", f"dst-{unique}", f"state-{unique}"
    create_table(ddb, source, stream=True)
    create_table(ddb, target)
    create_state_table(ddb, state)
    spec = parse_spec(
        {
            "region": where.region,
            "endpoint_url": where.endpoint_url,
            "state_table": state,
            "tables": [{"source": source, "target": target}],
            "replication": {"phase_cache_seconds": 0},
        }
    )
    monkeypatch.setenv("FERRY_SPEC", json.dumps(spec_to_dict(spec)))
    table_stream.reset()
    for i in range(7):
        ddb.put_item(TableName=source, Item={"pk": {"S": f"k{i}"}, "n": {"N": str(i)}})
    poller = StreamPoller(
        streams,
        sqs,
        stream_arn_of(ddb, source),
        source,
        table_stream.handle,
        batch_size=100,
        on_failure_queue_url="unused",
        retry_backoff=0,
    )
    try:
        # WHEN the poller drains the stream
        stats = poller.drain(timeout=30)
    finally:
        table_stream.reset()
    # THEN one lag sample per invocation, whose records are the batch's, none failed, lags of seconds
    samples = RunLog(ddb, state).lag_samples(source, TABLE)
    assert stats.batches >= 1 and len(samples) == stats.batches
    assert sum(s.records for s in samples) == stats.delivered == 7
    assert all(s.failed == 0 and 0 <= s.p50 <= s.p99 <= s.max < 60 for s in samples)


def _bucket_setup(ddb: Any, where: AwsTarget, unique: str) -> tuple[Spec, BucketMapping, Any]:
    """A bucket spec, its state table at home and its two empty buckets."""
    spec = parse_spec(
        {
            "region": where.region,
            "endpoint_url": where.endpoint_url,
            "state_table": f"state-{unique}",
            "buckets": [{"source": f"src-{unique}", "target": f"dst-{unique}"}],
        }
    )
    mapping = spec.buckets[0]
    create_state_table(ddb, spec.state_table)
    s3 = make_client("s3", where)
    s3.create_bucket(Bucket=mapping.source)
    s3.create_bucket(Bucket=mapping.target)
    return spec, mapping, s3


def test_a_bucket_partition_records_its_objects_bytes_and_requests(ddb, where, unique):
    # GIVEN a source bucket of 6 objects and a state table at home
    spec, mapping, s3 = _bucket_setup(ddb, where, unique)
    keys = [f"k{i}" for i in range(6)]
    for i, key in enumerate(keys):
        s3.put_object(Bucket=mapping.source, Key=key, Body=b"x" * (100 * (i + 1)))
    store = StateStore(ddb, spec.state_table)
    runlog = RunLog(ddb, spec.state_table)
    runlog.save_copy_sample(mapping.source, BUCKET, CopySample(9, 1.0, 2.0, 1, 1))  # an earlier copy's
    run = begin_bucket_copy(spec, mapping, store)  # a new copy: its log is what it writes from its start
    # WHEN two partitions copy them (each writes to the plan's state table)
    plan = BucketPlan.of(spec, mapping)
    results = [reconcile_partition(plan, n, part) for n, part in enumerate((keys[:3], keys[3:]))]
    # THEN the copy log counts every object, its bytes and requests, by partition
    samples = runlog.copy_samples(mapping.source, BUCKET, since=run.started_at - CLOCK_SKEW_SECONDS)
    assert {s.split for s in samples} == {0, 1}
    assert {s.split for s in runlog.copy_samples(mapping.source, BUCKET)} == {0, 1, 9}  # the earlier one stays
    assert sum(s.items for s in samples) == 6 and sum(s.bytes for s in samples) == 100 * 21
    assert sum(s.requests for s in samples) == sum(r.requests for r in results) > 0
    assert all(s.read_units == s.write_units == 0 for s in samples)


def test_the_release_of_a_table_records_how_many_changes_were_held(ddb, streams, emulator, unique):
    # GIVEN a replay table copied while 5 changes were made (held: no consumer runs before the release)
    spec, _ = _setup(ddb, emulator, unique, items=10, splits=1, protocol="replay")
    mapping, clients = spec.tables[0], TableClients.of(ddb)
    run = begin_copy(spec, mapping, clients)
    for i in range(5):
        ddb.put_item(TableName=mapping.source, Item={"pk": {"S": f"held#{i}"}, "sk": {"N": str(i)}})
    copy_segment(plan_backfill(spec, mapping, clients), 0, clients)
    finish_copy(spec, mapping, clients, run, 15)
    # WHEN it is released
    released = release_table(spec, mapping, clients, streams)
    # THEN the phase records the 5 held records, and the release says so
    assert StateStore(ddb, spec.state_table).held_at_release(mapping.source) == 5
    assert "5 records" in released.detail


def test_a_bucket_events_invocation_through_the_local_poller_records_its_messages_lag(
    monkeypatch: pytest.MonkeyPatch, ddb: Any, sqs: Any, where: AwsTarget, unique: str
) -> None:
    # GIVEN two EventBridge events of a source bucket made 30 s ago, queued for the bucket_events handler
    spec, mapping, s3 = _bucket_setup(ddb, where, unique)
    s3.put_object(Bucket=mapping.source, Key="a", Body=b"a")
    queue = sqs.create_queue(QueueName=f"events-{unique}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    made = time.time() - 30
    for key in ("a", "gone"):
        event = json.loads((EVENTS / "eventbridge_object_created.json").read_text(encoding="utf-8"))
        event["time"] = datetime.fromtimestamp(made, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event["detail"]["bucket"]["name"], event["detail"]["object"]["key"] = mapping.source, key
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(event))
    monkeypatch.setenv("FERRY_SPEC", json.dumps(spec_to_dict(spec)))
    bucket_events.reset()
    try:
        # WHEN the local poller drains the queue into the handler
        poller = SqsPoller(sqs, queue, queue_arn, bucket_events.handle, visibility_timeout=30, wait_seconds=0)
        poller.drain(timeout=60)
    finally:
        bucket_events.reset()
    # THEN the bucket's lag samples count both messages, each about 30 s behind
    samples = RunLog(ddb, spec.state_table).lag_samples(mapping.source, BUCKET)
    assert samples and sum(s.records for s in samples) == 2 and all(s.failed == 0 for s in samples)
    assert all(29 <= s.p50 <= s.max < 90 for s in samples)
    assert s3.head_object(Bucket=mapping.target, Key="a")["ContentLength"] == 1


def test_a_lag_sample_writes_only_the_attributes_the_handlers_iam_allows(ddb, unique):
    # GIVEN the state table WHEN a handler's lag sample is written
    state = f"state-{unique}"
    create_state_table(ddb, state)
    assert RunLog(ddb, state).save_lag_sample("orders", TABLE, LagSample(1000.0, 3, 0.5, 0.9, 1.2, 1))
    # THEN the item holds exactly LAG_SAMPLE_ATTRIBUTES (dynamodb:Attributes of RecordLagSamples, ferry/deploy.py)
    (item,) = ddb.scan(TableName=state, ConsistentRead=True)["Items"]
    assert set(item) == set(LAG_SAMPLE_ATTRIBUTES)
