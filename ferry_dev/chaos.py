"""``ferry chaos`` / ``make chaos``: a seeded campaign of concurrency, faults and crashes.

Each seed runs a whole migration (a table and a bucket) on a fresh emulator, with:
- a randomized live workload (puts, partial updates, deletes, re-inserts, hot-key bursts; object
  creates, same- and different-size overwrites, deletes, re-creates, multipart objects);
- a fault-injecting proxy between ferry and the emulator (throttling, 500s, connection resets
  before and after the request took effect, latency), the application writing directly;
- crashes, always mid-copy (after a checkpointed page): one Spark task (a Python worker) is
  SIGKILLed, then the rerun's Spark driver, then the backfill is rerun from its checkpoints; the
  live pollers are SIGKILLed mid-batch and restarted;
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

from ferry.clients import AwsTarget, make_client
from ferry.spec import parse_spec
from ferry.tables.state import StateStore
from ferry_dev.emulator import DUMMY_CREDENTIALS, Emulator, use_dummy_credentials
from ferry_dev.faults import FaultProxy, FaultRule
from ferry_dev.workload import (
    AWKWARD_KEYS,
    BucketTraffic,
    TrafficGenerator,
    create_workload_table,
    object_key,
    seed_bucket,
    seed_table,
)

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


def _spec_dict(endpoint: str, splits: int) -> dict[str, Any]:
    return {
        "region": "us-east-1",
        "endpoint_url": endpoint,
        "tables": [{"source": SOURCE, "target": TARGET}],
        "backfill": {"splits": splits, "page_size": 10, "write_concurrency": 4},
        "replication": {"batch_size": 25, "max_retries": 50, "phase_cache_seconds": 0.5},
        "buckets": [{"source": BUCKET_SOURCE, "target": BUCKET_TARGET}],
        "s3": {
            "multipart_threshold": MULTIPART,
            "splits": splits,
            "concurrency": 4,
            "max_rounds": 5,
            "max_receive_count": 50,
            "visibility_timeout": 3,
        },
    }


def run_seed(
    seed: int,
    *,
    items: int = 300,
    objects: int = 60,
    splits: int = 3,
    intensity: float = 1.0,
    workdir: Path | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> SeedResult:
    from ferry.operations import initialize, verify_all

    rng = random.Random(seed)
    result = SeedResult(seed)
    crashes: Counter[str] = Counter()
    started = time.monotonic()
    work = workdir or Path(tempfile.mkdtemp(prefix=f"ferry-chaos-{seed}-"))
    work.mkdir(parents=True, exist_ok=True)
    use_dummy_credentials()
    with Emulator(log_path=str(work / "emulator.log")) as emu, FaultProxy(emu.endpoint_url, seed=seed) as proxy:
        direct = AwsTarget("us-east-1", emu.endpoint_url)  # the application, not ferry: no faults
        ddb, s3, sqs = make_client("dynamodb", direct), make_client("s3", direct), make_client("sqs", direct)
        spec_path = work / "ferry.yaml"
        spec_path.write_text(yaml.safe_dump(_spec_dict(proxy.endpoint_url, splits)), encoding="utf-8")
        spec = parse_spec(_spec_dict(proxy.endpoint_url, splits))

        create_workload_table(ddb, SOURCE)
        seed_table(ddb, SOURCE, items, seed=seed, big_item=rng.random() < 0.5)
        s3.create_bucket(Bucket=BUCKET_SOURCE)
        seed_bucket(s3, BUCKET_SOURCE, objects, seed=seed, multipart_part=MULTIPART)
        initialize(spec)
        queue_url = sqs.get_queue_url(QueueName=spec.s3.events_queue)["QueueUrl"]
        say(f"seed {seed}: seeded {items} items, {objects} objects; faults on")
        proxy.set_rules(fault_rules(rng, intensity))

        anomalies_arg = ["--anomalies", f"duplicate=0.15,delay=0.1,reorder,redeliver=0.15,seed={seed}"]
        pollers = _Process(["replicate", "--spec", str(spec_path), *anomalies_arg], work / "replicate.log")
        traffic = TrafficGenerator(ddb, SOURCE, key_space=items, seed=seed + 1, rate=25).start()
        object_traffic = BucketTraffic(s3, BUCKET_SOURCE, key_space=objects, seed=seed + 2, rate=5).start()
        anomalies = _EventAnomalies(sqs, queue_url, random.Random(seed + 3), objects, rate=2).start()

        def crash_pollers() -> None:
            nonlocal pollers
            pollers.kill()
            crashes["poller"] += 1
            pollers = _Process(["replicate", "--spec", str(spec_path), *anomalies_arg], work / "replicate.log")

        unfinished_runs = 0  # killed or failed backfill runs: each may redo one page per segment

        def wait_for_progress(process: _Process, baseline: int, timeout: float = 90.0) -> bool:
            """Until a page beyond ``baseline`` is checkpointed: crashes must land mid-copy."""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and process.proc.poll() is None:
                if _pages(ddb, spec) > baseline:
                    return True
                time.sleep(0.05)
            return False

        # 1. one Spark task (a Python worker) is killed mid-copy, after the first checkpointed page
        backfill = _Process(["backfill", "--spec", str(spec_path)], work / "backfill-1.log")
        if wait_for_progress(backfill, 0):
            workers = backfill.spark_workers()
            if workers and backfill.proc.poll() is None:
                try:
                    os.kill(rng.choice(workers), signal.SIGKILL)
                    crashes["backfill-task"] += 1
                except ProcessLookupError:
                    pass
        crash_pollers()
        unfinished_runs += backfill.wait(timeout=600) != 0
        # 2. the rerun's driver is killed mid-copy, at a random moment after progress of its own
        backfill = _Process(["backfill", "--spec", str(spec_path)], work / "backfill-2.log")
        if wait_for_progress(backfill, _pages(ddb, spec)):
            time.sleep(rng.uniform(0.0, 0.4))
        if backfill.proc.poll() is None:
            backfill.kill()
            crashes["backfill-driver"] += 1
        unfinished_runs += backfill.proc.returncode != 0
        if rng.random() < 0.7:
            crash_pollers()
        # 3. reruns until the backfill completes (faults may still fail a run: exit 3)
        for attempt in range(3, 8):
            backfill = _Process(["backfill", "--spec", str(spec_path)], work / f"backfill-{attempt}.log")
            if backfill.wait(timeout=900) == 0:
                break
            unfinished_runs += 1
        else:
            result.detail = "backfill never completed"
        # Re-done work: Scan pages forwarded beyond those the checkpoints account for. A run that
        # did not finish may redo at most one page per segment; a Scan whose connection was reset
        # after it took effect is sent again by the client and counts once more.
        result.scans_forwarded, result.pages_checkpointed = _forwarded(proxy, "dynamodb:Scan"), _pages(ddb, spec)
        result.redone_pages = result.scans_forwarded - result.pages_checkpointed
        result.redone_bound = splits * unfinished_runs + proxy.injected().get("dynamodb:Scan:reset_after", 0)

        stats = traffic.stop()
        object_stats = object_traffic.stop()
        anomalies.stop()
        result.operations = sum(stats.operations.values()) + sum(object_stats.operations.values())
        result.anomalies = anomalies.sent
        pollers.kill()
        for step in (["replicate", "--drain"], ["finalize"], ["replicate", "--drain"]):
            for _attempt in range(5):
                if (
                    _Process([*step[:1], "--spec", str(spec_path), *step[1:]], work / f"{step[0]}-final.log").wait(900)
                    == 0
                ):
                    break
            else:
                result.detail += f"; {' '.join(step)} kept failing"
        result.faults = _by_kind(proxy.injected())
        proxy.set_rules([])
        reports = verify_all(spec, workers=splits)
        result.differences = sum(len(r.differences) for r in reports)
        if result.differences:
            samples = {r.source: {k: v for k, v in r.samples(5).items() if v} for r in reports}
            result.detail += f"; differences {samples}"
        (work / "verify.json").write_text(json.dumps([r.as_dict() for r in reports], indent=1), encoding="utf-8")
    result.crashes = dict(crashes)
    result.seconds = time.monotonic() - started
    return result


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
    results: list[SeedResult] = []
    deadline = time.monotonic() + minutes * 60
    for seed in seeds:
        if results and time.monotonic() > deadline:
            say(f"time budget reached: {len(results)} of {len(seeds)} seeds run")
            break
        results.append(run_seed(seed, say=say, **kwargs))
        last = results[-1]
        say(f"seed {seed}: {'OK' if last.ok else 'DIVERGED'} ({last.seconds:.0f}s, {last.differences} differences)")
    return results
