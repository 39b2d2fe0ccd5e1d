"""``ferry init`` and the read-only checks every other command runs first.

Everything is inspected before anything is written: a missing source, source == target, a target
whose key schema differs, an export without point-in-time recovery (unless ``--enable-pitr``) or an
existing target that an import would have to create stops the command with a SetupError (exit 2)
and no write made.

Capture first: ``init`` enables each source's stream, waits until it is ENABLED and records in the
state table when capture began and which shards were open (a replay copy is released only while
every change since is still in the stream). Then the table's phase: ``hold`` for replay (the consumer
applies nothing until the copy is released), ``backfill`` for insert-only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ferry.aws import (
    STREAM_VIEW,
    describe_stream_shards,
    describe_table_or_none,
    ensure_queue,
    point_in_time_recovery_enabled,
    queue_arn_of,
)
from ferry.clients import TableClients, make_client
from ferry.deploy import DEAD_LETTER_QUEUE_ATTRIBUTES
from ferry.errors import SetupError
from ferry.spec import READ_EXPORT, WRITE_IMPORT, Spec, TableMapping
from ferry.tables.export import import_parameters
from ferry.tables.protocol import PHASE_BACKFILL, PHASE_HOLD
from ferry.tables.schema import TableShape, create_table_arguments, describe_shape, key_schema_mismatch
from ferry.tables.state import Capture, StateStore, create_state_table

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
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
        # write: import — the import creates the target: until it has, the target is missing by design
        if target is None and require_targets and spec.backfill.write != WRITE_IMPORT:
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


def copy_ttl(clients: TableClients, mapping: TableMapping) -> list[str]:
    """Turn on the target's TTL on the source's attribute, when the source has TTL on."""
    ttl = clients.source.describe_time_to_live(TableName=mapping.source).get("TimeToLiveDescription", {})
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING") or not ttl.get("AttributeName"):
        return []
    clients.target.update_time_to_live(
        TableName=mapping.target, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]}
    )
    return [f"enabled TTL on {mapping.target} ({ttl['AttributeName']})"]


def ensure_failure_queue(sqs: SQSClient, name: str) -> tuple[str, str]:
    """The stream on-failure queue (``replication.on_failure_queue``), created or brought up to date:
    encrypted, messages kept 14 days. Returns (url, arn)."""
    url = ensure_queue(sqs, name, DEAD_LETTER_QUEUE_ATTRIBUTES)
    return url, queue_arn_of(sqs, url)


def enable_point_in_time_recovery(ddb: DynamoDBClient, source: str) -> list[str]:
    """Turn on point-in-time recovery on a source table (``ferry init --enable-pitr``) unless it is on."""
    if point_in_time_recovery_enabled(ddb, source):
        return []
    ddb.update_continuous_backups(
        TableName=source, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    return [f"enabled point-in-time recovery on {source} (--enable-pitr)"]


def enable_stream(ddb: DynamoDBClient, source: str) -> str:
    """Turn on the NEW_AND_OLD_IMAGES stream of a source table (``ddb``: the source side)."""
    ddb.update_table(TableName=source, StreamSpecification={"StreamEnabled": True, "StreamViewType": STREAM_VIEW})
    return f"enabled stream ({STREAM_VIEW}) on {source}"


def _check_copy_paths(spec: Spec, clients: TableClients, checks: list[TableCheck], *, enable_pitr: bool) -> None:
    """Read-only: what the spec's copy path needs of each table (before init writes anything)."""
    store = StateStore(clients.state, spec.state_table)
    state_exists = describe_table_or_none(clients.state, spec.state_table) is not None
    for i, check in enumerate(checks):
        m = check.mapping
        needs_pitr = spec.backfill.read == READ_EXPORT and not enable_pitr
        if needs_pitr and not point_in_time_recovery_enabled(clients.source, m.source):
            raise SetupError(
                f"backfill.read: export needs point-in-time recovery on tables[{i}].source {m.source!r}, which is "
                "off: run `ferry init --enable-pitr` (it turns it on: a change to the source, so only on request) "
                "or use read: scan"
            )
        if spec.backfill.write == WRITE_IMPORT:
            import_parameters(check.source, m.target)  # refuses local secondary indexes
            run = store.load_copy(m.source) if state_exists else None
            if check.target is not None and not (run and run.import_arn):
                raise SetupError(
                    f"tables[{i}].target: {m.target!r} exists, but backfill.write: import creates the target "
                    "(ImportTable cannot load an existing table): drop it, or use write: batch"
                )


def wait_for_stream(
    streams: DynamoDBStreamsClient,
    stream_arn: str,
    *,
    timeout: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Wait until the stream is ENABLED; the ids of its open shards (capture begins with them)."""
    deadline = time.monotonic() + timeout
    while True:
        status, shards = describe_stream_shards(streams, stream_arn)
        if status == "ENABLED":
            return sorted(
                s["ShardId"] for s in shards if "EndingSequenceNumber" not in s.get("SequenceNumberRange", {})
            )
        if time.monotonic() > deadline:
            raise SetupError(f"the stream {stream_arn} is still {status or 'not enabled'} after {timeout:.0f}s")
        sleep(1.0)


def record_capture(
    store: StateStore, clients: TableClients, streams: DynamoDBStreamsClient, mapping: TableMapping, *, now: float
) -> list[str]:
    """Wait for the source's stream and record when capture began (kept when it is already recorded for
    this stream: capture began then, not now)."""
    stream_arn = describe_shape(clients.source, mapping.source, "source").stream_arn
    if stream_arn is None:
        raise SetupError(f"{mapping.source!r} has no stream: run `ferry init` to enable it")
    shards = wait_for_stream(streams, stream_arn)
    recorded = store.load_capture(mapping.source)
    if recorded is not None and recorded.where == stream_arn:
        return []
    store.save_capture(mapping.source, Capture(now, stream_arn, tuple(shards)))
    return [
        f"{mapping.source}: capture began at {time.strftime('%H:%M:%S', time.localtime(now))} ({len(shards)} open shards)"
    ]


def init_tables(
    spec: Spec,
    ddb: DynamoDBClient | TableClients,
    *,
    enable_streams: bool = True,
    enable_pitr: bool = False,
    streams: DynamoDBStreamsClient | None = None,
) -> list[str]:
    """Create what is missing (targets, state table), enable source streams and wait for them, record
    where capture began, turn point-in-time recovery on when asked, set the phase.

    Returns one line per action taken. Validation of every table happens before the first write.
    ``ddb``: TableClients (streams on the source side, targets on the target side, the state table
    at home), or one client for every side. ``streams``: the source side's streams client.
    """
    clients = TableClients.of(ddb)
    checks = inspect_tables(spec, clients, require_targets=False, require_streams=not enable_streams)
    _check_copy_paths(spec, clients, checks, enable_pitr=enable_pitr)
    streams = streams or make_client("dynamodbstreams", spec.source_where())
    done: list[str] = []
    if create_state_table(clients.state, spec.state_table):
        done.append(f"created state table {spec.state_table}")
    store = StateStore(clients.state, spec.state_table)
    for check in checks:
        m = check.mapping
        if check.stream_needs_enabling:
            done.append(enable_stream(clients.source, m.source))
        done += record_capture(store, clients, streams, m, now=time.time())
        if spec.backfill.read == READ_EXPORT:
            done += enable_point_in_time_recovery(clients.source, m.source)
        if check.target is None and spec.backfill.write != WRITE_IMPORT:
            clients.target.create_table(**create_table_arguments(check.source, m.target))
            clients.target.get_waiter("table_exists").wait(
                TableName=m.target, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
            )
            done.append(f"created target table {m.target} with the key schema of {m.source}")
            done += copy_ttl(clients, m)
        if not store.has_phase(m.source):
            if m.replay:
                store.set_phase(m.source, PHASE_HOLD)
                done.append(f"{m.source}: phase hold (changes wait in the stream until the copy is released)")
            else:
                store.set_phase(m.source, PHASE_BACKFILL)
                done.append(f"{m.source}: phase backfill (REMOVEs are written as tombstones until finalize)")
    return done
