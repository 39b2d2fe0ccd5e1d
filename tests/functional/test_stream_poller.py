"""The local stream poller against the emulator's streams and SQS, with the real handler.

moto has exactly one shard per stream and never splits it, so the shard-graph ordering is
tested once against a small in-memory fake of DescribeStream/GetRecords (the unit test at the end).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from chalicelib import table_stream

from ferry.aws import stream_arn_of
from ferry.clients import AwsTarget, make_client
from ferry.errors import SetupError
from ferry.spec import parse_spec, spec_to_dict
from ferry.tables.setup import ensure_failure_queue
from ferry.tables.state import StateStore, create_state_table
from ferry.wire import key_text
from ferry_dev.stream_poller import StreamPoller, failed_index
from tests.conftest import create_table, scan_all

pytestmark = pytest.mark.functional

Event = dict[str, Any]


def sequences(event: Event) -> list[str]:
    return [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]


def key_of(record: dict[str, Any]) -> str:
    return str(record["dynamodb"]["Keys"]["pk"]["S"])


class Recorder:
    """A handler that remembers each invocation's sequence numbers, then calls ``inner``
    (default: the real table_stream handler)."""

    def __init__(self, inner: Callable[[Event, Any], Any] | None = None) -> None:
        self.inner = inner
        self.calls: list[list[str]] = []
        self.keys: list[list[str]] = []

    def __call__(self, event: Event, context: Any) -> Any:
        self.calls.append(sequences(event))
        self.keys.append([key_of(r) for r in event["Records"]])
        return (self.inner or table_stream.handle)(event, context)

    @property
    def delivered(self) -> list[str]:
        return [s for call in self.calls for s in call]


@dataclass
class Env:
    ddb: Any
    streams: Any
    sqs: Any
    source: str
    target: str
    store: StateStore
    stream_arn: str
    queue_url: str

    def poller(self, handler: Callable[[Event, Any], Any], **options: Any) -> StreamPoller:
        settings: dict[str, Any] = {
            "batch_size": 10,
            "starting_position": "TRIM_HORIZON",
            "max_retries": 2,
            "on_failure_queue_url": self.queue_url,
            "checkpoints": self.store,
            "retry_backoff": 0.0,
            "streams": self.streams,
            **options,
        }
        streams = settings.pop("streams")
        return StreamPoller(streams, self.sqs, self.stream_arn, self.source, handler, **settings)

    def put(self, pk: str, **attributes: dict[str, Any]) -> None:
        self.ddb.put_item(TableName=self.source, Item={"pk": {"S": pk}, **attributes})

    def shard_id(self) -> str:
        (shard,) = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        return str(shard["ShardId"])

    def target_items(self) -> dict[str, dict[str, Any]]:
        return {item["pk"]["S"]: item for item in scan_all(self.ddb, self.target)}

    def source_items(self) -> dict[str, dict[str, Any]]:
        return {item["pk"]["S"]: item for item in scan_all(self.ddb, self.source)}

    def queue_messages(self) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        return [json.loads(m["Body"]) for m in response.get("Messages", [])]


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch, ddb: Any, streams: Any, sqs: Any, where: AwsTarget, unique: str
) -> Iterator[Env]:
    """Source table with a stream, target table, state table, on-failure queue and FERRY_SPEC."""
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
    yield Env(
        ddb,
        streams,
        sqs,
        source,
        target,
        StateStore(ddb, state),
        stream_arn_of(ddb, source),
        ensure_failure_queue(sqs, f"failures-{unique}")[0],
    )
    table_stream.reset()


def test_records_of_a_key_apply_in_order(env: Env) -> None:
    # GIVEN one key updated 40 times, interleaved with writes of other keys
    for i in range(40):
        env.put("hot", v={"N": str(i)})
        env.put(f"cold-{i % 7}", v={"N": str(i)})

    # WHEN the stream is drained in batches of 7
    recorder = Recorder()
    stats = env.poller(recorder, batch_size=7).drain(timeout=60)

    # THEN every record was delivered once, in sequence order, and the key ends at its last value
    delivered = [int(s) for s in recorder.delivered]
    assert delivered == sorted(delivered) and len(set(delivered)) == 80
    assert stats.applied == stats.delivered == 80
    assert env.target_items()["hot"]["v"] == {"N": "39"}
    assert env.target_items() == env.source_items()


def test_batches_hold_batch_size_records(env: Env) -> None:
    # GIVEN 23 writes
    for i in range(23):
        env.put(f"k{i:02d}", v={"N": str(i)})

    # WHEN they are polled with batch_size 10
    recorder = Recorder()
    stats = env.poller(recorder, batch_size=10).drain(timeout=60)

    # THEN the handler saw batches of 10, 10 and 3
    assert [len(call) for call in recorder.calls] == [10, 10, 3]
    assert (stats.batches, stats.applied, stats.retries) == (3, 23, 0)
    assert env.store.load_stream_checkpoint(env.source, env.shard_id()) == (recorder.delivered[-1], False)


class Crash(BaseException):
    """Stands in for the process dying in the middle of a batch."""


def test_restart_resumes_after_the_checkpoint(env: Env) -> None:
    # GIVEN 20 writes and a poller that dies while handling its third batch of 5
    for i in range(20):
        env.put(f"k{i:02d}", v={"N": str(i)})

    def dies_on_third_batch(event: Event, context: Any) -> Any:
        if len(first.calls) == 3:
            raise Crash
        return table_stream.handle(event, context)

    first = Recorder(dies_on_third_batch)
    doomed = env.poller(first, batch_size=5)
    doomed.poll_once()
    doomed.poll_once()
    with pytest.raises(Crash):
        doomed.poll_once()
    committed = first.calls[1][-1]
    assert env.store.load_stream_checkpoint(env.source, env.shard_id()) == (committed, False)

    # WHEN a new poller starts with the same state store
    second = Recorder()
    env.poller(second, batch_size=5).drain(timeout=60)

    # THEN it re-delivers only the batch in flight, never the committed ones, and then the rest
    committed_batches = first.calls[0] + first.calls[1]
    assert second.calls[0] == first.calls[2]
    assert not set(second.delivered) & set(committed_batches)
    assert len(committed_batches) + len(second.delivered) == 20
    assert env.target_items() == env.source_items()


def test_latest_starts_after_existing_records_and_trim_horizon_reads_them(env: Env) -> None:
    # GIVEN 3 records in the stream before the pollers start
    for i in range(3):
        env.put(f"old-{i}")

    def ok(event: Event, context: Any) -> Event:
        return {"batchItemFailures": []}

    latest_seen, horizon_seen = Recorder(ok), Recorder(ok)
    latest = env.poller(latest_seen, starting_position="LATEST", checkpoints=None)
    horizon = env.poller(horizon_seen, starting_position="TRIM_HORIZON", checkpoints=None)
    assert latest.poll_once().delivered == 0

    # WHEN 2 more records arrive and both pollers drain
    for i in range(2):
        env.put(f"new-{i}")
    latest.drain(timeout=30)
    horizon.drain(timeout=30)

    # THEN LATEST delivered only the new ones, TRIM_HORIZON all of them
    assert [k for call in latest_seen.keys for k in call] == ["new-0", "new-1"]
    assert [k for call in horizon_seen.keys for k in call] == ["old-0", "old-1", "old-2", "new-0", "new-1"]


def test_partial_failure_retries_from_the_first_failed_record(env: Env) -> None:
    # GIVEN 10 records and a handler whose first answer reports records 3 and 6 as failed
    for i in range(10):
        env.put(f"k{i}", v={"N": str(i)})
    checkpoints_seen: list[Any] = []

    def fails_once(event: Event, context: Any) -> Event:
        response: Event = table_stream.handle(event, context)
        checkpoints_seen.append(env.store.load_stream_checkpoint(env.source, env.shard_id()))
        if len(recorder.calls) == 1:
            seqs = sequences(event)
            return {"batchItemFailures": [{"itemIdentifier": seqs[6]}, {"itemIdentifier": seqs[3]}]}
        return response

    recorder = Recorder(fails_once)

    # WHEN the stream is drained
    stats = env.poller(recorder, batch_size=10).drain(timeout=60)

    # THEN records 0-2 were done, the retry started at record 3 and redelivered everything after it
    first, second = recorder.calls
    assert second == first[3:]
    assert checkpoints_seen[1] == (first[2], False)
    assert (stats.batches, stats.retries, stats.applied, stats.delivered) == (2, 1, 10, 17)
    assert env.store.load_stream_checkpoint(env.source, env.shard_id()) == (first[-1], False)
    assert env.target_items() == env.source_items()


def test_poison_record_goes_to_the_on_failure_queue_and_the_shard_moves_on(env: Env) -> None:
    # GIVEN a record the handler always fails, between records of other keys
    env.put("a", v={"N": "1"})
    env.put("poison", secret={"S": "never-in-the-queue"})
    env.put("b", v={"N": "2"})
    env.put("c", v={"N": "3"})

    def rejects_poison(event: Event, context: Any) -> Event:
        good = [r for r in event["Records"] if key_of(r) != "poison"]
        bad = [r for r in event["Records"] if key_of(r) == "poison"]
        response: Event = table_stream.handle({"Records": good}, context)
        failures = response["batchItemFailures"] + [{"itemIdentifier": r["dynamodb"]["SequenceNumber"]} for r in bad]
        return {"batchItemFailures": failures}

    recorder = Recorder(rejects_poison)

    # WHEN the stream is drained with max_retries 2
    stats = env.poller(recorder, max_retries=2).drain(timeout=60)

    # THEN after 1 + 2 attempts the record went to the queue, and the records after it were applied
    poison_sequence = recorder.calls[0][1]
    assert recorder.keys == [["a", "poison", "b", "c"], ["poison", "b", "c"], ["poison", "b", "c"], ["b", "c"]]
    assert (stats.dead_lettered, stats.retries, stats.applied) == (1, 2, 3)
    assert sorted(env.target_items()) == ["a", "b", "c"]
    (message,) = env.queue_messages()
    assert message["requestContext"] == {
        "requestId": message["requestContext"]["requestId"],
        "condition": "RetryAttemptsExhausted",
        "approximateInvokeCount": 3,
        "functionArn": "local:table_stream",
    }
    assert message["version"] == "1.0"
    assert message["timestamp"].endswith("Z")
    assert "functionError" not in message["responseContext"]
    info = message["DDBStreamBatchInfo"]
    assert info["shardId"] == env.shard_id()
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == poison_sequence
    assert info["batchSize"] == 1 and info["streamArn"] == env.stream_arn
    assert info["approximateArrivalOfFirstRecord"] == info["approximateArrivalOfLastRecord"]
    assert message["ferry"] == {
        "sourceTable": env.source,
        "eventName": "INSERT",
        "keys": key_text({"pk": {"S": "poison"}}),
        "error": None,
    }
    assert "never-in-the-queue" not in json.dumps(message)
    assert env.store.load_stream_checkpoint(env.source, env.shard_id()) == (recorder.calls[-1][-1], False)


@pytest.mark.parametrize(
    "first_answer",
    [
        pytest.param("raise", id="handler-raises"),
        pytest.param({"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]}, id="unknown-identifier"),
        pytest.param({"batchItemFailures": [{"id": "x"}]}, id="no-identifier"),
        pytest.param("not an object", id="not-an-object"),
    ],
)
def test_handler_error_or_malformed_answer_retries_the_whole_batch(env: Env, first_answer: Any) -> None:
    # GIVEN 5 records and a handler whose first invocation raises or answers nonsense
    for i in range(5):
        env.put(f"k{i}", v={"N": str(i)})

    def bad_then_good(event: Event, context: Any) -> Any:
        if len(recorder.calls) == 1:
            if first_answer == "raise":
                raise RuntimeError("boom")
            return first_answer
        return table_stream.handle(event, context)

    recorder = Recorder(bad_then_good)

    # WHEN the stream is drained
    stats = env.poller(recorder).drain(timeout=60)

    # THEN the same whole batch was delivered again and then applied
    assert len(recorder.calls) == 2 and recorder.calls[0] == recorder.calls[1]
    assert (stats.retries, stats.applied, stats.dead_lettered) == (1, 5, 0)
    assert env.target_items() == env.source_items()


def test_handler_that_always_raises_dead_letters_each_record_and_terminates(env: Env) -> None:
    # GIVEN 2 records and a handler that always raises
    env.put("x")
    env.put("y")

    def broken(event: Event, context: Any) -> Event:
        raise RuntimeError("cannot reach the target")

    recorder = Recorder(broken)

    # WHEN the stream is drained with max_retries 1
    stats = env.poller(recorder, max_retries=1).drain(timeout=60)

    # THEN each record went to the queue after 2 attempts, with the error, and the poller stopped
    assert recorder.keys == [["x", "y"], ["x", "y"], ["y"], ["y"]]
    assert (stats.dead_lettered, stats.applied, stats.retries) == (2, 0, 2)
    messages = sorted(env.queue_messages(), key=lambda m: m["ferry"]["keys"])
    assert [m["ferry"]["keys"] for m in messages] == [key_text({"pk": {"S": k}}) for k in ("x", "y")]
    for message in messages:
        assert message["responseContext"]["functionError"] == "Unhandled"
        assert message["ferry"]["error"] == "RuntimeError: cannot reach the target"
        assert message["requestContext"]["approximateInvokeCount"] == 2
    assert env.target_items() == {}


def test_lag_is_measured_per_applied_record(env: Env) -> None:
    # GIVEN 4 records and a poller whose clock runs 100 s ahead of the stream's timestamps
    for i in range(4):
        env.put(f"k{i}")

    # WHEN the stream is drained
    stats = env.poller(Recorder(), clock=lambda: time.time() + 100).drain(timeout=60)

    # THEN there is one lag per applied record, about 100 s each
    assert len(stats.lags) == stats.applied == 4
    assert all(100 <= lag < 160 for lag in stats.lags)
    assert stats.lag_p50 is not None and stats.lag_p99 is not None
    assert 100 <= stats.lag_p50 <= stats.lag_p99


def test_bad_shard_iterator_is_replaced_from_the_checkpoint(env: Env, where: AwsTarget) -> None:
    # GIVEN 6 records, half of them processed, and a GetRecords call that sends a broken iterator
    # (ministack answers 400 ValidationException as AWS documents, moto 500; no retries keeps this fast)
    for i in range(6):
        env.put(f"k{i}")
    streams = make_client("dynamodbstreams", where, max_attempts=1)
    recorder = Recorder()
    poller = env.poller(recorder, batch_size=3, streams=streams)
    assert poller.poll_once().applied == 3
    broken: list[str] = []

    def break_iterator_once(params: dict[str, Any], **kwargs: Any) -> None:
        if not broken:
            broken.append(params["ShardIterator"])
            params["ShardIterator"] = "arn:aws:dynamodb:us-east-1:123456789012:table/x/stream/y|1|broken"

    streams.meta.events.register("before-parameter-build.dynamodbstreams.GetRecords", break_iterator_once)

    # WHEN the stream is drained
    poller.drain(timeout=60)

    # THEN the poller re-acquired an iterator after its checkpoint: every record delivered exactly once
    assert broken
    assert len(recorder.delivered) == len(set(recorder.delivered)) == 6
    assert env.target_items() == env.source_items()


def test_run_polls_until_stopped(env: Env) -> None:
    # GIVEN a poller running in a thread
    recorder = Recorder()
    poller = env.poller(recorder)
    stop = threading.Event()
    thread = threading.Thread(target=poller.run, args=(stop, 0.05), daemon=True)
    thread.start()

    # WHEN records arrive while it runs
    for i in range(3):
        env.put(f"k{i}")
    deadline = time.monotonic() + 30
    while poller.stats.applied < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=10)

    # THEN they were applied and the loop ended
    assert not thread.is_alive()
    assert poller.stats.applied == 3
    assert env.target_items() == env.source_items()


def test_stream_arn_for_and_ensure_queue(ddb: Any, sqs: Any, unique: str) -> None:
    # GIVEN a table without a stream and one with a stream
    create_table(ddb, f"plain-{unique}")
    create_table(ddb, f"streamed-{unique}", stream=True)

    # THEN the stream ARN is found or a SetupError names the table
    with pytest.raises(SetupError, match=f"plain-{unique}"):
        stream_arn_of(ddb, f"plain-{unique}")
    with pytest.raises(SetupError, match="does not exist"):
        stream_arn_of(ddb, f"missing-{unique}")
    assert f"table/streamed-{unique}/stream/" in stream_arn_of(ddb, f"streamed-{unique}")

    # AND ensure_queue creates a queue once and finds it afterwards
    url = ensure_failure_queue(sqs, f"q-{unique}")[0]
    assert ensure_failure_queue(sqs, f"q-{unique}")[0] == url


# ---------------------------------------------------------------------------------------------
# Shard graph ordering (pure): a fake of DescribeStream / GetShardIterator / GetRecords.
# ---------------------------------------------------------------------------------------------


class FakeStreams:
    """Shards given as (shard_id, parent_id, closed, sequence numbers). DescribeStream pages by 2."""

    def __init__(self, shards: list[tuple[str, str | None, bool, list[str]]]) -> None:
        self.shards = {s[0]: s for s in shards}
        self.order = [s[0] for s in shards]

    def describe_stream(self, StreamArn: str, ExclusiveStartShardId: str | None = None) -> dict[str, Any]:
        start = self.order.index(ExclusiveStartShardId) + 1 if ExclusiveStartShardId else 0
        page = self.order[start : start + 2]
        listed = []
        for shard_id in page:
            _, parent, closed, seqs = self.shards[shard_id]
            entry: dict[str, Any] = {"ShardId": shard_id, "SequenceNumberRange": {"StartingSequenceNumber": seqs[0]}}
            if parent:
                entry["ParentShardId"] = parent
            if closed:
                entry["SequenceNumberRange"]["EndingSequenceNumber"] = seqs[-1]
            listed.append(entry)
        description: dict[str, Any] = {"StreamArn": StreamArn, "Shards": listed}
        if start + 2 < len(self.order):
            description["LastEvaluatedShardId"] = page[-1]
        return {"StreamDescription": description}

    def get_shard_iterator(
        self, StreamArn: str, ShardId: str, ShardIteratorType: str, SequenceNumber: str | None = None
    ) -> dict[str, Any]:
        seqs = self.shards[ShardId][3]
        position = {
            "TRIM_HORIZON": 0,
            "LATEST": len(seqs),
            "AFTER_SEQUENCE_NUMBER": seqs.index(SequenceNumber) + 1 if SequenceNumber in seqs else 0,
        }[ShardIteratorType]
        return {"ShardIterator": f"{ShardId}|{position}"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        shard_id, position_text = ShardIterator.split("|")
        _, _, closed, seqs = self.shards[shard_id]
        position = int(position_text)
        chunk = seqs[position : position + Limit]
        records = [
            {
                "eventName": "INSERT",
                "dynamodb": {
                    "SequenceNumber": seq,
                    "Keys": {"pk": {"S": f"{shard_id}:{seq}"}},
                    "ApproximateCreationDateTime": datetime.now(UTC),
                },
            }
            for seq in chunk
        ]
        end = position + len(chunk)
        next_iterator = None if closed and end >= len(seqs) else f"{shard_id}|{end}"
        return {"Records": records, "NextShardIterator": next_iterator}


class MemoryCheckpoints:
    def __init__(self) -> None:
        self.saved: dict[str, tuple[str, bool]] = {}

    def load_stream_checkpoint(self, source: str, shard_id: str) -> tuple[str, bool] | None:
        return self.saved.get(shard_id)

    def save_stream_checkpoint(self, source: str, shard_id: str, sequence: str, finished: bool = False) -> None:
        self.saved[shard_id] = (sequence, finished)


@pytest.mark.unit
def test_child_shards_start_only_after_their_parent_is_finished() -> None:
    # GIVEN a shard graph a → (b, c), b → d, and x whose parent has been trimmed, listed children first
    graph: list[tuple[str, str | None, bool, list[str]]] = [
        ("d", "b", False, ["700", "701"]),
        ("c", "a", False, ["600"]),
        ("x", "trimmed", False, ["900", "901", "902"]),
        ("b", "a", True, ["400", "401", "402"]),
        ("a", None, True, ["100", "101", "102", "103", "104"]),
    ]
    shard_of = {seq: shard_id for shard_id, _, _, seqs in graph for seq in seqs}
    delivered: list[str] = []

    def handler(event: Event, context: Any) -> Event:
        delivered.extend(sequences(event))
        return {"batchItemFailures": []}

    checkpoints = MemoryCheckpoints()
    poller = StreamPoller(
        cast(Any, FakeStreams(graph)),
        cast(Any, None),  # no SQS: no batch fails, so nothing is sent to the on-failure queue
        "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/l",
        "t",
        handler,
        batch_size=2,
        on_failure_queue_url="unused",
        checkpoints=checkpoints,
        retry_backoff=0,
    )

    # WHEN the stream is drained
    stats = poller.drain(timeout=10)

    # THEN every record came once, each shard in order, parents entirely before their children
    assert sorted(delivered) == sorted(shard_of)
    assert stats.applied == len(shard_of)
    position = {seq: i for i, seq in enumerate(delivered)}
    for shard_id, parent, _, seqs in graph:
        assert [position[s] for s in seqs] == sorted(position[s] for s in seqs)
        parent_seqs = next((p[3] for p in graph if p[0] == parent), [])
        if parent_seqs:
            assert max(position[s] for s in parent_seqs) < min(position[s] for s in seqs), shard_id
    assert position["900"] < position["100"] + 2  # the orphan did not wait: it started in the first round
    assert checkpoints.saved["a"] == ("104", True) and checkpoints.saved["b"] == ("402", True)
    assert checkpoints.saved["d"] == ("701", False)

    # AND a restarted poller delivers nothing again: finished parents are skipped, children resume
    delivered.clear()
    restarted = StreamPoller(
        cast(Any, FakeStreams(graph)),
        cast(Any, None),  # no SQS: no batch fails, so nothing is sent to the on-failure queue
        "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/l",
        "t",
        handler,
        batch_size=2,
        on_failure_queue_url="unused",
        checkpoints=checkpoints,
        retry_backoff=0,
    )
    assert restarted.drain(timeout=10).delivered == 0
    assert delivered == []


@pytest.mark.unit
def test_failed_index_follows_lambdas_rules() -> None:
    batch = [{"dynamodb": {"SequenceNumber": s}} for s in ("1", "2", "3")]
    assert failed_index(None, batch) is None
    assert failed_index({}, batch) is None
    assert failed_index({"batchItemFailures": []}, batch) is None
    assert failed_index({"batchItemFailures": None}, batch) is None
    assert failed_index({"batchItemFailures": [{"itemIdentifier": "3"}, {"itemIdentifier": "2"}]}, batch) == 1
    malformed_answers: list[Any] = [
        [],
        "x",
        {"batchItemFailures": "1"},
        {"batchItemFailures": [{"itemIdentifier": ""}]},
    ]
    for malformed in malformed_answers:
        with pytest.raises(ValueError):
            failed_index(malformed, batch)


def test_redelivered_batches_change_nothing(env: Env) -> None:
    # GIVEN a poller told to deliver handled batches again, and a hot key with deletes in between
    from ferry_dev.anomalies import DeliveryAnomalies

    for i in range(30):
        env.put("hot", v={"N": str(i)})
        env.put(f"cold-{i % 5}", v={"N": str(i)})
        if i % 7 == 3:
            env.ddb.delete_item(TableName=env.source, Key={"pk": {"S": f"cold-{i % 5}"}})
    env.store.set_phase(env.source, "live")
    recorder = Recorder()
    # WHEN it drains the stream
    stats = env.poller(recorder, batch_size=6, anomalies=DeliveryAnomalies(redeliver=0.4, seed=2)).drain(timeout=60)
    # THEN some records reached the handler twice, in order each time, and the target equals the source
    assert stats.delivered > stats.applied
    assert env.target_items() == env.source_items()


def test_a_held_poller_reads_nothing_and_commits_nothing_until_the_release(env: Env) -> None:
    # GIVEN a replay table's poller behind a closed gate, and changes in the stream
    from ferry_dev.hold import ReleaseGate

    env.put("a")
    env.put("b")
    released = False
    calls: list[str] = []
    env.streams.meta.events.register("before-call.dynamodbstreams", lambda model, **_: calls.append(model.name))
    recorder = Recorder(lambda event, context: {"batchItemFailures": []})
    poller = env.poller(recorder, gate=ReleaseGate(lambda: released, recheck=0))
    # WHEN it polls while held
    for _ in range(3):
        poller.poll_once()
    poller.drain(timeout=5)
    # THEN it made no stream request, delivered nothing and committed no checkpoint
    assert calls == [] and recorder.delivered == []
    assert env.store.load_stream_checkpoint(env.source, env.shard_id()) is None
    # WHEN the copy is released THEN it applies everything from the start of the stream, and times its catch-up
    released = True
    env.put("c")
    poller.drain(timeout=30)
    assert [key for keys in recorder.keys for key in keys] == ["a", "b", "c"]
    assert poller.gate is not None and poller.gate.catch_up is not None and poller.gate.catch_up.applied == 3
