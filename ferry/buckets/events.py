"""S3 object events, as they arrive in SQS message bodies, and their replication.

Two shapes reach the ``bucket_events`` queue:

- an S3 event notification (bucket notification configuration → SQS):
  ``{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {...}}]}``.
  Its keys are URL-encoded with ``+`` for spaces (documented), so they are decoded with
  ``unquote_plus``; every record of the message is processed. The ``s3:TestEvent`` S3 sends when
  the configuration is written carries no object and yields nothing.
- an EventBridge event (bucket → EventBridge → rule → SQS):
  ``{"source": "aws.s3", "detail-type": "Object Created", "detail": {"bucket": ..., "object": ...}}``.
  The S3 documentation of this shape says nothing about encoding the key (its notification page
  does), moto delivers the key as is, but Powertools' ``S3EventBridgeNotificationObject.key``
  applies ``unquote_plus``. Decoding a key that was not encoded loses it (``a+b`` → ``a b``);
  not decoding one that was does too. Events are only hints and reconciling a key that does not
  exist is harmless (it answers "absent", or removes a stale target copy), so both readings are
  returned when they differ: the key as delivered first, then its ``unquote_plus`` form.

Events are hints: delivery is at least once and unordered, and the kind is informational.
:class:`BucketReplicator` reconciles the key, which reads the current source object and makes
the target equal to it; a duplicated, reordered or stale event is therefore harmless.

After each batch, ``BucketReplicator.record_lags`` writes one lag sample per source bucket to the run
log (ferry.runlog): a message's lag is the batch's end − its change time (the notification records'
earliest ``eventTime``, or the EventBridge event's ``time``), the failed ones are those the partial
batch response lists (by message id). A message counts once, for the first bucket it names.

Two-way replication (docs/adr/0009, ferry.buckets.twoway): once a pair's ``reverse`` step is recorded in
the state table, each reconcile is guarded — a write only on top of a state ferry made equal on both
sides, anything else a recorded conflict (action ``conflict``, nothing written). The steps are read
through a cache (``replication.phase_cache_seconds``); without a state table nothing is guarded.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from ferry.aws import is_missing_resource
from ferry.buckets.reconcile import ReconcileResult, reconcile_key
from ferry.buckets.twoway import KeyGuard
from ferry.errors import PoisonRecordError
from ferry.runlog import LagSample, RecordLag, RunLog, epoch_of, failed_identifiers, lag_samples_by_source
from ferry.spec import BucketMapping, Spec
from ferry.tables.state import BUCKET
from ferry.twoway import STEP_CAPTURE, STEP_REVERSE, StepsCache, TwoWayStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

KINDS = ("created", "removed", "changed")

# Notification eventName prefixes (before the first ':'); anything else of aws:s3 is "changed".
_NOTIFICATION_KINDS = {
    "ObjectCreated": "created",
    "ObjectRemoved": "removed",
    "LifecycleExpiration": "removed",
}
# EventBridge detail-types; other detail-types of aws.s3 with an object are "changed"
# (Object Tags Added/Deleted, Object ACL Updated, Object Restore *, Object Storage Class Changed, …).
_EVENTBRIDGE_KINDS = {
    "Object Created": "created",
    "Object Deleted": "removed",
}


@dataclass(frozen=True)
class ObjectEvent:
    bucket: str
    key: str  # decoded: the key as the S3 API takes it
    kind: str  # created | removed | changed (informational only)
    sequencer: str | None


def _mapping(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PoisonRecordError(field, f"must be an object, got {type(value).__name__}")
    return value


def _text(container: Mapping[str, Any], name: str, field: str) -> str:
    value = container.get(name)
    if not isinstance(value, str) or not value:
        raise PoisonRecordError(f"{field}.{name}", f"must be a non-empty string, got {value!r}")
    return value


def _sequencer(obj: Mapping[str, Any], field: str) -> str | None:
    value = obj.get("sequencer")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PoisonRecordError(f"{field}.sequencer", f"must be a string, got {type(value).__name__}")
    return value


def _notification_events(records: Any) -> list[ObjectEvent]:
    if not isinstance(records, list) or not records:
        raise PoisonRecordError("body.Records", "must be a non-empty list of S3 event records")
    events: list[ObjectEvent] = []
    for i, raw in enumerate(records):
        where = f"body.Records[{i}]"
        record = _mapping(raw, where)
        source = record.get("eventSource")
        if source != "aws:s3":
            raise PoisonRecordError(f"{where}.eventSource", f"is {source!r}, not 'aws:s3'")
        name = _text(record, "eventName", where)
        s3 = _mapping(record.get("s3"), f"{where}.s3")
        bucket = _text(_mapping(s3.get("bucket"), f"{where}.s3.bucket"), "name", f"{where}.s3.bucket")
        obj = _mapping(s3.get("object"), f"{where}.s3.object")
        encoded = _text(obj, "key", f"{where}.s3.object")
        kind = _NOTIFICATION_KINDS.get(name.split(":", 1)[0], "changed")
        events.append(ObjectEvent(bucket, unquote_plus(encoded), kind, _sequencer(obj, f"{where}.s3.object")))
    return events


def _eventbridge_events(message: Mapping[str, Any]) -> list[ObjectEvent]:
    detail_type = _text(message, "detail-type", "body")
    detail = _mapping(message.get("detail"), "body.detail")
    bucket = _text(_mapping(detail.get("bucket"), "body.detail.bucket"), "name", "body.detail.bucket")
    obj = _mapping(detail.get("object"), "body.detail.object")
    key = _text(obj, "key", "body.detail.object")
    kind = _EVENTBRIDGE_KINDS.get(detail_type, "changed")
    sequencer = _sequencer(obj, "body.detail.object")
    events = [ObjectEvent(bucket, key, kind, sequencer)]
    decoded = unquote_plus(key)
    if decoded != key and decoded:
        events.append(ObjectEvent(bucket, decoded, kind, sequencer))
    return events


def object_events(body: str | Mapping[str, Any]) -> list[ObjectEvent]:
    """The object events of one SQS message body (S3 notification or EventBridge event).

    Returns [] for S3's test event. Raises :class:`PoisonRecordError` naming the field for
    anything else: such a message can never be applied, whatever the retries.
    """
    if isinstance(body, str):
        try:
            message: Any = json.loads(body)
        except json.JSONDecodeError as exc:
            raise PoisonRecordError("body", f"is not JSON ({exc.msg} at position {exc.pos})") from None
        except RecursionError:
            raise PoisonRecordError("body", "is JSON nested too deeply to read") from None
    else:
        message = body
    message = _mapping(message, "body")
    if "Records" in message:
        return _notification_events(message["Records"])
    if message.get("Event") == "s3:TestEvent":
        return []
    if "source" in message:
        if message["source"] != "aws.s3":
            raise PoisonRecordError("body.source", f"is {message['source']!r}, not 'aws.s3'")
        return _eventbridge_events(message)
    keys = ", ".join(sorted(str(k) for k in message)[:8]) or "none"
    raise PoisonRecordError(
        "body", f"is neither an S3 event notification (Records) nor an EventBridge S3 event (source); keys: {keys}"
    )


def change_time(body: str | Mapping[str, Any]) -> float | None:
    """When the change of one SQS message body happened (epoch seconds): the earliest ``eventTime`` of an S3
    notification's records, or an EventBridge event's ``time``; None when the body does not say."""
    try:
        message = json.loads(body) if isinstance(body, str) else body
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(message, Mapping):
        return None
    records = message.get("Records")
    if isinstance(records, list):
        times = [epoch_of(r.get("eventTime")) for r in records if isinstance(r, Mapping)]
        known = [t for t in times if t is not None]
        return min(known) if known else None
    return epoch_of(message.get("time"))


def sqs_record_lag(record: Mapping[str, Any], failed: Iterable[str] = ()) -> RecordLag | None:
    """The lag view of one SQS record: the first bucket its body names, its change time and whether its
    ``messageId`` is in ``failed``; None for a body that names no bucket (S3's test event, a poison body)."""
    body = record.get("body")
    if not isinstance(body, str):
        return None
    try:
        events = object_events(body)
    except PoisonRecordError:
        return None
    if not events:
        return None
    return RecordLag(events[0].bucket, change_time(body), str(record.get("messageId", "")) in failed)


def sqs_lag_samples(
    records: Iterable[Mapping[str, Any]], response: Any, at: float, sources: Iterable[str] | None = None
) -> dict[str, LagSample]:
    """One lag sample per source bucket of an SQS batch applied at ``at``; ``response`` is the partial batch
    response; ``sources``: only these buckets (the spec's)."""
    failed = failed_identifiers(response)
    wanted = None if sources is None else set(sources)
    lags = [lag for lag in (sqs_record_lag(r, failed) for r in records) if lag is not None]
    return lag_samples_by_source((lag for lag in lags if wanted is None or lag.source in wanted), at)


class BucketReplicator:
    """Applies the object events of SQS records to the spec's target buckets by reconciling keys.

    ``s3`` reads the source buckets (source side); ``target_s3`` (default ``s3``) reads and writes
    the targets and makes the server-side copies (target side). ``switch``: the state table's two-way
    items (default: the ``runlog``'s state table; neither: two-way replication is never judged)."""

    def __init__(
        self,
        spec: Spec,
        s3: S3Client,
        target_s3: S3Client | None = None,
        runlog: RunLog | None = None,
        switch: TwoWayStore | None = None,
    ) -> None:
        self.spec = spec
        self.s3 = s3
        self.target_s3 = target_s3
        self.runlog = runlog  # the state table at home: lag samples (none: not recorded)
        if switch is None and runlog is not None:
            switch = TwoWayStore(runlog.ddb, runlog.table_name)
        self.switch = switch
        self.steps = None if switch is None else StepsCache(switch, spec.replication.phase_cache_seconds)
        self._sources: dict[str, BucketMapping] = {b.source: b for b in spec.buckets}

    def guard(self, mapping: BucketMapping, key: str) -> KeyGuard | None:
        """The two-way guard of one key's reconcile: judging once the pair's ``reverse`` step is recorded,
        only keeping sync records after its ``capture`` step, None before (or without a state table)."""
        if self.switch is None or self.steps is None or not key.startswith(mapping.prefix):
            return None  # (a key outside the prefix is ignored by reconcile: no state-table read for it)
        try:
            steps = self.steps.steps(BUCKET, mapping.source, mapping.target)
        except Exception as exc:
            if not is_missing_resource(exc):
                raise
            return None  # no state table: no switch step was ever recorded
        if STEP_REVERSE not in steps and STEP_CAPTURE not in steps:
            return None
        return KeyGuard(self.switch, mapping, key, capture=steps.get(STEP_CAPTURE), judging=STEP_REVERSE in steps)

    def record_lags(self, records: Iterable[Mapping[str, Any]], response: Any, at: float | None = None) -> int:
        """After a batch: one lag sample per source bucket to the run log; how many were written. Never
        raises (a sample that cannot be made or written is logged and dropped)."""
        if self.runlog is None:
            return 0
        try:
            samples = sqs_lag_samples(records, response, time.time() if at is None else at, self._sources)
            return self.runlog.save_lag_samples(BUCKET, samples)
        except Exception as exc:
            log.warning("lag sample not recorded: %s", exc)
            return 0

    def apply_sqs_record(
        self, record: Mapping[str, Any], reconciled_in_batch: set[tuple[str, str]] | None = None
    ) -> list[ReconcileResult]:
        """Reconcile every key the record's body names (each once). Raises to fail the record:
        :class:`PoisonRecordError` for an unreadable body or a bucket that is not a source of
        the spec (after reconciling the keys of the mapped buckets), anything else from
        reconcile (transient errors) as is.

        ``reconciled_in_batch`` holds the keys an earlier record of the same batch reconciled
        successfully; they are skipped. That is safe: every message of a batch was already queued
        when the batch was received, so its change happened before that earlier reconcile read the
        source's current state. Keys reconciled here are added to it."""
        body = record.get("body")
        if not isinstance(body, str):
            raise PoisonRecordError("body", f"must be the message body as a string, got {type(body).__name__}")
        results: list[ReconcileResult] = []
        unmapped: list[str] = []
        seen: set[tuple[str, str]] = set()
        for event in object_events(body):
            mapping = self._sources.get(event.bucket)
            if mapping is None:
                if event.bucket not in unmapped:
                    unmapped.append(event.bucket)
                continue
            ident = (event.bucket, event.key)
            if ident in seen or (reconciled_in_batch is not None and ident in reconciled_in_batch):
                continue
            seen.add(ident)
            guard = self.guard(mapping, event.key)
            two_way: dict[str, Any] = {} if guard is None else {"guard": guard}  # one-way: the call as it always was
            result = reconcile_key(self.s3, mapping, event.key, self.spec.s3, target_s3=self.target_s3, **two_way)
            log.debug("%s event for %s/%r: %s", event.kind, event.bucket, event.key, result.action)
            results.append(result)
            if reconciled_in_batch is not None:
                reconciled_in_batch.add(ident)
        if unmapped:
            raise PoisonRecordError(
                "body",
                f"bucket {unmapped[0]!r} is not a source bucket of this deployment's spec; "
                "add it to buckets or remove its notification / EventBridge rule",
            )
        return results
