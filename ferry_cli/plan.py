"""``ferry plan``: what a migration will take, read without writing anything.

Reads DescribeTable (source and, when it exists, target), DescribeContinuousBackups (PITR), the stream
state, optionally one Scan page (``--sample N``) for the average item size; for buckets a bounded
ListObjectsV2 and, when the listing is cut short, CloudWatch's daily S3 storage metrics. Then prices
every copy path with the table formulas of :mod:`ferry.tables.estimate` and the price table
``prices.json`` (one file, its sources and date inside; the spec's ``prices:`` override it).

Nothing here creates, updates or deletes anything: every call is a Describe, List, Scan or Get.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ferry.aws import describe_table_or_none
from ferry.clients import BucketClients, TableClients, bucket_clients, make_client, table_clients
from ferry.errors import SpecError
from ferry.spec import PROTOCOL_INSERT_ONLY, BucketMapping, Spec, TableMapping
from ferry.tables.backfill import capacity_budget
from ferry.tables.estimate import (
    GIB,
    PATH_EXPORT_BATCH,
    PATH_EXPORT_IMPORT,
    PATH_INSERT_ONLY,
    PATH_SCAN_BATCH,
    PATHS,
    PathEstimate,
    catch_up_seconds,
    duration,
    estimate_path,
    fits_hold,
    glue_dpu_hours,
    invocations,
    table_bytes,
    units_per_item,
)
from ferry.tables.schema import TableShape, shape_from_description
from ferry.wire import item_size

PRICE_FILE = Path(__file__).with_name("prices.json")
WORKER_DPU = {"G.025X": 0.25, "G.1X": 1.0, "G.2X": 2.0, "G.4X": 4.0, "G.8X": 8.0}
LIST_PAGE = 1000  # ListObjectsV2 returns at most 1,000 keys a request
S3_PREFIX_WRITE_RATE = 3500  # S3's documented PUT/COPY/POST/DELETE requests/s per prefix
# AWS does not document an export's data-file size: one file per this many bytes is an assumption
# used only to count the export's requests (a few cents at most either way).
EXPORT_FILE_BYTES = 100 * 1024**2
EXPORT_MANIFESTS = 2  # manifest-summary.json and manifest-files.json
REFRESH_NOTE = "ItemCount and TableSizeBytes come from DescribeTable, which AWS refreshes about every six hours."
REPLAY_RATE_NOTE = (
    "catch-up: the changes held during the copy (change rate × copy time) replayed at the write budget "
    "(budget WCU/s ÷ WCU per item) while the service keeps changing"
)
EXPORT_NOTE = "export and import: AWS publishes no rate, their time is not estimated"


# --------------------------------------------------------------------------- prices


def load_price_table(path: Path = PRICE_FILE) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        table: dict[str, Any] = json.load(f)
    return table


def prices_for(spec: Spec, table: dict[str, Any] | None = None) -> dict[str, float]:
    """The prices for ``spec.region``: the table's, replaced by the spec's ``prices:``. SpecError naming
    ``prices.<name>`` for an unknown name, or ``region`` for a region the table lacks (unless ``prices:``
    gives every figure)."""
    table = table if table is not None else load_price_table()
    names = tuple(table["units"])
    for name, _ in spec.prices:
        if name not in names:
            raise SpecError(f"prices.{name}", f"is not a price `ferry plan` knows; known: {', '.join(names)}")
    out: dict[str, float] = dict(table["regions"].get(spec.region, {}))
    out.update(spec.prices)
    missing = [n for n in names if n not in out]
    if missing:
        raise SpecError(
            "region",
            f"{spec.region!r} is not in ferry's price table ({', '.join(sorted(table['regions']))}); "
            f"give its prices in the spec (prices: {{name: USD}}), missing: {', '.join(missing)}",
        )
    return out


# --------------------------------------------------------------------------- S3 request counts (pure)


@dataclass(frozen=True)
class S3Requests:
    """Requests by S3's price class: PUT/COPY/POST/LIST, and GET/HEAD (with every other request)."""

    put: int = 0
    get: int = 0

    def __add__(self, other: S3Requests) -> S3Requests:
        return S3Requests(self.put + other.put, self.get + other.get)

    def cost(self, prices: dict[str, float]) -> float:
        return self.put / 1000 * prices["s3_put_per_1000"] + self.get / 1000 * prices["s3_get_per_1000"]


def listing_requests(keys: int) -> int:
    """ListObjectsV2 requests to list ``keys`` keys (at least one, even for none)."""
    return max(1, math.ceil(keys / LIST_PAGE))


def bucket_copy_requests(objects: int, multipart: int, parts: int, *, replay: bool) -> S3Requests:
    """What ferry's bucket backfill sends to copy ``objects`` keys into an empty target, ``multipart`` of
    them multipart sources with ``parts`` parts in all (ferry/buckets/reconcile.py):

    - both buckets listed once (ListObjectsV2 per 1,000 keys);
    - replay (``copy_listed``): a single-part key is one CopyObject (tags and metadata copied
      server-side); a multipart key is HEAD + GetObjectTagging, one HEAD per part (its size), then
      CreateMultipartUpload, one UploadPartCopy per part and CompleteMultipartUpload;
    - insert-only (``reconcile_key``, key listed absent): HEAD of the source, the copy, then both sides
      read again in full (HEAD + GetObjectTagging each): 5 GET-class and 1 PUT-class requests; a
      multipart key adds the source's tags and its part HEADs, and copies part by part.

    Multipart sources are counted as copied part by part: ferry does so above ``multipart_threshold``
    and below it whenever the source has no full-object checksum, which a listing cannot tell."""
    single = max(0, objects - multipart)
    lists = listing_requests(objects) + listing_requests(0)
    if replay:
        single_req = S3Requests(put=single)
        multi_req = S3Requests(put=2 * multipart + parts, get=2 * multipart + parts)
    else:
        single_req = S3Requests(put=single, get=5 * single)
        multi_req = S3Requests(put=2 * multipart + parts, get=6 * multipart + parts)
    return S3Requests(put=lists) + single_req + multi_req


def change_requests(changes: int) -> S3Requests:
    """S3 requests of reconciling ``changes`` object events (each a new or overwritten key as above:
    HEAD of both sides, the copy, both sides re-read)."""
    return S3Requests(put=changes, get=5 * changes)


def export_requests(size_bytes: int) -> tuple[S3Requests, int]:
    """(requests, data files) of an export of ``size_bytes`` read once: the export PUTs its data files
    and manifests into your bucket (billed to you); the reader lists the prefix and GETs each once."""
    files = max(1, math.ceil(size_bytes / EXPORT_FILE_BYTES))
    written = files + EXPORT_MANIFESTS
    return S3Requests(put=written + 1, get=written), files


# --------------------------------------------------------------------------- gathering (read-only)


@dataclass(frozen=True)
class PlanOptions:
    sample: int = 0  # items of one Scan page to measure the average item size; 0 = TableSizeBytes / ItemCount
    max_keys: int = 10_000  # listing bound per bucket
    change_rate: float = 0.0  # changes/s the service makes to each table and bucket
    glue_workers: int = 2
    glue_worker_type: str = "G.1X"


@dataclass(frozen=True)
class TableFacts:
    source: str
    target: str
    protocol: str
    items: int
    size_bytes: int
    average_bytes: float
    average_from: str  # "TableSizeBytes / ItemCount" or "a Scan of N items"
    source_billing: str
    source_read_units: int
    source_write_units: int
    target_exists: bool
    target_billing: str | None
    target_write_units: int | None
    pitr: str  # ENABLED | DISABLED | unknown
    stream: str  # the view type, or "off"


def _billing(shape: TableShape) -> str:
    return "PAY_PER_REQUEST" if shape.on_demand else "PROVISIONED"


def _pitr(ddb: Any, table: str) -> str:
    try:
        backups = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    except Exception:  # an emulator without the API, or no permission: say so rather than fail the plan
        return "unknown"
    return str(backups.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus", "DISABLED"))


def sample_average(ddb: Any, table: str, limit: int) -> tuple[float, int]:
    """(average item size, items read) of one eventually consistent Scan of at most ``limit`` items."""
    items = ddb.scan(TableName=table, Limit=limit).get("Items", [])
    return (sum(item_size(i) for i in items) / len(items) if items else 0.0), len(items)


def table_facts(clients: TableClients, mapping: TableMapping, options: PlanOptions) -> tuple[TableFacts, Any]:
    description = describe_table_or_none(clients.source, mapping.source)
    if description is None:
        raise SpecError("tables", f"source table {mapping.source!r} does not exist in this account and region")
    source = shape_from_description(description)
    target_description = describe_table_or_none(clients.target, mapping.target)
    target = shape_from_description(target_description) if target_description is not None else None
    items, size = source.item_count, table_bytes(source)
    average, average_from = (size / items if items else 0.0), "TableSizeBytes / ItemCount"
    if options.sample > 0:
        measured, read = sample_average(clients.source, mapping.source, options.sample)
        if read:
            average, average_from = measured, f"a Scan of {read:,} items (--sample {options.sample})"
            if not size:  # DescribeTable not refreshed yet: the sample's size stands in
                size = round(measured * items)
    facts = TableFacts(
        source=mapping.source,
        target=mapping.target,
        protocol=mapping.protocol,
        items=items,
        size_bytes=size,
        average_bytes=average,
        average_from=average_from,
        source_billing=_billing(source),
        source_read_units=source.read_units,
        source_write_units=source.write_units,
        target_exists=target is not None,
        target_billing=_billing(target) if target else None,
        target_write_units=target.write_units if target else None,
        pitr=_pitr(clients.source, mapping.source),
        stream=source.stream_view_type or "off",
    )
    return facts, (source, target)


@dataclass(frozen=True)
class BucketFacts:
    source: str
    target: str
    protocol: str
    listed: int
    listed_bytes: int
    listed_multipart: int
    listed_parts: int
    complete: bool  # the listing reached the end
    objects: int  # estimate used for the plan
    bytes: int
    lower_bound: bool  # objects is only "at least"
    counted_by: str


def _list_bucket(s3: Any, mapping: BucketMapping, max_keys: int) -> tuple[list[dict[str, Any]], bool]:
    entries: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"Bucket": mapping.source, "Prefix": mapping.prefix}
    while len(entries) < max_keys:
        page = s3.list_objects_v2(MaxKeys=min(LIST_PAGE, max_keys - len(entries)), **kwargs)
        entries.extend(page.get("Contents", []))
        if not page.get("IsTruncated"):
            return entries, True
        kwargs["ContinuationToken"] = page["NextContinuationToken"]
    return entries, False


def _parts(etag: str) -> int:
    """Parts of a multipart ETag (``"…-N"``), 0 for a single-part one."""
    suffix = etag.strip('"').rpartition("-")[2] if "-" in etag else ""
    return int(suffix) if suffix.isdigit() else 0


def cloudwatch_storage(spec: Spec, bucket: str, now: datetime | None = None) -> tuple[int, int] | None:
    """(objects, bytes) from CloudWatch's daily S3 storage metrics of the last three days, or None when
    it has none (metrics take a day to appear; an emulator may not serve them)."""
    now = now or datetime.now(UTC)
    cw: Any = make_client("cloudwatch", spec.source_where())

    def latest(metric: str, storage: str) -> float | None:
        points = cw.get_metric_statistics(
            Namespace="AWS/S3",
            MetricName=metric,
            Dimensions=[{"Name": "BucketName", "Value": bucket}, {"Name": "StorageType", "Value": storage}],
            StartTime=now - timedelta(days=3),
            EndTime=now,
            Period=86400,
            Statistics=["Average"],
        ).get("Datapoints", [])
        return float(max(points, key=lambda p: p["Timestamp"])["Average"]) if points else None

    try:
        count = latest("NumberOfObjects", "AllStorageTypes")
        size = latest("BucketSizeBytes", "StandardStorage")
    except Exception:  # no CloudWatch access here: the listing's lower bound stands
        return None
    if count is None:
        return None
    return int(count), int(size) if size is not None else -1


def bucket_facts(spec: Spec, s3: Any, mapping: BucketMapping, options: PlanOptions) -> BucketFacts:
    entries, complete = _list_bucket(s3, mapping, options.max_keys)
    listed_bytes = sum(int(e.get("Size", 0)) for e in entries)
    parts = [_parts(str(e.get("ETag", ""))) for e in entries]
    multipart = sum(1 for p in parts if p)
    objects, size, lower, by = len(entries), listed_bytes, False, "listing (complete)"
    if not complete:
        stored = cloudwatch_storage(spec, mapping.source) if not mapping.prefix else None
        if stored is not None and stored[0] >= len(entries):
            objects = stored[0]
            average = listed_bytes / len(entries) if entries else 0.0
            size = stored[1] if stored[1] >= 0 else round(average * objects)
            by = f"CloudWatch NumberOfObjects/BucketSizeBytes; multipart share from the first {len(entries):,} keys"
        else:
            lower = True
            by = f"listing cut at --max-keys {options.max_keys:,}: at least this many (no CloudWatch figures)"
    return BucketFacts(
        source=mapping.source,
        target=mapping.target,
        protocol=mapping.protocol,
        listed=len(entries),
        listed_bytes=listed_bytes,
        listed_multipart=multipart,
        listed_parts=sum(parts),
        complete=complete,
        objects=objects,
        bytes=size,
        lower_bound=lower,
        counted_by=by,
    )


# --------------------------------------------------------------------------- pricing the paths (pure)


@dataclass
class PathPlan:
    path: str
    seconds: float | None
    seconds_is_lower_bound: bool
    duration: str
    formula: str
    read_units: float
    write_units: float
    s3_put: int
    s3_get: int
    dpu_hours: float | None
    lambda_invocations: int
    catch_up_seconds: float | None
    hold: str  # "fits", "exceeds", "unknown", "no hold"
    cost_on_demand: float | None
    cost_provisioned: float | None
    available: bool = True
    why_not: str = ""
    costs: dict[str, float] = field(default_factory=dict)


def _show_duration(seconds: float | None, lower: bool) -> str:
    if seconds is None:
        return "not estimated"
    if math.isinf(seconds):
        return "never"
    shown = f"{seconds:.1f} s" if seconds < 10 else duration(seconds)
    return ("≥ " if lower else "") + shown


def price_path(
    estimate: PathEstimate,
    *,
    prices: dict[str, float],
    protocol: str,
    change_rate: float,
    replay_rate: float,
    max_hold_hours: float,
    batch_size: int,
    glue_workers: int,
    dpu_per_worker: float,
) -> PathPlan:
    """Units, requests, DPU-hours, invocations, hold window and costs of one path's copy."""
    seconds = estimate.seconds
    lower = seconds is not None and not estimate.estimated
    replay = estimate.path != PATH_INSERT_ONLY
    catch_up = catch_up_seconds(change_rate, seconds, replay_rate) if replay and seconds is not None else None
    if not replay:
        hold = "no hold"
    elif seconds is None or catch_up is None or lower:
        hold = (
            "exceeds"
            if seconds is not None and catch_up is not None and not fits_hold(seconds, catch_up, max_hold_hours)
            else "unknown"
        )
    else:
        hold = "fits" if fits_hold(seconds, catch_up, max_hold_hours) else "exceeds"
    window = (seconds or 0.0) + (catch_up if catch_up is not None and math.isfinite(catch_up) else 0.0)
    calls = invocations(change_rate, window, batch_size)
    requests = S3Requests()
    if estimate.export_bytes:
        requests, _ = export_requests(estimate.export_bytes)
    dpu = glue_dpu_hours(seconds, glue_workers, dpu_per_worker) if estimate.glue and seconds is not None else None
    if not estimate.glue:
        dpu = 0.0
    shared = {
        "export": estimate.export_bytes / GIB * prices["ddb_export_per_gb"],
        "import": estimate.import_bytes / GIB * prices["ddb_import_per_gb"],
        "s3_requests": requests.cost(prices),
        "glue": (dpu or 0.0) * prices["glue_dpu_hour"],
        "lambda_requests": calls / 1e6 * prices["lambda_per_million_requests"],
    }
    on_demand = {
        "read": estimate.read_units / 1e6 * prices["ddb_on_demand_read_per_million"],
        "write": estimate.write_units / 1e6 * prices["ddb_on_demand_write_per_million"],
    }
    # Provisioned: the capacity the copy occupies for as long as it runs (units / 3600 unit-hours).
    provisioned = {
        "read": estimate.read_units / 3600 * prices["ddb_rcu_hour"],
        "write": estimate.write_units / 3600 * prices["ddb_wcu_hour"],
    }
    rest = sum(shared.values())
    unknown = dpu is None  # the Glue time of export+batch is known as a lower bound only: priced as such
    return PathPlan(
        path=estimate.path,
        seconds=seconds,
        seconds_is_lower_bound=lower,
        duration=_show_duration(seconds, lower),
        formula=estimate.formula,
        read_units=estimate.read_units,
        write_units=estimate.write_units,
        s3_put=requests.put,
        s3_get=requests.get,
        dpu_hours=dpu,
        lambda_invocations=calls,
        catch_up_seconds=catch_up,
        hold=hold,
        cost_on_demand=None if unknown else sum(on_demand.values()) + rest,
        cost_provisioned=None if unknown else sum(provisioned.values()) + rest,
        costs={
            **{f"{k}_on_demand": v for k, v in on_demand.items()},
            **{f"{k}_provisioned": v for k, v in provisioned.items()},
            **shared,
        },
    )


def recommend(paths: list[PathPlan], protocol: str, max_hold_hours: float) -> tuple[str, str]:
    """(path, reason). Insert-only tables copy insert-only. A replay table takes scan+batch when it fits
    the hold window, unless export+import is available and cheaper; when scan+batch does not fit,
    export+import if available (its time unchecked), else insert-only (it holds nothing)."""
    by = {p.path: p for p in paths}
    if protocol == PROTOCOL_INSERT_ONLY:
        return (
            PATH_INSERT_ONLY,
            "the spec's protocol is insert-only: the consumer runs during the copy, nothing is held",
        )
    scan, imp = by[PATH_SCAN_BATCH], by[PATH_EXPORT_IMPORT]
    if scan.hold == "fits":
        if (
            imp.available
            and imp.cost_on_demand is not None
            and scan.cost_on_demand is not None
            and imp.cost_on_demand < scan.cost_on_demand
        ):
            return PATH_EXPORT_IMPORT, (
                f"no capacity consumed and cheaper (${imp.cost_on_demand:,.2f} against ${scan.cost_on_demand:,.2f} "
                "on-demand); its time is not estimated: check it stays inside the hold window"
            )
        total = (scan.seconds or 0) + (scan.catch_up_seconds or 0)
        return PATH_SCAN_BATCH, (
            f"copy and catch-up take {duration(total)}, inside max_hold_hours = {max_hold_hours:g} h; "
            "it needs no PITR and no new target"
        )
    if imp.available:
        return PATH_EXPORT_IMPORT, (
            "scan+batch does not fit the hold window; an export and import consume no capacity "
            "(their time is not estimated)"
        )
    return PATH_INSERT_ONLY, (
        f"scan+batch does not fit max_hold_hours = {max_hold_hours:g} h and export+import is not available "
        f"({imp.why_not}): switch the table to protocol insert-only, which holds nothing"
    )


def plan_table(
    spec: Spec,
    facts: TableFacts,
    shapes: tuple[TableShape, TableShape | None],
    options: PlanOptions,
    prices: dict[str, float],
) -> dict[str, Any]:
    settings = spec.backfill
    source, target = shapes
    read_rate = capacity_budget(source, settings.read_percent, settings.on_demand_read_units, write=False)
    write_rate = capacity_budget(target or source, settings.write_percent, settings.on_demand_write_units, write=True)
    replay_rate = write_rate / units_per_item(facts.average_bytes)
    paths = []
    for path in PATHS:
        estimate = estimate_path(path, facts.items, facts.size_bytes, facts.average_bytes, read_rate, write_rate)
        planned = price_path(
            estimate,
            prices=prices,
            protocol=facts.protocol,
            change_rate=options.change_rate,
            replay_rate=replay_rate,
            max_hold_hours=settings.max_hold_hours,
            batch_size=spec.replication.batch_size,
            glue_workers=options.glue_workers,
            dpu_per_worker=WORKER_DPU[options.glue_worker_type],
        )
        reasons = []
        if path != PATH_INSERT_ONLY and facts.protocol == PROTOCOL_INSERT_ONLY:
            reasons.append("the table's protocol is insert-only")
        if path in (PATH_EXPORT_BATCH, PATH_EXPORT_IMPORT) and facts.pitr != "ENABLED":
            reasons.append(f"needs PITR on the source (it is {facts.pitr})")
        if path == PATH_EXPORT_IMPORT and facts.target_exists:
            reasons.append("ImportTable creates the target, which exists")
        planned.available, planned.why_not = not reasons, "; ".join(reasons)
        paths.append(planned)
    chosen, reason = recommend(paths, facts.protocol, settings.max_hold_hours)
    return {
        **asdict(facts),
        "read_budget_rcu_per_s": read_rate,
        "write_budget_wcu_per_s": write_rate,
        "replay_rate_items_per_s": replay_rate,
        "paths": [asdict(p) for p in paths],
        "recommended": {"path": chosen, "reason": reason},
    }


def plan_bucket(spec: Spec, facts: BucketFacts, options: PlanOptions, prices: dict[str, float]) -> dict[str, Any]:
    scale = facts.objects / facts.listed if facts.listed else 0.0
    multipart, parts = round(facts.listed_multipart * scale), round(facts.listed_parts * scale)
    rows = []
    for replay in (True, False):
        requests = bucket_copy_requests(facts.objects, multipart, parts, replay=replay)
        total = requests.put + requests.get
        if spec.s3.request_rate > 0:
            seconds, lower = total / (spec.s3.request_rate * spec.s3.splits), False
            formula = f"{total:,} requests / ({spec.s3.request_rate:g} req/s × {spec.s3.splits} splits)"
        else:
            seconds, lower = requests.put / S3_PREFIX_WRITE_RATE, True
            formula = f"≥ {requests.put:,} PUT-class requests / {S3_PREFIX_WRITE_RATE:,} req/s (S3's per-prefix rate; s3.request_rate is 0)"
        changes = round(options.change_rate * seconds)
        change_calls = invocations(options.change_rate, seconds, spec.s3.batch_size)
        requests = requests + change_requests(changes)
        # Glue: one job for the listing and the copy; SQS: EventBridge's send, then receive and delete per batch.
        dpu = glue_dpu_hours(seconds, options.glue_workers, WORKER_DPU[options.glue_worker_type])
        sqs = changes + 2 * change_calls
        cost = (
            requests.cost(prices)
            + dpu * prices["glue_dpu_hour"]
            + change_calls / 1e6 * prices["lambda_per_million_requests"]
            + sqs / 1e6 * prices["sqs_per_million_requests"]
        )
        rows.append(
            {
                "path": "replay" if replay else PATH_INSERT_ONLY,
                "seconds": seconds,
                "seconds_is_lower_bound": lower,
                "duration": _show_duration(seconds, lower),
                "formula": formula,
                "s3_put": requests.put,
                "s3_get": requests.get,
                "dpu_hours": dpu,
                "lambda_invocations": change_calls,
                "sqs_requests": sqs,
                "cost": cost,
                "available": (facts.protocol != PROTOCOL_INSERT_ONLY) == replay,
            }
        )
    chosen = "replay" if facts.protocol != PROTOCOL_INSERT_ONLY else PATH_INSERT_ONLY
    reason = (
        "the spec's protocol; replay copies a single-part key with one CopyObject and reads nothing first"
        if chosen == "replay"
        else "the spec's protocol: each key is reconciled (read, copied, read again on both sides)"
    )
    return {
        **asdict(facts),
        "multipart_share": facts.listed_multipart / facts.listed if facts.listed else 0.0,
        "paths": rows,
        "recommended": {"path": chosen, "reason": reason},
    }


def build_plan(
    spec: Spec,
    options: PlanOptions,
    *,
    tables: TableClients | None = None,
    buckets: BucketClients | None = None,
    price_table: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole plan as a JSON-able dict (what ``--json`` writes and the output shows)."""
    if options.glue_worker_type not in WORKER_DPU:
        raise SpecError("--glue-worker-type", f"must be one of {', '.join(WORKER_DPU)}")
    table = price_table if price_table is not None else load_price_table()
    prices = prices_for(spec, table)
    out: dict[str, Any] = {
        "region": spec.region,
        "prices": prices,
        "prices_as_of": table["as_of"],
        "prices_source": table["source"],
        "change_rate": options.change_rate,
        "max_hold_hours": spec.backfill.max_hold_hours,
        "notes": [REFRESH_NOTE, EXPORT_NOTE, REPLAY_RATE_NOTE],
        "tables": [],
        "buckets": [],
    }
    if spec.tables:
        clients = tables or table_clients(spec)
        for mapping in spec.tables:
            facts, shapes = table_facts(clients, mapping, options)
            out["tables"].append(plan_table(spec, facts, shapes, options, prices))
    if spec.buckets:
        s3 = (buckets or bucket_clients(spec)).source
        for bucket in spec.buckets:
            out["buckets"].append(plan_bucket(spec, bucket_facts(spec, s3, bucket, options), options, prices))
    return out


# --------------------------------------------------------------------------- output


def _usd(value: float | None) -> str:
    return "n/a" if value is None else f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def _units(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:,.1f}"


def render(plan: dict[str, Any], console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    console.print(Text(f"ferry plan — region {plan['region']}, prices as of {plan['prices_as_of']} (USD)"))
    for t in plan["tables"]:
        title = (
            f"table {t['source']} → {t['target']} ({t['protocol']}): {t['items']:,} items, {t['size_bytes']:,} B, "
            f"{t['average_bytes']:,.0f} B/item from {t['average_from']}"
        )
        grid = Table(title=title, title_justify="left")
        for column in (
            "path",
            "duration",
            "RCU",
            "WCU",
            "S3 PUT/LIST",
            "S3 GET/HEAD",
            "DPU-h",
            "Lambda",
            "USD on-demand",
            "USD provisioned",
            "hold",
        ):
            grid.add_column(column, justify="left" if column in ("path", "duration", "hold") else "right")
        for p in t["paths"]:
            grid.add_row(
                p["path"] + ("" if p["available"] else " (n/a)"),
                p["duration"],
                _units(p["read_units"]),
                _units(p["write_units"]),
                f"{p['s3_put']:,}",
                f"{p['s3_get']:,}",
                "n/a" if p["dpu_hours"] is None else f"{p['dpu_hours']:.3f}",
                f"{p['lambda_invocations']:,}",
                _usd(p["cost_on_demand"]),
                _usd(p["cost_provisioned"]),
                p["hold"],
            )
        console.print(grid)
        console.print(
            Text(
                f"  source {t['source_billing']} (RCU {t['source_read_units']}, WCU {t['source_write_units']}), "
                f"target {'absent (created like the source)' if not t['target_exists'] else t['target_billing'] + ' (WCU ' + str(t['target_write_units']) + ')'}, "
                f"PITR {t['pitr']}, stream {t['stream']}; budget {t['read_budget_rcu_per_s']:,.1f} RCU/s read, "
                f"{t['write_budget_wcu_per_s']:,.1f} WCU/s write"
            )
        )
        for p in t["paths"]:
            console.print(
                Text(f"  {p['path']}: {p['formula']}" + (f" — not available: {p['why_not']}" if p["why_not"] else ""))
            )
        console.print(Text(f"  recommended: {t['recommended']['path']} — {t['recommended']['reason']}", style="bold"))
    for b in plan["buckets"]:
        count = ("≥ " if b["lower_bound"] else "") + f"{b['objects']:,}"
        title = (
            f"bucket {b['source']} → {b['target']} ({b['protocol']}): {count} objects, {b['bytes']:,} B, "
            f"multipart {b['multipart_share']:.0%} ({b['counted_by']})"
        )
        grid = Table(title=title, title_justify="left")
        for column in ("path", "duration", "S3 PUT/COPY/LIST", "S3 GET/HEAD", "DPU-h", "Lambda", "SQS", "USD"):
            grid.add_column(column, justify="left" if column in ("path", "duration") else "right")
        for p in b["paths"]:
            grid.add_row(
                p["path"] + ("" if p["available"] else " (n/a)"),
                p["duration"],
                f"{p['s3_put']:,}",
                f"{p['s3_get']:,}",
                f"{p['dpu_hours']:.3f}",
                f"{p['lambda_invocations']:,}",
                f"{p['sqs_requests']:,}",
                _usd(p["cost"]),
            )
        console.print(grid)
        for p in b["paths"]:
            console.print(Text(f"  {p['path']}: {p['formula']}"))
        console.print(Text(f"  recommended: {b['recommended']['path']} — {b['recommended']['reason']}", style="bold"))
    for note in plan["notes"]:
        console.print(Text(f"note: {note}"))
