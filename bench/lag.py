"""Line 6: live lag — seconds from a source write to the target reflecting it, at a steady write rate,
for a table and a bucket, through the local pollers (``ferry replicate``'s LocalReplication: the
Lambda-like stream and SQS pollers calling the real handlers).

A fresh emulator; the source table (a stream of NEW_AND_OLD_IMAGES) and bucket, their targets, the
state table and the events queue are created by ferry's own ``initialize(spec)``; the pollers start
before the first write, in a process of their own as ``ferry replicate`` runs them (sharing this
harness's interpreter, they measured 5-10x the lag: the writers and the watcher held the lock the
single-shard stream poller needs for each record it applies). Writers then put, update and delete ~1 KB items and put and delete objects at
a steady rate. The lag is measured independently of the pollers: a watcher reads the target every
50 ms (consistent BatchGetItem of the pending keys' version attribute; a listing of the target
bucket's ETags) and records, for each write, the first read that shows it — from the source write's
completion to the end of that read, so never less than the truth. A key is not written again while
its previous write is pending, so no write hides another. The pollers' own statistics (apply time
minus the record's creation time / the message's SentTimestamp) are reported beside it.

During the migration's backfill phase a table delete is replicated as a tombstone: the watcher
counts an absent item or a tombstone as a reflected delete.
"""

from __future__ import annotations

import json
import queue
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import Row, Settings, bench_emulator, fmt
from ferry.clients import AwsTarget, make_client
from ferry.spec import Spec, parse_spec, spec_to_dict
from ferry.tables.protocol import TOMBSTONE_ATTRIBUTE, TOMBSTONE_VALUE
from ferry_dev.emulator import Emulator, use_dummy_credentials
from ferry_dev.hold import ReleaseGate
from ferry_dev.phases import seed_sources
from ferry_dev.stats import percentile
from ferry_dev.workload import make_item, make_key

if TYPE_CHECKING:
    from ferry_dev.replication import LocalReplication

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
SOURCE_TABLE, TARGET_TABLE = "lag-orders", "lag-orders-v2"
SOURCE_BUCKET, TARGET_BUCKET = "lag-media", "lag-media-v2"
TABLE_KEYS = 400
BUCKET_KEYS = 100
WATCH_INTERVAL = 0.05  # the watcher reads the target every 50 ms
P99_TARGET = 2.0
WRITER_THREADS = 4  # writes in flight at once per writer, so the rate holds when the emulator is slow


@dataclass(frozen=True)
class LagPlan:
    seconds: float  # of steady traffic
    table_rate: float  # writes/s
    bucket_rate: float  # object writes/s
    settle_timeout: float  # after the traffic, how long a pending write may still take to show


def plan_for(settings: Settings) -> LagPlan:
    if settings.quick:
        return LagPlan(seconds=6.0, table_rate=20.0, bucket_rate=5.0, settle_timeout=15.0)
    return LagPlan(seconds=45.0, table_rate=20.0, bucket_rate=5.0, settle_timeout=30.0)


# --------------------------------------------------------------------------- writes and their lags


@dataclass
class Write:
    """One source write the watcher waits to see on the target."""

    kind: str  # "table" | "bucket"
    key: str  # table: the pk value; bucket: the object key
    operation: str  # put | update | delete
    expect: str | None  # table: the version written; bucket: the ETag written; None: deleted
    done_at: float  # time.monotonic() when the source write returned
    seen_at: float | None = None

    @property
    def lag(self) -> float | None:
        return None if self.seen_at is None else self.seen_at - self.done_at


class Ledger:
    """The writes, and which keys have one pending (a key is not written again until it shows)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.writes: list[Write] = []
        self._pending: dict[tuple[str, str], Write | None] = {}  # None: reserved, being written

    def reserve(self, kind: str, key: str) -> bool:
        """Claim ``key`` for one write; False when a write of it is already pending."""
        with self._lock:
            if (kind, key) in self._pending:
                return False
            self._pending[(kind, key)] = None
            return True

    def add(self, write: Write) -> None:
        with self._lock:
            self.writes.append(write)
            self._pending[(write.kind, write.key)] = write

    def release(self, kind: str, key: str) -> None:
        """A reserved write that failed: nothing to wait for."""
        with self._lock:
            if self._pending.get((kind, key)) is None:
                self._pending.pop((kind, key), None)

    def pending(self, kind: str) -> list[Write]:
        with self._lock:
            return [w for (k, _), w in self._pending.items() if k == kind and w is not None]

    def seen(self, write: Write, at: float) -> None:
        with self._lock:
            if write.seen_at is None:
                write.seen_at = at
                self._pending.pop((write.kind, write.key), None)

    def outstanding(self) -> int:
        with self._lock:
            return len(self._pending)


def table_reflects(write: Write, item: dict[str, Any] | None) -> bool:
    """Whether a target item (None: absent) shows ``write``: its version, or (a delete) no item or a tombstone."""
    if write.expect is None:
        return item is None or item.get(TOMBSTONE_ATTRIBUTE) == TOMBSTONE_VALUE
    if item is None or item.get(TOMBSTONE_ATTRIBUTE) == TOMBSTONE_VALUE:
        return False
    return item.get("version") == {"N": write.expect}


def bucket_reflects(write: Write, listed_etag: str | None) -> bool:
    """Whether the target's listed ETag of the key (None: absent) shows ``write``."""
    if write.expect is None:
        return listed_etag is None
    return listed_etag == write.expect


def lag_summary(writes: list[Write]) -> dict[str, Any]:
    lags = [w.lag for w in writes if w.lag is not None]
    return {
        "writes": len(writes),
        "reflected": len(lags),
        "never_reflected": len(writes) - len(lags),
        "p50": percentile(lags, 50),
        "p90": percentile(lags, 90),
        "p99": percentile(lags, 99),
        "max": max(lags) if lags else None,
        "by_operation": {
            op: len([w for w in writes if w.operation == op]) for op in sorted({w.operation for w in writes})
        },
    }


# --------------------------------------------------------------------------- writers and the watcher


class Writer(threading.Thread):
    """Starts a write ``rate`` times a second on a fixed schedule, each on a small pool of threads, so
    a slow answer from the emulator delays that write and not the rate. A write is planned (key,
    operation, version) under a lock, made outside it, and recorded when it returns."""

    kind = ""

    def __init__(self, ledger: Ledger, rate: float, stop: threading.Event, seed: int, keys: int) -> None:
        super().__init__(name=f"lag-{self.kind}-writer", daemon=True)
        self.ledger = ledger
        self.rate = rate
        self.stop_event = stop
        self.keys = keys
        self.rng = random.Random(seed)
        self.exists: set[int] = set()
        self.version = 0
        self.errors: list[str] = []
        self.late = 0  # writes started more than one interval behind schedule (the pool was busy)
        self._lock = threading.Lock()

    def key_of(self, index: int) -> str:
        raise NotImplementedError

    def write(self, index: int, version: int, operation: str) -> str | None:
        """Make the source write; returns what the target must show (None: the key deleted)."""
        raise NotImplementedError

    def choose(self, index: int) -> str:
        raise NotImplementedError

    def plan(self) -> tuple[int, int, str] | None:
        with self._lock:
            for _ in range(100):
                index = self.rng.randrange(self.keys)
                if self.ledger.reserve(self.kind, self.key_of(index)):
                    break
            else:
                return None
            self.version += 1
            operation = self.choose(index)
            if operation == "delete":
                self.exists.discard(index)
            else:
                self.exists.add(index)
            return index, self.version, operation

    def one(self) -> None:
        planned = self.plan()
        if planned is None:
            return
        index, version, operation = planned
        key = self.key_of(index)
        try:
            expect = self.write(index, version, operation)
        except Exception as exc:
            self.ledger.release(self.kind, key)
            self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            return
        self.ledger.add(Write(self.kind, key, operation, expect, time.monotonic()))

    def run(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        with ThreadPoolExecutor(max_workers=WRITER_THREADS, thread_name_prefix=self.name) as pool:
            while not self.stop_event.is_set():
                if time.monotonic() - next_at > interval:
                    self.late += 1
                pool.submit(self.one)
                next_at += interval
                self.stop_event.wait(max(0.0, next_at - time.monotonic()))


class TableWriter(Writer):
    kind = "table"

    def __init__(self, ddb: Any, ledger: Ledger, rate: float, stop: threading.Event, seed: int = 61) -> None:
        super().__init__(ledger, rate, stop, seed, TABLE_KEYS)
        self.ddb = ddb

    def key_of(self, index: int) -> str:
        return str(make_key(index)["pk"]["S"])

    def choose(self, index: int) -> str:
        roll = self.rng.random()
        if index not in self.exists or roll < 0.45:
            return "put"
        return "update" if roll < 0.8 else "delete"

    def write(self, index: int, version: int, operation: str) -> str | None:
        if operation == "put":
            item = make_item(random.Random(version), index, version=version)
            self.ddb.put_item(TableName=SOURCE_TABLE, Item=item)
            return str(version)
        if operation == "update":
            self.ddb.update_item(
                TableName=SOURCE_TABLE,
                Key=make_key(index),
                UpdateExpression="SET #v = :v, #n = :n",
                ExpressionAttributeNames={"#v": "version", "#n": "name"},
                ExpressionAttributeValues={":v": {"N": str(version)}, ":n": {"S": f"updated {version}"}},
            )
            return str(version)
        self.ddb.delete_item(TableName=SOURCE_TABLE, Key=make_key(index))
        return None


def object_key(index: int) -> str:
    return f"lag/{index % 10}/object {index:03d}+.bin"


class BucketWriter(Writer):
    kind = "bucket"

    def __init__(self, s3: Any, ledger: Ledger, rate: float, stop: threading.Event, seed: int = 67) -> None:
        super().__init__(ledger, rate, stop, seed, BUCKET_KEYS)
        self.s3 = s3

    def key_of(self, index: int) -> str:
        return object_key(index)

    def choose(self, index: int) -> str:
        if index not in self.exists:
            return "create"
        return "overwrite" if self.rng.random() < 0.8 else "delete"

    def write(self, index: int, version: int, operation: str) -> str | None:
        key = object_key(index)
        if operation == "delete":
            self.s3.delete_object(Bucket=SOURCE_BUCKET, Key=key)
            return None
        rng = random.Random(version)
        body = f"version {version}\n".encode() + rng.randbytes(rng.randint(512, 4096))
        answer = self.s3.put_object(
            Bucket=SOURCE_BUCKET,
            Key=key,
            Body=body,
            ContentType="application/octet-stream",
            Metadata={"version": str(version)},
            Tagging=f"version={version}",
        )
        return str(answer["ETag"])


class Watcher(threading.Thread):
    """Reads the target every WATCH_INTERVAL and marks each pending write that shows."""

    def __init__(self, ddb: Any, s3: Any, ledger: Ledger, stop: threading.Event) -> None:
        super().__init__(name="lag-watcher", daemon=True)
        self.ddb = ddb
        self.s3 = s3
        self.ledger = ledger
        self.stop_event = stop
        self.reads = 0
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                self.watch_table()
                self.watch_bucket()
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            self.stop_event.wait(max(0.0, WATCH_INTERVAL - (time.monotonic() - started)))

    def watch_table(self) -> None:
        pending = self.ledger.pending("table")
        for start in range(0, len(pending), 100):
            chunk = pending[start : start + 100]
            keys = [make_key(int(w.key.partition("#")[2])) for w in chunk]
            request: dict[str, Any] = {
                TARGET_TABLE: {
                    "Keys": keys,
                    "ConsistentRead": True,
                    "ProjectionExpression": "#pk, #sk, #v, #t",
                    "ExpressionAttributeNames": {"#pk": "pk", "#sk": "sk", "#v": "version", "#t": TOMBSTONE_ATTRIBUTE},
                }
            }
            items: dict[str, dict[str, Any]] = {}
            while request:
                answer = self.ddb.batch_get_item(RequestItems=request)
                self.reads += 1
                for item in answer.get("Responses", {}).get(TARGET_TABLE, []):
                    items[item["pk"]["S"]] = item
                request = answer.get("UnprocessedKeys") or {}
            now = time.monotonic()
            for write in chunk:
                if table_reflects(write, items.get(write.key)):
                    self.ledger.seen(write, now)

    def watch_bucket(self) -> None:
        pending = self.ledger.pending("bucket")
        if not pending:
            return
        etags: dict[str, str] = {}
        kwargs: dict[str, Any] = {"Bucket": TARGET_BUCKET, "Prefix": "lag/"}
        while True:
            page = self.s3.list_objects_v2(**kwargs)
            self.reads += 1
            etags.update({o["Key"]: str(o["ETag"]) for o in page.get("Contents", [])})
            if not page.get("IsTruncated"):
                break
            kwargs["ContinuationToken"] = page["NextContinuationToken"]
        now = time.monotonic()
        for write in pending:
            if bucket_reflects(write, etags.get(write.key)):
                self.ledger.seen(write, now)


# --------------------------------------------------------------------------- the run


def lag_spec(endpoint: str) -> Spec:
    return parse_spec(
        {
            "region": REGION,
            "endpoint_url": endpoint,
            "tables": [{"source": SOURCE_TABLE, "target": TARGET_TABLE, "protocol": "insert-only"}],
            "buckets": [{"source": SOURCE_BUCKET, "target": TARGET_BUCKET, "protocol": "insert-only"}],
        }
    )


def _poller_stats(replication: Any) -> dict[str, Any]:
    table_lags = [lag for p in replication.stream_pollers for lag in p.stats.lags]
    bucket_lags = [lag for p in replication.bucket_pollers for lag in p.stats.lags]
    return {
        "table": {
            "records_applied": sum(p.stats.applied for p in replication.stream_pollers),
            "batches": sum(p.stats.batches for p in replication.stream_pollers),
            "retries": sum(p.stats.retries for p in replication.stream_pollers),
            "dead_lettered": sum(p.stats.dead_lettered for p in replication.stream_pollers),
            "p50": percentile(table_lags, 50),
            "p99": percentile(table_lags, 99),
        },
        "bucket": {
            "messages_succeeded": sum(p.stats.succeeded for p in replication.bucket_pollers),
            "batches": sum(p.stats.batches for p in replication.bucket_pollers),
            "failed": sum(p.stats.failed for p in replication.bucket_pollers),
            "p50": percentile(bucket_lags, 50),
            "p99": percentile(bucket_lags, 99),
        },
    }


class ReplicationProcess:
    """LocalReplication in a process of its own, as ``ferry replicate`` runs it: the writers and the
    watcher of this harness then do not compete with the pollers for one interpreter lock.

    The child starts the pollers and says ``ready``; then it answers, one JSON line each, the commands
    sent with :meth:`ask` (``drain``, ``caught-up table|bucket``: see :func:`answer`) until its stdin
    closes, and then prints the pollers' own statistics as one JSON line. Times in the answers are the
    child's ``time.monotonic()``: the same clock as this process's (Linux's CLOCK_MONOTONIC is system-wide)."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.process: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    def start(self, timeout: float = 60.0) -> ReplicationProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.lag", "--serve-replication", json.dumps(spec_to_dict(self.spec))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()
        try:
            first = self._lines.get(timeout=timeout)
        except queue.Empty:
            first = None
        if first is None or first.strip() != "ready":
            self.process.kill()
            raise RuntimeError(f"the replication process did not start: {first!r}")
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._lines.put(line)
        self._lines.put(None)  # end of output

    def _json_lines(self, timeout: float) -> Iterator[dict[str, Any]]:
        """The child's next JSON lines (the handlers may log other lines to stdout: skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"the replication process said nothing for {timeout:.0f} s") from None
            if line is None:
                raise RuntimeError("the replication process ended")
            if line.startswith("{"):
                try:
                    parsed = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(parsed, dict):
                    yield parsed

    def ask(self, command: str, timeout: float = 300.0) -> dict[str, Any]:
        """Send one command; the child's answer (a dict with ``"answer": command``)."""
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        for parsed in self._json_lines(timeout):
            if parsed.get("answer") == command:
                if "error" in parsed:
                    raise RuntimeError(f"the replication process failed {command!r}: {parsed['error']}")
                return parsed
        raise AssertionError("unreachable")

    def stop(self, timeout: float = 60.0) -> dict[str, Any]:
        """Stop the pollers; their own statistics."""
        process, self.process = self.process, None
        if process is None:
            return {}
        assert process.stdin is not None
        try:
            process.stdin.close()
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        if process.returncode != 0:
            raise RuntimeError(f"the replication process exited {process.returncode}")
        stats: dict[str, Any] = {}
        while (line := self._lines.get(timeout=timeout)) is not None:
            if line.startswith('{"table"'):
                stats = json.loads(line)
        return stats


def _gates(pollers: list[Any]) -> list[ReleaseGate]:
    return [p.gate for p in pollers if p.gate is not None]


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout:.0f} s")
        time.sleep(0.02)


def answer(replication: LocalReplication, command: str, timeout: float = 600.0) -> dict[str, Any]:
    """The child's answer to one command of :meth:`ReplicationProcess.ask`.

    - ``drain``: once every held poller's gate has opened (the copy was released), stop the background
      loops and poll until every stream and queue has nothing left; ``drained_at`` is when that was seen.
    - ``caught-up table|bucket``: wait until the released pollers of that kind report their catch-up (the
      first round after the release that found nothing left: ferry_dev.hold); ``applied`` and ``seconds``
      are theirs, ``opened_at`` is when the first gate of that kind opened."""
    words = command.split()
    if words == ["drain"]:
        gates = _gates(replication.pollers)
        _wait_for(lambda: all(g.opened_at is not None for g in gates), 60.0, "the release")
        replication.drain(timeout)
        drained_at = time.monotonic()
        catch_ups = replication.catch_ups()
        return {
            "drained_at": drained_at,
            "opened_at": min((g.opened_at for g in gates if g.opened_at is not None), default=None),
            "catch_ups": {
                k: None if c is None else {"applied": c.applied, "seconds": c.seconds} for k, c in catch_ups.items()
            },
            **_poller_stats(replication),
        }
    if len(words) == 2 and words[0] == "caught-up" and words[1] in ("table", "bucket"):
        kind = words[1]
        pollers = replication.stream_pollers if kind == "table" else replication.bucket_pollers
        _wait_for(lambda: replication.catch_ups()[kind] is not None, timeout, f"the {kind} catch-up")
        caught = replication.catch_ups()[kind]
        assert caught is not None
        opened = [g.opened_at for g in _gates(list(pollers)) if g.opened_at is not None]
        return {
            "applied": caught.applied,
            "seconds": caught.seconds,
            "opened_at": min(opened),
            "at": time.monotonic(),
            **_poller_stats(replication),
        }
    raise ValueError(f"unknown command {command!r}")


def serve_replication(spec_json: str) -> None:
    """The child of :class:`ReplicationProcess`."""
    from ferry_dev.replication import LocalReplication

    use_dummy_credentials()
    replication = LocalReplication(parse_spec(json.loads(spec_json))).start()
    print("ready", flush=True)
    for line in sys.stdin:  # until the parent closes it
        command = line.strip()
        try:
            reply = answer(replication, command)
        except Exception as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        print(json.dumps({"answer": command, **reply}), flush=True)
    replication.stop()
    print(json.dumps({**_poller_stats(replication), "dlq_depth": replication.dlq_depth()}), flush=True)


def measure(plan: LagPlan, endpoint: str) -> dict[str, Any]:
    """Initialise, start the pollers, drive the writes, wait for them to show; every figure as data."""
    from ferry.operations import initialize

    where = AwsTarget(REGION, endpoint)
    ddb = make_client("dynamodb", where)
    s3 = make_client("s3", where)
    spec = lag_spec(endpoint)
    seed_sources(where, spec, items=0, objects=0, seed=0)  # empty: every write is a live one
    init_lines = initialize(spec)
    replication = ReplicationProcess(spec).start()
    ledger = Ledger()
    stop_writes, stop_watch = threading.Event(), threading.Event()
    watcher = Watcher(make_client("dynamodb", where), make_client("s3", where), ledger, stop_watch)
    writers: list[Writer] = [
        TableWriter(ddb, ledger, plan.table_rate, stop_writes),
        BucketWriter(s3, ledger, plan.bucket_rate, stop_writes),
    ]
    try:
        watcher.start()
        started = time.monotonic()
        for writer in writers:
            writer.start()
        stop_writes.wait(plan.seconds)
        stop_writes.set()
        for writer in writers:
            writer.join(timeout=30)
        traffic_seconds = time.monotonic() - started
        deadline = time.monotonic() + plan.settle_timeout
        while ledger.outstanding() and time.monotonic() < deadline:
            time.sleep(0.1)
        stop_watch.set()
        watcher.join(timeout=30)
    finally:
        stop_writes.set()
        stop_watch.set()
        own = replication.stop()
    return {
        "init": init_lines,
        "traffic_seconds": round(traffic_seconds, 1),
        "table": lag_summary([w for w in ledger.writes if w.kind == "table"]),
        "bucket": lag_summary([w for w in ledger.writes if w.kind == "bucket"]),
        "pollers": {"table": own.get("table", {}), "bucket": own.get("bucket", {})},
        "dlq_depth": own.get("dlq_depth"),
        "watcher_reads": watcher.reads,
        "writes_started_late": {w.kind: w.late for w in writers},
        "errors": {"writers": [e for w in writers for e in w.errors][:20], "watcher": watcher.errors[:20]},
    }


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else fmt(value, "s", 2)


def rows_for(result: dict[str, Any], plan: LagPlan) -> list[Row]:
    rows: list[Row] = []
    for kind, label, rate in (("table", "table", plan.table_rate), ("bucket", "bucket", plan.bucket_rate)):
        summary, own = result[kind], result["pollers"][kind]
        p99 = summary["p99"]
        rows.append(
            Row(
                line="6",
                measure=f"live lag, {label} (watcher): p50 / p99 at {rate:g} writes/s",
                ferry=f"{_seconds(summary['p50'])} / {_seconds(p99)}",
                other="the pollers' own statistics",
                other_value=f"{_seconds(own.get('p50'))} / {_seconds(own.get('p99'))}",
                target=f"p99 < {P99_TARGET:g} s",
                met=p99 is not None and p99 < P99_TARGET and summary["never_reflected"] == 0,
                note="pollers' own: apply time minus the stream record's creation time / the message's SentTimestamp",
            )
        )
    table, bucket = result["table"], result["bucket"]
    never = table["never_reflected"] + bucket["never_reflected"]
    rows.append(
        Row(
            line="6",
            measure="live writes measured / never reflected",
            ferry=f"{table['writes'] + bucket['writes']:,} / {never}",
            other_value=f"table {table['writes']:,}, bucket {bucket['writes']:,}",
            target="0 never reflected",
            met=never == 0 and result["dlq_depth"] == 0,
        )
    )
    return rows


def run(settings: Settings) -> tuple[list[Row], dict[str, Any]]:
    plan = plan_for(settings)
    use_dummy_credentials()
    with Emulator(kind=bench_emulator()) as emu:
        result = measure(plan, emu.endpoint_url)
    for kind in ("table", "bucket"):
        s = result[kind]
        print(
            f"[bench] line 6: {kind}: {s['writes']} writes, p50 {_seconds(s['p50'])}, p99 {_seconds(s['p99'])}, "
            f"never reflected {s['never_reflected']}",
            file=sys.stderr,
            flush=True,
        )
    details = {"plan": plan.__dict__, **result, "rounds": 1}
    return rows_for(result, plan), details


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-replication":
        serve_replication(sys.argv[2])
    else:
        sys.exit("usage: python -m bench.lag --serve-replication SPEC_JSON (run by bench line 6)")
