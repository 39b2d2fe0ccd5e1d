"""``ferry init`` and the read-only checks every other command runs first.

Everything is inspected before anything is written: a missing source, source == target, or a
target whose key schema differs stops the command with a SetupError (exit 2) and no write made.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ferry.aws import STREAM_VIEW, ensure_queue, queue_arn_of
from ferry.clients import TableClients
from ferry.deploy import DEAD_LETTER_QUEUE_ATTRIBUTES
from ferry.errors import SetupError
from ferry.spec import Spec, TableMapping
from ferry.tables.schema import TableShape, describe_shape, key_schema_mismatch
from ferry.tables.state import StateStore, create_state_table

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableCheck:
    mapping: TableMapping
    source: TableShape
    target: TableShape | None  # None: init will create it
    stream_needs_enabling: bool


def _describe_or_none(ddb: DynamoDBClient, name: str) -> TableShape | None:
    try:
        return describe_shape(ddb, name)
    except SetupError:
        return None


def inspect_tables(
    spec: Spec, ddb: DynamoDBClient | TableClients, *, require_targets: bool, require_streams: bool
) -> list[TableCheck]:
    """Read-only validation of every table in the spec. Raises SetupError naming the table.
    ``ddb``: TableClients, or one client for every side."""
    clients = TableClients.of(ddb)
    checks: list[TableCheck] = []
    for i, mapping in enumerate(spec.tables):
        source = describe_shape(clients.source, mapping.source, f"tables[{i}].source")
        target = _describe_or_none(clients.target, mapping.target)
        if target is None and require_targets:
            raise SetupError(
                f"tables[{i}].target: table {mapping.target!r} does not exist; run `ferry init` to create it"
            )
        if target is not None:
            mismatch = key_schema_mismatch(source, target)
            if mismatch:
                raise SetupError(f"tables[{i}].target: {mismatch}; use a target with the source's key schema")
        if source.stream_view_type not in (None, STREAM_VIEW):
            raise SetupError(
                f"tables[{i}].source: the stream of {mapping.source!r} is {source.stream_view_type}; ferry needs "
                f"{STREAM_VIEW} (disable the stream and run `ferry init` again)"
            )
        needs_stream = source.stream_arn is None
        if needs_stream and require_streams:
            raise SetupError(
                f"tables[{i}].source: {mapping.source!r} has no stream; run `ferry init` to enable it "
                "(`ferry init --sources-only` where Terraform creates the rest)"
            )
        checks.append(TableCheck(mapping, source, target, needs_stream))
    return checks


def _target_definition(source: TableShape, target_name: str) -> dict[str, Any]:
    """CreateTable arguments mirroring the source: keys, indexes, billing mode, encryption."""
    raw = source.raw
    used = {k["AttributeName"] for k in raw["KeySchema"]}
    for index in raw.get("GlobalSecondaryIndexes", []) + raw.get("LocalSecondaryIndexes", []):
        used |= {k["AttributeName"] for k in index["KeySchema"]}
    definition: dict[str, Any] = {
        "TableName": target_name,
        "KeySchema": raw["KeySchema"],
        "AttributeDefinitions": [a for a in raw["AttributeDefinitions"] if a["AttributeName"] in used],
        "SSESpecification": {"Enabled": True},
    }
    if source.on_demand:
        definition["BillingMode"] = "PAY_PER_REQUEST"
    else:
        definition["BillingMode"] = "PROVISIONED"
        definition["ProvisionedThroughput"] = {
            "ReadCapacityUnits": source.read_units,
            "WriteCapacityUnits": source.write_units,
        }
    gsis = []
    for index in raw.get("GlobalSecondaryIndexes", []):
        gsi: dict[str, Any] = {k: index[k] for k in ("IndexName", "KeySchema", "Projection")}
        if not source.on_demand:
            throughput = index.get("ProvisionedThroughput", {})
            gsi["ProvisionedThroughput"] = {
                "ReadCapacityUnits": throughput.get("ReadCapacityUnits") or source.read_units,
                "WriteCapacityUnits": throughput.get("WriteCapacityUnits") or source.write_units,
            }
        gsis.append(gsi)
    if gsis:
        definition["GlobalSecondaryIndexes"] = gsis
    lsis = [
        {k: index[k] for k in ("IndexName", "KeySchema", "Projection")}
        for index in raw.get("LocalSecondaryIndexes", [])
    ]
    if lsis:
        definition["LocalSecondaryIndexes"] = lsis
    return definition


def ensure_failure_queue(sqs: SQSClient, name: str) -> tuple[str, str]:
    """The stream on-failure queue (``replication.on_failure_queue``), created or brought up to date:
    encrypted, messages kept 14 days. Returns (url, arn)."""
    url = ensure_queue(sqs, name, DEAD_LETTER_QUEUE_ATTRIBUTES)
    return url, queue_arn_of(sqs, url)


def enable_stream(ddb: DynamoDBClient, source: str) -> str:
    """Turn on the NEW_AND_OLD_IMAGES stream of a source table (``ddb``: the source side)."""
    ddb.update_table(TableName=source, StreamSpecification={"StreamEnabled": True, "StreamViewType": STREAM_VIEW})
    return f"enabled stream ({STREAM_VIEW}) on {source}"


def init_tables(spec: Spec, ddb: DynamoDBClient | TableClients, *, enable_streams: bool = True) -> list[str]:
    """Create what is missing (targets, state table), enable source streams, set the phase.

    Returns one line per action taken. Validation of every table happens before the first write.
    ``ddb``: TableClients (streams on the source side, targets on the target side, the state table
    at home), or one client for every side.
    """
    clients = TableClients.of(ddb)
    checks = inspect_tables(spec, clients, require_targets=False, require_streams=not enable_streams)
    done: list[str] = []
    if create_state_table(clients.state, spec.state_table):
        done.append(f"created state table {spec.state_table}")
    store = StateStore(clients.state, spec.state_table)
    for check in checks:
        m = check.mapping
        if check.stream_needs_enabling:
            done.append(enable_stream(clients.source, m.source))
        if check.target is None:
            clients.target.create_table(**_target_definition(check.source, m.target))
            clients.target.get_waiter("table_exists").wait(
                TableName=m.target, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
            )
            done.append(f"created target table {m.target} with the key schema of {m.source}")
            ttl = clients.source.describe_time_to_live(TableName=m.source).get("TimeToLiveDescription", {})
            if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and ttl.get("AttributeName"):
                clients.target.update_time_to_live(
                    TableName=m.target, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]}
                )
                done.append(f"enabled TTL on {m.target} ({ttl['AttributeName']})")
        if not store.has_phase(m.source):
            store.set_phase(m.source, "backfill")
            done.append(f"{m.source}: phase set to backfill (REMOVEs are written as tombstones until finalize)")
    return done
