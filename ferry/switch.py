"""The switch's first step, ``ferry reverse`` (docs/adr/0009): replication from the new side back to the old.

Order matters, and every step is recorded in the state table so a rerun after a crash picks up where it
stopped (each step is idempotent):

1. refuse unless every copy is done (a table or bucket still held or in its insert-only backfill has no
   business being written from the other side);
2. record the pair's ``reverse`` step, then wait out the handlers' phase cache: from then on the forward
   handlers judge every change and journal what they write (ferry.twoway);
3. record ``capture`` (the journal entries written before it have no record to echo), then turn on
   change capture on the new side: each target table's NEW_AND_OLD_IMAGES stream and EventBridge on each
   target bucket with its rule into the reverse events queue — the same setup ``ferry init`` does for the
   sources, applied to the reversed spec. The reversed sources' phase is ``live`` first, so that setup
   holds nothing back.

The consumers are started separately: locally ``ferry replicate --reverse``; deployed, the reverse
functions' mappings (``ferry reverse --stage``, or Terraform with ``reverse = true``).

The later steps (``ferry cutover``, ``ferry rollback``; docs/switching.md) record themselves here too, per
pair, and each is skipped on a rerun once recorded: ``switched`` → ``forward_drained`` → ``forward_disabled``
(cutover), ``reverse_disabled`` → ``rolled_back`` (rollback). This module holds what they decide and
read — the steps, the refusals, whether a direction's consumers still have work from before a moment;
the CLI (ferry_cli.switch) drives them, and the local pollers (ferry_dev.replication) obey the steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ferry.clients import make_client
from ferry.errors import FerryError, SetupError
from ferry.spec import Spec
from ferry.tables.protocol import PHASE_LIVE, PHASE_REPLAY
from ferry.tables.state import BUCKET, TABLE, StateStore, expire_state_items
from ferry.twoway import (
    STEP_CAPTURE,
    STEP_FORWARD_DISABLED,
    STEP_REVERSE,
    TwoWayStore,
    reverse_spec,
)

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType


FORWARD, REVERSE = "forward", "reverse"
STEP_REVERSE_DISABLED = "reverse_disabled"  # ferry rollback --confirm-switched: reverse replication off
STEP_FORCED = "forced"  # ferry cutover --force went on over a NO-GO verdict
# The step that turns each direction's consumers off (the local pollers obey it; deployed, the mappings).
DISABLED_STEP = {FORWARD: STEP_FORWARD_DISABLED, REVERSE: STEP_REVERSE_DISABLED}
# How often the local pollers re-read whether their direction is off (at least; replication.phase_cache_seconds
# when longer): ferry cutover / rollback wait this plus a second after recording the step.
LOCAL_RECHECK_SECONDS = 1.0

Pair = tuple[str, str, str]  # (kind, source, target) of the forward mapping


class SwitchRefused(SetupError):
    """A switch command cannot go on in this state (exit 1); nothing was written."""

    exit_code = 1


class SwitchTimeout(FerryError):
    """A switch command waited its --timeout for a drain; what it waited for is named, nothing was turned off."""

    exit_code = 1


# A copy is done for the switch once its consumer applies every change: released (replay) or live.
COPY_DONE_PHASES = (PHASE_LIVE, PHASE_REPLAY)


def pairs(spec: Spec) -> list[tuple[str, str, str]]:
    """Every mapping as (kind, source, target), tables first."""
    return [(TABLE, t.source, t.target) for t in spec.tables] + [(BUCKET, b.source, b.target) for b in spec.buckets]


def reverse_refusal(spec: Spec, store: StateStore) -> str | None:
    """Why reverse replication cannot begin yet (None: it can)."""
    for kind, source, _ in pairs(spec):
        phase = store.phase_or_none(source, kind)
        if phase not in COPY_DONE_PHASES:
            return (
                f"{kind} {source!r} is in phase {phase or 'none'}: its copy must be released (replay) or finalized "
                "(insert-only) before the new side's changes are replicated back"
            )
    return None


def prepare_reverse(
    spec: Spec,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    capture: Callable[[Spec], list[str]] | None = None,
) -> list[str]:
    """Steps 1–3 of the module docstring; one line per action taken. Raises SwitchRefused (a SetupError)
    when refused, before any write. ``capture`` turns change capture on for the reversed spec: by default
    ``ferry init``'s setup (streams, EventBridge, the reverse events queue and rule); a Terraform stage passes
    what ``ferry init --sources-only`` does (Terraform owns the queues and rules)."""
    from ferry.operations import initialize

    home = make_client("dynamodb", spec.home_where())
    store = StateStore(home, spec.state_table)
    refusal = reverse_refusal(spec, store)
    if refusal:
        raise SwitchRefused(f"ferry reverse: {refusal}")
    switch = TwoWayStore(home, spec.state_table, clock)
    done: list[str] = expire_state_items(home, spec.state_table)
    fresh = [(k, s, t) for k, s, t in pairs(spec) if STEP_REVERSE not in switch.steps(k, s, t)]
    for kind, source, target in fresh:
        switch.record_step(kind, source, target, STEP_REVERSE)
        done.append(f"{kind} {source} ↔ {target}: changes are judged both ways from now on")
    if fresh:
        # Every handler re-reads the steps after phase_cache_seconds: wait until all of them judge.
        sleep(spec.replication.phase_cache_seconds + 1.0)
    for kind, source, target in pairs(spec):
        if STEP_CAPTURE not in switch.steps(kind, source, target):
            switch.record_step(kind, source, target, STEP_CAPTURE)
        if store.phase_or_none(target, kind) != PHASE_LIVE:
            store.set_phase(target, PHASE_LIVE, kind)
            done.append(f"{kind} {target}: phase live for reverse replication")
    backwards = reverse_spec(spec)
    done += capture(backwards) if capture is not None else initialize(backwards, enable_streams=True)
    return done


# --- the steps of every pair ---------------------------------------------------------------------


def switch_store(spec: Spec) -> TwoWayStore:
    return TwoWayStore(make_client("dynamodb", spec.home_where()), spec.state_table)


def pair_steps(switch: TwoWayStore, spec: Spec) -> dict[Pair, dict[str, float]]:
    """Every pair's recorded steps (step → when)."""
    return {pair: switch.steps(*pair) for pair in pairs(spec)}


def lacking(steps: dict[Pair, dict[str, float]], step: str) -> list[Pair]:
    """The pairs that have not recorded ``step``."""
    return [pair for pair, done in steps.items() if step not in done]


def record_steps(switch: TwoWayStore, todo: list[Pair], step: str) -> list[str]:
    """Record ``step`` for each pair of ``todo``; one line each."""
    for kind, source, target in todo:
        switch.record_step(kind, source, target, step)
    return [f"{kind} {source} ↔ {target}: {step} recorded" for kind, source, target in todo]


def require_reverse(steps: dict[Pair, dict[str, float]], command: str) -> None:
    """SwitchRefused unless every pair recorded ``reverse`` (ferry reverse)."""
    missing = lacking(steps, STEP_REVERSE)
    if missing:
        names = ", ".join(f"{kind} {source}" for kind, source, _ in missing)
        raise SwitchRefused(
            f"{command}: reverse replication has not begun for {names}: run `ferry reverse --spec <spec>` first"
        )


def direction_spec(spec: Spec, direction: str) -> Spec:
    """The spec a direction's consumers run with: the spec itself (forward) or reverse_spec (reverse)."""
    if direction not in DISABLED_STEP:
        raise ValueError(f"direction must be {FORWARD!r} or {REVERSE!r}, got {direction!r}")
    return spec if direction == FORWARD else reverse_spec(spec)


def local_recheck_seconds(spec: Spec) -> float:
    return max(spec.replication.phase_cache_seconds, LOCAL_RECHECK_SECONDS)


# --- has a direction applied everything from before a moment? --------------------------------------


def queue_in_flight(sqs: SQSClient, name: str) -> int | None:
    """Messages visible, in flight or delayed in queue ``name``; None when it does not exist."""
    from ferry.aws import queue_url_or_none

    url = queue_url_or_none(sqs, name)
    if url is None:
        return None
    names: list[QueueAttributeNameType] = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes.get(n, "0")) for n in names)


def queue_waiting(spec: Spec, direction: str) -> list[str]:
    """What the direction's bucket events queue still holds (nothing: [])."""
    side = direction_spec(spec, direction)
    if not side.buckets:
        return []
    name = side.s3.events_queue
    depth = queue_in_flight(make_client("sqs", side.home_where()), name)
    if depth is None:
        return [f"{direction} events queue {name} not found (run `ferry init` / `ferry reverse`)"]
    return [f"{direction} events queue {name}: {depth:,} messages visible or in flight"] if depth else []


def local_streams_waiting(spec: Spec, direction: str, since: float) -> list[str]:
    """Each of the direction's source streams that holds records made at or before ``since`` which the local
    pollers have not applied (read after their checkpoints in the state table; nothing is written). Records
    made later are not waited for: after the switch they are the other direction's echoes."""
    from ferry.aws import stream_arn_of
    from ferry.backlog import stream_lag

    side = direction_spec(spec, direction)
    if not side.tables:
        return []
    store = StateStore(make_client("dynamodb", side.home_where()), side.state_table)
    source = make_client("dynamodb", side.source_where())
    streams = make_client("dynamodbstreams", side.source_where())
    command = "ferry replicate" + (" --reverse" if direction == REVERSE else "")
    out: list[str] = []
    for mapping in side.tables:
        checkpoints = {shard: seq for shard, seq, _, _ in store.stream_checkpoints(mapping.source) if seq}
        lag = stream_lag(streams, stream_arn_of(source, mapping.source), checkpoints, held_until=since)
        if lag.held_left or not lag.complete:
            more = "" if lag.complete else "≥ "
            out.append(
                f"table {mapping.source}: {more}{lag.held_left:,} stream records not applied yet by the local "
                f"{direction} pollers (`{command}`)"
            )
    return out


def consumer_passed(age_seconds: float | None, since: float, now: float, window: float) -> bool:
    """Deployed: whether a stream function has applied every record made at or before ``since``, from the
    maximum IteratorAge (``age_seconds``) of its batches over the last ``window`` seconds: a batch processed
    in the window was at most that old, so the function reads records made after ``since`` once the age is
    below ``now - since - window``. No datapoint (None): unknown (idle and stuck look alike)."""
    if age_seconds is None:
        return False
    return age_seconds == 0 or age_seconds < now - since - window
