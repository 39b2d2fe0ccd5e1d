"""Lines 1 and 3: the table backfill on the embedded emulator, ferry against the usual ways, every one
copying a live table, and what ferry's copy costs in capacity units and requests against the floor.

Every run of every approach copies its own freshly seeded source (bench.table_source: the same ~1 KB
items holding all ten attribute types — S, N with 38 digits, B, SS, NS, BS, one level of M and L,
BOOL, NULL — seeded with BatchWriteItem, not timed) while the same steady write load runs on it
(SourceLoad: the same seeded sequence of overwrites, partial updates, deletes and inserts at the same
rate), alternately, round after round, into its own fresh target (same key schema, on demand):

- naive: a sequential Scan with boto3's resource API (Table.scan pages), each page's put_item calls
  concurrent in a thread pool, page after page. Timed from the copy's start to its end, the load
  running all that time. It replicates nothing: what the load wrote behind the scan is lost.
- batch_writer: Table.scan with Segment/TotalSegments per segment (ferry's segment count), one thread
  per segment, each writing through Table.batch_writer(). Timed as naive; steady state from the first
  segment's first Scan to the last segment's end. It replicates nothing either.
- ferry (protocol insert-only), as ferry runs it against a live table: ``init`` (the state table, the
  source's stream, the backfill phase), its pollers (``ferry replicate``'s LocalReplication, in a
  process of their own: bench.lag.ReplicationProcess) running from before the copy and applying the
  load's writes live, the real Glue script glue_jobs/table_backfill.py on local Spark with the spec's
  default splits (8) writing one conditional PutItem per item (docs/adr/0001: BatchWriteItem cannot
  carry the condition insert-only needs); the load stops at the job's summary; then the pollers drain,
  ``finalize`` (finalize_table: phase live, its wait for the handlers' phase caches, the tombstone
  sweep), and the pollers drain again. End to end: the job's process start (interpreter, JVM and Spark
  start-up included) until that last drain, when the target equals the source. Steady state: items /
  (last segment end - first segment start), from the segments' own timestamps (Spark and worker
  start-up excluded). The on-demand ceilings of the spec are set far above what the emulator serves,
  so the emulator, not ferry's capacity budget, is the limit.
- ferry replay, three paths (scan+batch, export+batch, export+import): timed until the held changes are
  replayed; see bench/replay_copy.py.

After each copy ferry's verify compares the whole source with the whole target (verify_table, every
item with DynamoDB's semantics). Every ferry copy must show 0 differences. The baselines' differences
are reported by kind, and each must be on a key the load wrote (stale, resurrected or missing: what
a copy that replicates nothing loses under live traffic); on the seeded items the load never wrote they
must be type-exact. The emulator's CPU time per copied item is measured for each approach: it shows
where the time goes.

Line 3, from ferry insert-only's runs: read and write units by DynamoDB's rules for the requests ferry
made (each Scan page ceil(bytes / 4 KB) / 2, each PutItem ceil(size / 1 KB), as its segments count
them) and the requests themselves, per million seeded items, against the floor (sum of sizes / 4 KB /
2; sum of ceil(size / 1 KB); one PutItem per item plus ceil(bytes / 1 MB) Scan pages). The emulator's
own ConsumedCapacity (moto: 1 unit per request) is reported beside it, not judged.
"""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import boto3

from bench.common import Row, Settings, Timed, alternate, bench_emulator, fmt, ratio
from bench.lag import ReplicationProcess
from bench.table_source import ITEM_BYTES, LOAD_RATE, LOAD_THREADS, SourceLoad, bench_item, fresh_source
from ferry.clients import AwsTarget, client_config, make_client, table_clients
from ferry.jobs import run_argv
from ferry.spec import BackfillSettings, Spec, parse_spec
from ferry.tables.backfill import SegmentResult, put_units, scan_page_units
from ferry.tables.finalize import finalize_table
from ferry.tables.setup import init_tables
from ferry.tables.verify import TableVerifyReport, verify_table
from ferry.wire import item_size
from ferry_dev.emulator import Emulator, use_dummy_credentials
from ferry_dev.workload import create_workload_table

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
# Every approach of a round copies its own freshly seeded source under the load and is verified whole: at
# 10,000 items one round of the six took 413 s (seeds 26 s, copies 184 s, whole verifies 190 s — the
# export+import target's 9,830 ImportTable differences are each read again), past the line's budget; at
# 8,000 one round fits it.
SIZE, QUICK_SIZE = 8_000, 500
SPLITS = BackfillSettings().splits  # the spec's default
NAIVE_WORKERS = BackfillSettings().write_concurrency  # the naive page's concurrent PutItems
# Far above what the emulator serves: the emulator, not ferry's capacity budget, is the limit.
UNLIMITED_UNITS = 1_000_000
BUDGET, QUICK_BUDGET = 360.0, 50.0  # seconds for the whole line (the first round always runs)
JOB_TIMEOUT = 900.0
TABLE_JOB_MODULE = "glue_jobs.table_backfill"  # the Glue script, run as Glue and ``ferry backfill`` run it
SCAN_PAGE_BYTES = 1024 * 1024
COST_TOLERANCE = 1.05  # line 3: within 5 % of the floor
DRAIN_TIMEOUT = 600.0
COUNTERS = (
    "pages", "scan_requests", "put_requests", "skipped", "throttled",
    "read_units", "write_units", "read_units_by_size", "write_units_by_size",
)  # fmt: skip


# --- cost -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cost:
    """Capacity units and requests of one copy (reads and writes of the data path)."""

    read_units: float
    write_units: float
    requests: int

    def per_million(self, items: int) -> Cost:
        scale = 1_000_000 / items if items else float("nan")
        return Cost(self.read_units * scale, self.write_units * scale, round(self.requests * scale))


def cost_floor(sizes: list[int]) -> Cost:
    """What copying items of these sizes costs at least: an eventually consistent scan reads
    sum / 4 KB / 2 units in ceil(sum / 1 MB) pages; each item is one write of ceil(size / 1 KB) units."""
    total = sum(sizes)
    pages = math.ceil(total / SCAN_PAGE_BYTES)
    return Cost(total / 4096 / 2, float(sum(put_units(s) for s in sizes)), len(sizes) + pages)


class RequestMeter:
    """Counts the requests boto3 clients send (every attempt) and, by DynamoDB's rules, the read
    units of the Scan pages they receive (before the resource layer turns them into Python types)."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.read_units_by_size = 0.0
        self._lock = threading.Lock()

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-send.dynamodb", self._sent)
        client.meta.events.register_first("after-call.dynamodb.Scan", self._scanned)

    def _sent(self, event_name: str = "", **_: Any) -> None:
        with self._lock:
            self.requests[event_name.rsplit(".", 1)[-1]] += 1

    def _scanned(self, parsed: dict[str, Any] | None = None, **_: Any) -> None:
        units = scan_page_units(sum(item_size(i) for i in (parsed or {}).get("Items", [])))
        with self._lock:
            self.read_units_by_size += units


# --- the approaches -------------------------------------------------------------------------


def _resource_table(where: AwsTarget, name: str, meter: RequestMeter, pool: int) -> Any:
    """A boto3 resource Table (its own session: resources are not shared between threads)."""
    resource = boto3.session.Session().resource(
        "dynamodb", region_name=where.region, endpoint_url=where.endpoint_url, config=client_config(pool=pool)
    )
    meter.attach(resource.meta.client)
    return resource.Table(name)


def copy_naive(where: AwsTarget, source: str, target: str, workers: int = NAIVE_WORKERS) -> dict[str, Any]:
    """Sequential Scan pages; each page's items put one PutItem each, concurrently."""
    meter = RequestMeter()
    started = time.monotonic()
    local = threading.local()

    def put(item: dict[str, Any]) -> None:
        if not hasattr(local, "table"):
            local.table = _resource_table(where, target, meter, pool=2)
        local.table.put_item(Item=item)

    table = _resource_table(where, source, meter, pool=2)
    kwargs: dict[str, Any] = {}
    copied = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while True:
            page = table.scan(**kwargs)
            list(pool.map(put, page["Items"]))
            copied += len(page["Items"])
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    seconds = time.monotonic() - started
    return {"seconds": seconds, "steady_seconds": seconds, "items": copied, "meter": meter}


def copy_batch_writer(where: AwsTarget, source: str, target: str, segments: int = SPLITS) -> dict[str, Any]:
    """One thread per parallel-scan segment, each writing its pages through Table.batch_writer()."""
    meter = RequestMeter()
    started = time.monotonic()
    spans: list[tuple[float, float]] = []

    def segment(number: int) -> int:
        src = _resource_table(where, source, meter, pool=2)
        dst = _resource_table(where, target, meter, pool=2)
        began = time.monotonic()
        kwargs: dict[str, Any] = {"Segment": number, "TotalSegments": segments}
        copied = 0
        with dst.batch_writer() as writer:
            while True:
                page = src.scan(**kwargs)
                for item in page["Items"]:
                    writer.put_item(Item=item)
                copied += len(page["Items"])
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        spans.append((began, time.monotonic()))
        return copied

    with ThreadPoolExecutor(max_workers=segments) as pool:
        copied = sum(pool.map(segment, range(segments)))
    ended = time.monotonic()
    steady = max(end for _, end in spans) - min(begin for begin, _ in spans)
    return {"seconds": ended - started, "steady_seconds": steady, "items": copied, "meter": meter}


@dataclass
class JobRun:
    """One run of the Glue script in its own process."""

    wall_seconds: float  # process start to exit
    summary_seconds: float  # process start to the printed summary (the copy is complete)
    returncode: int
    segments: list[SegmentResult] = field(default_factory=list)
    started_at: float = 0.0  # time.monotonic() at the process start
    output: str = ""  # the summary lines (an import's counts, a replay copy's release)

    @property
    def steady_seconds(self) -> float:
        """First segment start to last segment end (the segments' own clocks)."""
        if not self.segments:
            return float("nan")
        return max(s.started_at + s.seconds for s in self.segments) - min(s.started_at for s in self.segments)

    def total(self, name: str) -> float:
        return float(sum(getattr(s, name) for s in self.segments))


def bench_spec(endpoint: str, source: str, target: str, state_table: str, splits: int = SPLITS) -> Spec:
    return parse_spec(
        {
            "region": REGION,
            "endpoint_url": endpoint,
            "state_table": state_table,
            "tables": [{"source": source, "target": target, "protocol": "insert-only"}],
            "backfill": {
                "splits": splits,
                "on_demand_read_units": UNLIMITED_UNITS,
                "on_demand_write_units": UNLIMITED_UNITS,
            },
        }
    )


def run_ferry_job(
    spec: Spec,
    source: str,
    log_path: Path,
    watch: Callable[[int], Callable[[], None]] | None = None,
    on_summary: Callable[[], None] | None = None,
) -> JobRun:
    """``python -m glue_jobs.table_backfill`` with the Glue arguments of ``spec`` (what ``ferry backfill
    --engine local`` and Glue run). ``watch(pid)`` starts observing the process and returns its stop;
    ``on_summary()`` is called when the job prints its summary (the copy is complete, a replay copy released)."""
    argv = [sys.executable, "-m", TABLE_JOB_MODULE, *run_argv(spec, source)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    segments: list[SegmentResult] = []
    summary_at = float("nan")
    started = time.monotonic()
    with open(log_path, "ab") as stderr:
        process = subprocess.Popen(
            argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True
        )
        stop = watch(process.pid) if watch else None
        timer = threading.Timer(JOB_TIMEOUT, lambda: _kill_group(process))
        timer.start()
        try:
            assert process.stdout is not None
            output = []
            for line in process.stdout:
                if line.startswith('{"segments"'):
                    summary_at = time.monotonic()
                    segments = [SegmentResult(**row) for row in json.loads(line)["segments"]]
                    if on_summary:
                        on_summary()
                else:
                    output.append(line)
            returncode = process.wait()
        finally:
            timer.cancel()
            if process.poll() is None:  # interrupted: leave no Spark behind
                _kill_group(process)
            if stop:
                stop()
    wall = time.monotonic() - started
    if returncode != 0 or summary_at != summary_at:  # failed, or no summary (NaN)
        raise RuntimeError(f"the backfill job failed (exit {returncode}); see {log_path}")
    return JobRun(wall, summary_at - started, returncode, segments, started, "".join(output))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (/proc), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0


def _kill_group(process: subprocess.Popen[str]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# --- one measured run of each approach ------------------------------------------------------


def verify_copy(spec: Spec, load: SourceLoad, items: int) -> tuple[TableVerifyReport, dict[str, Any]]:
    """ferry's verify of the whole target against the whole source after a copy made under ``load`` (it
    has stopped): the report, and its differences split by whether the load wrote the key. ``items``: the
    seeded count; those the load never wrote are ``untouched_items``."""
    started = time.monotonic()
    report = verify_table(spec, spec.tables[0], workers=SPLITS)
    untouched = [d for d in report.differences if d.key not in load.touched]
    return report, {
        "differences": len(report.differences),
        "difference_kinds": {kind: n for kind, n in report.counts().items() if n},
        "different_attributes": dict(Counter(a for d in report.differences for a in d.attributes)),
        "differences_untouched": len(untouched),
        "difference_kinds_untouched": dict(Counter(d.kind for d in untouched)),
        "untouched_items": items - load.touched_seeded,
        "verified_items": report.source_items,
        "target_items": report.target_items,
        "verified_segments": f"{SPLITS} of {SPLITS}",
        "verify_seconds": round(time.monotonic() - started, 1),
    }


@dataclass
class Bench:
    """The emulator and what every copy of line 1 needs: a freshly seeded source, the load, the verify."""

    emulator: Emulator
    ddb: Any
    items: int
    workdir: Path
    runs: int = 0

    @property
    def where(self) -> AwsTarget:
        return AwsTarget(REGION, self.emulator.endpoint_url)

    def emulator_cpu(self) -> float:
        return cpu_seconds(self.emulator._process.pid) if self.emulator._process else float("nan")

    def fresh_source(self, approach: str) -> tuple[str, float]:
        """A new source seeded with the bench items (not timed); its name and the seed's seconds."""
        self.runs += 1
        name = f"bench-{approach}-src-{self.runs}"
        started = time.monotonic()
        fresh_source(self.ddb, name, self.items)
        return name, round(time.monotonic() - started, 1)

    def target_of(self, approach: str, *, create: bool = True) -> str:
        name = f"bench-{approach}-dst-{self.runs}"
        if create:
            create_workload_table(self.ddb, name)
        return name

    def load_on(self, source: str) -> SourceLoad:
        """The load of every run (same seed, same rate), on its own client: not started."""
        return SourceLoad(make_client("dynamodb", self.where, pool=LOAD_THREADS), source, self.items)

    def drop(self, *tables: str) -> None:
        for table in tables:
            self.ddb.delete_table(TableName=table)

    def ferry(self, _round: int) -> tuple[float, dict[str, Any]]:
        """Protocol insert-only against the live source: pollers from before the copy, the copy, drain,
        finalize, drain; timed from the job's process start to the last drain."""
        source, seed_seconds = self.fresh_source("insert-only")
        target = self.target_of("insert-only")
        state = f"bench-insert-only-state-{self.runs}"
        spec = bench_spec(self.emulator.endpoint_url, source, target, state)
        init_tables(spec, self.ddb)  # the state table, the source's stream, the backfill phase
        pollers = ReplicationProcess(spec).start()  # not held: insert-only applies every change live
        load = self.load_on(source)
        try:
            emulator_cpu = self.emulator_cpu()
            load.start()
            run = run_ferry_job(spec, source, self.workdir / "ferry-job.log", on_summary=load.finish)
            load.finish()
            drained = pollers.ask("drain", timeout=DRAIN_TIMEOUT)
            finalize_started = time.monotonic()
            finalized = finalize_table(spec, spec.tables[0], table_clients(spec))
            finalize_seconds = time.monotonic() - finalize_started
            final = pollers.ask("drain", timeout=DRAIN_TIMEOUT)
            emulator_cpu = self.emulator_cpu() - emulator_cpu
        finally:
            load.finish()
            own = pollers.stop()
        seconds = float(final["drained_at"]) - run.started_at
        details: dict[str, Any] = {
            "items": int(run.total("written")),
            "seconds": seconds,
            "job_seconds": run.wall_seconds,  # process start to exit
            "summary_seconds": run.summary_seconds,  # process start to the summary (the copy is complete)
            "drain_seconds": float(drained["drained_at"]) - run.started_at - run.summary_seconds,
            "finalize_seconds": finalize_seconds,
            "finalize_waited": finalized.waited_seconds,  # for the handlers' phase caches
            "tombstones_removed": finalized.tombstones_removed,
            "steady_seconds": run.steady_seconds,
            "seed_seconds": seed_seconds,
            "replicated_records": final["table"]["records_applied"],
            "dead_lettered": own.get("dlq_depth"),
            "emulator_cpu_ms_per_item": emulator_cpu / self.items * 1000,
            "checkpoint_writes": int(run.total("pages")),  # one state-table write per page
            **{name: run.total(name) for name in COUNTERS},
            **load.summary(),
        }
        details |= verify_copy(spec, load, self.items)[1]
        self.drop(source, target, state)
        return self.items / seconds, details

    def _boto3(
        self, approach: str, copy: Callable[[AwsTarget, str, str], dict[str, Any]]
    ) -> tuple[float, dict[str, Any]]:
        """A baseline under the load: timed from the copy's start to its end (it replicates nothing)."""
        source, seed_seconds = self.fresh_source(approach)
        target = self.target_of(approach)
        load = self.load_on(source)
        emulator_cpu = self.emulator_cpu()
        load.start()
        try:
            result = copy(self.where, source, target)
        finally:
            load.finish()
        result["emulator_cpu_ms_per_item"] = (self.emulator_cpu() - emulator_cpu) / self.items * 1000
        meter: RequestMeter = result.pop("meter")
        result["requests"] = dict(meter.requests)
        result["read_units_by_size"] = meter.read_units_by_size
        result["seed_seconds"] = seed_seconds
        result |= load.summary()
        spec = bench_spec(self.emulator.endpoint_url, source, target, "bench-backfill-verify")
        result |= verify_copy(spec, load, self.items)[1]
        self.drop(source, target)
        return self.items / result["seconds"], result

    def naive(self, _round: int) -> tuple[float, dict[str, Any]]:
        return self._boto3("naive", copy_naive)

    def batch_writer(self, _round: int) -> tuple[float, dict[str, Any]]:
        return self._boto3("batch-writer", copy_batch_writer)


def alternate_within(
    approaches: dict[str, Callable[[int], tuple[float, dict[str, Any]]]], repeats: int, budget: float
) -> tuple[dict[str, Timed], int]:
    """bench.common.alternate, one round at a time (the same rotation), stopping before a round
    that would not fit in ``budget`` seconds at the pace of the slowest round so far."""
    names = list(approaches)
    merged = {name: Timed() for name in names}
    started, slowest, rounds = time.monotonic(), 0.0, 0
    for round_ in range(repeats):
        if round_ and time.monotonic() - started + slowest > budget:
            break
        began = time.monotonic()
        shift = round_ % len(names)
        order = names[shift:] + names[:shift]
        one = alternate({name: partial(_in_round, approaches[name], round_) for name in order}, 1)
        for name, timed in one.items():
            merged[name].samples += timed.samples
            merged[name].extra += timed.extra
        slowest = max(slowest, time.monotonic() - began)
        rounds += 1
    return merged, rounds


def _in_round(
    approach: Callable[[int], tuple[float, dict[str, Any]]], round_: int, _: int
) -> tuple[float, dict[str, Any]]:
    return approach(round_)


# --- rows -----------------------------------------------------------------------------------


def _median(timed: Timed, key: str) -> float:
    values = [float(e[key]) for e in timed.extra if e.get(key) is not None]
    return statistics.median(values) if values else float("nan")


def _exactness(timed: Timed) -> str:
    worst = max((int(e["differences"]) for e in timed.extra), default=-1)
    verified = min((int(e["verified_items"]) for e in timed.extra), default=0)
    verdict = "type-exact" if worst == 0 else f"{worst:,} items differ"
    return f"{verdict} ({verified:,} items verified)"


# what each kind of verify difference is after a copy that replicates nothing, under the load
LOSS_NAMES = {"different": "stale", "extra": "resurrected", "missing": "missing", "tombstone": "tombstone"}


def loss_under_load(timed: Timed) -> tuple[bool, str]:
    """A baseline's verify under the load: (type-exact on the items the load never wrote, in every run;
    the text). The differences on the keys the load wrote are the copy's loss: counted by kind."""
    if not timed.extra:
        return False, "not measured"
    worst = max(timed.extra, key=lambda e: int(e["differences"]))
    untouched = max(int(e["differences_untouched"]) for e in timed.extra)
    kinds = ", ".join(f"{LOSS_NAMES.get(k, k)} {n:,}" for k, n in sorted(worst["difference_kinds"].items()))
    lost = f"{int(worst['differences']):,} items differ ({kinds})" if worst["differences"] else "0 items differ"
    fewest = min(int(e["untouched_items"]) for e in timed.extra)
    if untouched:
        return False, f"{lost}; FAILS: {untouched:,} differ among the items the load never wrote"
    return True, (
        f"{lost}, all on keys the load wrote ({int(worst['touched_keys']):,}); type-exact on the "
        f"{fewest:,} items it never wrote"
    )


def speed_rows(results: dict[str, Timed], items: int, rounds: int, wanted: int) -> list[Row]:
    ferry, naive, batch = results["ferry"], results["naive"], results["batch_writer"]
    ferry_steady = items / _median(ferry, "steady_seconds")
    batch_steady = items / _median(batch, "steady_seconds")
    e2e_naive, e2e_batch = ratio(ferry.median, naive.median), ratio(ferry.median, batch.median)
    steady = ratio(ferry_steady, batch_steady)
    emulator = ", ".join(
        f"{name} {_median(results[name], 'emulator_cpu_ms_per_item'):.2f}"
        for name in ("ferry", "naive", "batch_writer")
    )
    limit = (
        f"the emulator (one process, one core) is the limit: its CPU per copied item (the load's writes, and "
        f"for ferry their live replication, included) was {emulator} ms; ferry and naive send one PutItem per "
        "item, batch_writer one request per 25"
    )
    rounds_note = f"median of {rounds} alternated round(s)" + (
        f" ({wanted} asked; more do not fit the line's budget at {items:,} items)" if rounds < wanted else ""
    )
    setup = (
        f"{items:,} items of ~{ITEM_BYTES} B, all ten types; every approach copies its own freshly seeded source "
        f"(same items) under the same steady load of {LOAD_RATE:g} writes/s (overwrites, updates of sets, "
        "deletes, inserts; same seed); ferry = protocol insert-only as run against a live table: its pollers "
        f"(own process) applying the load live from before the copy, the Glue script on local Spark, {SPLITS} "
        "splits, one conditional PutItem per item (BatchWriteItem cannot carry the condition insert-only needs; "
        "the replay rows below write BatchWriteItem), then drain, finalize, drain; on-demand ceilings "
        f"{UNLIMITED_UNITS:,} units/s so the emulator, not ferry's budget, is the limit; {rounds_note}"
    )
    finalize = (
        f"finalize {_median(ferry, 'finalize_seconds'):.1f} s of it ({_median(ferry, 'finalize_waited'):.0f} s "
        "waiting for the handlers' phase caches, then the tombstone sweep)"
    )
    baseline_time = (
        "naive and batch_writer = copy start to copy end, the load running throughout: they replicate nothing, "
        "so what the load wrote behind their scan is lost (the verify rows below count it)"
    )
    rows = [
        Row(
            "1",
            "table backfill end to end, items/s (under the load)",
            fmt(ferry.median, "items/s"),
            "naive (Scan + concurrent PutItem per page)",
            fmt(naive.median, "items/s"),
            e2e_naive,
            "≥ 3×",
            None if e2e_naive is None else e2e_naive >= 3.0,
            f"{setup}; ferry end to end = the job's process start (Spark start-up included) until the pollers "
            f"drained after finalize, the target then equal to the source ({finalize}); {baseline_time}; {limit}",
        ),
        Row(
            "1",
            "table backfill end to end, items/s (under the load)",
            fmt(ferry.median, "items/s"),
            f"boto3 batch_writer, {SPLITS} segments in threads",
            fmt(batch.median, "items/s"),
            e2e_batch,
            "",
            None,
            "informative; batch_writer's BatchWriteItem is unconditional (it would overwrite live writes)",
        ),
        Row(
            "1",
            "table backfill steady state, items/s (under the load)",
            fmt(ferry_steady, "items/s"),
            f"boto3 batch_writer, {SPLITS} segments in threads",
            fmt(batch_steady, "items/s"),
            steady,
            "≥ 1×",
            None if steady is None else steady >= 1.0,
            "first segment start to last segment end (ferry: the segments' own timestamps; Spark, JVM and "
            f"worker start-up excluded; batch_writer: first Scan to last write); {limit}",
        ),
    ]
    ferry_exact = _exactness(ferry)
    rows.append(
        Row(
            "1",
            "copy is type-exact (ferry verify, every run)",
            ferry_exact,
            "ferry insert-only",
            target="0 differing items",
            met=ferry_exact.startswith("type-exact"),
            note="ferry's verify of the whole table after the load stopped, finalize and the pollers' last drain: "
            "every item compared with DynamoDB semantics (sets, 38-digit numbers, binaries)",
        )
    )
    for name, label in (("naive", "naive"), ("batch_writer", "boto3 batch_writer")):
        exact, text = loss_under_load(results[name])
        rows.append(
            Row(
                "1",
                "copy under the load (ferry verify of the whole target, every run)",
                ferry_exact,
                label,
                text,
                note="ferry's verify, whole source against whole target after the copy ended and the load "
                "stopped; differences: stale (an older image), resurrected (deleted from the source during the "
                "copy), missing (created in the source behind the scan): the writes a copy that replicates "
                "nothing loses; type-exactness checked on the seeded items the load never wrote (the "
                "differences on keys it wrote dropped, the rest must be 0); the worst run shown"
                + ("" if exact else "; FAILURE: a copy that changes items it was not racing is a failure"),
            )
        )
    return rows


def cost_rows(results: dict[str, Timed], sizes: list[int]) -> tuple[list[Row], dict[str, Any]]:
    items = len(sizes)
    floor = cost_floor(sizes).per_million(items)
    ferry = results["ferry"]
    # the checkpoint after every page is a write to the state table: counted (a small item, one unit)
    checkpoints = _median(ferry, "checkpoint_writes")
    reads = _median(ferry, "read_units_by_size")
    writes = _median(ferry, "write_units_by_size") + checkpoints
    requests = _median(ferry, "scan_requests") + _median(ferry, "put_requests") + checkpoints
    mine = Cost(reads, writes, round(requests)).per_million(items)
    unneeded = _median(ferry, "put_requests") - _median(ferry, "items")
    emulator = Cost(_median(ferry, "read_units"), _median(ferry, "write_units"), 0).per_million(items)
    others: dict[str, Any] = {}
    for name in ("naive", "batch_writer"):
        requests_made = Counter[str]()
        for extra in results[name].extra:
            requests_made.update(extra["requests"])
        runs = max(1, len(results[name].extra))
        others[name] = {
            "read_units_per_million": _median(results[name], "read_units_by_size") * 1_000_000 / items,
            # every item is written once (the emulator never returns UnprocessedItems nor throttles)
            "write_units_per_million": floor.write_units,
            "requests_per_million": {op: round(n / runs * 1_000_000 / items) for op, n in requests_made.items()},
        }
    basis = (
        "by DynamoDB's rules for the requests ferry made (each Scan page ceil(bytes/4 KB)/2, each PutItem "
        f"ceil(size/1 KB)); the emulator reports {fmt(emulator.read_units)} RCU and {fmt(emulator.write_units)} "
        "WCU per million (moto charges 1 unit per request)"
    )
    naive_note = (
        f"naive: {fmt(others['naive']['read_units_per_million'])} RCU, "
        f"batch_writer: {fmt(others['batch_writer']['read_units_per_million'])} RCU per million"
    )

    def row(measure: str, value: float, lowest: float, unit: str, note: str) -> Row:
        lead = ratio(lowest, value)
        return Row(
            "3",
            measure,
            fmt(value, unit),
            "floor",
            fmt(lowest, unit),
            lead,
            "≤ floor + 5 %",
            None if lead is None else value <= lowest * COST_TOLERANCE,
            note,
        )

    rows = [
        row("read units per million items", mine.read_units, floor.read_units, "RCU", f"{basis}; {naive_note}"),
        row(
            "write units per million items",
            mine.write_units,
            floor.write_units,
            "WCU",
            f"{basis}; includes {fmt(checkpoints * 1_000_000 / items)} checkpoint writes per million to the "
            "state table (one per Scan page, 1 WCU each)",
        ),
        row(
            "requests per million items",
            float(mine.requests),
            float(floor.requests),
            "requests",
            f"Scan pages + PutItem calls (every attempt) + checkpoint writes; unneeded writes (retries, "
            "conditional failures): "
            f"{fmt(max(unneeded, 0.0))} per run; batch_writer needs ~25× fewer write requests but cannot "
            "carry the insert-only condition; requests: "
            + "; ".join(
                f"{name} {', '.join(f'{op} {n:,}' for op, n in sorted(o['requests_per_million'].items()))}"
                for name, o in others.items()
            ),
        ),
    ]
    details = {
        "floor_per_million": floor.__dict__,
        "ferry_per_million": mine.__dict__,
        "ferry_emulator_reported_per_million": emulator.__dict__,
        "ferry_unneeded_writes_per_run": unneeded,
        "ferry_checkpoint_writes_per_run": checkpoints,
        "others": others,
    }
    return rows, details


def _replay_run(bench: Bench, path: str, _round: int) -> tuple[float, dict[str, Any]]:
    from bench import replay_copy  # it builds on this module

    return replay_copy.copy(bench, path)


def run(settings: Settings) -> tuple[list[Row], dict[str, Any]]:
    from bench import replay_copy  # it builds on this module

    use_dummy_credentials()
    items = QUICK_SIZE if settings.quick else SIZE
    budget = QUICK_BUDGET if settings.quick else BUDGET
    started = time.monotonic()
    workdir = Path(settings.workdir) / "table_backfill"
    workdir.mkdir(parents=True, exist_ok=True)
    sizes = [item_size(bench_item(i)) for i in range(items)]  # every run seeds these same items
    with Emulator(log_path=str(workdir / "emulator.log"), kind=bench_emulator()) as emulator:
        ddb = make_client("dynamodb", AwsTarget(REGION, emulator.endpoint_url))
        bench = Bench(emulator, ddb, items, workdir)
        approaches: dict[str, Callable[[int], tuple[float, dict[str, Any]]]] = {
            "ferry": bench.ferry,
            "naive": bench.naive,
            "batch_writer": bench.batch_writer,
            **{path: partial(_replay_run, bench, path) for path in replay_copy.PATHS},
        }
        remaining = budget - (time.monotonic() - started)
        results, rounds = alternate_within(approaches, settings.repeats, remaining)
    rows = speed_rows(results, items, rounds, settings.repeats)
    line3, cost_details = cost_rows(results, sizes)
    rounds_note = f"median of {rounds} alternated round(s) of all six approaches" + (
        f" ({settings.repeats} asked; more do not fit the line's budget)" if rounds < settings.repeats else ""
    )
    rows += replay_copy.speed_rows(results, items, rounds_note)
    insert_only = {
        "RCU": cost_details["ferry_per_million"]["read_units"],
        "WCU": cost_details["ferry_per_million"]["write_units"],
    }
    replay_cost, cost_details["replay"] = replay_copy.cost_rows(results, items, insert_only)
    line3 += replay_cost
    seeds = [float(e["seed_seconds"]) for t in results.values() for e in t.extra]
    details = {
        "items": items,
        "item_bytes_mean": sum(sizes) / len(sizes),
        "seed_seconds_per_run": round(statistics.median(seeds), 1),
        "seed_seconds_total": round(sum(seeds), 1),
        "seed_items_per_second": round(items / statistics.median(seeds)) if statistics.median(seeds) else None,
        "rounds": rounds,
        "samples": {name: {"items_per_second": t.samples, "runs": t.extra} for name, t in results.items()},
        "cost": cost_details,
    }
    return rows + line3, details
