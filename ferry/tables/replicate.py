"""Live replication of one DynamoDB stream record onto the target table.

``TableReplicator.apply_stream_record`` is what the ``table_stream`` Lambda calls for each
record (through Powertools' batch processing) and what the local pollers end up calling too.
It raises to mark a record failed; it is idempotent, so a redelivered record is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ferry.errors import ChangesHeld, PoisonRecordError
from ferry.spec import Spec
from ferry.tables.protocol import StreamAction, decide_stream_action, is_ttl_delete, tombstone_for
from ferry.tables.state import PhaseCache
from ferry.wire import decode_stream_image, decode_stream_value, key_text

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


@dataclass(frozen=True)
class AppliedRecord:
    source: str
    target: str
    action: StreamAction
    key: str
    sequence_number: str


class TableReplicator:
    """Applies stream records of the spec's source tables to their targets.

    ``ddb`` writes the targets: the target side's client (``spec.target_where()``). The records
    come from the source's stream and the phase from the state table (``phases``, home account);
    nothing here reads the source table."""

    def __init__(self, spec: Spec, ddb: DynamoDBClient, phases: PhaseCache) -> None:
        self.spec = spec
        self.ddb = ddb
        self.phases = phases

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
        if action is StreamAction.PUT_NEW_IMAGE:
            image = change.get("NewImage")
            if not image:
                raise PoisonRecordError(
                    "dynamodb.NewImage",
                    f"{event_name} record of {source!r} has no NewImage: the stream must be NEW_AND_OLD_IMAGES",
                )
            self.ddb.put_item(TableName=mapping.target, Item=decode_stream_image(image))
        elif action is StreamAction.DELETE:
            self.ddb.delete_item(TableName=mapping.target, Key=keys)
        elif action is StreamAction.PUT_TOMBSTONE:
            self.ddb.put_item(TableName=mapping.target, Item=tombstone_for(keys))
        applied = AppliedRecord(source, mapping.target, action, key_text(keys), str(change.get("SequenceNumber", "")))
        log.debug("applied %s %s to %s key %s", event_name, action.value, mapping.target, applied.key)
        return applied
