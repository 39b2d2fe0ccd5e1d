"""The shortened demo: the whole migration on the embedded emulator, live traffic included."""

from __future__ import annotations

import pytest

from ferry_cli.demo import run_demo

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("spark")]


def test_shortened_demo_migrates_a_live_table_with_zero_differences():
    # GIVEN a source of 400 items under live traffic during the backfill
    # WHEN the demo runs init, live replication, the Spark backfill, drain, finalize and verify
    result = run_demo(items=400, splits=2, traffic_rate=40, seed=21)
    # THEN verify finds no difference, the live path applied real traffic, nothing was dead-lettered
    assert result.verify_ok, result.verify_counts
    assert result.source_items == result.target_items > 0
    assert result.live_events_applied >= sum(v for k, v in result.live_operations.items() if k != "noop") * 0.9
    assert result.items_copied + result.items_already_present >= 380
    assert result.dlq_depth == 0
    assert result.lag_p99 < 10
