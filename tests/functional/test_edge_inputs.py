"""Bad and extreme input (issue 4, item 6): each edge input gets the correct result or a clear error
with nothing written.

Data path: every edge item is written to a real source table and then taken through BOTH copy
paths ferry has, each into its own target so that each path is proven on its own:

* the backfill: ``plan_backfill`` + ``copy_segment`` for every parallel-scan segment;
* the live path: the table's real stream records, read by ``ferry_dev.stream_poller`` (which
  builds the event Lambda builds: base64 binaries at every depth, a JSON round trip) and handed
  to the real ``chalicelib.table_stream.handle`` configured through ``FERRY_SPEC``.

Then ``verify_table`` must be ok for both targets and every target item must be DynamoDB-equal
(``wire.items_equal``) to its source item, key set for key set.

CLI path: invalid resource names, a target with another key schema, a missing source table or
bucket, source == target bucket: exit 2, the message names the spec field, and no table, bucket
or queue was created by any command that reads the spec.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from chalicelib import table_stream
from click.testing import CliRunner

from ferry.aws import stream_arn_of
from ferry.clients import AwsTarget, make_client
from ferry.spec import Spec, parse_spec, spec_to_dict
from ferry.tables.backfill import copy_segment, plan_backfill
from ferry.tables.finalize import remove_tombstones
from ferry.tables.protocol import TOMBSTONE_ATTRIBUTE
from ferry.tables.setup import ensure_failure_queue
from ferry.tables.state import SEGMENT_DONE, create_state_table
from ferry.tables.verify import verify_table
from ferry.wire import item_size, items_equal, key_of, key_text
from ferry_cli.main import cli
from ferry_dev.stream_poller import StreamPoller
from ferry_dev.workload import make_big_item
from tests.conftest import create_table, scan_all

pytestmark = pytest.mark.functional

SPLITS = 3

# --- DynamoDB's extreme numbers --------------------------------------------------------------
LARGEST = "9.9999999999999999999999999999999999999E+125"  # 38 nines: the largest magnitude
SMALLEST = "1E-130"  # the smallest positive magnitude
INT38 = "12345678901234567890123456789012345678"
DEC38 = "1234567890123456789.0123456789012345678"  # 38 significant digits with a fraction
FRAC38 = "0.12345678901234567890123456789012345678"
TINY38 = "-0.00000000000000000000000000000000000001"
ONE_PLUS = "1.0000000000000000000000000000000000001"  # 38 digits: 1 + 1E-37 (a double makes it 1)
EXTREME_NUMBERS = (
    LARGEST,
    "-" + LARGEST,
    SMALLEST,
    "-" + SMALLEST,
    INT38,
    "-" + INT38,
    DEC38,
    FRAC38,
    TINY38,
    ONE_PLUS,
    "99999999999999999999999999999999999999",  # 38 nines, integer
    "0",
)

SHIP = "\U0001f6a2"  # 🚢: four bytes in UTF-8
assert len(SHIP.encode("utf-8")) == 4


# --- the two copy paths ----------------------------------------------------------------------


@dataclass
class Migration:
    """One source table with a stream, copied by the backfill into one target and by the live
    path into another."""

    source: str
    backfill_target: str
    live_target: str
    key_names: tuple[str, ...]
    backfill_spec: Spec
    live_spec: Spec
    put: Callable[[dict[str, Any]], None]
    run_backfill: Callable[[], None]
    run_live: Callable[[], int]
    client_factory: Callable[[], Any] | None = None  # the DynamoDB clients ferry's backfill and verify use

    def check(self, ddb: Any, expected_count: int) -> None:
        """Both targets verify ok and hold exactly the source's items, each DynamoDB-equal."""
        source = self._by_key(scan_all(ddb, self.source))
        assert len(source) == expected_count
        for spec, target_name in ((self.backfill_spec, self.backfill_target), (self.live_spec, self.live_target)):
            report = verify_table(spec, spec.tables[0], workers=2, ddb_factory=self.client_factory)
            assert report.ok, (target_name, report.counts(), report.samples(3))
            assert report.source_items == report.target_items == expected_count
            target = self._by_key(scan_all(ddb, target_name))
            assert target.keys() == source.keys(), target_name
            unequal = [k for k in source if not items_equal(source[k], target[k])]
            assert not unequal, (target_name, unequal[:3])

    def _by_key(self, items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {key_text(key_of(item, self.key_names)): item for item in items}


def _whole_table_scan_client(where: AwsTarget) -> Callable[[], Any]:
    """Clients for tables with a BINARY hash key, scanned as one segment.

    The emulator cannot scan such a table by segment at all: moto 5.2.5's
    ``DynamoType.is_within_segment`` calls ``hash_key.value.encode("utf8")`` on the key's bytes and
    answers 500 for every ``Segment``/``TotalSegments`` scan (AWS has no such limit). With
    ``TotalSegments=1`` segment 0 is the whole table, so dropping the two parameters asks exactly
    the same question; everything else ferry sends is unchanged.
    """

    def drop_single_segment(params: dict[str, Any], **_: Any) -> None:
        if params.get("TotalSegments") == 1:
            params.pop("TotalSegments")
            params.pop("Segment", None)

    def factory() -> Any:
        client = make_client("dynamodb", where)
        client.meta.events.register("provide-client-params.dynamodb.Scan", drop_single_segment)
        return client

    return factory


@pytest.fixture
def migration(
    monkeypatch: pytest.MonkeyPatch, ddb: Any, streams: Any, sqs: Any, where: AwsTarget, unique: str
) -> Iterator[Callable[..., Migration]]:
    tables = itertools.count()

    def make(
        hash_key: tuple[str, str] = ("pk", "S"), range_key: tuple[str, str] | None = None, splits: int = SPLITS
    ) -> Migration:
        index = next(tables)
        source, state = f"src{index}-{unique}", f"state{index}-{unique}"
        backfill_target, live_target = f"bf{index}-{unique}", f"live{index}-{unique}"
        create_table(ddb, source, hash_key=hash_key, range_key=range_key, stream=True)
        create_table(ddb, backfill_target, hash_key=hash_key, range_key=range_key)
        create_table(ddb, live_target, hash_key=hash_key, range_key=range_key)
        create_state_table(ddb, state)

        def spec_for(target: str) -> Spec:
            return parse_spec(
                {
                    "region": where.region,
                    "endpoint_url": where.endpoint_url,
                    "state_table": state,
                    "tables": [{"source": source, "target": target}],
                    "backfill": {"splits": splits, "write_concurrency": 2},
                    "replication": {"phase_cache_seconds": 0, "max_retries": 0},
                }
            )

        backfill_spec, live_spec = spec_for(backfill_target), spec_for(live_target)
        client_factory = _whole_table_scan_client(where) if hash_key[1] == "B" else None
        assert client_factory is None or splits == 1

        # The live path: the real handler, configured as Lambda configures it.
        monkeypatch.setenv("FERRY_SPEC", json.dumps(spec_to_dict(live_spec)))
        table_stream.reset()
        responses: list[dict[str, Any]] = []

        def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
            response: dict[str, Any] = table_stream.handle(event, context)
            responses.append(response)
            return response

        poller = StreamPoller(
            streams,
            sqs,
            stream_arn_of(ddb, source),
            source,
            handler,
            batch_size=100,
            max_retries=0,  # a failing record is dead-lettered at once, and counted
            on_failure_queue_url=ensure_failure_queue(sqs, f"failures-{unique}")[0],
            retry_backoff=0,
        )

        def put(item: dict[str, Any]) -> None:
            ddb.put_item(TableName=source, Item=item)

        def run_backfill() -> None:
            plan = plan_backfill(backfill_spec, backfill_spec.tables[0], ddb)
            client = client_factory() if client_factory else None
            results = [copy_segment(plan, segment, client) for segment in range(plan.total_segments)]
            assert all(r.status == SEGMENT_DONE for r in results), [r.error for r in results if r.error]

        def run_live() -> int:
            stats = poller.drain(timeout=60)
            assert stats.dead_lettered == 0, [r for r in responses if r.get("batchItemFailures")]
            assert all(r == {"batchItemFailures": []} for r in responses), responses
            return stats.applied

        key_names = (hash_key[0],) if range_key is None else (hash_key[0], range_key[0])
        return Migration(
            source,
            backfill_target,
            live_target,
            key_names,
            backfill_spec,
            live_spec,
            put,
            run_backfill,
            run_live,
            client_factory,
        )

    yield make
    table_stream.reset()


def _copy_both_ways(migration: Migration, ddb: Any, items: list[dict[str, Any]]) -> None:
    for item in items:
        migration.put(item)
    migration.run_backfill()
    assert migration.run_live() == len(items)
    migration.check(ddb, len(items))


# --- numbers ---------------------------------------------------------------------------------


def test_extreme_numbers_and_number_sets_survive_both_paths(ddb, migration):
    # GIVEN items holding DynamoDB's largest and smallest numbers, 38-digit integers and
    # decimals and 0: as top-level N, inside M and L, and as number sets (one of them all at once)
    m = migration()
    items = [
        {
            "pk": {"S": f"n{i}"},
            "n": {"N": number},
            "doc": {"M": {"n": {"N": number}, "deeper": {"L": [{"N": number}, {"NS": [number]}]}}},
            "ns": {"NS": [number]},
        }
        for i, number in enumerate(EXTREME_NUMBERS)
    ]
    items.append(
        {"pk": {"S": "all"}, "ns": {"NS": list(EXTREME_NUMBERS)}, "l": {"L": [{"N": n} for n in EXTREME_NUMBERS]}}
    )
    # WHEN both paths copy them THEN verify is ok and every item is equal to its source
    _copy_both_ways(m, ddb, items)
    # AND not one digit was lost anywhere (equality is decimal, so compare the texts' values too)
    for table in (m.backfill_target, m.live_target):
        got = ddb.get_item(TableName=table, Key={"pk": {"S": "all"}}, ConsistentRead=True)["Item"]["ns"]["NS"]
        assert {Decimal(v) for v in got} == {Decimal(v) for v in EXTREME_NUMBERS}


def test_extreme_numbers_as_hash_and_range_keys(ddb, migration):
    # GIVEN a table keyed by numbers, holding every extreme number as hash key and as range key
    m = migration(hash_key=("h", "N"), range_key=("r", "N"))
    items = [
        {
            "h": {"N": number},
            "r": {"N": EXTREME_NUMBERS[-1 - i]},
            "v": {"NS": [number, "1"] if number != "1" else ["1"]},
        }
        for i, number in enumerate(EXTREME_NUMBERS)
    ]
    # WHEN both paths copy them THEN every key arrives with its exact value
    _copy_both_ways(m, ddb, items)


# --- empty values ----------------------------------------------------------------------------


def test_empty_strings_lists_maps_and_binaries_top_level_and_nested(ddb, migration):
    # GIVEN empty strings, lists, maps and binaries (allowed for non-key attributes since 2020,
    # also as set members and inside lists and maps), at the top level and nested
    m = migration()
    empties: dict[str, Any] = {
        "s": {"S": ""},
        "l": {"L": []},
        "m": {"M": {}},
        "b": {"B": b""},
        "ss": {"SS": ["", "x"]},
        "bs": {"BS": [b"", b"\x00"]},
    }
    items = [
        {"pk": {"S": "top"}, **empties},
        {"pk": {"S": "in-map"}, "doc": {"M": dict(empties)}},
        {"pk": {"S": "in-list"}, "list": {"L": list(empties.values())}},
        {
            "pk": {"S": "deep"},
            "doc": {"M": {"a": {"L": [{"M": {"b": {"L": [{"M": {}}, {"L": []}, {"S": ""}, {"B": b""}]}}}]}}},
        },
        {"pk": {"S": "only-empty-binary"}, "b": {"B": b""}},
    ]
    # WHEN both paths copy them THEN they arrive as empties of the same type, none dropped or retyped
    _copy_both_ways(m, ddb, items)
    for table in (m.backfill_target, m.live_target):
        top = ddb.get_item(TableName=table, Key={"pk": {"S": "top"}}, ConsistentRead=True)["Item"]
        assert top["s"] == {"S": ""} and top["l"] == {"L": []} and top["m"] == {"M": {}}
        assert top["b"] == {"B": b""}
        assert sorted(top["bs"]["BS"]) == [b"", b"\x00"]


# --- keys ------------------------------------------------------------------------------------


def test_largest_string_keys_ascii_and_four_byte_unicode(ddb, migration):
    # GIVEN hash keys of 2048 bytes and range keys of 1024 bytes (DynamoDB's maxima), in ASCII and
    # in 4-byte UTF-8 characters, and short unicode keys of every width
    m = migration(hash_key=("pk", "S"), range_key=("sk", "S"))
    items = [
        {"pk": {"S": "h" * 2048}, "sk": {"S": "r" * 1024}, "v": {"N": "1"}},
        {"pk": {"S": SHIP * 512}, "sk": {"S": SHIP * 256}, "v": {"N": "2"}},
        {"pk": {"S": "é" * 1024}, "sk": {"S": "日" * 341 + "x"}, "v": {"N": "3"}},
        {"pk": {"S": f"naïve 日本語 {SHIP} \U0001f600"}, "sk": {"S": "\U00010348"}, "v": {"N": "4"}},
        {"pk": {"S": " "}, "sk": {"S": "\t\n\x00"}, "v": {"N": "5"}},
    ]
    assert len(items[1]["pk"]["S"].encode("utf-8")) == 2048 and len(items[1]["sk"]["S"].encode("utf-8")) == 1024
    assert len(items[2]["sk"]["S"].encode("utf-8")) == 1024
    # WHEN both paths copy them THEN every key arrives byte-exact
    _copy_both_ways(m, ddb, items)


def test_the_emulator_rejects_keys_over_the_limits_so_no_source_can_hold_one(ddb, unique):
    # A source cannot contain a longer key, so ferry never meets one; the limits asserted above
    # are the real ones (DynamoDB: 2048 bytes for a partition key, 1024 for a sort key).
    create_table(ddb, f"limits-{unique}", hash_key=("pk", "S"), range_key=("sk", "S"))
    for item in ({"pk": {"S": "h" * 2049}, "sk": {"S": "r"}}, {"pk": {"S": "h"}, "sk": {"S": SHIP * 256 + "r"}}):
        with pytest.raises(ddb.exceptions.ClientError, match="ValidationException"):
            ddb.put_item(TableName=f"limits-{unique}", Item=item)


def test_binary_keys_of_every_byte_and_maximum_length(ddb, migration):
    # GIVEN binary hash and range keys: every byte value, invalid UTF-8, and the maximum lengths
    m = migration(hash_key=("pk", "B"), range_key=("sk", "B"), splits=1)  # see _whole_table_scan_client
    items: list[dict[str, Any]] = [
        {"pk": {"B": bytes(range(256))}, "sk": {"B": b"\x00"}, "v": {"S": "all bytes"}},
        {"pk": {"B": b"\xff\xfe\xfd"}, "sk": {"B": b"\xc3\x28"}, "v": {"S": "invalid utf-8"}},
        {"pk": {"B": b"\x00" * 2048}, "sk": {"B": b"\xff" * 1024}, "v": {"S": "maxima"}},
        {"pk": {"B": b"="}, "sk": {"B": b"=="}, "v": {"B": b""}},  # base64 padding lookalikes
    ]
    # WHEN both paths copy them THEN every key arrives byte-exact
    _copy_both_ways(m, ddb, items)


def test_unicode_key_attribute_names(ddb, migration):
    # GIVEN a table whose key attribute NAMES are unicode (4-byte characters, spaces, expression
    # syntax): the backfill's insert-only condition must use them through placeholders only
    m = migration(hash_key=(f"clé {SHIP}", "S"), range_key=("#sk :v.x[0]", "N"))
    items = [
        {f"clé {SHIP}": {"S": f"{SHIP}{i}"}, "#sk :v.x[0]": {"N": number}, "v": {"S": "x"}}
        for i, number in enumerate(EXTREME_NUMBERS[:4])
    ]
    # WHEN both paths copy them THEN they verify
    _copy_both_ways(m, ddb, items)


# --- size and names --------------------------------------------------------------------------


def test_an_item_near_400_kb(ddb, migration):
    # GIVEN an item close to DynamoDB's 400 KB item limit (a 395,000-byte binary) and a small one
    m = migration(hash_key=("pk", "S"), range_key=("sk", "N"))
    big = make_big_item(1)
    assert 390_000 < item_size(big) <= 400 * 1024
    small = {"pk": {"S": "small"}, "sk": {"N": "0"}}
    # WHEN both paths copy them (the live path as a ~530 KB Lambda event) THEN both verify
    _copy_both_ways(m, ddb, [big, small])


def test_long_and_unicode_attribute_names(ddb, migration):
    # GIVEN attribute names that are long (64 KB, DynamoDB's limit for non-key names), unicode,
    # or look like expression syntax, at the top level and inside maps
    m = migration()
    names = [
        "a" * 65535,
        SHIP * 4000,
        "naïve Öl 日本語",
        "with space",
        "#hash",
        ":colon",
        "dotted.name",
        "list[0]",
        "__ferry_tombstonex",
        "-",
    ]
    item: dict[str, Any] = {"pk": {"S": "names"}}
    for i, name in enumerate(names):
        item[name] = {"N": str(i)}
    item["doc"] = {"M": {name: {"S": name[:10]} for name in names}}
    assert item_size(item) < 400 * 1024
    # WHEN both paths copy it THEN it verifies, every name intact
    _copy_both_ways(m, ddb, [item])


def test_a_source_attribute_named_like_the_tombstone_marker_survives_finalize(ddb, migration):
    # GIVEN a source item that happens to carry an attribute called __ferry_tombstone
    m = migration()
    item = {"pk": {"S": "user-data"}, TOMBSTONE_ATTRIBUTE: {"BOOL": True}, "v": {"S": "real item"}}
    m.put(item)
    # WHEN both paths copy it and finalize removes the tombstones it left (none)
    m.run_backfill()
    assert m.run_live() == 1
    for target in (m.backfill_target, m.live_target):
        remove_tombstones(ddb, target, m.key_names)
    # THEN the item is still in both targets and verify is ok
    m.check(ddb, 1)


# --- the CLI: bad input, exit 2, the field named, nothing written ----------------------------

SPEC_COMMANDS = (
    ["init"],
    ["replicate", "--drain"],
    ["backfill"],
    ["verify"],
    ["finalize"],
    ["status"],
)


@functools.cache
def _clients(where: AwsTarget) -> tuple[Any, Any, Any]:
    return make_client("dynamodb", where), make_client("s3", where), make_client("sqs", where)


def _resources(where: AwsTarget) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """Every table, bucket and queue in the emulator."""
    ddb, s3, sqs = _clients(where)
    tables = frozenset(n for page in ddb.get_paginator("list_tables").paginate() for n in page["TableNames"])
    buckets = frozenset(b["Name"] for b in s3.list_buckets()["Buckets"])
    queues = frozenset(sqs.list_queues().get("QueueUrls", []))
    return tables, buckets, queues


def _base_spec(where: AwsTarget, unique: str, **parts: Any) -> dict[str, Any]:
    return {
        "region": "us-east-1",
        "endpoint_url": where.endpoint_url,
        "state_table": f"state-{unique}",
        "replication": {"phase_cache_seconds": 0, "on_failure_queue": f"stream-failures-{unique}"},
        "s3": {"events_queue": f"events-{unique}"},
        **parts,
    }


def _invoke(tmp_path: Path, body: dict[str, Any], command: list[str]) -> Any:
    path = tmp_path / "ferry.yaml"
    path.write_text(yaml.safe_dump(body, allow_unicode=True), encoding="utf-8")
    return CliRunner().invoke(cli, [command[0], "--spec", str(path), *command[1:]])


INVALID_NAMES: dict[str, tuple[Callable[[str], dict[str, Any]], str]] = {
    "table name with a space": (
        lambda u: {"tables": [{"source": "my table", "target": f"dst-{u}"}]},
        "tables[0].source",
    ),
    "table name of 2 characters": (lambda u: {"tables": [{"source": f"src-{u}", "target": "ab"}]}, "tables[0].target"),
    "table name of 256 characters": (
        lambda u: {"tables": [{"source": f"src-{u}", "target": "t" * 256}]},
        "tables[0].target",
    ),
    "table name with unicode": (lambda u: {"tables": [{"source": f"src-{u}", "target": "tàble"}]}, "tables[0].target"),
    "state table with a space": (
        lambda u: {"state_table": "my state", "tables": [{"source": "a-1", "target": "b-1"}]},
        "state_table",
    ),
    "bucket name with uppercase": (
        lambda u: {"buckets": [{"source": f"media-{u}", "target": f"Media-{u}"}]},
        "buckets[0].target",
    ),
    "bucket name with underscore": (
        lambda u: {"buckets": [{"source": f"media_{u}", "target": f"media-v2-{u}"}]},
        "buckets[0].source",
    ),
    "bucket name with two dots": (
        lambda u: {"buckets": [{"source": f"media-{u}", "target": f"a..{u}"}]},
        "buckets[0].target",
    ),
    "bucket name of 64 characters": (
        lambda u: {"buckets": [{"source": f"media-{u}", "target": "b" * 64}]},
        "buckets[0].target",
    ),
    "source == target bucket": (
        lambda u: {"buckets": [{"source": f"media-{u}", "target": f"media-{u}"}]},
        "buckets[0].target",
    ),
    "source == target table": (
        lambda u: {"tables": [{"source": f"src-{u}", "target": f"src-{u}"}]},
        "tables[0].target",
    ),
}


@pytest.mark.parametrize("case", list(INVALID_NAMES))
def test_an_invalid_name_exits_2_naming_the_field_in_every_command_and_writes_nothing(where, unique, tmp_path, case):
    # GIVEN the source table and bucket exist, and the spec has one invalid name
    make_client("s3", where).create_bucket(Bucket=f"media-{unique}")
    create_table(make_client("dynamodb", where), f"src-{unique}")
    parts, field = INVALID_NAMES[case]
    body = _base_spec(where, unique, **parts(unique))
    before = _resources(where)
    for command in SPEC_COMMANDS:
        # WHEN any command reads the spec
        result = _invoke(tmp_path, body, command)
        # THEN it exits 2 naming the field, without a traceback, and nothing was created
        assert result.exit_code == 2, (command, result.output)
        assert f"{field}:" in result.output, (command, result.output)
        assert "Traceback" not in result.output
        assert _resources(where) == before, command


# Commands that must refuse a missing source table / a target with another key schema with exit 2,
# naming the field, before any write (README: "A missing source or a target whose key schema
# differs from the source's: exit 2, also before any write").
_REPLICATE_QUEUE_BUG = (
    "ferry replicate (ferry_cli/replication.py LocalReplication.__init__) creates the on-failure queue "
    "with ensure_failure_queue() before stream_arn_of() looks at the source table, and it never runs "
    "inspect_tables(): a missing source exits 2 only after the SQS queue was created, and the message "
    "(\"table 'x' does not exist\") does not name tables[0].source"
)
_FINALIZE_BUG = (
    "ferry finalize does not validate the spec's tables (no inspect_tables): with a missing source "
    "(or a mismatched target) it reads the not-yet-created state table and exits 3 with "
    "'AWS error: ResourceNotFoundException ... Requested resource not found', naming neither field nor table"
)


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["init"], id="init"),
        pytest.param(["backfill"], id="backfill"),
        pytest.param(["verify"], id="verify"),
        pytest.param(["replicate", "--drain"], id="replicate"),
        pytest.param(["finalize"], id="finalize"),
    ],
)
def test_a_missing_source_table_exits_2_naming_the_field_and_writes_nothing(where, unique, tmp_path, command):
    # GIVEN a spec whose source table does not exist
    body = _base_spec(where, unique, tables=[{"source": f"nosuch-{unique}", "target": f"dst-{unique}"}])
    before = _resources(where)
    # WHEN the command runs
    result = _invoke(tmp_path, body, command)
    # THEN exit 2, the field and the table named, and no table, bucket or queue was created
    assert _resources(where) == before
    assert result.exit_code == 2, result.output
    assert "tables[0].source" in result.output and f"nosuch-{unique}" in result.output


_REPLICATE_SCHEMA_BUG = (
    "ferry replicate never compares the target's key schema with the source's (LocalReplication runs no "
    "inspect_tables): with a stream on the source and a target keyed differently it exits 0 after every "
    "record failed PutItem ('Missing the key id in the item') and was sent to the on-failure queue, which "
    "it created"
)


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["init"], id="init"),
        pytest.param(["backfill"], id="backfill"),
        pytest.param(["verify"], id="verify"),
        pytest.param(["replicate", "--drain"], id="replicate"),
        pytest.param(["finalize"], id="finalize"),
    ],
)
def test_a_target_with_another_key_schema_exits_2_naming_the_field_and_writes_nothing(where, unique, tmp_path, command):
    # GIVEN a source (with a stream and an item, so a live path would have work) and a target
    # keyed by another attribute of another type
    ddb = make_client("dynamodb", where)
    create_table(ddb, f"src-{unique}", stream=True)
    create_table(ddb, f"dst-{unique}", hash_key=("id", "N"))
    create_state_table(ddb, f"state-{unique}")
    ddb.put_item(TableName=f"src-{unique}", Item={"pk": {"S": "a"}})
    body = _base_spec(where, unique, tables=[{"source": f"src-{unique}", "target": f"dst-{unique}"}])
    before = _resources(where)
    # WHEN the command runs
    result = _invoke(tmp_path, body, command)
    # THEN exit 2 naming the target field, nothing created, nothing written to the target
    assert _resources(where) == before
    assert result.exit_code == 2, result.output
    assert "tables[0].target" in result.output and "key schema" in result.output
    assert scan_all(ddb, f"dst-{unique}") == []


def test_the_key_schema_message_says_what_differs(where, unique, tmp_path):
    ddb = make_client("dynamodb", where)
    create_table(ddb, f"src-{unique}")
    create_table(ddb, f"dst-{unique}", hash_key=("id", "N"))
    body = _base_spec(where, unique, tables=[{"source": f"src-{unique}", "target": f"dst-{unique}"}])
    result = _invoke(tmp_path, body, ["init"])
    assert result.exit_code == 2
    assert "id (N, HASH)" in result.output and "pk (S, HASH)" in result.output, result.output


_REPLICATE_BUCKET_BUG = (
    "ferry replicate never checks that a spec's source bucket exists (no inspect_buckets in "
    "LocalReplication): with a missing source bucket it creates the events queue and its DLQ "
    "(ensure_event_queues) and exits 0"
)
_BUCKET_FIELD_BUG = (
    "with a missing source bucket, backfill (glue_jobs/bucket_backfill.py: \"buckets: source bucket 'x' is "
    "not reachable (...404...); run `ferry init`\") and verify (\"bucket 'x' does not exist; check the spec "
    'or run `ferry init`") exit 2 naming the bucket but not the field buckets[0].source, and both advise '
    "`ferry init`, which cannot create a source; init says \"buckets[0].source: bucket 'x' does not exist\""
)


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["init"], id="init"),
        pytest.param(["backfill"], id="backfill"),
        pytest.param(["verify"], id="verify"),
        pytest.param(["replicate", "--drain"], id="replicate"),
    ],
)
def test_a_missing_source_bucket_exits_2_naming_the_field_and_writes_nothing(where, unique, tmp_path, command):
    # GIVEN a bucket mapping whose source bucket does not exist (the target does)
    make_client("s3", where).create_bucket(Bucket=f"media-v2-{unique}")
    body = _base_spec(where, unique, buckets=[{"source": f"nosuch-{unique}", "target": f"media-v2-{unique}"}])
    before = _resources(where)
    # WHEN the command runs
    result = _invoke(tmp_path, body, command)
    # THEN exit 2 naming the field and the bucket, and no table, bucket or queue was created
    assert _resources(where) == before
    assert result.exit_code == 2, result.output
    assert "buckets[0].source" in result.output and f"nosuch-{unique}" in result.output, result.output
