"""What a deployment configures, derived once from the spec.

Both deployment paths take their settings from here, so they cannot drift apart:
``ferry tfvars`` writes them into ``terraform/stages/<stage>.ferry.tfvars.json`` for
``make deploy``, and ``ferry wire`` applies them through the API after ``chalice deploy``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass
from typing import Any

from ferry.runlog import LAG_SAMPLE_ATTRIBUTES
from ferry.spec import (
    INSERT_AUTO,
    INSERT_PUT,
    READ_EXPORT,
    READ_SCAN,
    WRITE_BATCH,
    WRITE_IMPORT,
    Spec,
    spec_to_dict,
)
from ferry.tables.export import EXPORT_EXPIRY_DAYS, EXPORT_PREFIX, default_export_bucket
from ferry.tables.protocol import REPLAY_STARTING_POSITION, UNLIMITED_RECORD_AGE
from ferry.twoway import reverse_spec

APP_NAME = "ferry"
STREAM_FUNCTION = "table_stream"
BUCKET_FUNCTION = "bucket_events"
# Reverse replication (`ferry reverse`, docs/adr/0009): the same handlers with the spec reversed
# (ferry.twoway.reverse_spec), reading the new tables' streams and the `<events_queue>-reverse` queue.
STREAM_REVERSE_FUNCTION = "table_stream_reverse"
BUCKET_REVERSE_FUNCTION = "bucket_events_reverse"
FORWARD, REVERSE = "forward", "reverse"
# Each direction's functions: (the stream function, the bucket function).
DIRECTION_FUNCTIONS = {
    FORWARD: (STREAM_FUNCTION, BUCKET_FUNCTION),
    REVERSE: (STREAM_REVERSE_FUNCTION, BUCKET_REVERSE_FUNCTION),
}
FUNCTIONS = (*DIRECTION_FUNCTIONS[FORWARD], *DIRECTION_FUNCTIONS[REVERSE])
# The bucket events queue's dead-letter queue is named after it.
DLQ_SUFFIX = "-dlq"
# Every queue that holds failed work (stream on-failure queue, bucket events DLQ): encrypted, and
# kept as long as SQS allows (14 days) so `ferry redrive` finds it.
QUEUE_RETENTION_SECONDS = 14 * 24 * 3600  # SQS's longest retention: also how long a replay holds bucket events
DEAD_LETTER_QUEUE_ATTRIBUTES = {"SqsManagedSseEnabled": "true", "MessageRetentionPeriod": str(QUEUE_RETENTION_SECONDS)}


@dataclass(frozen=True)
class StreamMappingSettings:
    """The DynamoDB-stream event-source mapping. Every field is a safety setting:
    partial batch responses and bisection isolate a poison record, finite retries and record age
    stop it from blocking its shard, and the on-failure destination keeps its position for
    ``ferry redrive`` (which converges the key from the source's current state)."""

    batch_size: int
    maximum_retry_attempts: int
    maximum_record_age_in_seconds: int
    bisect_batch_on_function_error: bool
    starting_position: str
    # 1 keeps every shard in order; ferry's replicator only needs order per key, but more
    # concurrency per shard is a choice to make with measurements, not a default.
    parallelization_factor: int
    maximum_batching_window_in_seconds: int


@dataclass(frozen=True)
class BucketEventsSettings:
    queue_name: str
    max_receive_count: int
    visibility_timeout_seconds: int
    batch_size: int
    maximum_batching_window_in_seconds: int
    # The queue keeps an event as long as SQS allows: a replay copy holds its bucket's events there.
    message_retention_seconds: int
    # Replay buckets (all buckets share the queue, so all or none): the queue's mapping is created
    # disabled at deploy time and `ferry release` enables it once no bucket is held any more.
    hold_until_release: bool


def stream_mapping_settings(spec: Spec, *, replay: bool = False) -> StreamMappingSettings:
    """The stream mapping of an insert-only table, or (``replay``) of a replay table, which the release
    creates: it starts at the stream's oldest record and never discards a held record for its age
    (docs/adr/0004); retries, bisection and the on-failure queue are the same."""
    r = spec.replication
    return StreamMappingSettings(
        batch_size=r.batch_size,
        maximum_retry_attempts=r.max_retries,
        maximum_record_age_in_seconds=UNLIMITED_RECORD_AGE if replay else r.max_record_age_seconds,
        bisect_batch_on_function_error=True,
        starting_position=REPLAY_STARTING_POSITION if replay else r.starting_position,
        parallelization_factor=1,
        maximum_batching_window_in_seconds=1,
    )


def bucket_events_settings(spec: Spec) -> BucketEventsSettings:
    s = spec.s3
    return BucketEventsSettings(
        queue_name=s.events_queue,
        max_receive_count=s.max_receive_count,
        visibility_timeout_seconds=s.visibility_timeout,
        batch_size=s.batch_size,
        maximum_batching_window_in_seconds=1,
        message_retention_seconds=QUEUE_RETENTION_SECONDS,
        hold_until_release=buckets_held(spec),
    )


def reverse_stream_mapping_settings(spec: Spec) -> StreamMappingSettings:
    """The reverse function's stream mappings (the new tables' streams): the same safety settings,
    TRIM_HORIZON (the stream exists only since `ferry reverse` enabled it), the spec's finite record age."""
    return stream_mapping_settings(reverse_spec(spec))


def reverse_failure_queue_name(spec: Spec) -> str:
    """The reverse stream mappings' on-failure queue (``<on_failure_queue>-reverse``)."""
    return reverse_spec(spec).replication.on_failure_queue


def reverse_bucket_events_settings(spec: Spec) -> BucketEventsSettings:
    """The reverse events queue (``<events_queue>-reverse``) and its mapping: never held (reverse
    replication has no copy to wait for)."""
    return dataclasses.replace(bucket_events_settings(reverse_spec(spec)), hold_until_release=False)


def buckets_held(spec: Spec) -> bool:
    """Whether the bucket events are held until the release: the buckets' protocol is replay (the spec
    gives every bucket one protocol, since they share one events queue)."""
    return bool(spec.buckets) and all(b.replay for b in spec.buckets)


def export_bucket(spec: Spec, account: str) -> str:
    """Where a table copy's point-in-time exports go (``account``: ferry's home): backfill.export_bucket,
    or the bucket `ferry init` / Terraform creates (ferry-exports-<account>-<region>)."""
    return spec.backfill.export_bucket or default_export_bucket(account, spec.region)


def function_name(stage: str, function: str) -> str:
    """Chalice's naming (``<app>-<stage>-<function>``); Terraform uses the same names."""
    return f"{APP_NAME}-{stage}-{function}"


def stream_mapping_request(
    settings: StreamMappingSettings, *, stream_arn: str, function: str, on_failure_arn: str
) -> dict[str, Any]:
    """CreateEventSourceMapping arguments (Terraform sets the same attributes from tfvars)."""
    return {
        "EventSourceArn": stream_arn,
        "FunctionName": function,
        "StartingPosition": settings.starting_position,
        "BatchSize": settings.batch_size,
        "MaximumRetryAttempts": settings.maximum_retry_attempts,
        "MaximumRecordAgeInSeconds": settings.maximum_record_age_in_seconds,
        "BisectBatchOnFunctionError": settings.bisect_batch_on_function_error,
        "ParallelizationFactor": settings.parallelization_factor,
        "MaximumBatchingWindowInSeconds": settings.maximum_batching_window_in_seconds,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "DestinationConfig": {"OnFailure": {"Destination": on_failure_arn}},
    }


def queue_mapping_request(
    settings: BucketEventsSettings, *, queue_arn: str, function: str, enabled: bool = True
) -> dict[str, Any]:
    """CreateEventSourceMapping arguments of the events queue's mapping; ``enabled=False`` at deploy time
    while the buckets are held (``settings.hold_until_release``). An update must leave ``Enabled`` out:
    the release enabled the mapping, and a later deploy must not disable it again."""
    return {
        "EventSourceArn": queue_arn,
        "FunctionName": function,
        "Enabled": enabled,
        "BatchSize": settings.batch_size,
        "MaximumBatchingWindowInSeconds": settings.maximum_batching_window_in_seconds,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
    }


def lambda_spec_json(spec: Spec) -> str:
    """``FERRY_SPEC`` for the functions: the whole spec, compact (Lambda allows 4 KB of environment)."""
    return json.dumps(spec_to_dict(spec), separators=(",", ":"), sort_keys=True)


# ---------------------------------------------------------------------------------------------
# Terraform variables (the contract is terraform/variables.tf)


def table_variables(
    source: dict[str, Any],
    target: dict[str, Any] | None,
    *,
    target_name: str,
    target_arn: str,
    ttl_attribute: str | None,
    protocol: str,
    import_creates_target: bool,
) -> dict[str, Any]:
    """One element of ``var.tables`` from the DescribeTable output of the source (and of the
    target, when it exists: then Terraform only references it). ``import_creates_target``
    (backfill.write: import): ImportTable creates the target, so Terraform must not. ``protocol``:
    Terraform creates the stream mapping of an insert-only table; a replay table's is created by
    its release (docs/adr/0002, decision 7). ``target_stream_arn``: the target's stream once `ferry reverse`
    enabled it (the reverse function reads it), else ""."""
    keys = {k["KeyType"]: k["AttributeName"] for k in source["KeySchema"]}
    billing = source.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
    throughput = source.get("ProvisionedThroughput", {})
    provisioned = billing == "PROVISIONED"

    def capacity(holder: dict[str, Any]) -> dict[str, Any]:
        t = holder.get("ProvisionedThroughput", {})
        if not provisioned:
            return {"read_capacity": None, "write_capacity": None}
        return {
            "read_capacity": int(t.get("ReadCapacityUnits", 0)),
            "write_capacity": int(t.get("WriteCapacityUnits", 0)),
        }

    def projection(index: dict[str, Any]) -> dict[str, Any]:
        p = index.get("Projection", {})
        return {"projection_type": p.get("ProjectionType", "ALL"), "non_key_attributes": p.get("NonKeyAttributes")}

    def index_keys(index: dict[str, Any]) -> dict[str, str | None]:
        ks = {k["KeyType"]: k["AttributeName"] for k in index["KeySchema"]}
        return {"hash_key": ks["HASH"], "range_key": ks.get("RANGE")}

    gsis = [
        {"name": g["IndexName"], **index_keys(g), **projection(g), **capacity(g)}
        for g in source.get("GlobalSecondaryIndexes", [])
    ]
    lsis = [
        {"name": index["IndexName"], "range_key": index_keys(index)["range_key"], **projection(index)}
        for index in source.get("LocalSecondaryIndexes", [])
    ]
    return {
        "source": source["TableName"],
        "target": target_name,
        "source_arn": source["TableArn"],
        "source_stream_arn": source.get("LatestStreamArn", ""),
        "protocol": protocol,
        "create_target": target is None and not import_creates_target,
        "target_arn": target["TableArn"] if target else target_arn,
        "target_stream_arn": _stream_arn(target),
        "hash_key": keys["HASH"],
        "range_key": keys.get("RANGE"),
        "attributes": [
            {"name": a["AttributeName"], "type": a["AttributeType"]} for a in source.get("AttributeDefinitions", [])
        ],
        "billing_mode": "PROVISIONED" if provisioned else "PAY_PER_REQUEST",
        "read_capacity": int(throughput.get("ReadCapacityUnits", 0)) if provisioned else None,
        "write_capacity": int(throughput.get("WriteCapacityUnits", 0)) if provisioned else None,
        "global_secondary_indexes": gsis,
        "local_secondary_indexes": lsis,
        "ttl_attribute": ttl_attribute,
    }


def _stream_arn(table: dict[str, Any] | None) -> str:
    """The table's stream ARN while its stream is enabled (DescribeTable keeps LatestStreamArn after a disable)."""
    if table is None or not table.get("StreamSpecification", {}).get("StreamEnabled"):
        return ""
    return str(table.get("LatestStreamArn", ""))


def bucket_variables(
    source: str, target: str, prefix: str, *, target_exists: bool, versioning: bool, other_notifications: bool
) -> dict[str, Any]:
    """One element of ``var.buckets``. Terraform's ``aws_s3_bucket_notification`` replaces a
    bucket's whole notification configuration, so it manages the source's only when the source
    has no other notification; otherwise ``ferry init --sources-only`` merges EventBridge in."""
    return {
        "source": source,
        "target": target,
        "prefix": prefix,
        "create_target": not target_exists,
        "versioning": versioning,
        "manage_source_notifications": not other_notifications,
    }


def backfill_variables(spec: Spec, account: str) -> dict[str, Any]:
    """``var.backfill``: how the table job copies (its permissions follow: read, write, and how an
    insert-only table is written, insert_mode), and the export bucket: its name when the copy reads an
    export (``account``: ferry's home), and whether Terraform creates it (no backfill.export_bucket
    given) with ferry's prefix and expiry."""
    exports = spec.backfill.read == READ_EXPORT and bool(spec.tables)
    return {
        "read": spec.backfill.read,
        "write": spec.backfill.write,
        "insert_mode": spec.backfill.insert_mode,
        "export_bucket": export_bucket(spec, account) if exports else "",
        "create_export_bucket": exports and not spec.backfill.export_bucket,
        "export_prefix": EXPORT_PREFIX,
        "export_expiry_days": EXPORT_EXPIRY_DAYS,
    }


def terraform_variables(
    spec: Spec,
    stage: str,
    tables: list[dict[str, Any]],
    buckets: list[dict[str, Any]],
    *,
    account: str,
    reverse: bool = False,
) -> dict[str, Any]:
    """The whole ``<stage>.ferry.tfvars.json``; the stage file (terraform/stages/<stage>.tfvars) sets the sizing.
    ``account``: ferry's home account (the default export bucket is named after it). ``reverse``: `ferry
    reverse` has begun (its step is in the state table): Terraform deploys reverse replication too, and keeps
    it on every later apply."""
    out: dict[str, Any] = {
        "stage": stage,
        "region": spec.region,
        "spec_json": lambda_spec_json(spec),
        "state_table_name": spec.state_table,
        "source_role_arn": spec.source_role_arn,
        "target_role_arn": spec.target_role_arn,
        "tables": tables,
        "buckets": buckets,
        "stream_mapping": asdict(stream_mapping_settings(spec)),
        "stream_failure_queue_name": spec.replication.on_failure_queue,
        "bucket_events": asdict(bucket_events_settings(spec)),
        "backfill": backfill_variables(spec, account),
        "reverse": reverse,
    }
    return out


# ---------------------------------------------------------------------------------------------
# Least-privilege IAM for the quick path (`ferry chalice-config`, `ferry wire`). Terraform writes
# the same statements in HCL (terraform/modules); tests/terraform compares the two action sets.


@dataclass(frozen=True)
class Arns:
    """How ferry names the resources of one account and region in IAM policies."""

    region: str
    account: str
    partition: str = "aws"

    def table(self, name: str) -> str:
        return f"arn:{self.partition}:dynamodb:{self.region}:{self.account}:table/{name}"

    def queue(self, name: str) -> str:
        return f"arn:{self.partition}:sqs:{self.region}:{self.account}:{name}"

    def bucket(self, name: str) -> str:
        return f"arn:{self.partition}:s3:::{name}"

    def log_group(self, name: str) -> str:
        return f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:{name}"

    def function(self, name: str) -> str:
        return f"arn:{self.partition}:lambda:{self.region}:{self.account}:function:{name}"

    def event_source_mappings(self) -> str:
        """Every event-source mapping of the account and region: UpdateEventSourceMapping names the
        mapping, whose UUID is only known once it exists; a lambda:FunctionArn condition narrows it."""
        return f"arn:{self.partition}:lambda:{self.region}:{self.account}:event-source-mapping:*"


STREAM_READ = ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams")
HELD_COUNT = ("dynamodb:GetShardIterator", "dynamodb:GetRecords")
# The destination's current item (a consistent GetItem: the two-way judge, docs/adr/0009), then its write.
TARGET_TABLE_APPLY = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem")
STATE_TABLE_PHASE = ("dynamodb:GetItem",)
# The two-way items a handler reads and writes in the state table (ferry.twoway's layout): the switch's
# steps, the write journal, the sequence marks, the conflicts and the sync marks; only those partition keys.
TWO_WAY_STATE = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem")
TWO_WAY_KEY_PREFIXES = ("twoway#", "journal#", "seen#", "conflict#", "sync#")
# Phase, capture, copy run and per-segment checkpoints; a new table copy clears the old checkpoints.
STATE_TABLE_TABLE_JOB = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:DeleteItem")
STATE_TABLE_BUCKET_JOB = ("dynamodb:GetItem", "dynamodb:PutItem")  # phase, capture, copy run
# Replay: BatchWriteItem; insert-only: conditional PutItem (also insert_mode partiql's fallback for an
# item whose statement would be too long).
TARGET_ITEM_COPY = ("dynamodb:BatchWriteItem", "dynamodb:PutItem")
# What BatchExecuteStatement needs for ferry's statements, all INSERTs (AWS: "IAM security policies with
# PartiQL for DynamoDB"): on the insert-only targets (insert_mode partiql, or auto where the probe chose
# it), and on the state table, where insert_mode auto probes the endpoint (its DeleteItem: ReadWriteState).
PARTIQL_INSERT = ("dynamodb:PartiQLInsert",)
SOURCE_EXPORT = ("dynamodb:DescribeContinuousBackups", "dynamodb:ExportTableToPointInTime")
# What DynamoDB's export writes with the caller's permissions (AWS: "Requesting a table export").
EXPORT_WRITE = ("s3:AbortMultipartUpload", "s3:PutObject", "s3:PutObjectAcl")
EXPORT_READ = ("s3:GetObject", "s3:ListBucket")  # the job reads the files, and so does ImportTable
TARGET_IMPORT = ("dynamodb:DescribeImport", "dynamodb:ImportTable")
# ImportTable logs the items it rejects to /aws-dynamodb/* with the caller's permissions
# (AWS: "Requesting a table import in DynamoDB", Setting up IAM permissions).
IMPORT_LOGS = (
    "logs:CreateLogGroup",
    "logs:CreateLogStream",
    "logs:DescribeLogGroups",
    "logs:DescribeLogStreams",
    "logs:PutLogEvents",
    "logs:PutRetentionPolicy",
)
QUEUE_LOOKUP = ("sqs:GetQueueUrl", "sqs:GetQueueAttributes")  # its ARN for a mapping, its depth at release
SOURCE_OBJECT_READ = ("s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging")
SOURCE_BUCKET_INSPECT = ("s3:GetBucketVersioning", "s3:GetEncryptionConfiguration")  # GetBucketEncryption
# CopyObject, CreateMultipartUpload, UploadPartCopy and CompleteMultipartUpload all need s3:PutObject.
TARGET_OBJECT_WRITE = (
    "s3:GetObject",
    "s3:GetObjectTagging",
    "s3:PutObject",
    "s3:PutObjectTagging",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
)
QUEUE_CONSUME = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
LOG_WRITE = ("logs:CreateLogStream", "logs:PutLogEvents")


def _statement(sid: str, actions: tuple[str, ...], resources: list[str], **extra: Any) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": sorted(set(actions)), "Resource": sorted(set(resources)), **extra}


def _lag_samples_statement(state_table_arn: str) -> dict[str, Any]:
    """A handler's lag samples (ferry.runlog): PutItem into the state table of a sample's attributes only."""
    return _statement(
        "RecordLagSamples",
        ("dynamodb:PutItem",),
        [state_table_arn],
        Condition={"ForAllValues:StringEquals": {"dynamodb:Attributes": list(LAG_SAMPLE_ATTRIBUTES)}},
    )


def _two_way_statement(state_table_arn: str) -> dict[str, Any]:
    """The two-way judge's items in the state table: GetItem, PutItem and DeleteItem on items whose partition
    key starts with one of :data:`TWO_WAY_KEY_PREFIXES` (dynamodb:LeadingKeys; these three actions always
    name one key, so ForAllValues never meets a request without one)."""
    return _statement(
        "JudgeTwoWay",
        TWO_WAY_STATE,
        [state_table_arn],
        Condition={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{p}*" for p in TWO_WAY_KEY_PREFIXES]}},
    )


def _assume(spec: Spec) -> list[dict[str, Any]]:
    roles = [arn for arn in (spec.source_role_arn, spec.target_role_arn) if arn]
    return [_statement("AssumeMigrationRoles", ("sts:AssumeRole",), roles)] if roles else []


def _bucket_statements(spec: Spec, arns: Arns) -> list[dict[str, Any]]:
    if not spec.buckets:
        return []
    sources = [b.source for b in spec.buckets]
    targets = [b.target for b in spec.buckets]
    return [
        _statement("ListBuckets", ("s3:ListBucket",), [arns.bucket(b) for b in sources + targets]),
        _statement("ReadSourceObjects", SOURCE_OBJECT_READ, [f"{arns.bucket(b)}/*" for b in sources]),
        _statement("WriteTargetObjects", TARGET_OBJECT_WRITE, [f"{arns.bucket(b)}/*" for b in targets]),
    ]


def _own_function(arns: Arns, function: str) -> dict[str, Any]:
    """The condition confining an event-source mapping action to one of ferry's functions (Lambda's
    lambda:FunctionArn key; the ARN of a version or alias of it too)."""
    arn = arns.function(function)
    return {"ArnLike": {"lambda:FunctionArn": [arn, f"{arn}:*"]}}


def _mapping_statements(arns: Arns, function: str, *, update: bool) -> list[dict[str, Any]]:
    """What a release needs of the function's mappings: find them, create a missing one, and (``update``)
    enable the events queue's. ListEventSourceMappings and CreateEventSourceMapping authorize on "*"
    only (AWS, "Resources and conditions for Lambda actions"): the list reads configuration, and the
    create is confined to ``function`` by its condition."""
    statements = [
        _statement("ListMappings", ("lambda:ListEventSourceMappings",), ["*"]),
        _statement(
            "CreateOwnMapping", ("lambda:CreateEventSourceMapping",), ["*"], Condition=_own_function(arns, function)
        ),
    ]
    if update:
        statements.append(
            _statement(
                "EnableOwnMapping",
                ("lambda:UpdateEventSourceMapping",),
                [arns.event_source_mappings()],
                Condition=_own_function(arns, function),
            )
        )
    return statements


def _table_job_statements(spec: Spec, stage: str, arns: Arns) -> list[dict[str, Any]]:
    """The table backfill job: its checks, its copy path (scan or export, batch writes or import), the
    state it records and the release (or, insert-only, the consumer it needs running first)."""
    sources = [arns.table(t.source) for t in spec.tables]
    targets = [arns.table(t.target) for t in spec.tables]
    statements = [
        _statement("ReadWriteState", STATE_TABLE_TABLE_JOB, [arns.table(spec.state_table)]),
        _statement("DescribeSources", ("dynamodb:DescribeTable",), sources),
        # capture: the stream's open shards; the release: which of them are still listed
        _statement("DescribeSourceStreams", ("dynamodb:DescribeStream",), [f"{s}/stream/*" for s in sources]),
        _statement("DescribeTargets", ("dynamodb:DescribeTable",), targets),
        _statement("FindFailureQueue", QUEUE_LOOKUP, [arns.queue(spec.replication.on_failure_queue)]),
        *_mapping_statements(arns, function_name(stage, STREAM_FUNCTION), update=False),
    ]
    replay_sources = [arns.table(t.source) for t in spec.tables if t.replay]
    if replay_sources:  # the release counts the held changes (status, the report); its mapping comes after
        statements.append(_statement("CountHeldChanges", HELD_COUNT, [f"{s}/stream/*" for s in replay_sources]))
    if spec.backfill.read == READ_SCAN:
        statements.append(_statement("ScanSources", ("dynamodb:Scan",), sources))
    if spec.backfill.read == READ_EXPORT:
        bucket = arns.bucket(export_bucket(spec, arns.account))
        exports = f"{bucket}/{EXPORT_PREFIX}/*"
        statements += [
            _statement("ExportSources", SOURCE_EXPORT, sources),
            _statement("DescribeExports", ("dynamodb:DescribeExport",), [f"{s}/export/*" for s in sources]),
            _statement("WriteExports", EXPORT_WRITE, [exports]),
            _statement("ReadExports", EXPORT_READ, [bucket, exports]),
        ]
    if spec.backfill.write == WRITE_BATCH:
        statements.append(_statement("WriteTargetItems", TARGET_ITEM_COPY, targets))
    statements += _insert_mode_statements(spec, arns)
    if spec.backfill.write == WRITE_IMPORT:
        statements += [
            _statement("ImportTargets", TARGET_IMPORT, targets + [f"{t}/import/*" for t in targets]),
            # the target gets the source's TTL once the import has created it
            _statement("ReadSourceTtl", ("dynamodb:DescribeTimeToLive",), sources),
            _statement("SetTargetTtl", ("dynamodb:UpdateTimeToLive",), targets),
            _statement(
                "WriteImportLogs",
                IMPORT_LOGS,
                [arns.log_group("/aws-dynamodb/*"), arns.log_group("/aws-dynamodb/*") + ":*"],
            ),
        ]
    return statements


def _insert_mode_statements(spec: Spec, arns: Arns) -> list[dict[str, Any]]:
    """backfill.insert_mode (docs/adr/0001): PartiQL INSERTs into the insert-only targets unless it is put,
    and, for auto, the driver's probe of the endpoint in the state table. Nothing without an insert-only
    table: replay writes BatchWriteItem whatever the setting."""
    insert_only = [arns.table(t.target) for t in spec.tables if not t.replay]
    if not insert_only or spec.backfill.insert_mode == INSERT_PUT:
        return []
    statements = [_statement("InsertTargetItems", PARTIQL_INSERT, insert_only)]
    if spec.backfill.insert_mode == INSERT_AUTO:
        statements.append(_statement("ProbeInsertMode", PARTIQL_INSERT, [arns.table(spec.state_table)]))
    return statements


def _bucket_job_statements(spec: Spec, stage: str, arns: Arns) -> list[dict[str, Any]]:
    """The bucket backfill job: the copy, its record in the state table and, when the buckets are held,
    the release: the events queue's depth, then its mapping enabled (created when missing)."""
    statements = [
        *_bucket_statements(spec, arns),
        # check_ready (inspect_buckets) reads each source's versioning and default encryption
        _statement("InspectSourceBuckets", SOURCE_BUCKET_INSPECT, [arns.bucket(b.source) for b in spec.buckets]),
        _statement("ReadWriteState", STATE_TABLE_BUCKET_JOB, [arns.table(spec.state_table)]),
    ]
    if buckets_held(spec):
        statements += [
            _statement("FindEventsQueue", QUEUE_LOOKUP, [arns.queue(spec.s3.events_queue)]),
            *_mapping_statements(arns, function_name(stage, BUCKET_FUNCTION), update=True),
        ]
    return statements


def _table_stream_statements(spec: Spec, arns: Arns) -> list[dict[str, Any]]:
    """A table stream function of ``spec`` (forward) or of ``reverse_spec(spec)`` (the new tables' streams
    back to the old tables): read its sources' streams, judge and write its targets, send failed batches."""
    if not spec.tables:
        return []
    state = arns.table(spec.state_table)
    return [
        _statement("ReadSourceStreams", STREAM_READ, [arns.table(t.source) + "/stream/*" for t in spec.tables]),
        _statement("ApplyToTargets", TARGET_TABLE_APPLY, [arns.table(t.target) for t in spec.tables]),
        _statement("ReadPhase", STATE_TABLE_PHASE, [state]),
        _lag_samples_statement(state),
        _two_way_statement(state),
        _statement("SendFailures", ("sqs:SendMessage",), [arns.queue(spec.replication.on_failure_queue)]),
    ]


def _bucket_events_statements(spec: Spec, arns: Arns) -> list[dict[str, Any]]:
    """A bucket events function of ``spec`` or of ``reverse_spec(spec)``: consume its events queue, read its
    sources' objects, write its targets' objects."""
    if not spec.buckets:
        return []
    state = arns.table(spec.state_table)
    return [
        _statement("ConsumeEventsQueue", QUEUE_CONSUME, [arns.queue(spec.s3.events_queue)]),
        *_bucket_statements(spec, arns),
        _lag_samples_statement(state),
        _two_way_statement(state),
    ]


def policy_documents(spec: Spec, stage: str, arns: Arns, *, artifacts_bucket: str) -> dict[str, dict[str, Any]]:
    """One policy per role: the four functions (forward and reverse) and the two Glue jobs (empty for a kind
    the spec lacks)."""
    reverse = reverse_spec(spec)

    def logs(function: str) -> dict[str, Any]:
        return _statement(
            "WriteLogs", LOG_WRITE, [arns.log_group(f"/aws/lambda/{function_name(stage, function)}") + ":*"]
        )

    job_common = [
        _statement("ReadArtifacts", ("s3:GetObject",), [f"{arns.bucket(artifacts_bucket)}/*"]),
        _statement("WriteLogs", ("logs:CreateLogGroup", *LOG_WRITE), [arns.log_group("/aws-glue/*") + ":*"]),
        # CloudWatch metrics have no resource ARN: "*" is the only resource AWS accepts; the
        # condition confines it to Glue's namespace.
        _statement(
            "JobMetrics",
            ("cloudwatch:PutMetricData",),
            ["*"],
            Condition={"StringEquals": {"cloudwatch:namespace": "Glue"}},
        ),
    ]
    table_job = [*job_common, *_table_job_statements(spec, stage, arns)] if spec.tables else []
    bucket_job = [*job_common, *_bucket_job_statements(spec, stage, arns)] if spec.buckets else []

    def document(statements: list[dict[str, Any]]) -> dict[str, Any]:
        return {"Version": "2012-10-17", "Statement": statements + _assume(spec)}

    return {
        STREAM_FUNCTION: document([*_table_stream_statements(spec, arns), logs(STREAM_FUNCTION)]),
        BUCKET_FUNCTION: document([*_bucket_events_statements(spec, arns), logs(BUCKET_FUNCTION)]),
        STREAM_REVERSE_FUNCTION: document([*_table_stream_statements(reverse, arns), logs(STREAM_REVERSE_FUNCTION)]),
        BUCKET_REVERSE_FUNCTION: document([*_bucket_events_statements(reverse, arns), logs(BUCKET_REVERSE_FUNCTION)]),
        "table_backfill": document(table_job),
        "bucket_backfill": document(bucket_job),
    }
