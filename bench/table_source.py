"""Line 1's source table and the live load every line-1 copy runs under (lines 6 and 7 reuse the items).

Every copy of line 1 — the naive one, batch_writer, ferry insert-only and ferry's three replay paths —
reads its own freshly seeded source (:func:`fresh_source`: the same items, the same seed) while the same
steady write load (:class:`SourceLoad`: the same seeded sequence of writes at the same rate) writes to it,
from the copy's start until the copy ends (the baselines) or until the Glue job's summary (ferry). The
load remembers every key it wrote, so a copy's verify can tell the differences the load caused (a copy
that replicates nothing leaves those keys stale, resurrected or missing) from any other.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ferry.wire import Item, item_size, key_text
from ferry_dev.workload import HASH_KEY, RANGE_KEY, create_workload_table

ITEM_BYTES = 1_000  # by DynamoDB's sizing rules: one write unit per item
THIRTY_EIGHT_DIGITS = "12345678901234567890123456789012345678"
LOAD_RATE = 20.0  # source writes/s during each copy
LOAD_SEED = 29
LOAD_THREADS = 8  # writes in flight at once, so the rate holds while the emulator is busy with the copy


# --- the items ------------------------------------------------------------------------------


def bench_item(index: int, size: int = ITEM_BYTES) -> Item:
    """Item ``index`` (reproducible) with all ten types (38-digit numbers in N and NS, unicode, binaries
    in B, BS and inside M and L), one level of M and L (the emulator is far slower on deep nesting and
    on many small values), padded with a string to ``size`` bytes by DynamoDB's sizing rules.

    The extreme number is a tiny one: DynamoDB answers a number written out in full (9.9E+125 comes
    back as 99 and 124 zeros; ministack does so too, moto echoes what was written), and boto3's
    resource layer, which the baselines use, cannot read a number of more than 38 digits that way
    (decimal.Rounded: boto/boto3#2500). 9.9E-125 written out has only leading zeros, which it reads."""
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
        "history": {"L": [{"N": "9.9E-125"}, {"B": rng.randbytes(6)}]},
    }
    item["padding"] = {"S": ""}
    item["padding"] = {"S": "p" * max(0, size - item_size(item))}
    return item


def bench_key(index: int) -> Item:
    key = bench_item(index)
    return {HASH_KEY: key[HASH_KEY], RANGE_KEY: key[RANGE_KEY]}


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


def fresh_source(ddb: Any, table: str, items: int) -> list[int]:
    """A new source table holding bench items 0 … ``items`` - 1 (every copy of line 1 starts from the
    same data); their sizes."""
    create_workload_table(ddb, table)
    return seed(ddb, table, (bench_item(i) for i in range(items)))


# --- the load -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedWrite:
    operation: str  # overwrite | update | delete | insert
    method: str  # the DynamoDB client's method
    request: dict[str, Any]
    key: Item  # the key it writes
    seeded: bool  # the key is one of the seeded items (not a new one)


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
        return PlannedWrite("overwrite", "put_item", {"TableName": table, "Item": item}, bench_key(index), True)
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
        return PlannedWrite("update", "update_item", request, bench_key(index), True)
    if roll < 0.85:
        return PlannedWrite(
            "delete", "delete_item", {"TableName": table, "Key": bench_key(index)}, bench_key(index), True
        )
    new = items + created
    return PlannedWrite("insert", "put_item", {"TableName": table, "Item": bench_item(new)}, bench_key(new), False)


class SourceLoad(threading.Thread):
    """Steady writes on a source while it is copied: one write started every 1/``rate`` seconds on a fixed
    schedule, each on a small pool of threads, so a slow answer from the busy emulator delays that write
    and not the rate (as bench.lag's writers). Reproducible from ``seed``. ``touched`` holds the key of
    every write it started (ferry.wire.key_text), ``touched_seeded`` how many of them are seeded items."""

    def __init__(self, ddb: Any, table: str, items: int, *, seed: int = LOAD_SEED, rate: float = LOAD_RATE) -> None:
        super().__init__(name="source-load", daemon=True)
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
        self.touched: set[str] = set()
        self.touched_seeded = 0
        self.started_at = self.stopped_at = float("nan")
        self._lock = threading.Lock()
        self._stop_event = threading.Event()

    def _plan(self) -> PlannedWrite:
        with self._lock:
            self.version += 1
            planned = plan_write(self.rng, self.table, self.items, self.version, self.created)
            self.created += planned.operation == "insert"
            key = key_text(planned.key)
            if key not in self.touched:  # a write that fails may still have been applied: touched all the same
                self.touched.add(key)
                self.touched_seeded += planned.seeded
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

    @property
    def rate_held(self) -> float:
        """Writes per second over the load's life."""
        seconds = self.stopped_at - self.started_at
        return self.writes / seconds if seconds > 0 else float("nan")

    def summary(self) -> dict[str, Any]:
        """What the load did, for a run's details."""
        return {
            "load_writes": self.writes,
            "load_rate": self.rate_held,
            "load_operations": dict(self.operations),
            "load_errors": self.errors[:20],
            "load_late": self.late,
            "touched_keys": len(self.touched),
            "touched_seeded": self.touched_seeded,
        }
