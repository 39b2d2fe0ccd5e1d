"""The phases of a local migration, named once and shared by the demo, the chaos runner and the bench.

In their order (docs/adr/0001): the application's sources exist with data (:func:`seed_sources`),
``initialize`` captures changes first (streams, EventBridge, targets, state table), live replication
starts (:class:`~ferry_dev.replication.LocalReplication`) and traffic keeps changing the sources
(:func:`start_traffic`) while the history is copied (:func:`backfill_all`), then traffic stops,
:func:`drain_and_finalize` ends the backfill phase, and ``verify_all`` proves the copy.

The chaos runner takes the same phases but runs replication, backfill and finalize as ``ferry``
commands in processes of their own, so it can kill them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ferry.buckets.backfill import BucketBackfillSummary
from ferry.clients import AwsTarget, make_client, table_clients
from ferry.jobs import BUCKET, TABLE
from ferry.release import finalize_bucket
from ferry.spec import Spec
from ferry.tables.backfill import BackfillSummary
from ferry.tables.finalize import FinalizeResult, finalize_table
from ferry.tables.state import StateStore
from ferry_dev.replication import LocalReplication
from ferry_dev.stats import percentile
from ferry_dev.workload import BucketTraffic, TrafficGenerator, create_workload_table, seed_bucket, seed_table
from glue_jobs.local_spark import run_locally

MULTIPART_PART = 5 * 1024 * 1024  # the smallest S3 part: one multipart object per seeded bucket


@dataclass(frozen=True)
class Seeded:
    items: int
    objects: int


def seed_sources(
    where: AwsTarget,
    spec: Spec,
    *,
    items: int,
    objects: int,
    seed: int,
    big_item: bool = True,
    multipart_part: int = MULTIPART_PART,
) -> Seeded:
    """The application's side before ferry arrives: every source table of ``spec`` (no stream yet, all
    ten attribute types, one item near 400 KB) and every source bucket (awkward keys, headers, metadata,
    tags, one multipart object), seeded through ``where`` (the application's endpoint)."""
    ddb, s3 = make_client("dynamodb", where), make_client("s3", where)
    seeded_items = seeded_objects = 0
    for table in spec.tables:
        create_workload_table(ddb, table.source)
        seeded_items += seed_table(ddb, table.source, items, seed=seed, big_item=big_item) if items else 0
    for bucket in spec.buckets:
        s3.create_bucket(Bucket=bucket.source)
        if objects:
            seeded_objects += seed_bucket(s3, bucket.source, objects, seed=seed, multipart_part=multipart_part)
    return Seeded(seeded_items, seeded_objects)


@dataclass
class Traffic:
    """The application's live writes to the first source table and bucket, until :meth:`stop`."""

    table: TrafficGenerator | None
    bucket: BucketTraffic | None
    operations: dict[str, dict[str, int]] = field(default_factory=dict)

    def stop(self) -> dict[str, dict[str, int]]:
        """Stop writing; the operations made, by kind, for ``table`` and ``bucket``."""
        for name, workload in (("table", self.table), ("bucket", self.bucket)):
            if workload is not None:
                self.operations[name] = dict(workload.stop().operations)
        return self.operations

    def total(self) -> int:
        return sum(sum(counts.values()) for counts in self.operations.values())


def start_traffic(
    where: AwsTarget, spec: Spec, *, items: int, objects: int, seed: int, table_rate: float, object_rate: float
) -> Traffic:
    """Puts, updates, deletes and re-inserts on the first source table (over ``items`` keys) and object
    creates, overwrites and deletes on the first source bucket (over ``objects`` keys), paced."""
    table = bucket = None
    if spec.tables:
        ddb = make_client("dynamodb", where)
        table = TrafficGenerator(ddb, spec.tables[0].source, key_space=items, seed=seed + 1, rate=table_rate).start()
    if spec.buckets and objects:
        s3 = make_client("s3", where)
        bucket = BucketTraffic(s3, spec.buckets[0].source, key_space=objects, seed=seed + 2, rate=object_rate).start()
    return Traffic(table, bucket)


@dataclass(frozen=True)
class Backfills:
    tables: tuple[BackfillSummary, ...]
    buckets: tuple[BucketBackfillSummary, ...]


def backfill_all(spec: Spec) -> Backfills:
    """Every table's and bucket's backfill on local Spark: the Glue scripts' own run_backfill."""
    tables = tuple(run_locally(TABLE, spec, t.source) for t in spec.tables)
    buckets = tuple(run_locally(BUCKET, spec, b.source) for b in spec.buckets)
    return Backfills(tables, buckets)


def drain_and_finalize(spec: Spec, replication: LocalReplication) -> list[FinalizeResult]:
    """Apply everything captured, end every table's copy phase (insert-only: tombstones removed; replay:
    marked live) and every replay bucket's, apply what finalize's wait let through."""
    replication.drain()
    clients = table_clients(spec)
    finalized = [finalize_table(spec, mapping, clients) for mapping in spec.tables]
    store = StateStore(clients.state, spec.state_table)
    for bucket in spec.buckets:
        finalize_bucket(spec, bucket.source, store)
    replication.drain()
    return finalized


@dataclass(frozen=True)
class Delivery:
    """What the local pollers applied, and how late (seconds from the change to its replication)."""

    applied: int
    lags: tuple[float, ...]

    @property
    def p50(self) -> float:
        return percentile(self.lags, 50) or 0.0

    @property
    def p99(self) -> float:
        return percentile(self.lags, 99) or 0.0


def deliveries(replication: LocalReplication) -> dict[str, Delivery]:
    """``table`` (stream records applied) and ``bucket`` (event messages applied) of a replication."""
    counts: Counter[str] = Counter()
    lags: dict[str, list[float]] = {"table": [], "bucket": []}
    for stream in replication.stream_pollers:
        counts["table"] += stream.stats.applied
        lags["table"] += stream.stats.lags
    for queue in replication.bucket_pollers:
        counts["bucket"] += queue.stats.succeeded
        lags["bucket"] += queue.stats.lags
    return {kind: Delivery(counts[kind], tuple(values)) for kind, values in lags.items()}
