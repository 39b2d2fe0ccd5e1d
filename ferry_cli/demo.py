"""``ferry demo``: a live table migrated end to end on the embedded emulator.

Source with data first (no stream yet, as in real life), then ``init`` (stream on, target and
state table created), live replication started *before* the backfill, traffic running during
the backfill, then stop traffic, drain, finalize, drain, verify.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ferry.clients import AwsTarget, make_client
from ferry.local.emulator import DUMMY_CREDENTIALS, Emulator
from ferry.local.workload import HASH_KEY, RANGE_KEY, TrafficGenerator, seed_table
from ferry.spec import parse_spec
from ferry.tables.finalize import finalize_table
from ferry.tables.setup import init_tables
from ferry.tables.verify import verify_table
from glue_jobs import table_backfill

SOURCE, TARGET = "orders", "orders-v2"


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


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[min(98, max(0, round(q * 100) - 1))]


def run_demo(
    *,
    items: int = 5000,
    splits: int = 4,
    traffic_rate: float = 40.0,
    seed: int = 7,
    say: Callable[[str], None] = print,
    emulator_log: str | None = None,
) -> DemoResult:
    import os

    os.environ.update({k: os.environ.get(k, v) for k, v in DUMMY_CREDENTIALS.items()})
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
            }
        )
        where = AwsTarget(spec.region, spec.endpoint_url)
        ddb = make_client("dynamodb", where)
        ddb.create_table(
            TableName=SOURCE,
            KeySchema=[
                {"AttributeName": HASH_KEY, "KeyType": "HASH"},
                {"AttributeName": RANGE_KEY, "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": HASH_KEY, "AttributeType": "S"},
                {"AttributeName": RANGE_KEY, "AttributeType": "N"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        result.items_seeded = seed_table(ddb, SOURCE, items, seed=seed)
        say(f"source {SOURCE}: {result.items_seeded} items of all ten types (one near 400 KB)")

        for line in init_tables(spec, ddb):
            say(f"init: {line}")

        from ferry_cli.replication import LocalReplication

        replication = LocalReplication(spec, retry_backoff=0.05).start()
        say("live replication running (table_stream handler fed like Lambda's event-source mapping)")
        traffic = TrafficGenerator(ddb, SOURCE, key_space=items, seed=seed + 1, rate=traffic_rate).start()
        say(f"live traffic on {SOURCE}: ~{traffic_rate:.0f} ops/s of puts, updates, deletes, re-inserts")

        say(f"backfill: local Spark, {splits} splits (the Glue script, unchanged)")
        summary = table_backfill.main(["table_backfill.py", *table_backfill.args_for(spec, SOURCE, splits)])
        result.items_copied = summary.written
        result.items_already_present = sum(r.skipped for r in summary.results)
        result.backfill_seconds = summary.seconds

        stats = traffic.stop()
        result.live_operations = dict(stats.operations)
        say(f"traffic stopped: {sum(stats.operations.values())} operations")
        replication.drain()
        fin = finalize_table(spec, spec.tables[0], ddb)
        result.tombstones_removed = fin.tombstones_removed
        say(f"finalize: phase live, {fin.tombstones_removed} tombstones removed")
        replication.drain()

        lags: list[float] = []
        for poller in replication.pollers:
            result.live_events_applied += poller.stats.applied
            lags.extend(poller.stats.lags)
        result.lag_p50 = _percentile(lags, 0.50)
        result.lag_p99 = _percentile(lags, 0.99)
        result.dlq_depth = replication.dlq_depth()

        report = verify_table(spec, spec.tables[0], workers=splits)
        result.report = report
        result.verify_ok = report.ok
        result.verify_counts = report.counts()
        result.source_items = report.source_items
        result.target_items = report.target_items
    result.seconds = time.monotonic() - started
    return result


def print_summary(result: DemoResult, console: Console) -> None:
    table = Table(title="ferry demo: orders -> orders-v2", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    rate = result.items_copied / result.backfill_seconds if result.backfill_seconds else 0.0
    rows = [
        ("items in source at start", f"{result.items_seeded:,}"),
        ("items copied by the backfill", f"{result.items_copied:,}"),
        ("skipped (live path was first)", f"{result.items_already_present:,}"),
        ("backfill time / rate", f"{result.backfill_seconds:.1f}s / {rate:,.0f} items/s"),
        ("live operations during backfill", ", ".join(f"{k} {v}" for k, v in sorted(result.live_operations.items()))),
        ("live events applied", f"{result.live_events_applied:,}"),
        ("replication lag p50 / p99", f"{result.lag_p50:.2f}s / {result.lag_p99:.2f}s"),
        ("on-failure queue depth", str(result.dlq_depth)),
        ("tombstones removed by finalize", str(result.tombstones_removed)),
        ("items source / target", f"{result.source_items:,} / {result.target_items:,}"),
        (
            "verify",
            "[green]OK: no differences[/]" if result.verify_ok else f"[red]DIFFERENCES {result.verify_counts}[/]",
        ),
        ("total time", f"{result.seconds:.0f}s"),
    ]
    for what, value in rows:
        table.add_row(what, value)
    console.print(table)
    if not result.verify_ok and result.report is not None:
        for kind, keys in result.report.samples(20).items():
            if keys:
                console.print(f"{kind}: {', '.join(keys)}")
