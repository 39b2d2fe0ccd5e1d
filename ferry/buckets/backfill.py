"""The bucket backfill: list both buckets, split the keys into partitions, copy or reconcile every key.

Protocol replay (docs/adr/0004): the bucket's events are held in the queue while the copy runs, so a
key needs no more than the listing says: a key whose listing entry equals the target's (size and
ETag) costs no request; every other one is one CopyObject pinned to the listed ETag (``copy_listed``;
a multipart source keeps its part layout). A key that changed after the listing is skipped: its event
is queued and reconciled at the release.

Protocol insert-only (docs/adr/0001): the consumer runs concurrently, so every key is reconciled
(``reconcile_key``), which reads both sides after writing. Reconcile skips identical objects, so a
rerun costs only the listing and the HEADs; a key the target listing lacks is copied without first
reading the target (``target_absent``).

With ``delete_extra`` the target's keys that the source lacks are reconciled (which deletes them,
after reading the source). Each partition runs its keys on a thread pool, under an optional
request-rate ceiling, and returns its result as data. It records its work in the run log
(ferry.runlog, state table at home): objects copied or found equal, bytes copied and S3 requests per
2 s window.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ferry.aws import call_with_retries
from ferry.buckets.reconcile import UNCHANGED, ListedObject, ReconcileResult, copy_listed, reconcile_key
from ferry.clients import AwsTarget, BucketClients, make_client
from ferry.errors import SetupError
from ferry.ratelimit import CapacityBucket
from ferry.runlog import CopyRecorder, RunLog
from ferry.spec import BucketMapping, S3Settings, Spec
from ferry.tables.protocol import PHASE_HOLD, copy_refusal
from ferry.tables.state import BUCKET, COPY_DONE, COPY_RUNNING, Capture, CopyRun, StateStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BucketPlan:
    """What every partition task needs; small and picklable so Spark can ship it: the two sides
    (``spec.source_where()``, ``spec.target_where()``), the mapping and the settings; ferry's home and
    state table, where the partitions record their run log (none without a state table)."""

    source_where: AwsTarget
    target_where: AwsTarget
    mapping: BucketMapping
    settings: S3Settings
    where: AwsTarget | None = None
    state_table: str = ""

    @classmethod
    def of(cls, spec: Spec, mapping: BucketMapping) -> BucketPlan:
        return cls(spec.source_where(), spec.target_where(), mapping, spec.s3, spec.home_where(), spec.state_table)

    def runlog(self) -> RunLog | None:
        """The run log of the partitions: its client is made here (in the task), never shipped."""
        if not self.state_table or self.where is None:
            return None
        return RunLog(make_client("dynamodb", self.where, pool=2), self.state_table)


@dataclass(frozen=True)
class PartitionResult:
    partition: int
    keys: int
    actions: dict[str, int] = field(default_factory=dict)
    failed: tuple[tuple[str, str], ...] = ()  # (key, error)
    requests: int = 0
    bytes_copied: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_objects(s3: S3Client, bucket: str, prefix: str = "") -> Iterator[ListedObject]:
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    while True:
        page = call_with_retries(lambda: s3.list_objects_v2(**kwargs), f"ListObjectsV2 {bucket}")
        for entry in page.get("Contents", []):
            yield ListedObject(
                entry["Key"],
                str(entry.get("ETag", "")),
                int(entry.get("Size", 0)),
                str(entry.get("StorageClass") or "STANDARD"),
            )
        if not page.get("IsTruncated"):
            return
        kwargs["ContinuationToken"] = page["NextContinuationToken"]


def list_keys(s3: S3Client, bucket: str, prefix: str = "") -> Iterator[str]:
    return (entry.key for entry in list_objects(s3, bucket, prefix))


@dataclass(frozen=True)
class BackfillKeys:
    """What the driver hands out: the keys to reconcile, and which of them the target was listed without;
    for a replay copy also each source key's listing entry and the keys whose target entry is equal."""

    keys: list[str]  # sorted
    absent: frozenset[str]  # keys the target listing lacked: no target read before their copy
    listed: dict[str, ListedObject] = field(default_factory=dict)  # the source's entries
    equal: frozenset[str] = frozenset()  # keys whose target entry has the source's size and ETag

    def absent_of(self, keys: list[str]) -> list[str]:
        return [k for k in keys if k in self.absent]

    def entries_of(self, keys: list[str]) -> list[ListedObject]:
        return [self.listed[k] for k in keys if k in self.listed]


def list_backfill_keys(s3: S3Client, mapping: BucketMapping, target_s3: S3Client | None = None) -> BackfillKeys:
    """Both sides listed once: the source's keys under the prefix (plus, with delete_extra, the target
    keys the source lacks), the source keys the target does not have yet, and the equal ones."""
    source = {entry.key: entry for entry in list_objects(s3, mapping.source, mapping.prefix)}
    target = {entry.key: entry for entry in list_objects(target_s3 or s3, mapping.target, mapping.prefix)}
    keys = source.keys() | target.keys() if mapping.delete_extra else source.keys()
    equal = {
        k for k, entry in source.items() if k in target and (target[k].etag, target[k].size) == (entry.etag, entry.size)
    }
    return BackfillKeys(sorted(keys), frozenset(source.keys() - target.keys()), source, frozenset(equal))


def partition_keys(keys: list[str], partitions: int) -> list[list[str]]:
    """Contiguous, nearly equal slices (never empty unless there are no keys)."""
    n = max(1, min(partitions, len(keys)))
    size, extra = divmod(len(keys), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(keys[start:end])
        start = end
    return out


def partition_clients(plan: BucketPlan) -> BucketClients:
    """The clients one partition copies with: a connection for each of its ``s3.concurrency`` copies in
    flight, and a few to spare."""
    return BucketClients.connect(plan.source_where, plan.target_where, pool=plan.settings.concurrency + 4)


def reconcile_partition(
    plan: BucketPlan,
    partition: int,
    keys: list[str],
    s3: S3Client | BucketClients | None = None,
    absent: Collection[str] = (),
    listed: Collection[ListedObject] = (),
    runlog: RunLog | None = None,
) -> PartitionResult:
    """Copy (replay) or reconcile (insert-only) every key of one partition. Never raises for a key:
    failures are listed.

    ``s3`` (BucketClients, or one client for both sides) defaults to :func:`partition_clients`.
    ``absent``: keys the target was just listed without (their first target read is skipped).
    ``listed``: replay — the source's listing entries of the keys to copy; a key of the partition
    without one (a target key the source lacks, ``delete_extra``) is reconciled.
    ``runlog`` (default: the plan's) records the partition's samples."""
    started = time.monotonic()
    recorder = CopyRecorder(runlog or plan.runlog(), plan.mapping.source, BUCKET, partition)
    clients = BucketClients.of(s3) if s3 is not None else partition_clients(plan)
    rate = plan.settings.request_rate
    bucket = CapacityBucket(rate, burst=max(rate, 1.0)) if rate > 0 else None
    actions: Counter[str] = Counter()
    failed: list[tuple[str, str]] = []
    requests = bytes_copied = 0
    listed_absent = frozenset(absent)
    entries = {entry.key: entry for entry in listed}

    def one(key: str) -> ReconcileResult | tuple[str, str]:
        if bucket is not None:
            bucket.acquire()
        try:
            if key in entries:
                result = copy_listed(
                    clients.source, plan.mapping, entries[key], plan.settings, target_s3=clients.target
                )
            else:
                result = reconcile_key(
                    clients.source,
                    plan.mapping,
                    key,
                    plan.settings,
                    target_s3=clients.target,
                    target_absent=key in listed_absent,
                )
        except Exception as exc:
            log.error("partition %d: reconcile of key %r failed: %s", partition, key, type(exc).__name__)
            return (key, f"{type(exc).__name__}: {exc}")
        if bucket is not None:
            bucket.charge(result.requests)
        return result

    try:
        with ThreadPoolExecutor(max_workers=plan.settings.concurrency) as pool:
            for outcome in pool.map(one, keys):
                if isinstance(outcome, tuple):
                    failed.append(outcome)
                    continue
                actions[outcome.action] += 1
                requests += outcome.requests
                bytes_copied += outcome.bytes_copied
                recorder.add(items=1, bytes=outcome.bytes_copied, requests=outcome.requests)
    finally:
        recorder.close()
    return PartitionResult(
        partition=partition,
        keys=len(keys),
        actions=dict(actions),
        failed=tuple(failed),
        requests=requests,
        bytes_copied=bytes_copied,
        seconds=time.monotonic() - started,
    )


def begin_bucket_copy(spec: Spec, mapping: BucketMapping, store: StateStore, *, now: float | None = None) -> CopyRun:
    """Record a bucket copy in the state table. SetupError when a replay copy must not run: after its
    release (see copy_refusal). A replay bucket without a phase (deployed by Terraform, its events sent
    to the queue whose mapping is created disabled) begins its capture here, before the listing."""
    at = time.time() if now is None else now
    phase = store.phase_or_none(mapping.source, BUCKET)
    if mapping.replay and phase is None:
        store.save_capture(mapping.source, Capture(at, f"queue:{spec.s3.events_queue}"), BUCKET)
        store.set_phase(mapping.source, PHASE_HOLD, BUCKET)
        phase = PHASE_HOLD
    refusal = copy_refusal(mapping.protocol, phase)
    if refusal is not None:
        raise SetupError(f"bucket {mapping.source}: a replay copy cannot start: {refusal}")
    run = CopyRun(
        protocol=mapping.protocol, status=COPY_RUNNING, started_at=round(time.time() if now is None else now, 3)
    )
    store.save_copy(mapping.source, run, BUCKET)
    return run


def finish_bucket_copy(store: StateStore, mapping: BucketMapping, run: CopyRun, keys: int) -> None:
    store.save_copy(
        mapping.source, replace(run, status=COPY_DONE, finished_at=round(time.time(), 3), items=keys), BUCKET
    )


@dataclass(frozen=True)
class BucketBackfillSummary:
    source: str
    target: str
    results: tuple[PartitionResult, ...]
    seconds: float
    listed_equal: int = 0  # replay: keys whose listing entries were equal on both sides (no request)
    released: str = ""  # a replay copy: what its release let go

    @property
    def keys(self) -> int:
        return sum(r.keys for r in self.results) + self.listed_equal

    @property
    def failed(self) -> tuple[tuple[str, str], ...]:
        return tuple(f for r in self.results for f in r.failed)

    @property
    def actions(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for r in self.results:
            total.update(r.actions)
        if self.listed_equal:
            total[UNCHANGED] += self.listed_equal
        return dict(total)

    @property
    def requests(self) -> int:
        """S3 requests made for the keys (the listings not included)."""
        return sum(r.requests for r in self.results)

    def describe(self) -> str:
        actions = ", ".join(f"{k} {v}" for k, v in sorted(self.actions.items()))
        lines = [
            f"{self.source} -> {self.target}: {len(self.results)} partitions, {self.keys} keys ({actions}), "
            f"{len(self.failed)} failed, {self.seconds:.1f}s"
        ]
        lines += [f"  {key!r}: {error}" for key, error in self.failed[:20]]
        if self.released:
            lines.append(f"  {self.released}")
        return "\n".join(lines)
