"""Bench lines 1 and 3: the items carry every type at the promised size, the cost floor and ferry's
own counters follow DynamoDB's rules, the request meter counts what boto3 sends, the rounds
alternate and stop at the budget, and a copy that differs is never reported as type-exact."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import boto3
import pytest

from bench.common import Timed, bench_emulator
from bench.table_backfill import (
    COST_TOLERANCE,
    Bench,
    RequestMeter,
    _exactness,
    alternate_within,
    copy_naive,
    cost_floor,
    loss_under_load,
)
from bench.table_source import ITEM_BYTES, bench_item, seed
from ferry.clients import AwsTarget, client_config, make_client
from ferry.spec import parse_spec
from ferry.tables.backfill import BackfillSummary, copy_segment, plan_backfill, put_units, scan_page_units
from ferry.tables.setup import init_tables
from ferry.wire import TYPE_TAGS, item_size
from ferry_dev.emulator import Emulator, use_dummy_credentials
from ferry_dev.workload import create_workload_table as create_bench_table


def _tags(value: dict[str, Any]) -> set[str]:
    ((tag, inner),) = value.items()
    if tag == "M":
        return {tag} | {t for v in inner.values() for t in _tags(v)}
    if tag == "L":
        return {tag} | {t for v in inner for t in _tags(v)}
    return {tag}


def _depth(value: dict[str, Any]) -> int:
    ((tag, inner),) = value.items()
    if tag == "M":
        return 1 + max((_depth(v) for v in inner.values()), default=0)
    if tag == "L":
        return 1 + max((_depth(v) for v in inner), default=0)
    return 0


@pytest.mark.unit
def test_bench_items_hold_all_ten_types_one_level_deep_at_the_promised_size() -> None:
    items = [bench_item(i) for i in range(50)]
    for item in items:
        assert set().union(*(_tags(v) for v in item.values())) == TYPE_TAGS
        assert max(_depth(v) for v in item.values()) == 1  # one level of M and L
        assert item_size(item) == ITEM_BYTES  # one write unit each
        assert any(v.get("N") == "12345678901234567890123456789012345678" for v in item.values())
    assert bench_item(7) == bench_item(7)  # reproducible
    assert len({item["pk"]["S"] for item in items}) == len(items)


@pytest.mark.unit
def test_dynamodb_charges_half_a_unit_per_started_4_kb_read_and_a_unit_per_started_1_kb_write() -> None:
    assert [scan_page_units(b) for b in (0, 1, 4096, 4097, 1_048_576)] == [0.5, 0.5, 0.5, 1.0, 128.0]
    assert [put_units(b) for b in (0, 1, 1024, 1025, 400_000)] == [1, 1, 1, 2, 391]


@pytest.mark.unit
def test_the_floor_is_sizes_over_4_kb_halved_one_write_unit_per_started_kb_and_one_put_per_item() -> None:
    sizes = [1000] * 2000 + [1500] * 10  # 2,015,000 bytes
    floor = cost_floor(sizes)
    assert floor.read_units == pytest.approx(2_015_000 / 4096 / 2)
    assert floor.write_units == 2000 + 10 * 2
    assert floor.requests == 2010 + 2  # one PutItem per item + ceil(2,015,000 / 1 MB) pages
    per_million = floor.per_million(len(sizes))
    assert per_million.write_units == pytest.approx(2020 / 2010 * 1_000_000)


@pytest.mark.unit
def test_a_cost_just_above_the_tolerance_fails_the_floor_rule() -> None:
    # negative control: the rule compares against the floor, not against itself
    floor = cost_floor([1000] * 1000).read_units
    assert floor * 1.04 <= floor * COST_TOLERANCE
    assert not floor * 1.06 <= floor * COST_TOLERANCE


@pytest.mark.unit
def test_a_copy_with_any_difference_is_never_called_type_exact() -> None:
    exact = Timed([1.0, 1.0], [{"differences": 0, "verified_items": 20}, {"differences": 0, "verified_items": 20}])
    assert _exactness(exact).startswith("type-exact")
    one_bad = Timed([1.0, 1.0], [{"differences": 0, "verified_items": 20}, {"differences": 3, "verified_items": 20}])
    assert _exactness(one_bad) == "3 items differ (20 items verified)"


@pytest.mark.unit
def test_rounds_rotate_the_order_and_stop_before_one_that_would_not_fit() -> None:
    calls: list[tuple[str, int]] = []

    def approach(name: str) -> Any:
        def call(round_: int) -> tuple[float, dict[str, Any]]:
            calls.append((name, round_))
            return float(round_), {"round": round_}

        return call

    approaches = {n: approach(n) for n in ("ferry", "naive", "batch_writer")}
    results, rounds = alternate_within(approaches, 3, budget=3600)
    assert rounds == 3
    assert [c[0] for c in calls[:3]] == ["ferry", "naive", "batch_writer"]
    assert [c[0] for c in calls[3:6]] == ["naive", "batch_writer", "ferry"]
    assert [c[0] for c in calls[6:]] == ["batch_writer", "ferry", "naive"]
    assert results["ferry"].samples == [0.0, 1.0, 2.0]
    # a budget already spent still runs one round (there is no measurement without one), never two
    calls.clear()
    _, rounds = alternate_within(approaches, 3, budget=0)
    assert rounds == 1 and len(calls) == 3


@pytest.mark.functional
def test_the_request_meter_counts_every_request_and_prices_scan_pages_by_their_bytes(ddb, where, unique) -> None:
    table = f"meter-{unique}"
    create_bench_table(ddb, table)
    sizes = seed(ddb, table, (bench_item(i) for i in range(30)))
    meter = RequestMeter()
    resource = boto3.session.Session().resource(
        "dynamodb", region_name=where.region, endpoint_url=where.endpoint_url, config=client_config()
    )
    meter.attach(resource.meta.client)
    items = resource.Table(table).scan(Limit=20)["Items"]
    resource.Table(f"{table}").put_item(Item=items[0])
    assert meter.requests == {"Scan": 1, "PutItem": 1}
    assert meter.read_units_by_size == scan_page_units(20 * ITEM_BYTES) == 2.5
    assert sum(sizes) == 30 * ITEM_BYTES


@pytest.mark.functional
def test_segments_count_their_requests_and_dynamodb_units_and_a_conditional_failure_is_no_write(
    ddb, emulator, unique
) -> None:
    # GIVEN a source of 40 bench items, and one of them already in the target (a live write)
    source, target = f"src-{unique}", f"dst-{unique}"
    create_bench_table(ddb, source)
    create_bench_table(ddb, target)
    sizes = seed(ddb, source, (bench_item(i) for i in range(40)))
    ddb.put_item(TableName=target, Item=bench_item(5))
    spec = parse_spec(
        {
            "region": "us-east-1",
            "endpoint_url": emulator.endpoint_url,
            "state_table": f"state-{unique}",
            "tables": [{"source": source, "target": target, "protocol": "insert-only"}],
            # PutItem counted here (auto would pick PartiQL INSERTs on an endpoint that enforces them: ministack)
            "backfill": {"splits": 2, "write_concurrency": 4, "insert_mode": "put"},
        }
    )
    init_tables(spec, ddb)
    plan = replace(plan_backfill(spec, spec.tables[0], ddb), page_size=7)  # several pages per segment
    # WHEN both segments are copied
    before = time.time()
    results = tuple(copy_segment(plan, s) for s in range(2))
    summary = BackfillSummary(source, target, results, 1.0)
    totals = summary.totals()
    # THEN every PutItem attempt is counted, the one that failed its condition too, but not as written
    assert totals["written"] == 39 and totals["skipped"] == 1
    assert totals["put_requests"] == 40
    assert totals["write_units_by_size"] == sum(put_units(s) for s in sizes) == 40  # failed conditions are charged
    # AND every Scan page is counted and priced by its own bytes: full pages of 7 items of 1,000 B are
    # 7,000 B = 1 unit each, the last page by what it holds (an empty one still costs half a unit)
    assert totals["scan_requests"] == totals["pages"] >= 40 / 7
    expected_reads = 0.0
    for r in results:
        full, rest = divmod(r.scanned, 7)
        expected_reads += full * 1.0 + (r.pages - full) * scan_page_units(rest * ITEM_BYTES)
    assert totals["read_units_by_size"] == pytest.approx(expected_reads)
    assert totals["read_units_by_size"] > cost_floor(sizes).read_units  # per-page rounding is above the floor
    # AND the emulator's own accounting is kept apart from DynamoDB's rules
    assert totals["write_units"] == 39  # moto: one unit per successful PutItem
    assert all(r.started_at >= before - 1 for r in results)


@pytest.mark.unit
def test_a_baselines_losses_under_the_load_are_counted_by_kind_and_must_spare_the_items_it_never_wrote() -> None:
    run = {
        "differences": 5,
        "difference_kinds": {"different": 3, "extra": 1, "missing": 1},
        "differences_untouched": 0,
        "touched_keys": 40,
        "untouched_items": 160,
    }
    exact, text = loss_under_load(Timed([1.0], [run]))
    assert exact
    assert text == "5 items differ (stale 3, resurrected 1, missing 1), all on keys the load wrote (40); " + (
        "type-exact on the 160 items it never wrote"
    )
    # negative control: one difference on an item the load never wrote, in any run, fails the copy
    exact, text = loss_under_load(Timed([1.0, 1.0], [run, {**run, "differences_untouched": 2}]))
    assert not exact and "FAILS: 2 differ among the items the load never wrote" in text
    assert loss_under_load(Timed([], [])) == (False, "not measured")


def _corrupting(where: Any, source: str, target: str) -> dict[str, Any]:
    """The naive copy, then every copied item's 38-digit number changed: a copy that damages items."""
    result = copy_naive(where, source, target)
    ddb = make_client("dynamodb", where)
    for item in ddb.scan(TableName=target)["Items"]:
        ddb.update_item(
            TableName=target,
            Key={"pk": item["pk"], "sk": item["sk"]},
            UpdateExpression="SET exact = :n",
            ExpressionAttributeValues={":n": {"N": "1"}},
        )
    return result


@pytest.mark.functional
def test_a_baseline_copies_under_the_load_and_its_losses_are_only_on_keys_the_load_wrote(
    emulator, ddb, tmp_path
) -> None:
    # GIVEN line 1's bench on 150 items
    bench = Bench(emulator, ddb, 150, tmp_path)
    # WHEN the naive copy runs under the load
    _, details = bench.naive(0)
    # THEN the load ran through the copy, and the verify split its differences by the keys the load wrote
    assert details["load_writes"] > 0 and details["load_errors"] == []
    assert details["touched_keys"] > 0 and details["untouched_items"] == 150 - details["touched_seeded"]
    assert details["differences_untouched"] == 0
    assert details["verified_items"] > 0 and details["seconds"] > 0
    assert loss_under_load(Timed([1.0], [details]))[0]
    # AND negative control: a copy that damages items the load never wrote is caught
    _, damaged = bench._boto3("corrupting", _corrupting)
    assert damaged["differences_untouched"] > 0
    assert not loss_under_load(Timed([1.0], [damaged]))[0]
    # AND the runs left no table behind
    assert not [t for t in ddb.list_tables()["TableNames"] if t.startswith("bench-")]


@pytest.mark.spark
def test_insert_only_copies_a_live_table_with_its_pollers_then_finalizes_and_ends_exact(tmp_path) -> None:
    # GIVEN a fresh emulator (the pollers create the failure queue under its default name)
    use_dummy_credentials()
    with Emulator(kind=bench_emulator()) as emu:
        ddb = make_client("dynamodb", AwsTarget("us-east-1", emu.endpoint_url))
        # WHEN ferry insert-only copies 200 items while the load writes, drains, finalizes and drains
        _, details = Bench(emu, ddb, 200, tmp_path).ferry(0)
        tables = ddb.list_tables()["TableNames"]
    # THEN the pollers applied the load's writes live, finalize waited for the handlers' caches, and the
    # target equals the source
    assert details["load_writes"] > 0 and details["load_errors"] == []
    assert details["replicated_records"] > 0 and details["dead_lettered"] == 0
    assert details["finalize_waited"] > 0 and details["finalize_seconds"] >= details["finalize_waited"]
    assert details["differences"] == 0 and details["verified_items"] == details["target_items"] > 0
    # AND the time runs past the job's summary, through the drains and finalize
    assert details["seconds"] > details["summary_seconds"] + details["finalize_seconds"]
    assert details["steady_seconds"] > 0 and details["put_requests"] >= details["items"] > 0
    assert not [t for t in tables if t.startswith("bench-")]
