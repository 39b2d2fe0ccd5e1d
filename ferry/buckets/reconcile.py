"""Make one target key equal to the same source key: events are hints, the source's current state is the truth.

``reconcile_key`` reads both sides, and writes the target only when they differ: a server-side copy
pinned to the ETag it just read (``CopySourceIfMatch``), or a delete when the source has no such key.
Then it reads both sides again, and goes round again until they agree, at most ``max_rounds`` writes.
Whatever the order or the number of times events arrive, the target ends up as the source is.

A backfill that has just listed the target knows which keys it lacks (``target_absent``): the first
round then skips the target read and the source's tags, and the copy takes the tags from the source
server-side (``TaggingDirective=COPY``) — two requests fewer per new key. Only the first read is
skipped: after the write both sides are read in full as always, so a listing that was stale by then
costs at most a needless copy and another round, never an inexact target.

Under two-way replication (docs/adr/0009) a ``guard`` (``ferry.buckets.twoway.KeyGuard``) is asked before
every write and told when both sides are equal: a write it refuses ends the call as ``conflict``, nothing
written. Without one, reconcile is as it always was.

Nothing is ever written to the source bucket: every write names ``mapping.target``. Object bodies
never pass through this process (and are never logged): S3 copies them.

Across accounts the source is read with the source side's client (HEADs, tags, part sizes) and
everything on the target with the target side's. A server-side copy (CopyObject, UploadPartCopy) is
ONE request, made by the target side: S3 checks that the *target* role may read the source object,
so the source bucket's policy must grant the target role read (``s3:GetObject`` on the source
objects; for SSE-KMS sources also ``kms:Decrypt`` on their key). Terraform outputs that
bucket-policy statement for the source account to apply.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast
from urllib.parse import quote, urlencode

from ferry.aws import (
    call_with_retries,
    copy_object_pinned,
    error_name,
    object_tags_or_none,
    unsure_write,
    upload_part_copy_pinned,
)
from ferry.buckets import objects
from ferry.buckets.objects import ObjectState
from ferry.errors import OutcomeUnknown, PermanentError, RetryableError, SourceChanged
from ferry.spec import BucketMapping, S3Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

log = logging.getLogger(__name__)
T = TypeVar("T")

UNCHANGED = "unchanged"
COPIED = "copied"
COPIED_MULTIPART = "copied-multipart"
DELETED = "deleted"
ABSENT = "absent"
IGNORED = "ignored"
CHANGED = "changed-since-listing"  # a replay copy skipped the key: the source changed after the listing
CONFLICT = "conflict"  # two-way: both sides changed the key; nothing written, the conflict recorded
OUTDATED = "outdated"  # two-way: the source still holds a state ferry synced; the target's change goes the other way
RECHECK = "recheck"  # two-way, never a result: read both sides again before a conflict is called
ACTIONS = (UNCHANGED, COPIED, COPIED_MULTIPART, DELETED, ABSENT, IGNORED, CHANGED, CONFLICT, OUTDATED)

MAX_PART_WORKERS = 8
# Content headers passed to CreateMultipartUpload as they are (Expires is parsed into a datetime).
_MULTIPART_HEADERS = ("ContentType", "ContentEncoding", "ContentDisposition", "ContentLanguage", "CacheControl")


@dataclass(frozen=True)
class ReconcileResult:
    key: str
    action: str  # one of ACTIONS
    rounds: int  # write rounds used (0 when nothing was written)
    requests: int  # S3 requests made (HEADs, tagging reads, copies, deletes…), retries included
    bytes_copied: int  # bytes copied server-side by successful CopyObject/UploadPartCopy requests


class WriteGuard(Protocol):
    """Two-way replication's say over reconcile's writes (``ferry.buckets.twoway.KeyGuard``)."""

    def refusal(self, target: ObjectState | None, source: ObjectState | None) -> str | None:
        """Before the target (None: absent) is made ``source`` (None: deleted): None to write it, RECHECK to
        read both sides again and ask again, else the action to report (CONFLICT, OUTDATED) and nothing is
        written."""
        ...

    def landed(self, source: ObjectState | None) -> None:
        """The write ``refusal`` allowed has landed: the target is now ``source`` (None: deleted)."""
        ...

    def settled(self, source: ObjectState | None, target: ObjectState | None) -> None:
        """Both sides are equal (None: both absent)."""
        ...


class ReconcileError(RetryableError):
    """The key did not converge within ``max_rounds`` writes (the source kept changing): fail the record."""

    def __init__(self, bucket: str, key: str, rounds: int, problem: str) -> None:
        super().__init__(f"s3://{bucket}/{key}: not reconciled after {rounds} write rounds ({problem})")
        self.bucket = bucket
        self.key = key
        self.rounds = rounds
        self.problem = problem


class _CountingClient:
    """Forwards every call to a boto3 client and counts it (thread-safe): the ``requests`` of a result."""

    def __init__(self, client: S3Client, counter: _Counter) -> None:
        self._client = client
        self._counter = counter

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute) or name.startswith("_") or name in ("can_paginate", "get_paginator", "get_waiter"):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._counter.add()
            return attribute(*args, **kwargs)

        return counted


class _Counter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.bytes_copied = 0

    def add(self, requests: int = 1, bytes_copied: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.bytes_copied += bytes_copied


def _retried(call: Callable[[], T], what: str) -> T:
    return call_with_retries(call, what)


def _has_full_object_checksum(state: ObjectState) -> bool:
    """A checksum that a CopyObject carries over unchanged (composite ones read ``<base64>-N``)."""
    return any("-" not in value for _, value in state.checksums)


def needs_part_copy(source: ObjectState, settings: S3Settings) -> bool:
    """Whether to copy part by part with the source's layout rather than with one CopyObject.

    A single-part source (at most 5 GiB) is always one CopyObject: only that keeps its plain-MD5 ETag.
    A multipart source goes part by part above ``multipart_threshold`` — and below it too when it carries
    no full-object checksum: CopyObject would give the target a plain-MD5 ETag that cannot be compared
    with the source's ``-N`` ETag, so no content identity would show the two equal and the key could
    never converge (it would be copied on every round and every event).
    """
    if not source.multipart:
        return False
    return source.size > settings.multipart_threshold or not _has_full_object_checksum(source)


def _sse_arguments(source: ObjectState) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if source.sse:
        out["ServerSideEncryption"] = source.sse
        if source.sse.startswith("aws:kms") and source.sse_kms_key_id:
            out["SSEKMSKeyId"] = source.sse_kms_key_id
    return out


def _encode_tags(tags: tuple[tuple[str, str], ...]) -> str:
    return urlencode(tags, quote_via=quote)  # %20 for spaces: no '+' ambiguity


def _tagging_arguments(source: ObjectState) -> dict[str, Any]:
    """The tags as read, set explicitly (REPLACE) rather than TaggingDirective=COPY.

    Equivalent on S3: tags are not covered by the ETag pin either way, and the re-read after the
    copy checks them. But moto's COPY merges the source's tags into the tags the target key already
    has, so a removed tag would never go away there; REPLACE converges on both.

    Tags not read (``None``: a key the target was listed without) are copied by S3 (COPY): with no
    target key there is nothing to merge into, and should one have appeared since the listing the
    re-read finds any difference and the next round sets the tags explicitly.
    """
    if source.tags is None:
        return {"TaggingDirective": "COPY"}
    out: dict[str, Any] = {"TaggingDirective": "REPLACE"}
    if source.tags:
        out["Tagging"] = _encode_tags(source.tags)
    return out


def _create_arguments(bucket: str, source: ObjectState) -> dict[str, Any]:
    """CreateMultipartUpload inherits nothing: every header, metadata, tag and setting is passed explicitly."""
    out: dict[str, Any] = {"Bucket": bucket, "Key": source.key, "StorageClass": source.storage_class}
    for name in _MULTIPART_HEADERS:
        value = source.header(name)
        if value is not None:
            out[name] = value
    expires = source.header("Expires")
    if expires is not None:
        try:
            out["Expires"] = parsedate_to_datetime(expires)
        except (TypeError, ValueError):
            raise PermanentError(
                f"s3://{bucket}/{source.key}: Expires {expires!r} is not an HTTP date, "
                "so a multipart copy cannot carry it; fix it on the source object"
            ) from None
    if source.metadata:
        out["Metadata"] = dict(source.metadata)
    if source.tags:
        out["Tagging"] = _encode_tags(source.tags)
    out.update(_sse_arguments(source))
    return out


class _Reconciler:
    def __init__(
        self,
        s3: S3Client,
        target_s3: S3Client,
        mapping: BucketMapping,
        key: str,
        settings: S3Settings,
        *,
        target_absent: bool = False,
        guard: WriteGuard | None = None,
    ) -> None:
        self.counter = _Counter()
        # The counting wrappers forward every client method: typed as the clients they wrap.
        self.source_s3 = cast("S3Client", _CountingClient(s3, self.counter))
        self.target_s3 = cast("S3Client", _CountingClient(target_s3, self.counter))
        self.mapping = mapping
        self.key = key
        self.settings = settings
        self.target_absent = target_absent  # the caller's listing lacked the key: skip the first target read
        self.guard = guard  # two-way: each write must be allowed, the converged state is reported

    # --- reads ----------------------------------------------------------------------------------

    def head_source(self, *, with_tags: bool = True) -> ObjectState | None:
        return _retried(
            lambda: objects.head_object(self.source_s3, self.mapping.source, self.key, with_tags=with_tags),
            f"head s3://{self.mapping.source}/{self.key}",
        )

    def source_tags(self, source: ObjectState) -> ObjectState | None:
        """``source`` with its tags (a HEAD made without them); None when the key has gone since."""
        tag_set = _retried(
            lambda: object_tags_or_none(self.source_s3, self.mapping.source, self.key),
            f"tags of s3://{self.mapping.source}/{self.key}",
        )
        if tag_set is None:
            return None
        return replace(source, tags=tuple(sorted((t["Key"], t["Value"]) for t in tag_set)))

    def head_target(self, *, with_tags: bool) -> ObjectState | None:
        return _retried(
            lambda: objects.head_object(self.target_s3, self.mapping.target, self.key, with_tags=with_tags),
            f"head s3://{self.mapping.target}/{self.key}",
        )

    # --- writes: every one names the target bucket -----------------------------------------------

    def _write(self, operation: str, bucket: str, call: Callable[[str], T], *, final: str = "") -> T:
        """``call(bucket)`` with retries: the one way this class writes, and only to the target bucket.
        ``final``: the API operation that changes the key (CopyObject, DeleteObject, CompleteMultipartUpload);
        under two-way replication it is never resent blindly (``ferry.aws.unsure_write``): OutcomeUnknown."""
        if bucket != self.mapping.target:  # a guard, never expected to trip
            raise PermanentError(
                f"refusing {operation} on s3://{bucket}/{self.key}: only {self.mapping.target} is written"
            )
        what = f"{operation} s3://{bucket}/{self.key}"
        if not final or self.guard is None:
            return _retried(lambda: call(bucket), what)

        def once() -> T:
            with unsure_write(self.target_s3, final, what):
                return call(bucket)

        return _retried(once, what)  # OutcomeUnknown is not retried

    def delete_target(self) -> None:
        self._write(
            "delete_object",
            self.mapping.target,
            lambda bucket: self.target_s3.delete_object(Bucket=bucket, Key=self.key),
            final="DeleteObject",
        )

    def copy_object(self, source: ObjectState) -> None:
        """One CopyObject pinned to the source's ETag; SourceChanged when the source moved meanwhile."""
        # Made by the target side, reading the source server-side: see the module docstring for the
        # source bucket policy a cross-account copy needs.
        self._write(
            "copy_object",
            self.mapping.target,
            lambda bucket: copy_object_pinned(
                self.target_s3,
                source_bucket=self.mapping.source,
                bucket=bucket,
                key=self.key,
                etag=source.etag,
                MetadataDirective="COPY",
                **_tagging_arguments(source),
                StorageClass=source.storage_class,
                **_sse_arguments(source),
            ),
            final="CopyObject",
        )
        self.counter.add(0, source.size)

    def copy_parts(self, source: ObjectState) -> None:
        try:
            sizes = _retried(
                lambda: objects.part_sizes(self.source_s3, self.mapping.source, self.key, source),
                f"part sizes of s3://{self.mapping.source}/{self.key}",
            )
        except Exception as exc:
            # The part HEADs are not pinned: a source overwritten (or deleted) since it was read shows up
            # as parts that do not add up or do not exist. That is a lost round, not a failure.
            now = self.head_source(with_tags=False)
            if now is None or now.etag != source.etag:
                raise SourceChanged("the source changed while its parts were read") from exc
            raise
        upload_id = self._write(
            "create_multipart_upload",
            self.mapping.target,
            lambda bucket: self.target_s3.create_multipart_upload(**_create_arguments(bucket, source)),
        )["UploadId"]
        try:
            parts = self._copy_each_part(source, sizes, upload_id)
            self._write(
                "complete_multipart_upload",
                self.mapping.target,
                lambda bucket: self.target_s3.complete_multipart_upload(
                    Bucket=bucket, Key=self.key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                ),
                final="CompleteMultipartUpload",
            )
        except BaseException:
            # A part copy that met a changed source raised SourceChanged: the round is lost, not the key.
            self._abort(upload_id)
            raise

    def _copy_each_part(
        self, source: ObjectState, sizes: tuple[int, ...], upload_id: str
    ) -> list[CompletedPartTypeDef]:
        def copy_part(number: int, start: int, size: int) -> CompletedPartTypeDef:
            result = self._write(
                "upload_part_copy",
                self.mapping.target,
                lambda bucket: upload_part_copy_pinned(
                    self.target_s3,
                    source_bucket=self.mapping.source,
                    bucket=bucket,
                    key=self.key,
                    etag=source.etag,
                    upload_id=upload_id,
                    part_number=number,
                    byte_range=f"bytes={start}-{start + size - 1}",
                ),
            )
            self.counter.add(0, size)
            return {"ETag": result["CopyPartResult"]["ETag"], "PartNumber": number}

        offsets = [sum(sizes[:i]) for i in range(len(sizes))]
        pool = ThreadPoolExecutor(max_workers=min(MAX_PART_WORKERS, len(sizes)), thread_name_prefix="ferry-part")
        futures: list[Future[CompletedPartTypeDef]] = []
        try:
            for number, (start, size) in enumerate(zip(offsets, sizes, strict=True), start=1):
                futures.append(pool.submit(copy_part, number, start, size))
            wait(futures, return_when=FIRST_EXCEPTION)
        finally:
            # On a failure: no part still queued may start, and none may still run when the upload is aborted.
            pool.shutdown(wait=True, cancel_futures=True)
        return [future.result() for future in futures]

    def _abort(self, upload_id: str) -> None:
        try:
            self._write(
                "abort_multipart_upload",
                self.mapping.target,
                lambda bucket: self.target_s3.abort_multipart_upload(Bucket=bucket, Key=self.key, UploadId=upload_id),
            )
        except Exception as exc:  # the original failure matters more; a lifecycle rule cleans up leftovers
            log.error(
                "s3://%s/%s: could not abort multipart upload %s: %s",
                self.mapping.target,
                self.key,
                upload_id,
                error_name(exc),
            )

    # --- the loop -----------------------------------------------------------------------------------

    def run(self) -> ReconcileResult:
        rounds = 0
        deleted = False
        copied: str | None = None  # COPIED or COPIED_MULTIPART: the last copy this call made
        listed_absent = self.target_absent
        while True:
            source = self.head_source(with_tags=not listed_absent)
            first_read_skipped, listed_absent = listed_absent, False  # the listing stands for the first read only
            if source is None:
                target = self.head_target(with_tags=self.guard is not None)  # a guard fingerprints the tags
                if target is None:
                    if self.guard is not None:
                        self.guard.settled(None, None)
                    return self._result(DELETED if deleted else ABSENT, rounds)
                self._check_budget(rounds, "the target key still exists while the source has none")
                refused = self.guard.refusal(target, None) if self.guard is not None else None
                if refused == RECHECK:
                    continue
                if refused is not None:
                    return self._result(refused, rounds)
                rounds += 1
                log.debug(
                    "s3://%s/%s: source absent, deleting the target (round %d)", self.mapping.target, self.key, rounds
                )
                deleted = True  # (or may have, when its answer was lost: the re-read tells)
                try:
                    self.delete_target()
                    if self.guard is not None:
                        self.guard.landed(None)
                except OutcomeUnknown as unsure:
                    log.info("s3://%s/%s: %s; reading both sides again", self.mapping.target, self.key, unsure)
                continue  # re-read: the source may have reappeared meanwhile

            # A key listed absent is not read: the copy below is followed by a full re-read of both sides.
            target = None if first_read_skipped else self.head_target(with_tags=True)
            differ = ["missing"] if target is None else objects.differences(source, target)
            if not differ:
                if self.guard is not None:
                    self.guard.settled(source, target)
                return self._result(copied or UNCHANGED, rounds)
            self._check_budget(rounds, f"still differs: {', '.join(differ)}")
            multipart = needs_part_copy(source, self.settings)
            if multipart and source.tags is None:  # CreateMultipartUpload takes tags only explicitly
                with_tags = self.source_tags(source)
                if with_tags is None:
                    continue  # the source has gone since its HEAD: read both sides again
                source = with_tags
            refused = self.guard.refusal(target, source) if self.guard is not None else None
            if refused == RECHECK:
                continue
            if refused is not None:
                return self._result(refused, rounds)
            rounds += 1
            log.debug(
                "s3://%s/%s: %s differs (%s), copying%s (round %d)",
                self.mapping.target,
                self.key,
                "target" if target else "target key missing",
                ", ".join(differ),
                " part by part" if multipart else "",
                rounds,
            )
            try:
                if multipart:
                    self.copy_parts(source)
                else:
                    self.copy_object(source)
                copied = COPIED_MULTIPART if multipart else COPIED
                if self.guard is not None:
                    self.guard.landed(source)
            except OutcomeUnknown as unsure:  # two-way: it may have landed; whether it did is read, not assumed
                copied = COPIED_MULTIPART if multipart else COPIED
                log.info("s3://%s/%s: %s; reading both sides again", self.mapping.target, self.key, unsure)
            except SourceChanged as moved:
                log.info(
                    "s3://%s/%s: source changed during the copy (%s), reading it again",
                    self.mapping.source,
                    self.key,
                    moved,
                )

    def _check_budget(self, rounds: int, problem: str) -> None:
        if rounds >= self.settings.max_rounds:
            raise ReconcileError(self.mapping.target, self.key, rounds, problem)

    def _result(self, action: str, rounds: int) -> ReconcileResult:
        result = ReconcileResult(self.key, action, rounds, self.counter.requests, self.counter.bytes_copied)
        log.log(
            logging.INFO if rounds else logging.DEBUG,  # a backfill finds most keys unchanged: keep those quiet
            "s3://%s/%s: %s (rounds=%d requests=%d bytes_copied=%d)",
            self.mapping.target,
            self.key,
            action,
            rounds,
            result.requests,
            result.bytes_copied,
        )
        return result


@dataclass(frozen=True)
class ListedObject:
    """A key as ListObjectsV2 shows it: enough for a replay copy to copy it without reading it first."""

    key: str
    etag: str
    size: int
    storage_class: str = "STANDARD"

    def state(self) -> ObjectState:
        """What the listing knows of the object: its tags unread (None), so a copy takes them server-side."""
        return ObjectState(self.key, self.size, self.etag, (), (), None, storage_class=self.storage_class)


def copy_listed(
    s3: S3Client,
    mapping: BucketMapping,
    entry: ListedObject,
    settings: S3Settings,
    *,
    target_s3: S3Client | None = None,
) -> ReconcileResult:
    """The replay copy of one listed key (docs/adr/0004): one CopyObject pinned to the listing's ETag
    (``CopySourceIfMatch``), headers, metadata and tags copied server-side (``MetadataDirective`` and
    ``TaggingDirective`` COPY), the listing's storage class; nothing read before or after. A multipart
    source (ETag ``…-N``) is read once (HEAD with tags) and copied part by part with its own layout, as
    ``reconcile_key`` does. A source that changed after the listing (412 PreconditionFailed, or gone) is
    skipped, ``CHANGED``: its event waits in the queue and is reconciled at the release.

    What the listing cannot tell is not carried: a per-object SSE-KMS key other than the target bucket's
    default (the target gets its bucket's default encryption; insert-only's reconcile carries it)."""
    copier = _Reconciler(s3, target_s3 if target_s3 is not None else s3, mapping, entry.key, settings)
    try:
        if "-" not in entry.etag.strip('"'):
            copier.copy_object(entry.state())
            return copier._result(COPIED, 1)
        source = copier.head_source(with_tags=True)
        if source is None or source.etag != entry.etag:
            return copier._result(CHANGED, 0)
        if needs_part_copy(source, settings):
            copier.copy_parts(source)
            return copier._result(COPIED_MULTIPART, 1)
        copier.copy_object(source)
        return copier._result(COPIED, 1)
    except SourceChanged:
        return copier._result(CHANGED, 0)


def reconcile_key(
    s3: S3Client,
    mapping: BucketMapping,
    key: str,
    settings: S3Settings,
    *,
    target_s3: S3Client | None = None,
    target_absent: bool = False,
    guard: WriteGuard | None = None,
) -> ReconcileResult:
    """Make ``s3://target/key`` equal to ``s3://source/key`` as the source is now; idempotent.

    ``s3`` reads the source; ``target_s3`` (default ``s3``) reads and writes the target and issues the
    copies, which read the source server-side. Raises :class:`ReconcileError` when the key has not
    converged after ``settings.max_rounds`` writes (the source kept changing), so the caller fails the
    record and it is retried; S3 errors that are not transient propagate unchanged.

    ``target_absent``: the caller has just listed the target without this key (a backfill), so the
    first round copies without reading the target or the source's tags; the reads after the write
    are the same as always (see the module docstring).

    ``guard`` (two-way replication, ``ferry.buckets.twoway.KeyGuard``): asked before every write, told
    when both sides are equal; a write it refuses ends the call with :data:`CONFLICT`, nothing written.
    """
    if not key.startswith(mapping.prefix):
        return ReconcileResult(key, IGNORED, 0, 0, 0)
    if mapping.source == mapping.target:
        raise PermanentError(f"bucket mapping {mapping.source!r}: the target must differ from the source")
    if guard is not None and target_absent:
        raise PermanentError(f"s3://{mapping.target}/{key}: a two-way guard needs the target read, not listed absent")
    target = target_s3 if target_s3 is not None else s3
    return _Reconciler(s3, target, mapping, key, settings, target_absent=target_absent, guard=guard).run()
