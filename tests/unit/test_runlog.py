"""The run log's arithmetic, without I/O: copy windows on an injected clock, nearest-rank percentiles,
and the lag of every record of real-shaped handler events (tests/events)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferry.buckets.events import change_time, sqs_lag_samples
from ferry.runlog import (
    CopyRecorder,
    CopySample,
    LagSample,
    RecordLag,
    RunLog,
    epoch_of,
    failed_identifiers,
    lag_samples_by_source,
    percentile,
)
from ferry.tables.replicate import stream_lag_samples, stream_record_lag

pytestmark = pytest.mark.unit

EVENTS = Path(__file__).resolve().parent.parent / "events"
STREAM_CREATED = 1795708521.0  # ApproximateCreationDateTime of every record of table_stream_batch.json
S3_TIME = 1764174000.0  # 2025-11-26T16:20:00Z, the eventTime / time of the S3 samples


class Collected(RunLog):
    """A run log that keeps its samples in memory."""

    def __init__(self) -> None:
        super().__init__(cast("Any", None), "state")
        self.copies: list[tuple[str, str, CopySample]] = []

    def save_copy_sample(self, source: str, kind: str, sample: CopySample) -> bool:
        self.copies.append((source, kind, sample))
        return True


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return loaded


def _sqs(body: dict[str, Any], message_id: str) -> dict[str, Any]:
    return {"messageId": message_id, "body": json.dumps(body), "eventSource": "aws:sqs"}


# --- copy windows ---------------------------------------------------------------------------------


def test_a_recorder_writes_one_sample_per_window_and_the_rest_at_close() -> None:
    # GIVEN a recorder with a 2 s window on a clock the test moves
    clock, runlog = Clock(), Collected()
    recorder = CopyRecorder(runlog, "src", "table", 3, window=2.0, clock=clock)
    # WHEN pages and chunks are counted over 5 s
    recorder.add(read_units=1.5)
    clock.now += 1.0
    recorder.add(items=25, bytes=2500, write_units=25.0)
    assert runlog.copies == []  # still inside the first window
    clock.now += 1.0
    recorder.add(items=25, bytes=2500, write_units=25.0, throttled=1)  # 2 s: the window closes
    clock.now += 0.5
    recorder.add(items=10, bytes=1000, write_units=10.0)
    clock.now += 0.5
    recorder.close()
    recorder.close()  # nothing counted since: no empty sample
    # THEN two samples, contiguous windows, every count in exactly one of them
    first, second = (sample for _, _, sample in runlog.copies)
    assert first == CopySample(3, 1000.0, 1002.0, 50, 5000, 1.5, 50.0, 1)
    assert second == CopySample(3, 1002.0, 1003.0, 10, 1000, 0.0, 10.0, 0)
    assert {(source, kind) for source, kind, _ in runlog.copies} == {("src", "table")}


def test_a_recorder_without_work_writes_nothing_and_one_without_a_log_only_counts() -> None:
    clock, runlog = Clock(), Collected()
    CopyRecorder(runlog, "src", "bucket", 0, clock=clock).close()
    assert runlog.copies == []
    silent = CopyRecorder(None, "src", "bucket", 0, clock=clock)
    silent.add(items=1, bytes=10, requests=2)
    clock.now += 5
    silent.add(items=1)
    silent.close()  # no run log: dropped, no error


def test_a_bucket_window_carries_its_requests() -> None:
    clock, runlog = Clock(), Collected()
    recorder = CopyRecorder(runlog, "bkt", "bucket", 1, clock=clock)
    recorder.add(items=1, bytes=0, requests=2)  # an equal object: HEADs only
    recorder.add(items=1, bytes=5 << 20, requests=3)
    clock.now += 0.25
    recorder.close()
    (_, _, sample) = runlog.copies[0]
    assert (sample.items, sample.bytes, sample.requests, sample.ended - sample.started) == (2, 5 << 20, 5, 0.25)


# --- percentiles ----------------------------------------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    values = [15.0, 20.0, 35.0, 40.0, 50.0]
    assert [percentile(values, q) for q in (0.05, 0.3, 0.4, 0.5, 1.0)] == [15.0, 20.0, 20.0, 35.0, 50.0]
    assert percentile([], 0.99) == 0.0
    assert percentile([7.0], 0.0) == 7.0
    assert percentile(range(1, 101), 0.99) == 99


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1), st.floats(0.0, 1.0))
def test_percentile_is_a_value_with_at_least_its_rank_of_values_at_or_below_it(values: list[float], q: float) -> None:
    result = percentile(values, q)
    rank = max(1, math.ceil(q * len(values)))
    assert result in values
    assert sum(v <= result for v in values) >= rank
    assert sum(v < result for v in values) < rank


# --- lags -----------------------------------------------------------------------------------------


def test_every_record_of_a_stream_batch_has_its_lag_from_its_creation_time() -> None:
    # GIVEN the sample stream batch (3 records of ferry-sample-source), the second one failed
    records = _event("table_stream_batch.json")["Records"]
    response = {"batchItemFailures": [{"itemIdentifier": records[1]["dynamodb"]["SequenceNumber"]}]}
    # WHEN it was applied 2.5 s after the changes
    samples = stream_lag_samples(records, response, STREAM_CREATED + 2.5)
    # THEN one sample for the table: 3 records, 1 failed, the lag of the others 2.5 s
    assert samples == {
        "ferry-sample-source": LagSample(STREAM_CREATED + 2.5, records=3, p50=2.5, p99=2.5, max=2.5, failed=1)
    }
    lag = stream_record_lag(records[0])
    assert lag == RecordLag("ferry-sample-source", STREAM_CREATED, failed=False)


def test_a_stream_record_of_an_unmapped_table_or_without_a_table_is_left_out() -> None:
    records = _event("table_stream_batch.json")["Records"]
    assert stream_lag_samples(records, {}, STREAM_CREATED, sources=["another"]) == {}
    assert stream_record_lag({"eventSourceARN": "not an arn", "dynamodb": {}}) is None
    # a record without a creation time is counted, with no lag
    untimed = [{**records[0], "dynamodb": {"SequenceNumber": "1"}}]
    sample = stream_lag_samples(untimed, None, 10.0)["ferry-sample-source"]
    assert (sample.records, sample.max, sample.failed) == (1, 0.0, 0)


def test_s3_notification_and_eventbridge_messages_have_their_event_time() -> None:
    notification, bridge = _event("s3_notification_batch.json"), _event("eventbridge_object_created.json")
    assert change_time(json.dumps(notification)) == S3_TIME
    assert change_time(bridge) == S3_TIME
    assert change_time(_event("s3_test_event.json")) is None
    assert change_time("not json") is None


def test_an_sqs_batch_gives_one_sample_per_bucket_with_its_failed_messages() -> None:
    # GIVEN a notification, two EventBridge events (one failed) and S3's test event
    messages = [
        _sqs(_event("s3_notification_batch.json"), "m1"),
        _sqs(_event("eventbridge_object_created.json"), "m2"),
        _sqs(_event("eventbridge_object_deleted.json"), "m3"),
        _sqs(_event("s3_test_event.json"), "m4"),
    ]
    response = {"batchItemFailures": [{"itemIdentifier": "m3"}]}
    # WHEN they were applied 60 s after the change
    samples = sqs_lag_samples(messages, response, S3_TIME + 60, sources=["ferry-sample-source"])
    # THEN one sample for the bucket: the three object messages, one failed, 60 s each; the test event is none
    sample = samples["ferry-sample-source"]
    assert (sample.records, sample.failed, sample.p50, sample.p99, sample.max) == (3, 1, 60.0, 60.0, 60.0)
    assert sqs_lag_samples(messages, response, S3_TIME, sources=["other"]) == {}


def test_lags_are_grouped_by_source_and_never_negative() -> None:
    records = [RecordLag("a", 10.0), RecordLag("a", 12.0), RecordLag("b", 13.0), RecordLag("b", None, failed=True)]
    samples = lag_samples_by_source(records, 12.5)
    assert samples["a"] == LagSample(12.5, 2, p50=0.5, p99=2.5, max=2.5, failed=0)
    assert samples["b"] == LagSample(12.5, 2, p50=0.0, p99=0.0, max=0.0, failed=1)  # a clock 0.5 s ahead


def test_change_times_and_failures_are_read_from_every_shape() -> None:
    assert epoch_of(1795708521) == 1795708521.0
    assert epoch_of("2025-11-26T16:20:00Z") == epoch_of("2025-11-26T16:20:00.000Z") == S3_TIME
    assert epoch_of("2025-11-26T16:20:00") == S3_TIME  # no zone: UTC
    assert epoch_of(None) is None and epoch_of(True) is None and epoch_of("soon") is None
    assert failed_identifiers({"batchItemFailures": [{"itemIdentifier": "7"}, "junk"]}) == {"7"}
    assert failed_identifiers(None) == set() and failed_identifiers({"batchItemFailures": None}) == set()
