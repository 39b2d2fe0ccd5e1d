"""The release of a replay copy (docs/adr/0004): once the copy of a table or bucket has completed, its
held changes are let go, and the consumer applies every one of them in order.

Before it lets go, the release checks that nothing was lost while the changes were held: the copy
finished, and every change since capture began is still held — the capture is younger than the
stream's 24 hours (the events queue's 14 days), and every stream shard that was open when capture
began is still listed (a shard that is gone had its records trimmed). Otherwise it refuses: a copy
that outlasted the retention must be done again with protocol insert-only.

What it lets go:
- locally, the pollers of ``ferry replicate``, which hold while the phase is ``hold``;
- deployed (``stage`` given), the event-source mappings. A table's stream mapping is *created* by the
  release, at TRIM_HORIZON with no maximum record age: AWS documents that a disabled mapping enabled
  again resumes where it stopped, but not where a mapping created disabled begins, so ferry does not
  bet the held records on it. The bucket-events queue mapping is created disabled (Terraform,
  ``ferry wire``) and enabled here: an SQS mapping only polls the queue, whose messages wait 14 days.
  The queue serves every bucket, so it opens once no bucket is held any more.

It records how many changes were waiting when it let them go (``held``, next to ``released_at``): a
table's stream records after the local pollers' checkpoints (ferry.backlog.stream_backlog: the whole
stream is read once, up to its limit; not recorded when the count stops at the limit or the read fails),
a bucket's queue depth. The report draws the backlog as held − records applied since (the lag samples).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ferry.aws import (
    call_with_retries,
    create_event_source_mapping,
    describe_stream_shards,
    enable_event_source_mapping,
    event_source_mappings,
    queue_arn_of,
    queue_depth,
    queue_url_or_none,
    update_event_source_mapping,
)
from ferry.backlog import stream_backlog
from ferry.clients import TableClients, make_client, table_clients
from ferry.deploy import (
    BUCKET_FUNCTION,
    QUEUE_RETENTION_SECONDS,
    STREAM_FUNCTION,
    bucket_events_settings,
    function_name,
    queue_mapping_request,
    stream_mapping_request,
    stream_mapping_settings,
)
from ferry.errors import PermanentError, SetupError, StreamNotFound
from ferry.spec import STREAM_RETENTION_HOURS, Spec, TableMapping
from ferry.tables.finalize import backfill_complete
from ferry.tables.protocol import PHASE_HOLD, PHASE_LIVE, PHASE_REPLAY, release_refusal, replay_consumer_released
from ferry.tables.state import BUCKET, TABLE, StateStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)

STREAM_RETENTION_SECONDS = STREAM_RETENTION_HOURS * 3600


class ReleaseRefused(PermanentError):
    """The held changes cannot all be replayed any more: the copy outlasted the retention (exit 3)."""


@dataclass(frozen=True)
class Released:
    source: str
    kind: str  # table | bucket
    released_at: float
    detail: str  # what was let go

    def describe(self) -> str:
        return f"{self.kind} {self.source}: released ({self.detail})"


@dataclass(frozen=True)
class Deployment:
    """Where a deployed stage's consumers are (the release creates or enables their mappings)."""

    stage: str
    lam: LambdaClient
    sqs: SQSClient


def _refuse(reason: str, complete: bool, what: str) -> None:
    if not complete:
        raise SetupError(f"{what}: not released: {reason}")
    raise ReleaseRefused(f"{what}: not released: {reason}")


# --- tables ------------------------------------------------------------------------------------


def release_table(
    spec: Spec,
    mapping: TableMapping,
    clients: TableClients,
    streams: DynamoDBStreamsClient,
    *,
    deployment: Deployment | None = None,
    now: Callable[[], float] = time.time,
) -> Released:
    """Release ``mapping``'s held changes (idempotent: a released table only gets its mapping ensured).
    SetupError when its copy has not finished (or it is not a held replay table), ReleaseRefused when
    the copy outlasted the stream's retention."""
    store = StateStore(clients.state, spec.state_table)
    phase = store.phase_or_none(mapping.source)
    capture = store.load_capture(mapping.source)
    if phase != PHASE_HOLD:
        if phase == PHASE_REPLAY or (phase == PHASE_LIVE and mapping.replay):
            released_at = store.released_at(mapping.source) or 0.0
            detail = "already released"
            if deployment is not None and capture is not None:
                detail += "; " + _ensure_stream_mapping(spec, deployment, capture.where)
            return Released(mapping.source, TABLE, released_at, detail)
        raise SetupError(
            f"{mapping.source}: nothing to release: its changes are not held (phase {phase or 'none'}; "
            "only a replay copy holds them, from `ferry init` on)"
        )
    if capture is None:
        raise SetupError(f"{mapping.source}: no change capture is recorded: run `ferry init`")
    complete, detail = backfill_complete(store, mapping.source)
    try:
        _, shards = describe_stream_shards(streams, capture.where)
        listed = tuple(s["ShardId"] for s in shards)
    except StreamNotFound:
        listed = ()  # the stream itself is gone: so is every record it held
    at = round(now(), 3)  # as the state table keeps it
    reason = release_refusal(
        copy_complete=complete,
        copy_detail=detail,
        captured_at=capture.captured_at,
        now=at,
        retention_seconds=STREAM_RETENTION_SECONDS,
        shards_at_capture=capture.shards,
        shards_now=listed,
    )
    if reason is not None:
        _refuse(reason, complete, mapping.source)
    held = _held_records(store, streams, mapping.source, capture.where)
    store.release(mapping.source, PHASE_REPLAY, at, held=held)
    held_hours = (at - capture.captured_at) / 3600
    if held_hours > spec.backfill.max_hold_hours:
        log.warning(
            "%s: changes held %.1f h, above backfill.max_hold_hours (%.1f): the catch-up has %.1f h before the "
            "oldest is trimmed; watch the stream mapping's IteratorAge",
            mapping.source,
            held_hours,
            spec.backfill.max_hold_hours,
            STREAM_RETENTION_HOURS - held_hours,
        )
    what = f"held {held_hours * 60:.1f} min since capture began" + (f", {held} records" if held is not None else "")
    if deployment is None:
        return Released(mapping.source, TABLE, at, f"{what}; local pollers (`ferry replicate`) apply them now")
    return Released(mapping.source, TABLE, at, f"{what}; {_ensure_stream_mapping(spec, deployment, capture.where)}")


def _held_records(store: StateStore, streams: DynamoDBStreamsClient, source: str, stream_arn: str) -> int | None:
    """The stream records the consumer has yet to apply at the release (after the local pollers' checkpoints,
    if any), or None when they cannot all be counted: the release never waits on this count."""
    checkpoints = {shard: sequence for shard, sequence, _, _ in store.stream_checkpoints(source) if sequence}
    try:
        backlog = stream_backlog(streams, stream_arn, checkpoints)
    except Exception as exc:
        log.warning("%s: the held records were not counted: %s", source, exc)
        return None
    if not backlog.complete:
        log.warning("%s: more than %d records held: not recorded", source, backlog.applied + backlog.behind)
        return None
    return backlog.behind


def ensure_insert_only_consumer(spec: Spec, deployment: Deployment, stream_arn: str) -> str:
    """An insert-only copy needs its consumer running from before it reads: the stage's stream mapping,
    created with the spec's settings when it is missing (a replay table rerun with --protocol insert-only)."""
    return _ensure_stream_mapping(spec, deployment, stream_arn, replay=False)


def _ensure_stream_mapping(spec: Spec, deployment: Deployment, stream_arn: str, *, replay: bool = True) -> str:
    """The stage's stream mapping on ``stream_arn``: created at TRIM_HORIZON (a replay table's with no
    maximum record age: see the module docstring), or left as it is when it exists."""
    function = function_name(deployment.stage, STREAM_FUNCTION)
    existing = event_source_mappings(deployment.lam, stream_arn, function)
    if existing:
        mapping = existing[0]
        if mapping.get("State") in ("Disabled", "Disabling") and not mapping.get("LastProcessingResult"):
            raise SetupError(
                f"a disabled stream mapping {mapping.get('UUID')} of {function} exists and has never run: AWS does not "
                "document where a mapping created disabled starts reading, so ferry will not enable it; delete it "
                "and run `ferry release` again (it creates one at TRIM_HORIZON)"
            )
        return f"stream mapping {mapping.get('UUID')} of {function} exists ({mapping.get('State')})"
    queue = spec.replication.on_failure_queue
    url = queue_url_or_none(deployment.sqs, queue)
    if url is None:
        raise SetupError(f"replication.on_failure_queue: queue {queue!r} does not exist: deploy ferry first")
    request = stream_mapping_request(
        stream_mapping_settings(spec, replay=replay),
        stream_arn=stream_arn,
        function=function,
        on_failure_arn=queue_arn_of(deployment.sqs, url),
    )
    uuid = create_event_source_mapping(deployment.lam, request)
    age = (
        "no maximum record age" if replay else f"records older than {spec.replication.max_record_age_seconds} s skipped"
    )
    return f"created stream mapping {uuid} of {function} at {request['StartingPosition']}, {age}"


# --- buckets -----------------------------------------------------------------------------------


def queue_released(store: StateStore, spec: Spec) -> bool:
    """Whether the shared events queue may be consumed: no replay bucket of the spec is held (nor
    without a phase yet: its capture begins with ``ferry init`` or its copy)."""
    return all(not b.replay or replay_consumer_released(store.phase_or_none(b.source, BUCKET)) for b in spec.buckets)


def release_bucket(
    spec: Spec,
    source: str,
    store: StateStore,
    *,
    deployment: Deployment | None = None,
    sqs: SQSClient | None = None,
    now: Callable[[], float] = time.time,
) -> Released:
    """Release a bucket's held events once its copy has completed; when no bucket is held any more,
    open the events queue (enable its mapping, deployed). ``sqs`` (ferry's home): the queue's depth at
    the release is recorded (``ferry status`` shows how fast it drains)."""
    phase = store.phase_or_none(source, BUCKET)
    at = round(now(), 3)  # as the state table keeps it
    if phase == PHASE_HOLD:
        capture = store.load_capture(source, BUCKET)
        if capture is None:
            raise SetupError(f"bucket {source}: no change capture is recorded: run `ferry init`")
        complete, detail = backfill_complete(store, source, BUCKET)
        reason = release_refusal(
            copy_complete=complete,
            copy_detail=detail,
            captured_at=capture.captured_at,
            now=at,
            retention_seconds=QUEUE_RETENTION_SECONDS,
            holder="events queue",
        )
        if reason is not None:
            _refuse(reason, complete, f"bucket {source}")
        url = queue_url_or_none(sqs, spec.s3.events_queue) if sqs is not None else None
        held = queue_depth(sqs, url) if sqs is not None and url is not None else None
        store.release(source, PHASE_REPLAY, at, BUCKET, held=held)
        detail = f"events held {(at - capture.captured_at) / 60:.1f} min" + (
            f", {held} queued" if held is not None else ""
        )
    elif phase is None or not spec.bucket(source).replay:
        raise SetupError(f"bucket {source}: nothing to release: its events are not held (phase {phase or 'none'})")
    else:
        detail = "already released"
    if not queue_released(store, spec):
        waiting = [
            b.source
            for b in spec.buckets
            if b.replay and not replay_consumer_released(store.phase_or_none(b.source, BUCKET))
        ]
        return Released(
            source, BUCKET, at, f"{detail}; the shared events queue opens once {', '.join(waiting)} is released"
        )
    if deployment is None:
        return Released(source, BUCKET, at, f"{detail}; local pollers (`ferry replicate`) apply the queued events now")
    return Released(source, BUCKET, at, f"{detail}; {_enable_queue_mapping(spec, deployment)}")


def bound_record_age(spec: Spec, mapping: TableMapping, deployment: Deployment, stream_arn: str) -> str:
    """After the catch-up (``ferry finalize --stage``): the replay table's stream mapping, created with no
    maximum record age so that no held record was skipped, gets the spec's finite one, like an insert-only
    mapping: a mapping that falls behind then skips a record into the on-failure queue, where
    ``ferry redrive`` finds it in the stream, instead of losing it to the stream's trimming."""
    function = function_name(deployment.stage, STREAM_FUNCTION)
    existing = event_source_mappings(deployment.lam, stream_arn, function)
    if not existing:
        return f"{mapping.source}: no stream mapping of {function} (nothing to bound)"
    age = spec.replication.max_record_age_seconds
    uuid = str(existing[0]["UUID"])
    if existing[0].get("MaximumRecordAgeInSeconds") == age:
        return f"{mapping.source}: stream mapping {uuid} skips records older than {age} s already"
    call_with_retries(
        lambda: update_event_source_mapping(deployment.lam, uuid, MaximumRecordAgeInSeconds=age), "bound the age"
    )
    return f"{mapping.source}: stream mapping {uuid} now skips records older than {age} s (the held ones are replayed)"


def finalize_bucket(spec: Spec, source: str, store: StateStore) -> str:
    """``ferry finalize`` for a bucket: a released replay bucket is marked live (there is nothing to clean
    up). SetupError while its events are still held."""
    phase = store.phase_or_none(source, BUCKET)
    if phase == PHASE_HOLD:
        raise SetupError(
            f"bucket {source}: its events are still held: the copy has not been released (`ferry release`)"
        )
    if phase == PHASE_REPLAY:
        store.set_phase(source, PHASE_LIVE, BUCKET)
        return f"bucket {source}: phase live"
    return f"bucket {source}: nothing to finalize (phase {phase or 'none'})"


def _enable_queue_mapping(spec: Spec, deployment: Deployment) -> str:
    settings = bucket_events_settings(spec)
    url = queue_url_or_none(deployment.sqs, settings.queue_name)
    if url is None:
        raise SetupError(f"s3.events_queue: queue {settings.queue_name!r} does not exist: deploy ferry first")
    queue_arn = queue_arn_of(deployment.sqs, url)
    function = function_name(deployment.stage, BUCKET_FUNCTION)
    existing = event_source_mappings(deployment.lam, queue_arn, function)
    if not existing:
        uuid = create_event_source_mapping(
            deployment.lam, queue_mapping_request(settings, queue_arn=queue_arn, function=function)
        )
        return f"created events queue mapping {uuid} of {function}"
    mapping = existing[0]
    if mapping.get("State") in ("Enabled", "Enabling", "Creating", "Updating"):
        return f"events queue mapping {mapping['UUID']} of {function} is {mapping.get('State')}"
    call_with_retries(lambda: enable_event_source_mapping(deployment.lam, str(mapping["UUID"])), "enable the mapping")
    return f"enabled events queue mapping {mapping['UUID']} of {function}"


# --- every table and bucket of a spec -----------------------------------------------------------


def deployment_of(spec: Spec, stage: str | None) -> Deployment | None:
    if stage is None:
        return None
    home = spec.home_where()
    return Deployment(stage, make_client("lambda", home), make_client("sqs", home))


def release_all(spec: Spec, *, stage: str | None = None, sources: tuple[str, ...] = ()) -> list[Released]:
    """``ferry release``: every replay table and bucket of ``spec`` (or of ``sources``) whose copy has
    completed. Raises for the first one that cannot be released."""
    deployment = deployment_of(spec, stage)
    clients = table_clients(spec)
    streams = make_client("dynamodbstreams", spec.source_where())
    store = StateStore(clients.state, spec.state_table)
    sqs = make_client("sqs", spec.home_where())
    done: list[Released] = []
    for mapping in spec.tables:
        if mapping.replay and (not sources or mapping.source in sources):
            done.append(release_table(spec, mapping, clients, streams, deployment=deployment))
    for bucket in spec.buckets:
        if bucket.replay and (not sources or bucket.source in sources):
            done.append(release_bucket(spec, bucket.source, store, deployment=deployment, sqs=sqs))
    return done
