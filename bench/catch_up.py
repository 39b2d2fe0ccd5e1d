"""Line 6, the catch-up of a replay copy: how long the released pollers take to drain what was held.

A fresh emulator; an empty source table and bucket, both protocol replay. ferry's ``initialize`` enables
the stream, creates the target table, the state table and the events queue, records where capture began
and sets the phase ``hold`` for both. The local pollers (``ferry replicate``'s LocalReplication) start
held, in a process of their own (bench.lag.ReplicationProcess). Then, while they are held:

- N table changes by BatchWriteItem: new items (60 %), overwrites of some of them (25 %), deletes (15 %),
  bench items of ~1 KB with all ten types: N stream records (INSERT, MODIFY, REMOVE);
- M object changes: new objects (70 %), overwrites (20 %), deletes (10 %): M events in the queue.

The pollers must have applied nothing by then (checked). The table's copy is recorded complete (an empty
copy: the source was empty when capture began, so every item arrives as a held change) and released
(ferry.release.release_table); the time runs until the table's pollers report their catch-up
(ferry_dev.hold: from the gate's opening to the first round that found nothing left). Then the same
for the bucket (release_bucket). Afterwards, not timed, ferry's verify of the table and of the bucket
must find 0 differences.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bench.common import Row, Settings, bench_emulator, fmt
from bench.lag import ReplicationProcess
from bench.table_backfill import cpu_seconds
from bench.table_source import bench_item
from ferry.aws import queue_depth, queue_url_or_none
from ferry.buckets.backfill import begin_bucket_copy, finish_bucket_copy
from ferry.buckets.verify import verify_bucket
from ferry.clients import AwsTarget, make_client, table_clients
from ferry.release import release_bucket, release_table
from ferry.spec import Spec, parse_spec
from ferry.tables.copy_run import begin_copy, finish_copy
from ferry.tables.state import StateStore
from ferry.tables.verify import verify_table
from ferry.wire import Item
from ferry_dev.emulator import Emulator, use_dummy_credentials
from ferry_dev.phases import seed_sources
from ferry_dev.workload import HASH_KEY, RANGE_KEY

REGION = "us-east-1"
SOURCE_TABLE, TARGET_TABLE = "catchup-orders", "catchup-orders-v2"
SOURCE_BUCKET, TARGET_BUCKET = "catchup-media", "catchup-media-v2"
WRITE_THREADS = 8
CATCH_UP_TIMEOUT = 600.0


@dataclass(frozen=True)
class CatchUpPlan:
    records: int  # table changes held (stream records)
    events: int  # object changes held (queue messages)


def plan_for(settings: Settings) -> CatchUpPlan:
    return CatchUpPlan(records=200, events=20) if settings.quick else CatchUpPlan(records=2000, events=200)


def catch_up_spec(endpoint: str) -> Spec:
    return parse_spec(
        {
            "region": REGION,
            "endpoint_url": endpoint,
            "state_table": "catchup-state",
            "tables": [{"source": SOURCE_TABLE, "target": TARGET_TABLE, "protocol": "replay"}],
            "buckets": [{"source": SOURCE_BUCKET, "target": TARGET_BUCKET, "protocol": "replay"}],
            "s3": {"events_queue": "catchup-events"},
            "replication": {"on_failure_queue": "catchup-stream-failures"},
        }
    )


# --- the held backlog -----------------------------------------------------------------------


def split(total: int, shares: tuple[float, ...]) -> list[int]:
    """``total`` in parts by ``shares`` (the last part takes the rounding): [60, 25, 15] of 100."""
    parts = [round(total * share) for share in shares[:-1]]
    return [*parts, total - sum(parts)]


def table_backlog(n: int) -> list[list[dict[str, Any]]]:
    """BatchWriteItem requests (25 each, no key twice in one) that make exactly ``n`` stream records:
    puts of new items, then overwrites of the first of them, then deletes of the last of them."""
    puts, overwrites, deletes = split(n, (0.6, 0.25, 0.15))
    writes: list[dict[str, Any]] = [{"PutRequest": {"Item": bench_item(i)}} for i in range(puts)]
    for i in range(overwrites):
        item = bench_item(i)
        item["version"] = {"N": "1"}
        writes.append({"PutRequest": {"Item": item}})
    for i in range(puts - deletes, puts):
        item = bench_item(i)
        key: Item = {HASH_KEY: item[HASH_KEY], RANGE_KEY: item[RANGE_KEY]}
        writes.append({"DeleteRequest": {"Key": key}})
    batches: list[list[dict[str, Any]]] = []
    for phase in (writes[:puts], writes[puts : puts + overwrites], writes[puts + overwrites :]):
        batches += [phase[start : start + 25] for start in range(0, len(phase), 25)]
    return batches


def operations(batches: list[list[dict[str, Any]]]) -> Counter[str]:
    """How many PutRequest and DeleteRequest the requests hold."""
    return Counter(next(iter(request)) for batch in batches for request in batch)


def write_table_backlog(ddb: Any, table: str, n: int) -> None:
    for batch in table_backlog(n):
        pending: dict[str, Any] = {table: batch}
        while pending:
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


def object_changes(m: int) -> list[list[tuple[str, str]]]:
    """Phases of (operation, key) making exactly ``m`` object changes: creates, overwrites of the
    first created keys, deletes of the last ones (a phase starts after the one before has ended)."""
    creates, overwrites, deletes = split(m, (0.7, 0.2, 0.1))
    key = "held/{:05d} object+.bin".format
    return [
        [("put", key(i)) for i in range(creates)],
        [("put", key(i)) for i in range(overwrites)],
        [("delete", key(i)) for i in range(creates - deletes, creates)],
    ]


def write_bucket_backlog(s3: Any, bucket: str, m: int) -> None:
    def change(step: tuple[int, tuple[str, str]]) -> None:
        number, (operation, key) = step
        if operation == "delete":
            s3.delete_object(Bucket=bucket, Key=key)
        else:
            body = f"change {number}\n".encode() * 64
            s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/plain", Metadata={"n": str(number)})

    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        number = 0
        for phase in object_changes(m):
            list(pool.map(change, enumerate(phase, start=number)))
            number += len(phase)


# --- the measurement ------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds of the emulator and of the pollers' process since the last lap: where a catch-up's
    time goes (the emulator serving each apply, or the pollers' own work)."""

    def __init__(self, emulator_pid: int | None, pollers_pid: int | None) -> None:
        self.pids = {"emulator": emulator_pid, "pollers": pollers_pid}
        self.last = self._now()

    def _now(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) if pid else float("nan") for name, pid in self.pids.items()}

    def lap(self) -> dict[str, float]:
        now = self._now()
        spent = {name: round(now[name] - self.last[name], 2) for name in now}
        self.last = now
        return spent


def _wait_queued(sqs: Any, url: str, expected: int, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while (depth := queue_depth(sqs, url)) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return depth


def measure(plan: CatchUpPlan, endpoint: str, emulator_pid: int | None = None) -> dict[str, Any]:
    """Hold, write the backlog, release the table then the bucket, time each catch-up, verify.
    ``emulator_pid``: the emulator's process, whose CPU time during each catch-up is reported."""
    from ferry.operations import initialize

    where = AwsTarget(REGION, endpoint)
    spec = catch_up_spec(endpoint)
    mapping, bucket = spec.tables[0], spec.buckets[0]
    seed_sources(where, spec, items=0, objects=0, seed=0)  # empty: everything arrives as a held change
    init_lines = initialize(spec)
    clients = table_clients(spec)
    sqs = make_client("sqs", where)
    store = StateStore(clients.state, spec.state_table)
    pollers = ReplicationProcess(spec).start()
    try:
        started = time.monotonic()
        write_table_backlog(make_client("dynamodb", where), SOURCE_TABLE, plan.records)
        write_bucket_backlog(make_client("s3", where, pool=WRITE_THREADS), SOURCE_BUCKET, plan.events)
        url = queue_url_or_none(sqs, spec.s3.events_queue)
        queued = _wait_queued(sqs, url, plan.events) if url else 0
        write_seconds = time.monotonic() - started
        # an empty copy of each, recorded complete: the release checks that the copy finished
        copy = begin_copy(spec, mapping, clients)
        finish_copy(spec, mapping, clients, copy, 0)
        bucket_copy = begin_bucket_copy(spec, bucket, store)
        finish_bucket_copy(store, bucket, bucket_copy, 0)
        cpu = CpuMeter(emulator_pid, pollers.pid)
        released_at = time.monotonic()
        release_table(spec, mapping, clients, make_client("dynamodbstreams", where))
        table = pollers.ask("caught-up table", timeout=CATCH_UP_TIMEOUT)
        table["release_to_drained"] = float(table["at"]) - released_at
        table["cpu_seconds"] = cpu.lap()
        released_at = time.monotonic()
        release_bucket(spec, bucket.source, store, sqs=sqs)
        objects = pollers.ask("caught-up bucket", timeout=CATCH_UP_TIMEOUT)
        objects["release_to_drained"] = float(objects["at"]) - released_at
        objects["cpu_seconds"] = cpu.lap()
    finally:
        own = pollers.stop()
    started = time.monotonic()
    table_report = verify_table(spec, mapping)
    bucket_report = verify_bucket(spec, bucket)
    return {
        "init": init_lines,
        "plan": plan.__dict__,
        "write_seconds": round(write_seconds, 1),
        "queued": queued,
        "table": table,
        "bucket": objects,
        "dlq_depth": own.get("dlq_depth"),
        "verify": {"table": table_report.counts(), "bucket": bucket_report.counts()},
        "verify_seconds": round(time.monotonic() - started, 1),
    }


# --- rows -----------------------------------------------------------------------------------


def differences(result: dict[str, Any]) -> int:
    return sum(sum(counts.values()) for counts in result["verify"].values())


def cpu_note(caught: dict[str, Any], applied: int, unit: str) -> str:
    """Where the catch-up's time went: CPU per applied record (message) of the emulator and the pollers."""
    cpu = caught.get("cpu_seconds") or {}
    if not applied or not cpu:
        return "CPU not measured"
    per = {name: seconds / applied * 1000 for name, seconds in cpu.items()}
    return (
        f"CPU per {unit.removesuffix('s')}: emulator {per['emulator']:.1f} ms, pollers' process {per['pollers']:.1f} ms "
        f"(wall {float(caught['seconds']) / applied * 1000:.1f} ms)"
    )


def rows_for(result: dict[str, Any], plan: CatchUpPlan) -> list[Row]:
    rows: list[Row] = []
    held = {
        "table": f"{plan.records:,} table changes ({plan.records:,} stream records)",
        "bucket": f"{plan.events:,} object changes ({result['queued']:,} queued messages)",
    }
    for kind, unit in (("table", "records"), ("bucket", "messages")):
        caught = result[kind]
        seconds, applied = float(caught["seconds"]), int(caught["applied"])
        rows.append(
            Row(
                line="6",
                measure=f"catch-up after the release, {kind}: a held backlog of {held[kind]}",
                ferry=f"{fmt(seconds, 's', 1)} ({fmt(applied / seconds if seconds else float('nan'), unit + '/s')})",
                other="the release call to the pollers' report",
                other_value=fmt(float(caught["release_to_drained"]), "s", 1),
                note="the pollers' own catch-up (ferry_dev.hold): from their gate's opening to their first round "
                "with nothing left; the other figure adds the gate's re-check of the phase (every 0.5 s); "
                + cpu_note(caught, applied, unit),
            )
        )
    table, bucket = result["table"], result["bucket"]
    wrong = differences(result)
    complete = table["applied"] >= plan.records and bucket["applied"] >= result["queued"] >= plan.events
    rows.append(
        Row(
            line="6",
            measure="held changes applied by the catch-up / differences after it (ferry verify)",
            ferry=f"{table['applied']:,} of {plan.records:,} records, {bucket['applied']:,} of {result['queued']:,} "
            f"messages / {wrong} differences",
            target="all applied, 0 differences",
            met=complete and wrong == 0 and result["dlq_depth"] == 0,
            note="table changes by BatchWriteItem (60 % new items, 25 % overwrites, 15 % deletes), object "
            "changes by PutObject/DeleteObject (70 % new, 20 % overwrites, 10 % deletes; the emulator queues an "
            "'Object Tags Added' event beside every 'Object Created'); the stream poller applies one PutItem or "
            "DeleteItem per record, the bucket pollers (5) reconcile each key",
        )
    )
    return rows


def run(settings: Settings) -> tuple[list[Row], dict[str, Any]]:
    plan = plan_for(settings)
    use_dummy_credentials()
    with Emulator(kind=bench_emulator()) as emu:
        result = measure(plan, emu.endpoint_url, emu._process.pid if emu._process else None)
    for kind in ("table", "bucket"):
        caught = result[kind]
        print(
            f"[bench] line 6: catch-up {kind}: {caught['applied']} applied in {caught['seconds']:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    return rows_for(result, plan), {**result, "rounds": 1}
