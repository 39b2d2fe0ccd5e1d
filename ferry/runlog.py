"""The run log: what a copy and the replication did over time, recorded in the state table next to the
copy's checkpoints, so `ferry report` can be made after the fact from the state alone.

Two kinds of sample, each one item under the source's partition key (``table#<source>`` or
``bucket#<source>``):

- a **copy sample** (``sk = log#copy#<window start>#<split>``): one split's work in one window of at
  most ``COPY_WINDOW_SECONDS`` — items (objects) written or found present, their bytes, the read and
  write units by DynamoDB's rules, throttled requests. Written by the split itself (a Glue task or a
  local thread), at most one item per window and split, so the run log costs a small fraction of the
  checkpoints' writes;
- a **lag sample** (``sk = log#lag#<applied at>#<writer>``): one handler invocation's records of one
  source — how many, their lag (seconds from the change, by the stream's ApproximateCreationDateTime
  or the event's time, to its apply) at p50, p99 and max, and how many failed. Written by the
  handlers, so the local pollers and the deployed Lambdas record the same way.

A sample that cannot be written is logged and dropped: the run log is for people, and the copy and
the replication do not wait on it.

Where they are written: each scan segment or export file of a table copy (``ferry.tables.backfill``),
one sample for an ImportTable when it completes (``ferry.tables.copy_run.import_target``, split 0, no
units), each partition of a bucket copy (``ferry.buckets.backfill``, with its S3 ``requests``); the lag
samples by the ``table_stream`` and ``bucket_events`` handlers (:func:`ferry.tables.replicate.stream_lag_samples`,
:func:`ferry.buckets.events.sqs_lag_samples`). Nothing is ever deleted (the jobs and handlers need no
delete or query permission for it): a copy run's samples are those from its start on — the sort key
begins with the window's start, so ``copy_samples(since=run.started_at - CLOCK_SKEW_SECONDS)`` reads
only them after a ``--restart`` or a fresh run; the lag log spans copies and releases.

What it costs: one PutItem of about 200 bytes (1 write unit) per split and window of
``COPY_WINDOW_SECONDS`` — at most 0.5 writes a second per split, next to a checkpoint per page — and
one per handler invocation and source (a stream batch is one source; an SQS batch, one per bucket it
names). On demand that is $0.625 per million samples (us-east-1): an hour's copy with 16 splits writes at
most 28,800, a Lambda invoked once a second 3,600 an hour. Only ``ferry report``, ``ferry status`` and
the progress bars read them back.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from ferry.wire import Item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

LOG_PREFIX = "log#"
COPY_LOG = "copy"
LAG_LOG = "lag"
COPY_WINDOW_SECONDS = 2.0
# How far a split's clock (a Glue worker) may run behind the driver's that stamped the copy run's start.
CLOCK_SKEW_SECONDS = 1.0
# What a lag sample's PutItem writes: the handlers' IAM allows a PutItem into the state table of these
# attributes only (dynamodb:Attributes), so a function cannot write a phase or a checkpoint.
LAG_SAMPLE_ATTRIBUTES = ("pk", "sk", "at", "records", "p50", "p99", "max", "failed")


@dataclass(frozen=True)
class CopySample:
    split: int  # scan segment, export file or bucket partition
    started: float  # epoch seconds: the window's start
    ended: float  # the window's end (the last counted write)
    items: int  # items or objects written, or found present, in the window
    bytes: int
    read_units: float = 0.0
    write_units: float = 0.0
    throttled: int = 0
    requests: int = 0  # bucket copies: S3 requests made (HEAD, CopyObject, parts, deletes); 0 for tables


@dataclass(frozen=True)
class LagSample:
    at: float  # epoch seconds: when the batch was applied
    records: int
    p50: float  # seconds from the change to its apply
    p99: float
    max: float
    failed: int = 0


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q`` (0..1) percentile by the nearest-rank method; 0.0 for no values."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def lag_sample(lags: list[float], failed: int, at: float, untimed: int = 0) -> LagSample:
    """One invocation's sample: ``lags`` of the applied records whose change time is known, ``failed``
    records, ``untimed`` applied records without a change time (counted, no lag)."""
    return LagSample(
        at=at,
        records=len(lags) + failed + untimed,
        p50=percentile(lags, 0.5),
        p99=percentile(lags, 0.99),
        max=max(lags, default=0.0),
        failed=failed,
    )


@dataclass(frozen=True)
class RecordLag:
    """One record of a handler's batch, as the lag sample sees it."""

    source: str  # the source table or bucket
    changed: float | None  # epoch seconds of the change, None when the record does not say
    failed: bool = False


def lag_samples_by_source(records: Iterable[RecordLag], at: float) -> dict[str, LagSample]:
    """One sample per source of a batch applied at ``at``: lag = ``at`` − change time (never below 0: the
    clocks of the change and the handler differ by a little), failed records counted apart."""
    lags: dict[str, list[float]] = {}
    failed: dict[str, int] = {}
    untimed: dict[str, int] = {}
    for record in records:
        lags.setdefault(record.source, [])
        if record.failed:
            failed[record.source] = failed.get(record.source, 0) + 1
        elif record.changed is None:
            untimed[record.source] = untimed.get(record.source, 0) + 1
        else:
            lags[record.source].append(max(0.0, at - record.changed))
    return {
        source: lag_sample(values, failed.get(source, 0), at, untimed.get(source, 0)) for source, values in lags.items()
    }


def epoch_of(value: Any) -> float | None:
    """A change time as epoch seconds: a number (DynamoDB stream records in a Lambda event), an ISO 8601
    text (S3 notifications' ``eventTime``, EventBridge's ``time``) or a datetime; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def failed_identifiers(response: Any) -> set[str]:
    """The ``itemIdentifier`` of every record a partial batch response lists as failed."""
    failures = response.get("batchItemFailures") if isinstance(response, dict) else None
    return {str(f.get("itemIdentifier")) for f in failures or () if isinstance(f, dict)}


def _n(value: float) -> dict[str, str]:
    return {"N": f"{value:.3f}" if isinstance(value, float) else str(value)}


def _pk(source: str, kind: str) -> dict[str, str]:
    return {"S": f"{kind}#{source}"}


class RunLog:
    """Writes and reads the samples of one state table."""

    def __init__(self, ddb: DynamoDBClient, table_name: str) -> None:
        self.ddb = ddb
        self.table_name = table_name

    def _put(self, source: str, kind: str, sk: str, attributes: Item) -> bool:
        try:
            self.ddb.put_item(TableName=self.table_name, Item={"pk": _pk(source, kind), "sk": {"S": sk}, **attributes})
            return True
        except Exception as exc:  # the run log never stops a copy or a replication
            log.warning("run log sample of %s#%s not written: %s", kind, source, exc)
            return False

    def save_copy_sample(self, source: str, kind: str, sample: CopySample) -> bool:
        sk = f"{LOG_PREFIX}{COPY_LOG}#{sample.started:014.3f}#{sample.split:07d}"
        attributes: Item = {
            "split": _n(sample.split),
            "started": _n(float(sample.started)),
            "ended": _n(float(sample.ended)),
            "items": _n(sample.items),
            "bytes": _n(sample.bytes),
            "read_units": _n(float(sample.read_units)),
            "write_units": _n(float(sample.write_units)),
            "throttled": _n(sample.throttled),
            "requests": _n(sample.requests),
        }
        return self._put(source, kind, sk, attributes)

    def save_lag_sample(self, source: str, kind: str, sample: LagSample) -> bool:
        """One PutItem of exactly ``LAG_SAMPLE_ATTRIBUTES`` (the handlers' roles may write no other)."""
        sk = f"{LOG_PREFIX}{LAG_LOG}#{sample.at:014.3f}#{uuid.uuid4().hex[:8]}"
        attributes: Item = {
            "at": _n(float(sample.at)),
            "records": _n(sample.records),
            "p50": _n(float(sample.p50)),
            "p99": _n(float(sample.p99)),
            "max": _n(float(sample.max)),
            "failed": _n(sample.failed),
        }
        return self._put(source, kind, sk, attributes)

    def _query(self, source: str, kind: str, log_name: str, since: float = 0.0) -> list[Item]:
        """The samples of one log from ``since`` on (epoch seconds: the sort key begins with the time)."""
        out: list[Item] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": {
                ":pk": _pk(source, kind),
                ":low": {"S": f"{LOG_PREFIX}{log_name}#{max(0.0, since):014.3f}"},
                ":high": {"S": f"{LOG_PREFIX}{log_name}#~"},  # "~" sorts after every digit
            },
            "ConsistentRead": True,
        }
        while True:
            page = self.ddb.query(**kwargs)
            out.extend(cast("Item", item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return out
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def copy_samples(self, source: str, kind: str, since: float = 0.0) -> list[CopySample]:
        """The copy samples of ``source`` whose window began at ``since`` or later, oldest first."""
        return [
            CopySample(
                split=int(item["split"]["N"]),
                started=float(item["started"]["N"]),
                ended=float(item["ended"]["N"]),
                items=int(item["items"]["N"]),
                bytes=int(item["bytes"]["N"]),
                read_units=float(item["read_units"]["N"]),
                write_units=float(item["write_units"]["N"]),
                throttled=int(item["throttled"]["N"]),
                requests=int(item.get("requests", {"N": "0"})["N"]),
            )
            for item in self._query(source, kind, COPY_LOG, since)
        ]

    def save_lag_samples(self, kind: str, samples: dict[str, LagSample]) -> int:
        """Write one sample per source (:func:`lag_samples_by_source`); how many were written."""
        return sum(self.save_lag_sample(source, kind, sample) for source, sample in samples.items())

    def lag_samples(self, source: str, kind: str) -> list[LagSample]:
        """Every lag sample of ``source``, oldest first."""
        return [
            LagSample(
                at=float(item["at"]["N"]),
                records=int(item["records"]["N"]),
                p50=float(item["p50"]["N"]),
                p99=float(item["p99"]["N"]),
                max=float(item["max"]["N"]),
                failed=int(item["failed"]["N"]),
            )
            for item in self._query(source, kind, LAG_LOG)
        ]


class CopyRecorder:
    """Counts one split's work and writes a copy sample at most every ``window`` seconds, and at
    :meth:`close`. Not thread-safe: one recorder per split (a split's writer threads report through
    the split's own loop)."""

    def __init__(
        self,
        runlog: RunLog | None,
        source: str,
        kind: str,
        split: int,
        *,
        window: float = COPY_WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.runlog = runlog
        self.source = source
        self.kind = kind
        self.split = split
        self.window = window
        self.clock = clock
        self._reset(clock())

    def _reset(self, now: float) -> None:
        self.started = now
        self.items = self.bytes = self.throttled = self.requests = 0
        self.read_units = self.write_units = 0.0

    def add(
        self,
        *,
        items: int = 0,
        bytes: int = 0,
        read_units: float = 0.0,
        write_units: float = 0.0,
        throttled: int = 0,
        requests: int = 0,
    ) -> None:
        self.requests += requests
        self.items += items
        self.bytes += bytes
        self.read_units += read_units
        self.write_units += write_units
        self.throttled += throttled
        if self.clock() - self.started >= self.window:
            self.flush()

    def flush(self) -> None:
        now = self.clock()
        if self.items or self.read_units or self.write_units or self.throttled or self.requests:
            sample = CopySample(
                self.split,
                self.started,
                now,
                self.items,
                self.bytes,
                self.read_units,
                self.write_units,
                self.throttled,
                self.requests,
            )
            if self.runlog is not None:
                self.runlog.save_copy_sample(self.source, self.kind, sample)
        self._reset(now)

    def close(self) -> None:
        self.flush()
