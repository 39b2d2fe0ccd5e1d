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
from ferry.verify_report import VerifyReportMixin
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


def _confirm(
    clients: TableClients, source: TableShape, target_name: str, keys: Sequence[Item]
) -> list[tuple[Item, Difference]]:
    """Re-read ``keys`` on both sides; the ones that still differ, with how."""
    names = source.key_names
    source_items, target_items = _batch_get(clients, source, target_name, keys)
    out: list[tuple[Item, Difference]] = []
    for key in keys:
        kid = _key_id(key, names)
        difference = _classify(key, source_items.get(kid), target_items.get(kid))
        if difference is not None:
            out.append((key, difference))
    return out


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
) -> SegmentVerify:
    """Compare segment ``segment`` of ``total_segments`` of the source with the same segment of the target.
    ``ddb``: TableClients, or one client for both sides."""
    clients = TableClients.of(ddb)
    names = source.key_names
    consistent = not recheck

    # The target's segment in memory (payloads by key identity), tombstones apart.
    target_items: dict[Any, Item] = {}
    tombstones: dict[Any, Item] = {}
    for page in _scan_segment(
        clients.target, target_name, total_segments, segment, consistent=consistent, page_size=page_size
    ):
        for item in page:
            key = key_of(item, names)
            (tombstones if is_tombstone(item) else target_items)[_key_id(key, names)] = item
    target_count = len(target_items)

    # Stream the source past it.
    source_count = 0
    candidates: list[tuple[Item, Difference]] = []
    for page in _scan_segment(
        clients.source, source.name, total_segments, segment, consistent=consistent, page_size=page_size
    ):
        for item in page:
            source_count += 1
            key = key_of(item, names)
            kid = _key_id(key, names)
            target_item = target_items.pop(kid, None)
            if target_item is None:
                target_item = tombstones.pop(kid, None)
            difference = _classify(key, item, target_item)
            if difference is not None:
                candidates.append((key, difference))
    for item in (*target_items.values(), *tombstones.values()):
        key = key_of(item, names)
        difference = _classify(key, None, item)
        if difference is not None:
            candidates.append((key, difference))
    del target_items, tombstones

    confirmed = (
        _confirm(clients, source, target_name, [key for key, _ in candidates]) if recheck and candidates else candidates
    )
    if recheck and len(confirmed) < len(candidates):
        log.info(
            "segment %d/%d of %s: %d of %d candidate differences gone on a consistent re-read",
            segment,
            total_segments,
            source.name,
            len(candidates) - len(confirmed),
            len(candidates),
        )

    repaired = 0
    if repair and confirmed:
        for key, _ in confirmed:
            repair_key(clients, source.name, target_name, key)
        remaining = _confirm(clients, source, target_name, [key for key, _ in confirmed])
        repaired = len(confirmed) - len(remaining)
        confirmed = remaining

    for _, difference in confirmed:
        log.debug(
            "segment %d/%d of %s: %s key %s", segment, total_segments, source.name, difference.kind, difference.key
        )
    return SegmentVerify(
        segment=segment,
        source_items=source_count,
        target_items=target_count,
        differences=tuple(d for _, d in confirmed),
        repaired=repaired,
    )


# --- a whole table -------------------------------------------------------------------------


def verify_table(
    spec: Spec,
    mapping: TableMapping,
    *,
    segments: int | None = None,
    workers: int = 4,
    repair: bool = False,
    ddb_factory: Callable[[], DynamoDBClient | TableClients] | None = None,
) -> TableVerifyReport:
    """Verify (and with ``repair`` fix) one table mapping, segment-parallel. Raises if a segment fails.
    ``ddb_factory`` returns TableClients or one client for both sides (default: the spec's clients)."""
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

    def run(segment: int) -> SegmentVerify:
        return verify_segment(
            factory(), source, mapping.target, total, segment, repair=repair, page_size=spec.backfill.page_size
        )

    results: list[SegmentVerify] = []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, total))) as pool:
        futures: dict[Future[SegmentVerify], int] = {pool.submit(run, i): i for i in range(total)}
        for future in as_completed(futures):
            try:
                results.append(future.result())
            except Exception as exc:
                for pending in futures:
                    pending.cancel()
                failed = futures[future]
                log.error("verify %s -> %s: segment %d of %d failed", mapping.source, mapping.target, failed, total)
                translated = translate_error(
                    exc, f"verify {mapping.source} -> {mapping.target} segment {failed}/{total}"
                )
                if translated is exc:
                    raise
                raise translated from exc

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
    log.info(
        "verify %s -> %s: %d segments, %d source items, %d target items, differences %s, %d repaired, %.1fs",
        report.source,
        report.target,
        total,
        report.source_items,
        report.target_items,
        report.counts(),
        report.repaired,
        report.seconds,
    )
    return report
