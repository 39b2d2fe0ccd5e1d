"""VERIFY against the emulator: target == source item by item, by DynamoDB's equality."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, cast

import pytest

from ferry.errors import SetupError
from ferry.spec import Spec, parse_spec
from ferry.tables.protocol import TOMBSTONE_ATTRIBUTE, tombstone_for
from ferry.tables.schema import describe_shape
from ferry.tables.verify import (
    DIFFERENT,
    EXTRA,
    KINDS,
    MISSING,
    TOMBSTONE,
    Difference,
    TableVerifyReport,
    repair_key,
    verify_segment,
    verify_table,
)
from ferry.wire import canonical, items_equal, key_text
from tests.conftest import create_table, scan_all

pytestmark = pytest.mark.functional

BIG = "12345678901234567890123456789012345678"  # 38 significant digits: a double would round it
BIG_PLUS_ONE = "12345678901234567890123456789012345679"
SECRET = "SECRET-PAYLOAD-must-never-be-logged"
ITEMS = 300  # enough for every one of 8 segments to hold items


# --- helpers -----------------------------------------------------------------------------------


def make_spec(endpoint_url: str, source: str, target: str, **backfill: Any) -> Spec:
    return parse_spec(
        {
            "region": "us-east-1",
            "endpoint_url": endpoint_url,
            "tables": [{"source": source, "target": target}],
            "backfill": {"splits": 4, **backfill},
        }
    )


def put_all(ddb: Any, table: str, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), 25):
        requests: dict[str, Any] = {table: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]}
        while requests:
            requests = ddb.batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}


def rich_item(i: int, range_type: str | None = None) -> dict[str, Any]:
    """An item with all ten attribute types, 38-digit numbers and binaries at every depth."""
    item: dict[str, Any] = {
        "pk": {"S": f"user#{i:04d}" if range_type is None else f"user#{i // 3:04d}"},
        "s": {"S": f"naïve ☃ {i}"},
        "n": {"N": BIG},
        "extremes": {"L": [{"N": "-9.9999999999999999999999999999999999999E+125"}, {"N": "1E-130"}]},
        "b": {"B": bytes([i % 256, 0, 255])},
        "ss": {"SS": ["a", "b", f"c{i}"]},
        "ns": {"NS": ["1", "2.5", BIG]},
        "bs": {"BS": [b"\x00", b"\xff\xfe", bytes([1, i % 256])]},
        "m": {
            "M": {
                "nested": {"B": b"\x01\x02"},
                "list": {"L": [{"B": b"\x03"}, {"BS": [b"\x04", b"\x05"]}, {"M": {"deep": {"B": b"\x06"}}}]},
            }
        },
        "l": {"L": [{"S": "x"}, {"N": "1"}, {"NULL": True}, {"BOOL": False}, {"SS": ["y"]}]},
        "null": {"NULL": True},
        "bool": {"BOOL": True},
    }
    if range_type == "N":
        item["sk"] = {"N": f"{BIG[: 30 + i % 3]}.{i % 3}"}
    elif range_type == "B":
        item["sk"] = {"B": bytes([i % 3, 0xFF, 0x00])}
    return item


def table_pair(ddb: Any, suffix: str, range_key: tuple[str, str] | None = None) -> tuple[str, str]:
    source, target = f"verify-src-{suffix}", f"verify-dst-{suffix}"
    for name in (source, target):
        create_table(ddb, name, range_key=range_key)
    return source, target


def by_kind(report: TableVerifyReport) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for d in report.differences:
        out[d.kind].add(d.key)
    return out


def key(pk: str) -> str:
    return key_text({"pk": {"S": pk}})


def build_scenario(ddb: Any, suffix: str) -> tuple[str, str, set[Difference]]:
    """Two tables of ITEMS identical items, then one change of every kind (and two that are equal)."""
    source, target = table_pair(ddb, suffix)
    items = [rich_item(i) for i in range(ITEMS)]
    items[2]["m"]["M"]["secret"] = {"S": SECRET}
    items[4]["one"] = {"N": "1.0"}
    items[5]["ss"] = {"SS": ["a", "b", "c"]}
    put_all(ddb, source, items)
    put_all(ddb, target, items)

    ddb.delete_item(TableName=target, Key={"pk": {"S": "user#0001"}})  # missing
    put_all(ddb, target, [rich_item(9999) | {"pk": {"S": "user#extra"}}])  # extra
    changed = rich_item(2)
    changed["m"]["M"]["secret"] = {"S": SECRET}
    changed["m"]["M"]["list"]["L"][2]["M"]["deep"] = {"B": b"\x07"}  # a changed nested binary
    put_all(ddb, target, [changed])
    as_list = rich_item(3) | {"ns": {"L": [{"N": "1"}, {"N": "2.5"}, {"N": BIG}]}}  # a number set became a list
    put_all(ddb, target, [as_list])
    put_all(ddb, target, [items[4] | {"one": {"N": "1"}}])  # 1.0 == 1: equal
    put_all(ddb, target, [items[5] | {"ss": {"SS": ["c", "a", "b"]}}])  # set order: equal
    put_all(ddb, target, [tombstone_for({"pk": {"S": "user#0006"}})])  # tombstone over a live item
    put_all(ddb, target, [tombstone_for({"pk": {"S": "user#gone"}})])  # tombstone of a deleted item
    put_all(ddb, target, [items[7] | {"n": {"N": BIG_PLUS_ONE}}])  # the 38th digit differs

    expected = {
        Difference(MISSING, key("user#0001")),
        Difference(EXTRA, key("user#extra")),
        Difference(DIFFERENT, key("user#0002"), ("m",)),
        Difference(DIFFERENT, key("user#0003"), ("ns",)),
        Difference(DIFFERENT, key("user#0007"), ("n",)),
        Difference(TOMBSTONE, key("user#0006")),
        Difference(TOMBSTONE, key("user#gone")),
    }
    return source, target, expected


@pytest.fixture(scope="module")
def scenario(ddb: Any) -> tuple[str, str, set[Difference]]:
    """Built once for the read-only tests of this module (repairing tests build their own)."""
    return build_scenario(ddb, uuid.uuid4().hex[:10])


def as_set(items: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {canonical(item["pk"]): item for item in items}


# --- identical tables --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("range_key", "count"),
    [(None, ITEMS), (("sk", "N"), 90), (("sk", "B"), 90)],
    ids=["hash-only", "range-N", "range-B"],
)
def test_identical_tables_verify_ok(ddb: Any, emulator: Any, unique: str, range_key: Any, count: int) -> None:
    # GIVEN two tables holding the same items of every attribute type
    source, target = table_pair(ddb, unique, range_key)
    items = [rich_item(i, range_key[1] if range_key else None) for i in range(count)]
    put_all(ddb, source, items)
    put_all(ddb, target, items)

    spec = make_spec(emulator.endpoint_url, source, target)

    # WHEN they are verified
    report = verify_table(spec, spec.tables[0])

    # THEN there is no difference and every item was seen on both sides
    assert report.ok
    assert report.differences == ()
    assert report.counts() == dict.fromkeys(KINDS, 0)
    assert report.source_items == report.target_items == count
    assert report.segments == 4
    assert report.repaired == 0


def test_number_keys_equal_as_decimals(ddb: Any, emulator: Any, unique: str) -> None:
    # GIVEN a range key written as 2.50 in the source and as 2.5 in the target
    source, target = table_pair(ddb, unique, ("sk", "N"))
    ddb.put_item(TableName=source, Item={"pk": {"S": "a"}, "sk": {"N": "2.50"}, "v": {"N": "1.0"}})
    ddb.put_item(TableName=target, Item={"pk": {"S": "a"}, "sk": {"N": "2.5"}, "v": {"N": "1"}})
    spec = make_spec(emulator.endpoint_url, source, target)

    # WHEN verified
    report = verify_table(spec, spec.tables[0], segments=1)

    # THEN they are the same key with the same item
    assert report.ok, report.differences


# --- differences -------------------------------------------------------------------------------


def test_reports_exactly_the_differences(emulator: Any, scenario: tuple[str, str, set[Difference]]) -> None:
    # GIVEN one missing, one extra, three changed items, two tombstones and two DynamoDB-equal changes
    source, target, expected = scenario
    spec = make_spec(emulator.endpoint_url, source, target)

    # WHEN verified
    report = verify_table(spec, spec.tables[0])

    # THEN exactly those kinds and keys are reported, names only for changed attributes
    assert not report.ok
    assert set(report.differences) == expected
    assert len(report.differences) == len(expected)
    assert report.counts() == {MISSING: 1, EXTRA: 1, DIFFERENT: 3, TOMBSTONE: 2}
    assert report.source_items == ITEMS
    assert report.target_items == ITEMS - 1 + 1 - 1  # one deleted, one extra, one replaced by a tombstone
    # and the report is JSON and holds no payload
    text = json.dumps(report.as_dict())
    assert SECRET not in text
    assert json.loads(text)["counts"] == report.counts()


@pytest.mark.parametrize(("segments", "page_size"), [(1, 0), (3, 0), (8, 0), (3, 7)])
def test_segment_count_and_page_size_do_not_change_the_result(
    emulator: Any, scenario: tuple[str, str, set[Difference]], segments: int, page_size: int
) -> None:
    # GIVEN the scenario tables and a segment count (and for one case small scan pages)
    source, target, expected = scenario
    spec = make_spec(emulator.endpoint_url, source, target, page_size=page_size)

    # WHEN verified with that many segments
    report = verify_table(spec, spec.tables[0], segments=segments, workers=3)

    # THEN the same differences are found
    assert report.segments == segments
    assert set(report.differences) == expected
    assert report.source_items == ITEMS


def test_items_spread_over_many_segments(ddb: Any, scenario: tuple[str, str, set[Difference]]) -> None:
    # GIVEN the scenario tables
    source, target, expected = scenario
    shape = describe_shape(ddb, source)

    # WHEN each of 8 segments is verified on its own
    results = [verify_segment(ddb, shape, target, 8, segment) for segment in range(8)]

    # THEN most segments hold items, and together they find every item and every difference
    assert sum(1 for r in results if r.source_items) >= 6
    assert sum(r.source_items for r in results) == ITEMS
    assert {d for r in results for d in r.differences} == expected


def test_samples_are_capped_per_kind(ddb: Any, emulator: Any, unique: str) -> None:
    # GIVEN a source of 40 items of which the target lacks 25, and 3 items only in the target
    source, target = table_pair(ddb, unique)
    items = [{"pk": {"S": f"k{i:03d}"}, "b": {"B": bytes([i])}} for i in range(40)]
    put_all(ddb, source, items)
    put_all(ddb, target, items[25:] + [{"pk": {"S": f"x{i}"}} for i in range(3)])
    spec = make_spec(emulator.endpoint_url, source, target)

    # WHEN verified
    report = verify_table(spec, spec.tables[0])

    # THEN the counts are complete, the samples capped, and as_dict lists every difference
    assert report.counts() == {MISSING: 25, EXTRA: 3, DIFFERENT: 0, TOMBSTONE: 0}
    samples = report.samples()
    assert set(samples) == set(KINDS)
    assert len(samples[MISSING]) == 20
    assert set(samples[MISSING]) <= {key(f"k{i:03d}") for i in range(25)}
    assert sorted(samples[EXTRA]) == sorted(key(f"x{i}") for i in range(3))
    assert samples[DIFFERENT] == samples[TOMBSTONE] == []
    assert len(report.samples(per_kind=2)[MISSING]) == 2
    document = json.loads(json.dumps(report.as_dict()))
    assert len(document["differences"]) == 28
    assert document["ok"] is False


def test_recheck_drops_a_difference_that_a_live_write_closed(ddb: Any, unique: str) -> None:
    # GIVEN an item that is in the source only while the scans run, then replicated right after
    source, target = table_pair(ddb, unique)
    item = {"pk": {"S": "late"}, "v": {"N": "1"}}
    ddb.put_item(TableName=source, Item=item)

    class ReplicatesAfterTheScans:
        def __init__(self, client: Any) -> None:
            self.client = client

        def __getattr__(self, name: str) -> Any:
            return getattr(self.client, name)

        def scan(self, **kwargs: Any) -> Any:
            page = self.client.scan(**kwargs)
            if kwargs["TableName"] == source:
                self.client.put_item(TableName=target, Item=item)
            return page

    shape = describe_shape(ddb, source)

    # WHEN the segment is verified without and with the consistent re-read
    without = verify_segment(cast(Any, ReplicatesAfterTheScans(ddb)), shape, target, 1, 0, recheck=False)
    ddb.delete_item(TableName=target, Key={"pk": {"S": "late"}})
    with_recheck = verify_segment(cast(Any, ReplicatesAfterTheScans(ddb)), shape, target, 1, 0, recheck=True)

    # THEN only the unconfirmed scan reports it
    assert without.differences == (Difference(MISSING, key("late")),)
    assert with_recheck.differences == ()
    assert with_recheck.source_items == 1


# --- repair ------------------------------------------------------------------------------------


def test_repair_fixes_every_difference(ddb: Any, emulator: Any, unique: str, caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN the scenario with one difference of every kind
    source, target, expected = build_scenario(ddb, unique)
    spec = make_spec(emulator.endpoint_url, source, target)
    caplog.set_level(logging.DEBUG, logger="ferry")

    # WHEN verified without, then with repair
    before = verify_table(spec, spec.tables[0])
    repaired = verify_table(spec, spec.tables[0], repair=True)

    # THEN every difference was repaired and nothing is left
    assert repaired.repaired == len(expected)
    assert repaired.ok, repaired.differences
    # and the target is now the source, item by item, without tombstones
    source_items, target_items = as_set(scan_all(ddb, source)), as_set(scan_all(ddb, target))
    assert source_items.keys() == target_items.keys()
    assert all(items_equal(source_items[k], target_items[k]) for k in source_items)
    assert not any(TOMBSTONE_ATTRIBUTE in item for item in target_items.values())
    # and a second verify agrees
    again = verify_table(spec, spec.tables[0], segments=3)
    assert again.ok and again.repaired == 0
    assert again.source_items == again.target_items == ITEMS
    # and the repairing verify reported the counts as they are after the repair, not those it scanned
    assert before.target_items != before.source_items
    assert (repaired.source_items, repaired.target_items) == (again.source_items, again.target_items)
    # and the logs name keys, never payloads
    assert key("user#0002").replace('"', "") in caplog.text.replace('"', "")
    assert SECRET not in caplog.text


def test_repair_key_copies_the_current_source_state(ddb: Any, unique: str) -> None:
    # GIVEN a key present in the source and a tombstone whose item the source no longer has
    source, target = table_pair(ddb, unique)
    item = rich_item(1)
    ddb.put_item(TableName=source, Item=item)
    ddb.put_item(TableName=target, Item=tombstone_for({"pk": {"S": "gone"}}))

    # WHEN each is repaired
    put = repair_key(ddb, source, target, {"pk": item["pk"]})
    delete = repair_key(ddb, source, target, {"pk": {"S": "gone"}})

    # THEN the source item was put unchanged (as the source reads, which holds the numbers written) and
    # the tombstone deleted
    assert (put, delete) == ("put", "delete")
    (copied,) = scan_all(ddb, target)
    (stored,) = scan_all(ddb, source)
    assert copied == stored
    assert items_equal(stored, item)


@pytest.mark.emulators("moto", reason="pins moto's fault; ministack trims the zeroes as DynamoDB does")
def test_moto_keeps_the_zeroes_of_a_number_as_written(ddb: Any, unique: str) -> None:
    # GIVEN numbers written with leading and trailing zeroes
    source, _ = table_pair(ddb, unique)
    ddb.put_item(TableName=source, Item={"pk": {"S": "n"}, "n": {"L": [{"N": "1.50"}, {"N": "0012"}]}})
    # WHEN read back THEN moto gives them as written; DynamoDB gives "1.5" and "12": "numbers are
    # represented as variable length. Leading and trailing zeroes are trimmed."
    # (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html)
    (item,) = scan_all(ddb, source)
    assert item["n"] == {"L": [{"N": "1.50"}, {"N": "0012"}]}


# --- setup errors ------------------------------------------------------------------------------


def test_missing_target_table_is_a_setup_error(ddb: Any, emulator: Any, unique: str) -> None:
    # GIVEN a source table whose target does not exist
    source = f"verify-src-{unique}"
    create_table(ddb, source)
    spec = make_spec(emulator.endpoint_url, source, f"verify-nowhere-{unique}")

    # WHEN / THEN verify refuses, naming the table
    with pytest.raises(SetupError, match=f"verify-nowhere-{unique}"):
        verify_table(spec, spec.tables[0])


def test_different_key_schemas_are_a_setup_error(ddb: Any, emulator: Any, unique: str) -> None:
    # GIVEN a target keyed differently from its source
    source, target = f"verify-src-{unique}", f"verify-dst-{unique}"
    create_table(ddb, source)
    create_table(ddb, target, range_key=("sk", "N"))
    spec = make_spec(emulator.endpoint_url, source, target)

    # WHEN / THEN verify refuses
    with pytest.raises(SetupError, match="key schema"):
        verify_table(spec, spec.tables[0])
