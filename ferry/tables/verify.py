"""VERIFY: prove, item by item, that a target table holds exactly what its source holds.

Segment ``i`` of the source's parallel scan is compared with segment ``i`` of the target's: for
the same ``TotalSegments`` a key lands in the same segment number on every table (segments split
the partition-key hash space). Per segment the target's items are held in a dict and the source
is streamed page by page past it; what is left over in the dict is in the target only.

Every candidate difference is then re-read on both sides with a consistent read before it is
reported (``recheck``): a scan that raced a live write, or a key that somehow landed in another
segment, does not show up as a false difference. Because of that confirmation the scans
themselves may be the cheaper eventually consistent kind; without ``recheck`` they are consistent.

Equality is DynamoDB's (see :mod:`ferry.wire`). A ferry tombstone left in the target is always a
difference. With ``repair`` each confirmed difference is fixed by copying the source's current
state of that key, then checked again; whatever still differs stays in the report.

Only keys and counts are logged, never item payloads.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from ferry.aws import call_with_retries, translate_error
from ferry.clients import TableClients, table_clients
from ferry.errors import RetryableError, SetupError
from ferry.spec import Spec, TableMapping
from ferry.tables.protocol import is_tombstone
from ferry.tables.schema import TableShape, describe_shape, key_schema_mismatch
from ferry.verify_report import OnVerifyProgress, VerifyProgress, VerifyReportMixin
from ferry.wire import Item, canonical, differing_attributes, key_of, key_text

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)
T = TypeVar("T")

MISSING = "missing"  # in the source, not in the target
EXTRA = "extra"  # in the target, not in the source
DIFFERENT = "different"  # in both, with different attributes
TOMBSTONE = "tombstone"  # a ferry tombstone left in the target
KINDS = (MISSING, EXTRA, DIFFERENT, TOMBSTONE)

_BATCH_GET_KEYS = 100  # BatchGetItem limit per request
_ATTEMPTS = 8  # on top of botocore's own retries, for transient errors


@dataclass(frozen=True)
class Difference:
    kind: str
    key: str  # ferry.wire.key_text(key)
    attributes: tuple[str, ...] = ()  # for "different": names only, never values

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "attributes": list(self.attributes)}


@dataclass(frozen=True)
class SegmentVerify:
    segment: int
    source_items: int
    target_items: int  # tombstones not included: each one is a difference
    differences: tuple[Difference, ...]
    repaired: int = 0


@dataclass(frozen=True)
class TableVerifyReport(VerifyReportMixin):
    KINDS: ClassVar[tuple[str, ...]] = KINDS
    UNIT: ClassVar[str] = "items"
    PARTS: ClassVar[str] = "segments"

    source: str
    target: str
    source_items: int
    target_items: int
    differences: tuple[Difference, ...]
    segments: int
    seconds: float
    repaired: int = 0


# --- reads ---------------------------------------------------------------------------------


def _call(fn: Callable[[], T], what: str) -> T:
    return call_with_retries(fn, what, attempts=_ATTEMPTS, base_delay=0.2)


def _scan_segment(
    ddb: DynamoDBClient, table: str, total_segments: int, segment: int, *, consistent: bool, page_size: int
) -> Iterator[list[Item]]:
    """The pages of one parallel-scan segment, one at a time."""
    kwargs: dict[str, Any] = {
        "TableName": table,
        "Segment": segment,
        "TotalSegments": total_segments,
        "ConsistentRead": consistent,
    }
    if page_size:
        kwargs["Limit"] = page_size
    while True:
        page = _call(lambda: ddb.scan(**kwargs), f"Scan {table} segment {segment}/{total_segments}")
        yield cast("list[Item]", page.get("Items", []))
        last_key = page.get("LastEvaluatedKey")
        if not last_key:
            return
        kwargs["ExclusiveStartKey"] = last_key


def _key_id(key: Item, key_names: Sequence[str]) -> tuple[Any, ...]:
    """A hashable identity of a key in which DynamoDB-equal keys are equal (``1.0`` is ``1``)."""
    return tuple(canonical(key[name]) for name in key_names)


def _batch_get_table(ddb: DynamoDBClient, table: str, names: Sequence[str], keys: Sequence[Item]) -> dict[Any, Item]:
    """Consistent reads of ``keys`` on one table, by key identity."""
    found: dict[Any, Item] = {}
    for start in range(0, len(keys), _BATCH_GET_KEYS):
        request: dict[str, Any] = {table: {"Keys": list(keys[start : start + _BATCH_GET_KEYS]), "ConsistentRead": True}}
        stalled = 0
        while request:
            page = _call(partial(ddb.batch_get_item, RequestItems=request), f"BatchGetItem {table}")
            items = cast("list[Item]", page.get("Responses", {}).get(table, []))
            for item in items:
                found[_key_id(key_of(item, names), names)] = item
            request = page.get("UnprocessedKeys") or {}
            if request:
                # Unprocessed keys come from throttling or the 16 MB response limit: back off, and
                # give up only after several rounds without any progress.
                stalled = 0 if items else stalled + 1
                if stalled >= _ATTEMPTS:
                    raise RetryableError(f"BatchGetItem on {table}: keys still unprocessed")
                time.sleep(min(5.0, 0.05 * 2**stalled) * random.uniform(0.5, 1.0))
    return found


def _batch_get(
    clients: TableClients, source: TableShape, target_name: str, keys: Sequence[Item]
) -> tuple[dict[Any, Item], dict[Any, Item]]:
    """Consistent reads of ``keys`` on both tables: (source items, target items) by key identity.
    One request never spans both tables: they may be in different accounts."""
    names = source.key_names
    return (
        _batch_get_table(clients.source, source.name, names, keys),
        _batch_get_table(clients.target, target_name, names, keys),
    )


def _classify(key: Item, source_item: Item | None, target_item: Item | None) -> Difference | None:
    text = key_text(key)
    if target_item is not None and is_tombstone(target_item):
        return Difference(TOMBSTONE, text)
    if source_item is None and target_item is None:
        return None
    if target_item is None:
        return Difference(MISSING, text)
    if source_item is None:
        return Difference(EXTRA, text)
    attributes = differing_attributes(source_item, target_item)
    return Difference(DIFFERENT, text, tuple(attributes)) if attributes else None


@dataclass(frozen=True)
class _Reread:
    """A consistent re-read of some keys: the ones that still differ, and where each key is now."""

    differences: list[tuple[Item, Difference]]
    present: dict[Any, tuple[bool, bool]]  # key identity -> (in the source, in the target; no tombstone)


def _confirm(clients: TableClients, source: TableShape, target_name: str, keys: Sequence[Item]) -> _Reread:
    """Re-read ``keys`` on both sides; the ones that still differ, with how, and where each one is."""
    names = source.key_names
    source_items, target_items = _batch_get(clients, source, target_name, keys)
    differences: list[tuple[Item, Difference]] = []
    present: dict[Any, tuple[bool, bool]] = {}
    for key in keys:
        kid = _key_id(key, names)
        source_item, target_item = source_items.get(kid), target_items.get(kid)
        present[kid] = (source_item is not None, target_item is not None and not is_tombstone(target_item))
        difference = _classify(key, source_item, target_item)
        if difference is not None:
            differences.append((key, difference))
    return _Reread(differences, present)


# --- repair --------------------------------------------------------------------------------


def repair_key(ddb: DynamoDBClient | TableClients, source_name: str, target_name: str, key: Item) -> str:
    """Make the target's item at ``key`` what the source holds now: "put" it unchanged, or "delete" it.

    A live write to the same key racing this repair can leave the target stale; the caller checks
    the key again afterwards (``verify_table`` does) and reports what still differs.
    ``ddb``: TableClients, or one client for both sides.
    """
    clients = TableClients.of(ddb)
    response = _call(
        lambda: clients.source.get_item(TableName=source_name, Key=key, ConsistentRead=True), f"GetItem {source_name}"
    )
    item = cast("Item | None", response.get("Item"))
    if item is not None:
        _call(lambda: clients.target.put_item(TableName=target_name, Item=item), f"PutItem {target_name}")
        action = "put"
    else:
        _call(lambda: clients.target.delete_item(TableName=target_name, Key=key), f"DeleteItem {target_name}")
        action = "delete"
    log.info("repair %s -> %s: %s key %s", source_name, target_name, action, key_text(key))
    return action


# --- one segment ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    """A key the scans disagree on, and which scan had it (a tombstone is no target item)."""

    key: Item
    difference: Difference
    in_source: bool
    in_target: bool


@dataclass
class _SegmentScan:
    """Both scans of one segment: the target's held in memory, the source's streamed past it."""

    clients: TableClients
    source: TableShape
    target_name: str
    total_segments: int
    segment: int
    consistent: bool
    page_size: int
    source_count: int = 0
    target_count: int = 0
    on_page: Callable[[int], None] | None = None  # told each source page's item count

    def pages(self, ddb: DynamoDBClient, table: str) -> Iterator[list[Item]]:
        return _scan_segment(
            ddb, table, self.total_segments, self.segment, consistent=self.consistent, page_size=self.page_size
        )

    def candidates(self) -> list[_Candidate]:
        names = self.source.key_names
        target_items: dict[Any, Item] = {}
        tombstones: dict[Any, Item] = {}
        for page in self.pages(self.clients.target, self.target_name):
            for item in page:
                (tombstones if is_tombstone(item) else target_items)[_key_id(key_of(item, names), names)] = item
        self.target_count = len(target_items)
        found: list[_Candidate] = []
        for page in self.pages(self.clients.source, self.source.name):
            if self.on_page is not None:
                self.on_page(len(page))
            for item in page:
                self.source_count += 1
                key = key_of(item, names)
                kid = _key_id(key, names)
                target_item = target_items.pop(kid, None)
                in_target = target_item is not None
                difference = _classify(key, item, target_item or tombstones.pop(kid, None))
                if difference is not None:
                    found.append(_Candidate(key, difference, True, in_target))
        for in_target, item in [(True, i) for i in target_items.values()] + [(False, i) for i in tombstones.values()]:
            key = key_of(item, names)
            difference = _classify(key, None, item)
            if difference is not None:
                found.append(_Candidate(key, difference, False, in_target))
        return found


def verify_segment(
    ddb: DynamoDBClient | TableClients,
    source: TableShape,
    target_name: str,
    total_segments: int,
    segment: int,
    *,
    recheck: bool = True,
    repair: bool = False,
    page_size: int = 0,
    on_page: Callable[[int], None] | None = None,
) -> SegmentVerify:
    """Compare segment ``segment`` of ``total_segments`` of the source with the same segment of the target.
    With ``repair`` the item counts are those after the repair. ``ddb``: TableClients, or one client.
    ``on_page``: told the item count of each source page as it is compared."""
    clients = TableClients.of(ddb)
    scan = _SegmentScan(clients, source, target_name, total_segments, segment, not recheck, page_size, on_page=on_page)
    candidates = scan.candidates()
    keys = [c.key for c in candidates]
    confirmed = _confirm(clients, source, target_name, keys).differences if recheck and keys else None
    if confirmed is None:
        confirmed = [(c.key, c.difference) for c in candidates]
    where = f"segment {segment}/{total_segments} of {source.name}"
    if len(confirmed) < len(candidates):
        log.info(
            "%s: %d of %d candidate differences gone on a consistent re-read",
            where,
            len(candidates) - len(confirmed),
            len(candidates),
        )
    source_count, target_count, repaired = scan.source_count, scan.target_count, 0
    if repair and confirmed:
        for key, _ in confirmed:
            repair_key(clients, source.name, target_name, key)
        after = _confirm(clients, source, target_name, [key for key, _ in confirmed])
        scanned = {_key_id(c.key, source.key_names): c for c in candidates}
        for kid, (in_source, in_target) in after.present.items():
            before = scanned.get(kid)  # every confirmed key was a candidate of the scans
            source_count += in_source - (before.in_source if before else False)
            target_count += in_target - (before.in_target if before else False)
        repaired, confirmed = len(confirmed) - len(after.differences), after.differences
    for _, difference in confirmed:
        log.debug("%s: %s key %s", where, difference.kind, difference.key)
    return SegmentVerify(segment, source_count, target_count, tuple(d for _, d in confirmed), repaired)


# --- a whole table -------------------------------------------------------------------------


class _VerifyTally:
    """Items compared and segments done across a table's segment threads, told to ``on_progress``."""

    def __init__(self, source: str, expected: int | None, parts: int, on_progress: OnVerifyProgress | None) -> None:
        self.source = source
        self.expected = expected
        self.parts = parts
        self.on_progress = on_progress
        self.compared = 0
        self.parts_done = 0
        self._lock = threading.Lock()

    def add(self, items: int = 0, parts: int = 0) -> None:
        if self.on_progress is None:
            return
        with self._lock:
            self.compared += items
            self.parts_done += parts
            tick = VerifyProgress(self.source, "items", self.compared, self.expected, self.parts_done, self.parts)
        self.on_progress(tick)


def _every_segment(
    run: Callable[[int], SegmentVerify], total: int, workers: int, what: str, tally: _VerifyTally | None = None
) -> list[SegmentVerify]:
    """``run`` for every segment on ``workers`` threads. The first failure cancels the segments not yet
    started and is raised, as one of ferry's errors where it is an AWS one."""
    results: list[SegmentVerify] = []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, total))) as pool:
        futures: dict[Future[SegmentVerify], int] = {pool.submit(run, i): i for i in range(total)}
        for future in as_completed(futures):
            try:
                results.append(future.result())
                if tally is not None:
                    tally.add(parts=1)
            except Exception as exc:
                for pending in futures:
                    pending.cancel()
                failed = futures[future]
                log.error("%s: segment %d of %d failed", what, failed, total)
                translated = translate_error(exc, f"{what} segment {failed}/{total}")
                if translated is exc:
                    raise
                raise translated from exc
    return results


def verify_table(
    spec: Spec,
    mapping: TableMapping,
    *,
    segments: int | None = None,
    workers: int = 4,
    repair: bool = False,
    ddb_factory: Callable[[], DynamoDBClient | TableClients] | None = None,
    on_progress: OnVerifyProgress | None = None,
) -> TableVerifyReport:
    """Verify (and with ``repair`` fix) one table mapping, segment-parallel. Raises if a segment fails.
    ``ddb_factory`` returns TableClients or one client for both sides (default: the spec's clients).
    ``on_progress`` (from any thread): items compared and segments done, against the source's ItemCount."""
    factory = ddb_factory or (lambda: table_clients(spec))
    total = segments or spec.backfill.splits
    if not 1 <= total <= 1_000_000:
        raise ValueError(f"segments must be between 1 and 1000000, got {total}")
    started = time.monotonic()
    clients = TableClients.of(factory())
    source = describe_shape(clients.source, mapping.source, "source")
    target = describe_shape(clients.target, mapping.target, "target")
    mismatch = key_schema_mismatch(source, target)
    if mismatch:
        raise SetupError(f"cannot verify {mapping.source} -> {mapping.target}: {mismatch}")

    tally = _VerifyTally(mapping.source, source.item_count, total, on_progress)
    tally.add()

    def run(segment: int) -> SegmentVerify:
        return verify_segment(
            factory(),
            source,
            mapping.target,
            total,
            segment,
            repair=repair,
            page_size=spec.backfill.page_size,
            on_page=(lambda items: tally.add(items=items)) if on_progress else None,
        )

    results = _every_segment(run, total, workers, f"verify {mapping.source} -> {mapping.target}", tally)
    differences = tuple(sorted((d for r in results for d in r.differences), key=lambda d: (d.kind, d.key)))
    report = TableVerifyReport(
        source=mapping.source,
        target=mapping.target,
        source_items=sum(r.source_items for r in results),
        target_items=sum(r.target_items for r in results),
        differences=differences,
        segments=total,
        seconds=time.monotonic() - started,
        repaired=sum(r.repaired for r in results),
    )
    log.info("verify %s -> %s: %s, differences %s", report.source, report.target, report.summary(), report.counts())
    return report
