"""Live replication of one DynamoDB stream record onto the target table.

``TableReplicator.apply_stream_record`` is what the ``table_stream`` Lambda calls for each
record (through Powertools' batch processing) and what the local pollers end up calling too.
It raises to mark a record failed; it is idempotent, so a redelivered record is harmless.

After each batch, ``TableReplicator.record_lags`` writes one lag sample per source table to the run log
(ferry.runlog): each record's lag is the batch's end − its ``dynamodb.ApproximateCreationDateTime``
(epoch seconds in a Lambda event, and in the local pollers' events), the failed ones are those the
partial batch response lists (by sequence number).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from ferry.aws import write_item_if
from ferry.errors import ChangesHeld, OutcomeUnknown, PoisonRecordError, RetryableError
from ferry.runlog import LagSample, RecordLag, RunLog, epoch_of, failed_identifiers, lag_samples_by_source
from ferry.shape import UNROUTED_ERROR, Put, Shape, ShapeError, Shaper
from ferry.spec import Spec
from ferry.tables.protocol import (
    StreamAction,
    decide_stream_action,
    deletes_leave_tombstones,
    is_ttl_delete,
    tombstone_for,
)
from ferry.tables.state import TABLE, PhaseCache
from ferry.twoway import (
    STEP_CAPTURE,
    Conflict,
    StepsCache,
    TwoWayStore,
    Verdict,
    image_hash,
    judge,
    pair_id,
    sequence_number,
    transition_hash,
)
from ferry.wire import Item, decode_stream_image, decode_stream_value, key_text

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)


def table_name_from_arn(arn: str) -> str:
    """``arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL`` → NAME."""
    try:
        resource = arn.split(":", 5)[5]
        kind, name = resource.split("/")[:2]
    except (IndexError, ValueError):
        raise PoisonRecordError("eventSourceARN", f"cannot read a table name from {arn!r}") from None
    if kind != "table" or not name:
        raise PoisonRecordError("eventSourceARN", f"cannot read a table name from {arn!r}")
    return name


def _record_keys(change: Mapping[str, Any]) -> dict[str, Any]:
    """The record's key: names from ``Keys``, values from the item image when it has them (they are
    the same on AWS; the emulator double-encodes binary values in ``Keys`` but not in images)."""
    keys = decode_stream_image(change.get("Keys") or {})
    image = change.get("NewImage") or change.get("OldImage") or {}
    return {name: decode_stream_value(image[name]) if name in image else value for name, value in keys.items()}


def stream_record_lag(record: Mapping[str, Any], failed: Iterable[str] = ()) -> RecordLag | None:
    """The lag view of one stream record of a Lambda event: its source table (by ``eventSourceARN``), its
    change time and whether its sequence number is in ``failed``; None when it names no table."""
    try:
        source = table_name_from_arn(str(record.get("eventSourceARN", "")))
    except PoisonRecordError:
        return None
    change = record.get("dynamodb")
    change = change if isinstance(change, Mapping) else {}
    sequence = str(change.get("SequenceNumber", ""))
    return RecordLag(source, epoch_of(change.get("ApproximateCreationDateTime")), sequence in failed)


def stream_lag_samples(
    records: Iterable[Mapping[str, Any]], response: Any, at: float, sources: Iterable[str] | None = None
) -> dict[str, LagSample]:
    """One lag sample per source table of a stream batch applied at ``at``; ``response`` is the partial batch
    response (its ``batchItemFailures``); ``sources``: only these tables (the spec's)."""
    failed = failed_identifiers(response)
    wanted = None if sources is None else set(sources)
    lags = [lag for lag in (stream_record_lag(r, failed) for r in records) if lag is not None]
    return lag_samples_by_source((lag for lag in lags if wanted is None or lag.source in wanted), at)


# What became of a record (AppliedRecord.outcome). Only APPLIED wrote the target.
APPLIED = "applied"
ECHO = "echo"  # two-way: ferry itself made this change on the record's side
REDELIVERED = "redelivered"  # two-way: at or below the key's last judged sequence number
ALREADY = "already"  # two-way: the target already holds the change's result
CONFLICT = "conflict"  # two-way: the target moved on its own; recorded, not applied
UNSURE_ATTEMPTS = 3  # judged writes whose answer was lost, each read back, before the record fails
OVERTAKEN = "overtaken"  # two-way: this record's own write began before a crash, and the target has moved on since


@dataclass(frozen=True)
class AppliedRecord:
    source: str
    target: str
    action: StreamAction
    key: str
    sequence_number: str
    outcome: str = APPLIED


class TargetMoved(RetryableError):
    """Two-way: the target changed between the judge's read and its write; the record is judged again."""


class TableReplicator:
    """Applies stream records of the spec's source tables to their targets.

    ``ddb`` writes the targets: the target side's client (``spec.target_where()``). The records
    come from the source's stream and the phase from the state table (``phases``, home account);
    nothing here reads the source table."""

    def __init__(self, spec: Spec, ddb: DynamoDBClient, phases: PhaseCache) -> None:
        self.spec = spec
        self.ddb = ddb
        self.phases = phases
        self.runlog = RunLog(phases.store.ddb, phases.store.table_name)  # the state table at home
        self.switch = TwoWayStore(phases.store.ddb, phases.store.table_name)
        self.steps = StepsCache(self.switch, phases.ttl, phases.clock)
        self._shapers: dict[str, Shaper] = {}  # per source table: its shape, the hook loaded once

    def record_key(self, record: Mapping[str, Any]) -> str | None:
        """The record's source table and key as one text (a batch stops a key at its first failure); None
        when the record has none."""
        change = record.get("dynamodb")
        try:
            keys = _record_keys(change) if isinstance(change, Mapping) else {}
        except Exception:
            return None
        return f"{record.get('eventSourceARN', '')}#{key_text(keys)}" if keys else None

    def record_lags(self, records: Iterable[Mapping[str, Any]], response: Any, at: float | None = None) -> int:
        """After a batch: one lag sample per source table to the run log; how many were written. Never
        raises (a sample that cannot be made or written is logged and dropped)."""
        try:
            sources = [m.source for m in self.spec.tables]
            samples = stream_lag_samples(records, response, time.time() if at is None else at, sources)
            return self.runlog.save_lag_samples(TABLE, samples)
        except Exception as exc:
            log.warning("lag sample not recorded: %s", exc)
            return 0

    def apply_stream_record(self, record: Mapping[str, Any]) -> AppliedRecord:
        source = table_name_from_arn(str(record.get("eventSourceARN", "")))
        mapping = self.spec.mapping_for_source(source)
        if mapping is None:
            raise PoisonRecordError(
                "eventSourceARN",
                f"table {source!r} is not mapped in this deployment's spec; add it to tables or remove the trigger",
            )
        change = record.get("dynamodb") or {}
        event_name = str(record.get("eventName", ""))
        keys = _record_keys(change)
        if not keys:
            raise PoisonRecordError("dynamodb.Keys", f"record {change.get('SequenceNumber')} of {source!r} has no Keys")
        phase = self.phases.phase(source)
        action = decide_stream_action(
            event_name,
            phase,
            ttl_delete=is_ttl_delete(record),
            replicate_ttl_deletes=mapping.replicate_ttl_deletes,
        )
        if action is StreamAction.HOLD:
            raise ChangesHeld(
                f"table {source!r}: its changes are held until its copy is released (phase hold); the consumer "
                "must not run before the release creates its mapping"
            )
        if action is StreamAction.PUT_NEW_IMAGE and not change.get("NewImage"):
            raise PoisonRecordError(
                "dynamodb.NewImage",
                f"{event_name} record of {source!r} has no NewImage: the stream must be NEW_AND_OLD_IMAGES",
            )
        sequence = str(change.get("SequenceNumber", ""))
        if mapping.shape is not None and action is not StreamAction.SKIP:
            return self._apply_shaped(source, mapping.shape, event_name, change, keys, action, phase)
        if action in (StreamAction.PUT_NEW_IMAGE, StreamAction.DELETE) and self.steps.two_way(
            TABLE, source, mapping.target
        ):
            outcome = self._judged(source, mapping.target, change, keys, action, sequence)
            applied = AppliedRecord(source, mapping.target, action, key_text(keys), sequence, outcome)
            log.debug("%s %s %s to %s key %s", outcome, event_name, action.value, mapping.target, applied.key)
            return applied
        if action is StreamAction.PUT_NEW_IMAGE:
            self.ddb.put_item(TableName=mapping.target, Item=decode_stream_image(change["NewImage"]))
        elif action is StreamAction.DELETE:
            self.ddb.delete_item(TableName=mapping.target, Key=keys)
        elif action is StreamAction.PUT_TOMBSTONE:
            self.ddb.put_item(TableName=mapping.target, Item=tombstone_for(keys))
        applied = AppliedRecord(source, mapping.target, action, key_text(keys), sequence)
        log.debug("applied %s %s to %s key %s", event_name, action.value, mapping.target, applied.key)
        return applied

    def _apply_shaped(
        self,
        source: str,
        shape: Shape,
        event_name: str,
        change: Mapping[str, Any],
        keys: Item,
        action: StreamAction,
        phase: str,
    ) -> AppliedRecord:
        """A reshaped mapping (docs/adr/0010): the change's writes as ferry.shape plans them (a move deletes the
        old placement), a delete left as a tombstone while the phase keeps them. An unrouted new image fails
        the record under ``unrouted: error`` before anything is written; under ``skip`` it is logged."""
        sequence = str(change.get("SequenceNumber", ""))
        text = key_text(keys)
        old = decode_stream_image(change["OldImage"]) if change.get("OldImage") else None
        if old is None and event_name != "INSERT":
            raise PoisonRecordError(
                "dynamodb.OldImage",
                f"record {sequence} of {source!r} has no OldImage: a reshaped table deletes where the old image "
                "was placed, so the stream must be NEW_AND_OLD_IMAGES",
            )
        new = decode_stream_image(change["NewImage"]) if action is StreamAction.PUT_NEW_IMAGE else None
        shaper = self._shapers.get(source)
        try:
            if shaper is None:
                shaper = self._shapers[source] = Shaper(shape)
            writes, placed = shaper.plan(old, new, tuple(keys))  # the hook runs once per image
        except ShapeError as exc:
            raise PoisonRecordError(f"tables[{source}].transform", f"record {sequence}, key {text}: {exc}") from exc
        if placed is not None and placed.unrouted:
            if shape.unrouted == UNROUTED_ERROR:
                raise PoisonRecordError(
                    f"tables[{source}].targets", f"key {text} matches no route (unrouted: error); nothing written"
                )
            log.warning("key %s of %s matches no route: not written (unrouted: skip)", text, source)
        tombstones = deletes_leave_tombstones(phase)
        for write in writes:
            if isinstance(write, Put):
                self.ddb.put_item(TableName=write.table, Item=write.item)
            elif tombstones:
                self.ddb.put_item(TableName=write.table, Item=tombstone_for(write.key))
            else:
                self.ddb.delete_item(TableName=write.table, Key=write.key)
        tables = ",".join(w.table for w in writes) or "-"
        log.debug("shaped %s key %s: %d writes to %s", source, text, len(writes), tables)
        return AppliedRecord(source, tables, action, text, sequence)

    def _judged(
        self, source: str, target: str, change: Mapping[str, Any], keys: Item, action: StreamAction, sequence: str
    ) -> str:
        """Two-way replication (docs/adr/0009): apply the change only on top of the state it was made on."""
        text = key_text(keys)
        number = sequence_number(sequence)
        last, applying = self.switch.mark(TABLE, source, text) if number is not None else (None, None)
        if number is not None and last is not None and number <= last:
            return REDELIVERED
        old = decode_stream_image(change["OldImage"]) if change.get("OldImage") else None
        new = decode_stream_image(change["NewImage"]) if action is StreamAction.PUT_NEW_IMAGE else None
        old_hash, new_hash = image_hash(old), image_hash(new)
        since = self.steps.steps(TABLE, source, target).get(STEP_CAPTURE, 0.0)
        if old_hash == new_hash:
            outcome = ALREADY  # a write that changed nothing (AWS sends no record for it; the emulators do)
        elif self.switch.take_echo(
            TABLE, source, text, transition_hash(old_hash, new_hash), new_hash, since, taker=sequence
        ):
            outcome = ECHO
        else:
            own = number is not None and applying == number  # this record's write began before a crash
            outcome = self._judge_and_write(source, target, keys, text, old, new, (number, last), own)
        if number is not None:
            self.switch.mark_sequence(TABLE, source, text, number)
        return outcome

    def _judge_and_write(
        self,
        source: str,
        target: str,
        keys: Item,
        text: str,
        old: Item | None,
        new: Item | None,
        marks: tuple[int | None, int | None],
        own: bool,
    ) -> str:
        """Rule 3 of ferry.twoway; ``marks``: this record's sequence number and the key's last judged one."""
        found = self.ddb.get_item(TableName=target, Key=keys, ConsistentRead=True).get("Item")
        destination = cast("Item | None", dict(found) if found else None)
        verdict = judge(destination, old, new)
        if verdict is Verdict.ALREADY:
            if not own:
                # The target made the same change on its own: its record of it must not come back as a change.
                self.switch.coincided(TABLE, target, text, image_hash(new))
            return ALREADY
        if verdict is Verdict.CONFLICT and own:
            # This record's write began before a crash (its applying mark), and the target holds neither image:
            # either that write landed and the target's owner changed the key after it (that change travels back
            # on its own), or it never landed and the target changed on its own, a change whose record the other
            # direction judges against the source, which holds this record's new image or later: the conflict is
            # recorded there. Either way nothing is written here.
            log.info("key %s of %s moved on since this record's own write began; nothing written", text, target)
            return OVERTAKEN
        if verdict is Verdict.CONFLICT:
            self.switch.record_conflict(
                Conflict(
                    TABLE,
                    pair_id(source, target),
                    text,
                    source,
                    target,
                    time.time(),
                    image_hash(new),
                    image_hash(destination),
                ),
                keys,
            )
            log.warning("conflict on key %s: %s and %s both changed it", text, source, target)
            return CONFLICT
        number, last = marks
        transition = transition_hash(image_hash(destination), image_hash(new))
        if own and self.switch.journal_taken(TABLE, target, text, transition):
            # This record's write landed before a crash (its echo has been seen) and the target was changed back
            # to the state it was made on (ABA): that change travels back on its own; writing again would undo it.
            log.info("key %s of %s was changed back after this record's own write; nothing written", text, target)
            return OVERTAKEN
        if number is not None:
            self.switch.mark_applying(TABLE, source, text, number, last)
        self.switch.journal(TABLE, target, text, transition)
        return self._write_judged(target, keys, text, destination, new)

    def _write_judged(self, target: str, keys: Item, text: str, destination: Item | None, new: Item | None) -> str:
        """The judged write, conditioned on the key existing as judged. A lost answer is read back at once (the
        longer it waits, the likelier the key's owner changes it): the change found there → applied; the state
        judged → not landed, written again; anything else → overtaken (landed and changed since, or changed
        on its own: judged against the source by the other direction)."""
        hash_key = next(iter(keys))
        condition: dict[str, Any] = {
            "ConditionExpression": "attribute_exists(#k)" if destination else "attribute_not_exists(#k)",
            "ExpressionAttributeNames": {"#k": hash_key},
        }
        for _ in range(UNSURE_ATTEMPTS):
            try:
                written, current = (
                    write_item_if(self.ddb, target, condition, key=keys)
                    if new is None
                    else write_item_if(self.ddb, target, condition, item=new)
                )
            except OutcomeUnknown:
                found = self.ddb.get_item(TableName=target, Key=keys, ConsistentRead=True).get("Item")
                now = cast("Item | None", dict(found) if found else None)
                if image_hash(now) == image_hash(new):
                    return APPLIED
                if image_hash(now) == image_hash(destination):
                    continue  # still the state judged: it did not land
                log.info("key %s of %s moved on while this record's write was unanswered", text, target)
                return OVERTAKEN
            # Not written, yet the target holds the change: a request sent again after the first one landed.
            if not written and judge(cast("Item | None", current), None, new) is not Verdict.ALREADY:
                raise TargetMoved(f"{target} key {text} changed while its change was judged; judged again")
            return APPLIED
        raise OutcomeUnknown(f"{target} key {text}: {UNSURE_ATTEMPTS} writes unanswered; the record is judged again")
