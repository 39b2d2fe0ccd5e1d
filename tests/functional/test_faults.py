"""The fault-injecting proxy between boto3 clients and the emulator.

GIVEN a FaultProxy in front of the emulator, WHEN ferry's clients talk through it, THEN without
rules it is invisible (every service, 12 MB bodies, multipart copies), every request is named
``service:Operation``, and each fault kind reaches botocore as the real service's error would:
counted, reproducible for a seed, and (except where noted) recognised by ``is_transient``.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError

from ferry.aws import error_code, is_transient
from ferry.clients import AwsTarget, make_client
from ferry_dev.emulator import Emulator
from ferry_dev.faults import FaultProxy, FaultRule, identify_operation
from tests.conftest import REGION, create_table, scan_all

pytestmark = pytest.mark.functional

MB = 1024 * 1024
# botocore reads Config(retries={"max_attempts": n}) as n *retries* (total_max_attempts = n + 1),
# so make_client(max_attempts=1) makes two attempts; 0 is the one that shows the raw fault.
NO_RETRIES = 0


@pytest.fixture
def proxy(emulator: Emulator) -> Iterator[FaultProxy]:
    with FaultProxy(emulator.endpoint_url, seed=0) as p:
        yield p


def via(proxy: FaultProxy, service: str, *, max_attempts: int = 10) -> Any:
    return make_client(service, AwsTarget(REGION, proxy.endpoint_url), max_attempts=max_attempts)


def item(pk: str, **attrs: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, **{k: {"S": v} for k, v in attrs.items()}}


# --------------------------------------------------------------------------- pass-through


def test_dynamodb_put_get_scan_pass_through(proxy: FaultProxy, unique: str) -> None:
    ddb = via(proxy, "dynamodb")
    table = f"faults-{unique}"
    create_table(ddb, table)

    for i in range(5):
        ddb.put_item(TableName=table, Item=item(f"k{i}", v=f"v{i}"))
    got = ddb.get_item(TableName=table, Key={"pk": {"S": "k3"}}, ConsistentRead=True)

    assert got["Item"] == item("k3", v="v3")
    assert sorted(i["pk"]["S"] for i in scan_all(ddb, table)) == [f"k{i}" for i in range(5)]
    requests = proxy.requests()
    assert requests["dynamodb:PutItem"] == 5
    assert requests["dynamodb:GetItem"] == 1
    assert requests["dynamodb:Scan"] >= 1
    assert requests["dynamodb:CreateTable"] == 1
    assert requests["dynamodb:DescribeTable"] >= 1
    assert proxy.injected() == {}


def test_dynamodb_streams_pass_through(proxy: FaultProxy, unique: str) -> None:
    ddb, streams = via(proxy, "dynamodb"), via(proxy, "dynamodbstreams")
    table = f"faults-{unique}"
    create_table(ddb, table, stream=True)
    ddb.put_item(TableName=table, Item=item("a", v="1"))

    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]

    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in records] == ["a"]
    requests = proxy.requests()
    for name in ("DescribeStream", "GetShardIterator", "GetRecords"):
        assert requests[f"dynamodbstreams:{name}"] == 1


def test_sqs_send_receive_pass_through(proxy: FaultProxy, unique: str) -> None:
    sqs = via(proxy, "sqs")
    url = sqs.create_queue(QueueName=f"faults-{unique}")["QueueUrl"]

    sqs.send_message(QueueUrl=url, MessageBody="hello")
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=0)["Messages"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])

    assert [m["Body"] for m in got] == ["hello"]
    requests = proxy.requests()
    for name in ("CreateQueue", "SendMessage", "ReceiveMessage", "DeleteMessage"):
        assert requests[f"sqs:{name}"] == 1


def test_s3_large_object_multipart_copy_and_tagging_pass_through_with_their_names(
    proxy: FaultProxy, unique: str
) -> None:
    s3 = via(proxy, "s3")
    bucket = f"faults-{unique}"
    big = os.urandom(12 * MB)
    part1 = os.urandom(5 * MB)

    s3.create_bucket(Bucket=bucket)
    s3.head_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="dir/big", Body=big)
    got = s3.get_object(Bucket=bucket, Key="dir/big")["Body"].read()
    head = s3.head_object(Bucket=bucket, Key="dir/big")
    s3.put_object_tagging(Bucket=bucket, Key="dir/big", Tagging={"TagSet": [{"Key": "t", "Value": "1"}]})
    tags = s3.get_object_tagging(Bucket=bucket, Key="dir/big")["TagSet"]
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "dir/big"})
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]

    upload = s3.create_multipart_upload(Bucket=bucket, Key="assembled")["UploadId"]
    etag1 = s3.upload_part(Bucket=bucket, Key="assembled", UploadId=upload, PartNumber=1, Body=part1)["ETag"]
    etag2 = s3.upload_part_copy(
        Bucket=bucket,
        Key="assembled",
        UploadId=upload,
        PartNumber=2,
        CopySource={"Bucket": bucket, "Key": "dir/big"},
        CopySourceRange="bytes=0-1048575",
    )["CopyPartResult"]["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="assembled",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag1}, {"PartNumber": 2, "ETag": etag2}]},
    )
    assembled = s3.get_object(Bucket=bucket, Key="assembled")["Body"].read()
    abandoned = s3.create_multipart_upload(Bucket=bucket, Key="abandoned")["UploadId"]
    s3.abort_multipart_upload(Bucket=bucket, Key="abandoned", UploadId=abandoned)
    s3.delete_object(Bucket=bucket, Key="copy")

    assert hashlib.sha256(got).digest() == hashlib.sha256(big).digest()
    assert head["ContentLength"] == len(big)
    assert tags == [{"Key": "t", "Value": "1"}]
    assert sorted(o["Key"] for o in listed) == ["copy", "dir/big"]
    assert assembled == part1 + big[:MB]
    names = {
        "CreateBucket",
        "HeadBucket",
        "PutObject",
        "GetObject",
        "HeadObject",
        "PutObjectTagging",
        "GetObjectTagging",
        "CopyObject",
        "ListObjectsV2",
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPartCopy",
        "CompleteMultipartUpload",
        "AbortMultipartUpload",
        "DeleteObject",
    }
    requests = proxy.requests()
    assert {f"s3:{n}" for n in names} <= set(requests), sorted(requests)
    assert all(key.startswith("s3:") for key in requests)
    assert requests["s3:GetObject"] == 2
    assert requests["s3:CreateMultipartUpload"] == 2


def test_bucket_level_calls_and_other_services_are_named(proxy: FaultProxy, unique: str) -> None:
    s3, sqs, events = via(proxy, "s3"), via(proxy, "sqs"), via(proxy, "events")
    bucket = f"faults-{unique}"
    s3.create_bucket(Bucket=bucket)
    queue_url = sqs.create_queue(QueueName=f"faults-{unique}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    events.list_event_buses()

    requests = proxy.requests()
    assert {
        "s3:PutBucketNotificationConfiguration",
        "s3:PutBucketVersioning",
        "events:ListEventBuses",
        "sqs:GetQueueAttributes",
    } <= set(requests)


def test_a_chunked_request_body_is_forwarded_whole(proxy: FaultProxy, unique: str) -> None:
    s3 = via(proxy, "s3")
    bucket = f"faults-{unique}"
    s3.create_bucket(Bucket=bucket)
    pieces = [os.urandom(300_000) for _ in range(4)]

    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    connection.request(
        "PUT",
        f"/{bucket}/chunked",
        body=iter(pieces),
        headers={"Authorization": f"AWS4-HMAC-SHA256 Credential=testing/20250101/{REGION}/s3/aws4_request"},
        encode_chunked=True,
    )
    status = connection.getresponse()
    status.read()
    connection.close()

    assert status.status == 200
    assert s3.get_object(Bucket=bucket, Key="chunked")["Body"].read() == b"".join(pieces)
    assert proxy.requests()["s3:PutObject"] == 1


HEALTH_PATHS = {"moto": "/moto-api/", "ministack": "/_ministack/health"}  # a GET each answers 200 with a body


def test_client_connections_are_kept_alive(proxy: FaultProxy, emulator: Emulator) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    answers = []
    sockets = []
    for _ in range(3):
        connection.request("GET", HEALTH_PATHS[emulator.kind])
        response = connection.getresponse()
        answers.append((response.status, len(response.read()) > 0))
        sockets.append(connection.sock)
    connection.close()

    assert answers == [(200, True)] * 3
    assert sockets[0] is not None and all(s is sockets[0] for s in sockets)
    assert proxy.requests() == {"other:GET": 3}


def test_the_operation_of_a_request_is_named_from_target_scope_and_shape() -> None:
    scope = {"Authorization": "AWS4-HMAC-SHA256 Credential=k/20250101/us-east-1/s3/aws4_request, SignedHeaders=host"}
    iam = {
        "Authorization": "AWS4-HMAC-SHA256 Credential=k/20250101/us-east-1/iam/aws4_request, SignedHeaders=host",
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
    }
    cases = [
        ("POST", "/", {"X-Amz-Target": "DynamoDB_20120810.PutItem"}, "dynamodb:PutItem"),
        ("POST", "/", {"X-Amz-Target": "DynamoDBStreams_20120810.GetRecords"}, "dynamodbstreams:GetRecords"),
        ("POST", "/", {"X-Amz-Target": "AmazonSQS.ReceiveMessage"}, "sqs:ReceiveMessage"),
        ("POST", "/", {"X-Amz-Target": "AWSGlue.CreateJob"}, "glue:CreateJob"),
        ("GET", "/b?list-type=2&prefix=a", scope, "s3:ListObjectsV2"),
        ("GET", "/b/k?tagging", scope, "s3:GetObjectTagging"),
        ("PUT", "/b/k?tagging", scope, "s3:PutObjectTagging"),
        ("PUT", "/b/k?partNumber=2&uploadId=u", {**scope, "x-amz-copy-source": "a/b"}, "s3:UploadPartCopy"),
        ("PUT", "/b/k", {**scope, "x-amz-copy-source": "a/b"}, "s3:CopyObject"),
        ("PUT", "/b/k?partNumber=1&uploadId=u", scope, "s3:UploadPart"),
        ("POST", "/b/k?uploads", scope, "s3:CreateMultipartUpload"),
        ("POST", "/b/k?uploadId=u", scope, "s3:CompleteMultipartUpload"),
        ("DELETE", "/b/k?uploadId=u", scope, "s3:AbortMultipartUpload"),
        ("DELETE", "/b/k", scope, "s3:DeleteObject"),
        ("GET", "/b/a/b%2Fc", scope, "s3:GetObject"),
        ("PUT", "/b/k", scope, "s3:PutObject"),
        ("HEAD", "/b/k", scope, "s3:HeadObject"),
        ("HEAD", "/b", scope, "s3:HeadBucket"),
        ("PUT", "/b", scope, "s3:CreateBucket"),
        ("PUT", "/b?notification", scope, "s3:PutBucketNotificationConfiguration"),
        ("POST", "/b?delete", scope, "s3:DeleteObjects"),
        ("GET", "/", scope, "s3:ListBuckets"),
        ("GET", "/moto-api/", {}, "other:GET"),
        ("GET", "/_ministack/health", {}, "other:GET"),
        ("GET", "/bucket/key", {}, "s3:GetObject"),
    ]
    for method, target, headers, expected in cases:
        assert identify_operation(method, target, headers) == expected, (method, target)
    assert identify_operation("POST", "/", iam, b"Action=CreateRole&Version=2010-05-08") == "iam:CreateRole"


def test_rules_are_validated_and_matched_by_service_and_operation() -> None:
    assert FaultRule("*", "throttle", 1).matches("s3:GetObject")
    assert FaultRule("dynamodb:*", "throttle", 1).matches("dynamodb:PutItem")
    assert not FaultRule("dynamodb:*", "throttle", 1).matches("dynamodbstreams:GetRecords")
    assert not FaultRule("s3:CopyObject", "throttle", 1).matches("s3:PutObject")
    for bad, field in [
        (lambda: FaultRule("*", "explode", 1), "kind"),
        (lambda: FaultRule("*", "throttle", 1.5), "rate"),
        (lambda: FaultRule("*", "latency", 1, -1), "latency_seconds"),
        (lambda: FaultRule("PutItem", "throttle", 1), "operation"),
    ]:
        with pytest.raises(ValueError, match=f"FaultRule.{field}"):
            bad()


# --------------------------------------------------------------------------- faults


@pytest.fixture(scope="module")
def resources(emulator: Emulator, where: AwsTarget) -> dict[str, str]:
    """A table with a stream, a queue and a bucket, each holding one item, created directly and
    only read by the tests that fault calls on them."""
    ddb, sqs, s3 = make_client("dynamodb", where), make_client("sqs", where), make_client("s3", where)
    table = f"faults-{uuid.uuid4().hex[:10]}"
    create_table(ddb, table, stream=True)
    ddb.put_item(TableName=table, Item=item("a", v="1"))
    queue_url = sqs.create_queue(QueueName=table)["QueueUrl"]
    s3.create_bucket(Bucket=table)
    s3.put_object(Bucket=table, Key="k", Body=b"body")
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    return {"table": table, "queue_url": queue_url, "bucket": table, "stream_arn": arn}


Call = Callable[[FaultProxy, dict[str, str]], Any]


def _get_item(p: FaultProxy, r: dict[str, str]) -> Any:
    return via(p, "dynamodb", max_attempts=NO_RETRIES).get_item(TableName=r["table"], Key={"pk": {"S": "a"}})


def _describe_stream(p: FaultProxy, r: dict[str, str]) -> Any:
    return via(p, "dynamodbstreams", max_attempts=NO_RETRIES).describe_stream(StreamArn=r["stream_arn"])


def _receive(p: FaultProxy, r: dict[str, str]) -> Any:
    return via(p, "sqs", max_attempts=NO_RETRIES).receive_message(QueueUrl=r["queue_url"], WaitTimeSeconds=0)


def _get_object(p: FaultProxy, r: dict[str, str]) -> Any:
    return via(p, "s3", max_attempts=NO_RETRIES).get_object(Bucket=r["bucket"], Key="k")["Body"].read()


def _head_object(p: FaultProxy, r: dict[str, str]) -> Any:
    return via(p, "s3", max_attempts=NO_RETRIES).head_object(Bucket=r["bucket"], Key="k")


CALLS: dict[str, tuple[str, Call]] = {
    "dynamodb": ("dynamodb:GetItem", _get_item),
    "dynamodbstreams": ("dynamodbstreams:DescribeStream", _describe_stream),
    "sqs": ("sqs:ReceiveMessage", _receive),
    "s3": ("s3:GetObject", _get_object),
    "s3-head": ("s3:HeadObject", _head_object),
}
ERRORS = [
    ("dynamodb", "throttle", "ProvisionedThroughputExceededException", 400),
    ("dynamodb", "error500", "InternalServerError", 500),
    ("dynamodbstreams", "throttle", "LimitExceededException", 400),
    ("dynamodbstreams", "error500", "InternalServerError", 500),
    ("sqs", "throttle", "RequestThrottled", 400),
    ("sqs", "error500", "InternalFailure", 500),
    ("s3", "throttle", "SlowDown", 503),
    ("s3", "error500", "InternalError", 500),
    ("s3-head", "throttle", "503", 503),  # a HEAD error has no body: botocore names it by status
    ("s3-head", "error500", "500", 500),
]


@pytest.mark.parametrize(("call", "kind", "code", "status"), ERRORS)
def test_error_faults_answer_with_the_services_own_error(
    proxy: FaultProxy, resources: dict[str, str], call: str, kind: str, code: str, status: int
) -> None:
    operation, run = CALLS[call]
    run(proxy, resources)  # without rules: passes
    proxy.set_rules([FaultRule(operation, kind, 1.0)])

    with pytest.raises(ClientError) as raised:
        run(proxy, resources)

    assert error_code(raised.value) == code
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert proxy.injected() == {f"{operation}:{kind}": 1}
    assert proxy.requests()[operation] == 2
    proxy.set_rules([])
    run(proxy, resources)  # and passes again


@pytest.mark.parametrize("kind", ["reset_before", "reset_after"])
@pytest.mark.parametrize("call", ["dynamodb", "sqs", "s3"])
def test_reset_faults_drop_the_connection(proxy: FaultProxy, resources: dict[str, str], call: str, kind: str) -> None:
    operation, run = CALLS[call]
    proxy.set_rules([FaultRule(operation, kind, 1.0)])

    with pytest.raises(ConnectionClosedError) as raised:
        run(proxy, resources)

    assert "Connection reset by peer" in repr(raised.value.kwargs["error"])  # RST, not a polite FIN
    assert proxy.injected() == {f"{operation}:{kind}": 1}


@pytest.mark.parametrize(
    ("call", "kind"),
    [
        (call, kind)
        for call, kind in [
            *((c, k) for c, k, _, _ in ERRORS),
            ("dynamodb", "reset_before"),
            ("dynamodb", "reset_after"),
        ]
    ],
)
def test_every_injected_fault_is_transient_for_ferry(
    proxy: FaultProxy, resources: dict[str, str], call: str, kind: str
) -> None:
    operation, run = CALLS[call]
    proxy.set_rules([FaultRule(operation, kind, 1.0)])

    with pytest.raises((ClientError, ConnectionClosedError)) as raised:
        run(proxy, resources)

    assert is_transient(raised.value)


def test_latency_delays_then_forwards(proxy: FaultProxy, resources: dict[str, str]) -> None:
    proxy.set_rules([FaultRule("dynamodb:GetItem", "latency", 1.0, latency_seconds=0.4)])

    started = time.monotonic()
    got = _get_item(proxy, resources)
    elapsed = time.monotonic() - started

    assert got["Item"] == item("a", v="1")
    assert elapsed >= 0.4
    assert proxy.injected() == {"dynamodb:GetItem:latency": 1}


def test_standard_retries_ride_out_a_30_percent_throttle(proxy: FaultProxy, ddb: Any, unique: str) -> None:
    table = f"faults-{unique}"
    create_table(ddb, table)
    proxy.set_rules([FaultRule("dynamodb:PutItem", "throttle", 0.3)])
    through_proxy = via(proxy, "dynamodb")  # botocore standard mode, make_client's default retries

    def put(i: int) -> None:
        through_proxy.put_item(TableName=table, Item=item(f"k{i:03}", v=str(i)))

    # botocore's throttle backoff is rand × 1 s, 2 s, 4 s… (cap 20 s): ~100 s one put at a time. The
    # seed fixes the whole decision sequence (200 successes always cost the same number of throttles,
    # whatever the threads do); seed 0's sequence has no long run of throttles near its end, so no
    # straggling put backs off for tens of seconds (seed 7's does: ~40 s).
    with ThreadPoolExecutor(max_workers=25) as pool:
        list(pool.map(put, range(200)))

    assert sorted(i["pk"]["S"] for i in scan_all(ddb, table)) == [f"k{i:03}" for i in range(200)]
    throttled = proxy.injected()["dynamodb:PutItem:throttle"]
    assert 20 < throttled < 200
    assert proxy.requests()["dynamodb:PutItem"] == 200 + throttled


def test_reset_after_writes_the_item_though_the_client_saw_an_error(proxy: FaultProxy, ddb: Any, unique: str) -> None:
    table = f"faults-{unique}"
    create_table(ddb, table)
    proxy.set_rules([FaultRule("dynamodb:PutItem", "reset_after", 1.0)])

    with pytest.raises(ConnectionClosedError):
        via(proxy, "dynamodb", max_attempts=NO_RETRIES).put_item(TableName=table, Item=item("ghost", v="1"))

    assert ddb.get_item(TableName=table, Key={"pk": {"S": "ghost"}}, ConsistentRead=True)["Item"] == item(
        "ghost", v="1"
    )
    assert proxy.injected() == {"dynamodb:PutItem:reset_after": 1}


def test_reset_before_never_reaches_the_emulator(proxy: FaultProxy, ddb: Any, unique: str) -> None:
    table = f"faults-{unique}"
    create_table(ddb, table)
    proxy.set_rules([FaultRule("dynamodb:PutItem", "reset_before", 1.0)])

    with pytest.raises(ConnectionClosedError):
        via(proxy, "dynamodb", max_attempts=NO_RETRIES).put_item(TableName=table, Item=item("never", v="1"))

    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "never"}}, ConsistentRead=True)


def _outcomes(emulator: Emulator, resources: dict[str, str], seed: int) -> list[str]:
    rules = [
        FaultRule("dynamodb:GetItem", "throttle", 0.3),
        FaultRule("dynamodb:*", "error500", 0.2),
        FaultRule("*", "latency", 0.5, latency_seconds=0.0),
    ]
    outcomes = []
    with FaultProxy(emulator.endpoint_url, rules, seed=seed) as p:
        ddb = via(p, "dynamodb", max_attempts=NO_RETRIES)
        for _ in range(40):
            try:
                ddb.get_item(TableName=resources["table"], Key={"pk": {"S": "a"}})
                outcomes.append("ok")
            except ClientError as exc:
                outcomes.append(error_code(exc))
        assert sum(p.injected().values()) > 0
    return outcomes


def test_the_same_seed_gives_the_same_decisions(emulator: Emulator, resources: dict[str, str]) -> None:
    first, again, other = (_outcomes(emulator, resources, seed) for seed in (11, 11, 12))

    assert first == again
    assert first != other
    assert {"ok", "ProvisionedThroughputExceededException", "InternalServerError"} == set(first)


def test_the_proxy_listens_on_127_0_0_1_only(proxy: FaultProxy) -> None:
    url = urlsplit(proxy.endpoint_url)
    assert url.hostname == "127.0.0.1"
    assert url.port == proxy.port

    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5):
        pass
    with pytest.raises(ConnectionRefusedError):  # another loopback address, same port: nobody there
        socket.create_connection(("127.0.0.2", proxy.port), timeout=5).close()


def test_stop_closes_idle_keep_alive_connections(emulator: Emulator) -> None:
    proxy = FaultProxy(emulator.endpoint_url).start()
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    connection.request("GET", HEALTH_PATHS[emulator.kind])
    connection.getresponse().read()

    started = time.monotonic()
    proxy.stop()

    assert time.monotonic() - started < 3
    assert connection.sock is not None and connection.sock.recv(1) == b""
    connection.close()
