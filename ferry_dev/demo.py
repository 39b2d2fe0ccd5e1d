"""``ferry demo``: a live table and bucket migrated end to end on the embedded emulator.

Source with data first (no stream yet, as in real life), then ``init`` (stream on, target and
state table created), live replication started *before* the backfill, traffic running during
the backfill, then stop traffic, drain, finalize, drain, verify — the phases of ferry_dev.phases.
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
from rich.text import Text

from ferry.operations import initialize, verify_all
from ferry.spec import PROTOCOL_REPLAY, Spec, parse_spec
from ferry.tables.finalize import FinalizeResult
from ferry_dev.emulator import Emulator, use_dummy_credentials
from ferry_dev.hold import CatchUp
from ferry_dev.phases import (
    Backfills,
    Delivery,
    Seeded,
    backfill_all,
    deliveries,
    drain_and_finalize,
    seed_sources,
    start_traffic,
)
from ferry_dev.replication import LocalReplication

SOURCE, TARGET = "orders", "orders-v2"
BUCKET_SOURCE, BUCKET_TARGET = "media", "media-v2"
DEMO_MULTIPART_THRESHOLD = 5 * 1024 * 1024  # lowered from 5 GiB so the demo copies a multipart object


def demo_spec(
    endpoint_url: str, splits: int, *, with_bucket: bool, protocol: str = PROTOCOL_REPLAY, suffix: str = ""
) -> Spec:
    """The demo's spec; ``suffix`` is added to every name (tables, buckets, state table, queues), so a
    test can run the demo's phases on an emulator shared with other tests."""
    return parse_spec(
        {
            "region": "us-east-1",
            "endpoint_url": endpoint_url,
            "state_table": f"ferry-state{suffix}",
            "tables": [{"source": SOURCE + suffix, "target": TARGET + suffix, "protocol": protocol}],
            "backfill": {"splits": splits, "read_percent": 0.5, "write_percent": 0.5},
            "replication": {
                "batch_size": 100,
                "phase_cache_seconds": 1.0,
                "max_retries": 3,
                "on_failure_queue": f"ferry-stream-failures{suffix}",
            },
            "buckets": [{"source": BUCKET_SOURCE + suffix, "target": BUCKET_TARGET + suffix, "protocol": protocol}]
            if with_bucket
            else [],
            "s3": {
                "multipart_threshold": DEMO_MULTIPART_THRESHOLD,
                "splits": splits,
                "concurrency": 4,
                "visibility_timeout": 10,
                "events_queue": f"ferry-bucket-events{suffix}",
            },
        }
    )


@dataclass
class DemoResult:
    """What every phase of the demo did; the figures the summary prints are read from it."""

    seeded: Seeded
    backfills: Backfills
    operations: dict[str, dict[str, int]]  # live traffic by kind: "table", "bucket"
    delivered: dict[str, Delivery]  # "table", "bucket"
    finalized: list[FinalizeResult]
    reports: list[Any]  # verify: the table's report, then the bucket's (if any)
    dlq_depth: int
    protocol: str = PROTOCOL_REPLAY
    catch_ups: dict[str, CatchUp | None] = field(default_factory=dict)  # replay: "table", "bucket"
    seconds: float = 0.0
    report_path: str | None = None  # the HTML report of the run (ferry report), once written

    @property
    def report(self) -> Any:
        return self.reports[0]

    @property
    def bucket_report(self) -> Any | None:
        return self.reports[1] if len(self.reports) > 1 else None

    @property
    def verify_ok(self) -> bool:
        return bool(self.report.ok)

    @property
    def bucket_verify_ok(self) -> bool:
        return self.bucket_report is None or bool(self.bucket_report.ok)

    @property
    def ok(self) -> bool:
        return self.verify_ok and self.bucket_verify_ok

    @property
    def items_copied(self) -> int:
        return sum(s.written for s in self.backfills.tables)

    @property
    def items_already_present(self) -> int:
        return sum(r.skipped for s in self.backfills.tables for r in s.results)

    @property
    def objects_actions(self) -> dict[str, int]:
        return {k: v for s in self.backfills.buckets for k, v in s.actions.items()}

    @property
    def live_operations(self) -> dict[str, int]:
        return self.operations.get("table", {})

    @property
    def live_events_applied(self) -> int:
        return self.delivered["table"].applied

    @property
    def bucket_events_applied(self) -> int:
        return self.delivered["bucket"].applied

    @property
    def lag_p50(self) -> float:
        return self.delivered["table"].p50

    @property
    def lag_p99(self) -> float:
        return self.delivered["table"].p99

    @property
    def tombstones_removed(self) -> int:
        return sum(f.tombstones_removed for f in self.finalized)

    def as_dict(self) -> dict[str, Any]:
        """Everything, per segment and per partition (``ferry demo --json``)."""
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 1),
            "seeded": {"items": self.seeded.items, "objects": self.seeded.objects},
            "table_backfills": [[r.as_dict() for r in s.results] for s in self.backfills.tables],
            "bucket_backfills": [[r.as_dict() for r in s.results] for s in self.backfills.buckets],
            "live_operations": self.operations,
            "applied": {kind: d.applied for kind, d in self.delivered.items()},
            "lag_seconds": {kind: {"p50": d.p50, "p99": d.p99} for kind, d in self.delivered.items()},
            "tombstones_removed": self.tombstones_removed,
            "protocol": self.protocol,
            "catch_up": {
                kind: None if c is None else {"applied": c.applied, "seconds": round(c.seconds, 2)}
                for kind, c in self.catch_ups.items()
            },
            "dlq_depth": self.dlq_depth,
            "verify": [r.as_dict() for r in self.reports],
        }


DEMO_REPORT = Path("build/demo/report.html")  # the demo's build directory, like bench's build/bench


def run_demo(
    *,
    items: int = 5000,
    splits: int = 4,
    traffic_rate: float = 40.0,
    objects: int = 1000,
    object_traffic_rate: float = 8.0,
    seed: int = 7,
    protocol: str = PROTOCOL_REPLAY,
    say: Callable[[str], None] = print,
    emulator_log: str | None = None,
    emulator: str | None = None,
    report_out: str | Path | None = DEMO_REPORT,
    write_report: Callable[[Spec, Path], Path] | None = None,
) -> DemoResult:
    """``emulator``: moto or ministack (default: ``FERRY_EMULATOR``, else ministack). ``write_report``:
    ``ferry report``'s writer (``ferry_cli.report.write_report``: the CLI hands it in, ferry_dev does
    not import the CLI), called with the spec and ``report_out`` at the end (None: no report)."""
    use_dummy_credentials()
    started = time.monotonic()
    log_path = emulator_log or str(Path(tempfile.gettempdir()) / "ferry-demo-emulator.log")
    with Emulator(log_path=log_path, kind=emulator) as emu:
        say(f"emulator ({emu.kind}) on {emu.endpoint_url}; protocol {protocol}")
        spec = demo_spec(emu.endpoint_url, splits, with_bucket=bool(objects), protocol=protocol)
        result = migrate(
            spec,
            items=items,
            objects=objects,
            seed=seed,
            traffic_rate=traffic_rate,
            object_traffic_rate=object_traffic_rate,
            say=say,
        )
        if report_out is not None and write_report is not None:  # while the emulator still holds the state
            result.report_path = str(write_report(spec, Path(report_out)))
    result.seconds = time.monotonic() - started
    return result


def migrate(
    spec: Spec,
    *,
    items: int,
    objects: int,
    seed: int,
    traffic_rate: float,
    object_traffic_rate: float,
    say: Callable[[str], None] = print,
) -> DemoResult:
    """The demo's phases on ``spec`` (an emulator's endpoint): seed, init, live replication, traffic
    during the backfill, drain, finalize, verify."""
    protocol, splits = spec.tables[0].protocol, spec.backfill.splits
    source, bucket_source = spec.tables[0].source, spec.buckets[0].source if spec.buckets else ""
    app = spec.source_where()  # the application lives on the source side
    seeded = seed_sources(app, spec, items=items, objects=objects, seed=seed, multipart_part=DEMO_MULTIPART_THRESHOLD)
    say(f"source table {source}: {seeded.items} items of all ten types (one near 400 KB)")
    if objects:
        say(
            f"source bucket {bucket_source}: {seeded.objects} objects (awkward keys, zero-byte, "
            "headers, metadata, tags, one multipart object above the lowered threshold)"
        )
    for line in initialize(spec):
        say(f"init: {line}")
    replication = LocalReplication(spec, retry_backoff=0.05).start()
    if protocol == PROTOCOL_REPLAY:
        say("live replication started and held: changes wait in the stream and the queue until the copy is released")
    else:
        say("live replication running (table_stream and bucket_events handlers fed like Lambda's event sources)")
    traffic = start_traffic(
        app, spec, items=items, objects=objects, seed=seed, table_rate=traffic_rate, object_rate=object_traffic_rate
    )
    say(f"live traffic: ~{traffic_rate:.0f} table ops/s and ~{object_traffic_rate if objects else 0:.0f} object ops/s")
    say(f"backfill: local Spark, {splits} splits (the Glue scripts, unchanged)")
    backfills = backfill_all(spec)
    for released in [s.released for s in backfills.tables] + [s.released for s in backfills.buckets]:
        if released:
            say(f"release: {released}")
    operations = traffic.stop()
    say("traffic stopped")
    finalized = drain_and_finalize(spec, replication)
    say(f"finalize: phase live, {sum(f.tombstones_removed for f in finalized)} tombstones removed")
    dlq_depth = replication.dlq_depth()
    reports = verify_all(spec, workers=splits)
    return DemoResult(
        seeded,
        backfills,
        operations,
        deliveries(replication),
        finalized,
        reports,
        dlq_depth,
        protocol,
        replication.catch_ups(),
    )


def _verdict(report: Any) -> Text:
    if report.ok:
        return Text("OK: no differences", style="green")
    counts = ", ".join(f"{kind} {n}" for kind, n in report.counts().items() if n)
    return Text(f"DIFFERENCES: {counts}", style="red")


def _joined(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def _rate(count: int, seconds: float, unit: str) -> str:
    return f"{seconds:.1f}s / {count / seconds if seconds else 0.0:,.0f} {unit}/s"


def _catch_up(catch_up: CatchUp | None, unit: str) -> str:
    if catch_up is None:
        return "n/a"
    return f"{catch_up.applied:,} {unit} in {catch_up.seconds:.1f}s ({catch_up.rate:,.0f}/s)"


def summary_rows(result: DemoResult) -> list[tuple[str, str | Text]]:
    """The summary, row by row: each figure read from the phase that made it."""
    table, table_seconds = result.report, sum(s.seconds for s in result.backfills.tables)
    table_lag = result.delivered["table"]
    replay = result.protocol == PROTOCOL_REPLAY
    held = " (held records included)" if replay else ""
    rows: list[tuple[str, str | Text]] = [
        ("protocol", result.protocol),
        ("items in source at start", f"{result.seeded.items:,}"),
        ("items copied by the backfill", f"{result.items_copied:,}"),
        ("skipped (live path was first)", f"{result.items_already_present:,}"),
        ("backfill time / rate", _rate(result.items_copied, table_seconds, "items")),
        ("live table operations", _joined(result.live_operations)),
        ("live stream events applied", f"{table_lag.applied:,}"),
    ]
    if replay:
        rows.append(("held backlog replayed after the release", _catch_up(result.catch_ups.get("table"), "records")))
    rows += [
        (f"table replication lag p50 / p99{held}", f"{table_lag.p50:.2f}s / {table_lag.p99:.2f}s"),
        ("tombstones removed by finalize", str(result.tombstones_removed)),
        ("items source / target", f"{table.source_items:,} / {table.target_items:,}"),
        ("table verify", _verdict(table)),
    ]
    bucket = result.bucket_report
    if bucket is not None:
        actions = result.objects_actions
        bucket_seconds, bucket_lag = sum(s.seconds for s in result.backfills.buckets), result.delivered["bucket"]
        rows += [
            ("objects in source at start", f"{result.seeded.objects:,}"),
            ("bucket backfill (server-side)", _joined(actions)),
            ("bucket backfill time / rate", _rate(sum(actions.values()), bucket_seconds, "objects")),
            ("live object operations", _joined(result.operations.get("bucket", {}))),
            ("bucket events applied", f"{bucket_lag.applied:,}"),
        ]
        if replay:
            rows.append(("held events replayed after the release", _catch_up(result.catch_ups.get("bucket"), "events")))
        rows += [
            (f"bucket replication lag p50 / p99{held}", f"{bucket_lag.p50:.2f}s / {bucket_lag.p99:.2f}s"),
            ("objects source / target", f"{bucket.source_items:,} / {bucket.target_items:,}"),
            ("bucket verify", _verdict(bucket)),
        ]
    return [*rows, ("dead-letter queues", str(result.dlq_depth)), ("total time", f"{result.seconds:.0f}s")]


def print_summary(result: DemoResult, console: Console) -> None:
    table = Table(title=f"ferry demo: {SOURCE} -> {TARGET}, {BUCKET_SOURCE} -> {BUCKET_TARGET}", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for what, value in summary_rows(result):
        table.add_row(what, value)
    console.print(table)
    for report in result.reports:
        for kind, keys in report.samples(20).items():
            if keys:
                console.print(Text(f"{report.source} {kind}: {', '.join(keys)}"))
