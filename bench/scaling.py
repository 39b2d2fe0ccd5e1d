"""Line 7: how ferry's table backfill scales — time and peak memory at growing sizes.

Each size is seeded fresh (BatchWriteItem) into its own source table on one embedded emulator and
copied by the real Glue script (glue_jobs/table_backfill.py, local Spark, the spec's default 8
splits) in a fresh process, so nothing of a previous run stays in memory. A sampling thread walks
that process's tree every 200 ms through /proc (the Python driver, Spark's JVM, its Python workers)
and sums VmRSS: the peak of that sum is the row. It also keeps each process's CPU time, so ferry's
own work per item is measured beside the wall time; the emulator's CPU time is measured too.

Items are flat (~1 KB: keys and a string): the emulator copies them fastest, and the line is about
growth, not types (line 1 covers those).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import Row, Settings, bench_emulator, fmt, ratio
from bench.table_backfill import (
    REGION,
    SPLITS,
    bench_spec,
    cpu_seconds,
    run_ferry_job,
)
from bench.table_source import seed
from ferry.clients import AwsTarget, make_client
from ferry.tables.setup import init_tables
from ferry.wire import Item
from ferry_dev.emulator import Emulator, use_dummy_credentials
from ferry_dev.workload import HASH_KEY, RANGE_KEY, create_workload_table

# The issue asks for 10k, 40k and 160k items. The emulator spends ~2.5 ms of its one core per copied
# item (one conditional PutItem each: moto's per-request cost), so those 210,000 items take ~10
# minutes, over three times the line's budget of 3 minutes. The same 1 : 4 : 16 progression, at sizes
# that fit (each size also pays a fresh interpreter, JVM and Spark start-up of ~6 s):
ASKED_SIZES = (10_000, 40_000, 160_000)
SIZES = (2_000, 8_000, 32_000)
QUICK_SIZES = (64, 256, 1_024)  # 1 : 4 : 16 too, small: the quick run has 3 minutes for every line
ITEM_BYTES = 1_000
SAMPLE_SECONDS = 0.2
TIME_RULE = 0.8  # steady items/s at the largest size ≥ 0.8 × at the middle one (the smallest is start-up bound)
MEMORY_RULE = 1.25  # peak RSS at the largest size ≤ 1.25 × at the smallest


def flat_item(index: int, size: int = ITEM_BYTES) -> Item:
    key = f"item#{index:07d}"
    used = len(HASH_KEY) + len(key) + len(RANGE_KEY) + 2 + len("padding")
    return {HASH_KEY: {"S": key}, RANGE_KEY: {"N": str(index % 10)}, "padding": {"S": "p" * (size - used)}}


# --- the process tree -----------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's list), [] once it is gone."""
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(c) for c in f.read().split()]
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return found


def tree(root: int) -> list[int]:
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += children(pid)
    return pids


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (VmRSS), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


class TreeSampler:
    """Samples a process tree every ``interval`` seconds: the peak of its summed RSS, and each
    process's last seen CPU time (so the tree's CPU survives processes that end before it)."""

    def __init__(self, interval: float = SAMPLE_SECONDS) -> None:
        self.interval = interval
        self.peak_rss = 0
        self.peak_processes = 0
        self.samples = 0
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self, root: int) -> None:
        pids = tree(root)
        total = sum(rss_bytes(pid) for pid in pids)
        for pid in pids:
            self.cpu[pid] = max(self.cpu.get(pid, 0.0), cpu_seconds(pid))
        if total > self.peak_rss:
            self.peak_rss, self.peak_processes = total, len(pids)
        self.samples += 1

    def start(self, root: int) -> Callable[[], None]:
        def loop() -> None:
            while not self._stop.is_set():
                self.sample(root)
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=loop, name="tree-sampler", daemon=True)
        self._thread.start()
        return self.stop

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu.values())


# --- one size -------------------------------------------------------------------------------


def measure_size(emulator: Emulator, ddb: Any, items: int, workdir: Path) -> dict[str, Any]:
    source, target, state = f"bench-scale-{items}", f"bench-scale-{items}-target", f"bench-scale-{items}-state"
    create_workload_table(ddb, source)
    t0 = time.monotonic()
    seed(ddb, source, (flat_item(i) for i in range(items)))
    seed_seconds = time.monotonic() - t0
    create_workload_table(ddb, target)
    spec = bench_spec(emulator.endpoint_url, source, target, state)
    init_tables(spec, ddb)
    sampler = TreeSampler()
    emulator_pid = emulator._process.pid if emulator._process else 0
    emulator_cpu = cpu_seconds(emulator_pid)
    run = run_ferry_job(spec, source, workdir / f"ferry-job-{items}.log", watch=sampler.start)
    emulator_cpu = cpu_seconds(emulator_pid) - emulator_cpu
    for table in (source, target, state):  # keep the emulator's memory (and its scans) small
        ddb.delete_table(TableName=table)
    written = int(run.total("written"))
    if written != items:
        raise RuntimeError(f"the backfill of {items:,} items wrote {written:,}")
    return {
        "items": items,
        "seed_seconds": round(seed_seconds, 1),
        "seconds": run.wall_seconds,
        "steady_seconds": run.steady_seconds,
        "items_per_second": items / run.wall_seconds,
        "steady_items_per_second": items / run.steady_seconds,
        "peak_rss_bytes": sampler.peak_rss,
        "peak_rss_processes": sampler.peak_processes,
        "rss_samples": sampler.samples,
        "ferry_cpu_seconds": sampler.cpu_seconds,
        "ferry_cpu_ms_per_item": sampler.cpu_seconds / items * 1000,
        "emulator_cpu_seconds": emulator_cpu,
        "emulator_cpu_ms_per_item": emulator_cpu / items * 1000,
        "pages": run.total("pages"),
    }


def _mb(value: float) -> str:
    return fmt(value / 1024 / 1024, "MB")


def marginal_ms_per_item(smaller: dict[str, Any], larger: dict[str, Any], key: str = "ferry_cpu_seconds") -> float:
    """What each item beyond the smaller run added (the constant start-up cancels out)."""
    return (larger[key] - smaller[key]) / (larger["items"] - smaller["items"]) * 1000


def rows_for(results: list[dict[str, Any]]) -> list[Row]:
    small, middle, large = results[0], results[len(results) // 2], results[-1]
    label_s, label_m, label_l = f"{small['items']:,}", f"{middle['items']:,}", f"{large['items']:,}"
    speed = ratio(large["steady_items_per_second"], middle["steady_items_per_second"])
    memory = ratio(small["peak_rss_bytes"], large["peak_rss_bytes"])
    cpu_low, cpu_high = marginal_ms_per_item(small, middle), marginal_ms_per_item(middle, large)
    sizes = " / ".join(f"{r['items']:,}" for r in results)
    asked = " / ".join(f"{n:,}" for n in ASKED_SIZES)
    times = ", ".join(
        f"{r['items']:,}: {r['seconds']:.0f} s end to end / {r['steady_items_per_second']:,.0f} items/s steady, "
        f"emulator {r['emulator_cpu_ms_per_item']:.2f} ms CPU per item"
        for r in results
    )
    return [
        Row(
            "7",
            f"backfill steady items/s at {label_l} items",
            fmt(large["steady_items_per_second"], "items/s"),
            f"ferry at {label_m} items",
            fmt(middle["steady_items_per_second"], "items/s"),
            speed,
            f"≥ {TIME_RULE}× (time linear in size)",
            None if speed is None else speed >= TIME_RULE,
            f"steady = first segment start to last segment end (Spark start-up, a constant, excluded); {times}; "
            f"sizes {sizes}: the asked {asked} do not fit the line's budget at the emulator's speed "
            "(~2.5 ms of its CPU per copied item)",
        ),
        Row(
            "7",
            f"ferry's CPU per added item, {label_m} → {label_l}",
            fmt(cpu_high, "ms", 2),
            f"ferry, {label_s} → {label_m}",
            fmt(cpu_low, "ms", 2),
            ratio(cpu_low, cpu_high),
            "",
            None,
            "informative (start-up CPU varies by ~0.5 s, too much for a verdict at small sizes): CPU time of the "
            "backfill's process tree (driver, JVM, Python workers), the difference between two sizes per item "
            "between them, so the constant start-up cancels out; the emulator's time per item is in the row above",
        ),
        Row(
            "7",
            f"peak RSS of the backfill process tree at {label_l} items",
            _mb(large["peak_rss_bytes"]),
            f"ferry at {label_s} items",
            _mb(small["peak_rss_bytes"]),
            memory,
            f"≤ {MEMORY_RULE}× the smallest's (memory flat)",
            None if memory is None else memory >= 1 / MEMORY_RULE,
            "sum of VmRSS over the tree (driver, JVM, Python workers), sampled every 200 ms; "
            + ", ".join(f"{r['items']:,}: {_mb(r['peak_rss_bytes'])}" for r in results),
        ),
    ]


def run(settings: Settings) -> tuple[list[Row], dict[str, Any]]:
    use_dummy_credentials()
    sizes = QUICK_SIZES if settings.quick else SIZES
    workdir = Path(settings.workdir) / "scaling"
    workdir.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    with Emulator(log_path=str(workdir / "emulator.log"), kind=bench_emulator()) as emulator:
        ddb = make_client("dynamodb", AwsTarget(REGION, emulator.endpoint_url))
        for items in sizes:
            results.append(measure_size(emulator, ddb, items, workdir))
    details = {"splits": SPLITS, "item_bytes": ITEM_BYTES, "sizes": results}
    return rows_for(results), details
