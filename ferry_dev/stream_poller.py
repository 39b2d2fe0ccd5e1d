"""A local DynamoDB-stream poller that behaves like Lambda's event-source mapping.

It feeds the same handler Lambda would (``handler(event, context) -> {"batchItemFailures": [...]}``)
with the same event Lambda builds, and reacts to the answer the way a mapping with
``ReportBatchItemFailures``, a finite ``MaximumRetryAttempts`` and an SQS on-failure destination does:

- Per shard, records in sequence order, at most one batch per shard in flight; a child shard
  starts only after its parent is fully processed (closed and read to its end).
- Empty ``batchItemFailures`` → the batch is done and the checkpoint moves past it.
- Failures → the records before the lowest failed sequence number are done; the next attempt
  starts at it (so later records are delivered again: the handler must be idempotent).
- A handler exception or a malformed response → the whole batch is retried.
- After ``max_retries`` retries of the same first failing record it is sent to the on-failure
  queue (keys and batch info only, never the item image) and the shard moves on past it.

Checkpoints (last processed sequence number per shard) go to an optional store, normally
:class:`ferry.tables.state.StateStore`; a restarted poller resumes ``AFTER_SEQUENCE_NUMBER``, so it
re-delivers at most the batch that was in flight. Only stdlib and boto3/botocore are used here.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

from ferry.aws import get_records
from ferry.errors import ShardIteratorExpired
from ferry.wire import encode_lambda_value, key_text
from ferry_dev.anomalies import DeliveryAnomalies
from ferry_dev.hold import ReleaseGate
from ferry_dev.stats import LagStatsMixin

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]
Record = dict[str, Any]
STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST")
GET_RECORDS_LIMIT = 1000  # DynamoDB Streams' maximum Limit per GetRecords call
ERROR_TEXT_LIMIT = 1000


class CheckpointStore(Protocol):
    """What the poller needs from :class:`ferry.tables.state.StateStore`."""

    def load_stream_checkpoint(self, source: str, shard_id: str) -> tuple[str, bool] | None: ...

    def save_stream_checkpoint(self, source: str, shard_id: str, sequence: str, finished: bool = False) -> None: ...


@dataclass
class PollStats(LagStatsMixin):
    """Counters of one round (``poll_once``) or of a poller's whole life (``StreamPoller.stats``)."""

    delivered: int = 0  # records handed to the handler, re-deliveries included
    applied: int = 0  # records whose batch completed successfully (each counted once)
    batches: int = 0  # handler invocations
    retries: int = 0  # failed invocations that were retried
    dead_lettered: int = 0  # records sent to the on-failure queue
    lags: list[float] = field(default_factory=list)  # per applied record: apply time - ApproximateCreationDateTime

    def add(self, other: PollStats) -> None:
        self.delivered += other.delivered
        self.applied += other.applied
        self.batches += other.batches
        self.retries += other.retries
        self.dead_lettered += other.dead_lettered
        self.lags.extend(other.lags)


@dataclass
class LocalContext:
    """The parts of Lambda's context object that handlers use."""

    function_name: str
    aws_request_id: str
    deadline: float  # time.monotonic() at which the invocation would time out
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024

    @property
    def invoked_function_arn(self) -> str:
        return f"local:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@dataclass
class _Shard:
    shard_id: str
    parent_id: str | None
    closed: bool  # has an EndingSequenceNumber
    initial: bool  # present at the poller's first look at the stream (starting_position applies)
    checkpoint: str | None = None  # last processed sequence number
    finished: bool = False
    iterator: str | None = None
    exhausted: bool = False  # GetRecords answered without NextShardIterator
    buffer: list[Record] = field(default_factory=list)  # read, not yet processed, in order
    failing_sequence: str | None = None
    failures: int = 0
    last_error: str | None = None
    last_function_error: bool = False


def _sequence(record: Record) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


def _epoch(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def lambda_record(record: Record, stream_arn: str) -> Record:
    """One GetRecords record as Lambda delivers it: ``eventSourceARN`` added, binaries as base64
    text at every depth, ``ApproximateCreationDateTime`` as epoch seconds."""
    change = dict(record.get("dynamodb") or {})
    created = _epoch(change.get("ApproximateCreationDateTime"))
    if created is not None:
        change["ApproximateCreationDateTime"] = created
    out: Record = encode_lambda_value({**record, "dynamodb": change})
    out["eventSourceARN"] = stream_arn
    return out


def lambda_event(records: list[Record], stream_arn: str) -> dict[str, Any]:
    """The event Lambda passes for a batch of stream records (after a JSON round trip, as Lambda does)."""
    event = {"Records": [lambda_record(r, stream_arn) for r in records]}
    loaded: dict[str, Any] = json.loads(json.dumps(event))
    return loaded


def failed_index(response: Any, batch: list[Record]) -> int | None:
    """Index of the lowest failed record in ``batch``, None when the batch succeeded.

    Lambda's rules: a null/empty response or an empty/null ``batchItemFailures`` is success;
    anything it cannot read (not an object, an identifier that is empty or not in the batch)
    fails the whole batch. Raises ValueError for those.
    """
    if response is None:
        return None
    if not isinstance(response, dict):
        raise ValueError(f"response is a {type(response).__name__}, not an object")
    failures = response.get("batchItemFailures")
    if not failures:
        if failures is None or isinstance(failures, list):
            return None
        raise ValueError("batchItemFailures is not a list")
    if not isinstance(failures, list):
        raise ValueError("batchItemFailures is not a list")
    positions = {_sequence(r): i for i, r in enumerate(batch)}
    found: list[int] = []
    for entry in failures:
        identifier = entry.get("itemIdentifier") if isinstance(entry, dict) else None
        if not isinstance(identifier, str) or identifier not in positions:
            raise ValueError("a batchItemFailures entry has no itemIdentifier of this batch")
        found.append(positions[identifier])
    return min(found)


class StreamPoller:
    """Polls one DynamoDB stream and invokes ``handler`` like Lambda's event-source mapping."""

    def __init__(
        self,
        streams: DynamoDBStreamsClient,
        sqs: SQSClient,
        stream_arn: str,
        source_table: str,
        handler: Handler,
        *,
        batch_size: int = 100,
        starting_position: str = "TRIM_HORIZON",
        max_retries: int = 3,
        on_failure_queue_url: str,
        checkpoints: CheckpointStore | None = None,
        retry_backoff: float = 0.5,
        anomalies: DeliveryAnomalies | None = None,
        max_backoff: float = 10.0,
        function_name: str = "table_stream",
        function_timeout: float = 900.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        gate: ReleaseGate | None = None,
    ) -> None:
        if starting_position not in STARTING_POSITIONS:
            raise ValueError(f"starting_position must be one of {STARTING_POSITIONS}, got {starting_position!r}")
        if not 1 <= batch_size <= 10_000:
            raise ValueError(f"batch_size must be between 1 and 10000, got {batch_size}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be finite and >= 0, got {max_retries}")
        self.streams = streams
        self.sqs = sqs
        self.stream_arn = stream_arn
        self.source_table = source_table
        self.handler = handler
        self.batch_size = batch_size
        self.starting_position = starting_position
        self.max_retries = max_retries
        self.on_failure_queue_url = on_failure_queue_url
        self.checkpoints = checkpoints
        self.retry_backoff = retry_backoff
        self.anomalies = anomalies
        self.max_backoff = max_backoff
        self.function_name = function_name
        self.function_timeout = function_timeout
        self.clock = clock
        self.sleep = sleep
        self.gate = gate  # a replay table's hold: nothing is read until its copy is released
        self.stats = PollStats()
        self._shards: dict[str, _Shard] = {}  # in discovery order
        self._discovered = False
        self._busy = False  # did the last round read, deliver or finish anything?

    # public API ---------------------------------------------------------------------------
    def poll_once(self) -> PollStats:
        """One round over every ready shard: at most one batch per shard. While the gate is closed (the
        table's changes are held), nothing: no read, no checkpoint."""
        round_stats = PollStats()
        if self.gate is not None and not self.gate.is_open(self.stats.applied):
            self._busy = False
            return round_stats
        self._busy = self._refresh_shards()
        for shard in list(self._shards.values()):
            if self._ready(shard):
                self._poll_shard(shard, round_stats)
        self.stats.add(round_stats)
        if self.gate is not None:
            self.gate.round_done(self._busy, self.stats.applied)
        return round_stats

    def run(self, stop_event: threading.Event, idle_sleep: float = 1.0) -> None:
        """Poll until ``stop_event`` is set; wait ``idle_sleep`` after a round with nothing to do."""
        log.info("stream poller started for %s", self.source_table)
        while not stop_event.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("poll round for %s failed; retrying", self.source_table)
                self._busy = False
            if not self._busy:
                stop_event.wait(idle_sleep)
        log.info("stream poller stopped for %s", self.source_table)

    def drain(self, timeout: float = 60.0) -> PollStats:
        """Poll until a round finds nothing to do on any shard. Raises TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        total = PollStats()
        if self.gate is not None:
            self.gate.ask_afresh()  # a release just before the drain must not read as "held, nothing to do"
        while True:
            total.add(self.poll_once())
            if not self._busy:
                return total
            if time.monotonic() > deadline:
                pending = sum(len(s.buffer) for s in self._shards.values())
                raise TimeoutError(
                    f"stream of {self.source_table} not drained after {timeout}s ({pending} records pending)"
                )

    def shard_ids(self) -> list[str]:
        return list(self._shards)

    # shards -------------------------------------------------------------------------------
    def _refresh_shards(self) -> bool:
        """Read the shard graph; returns True when something changed (new or newly closed shards)."""
        changed = False
        initial = not self._discovered
        for raw in self._describe_shards():
            shard_id = raw["ShardId"]
            closed = "EndingSequenceNumber" in raw.get("SequenceNumberRange", {})
            shard = self._shards.get(shard_id)
            if shard is None:
                shard = _Shard(shard_id, raw.get("ParentShardId"), closed, initial)
                saved = (
                    self.checkpoints.load_stream_checkpoint(self.source_table, shard_id) if self.checkpoints else None
                )
                if saved is not None:
                    shard.checkpoint = saved[0] or None
                    shard.finished = saved[1]
                self._shards[shard_id] = shard
                changed = True
                log.info(
                    "shard %s of %s (parent %s) checkpoint %s",
                    shard_id,
                    self.source_table,
                    shard.parent_id,
                    shard.checkpoint,
                )
                # LATEST means "after the newest record now": pin that position before any waiting.
                if initial and self.starting_position == "LATEST" and shard.checkpoint is None and not shard.finished:
                    shard.iterator = self._acquire_iterator(shard)
            elif closed and not shard.closed:
                shard.closed = changed = True
        self._discovered = True
        return changed

    def _describe_shards(self) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            description = self.streams.describe_stream(**kwargs)["StreamDescription"]
            shards.extend(cast("list[dict[str, Any]]", description.get("Shards", [])))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return shards
            kwargs["ExclusiveStartShardId"] = last

    def _ready(self, shard: _Shard) -> bool:
        if shard.finished:
            return False
        parent = self._shards.get(shard.parent_id) if shard.parent_id else None
        # A parent no longer listed has been trimmed: nothing of it is left to wait for.
        return parent is None or parent.finished

    def _acquire_iterator(self, shard: _Shard) -> str:
        # Resume after the last record already read: the last buffered one, else the checkpoint.
        after = _sequence(shard.buffer[-1]) if shard.buffer else shard.checkpoint
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard.shard_id}
        if after:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=after)
        else:
            kwargs["ShardIteratorType"] = self.starting_position if shard.initial else "TRIM_HORIZON"
        iterator: str = self.streams.get_shard_iterator(**kwargs)["ShardIterator"]
        return iterator

    def _fetch(self, shard: _Shard) -> int:
        """Read more records into the shard's buffer; returns how many arrived."""
        if shard.iterator is None:
            shard.iterator = self._acquire_iterator(shard)
        limit = min(GET_RECORDS_LIMIT, self.batch_size - len(shard.buffer))
        try:
            response = get_records(self.streams, shard.iterator, limit, server_error_expires=True)
        except ShardIteratorExpired as exc:
            # Expired iterator, or a refused one (ValidationException; moto: 500): re-acquire next round.
            log.warning(
                "shard %s of %s: GetRecords failed (%s); re-acquiring the iterator",
                shard.shard_id,
                self.source_table,
                exc.code,
            )
            shard.iterator = None
            self._busy = True  # not idle: the next round reads again
            self.sleep(min(self.max_backoff, self.retry_backoff))
            return 0
        records = cast("list[Record]", response.get("Records", []))
        shard.buffer.extend(records)
        shard.iterator = response.get("NextShardIterator")
        if shard.iterator is None:
            shard.exhausted = True
        return len(records)

    def _poll_shard(self, shard: _Shard, stats: PollStats) -> None:
        if not shard.exhausted and len(shard.buffer) < self.batch_size and self._fetch(shard):
            self._busy = True
        if not shard.buffer:
            if shard.exhausted and shard.closed:
                shard.finished = True
                self._save(shard)
                self._busy = True
                log.info("shard %s of %s finished at %s", shard.shard_id, self.source_table, shard.checkpoint)
            return
        self._busy = True
        self._deliver(shard, shard.buffer[: self.batch_size], stats)

    # delivery -----------------------------------------------------------------------------
    def _deliver(self, shard: _Shard, batch: list[Record], stats: PollStats) -> None:
        context = LocalContext(self.function_name, str(uuid.uuid4()), time.monotonic() + self.function_timeout)
        event = lambda_event(batch, self.stream_arn)
        stats.batches += 1
        stats.delivered += len(batch)
        error: str | None = None
        function_error = False
        index: int | None = 0
        try:
            response = self.handler(event, context)
        except Exception as exc:
            error, function_error = f"{type(exc).__name__}: {exc}", True
        else:
            try:
                index = failed_index(response, batch)
            except ValueError as exc:
                error = f"malformed response: {exc}"

        done = batch if index is None else batch[:index]
        if index is None and self.anomalies is not None and self.anomalies.chance(self.anomalies.redeliver):
            log.debug("shard %s: delivering the batch again (anomaly)", shard.shard_id)
            return  # nothing committed: the same records reach the handler again next round
        if done:
            self._commit(shard, done, stats)
            log.debug("shard %s: processed %d records up to %s", shard.shard_id, len(done), shard.checkpoint)
        if index is None:
            shard.failing_sequence, shard.failures = None, 0
            return

        first = shard.buffer[0]
        sequence = _sequence(first)
        if shard.failing_sequence == sequence:
            shard.failures += 1
        else:
            shard.failing_sequence, shard.failures = sequence, 1
        shard.last_error = error[:ERROR_TEXT_LIMIT] if error else None
        shard.last_function_error = function_error
        if shard.failures <= self.max_retries:
            stats.retries += 1
            delay = min(self.max_backoff, self.retry_backoff * 2 ** (shard.failures - 1))
            log.warning(
                "shard %s of %s: record %s failed (attempt %d of %d)%s; retrying in %.2fs",
                shard.shard_id,
                self.source_table,
                sequence,
                shard.failures,
                self.max_retries + 1,
                f" [{error}]" if error else "",
                delay,
            )
            self.sleep(delay)
            return
        self._dead_letter(shard, first)
        stats.dead_lettered += 1
        shard.buffer.pop(0)
        shard.checkpoint = sequence
        self._save(shard)
        shard.failing_sequence, shard.failures = None, 0

    def _commit(self, shard: _Shard, done: list[Record], stats: PollStats) -> None:
        now = self.clock()
        for record in done:
            created = _epoch(record.get("dynamodb", {}).get("ApproximateCreationDateTime"))
            if created is not None:
                stats.lags.append(max(0.0, now - created))
        stats.applied += len(done)
        del shard.buffer[: len(done)]
        shard.checkpoint = _sequence(done[-1])
        self._save(shard)

    def _save(self, shard: _Shard) -> None:
        if self.checkpoints is not None:
            self.checkpoints.save_stream_checkpoint(
                self.source_table, shard.shard_id, shard.checkpoint or "", shard.finished
            )

    def _dead_letter(self, shard: _Shard, record: Record) -> None:
        body = self.failure_message(shard.shard_id, record, shard.failures, shard.last_error, shard.last_function_error)
        self.sqs.send_message(QueueUrl=self.on_failure_queue_url, MessageBody=json.dumps(body, sort_keys=True))
        log.error(
            "shard %s of %s: record %s (%s %s) failed %d times; sent to the on-failure queue",
            shard.shard_id,
            self.source_table,
            _sequence(record),
            record.get("eventName"),
            body["ferry"]["keys"],
            shard.failures,
        )

    def failure_message(
        self, shard_id: str, record: Record, invocations: int, error: str | None, function_error: bool
    ) -> dict[str, Any]:
        """The on-failure destination message for one record, in Lambda's shape for streams.
        Keys and batch information only, never the item image."""
        sequence = _sequence(record)
        change = record.get("dynamodb") or {}
        arrival = _iso(_epoch(change.get("ApproximateCreationDateTime")))
        response_context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if function_error:
            response_context["functionError"] = "Unhandled"
        return {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"local:{self.function_name}",
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": invocations,
            },
            "responseContext": response_context,
            "version": "1.0",
            "timestamp": _iso(self.clock()),
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": sequence,
                "endSequenceNumber": sequence,
                "approximateArrivalOfFirstRecord": arrival,
                "approximateArrivalOfLastRecord": arrival,
                "batchSize": 1,
                "streamArn": self.stream_arn,
            },
            "ferry": {
                "sourceTable": self.source_table,
                "eventName": record.get("eventName"),
                "keys": key_text(change.get("Keys") or {}),
                "error": error,
            },
        }
