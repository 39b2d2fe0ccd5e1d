"""``ferry chaos`` / ``make chaos``: a seeded campaign of concurrency, faults and crashes.

Each seed runs a whole migration (a table and a bucket) on a fresh emulator once per protocol —
insert-only (the consumer runs concurrently with the copy) and replay (the consumer is held until the
copy is released, then catches up) — with:
- a randomized live workload (puts, partial updates, deletes, re-inserts, hot-key bursts; object
  creates, same- and different-size overwrites, deletes, re-creates, multipart objects);
- a fault-injecting proxy between ferry and the emulator (throttling, 500s, connection resets
  before and after the request took effect, latency), the application writing directly;
- crashes, always mid-copy (after a checkpointed page): one Spark task (a Python worker) is
  SIGKILLed, then the rerun's Spark driver, then the backfill is rerun from its checkpoints; the
  live pollers are SIGKILLed mid-batch and restarted — under replay also during the catch-up after
  the release;
- delivery anomalies: duplicated and stale S3 events sent to the events queue.
After drain + finalize + drain, faults are switched off and verify must find zero differences.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ferry.aws import queue_url_or_none
from ferry.clients import AwsTarget, make_client
from ferry.operations import initialize, verify_all
from ferry.spec import parse_spec
from ferry.tables.state import StateStore
from ferry_dev.emulator import DUMMY_CREDENTIALS, Emulator, use_dummy_credentials
from ferry_dev.faults import FaultProxy, FaultRule
from ferry_dev.phases import seed_sources, start_traffic
from ferry_dev.workload import AWKWARD_KEYS, object_key

SOURCE, TARGET, BUCKET_SOURCE, BUCKET_TARGET = "orders", "orders-v2", "media", "media-v2"
MULTIPART = 5 * 1024 * 1024
FAULTED_OPERATIONS = (
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:Scan",
    "dynamodb:Query",
    "dynamodb:BatchGetItem",
    "dynamodbstreams:GetRecords",
    "dynamodbstreams:GetShardIterator",
    "s3:HeadObject",
    "s3:GetObjectTagging",
    "s3:CopyObject",
    "s3:UploadPartCopy",
    "s3:CreateMultipartUpload",
    "s3:CompleteMultipartUpload",
    "s3:DeleteObject",
    "s3:ListObjectsV2",
    "sqs:ReceiveMessage",
    "sqs:DeleteMessageBatch",
    "sqs:SendMessage",
)


@dataclass
class SeedResult:
    seed: int
    protocol: str = "replay"
    operations: int = 0
    faults: dict[str, int] = field(default_factory=dict)  # by kind
    crashes: dict[str, int] = field(default_factory=dict)  # backfill-driver, backfill-task, poller
    anomalies: int = 0
    redone_pages: int = 0  # Scan pages forwarded beyond those the checkpoints account for
    redone_bound: int = 0
    scans_forwarded: int = 0
    pages_checkpointed: int = 0
    seconds: float = 0.0
    differences: int = 0
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.differences == 0 and 0 <= self.redone_pages <= self.redone_bound


def fault_rules(rng: random.Random, intensity: float = 1.0) -> list[FaultRule]:
    rules: list[FaultRule] = []
    for operation in FAULTED_OPERATIONS:
        rules += [
            FaultRule(operation, "throttle", rng.uniform(0.02, 0.08) * intensity),
            FaultRule(operation, "error500", rng.uniform(0.0, 0.03) * intensity),
            FaultRule(operation, "reset_before", rng.uniform(0.0, 0.01) * intensity),
            FaultRule(operation, "reset_after", rng.uniform(0.0, 0.01) * intensity),
            FaultRule(operation, "latency", 0.05, latency_seconds=rng.uniform(0.005, 0.05)),
        ]
    return rules


class _Process:
    """A ferry CLI command in its own process group, so SIGKILL takes Spark's JVM and workers too."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self._out = open(log, "ab")  # noqa: SIM115 - closed in wait/kill
        env = {**os.environ, **DUMMY_CREDENTIALS, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ferry_cli.main", *args],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self._out.close()

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is not None:
                self._out.close()

    def spark_workers(self) -> list[int]:
        """Pids of Spark's forked Python workers under this process. The pyspark daemon puts itself
        in a process group of its own, so they are found through the parent chain instead."""
        parents: dict[int, int] = {}
        commands: dict[int, str] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                commands[int(entry.name)] = (
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])

        def descends(pid: int) -> bool:
            while pid > 1:
                if pid == self.proc.pid:
                    return True
                pid = parents.get(pid, 0)
            return False

        daemons = {pid for pid, cmd in commands.items() if "pyspark.daemon" in cmd and descends(pid)}
        return sorted(pid for pid in daemons if parents.get(pid) in daemons)


class _EventAnomalies:
    """Duplicated and stale S3 events (EventBridge shape) sent straight into the events queue."""

    def __init__(self, sqs: Any, queue_url: str, rng: random.Random, key_space: int, rate: float = 5.0) -> None:
        self.sqs, self.queue_url, self.rng, self.key_space, self.rate = sqs, queue_url, rng, key_space, rate
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(1.0 / self.rate):
            key = (
                self.rng.choice(AWKWARD_KEYS)
                if self.rng.random() < 0.2
                else object_key(self.rng.randrange(self.key_space))
            )
            kind = self.rng.choice(["Object Created", "Object Deleted", "Object Tags Added"])
            body = {
                "source": "aws.s3",
                "detail-type": kind,
                "detail": {"bucket": {"name": BUCKET_SOURCE}, "object": {"key": key}},
            }
            copies = 1 + (self.rng.random() < 0.5)  # duplicated half of the time
            for _ in range(copies):
                try:
                    self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(body))
                    self.sent += 1
                except Exception:
                    pass

    def start(self) -> _EventAnomalies:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _spec_dict(endpoint: str, splits: int, protocol: str) -> dict[str, Any]:
    return {
        "region": "us-east-1",
        "endpoint_url": endpoint,
        "tables": [{"source": SOURCE, "target": TARGET, "protocol": protocol}],
        "backfill": {"splits": splits, "page_size": 10, "write_concurrency": 4},
        "replication": {"batch_size": 25, "max_retries": 50, "phase_cache_seconds": 0.5},
        "buckets": [{"source": BUCKET_SOURCE, "target": BUCKET_TARGET, "protocol": protocol}],
        "s3": {
            "multipart_threshold": MULTIPART,
            "splits": splits,
            "concurrency": 4,
            "max_rounds": 5,
            "max_receive_count": 50,
            "visibility_timeout": 3,
        },
    }


class _SeedRun:
    """One seed's migration, phase by phase (ferry_dev.phases), with the ferry commands in processes
    of their own so they can be killed, and the faults injected between ferry and the emulator."""

    def __init__(
        self, seed: int, protocol: str, splits: int, intensity: float, work: Path, emulator: Emulator, proxy: FaultProxy
    ) -> None:
        self.seed, self.splits, self.intensity, self.work, self.proxy = seed, splits, intensity, work, proxy
        self.protocol = protocol
        self.rng = random.Random(seed)
        self.result = SeedResult(seed, protocol)
        self.crashes: Counter[str] = Counter()
        self.direct = AwsTarget("us-east-1", emulator.endpoint_url)  # the application, not ferry: no faults
        self.ddb = make_client("dynamodb", self.direct)
        self.spec_path = work / "ferry.yaml"
        self.spec_path.write_text(yaml.safe_dump(_spec_dict(proxy.endpoint_url, splits, protocol)), encoding="utf-8")
        self.spec = parse_spec(_spec_dict(proxy.endpoint_url, splits, protocol))
        self.anomalies_arg = ["--anomalies", f"duplicate=0.15,delay=0.1,reorder,redeliver=0.15,seed={seed}"]
        self.unfinished_runs = 0  # killed or failed backfill runs: each may redo one page per segment

    def ferry(self, args: list[str], log_name: str) -> _Process:
        return _Process([*args[:1], "--spec", str(self.spec_path), *args[1:]], self.work / log_name)

    def prepare(self, items: int, objects: int) -> None:
        """Sources with data, ferry's init (without faults), then the faults on."""
        seed_sources(
            self.direct,
            self.spec,
            items=items,
            objects=objects,
            seed=self.seed,
            big_item=self.rng.random() < 0.5,
            multipart_part=MULTIPART,
        )
        initialize(self.spec)
        self.proxy.set_rules(fault_rules(self.rng, self.intensity))

    def start_replication(self) -> _Process:
        return self.ferry(["replicate", *self.anomalies_arg], "replicate.log")

    def crash_pollers(self, pollers: _Process) -> _Process:
        pollers.kill()
        self.crashes["poller"] += 1
        return self.start_replication()

    def wait_for_progress(self, process: _Process, baseline: int, timeout: float = 90.0) -> bool:
        """Until a page beyond ``baseline`` is checkpointed: crashes must land mid-copy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.proc.poll() is None:
            if _pages(self.ddb, self.spec) > baseline:
                return True
            time.sleep(0.05)
        return False

    def backfill_with_crashes(self, pollers: _Process) -> _Process:
        """A Spark task killed mid-copy, the rerun's driver killed mid-copy, the pollers killed in
        between, then reruns until the backfill completes. Returns the pollers now running."""
        backfill = self.ferry(["backfill"], "backfill-1.log")
        if self.wait_for_progress(backfill, 0):
            workers = backfill.spark_workers()
            if workers and backfill.proc.poll() is None:
                try:
                    os.kill(self.rng.choice(workers), signal.SIGKILL)
                    self.crashes["backfill-task"] += 1
                except ProcessLookupError:
                    pass
        pollers = self.crash_pollers(pollers)
        self.unfinished_runs += backfill.wait(timeout=600) != 0
        backfill = self.ferry(["backfill"], "backfill-2.log")
        if self.wait_for_progress(backfill, _pages(self.ddb, self.spec)):
            time.sleep(self.rng.uniform(0.0, 0.4))
        if backfill.proc.poll() is None:
            backfill.kill()
            self.crashes["backfill-driver"] += 1
        self.unfinished_runs += backfill.proc.returncode != 0
        if self.rng.random() < 0.7:
            pollers = self.crash_pollers(pollers)
        for attempt in range(3, 8):  # faults may still fail a run (exit 3)
            if self.ferry(["backfill"], f"backfill-{attempt}.log").wait(timeout=900) == 0:
                break
            self.unfinished_runs += 1
        else:
            self.result.detail = "backfill never completed"
        if self.protocol == "replay":
            pollers = self.crash_during_catch_up(pollers)
        return pollers

    def crash_during_catch_up(self, pollers: _Process) -> _Process:
        """Released: the pollers apply what was held. Kill them once they have committed some of it."""
        store = StateStore(self.ddb, self.spec.state_table)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not store.stream_checkpoints(SOURCE):
            time.sleep(0.05)
        time.sleep(self.rng.uniform(0.0, 0.3))
        return self.crash_pollers(pollers)

    def count_redone_pages(self) -> None:
        """Scan pages forwarded beyond those the checkpoints account for. A run that did not finish may
        redo at most one page per segment; a Scan whose connection was reset after it took effect is
        sent again by the client and counts once more."""
        r = self.result
        r.scans_forwarded, r.pages_checkpointed = _forwarded(self.proxy, "dynamodb:Scan"), _pages(self.ddb, self.spec)
        r.redone_pages = r.scans_forwarded - r.pages_checkpointed
        r.redone_bound = self.splits * self.unfinished_runs + self.proxy.injected().get("dynamodb:Scan:reset_after", 0)

    def finish(self) -> None:
        """Drain, finalize, drain: each retried while faults still fail it."""
        for step in (["replicate", "--drain"], ["finalize"], ["replicate", "--drain"]):
            if not any(self.ferry(step, f"{step[0]}-final.log").wait(900) == 0 for _attempt in range(5)):
                self.result.detail += f"; {' '.join(step)} kept failing"

    def verify(self) -> None:
        """With the faults off: every difference counts."""
        self.result.faults = _by_kind(self.proxy.injected())
        self.proxy.set_rules([])
        reports = verify_all(self.spec, workers=self.splits)
        self.result.differences = sum(len(r.differences) for r in reports)
        if self.result.differences:
            samples = {r.source: {k: v for k, v in r.samples(5).items() if v} for r in reports}
            self.result.detail += f"; differences {samples}"
        (self.work / "verify.json").write_text(json.dumps([r.as_dict() for r in reports], indent=1), encoding="utf-8")


PROTOCOLS = ("insert-only", "replay")


def run_seed(
    seed: int,
    *,
    items: int = 300,
    objects: int = 60,
    splits: int = 3,
    intensity: float = 1.0,
    workdir: Path | None = None,
    protocols: tuple[str, ...] = PROTOCOLS,
    say: Callable[[str], None] = lambda _: None,
    emulator: str | None = None,
) -> list[SeedResult]:
    """One seed, a whole migration per protocol (each on a fresh emulator, the same seeded workload).
    ``emulator``: moto or ministack (default: ``FERRY_EMULATOR``, else ministack)."""
    work = workdir or Path(tempfile.mkdtemp(prefix=f"ferry-chaos-{seed}-"))
    return [
        _run_protocol(seed, protocol, items, objects, splits, intensity, work / protocol, say, emulator)
        for protocol in protocols
    ]


def _run_protocol(
    seed: int,
    protocol: str,
    items: int,
    objects: int,
    splits: int,
    intensity: float,
    work: Path,
    say: Callable[[str], None],
    emulator: str | None = None,
) -> SeedResult:
    started = time.monotonic()
    work.mkdir(parents=True, exist_ok=True)
    use_dummy_credentials()
    with (
        Emulator(log_path=str(work / "emulator.log"), kind=emulator) as emu,
        FaultProxy(emu.endpoint_url, seed=seed) as proxy,
    ):
        run = _SeedRun(seed, protocol, splits, intensity, work, emu, proxy)
        run.prepare(items, objects)
        say(f"seed {seed} ({protocol}): seeded {items} items, {objects} objects; faults on")
        pollers = run.start_replication()
        traffic = start_traffic(
            run.direct, run.spec, items=items, objects=objects, seed=seed, table_rate=25, object_rate=5
        )
        sqs = make_client("sqs", run.direct)
        queue_url = queue_url_or_none(sqs, run.spec.s3.events_queue)
        assert queue_url is not None, "initialize creates the events queue"
        anomalies = _EventAnomalies(sqs, queue_url, random.Random(seed + 3), objects, rate=2).start()
        pollers = run.backfill_with_crashes(pollers)
        run.count_redone_pages()
        traffic.stop()
        anomalies.stop()
        run.result.operations, run.result.anomalies = traffic.total(), anomalies.sent
        pollers.kill()
        run.finish()
        run.verify()
    run.result.crashes = dict(run.crashes)
    run.result.seconds = time.monotonic() - started
    return run.result


def _forwarded(proxy: FaultProxy, operation: str) -> int:
    injected = proxy.injected()
    not_forwarded = sum(injected.get(f"{operation}:{kind}", 0) for kind in ("throttle", "error500", "reset_before"))
    return proxy.requests().get(operation, 0) - not_forwarded


def _pages(ddb: Any, spec: Any) -> int:
    store = StateStore(ddb, spec.state_table)
    return sum(cp.pages for cp in store.list_segments(SOURCE))


def _by_kind(injected: dict[str, int]) -> dict[str, int]:
    kinds: Counter[str] = Counter()
    for name, count in injected.items():
        kinds[name.rsplit(":", 1)[1]] += count
    return dict(kinds)


def run_campaign(seeds: list[int], *, minutes: float, say: Callable[[str], None], **kwargs: Any) -> list[SeedResult]:
    """Run the seeds in order, within ``minutes``: a seed starts only if, at the pace of the slowest seed
    so far, it would end inside the budget (the first always runs)."""
    results: list[SeedResult] = []
    started = time.monotonic()
    deadline = started + minutes * 60
    slowest = 0.0
    for done, seed in enumerate(seeds):
        now = time.monotonic()
        if results and now + slowest > deadline:
            say(f"time budget reached: {done} of {len(seeds)} seeds run in {now - started:.0f}s")
            break
        for last in run_seed(seed, say=say, **kwargs):
            results.append(last)
            say(
                f"seed {seed} ({last.protocol}): {'OK' if last.ok else 'DIVERGED'} ({last.seconds:.0f}s, "
                f"{last.differences} differences)"
            )
        slowest = max(slowest, time.monotonic() - now)
    return results
