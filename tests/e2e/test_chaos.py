"""A fixed, small chaos seed on every CI run, under both protocols: live traffic, injected faults, a killed
Spark driver, a killed Spark task, killed pollers (under replay also during the catch-up), duplicated and
stale S3 events — and zero differences; on each emulator (moto, ministack).

Under replay the seed then runs the switch (docs/adr/0009): ferry reverse, writes on both sides, both
directions' pollers through the faults and each killed once — and still zero differences both ways, zero
conflicts, and exactly one replicated write per user write (each a stream record: 2 × the writes)."""

from __future__ import annotations

import pytest

from ferry_dev.chaos import run_seed

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("spark")]

# Seeds that once found a divergence are added here and stay here.
REGRESSION_SEEDS: list[int] = []


@pytest.mark.parametrize("seed", [101, *REGRESSION_SEEDS])
def test_a_seeded_chaos_run_ends_with_zero_differences(seed, tmp_path, emulator_kind):
    results = run_seed(seed, items=120, objects=30, splits=3, workdir=tmp_path, emulator=emulator_kind)
    assert [r.protocol for r in results] == ["insert-only", "replay"]
    for result in results:
        assert result.differences == 0, (result.protocol, result.detail)
        assert result.crashes.get("backfill-driver", 0) + result.crashes.get("backfill-task", 0) >= 1
        assert result.crashes.get("poller", 0) >= (2 if result.protocol == "replay" else 1)
        assert sum(result.faults.values()) > 0 and result.faults.get("throttle", 0) > 0
        assert result.redone_pages <= result.redone_bound, "a crash redid more than one page per segment"
    insert_only, replay = results
    assert insert_only.two_way is None
    switch = replay.two_way
    assert switch is not None, replay.detail
    assert switch.crashes == {"poller-forward": 1, "poller-reverse": 1}
    assert switch.writes > 0 and switch.object_writes > 0 and switch.handed_over > 0, switch
    # Safety, always: the drain ends (no echo storm) and every key that differs is named by an open conflict.
    assert switch.drain_rounds > 0, switch.detail
    assert switch.unexplained == 0, f"a key differs and no conflict names it (silent divergence): {switch.detail}"
    # No key is written on both sides at once, so no conflict; each user write is one stream record plus exactly
    # one replicated write (its echo writes nothing).
    assert switch.conflicts == 0 and switch.differences == 0, switch.detail
    assert switch.records == 2 * switch.writes, switch
