"""The cutover verdict ``ferry status`` ends with: GO, or NO-GO and every reason (docs/cutover-verdict.md).

``cutover_verdict`` is a pure decision over frozen facts; ``gather_facts`` reads them, locally from the
state table, the streams and the queues (the local pollers' checkpoints), or for a deployed stage from
CloudWatch and the event-source mappings. Unknown is NO-GO, with why.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ferry.spec import CutoverSettings
from ferry.tables.state import BUCKET, TABLE

if TYPE_CHECKING:
    from ferry.spec import Spec
    from ferry.tables.state import StateStore
# CloudWatch: the window read for IteratorAge and ApproximateAgeOfOldestMessage, and how recent a lag
# sample of the local pollers must be to count.
METRIC_WINDOW_SECONDS = 300
# The tombstone count reads the target table (insert-only) at most this many Scan pages (1 MB each).
TOMBSTONE_SCAN_PAGES = 100


# --- facts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lag:
    """Replication lag in seconds, or None (unknown) with ``why``; ``source`` says where it was read."""

    seconds: float | None
    source: str = ""
    why: str = ""


@dataclass(frozen=True)
class Verified:
    differences: int
    at: float  # epoch seconds


@dataclass(frozen=True)
class MappingState:
    """A deployed event-source mapping: None state when there is none."""

    what: str  # e.g. "stream mapping of ferry-dev-table_stream"
    state: str | None
    last_result: str = ""


@dataclass(frozen=True)
class QueueFact:
    """A queue that holds failed work (stream on-failure queue, events DLQ): messages visible + in flight,
    or None when the queue does not exist."""

    name: str
    depth: int | None


@dataclass(frozen=True)
class SourceFacts:
    name: str
    kind: str  # TABLE | BUCKET
    replay: bool
    copy_done: bool
    copy_detail: str
    copy_finished_at: float | None  # None: not recorded
    phase: str | None
    released: bool
    # Replay, released: held changes (records / events made before the release) not yet applied; None unknown.
    backlog_left: int | None
    backlog_why: str
    lag: Lag
    verify: Verified | None
    tombstones: int | None  # insert-only tables; 0 otherwise; None unknown
    tombstones_why: str = ""
    mappings: tuple[MappingState, ...] = ()  # deployed only
    conflicts: int = 0  # keys changed on both sides while both directions ran (docs/adr/0009)


@dataclass(frozen=True)
class CutoverFacts:
    now: float
    sources: tuple[SourceFacts, ...]
    queues: tuple[QueueFact, ...]


@dataclass(frozen=True)
class Verdict:
    go: bool
    reasons: tuple[str, ...]

    def line(self) -> str:
        return "GO" if self.go else "NO-GO: " + "; ".join(self.reasons)


# --- the decision -----------------------------------------------------------------------------


def _num(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0") if value < 100 else f"{value:,.0f}"


def source_reasons(s: SourceFacts, settings: CutoverSettings, now: float) -> list[str]:
    """Every reason ``s`` is not ready for the cutover (empty: ready)."""
    who = s.name if s.kind == TABLE else f"bucket {s.name}"
    reasons: list[str] = []
    if not s.copy_done:
        reasons.append(f"{who}: copy not done ({s.copy_detail})")
    if s.replay:
        if not s.released:
            reasons.append(f"{who}: changes held, the copy is not released (phase {s.phase or 'none'})")
        elif s.backlog_left is None:
            reasons.append(f"{who}: replay backlog unknown ({s.backlog_why})")
        elif s.backlog_left > 0:
            reasons.append(f"{who}: {s.backlog_left:,} held changes not replayed yet")
    if s.lag.seconds is None:
        reasons.append(f"{who}: replication lag unknown ({s.lag.why})")
    elif s.lag.seconds > settings.max_lag_seconds:
        reasons.append(
            f"{who}: replication lag {s.lag.seconds:.1f} s > cutover.max_lag_seconds "
            f"{_num(settings.max_lag_seconds)} ({s.lag.source})"
        )
    for m in s.mappings:
        if m.state is None:
            reasons.append(f"{who}: no {m.what}")
        elif m.state != "Enabled":
            reasons.append(f"{who}: {m.what} is {m.state}")
        elif m.last_result.upper().startswith("PROBLEM"):
            reasons.append(f"{who}: {m.what}: {m.last_result}")
    if s.verify is None:
        reasons.append(f"{who}: never verified (run `ferry verify`)")
    else:
        if s.verify.differences:
            reasons.append(f"{who}: last verify found {s.verify.differences:,} differences")
        if s.copy_finished_at is None:
            if s.copy_done:
                reasons.append(
                    f"{who}: when the copy finished is not recorded: the last verify cannot be placed after it"
                )
        elif s.verify.at < s.copy_finished_at:
            reasons.append(
                f"{who}: last verify ran {_num(s.copy_finished_at - s.verify.at)} s before the copy finished"
            )
        age_minutes = (now - s.verify.at) / 60
        if age_minutes > settings.max_verify_age_minutes:
            reasons.append(
                f"{who}: last verify {_num(age_minutes)} min old > cutover.max_verify_age_minutes "
                f"{_num(settings.max_verify_age_minutes)}"
            )
    if s.conflicts:
        reasons.append(
            f"{who}: {s.conflicts:,} keys changed on both sides (`ferry verify --reverse` lists them; resolve with "
            "`ferry verify --repair --from old|new`)"
        )
    if s.tombstones is None:
        reasons.append(f"{who}: tombstones unknown ({s.tombstones_why})")
    elif s.tombstones > 0:
        reasons.append(f"{who}: {s.tombstones_why or ''}{s.tombstones:,} tombstones left (run `ferry finalize`)")
    return reasons


def cutover_verdict(facts: CutoverFacts, settings: CutoverSettings) -> Verdict:
    """GO when every table and bucket is copied, (replay) released and replayed, within the lag, verified
    after its copy and recently with no difference, tombstone-free, (deployed) consumed by an enabled
    healthy mapping, and every failure queue is empty; else NO-GO with every reason."""
    reasons: list[str] = []
    if not facts.sources:
        reasons.append("nothing to cut over: the spec has no table or bucket")
    for q in facts.queues:
        if q.depth is None:
            reasons.append(f"queue {q.name} not found (run `ferry init`)")
        elif q.depth > 0:
            reasons.append(f"queue {q.name}: {q.depth:,} messages (see `ferry redrive`)")
    for s in facts.sources:
        reasons.extend(source_reasons(s, settings, facts.now))
    return Verdict(not reasons, tuple(reasons))


# --- gathering the facts ------------------------------------------------------------------------


def _queue_messages(sqs: Any, name: str) -> int | None:
    """Messages visible + in flight (+ delayed) of queue ``name``; None when it does not exist."""
    from ferry.aws import queue_url_or_none

    url = queue_url_or_none(sqs, name)
    if url is None:
        return None
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes.get(n, 0)) for n in names)


def _metric_max(cloudwatch: Any, namespace: str, metric: str, dimension: tuple[str, str], now: float) -> float | None:
    """The Maximum of ``metric`` over the last METRIC_WINDOW_SECONDS (1-minute periods), None without a datapoint."""
    from datetime import UTC, datetime

    answer = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName=metric,
        Dimensions=[{"Name": dimension[0], "Value": dimension[1]}],
        StartTime=datetime.fromtimestamp(now - METRIC_WINDOW_SECONDS, UTC),
        EndTime=datetime.fromtimestamp(now + 60, UTC),
        Period=60,
        Statistics=["Maximum"],
    )
    points = [float(p["Maximum"]) for p in answer.get("Datapoints", []) if "Maximum" in p]
    return max(points) if points else None


def _mapping_state(lam: Any, source_arn: str, function: str, what: str) -> MappingState:
    from ferry.aws import event_source_mappings

    found = event_source_mappings(lam, source_arn, function)
    if not found:
        return MappingState(what, None)
    m = found[0]
    return MappingState(what, str(m.get("State", "")), str(m.get("LastProcessingResult", "") or ""))


@dataclass(frozen=True)
class Deployed:
    """A stage's consumers: where ``gather_facts`` reads the lag and the mappings' state."""

    stage: str
    lam: Any
    cloudwatch: Any


def _verified(store: StateStore, source: str, kind: str) -> Verified | None:
    last = store.load_verify(source, kind)
    return None if last is None else Verified(last[1], last[2])


def _copy(store: StateStore, source: str, kind: str) -> tuple[bool, str, float | None]:
    from ferry.tables.finalize import backfill_complete

    done, detail = backfill_complete(store, source, kind)
    run = store.load_copy(source, kind)
    finished = run.finished_at if run is not None and run.done and run.finished_at else None
    return done, detail, finished


def count_tombstones(ddb: Any, target: str, *, max_pages: int = TOMBSTONE_SCAN_PAGES) -> tuple[int, bool]:
    """(tombstones found in ``target``, whether the whole table was read). A read-only Scan with the
    tombstone filter and ``Select=COUNT``, at most ``max_pages`` pages of 1 MB: it reads (and pays for,
    0.5 RCU per 4 KB, eventually consistent) the whole target up to that bound, ~100 MB by default."""
    from ferry.tables.protocol import tombstone_only_condition

    condition = tombstone_only_condition()
    kwargs: dict[str, Any] = {
        "TableName": target,
        "Select": "COUNT",
        "FilterExpression": condition["ConditionExpression"],
        "ExpressionAttributeNames": condition["ExpressionAttributeNames"],
        "ExpressionAttributeValues": condition["ExpressionAttributeValues"],
    }
    found = 0
    for _ in range(max_pages):
        page = ddb.scan(**kwargs)
        found += int(page.get("Count", 0))
        if "LastEvaluatedKey" not in page:
            return found, True
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return found, False


def _table_facts(
    spec: Spec, mapping: Any, store: StateStore, now: float, deployed: Deployed | None, streams: Any, target_ddb: Any
) -> SourceFacts:
    from ferry.backlog import stream_lag
    from ferry.deploy import STREAM_FUNCTION, function_name
    from ferry.errors import FerryError
    from ferry.tables.protocol import PHASE_LIVE, consumer_released

    source = mapping.source
    copy_done, detail, finished = _copy(store, source, TABLE)
    phase = store.phase_or_none(source)
    released_at = store.released_at(source)
    released = consumer_released(phase) and phase is not None and (released_at is not None or phase == PHASE_LIVE)
    capture = store.load_capture(source)
    stream_arn = capture.where if capture is not None else None
    backlog: int | None = 0
    backlog_why = ""
    mappings: tuple[MappingState, ...] = ()
    if stream_arn is None:
        lag = Lag(None, why="no change capture recorded (run `ferry init`)")
        backlog, backlog_why = None, "no change capture recorded"
    elif deployed is None:
        checkpoints = {shard: seq for shard, seq, _, _ in store.stream_checkpoints(source) if seq}
        if not checkpoints:
            lag = Lag(None, why="no consumer has read the stream: no poller checkpoint")
            backlog, backlog_why = None, "no consumer has read the stream"
        else:
            try:
                read = stream_lag(streams, stream_arn, checkpoints, held_until=released_at if mapping.replay else None)
            except FerryError as exc:  # the stream or a checkpoint's record is gone
                lag = Lag(None, why=f"the stream cannot be read after the checkpoints: {exc}")
                backlog, backlog_why = None, "the stream cannot be read"
            else:
                lag = Lag(read.seconds(now), source="the oldest stream record after the pollers' checkpoints")
                backlog = read.held_left if read.complete else None
                backlog_why = "" if read.complete else f"more than {read.held_left:,} held records still to count"
    else:
        function = function_name(deployed.stage, STREAM_FUNCTION)
        state = _mapping_state(deployed.lam, stream_arn, function, f"stream mapping of {function}")
        mappings = (state,)
        age_ms = _metric_max(deployed.cloudwatch, "AWS/Lambda", "IteratorAge", ("FunctionName", function), now)
        if age_ms is None:
            lag = Lag(
                None,
                why=f"no IteratorAge datapoint of {function} in the last {METRIC_WINDOW_SECONDS // 60} min: Lambda "
                "emits it only for processed batches, so an idle mapping and a stuck one look the same; write a "
                "change to the source and run status again",
            )
        else:
            lag = Lag(
                age_ms / 1000, source=f"IteratorAge of {function}, maximum over {METRIC_WINDOW_SECONDS // 60} min"
            )
        backlog, backlog_why = _deployed_backlog(lag, released_at, now)
    tombstones: int | None = 0
    tombstones_why = ""
    if not mapping.replay:
        found, whole = count_tombstones(target_ddb, mapping.target)
        if whole:
            tombstones = found
            if found and phase != PHASE_LIVE:
                tombstones_why = f"phase {phase or 'none'}, not finalized: "
        elif found:
            tombstones, tombstones_why = found, f"≥ (stopped after {TOMBSTONE_SCAN_PAGES} pages) "
        else:
            tombstones = None
            tombstones_why = f"none in the first {TOMBSTONE_SCAN_PAGES} Scan pages of {mapping.target}; the rest unread"
        if tombstones == 0 and phase != PHASE_LIVE:  # none now, but deletes still leave them
            tombstones, tombstones_why = None, f"phase {phase or 'none'}: not finalized, deletes still leave tombstones"
    return SourceFacts(
        name=source,
        kind=TABLE,
        replay=mapping.replay,
        copy_done=copy_done,
        copy_detail=detail,
        copy_finished_at=finished,
        phase=phase,
        released=released if mapping.replay else True,
        backlog_left=backlog,
        backlog_why=backlog_why,
        lag=lag,
        verify=_verified(store, source, TABLE),
        tombstones=tombstones,
        tombstones_why=tombstones_why,
        mappings=mappings,
    )


def _deployed_backlog(lag: Lag, released_at: float | None, now: float) -> tuple[int | None, str]:
    """Deployed, the held backlog is replayed once the consumer reads records made after the release: its
    lag, measured up to METRIC_WINDOW_SECONDS ago, is shorter than the time since the release minus that."""
    if released_at is None:
        return 0, ""  # replayed long ago (phase live) or nothing to replay (insert-only)
    if lag.seconds is None:
        return None, "the lag is unknown"
    if lag.seconds < now - released_at - METRIC_WINDOW_SECONDS:
        return 0, ""
    return None, (
        f"the consumer's lag {lag.seconds:.1f} s does not yet show it reading changes made after the release "
        f"{(now - released_at) / 60:.1f} min ago"
    )


def _bucket_facts(
    spec: Spec,
    bucket: Any,
    store: StateStore,
    now: float,
    deployed: Deployed | None,
    waiting: int | None,
    queue_arn: str | None,
) -> SourceFacts:
    from ferry.deploy import BUCKET_FUNCTION, function_name
    from ferry.runlog import RunLog
    from ferry.tables.protocol import PHASE_LIVE, consumer_released

    source = bucket.source
    copy_done, detail, finished = _copy(store, source, BUCKET)
    phase = store.phase_or_none(source, BUCKET)
    released_at = store.released_at(source, BUCKET)
    released = consumer_released(phase) and phase is not None and (released_at is not None or phase == PHASE_LIVE)
    queue = spec.s3.events_queue
    mappings: tuple[MappingState, ...] = ()
    lag: Lag
    if waiting == 0:
        lag = Lag(0.0, source=f"events queue {queue} empty")
    elif waiting is None:
        lag = Lag(None, why=f"events queue {queue} not found")
    elif deployed is None:
        samples = RunLog(store.ddb, spec.state_table).lag_samples(source, BUCKET)
        fresh = [s for s in samples if now - s.at <= METRIC_WINDOW_SECONDS]
        if fresh:
            newest = max(fresh, key=lambda s: s.at)
            lag = Lag(newest.max, source=f"the local pollers' lag sample {now - newest.at:.0f} s ago, {waiting} queued")
        else:
            lag = Lag(
                None,
                why=f"{waiting:,} events wait in {queue} and no consumer recorded a lag in the last "
                f"{METRIC_WINDOW_SECONDS // 60} min",
            )
    else:
        age = _metric_max(deployed.cloudwatch, "AWS/SQS", "ApproximateAgeOfOldestMessage", ("QueueName", queue), now)
        if age is None:
            lag = Lag(
                None, why=f"{waiting:,} events wait in {queue} and ApproximateAgeOfOldestMessage has no datapoint"
            )
        else:
            lag = Lag(age, source=f"ApproximateAgeOfOldestMessage of {queue}")
    if deployed is not None:
        function = function_name(deployed.stage, BUCKET_FUNCTION)
        what = f"events queue mapping of {function}"
        mappings = (_mapping_state(deployed.lam, queue_arn, function, what) if queue_arn else MappingState(what, None),)
    backlog: int | None = 0
    backlog_why = ""
    if released_at is None or waiting == 0:
        pass
    else:  # the held events are in the queue: replayed once the oldest waiting one came after the release
        backlog, backlog_why = _deployed_backlog(lag, released_at, now)
        if deployed is None and backlog is None:
            backlog_why = f"{waiting:,} events wait in {queue}: {backlog_why}"
    return SourceFacts(
        name=source,
        kind=BUCKET,
        replay=bucket.replay,
        copy_done=copy_done,
        copy_detail=detail,
        copy_finished_at=finished,
        phase=phase,
        released=released if bucket.replay else True,
        backlog_left=backlog,
        backlog_why=backlog_why,
        lag=lag,
        verify=_verified(store, source, BUCKET),
        tombstones=0,
        mappings=mappings,
    )


def gather_facts(spec: Spec, store: StateStore, *, stage: str | None = None, now: float | None = None) -> CutoverFacts:
    """Read what the verdict needs (read-only). Locally: the stream after the pollers' checkpoints and the
    queues; with ``stage``: CloudWatch (IteratorAge, ApproximateAgeOfOldestMessage) and the stage's
    event-source mappings."""
    from ferry.aws import queue_arn_of, queue_url_or_none
    from ferry.clients import make_client
    from ferry.deploy import DLQ_SUFFIX

    moment = time.time() if now is None else now
    home = spec.home_where()
    sqs = make_client("sqs", home)
    deployed = (
        Deployed(stage, make_client("lambda", home), make_client("cloudwatch", home)) if stage is not None else None
    )
    queues: list[QueueFact] = []
    if spec.tables:
        queues.append(
            QueueFact(spec.replication.on_failure_queue, _queue_messages(sqs, spec.replication.on_failure_queue))
        )
    waiting: int | None = None
    queue_arn: str | None = None
    if spec.buckets:
        dlq = spec.s3.events_queue + DLQ_SUFFIX
        queues.append(QueueFact(dlq, _queue_messages(sqs, dlq)))
        waiting = _queue_messages(sqs, spec.s3.events_queue)
        url = queue_url_or_none(sqs, spec.s3.events_queue) if deployed is not None else None
        queue_arn = queue_arn_of(sqs, url) if url is not None else None
    sources: list[SourceFacts] = []
    if spec.tables:
        streams = make_client("dynamodbstreams", spec.source_where())
        target_ddb = make_client("dynamodb", spec.target_where())
        for mapping in spec.tables:
            sources.append(_table_facts(spec, mapping, store, moment, deployed, streams, target_ddb))
    for bucket in spec.buckets:
        sources.append(_bucket_facts(spec, bucket, store, moment, deployed, waiting, queue_arn))
    sources, reverse_queues = _two_way_facts(spec, store, sources, sqs)
    return CutoverFacts(moment, tuple(sources), tuple(queues + reverse_queues))


def _two_way_facts(
    spec: Spec, store: StateStore, sources: list[SourceFacts], sqs: Any
) -> tuple[list[SourceFacts], list[QueueFact]]:
    """Once `ferry reverse` ran: each source's open conflicts, and the reverse failure queues."""
    from ferry.deploy import DLQ_SUFFIX
    from ferry.twoway import STEP_REVERSE, TwoWayStore, reverse_spec

    switch = TwoWayStore(store.ddb, store.table_name)
    mappings = {(TABLE, t.source): t.target for t in spec.tables} | {(BUCKET, b.source): b.target for b in spec.buckets}
    reversed_any = False
    out = []
    for facts in sources:
        target = mappings[(facts.kind, facts.name)]
        if STEP_REVERSE in switch.steps(facts.kind, facts.name, target):
            reversed_any = True
            facts = dataclasses.replace(facts, conflicts=len(switch.conflicts(facts.kind, facts.name, target)))
        out.append(facts)
    if not reversed_any:
        return out, []
    backwards = reverse_spec(spec)
    names = ([backwards.replication.on_failure_queue] if spec.tables else []) + (
        [backwards.s3.events_queue + DLQ_SUFFIX] if spec.buckets else []
    )
    return out, [QueueFact(name, _queue_messages(sqs, name)) for name in names]
