"""Lines 1 and 3, the replay protocol (ferry's default, docs/adr/0004): each copy path timed from the
copy's start until the target equals the source, the replay of the changes made during the copy included.

Each run of a path gets its own source: a fresh table seeded with the same items as line 1's static
source (bench_item, all ten types, ~1 KB), so every path copies the same data from the same start.
ferry's ``initialize`` then enables its stream, records where capture began, turns point-in-time
recovery on for the export paths, creates the target (not for ImportTable, which creates it) and sets
the phase ``hold``. The local pollers (``ferry replicate``'s LocalReplication) start held, in a process
of their own (bench.lag.ReplicationProcess: sharing this interpreter they would measure its contention).

Timed, from the Glue script's process start:
- a steady write load on the source (SourceLoad: overwrites, partial updates that add to a number and
  binary sets, deletes, new items; the same seeded sequence at the same rate for every path) while the
  Glue script (glue_jobs/table_backfill.py, local Spark, the spec's default 8 splits) copies by the path's
  backfill.read × backfill.write and releases the held changes (phase ``replay``);
- the load stops when the script prints its summary (the release is done by then);
- the pollers apply every held change from the start of the stream; the time ends when they have
  applied everything (``drain``: a round that finds nothing left, after the last write of the load).

Not timed: the seed, ``initialize``, the pollers' start, and afterwards ferry's verify of the whole
table (every item, DynamoDB semantics: 38-digit numbers, sets, binaries): it must find 0 differences.

The baselines of line 1 (naive, batch_writer, ferry insert-only) copy a static table: a replay path
does more work in the same time (the load's writes, the stream reads, the replayed writes), on the same
single-process emulator.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import Row, Timed, fmt, ratio
from bench.lag import ReplicationProcess
from bench.table_backfill import (
    REGION,
    SPLITS,
    UNLIMITED_UNITS,
    JobRun,
    bench_item,
    cpu_seconds,
    run_ferry_job,
    seed,
)
from ferry.clients import AwsTarget, make_client
from ferry.spec import READ_EXPORT, READ_SCAN, WRITE_BATCH, WRITE_IMPORT, Spec, parse_spec
from ferry.tables.verify import TableVerifyReport, verify_table
from ferry.wire import Item, items_equal, key_from_text
from ferry_dev.emulator import Emulator
from ferry_dev.workload import HASH_KEY, RANGE_KEY, create_workload_table

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
LOAD_RATE = 20.0  # source writes/s during each replay copy
LOAD_SEED = 29
LOAD_THREADS = 8  # writes in flight at once, so the rate holds while the emulator is busy with the copy
DRAIN_TIMEOUT = 600.0
# The exports go to a bucket the bench creates (backfill.export_bucket): the one `ferry init` creates by
# default refuses plain HTTP (a TLS-only bucket policy, which the emulator enforces), and the emulator
# speaks plain HTTP only.
EXPORT_BUCKET = "bench-replay-exports"
NAIVE_TARGET = 3.0  # the best replay path end to end against the naive copy
KEY_TYPES = {HASH_KEY: "S", RANGE_KEY: "N"}  # create_workload_table's key schema
_IMPORTED = re.compile(r"imported (\d+) of (\d+) items, (\d+) errors")


# --- the load -------------------------------------------------------------------------------


def bench_key(index: int) -> Item:
    key = bench_item(index)
    return {HASH_KEY: key[HASH_KEY], RANGE_KEY: key[RANGE_KEY]}


@dataclass(frozen=True)
class PlannedWrite:
    operation: str  # overwrite | update | delete | insert
    method: str  # the DynamoDB client's method
    request: dict[str, Any]


def plan_write(rng: random.Random, table: str, items: int, version: int, created: int) -> PlannedWrite:
    """The load's next write (``version``: its number; ``created``: new items so far): 40 % overwrites of a
    seeded item (a new version and tag), 30 % UpdateItem (SET a 38-digit number, ADD to a string set and
    a binary set), 15 % deletes, 15 % new items."""
    roll = rng.random()
    index = rng.randrange(items)
    if roll < 0.4:
        item = bench_item(index)
        item["version"] = {"N": str(version)}
        item["tags"] = {"SS": [*item["tags"]["SS"], f"v{version}"]}
        return PlannedWrite("overwrite", "put_item", {"TableName": table, "Item": item})
    if roll < 0.7:
        request = {
            "TableName": table,
            "Key": bench_key(index),
            "UpdateExpression": "SET #v = :v ADD #t :t, #c :c",
            "ExpressionAttributeNames": {"#v": "version", "#t": "tags", "#c": "chunks"},
            "ExpressionAttributeValues": {
                ":v": {"N": f"1234567890123456789012345678901234567.{version % 10}"},
                ":t": {"SS": [f"u{version}"]},
                ":c": {"BS": [rng.randbytes(5)]},
            },
        }
        return PlannedWrite("update", "update_item", request)
    if roll < 0.85:
        return PlannedWrite("delete", "delete_item", {"TableName": table, "Key": bench_key(index)})
    return PlannedWrite("insert", "put_item", {"TableName": table, "Item": bench_item(items + created)})


class SourceLoad(threading.Thread):
    """Steady writes on a replay copy's source while it is copied: one write started every 1/``rate``
    seconds on a fixed schedule, each on a small pool of threads, so a slow answer from the busy emulator
    delays that write and not the rate (as bench.lag's writers). Reproducible from ``seed``."""

    def __init__(self, ddb: Any, table: str, items: int, *, seed: int = LOAD_SEED, rate: float = LOAD_RATE) -> None:
        super().__init__(name="replay-load", daemon=True)
        self.ddb = ddb
        self.table = table
        self.items = items
        self.rate = rate
        self.rng = random.Random(seed)
        self.version = 0
        self.created = 0
        self.operations: Counter[str] = Counter()
        self.errors: list[str] = []
        self.late = 0  # writes started more than one interval behind schedule (every thread was busy)
        self.started_at = self.stopped_at = float("nan")
        self._lock = threading.Lock()
        self._stop_event = threading.Event()

    def _plan(self) -> PlannedWrite:
        with self._lock:
            self.version += 1
            planned = plan_write(self.rng, self.table, self.items, self.version, self.created)
            self.created += planned.operation == "insert"
            return planned

    def _one(self) -> None:
        planned = self._plan()
        try:
            getattr(self.ddb, planned.method)(**planned.request)
        except Exception as exc:
            with self._lock:
                self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            return
        with self._lock:
            self.operations[planned.operation] += 1

    def run(self) -> None:
        interval = 1.0 / self.rate
        next_at = self.started_at = time.monotonic()
        with ThreadPoolExecutor(max_workers=LOAD_THREADS, thread_name_prefix=self.name) as pool:
            while not self._stop_event.is_set():
                if time.monotonic() - next_at > interval:
                    self.late += 1
                pool.submit(self._one)
                next_at += interval
                self._stop_event.wait(max(0.0, next_at - time.monotonic()))

    def finish(self) -> None:
        """Stop starting writes and wait for those in flight (idempotent: the first call ends the load)."""
        if self.stopped_at != self.stopped_at:
            self.stopped_at = time.monotonic()
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=60)

    @property
    def writes(self) -> int:
        return sum(self.operations.values())


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
    if read == READ_EXPORT:
        backfill["export_bucket"] = EXPORT_BUCKET
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


@dataclass
class ReplayBench:
    """The emulator and the item count shared with line 1's other approaches."""

    emulator: Emulator
    ddb: Any
    items: int
    workdir: Path
    runs: int = 0

    def emulator_cpu(self) -> float:
        return cpu_seconds(self.emulator._process.pid) if self.emulator._process else float("nan")

    def copy(self, path: str) -> tuple[float, dict[str, Any]]:
        """One timed replay copy by ``path`` (of PATHS) of a freshly seeded source; (items/s end to end,
        details). The source, target and state table are deleted afterwards."""
        self.runs += 1
        read, write = PATHS[path]
        source, target = f"bench-replay-src-{self.runs}", f"bench-replay-dst-{self.runs}"
        state = f"bench-replay-state-{self.runs}"
        endpoint = self.emulator.endpoint_url
        create_workload_table(self.ddb, source)
        seed(self.ddb, source, (bench_item(i) for i in range(self.items)))
        spec = replay_spec(endpoint, source, target, state, read, write)
        if read == READ_EXPORT:
            s3 = make_client("s3", AwsTarget(REGION, endpoint))
            if EXPORT_BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
                s3.create_bucket(Bucket=EXPORT_BUCKET)
        from ferry.operations import initialize

        initialize(spec, enable_pitr=read == READ_EXPORT)
        pollers = ReplicationProcess(spec).start()
        load = SourceLoad(make_client("dynamodb", AwsTarget(REGION, endpoint), pool=LOAD_THREADS), source, self.items)
        try:
            cpu = self.emulator_cpu()
            load.start()
            run = run_ferry_job(spec, source, self.workdir / f"{path}-job.log", on_summary=load.finish)
            load.finish()
            drained = pollers.ask("drain", timeout=DRAIN_TIMEOUT)
            cpu = self.emulator_cpu() - cpu
        finally:
            load.finish()
            own = pollers.stop()
        seconds = float(drained["drained_at"]) - run.started_at
        details: dict[str, Any] = {
            "path": path,
            "read": read,
            "write": write,
            "items": self.items,
            "copied": copied_items(run),
            "imported": imported_counts(run.output),
            "released": "released" in run.output,
            "seconds": seconds,
            "copy_seconds": run.summary_seconds,  # process start to the summary (copied and released)
            "replay_seconds": seconds - run.summary_seconds,  # the summary to the last change applied
            "steady_seconds": run.steady_seconds,
            "load_writes": load.writes,
            "load_rate": load.writes / (load.stopped_at - load.started_at),
            "load_operations": dict(load.operations),
            "load_errors": load.errors[:20],
            "load_late": load.late,
            "replayed_records": drained["table"]["records_applied"],
            "catch_up": drained["catch_ups"].get("table"),
            "dead_lettered": own.get("dlq_depth"),
            "emulator_cpu_ms_per_item": cpu / self.items * 1000,
            "checkpoint_writes": int(run.total("pages")),
            **{
                name: run.total(name)
                for name in (
                    "pages", "scan_requests", "batch_requests", "file_requests", "resent", "throttled",
                    "read_units_by_size", "write_units_by_size",
                )
            },
        }  # fmt: skip
        started = time.monotonic()
        report = verify_table(spec, spec.tables[0], workers=SPLITS)
        details |= {
            "differences": len(report.differences),
            "difference_kinds": report.counts(),
            "different_attributes": dict(Counter(a for d in report.differences for a in d.attributes)),
            "explained": explain_differences(self.ddb, spec, report) if report.differences else None,
            "verified_items": report.source_items,
            "target_items": report.target_items,
            "verified_segments": f"{SPLITS} of {SPLITS}",
            "verify_seconds": round(time.monotonic() - started, 1),
        }
        for table in (source, target, state):
            self.ddb.delete_table(TableName=table)
        return self.items / seconds, details


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
        f"{items:,} items of ~1000 B, all ten types, each replay run on its own freshly seeded source under a "
        f"steady load of {LOAD_RATE:g} writes/s (overwrites, updates of sets, deletes, inserts) from the copy's "
        "start until its release; time = the Glue script's process start (Spark start-up included) until the "
        "held pollers (own process) have applied every change; the baselines naive and batch_writer copy a "
        "static table with no load and no replay; the export paths export to a bucket the bench creates "
        f"(`ferry init`'s default export bucket is TLS-only, the emulator plain HTTP); {rounds_note}"
    )
    rows: list[Row] = []
    for path in PATHS:
        value = results[path].median
        rows.append(
            Row(
                "1",
                "table backfill end to end incl. the replay of the changes made meanwhile, items/s",
                f"{fmt(value, 'items/s')} ({LABELS[path]})",
                "naive (Scan + concurrent PutItem per page, static table)",
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
            "naive (Scan + concurrent PutItem per page, static table)",
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
            f"boto3 batch_writer, {SPLITS} segments in threads (static table)",
            fmt(batch_steady, "items/s"),
            steady_lead,
            "≥ 1×",
            None if steady_lead is None else steady_lead >= 1.0,
            "first segment start to last segment end (the segments' own timestamps; Spark start-up excluded); "
            "both send the same requests per item (1 MB Scan pages, BatchWriteItem of 25), ferry also one "
            f"checkpoint per page; the emulator is the limit and also serves the {LOAD_RATE:g} writes/s load "
            f"meanwhile: its CPU per copied item was {_median(scan, 'emulator_cpu_ms_per_item'):.2f} ms for "
            f"scan+batch (the load's {_median(scan, 'load_writes'):,.0f} writes and their replay included), "
            f"{_median(batch, 'emulator_cpu_ms_per_item'):.2f} ms for batch_writer",
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
