"""The throttling proxy of bench line 2: DynamoDB's capacity-unit arithmetic, the token bucket, and
the proxy itself against the emulator (a throttled write is answered, not forwarded)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from bench.capacity import ITEM_BYTES, bench_item, plan_row, throttle_counts, write_rate
from bench.throttle_proxy import (
    AcceptedWrite,
    OperationStats,
    ThrottleProxy,
    UnitBucket,
    read_charges,
    read_units,
    write_charges,
    write_units,
)
from ferry.aws import error_code
from ferry.wire import item_size
from ferry_dev.emulator import Emulator
from tests.conftest import REGION, create_table


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def sized(pk: str, size: int) -> dict[str, Any]:
    """An item of exactly ``size`` bytes by DynamoDB's sizing rules."""
    item: dict[str, Any] = {"pk": {"S": pk}, "pad": {"S": ""}}
    item["pad"] = {"S": "x" * (size - item_size(item))}
    assert item_size(item) == size
    return item


# --------------------------------------------------------------------------- units (no I/O)


@pytest.mark.unit
def test_write_units_are_per_started_kilobyte_and_at_least_one() -> None:
    assert [write_units(s) for s in (0, 1, 1024, 1025, 2048, 400 * 1024)] == [1, 1, 1, 2, 2, 400]


@pytest.mark.unit
def test_read_units_are_per_started_4_kb_halved_when_eventually_consistent() -> None:
    assert [read_units(s, True) for s in (0, 4096, 4097, 10_000)] == [1, 1, 2, 3]
    assert [read_units(s, False) for s in (0, 4096, 4097, 10_000)] == [0.5, 0.5, 1, 1.5]


@pytest.mark.unit
def test_write_charges_size_items_from_the_request() -> None:
    assert write_charges("PutItem", {"TableName": "t", "Item": sized("a", 1024)}) == {"t": 1}
    assert write_charges("PutItem", {"TableName": "t", "Item": sized("a", 1025)}) == {"t": 2}
    batch = {
        "RequestItems": {
            "t": [{"PutRequest": {"Item": sized("a", 3000)}}, {"DeleteRequest": {"Key": {"pk": {"S": "b"}}}}],
            "u": [{"PutRequest": {"Item": sized("c", 10)}}],
        }
    }
    assert write_charges("BatchWriteItem", batch) == {"t": 4, "u": 1}


@pytest.mark.unit
def test_read_charges_come_from_the_response() -> None:
    items = [sized(f"k{i}", 1000) for i in range(9)]  # 9,000 bytes: three 4 KB units
    assert read_charges("Scan", {"TableName": "t"}, {"Items": items}) == {"t": 1.5}
    assert read_charges("Scan", {"TableName": "t", "ConsistentRead": True}, {"Items": items}) == {"t": 3}
    assert read_charges("GetItem", {"TableName": "t"}, {}) == {"t": 0.5}  # a miss still costs
    batch = {"RequestItems": {"t": {"Keys": [], "ConsistentRead": True}}}
    assert read_charges("BatchGetItem", batch, {"Responses": {"t": items[:2]}}) == {"t": 2}


@pytest.mark.unit
def test_binaries_are_sized_decoded_as_they_arrive_in_a_json_request() -> None:
    # the wire body carries base64; 768 raw bytes are 1,024 base64 characters
    item = {"pk": {"S": "a"}, "b": {"B": "A" * 1024}}
    assert write_charges("PutItem", {"TableName": "t", "Item": item}) == {"t": 1}


@pytest.mark.unit
def test_bench_items_cost_exactly_one_write_unit_and_have_every_type() -> None:
    rng = random.Random(3)
    items = [bench_item(rng, i) for i in range(200)]
    assert {item_size(i) for i in items} == {ITEM_BYTES}
    assert {write_units(item_size(i)) for i in items} == {1}
    tags = {tag for i in items for value in i.values() for tag in value}
    assert tags >= {"S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"}


@pytest.mark.unit
def test_write_rate_is_measured_between_the_first_and_the_last_accepted_write() -> None:
    # 50 writes a second for 10 s, starting at t=1000 (whatever came before, e.g. Spark's start, is outside)
    accepted = [AcceptedWrite(1000 + i / 50, 1.0, 1) for i in range(501)]
    rate = write_rate(list(reversed(accepted)))  # order of arrival does not matter
    assert rate.items == 501
    assert rate.window == pytest.approx(10.0)
    assert rate.per_second == pytest.approx(50.0)
    assert rate.timeline[:10] == (50.0,) * 10 and sum(rate.timeline) == 501
    # negative control: an idle stretch in the middle lowers the rate (it is not a peak measure)
    gap = accepted[:250] + [AcceptedWrite(w.at + 10, w.units, w.items) for w in accepted[250:]]
    assert write_rate(gap).per_second == pytest.approx(25.0)
    assert write_rate([]).items == 0


@pytest.mark.unit
def test_the_plan_row_is_met_within_20_percent_of_the_prediction_and_not_beyond() -> None:
    assert plan_row(40.0, 39.0, 52.0).met is True
    assert plan_row(40.0, 32.0, 52.0).met is True and plan_row(40.0, 48.0, 60.0).met is True
    assert plan_row(40.0, 31.9, 52.0).met is False and plan_row(40.0, 48.1, 60.0).met is False
    assert plan_row(0.0, 39.0, 52.0).met is False  # no prediction is no pass
    assert "39.0 s measured / 40.0 s predicted" in plan_row(40.0, 39.0, 52.0).ferry


@pytest.mark.unit
def test_throttled_share_counts_every_request_to_the_provisioned_tables() -> None:
    stats = {"t:PutItem": OperationStats(forwarded=98, throttled=2, units=98), "s:Scan": OperationStats(5, 0, 60)}
    assert throttle_counts(stats) == (105, 2)


# --------------------------------------------------------------------------- the bucket (no I/O)


@pytest.mark.unit
def test_bucket_starts_full_with_its_burst_and_refuses_beyond_it() -> None:
    clock = FakeClock()
    bucket = UnitBucket(10, burst_seconds=2, clock=clock)
    assert bucket.capacity == 20
    for _ in range(20):
        assert bucket.fits(1)
        bucket.charge(1)
    assert not bucket.fits(1)  # empty and the clock has not moved: throttled


@pytest.mark.unit
def test_bucket_refills_at_its_rate_and_banks_no_more_than_the_burst() -> None:
    clock = FakeClock()
    bucket = UnitBucket(10, burst_seconds=1, clock=clock)
    bucket.charge(10)
    clock.now += 0.25
    assert bucket.balance == pytest.approx(2.5)
    assert bucket.fits(2) and not bucket.fits(3)
    clock.now += 3600  # an hour idle
    assert bucket.balance == pytest.approx(10)


@pytest.mark.unit
def test_a_write_larger_than_the_burst_waits_for_a_full_bucket_then_leaves_a_debt() -> None:
    clock = FakeClock()
    bucket = UnitBucket(10, burst_seconds=1, clock=clock)
    bucket.charge(1)
    assert not bucket.fits(50)
    clock.now += 1
    assert bucket.fits(50)
    bucket.charge(50)
    assert bucket.balance == pytest.approx(-40)
    clock.now += 3.9
    assert not bucket.admits_read() and not bucket.fits(1)
    clock.now += 0.2
    assert bucket.admits_read()


@pytest.mark.unit
def test_reads_are_admitted_on_a_positive_balance_and_may_overdraw() -> None:
    clock = FakeClock()
    bucket = UnitBucket(4, burst_seconds=1, clock=clock)
    assert bucket.admits_read()
    bucket.charge(64)  # a 1 MB page, known only after the read
    assert not bucket.admits_read()
    clock.now += 15.0
    assert not bucket.admits_read()  # balance exactly 0
    clock.now += 0.5
    assert bucket.admits_read()


# --------------------------------------------------------------------------- the proxy (emulator)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def proxy(emulator: Emulator, clock: FakeClock) -> Iterator[ThrottleProxy]:
    with ThrottleProxy(emulator.endpoint_url, burst_seconds=1.0, clock=clock) as p:
        yield p


def no_retry_client(proxy: ThrottleProxy) -> Any:
    """A boto3 client through the proxy that shows the raw answer (one attempt, no botocore retries)."""
    return boto3.session.Session().client(
        "dynamodb",
        region_name=REGION,
        endpoint_url=proxy.endpoint_url,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


@pytest.mark.functional
def test_a_put_beyond_capacity_is_throttled_and_not_forwarded(
    proxy: ThrottleProxy, clock: FakeClock, ddb: Any, unique: str
) -> None:
    # GIVEN a table provisioned with 1 WCU/s (a 1-second burst: one 1 KB write) behind the proxy
    table = f"throttle-{unique}"
    create_table(ddb, table, provisioned=(5, 1))
    proxy.provision(table, read_units=5, write_units=1)
    client = no_retry_client(proxy)
    # WHEN two 1 KB items are put within the same instant
    client.put_item(TableName=table, Item=sized("first", 1000))
    with pytest.raises(ClientError) as throttled:
        client.put_item(TableName=table, Item=sized("second", 1000))
    # THEN the second is refused with DynamoDB's error and never reached the table,
    assert error_code(throttled.value) == "ProvisionedThroughputExceededException"
    assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "second"}}, ConsistentRead=True)
    # while the admitted one did (negative control: the absence check can see an item)
    assert "Item" in ddb.get_item(TableName=table, Key={"pk": {"S": "first"}}, ConsistentRead=True)
    stats = proxy.stats()[f"{table}:PutItem"]
    assert (stats.forwarded, stats.throttled, stats.units) == (1, 1, 1)
    assert [w.units for w in proxy.accepted_writes(table)] == [1]
    # AND a second later the bucket has refilled: the same put goes through
    clock.now += 1.0
    client.put_item(TableName=table, Item=sized("second", 1000))
    assert "Item" in ddb.get_item(TableName=table, Key={"pk": {"S": "second"}}, ConsistentRead=True)


@pytest.mark.functional
def test_tables_not_provisioned_in_the_proxy_are_never_throttled(proxy: ThrottleProxy, ddb: Any, unique: str) -> None:
    table = f"free-{unique}"
    create_table(ddb, table)
    client = no_retry_client(proxy)
    for i in range(20):  # the clock never moves: any charge would have run out
        client.put_item(TableName=table, Item=sized(f"k{i}", 3000))
    assert proxy.stats() == {}
    assert proxy.requests()["dynamodb:PutItem"] == 20


@pytest.mark.functional
def test_reads_are_charged_from_the_response_and_reported_as_consumed_capacity(
    proxy: ThrottleProxy, ddb: Any, unique: str
) -> None:
    # GIVEN nine 1,000-byte items (9,000 bytes: three 4 KB read units, 1.5 eventually consistent)
    table = f"reads-{unique}"
    create_table(ddb, table, provisioned=(2, 50))
    for i in range(9):
        ddb.put_item(TableName=table, Item=sized(f"k{i}", 1000))
    proxy.provision(table, read_units=2, write_units=50)
    client = no_retry_client(proxy)
    # WHEN one eventually consistent scan reads them all
    page = client.scan(TableName=table, ReturnConsumedCapacity="TOTAL")
    # THEN the emulated cost replaces moto's (which says 1.0 for any page), and the bucket is in debt
    assert len(page["Items"]) == 9
    assert page["ConsumedCapacity"]["CapacityUnits"] == 1.5
    assert proxy.stats()[f"{table}:Scan"].units == 1.5
    client.scan(TableName=table, Limit=1)  # balance 0.5 > 0: admitted, charged 0.5 → 0
    with pytest.raises(ClientError) as throttled:
        client.get_item(TableName=table, Key={"pk": {"S": "k1"}})
    assert error_code(throttled.value) == "ProvisionedThroughputExceededException"
    # AND DescribeTable passes through with the table's provisioned throughput (what ferry's budget reads)
    described = client.describe_table(TableName=table)["Table"]["ProvisionedThroughput"]
    assert (described["ReadCapacityUnits"], described["WriteCapacityUnits"]) == (2, 50)
