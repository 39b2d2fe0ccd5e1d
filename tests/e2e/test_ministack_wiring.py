"""The real wiring, end to end, on ministack: its own event-source mappings invoke the deployed
``table_stream`` and ``bucket_events`` (no ferry poller anywhere) while a live table and bucket migrate.

moto runs no Lambda without Docker, so there ferry's pollers stand in for the mappings; ministack runs
the functions as local processes with its own interpreter (``.venv-ministack``: boto3, as AWS's runtime
provides it) and the deployment package ``chalice deploy`` built (Powertools, and the core from
``vendor/``). Failure paths (partial batch responses, bisect, finite retries, on-failure records) stay
tested against ferry's pollers: ministack's stream mapping does not follow AWS there (the last test
pins how).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ferry.clients import AwsTarget, make_client
from ferry.spec import Spec, parse_spec, spec_to_dict
from ferry.tables.state import StateStore
from ferry_dev.emulator import DUMMY_CREDENTIALS, MINISTACK, Emulator, ministack_python
from ferry_dev.phases import seed_sources, start_traffic
from ferry_dev.rehearsal import deploy_stage, run_ferry

REPO = Path(__file__).resolve().parents[2]
STAGE = "wired"
TABLE, TABLE_TARGET = "orders", "orders-v2"
BUCKET, BUCKET_TARGET = "media", "media-v2"
ITEMS, OBJECTS = 300, 120
APPLIED_WITHIN = 60.0  # seconds for the functions to apply everything once the traffic stops
STREAM_FUNCTION, BUCKET_FUNCTION = f"ferry-{STAGE}-table_stream", f"ferry-{STAGE}-bucket_events"
# Written before capture begins and untouched by the traffic: the copy carries them, and only a consumer
# can change them in the target once the copy has been released.
FIXED_KEYS = ("fixed#1", "fixed#2", "fixed#3")
FIXED_OBJECTS = ("fixed/1.bin", "fixed/2.bin")


def wiring_spec(endpoint: str) -> Spec:
    """One replay table and one replay bucket (the default protocol)."""
    return parse_spec(
        {
            "region": "us-east-1",
            "endpoint_url": endpoint,
            "tables": [{"source": TABLE, "target": TABLE_TARGET}],
            "buckets": [{"source": BUCKET, "target": BUCKET_TARGET}],
            "backfill": {"splits": 2},
            "replication": {"batch_size": 100, "phase_cache_seconds": 1.0, "max_retries": 3},
            "s3": {"splits": 2, "concurrency": 4, "visibility_timeout": 10},
        }
    )


def _key(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"N": "0"}}


def _wait(what: str, done: Callable[[], bool], seconds: float = APPLIED_WITHIN) -> float:
    started = time.monotonic()
    while not done():
        assert time.monotonic() - started < seconds, f"{what}: not within {seconds:.0f} s"
        time.sleep(0.25)
    return time.monotonic() - started


def _queue_arn(sqs: Any, name: str) -> str:
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def _queue_holds(sqs: Any, name: str) -> int:
    """Messages in the queue, visible or in flight."""
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes.get(n, 0)) for n in names)


def _body(s3: Any, bucket: str, key: str) -> bytes | None:
    try:
        return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


def _invocations(logs: Any, function: str) -> int:
    """START lines in the function's log group: ministack writes one per invocation, as AWS does."""
    count, kwargs = 0, {"logGroupName": f"/aws/lambda/{function}"}
    while True:
        page = logs.filter_log_events(**kwargs)
        count += sum(1 for e in page.get("events", []) if e.get("message", "").startswith("START"))
        if not page.get("nextToken") or not page.get("events"):
            return count
        kwargs["nextToken"] = page["nextToken"]


def _verify(spec_file: Path, endpoint: str, out: Path) -> tuple[int, list[dict[str, Any]]]:
    """``ferry verify`` as a user runs it: its exit code and its reports."""
    env = {**os.environ, **DUMMY_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1"}
    command = [sys.executable, "-m", "ferry_cli.main", "verify", "--spec", str(spec_file), "--json", str(out)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.exists(), done.stdout + done.stderr
    return done.returncode, list(json.loads(out.read_text(encoding="utf-8"))["reports"])


@pytest.mark.e2e
@pytest.mark.xdist_group("spark")
def test_the_emulators_own_mappings_migrate_a_live_table_and_bucket(tmp_path: Path) -> None:
    with Emulator(kind=MINISTACK, log_path=str(tmp_path / "ministack.log")) as emu:
        endpoint = emu.endpoint_url
        spec = wiring_spec(endpoint)
        spec_file = tmp_path / "ferry.yaml"
        spec_file.write_text(json.dumps(spec_to_dict(spec)), encoding="utf-8")  # JSON is YAML
        spec_args = ("--spec", str(spec_file))
        where = AwsTarget("us-east-1", endpoint)
        ddb, s3, sqs = make_client("dynamodb", where), make_client("s3", where), make_client("sqs", where)
        lam, logs = make_client("lambda", where), make_client("logs", where)

        # GIVEN the application's table and bucket with data (all ten types, one item near 400 KB; awkward
        # keys, metadata, tags, a multipart object), plus a few keys the traffic never touches
        seed_sources(where, spec, items=ITEMS, objects=OBJECTS, seed=12)
        for pk in FIXED_KEYS:
            ddb.put_item(TableName=TABLE, Item={**_key(pk), "v": {"N": "0"}})
        for name in FIXED_OBJECTS:
            s3.put_object(Bucket=BUCKET, Key=name, Body=b"seeded")

        # WHEN capture begins (`ferry init`: stream on, EventBridge to the queue, both held) and the
        # application keeps writing: puts, updates, deletes, re-inserts; creates, overwrites, deletes
        run_ferry("init", *spec_args, endpoint=endpoint)
        traffic = start_traffic(where, spec, items=ITEMS, objects=OBJECTS, seed=12, table_rate=25, object_rate=8)
        try:
            # ... ferry is deployed for real (`chalice deploy`, then `ferry wire`): the consumers are held
            deploy_stage(spec_file, STAGE, endpoint, tmp_path)
            stream_arn = ddb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
            assert lam.list_event_source_mappings(EventSourceArn=stream_arn)["EventSourceMappings"] == []
            events_queue = _queue_arn(sqs, spec.s3.events_queue)
            (held,) = lam.list_event_source_mappings(EventSourceArn=events_queue)["EventSourceMappings"]
            assert held["State"] == "Disabled" and held["FunctionArn"].endswith(f":function:{BUCKET_FUNCTION}")
            # ... and held they are: the changes so far wait in the stream and the queue, nothing reached a target
            assert _queue_holds(sqs, spec.s3.events_queue) > 0
            assert ddb.scan(TableName=TABLE_TARGET, Select="COUNT")["Count"] == 0
            assert s3.list_objects_v2(Bucket=BUCKET_TARGET).get("KeyCount", 0) == 0

            # ... the copy runs under the traffic (local engine: the Glue scripts on local Spark) and
            # releases each copy for the stage, as the Glue jobs do; `ferry release` finds them released
            copied = run_ferry("backfill", *spec_args, "--stage", STAGE, endpoint=endpoint)
            released = run_ferry("release", *spec_args, "--stage", STAGE, endpoint=endpoint)
            assert any("already released" in line for line in released), released
            for pk in FIXED_KEYS:
                assert ddb.get_item(TableName=TABLE_TARGET, Key=_key(pk), ConsistentRead=True).get("Item"), copied
            assert _body(s3, BUCKET_TARGET, FIXED_OBJECTS[0]) == b"seeded", copied

            # THEN the release created the table's stream mapping at TRIM_HORIZON with no maximum record
            # age, and enabled the queue's mapping `ferry wire` had created disabled
            (mapping,) = lam.list_event_source_mappings(EventSourceArn=stream_arn)["EventSourceMappings"]
            assert mapping["FunctionArn"].endswith(f":function:{STREAM_FUNCTION}")
            assert (mapping["StartingPosition"], mapping["MaximumRecordAgeInSeconds"]) == ("TRIM_HORIZON", -1)
            assert mapping["State"] == "Enabled"
            (opened,) = lam.list_event_source_mappings(EventSourceArn=events_queue)["EventSourceMappings"]
            assert (opened["UUID"], opened["State"]) == (held["UUID"], "Enabled")

            # WHEN, after the copy, the application changes keys the copy carried (only a consumer of the
            # stream or the queue can bring these to the targets now), and the traffic goes on a while
            ddb.delete_item(TableName=TABLE, Key=_key(FIXED_KEYS[0]))
            ddb.update_item(
                TableName=TABLE,
                Key=_key(FIXED_KEYS[1]),
                UpdateExpression="SET v = :v, b = :b",
                ExpressionAttributeValues={":v": {"N": "2"}, ":b": {"BS": [b"\x00", b"\xff"]}},
            )
            ddb.put_item(TableName=TABLE, Item={**_key("fixed#new"), "m": {"M": {"b": {"B": b"\x01\x02"}}}})
            s3.delete_object(Bucket=BUCKET, Key=FIXED_OBJECTS[0])
            s3.put_object(Bucket=BUCKET, Key=FIXED_OBJECTS[1], Body=b"after the release", Metadata={"v": "2"})
            s3.put_object(Bucket=BUCKET, Key="fixed/new.bin", Body=b"new")
            time.sleep(3)
        finally:
            operations = traffic.stop()

        # ... and once the traffic has stopped, a last change to each: applied last by the stream mapping
        # (one shard, in order); the bucket's events are all applied once the queue is empty
        ddb.put_item(TableName=TABLE, Item={**_key("sentinel"), "v": {"N": "1"}})
        s3.put_object(Bucket=BUCKET, Key="sentinel.bin", Body=b"last")
        _wait(
            "the sentinel item",
            lambda: "Item" in ddb.get_item(TableName=TABLE_TARGET, Key=_key("sentinel"), ConsistentRead=True),
        )
        _wait(
            "the events queue drained",
            lambda: (
                _body(s3, BUCKET_TARGET, "sentinel.bin") == b"last" and _queue_holds(sqs, spec.s3.events_queue) == 0
            ),
        )
        run_ferry("finalize", *spec_args, "--stage", STAGE, endpoint=endpoint)
        # (finalize --stage: the caught-up mapping skips records older than the spec's age from now on)
        (bounded,) = lam.list_event_source_mappings(EventSourceArn=stream_arn)["EventSourceMappings"]
        assert bounded["MaximumRecordAgeInSeconds"] == spec.replication.max_record_age_seconds
        code, reports = _verify(spec_file, endpoint, tmp_path / "verify.json")

        # THEN `ferry verify` finds no difference in the table or the bucket
        assert [(r["source"], r["counts"]) for r in reports if not r["ok"]] == [] and code == 0
        assert {r["source"] for r in reports} == {TABLE, BUCKET}
        assert all(r["source_items"] == r["target_items"] > 0 for r in reports), reports
        table_ops, object_ops = operations["table"], operations["bucket"]
        assert min(table_ops["put"], table_ops["update"], table_ops["delete"]) > 0, table_ops
        assert min(object_ops["overwrite"], object_ops["delete"]) > 0, object_ops
        # ... the changes made after the copy reached the targets
        assert "Item" not in ddb.get_item(TableName=TABLE_TARGET, Key=_key(FIXED_KEYS[0]), ConsistentRead=True)
        updated = ddb.get_item(TableName=TABLE_TARGET, Key=_key(FIXED_KEYS[1]), ConsistentRead=True)["Item"]
        assert updated["v"] == {"N": "2"} and updated["b"] == {"BS": [b"\x00", b"\xff"]}
        assert _body(s3, BUCKET_TARGET, FIXED_OBJECTS[0]) is None
        assert _body(s3, BUCKET_TARGET, FIXED_OBJECTS[1]) == b"after the release"
        assert s3.head_object(Bucket=BUCKET_TARGET, Key=FIXED_OBJECTS[1])["Metadata"] == {"v": "2"}
        # ... and the emulator's mappings applied them, through the deployed functions: both were invoked
        # (their log groups), every mapping's last batch succeeded, nothing was dead-lettered, and no local
        # poller read the stream (a poller checkpoints every shard it reads in the state table)
        assert _invocations(logs, STREAM_FUNCTION) > 0 and _invocations(logs, BUCKET_FUNCTION) > 0
        for arn in (stream_arn, events_queue):
            (m,) = lam.list_event_source_mappings(EventSourceArn=arn)["EventSourceMappings"]
            assert m.get("LastProcessingResult", "").startswith("OK"), m
        assert StateStore(ddb, spec.state_table).stream_checkpoints(TABLE) == []
        assert _queue_holds(sqs, spec.s3.events_queue + "-dlq") == 0
        assert _queue_holds(sqs, spec.replication.on_failure_queue) == 0

    # ... with what the deployment package carried: Powertools and the core (vendor/), not the runtime
    (package,) = (tmp_path / "chalice_app" / ".chalice" / "deployments").glob("*.zip")
    names = set(zipfile.ZipFile(package).namelist())
    assert {"app.py", "chalicelib/table_stream.py", "ferry/tables/replicate.py"} <= names
    assert "aws_lambda_powertools/__init__.py" in names
    assert not any(n.startswith(("boto3/", "botocore/")) for n in names)  # the runtime's, as on AWS
    runtime = subprocess.run(
        [ministack_python(), "-c", "import boto3, importlib.util as u; print(u.find_spec('aws_lambda_powertools'))"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert runtime.stdout.strip() == "None"  # ministack's interpreter has boto3 only


# --- ministack's stream mapping on failure (not AWS's behaviour; ferry's pollers keep testing these paths) ---

_COUNTING_HANDLER = """
import os
import boto3

ddb = boto3.client("dynamodb")


def handler(event, context):
    # counts each record's deliveries; reports every record as failed the first time it is delivered
    failures = []
    for record in event["Records"]:
        sequence = record["dynamodb"]["SequenceNumber"]
        done = ddb.update_item(
            TableName=os.environ["DELIVERIES"],
            Key={"seq": {"S": sequence}},
            UpdateExpression="ADD n :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        if done["Attributes"]["n"]["N"] == "1":
            failures.append({"itemIdentifier": sequence})
    return {"batchItemFailures": failures}
"""


@pytest.mark.functional
@pytest.mark.emulators(
    MINISTACK,
    reason="pins ministack's fault: its DynamoDB-stream mapping drops the records a function reports in "
    "batchItemFailures (AWS retries from the first of them)",
)
def test_ministack_stream_mapping_drops_the_records_a_partial_batch_response_reports(
    emulator: Emulator, unique: str
) -> None:
    """AWS (https://docs.aws.amazon.com/lambda/latest/dg/services-ddb-batchfailurereporting.html): with
    ReportBatchItemFailures, a response listing a record's sequence number makes Lambda retry the batch
    from that record; the shard moves on only past records not reported. ministack treats any response
    that is not a function error as a success: it moves past the reported record, which is never
    delivered again — a record lost, not retried. So a consumer that fails one record of a batch on
    ministack loses it: ferry's partial-batch path is tested against its own pollers, which follow AWS."""
    where = AwsTarget("us-east-1", emulator.endpoint_url)
    ddb, lam = make_client("dynamodb", where), make_client("lambda", where)
    source, deliveries = f"pbr-src-{unique}", f"pbr-deliveries-{unique}"
    ddb.create_table(
        TableName=source,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    ddb.create_table(
        TableName=deliveries,
        KeySchema=[{"AttributeName": "seq", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "seq", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("index.py", _COUNTING_HANDLER)
    function = f"pbr-{unique}"
    lam.create_function(
        FunctionName=function,
        Runtime="python3.11",
        Role="arn:aws:iam::000000000000:role/pbr",
        Handler="index.handler",
        Code={"ZipFile": code.getvalue()},
        Environment={"Variables": {"DELIVERIES": deliveries}},
        Timeout=30,
    )
    stream = ddb.describe_table(TableName=source)["Table"]["LatestStreamArn"]
    uuid = lam.create_event_source_mapping(
        EventSourceArn=stream,
        FunctionName=function,
        StartingPosition="TRIM_HORIZON",
        BatchSize=10,
        MaximumRetryAttempts=2,
        BisectBatchOnFunctionError=True,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )["UUID"]
    try:
        # GIVEN a record the function reports as failed on its first delivery
        ddb.put_item(TableName=source, Item={"pk": {"S": "first"}})

        def counts() -> dict[str, int]:
            return {i["seq"]["S"]: int(i["n"]["N"]) for i in ddb.scan(TableName=deliveries)["Items"]}

        _wait("the first delivery", lambda: len(counts()) == 1, seconds=30)
        # WHEN a later record follows on the same shard
        ddb.put_item(TableName=source, Item={"pk": {"S": "second"}})
        _wait("the second record's delivery", lambda: len(counts()) == 2, seconds=30)
        time.sleep(3)  # ministack's retry backoff is 1 s: a retry of the first would have come by now
        # THEN the second was delivered and the first never again (AWS: the first again, before or with
        # the second), and the mapping reports success
        assert sorted(counts().values()) == [1, 1], counts()
        assert lam.get_event_source_mapping(UUID=uuid)["LastProcessingResult"].startswith("OK")
    finally:
        lam.delete_event_source_mapping(UUID=uuid)
