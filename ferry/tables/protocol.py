"""The ordering protocol between live replication and the backfill (docs/adr/0001).

Pure decisions only; the callers do the I/O.

- Backfill writes are insert-only (``attribute_not_exists`` on the hash key): they never
  overwrite anything the live path wrote, so an old scanned image cannot win over a newer one.
- While a table is in its ``backfill`` phase, a REMOVE is written as a *tombstone*: the key
  attributes plus :data:`TOMBSTONE_ATTRIBUTE`. The tombstone makes a stale backfill insert of
  the deleted item fail its condition, so the item is not resurrected.
- ``finalize`` switches the phase to ``live`` (handlers then really delete), waits out the
  handlers' phase cache and deletes the tombstones conditionally.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from ferry.wire import Item

TOMBSTONE_ATTRIBUTE = "__ferry_tombstone"
# The marker's exact value: a user attribute that happens to share the name is not a tombstone.
TOMBSTONE_VALUE = {"S": "ferry:tombstone:v1"}
PHASE_BACKFILL = "backfill"
PHASE_LIVE = "live"
PHASES = (PHASE_BACKFILL, PHASE_LIVE)
TTL_PRINCIPAL = "dynamodb.amazonaws.com"


class StreamAction(enum.Enum):
    PUT_NEW_IMAGE = "put"
    DELETE = "delete"
    PUT_TOMBSTONE = "tombstone"
    SKIP = "skip"


def is_ttl_delete(record: Mapping[str, Any]) -> bool:
    identity = record.get("userIdentity") or {}
    return identity.get("type") == "Service" and identity.get("principalId") == TTL_PRINCIPAL


def decide_stream_action(event_name: str, phase: str, *, ttl_delete: bool, replicate_ttl_deletes: bool) -> StreamAction:
    """What the live handler does with one stream record."""
    if event_name in ("INSERT", "MODIFY"):
        return StreamAction.PUT_NEW_IMAGE
    if event_name != "REMOVE":
        raise ValueError(f"unknown stream eventName {event_name!r}")
    if ttl_delete and not replicate_ttl_deletes:
        return StreamAction.SKIP
    if phase == PHASE_LIVE:
        return StreamAction.DELETE
    # Unknown or missing phase counts as backfill: a tombstone never loses data, finalize removes it.
    return StreamAction.PUT_TOMBSTONE


def tombstone_for(keys: Item) -> Item:
    return {**keys, TOMBSTONE_ATTRIBUTE: dict(TOMBSTONE_VALUE)}


def is_tombstone(item: Mapping[str, Any]) -> bool:
    return item.get(TOMBSTONE_ATTRIBUTE) == TOMBSTONE_VALUE


def insert_only_condition(hash_key: str) -> dict[str, Any]:
    """Arguments that make a PutItem insert-only: it fails if any item (or tombstone) has the key."""
    return {
        "ConditionExpression": "attribute_not_exists(#ferry_hk)",
        "ExpressionAttributeNames": {"#ferry_hk": hash_key},
    }


def tombstone_only_condition() -> dict[str, Any]:
    """Arguments that make a DeleteItem (or a Scan filter) match a tombstone only, never a live write
    that replaced it nor a user item with an attribute of the same name."""
    return {
        "ConditionExpression": "#ferry_ts = :ferry_ts",
        "ExpressionAttributeNames": {"#ferry_ts": TOMBSTONE_ATTRIBUTE},
        "ExpressionAttributeValues": {":ferry_ts": dict(TOMBSTONE_VALUE)},
    }
