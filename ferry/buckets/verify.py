"""VERIFY for buckets: prove, key by key, that the target holds exactly what the source holds.

Both buckets are listed under ``mapping.prefix`` (ListObjectsV2). The target's keys are held in a
set and the source's pages are streamed past it: a source key the target lacks is *missing*, a
target key left over is *extra* (always a difference, whatever ``delete_extra`` says: a target
that holds more than the source is not a copy of it). Every key on both sides is HEADed on both
sides on a thread pool and compared with :func:`ferry.buckets.objects.differences` — size,
content identity, content headers, user metadata and (unless switched off) tags.

Every candidate is then read again on both sides before it is reported: a listing or a HEAD that
raced a live write (or the replication of it) does not show up as a false difference. With
``repair`` each confirmed difference goes through :func:`ferry.buckets.reconcile.reconcile_key`
(which copies the source's current object, or deletes the target key when the source has none),
and is checked once more; whatever still differs stays in the report.

Only keys and counts are logged, never object contents, metadata values or tags.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ferry.aws import call_with_retries, error_name, list_objects_page, translate_error
from ferry.buckets.objects import ObjectState, differences, head_object
from ferry.buckets.reconcile import reconcile_key
from ferry.clients import BucketClients, bucket_clients
from ferry.spec import BucketMapping, Spec
from ferry.verify_report import OnVerifyProgress, VerifyProgress, VerifyReportMixin

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)
T = TypeVar("T")

MISSING = "missing"  # in the source, not in the target
EXTRA = "extra"  # in the target, not in the source
DIFFERENT = "different"  # in both, not identical
KINDS = (MISSING, EXTRA, DIFFERENT)

_ATTEMPTS = 8  # on top of botocore's own retries, for transient errors
_IN_FLIGHT_PER_WORKER = 64  # bounds the comparisons queued while the source is still being listed


@dataclass(frozen=True)
class BucketDifference:
    kind: str
    key: str
    attributes: tuple[str, ...] = ()  # for "different": what differs ("content", "metadata", "tags" …)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "attributes": list(self.attributes)}


@dataclass(frozen=True)
class BucketVerifyReport(VerifyReportMixin):
    KINDS: ClassVar[tuple[str, ...]] = KINDS
    UNIT: ClassVar[str] = "objects"
    PARTS: ClassVar[str] = ""

    source: str
    target: str
    source_items: int  # objects listed under the prefix
    target_items: int
    differences: tuple[BucketDifference, ...]
    segments: int  # listing partitions
    seconds: float
    repaired: int = 0


# --- reads ---------------------------------------------------------------------------------


def _call(fn: Callable[[], T], what: str) -> T:
    return call_with_retries(fn, what, attempts=_ATTEMPTS, base_delay=0.2)


def list_key_pages(s3: S3Client, bucket: str, prefix: str = "") -> Iterator[list[str]]:
    """The keys under ``prefix``, one ListObjectsV2 page at a time. SetupError when the bucket does not exist."""
    token: str | None = None
    while True:
        page = _call(partial(list_objects_page, s3, bucket, prefix, token), f"ListObjectsV2 {bucket}")
        yield [entry["Key"] for entry in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            return
        token = page["NextContinuationToken"]


def _head(s3: S3Client, bucket: str, key: str, with_tags: bool) -> ObjectState | None:
    return _call(lambda: head_object(s3, bucket, key, with_tags=with_tags), f"HEAD s3://{bucket}/{key}")


def classify(
    key: str, source: ObjectState | None, target: ObjectState | None, *, compare_tags: bool
) -> BucketDifference | None:
    """How the target's object at ``key`` differs from the source's; None when they agree."""
    if source is None and target is None:
        return None
    if target is None:
        return BucketDifference(MISSING, key)
    if source is None:
        return BucketDifference(EXTRA, key)
    attributes = differences(source, target, compare_tags=compare_tags)
    return BucketDifference(DIFFERENT, key, tuple(attributes)) if attributes else None


@dataclass(frozen=True)
class _Comparison:
    key: str
    difference: BucketDifference | None
    in_source: bool
    in_target: bool


class _Comparer:
    """HEADs one key on both sides and classifies it; shared by the first pass and the re-checks."""

    def __init__(self, clients: BucketClients, mapping: BucketMapping, compare_tags: bool) -> None:
        self.clients = clients
        self.mapping = mapping
        self.compare_tags = compare_tags

    def __call__(self, key: str) -> _Comparison:
        source = _head(self.clients.source, self.mapping.source, key, self.compare_tags)
        target = _head(self.clients.target, self.mapping.target, key, self.compare_tags)
        difference = classify(key, source, target, compare_tags=self.compare_tags)
        return _Comparison(key, difference, source is not None, target is not None)


def _compare_all(
    pool: ThreadPoolExecutor, compare: Callable[[str], _Comparison], keys: Iterable[str], limit: int
) -> list[_Comparison]:
    """``compare`` every key on the pool, at most ``limit`` in flight; every comparison, in no order."""
    found: list[_Comparison] = []
    pending: set[Future[_Comparison]] = set()
    try:
        for key in keys:
            pending.add(pool.submit(compare, key))
            if len(pending) >= limit:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                found += [future.result() for future in done]
        done, pending = wait(pending)
        found += [future.result() for future in done]
    finally:
        for future in pending:
            future.cancel()
    return found


def _differing(comparisons: list[_Comparison]) -> list[BucketDifference]:
    return [c.difference for c in comparisons if c.difference is not None]


def _repair(
    pool: ThreadPoolExecutor, clients: BucketClients, spec: Spec, mapping: BucketMapping, keys: list[str]
) -> None:
    """Reconcile every key; a key that fails is logged and stays in the report (the re-check sees it)."""

    def one(key: str) -> None:
        try:
            result = reconcile_key(clients.source, mapping, key, spec.s3, target_s3=clients.target)
        except Exception as exc:
            log.error(
                "repair %s -> %s: key %r not reconciled: %s",
                mapping.source,
                mapping.target,
                key,
                error_name(exc),
            )
            return
        log.info("repair %s -> %s: %s key %r", mapping.source, mapping.target, result.action, key)

    for future in [pool.submit(one, key) for key in keys]:
        future.result()


class _SourceSplit:
    """Streams the source's listing past the target's keys: common keys are yielded (and taken
    out of ``target_keys``, which ends up holding the extras), the others collected as missing."""

    def __init__(self, s3: S3Client, mapping: BucketMapping, target_keys: set[str]) -> None:
        self.s3 = s3
        self.mapping = mapping
        self.target_keys = target_keys
        self.missing: list[BucketDifference] = []
        self.listed = 0

    def common_keys(self) -> Iterator[str]:
        for page in list_key_pages(self.s3, self.mapping.source, self.mapping.prefix):
            for key in page:
                self.listed += 1
                if key in self.target_keys:
                    self.target_keys.discard(key)
                    yield key
                else:
                    self.missing.append(BucketDifference(MISSING, key))


# --- a whole bucket --------------------------------------------------------------------------


@dataclass
class _BucketVerify:
    """One verify of one bucket mapping, pass by pass, on one thread pool."""

    spec: Spec
    mapping: BucketMapping
    clients: BucketClients
    pool: ThreadPoolExecutor
    compare: _Comparer
    limit: int
    source_count: int = 0
    target_count: int = 0
    repaired: int = 0
    # Where each candidate was listed: (in the source listing, in the target listing).
    listed: dict[str, tuple[bool, bool]] = field(default_factory=dict)
    on_progress: OnVerifyProgress | None = None

    def candidates(self) -> list[BucketDifference]:
        """Both listings compared; every common key HEADed on both sides."""
        target_keys: set[str] = set()
        for page in list_key_pages(self.clients.target, self.mapping.target, self.mapping.prefix):
            target_keys.update(page)
        self.target_count = len(target_keys)
        split = _SourceSplit(self.clients.source, self.mapping, target_keys)
        found = _differing(_compare_all(self.pool, self._counted(split), split.common_keys(), self.limit))
        self.source_count = split.listed
        self._tell(split.listed)
        extra = [BucketDifference(EXTRA, key) for key in sorted(target_keys)]
        for kind, where in ((found, (True, True)), (split.missing, (True, False)), (extra, (False, True))):
            self.listed.update(dict.fromkeys((d.key for d in kind), where))
        return [*found, *split.missing, *extra]

    def _tell(self, compared: int) -> None:
        if self.on_progress is not None:
            self.on_progress(VerifyProgress(self.mapping.source, "objects", compared, self.target_count))

    def _counted(self, split: _SourceSplit) -> Callable[[str], _Comparison]:
        """``compare``, telling ``on_progress`` the source keys compared so far (HEADed, or missing)."""
        if self.on_progress is None:
            return self.compare
        lock = threading.Lock()
        headed = [0]

        def compare(key: str) -> _Comparison:
            comparison = self.compare(key)
            with lock:
                headed[0] += 1
                compared = headed[0] + len(split.missing)
            self._tell(compared)
            return comparison

        return compare

    def confirmed(self, candidates: list[BucketDifference]) -> list[BucketDifference]:
        return _differing(_compare_all(self.pool, self.compare, [d.key for d in candidates], self.limit))

    def repair(self, confirmed: list[BucketDifference]) -> list[BucketDifference]:
        """Reconcile every confirmed key, compare them again; what still differs. The object counts
        become those after the repair."""
        _repair(self.pool, self.clients, self.spec, self.mapping, [d.key for d in confirmed])
        after = _compare_all(self.pool, self.compare, [d.key for d in confirmed], self.limit)
        for comparison in after:
            in_source, in_target = self.listed[comparison.key]
            self.source_count += comparison.in_source - in_source
            self.target_count += comparison.in_target - in_target
        remaining = _differing(after)
        self.repaired = len(confirmed) - len(remaining)
        return remaining


def verify_bucket(
    spec: Spec,
    mapping: BucketMapping,
    *,
    workers: int = 8,
    repair: bool = False,
    compare_tags: bool | None = None,
    s3_factory: Callable[[], S3Client | BucketClients] | None = None,
    on_progress: OnVerifyProgress | None = None,
) -> BucketVerifyReport:
    """Verify (and with ``repair`` fix) one bucket mapping. Tags are compared unless ``compare_tags``
    is False (default: ``spec.s3.verify_tags``). Raises a ferry error if a listing or HEAD fails.
    With ``repair`` the object counts are those after the repair.
    ``s3_factory`` returns BucketClients or one client for both sides (default: the spec's clients).
    ``on_progress`` (from any thread): source objects compared, against the target's listed count."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    with_tags = spec.s3.verify_tags if compare_tags is None else compare_tags
    factory = s3_factory or (lambda: bucket_clients(spec, pool=max(32, 2 * workers + 4)))
    started = time.monotonic()
    clients = BucketClients.of(factory())  # low-level boto3 clients are thread-safe: one per side serves the pool
    what = f"verify {mapping.source} -> {mapping.target}"
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ferry-verify") as pool:
            run = _BucketVerify(
                spec,
                mapping,
                clients,
                pool,
                _Comparer(clients, mapping, with_tags),
                workers * _IN_FLIGHT_PER_WORKER,
                on_progress=on_progress,
            )
            candidates = run.candidates()
            confirmed = run.confirmed(candidates)
            if len(confirmed) < len(candidates):
                log.info(
                    "%s: %d of %d candidate differences gone on a fresh read",
                    what,
                    len(candidates) - len(confirmed),
                    len(candidates),
                )
            if repair and confirmed:
                confirmed = run.repair(confirmed)
    except Exception as exc:
        translated = translate_error(exc, what)
        if translated is exc:
            raise
        raise translated from exc
    differences_found = tuple(sorted(confirmed, key=lambda d: (d.kind, d.key)))
    for difference in differences_found:
        log.debug("%s: %s key %r %s", what, difference.kind, difference.key, ",".join(difference.attributes))
    seconds = time.monotonic() - started
    report = BucketVerifyReport(
        mapping.source, mapping.target, run.source_count, run.target_count, differences_found, 1, seconds, run.repaired
    )
    log.info("%s: %s, differences %s", what, report.summary(), report.counts())
    return report
