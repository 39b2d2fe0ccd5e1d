"""The ordering protocols between live replication and the backfill (docs/adr/0001, 0004).

Pure decisions only; the callers do the I/O.

Replay (the default, docs/adr/0004): changes are captured first and *held*; the copy writes at bulk
speed, unconditionally, while nothing else writes the target; then the consumer is released and
applies every captured change in order. The phase goes ``hold`` → ``replay`` (released) → ``live``.
While a table is held, its consumer must not apply anything (:data:`StreamAction.HOLD`).

Insert-only (docs/adr/0001), phases ``backfill`` → ``live``:

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
PHASE_BACKFILL = "backfill"  # insert-only copy: the consumer runs, REMOVEs become tombstones
PHASE_LIVE = "live"
PHASE_HOLD = "hold"  # replay copy: captured changes wait in the stream/queue, the consumer applies nothing
PHASE_REPLAY = "replay"  # replay copy done and released: the consumer applies the held changes, then the new
PHASES = (PHASE_BACKFILL, PHASE_LIVE, PHASE_HOLD, PHASE_REPLAY)
TTL_PRINCIPAL = "dynamodb.amazonaws.com"


class StreamAction(enum.Enum):
    PUT_NEW_IMAGE = "put"
    DELETE = "delete"
    PUT_TOMBSTONE = "tombstone"
    SKIP = "skip"
    HOLD = "hold"  # the table's changes are held until its copy is released: apply nothing, fail the record


def consumer_released(phase: str | None) -> bool:
    """Whether a table's (or bucket's) changes may be applied now: everything but a held replay copy."""
    return phase != PHASE_HOLD


def replay_consumer_released(phase: str | None) -> bool:
    """Whether a replay table's (or bucket's) consumer may run: not before capture has begun (no phase
    yet) and not while its changes are held."""
    return phase is not None and consumer_released(phase)


def deletes_leave_tombstones(phase: str | None) -> bool:
    """Whether a delete must leave a tombstone: while an insert-only copy may still run (phase
    ``backfill``, or no phase known). Held and released replay copies and live tables delete for real:
    no conditional copy write could resurrect the key, and the replay re-applies every change anyway."""
    return phase not in (PHASE_LIVE, PHASE_REPLAY, PHASE_HOLD)


def is_ttl_delete(record: Mapping[str, Any]) -> bool:
    identity = record.get("userIdentity") or {}
    return identity.get("type") == "Service" and identity.get("principalId") == TTL_PRINCIPAL


def decide_stream_action(event_name: str, phase: str, *, ttl_delete: bool, replicate_ttl_deletes: bool) -> StreamAction:
    """What the live handler does with one stream record, by the table's phase."""
    if event_name not in ("INSERT", "MODIFY", "REMOVE"):
        raise ValueError(f"unknown stream eventName {event_name!r}")
    if not consumer_released(phase):
        return StreamAction.HOLD
    if event_name in ("INSERT", "MODIFY"):
        return StreamAction.PUT_NEW_IMAGE
    if ttl_delete and not replicate_ttl_deletes:
        return StreamAction.SKIP
    # Unknown or missing phase counts as backfill: a tombstone never loses data, finalize removes it.
    return StreamAction.PUT_TOMBSTONE if deletes_leave_tombstones(phase) else StreamAction.DELETE


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


# --- replay (docs/adr/0004) ---------------------------------------------------------------------

# A released consumer starts at the oldest record the stream still has, and never discards a record
# for its age: the held records are as old as the copy is long.
REPLAY_STARTING_POSITION = "TRIM_HORIZON"
UNLIMITED_RECORD_AGE = -1
RERUN_INSERT_ONLY = "rerun the copy with `ferry backfill --protocol insert-only`"


def copy_refusal(protocol: str, phase: str | None) -> str | None:
    """Why a copy of ``protocol`` must not start on a table in ``phase`` (None: it may).

    A replay copy writes unconditionally, so it may run only while the table's changes are held: after
    the release (or while an insert-only consumer runs) it would write old images over newer ones."""
    if protocol != "replay":
        return None  # insert-only never overwrites: it may run against a live target
    if phase is None:
        return "it has no phase yet: run `ferry init` first (it starts capturing changes and holds them)"
    if phase == PHASE_HOLD:
        return None
    if phase == PHASE_BACKFILL:
        return (
            "its changes are being applied concurrently (phase backfill, insert-only), so an unconditional "
            f"replay copy would overwrite them; {RERUN_INSERT_ONLY}"
        )
    return (
        f"its copy was already released (phase {phase}): a second replay copy would write old images over "
        f"the replayed changes; {RERUN_INSERT_ONLY} against the live target"
    )


def release_refusal(
    *,
    copy_complete: bool,
    copy_detail: str,
    captured_at: float,
    now: float,
    retention_seconds: float,
    shards_at_capture: tuple[str, ...] = (),
    shards_now: tuple[str, ...] | None = None,
    holder: str = "stream",
) -> str | None:
    """Why the held changes must not be released now (None: release them).

    - The copy must have finished: a consumer released earlier would apply a change that the copy then
      overwrites with an older image.
    - Every change since capture began must still be held: the stream keeps a record 24 hours (SQS 14
      days), so the capture must be younger than that, and (streams) every shard that was open when it
      began must still be listed — a shard gone from the stream had its records trimmed."""
    if not copy_complete:
        return f"the copy has not finished ({copy_detail}); release after it completes"
    if now - captured_at >= retention_seconds:
        hours = (now - captured_at) / 3600
        return (
            f"the copy outlasted the {holder}'s retention: changes were captured {hours:.1f} h ago and are kept "
            f"{retention_seconds / 3600:.0f} h; rerun with protocol insert-only"
        )
    if shards_now is not None:
        gone = sorted(set(shards_at_capture) - set(shards_now))
        if gone:
            return (
                f"the copy outlasted the stream's retention: shard {gone[0]} (open when capture began) has been "
                "trimmed; rerun with protocol insert-only"
            )
    return None
