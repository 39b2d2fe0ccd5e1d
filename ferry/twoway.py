"""Replication in both directions during the switch (docs/adr/0009).

Forward replication copies the old table/bucket's changes to the new one; reverse replication — the
same handlers, configured with :func:`reverse_spec` — copies the new side's changes back. While both
run, a handler applies a change only on top of the state it was made on:

1. a record at or below the key's last judged sequence number is a redelivery: skipped;
2. a record whose (old image → new image) transition ferry itself wrote on that side is an echo: the
   journal entry is taken (each write makes at most one stream record) and the record skipped;
3. otherwise the destination is read (consistent): equal to the record's new image → nothing to do;
   equal to its old image → journal the transition, then write; anything else → a **conflict**: not
   applied, recorded (``conflict#…``), reported by ``ferry verify --reverse`` and ``ferry status``.

The pure part is :func:`judge`; :class:`TwoWayStore` keeps the journal, the sequence marks and the
conflicts in the state table (home account). Item layout (``pk`` / ``sk``):

- ``twoway#<kind>#<a>|<b>`` / ``switch``: the switch's steps and their times (``ferry reverse``,
  ``ferry cutover``, ``ferry rollback``), ``<a>|<b>`` the pair's two names sorted;
- ``journal#<kind>#<destination>#<key hash>`` / ``<transition hash>``: ferry wrote that transition
  there (expires after the stream's 24 h);
- ``seen#<kind>#<source>#<key hash>`` / ``seq``: the last sequence number judged for the key;
- ``conflict#<kind>#<a>|<b>`` / ``<key hash>``: an open conflict (key, direction, when, images' hashes).

Nothing here logs or stores a payload: keys and hashes only.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ferry.aws import put_item_if
from ferry.spec import READ_SCAN, WRITE_BATCH, Spec
from ferry.wire import Item, canonical, items_equal

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

REVERSE_SUFFIX = "-reverse"
JOURNAL_SECONDS = 24 * 3600  # a stream keeps a record 24 h: an echo arrives within that or never
ABSENT = "absent"  # the hash of "no item / no object"
TABLE = "table"
BUCKET = "bucket"


def reverse_spec(spec: Spec) -> Spec:
    """The spec of reverse replication: every mapping's source and target swapped, the two sides'
    roles swapped, and its own on-failure and events queues (``<name>-reverse``). The home account (state
    table, queues, functions) stays where it is."""
    return dataclasses.replace(
        spec,
        tables=tuple(dataclasses.replace(t, source=t.target, target=t.source) for t in spec.tables),
        buckets=tuple(dataclasses.replace(b, source=b.target, target=b.source) for b in spec.buckets),
        source_role_arn=spec.target_role_arn,
        target_role_arn=spec.source_role_arn,
        replication=dataclasses.replace(
            spec.replication,
            on_failure_queue=spec.replication.on_failure_queue + REVERSE_SUFFIX,
            starting_position="TRIM_HORIZON",
        ),
        s3=dataclasses.replace(spec.s3, events_queue=spec.s3.events_queue + REVERSE_SUFFIX),
        # nothing is copied in reverse (the old side has everything): no export, no import to set up
        backfill=dataclasses.replace(spec.backfill, read=READ_SCAN, write=WRITE_BATCH),
    )


def pair_id(a: str, b: str) -> str:
    """One name for a mapping whichever direction it is seen from."""
    first, second = sorted((a, b))
    return f"{first}|{second}"


def _stable(value: Any) -> Any:
    """``wire.canonical``'s form made JSON-serialisable and order-independent (a stable hash input)."""
    if isinstance(value, frozenset):
        return sorted((_stable(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, tuple | list):
        return [_stable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def image_hash(image: Item | None) -> str:
    """A hash of an item image under ferry's equality (``wire.items_equal``); :data:`ABSENT` for none."""
    if image is None:
        return ABSENT
    form = sorted((name, _stable(canonical(value))) for name, value in image.items())
    return hashlib.sha256(json.dumps(form, separators=(",", ":")).encode()).hexdigest()[:32]


def transition_hash(old: str, new: str) -> str:
    return hashlib.sha256(f"{old}>{new}".encode()).hexdigest()[:32]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def sequence_number(text: str) -> int | None:
    """A stream sequence number as a number (DynamoDB's are decimal strings up to 40 digits); None if not."""
    return int(text) if text.isdigit() else None


class Verdict(enum.Enum):
    APPLY = "apply"  # the destination is where the change was made from: write it
    ALREADY = "already"  # the destination already holds the change's result
    CONFLICT = "conflict"  # the destination moved on its own: both sides changed the key


def judge(destination: Item | None, old: Item | None, new: Item | None) -> Verdict:
    """Rule 3 of the module docstring (echoes and redeliveries are settled before, by the store)."""
    if _same(destination, new):
        return Verdict.ALREADY
    if _same(destination, old):
        return Verdict.APPLY
    return Verdict.CONFLICT


def _same(a: Item | None, b: Item | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return items_equal(a, b)


@dataclass(frozen=True)
class Conflict:
    kind: str
    pair: str
    key: str  # the key as text (wire.key_text), or the object key
    source: str  # the side whose change could not be applied
    destination: str
    at: float
    source_hash: str
    destination_hash: str


class TwoWayStore:
    """The state table's two-way items (see the module docstring), through a low-level client."""

    def __init__(self, ddb: DynamoDBClient, table_name: str, clock: Any = time.time) -> None:
        self.ddb = ddb
        self.table_name = table_name
        self.clock = clock

    # switch steps -------------------------------------------------------------------------
    def steps(self, kind: str, a: str, b: str) -> dict[str, float]:
        item = self._get(f"twoway#{kind}#{pair_id(a, b)}", "switch")
        return {k[5:]: float(v["N"]) for k, v in (item or {}).items() if k.startswith("step_")}

    def record_step(self, kind: str, a: str, b: str, step: str, at: float | None = None) -> None:
        """Record that ``step`` happened (kept: rerunning a step does not move its time)."""
        self.ddb.update_item(
            TableName=self.table_name,
            Key=self._key(f"twoway#{kind}#{pair_id(a, b)}", "switch"),
            UpdateExpression="SET #s = if_not_exists(#s, :t)",
            ExpressionAttributeNames={"#s": f"step_{step}"},
            ExpressionAttributeValues={":t": {"N": f"{self.clock() if at is None else at:.3f}"}},
        )

    def clear_step(self, kind: str, a: str, b: str, step: str) -> None:
        self.ddb.update_item(
            TableName=self.table_name,
            Key=self._key(f"twoway#{kind}#{pair_id(a, b)}", "switch"),
            UpdateExpression="REMOVE #s",
            ExpressionAttributeNames={"#s": f"step_{step}"},
        )

    # sequence marks ---------------------------------------------------------------------------
    def mark(self, kind: str, source: str, key: str) -> tuple[int | None, int | None]:
        """The key's last judged sequence number and the one whose write is under way (None: none)."""
        item = self._get(f"seen#{kind}#{source}#{text_hash(key)}", "seq")
        if not item:
            return None, None
        seq = int(item["seq"]["N"]) if "seq" in item else None
        applying = int(item["applying"]["N"]) if "applying" in item else None
        return seq, applying

    def mark_applying(self, kind: str, source: str, key: str, sequence: int, last: int | None) -> None:
        """Before a write: which record it is for, so a redelivery after a crash can tell its own write.
        ``last``: the mark read before (kept). A PutItem, as every handler write to the state table is (one
        shard's records of a key are judged one at a time, so nothing races it)."""
        item: dict[str, Any] = {
            **self._key(f"seen#{kind}#{source}#{text_hash(key)}", "seq"),
            "applying": {"N": str(sequence)},
            "expires_at": {"N": str(int(self.clock()) + JOURNAL_SECONDS)},
        }
        if last is not None:
            item["seq"] = {"N": str(last)}
        self.ddb.put_item(TableName=self.table_name, Item=item)

    def mark_sequence(self, kind: str, source: str, key: str, sequence: int) -> None:
        """Raise the key's mark to ``sequence`` (never lower it: two judges of one key cannot race it back)."""
        put_item_if(
            self.ddb,
            self.table_name,
            {
                **self._key(f"seen#{kind}#{source}#{text_hash(key)}", "seq"),
                "seq": {"N": str(sequence)},
                "expires_at": {"N": str(int(self.clock()) + JOURNAL_SECONDS)},
            },
            {
                "ConditionExpression": "attribute_not_exists(seq) OR seq < :s",
                "ExpressionAttributeValues": {":s": {"N": str(sequence)}},
            },
        )

    # journal ------------------------------------------------------------------------------------
    def journal(self, kind: str, destination: str, key: str, transition: str) -> None:
        """Record that ferry is about to write ``transition`` on ``destination`` (before the write: a crash
        in between leaves an entry no echo takes, which only expires)."""
        self._journal(kind, destination, key, transition)

    def coincided(self, kind: str, side: str, key: str, new: str) -> None:
        """``side`` reached the state ``new`` on its own, the same change the other side made: its own change
        record (from any state to ``new``) is skipped like an echo, so the two do not chase each other."""
        self._journal(kind, side, key, f"*>{new}")

    def _journal(self, kind: str, side: str, key: str, entry: str) -> None:
        now = self.clock()
        self.ddb.put_item(
            TableName=self.table_name,
            Item={
                **self._key(f"journal#{kind}#{side}#{text_hash(key)}", entry),
                "at": {"N": f"{now:.3f}"},
                "expires_at": {"N": str(int(now) + JOURNAL_SECONDS)},
            },
        )

    def journal_taken(self, kind: str, side: str, key: str, transition: str) -> bool:
        """Whether ferry's journal entry for ``transition`` on ``side`` has been taken: the write it announced
        landed and its change record has been seen (an entry is written again, untaken, before each write)."""
        found = self._get(f"journal#{kind}#{side}#{text_hash(key)}", transition)
        return bool(found and "taken" in found)

    def take_echo(
        self, kind: str, side: str, key: str, transition: str, new: str, since: float = 0.0, taker: str = ""
    ) -> bool:
        """Whether ferry wrote ``transition`` on ``side`` at or after ``since``, or recorded that ``side`` reached
        ``new`` on its own (:meth:`coincided`): its change record is then not a change to replicate. The entry
        is taken by ``taker`` (the record's sequence number), so a user's later identical change is not mistaken
        for one, while the same record asked again (a lost response retried, a redelivery) still is."""
        for entry in (transition, f"*>{new}"):
            pk = f"journal#{kind}#{side}#{text_hash(key)}"
            found = self._get(pk, entry)
            if not found or float(found.get("at", {}).get("N", "0")) < since:
                continue
            taken = found.get("taken", {}).get("S")
            if taken is not None and taken != taker:
                continue
            if (
                taken is None
                and not put_item_if(
                    self.ddb,
                    self.table_name,
                    {**found, "taken": {"S": taker}},
                    {
                        "ConditionExpression": "attribute_not_exists(taken) OR taken = :t",
                        "ExpressionAttributeValues": {":t": {"S": taker}},
                    },
                )[0]
            ):
                continue
            return True
        return False

    # conflicts ----------------------------------------------------------------------------------
    def record_conflict(self, conflict: Conflict, key_item: Item | None = None) -> None:
        item: dict[str, Any] = {
            **self._key(f"conflict#{conflict.kind}#{conflict.pair}", text_hash(conflict.key)),
            "key": {"S": conflict.key},
            "source": {"S": conflict.source},
            "destination": {"S": conflict.destination},
            "at": {"N": f"{conflict.at:.3f}"},
            "source_hash": {"S": conflict.source_hash},
            "destination_hash": {"S": conflict.destination_hash},
        }
        if key_item is not None:
            item["key_item"] = {"M": dict(key_item)}
        self.ddb.put_item(TableName=self.table_name, Item=item)

    def conflicts(self, kind: str, a: str, b: str) -> list[Conflict]:
        pair = pair_id(a, b)
        out: list[Conflict] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": f"conflict#{kind}#{pair}"}},
            "ConsistentRead": True,
        }
        while True:
            page = self.ddb.query(**kwargs)
            out.extend(
                Conflict(
                    kind,
                    pair,
                    i["key"]["S"],
                    i["source"]["S"],
                    i["destination"]["S"],
                    float(i["at"]["N"]),
                    i["source_hash"]["S"],
                    i["destination_hash"]["S"],
                )
                for i in page.get("Items", [])
            )
            if "LastEvaluatedKey" not in page:
                return sorted(out, key=lambda c: c.key)
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def conflict_key_item(self, kind: str, a: str, b: str, key: str) -> Item | None:
        item = self._get(f"conflict#{kind}#{pair_id(a, b)}", text_hash(key))
        return dict(item["key_item"]["M"]) if item and "key_item" in item else None

    def close_conflict(self, kind: str, a: str, b: str, key: str) -> None:
        self.ddb.delete_item(
            TableName=self.table_name, Key=self._key(f"conflict#{kind}#{pair_id(a, b)}", text_hash(key))
        )

    # --------------------------------------------------------------------------------------------
    @staticmethod
    def _key(pk: str, sk: str) -> dict[str, Any]:
        return {"pk": {"S": pk}, "sk": {"S": sk}}

    def _get(self, pk: str, sk: str) -> Mapping[str, Any] | None:
        response = self.ddb.get_item(TableName=self.table_name, Key=self._key(pk, sk), ConsistentRead=True)
        return response.get("Item")


STEP_REVERSE = "reverse"  # ferry reverse: reverse capture on, handlers judge both ways
STEP_SWITCHED = "switched"  # ferry cutover --confirm-switched: the user says the service writes the new side
STEP_FORWARD_DRAINED = "forward_drained"
STEP_FORWARD_DISABLED = "forward_disabled"  # ferry cutover: forward replication off, reverse on
STEP_ROLLED_BACK = "rolled_back"  # ferry rollback: old side verified equal, reverse off, old side authoritative
STEPS = (STEP_REVERSE, STEP_SWITCHED, STEP_FORWARD_DRAINED, STEP_FORWARD_DISABLED, STEP_ROLLED_BACK)

STEP_CAPTURE = "capture"  # when ferry reverse began enabling the new side's change capture


class StepsCache:
    """A handler's view of a pair's switch steps, re-read at most every ``ttl`` seconds (as the phase is):
    ``ferry reverse`` waits longer than that after recording its step, so by then every handler judges."""

    def __init__(self, store: TwoWayStore, ttl: float, clock: Any = time.monotonic) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[tuple[str, str], tuple[dict[str, float], float]] = {}

    def steps(self, kind: str, a: str, b: str) -> dict[str, float]:
        now = self.clock()
        name = (kind, pair_id(a, b))
        cached = self._cache.get(name)
        if cached is not None and now - cached[1] < self.ttl:
            return cached[0]
        value = self.store.steps(kind, a, b)
        self._cache[name] = (value, now)
        return value

    def two_way(self, kind: str, a: str, b: str) -> bool:
        """Whether changes between ``a`` and ``b`` are judged (docs/adr/0009) rather than applied blindly."""
        return STEP_REVERSE in self.steps(kind, a, b)
