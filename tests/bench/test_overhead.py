"""Bench line 4: the instant endpoint serves exactly what each approach must copy, and the
arithmetic that turns CPU seconds into µs per item and Glue workers."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any, cast

import boto3
import pytest

from bench.capacity import bench_item
from bench.overhead import APPROACHES, PAGE_ITEMS, glue_workers, marginal, start_endpoint
from ferry.clients import AwsTarget, make_client
from ferry.spec import parse_spec
from ferry.tables.backfill import plan_backfill
from ferry.wire import items_equal
from tests.conftest import REGION


@pytest.mark.unit
def test_glue_workers_round_up_to_whole_g1x_workers() -> None:
    # 10,000 items/s × 400 µs = 4 CPU seconds per second = one 4-vCPU worker exactly
    assert glue_workers(400) == 1
    assert glue_workers(401) == 2
    assert glue_workers(1000) == 3
    assert glue_workers(0) == 0


@pytest.mark.unit
def test_marginal_cost_separates_what_a_run_pays_once_from_what_each_item_costs() -> None:
    fixed, per_item = 0.25, 400e-6
    small, large = fixed + 1000 * per_item, fixed + 5000 * per_item
    got_per_item, got_fixed = marginal(small, 1000, large, 5000)
    assert got_per_item == pytest.approx(per_item)
    assert got_fixed == pytest.approx(fixed)
    # negative control: dividing the whole run by its items would charge the fixed cost to the items
    assert large / 5000 > per_item * 1.1
    with pytest.raises(ValueError):
        marginal(small, 1000, large, 1000)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server, url = start_endpoint()
    try:
        yield url
    finally:
        server.kill()
        server.wait(timeout=10)


@pytest.mark.functional
def test_the_endpoint_pages_a_segment_of_exactly_its_total_in_wire_format(endpoint: str) -> None:
    client = make_client("dynamodb", AwsTarget(REGION, endpoint))
    pages = []
    kwargs: dict[str, Any] = {"TableName": "src-2500", "Segment": 0, "TotalSegments": 8}
    while True:
        page = client.scan(**kwargs, ReturnConsumedCapacity="TOTAL")
        pages.append(page)
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    assert [len(p["Items"]) for p in pages] == [PAGE_ITEMS, PAGE_ITEMS, 500]
    assert all(p["ConsumedCapacity"]["CapacityUnits"] > 0 for p in pages)
    # the items are line 2's, binaries arriving as bytes: type-exact wire format
    expected = bench_item(random.Random(4), 0)
    assert items_equal(cast("dict[str, Any]", pages[0]["Items"][0]), expected)
    assert client.put_item(TableName="dst-1", Item=expected, ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]
    assert (
        client.batch_write_item(RequestItems={"dst-1": [{"PutRequest": {"Item": expected}}]})["UnprocessedItems"] == {}
    )


@pytest.mark.functional
def test_ferry_plans_a_budget_the_copy_never_waits_for(endpoint: str) -> None:
    spec = parse_spec(
        {
            "region": REGION,
            "endpoint_url": endpoint,
            "tables": [{"source": "src-10", "target": "dst-10", "protocol": "insert-only"}],
        }
    )
    plan = plan_backfill(spec, spec.tables[0], make_client("dynamodb", AwsTarget(REGION, endpoint)))
    assert plan.write_units_per_task >= 1e6 and plan.read_units_per_task >= 1e6


@pytest.mark.functional
@pytest.mark.parametrize("approach", sorted(APPROACHES))
def test_every_approach_copies_exactly_the_items_served(endpoint: str, approach: str) -> None:
    assert APPROACHES[approach](endpoint, 1200) == 1200
    assert APPROACHES[approach](endpoint, 300) == 300  # negative control: the count follows the table


@pytest.mark.functional
def test_a_resource_client_reads_the_canned_table(endpoint: str) -> None:
    table: Any = boto3.session.Session().resource("dynamodb", region_name=REGION, endpoint_url=endpoint).Table("src-5")
    assert table.key_schema[0]["AttributeName"] == "pk"
    assert len(table.scan()["Items"]) == 5
