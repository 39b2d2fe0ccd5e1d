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
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from ferry.wire import Item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

LOG_PREFIX = "log#"
COPY_LOG = "copy"
LAG_LOG = "lag"
COPY_WINDOW_SECONDS = 2.0


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


def lag_sample(lags: list[float], failed: int, at: float) -> LagSample:
    return LagSample(
        at=at,
        records=len(lags) + failed,
        p50=percentile(lags, 0.5),
        p99=percentile(lags, 0.99),
        max=max(lags, default=0.0),
        failed=failed,
    )


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
        }
        return self._put(source, kind, sk, attributes)

    def save_lag_sample(self, source: str, kind: str, sample: LagSample) -> bool:
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

    def _query(self, source: str, kind: str, log_name: str) -> list[Item]:
        out: list[Item] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": _pk(source, kind), ":prefix": {"S": f"{LOG_PREFIX}{log_name}#"}},
            "ConsistentRead": True,
        }
        while True:
            page = self.ddb.query(**kwargs)
            out.extend(cast("Item", item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return out
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def copy_samples(self, source: str, kind: str) -> list[CopySample]:
        """Every copy sample of ``source``, oldest window first."""
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
            )
            for item in self._query(source, kind, COPY_LOG)
        ]

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

    def forget(self, source: str, kind: str, log_name: str) -> int:
        """Delete one log of ``source`` (a restarted copy starts a new copy log)."""
        items = self._query(source, kind, log_name)
        for item in items:
            self.ddb.delete_item(TableName=self.table_name, Key={"pk": item["pk"], "sk": item["sk"]})
        return len(items)


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
        self.items = self.bytes = self.throttled = 0
        self.read_units = self.write_units = 0.0

    def add(
        self, *, items: int = 0, bytes: int = 0, read_units: float = 0.0, write_units: float = 0.0, throttled: int = 0
    ) -> None:
        self.items += items
        self.bytes += bytes
        self.read_units += read_units
        self.write_units += write_units
        self.throttled += throttled
        if self.clock() - self.started >= self.window:
            self.flush()

    def flush(self) -> None:
        now = self.clock()
        if self.items or self.read_units or self.write_units or self.throttled:
            sample = CopySample(
                self.split, self.started, now, self.items, self.bytes, self.read_units, self.write_units, self.throttled
            )
            if self.runlog is not None:
                self.runlog.save_copy_sample(self.source, self.kind, sample)
        self._reset(now)

    def close(self) -> None:
        self.flush()
