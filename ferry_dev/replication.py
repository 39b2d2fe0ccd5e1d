"""Local live replication: Lambda-like pollers calling the real handlers.

One stream poller per source table (→ ``table_stream``) and one SQS poller on the bucket events
queue (→ ``bucket_events``), configured the way Lambda configures them: FERRY_SPEC.

A replay table's poller (and the queue's, while a replay bucket is held) is gated by the phase in
the state table: it reads nothing and commits nothing until the copy is released, then applies
everything from the start of the stream or queue (ferry_dev.hold), as the release's mappings do on AWS.

The switch (docs/switching.md) turns a direction off through the state table: once a pair's
``forward_disabled`` (``ferry cutover``) or ``reverse_disabled`` (``ferry rollback``) step is recorded, that
direction's pollers of the pair apply nothing more (they re-read it at least every second), and a new
``LocalReplication`` of a direction off for every pair refuses to start.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from ferry.aws import is_missing_resource, queue_depth, stream_arn_of
from ferry.buckets.setup import ensure_event_queues
from ferry.clients import make_client
from ferry.release import queue_released
from ferry.spec import Spec, spec_to_dict
from ferry.switch import (
    DISABLED_STEP,
    FORWARD,
    LOCAL_RECHECK_SECONDS,
    REVERSE,
    Pair,
    SwitchRefused,
    local_recheck_seconds,
    pairs,
    switch_store,
)
from ferry.tables.protocol import replay_consumer_released
from ferry.tables.setup import ensure_failure_queue
from ferry.tables.state import BUCKET, TABLE, StateStore
from ferry.twoway import TwoWayStore, reverse_spec
from ferry_dev.anomalies import DeliveryAnomalies
from ferry_dev.hold import CatchUp, ReleaseGate
from ferry_dev.sqs_poller import SqsPoller
from ferry_dev.stream_poller import PollStats, StreamPoller

log = logging.getLogger(__name__)
CHALICE_APP = Path(__file__).resolve().parent.parent / "chalice_app"
SQS_POLLERS = 5


class DirectionOff:
    """Whether the switch turned a direction's consumers off for any of ``watched`` (``ferry cutover``:
    forward; ``ferry rollback``: reverse), as the local pollers ask before each round: re-read at most every
    ``recheck`` seconds, and kept once true. A failed read keeps the last answer (logged)."""

    def __init__(
        self,
        switch: TwoWayStore,
        watched: list[Pair],
        direction: str,
        *,
        recheck: float = LOCAL_RECHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.switch = switch
        self.watched = watched
        self.step = DISABLED_STEP[direction]
        self.recheck = recheck
        self.clock = clock
        self._lock = threading.Lock()
        self._asked_at: float | None = None
        self._off = False

    def __call__(self) -> bool:
        with self._lock:
            now = self.clock()
            if self._off or (self._asked_at is not None and now - self._asked_at < self.recheck):
                return self._off
            self._asked_at = now
            try:
                self._off = any(self.step in self.switch.steps(*pair) for pair in self.watched)
            except Exception as exc:
                log.warning("cannot read the switch steps (%s): the pollers keep their last answer", exc)
            if self._off:
                log.info("%s: replication turned off for %s", self.step, [source for _, source, _ in self.watched])
            return self._off


def all_off(switch: TwoWayStore, spec: Spec, direction: str) -> bool:
    """Whether every pair has its direction turned off (a state table that does not exist yet: no)."""
    step = DISABLED_STEP[direction]
    try:
        return bool(pairs(spec)) and all(step in switch.steps(*pair) for pair in pairs(spec))
    except Exception as exc:
        if is_missing_resource(exc):
            return False
        raise


def load_handlers(spec: Spec) -> Any:
    """The chalicelib modules Lambda runs, configured through FERRY_SPEC as Lambda would be."""
    if str(CHALICE_APP) not in sys.path:
        sys.path.insert(0, str(CHALICE_APP))
    from chalicelib import bucket_events, table_stream

    os.environ["FERRY_SPEC"] = json.dumps(spec_to_dict(spec))
    table_stream.reset()
    bucket_events.reset()
    return table_stream, bucket_events


def _table_released(store: StateStore, source: str) -> bool:
    return replay_consumer_released(store.phase_or_none(source))


class SwitchStreamPoller(StreamPoller):
    """A StreamPoller that applies nothing more (no read, no checkpoint) once ``off()`` says the switch turned
    its direction off for its pair."""

    def __init__(self, *args: Any, off: Callable[[], bool], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.off = off

    def poll_once(self) -> PollStats:
        if self.off():
            self._busy = False
            return PollStats()
        return super().poll_once()


class SwitchSqsPoller(SqsPoller):
    """An SqsPoller that receives nothing more once ``off()`` says the switch turned its direction off (the
    messages stay in the queue)."""

    def __init__(self, *args: Any, off: Callable[[], bool], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.off = off

    def held(self) -> bool:
        return self.off() or super().held()


class LocalReplication:
    """Pollers for every table and bucket of the spec, each in its own background thread."""

    def __init__(
        self,
        spec: Spec,
        *,
        starting_position: str | None = None,
        retry_backoff: float = 0.2,
        anomalies: DeliveryAnomalies | None = None,
        reverse: bool = False,
    ) -> None:
        """``spec`` is the migration's spec (forward, as in FERRY_SPEC); ``reverse``: replicate the new
        side back to the old one (ferry reverse): the reversed spec's streams and queue, the reverse
        handlers, and no release gate (reverse replication starts after every copy is done)."""
        self.sqs = make_client("sqs", spec.home_where())
        table_stream, bucket_events = load_handlers(spec)
        table_handler, bucket_handler = table_stream.handle, bucket_events.handle
        self.reverse = reverse
        direction = REVERSE if reverse else FORWARD
        switch = switch_store(spec)
        if all_off(switch, spec, direction):
            step = "ferry cutover" if direction == FORWARD else "ferry rollback --confirm-switched"
            raise SwitchRefused(
                f"{direction} replication is off for every table and bucket (`{step}` turned it off): nothing to run"
            )
        recheck = local_recheck_seconds(spec)

        def off(watched: list[Pair]) -> DirectionOff:
            return DirectionOff(switch, watched, direction, recheck=recheck)

        if reverse:
            spec = reverse_spec(spec)
            table_handler, bucket_handler = table_stream.handle_reverse, bucket_events.handle_reverse
        self.stream_pollers: list[StreamPoller] = []
        self.bucket_pollers: list[SqsPoller] = []
        self.queue_url = ""
        store = self.store = StateStore(make_client("dynamodb", spec.home_where()), spec.state_table)
        if spec.tables:
            # The streams are the source's (its side, its role); checkpoints go to the state table at home.
            source = make_client("dynamodb", spec.source_where())
            # Few retries: an expired iterator is recovered by the poller itself, not by botocore.
            streams = make_client("dynamodbstreams", spec.source_where(), max_attempts=2)
            self.queue_url, _ = ensure_failure_queue(self.sqs, spec.replication.on_failure_queue)
            self.stream_pollers = [
                SwitchStreamPoller(
                    streams=streams,
                    sqs=self.sqs,
                    stream_arn=stream_arn_of(source, mapping.source),
                    source_table=mapping.source,
                    handler=table_handler,
                    batch_size=spec.replication.batch_size,
                    starting_position=starting_position or spec.replication.starting_position,
                    max_retries=spec.replication.max_retries,
                    on_failure_queue_url=self.queue_url,
                    checkpoints=store,
                    retry_backoff=retry_backoff,
                    anomalies=anomalies,
                    gate=(
                        ReleaseGate(partial(_table_released, store, mapping.source))
                        if mapping.replay and not reverse
                        else None
                    ),
                    off=off([(TABLE, mapping.source, mapping.target)]),
                    function_name="table_stream_reverse" if reverse else "table_stream",
                )
                for mapping in spec.tables
            ]
        self.bucket_dlq_url = ""
        if spec.buckets:
            url, arn, self.bucket_dlq_url = ensure_event_queues(
                self.sqs, spec.s3.events_queue, spec.s3.max_receive_count, spec.s3.visibility_timeout
            )
            # Lambda's SQS event-source mapping starts with about five concurrent pollers; reconcile
            # is idempotent and order-free, so concurrent batches are safe. Each has its gate (and its catch-up).
            held = spec.buckets[0].replay and not reverse
            # One queue serves every bucket: its pollers stop once any bucket pair is off (the rest wait in it).
            buckets_off = off([(BUCKET, b.source, b.target) for b in spec.buckets])
            self.bucket_pollers = [
                SwitchSqsPoller(
                    self.sqs,
                    url,
                    arn,
                    bucket_handler,
                    batch_size=spec.s3.batch_size,
                    visibility_timeout=spec.s3.visibility_timeout,
                    retry_delay=min(5, spec.s3.visibility_timeout),
                    anomalies=anomalies,
                    gate=ReleaseGate(partial(queue_released, store, spec)) if held else None,
                    off=buckets_off,
                )
                for _ in range(SQS_POLLERS)
            ]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def pollers(self) -> list[Any]:
        return [*self.stream_pollers, *self.bucket_pollers]

    def start(self, idle_sleep: float = 0.1) -> LocalReplication:
        self._stop.clear()
        for i, poller in enumerate(self.pollers):
            thread = threading.Thread(target=poller.run, args=(self._stop, idle_sleep), name=f"poller-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []

    def drain(self, timeout: float = 120.0) -> None:
        """Stop the background loops, then poll until every stream and queue has nothing left."""
        self.stop()
        errors: list[BaseException] = []

        def drain_one(poller: Any) -> None:
            try:
                poller.drain(timeout)
            except BaseException as exc:  # re-raised below, in the caller's thread
                errors.append(exc)

        threads = [threading.Thread(target=drain_one, args=(p,), daemon=True) for p in self.pollers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def catch_ups(self) -> dict[str, CatchUp | None]:
        """``table`` and ``bucket``: how the released consumers caught up on what was held (None: nothing
        was held, or the catch-up has not ended)."""
        out: dict[str, CatchUp | None] = {}
        for kind, pollers in (("table", self.stream_pollers), ("bucket", self.bucket_pollers)):
            gates = [p.gate for p in pollers if p.gate is not None]
            done = [g.catch_up for g in gates if g.catch_up is not None]
            held = [g for g in gates if g.was_held]
            out[kind] = (
                CatchUp(sum(c.applied for c in done), max(c.seconds for c in done))
                if done and len(done) == len(held)
                else None
            )
        return out

    def backlog(self) -> int:
        """Changes waiting for the consumers: every stream's records after the pollers' checkpoints (all
        of them while a replay table is held) plus the bucket events queue's messages. Reads each stream
        from its oldest record (ferry.backlog.stream_backlog): for progress and status, not a hot path."""
        from ferry.backlog import stream_backlog

        waiting = 0
        for poller in self.stream_pollers:
            checkpoints = {shard: seq for shard, seq, _, _ in self.store.stream_checkpoints(poller.source_table)}
            waiting += stream_backlog(poller.streams, poller.stream_arn, checkpoints).behind
        if self.bucket_pollers:
            waiting += queue_depth(self.sqs, self.bucket_pollers[0].queue_url)
        return waiting

    def applied(self) -> int:
        """Stream records and bucket event messages the pollers applied so far (each counted once)."""
        return sum(p.stats.applied for p in self.stream_pollers) + sum(p.stats.succeeded for p in self.bucket_pollers)

    def dlq_depth(self) -> int:
        """Messages in the stream on-failure queue plus the bucket events DLQ."""
        return sum(queue_depth(self.sqs, url) for url in (self.queue_url, self.bucket_dlq_url) if url)
