"""Poison and failure paths, end to end: records that cannot be applied are retried a bounded
number of times, land in the dead-letter queues with their keys, do not block anything else, and
`ferry redrive` re-applies them once the cause is fixed — as the source is NOW, never as the old
record said (a record that failed long ago is stale).

The failures are real: the target table (or bucket) is deleted after `ferry init`, the real
pollers feed the real handlers (``LocalReplication``), and the fix is `ferry init` recreating it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.exceptions import ClientError
from click.testing import CliRunner

from ferry.aws import stream_arn_of
from ferry.buckets.setup import ensure_event_queues
from ferry.buckets.verify import verify_bucket
from ferry.clients import AwsTarget, make_client
from ferry.errors import RetryableError, SetupError
from ferry.spec import Spec, TableMapping
from ferry.tables.protocol import TOMBSTONE_ATTRIBUTE, TOMBSTONE_VALUE, insert_only_condition
from ferry.tables.redrive import converge_key, redrive_stream_failures
from ferry.tables.setup import ensure_failure_queue
from ferry.tables.state import StateStore
from ferry.tables.verify import verify_table
from ferry.wire import key_text
from ferry_cli.main import cli
from ferry_cli.specfile import load_spec
from ferry_dev.replication import LocalReplication
from tests.conftest import create_table, scan_all

pytestmark = pytest.mark.functional

Item = dict[str, Any]


# --- helpers ---------------------------------------------------------------------------------


def _table_spec(emulator: Any, unique: str, tables: list[tuple[str, str]], **extra: Any) -> dict[str, Any]:
    return {
        "region": "us-east-1",
        "endpoint_url": emulator.endpoint_url,
        "state_table": f"state-{unique}",
        # insert-only: the consumer runs from init on (a replay table's would hold until its copy's release)
        "tables": [{"source": s, "target": t, "protocol": "insert-only"} for s, t in tables],
        "backfill": {"splits": 2},
        # A small, finite retry count: a record that keeps failing is dead-lettered quickly.
        "replication": {"phase_cache_seconds": 0, "max_retries": 1, "on_failure_queue": f"failures-{unique}"},
        **extra,
    }


def _write_spec(tmp_path: Path, body: dict[str, Any]) -> tuple[str, Spec]:
    path = tmp_path / "ferry.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return str(path), load_spec(path)


def _ferry(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def _init(spec_path: str) -> None:
    result = _ferry("init", "--spec", spec_path)
    assert result.exit_code == 0, result.output


def _drop_table(ddb: Any, name: str) -> None:
    ddb.delete_table(TableName=name)
    ddb.get_waiter("table_not_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})


def _drain(spec: Spec) -> LocalReplication:
    """The real pollers and handlers, run until every stream and queue has nothing left."""
    replication = LocalReplication(spec, retry_backoff=0)
    replication.drain(timeout=60)
    return replication


def _queue_url(sqs: Any, name: str) -> str:
    return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])


def _peek(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message body in the queue (parsed when JSON), leaving the messages in it."""
    messages: dict[str, dict[str, Any]] = {}
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=30)
        fresh = [m for m in got.get("Messages", []) if m["MessageId"] not in messages]
        if not fresh:
            break
        messages.update({m["MessageId"]: m for m in fresh})
    for m in messages.values():
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    return [_parsed(m["Body"]) for m in messages.values()]


def _parsed(body: str) -> Any:
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        return body


def _depth(sqs: Any, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[n]) for n in names)


def _item(ddb: Any, table: str, key: Item) -> Item | None:
    found: Item | None = ddb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
    return found


def _by_pk(items: list[Item]) -> dict[str, Item]:
    return {i["pk"]["S"]: i for i in items}


def _verify(spec: Spec, index: int = 0) -> set[tuple[str, str]]:
    report = verify_table(spec, spec.tables[index], segments=2)
    return {(d.kind, d.key) for d in report.differences}


# --- tables ----------------------------------------------------------------------------------


def test_a_missing_target_dead_letters_its_records_without_blocking_and_redrive_converges_them(
    ddb: Any, sqs: Any, emulator: Any, unique: str, tmp_path: Path
) -> None:
    # GIVEN two migrated tables, initialised, and the first one's target deleted afterwards
    a_src, a_dst, b_src, b_dst = f"a-src-{unique}", f"a-dst-{unique}", f"b-src-{unique}", f"b-dst-{unique}"
    create_table(ddb, a_src)
    create_table(ddb, b_src)
    spec_path, spec = _write_spec(tmp_path, _table_spec(emulator, unique, [(a_src, a_dst), (b_src, b_dst)]))
    _init(spec_path)
    _drop_table(ddb, a_dst)

    # WHEN the service writes to both sources and live replication drains the streams
    a1, a2 = {"pk": {"S": "a1"}}, {"pk": {"S": "a2"}}
    ddb.put_item(TableName=a_src, Item={**a1, "v": {"N": "1"}})
    ddb.put_item(TableName=a_src, Item={**a2, "n": {"N": "1.2345678901234567890123456789012345678"}})
    ddb.put_item(TableName=a_src, Item={**a1, "v": {"N": "2"}, "bs": {"BS": [b"\x00", b"\xff"]}})
    ddb.put_item(TableName=b_src, Item={"pk": {"S": "b1"}})
    ddb.put_item(TableName=b_src, Item={"pk": {"S": "b2"}, "m": {"M": {"x": {"B": b"\x01"}}}})
    replication = _drain(spec)  # returns: the poller does not loop on the failing records

    # THEN each record of the first table failed, was retried max_retries times and was dead-lettered …
    a_poller, b_poller = replication.stream_pollers
    assert (a_poller.stats.applied, a_poller.stats.dead_lettered, a_poller.stats.retries) == (0, 3, 3)
    # … while the other table's later records were applied
    assert (b_poller.stats.applied, b_poller.stats.dead_lettered) == (2, 0)
    assert _by_pk(scan_all(ddb, b_dst)) == _by_pk(scan_all(ddb, b_src))
    # … and the on-failure queue names the table, the event and the key of each failed record
    url = _queue_url(sqs, spec.replication.on_failure_queue)
    messages = _peek(sqs, url)
    assert sorted((m["ferry"]["sourceTable"], m["ferry"]["eventName"], m["ferry"]["keys"]) for m in messages) == [
        (a_src, "INSERT", key_text(a1)),
        (a_src, "INSERT", key_text(a2)),
        (a_src, "MODIFY", key_text(a1)),
    ]
    for m in messages:
        assert m["requestContext"]["condition"] == "RetryAttemptsExhausted"
        assert m["requestContext"]["approximateInvokeCount"] == 2  # the first try + max_retries
        assert m["DDBStreamBatchInfo"]["batchSize"] == 1
        # The error text is only there when the function itself failed: like Lambda's, a partial
        # batch response names the failed record but not why (the handler's log says why).
        assert "error" in m["ferry"]
        assert "v" not in json.dumps(m["ferry"]["keys"]) and "NewImage" not in json.dumps(m)  # keys only
    # … and verify cannot compare against a target that does not exist; it says which
    with pytest.raises(SetupError, match=a_dst):
        verify_table(spec, spec.tables[0], segments=2)
    # … and a redrive before the fix keeps every message (exit 3), saying why
    early = _ferry("redrive", "--spec", spec_path)
    assert early.exit_code == 3, early.output
    assert "3 messages seen, 0 redriven, 3 kept" in early.output and "3 message(s) kept" in early.output
    assert early.output.count(f"target table '{a_dst}' does not exist") == 3
    assert len(_peek(sqs, url)) == 3

    # WHEN the cause is fixed (init creates the missing target again)
    _init(spec_path)
    # THEN verify points at exactly the dead-lettered keys, as missing
    assert _verify(spec) == {("missing", key_text(a1)), ("missing", key_text(a2))}

    # WHEN `ferry redrive` runs
    result = _ferry("redrive", "--spec", spec_path)

    # THEN every message was redriven, the target equals the source and the queue is empty
    assert result.exit_code == 0, result.output
    assert "3 messages seen, 3 redriven, 0 kept, 3 keys converged (put 3)" in result.output
    assert _verify(spec) == set() and _verify(spec, 1) == set()
    assert _by_pk(scan_all(ddb, a_dst)) == _by_pk(scan_all(ddb, a_src))
    assert _depth(sqs, url) == 0
    # AND a second redrive finds nothing to do
    again = _ferry("redrive", "--spec", spec_path)
    assert again.exit_code == 0 and "0 messages seen" in again.output


def test_redrive_never_makes_the_target_staler_than_the_source(
    ddb: Any, sqs: Any, emulator: Any, unique: str, tmp_path: Path
) -> None:
    # GIVEN a key whose put of v1 failed (target missing) and was dead-lettered
    src, dst = f"src-{unique}", f"dst-{unique}"
    create_table(ddb, src)
    spec_path, spec = _write_spec(tmp_path, _table_spec(emulator, unique, [(src, dst)]))
    _init(spec_path)
    _drop_table(ddb, dst)
    key = {"pk": {"S": "k"}}
    ddb.put_item(TableName=src, Item={**key, "version": {"N": "1"}, "old": {"S": "only in v1"}})
    assert _drain(spec).stream_pollers[0].stats.dead_lettered == 1
    # AND, after the cause was fixed, the key was updated to v2 and that was applied live
    _init(spec_path)
    ddb.put_item(TableName=src, Item={**key, "version": {"N": "2"}})
    assert _drain(spec).stream_pollers[0].stats.applied == 1
    assert _item(ddb, dst, key) == {**key, "version": {"N": "2"}}

    # WHEN the old failure is redriven
    result = _ferry("redrive", "--spec", spec_path)

    # THEN the target keeps v2 (the source's current state), not the dead-lettered v1
    assert result.exit_code == 0, result.output
    assert _item(ddb, dst, key) == {**key, "version": {"N": "2"}} == _item(ddb, src, key)
    assert _depth(sqs, _queue_url(sqs, spec.replication.on_failure_queue)) == 0


@pytest.mark.parametrize("phase", ["backfill", "live", "replay"])
def test_a_deleted_key_is_redriven_as_a_tombstone_in_the_backfill_phase_and_a_delete_when_live(
    ddb: Any, sqs: Any, emulator: Any, unique: str, tmp_path: Path, phase: str
) -> None:
    # GIVEN a key inserted then deleted in the source while the target was missing (both records dead-lettered)
    src, dst = f"src-{unique}", f"dst-{unique}"
    create_table(ddb, src)
    spec_path, spec = _write_spec(tmp_path, _table_spec(emulator, unique, [(src, dst)]))
    _init(spec_path)
    _drop_table(ddb, dst)
    key = {"pk": {"S": "gone"}}
    stale = {**key, "v": {"S": "stale"}}
    ddb.put_item(TableName=src, Item=stale)
    ddb.delete_item(TableName=src, Key=key)
    assert _drain(spec).stream_pollers[0].stats.dead_lettered == 2
    # AND the cause fixed, the table in the given phase, and a stale copy of the key in the target
    # (e.g. restored from a backup)
    _init(spec_path)
    StateStore(ddb, spec.state_table).set_phase(src, phase)
    ddb.put_item(TableName=dst, Item=stale)

    # WHEN the failures are redriven
    result = _ferry("redrive", "--spec", spec_path)

    # THEN the key is converged per the protocol: a tombstone while an insert-only copy may run, a real delete
    # when live or while a released replay copy replays (no copy writes any more, no sweep would remove it)
    assert result.exit_code == 0, result.output
    if phase == "backfill":
        assert "(tombstone 2)" in result.output
        assert _item(ddb, dst, key) == {**key, TOMBSTONE_ATTRIBUTE: TOMBSTONE_VALUE}
        # a stale backfill insert of the deleted item fails its condition: no resurrection
        with pytest.raises(ClientError, match="ConditionalCheckFailed"):
            ddb.put_item(TableName=dst, Item=stale, **insert_only_condition("pk"))
        # and finalize removes the tombstone, after which verify finds no difference
        assert _verify(spec) == {("tombstone", key_text(key))}
        assert _ferry("finalize", "--spec", spec_path, "--force").exit_code == 0
    else:
        assert "(delete 2)" in result.output
        assert _item(ddb, dst, key) is None
    assert _verify(spec) == set()


def test_a_lambda_shaped_message_without_keys_is_redriven_by_reading_the_stream_again(
    ddb: Any, sqs: Any, emulator: Any, unique: str, tmp_path: Path
) -> None:
    # GIVEN three failed records of a table with a composite key (string hash key, binary range key) …
    src, dst = f"src-{unique}", f"dst-{unique}"
    create_table(ddb, src, hash_key=("id", "S"), range_key=("r", "B"))
    spec_path, spec = _write_spec(tmp_path, _table_spec(emulator, unique, [(src, dst)]))
    _init(spec_path)
    _drop_table(ddb, dst)
    items = [
        {"id": {"S": "x"}, "r": {"B": b"\x00\xff"}, "v": {"S": "one"}},
        {"id": {"S": "x"}, "r": {"B": b"\x01"}, "v": {"SS": ["a", "b"]}},
        {"id": {"S": "y"}, "r": {"B": b"\x7f"}, "v": {"L": [{"B": b"\x01"}]}},
    ]
    for item in items:
        ddb.put_item(TableName=src, Item=item)
    assert _drain(spec).stream_pollers[0].stats.dead_lettered == 3
    # … reported the way Lambda's event-source mapping reports a failed batch: one message with
    # only DDBStreamBatchInfo (no `ferry` object, no keys) spanning the three records
    url = _queue_url(sqs, spec.replication.on_failure_queue)
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)["Messages"]
    assert len(received) == 3
    for m in received:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    bodies = [json.loads(m["Body"]) for m in received]
    # sequence numbers are strings, passed back as given (ministack's have leading zeros): ordered as numbers
    sequences = sorted((b["DDBStreamBatchInfo"]["startSequenceNumber"] for b in bodies), key=int)
    lambda_message = {k: v for k, v in bodies[0].items() if k != "ferry"}
    lambda_message["DDBStreamBatchInfo"] = {
        **bodies[0]["DDBStreamBatchInfo"],
        "startSequenceNumber": sequences[0],
        "endSequenceNumber": sequences[-1],
        "batchSize": 3,
    }
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(lambda_message))
    # AND the cause fixed
    _init(spec_path)

    # WHEN `ferry redrive` runs
    result = _ferry("redrive", "--spec", spec_path)

    # THEN the records were read again from the stream and all three keys converged
    assert result.exit_code == 0, result.output
    assert "1 messages seen, 1 redriven, 0 kept, 3 keys converged (put 3)" in result.output
    assert _verify(spec) == set()
    assert len(scan_all(ddb, dst)) == 3
    assert _depth(sqs, url) == 0


@pytest.mark.parametrize(
    ("injected", "reason"),
    [
        ("TrimmedDataAccessException", "trimmed after 24 hours"),
        ("ResourceNotFoundException", "no longer exists"),
        (None, "no longer in the stream"),
    ],
)
def test_a_lambda_shaped_message_whose_records_cannot_be_read_is_kept_and_reported(
    ddb: Any, sqs: Any, where: AwsTarget, emulator: Any, unique: str, tmp_path: Path, injected: str | None, reason: str
) -> None:
    # GIVEN a Lambda-shaped on-failure message for a mapped table whose records cannot be read:
    # trimmed, stream gone (both injected as AWS reports them), or past what the stream holds
    src, dst = f"src-{unique}", f"dst-{unique}"
    create_table(ddb, src, stream=True)
    create_table(ddb, dst)
    # one record, so the shard has a StartingSequenceNumber (optional in DescribeStream: ministack
    # leaves it out of an empty shard)
    ddb.put_item(TableName=src, Item={"pk": {"S": "a"}})
    _, spec = _write_spec(tmp_path, _table_spec(emulator, unique, [(src, dst)]))
    url = ensure_failure_queue(sqs, spec.replication.on_failure_queue)[0]
    streams = make_client("dynamodbstreams", where)
    arn = stream_arn_of(ddb, src)
    (shard,) = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    start = shard["SequenceNumberRange"]["StartingSequenceNumber"]
    beyond = str(int(start) + 1000).zfill(len(start))  # in the stream's own format
    info = {"shardId": shard["ShardId"], "streamArn": arn, "batchSize": 1}
    info.update(startSequenceNumber=beyond, endSequenceNumber=beyond)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"version": "1.0", "DDBStreamBatchInfo": info}))
    if injected:

        def fail(**_: Any) -> None:
            raise ClientError({"Error": {"Code": injected, "Message": "injected"}}, "GetShardIterator")

        streams.meta.events.register("before-call.dynamodbstreams.GetShardIterator", fail)

    # WHEN the queue is redriven
    report = redrive_stream_failures(spec, ddb=ddb, sqs=sqs, streams=streams, queue_url=url)

    # THEN the message is kept, with the reason, and is back in the queue for a later look
    assert (report.seen, report.redriven, report.keys_converged) == (1, 0, 0)
    (kept,) = report.kept
    assert reason in kept.reason and src in kept.reason and kept.subjects == (src,)
    assert [m["DDBStreamBatchInfo"] for m in _peek(sqs, url)] == [info]


def test_messages_naming_tables_outside_the_spec_are_kept_and_exit_3_names_them(
    ddb: Any, sqs: Any, emulator: Any, unique: str, tmp_path: Path
) -> None:
    # GIVEN a spec with one table and one bucket, and dead-lettered messages about a table and a
    # bucket that it does not map (a local-poller message and a Lambda-shaped one)
    src, dst = f"src-{unique}", f"dst-{unique}"
    body = _table_spec(emulator, unique, [(src, dst)])
    body["buckets"] = [{"source": f"media-{unique}", "target": f"media-v2-{unique}", "protocol": "insert-only"}]
    body["s3"] = {"events_queue": f"events-{unique}"}
    spec_path, spec = _write_spec(tmp_path, body)
    url = ensure_failure_queue(sqs, spec.replication.on_failure_queue)[0]
    _, _, dlq_url = ensure_event_queues(sqs, spec.s3.events_queue, 2, 30)
    ghost, other = f"ghost-{unique}", f"other-{unique}"
    local = {"ferry": {"sourceTable": ghost, "eventName": "INSERT", "keys": key_text({"pk": {"S": "a"}})}}
    stream_arn = f"arn:aws:dynamodb:us-east-1:123456789012:table/{other}/stream/2026-01-01T00:00:00.000"
    lambda_shaped = {
        "DDBStreamBatchInfo": {
            "shardId": "shardId-1",
            "streamArn": stream_arn,
            "startSequenceNumber": "100000000000000000001",
            "endSequenceNumber": "100000000000000000001",
            "batchSize": 1,
        }
    }
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(local))
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(lambda_shaped))
    bucket_event = {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": f"ghost-bucket-{unique}"}, "object": {"key": "k.txt"}},
    }
    sqs.send_message(QueueUrl=dlq_url, MessageBody=json.dumps(bucket_event))

    # WHEN `ferry redrive` runs
    result = _ferry("redrive", "--spec", spec_path)

    # THEN it exits 3 and says which messages were kept and why, naming the tables and the bucket
    assert result.exit_code == 3, result.output
    assert "3 message(s) kept" in result.output
    assert f"table '{ghost}' is not a source table of this spec" in result.output
    assert f"table '{other}' is not a source table of this spec" in result.output
    assert f"bucket 'ghost-bucket-{unique}' is not a source bucket" in result.output
    # AND the messages are still there
    assert len(_peek(sqs, url)) == 2 and len(_peek(sqs, dlq_url)) == 1
    # AND --no-buckets leaves the bucket DLQ alone
    result = _ferry("redrive", "--spec", spec_path, "--no-buckets")
    assert result.exit_code == 3 and "2 message(s) kept" in result.output and "ghost-bucket" not in result.output
    # AND a broken spec is a usage error (2), before anything is read
    (tmp_path / "bad.yaml").write_text("region: [unclosed\n", encoding="utf-8")
    assert _ferry("redrive", "--spec", str(tmp_path / "bad.yaml")).exit_code == 2


def test_converge_key_goes_round_again_when_a_live_write_races_it(
    ddb: Any, where: AwsTarget, emulator: Any, unique: str, tmp_path: Path
) -> None:
    # GIVEN a key at v2 in the source, and a live write of v3 that lands (source, then target via
    # the handler) just before the redrive's write of v2 reaches the target
    src, dst = f"src-{unique}", f"dst-{unique}"
    create_table(ddb, src)
    create_table(ddb, dst)
    _, spec = _write_spec(tmp_path, _table_spec(emulator, unique, [(src, dst)]))
    key = {"pk": {"S": "k"}}
    ddb.put_item(TableName=src, Item={**key, "v": {"N": "2"}})
    racing = make_client("dynamodb", where)
    races: list[dict[str, Any]] = []

    def live_write_first(params: dict[str, Any], **_: Any) -> None:
        if params.get("TableName") == dst and not races:
            v3 = {**key, "v": {"N": "3"}}
            ddb.put_item(TableName=src, Item=v3)
            ddb.put_item(TableName=dst, Item=v3)  # what the live handler does
            races.append(v3)

    racing.meta.events.register("before-parameter-build.dynamodb.PutItem", live_write_first)

    # WHEN the key is converged
    action = converge_key(racing, spec, TableMapping(src, dst), key)

    # THEN the stale v2 it wrote over the live v3 was noticed and replaced: the target holds v3
    assert action == "put" and races
    assert _item(ddb, dst, key) == {**key, "v": {"N": "3"}}

    # AND a source that never stops changing makes it give up after max_rounds, as retryable
    counter = iter(range(100, 10_000))

    def always_changing(params: dict[str, Any], **_: Any) -> None:
        if params.get("TableName") == dst:
            ddb.put_item(TableName=src, Item={**key, "v": {"N": str(next(counter))}})

    churning = make_client("dynamodb", where)
    churning.meta.events.register("before-parameter-build.dynamodb.PutItem", always_changing)
    with pytest.raises(RetryableError, match="did not converge in 3 rounds"):
        converge_key(churning, spec, TableMapping(src, dst), key, max_rounds=3)


# --- buckets ---------------------------------------------------------------------------------


def test_a_poison_bucket_event_ends_in_the_dlq_and_redrive_applies_it_after_the_fix(
    sqs: Any, where: AwsTarget, emulator: Any, unique: str, tmp_path: Path
) -> None:
    # GIVEN a bucket migration, initialised, whose target bucket was deleted afterwards
    s3 = make_client("s3", where)
    source, target = f"media-{unique}", f"media-v2-{unique}"
    s3.create_bucket(Bucket=source)
    body = {
        "region": "us-east-1",
        "endpoint_url": emulator.endpoint_url,
        "buckets": [{"source": source, "target": target, "protocol": "insert-only"}],
        "s3": {"events_queue": f"events-{unique}", "max_receive_count": 2, "visibility_timeout": 1},
    }
    spec_path, spec = _write_spec(tmp_path, body)
    _init(spec_path)
    s3.delete_bucket(Bucket=target)

    # WHEN an object is written to the source and live replication drains the events queue
    s3.put_object(Bucket=source, Key="poison key+1.txt", Body=b"payload", ContentType="text/plain", Metadata={"a": "1"})
    replication = _drain(spec)

    # THEN the event failed max_receive_count times and now sits in <events_queue>-dlq
    stats = [p.stats for p in replication.bucket_pollers]
    assert sum(s.succeeded for s in stats) == 0 and sum(s.failed for s in stats) >= 2
    dlq_url = _queue_url(sqs, f"events-{unique}-dlq")
    dead = _peek(sqs, dlq_url)
    assert dead and all(m["detail"]["object"]["key"] == "poison key+1.txt" for m in dead)
    assert _depth(sqs, _queue_url(sqs, f"events-{unique}")) == 0

    # WHEN the cause is fixed (init creates the missing target bucket again)
    _init(spec_path)
    # THEN verify shows the key missing
    report = verify_bucket(spec, spec.buckets[0])
    assert [(d.kind, d.key) for d in report.differences] == [("missing", "poison key+1.txt")]

    # WHEN `ferry redrive` runs
    result = _ferry("redrive", "--spec", spec_path)

    # THEN the event was re-applied by reconciling its key: verify passes and the DLQ is empty
    assert result.exit_code == 0, result.output
    assert f"{len(dead)} messages seen, {len(dead)} redriven, 0 kept" in result.output
    assert "copied 1" in result.output
    assert verify_bucket(spec, spec.buckets[0]).ok
    got = s3.get_object(Bucket=target, Key="poison key+1.txt")
    assert got["Body"].read() == b"payload" and got["Metadata"] == {"a": "1"}
    assert _depth(sqs, dlq_url) == 0
