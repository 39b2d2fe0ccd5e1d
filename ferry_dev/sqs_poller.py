"""A local SQS poller that behaves like Lambda's SQS event-source mapping.

It feeds the same handler Lambda would (``handler(event, context) -> {"batchItemFailures": [...]}``)
with the same event Lambda builds, and reacts to the answer the way a mapping with
``ReportBatchItemFailures`` does:

- ReceiveMessage (up to ``batch_size``, every system and message attribute), one handler call
  per received batch.
- Empty or null ``batchItemFailures`` (or a null response) → every message is deleted.
- Listed failures → the others are deleted; the listed ones stay in the queue and come back
  after their visibility timeout (shortened to ``retry_delay`` when given, so tests are fast).
- A handler exception or a response Lambda cannot read (not an object, an ``itemIdentifier``
  that is empty or not in the batch) → no message is deleted: the whole batch is retried.
- The dead-letter queue is the queue's own RedrivePolicy: SQS moves a message that has been
  received ``maxReceiveCount`` times to it on a later receive. moto 5.x does exactly that inside
  ReceiveMessage (checked in ``moto/sqs/models.py``), so the poller relies on it and does not
  emulate it; a message that always fails therefore ends in the DLQ, never in an endless loop.

The handler must be idempotent: SQS delivers at least once, and a failed message is delivered
again. Only stdlib and boto3/botocore are used here.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from ferry_dev.anomalies import DeliveryAnomalies
from ferry_dev.hold import ReleaseGate
from ferry_dev.stats import LagStatsMixin
from ferry_dev.stream_poller import LocalContext

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType
    from mypy_boto3_sqs.type_defs import (
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
        DeleteMessageBatchRequestEntryTypeDef,
    )

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]
Message = dict[str, Any]
MAX_BATCH = 10  # SQS ReceiveMessage / DeleteMessageBatch limit
# The system attributes Lambda passes in ``attributes`` (the last five only when SQS sets them).
LAMBDA_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "AWSTraceHeader",
    "MessageGroupId",
    "MessageDeduplicationId",
    "SequenceNumber",
    "DeadLetterQueueSourceArn",
)
ALWAYS_PRESENT = LAMBDA_ATTRIBUTES[:4]


@dataclass
class SqsPollStats(LagStatsMixin):
    """Counters of one round (``poll_once``), of a ``drain`` or of a poller's life (``SqsPoller.stats``)."""

    delivered: int = 0  # messages handed to the handler, re-deliveries included
    succeeded: int = 0  # messages deleted after a successful invocation
    failed: int = 0  # deliveries that failed (left in the queue to be retried or dead-lettered)
    batches: int = 0  # handler invocations
    lags: list[float] = field(default_factory=list)  # per succeeded message: success time - SentTimestamp

    def add(self, other: SqsPollStats) -> None:
        self.delivered += other.delivered
        self.succeeded += other.succeeded
        self.failed += other.failed
        self.batches += other.batches
        self.lags.extend(other.lags)


def region_of_arn(arn: str) -> str:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 else ""


def _lambda_message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """SQS API message attributes (``StringValue``/``BinaryValue`` bytes) in Lambda's form
    (camelCase, binaries as base64 text, the list fields always present)."""
    out: dict[str, Any] = {}
    for name, value in attributes.items():
        entry: dict[str, Any] = {
            "stringListValues": list(value.get("StringListValues") or []),
            "binaryListValues": [base64.b64encode(b).decode("ascii") for b in value.get("BinaryListValues") or []],
            "dataType": value.get("DataType"),
        }
        if "StringValue" in value:
            entry["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            binary = value["BinaryValue"]
            entry["binaryValue"] = base64.b64encode(binary if isinstance(binary, bytes) else bytes(binary)).decode(
                "ascii"
            )
        out[name] = entry
    return out


def lambda_record(message: Message, queue_arn: str) -> dict[str, Any]:
    """One ReceiveMessage message as Lambda delivers it to the function."""
    system = message.get("Attributes") or {}
    attributes = {name: system[name] for name in LAMBDA_ATTRIBUTES if name in system}
    for name in ALWAYS_PRESENT:
        attributes.setdefault(name, "")
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": attributes,
        "messageAttributes": _lambda_message_attributes(message.get("MessageAttributes") or {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region_of_arn(queue_arn),
    }


def lambda_event(messages: list[Message], queue_arn: str) -> dict[str, Any]:
    """The event Lambda passes for a batch of SQS messages (after a JSON round trip, as Lambda does)."""
    event = {"Records": [lambda_record(m, queue_arn) for m in messages]}
    loaded: dict[str, Any] = json.loads(json.dumps(event))
    return loaded


def failed_message_ids(response: Any, message_ids: list[str]) -> set[str]:
    """The message ids the handler reported failed; empty when the batch succeeded.

    Lambda's rules: a null/empty response or an empty/null ``batchItemFailures`` is success;
    anything it cannot read (not an object, an identifier that is empty, null or not in the
    batch) fails the whole batch. Raises ValueError for those.
    """
    if response is None:
        return set()
    if not isinstance(response, dict):
        raise ValueError(f"response is a {type(response).__name__}, not an object")
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        raise ValueError("batchItemFailures is not a list")
    known = set(message_ids)
    failed: set[str] = set()
    for entry in failures:
        identifier = entry.get("itemIdentifier") if isinstance(entry, dict) else None
        if not isinstance(identifier, str) or identifier not in known:
            raise ValueError("a batchItemFailures entry has no itemIdentifier of this batch")
        failed.add(identifier)
    return failed


class SqsPoller:
    """Polls one SQS queue and invokes ``handler`` like Lambda's SQS event-source mapping."""

    def __init__(
        self,
        sqs: SQSClient,
        queue_url: str,
        queue_arn: str,
        handler: Handler,
        *,
        batch_size: int = 10,
        visibility_timeout: int = 120,
        wait_seconds: int = 1,
        retry_delay: int | None = None,
        anomalies: DeliveryAnomalies | None = None,
        function_name: str = "bucket_events",
        function_timeout: float = 900.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        gate: ReleaseGate | None = None,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}, got {batch_size}")
        if not 0 <= wait_seconds <= 20:
            raise ValueError(f"wait_seconds must be between 0 and 20, got {wait_seconds}")
        if not 0 <= visibility_timeout <= 43200:
            raise ValueError(f"visibility_timeout must be between 0 and 43200, got {visibility_timeout}")
        if retry_delay is not None and not 0 <= retry_delay <= visibility_timeout:
            raise ValueError(f"retry_delay must be between 0 and visibility_timeout, got {retry_delay}")
        self.sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.handler = handler
        self.batch_size = batch_size
        self.visibility_timeout = visibility_timeout
        self.wait_seconds = wait_seconds
        self.retry_delay = retry_delay
        self.anomalies = anomalies
        self._held_until = 0.0
        self.function_name = function_name
        self.function_timeout = function_timeout
        self.clock = clock
        self.sleep = sleep
        self.gate = gate  # replay buckets' hold: nothing is received until every copy is released
        self.stats = SqsPollStats()

    # public API ---------------------------------------------------------------------------
    def poll_once(self, wait_seconds: int | None = None) -> SqsPollStats:
        """One ReceiveMessage and, if it returned messages, one handler invocation. While the gate is
        closed (the buckets' events are held), nothing is received."""
        round_stats = SqsPollStats()
        if self.held():
            return round_stats
        messages = self._receive(self.wait_seconds if wait_seconds is None else wait_seconds)
        if messages:
            self._deliver(messages, round_stats)
        self.stats.add(round_stats)
        if self.gate is not None and not messages:
            self.gate.round_done(self.pending() > 0, self.stats.succeeded)
        return round_stats

    def held(self) -> bool:
        return self.gate is not None and not self.gate.is_open(self.stats.succeeded)

    def run(self, stop_event: threading.Event, idle_sleep: float = 1.0) -> None:
        """Poll until ``stop_event`` is set; wait ``idle_sleep`` after a round that received nothing."""
        log.info("sqs poller started for %s", self.queue_arn)
        while not stop_event.is_set():
            try:
                busy = self.poll_once().delivered > 0
            except Exception:
                log.exception("poll round for %s failed; retrying", self.queue_arn)
                busy = False
            if not busy:
                stop_event.wait(idle_sleep)
        log.info("sqs poller stopped for %s", self.queue_arn)

    def drain(self, timeout: float = 60.0, idle_sleep: float = 0.2) -> SqsPollStats:
        """Poll until a receive returns nothing and no message is left in the queue (visible,
        in flight or delayed). Raises TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        total = SqsPollStats()
        if self.gate is not None:
            self.gate.ask_afresh()  # a release just before the drain must not read as "held, nothing to drain"
        while True:
            if self.held():
                log.info("%s: held (a replay copy is not released yet): nothing to drain", self.queue_arn)
                return total
            round_stats = self.poll_once(wait_seconds=0)
            total.add(round_stats)
            if round_stats.delivered == 0:
                remaining = self.pending()
                if remaining == 0 and time.monotonic() >= self._held_until:
                    return total
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"queue {self.queue_arn} not drained after {timeout}s ({remaining} messages left)"
                    )
                self.sleep(idle_sleep)
            elif time.monotonic() > deadline:
                raise TimeoutError(f"queue {self.queue_arn} not drained after {timeout}s (still receiving)")

    def pending(self) -> int:
        """Messages visible, in flight (not visible) or delayed, by the queue's approximate counts."""
        names: list[QueueAttributeNameType] = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=names)["Attributes"]
        return sum(int(attributes.get(name, "0")) for name in names)

    # delivery -----------------------------------------------------------------------------
    def _receive(self, wait_seconds: int) -> list[Message]:
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=self.visibility_timeout,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return cast("list[Message]", response.get("Messages", []))

    def _deliver(self, messages: list[Message], stats: SqsPollStats) -> None:
        anomalies = self.anomalies
        if anomalies is not None:
            late = [m for m in messages if anomalies.chance(anomalies.delay)]
            if late:  # delivered late: back in the queue for a moment, after younger messages
                self._change_visibility(late, round(anomalies.uniform(1, 3)))
                messages = [m for m in messages if m not in late]
            if anomalies.reorder:
                messages = list(messages)
                anomalies.shuffle(messages)
            if not messages:
                return
        context = LocalContext(self.function_name, str(uuid.uuid4()), time.monotonic() + self.function_timeout)
        event = lambda_event(messages, self.queue_arn)
        ids = [m["MessageId"] for m in messages]
        stats.batches += 1
        stats.delivered += len(messages)
        error: str | None = None
        try:
            response = self.handler(event, context)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            failed = set(ids)
        else:
            try:
                failed = failed_message_ids(response, ids)
            except ValueError as exc:
                error = f"malformed response: {exc}"
                failed = set(ids)

        done = [m for m in messages if m["MessageId"] not in failed]
        retry = [m for m in messages if m["MessageId"] in failed]
        if done and anomalies is not None:
            again = [m for m in done if anomalies.chance(anomalies.duplicate)]
            if again:  # at-least-once delivery: these come back although they succeeded
                self._change_visibility(again, 0)
                done = [m for m in done if m not in again]
        if done:
            self._delete(done)
            now = self.clock()
            for message in done:
                sent = (message.get("Attributes") or {}).get("SentTimestamp")
                if sent:
                    stats.lags.append(max(0.0, now - int(sent) / 1000))
            stats.succeeded += len(done)
        if retry:
            stats.failed += len(retry)
            log.warning(
                "%s: %d of %d messages failed%s; they return after %ss",
                self.queue_arn,
                len(retry),
                len(messages),
                f" [{error}]" if error else "",
                self.visibility_timeout if self.retry_delay is None else self.retry_delay,
            )
            if self.retry_delay is not None:
                self._change_visibility(retry, self.retry_delay)

    def _delete(self, messages: list[Message]) -> None:
        for start in range(0, len(messages), MAX_BATCH):
            chunk = messages[start : start + MAX_BATCH]
            entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
            ]
            response = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            for failure in response.get("Failed", []):
                # The message comes back and is handled again: harmless for an idempotent handler.
                message = chunk[int(failure["Id"])]
                log.warning(
                    "%s: could not delete message %s (%s); it will be delivered again",
                    self.queue_arn,
                    message["MessageId"],
                    failure.get("Code"),
                )

    def _change_visibility(self, messages: list[Message], seconds: int) -> None:
        # Messages put back are not reliably counted as in flight by the emulator: drain waits for
        # them by the clock as well (one second of margin).
        self._held_until = max(self._held_until, time.monotonic() + seconds + 1.0)
        for start in range(0, len(messages), MAX_BATCH):
            chunk = messages[start : start + MAX_BATCH]
            entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": seconds}
                for i, m in enumerate(chunk)
            ]
            response = self.sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)
            for failure in response.get("Failed", []):
                log.warning("%s: could not shorten the visibility of a failed message (%s)", self.queue_arn, failure)
