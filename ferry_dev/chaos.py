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

Then, under replay, the switch (docs/adr/0009): ``ferry reverse`` and live writes on BOTH sides (each side's
keys its own, plus keys the other side created once they have arrived there, handed over so that no key is
written on both sides at once), forward and reverse pollers in processes of their own through the faults
(resets after a write took effect raised to 10 %: changes asked twice), each killed at least once; drained
both ways until quiet, both directions must verify equal with no conflict, and every user write must have
made exactly one replicated write (counted on the streams).
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

from ferry.aws import queue_url_or_none, stream_arn_of
from ferry.backlog import stream_records
from ferry.clients import AwsTarget, make_client
from ferry.operations import initialize, verify_all
from ferry.spec import parse_spec
from ferry.switch import pairs, prepare_reverse
from ferry.tables.state import StateStore
from ferry.twoway import TwoWayStore, reverse_spec
from ferry.wire import decode_stream_image, items_equal, key_text
from ferry_dev.emulator import DUMMY_CREDENTIALS, Emulator, use_dummy_credentials
from ferry_dev.faults import FaultProxy, FaultRule
from ferry_dev.phases import seed_sources, start_traffic
from ferry_dev.workload import AWKWARD_KEYS, PacedWorkload, make_item, object_key

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

# The switch phase raises one fault: a write that took effect but whose answer was lost, so the client sends it
# again. The judges of both directions must give the same verdict to the same change asked twice.
SWITCH_RESETS = tuple(
    FaultRule(operation, "reset_after", 0.1)
    for operation in (
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "dynamodb:UpdateItem",
        "s3:CopyObject",
        "s3:DeleteObject",
    )
)


@dataclass
class TwoWayResult:
    """The switch phase of a seed (replay only): both directions live at once."""

    writes: int = 0  # the users' table writes on either side during the phase (each one stream record)
    object_writes: int = 0  # the users' object writes on either side
    handed_over: int = 0  # keys (items and objects) one side created and the other then wrote
    records: int = 0  # stream records of both tables during the phase that changed the item
    noop_records: int = 0  # stream records whose old and new image are equal (the emulators emit them; AWS does not)
    conflicts: int = 0
    differences: int = 0  # forward verify (old -> new) plus reverse verify (new -> old)
    unexplained: int = 0  # keys that differ and that no open conflict names: a silent divergence
    drain_rounds: int = 0  # forward then reverse drained, until a round applied nothing (0: never quiet)
    crashes: dict[str, int] = field(default_factory=dict)  # poller-forward, poller-reverse
    seconds: float = 0.0
    detail: str = ""

    @property
    def ok(self) -> bool:
        quiet = self.drain_rounds > 0
        return quiet and self.differences == 0 and self.conflicts == 0 and self.records == 2 * self.writes


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
    two_way: TwoWayResult | None = None  # replay only: the switch phase after the migration

    @property
    def ok(self) -> bool:
        switch_ok = self.two_way is None or self.two_way.ok
        return self.differences == 0 and 0 <= self.redone_pages <= self.redone_bound and switch_ok


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

    def __init__(self, args: list[str], log: Path, module: str = "ferry_cli.main") -> None:
        self.log = log
        self._out = open(log, "ab")  # noqa: SIM115 - closed in wait/kill
        env = {**os.environ, **DUMMY_CREDENTIALS, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
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


OLD, NEW = "old", "new"


@dataclass
class _Owned:
    """A key of the two-sided traffic: which side may write it now ("" while it is handed over), and the
    state it was last written to (a table item's version, an object's ETag; "" when deleted)."""

    owner: str
    state: str
    heir: str = ""


class _TwoSided(PacedWorkload):
    """The application during a rolling switch: some instances write the old side, some the new. Each side
    creates keys of its own (disjoint ranges), updates, deletes and re-creates them; now and then it takes
    over a key the other side created — the other side stops writing it, and this side writes it only once
    the key has arrived here in its last state. So no key is ever written on both sides at once (no conflict
    is expected), and every write changes what it writes (each is one stream record / one event)."""

    def __init__(self, names: dict[str, str], *, seed: int, rate: float) -> None:
        super().__init__(seed=seed, rate=rate)
        self.names = names
        self.keys: dict[str, _Owned] = {}
        self.created = Counter[str]()
        self.handed_over = 0
        self.per_key = Counter[str]()  # the users' writes of each key

    # the side's store ----------------------------------------------------------------------------
    def create(self, side: str, key: str) -> str:
        raise NotImplementedError

    def change(self, side: str, key: str) -> str:
        raise NotImplementedError

    def delete(self, side: str, key: str) -> None:
        raise NotImplementedError

    def current(self, side: str, key: str) -> str:
        """The key's state on ``side`` ("" when absent)."""
        raise NotImplementedError

    def new_key(self, side: str, number: int) -> str:
        raise NotImplementedError

    # ---------------------------------------------------------------------------------------------
    def writes(self) -> int:
        return sum(n for op, n in self.stats.operations.items() if op.split("-", 1)[1] in _WRITES)

    def step(self) -> None:
        rng = self.rng
        side = rng.choice((OLD, NEW))
        other = NEW if side == OLD else OLD
        self._adopt(side)
        live = sorted(k for k, o in self.keys.items() if o.owner == side and o.state)
        gone = sorted(k for k, o in self.keys.items() if o.owner == side and not o.state)
        theirs = sorted(k for k, o in self.keys.items() if o.owner == other and o.state)
        roll = rng.random()
        if roll < 0.3 or not live:
            key = self.new_key(side, self.created[side])
            self.created[side] += 1
            self.keys[key] = _Owned(side, self.create(side, key))
            op = "create"
        elif roll < 0.65:
            key = rng.choice(live)
            self.keys[key].state = self.change(side, key)
            op = "update"
        elif roll < 0.78:
            key = rng.choice(live)
            self.delete(side, key)
            self.keys[key].state = ""
            op = "delete"
        elif roll < 0.88 and gone:
            key = rng.choice(gone)
            self.keys[key].state = self.create(side, key)
            op = "recreate"
        elif theirs:
            key = rng.choice(theirs)
            self.keys[key].owner, self.keys[key].heir = "", side  # the other side stops writing it
            op = "take-over"
        else:
            op = "idle"
        self.stats.operations[f"{side}-{op}"] += 1
        if op in _WRITES:
            self.per_key[key] += 1

    def _adopt(self, side: str) -> None:
        """Keys handed to ``side`` that have arrived there in their last state become its own."""
        for key, owned in sorted(self.keys.items()):
            if owned.heir == side and self.current(side, key) == owned.state:
                owned.owner, owned.heir = side, ""
                self.handed_over += 1


_WRITES = ("create", "update", "delete", "recreate")


class _TwoSidedTable(_TwoSided):
    """Items of the workload table's schema; every write sets a version no write set before."""

    def __init__(self, ddb: Any, names: dict[str, str], *, seed: int, rate: float) -> None:
        super().__init__(names, seed=seed, rate=rate)
        self.ddb = ddb
        self.version = 0

    def new_key(self, side: str, number: int) -> str:
        return f"switch#{side}#{number:05d}"

    def _next(self) -> str:
        self.version += 1
        return str(self.version)

    @staticmethod
    def key_of(key: str) -> dict[str, Any]:
        return {"pk": {"S": key}, "sk": {"N": "0"}}

    def create(self, side: str, key: str) -> str:
        version = self._next()
        item = {**make_item(self.rng, self.version, pad=100), **self.key_of(key), "version": {"N": version}}
        self.ddb.put_item(TableName=self.names[side], Item=item)
        return version

    def change(self, side: str, key: str) -> str:
        version = self._next()
        self.ddb.update_item(
            TableName=self.names[side],
            Key=self.key_of(key),
            UpdateExpression="SET version = :v, #n = :n REMOVE padding",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#n": "name"},
            ExpressionAttributeValues={":v": {"N": version}, ":n": {"S": f"{side} {version}"}},
        )
        return version

    def delete(self, side: str, key: str) -> None:
        self.ddb.delete_item(TableName=self.names[side], Key=self.key_of(key))

    def current(self, side: str, key: str) -> str:
        item = self.ddb.get_item(TableName=self.names[side], Key=self.key_of(key), ConsistentRead=True).get("Item")
        return item["version"]["N"] if item else ""


class _TwoSidedBucket(_TwoSided):
    """Objects with content headers, metadata and tags; every write a new body (a new ETag)."""

    def __init__(self, s3: Any, names: dict[str, str], *, seed: int, rate: float) -> None:
        super().__init__(names, seed=seed, rate=rate)
        self.s3 = s3

    def new_key(self, side: str, number: int) -> str:
        return f"switch/{side}/{number:04d} a+b.bin"

    def create(self, side: str, key: str) -> str:
        extra: dict[str, Any] = {"Metadata": {"side": side}, "ContentType": "application/json"}
        if self.rng.random() < 0.4:
            extra["Tagging"] = f"side={side}&n={self.rng.randint(0, 9)}"
        body = f"{side} {time.time_ns()} {self.rng.random()}".encode() * self.rng.randint(1, 40)
        return str(self.s3.put_object(Bucket=self.names[side], Key=key, Body=body, **extra)["ETag"])

    def change(self, side: str, key: str) -> str:
        return self.create(side, key)

    def delete(self, side: str, key: str) -> None:
        self.s3.delete_object(Bucket=self.names[side], Key=key)

    def current(self, side: str, key: str) -> str:
        try:
            return str(self.s3.head_object(Bucket=self.names[side], Key=key)["ETag"])
        except Exception as exc:
            if "404" in str(exc) or "Not Found" in str(exc):
                return ""
            raise


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

    # the switch (replay only) ------------------------------------------------------------------
    def start_switch_replication(self, direction: str) -> _Process:
        """One direction's pollers of the switch phase: ``ferry replicate [--reverse]`` (FERRY_CHAOS_DEBUG=1:
        through this module instead, logging every record's outcome)."""
        log = self.work / f"replicate-{direction}.log"
        if os.environ.get("FERRY_CHAOS_DEBUG"):
            args = ["--spec", str(self.spec_path), f"--{direction}", *self.anomalies_arg]
            return _Process(args, log, DEBUG_POLLERS)
        reverse = ["--reverse"] if direction == "reverse" else []
        return self.ferry(["replicate", *reverse, *self.anomalies_arg], log.name)

    def two_way(self, seconds: float, table_rate: float, object_rate: float) -> TwoWayResult:
        """ferry reverse, then ``seconds`` of writes on both sides with both directions' pollers running (and
        killed) through the faults (:data:`SWITCH_RESETS` first); drained both ways until quiet; verified both ways with the faults off."""
        started = time.monotonic()
        result = TwoWayResult()
        crashes: Counter[str] = Counter()
        streams = make_client("dynamodbstreams", self.direct)
        old_before = _stream_changes(self.ddb, streams, SOURCE)
        prepare_reverse(self.spec)
        self.proxy.set_rules([*SWITCH_RESETS, *fault_rules(self.rng, self.intensity)])
        forward, backward = self.start_switch_replication("forward"), self.start_switch_replication("reverse")
        tables = _TwoSidedTable(self.ddb, {OLD: SOURCE, NEW: TARGET}, seed=self.seed + 5, rate=table_rate).start()
        s3 = make_client("s3", self.direct)
        names = {OLD: BUCKET_SOURCE, NEW: BUCKET_TARGET}
        objects = _TwoSidedBucket(s3, names, seed=self.seed + 6, rate=object_rate).start()
        kills = sorted(
            [(self.rng.uniform(0.2, 0.5) * seconds, "forward"), (self.rng.uniform(0.4, 0.8) * seconds, "reverse")]
        )
        for at, direction in kills:
            time.sleep(max(0.0, started + at - time.monotonic()))
            if direction == "forward":
                forward.kill()
                forward = self.start_switch_replication("forward")
            else:
                backward.kill()
                backward = self.start_switch_replication("reverse")
            crashes[f"poller-{direction}"] += 1
        time.sleep(max(0.0, started + seconds - time.monotonic()))
        tables.stop()
        objects.stop()
        forward.kill()
        backward.kill()
        result.drain_rounds = _settle(self.spec)
        if not result.drain_rounds:
            result.detail = "still replicating after the drain rounds: an echo storm; "
        self.proxy.set_rules([])
        result.writes, result.object_writes = tables.writes(), objects.writes()
        result.handed_over = tables.handed_over + objects.handed_over
        reports = [
            *verify_all(self.spec, workers=self.splits),
            *verify_all(reverse_spec(self.spec), workers=self.splits),
        ]
        result.differences = sum(len(r.differences) for r in reports)
        if result.differences:
            samples = {r.source: {k: v for k, v in r.samples(5).items() if v} for r in reports}
            result.detail += f"differences {samples}; "
        store = TwoWayStore(self.ddb, self.spec.state_table)
        conflicts = [c for kind, a, b in pairs(self.spec) for c in store.conflicts(kind, a, b)]
        result.conflicts = len(conflicts)
        named = {c.key for c in conflicts}
        result.unexplained = len({d.key for r in reports for d in r.differences} - named)
        if conflicts:
            keys = {c.key for c in conflicts if c.kind == "table"}
            _write_key_records(self.work / "switch-conflicts.json", self.ddb, streams, keys)
            result.detail += "conflicts " + ", ".join(
                f"{c.kind} {c.key} ({c.source} -> {c.destination})" for c in conflicts
            )
        old_after, new_after = _stream_changes(self.ddb, streams, SOURCE), _stream_changes(self.ddb, streams, TARGET)
        result.records = old_after[0] - old_before[0] + new_after[0]
        result.noop_records = old_after[1] - old_before[1] + new_after[1]
        if result.records != 2 * result.writes:
            per_key = _changes_per_key(self.ddb, streams)
            odd = {key for key, n in tables.per_key.items() if per_key.get(key_text(tables.key_of(key)), 0) != 2 * n}
            odd_texts = {key_text(tables.key_of(key)) for key in odd}
            _write_key_records(self.work / "switch-records.json", self.ddb, streams, odd_texts)
            result.detail += f"records other than 2 per user write on {sorted(odd)}; "
        result.crashes = dict(crashes)
        result.seconds = time.monotonic() - started
        return result


DEBUG_POLLERS = "ferry_dev.chaos"  # python -m ferry_dev.chaos --spec F --forward|--reverse [--anomalies A]


def _settle(spec: Any, rounds: int = 8) -> int:
    """Drain forward, then reverse, in turn until a round applies nothing (the echoes included): how many
    rounds that took (0: still replicating after ``rounds``)."""
    from ferry_dev.replication import LocalReplication

    forward, backward = LocalReplication(spec), LocalReplication(spec, reverse=True)
    for round_ in range(rounds):
        before = forward.applied() + backward.applied()
        forward.drain(300)
        backward.drain(300)
        if forward.applied() + backward.applied() == before:
            return round_ + 1
    return 0


def _changes_per_key(ddb: Any, streams: Any) -> Counter[str]:
    """Both tables' stream records that changed the item, per key (its key text)."""
    out: Counter[str] = Counter()
    for table in (SOURCE, TARGET):
        for record in _stream_records(ddb, streams, table):
            if not _unchanged(record):
                out[key_text(decode_stream_image(record["dynamodb"]["Keys"]))] += 1
    return out


def _unchanged(record: dict[str, Any]) -> bool:
    """A MODIFY whose old and new images are equal (the emulators emit one for a no-op write; AWS does not)."""
    images = record["dynamodb"]
    return (
        record["eventName"] == "MODIFY"
        and "OldImage" in images
        and "NewImage" in images
        and items_equal(decode_stream_image(images["OldImage"]), decode_stream_image(images["NewImage"]))
    )


def _write_key_records(path: Path, ddb: Any, streams: Any, keys: set[str]) -> None:
    """For each table key (its key text), both tables' stream records of it in order (sequence number, event,
    the old and new image's version): the sequence a judge's mistake is read from."""
    out: dict[str, list[dict[str, Any]]] = {key: [] for key in keys}
    for table in (SOURCE, TARGET):
        for record in _stream_records(ddb, streams, table):
            change = record["dynamodb"]
            text = key_text(decode_stream_image(change["Keys"]))
            if text in out:
                out[text].append(
                    {
                        "table": table,
                        "seq": change["SequenceNumber"],
                        "at": str(change.get("ApproximateCreationDateTime", "")),
                        "event": record["eventName"],
                        "old": change.get("OldImage", {}).get("version", {}).get("N"),
                        "new": change.get("NewImage", {}).get("version", {}).get("N"),
                    }
                )
    path.write_text(json.dumps(out, indent=1), encoding="utf-8")


def _stream_records(ddb: Any, streams: Any, table: str) -> list[dict[str, Any]]:
    return stream_records(streams, stream_arn_of(ddb, table))


def _stream_changes(ddb: Any, streams: Any, table: str) -> tuple[int, int]:
    """The table's stream records: (those that changed the item, those whose old and new images are equal)."""
    changed = unchanged = 0
    for record in _stream_records(ddb, streams, table):
        same = _unchanged(record)
        unchanged += same
        changed += not same
    return changed, unchanged


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
    two_way: bool = True,
    two_way_seconds: float = 20.0,
) -> list[SeedResult]:
    """One seed, a whole migration per protocol (each on a fresh emulator, the same seeded workload).
    ``emulator``: moto or ministack (default: ``FERRY_EMULATOR``, else ministack). ``two_way``: after the
    replay migration, the switch phase (``SeedResult.two_way``) with ``two_way_seconds`` of writes."""
    work = workdir or Path(tempfile.mkdtemp(prefix=f"ferry-chaos-{seed}-"))
    return [
        _run_protocol(
            seed, protocol, items, objects, splits, intensity, work / protocol, say, emulator, two_way, two_way_seconds
        )
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
    two_way: bool = True,
    two_way_seconds: float = 20.0,
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
        if two_way and protocol == "replay" and run.result.differences == 0:
            say(f"seed {seed} ({protocol}): migrated; the switch: ferry reverse, writes on both sides")
            switch = run.result.two_way = run.two_way(two_way_seconds, table_rate=12, object_rate=4)
            if not switch.ok:
                run.result.detail += (
                    f"; the switch: {switch.differences} differences, {switch.conflicts} conflicts, "
                    f"{switch.records} stream records for {switch.writes} writes ({switch.detail})"
                )
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


def _run_pollers(argv: list[str]) -> None:
    """``python -m ferry_dev.chaos --spec F --forward|--reverse [--anomalies A]``: one direction's pollers until
    killed, as ``ferry replicate [--reverse]`` runs them, logging every record's outcome (a debugging aid)."""
    import argparse
    import logging

    from ferry_dev.anomalies import DeliveryAnomalies
    from ferry_dev.replication import LocalReplication

    parser = argparse.ArgumentParser(prog="python -m ferry_dev.chaos")
    parser.add_argument("--spec", required=True)
    parser.add_argument("--anomalies", default="")
    direction = parser.add_mutually_exclusive_group(required=True)
    direction.add_argument("--forward", action="store_true")
    direction.add_argument("--reverse", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(threadName)s %(levelname)s %(name)s %(message)s")
    for name in ("ferry.tables.replicate", "ferry.buckets"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    anomalies = DeliveryAnomalies.parse(args.anomalies) if args.anomalies else None
    spec = parse_spec(yaml.safe_load(Path(args.spec).read_text(encoding="utf-8")))
    LocalReplication(spec, reverse=args.reverse, anomalies=anomalies).start()
    threading.Event().wait()


if __name__ == "__main__":
    _run_pollers(sys.argv[1:])
