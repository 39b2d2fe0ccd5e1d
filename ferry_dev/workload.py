"""Seeded, reproducible data and live traffic for the demo, tests and benchmarks.

Items cover all ten DynamoDB types (S, N, B, SS, NS, BS, M, L, NULL, BOOL), including 38-digit
numbers, extreme exponents, binary sets, binaries nested in maps and lists, unicode and empty
strings. One item of the seed is close to the 400 KB limit.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Self

from ferry.wire import Item

HASH_KEY = "pk"
RANGE_KEY = "sk"
_WORDS = ["ferry", "Öl", "naïve", "日本語", "emoji 🚢", "tab\tand\nnewline", 'quote"s', "", "x" * 40]
_NUMBERS = [
    "12345678901234567890123456789012345678",
    "-0.0000000000000000000000000000000000001",
    "9.9999999999999999999999999999999999999E+125",
    "1E-130",
    "0",
    "3.14",
    "-42",
]


def make_key(index: int) -> Item:
    return {HASH_KEY: {"S": f"user#{index:06d}"}, RANGE_KEY: {"N": str(index % 7)}}


def _bytes(rng: random.Random, n: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(n))


def make_item(rng: random.Random, index: int, version: int = 0, pad: int = 600) -> Item:
    """An item of about ``pad`` + 400 bytes with every attribute type."""
    numbers = rng.sample(_NUMBERS, 3)
    return {
        **make_key(index),
        "version": {"N": str(version)},
        "name": {"S": rng.choice(_WORDS) + f" {index}"},
        "balance": {"N": rng.choice(_NUMBERS)},
        "blob": {"B": _bytes(rng, 16)},
        "tags": {"SS": sorted({rng.choice(_WORDS[:6]) or "empty", "t" + str(rng.randint(0, 9))})},
        "scores": {"NS": numbers},
        "chunks": {"BS": [_bytes(rng, 8), _bytes(rng, 9)]},
        "active": {"BOOL": rng.random() < 0.5},
        "nothing": {"NULL": True},
        "profile": {
            "M": {
                "avatar": {"B": _bytes(rng, 12)},
                "keys": {"BS": [_bytes(rng, 4), _bytes(rng, 5)]},
                "nested": {"M": {"deep": {"L": [{"B": _bytes(rng, 3)}, {"N": rng.choice(_NUMBERS)}, {"S": "deep"}]}}},
                "empty_map": {"M": {}},
            }
        },
        "history": {"L": [{"N": str(version)}, {"B": _bytes(rng, 6)}, {"L": []}, {"M": {"k": {"SS": ["a", "b"]}}}]},
        "padding": {"S": "p" * pad},
    }


def make_big_item(index: int, size: int = 395_000) -> Item:
    """One item close to the 400 KB limit."""
    return {**make_key(index), "version": {"N": "0"}, "payload": {"B": b"\x00\x01" * (size // 2)}}


def create_workload_table(ddb: Any, table: str) -> None:
    """The table the workload writes: hash key ``pk`` (S), range key ``sk`` (N), on demand, no stream
    (``ferry init`` enables it, as it would on an existing production table)."""
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": HASH_KEY, "KeyType": "HASH"}, {"AttributeName": RANGE_KEY, "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": HASH_KEY, "AttributeType": "S"},
            {"AttributeName": RANGE_KEY, "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def seed_table(ddb: Any, table: str, count: int, seed: int = 7, big_item: bool = True) -> int:
    """Fill ``table`` with ``count`` items (one near 400 KB) via BatchWriteItem; returns the count."""
    rng = random.Random(seed)
    items = [make_item(rng, i) for i in range(count - (1 if big_item else 0))]
    if big_item:
        items.append(make_big_item(count - 1))
    for start in range(0, len(items), 25):
        requests = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        pending: dict[str, Any] = {table: requests}
        while pending:
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
    return len(items)


@dataclass
class TrafficStats:
    operations: Counter[str] = field(default_factory=Counter)
    errors: int = 0


class PacedWorkload:
    """Calls ``step`` about ``rate`` times a second in a thread until stopped."""

    tolerated = ("ConditionalCheckFailed", "NoSuchKey", "Not Found", "404")

    def __init__(self, *, seed: int, rate: float) -> None:
        self.rng = random.Random(seed)
        self.rate = rate
        self.stats = TrafficStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> None:
        raise NotImplementedError

    def _loop(self) -> None:
        interval = 1.0 / self.rate
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.step()
            except Exception as exc:  # a conditional update of a deleted key, mostly
                if not any(t in f"{type(exc).__name__} {exc}" for t in self.tolerated):
                    self.stats.errors += 1
                self.stats.operations["noop"] += 1
            self._stop.wait(max(0.0, interval - (time.monotonic() - started)))

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._loop, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> TrafficStats:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
        return self.stats


class TrafficGenerator(PacedWorkload):
    """Live writes against a source table while the migration runs: puts, partial updates,
    deletes, re-inserts of deleted keys, and bursts on a few hot keys."""

    def __init__(self, ddb: Any, table: str, key_space: int, *, seed: int = 11, rate: float = 50.0) -> None:
        super().__init__(seed=seed, rate=rate)
        self.ddb = ddb
        self.table = table
        self.key_space = key_space
        self.deleted: list[int] = []
        self._next_new = key_space

    def step(self) -> None:
        rng = self.rng
        roll = rng.random()
        hot = rng.random() < 0.2
        index = rng.randint(0, 4) if hot else rng.randint(0, self.key_space - 1)
        if roll < 0.30:
            self.ddb.put_item(TableName=self.table, Item=make_item(rng, index, version=rng.randint(1, 10**6)))
            self.stats.operations["put"] += 1
        elif roll < 0.55:
            self.ddb.update_item(
                TableName=self.table,
                Key=make_key(index),
                UpdateExpression="SET #v = :v, #p.#c = :c ADD #s :n REMOVE #a",
                ConditionExpression="attribute_exists(#pk) AND attribute_type(#p, :m)",
                ExpressionAttributeNames={
                    "#v": "version",
                    "#p": "profile",
                    "#c": "changed",
                    "#s": "scores",
                    "#a": "active",
                    "#pk": HASH_KEY,
                },
                ExpressionAttributeValues={
                    ":v": {"N": str(rng.randint(1, 10**6))},
                    ":c": {"BS": [_bytes(rng, 4)]},
                    ":n": {"NS": [str(rng.randint(100, 999))]},
                    ":m": {"S": "M"},
                },
            )
            self.stats.operations["update"] += 1
        elif roll < 0.75:
            self.ddb.delete_item(TableName=self.table, Key=make_key(index))
            self.deleted.append(index)
            self.stats.operations["delete"] += 1
        elif roll < 0.90 and self.deleted:
            again = self.deleted.pop(rng.randrange(len(self.deleted)))
            self.ddb.put_item(TableName=self.table, Item=make_item(rng, again, version=rng.randint(1, 10**6)))
            self.stats.operations["reinsert"] += 1
        else:
            self.ddb.put_item(TableName=self.table, Item=make_item(rng, self._next_new, version=1))
            self._next_new += 1
            self.stats.operations["insert"] += 1


# --- buckets -----------------------------------------------------------------------------------

AWKWARD_KEYS = (
    "with space.txt",
    "plus+sign.txt",
    "percent%20literal.txt",
    "unicode/ünïcødé/日本語.txt",
    "hash#fragment.txt",
    "question?mark.txt",
    "deep/a/b/c/d/e/f/g/h/leaf.bin",
    "trailing/slash/",
    "zero-byte.empty",
    "mixed + space%2B/plus & amp=eq.txt",
)


def object_key(index: int) -> str:
    return f"objects/{index % 17:02d}/item {index:05d}+v.bin"


def _put_object(s3: Any, bucket: str, key: str, rng: random.Random, size: int | None = None) -> None:
    body = _bytes(rng, rng.randint(0, 2048) if size is None else size)
    extra: dict[str, Any] = {"Metadata": {"origin": "ferry-demo", "n": str(rng.randint(0, 999))}}
    if rng.random() < 0.5:
        extra["ContentType"] = rng.choice(["application/json", "text/plain; charset=utf-8", "image/png"])
    if rng.random() < 0.3:
        extra["CacheControl"] = "max-age=3600"
    if rng.random() < 0.2:
        extra["ContentEncoding"] = "gzip"
    if rng.random() < 0.2:
        extra["ContentDisposition"] = 'attachment; filename="x.bin"'
    if rng.random() < 0.4:
        extra["Tagging"] = f"team=ferry&rank={rng.randint(0, 9)}"
    s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)


def put_multipart_object(s3: Any, bucket: str, key: str, part_sizes: tuple[int, ...], seed: int = 0) -> None:
    """A real multipart upload (with headers, metadata and tags) of the given part layout."""
    rng = random.Random(seed)
    upload = s3.create_multipart_upload(
        Bucket=bucket,
        Key=key,
        ContentType="application/octet-stream",
        CacheControl="no-cache",
        Metadata={"layout": "-".join(str(p) for p in part_sizes)},
        Tagging="kind=multipart",
    )
    parts = []
    for number, size in enumerate(part_sizes, start=1):
        body = _bytes(rng, 64) * (size // 64) + _bytes(rng, size % 64)
        etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=number, Body=body)["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts})


def seed_bucket(s3: Any, bucket: str, count: int, seed: int = 5, multipart_part: int = 5 * 1024 * 1024) -> int:
    """``count`` objects: awkward keys, zero-byte objects, headers, metadata, tags, one multipart."""
    rng = random.Random(seed)
    keys = list(AWKWARD_KEYS)
    for key in keys:
        _put_object(s3, bucket, key, rng, size=0 if key.endswith(("/", ".empty")) else None)
    put_multipart_object(s3, bucket, "large/multipart object+1.bin", (multipart_part, multipart_part, 1234), seed)
    written = len(keys) + 1
    for index in range(count - written):
        _put_object(s3, bucket, object_key(index), rng)
    return max(count, written)


class BucketTraffic(PacedWorkload):
    """Live object changes: creates, overwrites (same and different size), deletes, re-creates."""

    def __init__(self, s3: Any, bucket: str, key_space: int, *, seed: int = 13, rate: float = 20.0) -> None:
        super().__init__(seed=seed, rate=rate)
        self.s3 = s3
        self.bucket = bucket
        self.key_space = key_space
        self.deleted: set[str] = set()
        self._next_new = 0

    def step(self) -> None:
        rng, s3, bucket = self.rng, self.s3, self.bucket
        roll = rng.random()
        index = rng.randint(0, 4) if rng.random() < 0.2 else rng.randint(0, self.key_space - 1)
        key = rng.choice(AWKWARD_KEYS) if rng.random() < 0.1 else object_key(index)
        if roll < 0.35:
            _put_object(s3, bucket, key, rng)
            self.deleted.discard(key)
            self.stats.operations["overwrite"] += 1
        elif roll < 0.5:
            size = int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])  # 404 if deleted: a noop
            _put_object(s3, bucket, key, rng, size=size)
            self.stats.operations["overwrite-same-size"] += 1
        elif roll < 0.7:
            s3.delete_object(Bucket=bucket, Key=key)
            self.deleted.add(key)
            self.stats.operations["delete"] += 1
        elif roll < 0.85 and self.deleted:
            again = sorted(self.deleted)[rng.randrange(len(self.deleted))]
            self.deleted.discard(again)
            _put_object(s3, bucket, again, rng)
            self.stats.operations["recreate"] += 1
        else:
            _put_object(s3, bucket, f"new/{self._next_new:05d} fresh+.bin", rng)
            self._next_new += 1
            self.stats.operations["create"] += 1
