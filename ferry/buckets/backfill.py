"""The bucket backfill: list the source, split the keys into partitions, reconcile every key.

Reconcile skips identical objects, so a rerun after a crash (or a second run) costs only the
listing and the HEADs. The target is listed too: a key it lacks is copied without first reading
the target (``reconcile_key(target_absent=True)``; both sides are read in full after the copy as
always). With ``delete_extra`` the target's keys that the source lacks are reconciled too (which
deletes them). Each partition runs its keys on a thread pool, under an
optional request-rate ceiling, and returns its result as data.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ferry.aws import call_with_retries
from ferry.buckets.reconcile import ReconcileResult, reconcile_key
from ferry.clients import AwsTarget, BucketClients
from ferry.ratelimit import CapacityBucket
from ferry.spec import BucketMapping, S3Settings, Spec

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BucketPlan:
    """What every partition task needs; small and picklable so Spark can ship it: the two sides
    (``spec.source_where()``, ``spec.target_where()``), the mapping and the settings."""

    source_where: AwsTarget
    target_where: AwsTarget
    mapping: BucketMapping
    settings: S3Settings

    @classmethod
    def of(cls, spec: Spec, mapping: BucketMapping) -> BucketPlan:
        return cls(spec.source_where(), spec.target_where(), mapping, spec.s3)


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


def list_keys(s3: S3Client, bucket: str, prefix: str = "") -> Iterator[str]:
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    while True:
        page = call_with_retries(lambda: s3.list_objects_v2(**kwargs), f"ListObjectsV2 {bucket}")
        for entry in page.get("Contents", []):
            yield entry["Key"]
        if not page.get("IsTruncated"):
            return
        kwargs["ContinuationToken"] = page["NextContinuationToken"]


@dataclass(frozen=True)
class BackfillKeys:
    """What the driver hands out: the keys to reconcile, and which of them the target was listed without."""

    keys: list[str]  # sorted
    absent: frozenset[str]  # keys the target listing lacked: no target read before their copy

    def absent_of(self, keys: list[str]) -> list[str]:
        return [k for k in keys if k in self.absent]


def list_backfill_keys(s3: S3Client, mapping: BucketMapping, target_s3: S3Client | None = None) -> BackfillKeys:
    """Both sides listed once: the source's keys under the prefix (plus, with delete_extra, the target
    keys the source lacks), and the source keys the target does not have yet."""
    source = set(list_keys(s3, mapping.source, mapping.prefix))
    target = set(list_keys(target_s3 or s3, mapping.target, mapping.prefix))
    keys = source | target if mapping.delete_extra else source
    return BackfillKeys(sorted(keys), frozenset(source - target))


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


def reconcile_partition(
    plan: BucketPlan,
    partition: int,
    keys: list[str],
    s3: S3Client | BucketClients | None = None,
    absent: Collection[str] = (),
) -> PartitionResult:
    """Reconcile every key of one partition. Never raises for a key: failures are listed.

    ``s3`` (BucketClients, or one client for both sides) defaults to clients built from the plan.
    ``absent``: keys the target was just listed without (their first target read is skipped)."""
    started = time.monotonic()
    clients = (
        BucketClients.of(s3)
        if s3 is not None
        else BucketClients.connect(plan.source_where, plan.target_where, pool=plan.settings.concurrency + 4)
    )
    rate = plan.settings.request_rate
    bucket = CapacityBucket(rate, burst=max(rate, 1.0)) if rate > 0 else None
    actions: Counter[str] = Counter()
    failed: list[tuple[str, str]] = []
    requests = bytes_copied = 0
    listed_absent = frozenset(absent)

    def one(key: str) -> ReconcileResult | tuple[str, str]:
        if bucket is not None:
            bucket.acquire()
        try:
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

    with ThreadPoolExecutor(max_workers=plan.settings.concurrency) as pool:
        for outcome in pool.map(one, keys):
            if isinstance(outcome, tuple):
                failed.append(outcome)
                continue
            actions[outcome.action] += 1
            requests += outcome.requests
            bytes_copied += outcome.bytes_copied
    return PartitionResult(
        partition=partition,
        keys=len(keys),
        actions=dict(actions),
        failed=tuple(failed),
        requests=requests,
        bytes_copied=bytes_copied,
        seconds=time.monotonic() - started,
    )


@dataclass(frozen=True)
class BucketBackfillSummary:
    source: str
    target: str
    results: tuple[PartitionResult, ...]
    seconds: float

    @property
    def keys(self) -> int:
        return sum(r.keys for r in self.results)

    @property
    def failed(self) -> tuple[tuple[str, str], ...]:
        return tuple(f for r in self.results for f in r.failed)

    @property
    def actions(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for r in self.results:
            total.update(r.actions)
        return dict(total)

    def describe(self) -> str:
        actions = ", ".join(f"{k} {v}" for k, v in sorted(self.actions.items()))
        lines = [
            f"{self.source} -> {self.target}: {len(self.results)} partitions, {self.keys} keys ({actions}), "
            f"{len(self.failed)} failed, {self.seconds:.1f}s"
        ]
        lines += [f"  {key!r}: {error}" for key, error in self.failed[:20]]
        return "\n".join(lines)
