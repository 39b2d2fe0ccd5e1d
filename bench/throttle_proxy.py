"""A provisioned-capacity emulator: an HTTP proxy in front of the emulator that throttles like DynamoDB.

moto never enforces capacity. This proxy gives each table it is told about (``provision``) a
token bucket of C write units/s and C' read units/s and, when a request does not fit, answers
``ProvisionedThroughputExceededException`` (HTTP 400) *without forwarding it*, as DynamoDB does.
Tables it was not told about (ferry's state table) pass uncharged. Create the table in the emulator
as PROVISIONED with the same numbers, so that DescribeTable (which ferry's budget reads) reports them.

Charging, by DynamoDB's published rules (simplified where said):
- PutItem: ceil(item size / 1 KB) WCU, at least 1, sized from the request (``ferry.wire.item_size``).
  An overwrite is charged for the new item only (DynamoDB charges the larger of old and new).
- DeleteItem, UpdateItem: 1 WCU (the stored item's size is unknown to a proxy).
- BatchWriteItem: each put as a PutItem, each delete 1 WCU; a batch is admitted or throttled as a
  whole (DynamoDB would return the part that does not fit in ``UnprocessedItems``).
- GetItem: ceil(size / 4 KB) RCU, at least 1; Scan, Query: ceil(sum of the returned items' sizes /
  4 KB), at least 1 (no filter expressions are used by the benchmarks, so returned = read);
  BatchGetItem: per item. Halved unless ``ConsistentRead``. Charged from the *response*: the cost of
  a read is known only afterwards, so reads may drive the bucket into debt, which later ones wait out.
- Admission: a write is admitted when the bucket holds its units (or is full, for an item larger than
  the whole burst); a read when the balance is positive.
- Burst: a bucket banks at most ``burst_seconds`` of its rate, 1 s by default. DynamoDB banks up to
  300 s of unused capacity; with that, a one-minute benchmark would run largely on savings and could
  not tell a paced writer from an unpaced one.
- When the request asked for ``ReturnConsumedCapacity``, the emulated units replace moto's figure
  in the answer (moto reports 1.0 for any Scan page), so a client's own accounting sees the table's.

Counts per ``table:Operation`` (forwarded, throttled, units charged) and the time of every accepted
write (for a per-second timeline) are kept for the report. Built on :class:`ferry_dev.faults.FaultProxy`
(its server, connection handling and forwarding) through its public ``intercept`` hook, with no fault rules.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ferry.wire import item_size
from ferry_dev.faults import Answer, FaultProxy, Rewrite, fault_answer

WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096
WRITE_OPERATIONS = frozenset({"PutItem", "DeleteItem", "UpdateItem", "BatchWriteItem"})
READ_OPERATIONS = frozenset({"GetItem", "Scan", "Query", "BatchGetItem"})


def write_units(size: int) -> int:
    """WCU of writing an item of ``size`` bytes: one per started KB, at least one."""
    return max(1, math.ceil(size / WRITE_UNIT_BYTES))


def read_units(size: int, consistent: bool) -> float:
    """RCU of reading ``size`` bytes in one request: one per started 4 KB (at least one), half that
    when eventually consistent."""
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    return float(units) if consistent else units / 2


def write_charges(operation: str, request: Mapping[str, Any]) -> dict[str, float]:
    """Table → WCU a write request costs (known before it is made)."""
    if operation == "PutItem":
        return {request["TableName"]: float(write_units(item_size(request["Item"])))}
    if operation in ("DeleteItem", "UpdateItem"):
        return {request["TableName"]: 1.0}
    if operation == "BatchWriteItem":
        charges: dict[str, float] = {}
        for table, requests in request.get("RequestItems", {}).items():
            for entry in requests:
                put = entry.get("PutRequest")
                units = write_units(item_size(put["Item"])) if put else 1
                charges[table] = charges.get(table, 0.0) + units
        return charges
    raise ValueError(f"{operation} is not a charged write")


def read_tables(operation: str, request: Mapping[str, Any]) -> list[str]:
    """The tables a read request reads."""
    if operation == "BatchGetItem":
        return list(request.get("RequestItems", {}))
    return [request["TableName"]]


def read_charges(operation: str, request: Mapping[str, Any], response: Mapping[str, Any]) -> dict[str, float]:
    """Table → RCU a successful read cost, from what it returned."""
    if operation == "BatchGetItem":
        charges: dict[str, float] = {}
        for table, items in response.get("Responses", {}).items():
            consistent = bool(request.get("RequestItems", {}).get(table, {}).get("ConsistentRead"))
            charges[table] = sum(read_units(item_size(item), consistent) for item in items)
        return charges
    consistent = bool(request.get("ConsistentRead"))
    if operation == "GetItem":
        item = response.get("Item")
        size = item_size(item) if item else 0
    elif operation in ("Scan", "Query"):
        size = sum(item_size(item) for item in response.get("Items", []))
    else:
        raise ValueError(f"{operation} is not a charged read")
    return {request["TableName"]: read_units(size, consistent)}


class UnitBucket:
    """One table's read or write capacity: ``rate`` units/s, holding at most ``burst_seconds`` of it.

    Not thread-safe by itself (the proxy serialises access). Starts full."""

    def __init__(self, rate: float, burst_seconds: float = 1.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst_seconds <= 0:
            raise ValueError("rate and burst_seconds must be positive")
        self.rate = float(rate)
        self.capacity = self.rate * burst_seconds
        self._clock = clock
        self._balance = self.capacity
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._balance = min(self.capacity, self._balance + (now - self._stamp) * self.rate)
        self._stamp = now

    @property
    def balance(self) -> float:
        self._refill()
        return self._balance

    def fits(self, units: float) -> bool:
        """Whether a write of ``units`` is admitted now (a write larger than the burst: when full)."""
        self._refill()
        return self._balance >= min(units, self.capacity)

    def admits_read(self) -> bool:
        self._refill()
        return self._balance > 0

    def charge(self, units: float) -> None:
        self._refill()
        self._balance -= units


@dataclass
class OperationStats:
    forwarded: int = 0
    throttled: int = 0
    units: float = 0.0  # charged to the table's buckets


@dataclass
class _TableBuckets:
    reads: UnitBucket
    writes: UnitBucket


@dataclass(frozen=True)
class AcceptedWrite:
    at: float  # the proxy's clock when the answer came back
    units: float
    items: int


class ThrottleProxy(FaultProxy):
    """``with ThrottleProxy(emulator.endpoint_url) as proxy: proxy.provision("orders", 400, 200)``."""

    def __init__(
        self, upstream_url: str, *, burst_seconds: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(upstream_url, intercept=self.intercept)
        self.burst_seconds = burst_seconds
        self.clock = clock
        self._capacity_lock = threading.Lock()
        self._tables: dict[str, _TableBuckets] = {}
        self._stats: dict[str, OperationStats] = {}
        self._accepted: dict[str, list[AcceptedWrite]] = {}

    def __enter__(self) -> ThrottleProxy:
        self.start()
        return self

    def provision(self, table: str, read_units: float, write_units: float) -> None:
        """Emulate ``table`` with this capacity, from a full bucket (again, if it was provisioned)."""
        with self._capacity_lock:
            self._tables[table] = _TableBuckets(
                UnitBucket(read_units, self.burst_seconds, clock=self.clock),
                UnitBucket(write_units, self.burst_seconds, clock=self.clock),
            )

    def stats(self) -> dict[str, OperationStats]:
        """``table:Operation`` → counts, for the provisioned tables."""
        with self._capacity_lock:
            return {k: OperationStats(v.forwarded, v.throttled, v.units) for k, v in self._stats.items()}

    def accepted_writes(self, table: str) -> list[AcceptedWrite]:
        with self._capacity_lock:
            return list(self._accepted.get(table, []))

    def reset_stats(self) -> None:
        with self._capacity_lock:
            self._stats.clear()
            self._accepted.clear()

    def intercept(self, operation: str, body: bytes) -> Answer | Rewrite | None:
        """FaultProxy's hook: a request to a provisioned table that does not fit is answered with
        DynamoDB's throttling error and never forwarded; one that fits is charged, and its answer
        carries the emulated ConsumedCapacity. Everything else passes untouched."""
        service, _, name = operation.partition(":")
        if service != "dynamodb" or name not in WRITE_OPERATIONS | READ_OPERATIONS:
            return None
        request: dict[str, Any] = json.loads(body or b"{}")
        if not request or not self._provisioned(name, request):
            return None
        admitted, charges = self._admit(name, request)
        if not admitted:
            return fault_answer("dynamodb", "throttle")

        def charged(status: int, data: bytes) -> bytes:
            if status != 200:
                return data
            parsed = json.loads(data or b"{}")
            if name in READ_OPERATIONS:
                paid = self._charge_reads(name, read_charges(name, request, parsed))
            else:
                self._record_accepted(name, request, charges)
                paid = charges
            return json.dumps(parsed).encode() if _with_consumed_capacity(parsed, paid) else data

        return charged

    # ------------------------------------------------------------------ used by intercept

    def _stat(self, table: str, operation: str) -> OperationStats:
        return self._stats.setdefault(f"{table}:{operation}", OperationStats())

    def _admit(self, operation: str, request: Mapping[str, Any]) -> tuple[bool, dict[str, float]]:
        """Decide a request; an admitted write is paid for at once. Returns (admitted, write charges)."""
        with self._capacity_lock:
            if operation in WRITE_OPERATIONS:
                charges = {t: u for t, u in write_charges(operation, request).items() if t in self._tables}
                tables = list(charges)
                admitted = all(self._tables[t].writes.fits(u) for t, u in charges.items())
            else:
                charges = {}
                tables = [t for t in read_tables(operation, request) if t in self._tables]
                admitted = all(self._tables[t].reads.admits_read() for t in tables)
            for table in tables:
                stat = self._stat(table, operation)
                if not admitted:
                    stat.throttled += 1
                    continue
                stat.forwarded += 1
                if table in charges:
                    self._tables[table].writes.charge(charges[table])
                    stat.units += charges[table]
            return admitted, charges

    def _charge_reads(self, operation: str, charges: Mapping[str, float]) -> dict[str, float]:
        """Pay for a read made; returns what was charged (the provisioned tables' part)."""
        charged: dict[str, float] = {}
        with self._capacity_lock:
            for table, units in charges.items():
                if table in self._tables:
                    self._tables[table].reads.charge(units)
                    self._stat(table, operation).units += units
                    charged[table] = units
        return charged

    def _record_accepted(self, operation: str, request: Mapping[str, Any], charges: Mapping[str, float]) -> None:
        now = self.clock()
        with self._capacity_lock:
            for table, units in charges.items():
                items = len(request["RequestItems"][table]) if operation == "BatchWriteItem" else 1
                self._accepted.setdefault(table, []).append(AcceptedWrite(now, units, items))

    def _provisioned(self, operation: str, request: Mapping[str, Any]) -> bool:
        with self._capacity_lock:
            if operation in ("BatchWriteItem", "BatchGetItem"):
                return any(t in self._tables for t in request.get("RequestItems", {}))
            return request.get("TableName") in self._tables


def _with_consumed_capacity(response: dict[str, Any], charges: Mapping[str, float]) -> bool:
    """Replace moto's ConsumedCapacity figures by the emulated ones; True if anything changed."""
    consumed = response.get("ConsumedCapacity")
    entries = consumed if isinstance(consumed, list) else [consumed] if isinstance(consumed, dict) else []
    changed = False
    for entry in entries:
        table = str(entry.get("TableName", ""))
        if table in charges:
            entry["CapacityUnits"] = charges[table]
            changed = True
    return changed
