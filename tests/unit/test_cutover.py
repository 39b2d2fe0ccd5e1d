"""The cutover verdict as a pure decision: each NO-GO reason on its own, GO for tables and buckets under
both protocols (locally and deployed), and GO exactly when every condition holds (property test)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferry.spec import CutoverSettings
from ferry_cli.cutover import (
    BUCKET,
    TABLE,
    CutoverFacts,
    Lag,
    MappingState,
    QueueFact,
    SourceFacts,
    Verified,
    cutover_verdict,
)

pytestmark = pytest.mark.unit
NOW = 1_000_000.0
SETTINGS = CutoverSettings()  # max lag 5 s, verify at most 60 min old


def _ready(name: str = "orders", kind: str = TABLE, replay: bool = True) -> SourceFacts:
    return SourceFacts(
        name=name,
        kind=kind,
        replay=replay,
        copy_done=True,
        copy_detail="copy done",
        copy_finished_at=NOW - 600,
        phase="live",
        released=True,
        backlog_left=0,
        backlog_why="",
        lag=Lag(0.4, source="stream"),
        verify=Verified(0, NOW - 300),
        tombstones=0,
    )


def _facts(*sources: SourceFacts, queues: tuple[QueueFact, ...] = (QueueFact("failures", 0),)) -> CutoverFacts:
    return CutoverFacts(NOW, sources, queues)


@pytest.mark.parametrize(("kind", "replay"), [(TABLE, True), (TABLE, False), (BUCKET, True), (BUCKET, False)], ids=str)
def test_go_when_everything_holds(kind, replay):
    verdict = cutover_verdict(_facts(_ready(kind=kind, replay=replay)), SETTINGS)
    assert verdict.go and verdict.reasons == () and verdict.line() == "GO"


def test_go_deployed_with_enabled_healthy_mappings():
    source = replace(_ready(), mappings=(MappingState("stream mapping of ferry-dev-table_stream", "Enabled", "OK"),))
    assert cutover_verdict(_facts(source), SETTINGS).go


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"copy_done": False, "copy_detail": "3 of 4 segments done"}, "orders: copy not done (3 of 4 segments done)"),
        ({"released": False, "phase": "hold"}, "orders: changes held, the copy is not released (phase hold)"),
        ({"backlog_left": 42}, "orders: 42 held changes not replayed yet"),
        (
            {"backlog_left": None, "backlog_why": "the lag is unknown"},
            "orders: replay backlog unknown (the lag is unknown)",
        ),
        (
            {"lag": Lag(12.3, source="IteratorAge")},
            "orders: replication lag 12.3 s > cutover.max_lag_seconds 5 (IteratorAge)",
        ),
        (
            {"lag": Lag(None, why="no consumer has read the stream")},
            "orders: replication lag unknown (no consumer has read the stream)",
        ),
        ({"verify": None}, "orders: never verified (run `ferry verify`)"),
        ({"verify": Verified(3, NOW - 60)}, "orders: last verify found 3 differences"),
        ({"verify": Verified(0, NOW - 700)}, "orders: last verify ran 100 s before the copy finished"),
        (
            {"verify": Verified(0, NOW - 90 * 60), "copy_finished_at": NOW - 100 * 60},
            "orders: last verify 90 min old > cutover.max_verify_age_minutes 60",
        ),
        (
            {"copy_finished_at": None},
            "orders: when the copy finished is not recorded: the last verify cannot be placed after it",
        ),
        ({"tombstones": 7}, "orders: 7 tombstones left (run `ferry finalize`)"),
        (
            {"tombstones": None, "tombstones_why": "phase backfill: not finalized"},
            "orders: tombstones unknown (phase backfill: not finalized)",
        ),
        (
            {"conflicts": 2},
            "orders: 2 keys changed on both sides (`ferry verify --reverse` lists them; resolve with "
            "`ferry verify --repair --from old|new`)",
        ),
        ({"mappings": (MappingState("stream mapping of f", None),)}, "orders: no stream mapping of f"),
        ({"mappings": (MappingState("stream mapping of f", "Disabled"),)}, "orders: stream mapping of f is Disabled"),
        (
            {"mappings": (MappingState("stream mapping of f", "Enabled", "PROBLEM: Function call failed"),)},
            "orders: stream mapping of f: PROBLEM: Function call failed",
        ),
    ],
)
def test_each_no_go_reason_alone_names_the_source_and_the_number(change, reason):
    verdict = cutover_verdict(_facts(_ready(), _ready("users")), SETTINGS)
    assert verdict.go
    verdict = cutover_verdict(_facts(replace(_ready(), **change), _ready("users")), SETTINGS)
    assert not verdict.go and verdict.reasons == (reason,)
    assert verdict.line() == f"NO-GO: {reason}"


def test_a_bucket_reason_says_bucket_and_the_settings_are_honoured():
    lagging = replace(_ready("media", BUCKET), lag=Lag(3.0, source="lag sample"))
    assert cutover_verdict(_facts(lagging), SETTINGS).go
    strict = CutoverSettings(max_lag_seconds=2.5, max_verify_age_minutes=4)
    verdict = cutover_verdict(_facts(lagging), strict)
    assert verdict.reasons == (
        "bucket media: replication lag 3.0 s > cutover.max_lag_seconds 2.5 (lag sample)",
        "bucket media: last verify 5 min old > cutover.max_verify_age_minutes 4",
    )


def test_insert_only_needs_no_release_and_replay_needs_no_tombstone_scan():
    insert_only = replace(_ready(replay=False), released=False, backlog_left=None, phase="backfill")
    assert cutover_verdict(_facts(insert_only), SETTINGS).go  # release and backlog are replay's conditions


@pytest.mark.parametrize(
    ("queue", "reason"),
    [
        (QueueFact("failures", 2), "queue failures: 2 messages (see `ferry redrive`)"),
        (QueueFact("events-dlq", None), "queue events-dlq not found (run `ferry init`)"),
    ],
)
def test_a_failure_queue_with_messages_or_missing_is_no_go(queue, reason):
    verdict = cutover_verdict(_facts(_ready(), queues=(queue,)), SETTINGS)
    assert not verdict.go and verdict.reasons == (reason,)


def test_nothing_to_cut_over_is_no_go():
    assert cutover_verdict(_facts(), SETTINGS).reasons == ("nothing to cut over: the spec has no table or bucket",)


# --- property: GO iff every condition holds ---------------------------------------------------

_verifies = st.one_of(st.none(), st.builds(Verified, st.integers(0, 3), st.floats(NOW - 7200, NOW, allow_nan=False)))
_mappings = st.lists(
    st.builds(
        MappingState,
        st.just("mapping"),
        st.sampled_from([None, "Enabled", "Disabled", "Creating"]),
        st.sampled_from(["", "OK", "No records processed", "PROBLEM: Function call failed"]),
    ),
    max_size=2,
).map(tuple)
_sources = st.builds(
    SourceFacts,
    name=st.sampled_from(["orders", "users", "media"]),
    kind=st.sampled_from([TABLE, BUCKET]),
    replay=st.booleans(),
    copy_done=st.booleans(),
    copy_detail=st.just("detail"),
    copy_finished_at=st.one_of(st.none(), st.floats(NOW - 7200, NOW, allow_nan=False)),
    phase=st.sampled_from([None, "hold", "replay", "live", "backfill"]),
    released=st.booleans(),
    backlog_left=st.one_of(st.none(), st.integers(0, 3)),
    backlog_why=st.just("why"),
    lag=st.one_of(
        st.builds(Lag, st.none(), st.just(""), st.just("why")),
        st.builds(Lag, st.floats(0, 20, allow_nan=False), st.just("src")),
    ),
    verify=_verifies,
    tombstones=st.one_of(st.none(), st.integers(0, 3)),
    mappings=_mappings,
    conflicts=st.integers(0, 2),
)


def _holds(s: SourceFacts, settings: CutoverSettings, now: float) -> bool:
    """Every condition, written out independently of the implementation."""
    return (
        s.copy_done
        and (not s.replay or (s.released and s.backlog_left == 0))
        and s.lag.seconds is not None
        and s.lag.seconds <= settings.max_lag_seconds
        and all(m.state == "Enabled" and not m.last_result.startswith("PROBLEM") for m in s.mappings)
        and s.verify is not None
        and s.verify.differences == 0
        and s.copy_finished_at is not None
        and s.verify.at >= s.copy_finished_at
        and now - s.verify.at <= settings.max_verify_age_minutes * 60
        and s.tombstones == 0
        and s.conflicts == 0
    )


@given(
    sources=st.lists(_sources, max_size=3),
    depths=st.lists(st.one_of(st.none(), st.integers(0, 2)), min_size=1, max_size=2),
    max_lag=st.floats(0.5, 15, allow_nan=False),
    max_age=st.floats(1, 120, allow_nan=False),
)
def test_go_if_and_only_if_every_condition_holds(sources, depths, max_lag, max_age):
    settings = CutoverSettings(max_lag_seconds=max_lag, max_verify_age_minutes=max_age)
    queues = tuple(QueueFact(f"q{i}", d) for i, d in enumerate(depths))
    verdict = cutover_verdict(CutoverFacts(NOW, tuple(sources), queues), settings)
    expected = bool(sources) and all(d == 0 for d in depths) and all(_holds(s, settings, NOW) for s in sources)
    assert verdict.go is expected
    assert (verdict.reasons == ()) is expected
    assert verdict.line() == ("GO" if expected else "NO-GO: " + "; ".join(verdict.reasons))
