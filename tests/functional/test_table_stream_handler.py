"""The real ``table_stream`` handler fed with real stream records read from the emulator.

Records are read with the local poller's event builder (the event Lambda would build) and
handed to ``chalicelib.table_stream.handle`` directly, so each test controls the batch.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from chalicelib import table_stream

from ferry.aws import stream_arn_of
from ferry.clients import AwsTarget
from ferry.spec import parse_spec, spec_to_dict
from ferry.tables.protocol import TOMBSTONE_ATTRIBUTE, TOMBSTONE_VALUE
from ferry.tables.state import StateStore, create_state_table
from ferry.wire import decode_stream_image, differing_attributes
from ferry_dev.stream_poller import LocalContext, StreamPoller
from tests.conftest import create_table, scan_all

pytestmark = pytest.mark.functional

EVENTS = Path(__file__).resolve().parent.parent / "events"
TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}

# Every attribute type, binaries at every depth, extreme numbers, empty string and unicode.
ALL_TYPES: dict[str, Any] = {
    "pk": {"S": "item-1"},
    "text": {"S": "naïve Öl 日本語 emoji 🚢 tab\tnewline\n"},
    "empty": {"S": ""},
    "digits38": {"N": "12345678901234567890123456789012345678"},
    "negative38": {"N": "-9.9999999999999999999999999999999999999E+125"},
    "tiny": {"N": "1E-130"},
    "blob": {"B": b"\x00\xff\x10 ferry \x80"},
    "blobs": {"BS": [b"\x00", b"\x01\x02", b"\xff" * 3]},
    "strings": {"SS": ["a", "ß", "日本"]},
    "numbers": {"NS": ["1", "2.5", "-3", "12345678901234567890123456789012345678"]},
    "flag": {"BOOL": False},
    "nothing": {"NULL": True},
    "doc": {
        "M": {
            "blob": {"B": b"\xde\xad\xbe\xef"},
            "blobs": {"BS": [b"\x10", b"\x20"]},
            "deeper": {"M": {"list": {"L": [{"B": b"\x01"}, {"S": ""}, {"N": "0"}]}}},
            "empty_map": {"M": {}},
        }
    },
    "items": {"L": [{"B": b"\x02"}, {"M": {"b": {"B": b"\x03"}}}, {"L": [{"B": b"\x04"}]}, {"L": []}]},
}


@dataclass
class Replication:
    source: str
    target: str
    store: StateStore
    stream_arn: str
    read: Callable[[], list[dict[str, Any]]]  # the Lambda-form records written since the last call


@pytest.fixture
def replication(
    monkeypatch: pytest.MonkeyPatch, ddb: Any, streams: Any, sqs: Any, where: AwsTarget, unique: str
) -> Iterator[Callable[..., Replication]]:
    """A factory: source table with stream, target, state table and FERRY_SPEC for the handler."""

    def make(**mapping_options: Any) -> Replication:
        source, target, state = f"src-{unique}", f"dst-{unique}", f"state-{unique}"
        create_table(ddb, source, stream=True)
        create_table(ddb, target)
        create_state_table(ddb, state)
        spec = parse_spec(
            {
                "region": where.region,
                "endpoint_url": where.endpoint_url,
                "state_table": state,
                "tables": [{"source": source, "target": target, **mapping_options}],
                "replication": {"phase_cache_seconds": 0},
            }
        )
        monkeypatch.setenv("FERRY_SPEC", json.dumps(spec_to_dict(spec)))
        table_stream.reset()
        arn = stream_arn_of(ddb, source)
        captured: list[dict[str, Any]] = []

        def capture(event: dict[str, Any], context: Any) -> dict[str, Any]:
            captured.extend(event["Records"])
            return {"batchItemFailures": []}

        poller = StreamPoller(
            streams, sqs, arn, source, capture, batch_size=100, on_failure_queue_url="unused", retry_backoff=0
        )

        def read() -> list[dict[str, Any]]:
            poller.drain(timeout=30)
            out = list(captured)
            captured.clear()
            return out

        return Replication(source, target, StateStore(ddb, state), arn, read)

    yield make
    table_stream.reset()


def handle(records: list[dict[str, Any]]) -> dict[str, Any]:
    context = LocalContext("table_stream", "test-request", deadline=float("inf"))
    response: dict[str, Any] = table_stream.handle({"Records": copy.deepcopy(records)}, context)
    return response


def by_key(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["pk"]["S"]: item for item in items}


def load_event(name: str, stream_arn: str) -> list[dict[str, Any]]:
    """A sample event from tests/events with its records pointed at this test's stream."""
    records: list[dict[str, Any]] = json.loads((EVENTS / name).read_text(encoding="utf-8"))["Records"]
    for record in records:
        record["eventSourceARN"] = stream_arn
    return records


def test_insert_and_modify_copy_every_attribute_type_exactly(ddb: Any, replication: Callable[..., Replication]) -> None:
    # GIVEN a source item holding every attribute type, binaries nested in M and L
    rep = replication()
    ddb.put_item(TableName=rep.source, Item=ALL_TYPES)
    second = {**ALL_TYPES, "pk": {"S": "item-2"}, "text": {"S": "zweite"}}
    ddb.put_item(TableName=rep.source, Item=second)
    inserts = rep.read()

    # WHEN the INSERT records are handled
    response = handle(inserts)

    # THEN nothing failed and the target items equal the source items exactly
    assert [r["eventName"] for r in inserts] == ["INSERT", "INSERT"]
    assert response == {"batchItemFailures": []}
    assert by_key(scan_all(ddb, rep.target)) == by_key(scan_all(ddb, rep.source))

    # WHEN the items are modified (binaries replaced, attributes added and removed) and handled
    ddb.update_item(
        TableName=rep.source,
        Key={"pk": {"S": "item-1"}},
        UpdateExpression="SET #d.#b = :b, #new = :new REMOVE #e",
        ExpressionAttributeNames={"#d": "doc", "#b": "blob", "#new": "added", "#e": "empty"},
        ExpressionAttributeValues={":b": {"B": b"\x00changed"}, ":new": {"L": [{"BS": [b"\x09"]}]}},
    )
    ddb.put_item(TableName=rep.source, Item={**second, "numbers": {"NS": ["0.1"]}})
    modifies = rep.read()
    response = handle(modifies)

    # THEN the target follows exactly
    assert [r["eventName"] for r in modifies] == ["MODIFY", "MODIFY"]
    assert response == {"batchItemFailures": []}
    target = by_key(scan_all(ddb, rep.target))
    assert target == by_key(scan_all(ddb, rep.source))
    assert target["item-1"]["doc"]["M"]["blob"] == {"B": b"\x00changed"}
    assert "empty" not in target["item-1"]


def test_remove_in_backfill_phase_writes_a_tombstone(ddb: Any, replication: Callable[..., Replication]) -> None:
    # GIVEN a replicated item and a table whose phase is unset (backfill)
    rep = replication()
    ddb.put_item(TableName=rep.source, Item=ALL_TYPES)
    ddb.delete_item(TableName=rep.source, Key={"pk": ALL_TYPES["pk"]})
    records = rep.read()

    # WHEN the INSERT and the REMOVE are handled
    response = handle(records)

    # THEN the target holds only a tombstone with the key
    assert [r["eventName"] for r in records] == ["INSERT", "REMOVE"]
    assert response == {"batchItemFailures": []}
    assert scan_all(ddb, rep.target) == [{"pk": ALL_TYPES["pk"], TOMBSTONE_ATTRIBUTE: TOMBSTONE_VALUE}]


def test_remove_in_live_phase_deletes(ddb: Any, replication: Callable[..., Replication]) -> None:
    # GIVEN a replicated item and a table in its live phase
    rep = replication()
    ddb.put_item(TableName=rep.source, Item=ALL_TYPES)
    assert handle(rep.read()) == {"batchItemFailures": []}
    assert len(scan_all(ddb, rep.target)) == 1
    rep.store.set_phase(rep.source, "live")

    # WHEN the item is deleted in the source and the REMOVE is handled
    ddb.delete_item(TableName=rep.source, Key={"pk": ALL_TYPES["pk"]})
    response = handle(rep.read())

    # THEN it is deleted from the target, no tombstone
    assert response == {"batchItemFailures": []}
    assert scan_all(ddb, rep.target) == []


def test_record_of_an_unmapped_table_fails_alone(ddb: Any, replication: Callable[..., Replication]) -> None:
    # GIVEN a batch of three records, the middle one claiming to come from an unmapped table
    rep = replication()
    for name in ("a", "b", "c"):
        ddb.put_item(TableName=rep.source, Item={"pk": {"S": name}, "v": {"N": "1"}})
    records = rep.read()
    records[1]["eventSourceARN"] = rep.stream_arn.replace(f"table/{rep.source}/", "table/not-in-the-spec/")

    # WHEN the batch is handled
    response = handle(records)

    # THEN exactly that record is reported by its sequence number and the others are applied
    assert response == {"batchItemFailures": [{"itemIdentifier": records[1]["dynamodb"]["SequenceNumber"]}]}
    assert sorted(by_key(scan_all(ddb, rep.target))) == ["a", "c"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"replicate_ttl_deletes": False}, "kept"),
        ({}, "tombstone"),  # default: TTL deletes are replicated
    ],
)
def test_ttl_delete(ddb: Any, replication: Callable[..., Replication], options: dict[str, Any], expected: str) -> None:
    # GIVEN a replicated item
    rep = replication(**options)
    ddb.put_item(TableName=rep.source, Item=ALL_TYPES)
    assert handle(rep.read()) == {"batchItemFailures": []}

    # WHEN its REMOVE record arrives marked as a TTL expiry (neither emulator emits userIdentity)
    ddb.delete_item(TableName=rep.source, Key={"pk": ALL_TYPES["pk"]})
    (remove,) = rep.read()
    remove["userIdentity"] = dict(TTL_IDENTITY)
    response = handle([remove])

    # THEN it is skipped when replicate_ttl_deletes is false, applied otherwise
    assert response == {"batchItemFailures": []}
    target = scan_all(ddb, rep.target)
    if expected == "kept":
        (kept,) = target
        assert differing_attributes(kept, ALL_TYPES) == []  # numbers as DynamoDB compares them
    else:
        assert target == [{"pk": ALL_TYPES["pk"], TOMBSTONE_ATTRIBUTE: TOMBSTONE_VALUE}]


def test_sample_event_applies_insert_modify_remove(ddb: Any, replication: Callable[..., Replication]) -> None:
    # GIVEN the stored sample event (INSERT, MODIFY, REMOVE of one item, base64 binaries nested)
    rep = replication()
    insert, modify, remove = load_event("table_stream_batch.json", rep.stream_arn)

    # WHEN the INSERT is handled
    assert handle([insert]) == {"batchItemFailures": []}

    # THEN the target item is the decoded NewImage, binaries as bytes at every depth
    (item,) = scan_all(ddb, rep.target)
    assert item == decode_stream_image(insert["dynamodb"]["NewImage"])
    assert item["doc"]["M"]["inner"]["L"][0] == {"B": b"\xbe\xef"}
    assert item["raws"] == {"BS": [b"\x00", b"\x01\x02"]}

    # WHEN the MODIFY is handled, THEN the target follows
    assert handle([modify]) == {"batchItemFailures": []}
    assert scan_all(ddb, rep.target) == [decode_stream_image(modify["dynamodb"]["NewImage"])]

    # WHEN the REMOVE is handled in the backfill phase, THEN a tombstone remains
    assert handle([remove]) == {"batchItemFailures": []}
    assert scan_all(ddb, rep.target) == [{"pk": {"S": "sample-1"}, TOMBSTONE_ATTRIBUTE: TOMBSTONE_VALUE}]


def test_sample_ttl_event_is_skipped_when_ttl_deletes_are_not_replicated(
    ddb: Any, replication: Callable[..., Replication]
) -> None:
    # GIVEN the sample item replicated, and TTL deletes not replicated
    rep = replication(replicate_ttl_deletes=False)
    insert = load_event("table_stream_batch.json", rep.stream_arn)[0]
    (ttl_remove,) = load_event("table_stream_ttl_remove.json", rep.stream_arn)
    assert handle([insert]) == {"batchItemFailures": []}

    # WHEN the sample TTL REMOVE is handled
    response = handle([ttl_remove])

    # THEN it succeeds and the target item is untouched
    assert ttl_remove["userIdentity"] == TTL_IDENTITY
    assert response == {"batchItemFailures": []}
    assert scan_all(ddb, rep.target) == [decode_stream_image(insert["dynamodb"]["NewImage"])]


def test_event_builder_gives_the_shape_of_the_sample_event(ddb: Any, replication: Callable[..., Replication]) -> None:
    # GIVEN an item with binaries written to a real stream
    rep = replication()
    ddb.put_item(TableName=rep.source, Item=ALL_TYPES)

    # WHEN the poller builds the Lambda record
    (built,) = rep.read()
    sample = load_event("table_stream_batch.json", rep.stream_arn)[0]

    # THEN it has the sample's fields and Lambda's encodings: epoch number, base64 text at every depth
    assert set(built) == set(sample)
    assert set(built["dynamodb"]) == set(sample["dynamodb"])
    assert built["eventSourceARN"] == rep.stream_arn
    assert isinstance(built["dynamodb"]["ApproximateCreationDateTime"], float)
    image = built["dynamodb"]["NewImage"]
    assert image["blob"] == {"B": "AP8QIGZlcnJ5IIA="}
    assert image["blobs"]["BS"] == ["AA==", "AQI=", "////"]
    assert image["doc"]["M"]["deeper"]["M"]["list"]["L"][0] == {"B": "AQ=="}
    assert image["items"]["L"][1] == {"M": {"b": {"B": "Aw=="}}}
    # numbers compared as numbers: DynamoDB trims them (ministack writes 1E-130 out in full; moto keeps it)
    assert differing_attributes(decode_stream_image(image), ALL_TYPES) == []


@pytest.mark.emulators("moto", reason="pins moto's fault: a number is kept as sent, zeros and all")
def test_moto_keeps_the_leading_and_trailing_zeros_of_a_number(ddb: Any, unique: str) -> None:
    # AWS: "Leading and trailing zeroes are trimmed" (Developer Guide, data types, Number); ministack
    # trims them. This fails the day moto does too.
    create_table(ddb, f"n-{unique}")
    ddb.put_item(TableName=f"n-{unique}", Item={"pk": {"S": "n"}, "n": {"N": "007.50"}, "ns": {"NS": ["01.0"]}})
    item = ddb.get_item(TableName=f"n-{unique}", Key={"pk": {"S": "n"}})["Item"]
    assert (item["n"], item["ns"]) == ({"N": "007.50"}, {"NS": ["01.0"]})


@pytest.mark.emulators("ministack", reason="the emulator that trims numbers as AWS documents")
def test_a_number_comes_back_without_leading_and_trailing_zeros(ddb: Any, unique: str) -> None:
    create_table(ddb, f"n-{unique}")
    ddb.put_item(TableName=f"n-{unique}", Item={"pk": {"S": "n"}, "n": {"N": "007.50"}, "ns": {"NS": ["01.0"]}})
    item = ddb.get_item(TableName=f"n-{unique}", Key={"pk": {"S": "n"}})["Item"]
    assert (item["n"], item["ns"]) == ({"N": "7.5"}, {"NS": ["1"]})


def test_binary_keyed_items_are_deleted_by_their_real_key(ddb, streams, where, unique, monkeypatch):
    # GIVEN a table whose hash key is binary, one item put and then deleted at the source
    from chalicelib import table_stream

    from ferry.spec import parse_spec, spec_to_dict
    from ferry.tables.state import StateStore, create_state_table
    from ferry_dev.stream_poller import lambda_event

    source, target, state = f"bsrc-{unique}", f"bdst-{unique}", f"bstate-{unique}"
    create_table(ddb, source, hash_key=("id", "B"), stream=True)
    create_table(ddb, target, hash_key=("id", "B"))
    create_state_table(ddb, state)
    StateStore(ddb, state).set_phase(source, "live")
    spec = parse_spec(
        {
            "region": where.region,
            "endpoint_url": where.endpoint_url,
            "state_table": state,
            "tables": [{"source": source, "target": target}],
            "replication": {"phase_cache_seconds": 0},
        }
    )
    monkeypatch.setenv("FERRY_SPEC", json.dumps(spec_to_dict(spec)))
    table_stream.reset()
    key = {"id": {"B": b"\x00\xffkey"}}
    ddb.put_item(TableName=source, Item={**key, "v": {"N": "1"}})
    ddb.delete_item(TableName=source, Key=key)
    arn = ddb.describe_table(TableName=source)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    # WHEN the records reach the handler
    put, remove = lambda_event(records[:1], arn), lambda_event(records[1:], arn)
    assert table_stream.handle(put, None) == {"batchItemFailures": []}
    assert "Item" in ddb.get_item(TableName=target, Key=key)
    assert table_stream.handle(remove, None) == {"batchItemFailures": []}
    # THEN the item is gone from the target under its real binary key
    assert "Item" not in ddb.get_item(TableName=target, Key=key)
    assert scan_all(ddb, target) == []


def test_records_of_a_held_table_fail_and_nothing_is_written(ddb: Any, replication: Callable[..., Replication]) -> None:
    # GIVEN a replay table whose changes are held (its copy is not released) and records of it
    rep = replication(protocol="replay")
    rep.store.set_phase(rep.source, "hold")
    ddb.put_item(TableName=rep.source, Item={"pk": {"S": "a"}, "v": {"N": "1"}})
    ddb.delete_item(TableName=rep.source, Key={"pk": {"S": "a"}})
    records = rep.read()
    # WHEN they reach the handler (a mapping enabled before the release would do that)
    response = handle(records)
    # THEN every record fails (it is delivered again) and the target is untouched: the copy may still write
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [
        r["dynamodb"]["SequenceNumber"] for r in records
    ]
    assert scan_all(ddb, rep.target) == []
    # WHEN the copy is released THEN the same records apply, the REMOVE as a real delete (no tombstone)
    rep.store.set_phase(rep.source, "replay")
    assert handle(records) == {"batchItemFailures": []}
    assert scan_all(ddb, rep.target) == []
    assert handle(records[:1]) == {"batchItemFailures": []}
    assert by_key(scan_all(ddb, rep.target)) == {"a": {"pk": {"S": "a"}, "v": {"N": "1"}}}
