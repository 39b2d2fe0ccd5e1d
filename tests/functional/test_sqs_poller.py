"""The local SQS poller against the emulator's SQS, with small recording handlers.

What it must do is what Lambda's SQS event-source mapping with ReportBatchItemFailures does:
build the same event, delete what succeeded, leave what failed to come back, and let the
queue's RedrivePolicy move a message that keeps failing to the dead-letter queue.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from ferry.buckets.setup import ensure_event_queues
from ferry_dev.sqs_poller import SqsPoller, SqsPollStats, failed_message_ids, lambda_event

pytestmark = pytest.mark.functional

Event = dict[str, Any]


@dataclass
class Queues:
    sqs: Any
    name: str
    url: str
    arn: str
    dlq_url: str

    def send(self, *bodies: str, **kwargs: Any) -> list[str]:
        return [self.sqs.send_message(QueueUrl=self.url, MessageBody=b, **kwargs)["MessageId"] for b in bodies]

    def poller(self, handler: Callable[[Event, Any], Any], **options: Any) -> SqsPoller:
        settings: dict[str, Any] = {"batch_size": 10, "visibility_timeout": 30, "wait_seconds": 0, "retry_delay": 0}
        settings.update(options)
        return SqsPoller(self.sqs, self.url, self.arn, handler, **settings)

    def dlq_bodies(self) -> list[str]:
        bodies: list[str] = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            if not got.get("Messages"):
                return sorted(bodies)
            bodies.extend(m["Body"] for m in got["Messages"])


@pytest.fixture
def queues(sqs: Any, unique: str) -> Queues:
    name = f"events-{unique}"
    url, arn, dlq_url = ensure_event_queues(sqs, name, max_receive_count=3, visibility_timeout=30)
    return Queues(sqs, name, url, arn, dlq_url)


class Recorder:
    """Remembers each invocation's bodies, then answers with ``respond(event)``."""

    def __init__(self, respond: Callable[[Event], Any] | None = None) -> None:
        self.respond = respond
        self.events: list[Event] = []

    def __call__(self, event: Event, context: Any) -> Any:
        self.events.append(event)
        assert context.function_name == "bucket_events" and context.get_remaining_time_in_millis() > 0
        return self.respond(event) if self.respond else {"batchItemFailures": []}

    @property
    def bodies(self) -> list[list[str]]:
        return [[r["body"] for r in e["Records"]] for e in self.events]

    @property
    def delivered(self) -> list[str]:
        return [b for call in self.bodies for b in call]


def fail_bodies(*bad: str) -> Callable[[Event], Any]:
    def respond(event: Event) -> Any:
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] in bad]}

    return respond


def test_the_event_is_the_one_lambda_builds(queues: Queues) -> None:
    # GIVEN a message with string, number and binary message attributes
    body = json.dumps({"hello": "wörld"})
    (message_id,) = queues.send(
        body,
        MessageAttributes={
            "text": {"DataType": "String", "StringValue": "ä b"},
            "count": {"DataType": "Number", "StringValue": "42"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff"},
        },
    )
    recorder = Recorder()

    # WHEN the poller delivers it
    stats = queues.poller(recorder).poll_once()

    # THEN the handler got Lambda's SQS event, field for field
    (event,) = recorder.events
    (record,) = event["Records"]
    assert set(record) == {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["messageId"] == message_id
    assert record["body"] == body
    assert record["md5OfBody"] == hashlib.md5(body.encode()).hexdigest()
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queues.arn
    assert record["awsRegion"] == "us-east-1"
    assert record["receiptHandle"]
    attributes = record["attributes"]
    assert set(attributes) == {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    }
    assert attributes["ApproximateReceiveCount"] == "1"
    assert abs(int(attributes["SentTimestamp"]) / 1000 - time.time()) < 60
    assert record["messageAttributes"] == {
        "text": {"stringValue": "ä b", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
        "count": {"stringValue": "42", "stringListValues": [], "binaryListValues": [], "dataType": "Number"},
        "blob": {
            "binaryValue": base64.b64encode(b"\x00\xff").decode(),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "Binary",
        },
    }
    # AND the message was deleted: nothing left, nothing in flight
    assert (stats.delivered, stats.succeeded, stats.failed, stats.batches) == (1, 1, 0, 1)
    assert queues.poller(recorder).pending() == 0


def test_batches_hold_at_most_batch_size_and_everything_is_delivered_once(queues: Queues) -> None:
    bodies = [f"m-{i:02d}" for i in range(23)]
    queues.send(*bodies)
    recorder = Recorder()

    stats = queues.poller(recorder, batch_size=4).drain(timeout=30)

    assert all(1 <= len(call) <= 4 for call in recorder.bodies)
    assert sorted(recorder.delivered) == bodies
    assert (stats.delivered, stats.succeeded, stats.failed) == (23, 23, 0)
    assert stats.batches == len(recorder.events) >= 6
    assert len(stats.lags) == 23 and all(lag >= 0 for lag in stats.lags)


def test_reported_failures_are_retried_and_the_rest_deleted(queues: Queues) -> None:
    # GIVEN five messages, one of which fails twice and then succeeds
    queues.send("a", "b", "c", "d", "e")
    attempts: dict[str, int] = {}

    def respond(event: Event) -> Any:
        failures = []
        for r in event["Records"]:
            attempts[r["body"]] = attempts.get(r["body"], 0) + 1
            assert r["attributes"]["ApproximateReceiveCount"] == str(attempts[r["body"]])
            if r["body"] == "c" and attempts["c"] <= 2:
                failures.append({"itemIdentifier": r["messageId"]})
        return {"batchItemFailures": failures}

    recorder = Recorder(respond)

    # WHEN the queue is drained (retry delay 0: failed messages come back at once)
    stats = queues.poller(recorder).drain(timeout=30)

    # THEN only "c" was delivered again, the others once; nothing is left or dead-lettered
    assert attempts == {"a": 1, "b": 1, "c": 3, "d": 1, "e": 1}
    assert (stats.delivered, stats.succeeded, stats.failed) == (7, 5, 2)
    assert queues.dlq_bodies() == []


def test_a_message_that_always_fails_ends_in_the_dlq_after_max_receive_count(queues: Queues) -> None:
    # GIVEN a poison message among good ones, and a queue with maxReceiveCount 3
    queues.send("good-1", "poison", "good-2")
    recorder = Recorder(fail_bodies("poison"))

    # WHEN the queue is drained
    stats = queues.poller(recorder).drain(timeout=30)

    # THEN the poison message was received exactly 3 times, then SQS moved it to the DLQ (no endless loop)
    assert recorder.delivered.count("poison") == 3
    assert recorder.delivered.count("good-1") == recorder.delivered.count("good-2") == 1
    assert (stats.succeeded, stats.failed) == (2, 3)
    assert queues.dlq_bodies() == ["poison"]
    assert queues.poller(recorder).pending() == 0


def test_a_handler_exception_retries_the_whole_batch(queues: Queues) -> None:
    queues.send("x", "y", "z")
    calls = {"n": 0}

    def respond(event: Event) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("function crashed")
        return {"batchItemFailures": []}

    recorder = Recorder(respond)
    stats = queues.poller(recorder).drain(timeout=30)

    assert sorted(recorder.bodies[0]) == ["x", "y", "z"]
    assert sorted(recorder.delivered) == ["x", "x", "y", "y", "z", "z"]
    redelivered = [r for e in recorder.events[1:] for r in e["Records"]]
    assert {r["attributes"]["ApproximateReceiveCount"] for r in redelivered} == {"2"}
    assert (stats.succeeded, stats.failed) == (3, 3)


@pytest.mark.parametrize(
    "response",
    [
        pytest.param("not an object", id="a-string"),
        pytest.param({"batchItemFailures": "x"}, id="failures-not-a-list"),
        pytest.param({"batchItemFailures": [{"itemIdentifier": ""}]}, id="empty-identifier"),
        pytest.param({"batchItemFailures": [{"itemIdentifier": None}]}, id="null-identifier"),
        pytest.param({"batchItemFailures": [{"id": "x"}]}, id="bad-key-name"),
        pytest.param({"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]}, id="unknown-identifier"),
    ],
)
def test_a_malformed_response_retries_the_whole_batch(queues: Queues, response: Any) -> None:
    queues.send("p", "q")
    answers = iter([response])
    recorder = Recorder(lambda event: next(answers, None))  # malformed once, then a null response (success)

    stats = queues.poller(recorder).drain(timeout=30)

    assert sorted(recorder.delivered) == ["p", "p", "q", "q"]
    assert (stats.succeeded, stats.failed) == (2, 2)


@pytest.mark.parametrize(
    "response", [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}], ids=["null", "empty", "[]", "none"]
)
def test_empty_answers_are_success(queues: Queues, response: Any) -> None:
    queues.send("ok")
    stats = queues.poller(Recorder(lambda event: response)).drain(timeout=30)
    assert (stats.delivered, stats.succeeded, stats.failed) == (1, 1, 0)


def test_without_a_retry_delay_a_failed_message_stays_in_flight_and_drain_times_out(queues: Queues) -> None:
    # GIVEN a failing message and the queue's own visibility timeout (30 s) as the retry delay
    queues.send("slow")
    poller = queues.poller(Recorder(fail_bodies("slow")), retry_delay=None)

    # WHEN draining for a second, THEN drain sees the message in flight and gives up
    with pytest.raises(TimeoutError, match="1 messages left"):
        poller.drain(timeout=1, idle_sleep=0.1)
    assert poller.stats.failed == 1 and poller.stats.succeeded == 0


def test_lags_are_measured_from_sent_timestamp_with_the_injected_clock(queues: Queues) -> None:
    queues.send("l1", "l2")
    poller = queues.poller(Recorder(), clock=lambda: time.time() + 100)
    stats = poller.drain(timeout=30)
    assert len(stats.lags) == 2 and all(100 <= lag < 160 for lag in stats.lags)
    assert stats.lag_p50 is not None and stats.lag_p99 is not None and stats.lag_p50 <= stats.lag_p99
    assert poller.stats.lags == stats.lags


def test_run_polls_until_stopped(queues: Queues) -> None:
    recorder = Recorder()
    poller = queues.poller(recorder)
    stop = threading.Event()
    thread = threading.Thread(target=poller.run, args=(stop, 0.05), daemon=True)
    thread.start()
    try:
        queues.send("r1", "r2", "r3")
        deadline = time.monotonic() + 20
        while len(recorder.delivered) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert sorted(recorder.delivered) == ["r1", "r2", "r3"]
    assert poller.stats.succeeded == 3


def test_ensure_event_queues_is_idempotent_and_sets_the_redrive_policy(sqs: Any, unique: str) -> None:
    # GIVEN queues created once
    name = f"ensure-{unique}"
    first = ensure_event_queues(sqs, name, max_receive_count=5, visibility_timeout=120)

    # WHEN ensured again with other settings
    second = ensure_event_queues(sqs, name, max_receive_count=2, visibility_timeout=60)

    # THEN the same queues, brought up to date
    assert first == second
    url, arn, dlq_url = second
    assert arn.endswith(f":{name}") and dlq_url.endswith(f"/{name}-dlq")
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    dlq = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"]
    assert json.loads(attributes["RedrivePolicy"]) == {"deadLetterTargetArn": dlq["QueueArn"], "maxReceiveCount": 2}
    assert attributes["VisibilityTimeout"] == "60"
    assert attributes["SqsManagedSseEnabled"] == dlq["SqsManagedSseEnabled"] == "true"
    assert dlq["MessageRetentionPeriod"] == str(14 * 24 * 3600)


def test_invalid_settings_are_refused(queues: Queues) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        queues.poller(Recorder(), batch_size=11)
    with pytest.raises(ValueError, match="retry_delay"):
        queues.poller(Recorder(), retry_delay=31)
    with pytest.raises(ValueError, match="max_receive_count"):
        ensure_event_queues(queues.sqs, "x", max_receive_count=0, visibility_timeout=30)


# --- pure helpers (no I/O) -----------------------------------------------------------------------


def test_failed_message_ids_follows_lambdas_rules() -> None:
    ids = ["a", "b"]
    assert failed_message_ids(None, ids) == set()
    assert failed_message_ids({"batchItemFailures": []}, ids) == set()
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "b"}]}, ids) == {"b"}
    bad: Any
    for bad in (["a"], {"batchItemFailures": [{"itemIdentifier": "c"}]}, {"batchItemFailures": {}}):
        with pytest.raises(ValueError):
            failed_message_ids(bad, ids)


def test_lambda_event_survives_a_json_round_trip_and_keeps_fifo_attributes() -> None:
    message = {
        "MessageId": "id-1",
        "ReceiptHandle": "rh",
        "Body": "b",
        "MD5OfBody": "92eb5ffee6ae2fec3ad71c777531578f",
        "Attributes": {
            "ApproximateReceiveCount": "2",
            "SentTimestamp": "1",
            "SenderId": "s",
            "ApproximateFirstReceiveTimestamp": "2",
            "MessageGroupId": "g",
            "SequenceNumber": "18849496460467696128",
            "SomethingNew": "dropped",
        },
    }
    (record,) = lambda_event([message], "arn:aws:sqs:eu-west-1:123456789012:q")["Records"]
    assert record["attributes"] == {
        "ApproximateReceiveCount": "2",
        "SentTimestamp": "1",
        "SenderId": "s",
        "ApproximateFirstReceiveTimestamp": "2",
        "MessageGroupId": "g",
        "SequenceNumber": "18849496460467696128",
    }
    assert record["awsRegion"] == "eu-west-1" and record["messageAttributes"] == {}


def test_stats_add_up() -> None:
    total = SqsPollStats()
    total.add(SqsPollStats(delivered=3, succeeded=2, failed=1, batches=1, lags=[1.0, 3.0]))
    total.add(SqsPollStats(delivered=1, succeeded=1, batches=1, lags=[2.0]))
    assert (total.delivered, total.succeeded, total.failed, total.batches) == (4, 3, 1, 2)
    assert total.lag_p50 == 2.0 and total.lag_p99 == 3.0
    assert SqsPollStats().lag_p50 is None


def test_delivery_anomalies_duplicate_delay_and_reorder_but_lose_nothing(queues: Queues) -> None:
    # GIVEN a poller told to duplicate, delay and reorder deliveries
    from ferry_dev.anomalies import DeliveryAnomalies

    bodies = [f"a-{i:02d}" for i in range(30)]
    # receive counts grow with every duplicate and delay: a redrive policy of 3 would move some to
    # the DLQ (as it would on AWS), so this queue allows more receives
    queues.sqs.set_queue_attributes(
        QueueUrl=queues.url,
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": queues.arn + "-dlq", "maxReceiveCount": 50})},
    )
    queues.send(*bodies)
    recorder = Recorder()
    anomalies = DeliveryAnomalies(duplicate=0.3, delay=0.2, reorder=True, seed=4)
    # WHEN it drains the queue
    stats = queues.poller(recorder, batch_size=10, anomalies=anomalies).drain(timeout=60)
    # THEN every message was handled, some more than once, and the queue is empty
    assert set(recorder.delivered) == set(bodies)
    assert len(recorder.delivered) > len(bodies), "no duplicate was delivered"
    assert stats.succeeded == len(bodies)
    attrs = queues.sqs.get_queue_attributes(QueueUrl=queues.url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "0" and attrs["ApproximateNumberOfMessagesNotVisible"] == "0"
