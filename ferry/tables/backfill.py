"""The table backfill: one parallel-scan segment at a time, written insert-only, within budget.

``copy_segment`` is what each Spark task (locally or on Glue) runs. It builds its own clients,
resumes from its checkpoint, scans its segment with the low-level client, writes every item
unchanged with an ``attribute_not_exists`` condition (see protocol.py), stays inside its share of
the read and write capacity, checkpoints after every page, and returns its result as data.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ferry.aws import call_with_retries, put_item_if
from ferry.clients import AwsTarget, TableClients
from ferry.ratelimit import CapacityBucket
from ferry.spec import Spec, TableMapping
from ferry.tables.protocol import insert_only_condition
from ferry.tables.schema import TableShape, describe_shape
from ferry.tables.state import SEGMENT_DONE, SEGMENT_FAILED, SEGMENT_RUNNING, SegmentCheckpoint, StateStore
from ferry.wire import Item, item_size, key_of, key_text

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import PutItemOutputTypeDef, ScanOutputTypeDef

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class BackfillPlan:
    """Everything a segment task needs; small and picklable so Spark can ship it.

    ``where`` is ferry's home (the state table); ``source_where`` and ``target_where`` the two sides."""

    where: AwsTarget
    source_where: AwsTarget
    target_where: AwsTarget
    source: str
    target: str
    state_table: str
    hash_key: str
    key_names: tuple[str, ...]
    total_segments: int
    read_units_per_task: float
    write_units_per_task: float
    write_concurrency: int
    page_size: int
    max_write_attempts: int = 12


@dataclass(frozen=True)
class SegmentResult:
    segment: int
    status: str
    scanned: int = 0
    written: int = 0
    skipped: int = 0
    pages: int = 0
    resumed: bool = False
    seconds: float = 0.0
    read_units: float = 0.0
    write_units: float = 0.0
    throttled: int = 0
    error: str = ""
    # What the requests made would cost by DynamoDB's published rules, from the item sizes (an
    # emulator's ConsumedCapacity need not be DynamoDB's): each Scan page ceil(bytes / 4 KB) / 2
    # (eventually consistent), each PutItem that reached the table (written or failing its
    # condition) ceil(size / 1 KB). Requests count every attempt, retries included.
    read_units_by_size: float = 0.0
    write_units_by_size: float = 0.0
    scan_requests: int = 0
    put_requests: int = 0
    started_at: float = 0.0  # wall clock (epoch seconds) when the segment started

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def scan_page_units(page_bytes: int) -> float:
    """Read units DynamoDB charges for one eventually consistent Scan page of ``page_bytes``."""
    return math.ceil(page_bytes / 4096) / 2 or 0.5


def put_units(item_bytes: int) -> int:
    """Write units DynamoDB charges for one PutItem of an item of ``item_bytes``."""
    return math.ceil(max(item_bytes, 1) / 1024)


def capacity_budget(shape: TableShape, percent: float, on_demand_units: int, write: bool) -> float:
    """Units per second the whole job may use on a table."""
    units = on_demand_units if shape.on_demand else (shape.write_units if write else shape.read_units)
    return max(1.0, units * percent)


def plan_backfill(
    spec: Spec,
    mapping: TableMapping,
    ddb: DynamoDBClient | TableClients,
    splits: int | None = None,
    concurrent_tasks: int | None = None,
) -> BackfillPlan:
    """``ddb``: the spec's TableClients, or one client for every side.

    The budget is shared by the tasks that run at the same time: ``concurrent_tasks`` (the
    cluster's task slots) when there are fewer slots than segments, else every segment. Too many
    slots only makes the job slower; too few would overspend, so the caller passes what it has."""
    clients = TableClients.of(ddb)
    source = describe_shape(clients.source, mapping.source, "source")
    target = describe_shape(clients.target, mapping.target, "target")
    total = splits or spec.backfill.splits
    settings = spec.backfill
    read_budget = capacity_budget(source, settings.read_percent, settings.on_demand_read_units, write=False)
    write_budget = capacity_budget(target, settings.write_percent, settings.on_demand_write_units, write=True)
    if concurrent_tasks is not None and concurrent_tasks < 1:
        raise ValueError(f"concurrent_tasks must be at least 1, got {concurrent_tasks}")
    sharing = min(total, concurrent_tasks) if concurrent_tasks else total
    return BackfillPlan(
        where=spec.home_where(),
        source_where=spec.source_where(),
        target_where=spec.target_where(),
        source=mapping.source,
        target=mapping.target,
        state_table=spec.state_table,
        hash_key=source.hash_key,
        key_names=source.key_names,
        total_segments=total,
        read_units_per_task=read_budget / sharing,
        write_units_per_task=write_budget / sharing,
        write_concurrency=settings.write_concurrency,
        page_size=settings.page_size,
    )


class _SegmentCopier:
    def __init__(self, plan: BackfillPlan, segment: int, ddb: DynamoDBClient | TableClients | None) -> None:
        self.plan = plan
        self.segment = segment
        # Scan the source, write the target, checkpoint in the home account (one client without roles).
        self.clients = (
            TableClients.of(ddb)
            if ddb is not None
            else TableClients.connect(plan.source_where, plan.target_where, plan.where, pool=plan.write_concurrency + 4)
        )
        self.store = StateStore(self.clients.state, plan.state_table)
        self.reads = CapacityBucket(plan.read_units_per_task, burst=max(plan.read_units_per_task, 1.0))
        self.writes = CapacityBucket(plan.write_units_per_task, burst=max(plan.write_units_per_task, 1.0))
        self.throttled = 0
        self.read_units = 0.0
        self.write_units = 0.0
        self.read_units_by_size = 0.0
        self.write_units_by_size = 0.0
        self.scan_requests = 0
        self.put_requests = 0
        self._counting = threading.Lock()  # the writes run in a thread pool

    def _count(self, attribute: str, amount: float) -> None:
        with self._counting:
            setattr(self, attribute, getattr(self, attribute) + amount)

    def _with_retries(self, call: Callable[[], T], what: str) -> T:
        def count(_: BaseException) -> None:
            self._count("throttled", 1)

        return call_with_retries(
            call, f"segment {self.segment}: {what}", attempts=self.plan.max_write_attempts, on_retry=count
        )

    def _put_insert_only(self, item: Item, size: int) -> bool:
        """True if written, False if the key already exists in the target (live write or tombstone).
        ``size``: the item's size by DynamoDB's rules (:func:`ferry.wire.item_size`)."""
        self.writes.acquire()
        estimate = put_units(size)

        def put() -> tuple[bool, PutItemOutputTypeDef | None]:
            self._count("put_requests", 1)
            return put_item_if(
                self.clients.target,
                self.plan.target,
                item,
                insert_only_condition(self.plan.hash_key),
                consumed_capacity=True,
            )

        try:
            written, response = self._with_retries(put, "PutItem")
        except Exception:
            log.error("segment %d: PutItem of key %s failed", self.segment, key_text(key_of(item, self.plan.key_names)))
            raise
        if not written or response is None:  # the condition failed: the key is there already
            self._count("write_units_by_size", estimate)
            self.writes.charge(estimate)
            return False
        units = float(response.get("ConsumedCapacity", {}).get("CapacityUnits", estimate))
        self._count("write_units", units)
        self._count("write_units_by_size", estimate)
        self.writes.charge(units)
        return True

    def _scan_page(self, start_key: Item | None) -> tuple[dict[str, Any], list[int]]:
        """One Scan page and the size of each of its items."""
        self.reads.acquire()
        kwargs: dict[str, Any] = {
            "TableName": self.plan.source,
            "Segment": self.segment,
            "TotalSegments": self.plan.total_segments,
            "ReturnConsumedCapacity": "TOTAL",
        }
        if self.plan.page_size:
            kwargs["Limit"] = self.plan.page_size
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key

        def scan() -> ScanOutputTypeDef:
            self.scan_requests += 1
            return self.clients.source.scan(**kwargs)

        page = cast("dict[str, Any]", self._with_retries(scan, "Scan"))
        sizes = [item_size(i) for i in page.get("Items", [])]
        by_size = scan_page_units(sum(sizes))
        self.read_units_by_size += by_size
        consumed = page.get("ConsumedCapacity", {}).get("CapacityUnits")
        if consumed is None:  # eventually consistent: 4 KB per half unit
            consumed = by_size
        self.read_units += float(consumed)
        self.reads.charge(float(consumed))
        return page, sizes

    def run(self) -> SegmentResult:
        started, started_at = time.monotonic(), time.time()
        plan = self.plan
        cp = self.store.load_segment(plan.source, plan.total_segments, self.segment)
        if cp is not None and cp.status == SEGMENT_DONE:
            return SegmentResult(self.segment, SEGMENT_DONE, cp.scanned, cp.written, cp.skipped, cp.pages, resumed=True)
        resumed = cp is not None and cp.last_key is not None
        cp = cp or SegmentCheckpoint(self.segment, plan.total_segments, SEGMENT_RUNNING, None, 0, 0, 0, 0)
        scanned, written, skipped, pages, last_key = cp.scanned, cp.written, cp.skipped, cp.pages, cp.last_key
        error = ""
        try:
            with ThreadPoolExecutor(max_workers=plan.write_concurrency) as pool:
                while True:
                    page, sizes = self._scan_page(last_key)
                    items = page.get("Items", [])
                    outcomes = list(pool.map(self._put_insert_only, items, sizes))
                    scanned += len(items)
                    written += sum(outcomes)
                    skipped += len(outcomes) - sum(outcomes)
                    pages += 1
                    last_key = page.get("LastEvaluatedKey")
                    status = SEGMENT_RUNNING if last_key else SEGMENT_DONE
                    self.store.save_segment(
                        plan.source,
                        SegmentCheckpoint(
                            self.segment, plan.total_segments, status, last_key, scanned, written, skipped, pages
                        ),
                    )
                    if last_key is None:
                        break
        except Exception as exc:
            # The checkpoint keeps the last completed page: a rerun resumes after it.
            error = f"{type(exc).__name__}: {exc}"
            log.error("segment %d of %s failed: %s", self.segment, plan.source, error)
            self.store.save_segment(
                plan.source,
                SegmentCheckpoint(
                    self.segment, plan.total_segments, SEGMENT_FAILED, last_key, scanned, written, skipped, pages, error
                ),
            )
        return SegmentResult(
            segment=self.segment,
            status=SEGMENT_FAILED if error else SEGMENT_DONE,
            scanned=scanned,
            written=written,
            skipped=skipped,
            pages=pages,
            resumed=resumed,
            seconds=time.monotonic() - started,
            read_units=self.read_units,
            write_units=self.write_units,
            throttled=self.throttled,
            error=error,
            read_units_by_size=self.read_units_by_size,
            write_units_by_size=self.write_units_by_size,
            scan_requests=self.scan_requests,
            put_requests=self.put_requests,
            started_at=started_at,
        )


def copy_segment(plan: BackfillPlan, segment: int, ddb: DynamoDBClient | TableClients | None = None) -> SegmentResult:
    """Copy one parallel-scan segment. Never raises for data-path errors: the result says it.

    ``ddb`` (TableClients, or one client for every side) defaults to clients built from the plan."""
    return _SegmentCopier(plan, segment, ddb).run()


@dataclass(frozen=True)
class BackfillSummary:
    source: str
    target: str
    results: tuple[SegmentResult, ...]
    seconds: float

    @property
    def failed(self) -> tuple[SegmentResult, ...]:
        return tuple(r for r in self.results if r.status != SEGMENT_DONE)

    @property
    def scanned(self) -> int:
        return sum(r.scanned for r in self.results)

    @property
    def written(self) -> int:
        return sum(r.written for r in self.results)

    def totals(self) -> dict[str, float]:
        """Every counter of the segments, summed (items, pages, requests, capacity units)."""
        names = (
            "scanned", "written", "skipped", "pages", "throttled", "scan_requests", "put_requests",
            "read_units", "write_units", "read_units_by_size", "write_units_by_size",
        )  # fmt: skip
        return {name: sum(getattr(r, name) for r in self.results) for name in names}

    def describe(self) -> str:
        lines = [
            f"{self.source} -> {self.target}: {len(self.results)} segments, {self.scanned} items scanned, "
            f"{self.written} written, {sum(r.skipped for r in self.results)} already present, "
            f"{len(self.failed)} failed, {self.seconds:.1f}s"
        ]
        lines += [f"  segment {r.segment}: {r.error}" for r in self.failed]
        return "\n".join(lines)
