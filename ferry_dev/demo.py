"""``ferry demo``: a live table migrated end to end on the embedded emulator.

Source with data first (no stream yet, as in real life), then ``init`` (stream on, target and
state table created), live replication started *before* the backfill, traffic running during
the backfill, then stop traffic, drain, finalize, drain, verify.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ferry.clients import make_client, table_clients
from ferry.jobs import BUCKET, TABLE
from ferry.operations import initialize, verify_all
from ferry.spec import parse_spec
from ferry.tables.finalize import finalize_table
from ferry_dev.emulator import Emulator, use_dummy_credentials
from ferry_dev.stats import percentile
from ferry_dev.workload import (
    BucketTraffic,
    TrafficGenerator,
    create_workload_table,
    seed_bucket,
    seed_table,
)
from glue_jobs.local_spark import run_locally

SOURCE, TARGET = "orders", "orders-v2"
BUCKET_SOURCE, BUCKET_TARGET = "media", "media-v2"
DEMO_MULTIPART_THRESHOLD = 5 * 1024 * 1024  # lowered from 5 GiB so the demo copies a multipart object


@dataclass
class DemoResult:
    items_seeded: int = 0
    items_copied: int = 0
    items_already_present: int = 0
    backfill_seconds: float = 0.0
    live_operations: dict[str, int] = field(default_factory=dict)
    live_events_applied: int = 0
    lag_p50: float = 0.0
    lag_p99: float = 0.0
    dlq_depth: int = 0
    tombstones_removed: int = 0
    verify_ok: bool = False
    verify_counts: dict[str, int] = field(default_factory=dict)
    source_items: int = 0
    target_items: int = 0
    seconds: float = 0.0
    report: Any = None
    objects_seeded: int = 0
    objects_actions: dict[str, int] = field(default_factory=dict)
    bucket_backfill_seconds: float = 0.0
    bucket_operations: dict[str, int] = field(default_factory=dict)
    bucket_events_applied: int = 0
    bucket_lag_p50: float = 0.0
    bucket_lag_p99: float = 0.0
    bucket_verify_ok: bool = False
    bucket_verify_counts: dict[str, int] = field(default_factory=dict)
    source_objects: int = 0
    target_objects: int = 0
    bucket_report: Any = None


def run_demo(
    *,
    items: int = 5000,
    splits: int = 4,
    traffic_rate: float = 40.0,
    objects: int = 1000,
    object_traffic_rate: float = 8.0,
    seed: int = 7,
    say: Callable[[str], None] = print,
    emulator_log: str | None = None,
) -> DemoResult:

    use_dummy_credentials()
    started = time.monotonic()
    result = DemoResult()
    log_path = emulator_log or str(Path(tempfile.gettempdir()) / "ferry-demo-emulator.log")
    with Emulator(log_path=log_path) as emu:
        say(f"emulator (moto server) on {emu.endpoint_url}")
        spec = parse_spec(
            {
                "region": "us-east-1",
                "endpoint_url": emu.endpoint_url,
                "tables": [{"source": SOURCE, "target": TARGET}],
                "backfill": {"splits": splits, "read_percent": 0.5, "write_percent": 0.5},
                "replication": {"batch_size": 100, "phase_cache_seconds": 1.0, "max_retries": 3},
                "buckets": [{"source": BUCKET_SOURCE, "target": BUCKET_TARGET}] if objects else [],
                "s3": {
                    "multipart_threshold": DEMO_MULTIPART_THRESHOLD,
                    "splits": splits,
                    "concurrency": 4,
                    "visibility_timeout": 10,
                },
            }
        )
        # The application's clients: it lives on the source side.
        ddb = make_client("dynamodb", spec.source_where())
        s3 = make_client("s3", spec.source_where())
        create_workload_table(ddb, SOURCE)
        result.items_seeded = seed_table(ddb, SOURCE, items, seed=seed)
        say(f"source table {SOURCE}: {result.items_seeded} items of all ten types (one near 400 KB)")
        if objects:
            s3.create_bucket(Bucket=BUCKET_SOURCE)
            result.objects_seeded = seed_bucket(
                s3, BUCKET_SOURCE, objects, seed=seed, multipart_part=DEMO_MULTIPART_THRESHOLD
            )
            say(
                f"source bucket {BUCKET_SOURCE}: {result.objects_seeded} objects (awkward keys, zero-byte, "
                "headers, metadata, tags, one multipart object above the lowered threshold)"
            )

        for line in initialize(spec):
            say(f"init: {line}")

        from ferry_dev.replication import LocalReplication

        replication = LocalReplication(spec, retry_backoff=0.05).start()
        say("live replication running (table_stream and bucket_events handlers fed like Lambda's event sources)")
        traffic = TrafficGenerator(ddb, SOURCE, key_space=items, seed=seed + 1, rate=traffic_rate).start()
        object_traffic = (
            BucketTraffic(s3, BUCKET_SOURCE, key_space=max(objects, 1), seed=seed + 2, rate=object_traffic_rate).start()
            if objects
            else None
        )
        say(
            f"live traffic: ~{traffic_rate:.0f} table ops/s and ~{object_traffic_rate if objects else 0:.0f} object ops/s"
        )

        say(f"backfill: local Spark, {splits} splits (the Glue scripts, unchanged)")
        summary = run_locally(TABLE, spec, SOURCE)
        result.items_copied = summary.written
        result.items_already_present = sum(r.skipped for r in summary.results)
        result.backfill_seconds = summary.seconds
        if objects:
            bucket_summary = run_locally(BUCKET, spec, BUCKET_SOURCE)
            result.objects_actions = bucket_summary.actions
            result.bucket_backfill_seconds = bucket_summary.seconds

        result.live_operations = dict(traffic.stop().operations)
        if object_traffic is not None:
            result.bucket_operations = dict(object_traffic.stop().operations)
        say("traffic stopped")
        replication.drain()
        fin = finalize_table(spec, spec.tables[0], table_clients(spec))
        result.tombstones_removed = fin.tombstones_removed
        say(f"finalize: phase live, {fin.tombstones_removed} tombstones removed")
        replication.drain()

        lags: list[float] = []
        for poller in replication.stream_pollers:
            result.live_events_applied += poller.stats.applied
            lags.extend(poller.stats.lags)
        result.lag_p50 = percentile(lags, 50) or 0.0
        result.lag_p99 = percentile(lags, 99) or 0.0
        bucket_lags: list[float] = []
        for bucket_poller in replication.bucket_pollers:
            result.bucket_events_applied += bucket_poller.stats.succeeded
            bucket_lags.extend(bucket_poller.stats.lags)
        result.bucket_lag_p50 = percentile(bucket_lags, 50) or 0.0
        result.bucket_lag_p99 = percentile(bucket_lags, 99) or 0.0
        result.dlq_depth = replication.dlq_depth()

        reports = verify_all(spec, workers=splits)
        report = reports[0]
        result.report = report
        result.verify_ok = report.ok
        result.verify_counts = report.counts()
        result.source_items = report.source_items
        result.target_items = report.target_items
        if objects:
            bucket_report = reports[1]
            result.bucket_report = bucket_report
            result.bucket_verify_ok = bucket_report.ok
            result.bucket_verify_counts = bucket_report.counts()
            result.source_objects = bucket_report.source_items
            result.target_objects = bucket_report.target_items
        else:
            result.bucket_verify_ok = True
    result.seconds = time.monotonic() - started
    return result


def _verdict(ok: bool, counts: dict[str, int]) -> str:
    return "[green]OK: no differences[/]" if ok else f"[red]DIFFERENCES {counts}[/]"


def print_summary(result: DemoResult, console: Console) -> None:
    table = Table(title="ferry demo: orders -> orders-v2, media -> media-v2", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    rate = result.items_copied / result.backfill_seconds if result.backfill_seconds else 0.0
    objects = sum(result.objects_actions.values())
    object_rate = objects / result.bucket_backfill_seconds if result.bucket_backfill_seconds else 0.0
    rows = [
        ("items in source at start", f"{result.items_seeded:,}"),
        ("items copied by the backfill", f"{result.items_copied:,}"),
        ("skipped (live path was first)", f"{result.items_already_present:,}"),
        ("backfill time / rate", f"{result.backfill_seconds:.1f}s / {rate:,.0f} items/s"),
        ("live table operations", ", ".join(f"{k} {v}" for k, v in sorted(result.live_operations.items()))),
        ("live stream events applied", f"{result.live_events_applied:,}"),
        ("table replication lag p50 / p99", f"{result.lag_p50:.2f}s / {result.lag_p99:.2f}s"),
        ("tombstones removed by finalize", str(result.tombstones_removed)),
        ("items source / target", f"{result.source_items:,} / {result.target_items:,}"),
        ("table verify", _verdict(result.verify_ok, result.verify_counts)),
    ]
    if result.objects_seeded:
        rows += [
            ("objects in source at start", f"{result.objects_seeded:,}"),
            ("bucket backfill (server-side)", ", ".join(f"{k} {v}" for k, v in sorted(result.objects_actions.items()))),
            ("bucket backfill time / rate", f"{result.bucket_backfill_seconds:.1f}s / {object_rate:,.0f} objects/s"),
            ("live object operations", ", ".join(f"{k} {v}" for k, v in sorted(result.bucket_operations.items()))),
            ("bucket events applied", f"{result.bucket_events_applied:,}"),
            ("bucket replication lag p50 / p99", f"{result.bucket_lag_p50:.2f}s / {result.bucket_lag_p99:.2f}s"),
            ("objects source / target", f"{result.source_objects:,} / {result.target_objects:,}"),
            ("bucket verify", _verdict(result.bucket_verify_ok, result.bucket_verify_counts)),
        ]
    rows += [
        ("dead-letter queues", str(result.dlq_depth)),
        ("total time", f"{result.seconds:.0f}s"),
    ]
    for what, value in rows:
        table.add_row(what, value)
    console.print(table)
    for report in (result.report, result.bucket_report):
        if report is not None and not report.ok:
            for kind, keys in report.samples(20).items():
                if keys:
                    console.print(f"{report.source} {kind}: {', '.join(keys)}")
