"""Two-way replication for buckets (docs/adr/0009, its bucket form): write a key only on top of a state
ferry made equal on both sides.

Reconcile is state-based, so the echo of a replicated copy finds both sides equal and writes nothing.
What two-way adds is **conflict detection**: the old side's ``A'`` and the new side's ``B'`` for one key
inside the lag window must not overwrite each other. Per key, the state table keeps a **sync record**
(``pk = sync#bucket#<a>|<b>#<key hash>``, ``sk = sync``, no expiry while the switch lasts): per side (a
bucket name), the fingerprints of the states ferry last made equal — fingerprints are per side, since a
copy's ETag can differ from its source's (SSE-KMS). Before reconcile writes the destination (copy or
delete), the destination's current state must be a **base**:

- its fingerprint is in the record for the destination side, or this reconcile wrote it (a later round);
- or the key has no record and the destination is absent, or was last modified at or before the pair's
  ``capture`` step (when reverse capture began: before it both sides were equal, verified), by a whole
  second (:data:`LAST_MODIFIED_RESOLUTION`).

Anything else is a **conflict**: nothing is written, the conflict is recorded (``TwoWayStore``), the key
logged, and reconcile answers ``conflict`` (the event succeeds: a retry would find the same).

Journal first: before a write the destination's current fingerprint and the one it will have are added to
the record, so a crash between the two leaves both as bases and the retry converges. Once the write has
landed, the source's state is added as a base of the source side (both sides held it; the destination's owner
may change the key at once, before this call sees both sides equal). Once both sides are equal the record is
set to exactly their fingerprints. Races on the record are safe: every write is a
PutItem conditioned on the record's version (``v``) being the one this reconcile last read; an addition is
a set union, re-read and retried when the version moved (it never loses another's base), and the exact
set, when the version moved, becomes an addition of the converged fingerprints instead. A record may then
hold a stale base besides the true one, which can only let through a write the exact rule would refuse
for a destination back at an old state; a race never makes ferry refuse a change made on a synced state.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ferry.aws import put_item_if
from ferry.buckets import objects
from ferry.buckets.objects import ObjectState
from ferry.buckets.reconcile import CONFLICT, OUTDATED, RECHECK
from ferry.errors import RetryableError
from ferry.spec import BucketMapping
from ferry.twoway import ABSENT, BUCKET, Conflict, TwoWayStore, pair_id, text_hash

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

SIDE_PREFIX = "side#"  # one string-set attribute per side: side#<bucket>
ADD_ATTEMPTS = 8  # conditional puts of one addition to a sync record before the event is retried
MAX_RECHECKS = 4  # reads of both sides again before a suspected conflict is called on what was read last
# S3's Last-Modified has whole seconds: an object of the capture step's own second counts as after it
# (a conflict reported rather than a change lost).
LAST_MODIFIED_RESOLUTION = 1.0


def fingerprint(state: ObjectState | None) -> str:
    """A stable hash of what ``objects.differences`` compares of one side's object (size, ETag, checksums,
    content headers, metadata, tags); :data:`ferry.twoway.ABSENT` for no object."""
    if state is None:
        return ABSENT
    form = [
        state.size,
        state.etag,
        [list(c) for c in state.checksums],
        [list(h) for h in state.headers],
        [list(m) for m in state.metadata],
        None if state.tags is None else [list(t) for t in state.tags],
    ]
    return hashlib.sha256(json.dumps(form, separators=(",", ":")).encode()).hexdigest()[:32]


def sync_pk(a: str, b: str, key: str) -> str:
    return f"sync#{BUCKET}#{pair_id(a, b)}#{text_hash(key)}"


@dataclass(frozen=True)
class SyncRecord:
    sides: Mapping[str, frozenset[str]]  # bucket -> fingerprints of the states ferry made equal there
    version: int

    def bases(self, side: str) -> frozenset[str]:
        return self.sides.get(side, frozenset())


class SyncStore:
    """The sync records of bucket keys in the state table (see the module docstring)."""

    def __init__(self, ddb: DynamoDBClient, table_name: str) -> None:
        self.ddb = ddb
        self.table_name = table_name

    def read(self, a: str, b: str, key: str) -> SyncRecord | None:
        found = self.ddb.get_item(TableName=self.table_name, Key=self._key(a, b, key), ConsistentRead=True)
        return _record(found.get("Item"))

    def add(
        self, a: str, b: str, key: str, fingerprints: Mapping[str, set[str]], seen: SyncRecord | None
    ) -> SyncRecord:
        """Union ``fingerprints`` (side -> set) into the key's record, ``seen`` the version last read (None:
        none); re-read and retried while another reconcile changes it in between. The record as written."""
        for _ in range(ADD_ATTEMPTS):
            current = dict(seen.sides) if seen else {}
            for side, fps in fingerprints.items():
                current[side] = current.get(side, frozenset()) | frozenset(fps)
            written = self._put(a, b, key, {side: set(fps) for side, fps in current.items()}, seen)
            if written is not None:
                return written
            seen = self.read(a, b, key)
        raise RetryableError(
            f"sync record of s3 key {key!r} ({pair_id(a, b)}) in {self.table_name} changed under "
            f"{ADD_ATTEMPTS} attempts to add to it; the event is retried"
        )

    def settle(self, a: str, b: str, key: str, fingerprints: Mapping[str, str], seen: SyncRecord | None) -> bool:
        """Set the record to exactly ``fingerprints`` (side -> one), if it is still the version ``seen``
        (None: no record); otherwise union them in. True when it was set exactly."""
        if self._put(a, b, key, {side: {fp} for side, fp in fingerprints.items()}, seen) is not None:
            return True
        self.add(a, b, key, {side: {fp} for side, fp in fingerprints.items()}, self.read(a, b, key))
        return False

    def _put(
        self, a: str, b: str, key: str, sides: Mapping[str, set[str]], seen: SyncRecord | None
    ) -> SyncRecord | None:
        """PutItem of the record with ``sides``, conditioned on its version still being ``seen``'s; None when
        it was not (PutItem, not UpdateItem: the handlers' IAM allows the state table's two-way items
        GetItem, PutItem and DeleteItem only)."""
        version = (seen.version if seen else 0) + 1
        item: dict[str, Any] = {
            **self._key(a, b, key),
            "key": {"S": key},
            "v": {"N": str(version)},
            **{SIDE_PREFIX + side: {"SS": sorted(fps)} for side, fps in sides.items()},
        }
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(pk)"}
            if seen is None
            else {"ConditionExpression": "v = :v", "ExpressionAttributeValues": {":v": {"N": str(seen.version)}}}
        )
        if not put_item_if(self.ddb, self.table_name, item, condition)[0]:
            return None
        return SyncRecord({side: frozenset(fps) for side, fps in sides.items()}, version)

    def _key(self, a: str, b: str, key: str) -> dict[str, Any]:
        return {"pk": {"S": sync_pk(a, b, key)}, "sk": {"S": "sync"}}


def _record(item: Mapping[str, Any] | None) -> SyncRecord | None:
    if not item:
        return None
    sides = {
        name[len(SIDE_PREFIX) :]: frozenset(value.get("SS", ()))
        for name, value in item.items()
        if name.startswith(SIDE_PREFIX)
    }
    return SyncRecord(sides, int(item.get("v", {}).get("N", "0")))


class KeyGuard:
    """One reconcile call's two-way check (``reconcile.WriteGuard``): before each write, is the destination
    a base (else record the conflict); at convergence, set the key's sync record.

    ``judging`` False: the sync records are kept but nothing is refused (between the ``capture`` and
    ``reverse`` steps, so the keys forward writes in that window have a record when judging begins)."""

    def __init__(
        self,
        store: TwoWayStore,
        mapping: BucketMapping,
        key: str,
        *,
        capture: float | None,
        judging: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.sync = SyncStore(store.ddb, store.table_name)
        self.mapping = mapping
        self.key = key
        self.capture = capture
        self.judging = judging
        self.clock = clock
        self.record = self.sync.read(mapping.source, mapping.target, key)
        self._wrote: list[ObjectState | None] = []  # what this call's writes made the destination (None: deleted)
        self._suspect: tuple[str, str] | None = None  # (target, source) fingerprints a conflict was last suspected on
        self._rechecks = 0

    def refusal(self, target: ObjectState | None, source: ObjectState | None) -> str | None:
        """Before writing the destination ``target`` to become ``source`` (None: a delete). None: journaled,
        write it. ``OUTDATED``: the source still holds a state ferry synced, so its event is outdated (the echo
        of a write ferry made there, or a stale redelivery) and the destination's own change travels the other
        way: write nothing, record nothing (a copy that landed made its state a synced one: :meth:`landed`).
        ``CONFLICT``: both sides changed the key, recorded; write nothing."""
        if self.judging and not self._is_base(target):
            # another reconcile of the key may have synced or journaled since this one read the record
            self.record = self.sync.read(self.mapping.source, self.mapping.target, self.key)
        if log.isEnabledFor(logging.DEBUG):  # the fingerprints are work: only when someone reads them
            log.debug(
                "s3 key %r %s->%s: target %s, source %s, record %s",
                self.key,
                self.mapping.source,
                self.mapping.target,
                fingerprint(target)[:8],
                fingerprint(source)[:8],
                _short(self.record),
            )
        if self.judging and not self._is_base(target):
            if self.record is not None and fingerprint(source) in self.record.bases(self.mapping.source):
                log.debug("s3 key %r: %s holds a synced state, nothing to carry", self.key, self.mapping.source)
                return OUTDATED
            # The two sides were read before the record: under load, long enough for other reconciles to have
            # synced the key since (and a settle to have dropped the bases those states were). A conflict stands
            # only on states read again after the record, and found the same.
            suspect = (fingerprint(target), fingerprint(source))
            if suspect != self._suspect and self._rechecks < MAX_RECHECKS:
                self._suspect, self._rechecks = suspect, self._rechecks + 1
                return RECHECK
            self._conflict(target, source)
            return CONFLICT
        self.record = self.sync.add(
            self.mapping.source,
            self.mapping.target,
            self.key,
            {self.mapping.target: {fingerprint(target), fingerprint(source)}},
            self.record,
        )
        return None

    def landed(self, source: ObjectState | None) -> None:
        """A copy of ``source`` (None: a delete) landed on the destination: both sides held that state, so it is a
        base of the source side too (the journal made it one of the destination's), recorded at once rather than
        at convergence. A later change of the destination is then on top of it (the destination's owner may change
        the key as soon as the copy is there): its event going back finds a base, and this key's event coming
        again (a crash before this call settled) is outdated, not a conflict."""
        self._wrote.append(source)
        if self.judging:
            self.record = self.sync.add(
                self.mapping.source,
                self.mapping.target,
                self.key,
                {self.mapping.source: {fingerprint(source)}},
                self.record,
            )

    def settled(self, source: ObjectState | None, target: ObjectState | None) -> None:
        """Both sides are equal: the record becomes exactly their fingerprints (no write when it is already)."""
        now = {self.mapping.source: fingerprint(source), self.mapping.target: fingerprint(target)}
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "s3 key %r %s->%s: settled at %s, record %s",
                self.key,
                self.mapping.source,
                self.mapping.target,
                {k: v[:8] for k, v in now.items()},
                _short(self.record),
            )
        if self.record is not None and dict(self.record.sides) == {s: frozenset({fp}) for s, fp in now.items()}:
            return
        self.sync.settle(self.mapping.source, self.mapping.target, self.key, now, self.record)

    def _is_base(self, target: ObjectState | None) -> bool:
        if self.record is not None and fingerprint(target) in self.record.bases(self.mapping.target):
            return True
        if any(_wrote(written, target) for written in self._wrote):
            return True  # what an earlier round of this call wrote (a copy's fingerprint may differ from its source's)
        if self.record is None:
            return target is None or (
                self.capture is not None and target.last_modified + LAST_MODIFIED_RESOLUTION <= self.capture
            )
        return False

    def _conflict(self, target: ObjectState | None, source: ObjectState | None) -> None:
        self.store.record_conflict(
            Conflict(
                BUCKET,
                pair_id(self.mapping.source, self.mapping.target),
                self.key,
                self.mapping.source,
                self.mapping.target,
                self.clock(),
                fingerprint(source),
                fingerprint(target),
            )
        )
        log.warning(
            "conflict on s3 key %r: %s and %s both changed it; nothing written",
            self.key,
            self.mapping.source,
            self.mapping.target,
        )


def _wrote(written: ObjectState | None, target: ObjectState | None) -> bool:
    if written is None or target is None:
        return written is None and target is None
    return not objects.differences(written, target)


def _short(record: SyncRecord | None) -> str:
    """A sync record for a debug line: version and each side's fingerprints, shortened."""
    if record is None:
        return "none"
    return f"v{record.version} " + " ".join(
        f"{side}={','.join(sorted(fp[:8] for fp in fps))}" for side, fps in sorted(record.sides.items())
    )
