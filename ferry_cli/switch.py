"""The switch's commands (docs/switching.md): ``ferry reverse``, ``ferry cutover``, ``ferry rollback``.

Each step is recorded per pair in the state table (ferry.switch, ferry.twoway) before the next begins,
and a rerun skips what is recorded, so a command interrupted anywhere is finished by running it again.
Locally the consumers are ``ferry replicate`` (forward) and ``ferry replicate --reverse``, which obey the
recorded ``forward_disabled`` / ``reverse_disabled``; with ``--stage`` they are the stage's event-source
mappings, which ferry_cli.deploy turns on and off. Lines are handed to ``say`` as they happen (the waits
can be long); refusals and timeouts raise SwitchRefused / SwitchTimeout (exit 1), naming what to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ferry.clients import make_client
from ferry.spec import Spec
from ferry.switch import (
    DISABLED_STEP,
    FORWARD,
    REVERSE,
    STEP_FORCED,
    STEP_REVERSE_DISABLED,
    SwitchRefused,
    SwitchTimeout,
    consumer_passed,
    direction_spec,
    lacking,
    local_recheck_seconds,
    local_streams_waiting,
    pair_steps,
    prepare_reverse,
    queue_waiting,
    record_steps,
    require_reverse,
    switch_store,
)
from ferry.tables.state import BUCKET, StateStore
from ferry.twoway import (
    STEP_FORWARD_DISABLED,
    STEP_FORWARD_DRAINED,
    STEP_ROLLED_BACK,
    STEP_SWITCHED,
    reverse_spec,
)

Say = Callable[[str], None]
POLL_SECONDS = 1.0  # how often a wait re-reads the streams and queues
GO_MESSAGE = (
    "GO: switch the service to the new resources now (a rolling switch is safe: both directions replicate); "
    "then run `{cutover} --confirm-switched`"
)


@dataclass(frozen=True)
class Invocation:
    """How the user runs ferry for this spec: the commands printed as next steps are complete and exact."""

    spec_path: str
    stage: str | None = None

    def command(self, name: str, *extra: str) -> str:
        stage = ("--stage", self.stage) if self.stage else ()
        return " ".join(("ferry", name, "--spec", self.spec_path, *stage, *extra))


# --- ferry reverse ---------------------------------------------------------------------------------


def reverse(
    spec: Spec, how: Invocation, say: Say, *, sleep: Callable[[float], None] = time.sleep, sources_only: bool = False
) -> None:
    """Begin reverse replication (ferry.switch.prepare_reverse) and, for a stage, wire its reverse functions.
    ``sources_only`` (a Terraform stage): only the new side's streams and EventBridge; Terraform (``reverse =
    true``) creates the reverse queues, rules and mappings."""
    from ferry_cli.deploy import prepare_sources, wire_reverse

    lines = prepare_reverse(spec, sleep=sleep, capture=prepare_sources if sources_only else None)
    if how.stage is not None and not sources_only:
        lines += wire_reverse(spec, how.stage)
    for line in lines or ["nothing to do: reverse replication is set up already"]:
        say(f"• {line}")
    if how.stage is None:
        consumers = (
            f"run `ferry replicate --spec {how.spec_path} --reverse` beside `ferry replicate --spec {how.spec_path}`: "
            "both directions replicate while the service switches"
        )
    else:
        consumers = "the reverse functions' mappings replicate the new side back to the old one"
    say(f"next: {consumers}; then `{how.command('status')}` until GO, and `{how.command('cutover')}`")


# --- waiting for a direction to drain ------------------------------------------------------------------


def deployed_streams_waiting(spec: Spec, stage: str, direction: str, since: float, now: float) -> list[str]:
    """Deployed: whether the direction's stream function has applied every record made at or before ``since``,
    from its IteratorAge in CloudWatch (ferry.switch.consumer_passed); nothing waiting: []."""
    from ferry.deploy import DIRECTION_FUNCTIONS, function_name
    from ferry_cli.cutover import METRIC_WINDOW_SECONDS, _metric_max

    if not direction_spec(spec, direction).tables:
        return []
    function = function_name(stage, DIRECTION_FUNCTIONS[direction][0])
    cloudwatch = make_client("cloudwatch", spec.home_where())
    age_ms = _metric_max(cloudwatch, "AWS/Lambda", "IteratorAge", ("FunctionName", function), now)
    age = None if age_ms is None else age_ms / 1000
    if consumer_passed(age, since, now, METRIC_WINDOW_SECONDS):
        return []
    minutes = METRIC_WINDOW_SECONDS // 60
    if age is None:
        return [
            f"{function}: no IteratorAge datapoint in the last {minutes} min (an idle and a stuck mapping look "
            "alike: a write to one of its tables shows which)"
        ]
    return [
        f"{function}: IteratorAge up to {age:.1f} s in the last {minutes} min does not yet show it reading "
        f"changes made after {time.strftime('%H:%M:%S', time.localtime(since))}"
    ]


def in_flight(spec: Spec, direction: str, since: float, stage: str | None, now: float) -> list[str]:
    """What the direction still has to apply from before ``since``: its events queue (any message) and its
    streams (locally: records after the pollers' checkpoints; deployed: the function's IteratorAge)."""
    waiting = queue_waiting(spec, direction)
    if stage is None:
        waiting += local_streams_waiting(spec, direction, since)
    else:
        waiting += deployed_streams_waiting(spec, stage, direction, since, now)
    return waiting


def wait_drained(
    spec: Spec,
    direction: str,
    since: float,
    *,
    stage: str | None,
    timeout: float,
    say: Say,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> None:
    """Wait until the direction has applied everything from before ``since``; SwitchTimeout after ``timeout``."""
    deadline = clock() + timeout
    told: list[str] = []
    while True:
        waiting = in_flight(spec, direction, since, stage, clock())
        if not waiting:
            say(f"{direction} replication drained: every change made before the wait began is applied")
            return
        if clock() >= deadline:
            raise SwitchTimeout(
                f"{direction} replication not drained after {timeout:g} s, still in flight: {'; '.join(waiting)}. "
                "Nothing was turned off; run the same command again to go on waiting"
            )
        if waiting != told:
            say(f"waiting for {direction} replication: {'; '.join(waiting)}")
            told = waiting
        sleep(POLL_SECONDS)


def turn_off(
    spec: Spec,
    direction: str,
    todo: list[tuple[str, str, str]],
    *,
    stage: str | None,
    sleep: Callable[[float], None],
) -> list[str]:
    """Turn the direction's consumers off: deployed, its mappings; then record the step (which the local pollers
    obey: wait until they have re-read it)."""
    lines: list[str] = []
    if stage is not None:
        from ferry_cli.deploy import set_mappings_enabled

        lines += set_mappings_enabled(spec, stage, direction, False)
    lines += record_steps(switch_store(spec), todo, DISABLED_STEP[direction])
    if stage is None:
        sleep(local_recheck_seconds(spec) + 1.0)
        lines.append(f"the local {direction} pollers apply nothing more")
    return lines


# --- ferry cutover -----------------------------------------------------------------------------------


def cutover(
    spec: Spec,
    how: Invocation,
    say: Say,
    *,
    force: bool,
    confirm_switched: bool,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> None:
    """GO check, then (``confirm_switched``) switched → forward drained → forward off; each step skipped once
    recorded for every pair."""
    from ferry_cli.cutover import cutover_verdict, gather_facts

    switch = switch_store(spec)
    steps = pair_steps(switch, spec)
    require_reverse(steps, "ferry cutover")
    if any(STEP_ROLLED_BACK in done for done in steps.values()):
        raise SwitchRefused(
            "ferry cutover: the switch was rolled back (`ferry rollback --confirm-switched`): the old side is "
            "authoritative and reverse replication is off; a new switch starts from a new migration"
        )
    if lacking(steps, STEP_SWITCHED):  # once the service is switched, the verdict no longer decides anything
        home = make_client("dynamodb", spec.home_where())
        verdict = cutover_verdict(gather_facts(spec, StateStore(home, spec.state_table), stage=how.stage), spec.cutover)
        if verdict.go:
            say("verdict: GO")
        elif not force:
            raise SwitchRefused(
                f"ferry cutover: {verdict.line()}. Fix what it names (`{how.command('status')}` shows the verdict), "
                "or pass --force to go on anyway"
            )
        else:
            say(f"forced (--force) over the verdict {verdict.line()}")
            record_steps(switch, list(steps), STEP_FORCED)
    if not confirm_switched:
        say(GO_MESSAGE.format(cutover=how.command("cutover")))
        return
    for line in record_steps(switch, lacking(steps, STEP_SWITCHED), STEP_SWITCHED):
        say(f"• {line}")
    steps = pair_steps(switch, spec)
    undrained = lacking(steps, STEP_FORWARD_DRAINED)
    if undrained:
        since = max(steps[pair][STEP_SWITCHED] for pair in undrained)
        wait_drained(spec, FORWARD, since, stage=how.stage, timeout=timeout, say=say, sleep=sleep, clock=clock)
        for line in record_steps(switch, undrained, STEP_FORWARD_DRAINED):
            say(f"• {line}")
    enabled = lacking(steps, STEP_FORWARD_DISABLED)
    if enabled:
        for line in turn_off(spec, FORWARD, enabled, stage=how.stage, sleep=sleep):
            say(f"• {line}")
    say("cut over: the new side is authoritative; reverse replication keeps the old side up to date")
    for line in rollback_procedure(how):
        say(line)


def rollback_procedure(how: Invocation) -> list[str]:
    return [
        "to roll back:",
        f"  `{how.command('verify', '--reverse')}`: compares the old side with the new one and lists open conflicts "
        "(read-only)",
        f"  `{how.command('rollback')}`: waits for reverse replication to drain, verifies the old side equals the "
        "new one and that no conflict is open; exit 0: switching the service back loses no write",
        f"  then switch the service back to the old resources and run `{how.command('rollback', '--confirm-switched')}`"
        ": waits for the last writes of the instances still on the new side, turns reverse replication off; the old "
        "side is authoritative again",
    ]


# --- ferry rollback ----------------------------------------------------------------------------------


def old_side(spec: Spec) -> str:
    tables = ", ".join(t.source for t in spec.tables)
    buckets = ", ".join(b.source for b in spec.buckets)
    return "; ".join(part for part in (tables and f"tables {tables}", buckets and f"buckets {buckets}") if part)


def rollback(
    spec: Spec,
    how: Invocation,
    say: Say,
    *,
    confirm_switched: bool,
    timeout: float,
    show_report: Callable[[Any], None],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> bool:
    """Without ``confirm_switched``: reverse drained, the old side verified equal to the new one, no open conflict
    (True: the service may switch back). With it: reverse drained, reverse off, ``rolled_back`` recorded."""
    from ferry.operations import open_conflicts, verify_all

    switch = switch_store(spec)
    steps = pair_steps(switch, spec)
    require_reverse(steps, "ferry rollback")
    authoritative = f"the old side is authoritative: {old_side(spec)}"
    if not lacking(steps, STEP_ROLLED_BACK):
        say(f"rolled back already; {authoritative}")
        return True
    if not confirm_switched:
        if lacking(steps, STEP_REVERSE_DISABLED):
            wait_drained(spec, REVERSE, clock(), stage=how.stage, timeout=timeout, say=say, sleep=sleep, clock=clock)
        reports = verify_all(reverse_spec(spec))
        for report in reports:
            show_report(report)
        conflicts = open_conflicts(spec)
        for c in conflicts:
            kind = "object" if c.kind == BUCKET else "key"
            say(f"open conflict: {kind} {c.key} ({c.pair}): a change on {c.source} was not applied to {c.destination}")
        if conflicts or not all(r.ok for r in reports):
            say(
                "the old side differs from the new one: do not switch back yet. Resolve each key named above with "
                f"`{how.command('verify', '--repair', '--from', 'old|new')}` (the side whose state wins), "
                f"then run `{how.command('rollback')}` again"
            )
            return False
        say(
            "the old side equals the new one: switch the service back to the old resources now, then run "
            f"`{how.command('rollback', '--confirm-switched')}`"
        )
        return True
    enabled = lacking(steps, STEP_REVERSE_DISABLED)
    if enabled:
        wait_drained(spec, REVERSE, clock(), stage=how.stage, timeout=timeout, say=say, sleep=sleep, clock=clock)
        for line in turn_off(spec, REVERSE, enabled, stage=how.stage, sleep=sleep):
            say(f"• {line}")
    for line in record_steps(switch, lacking(steps, STEP_ROLLED_BACK), STEP_ROLLED_BACK):
        say(f"• {line}")
    say(f"rolled back: {authoritative}")
    return True
