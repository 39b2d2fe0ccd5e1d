"""Operations over a whole spec, tables and buckets alike, shared by every entry point (CLI, demo, chaos, bench)."""

from __future__ import annotations

import json
import logging
from typing import Any

from ferry.clients import bucket_clients, make_client, table_clients
from ferry.spec import Spec
from ferry.verify_report import OnVerifyProgress

log = logging.getLogger(__name__)


def account_of(spec: Spec, side: str = "home") -> str:
    """The AWS account of a side of the spec (home, source or target), as STS says."""
    where = {"home": spec.home_where, "source": spec.source_where, "target": spec.target_where}[side]()
    return str(make_client("sts", where).get_caller_identity()["Account"])


def initialize(spec: Spec, *, enable_streams: bool = True, enable_pitr: bool = False) -> list[str]:
    """Validate every table and bucket (no write yet), then create and wire what is missing: change
    capture first (streams, EventBridge), recorded in the state table, then targets and phases."""
    from ferry.aws import head_bucket
    from ferry.buckets.setup import ensure_event_queues, hold_bucket_events, init_buckets, inspect_buckets
    from ferry.deploy import export_bucket
    from ferry.errors import SetupError
    from ferry.spec import READ_EXPORT
    from ferry.tables.export import ensure_export_bucket
    from ferry.tables.setup import init_tables, inspect_tables
    from ferry.tables.state import StateStore, create_state_table

    home = spec.home_where()
    ddb = table_clients(spec)
    s3 = bucket_clients(spec)
    inspect_tables(spec, ddb, require_targets=False, require_streams=not enable_streams)
    inspect_buckets(spec, s3)
    exports = spec.backfill.read == READ_EXPORT and bool(spec.tables)
    home_s3 = make_client("s3", home)
    if exports and spec.backfill.export_bucket and not head_bucket(home_s3, spec.backfill.export_bucket)[0]:
        raise SetupError(f"backfill.export_bucket: bucket {spec.backfill.export_bucket!r} does not exist")
    done = init_tables(spec, ddb, enable_streams=enable_streams, enable_pitr=enable_pitr) if spec.tables else []
    if exports and not spec.backfill.export_bucket:
        plain_http = (spec.endpoint_url or "").startswith("http://")  # an emulator: TLS-only would shut ferry out
        done += ensure_export_bucket(
            home_s3, export_bucket(spec, account_of(spec)), spec.region, tls_only=not plain_http
        )
    if spec.buckets:
        if create_state_table(ddb.state, spec.state_table):
            done.append(f"created state table {spec.state_table}")
        sqs = make_client("sqs", home)
        url, arn, _ = ensure_event_queues(
            sqs, spec.s3.events_queue, spec.s3.max_receive_count, spec.s3.visibility_timeout
        )
        done += init_buckets(spec, s3, sqs, make_client("events", home), queue_url=url, queue_arn=arn)
        done += hold_bucket_events(spec, StateStore(ddb.state, spec.state_table), queue_arn=arn)
    return done


def check_ready(spec: Spec, *, require_streams: bool, ddb: Any | None = None, s3: Any | None = None) -> None:
    """Read-only: every source exists, every target exists with the right key schema (and, for
    live replication, every source has its stream). A SetupError naming the field otherwise.
    ``ddb`` / ``s3``: the spec's TableClients / BucketClients (or one client), built when not given."""
    from ferry.buckets.setup import inspect_buckets
    from ferry.tables.setup import inspect_tables

    if spec.tables:
        inspect_tables(spec, ddb or table_clients(spec), require_targets=True, require_streams=require_streams)
    if spec.buckets:
        inspect_buckets(spec, s3 or bucket_clients(spec), require_targets=True)


def verify_all(
    spec: Spec,
    *,
    segments: int | None = None,
    workers: int = 4,
    repair: bool = False,
    skip_tags: bool = False,
    on_progress: OnVerifyProgress | None = None,
) -> list[Any]:
    """Verify every table and bucket; each result is recorded in the state table (kind "table" or
    "bucket") for `status`, the report and the cutover verdict: the JSON of ``report.recorded()`` and the
    number of differences. ``on_progress``: a plain callable told how far each verify got (any thread)."""
    from ferry.buckets.verify import verify_bucket
    from ferry.tables.state import BUCKET, TABLE, StateStore
    from ferry.tables.verify import verify_table

    reports: list[Any] = []
    ddb = table_clients(spec)
    check_ready(spec, require_streams=False, ddb=ddb)
    store = StateStore(ddb.state, spec.state_table) if spec.tables or spec.buckets else None
    for mapping in spec.tables:
        report = verify_table(spec, mapping, segments=segments, workers=workers, repair=repair, on_progress=on_progress)
        _record_verify(store, report, TABLE)
        reports.append(report)
    for bucket in spec.buckets:
        checked = verify_bucket(
            spec,
            bucket,
            workers=workers,
            repair=repair,
            compare_tags=False if skip_tags else None,
            on_progress=on_progress,
        )
        _record_verify(store, checked, BUCKET)
        reports.append(checked)
    return reports


def _record_verify(store: Any, report: Any, kind: str) -> None:
    """Record one verify's result; without a state table (a verify before any `ferry init`) it is only logged."""
    from ferry.aws import error_name

    try:
        store.save_verify(report.source, json.dumps(report.recorded()), len(report.differences), kind)
    except Exception as exc:
        if error_name(exc) != "ResourceNotFoundException":
            raise
        log.warning("verify of %s not recorded: state table %s does not exist", report.source, store.table_name)


# --- the switch's conflicts (docs/adr/0009) ------------------------------------------------------

REPAIR_SIDES = ("old", "new")


def verify_direction(spec: Spec, *, reverse: bool = False, repair_from: str | None = None) -> Spec:
    """The spec a verify runs with: ``repair_from`` "old" verifies old → new (a repair makes the new side what
    the old one holds), "new" the other way round; ``reverse`` alone compares new → old.
    Raises SpecError naming ``--from`` for an unknown side or one that contradicts ``--reverse``."""
    from ferry.errors import SpecError
    from ferry.twoway import reverse_spec

    if repair_from is not None and repair_from not in REPAIR_SIDES:
        raise SpecError("--from", f"must be one of {', '.join(REPAIR_SIDES)}, got {repair_from!r}")
    if repair_from == "old" and reverse:
        raise SpecError("--from", "old repairs the new side from the old one, a forward verify: drop --reverse")
    backwards = reverse or repair_from == "new"
    return reverse_spec(spec) if backwards else spec


def open_conflicts(spec: Spec) -> list[Any]:
    """Every open conflict of the spec's pairs (ferry.twoway.Conflict), tables first; [] without a state table."""
    from ferry.aws import is_missing_resource
    from ferry.switch import pairs
    from ferry.twoway import TwoWayStore

    store = TwoWayStore(make_client("dynamodb", spec.home_where()), spec.state_table)
    found: list[Any] = []
    try:
        for kind, source, target in pairs(spec):
            found += store.conflicts(kind, source, target)
    except Exception as exc:
        if not is_missing_resource(exc):
            raise
    return found


def settle_conflicts(spec: Spec) -> tuple[int, list[Any]]:
    """Close every open conflict whose key now holds the same state on both sides (after a repair from the
    side the user chose, or because both sides converged); (closed, still open). A closed bucket key's sync
    record becomes the two sides' states now, the base its next change is judged on. (A table key needs
    nothing: its next change is judged on its own old image.)"""
    from ferry.buckets.objects import differences, head_object
    from ferry.buckets.twoway import SyncStore, fingerprint
    from ferry.tables.state import TABLE
    from ferry.twoway import TwoWayStore

    store = TwoWayStore(make_client("dynamodb", spec.home_where()), spec.state_table)
    tables, buckets = table_clients(spec), bucket_clients(spec)
    closed, still = 0, []
    for conflict in open_conflicts(spec):
        old, new = _pair_of(spec, conflict)
        if conflict.kind == TABLE:
            key = store.conflict_key_item(conflict.kind, old, new, conflict.key)
            if key is None:
                still.append(conflict)
                continue
            a = tables.source.get_item(TableName=old, Key=key, ConsistentRead=True).get("Item")
            b = tables.target.get_item(TableName=new, Key=key, ConsistentRead=True).get("Item")
            same = (a is None and b is None) or (a is not None and b is not None and _items_equal(a, b))
        else:
            tags = spec.s3.verify_tags
            x = head_object(buckets.source, old, conflict.key, with_tags=tags)
            y = head_object(buckets.target, new, conflict.key, with_tags=tags)
            same = (x is None and y is None) or (x is not None and y is not None and not differences(x, y))
            if same:
                sync = SyncStore(store.ddb, store.table_name)
                sync.settle(
                    old,
                    new,
                    conflict.key,
                    {old: fingerprint(x), new: fingerprint(y)},
                    sync.read(old, new, conflict.key),
                )
        if same:
            store.close_conflict(conflict.kind, old, new, conflict.key)
            closed += 1
        else:
            still.append(conflict)
    return closed, still


def _pair_of(spec: Spec, conflict: Any) -> tuple[str, str]:
    """(old, new) names of the forward mapping a conflict belongs to."""
    from ferry.switch import pairs

    for kind, source, target in pairs(spec):
        if kind == conflict.kind and {source, target} == {conflict.source, conflict.destination}:
            return source, target
    raise ValueError(f"conflict on {conflict.key!r} belongs to no mapping of the spec")


def _items_equal(a: Any, b: Any) -> bool:
    from ferry.wire import items_equal

    return items_equal(a, b)
