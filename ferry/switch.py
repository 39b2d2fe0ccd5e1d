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
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ferry.clients import make_client
from ferry.errors import SetupError
from ferry.spec import Spec
from ferry.tables.protocol import PHASE_LIVE, PHASE_REPLAY
from ferry.tables.state import BUCKET, TABLE, StateStore
from ferry.twoway import STEP_CAPTURE, STEP_REVERSE, TwoWayStore, reverse_spec

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
) -> list[str]:
    """Steps 1–3 of the module docstring; one line per action taken. Raises SetupError when refused."""
    from ferry.operations import initialize

    home = make_client("dynamodb", spec.home_where())
    store = StateStore(home, spec.state_table)
    refusal = reverse_refusal(spec, store)
    if refusal:
        raise SetupError(f"ferry reverse: {refusal}")
    switch = TwoWayStore(home, spec.state_table, clock)
    done: list[str] = []
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
    done += initialize(reverse_spec(spec), enable_streams=True)
    return done
