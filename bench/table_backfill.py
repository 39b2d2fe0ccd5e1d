"""Lines 1 and 3: the table backfill on the embedded emulator, ferry against the usual ways, and
what ferry's copy costs in capacity units and requests against the floor.

One source of ~1 KB items holding all ten attribute types (S, N with 38 digits, B, SS, NS, BS,
one level of M and L, BOOL, NULL), seeded with BatchWriteItem on a fresh emulator. Each approach
copies it into its own fresh target (same key schema, on demand), alternately, round after round:

- ferry (protocol insert-only): the real Glue script glue_jobs/table_backfill.py on local Spark with
  the spec's default splits (8), in its own process, writing one conditional PutItem per item
  (docs/adr/0001): BatchWriteItem cannot carry the condition insert-only needs. The
  on-demand ceilings of the spec are set far above what the emulator serves, so the emulator, not
  ferry's capacity budget, is the limit. End to end: process start to exit (interpreter, JVM and
  Spark start-up included). Steady state: items / (last segment end - first segment start), from
  the segments' own timestamps (Spark and worker start-up excluded).
- naive: a sequential Scan with boto3's resource API (Table.scan pages), each page's put_item
  calls concurrent in a thread pool, page after page.
- batch_writer: Table.scan with Segment/TotalSegments per segment (ferry's segment count), one
  thread per segment, each writing through Table.batch_writer(). Steady state: from the first
  segment's first Scan to the last segment's end.
- ferry replay, three paths (scan+batch, export+batch, export+import): each copies its own freshly
  seeded source under a steady write load and is timed until the held changes are replayed; see
  bench/replay_copy.py.

After each copy ferry's verify compares source and target (0 differences = type-exact): ferry's
target whole (verify_table), the baselines' on 2 of the 8 segments (verify_segment; see
BASELINE_VERIFY_SEGMENTS). The emulator's CPU time per copied item is measured for each approach:
it shows where the time goes.

Line 3, from ferry's runs: read and write units by DynamoDB's rules for the requests ferry made
(each Scan page ceil(bytes / 4 KB) / 2, each PutItem ceil(size / 1 KB), as its segments count them)
and the requests themselves, per million items, against the floor (sum of sizes / 4 KB / 2;
sum of ceil(size / 1 KB); one PutItem per item plus ceil(bytes / 1 MB) Scan pages). The emulator's
own ConsumedCapacity (moto: 1 unit per request) is reported beside it, not judged.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import boto3

from bench.common import Row, Settings, Timed, alternate, fmt, ratio
from ferry.clients import AwsTarget, client_config, make_client
from ferry.jobs import run_argv
from ferry.spec import BackfillSettings, Spec, TableMapping, parse_spec
from ferry.tables.backfill import SegmentResult, put_units, scan_page_units
from ferry.tables.schema import describe_shape
from ferry.tables.setup import init_tables
from ferry.tables.verify import verify_segment, verify_table
from ferry.wire import Item, item_size
from ferry_dev.emulator import Emulator, use_dummy_credentials
from ferry_dev.workload import HASH_KEY, RANGE_KEY, create_workload_table

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
SOURCE = "bench-backfill-source"
# 10,000 (not 20,000) since issue 11: six approaches a round (the three replay paths each copy their own
# freshly seeded source and are verified whole) fit the line's budget at this size, one round.
SIZE, QUICK_SIZE = 10_000, 500
ITEM_BYTES = 1_000  # by DynamoDB's sizing rules: one write unit per item
SPLITS = BackfillSettings().splits  # the spec's default
NAIVE_WORKERS = BackfillSettings().write_concurrency  # the naive page's concurrent PutItems
# Far above what the emulator serves: the emulator, not ferry's capacity budget, is the limit.
UNLIMITED_UNITS = 1_000_000
BUDGET, QUICK_BUDGET = 360.0, 50.0  # seconds for the whole line (the first round always runs)
JOB_TIMEOUT = 900.0
TABLE_JOB_MODULE = "glue_jobs.table_backfill"  # the Glue script, run as Glue and ``ferry backfill`` run it
SCAN_PAGE_BYTES = 1024 * 1024
COST_TOLERANCE = 1.05  # line 3: within 5 % of the floor
# ferry's copy is verified whole; the baselines' on the first segments of SPLITS (a type change is
# systematic, so a quarter of the items shows it): a whole verify scans both tables at ~1.2 ms of
# emulator CPU per item and side, and two more do not fit the line's budget beside the four whole ones.
BASELINE_VERIFY_SEGMENTS = 2
COUNTERS = (
    "pages", "scan_requests", "put_requests", "skipped", "throttled",
    "read_units", "write_units", "read_units_by_size", "write_units_by_size",
)  # fmt: skip
THIRTY_EIGHT_DIGITS = "12345678901234567890123456789012345678"


# --- data -----------------------------------------------------------------------------------


def bench_item(index: int, size: int = ITEM_BYTES) -> Item:
    """Item ``index`` (reproducible) with all ten types (38-digit numbers in N and NS, unicode, binaries
    in B, BS and inside M and L), one level of M and L (the emulator is far slower on deep nesting and
    on many small values), padded with a string to ``size`` bytes by DynamoDB's sizing rules."""
    rng = random.Random(index)
    item: Item = {
        HASH_KEY: {"S": f"item#{index:07d}"},
        RANGE_KEY: {"N": str(index % 10)},
        "exact": {"N": THIRTY_EIGHT_DIGITS},
        "blob": {"B": rng.randbytes(16)},
        "tags": {"SS": ["naïve 日本語", f"t{index % 13}"]},
        "scores": {"NS": [THIRTY_EIGHT_DIGITS, "-0.0000000000000000000000000000000000001"]},
        "chunks": {"BS": [rng.randbytes(8), rng.randbytes(9)]},
        "active": {"BOOL": index % 2 == 0},
        "nothing": {"NULL": True},
        "profile": {"M": {"city": {"S": "Zürich 🚢"}, "avatar": {"B": rng.randbytes(12)}}},
        "history": {"L": [{"N": "9.9E+125"}, {"B": rng.randbytes(6)}]},
    }
    item["padding"] = {"S": ""}
    item["padding"] = {"S": "p" * max(0, size - item_size(item))}
    return item


def seed(ddb: Any, table: str, items: Iterable[Item], threads: int = 2) -> list[int]:
    """BatchWriteItem (25 items a request) into ``table``; the items' sizes, in order."""
    batches: list[list[Item]] = [[]]
    sizes: list[int] = []
    for item in items:
        if len(batches[-1]) == 25:
            batches.append([])
        batches[-1].append(item)
        sizes.append(item_size(item))

    def write(batch: list[Item]) -> None:
        pending: dict[str, Any] = {table: [{"PutRequest": {"Item": item}} for item in batch]}
        while pending:
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(write, [b for b in batches if b]))
    return sizes


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


@dataclass
class Bench:
    """The emulator, the seeded source and what every copy needs."""

    emulator: Emulator
    ddb: Any
    items: int
    sizes: list[int]
    workdir: Path
    runs: int = 0

    @property
    def where(self) -> AwsTarget:
        return AwsTarget(REGION, self.emulator.endpoint_url)

    def emulator_cpu(self) -> float:
        return cpu_seconds(self.emulator._process.pid) if self.emulator._process else float("nan")

    def fresh_target(self, approach: str) -> str:
        self.runs += 1
        name = f"bench-backfill-{approach}-{self.runs}"
        create_workload_table(self.ddb, name)
        return name

    def verify_and_drop(self, target: str, segments: int = SPLITS) -> dict[str, Any]:
        """ferry's verify, source against ``target``: the whole table (verify_table) or its first
        ``segments`` of SPLITS (verify_segment); the target is deleted afterwards."""
        started = time.monotonic()
        if segments >= SPLITS:
            spec = bench_spec(self.emulator.endpoint_url, SOURCE, target, "bench-backfill-verify")
            report = verify_table(spec, TableMapping(SOURCE, target), workers=SPLITS)
            differences, verified = len(report.differences), report.source_items
        else:
            shape = describe_shape(self.ddb, SOURCE)
            with ThreadPoolExecutor(max_workers=segments) as pool:
                parts = list(pool.map(lambda s: verify_segment(self.ddb, shape, target, SPLITS, s), range(segments)))
            differences, verified = sum(len(p.differences) for p in parts), sum(p.source_items for p in parts)
        self.ddb.delete_table(TableName=target)
        return {
            "differences": differences,
            "verified_items": verified,
            "verified_segments": f"{min(segments, SPLITS)} of {SPLITS}",
            "verify_seconds": round(time.monotonic() - started, 1),
        }

    def ferry(self, _round: int) -> tuple[float, dict[str, Any]]:
        target = self.fresh_target("ferry")
        state = f"bench-backfill-state-{self.runs}"
        spec = bench_spec(self.emulator.endpoint_url, SOURCE, target, state)
        init_tables(spec, self.ddb)  # the state table, the source's stream, the backfill phase
        emulator_cpu = self.emulator_cpu()
        run = run_ferry_job(spec, SOURCE, self.workdir / "ferry-job.log")
        emulator_cpu = self.emulator_cpu() - emulator_cpu
        details: dict[str, Any] = {
            "items": int(run.total("written")),
            "seconds": run.wall_seconds,
            "summary_seconds": run.summary_seconds,
            "steady_seconds": run.steady_seconds,
            "emulator_cpu_ms_per_item": emulator_cpu / self.items * 1000,
            "checkpoint_writes": int(run.total("pages")),  # one state-table write per page
            **{name: run.total(name) for name in COUNTERS},
        }
        details |= self.verify_and_drop(target)
        self.ddb.delete_table(TableName=state)
        return self.items / run.wall_seconds, details

    def _boto3(
        self, approach: str, copy: Callable[[AwsTarget, str, str], dict[str, Any]]
    ) -> tuple[float, dict[str, Any]]:
        target = self.fresh_target(approach)
        emulator_cpu = self.emulator_cpu()
        result = copy(self.where, SOURCE, target)
        result["emulator_cpu_ms_per_item"] = (self.emulator_cpu() - emulator_cpu) / self.items * 1000
        meter: RequestMeter = result.pop("meter")
        result["requests"] = dict(meter.requests)
        result["read_units_by_size"] = meter.read_units_by_size
        result |= self.verify_and_drop(target, BASELINE_VERIFY_SEGMENTS)
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
        f"the emulator (one process, one core) is the limit: its CPU per copied item was {emulator} ms; "
        "ferry and naive send one PutItem per item, batch_writer one request per 25"
    )
    rounds_note = f"median of {rounds} alternated round(s)" + (
        f" ({wanted} asked; more do not fit the line's budget at {items:,} items)" if rounds < wanted else ""
    )
    setup = (
        f"{items:,} items of ~{ITEM_BYTES} B, all ten types; ferry = the Glue script on local Spark, "
        f"{SPLITS} splits, protocol insert-only (one conditional PutItem per item: BatchWriteItem cannot carry "
        f"the condition insert-only needs; the replay rows below write BatchWriteItem); on-demand ceilings {UNLIMITED_UNITS:,} units/s so the "
        f"emulator, not ferry's budget, is the limit; {rounds_note}"
    )
    rows = [
        Row(
            "1",
            "table backfill end to end, items/s",
            fmt(ferry.median, "items/s"),
            "naive (Scan + concurrent PutItem per page)",
            fmt(naive.median, "items/s"),
            e2e_naive,
            "≥ 3×",
            None if e2e_naive is None else e2e_naive >= 3.0,
            f"{setup}; ferry end to end = process start to exit, Spark start-up included; {limit}",
        ),
        Row(
            "1",
            "table backfill end to end, items/s",
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
            "table backfill steady state, items/s",
            fmt(ferry_steady, "items/s"),
            f"boto3 batch_writer, {SPLITS} segments in threads",
            fmt(batch_steady, "items/s"),
            steady,
            "≥ 1×",
            None if steady is None else steady >= 1.0,
            "first segment start to last segment end (ferry: the segments' own timestamps; Spark, JVM and "
            f"worker start-up excluded); {limit}",
        ),
    ]
    ferry_exact = _exactness(ferry)
    rows.append(
        Row(
            "1",
            "copy is type-exact (ferry verify, every run)",
            ferry_exact,
            target="0 differing items",
            met=ferry_exact.startswith("type-exact"),
            note="ferry's verify, whole table after every copy: every item compared with DynamoDB semantics "
            "(sets, 38-digit numbers, binaries)",
        )
    )
    for name, label in (("naive", "naive"), ("batch_writer", "boto3 batch_writer")):
        exact = _exactness(results[name])
        rows.append(
            Row(
                "1",
                "copy is type-exact (ferry verify, every run)",
                ferry_exact,
                label,
                exact,
                note=f"ferry's verify on segments 0-{BASELINE_VERIFY_SEGMENTS - 1} of {SPLITS} of every copy"
                + ("" if exact.startswith("type-exact") else "; FAILURE: a fast copy that changes items is a failure"),
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


def _replay_run(replay: Any, path: str, _round: int) -> tuple[float, dict[str, Any]]:
    result: tuple[float, dict[str, Any]] = replay.copy(path)
    return result


def run(settings: Settings) -> tuple[list[Row], dict[str, Any]]:
    from bench import replay_copy  # it builds on this module

    use_dummy_credentials()
    items = QUICK_SIZE if settings.quick else SIZE
    budget = QUICK_BUDGET if settings.quick else BUDGET
    started = time.monotonic()
    workdir = Path(settings.workdir) / "table_backfill"
    workdir.mkdir(parents=True, exist_ok=True)
    with Emulator(log_path=str(workdir / "emulator.log")) as emulator:
        ddb = make_client("dynamodb", AwsTarget(REGION, emulator.endpoint_url))
        create_workload_table(ddb, SOURCE)
        t0 = time.monotonic()
        sizes = seed(ddb, SOURCE, (bench_item(i) for i in range(items)))
        seed_seconds = time.monotonic() - t0
        bench = Bench(emulator, ddb, items, sizes, workdir)
        replay = replay_copy.ReplayBench(emulator, ddb, items, workdir)
        approaches: dict[str, Callable[[int], tuple[float, dict[str, Any]]]] = {
            "ferry": bench.ferry,
            "naive": bench.naive,
            "batch_writer": bench.batch_writer,
            **{path: partial(_replay_run, replay, path) for path in replay_copy.PATHS},
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
    details = {
        "items": items,
        "item_bytes_mean": sum(sizes) / len(sizes),
        "seed_seconds": round(seed_seconds, 1),
        "seed_items_per_second": round(items / seed_seconds),
        "rounds": rounds,
        "samples": {name: {"items_per_second": t.samples, "runs": t.extra} for name, t in results.items()},
        "cost": cost_details,
    }
    return rows + line3, details
