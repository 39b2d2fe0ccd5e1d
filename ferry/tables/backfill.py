"""The table copy, one split at a time: a parallel-scan segment or an export data file, within budget.

``copy_segment`` is what each Spark task (locally or on Glue) runs. It builds its own clients,
resumes from its checkpoint, reads its split — a Scan segment with the low-level client, or one of
an export's data files (ferry.tables.export) — and writes every item unchanged, in wire format:

- protocol insert-only (docs/adr/0001): one PutItem per item with an ``attribute_not_exists``
  condition, so the copy never overwrites what the concurrently running consumer wrote — or, with
  ``backfill.insert_mode`` partiql (auto: where a probe shows the endpoint's INSERT refuses an existing
  key), PartiQL INSERTs, 25 a BatchExecuteStatement, each as insert-only as that PutItem
  (ferry.tables.partiql): a DuplicateItem is "already present", throttled statements are sent again;
- protocol replay (docs/adr/0004): BatchWriteItem, 25 items a request, unconditional — the consumer
  is held until the copy is released; UnprocessedItems are sent again with backoff, never dropped.

It stays inside its share of the read and write capacity (charged with ConsumedCapacity),
checkpoints after every page (a Scan page, or a page of a file's lines), and returns its result as data.
Each split also records its work in the run log (ferry.runlog): the read units of every page and, for
every written chunk, the items written or already present, their bytes, the write units charged to the
budget (a write refused as present costs its units too) and the throttles, one sample per 2 s window.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ferry.aws import (
    batch_execute_writes,
    batch_write_puts,
    call_with_retries,
    insert_refuses_existing_key,
    put_item_if,
)
from ferry.clients import AwsTarget, TableClients, make_client
from ferry.errors import PermanentError, RetryableError
from ferry.ratelimit import CapacityBucket
from ferry.runlog import CopyRecorder, RunLog
from ferry.spec import INSERT_AUTO, INSERT_PARTIQL, INSERT_PUT, Spec, TableMapping
from ferry.tables.export import read_export_items
from ferry.tables.partiql import FAILED, PRESENT, RESEND, WRITTEN, insert_statement, outcome_of, probe_item
from ferry.tables.protocol import insert_only_condition
from ferry.tables.schema import TableShape, describe_shape
from ferry.tables.state import SEGMENT_DONE, SEGMENT_FAILED, SEGMENT_RUNNING, TABLE, SegmentCheckpoint, StateStore
from ferry.wire import Item, item_size, key_of, key_text

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import PutItemOutputTypeDef, ScanOutputTypeDef

    from ferry.tables.copy_run import ImportResult

log = logging.getLogger(__name__)
T = TypeVar("T")

WRITES_INSERT_ONLY = "insert-only"  # conditional PutItem per item (ADR 0001)
WRITES_BATCH = "batch"  # BatchWriteItem, 25 items a request, unconditional (ADR 0004: the consumer is held)
BATCH_ITEMS = 25  # BatchWriteItem's limit
FILE_PAGE_ITEMS = 1000  # an export file is checkpointed after every this many items (or backfill.page_size)
MAX_UNPROCESSED_ROUNDS = 30  # then the split fails with its checkpoint kept; a rerun resumes it


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
    writes: str = WRITES_INSERT_ONLY
    # read: export — one split per data file of the export, read from this bucket (home account)
    export_bucket: str = ""
    export_files: tuple[str, ...] = ()
    # insert-only: how the items are written, decided once by the driver (put | partiql; never auto)
    insert_mode: str = INSERT_PUT

    @property
    def splits(self) -> int:
        """How many tasks the copy has: one per export data file, else one per scan segment."""
        return len(self.export_files) if self.export_files else self.total_segments


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
    batch_requests: int = 0  # BatchWriteItem calls (every attempt)
    resent: int = 0  # items DynamoDB returned as UnprocessedItems and ferry sent again
    file_requests: int = 0  # GetObject calls of export data files
    partiql_requests: int = 0  # BatchExecuteStatement calls (every attempt; insert_mode partiql)

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


def insert_mode_for(mode: str, state: Callable[[], DynamoDBClient], state_table: str, source: str = "") -> str:
    """How an insert-only copy writes: ``put`` or ``partiql`` as asked, or, for ``auto``, partiql only when a
    probe in the state table (two INSERTs of one fresh key; the second must answer DuplicateItem) shows that
    this endpoint's INSERT is insert-only, else put. ``state`` makes the probe's client (only for auto).
    Logged either way; run once per copy, by the driver."""
    if mode != INSERT_AUTO:
        log.info("%s: insert-only writes use %s (backfill.insert_mode)", source, mode)
        return mode
    item = probe_item()
    statement = insert_statement(state_table, item)
    assert statement is not None  # two short attributes
    enforced, why = insert_refuses_existing_key(state(), state_table, statement, item)
    chosen = INSERT_PARTIQL if enforced else INSERT_PUT
    log.info("%s: insert-only writes use %s (insert_mode auto: %s)", source, chosen, why)
    return chosen


def plan_backfill(
    spec: Spec,
    mapping: TableMapping,
    ddb: DynamoDBClient | TableClients,
    splits: int | None = None,
    concurrent_tasks: int | None = None,
    *,
    export: tuple[str, tuple[str, ...]] | None = None,
) -> BackfillPlan:
    """``ddb``: the spec's TableClients, or one client for every side. ``export``: (bucket, data files)
    when the copy reads an export (one split per file) rather than scanning the source.

    The budget is shared by the tasks that run at the same time: ``concurrent_tasks`` (the
    cluster's task slots) when there are fewer slots than splits, else every split. Too many
    slots only makes the job slower; too few would overspend, so the caller passes what it has."""
    clients = TableClients.of(ddb)
    source = describe_shape(clients.source, mapping.source, "source")
    target = describe_shape(clients.target, mapping.target, "target")
    export_bucket, export_files = export or ("", ())
    total = len(export_files) if export else (splits or spec.backfill.splits)
    settings = spec.backfill
    read_budget = capacity_budget(source, settings.read_percent, settings.on_demand_read_units, write=False)
    write_budget = capacity_budget(target, settings.write_percent, settings.on_demand_write_units, write=True)
    if concurrent_tasks is not None and concurrent_tasks < 1:
        raise ValueError(f"concurrent_tasks must be at least 1, got {concurrent_tasks}")
    sharing = max(1, min(total, concurrent_tasks) if concurrent_tasks else total)
    insert_mode = INSERT_PUT
    if not mapping.replay:  # replay writes BatchWriteItem: insert_mode does not apply
        # auto's probe has its own client: no botocore retries (moto answers the statement 500; ask once,
        # not 10 times), made only when it probes
        probe = partial(make_client, "dynamodb", spec.home_where(), max_attempts=1, pool=2)
        insert_mode = insert_mode_for(settings.insert_mode, probe, spec.state_table, mapping.source)
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
        writes=WRITES_BATCH if mapping.replay else WRITES_INSERT_ONLY,
        export_bucket=export_bucket,
        export_files=export_files,
        insert_mode=insert_mode,
    )


class _SegmentCopier:
    def __init__(self, plan: BackfillPlan, segment: int, ddb: DynamoDBClient | TableClients | None) -> None:
        self.plan = plan
        self.segment = segment
        # Read the source, write the target, checkpoint in the home account (one client without roles).
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
        self.batch_requests = 0
        self.resent = 0
        self.file_requests = 0
        self.partiql_requests = 0
        self._counting = threading.Lock()  # the writes run in a thread pool
        # The run log: one recorder for the split, fed from the writer threads under its own lock.
        self.recorder = CopyRecorder(RunLog(self.clients.state, plan.state_table), plan.source, TABLE, segment)
        self._recording = threading.Lock()

    def _count(self, attribute: str, amount: float) -> None:
        with self._counting:
            setattr(self, attribute, getattr(self, attribute) + amount)

    def _record(
        self, *, items: int = 0, bytes: int = 0, read_units: float = 0.0, write_units: float = 0.0, throttled: int = 0
    ) -> None:
        with self._recording:
            self.recorder.add(
                items=items, bytes=bytes, read_units=read_units, write_units=write_units, throttled=throttled
            )

    def _with_retries(self, call: Callable[[], T], what: str) -> T:
        def count(_: BaseException) -> None:
            self._count("throttled", 1)
            self._record(throttled=1)

        return call_with_retries(
            call, f"segment {self.segment}: {what}", attempts=self.plan.max_write_attempts, on_retry=count
        )

    def _key_text(self, item: Item) -> str:
        return key_text(key_of(item, self.plan.key_names))

    # --- writes ------------------------------------------------------------------------------

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
            log.error("segment %d: PutItem of key %s failed", self.segment, self._key_text(item))
            raise
        if not written or response is None:  # the condition failed: the key is there already
            self._count("write_units_by_size", estimate)
            self.writes.charge(estimate)
            self._record(items=1, bytes=size, write_units=estimate)
            return False
        units = float(response.get("ConsumedCapacity", {}).get("CapacityUnits", estimate))
        self._count("write_units", units)
        self._count("write_units_by_size", estimate)
        self.writes.charge(units)
        self._record(items=1, bytes=size, write_units=units)
        return True

    def _put_batch(self, chunk: list[tuple[Item, int]]) -> int:
        """One chunk (at most 25 items, no key twice) with BatchWriteItem until DynamoDB has processed
        every item: UnprocessedItems are sent again after a backoff, never dropped. Returns the count."""
        pending = [{"PutRequest": {"Item": item}} for item, _ in chunk]
        sizes = {self._key_text(item): size for item, size in chunk}
        self._count("write_units_by_size", sum(put_units(size) for _, size in chunk))
        for round_number in range(MAX_UNPROCESSED_ROUNDS):
            self.writes.acquire()
            unprocessed, consumed = self._with_retries(partial(self._batch_write, pending), "BatchWriteItem")
            if consumed is None:  # the estimate for what was processed
                left = {self._key_text(r["PutRequest"]["Item"]) for r in unprocessed}
                consumed = float(sum(put_units(size) for key, size in sizes.items() if key not in left))
            self._count("write_units", consumed)
            self.writes.charge(consumed)
            self._record(write_units=consumed)
            if not unprocessed:
                self._record(items=len(chunk), bytes=sum(size for _, size in chunk))
                return len(chunk)
            pending = unprocessed
            self._before_resending(round_number, len(unprocessed), "unprocessed items")
        keys = ", ".join(self._key_text(r["PutRequest"]["Item"]) for r in pending[:3])
        raise RetryableError(
            f"segment {self.segment}: {len(pending)} items still unprocessed after {MAX_UNPROCESSED_ROUNDS} rounds "
            f"(keys {keys}…); the checkpoint is kept, rerun to resume"
        )

    def _before_resending(self, round_number: int, count: int, what: str) -> None:
        """Count a round that left ``count`` items to send again (a throttle), then wait its backoff."""
        self._count("resent", count)
        self._count("throttled", 1)
        self._record(throttled=1)
        delay = min(5.0, 0.05 * 2**round_number) * random.uniform(0.5, 1.0)
        log.info("segment %d: %d %s, sent again in %.2fs", self.segment, count, what, delay)
        time.sleep(delay)

    def _insert_batch(self, chunk: list[tuple[Item, int]]) -> int:
        """One chunk (at most 25 items, no key twice) as PartiQL INSERTs in BatchExecuteStatement until every
        statement has an answer: DuplicateItem is "already present"; throttled or transient statements are
        sent again after a backoff, never dropped; any other error fails the split naming the key. An item
        whose statement would be too long is written with the conditional PutItem. Returns the count written."""
        written = 0
        pending: list[tuple[Item, int, dict[str, Any]]] = []
        for item, size in chunk:
            statement = insert_statement(self.plan.target, item)
            if statement is None:
                written += self._put_insert_only(item, size)
            else:
                pending.append((item, size, statement))
        for round_number in range(MAX_UNPROCESSED_ROUNDS):
            if not pending:
                return written
            self.writes.acquire()
            statements = [statement for _, _, statement in pending]
            outcomes, consumed = self._with_retries(partial(self._batch_execute, statements), "BatchExecuteStatement")
            resend: list[tuple[Item, int, dict[str, Any]]] = []
            reached = 0.0  # units of the statements that reached the item: written, or refused as present
            reached_items = reached_bytes = 0
            for (item, size, statement), (code, message) in zip(pending, outcomes, strict=True):
                outcome = outcome_of(code)
                if outcome in (WRITTEN, PRESENT):
                    written += outcome == WRITTEN
                    reached += put_units(size)
                    reached_items += 1
                    reached_bytes += size
                elif outcome == RESEND:
                    resend.append((item, size, statement))
                else:
                    assert outcome == FAILED
                    key = self._key_text(item)
                    log.error("segment %d: INSERT of key %s failed: %s", self.segment, key, code)
                    raise PermanentError(
                        f"segment {self.segment}: the PartiQL INSERT of key {key} failed: {code}: {message[:200]}"
                    )
            self._count("write_units_by_size", reached)
            units = reached if consumed is None else consumed
            self._count("write_units", units)
            self.writes.charge(units)
            self._record(items=reached_items, bytes=reached_bytes, write_units=units)
            if not resend:
                return written
            pending = resend
            self._before_resending(round_number, len(resend), "statements throttled")
        keys = ", ".join(self._key_text(item) for item, _, _ in pending[:3])
        raise RetryableError(
            f"segment {self.segment}: {len(pending)} INSERTs still throttled after {MAX_UNPROCESSED_ROUNDS} rounds "
            f"(keys {keys}…); the checkpoint is kept, rerun to resume"
        )

    def _batch_execute(self, statements: list[dict[str, Any]]) -> tuple[list[tuple[str, str]], float | None]:
        self._count("partiql_requests", 1)
        return batch_execute_writes(self.clients.target, self.plan.target, statements)

    def _batch_write(self, requests: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], float | None]:
        self._count("batch_requests", 1)
        return batch_write_puts(self.clients.target, self.plan.target, requests)

    def _write_page(self, pool: ThreadPoolExecutor, items: list[Item], sizes: list[int]) -> int:
        """Write one page; the number of items written (the rest were there already: insert-only)."""
        if self.plan.writes == WRITES_INSERT_ONLY and self.plan.insert_mode == INSERT_PARTIQL:
            return sum(pool.map(self._insert_batch, _chunks(items, sizes, self.plan.key_names)))
        if self.plan.writes == WRITES_INSERT_ONLY:
            return sum(pool.map(self._put_insert_only, items, sizes))
        return sum(pool.map(self._put_batch, _chunks(items, sizes, self.plan.key_names)))

    # --- reads -------------------------------------------------------------------------------

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
        self._record(read_units=float(consumed))
        return page, sizes

    def _pages(self, cp: SegmentCheckpoint) -> Iterator[tuple[list[Item], list[int], Item | None, bool]]:
        """The split's pages after the checkpoint: (items, sizes, position to resume after, last page)."""
        if self.plan.export_files:
            yield from self._file_pages(cp.scanned)
            return
        last_key = cp.last_key
        while True:
            page, sizes = self._scan_page(last_key)
            last_key = page.get("LastEvaluatedKey")
            yield page.get("Items", []), sizes, last_key, last_key is None
            if last_key is None:
                return

    def _file_pages(self, skip: int) -> Iterator[tuple[list[Item], list[int], Item | None, bool]]:
        """The export data file's items after the first ``skip``, a page at a time (no read capacity)."""
        s3 = make_client("s3", self.plan.where, pool=4)
        self.file_requests += 1
        items = read_export_items(s3, self.plan.export_bucket, self.plan.export_files[self.segment], skip=skip)
        size = self.plan.page_size or FILE_PAGE_ITEMS
        page: list[Item] = []
        for item in items:
            page.append(item)
            if len(page) == size:
                yield page, [item_size(i) for i in page], None, False
                page = []
        yield page, [item_size(i) for i in page], None, True

    # --- the split -----------------------------------------------------------------------------

    def run(self) -> SegmentResult:
        started, started_at = time.monotonic(), time.time()
        plan = self.plan
        cp = self.store.load_segment(plan.source, plan.splits, self.segment)
        if cp is not None and cp.status == SEGMENT_DONE:
            return SegmentResult(self.segment, SEGMENT_DONE, cp.scanned, cp.written, cp.skipped, cp.pages, resumed=True)
        resumed = cp is not None and (cp.last_key is not None or cp.scanned > 0)
        cp = cp or SegmentCheckpoint(self.segment, plan.splits, SEGMENT_RUNNING, None, 0, 0, 0, 0)
        scanned, written, skipped, pages, last_key = cp.scanned, cp.written, cp.skipped, cp.pages, cp.last_key
        error = ""
        try:
            with ThreadPoolExecutor(max_workers=plan.write_concurrency) as pool:
                for items, sizes, position, last in self._pages(cp):
                    done = self._write_page(pool, items, sizes)
                    scanned += len(items)
                    written += done
                    skipped += len(items) - done
                    pages += 1
                    last_key = position
                    status = SEGMENT_DONE if last else SEGMENT_RUNNING
                    self.store.save_segment(
                        plan.source,
                        SegmentCheckpoint(
                            self.segment, plan.splits, status, last_key, scanned, written, skipped, pages
                        ),
                    )
                    if last:
                        break
        except Exception as exc:
            # The checkpoint keeps the last completed page: a rerun resumes after it.
            error = f"{type(exc).__name__}: {exc}"
            log.error("segment %d of %s failed: %s", self.segment, plan.source, error)
            self.store.save_segment(
                plan.source,
                SegmentCheckpoint(
                    self.segment, plan.splits, SEGMENT_FAILED, last_key, scanned, written, skipped, pages, error
                ),
            )
        finally:
            with self._recording:
                self.recorder.close()  # the last window, also of a failed split
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
            batch_requests=self.batch_requests,
            resent=self.resent,
            file_requests=self.file_requests,
            partiql_requests=self.partiql_requests,
        )


def _chunks(items: list[Item], sizes: list[int], key_names: tuple[str, ...]) -> list[list[tuple[Item, int]]]:
    """A page's BatchWriteItem requests: at most 25 items each, no key twice in one request. A page holds
    each key once (a Scan page, a page of an export file); were one to repeat, its last image is kept."""
    latest: dict[str, tuple[Item, int]] = {}
    for item, size in zip(items, sizes, strict=True):
        latest[key_text(key_of(item, key_names))] = (item, size)
    entries = list(latest.values())
    return [entries[start : start + BATCH_ITEMS] for start in range(0, len(entries), BATCH_ITEMS)]


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
    imported: ImportResult | None = None  # write: import — ImportTable's counts
    released: str = ""  # a replay copy: what its release let go

    @property
    def copied(self) -> int:
        """Items the copy wrote (or the import loaded)."""
        return self.written + (self.imported.imported if self.imported else 0)

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
            "read_units", "write_units", "read_units_by_size", "write_units_by_size", "batch_requests",
            "resent", "file_requests", "partiql_requests",
        )  # fmt: skip
        return {name: sum(getattr(r, name) for r in self.results) for name in names}

    def describe(self) -> str:
        if self.imported is not None:
            i = self.imported
            lines = [
                f"{self.source} -> {self.target}: imported {i.imported} of {i.processed} items, {i.errors} errors "
                f"({i.import_arn}), {self.seconds:.1f}s"
            ]
        else:
            lines = [
                f"{self.source} -> {self.target}: {len(self.results)} segments, {self.scanned} items read, "
                f"{self.written} written, {sum(r.skipped for r in self.results)} already present, "
                f"{len(self.failed)} failed, {self.seconds:.1f}s"
            ]
        lines += [f"  segment {r.segment}: {r.error}" for r in self.failed]
        if self.released:
            lines.append(f"  {self.released}")
        return "\n".join(lines)
