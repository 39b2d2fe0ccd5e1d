"""`ferry plan`'s formulas: capacity units, durations at the budget, hold window, DPU-hours, Lambda
invocations, S3 request counts, prices and the recommendation (no I/O)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferry.errors import SpecError
from ferry.spec import parse_spec
from ferry.tables.backfill import capacity_budget
from ferry.tables.estimate import (
    PATH_EXPORT_BATCH,
    PATH_EXPORT_IMPORT,
    PATH_INSERT_ONLY,
    PATH_SCAN_BATCH,
    catch_up_seconds,
    estimate_copy,
    estimate_path,
    fits_hold,
    glue_dpu_hours,
    invocations,
    item_write_units,
    scan_read_units,
    units_per_item,
)
from ferry.tables.schema import shape_from_description
from ferry_cli.plan import (
    PathPlan,
    S3Requests,
    bucket_copy_requests,
    export_requests,
    listing_requests,
    load_price_table,
    price_path,
    prices_for,
    recommend,
)

pytestmark = pytest.mark.unit


def shape(items: int, size: int, *, units: tuple[int, int] | None = None) -> Any:
    table: dict[str, Any] = {
        "TableName": "t",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "ItemCount": items,
        "TableSizeBytes": size,
    }
    if units:
        table["ProvisionedThroughput"] = {"ReadCapacityUnits": units[0], "WriteCapacityUnits": units[1]}
        table["BillingModeSummary"] = {"BillingMode": "PROVISIONED"}
    else:
        table["BillingModeSummary"] = {"BillingMode": "PAY_PER_REQUEST"}
    return shape_from_description(table)


def spec(**extra: Any) -> Any:
    return parse_spec({"region": "us-east-1", "tables": [{"source": "src", "target": "dst"}], **extra})


# --------------------------------------------------------------------------- units


def test_scan_reads_half_a_unit_per_4_kb_and_writes_a_unit_per_started_kb() -> None:
    assert scan_read_units(8192) == 1.0
    assert scan_read_units(2_000_000) == pytest.approx(244.14, abs=0.01)
    assert [units_per_item(b) for b in (0, 1, 1024, 1025, 4000)] == [1, 1, 1, 2, 4]
    assert item_write_units(2000, 1000) == 2000
    assert item_write_units(2000, 1500) == 4000


# --------------------------------------------------------------------------- durations


def test_provisioned_duration_is_the_longer_side_at_percent_of_capacity() -> None:
    # bench line 2's table: C' = 200 RCU, C = 100 WCU, p = 0.5, 2,000 items of 1,000 B
    source = shape(2000, 2_000_000, units=(200, 100))
    read = capacity_budget(source, 0.5, 4000, write=False)
    write = capacity_budget(source, 0.5, 1000, write=True)
    assert (read, write) == (100.0, 50.0)
    for path in (PATH_SCAN_BATCH, PATH_INSERT_ONLY):
        estimate = estimate_path(path, 2000, 2_000_000, 1000, read, write)
        assert estimate.write_seconds == pytest.approx(40.0)  # 2,000 WCU / 50 WCU/s
        assert estimate.read_seconds == pytest.approx(2.44, abs=0.01)  # 244 RCU / 100 RCU/s
        assert estimate.seconds == pytest.approx(40.0)
        assert (estimate.read_units, estimate.write_units) == (pytest.approx(244.14, abs=0.01), 2000)
    # the same figures as the replay hold check's estimate_copy (the same formulas)
    assert estimate_copy(source, None, spec().backfill).seconds == pytest.approx(40.0)


def test_the_read_side_decides_when_it_is_the_slower_one() -> None:
    estimate = estimate_path(PATH_SCAN_BATCH, 1000, 40_960_000, 40_960, read_rate=5, write_rate=1000)
    assert estimate.read_seconds == pytest.approx(40_960_000 / 4096 / 2 / 5)  # 1,000 s
    assert estimate.write_seconds == pytest.approx(1000 * 40 / 1000)  # 40 s
    assert estimate.seconds == estimate.read_seconds


def test_on_demand_duration_uses_the_spec_ceilings() -> None:
    source = shape(100_000, 100_000_000, units=None)
    read = capacity_budget(source, 0.5, 4000, write=False)
    write = capacity_budget(source, 0.5, 1000, write=True)
    estimate = estimate_path(PATH_SCAN_BATCH, 100_000, 100_000_000, 1000, read, write)
    assert estimate.write_seconds == pytest.approx(100_000 / 500)
    assert estimate.read_seconds == pytest.approx(100_000_000 / 4096 / 2 / 2000)


def test_export_paths_read_no_capacity_and_import_writes_none_and_their_time_is_not_estimated() -> None:
    export_batch = estimate_path(PATH_EXPORT_BATCH, 1000, 1_000_000, 1000, 10, 10)
    assert export_batch.read_units == 0 and export_batch.read_seconds is None
    assert export_batch.seconds == pytest.approx(100.0) and not export_batch.estimated  # a lower bound
    assert export_batch.export_bytes == 1_000_000 and export_batch.import_bytes == 0
    export_import = estimate_path(PATH_EXPORT_IMPORT, 1000, 1_000_000, 1000, 10, 10)
    assert (export_import.read_units, export_import.write_units, export_import.seconds) == (0, 0, None)
    assert export_import.import_bytes == 1_000_000 and not export_import.glue
    with pytest.raises(ValueError, match="unknown path"):
        estimate_path("bogus", 1, 1, 1, 1, 1)


@given(
    items=st.integers(1, 10**7),
    average=st.integers(1, 400 * 1024),
    read=st.floats(1, 10**5),
    write=st.floats(1, 10**5),
    factor=st.integers(2, 50),
)
def test_duration_is_linear_in_items_and_never_below_either_side(
    items: int, average: int, read: float, write: float, factor: int
) -> None:
    one = estimate_path(PATH_SCAN_BATCH, items, items * average, average, read, write)
    many = estimate_path(PATH_SCAN_BATCH, items * factor, items * factor * average, average, read, write)
    assert one.seconds is not None and many.seconds is not None
    assert many.seconds == pytest.approx(one.seconds * factor, rel=1e-6)
    assert one.seconds >= items * math.ceil(average / 1024) / write - 1e-9
    assert one.seconds >= one.read_units / read - 1e-9


# --------------------------------------------------------------------------- hold window, Glue, Lambda


def test_catch_up_drains_what_was_held_at_the_replay_rate_less_the_change_rate() -> None:
    assert catch_up_seconds(10, 1000, 60) == pytest.approx(10 * 1000 / 50)
    assert catch_up_seconds(0, 1000, 60) == 0
    assert catch_up_seconds(60, 1000, 60) == math.inf  # the replay never catches up
    assert fits_hold(20 * 3600 - 200, 200, 20)
    assert not fits_hold(20 * 3600 - 199, 200, 20)
    assert not fits_hold(1, math.inf, 20)


@given(change=st.floats(0.01, 1000), copy=st.floats(1, 10**6), extra=st.floats(0.01, 10**4))
def test_catch_up_grows_with_the_change_rate(change: float, copy: float, extra: float) -> None:
    replay = change * 3
    assert catch_up_seconds(change, copy, replay) <= catch_up_seconds(change * 1.5, copy, replay)
    assert catch_up_seconds(change, copy, replay + extra) <= catch_up_seconds(change, copy, replay)


def test_glue_dpu_hours_are_workers_times_dpu_times_hours_with_a_one_minute_minimum() -> None:
    assert glue_dpu_hours(7200, 2, 1.0) == pytest.approx(4.0)
    assert glue_dpu_hours(10, 2, 1.0) == pytest.approx(2 / 60)  # billed as one minute
    assert glue_dpu_hours(60, 10, 2.0) == pytest.approx(20 / 60)


def test_lambda_invocations_are_changes_over_the_batch_size() -> None:
    assert invocations(10, 100, 100) == 10
    assert invocations(10, 101, 100) == 11  # a part batch is an invocation
    assert invocations(0, 10**6, 100) == 0


# --------------------------------------------------------------------------- S3 requests


def test_bucket_copy_counts_what_ferry_sends_per_object() -> None:
    assert listing_requests(0) == 1 and listing_requests(1000) == 1 and listing_requests(1001) == 2
    replay = bucket_copy_requests(2500, 10, 30, replay=True)
    # 3 source + 1 target listings; 2,490 CopyObject; per multipart key Create + Complete + a copy per part
    assert replay == S3Requests(put=4 + 2490 + 20 + 30, get=20 + 30)  # HEAD + tags, a HEAD per part
    insert = bucket_copy_requests(2500, 10, 30, replay=False)
    assert insert == S3Requests(put=4 + 2490 + 20 + 30, get=5 * 2490 + 6 * 10 + 30)
    assert bucket_copy_requests(0, 0, 0, replay=True) == S3Requests(put=2)


def test_export_requests_are_billed_per_file_written_and_read() -> None:
    requests, files = export_requests(250 * 1024**2)
    assert files == 3
    assert requests == S3Requests(put=3 + 2 + 1, get=3 + 2)


# --------------------------------------------------------------------------- prices and costs


def test_the_price_table_has_every_price_for_every_region_with_its_source_and_date() -> None:
    table = load_price_table()
    assert table["currency"] == "USD" and table["as_of"] and table["source"]
    assert {"us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2"} <= set(table["regions"])
    for prices in table["regions"].values():
        assert set(prices) == set(table["units"])
        assert all(v > 0 for v in prices.values())


def test_spec_prices_override_the_table_and_unknown_names_or_regions_are_spec_errors() -> None:
    assert prices_for(spec())["glue_dpu_hour"] == 0.44
    assert prices_for(spec(prices={"glue_dpu_hour": 1.5}))["glue_dpu_hour"] == 1.5
    with pytest.raises(SpecError) as unknown:
        prices_for(spec(prices={"glue_hour": 1.5}))
    assert unknown.value.field == "prices.glue_hour"
    lost = parse_spec({"region": "sa-east-1", "tables": [{"source": "src", "target": "dst"}]})
    with pytest.raises(SpecError) as region:
        prices_for(lost)
    assert region.value.field == "region" and "sa-east-1" in str(region.value)
    every = {name: 1.0 for name in load_price_table()["units"]}
    full = parse_spec({"region": "sa-east-1", "tables": [{"source": "src", "target": "dst"}], "prices": every})
    assert prices_for(full)["ddb_wcu_hour"] == 1.0


def _priced(path: str, **kwargs: Any) -> PathPlan:
    estimate = estimate_path(path, 1_000_000, 1_000_000 * 1000, 1000, read_rate=1000, write_rate=500)
    defaults: dict[str, Any] = {
        "prices": prices_for(spec(prices={"ddb_on_demand_write_per_million": 2.0})),
        "protocol": "replay",
        "change_rate": 0.0,
        "replay_rate": 500.0,
        "max_hold_hours": 20.0,
        "batch_size": 100,
        "glue_workers": 2,
        "dpu_per_worker": 1.0,
    }
    return price_path(estimate, **{**defaults, **kwargs})


def test_costs_on_demand_and_provisioned_with_a_price_override() -> None:
    plan = _priced(PATH_SCAN_BATCH)
    rcu = 1_000_000 * 1000 / 4096 / 2
    assert plan.seconds == pytest.approx(2000.0)  # 1,000,000 WCU / 500 WCU/s
    glue = 2 * 2000 / 3600 * 0.44
    assert plan.dpu_hours == pytest.approx(2 * 2000 / 3600)
    assert plan.cost_on_demand == pytest.approx(1_000_000 / 1e6 * 2.0 + rcu / 1e6 * 0.125 + glue)
    assert plan.cost_provisioned == pytest.approx(1_000_000 / 3600 * 0.00065 + rcu / 3600 * 0.00013 + glue)
    assert plan.hold == "fits" and plan.s3_put == plan.s3_get == 0


def test_import_is_billed_per_gb_and_consumes_no_units() -> None:
    plan = _priced(PATH_EXPORT_IMPORT)
    gb = 1_000_000 * 1000 / 1024**3
    requests, _ = export_requests(1_000_000 * 1000)
    assert plan.cost_on_demand == pytest.approx(gb * 0.10 + gb * 0.15 + requests.cost(plan_prices()))
    assert plan.cost_on_demand == plan.cost_provisioned and plan.dpu_hours == 0 and plan.hold == "unknown"


def plan_prices() -> dict[str, float]:
    return prices_for(spec())


def test_the_hold_window_counts_the_catch_up_and_insert_only_holds_nothing() -> None:
    # copy 2,000 s; 400 changes/s held then replayed at 500/s: catch-up 400 × 2000 / 100 = 8,000 s
    held = _priced(PATH_SCAN_BATCH, change_rate=400.0, max_hold_hours=2.8)
    assert held.catch_up_seconds == pytest.approx(8000.0)
    assert held.hold == "fits"  # 10,000 s ≤ 2.8 h (10,080 s)
    assert _priced(PATH_SCAN_BATCH, change_rate=400.0, max_hold_hours=2.7).hold == "exceeds"  # 9,720 s
    assert held.lambda_invocations == math.ceil(400 * 10_000 / 100)
    insert = _priced(PATH_INSERT_ONLY, change_rate=400.0)
    assert insert.hold == "no hold" and insert.catch_up_seconds is None
    assert insert.lambda_invocations == math.ceil(400 * 2000 / 100)


def test_the_recommendation_and_its_reason() -> None:
    fits = [_priced(p) for p in (PATH_SCAN_BATCH, PATH_EXPORT_BATCH, PATH_EXPORT_IMPORT, PATH_INSERT_ONLY)]
    for p in fits[1:3]:
        p.available, p.why_not = False, "needs PITR on the source (it is DISABLED)"
    path, reason = recommend(fits, "replay", 20.0)
    assert path == PATH_SCAN_BATCH and "inside max_hold_hours" in reason
    fits[2].available = True  # PITR on and no target: the import is cheaper than 1,000,000 WCU at $2/M
    path, reason = recommend(fits, "replay", 20.0)
    assert path == PATH_EXPORT_IMPORT and "cheaper" in reason
    too_long = [
        _priced(p, max_hold_hours=0.5)
        for p in (PATH_SCAN_BATCH, PATH_EXPORT_BATCH, PATH_EXPORT_IMPORT, PATH_INSERT_ONLY)
    ]
    too_long[2].available, too_long[2].why_not = False, "ImportTable creates the target, which exists"
    path, reason = recommend(too_long, "replay", 0.5)
    assert path == PATH_INSERT_ONLY and "does not fit" in reason and "which exists" in reason
    too_long[2].available = True
    assert recommend(too_long, "replay", 0.5)[0] == PATH_EXPORT_IMPORT
    assert recommend(fits, "insert-only", 20.0)[0] == PATH_INSERT_ONLY
