"""``ferry finalize``: end the copy's phase. Insert-only (docs/adr/0001): the backfill phase ends and every
tombstone is removed. Replay (docs/adr/0004): the table, released already, is marked live (it has no
tombstones)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ferry.aws import delete_item_if
from ferry.clients import TableClients
from ferry.errors import SetupError
from ferry.spec import Spec, TableMapping
from ferry.tables.protocol import PHASE_BACKFILL, PHASE_HOLD, PHASE_LIVE, PHASE_REPLAY, tombstone_only_condition
from ferry.tables.schema import describe_shape
from ferry.tables.state import SEGMENT_DONE, TABLE, StateStore
from ferry.wire import key_of

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinalizeResult:
    source: str
    target: str
    tombstones_removed: int
    waited_seconds: float


def backfill_complete(store: StateStore, source: str, kind: str = TABLE) -> tuple[bool, str]:
    """Whether the latest copy finished: its copy run says so; without one (state from before runs were
    recorded), the latest run by segment count finished every segment."""
    run = store.load_copy(source, kind)
    if run is not None:
        if run.done:
            return True, f"copy done ({run.read or 'scan'} + {run.write or 'batch'}, {run.items} items)"
        if kind != TABLE or run.write == "import":
            return False, f"copy {run.status}" + (f": {run.detail}" if run.detail else "")
    segments = store.list_segments(source)
    if not segments:
        return False, "no backfill has run"
    totals = {cp.total for cp in segments}
    for total in sorted(totals, reverse=True):
        of_total = [cp for cp in segments if cp.total == total]
        done = sum(cp.status == SEGMENT_DONE for cp in of_total)
        if done == total:
            return True, f"{total} of {total} segments done"
    total = max(totals)
    done = sum(cp.status == SEGMENT_DONE and cp.total == total for cp in segments)
    return False, f"{done} of {total} segments done"


def remove_tombstones(ddb: DynamoDBClient, target: str, key_names: tuple[str, ...]) -> int:
    """Delete every tombstone in ``target``; conditional, so a live put that replaced one survives."""
    removed = 0
    condition = tombstone_only_condition()
    kwargs: dict[str, Any] = {
        "TableName": target,
        "FilterExpression": condition["ConditionExpression"],
        "ExpressionAttributeNames": condition["ExpressionAttributeNames"],
        "ExpressionAttributeValues": condition["ExpressionAttributeValues"],
        "ConsistentRead": True,
    }
    while True:
        page = ddb.scan(**kwargs)
        for item in page.get("Items", []):
            # Conditional: False when a live write replaced the tombstone meanwhile (kept).
            if delete_item_if(ddb, target, key_of(item, key_names), condition):
                removed += 1
        if "LastEvaluatedKey" not in page:
            return removed
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def finalize_table(
    spec: Spec,
    mapping: TableMapping,
    ddb: DynamoDBClient | TableClients,
    *,
    force: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> FinalizeResult:
    """``ddb``: TableClients (phase in the state table, tombstones in the target), or one client."""
    clients = TableClients.of(ddb)
    store = StateStore(clients.state, spec.state_table)
    complete, detail = backfill_complete(store, mapping.source)
    if not complete and not force:
        raise SetupError(
            f"{mapping.source}: the backfill is not complete ({detail}); run `ferry backfill` first (or --force)"
        )
    phase = store.get_phase(mapping.source)
    if phase == PHASE_HOLD:
        raise SetupError(
            f"{mapping.source}: its changes are still held (phase hold): the copy has not been released; "
            "run `ferry release` (the backfill does it when its copy completes)"
        )
    if phase == PHASE_REPLAY:
        # Released and replaying: no tombstone was ever written (deletes are real), nothing waits on a cache.
        store.set_phase(mapping.source, PHASE_LIVE)
        return FinalizeResult(mapping.source, mapping.target, 0, 0.0)
    target = describe_shape(clients.target, mapping.target, "target")
    waited = 0.0
    if phase != PHASE_LIVE:
        store.set_phase(mapping.source, PHASE_LIVE)
        # Every handler re-reads the phase within phase_cache_seconds; after twice that (plus a
        # margin for a write already in flight) no handler writes tombstones any more.
        waited = 2 * spec.replication.phase_cache_seconds + 1.0
        log.info("%s: phase live; waiting %.1fs for handler caches", mapping.source, waited)
        sleep(waited)
    removed = 0
    while True:  # until a whole pass finds none
        found = remove_tombstones(clients.target, mapping.target, target.key_names)
        removed += found
        if found == 0:
            break
    return FinalizeResult(mapping.source, mapping.target, removed, waited)


def start_backfill_phase(
    spec: Spec, mapping: TableMapping, store: StateStore, sleep: Callable[[float], None] = time.sleep
) -> float:
    """Before a scan starts, the table must be in its backfill phase and every handler must know it."""
    if not store.has_phase(mapping.source):
        store.set_phase(mapping.source, PHASE_BACKFILL)  # handlers already default to backfill
        return 0.0
    if store.get_phase(mapping.source) == PHASE_BACKFILL:
        return 0.0
    store.set_phase(mapping.source, PHASE_BACKFILL)
    waited = 2 * spec.replication.phase_cache_seconds + 1.0
    sleep(waited)
    return waited
