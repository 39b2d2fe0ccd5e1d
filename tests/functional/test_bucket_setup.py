"""``init`` for buckets against the emulator: the target mirrors the source's protection, event
capture goes through EventBridge without touching the bucket's existing notifications, a second
init changes nothing, and a bad spec stops everything before the first write."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ferry.buckets.setup import event_rule_name, init_buckets, inspect_buckets
from ferry.clients import AwsTarget, make_client
from ferry.errors import SetupError
from ferry.spec import Spec, parse_spec

pytestmark = pytest.mark.functional


@pytest.fixture(scope="module")
def s3(where: AwsTarget) -> Any:
    return make_client("s3", where)


@pytest.fixture(scope="module")
def events(where: AwsTarget) -> Any:
    return make_client("events", where)


def make_spec(endpoint_url: str, buckets: list[dict[str, Any]]) -> Spec:
    return parse_spec({"region": "us-east-1", "endpoint_url": endpoint_url, "buckets": buckets})


def make_queue(sqs: Any, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def receive_all(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message body now in the queue (the emulator delivers synchronously), deleted."""
    bodies: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def notification_configuration(s3: Any, bucket: str) -> dict[str, Any]:
    response = s3.get_bucket_notification_configuration(Bucket=bucket)
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


def bucket_exists(s3: Any, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
    except s3.exceptions.ClientError:
        return False
    return True


def test_init_creates_the_target_mirroring_versioning_and_encryption(s3, sqs, events, where, unique):
    # GIVEN a versioned source encrypted with a KMS key (bucket key on)
    source, target = f"src-{unique}", f"dst-{unique}"
    s3.create_bucket(Bucket=source)
    s3.put_bucket_versioning(Bucket=source, VersioningConfiguration={"Status": "Enabled"})
    kms = {
        "Rules": [
            {
                "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/ferry-test"},
                "BucketKeyEnabled": True,
            }
        ]
    }
    s3.put_bucket_encryption(Bucket=source, ServerSideEncryptionConfiguration=kms)
    url, arn = make_queue(sqs, f"events-{unique}")
    spec = make_spec(where.endpoint_url, [{"source": source, "target": target}])
    assert inspect_buckets(spec, s3)[0].target_exists is False

    # WHEN init runs
    actions = init_buckets(spec, s3, sqs, events, queue_url=url, queue_arn=arn)

    # THEN the target exists, versioned, with the source's encryption and public access blocked
    assert any(f"created target bucket {target}" in a for a in actions)
    assert s3.get_bucket_versioning(Bucket=target)["Status"] == "Enabled"
    rules = s3.get_bucket_encryption(Bucket=target)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"] == kms["Rules"][0]["ApplyServerSideEncryptionByDefault"]
    assert rules[0].get("BucketKeyEnabled") is True
    block = s3.get_public_access_block(Bucket=target)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    check = inspect_buckets(spec, s3)[0]
    assert check.target_exists is True
    assert check.source_versioning == "Enabled"

    # AND a second init has nothing left to do
    assert init_buckets(spec, s3, sqs, events, queue_url=url, queue_arn=arn) == []


def test_init_gives_an_unencrypted_unversioned_source_a_sse_s3_target(s3, sqs, events, where, unique):
    # GIVEN a plain source and a target that already exists (unencrypted, not blocked)
    source, target = f"plain-{unique}", f"plain-dst-{unique}"
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=target)
    url, arn = make_queue(sqs, f"events-{unique}")
    spec = make_spec(where.endpoint_url, [{"source": source, "target": target}])

    # WHEN init runs
    actions = init_buckets(spec, s3, sqs, events, queue_url=url, queue_arn=arn)

    # THEN the existing target is not re-created, gets SSE-S3 and a public access block, no versioning
    assert not any("created target bucket" in a for a in actions)
    rules = s3.get_bucket_encryption(Bucket=target)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert s3.get_bucket_versioning(Bucket=target).get("Status") is None
    assert all(s3.get_public_access_block(Bucket=target)["PublicAccessBlockConfiguration"].values())
    assert init_buckets(spec, s3, sqs, events, queue_url=url, queue_arn=arn) == []


def test_event_capture_keeps_the_existing_notifications(s3, sqs, events, where, unique, emulator_kind):
    # GIVEN a source whose notification configuration already sends ObjectCreated to another queue
    source, target = f"notified-{unique}", f"notified-dst-{unique}"
    s3.create_bucket(Bucket=source)
    other_url, other_arn = make_queue(sqs, f"theirs-{unique}")
    existing = {
        "QueueConfigurations": [
            {
                "Id": "their-consumer",
                "QueueArn": other_arn,
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": ".csv"}]}},
            }
        ]
    }
    s3.put_bucket_notification_configuration(Bucket=source, NotificationConfiguration=existing)
    before = notification_configuration(s3, source)
    url, arn = make_queue(sqs, f"ferry-events-{unique}")
    spec = make_spec(where.endpoint_url, [{"source": source, "target": target}])

    # WHEN init runs
    actions = init_buckets(spec, s3, sqs, events, queue_url=url, queue_arn=arn)

    # THEN the existing configuration is unchanged, and the rule and queue policy are in place
    assert any("enabled EventBridge notifications" in a and "kept 1" in a for a in actions)
    after = notification_configuration(s3, source)
    assert {k: v for k, v in after.items() if k != "EventBridgeConfiguration"} == before
    if emulator_kind == "ministack":  # as S3 answers; moto never echoes it (pinned below)
        assert after["EventBridgeConfiguration"] == {}
    rule = event_rule_name(source)
    pattern = json.loads(events.describe_rule(Name=rule)["EventPattern"])
    assert pattern["detail"]["bucket"]["name"] == [source]
    assert set(pattern["detail-type"]) == {
        "Object Created",
        "Object Deleted",
        "Object Tags Added",
        "Object Tags Deleted",
    }
    assert [t["Arn"] for t in events.list_targets_by_rule(Rule=rule)["Targets"]] == [arn]
    policy = json.loads(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"])
    [statement] = policy["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"].endswith(f"rule/{rule}")
    receive_all(sqs, url), receive_all(sqs, other_url)  # drop s3:TestEvent messages

    # WHEN an object is put into the source
    s3.put_object(Bucket=source, Key="reports/day 1.csv", Body=b"a,b\n")

    # THEN ferry's queue gets the EventBridge event, and the pre-existing notification still fires
    # (moto also emits "Object Tags Added" for every put, tags or not)
    got = receive_all(sqs, url)
    assert {e["detail-type"] for e in got} <= {"Object Created", "Object Tags Added"}
    [event] = [e for e in got if e["detail-type"] == "Object Created"]
    assert event["source"] == "aws.s3"
    assert event["detail-type"] == "Object Created"
    assert event["detail"]["bucket"]["name"] == source
    assert event["detail"]["object"]["key"] == "reports/day 1.csv"
    theirs = [body for body in receive_all(sqs, other_url) if "Records" in body]
    assert [r["eventName"] for body in theirs for r in body["Records"]] == ["ObjectCreated:Put"]

    # AND deletes reach ferry too
    s3.delete_object(Bucket=source, Key="reports/day 1.csv")
    assert [e["detail-type"] for e in receive_all(sqs, url)] == ["Object Deleted"]

    # AND a second init changes nothing, the existing configuration included
    assert init_buckets(spec, s3, sqs, events, queue_url=url, queue_arn=arn) == []
    assert notification_configuration(s3, source) == after


def test_two_buckets_share_the_queue_and_a_prefix_limits_the_rule(s3, sqs, events, where, unique):
    # GIVEN two sources, one mapped only under a prefix, and one ferry queue
    first, second = f"one-{unique}", f"two-{unique}"
    for bucket in (first, second):
        s3.create_bucket(Bucket=bucket)
    url, arn = make_queue(sqs, f"ferry-events-{unique}")
    spec = make_spec(
        where.endpoint_url,
        [
            {"source": first, "target": f"one-dst-{unique}"},
            {"source": second, "target": f"two-dst-{unique}", "prefix": "data/"},
        ],
    )

    # WHEN init runs
    init_buckets(spec, s3, sqs, events, queue_url=url, queue_arn=arn)

    # THEN the queue policy allows both rules
    policy = json.loads(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"])
    sources = {s["Condition"]["ArnEquals"]["aws:SourceArn"].rsplit("/", 1)[1] for s in policy["Statement"]}
    assert sources == {event_rule_name(first), event_rule_name(second)}
    receive_all(sqs, url)

    # AND only keys under the prefix of the second bucket are captured
    s3.put_object(Bucket=first, Key="x", Body=b"1")
    s3.put_object(Bucket=second, Key="data/y", Body=b"1")
    s3.put_object(Bucket=second, Key="other/z", Body=b"1")
    created = [e for e in receive_all(sqs, url) if e["detail-type"] == "Object Created"]
    keys = sorted((e["detail"]["bucket"]["name"], e["detail"]["object"]["key"]) for e in created)
    assert keys == [(first, "x"), (second, "data/y")]
    assert init_buckets(spec, s3, sqs, events, queue_url=url, queue_arn=arn) == []


def test_init_refuses_a_missing_source_before_any_write(s3, sqs, events, where, unique):
    # GIVEN a spec whose first mapping is fine and whose second source does not exist
    good = f"good-{unique}"
    s3.create_bucket(Bucket=good)
    _, other_arn = make_queue(sqs, f"theirs-{unique}")
    existing = {"QueueConfigurations": [{"Id": "x", "QueueArn": other_arn, "Events": ["s3:ObjectRemoved:*"]}]}
    s3.put_bucket_notification_configuration(Bucket=good, NotificationConfiguration=existing)
    before = notification_configuration(s3, good)
    url, arn = make_queue(sqs, f"ferry-events-{unique}")
    spec = make_spec(
        where.endpoint_url,
        [
            {"source": good, "target": f"good-dst-{unique}"},
            {"source": f"missing-{unique}", "target": f"missing-dst-{unique}"},
        ],
    )

    # WHEN init runs, THEN it names the field and the bucket
    with pytest.raises(SetupError, match=rf"buckets\[1\]\.source: bucket 'missing-{unique}' does not exist"):
        init_buckets(spec, s3, sqs, events, queue_url=url, queue_arn=arn)
    with pytest.raises(SetupError, match=r"buckets\[1\]\.source"):
        inspect_buckets(spec, s3)

    # AND nothing was written: no target, no rule, no queue policy, notifications untouched
    assert not bucket_exists(s3, f"good-dst-{unique}")
    assert not bucket_exists(s3, f"missing-dst-{unique}")
    with pytest.raises(events.exceptions.ResourceNotFoundException):
        events.describe_rule(Name=event_rule_name(good))
    assert "Policy" not in sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"]).get("Attributes", {})
    assert notification_configuration(s3, good) == before


def test_init_refuses_a_queue_arn_that_is_not_the_queue(s3, sqs, events, where, unique):
    source = f"q-{unique}"
    s3.create_bucket(Bucket=source)
    url, _ = make_queue(sqs, f"ferry-events-{unique}")
    _, other_arn = make_queue(sqs, f"other-{unique}")
    spec = make_spec(where.endpoint_url, [{"source": source, "target": f"q-dst-{unique}"}])
    with pytest.raises(SetupError, match=r"s3\.events_queue"):
        init_buckets(spec, s3, sqs, events, queue_url=url, queue_arn=other_arn)
    assert not bucket_exists(s3, f"q-dst-{unique}")


def test_rule_names_fit_eventbridge_limits():
    long = "b" * 63
    name = event_rule_name(long)
    assert len(name) <= 64 and name.startswith("ferry-b")
    assert name != event_rule_name("b" * 62 + "c")
    assert event_rule_name("short") == "ferry-short"


@pytest.mark.emulators("moto", reason="pins moto's fault: EventBridgeConfiguration is not read back")
def test_moto_does_not_read_back_the_eventbridge_configuration(s3, unique):
    # GetBucketNotificationConfiguration answers EventBridgeConfiguration when it is enabled (S3 API
    # reference; ministack does); moto leaves it out. This fails the day moto answers it.
    bucket = f"eb-config-{unique}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}})
    assert "EventBridgeConfiguration" not in notification_configuration(s3, bucket)
