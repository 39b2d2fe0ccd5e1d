"""The adapter's operations against the emulator: for each, the present case and the absent or
failing one, as AWS answers them. Where the emulator never gives the failing answer (a pinned copy
meeting a changed source on moto, trimmed stream records, a 403 bucket), it is injected with a botocore
hook on a client of the test's own, exactly as AWS would send it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ferry.aws import (
    bucket_encryption_or_none,
    copy_object_pinned,
    create_bucket_if_missing,
    create_table_if_missing,
    delete_item_if,
    describe_rule_or_none,
    describe_table_or_none,
    get_records,
    glue_job_or_none,
    head_bucket,
    head_object_or_none,
    list_objects_page,
    missing_table_raises,
    object_tags_or_none,
    public_access_block_or_none,
    put_item_if,
    queue_url_or_none,
    role_arn_or_create,
    shard_iterator,
    stream_arn_of,
    upload_part_copy_pinned,
)
from ferry.buckets.setup import inspect_buckets
from ferry.clients import AwsTarget, make_client
from ferry.errors import SetupError, ShardIteratorExpired, SourceChanged, StreamNotFound, StreamTrimmed
from ferry.spec import parse_spec
from ferry.tables.protocol import insert_only_condition, tombstone_for, tombstone_only_condition
from tests.aws_errors import client_error
from tests.conftest import create_table

pytestmark = pytest.mark.functional


def _inject(client: Any, event: str, code: str, status: int) -> None:
    """Make every ``event`` call of ``client`` answer the AWS error ``code`` / ``status``."""

    def fail(**_: Any) -> None:
        raise client_error(code, status, event.rsplit(".", 1)[-1])

    client.meta.events.register(f"before-call.{event}", fail)


@pytest.fixture(scope="module")
def s3(where: AwsTarget) -> Any:
    return make_client("s3", where)


def _bucket(s3: Any, unique: str, name: str = "b") -> str:
    bucket = f"{name}-{unique}"
    s3.create_bucket(Bucket=bucket)
    return bucket


# --- SQS -----------------------------------------------------------------------------------------


def test_queue_url_or_none(sqs: Any, unique: str) -> None:
    # GIVEN one queue WHEN both names are looked up THEN the URL, and None for the missing one
    url = sqs.create_queue(QueueName=f"q-{unique}")["QueueUrl"]
    assert queue_url_or_none(sqs, f"q-{unique}") == url
    assert queue_url_or_none(sqs, f"none-{unique}") is None


# --- DynamoDB ------------------------------------------------------------------------------------


def test_describe_table_or_none(ddb: Any, unique: str) -> None:
    create_table(ddb, f"t-{unique}")
    description = describe_table_or_none(ddb, f"t-{unique}")
    assert description is not None and description["TableName"] == f"t-{unique}"
    assert describe_table_or_none(ddb, f"none-{unique}") is None


def test_missing_table_raises(ddb: Any, unique: str) -> None:
    # GIVEN one table WHEN it and a missing one are read inside the block
    create_table(ddb, f"t-{unique}")
    with missing_table_raises(SetupError("unused")):
        assert "Item" not in ddb.get_item(TableName=f"t-{unique}", Key={"pk": {"S": "a"}})
    # THEN the missing table is the error asked for
    with (
        pytest.raises(SetupError, match="state table is gone"),
        missing_table_raises(SetupError("state table is gone")),
    ):
        ddb.get_item(TableName=f"none-{unique}", Key={"pk": {"S": "a"}})


def test_create_table_if_missing(ddb: Any, unique: str) -> None:
    definition = {
        "TableName": f"t-{unique}",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    # WHEN asked twice THEN created once, found the second time
    assert create_table_if_missing(ddb, definition) is True
    assert describe_table_or_none(ddb, f"t-{unique}") is not None
    assert create_table_if_missing(ddb, definition) is False


def test_put_item_if(ddb: Any, unique: str) -> None:
    table = f"t-{unique}"
    create_table(ddb, table)
    item = {"pk": {"S": "a"}, "v": {"N": "1"}}
    # WHEN an insert-only put is made twice THEN the first writes, the second finds the key taken
    written, response = put_item_if(ddb, table, item, insert_only_condition("pk"), consumed_capacity=True)
    assert written and response is not None and "ConsumedCapacity" in response
    assert put_item_if(ddb, table, {**item, "v": {"N": "2"}}, insert_only_condition("pk")) == (False, None)
    assert ddb.get_item(TableName=table, Key={"pk": {"S": "a"}})["Item"]["v"] == {"N": "1"}
    # AND any other failure is raised as it is
    with pytest.raises(ClientError, match="ResourceNotFound"):
        put_item_if(ddb, f"none-{unique}", item, insert_only_condition("pk"))


def test_delete_item_if(ddb: Any, unique: str) -> None:
    table = f"t-{unique}"
    create_table(ddb, table)
    ddb.put_item(TableName=table, Item=tombstone_for({"pk": {"S": "gone"}}))
    ddb.put_item(TableName=table, Item={"pk": {"S": "live"}})
    # WHEN both are deleted on the tombstone condition THEN only the tombstone goes
    assert delete_item_if(ddb, table, {"pk": {"S": "gone"}}, tombstone_only_condition()) is True
    assert delete_item_if(ddb, table, {"pk": {"S": "live"}}, tombstone_only_condition()) is False
    assert "Item" in ddb.get_item(TableName=table, Key={"pk": {"S": "live"}})
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "gone"}})


# --- DynamoDB Streams ----------------------------------------------------------------------------


def _stream(ddb: Any, streams: Any, unique: str) -> tuple[str, str]:
    create_table(ddb, f"s-{unique}", stream=True)
    ddb.put_item(TableName=f"s-{unique}", Item={"pk": {"S": "a"}})
    arn = stream_arn_of(ddb, f"s-{unique}")
    (shard,) = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    return arn, str(shard["ShardId"])


def test_shard_iterator_and_get_records(ddb: Any, streams: Any, unique: str) -> None:
    arn, shard_id = _stream(ddb, streams, unique)
    iterator = shard_iterator(streams, arn, shard_id, "TRIM_HORIZON")
    page = get_records(streams, iterator, 100)
    assert [r["dynamodb"]["Keys"] for r in page["Records"]] == [{"pk": {"S": "a"}}]


@pytest.mark.parametrize(
    ("code", "expected"), [("TrimmedDataAccessException", StreamTrimmed), ("ResourceNotFoundException", StreamNotFound)]
)
def test_shard_iterator_of_records_that_are_gone(
    ddb: Any, where: AwsTarget, unique: str, code: str, expected: type
) -> None:
    streams = make_client("dynamodbstreams", where)
    arn, shard_id = _stream(ddb, streams, unique)
    _inject(streams, "dynamodbstreams.GetShardIterator", code, 400)
    with pytest.raises(expected, match=code):
        shard_iterator(streams, arn, shard_id, "AT_SEQUENCE_NUMBER", "1" * 21)


def test_get_records_with_an_expired_iterator(ddb: Any, where: AwsTarget, unique: str) -> None:
    streams = make_client("dynamodbstreams", where)
    arn, shard_id = _stream(ddb, streams, unique)
    iterator = shard_iterator(streams, arn, shard_id, "TRIM_HORIZON")
    _inject(streams, "dynamodbstreams.GetRecords", "ExpiredIteratorException", 400)
    with pytest.raises(ShardIteratorExpired) as raised:
        get_records(streams, iterator, 100)
    assert raised.value.code == "ExpiredIteratorException"


def test_get_records_with_a_bad_iterator(where: AwsTarget, emulator_kind: str) -> None:
    # GIVEN a client without botocore retries, and an iterator that is no iterator
    streams = make_client("dynamodbstreams", where, max_attempts=0)
    # THEN it is an error answer, unless the caller counts that as an expired iterator
    with pytest.raises(ClientError) as raised:
        get_records(streams, "not-an-iterator", 10)
    if emulator_kind == "ministack":
        # as AWS documents input it cannot accept: 400 ValidationException (moto: 500, pinned below)
        assert raised.value.response["Error"]["Code"] == "ValidationException"
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ShardIteratorExpired):
        get_records(streams, "not-an-iterator", 10, server_error_expires=True)


@pytest.mark.emulators("moto", reason="pins moto's fault: a bad shard iterator is answered HTTP 500")
def test_moto_answers_a_bad_shard_iterator_with_a_server_error(where: AwsTarget) -> None:
    # AWS documents 400 ValidationException for a parameter it cannot accept (GetRecords lists no
    # error for a malformed iterator; 500 is its InternalServerError, a fault of its own); moto
    # answers 500. This fails the day moto answers like AWS: then drop the 5xx case of get_records.
    streams = make_client("dynamodbstreams", where, max_attempts=0)
    with pytest.raises(ClientError) as raised:
        streams.get_records(ShardIterator="not-an-iterator", Limit=10)
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500


# --- S3 ------------------------------------------------------------------------------------------


def test_head_bucket(s3: Any, unique: str) -> None:
    bucket = _bucket(s3, unique)
    assert head_bucket(s3, bucket) == (True, "us-east-1")
    assert head_bucket(s3, f"none-{unique}") == (False, None)


def test_head_bucket_of_a_bucket_owned_by_someone_else(where: AwsTarget, unique: str) -> None:
    s3 = make_client("s3", where)
    _inject(s3, "s3.HeadBucket", "403", 403)  # HEAD answers carry no body: the code is the status
    with pytest.raises(SetupError, match=rf"^buckets\[0\]\.target: bucket 'taken-{unique}' exists but is not"):
        head_bucket(s3, f"taken-{unique}", field="buckets[0].target")


def test_create_bucket_if_missing(s3: Any, unique: str) -> None:
    # WHEN asked twice (outside us-east-1, where S3 answers an owned bucket's second create with an error)
    assert create_bucket_if_missing(s3, f"new-{unique}", "eu-west-1") is True
    assert head_bucket(s3, f"new-{unique}")[0]
    # THEN the second time it is already ours
    assert create_bucket_if_missing(s3, f"new-{unique}", "eu-west-1") is False


def test_bucket_encryption_or_none(s3: Any, where: AwsTarget, unique: str) -> None:
    # GIVEN a bucket encrypted with a KMS key THEN its configuration reads back as it was put
    bucket = _bucket(s3, unique)
    by_default = {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/ferry-test"}
    s3.put_bucket_encryption(
        Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": by_default}]}
    )
    config = bucket_encryption_or_none(s3, bucket)
    assert config is not None and config["Rules"][0]["ApplyServerSideEncryptionByDefault"] == by_default
    # AND a bucket without one (an answer AWS gave before 2023, when every bucket got SSE-S3) is None
    unencrypted = make_client("s3", where)
    _inject(unencrypted, "s3.GetBucketEncryption", "ServerSideEncryptionConfigurationNotFoundError", 404)
    assert bucket_encryption_or_none(unencrypted, bucket) is None


@pytest.mark.emulators("ministack", reason="moto reports no configuration for a new bucket (pinned below)")
def test_a_new_bucket_is_encrypted_with_s3_managed_keys(s3: Any, unique: str) -> None:
    """AWS: "By default, all buckets have a default encryption configuration that uses server-side
    encryption with Amazon S3 managed keys (SSE-S3)"
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketEncryption.html)."""
    config = bucket_encryption_or_none(s3, _bucket(s3, unique))
    assert config is not None and config["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


@pytest.mark.emulators("moto", reason="pins moto's fault; ministack reports SSE-S3 as AWS does")
def test_the_emulator_reports_no_encryption_for_a_new_bucket(s3: Any, unique: str) -> None:
    """An emulator fault, pinned: moto answers GetBucketEncryption on a new bucket with
    ServerSideEncryptionConfigurationNotFoundError; since January 2023 AWS gives every bucket SSE-S3 and
    reports it (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketEncryption.html,
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingServerSideEncryption.html)."""
    assert bucket_encryption_or_none(s3, _bucket(s3, unique)) is None


def test_public_access_block_or_none(s3: Any, unique: str) -> None:
    bucket = _bucket(s3, unique)
    assert public_access_block_or_none(s3, bucket) is None
    block = {
        name: True for name in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
    }
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=block)
    assert public_access_block_or_none(s3, bucket) == block


def test_head_object_or_none_and_object_tags_or_none(s3: Any, unique: str) -> None:
    bucket = _bucket(s3, unique)
    s3.put_object(Bucket=bucket, Key="k", Body=b"body", Tagging="a=1")
    head = head_object_or_none(s3, bucket, "k")
    assert head is not None and head["ContentLength"] == 4
    assert object_tags_or_none(s3, bucket, "k") == [{"Key": "a", "Value": "1"}]
    assert head_object_or_none(s3, bucket, "none") is None
    assert object_tags_or_none(s3, bucket, "none") is None


def test_list_objects_page(s3: Any, unique: str) -> None:
    bucket = _bucket(s3, unique)
    for key in ("p/1", "p/2", "q/3"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    page = list_objects_page(s3, bucket, "p/")
    assert [entry["Key"] for entry in page["Contents"]] == ["p/1", "p/2"]
    with pytest.raises(SetupError, match=f"bucket 'none-{unique}' does not exist"):
        list_objects_page(s3, f"none-{unique}")


def test_copy_object_pinned(s3: Any, unique: str) -> None:
    source, target = _bucket(s3, unique, "src"), _bucket(s3, unique, "dst")
    etag = s3.put_object(Bucket=source, Key="k", Body=b"v1")["ETag"]
    # WHEN copied pinned to the ETag just read THEN the copy lands
    copy_object_pinned(s3, source_bucket=source, bucket=target, key="k", etag=etag, MetadataDirective="COPY")
    assert s3.get_object(Bucket=target, Key="k")["Body"].read() == b"v1"
    # WHEN the source is gone THEN SourceChanged (the round is lost, not the key)
    with pytest.raises(SourceChanged, match="NoSuchKey"):
        copy_object_pinned(s3, source_bucket=source, bucket=target, key="none", etag=etag)


def _refuse_pins_on_moto(client: Any, operation: str, emulator_kind: str) -> None:
    """ministack answers a copy pinned to an overwritten version 412 itself, as S3 does; moto ignores
    CopySourceIfMatch (pinned by test_moto_ignores_copy_source_if_match in test_reconcile.py), so there
    S3's answer is injected."""
    if emulator_kind == "moto":
        _inject(client, f"s3.{operation}", "PreconditionFailed", 412)


def test_copy_object_pinned_to_a_version_overwritten_meanwhile(
    where: AwsTarget, s3: Any, unique: str, emulator_kind: str
) -> None:
    source, target = _bucket(s3, unique, "src"), _bucket(s3, unique, "dst")
    etag = s3.put_object(Bucket=source, Key="k", Body=b"v1")["ETag"]
    s3.put_object(Bucket=source, Key="k", Body=b"v2, newer")
    copier = make_client("s3", where)
    _refuse_pins_on_moto(copier, "CopyObject", emulator_kind)
    with pytest.raises(SourceChanged, match="PreconditionFailed"):
        copy_object_pinned(copier, source_bucket=source, bucket=target, key="k", etag=etag)
    assert "Contents" not in s3.list_objects_v2(Bucket=target)


def _upload(s3: Any, bucket: str) -> str:
    return str(s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"])


def test_upload_part_copy_pinned(s3: Any, where: AwsTarget, unique: str, emulator_kind: str) -> None:
    source, target = _bucket(s3, unique, "src"), _bucket(s3, unique, "dst")
    etag = s3.put_object(Bucket=source, Key="k", Body=b"0123456789")["ETag"]
    upload_id = _upload(s3, target)

    def copy(client: Any) -> Any:
        return upload_part_copy_pinned(
            client,
            source_bucket=source,
            bucket=target,
            key="k",
            etag=etag,
            upload_id=upload_id,
            part_number=1,
            byte_range="bytes=0-9",
        )

    part = copy(s3)["CopyPartResult"]["ETag"]
    s3.complete_multipart_upload(
        Bucket=target, Key="k", UploadId=upload_id, MultipartUpload={"Parts": [{"ETag": part, "PartNumber": 1}]}
    )
    assert s3.get_object(Bucket=target, Key="k")["Body"].read() == b"0123456789"
    # AND a part copy refused because the source moved is SourceChanged
    s3.put_object(Bucket=source, Key="k", Body=b"9876543210")
    upload_id = _upload(s3, target)
    copier = make_client("s3", where)
    _refuse_pins_on_moto(copier, "UploadPartCopy", emulator_kind)
    with pytest.raises(SourceChanged, match="PreconditionFailed"):
        copy(copier)


# --- EventBridge, Glue, IAM ----------------------------------------------------------------------


def test_describe_rule_or_none(where: AwsTarget, unique: str) -> None:
    events = make_client("events", where)
    events.put_rule(Name=f"r-{unique}", EventPattern=json.dumps({"source": ["aws.s3"]}), State="ENABLED")
    rule = describe_rule_or_none(events, f"r-{unique}")
    assert rule is not None and rule["Name"] == f"r-{unique}" and rule["State"] == "ENABLED"
    assert describe_rule_or_none(events, f"none-{unique}") is None


def test_glue_job_or_none(where: AwsTarget, unique: str) -> None:
    glue, iam = make_client("glue", where), make_client("iam", where)
    role = role_arn_or_create(iam, f"glue-{unique}", json.dumps({"Version": "2012-10-17", "Statement": []}))
    glue.create_job(Name=f"j-{unique}", Role=role, Command={"Name": "glueetl", "ScriptLocation": "s3://x/y.py"})
    job = glue_job_or_none(glue, f"j-{unique}")
    assert job is not None and job["Name"] == f"j-{unique}"
    assert glue_job_or_none(glue, f"none-{unique}") is None


def test_role_arn_or_create(where: AwsTarget, unique: str) -> None:
    iam = make_client("iam", where)
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    # WHEN asked twice THEN created once, and the same ARN read the second time
    created = role_arn_or_create(iam, f"r-{unique}", trust)
    assert created.endswith(f":role/r-{unique}")
    assert role_arn_or_create(iam, f"r-{unique}", trust) == created
    assert iam.get_role(RoleName=f"r-{unique}")["Role"]["Arn"] == created


# --- inspect_buckets(require_targets) ------------------------------------------------------------


def _bucket_spec(where: AwsTarget, source: str, target: str) -> Any:
    return parse_spec(
        {
            "region": where.region,
            "endpoint_url": where.endpoint_url,
            "buckets": [{"source": source, "target": target}],
        }
    )


def test_inspect_buckets_requires_the_targets_when_asked(s3: Any, where: AwsTarget, unique: str) -> None:
    # GIVEN a source bucket whose target does not exist yet
    source, target = _bucket(s3, unique, "src"), f"dst-{unique}"
    spec = _bucket_spec(where, source, target)
    # WHEN inspected without requiring targets THEN the check says it is missing
    (check,) = inspect_buckets(spec, s3)
    assert not check.target_exists
    # WHEN targets are required THEN a SetupError names the field and says to run `ferry init`
    with pytest.raises(SetupError, match=r"^buckets\[0\]\.target: bucket 'dst-.*' does not exist; run `ferry init`"):
        inspect_buckets(spec, s3, require_targets=True)
    # AND once it exists, the same inspection passes
    s3.create_bucket(Bucket=target)
    (check,) = inspect_buckets(spec, s3, require_targets=True)
    assert check.target_exists
