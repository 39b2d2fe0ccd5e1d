"""Lines 1 and 3, the replay protocol (ferry's default, docs/adr/0004): each copy path timed from the
copy's start until the target equals the source, the replay of the changes made during the copy included.

Each run of a path gets its own source, as every approach of line 1 does (bench.table_source): a fresh
table seeded with the same items (bench_item, all ten types, ~1 KB), so every approach copies the same
data from the same start. ferry's ``initialize`` then enables its stream, records where capture began,
turns point-in-time recovery on for the export paths (and creates ferry's default export bucket), creates
the target (not for ImportTable, which creates it) and sets the phase ``hold``. The local pollers
(``ferry replicate``'s LocalReplication) start held, in a process of their own
(bench.lag.ReplicationProcess: sharing this interpreter they would measure its contention).

Timed, from the Glue script's process start:
- the steady write load of line 1 on the source (SourceLoad: overwrites, partial updates that add to a
  number and binary sets, deletes, new items; the same seeded sequence at the same rate for every
  approach) while the Glue script (glue_jobs/table_backfill.py, local Spark, the spec's default 8
  splits) copies by the path's backfill.read × backfill.write and releases the held changes (phase
  ``replay``);
- the load stops when the script prints its summary (the release is done by then);
- the pollers apply every held change from the start of the stream; the time ends when they have
  applied everything (``drain``: a round that finds nothing left, after the last write of the load).

Not timed: the seed, ``initialize``, the pollers' start, and afterwards ferry's verify of the whole
table (every item, DynamoDB semantics: 38-digit numbers, sets, binaries): it must find 0 differences.

Line 1's other approaches (naive, batch_writer, ferry insert-only) copy under the same load, on the
same single-process emulator: see bench/table_backfill.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bench.common import Row, Timed, fmt, ratio
from bench.lag import ReplicationProcess
from bench.table_backfill import (
    DRAIN_TIMEOUT,
    REGION,
    SPLITS,
    UNLIMITED_UNITS,
    Bench,
    JobRun,
    run_ferry_job,
    verify_copy,
)
from bench.table_source import LOAD_RATE
from ferry.spec import READ_EXPORT, READ_SCAN, WRITE_BATCH, WRITE_IMPORT, Spec, parse_spec
from ferry.tables.verify import TableVerifyReport
from ferry.wire import Item, items_equal, key_from_text
from ferry_dev.workload import HASH_KEY, RANGE_KEY

# name -> (backfill.read, backfill.write)
PATHS: dict[str, tuple[str, str]] = {
    "replay_scan_batch": (READ_SCAN, WRITE_BATCH),
    "replay_export_batch": (READ_EXPORT, WRITE_BATCH),
    "replay_export_import": (READ_EXPORT, WRITE_IMPORT),
}
LABELS = {
    "replay_scan_batch": "ferry replay scan+batch",
    "replay_export_batch": "ferry replay export+batch",
    "replay_export_import": "ferry replay export+import",
}
NAIVE_TARGET = 3.0  # the best replay path end to end against the naive copy
KEY_TYPES = {HASH_KEY: "S", RANGE_KEY: "N"}  # create_workload_table's key schema
_IMPORTED = re.compile(r"imported (\d+) of (\d+) items, (\d+) errors")


# --- what the emulator's ImportTable does to strings -----------------------------------------


def json_escaped(value: Any) -> Any:
    """``value`` (wire format) with every string as the emulator's ImportTable stores it: moto writes
    the export with ``json.dumps`` (non-ASCII as ``\\uXXXX`` escapes) and its importer (py-partiql-parser's
    JsonParser) keeps the escapes as text, so ``naïve`` arrives as ``na\\u00efve``."""
    ((tag, inner),) = value.items()
    if tag == "S":
        return {"S": json.dumps(inner)[1:-1]}
    if tag == "SS":
        return {"SS": [json.dumps(v)[1:-1] for v in inner]}
    if tag == "M":
        return {"M": {k: json_escaped(v) for k, v in inner.items()}}
    if tag == "L":
        return {"L": [json_escaped(v) for v in inner]}
    return value


def escapes_explain(source: Item | None, target: Item | None) -> bool:
    """Whether ``target`` is ``source`` with its strings escaped as the emulator's ImportTable leaves them
    (and not already equal: an equal pair needs no explanation)."""
    if source is None or target is None or source.keys() != target.keys() or items_equal(source, target):
        return False
    return all(items_equal({"v": json_escaped(source[name])}, {"v": target[name]}) for name in source)


def explain_differences(ddb: Any, spec: Spec, report: TableVerifyReport, sample: int = 100) -> dict[str, int]:
    """Read up to ``sample`` of the items verify found different, on both sides: how many differ only by
    the emulator's ImportTable escapes (:func:`escapes_explain`)."""
    mapping = spec.tables[0]
    keys = [key_from_text(d.key, KEY_TYPES) for d in report.differences if d.kind == "different"][:sample]
    explained = 0
    for key in keys:
        source = ddb.get_item(TableName=mapping.source, Key=key, ConsistentRead=True).get("Item")
        target = ddb.get_item(TableName=mapping.target, Key=key, ConsistentRead=True).get("Item")
        explained += escapes_explain(source, target)
    return {"read": len(keys), "explained_by_import_escapes": explained}


# --- one replay copy ------------------------------------------------------------------------


def replay_spec(endpoint: str, source: str, target: str, state_table: str, read: str, write: str) -> Spec:
    backfill: dict[str, Any] = {
        "splits": SPLITS,
        "read": read,
        "write": write,
        "on_demand_read_units": UNLIMITED_UNITS,
        "on_demand_write_units": UNLIMITED_UNITS,
    }
    return parse_spec(
        {
            "region": REGION,
            "endpoint_url": endpoint,
            "state_table": state_table,
            "tables": [{"source": source, "target": target, "protocol": "replay"}],
            "backfill": backfill,
        }
    )


def imported_counts(output: str) -> dict[str, int] | None:
    """ImportTable's counts from the job's summary line (None: the copy did not import)."""
    match = _IMPORTED.search(output)
    if match is None:
        return None
    return {"imported": int(match.group(1)), "processed": int(match.group(2)), "errors": int(match.group(3))}


def copied_items(run: JobRun) -> int:
    imported = imported_counts(run.output)
    return int(run.total("written")) + (imported["imported"] if imported else 0)


def copy(bench: Bench, path: str) -> tuple[float, dict[str, Any]]:
    """One timed replay copy by ``path`` (of PATHS) of a freshly seeded source under line 1's load; (items/s
    end to end, details). The source, target and state table are deleted afterwards."""
    read, write = PATHS[path]
    source, seed_seconds = bench.fresh_source("replay")
    target, state = bench.target_of("replay", create=False), f"bench-replay-state-{bench.runs}"
    spec = replay_spec(bench.emulator.endpoint_url, source, target, state, read, write)
    from ferry.operations import initialize

    initialize(spec, enable_pitr=read == READ_EXPORT)  # the target, and for an export ferry's export bucket
    pollers = ReplicationProcess(spec).start()
    load = bench.load_on(source)
    try:
        cpu = bench.emulator_cpu()
        load.start()
        run = run_ferry_job(spec, source, bench.workdir / f"{path}-job.log", on_summary=load.finish)
        load.finish()
        drained = pollers.ask("drain", timeout=DRAIN_TIMEOUT)
        cpu = bench.emulator_cpu() - cpu
    finally:
        load.finish()
        own = pollers.stop()
    seconds = float(drained["drained_at"]) - run.started_at
    details: dict[str, Any] = {
        "path": path,
        "read": read,
        "write": write,
        "items": bench.items,
        "copied": copied_items(run),
        "imported": imported_counts(run.output),
        "released": "released" in run.output,
        "seconds": seconds,
        "copy_seconds": run.summary_seconds,  # process start to the summary (copied and released)
        "replay_seconds": seconds - run.summary_seconds,  # the summary to the last change applied
        "steady_seconds": run.steady_seconds,
        "seed_seconds": seed_seconds,
        **load.summary(),
        "replayed_records": drained["table"]["records_applied"],
        "catch_up": drained["catch_ups"].get("table"),
        "dead_lettered": own.get("dlq_depth"),
        "emulator_cpu_ms_per_item": cpu / bench.items * 1000,
        "checkpoint_writes": int(run.total("pages")),
        **{
            name: run.total(name)
            for name in (
                "pages", "scan_requests", "batch_requests", "file_requests", "resent", "throttled",
                "read_units_by_size", "write_units_by_size",
            )
        },
    }  # fmt: skip
    report, verified = verify_copy(spec, load, bench.items)
    details |= verified
    details["explained"] = explain_differences(bench.ddb, spec, report) if report.differences else None
    details["report"] = str(write_run_report(bench, spec, report, path))
    bench.drop(source, target, state)
    return bench.items / seconds, details


def write_run_report(bench: Bench, spec: Spec, report: TableVerifyReport, path: str) -> Path:
    """``ferry report`` of this run (build/bench/report-<path>.html), from its state table before it is
    dropped: the copy's throughput and capacity, the replay's lag and backlog, the verify recorded."""
    from ferry.tables.state import StateStore
    from ferry_cli.report import write_report

    StateStore(bench.ddb, spec.state_table).save_verify(
        report.source, json.dumps(report.recorded()), len(report.differences)
    )
    return write_report(spec, bench.workdir / f"report-{path.replace('_', '-')}.html")


# --- rows -----------------------------------------------------------------------------------


def _median(timed: Timed, key: str) -> float:
    values = [float(e[key]) for e in timed.extra if e.get(key) is not None]
    values = [v for v in values if v == v]
    if not values:
        return float("nan")
    values.sort()
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def best_path(results: dict[str, Timed]) -> str:
    """The replay path with the highest median end-to-end items/s."""
    return max(PATHS, key=lambda p: results[p].median if results[p].median == results[p].median else -1.0)


def exactness(timed: Timed) -> tuple[bool, str]:
    """(every run type-exact and complete, the text): 0 differences, and the verify saw every item."""
    worst = max((int(e["differences"]) for e in timed.extra), default=-1)
    verified = min((int(e["verified_items"]) for e in timed.extra), default=0)
    released = all(e.get("released") for e in timed.extra)
    if worst == 0 and released and timed.extra:
        return True, f"type-exact incl. the replayed changes ({verified:,} items verified)"
    problem = f"{worst:,} items differ" if worst else "not released"
    text = f"{problem} ({verified:,} items verified)"
    explained = [e["explained"] for e in timed.extra if e.get("explained")]
    read = sum(x["read"] for x in explained)
    if read and all(x["explained_by_import_escapes"] == x["read"] for x in explained):
        text += (
            f"; every one of the {read:,} read back differs only by non-ASCII strings left as JSON \\u escapes "
            "by the emulator's ImportTable (moto's export writes them, its importer does not decode them)"
        )
    return False, text


def _load_note(results: dict[str, Timed]) -> str:
    parts = []
    for path in PATHS:
        timed = results[path]
        parts.append(
            f"{LABELS[path].removeprefix('ferry replay ')}: copy {_median(timed, 'copy_seconds'):.1f} s + replay "
            f"{_median(timed, 'replay_seconds'):.1f} s, {_median(timed, 'load_writes'):,.0f} writes at "
            f"{_median(timed, 'load_rate'):.1f}/s, {_median(timed, 'replayed_records'):,.0f} records replayed, "
            f"emulator {_median(timed, 'emulator_cpu_ms_per_item'):.2f} ms CPU per item"
        )
    return "; ".join(parts)


def speed_rows(results: dict[str, Timed], items: int, rounds_note: str) -> list[Row]:
    """Line 1's replay rows: each path end to end against the naive copy, the best path judged (≥ 3×),
    scan+batch steady state against batch_writer (≥ 1×), every path's exactness."""
    naive, batch = results["naive"], results["batch_writer"]
    setup = (
        f"{items:,} items of ~1000 B, all ten types; every approach copies its own freshly seeded source under "
        f"the same steady load of {LOAD_RATE:g} writes/s (overwrites, updates of sets, deletes, inserts; same "
        "seed), here from the copy's start until its release; time = the Glue script's process start (Spark "
        "start-up included) until the held pollers (own process) have applied every change; naive = copy start "
        "to copy end under the load (it replicates nothing: its losses are counted above); the export paths "
        f"export to ferry's default export bucket (`ferry init` creates it); {rounds_note}"
    )
    rows: list[Row] = []
    for path in PATHS:
        value = results[path].median
        rows.append(
            Row(
                "1",
                "table backfill end to end incl. the replay of the changes made meanwhile, items/s",
                f"{fmt(value, 'items/s')} ({LABELS[path]})",
                "naive (Scan + concurrent PutItem per page, under the load)",
                fmt(naive.median, "items/s"),
                ratio(value, naive.median),
                note="informative; the best path is judged in the next row",
            )
        )
    best = best_path(results)
    lead = ratio(results[best].median, naive.median)
    rows.append(
        Row(
            "1",
            "best replay path end to end (changes replayed), items/s",
            f"{fmt(results[best].median, 'items/s')} ({LABELS[best]})",
            "naive (Scan + concurrent PutItem per page, under the load)",
            fmt(naive.median, "items/s"),
            lead,
            f"≥ {NAIVE_TARGET:g}×",
            None if lead is None else lead >= NAIVE_TARGET,
            f"{setup}; {_load_note(results)}",
        )
    )
    scan = results["replay_scan_batch"]
    steady = items / _median(scan, "steady_seconds")
    batch_steady = items / _median(batch, "steady_seconds")
    steady_lead = ratio(steady, batch_steady)
    rows.append(
        Row(
            "1",
            "table backfill steady state, items/s (replay scan+batch, under the load)",
            fmt(steady, "items/s"),
            f"boto3 batch_writer, {SPLITS} segments in threads (under the load)",
            fmt(batch_steady, "items/s"),
            steady_lead,
            "≥ 1×",
            None if steady_lead is None else steady_lead >= 1.0,
            "first segment start to last segment end (the segments' own timestamps; Spark start-up excluded), "
            "batch_writer first Scan to last write; both send the same requests per item (1 MB Scan pages, "
            "BatchWriteItem of 25), ferry also one checkpoint per page; both copy under the same load of "
            f"{LOAD_RATE:g} writes/s; the emulator is the limit: its CPU per copied item was {_median(scan, 'emulator_cpu_ms_per_item'):.2f} ms for "
            f"scan+batch (the load's {_median(scan, 'load_writes'):,.0f} writes and their replay included), "
            f"{_median(batch, 'emulator_cpu_ms_per_item'):.2f} ms for batch_writer (the load's "
            f"{_median(batch, 'load_writes'):,.0f} writes included)",
        )
    )
    for path in PATHS:
        exact, text = exactness(results[path])
        rows.append(
            Row(
                "1",
                "copy is type-exact (ferry verify, every run)",
                text,
                LABELS[path],
                target="0 differing items",
                met=exact,
                note="ferry's verify of the whole table after the load stopped and the pollers drained: every item "
                "compared with DynamoDB semantics (sets, 38-digit numbers, binaries)",
            )
        )
    return rows


def _per_million(value: float, items: int) -> float:
    return value * 1_000_000 / items if items else float("nan")


def cost_rows(results: dict[str, Timed], items: int, insert_only: dict[str, float]) -> tuple[list[Row], dict[str, Any]]:
    """Line 3's replay rows: read and write units per million items of each path by DynamoDB's rules,
    beside ferry insert-only's (``insert_only``: its RCU and WCU per million, as line 3 computed them)."""
    rows: list[Row] = []
    details: dict[str, Any] = {}
    rules = {
        READ_SCAN: "each Scan page ceil(bytes/4 KB)/2",
        READ_EXPORT: "an export reads no capacity from the table (billed per GB of table instead)",
        WRITE_BATCH: "each item of a BatchWriteItem ceil(size/1 KB), plus 1 per page checkpoint",
        WRITE_IMPORT: "ImportTable writes no capacity (billed per GB imported instead)",
    }
    for path, (read, write) in PATHS.items():
        timed = results[path]
        reads = _per_million(_median(timed, "read_units_by_size"), items)
        checkpoints = _median(timed, "checkpoint_writes")
        writes = _per_million(_median(timed, "write_units_by_size") + checkpoints, items)
        requests = {
            name: round(_per_million(_median(timed, name), items))
            for name in ("scan_requests", "batch_requests", "file_requests", "checkpoint_writes")
        }
        replayed = _median(timed, "replayed_records")
        details[path] = {"rcu_per_million": reads, "wcu_per_million": writes, "requests_per_million": requests}
        made = ", ".join(f"{k.removesuffix('_requests').replace('_', ' ')} {v:,}" for k, v in requests.items() if v)
        note = (
            f"by DynamoDB's rules, per million items of the source: {rules[read]}; {rules[write]}; requests per "
            f"million: {made or 'none per item (one ExportTableToPointInTime and one ImportTable call)'}; items "
            "the load grew past 1 KB cost 2 units; the replay adds one write per held change "
            f"({replayed:,.0f} in this run: the load's, not the table's)"
        )
        for unit, value, name in (("RCU", reads, "read"), ("WCU", writes, "write")):
            other = insert_only[unit]
            rows.append(
                Row(
                    "3",
                    f"{name} units per million items ({LABELS[path]})",
                    fmt(value, unit),
                    "ferry insert-only (Scan + conditional PutItem)",
                    fmt(other, unit),
                    ratio(other, value) if value else None,  # 0 units: no ratio (the note says why)
                    note=note,
                )
            )
    return rows, details
