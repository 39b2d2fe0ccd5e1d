"""The migration spec, parsed once into frozen dataclasses.

The same parser reads the YAML file (through the CLI), the JSON the Lambdas get in their
environment and the JSON the Glue jobs get as an argument, so all three agree on every field.
Every error names the offending field (``tables[0].target``) and raises :class:`SpecError`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ferry.clients import AwsTarget
from ferry.errors import SpecError
from ferry.shape import UNROUTED_CHOICES, UNROUTED_ERROR, Route, Shape, Transform, When

_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
# arn:<partition>:iam::<account>:role/<optional path/>name (IAM's characters for paths and names)
_HOOK = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}")
ROLE_FIELDS = ("source_role_arn", "target_role_arn")
STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST")
# How the history is copied while changes are captured (docs/adr/0001 and 0004):
# replay: the consumer is held while the copy writes at bulk speed, then replays every change in order;
# insert-only: the consumer runs concurrently and the copy never overwrites what it wrote.
PROTOCOL_REPLAY = "replay"
PROTOCOL_INSERT_ONLY = "insert-only"
PROTOCOLS = (PROTOCOL_REPLAY, PROTOCOL_INSERT_ONLY)
READ_SCAN = "scan"  # parallel Scan, one Spark task per segment
READ_EXPORT = "export"  # a point-in-time export to S3, one Spark task per data file
READ_MODES = (READ_SCAN, READ_EXPORT)
WRITE_BATCH = "batch"  # BatchWriteItem (replay) / conditional PutItem (insert-only)
WRITE_IMPORT = "import"  # ImportTable creates the target from the export
WRITE_MODES = (WRITE_BATCH, WRITE_IMPORT)
# How insert-only copies write (docs/adr/0001): auto probes the endpoint once per copy and uses partiql
# (BatchExecuteStatement INSERTs, 25 a request) only where INSERT refuses an existing key; put = PutItem
# with attribute_not_exists, one item a request. The replay protocol writes BatchWriteItem either way.
INSERT_AUTO = "auto"
INSERT_PUT = "put"
INSERT_PARTIQL = "partiql"
INSERT_MODES = (INSERT_AUTO, INSERT_PUT, INSERT_PARTIQL)
# DynamoDB Streams keep a record 24 hours: a held copy and its catch-up must fit inside.
STREAM_RETENTION_HOURS = 24.0


@dataclass(frozen=True)
class TableMapping:
    source: str
    target: str  # with a shape: its first route's table
    replicate_ttl_deletes: bool = True
    protocol: str = PROTOCOL_REPLAY
    shape: Shape | None = None  # transform and routes (docs/adr/0010); the spec's targets/transform/unrouted

    @property
    def replay(self) -> bool:
        return self.protocol == PROTOCOL_REPLAY


@dataclass(frozen=True)
class BucketMapping:
    source: str
    target: str
    prefix: str = ""  # only keys under it
    delete_extra: bool = False  # backfill/verify also remove target keys the source lacks
    protocol: str = PROTOCOL_REPLAY

    @property
    def replay(self) -> bool:
        return self.protocol == PROTOCOL_REPLAY


@dataclass(frozen=True)
class S3Settings:
    # Objects larger than this are copied part by part (UploadPartCopy) with the source's layout.
    multipart_threshold: int = 5 * 1024**3
    concurrency: int = 16  # concurrent reconciles per backfill task
    request_rate: float = 0.0  # ceiling of S3 requests/s per backfill task; 0 = none
    max_rounds: int = 3  # reconcile re-reads the source after writing; rounds before the record fails
    verify_tags: bool = True  # verify reads tags (one request per object and side)
    events_queue: str = "ferry-bucket-events"  # EventBridge rule -> this SQS queue -> bucket_events
    max_receive_count: int = 5  # then the message moves to <events_queue>-dlq
    batch_size: int = 10
    visibility_timeout: int = 120
    splits: int = 8  # backfill partitions (Spark tasks)


@dataclass(frozen=True)
class BackfillSettings:
    splits: int = 8
    read_percent: float = 0.5
    write_percent: float = 0.5
    # On-demand tables have no provisioned capacity: these ceilings stand in for it.
    on_demand_read_units: int = 4000
    on_demand_write_units: int = 1000
    write_concurrency: int = 8
    page_size: int = 0  # Scan Limit; 0 = let DynamoDB fill 1 MB pages
    read: str = READ_SCAN  # scan | export (needs point-in-time recovery on the source)
    write: str = WRITE_BATCH  # batch | import (ImportTable creates the target; needs read: export)
    # A replay copy holds the changes it will replay in the stream (24 h): it refuses to start a copy
    # that it estimates will not finish, and be replayed, within this many hours.
    max_hold_hours: float = 20.0
    export_bucket: str = ""  # where exports go; "" = the bucket `ferry init` creates (ferry-exports-<account>-<region>)
    insert_mode: str = INSERT_AUTO  # auto | put | partiql: how protocol insert-only writes (see INSERT_MODES)


@dataclass(frozen=True)
class ReplicationSettings:
    batch_size: int = 100
    max_retries: int = 3
    starting_position: str = "TRIM_HORIZON"
    phase_cache_seconds: float = 5.0
    on_failure_queue: str = "ferry-stream-failures"
    # The mapping skips a record older than this and sends its position to the on-failure queue.
    # Below the streams' 24 h retention, so `ferry redrive` can still read the record.
    max_record_age_seconds: int = 21600


@dataclass(frozen=True)
class CutoverSettings:
    """When ``ferry status`` says GO: the replication lag and the age of the last verify it accepts."""

    max_lag_seconds: float = 5.0
    max_verify_age_minutes: float = 60.0


@dataclass(frozen=True)
class Spec:
    region: str
    tables: tuple[TableMapping, ...] = ()
    endpoint_url: str | None = None
    state_table: str = "ferry-state"
    backfill: BackfillSettings = field(default_factory=BackfillSettings)
    replication: ReplicationSettings = field(default_factory=ReplicationSettings)
    buckets: tuple[BucketMapping, ...] = ()
    s3: S3Settings = field(default_factory=S3Settings)
    # Cross-account: roles ferry assumes for the source and the target side. ferry itself (state
    # table, queues, Lambdas, Glue jobs) runs with the credentials it has, in its "home" account.
    source_role_arn: str | None = None
    target_role_arn: str | None = None
    cutover: CutoverSettings = field(default_factory=CutoverSettings)
    # `ferry plan`'s prices (USD) that replace its price table's for the spec's region: (name, price) pairs.
    prices: tuple[tuple[str, float], ...] = ()

    def source_where(self) -> AwsTarget:
        """Where source-side clients talk to: source tables and their streams, source buckets."""
        return AwsTarget(self.region, self.endpoint_url, self.source_role_arn)

    def target_where(self) -> AwsTarget:
        """Where target-side clients talk to: target tables and buckets (and the copies into them)."""
        return AwsTarget(self.region, self.endpoint_url, self.target_role_arn)

    def home_where(self) -> AwsTarget:
        """Where ferry's own resources are: state table, queues, EventBridge rules, Glue jobs."""
        return AwsTarget(self.region, self.endpoint_url)

    def bucket(self, source: str) -> BucketMapping:
        found = next((b for b in self.buckets if b.source == source), None)
        if found is None:
            raise SpecError("buckets", f"no bucket with source {source!r} in the spec")
        return found

    def mapping_for_source(self, source: str) -> TableMapping | None:
        return next((t for t in self.tables if t.source == source), None)

    def table(self, source: str) -> TableMapping:
        found = self.mapping_for_source(source)
        if found is None:
            raise SpecError("tables", f"no table with source {source!r} in the spec")
        return found


def _expect_mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(where, f"must be a mapping, got {type(value).__name__}")
    return value


def _show(value: Any, limit: int = 60) -> str:
    """A value for an error message: its repr, cut short (a spec can hold very large values)."""
    try:
        text = repr(value)
    except ValueError:  # an int beyond Python's digit limit for str()
        return f"a {type(value).__name__} too large to show"
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _reject_unknown(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        prefix = f"{where}." if where else ""
        name = unknown[0] if unknown[0].strip() else _show(unknown[0])
        raise SpecError(f"{prefix}{name}", f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _typed(data: Mapping[str, Any], key: str, kind: type, default: Any, where: str) -> Any:
    name = f"{where}.{key}" if where else key
    if key not in data or (data[key] is None and default is None):
        return default  # absent, or an explicit null for a field that is optional anyway
    value = data[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            value = float(value)
        except OverflowError:
            raise SpecError(name, f"must be a finite number, got {_show(value)}") from None
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise SpecError(name, f"must be {kind.__name__}, got {type(value).__name__} {_show(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(name, f"must be a finite number, got {_show(value)}")
    return value


def _fields_of(cls: Any) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _parse_settings(cls: Any, raw: Any, where: str) -> Any:
    data = _expect_mapping(raw if raw is not None else {}, where)
    _reject_unknown(data, _fields_of(cls), where)
    defaults = cls()
    values = {}
    for f in dataclasses.fields(cls):
        default = getattr(defaults, f.name)
        values[f.name] = _typed(data, f.name, type(default), default, where)
    return cls(**values)


def _check_range(value: float, low: float, high: float, name: str) -> None:
    if not low <= value <= high:
        raise SpecError(name, f"must be between {low} and {high}, got {_show(value)}")


def _source_and_target(data: Mapping[str, Any], where: str, pattern: re.Pattern[str], what: str) -> tuple[str, str]:
    """A mapping's ``source`` and ``target``: both required, valid names of ``what``, and different."""
    names = []
    for key in ("source", "target"):
        if data.get(key) is None:
            raise SpecError(f"{where}.{key}", "is required")
        name = _typed(data, key, str, None, where)
        if not pattern.fullmatch(name) or (what == "bucket" and ".." in name):
            raise SpecError(f"{where}.{key}", f"{name!r} is not a valid {_NAME_RULES[what]}")
        names.append(name)
    source, target = names
    if source == target:
        raise SpecError(f"{where}.target", f"must differ from the source {what}")
    return source, target


_NAME_RULES = {
    "table": "DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -)",
    "bucket": "S3 bucket name (3-63 of a-z 0-9 . -)",
}


SHAPE_KEYS = {"targets", "transform", "unrouted"}


def _parse_table(raw: Any, index: int) -> TableMapping:
    where = f"tables[{index}]"
    data = _expect_mapping(raw, where)
    _reject_unknown(data, (_fields_of(TableMapping) - {"shape"}) | SHAPE_KEYS, where)
    if SHAPE_KEYS & set(data):
        parse_shape(data, where)  # every field checked first: a wrong one is named before the refusal below
        name = next(key for key in ("targets", "transform", "unrouted") if key in data)
        raise SpecError(
            f"{where}.{name}",
            "transforms and table splits are not applied by this version's backfill, stream handler and verify "
            "yet (docs/adr/0010, issue 15): nothing would reshape the copy",
        )
    source, target = _source_and_target(data, where, _TABLE_NAME, "table")
    return TableMapping(
        source, target, _typed(data, "replicate_ttl_deletes", bool, True, where), _protocol(data, where)
    )


def parse_shape(data: Mapping[str, Any], where: str) -> Shape:
    """A table mapping's ``targets`` (or ``target``), ``transform`` and ``unrouted`` (ferry.shape)."""
    source = _typed(data, "source", str, None, where)
    if source is None:
        raise SpecError(f"{where}.source", "is required")
    if "targets" in data and data.get("target") is not None:
        raise SpecError(f"{where}.targets", "give target (one table) or targets (a split), not both")
    if "targets" in data:
        raw_routes = data["targets"]
        if not isinstance(raw_routes, list) or not raw_routes:
            raise SpecError(f"{where}.targets", "must be a non-empty list of {table, when}")
        routes = tuple(_parse_route(raw, f"{where}.targets[{i}]") for i, raw in enumerate(raw_routes))
    else:
        if data.get("target") is None:
            raise SpecError(f"{where}.target", "is required (or targets, for a split)")
        routes = (Route(_table_name(data, "target", where)),)
        if "unrouted" in data:
            raise SpecError(f"{where}.unrouted", "only a split (targets) can leave an item unrouted")
    tables = [route.table for route in routes]
    for i, table in enumerate(tables):
        if table == source:
            raise SpecError(f"{where}.targets[{i}].table", "must differ from the source table")
        if table in tables[:i]:
            raise SpecError(f"{where}.targets[{i}].table", f"{table!r} is already a target of this mapping")
    transform = _parse_transform(data.get("transform"), f"{where}.transform")
    unrouted = _one_of(data, "unrouted", UNROUTED_CHOICES, UNROUTED_ERROR, where)
    return Shape(routes, transform, unrouted)


def _table_name(data: Mapping[str, Any], key: str, where: str) -> str:
    name: str | None = _typed(data, key, str, None, where)
    if name is None:
        raise SpecError(f"{where}.{key}", "is required")
    if not _TABLE_NAME.fullmatch(name):
        raise SpecError(f"{where}.{key}", f"{name!r} is not a valid {_NAME_RULES['table']}")
    return name


def _parse_route(raw: Any, where: str) -> Route:
    data = _expect_mapping(raw, where)
    _reject_unknown(data, {"table", "when"}, where)
    table = _table_name(data, "table", where)
    if data.get("when") is None:
        return Route(table)
    when = _expect_mapping(data["when"], f"{where}.when")
    _reject_unknown(when, {"attribute", "equals", "begins_with"}, f"{where}.when")
    attribute = _typed(when, "attribute", str, None, f"{where}.when")
    if not attribute:
        raise SpecError(f"{where}.when.attribute", "is required")
    tests = [key for key in ("equals", "begins_with") if when.get(key) is not None]
    if len(tests) != 1:
        raise SpecError(f"{where}.when", "needs exactly one of equals or begins_with")
    if tests == ["equals"]:
        value = when["equals"]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise SpecError(f"{where}.when.equals", f"must be a string or a number, got {_show(value)}")
        return Route(table, When(attribute, equals=str(value)))
    return Route(table, When(attribute, begins_with=_typed(when, "begins_with", str, None, f"{where}.when")))


def _parse_transform(raw: Any, where: str) -> Transform:
    if raw is None:
        return Transform()
    data = _expect_mapping(raw, where)
    _reject_unknown(data, {"rename", "drop", "function"}, where)
    rename_raw = _expect_mapping(data.get("rename") or {}, f"{where}.rename")
    rename = []
    for old, new in rename_raw.items():
        if not isinstance(new, str) or not new or not isinstance(old, str):
            raise SpecError(f"{where}.rename.{old}", f"must name the new attribute, got {_show(new)}")
        rename.append((old, new))
    news = [new for _, new in rename]
    if len(set(news)) != len(news):
        raise SpecError(f"{where}.rename", "two attributes renamed to the same name")
    drop = data.get("drop") or []
    if not isinstance(drop, list) or not all(isinstance(name, str) and name for name in drop):
        raise SpecError(f"{where}.drop", f"must be a list of attribute names, got {_show(drop)}")
    function = _typed(data, "function", str, "", where)
    if function and not _HOOK.fullmatch(function):
        raise SpecError(f"{where}.function", f"{function!r} must be 'package.module:callable'")
    return Transform(tuple(rename), tuple(drop), function)


def _parse_bucket(raw: Any, index: int) -> BucketMapping:
    where = f"buckets[{index}]"
    data = _expect_mapping(raw, where)
    _reject_unknown(data, _fields_of(BucketMapping), where)
    source, target = _source_and_target(data, where, _BUCKET_NAME, "bucket")
    prefix = _typed(data, "prefix", str, "", where)
    return BucketMapping(
        source, target, prefix, _typed(data, "delete_extra", bool, False, where), _protocol(data, where)
    )


def _protocol(data: Mapping[str, Any], where: str) -> str:
    return _one_of(data, "protocol", PROTOCOLS, PROTOCOL_REPLAY, where)


def _one_of(data: Mapping[str, Any], key: str, choices: tuple[str, ...], default: str, where: str) -> str:
    value: str = _typed(data, key, str, default, where)
    if value not in choices:
        raise SpecError(f"{where}.{key}", f"must be one of {', '.join(choices)}, got {_show(value)}")
    return value


def _role_arn(data: Mapping[str, Any], name: str) -> str | None:
    role: str | None = _typed(data, name, str, None, "")
    if role is not None and not _ROLE_ARN.fullmatch(role):
        raise SpecError(name, f"{_show(role)} is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)")
    return role


# --- one validator per section of the spec ----------------------------------------------------


def _parse_region(data: Mapping[str, Any]) -> str:
    if data.get("region") is None:
        raise SpecError("region", "is required (e.g. us-east-1)")
    region: str = _typed(data, "region", str, None, "")
    if not _REGION.fullmatch(region):
        raise SpecError("region", f"{region!r} is not an AWS region name")
    return region


def _parse_endpoint(data: Mapping[str, Any]) -> str | None:
    endpoint: str | None = _typed(data, "endpoint_url", str, None, "")
    if endpoint is not None and not re.match(r"^https?://", endpoint):
        raise SpecError("endpoint_url", f"{endpoint!r} must start with http:// or https://")
    return endpoint


def _parse_state_table(data: Mapping[str, Any]) -> str:
    state_table: str = _typed(data, "state_table", str, "ferry-state", "")
    if not _TABLE_NAME.fullmatch(state_table):
        raise SpecError("state_table", f"{state_table!r} is not a valid DynamoDB table name")
    return state_table


def _parse_mappings(
    data: Mapping[str, Any], state_table: str
) -> tuple[tuple[TableMapping, ...], tuple[BucketMapping, ...]]:
    """``tables`` and ``buckets``: at least one mapping in all, each name used once, none the state table."""
    raw_tables, raw_buckets = data.get("tables"), data.get("buckets")
    for name, raw in (("tables", raw_tables), ("buckets", raw_buckets)):
        if raw is not None and not isinstance(raw, list):
            raise SpecError(name, "must be a list of {source, target}")
    if not raw_tables and not raw_buckets:
        raise SpecError("tables", "must be a non-empty list of {source, target} (or give buckets)")
    tables = tuple(_parse_table(t, i) for i, t in enumerate(raw_tables or []))
    buckets = tuple(_parse_bucket(b, i) for i, b in enumerate(raw_buckets or []))
    _check_each_name_once("buckets", buckets, reserved=None)
    _check_each_name_once("tables", tables, reserved=state_table)
    for i, bucket in enumerate(buckets):
        if bucket.protocol != buckets[0].protocol:
            # One events queue (and one queue mapping) serves every bucket: it is held or it is not.
            raise SpecError(
                f"buckets[{i}].protocol",
                f"every bucket shares s3.events_queue, so all must use one protocol ({buckets[0].protocol!r} "
                f"in buckets[0], {bucket.protocol!r} here)",
            )
    return tables, buckets


def _check_each_name_once(
    section: str, mappings: tuple[TableMapping | BucketMapping, ...], reserved: str | None
) -> None:
    used: dict[str, str] = {}
    for i, mapping in enumerate(mappings):
        for role, name in (("source", mapping.source), ("target", mapping.target)):
            if name == reserved:
                raise SpecError(f"{section}[{i}].{role}", "must not be the state table")
            if name in used:
                raise SpecError(f"{section}[{i}].{role}", f"{name!r} is already used as a {used[name]}")
            used[name] = role


def _parse_backfill(raw: Any) -> BackfillSettings:
    backfill: BackfillSettings = _parse_settings(BackfillSettings, raw, "backfill")
    _check_range(backfill.splits, 1, 1_000_000, "backfill.splits")
    _check_range(backfill.read_percent, 0.01, 1.0, "backfill.read_percent")
    _check_range(backfill.write_percent, 0.01, 1.0, "backfill.write_percent")
    for name in ("on_demand_read_units", "on_demand_write_units", "write_concurrency"):
        if getattr(backfill, name) < 1:
            raise SpecError(f"backfill.{name}", "must be at least 1")
    if backfill.page_size < 0:
        raise SpecError("backfill.page_size", "must be 0 (full pages) or positive")
    data = raw if isinstance(raw, Mapping) else {}
    _one_of(data, "read", READ_MODES, READ_SCAN, "backfill")
    _one_of(data, "write", WRITE_MODES, WRITE_BATCH, "backfill")
    _one_of(data, "insert_mode", INSERT_MODES, INSERT_AUTO, "backfill")
    if backfill.write == WRITE_IMPORT and backfill.read != READ_EXPORT:
        raise SpecError("backfill.write", "import loads an export: it needs backfill.read: export")
    if not 0 < backfill.max_hold_hours < STREAM_RETENTION_HOURS:
        raise SpecError(
            "backfill.max_hold_hours",
            f"must be above 0 and below {STREAM_RETENTION_HOURS:.0f} (the stream keeps a record "
            f"{STREAM_RETENTION_HOURS:.0f} hours), got {_show(backfill.max_hold_hours)}",
        )
    if backfill.export_bucket and (
        not _BUCKET_NAME.fullmatch(backfill.export_bucket) or ".." in backfill.export_bucket
    ):
        raise SpecError("backfill.export_bucket", f"{backfill.export_bucket!r} is not a valid {_NAME_RULES['bucket']}")
    return backfill


def check_protocols(tables: tuple[TableMapping, ...], backfill: BackfillSettings) -> None:
    """The copy paths each table's protocol allows: ImportTable creates the target, so the target
    cannot be written concurrently by an insert-only consumer (it does not exist before the import)."""
    if backfill.write != WRITE_IMPORT:
        return
    for i, table in enumerate(tables):
        if not table.replay:
            raise SpecError(
                f"tables[{i}].protocol",
                "insert-only cannot use backfill.write: import (ImportTable creates the target, which "
                "insert-only replication needs to exist before the copy); use protocol replay or write: batch",
            )


def _parse_replication(raw: Any) -> ReplicationSettings:
    replication: ReplicationSettings = _parse_settings(ReplicationSettings, raw, "replication")
    if replication.starting_position not in STARTING_POSITIONS:
        raise SpecError("replication.starting_position", f"must be one of {', '.join(STARTING_POSITIONS)}")
    if not 1 <= replication.batch_size <= 10_000:
        raise SpecError("replication.batch_size", "must be between 1 and 10000")
    if not 0 <= replication.max_retries <= 10_000:
        raise SpecError(
            "replication.max_retries", "must be between 0 and 10000 (finite: a poison record must not block a shard)"
        )
    if not 60 <= replication.max_record_age_seconds <= 72000:
        raise SpecError(
            "replication.max_record_age_seconds",
            "must be between 60 and 72000 (20 h: a skipped record must stay in the 24 h stream for redrive)",
        )
    if replication.phase_cache_seconds < 0:
        raise SpecError("replication.phase_cache_seconds", "must not be negative")
    return replication


def _parse_s3(raw: Any) -> S3Settings:
    s3: S3Settings = _parse_settings(S3Settings, raw, "s3")
    if s3.multipart_threshold < 5 * 1024**2:
        raise SpecError("s3.multipart_threshold", "must be at least 5 MiB (the smallest S3 part)")
    for name in ("concurrency", "max_rounds", "max_receive_count", "visibility_timeout", "splits"):
        if getattr(s3, name) < 1:
            raise SpecError(f"s3.{name}", "must be at least 1")
    if not 1 <= s3.batch_size <= 10:
        raise SpecError("s3.batch_size", "must be between 1 and 10 (SQS receive limit)")
    if s3.request_rate < 0:
        raise SpecError("s3.request_rate", "must be 0 (no ceiling) or positive")
    return s3


def _parse_cutover(raw: Any) -> CutoverSettings:
    cutover: CutoverSettings = _parse_settings(CutoverSettings, raw, "cutover")
    if not 0 < cutover.max_lag_seconds <= 3600:
        raise SpecError(
            "cutover.max_lag_seconds", f"must be above 0 and at most 3600, got {_show(cutover.max_lag_seconds)}"
        )
    if not 0 < cutover.max_verify_age_minutes <= 7 * 24 * 60:
        raise SpecError(
            "cutover.max_verify_age_minutes",
            f"must be above 0 and at most 10080 (a week), got {_show(cutover.max_verify_age_minutes)}",
        )
    return cutover


def _parse_prices(raw: Any) -> tuple[tuple[str, float], ...]:
    """``prices: {name: USD}``; the names are checked against the price table by `ferry plan`."""
    data = _expect_mapping(raw if raw is not None else {}, "prices")
    out = []
    for name, value in data.items():
        where = f"prices.{name}"
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]{1,64}", name):
            raise SpecError(
                f"prices.{name if isinstance(name, str) else _show(name)}",
                "must be a price name of lower-case letters, digits and _",
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise SpecError(where, f"must be a price in USD (a number, 0 or more), got {_show(value)}")
        out.append((name, float(value)))
    return tuple(sorted(out))


def parse_spec(raw: Any) -> Spec:
    """Validate a spec mapping (from YAML or JSON) and freeze it. Raises SpecError naming the field.
    The sections are validated in the order they are listed here; the first problem is reported."""
    data = _expect_mapping(raw, "spec")
    _reject_unknown(data, _fields_of(Spec), "")
    region = _parse_region(data)
    endpoint_url = _parse_endpoint(data)
    state_table = _parse_state_table(data)
    source_role_arn = _role_arn(data, "source_role_arn")
    target_role_arn = _role_arn(data, "target_role_arn")
    tables, buckets = _parse_mappings(data, state_table)
    backfill = _parse_backfill(data.get("backfill"))
    check_protocols(tables, backfill)
    replication = _parse_replication(data.get("replication"))
    if replication.starting_position != "TRIM_HORIZON" and any(t.replay for t in tables):
        raise SpecError(
            "replication.starting_position",
            "must be TRIM_HORIZON when a table uses protocol replay: the released consumer applies every change "
            "held since capture began (LATEST would skip the changes made during the copy)",
        )
    return Spec(
        region=region,
        endpoint_url=endpoint_url,
        state_table=state_table,
        source_role_arn=source_role_arn,
        target_role_arn=target_role_arn,
        tables=tables,
        buckets=buckets,
        backfill=backfill,
        replication=replication,
        s3=_parse_s3(data.get("s3")),
        cutover=_parse_cutover(data.get("cutover")),
        prices=_parse_prices(data.get("prices")),
    )


def with_overrides(
    spec: Spec, *, protocol: str | None = None, read: str | None = None, write: str | None = None
) -> Spec:
    """``spec`` with the command line's choices (``ferry backfill --protocol/--read/--write``) applied to
    every table (and, for the protocol, every bucket), validated like the file: SpecError naming the option."""
    for option, value, choices in (
        ("--protocol", protocol, PROTOCOLS),
        ("--read", read, READ_MODES),
        ("--write", write, WRITE_MODES),
    ):
        if value is not None and value not in choices:
            raise SpecError(option, f"must be one of {', '.join(choices)}, got {_show(value)}")
    tables, buckets, backfill = spec.tables, spec.buckets, spec.backfill
    if protocol is not None:
        tables = tuple(dataclasses.replace(t, protocol=protocol) for t in tables)
        buckets = tuple(dataclasses.replace(b, protocol=protocol) for b in buckets)
    if read is not None or write is not None:
        backfill = dataclasses.replace(backfill, read=read or backfill.read, write=write or backfill.write)
    if backfill.write == WRITE_IMPORT and backfill.read != READ_EXPORT:
        raise SpecError("--write", "import loads an export: it needs --read export (or backfill.read: export)")
    try:
        check_protocols(tables, backfill)
    except SpecError as exc:
        raise SpecError("--protocol" if protocol == PROTOCOL_INSERT_ONLY else "--write", exc.problem) from None
    return dataclasses.replace(spec, tables=tables, buckets=buckets, backfill=backfill)


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    """The plain form (for Lambda environment and Glue arguments); ``parse_spec`` reads it back."""
    out = dataclasses.asdict(spec)
    out["tables"] = [_table_to_dict(t) for t in spec.tables]
    out["buckets"] = [dict(b) for b in out["buckets"]]
    out["prices"] = dict(spec.prices)
    for name in ("endpoint_url", *ROLE_FIELDS):
        if out[name] is None:
            del out[name]
    return out


def _table_to_dict(mapping: TableMapping) -> dict[str, Any]:
    out = dataclasses.asdict(mapping)
    del out["shape"]
    shape = mapping.shape
    if shape is None:
        return out
    if len(shape.routes) > 1 or shape.routes[0].when is not None:
        del out["target"]
        out["targets"] = [_route_to_dict(route) for route in shape.routes]
        out["unrouted"] = shape.unrouted
    transform = shape.transform
    if not transform.empty:
        out["transform"] = {"rename": dict(transform.rename), "drop": list(transform.drop)}
        if transform.function:
            out["transform"]["function"] = transform.function
    return out


def _route_to_dict(route: Route) -> dict[str, Any]:
    if route.when is None:
        return {"table": route.table}
    test = {"equals": route.when.equals} if route.when.equals is not None else {"begins_with": route.when.begins_with}
    return {"table": route.table, "when": {"attribute": route.when.attribute, **test}}
