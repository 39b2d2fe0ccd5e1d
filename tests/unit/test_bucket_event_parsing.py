"""ferry.buckets.events: every shape of SQS message body the bucket_events Lambda can receive.

Samples live in tests/events (``s3_*.json`` for S3 event notifications, ``eventbridge_*.json``
for EventBridge S3 events). BucketReplicator is checked with reconcile_key replaced by a recorder.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import pytest

from ferry.buckets import events
from ferry.buckets.events import BucketReplicator, ObjectEvent, object_events
from ferry.buckets.reconcile import ReconcileResult
from ferry.errors import PoisonRecordError
from ferry.spec import BucketMapping, S3Settings, parse_spec

pytestmark = pytest.mark.unit

EVENTS = Path(__file__).resolve().parent.parent / "events"
SOURCE = "ferry-sample-source"

# Keys that need decoding, each in S3's form (``/`` kept) and moto's (``/`` as %2F).
AWKWARD_KEYS = [
    "plain.txt",
    "dir/sub dir/file with spaces.txt",
    "a+b=c&d.txt",
    "literal+plus+only",
    "percent%20literal%.txt",
    "100%",
    "%2F not a slash",
    "unicode/日本語 ö 🚢.txt",
    "hash#q?x.txt",
    "trailing/",
    "dir/",
    "semi;colon:comma,at@dollar$",
    "tab\tnewline\n",
    " leading and trailing ",
    "~tilde*star'quote(paren)!",
]


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return loaded


def notification(key_in_event: str, event_name: str = "ObjectCreated:Put", bucket: str = SOURCE) -> dict[str, Any]:
    """A one-record S3 event notification whose key is given exactly as it appears in the event."""
    message = load("s3_notification_batch.json")
    record = copy.deepcopy(message["Records"][0])
    record["eventName"] = event_name
    record["s3"]["bucket"]["name"] = bucket
    record["s3"]["object"]["key"] = key_in_event
    return {"Records": [record]}


def eventbridge(key: str, detail_type: str = "Object Created", bucket: str = SOURCE) -> dict[str, Any]:
    message = load("eventbridge_object_created.json")
    message["detail-type"] = detail_type
    message["detail"]["bucket"]["name"] = bucket
    message["detail"]["object"]["key"] = key
    return message


# --- S3 event notifications ----------------------------------------------------------------------


def test_a_notification_with_several_records_yields_every_record_decoded_in_order() -> None:
    # GIVEN the sample notification with eleven records of every kind, keys URL-encoded
    body = (EVENTS / "s3_notification_batch.json").read_text(encoding="utf-8")

    # WHEN it is parsed as the SQS message body (a string)
    parsed = object_events(body)

    # THEN every record is there, in order, with its key decoded and its kind and sequencer
    assert parsed == [
        ObjectEvent(SOURCE, "dir/sub dir/file with spaces.txt", "created", "0055AED6DCD90281E5"),
        ObjectEvent(SOURCE, "a+b=c&d.txt", "created", "0055AED6DCD90281E6"),
        ObjectEvent(SOURCE, "percent%20literal%.txt", "created", "0055AED6DCD90281E7"),
        ObjectEvent(SOURCE, "unicode/日本語 ö.txt", "created", "0055AED6DCD90281E8"),
        ObjectEvent(SOURCE, "hash#q?x.txt", "created", "0055AED6DCD90281E9"),
        ObjectEvent(SOURCE, "trailing/", "created", "0055AED6DCD90281EA"),
        ObjectEvent(SOURCE, "moto/encodes slash/too", "created", "0055AED6DCD90281EB"),
        ObjectEvent(SOURCE, "dir/sub dir/file with spaces.txt", "removed", "0055AED6DCD90281EC"),
        ObjectEvent(SOURCE, "a+b=c&d.txt", "removed", "0055AED6DCD90281ED"),
        ObjectEvent(SOURCE, "unicode/日本語 ö.txt", "changed", "0055AED6DCD90281EE"),
        ObjectEvent(SOURCE, "hash#q?x.txt", "removed", "0055AED6DCD90281EF"),
    ]


def test_a_body_already_parsed_gives_the_same_events() -> None:
    message = load("s3_notification_batch.json")
    assert object_events(message) == object_events(json.dumps(message))


@pytest.mark.parametrize("key", AWKWARD_KEYS)
@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(lambda k: quote_plus(k, safe="/"), id="aws-keeps-slash"),
        pytest.param(lambda k: quote_plus(k, safe=""), id="moto-encodes-slash"),
    ],
)
def test_notification_keys_are_decoded_in_both_encoded_forms(key: str, encode: Any) -> None:
    # GIVEN a record whose key is form-encoded the way S3 (or moto) encodes it
    encoded = encode(key)

    # WHEN it is parsed
    (event,) = object_events(json.dumps(notification(encoded)))

    # THEN the key is exactly the object's key
    assert event.key == key


def test_notification_kinds_follow_the_event_name() -> None:
    kinds = {
        name: object_events(notification("k", name))[0].kind
        for name in (
            "ObjectCreated:Put",
            "ObjectCreated:CompleteMultipartUpload",
            "ObjectRemoved:Delete",
            "ObjectRemoved:DeleteMarkerCreated",
            "LifecycleExpiration:Delete",
            "ObjectTagging:Delete",
            "ObjectAcl:Put",
            "ObjectRestore:Completed",
            "LifecycleTransition",
            "IntelligentTiering",
            "SomeFutureEvent:Whatever",
        )
    }
    assert kinds == {
        "ObjectCreated:Put": "created",
        "ObjectCreated:CompleteMultipartUpload": "created",
        "ObjectRemoved:Delete": "removed",
        "ObjectRemoved:DeleteMarkerCreated": "removed",
        "LifecycleExpiration:Delete": "removed",
        "ObjectTagging:Delete": "changed",
        "ObjectAcl:Put": "changed",
        "ObjectRestore:Completed": "changed",
        "LifecycleTransition": "changed",
        "IntelligentTiering": "changed",
        "SomeFutureEvent:Whatever": "changed",  # still a hint worth reconciling
    }


def test_a_record_without_sequencer_has_none() -> None:
    message = notification("k")
    del message["Records"][0]["s3"]["object"]["sequencer"]  # moto sends none
    assert object_events(message)[0].sequencer is None


def test_the_s3_test_event_yields_nothing() -> None:
    assert object_events((EVENTS / "s3_test_event.json").read_text(encoding="utf-8")) == []


# --- EventBridge ---------------------------------------------------------------------------------


def test_eventbridge_object_created_and_deleted() -> None:
    created = object_events(json.dumps(load("eventbridge_object_created.json")))
    deleted = object_events(json.dumps(load("eventbridge_object_deleted.json")))
    assert created == [ObjectEvent(SOURCE, "reports/2025/q4 summary.csv", "created", "617f08299329d189")]
    assert deleted == [ObjectEvent(SOURCE, "reports/2025/q4 summary.csv", "removed", "617f0837b476e463")]


def test_eventbridge_tag_events_are_changes_and_have_no_sequencer() -> None:
    added = object_events(json.dumps(load("eventbridge_object_tags_added.json")))
    removed = object_events(json.dumps(load("eventbridge_object_tags_deleted.json")))
    # "eb key+1" as delivered first; its unquote_plus reading second (see the module docstring)
    assert added == [
        ObjectEvent(SOURCE, "eb key+1", "changed", None),
        ObjectEvent(SOURCE, "eb key 1", "changed", None),
    ]
    assert removed == [ObjectEvent(SOURCE, "plain-key.txt", "changed", None)]


@pytest.mark.parametrize(
    "detail_type, kind",
    [
        ("Object Created", "created"),
        ("Object Deleted", "removed"),
        ("Object Tags Added", "changed"),
        ("Object Tags Deleted", "changed"),
        ("Object ACL Updated", "changed"),
        ("Object Restore Completed", "changed"),
        ("Object Storage Class Changed", "changed"),
        ("Object Access Tier Changed", "changed"),
    ],
)
def test_eventbridge_kinds_follow_the_detail_type(detail_type: str, kind: str) -> None:
    assert [e.kind for e in object_events(eventbridge("k", detail_type))] == [kind]


@pytest.mark.parametrize("key", AWKWARD_KEYS)
def test_eventbridge_keys_are_taken_as_delivered_first(key: str) -> None:
    # GIVEN an EventBridge event carrying the key as is (what moto does; the S3 docs name no encoding)
    parsed = [e.key for e in object_events(json.dumps(eventbridge(key)))]

    # THEN the first candidate is the key exactly; a second one, only when decoding changes it, is
    # its unquote_plus reading (in case S3 encodes EventBridge keys as it does notification keys)
    decoded = unquote_plus(key)
    assert parsed == ([key] if decoded == key else [key, decoded])


@pytest.mark.parametrize("key", AWKWARD_KEYS)
def test_an_encoded_eventbridge_key_is_also_read_decoded(key: str) -> None:
    encoded = quote_plus(key, safe="/")
    keys = [e.key for e in object_events(eventbridge(encoded))]
    assert keys[0] == encoded
    assert key in keys  # the decoded reading is among the candidates


# --- garbage -------------------------------------------------------------------------------------


def _without(message: dict[str, Any], *path: str) -> dict[str, Any]:
    out = copy.deepcopy(message)
    node: Any = out
    for part in path[:-1]:
        node = node[part] if not part.isdigit() else node[int(part)]
    del node[path[-1]]
    return out


NOTIFICATION = notification("k")
EVENTBRIDGE = eventbridge("k")


@pytest.mark.parametrize(
    "body, field",
    [
        pytest.param("not json {", "body", id="not-json"),
        pytest.param("", "body", id="empty-string"),
        pytest.param("[1, 2]", "body", id="a-list"),
        pytest.param('"text"', "body", id="a-string"),
        pytest.param("null", "body", id="null"),
        pytest.param("[" * 100_000 + "]" * 100_000, "body", id="nested-too-deep"),
        pytest.param("{}", "body", id="empty-object"),
        pytest.param('{"hello": "world"}', "body", id="unknown-shape"),
        pytest.param({"Records": []}, "body.Records", id="no-records"),
        pytest.param({"Records": "x"}, "body.Records", id="records-not-a-list"),
        pytest.param({"Records": ["x"]}, "body.Records[0]", id="record-not-an-object"),
        pytest.param(
            {"Records": [{**NOTIFICATION["Records"][0], "eventSource": "aws:dynamodb"}]},
            "body.Records[0].eventSource",
            id="not-s3",
        ),
        pytest.param(_without(NOTIFICATION, "Records", "0", "eventName"), "body.Records[0].eventName", id="no-name"),
        pytest.param(_without(NOTIFICATION, "Records", "0", "s3"), "body.Records[0].s3", id="no-s3"),
        pytest.param(
            _without(NOTIFICATION, "Records", "0", "s3", "bucket", "name"),
            "body.Records[0].s3.bucket.name",
            id="no-bucket-name",
        ),
        pytest.param(
            _without(NOTIFICATION, "Records", "0", "s3", "object", "key"),
            "body.Records[0].s3.object.key",
            id="no-key",
        ),
        pytest.param(notification(""), "body.Records[0].s3.object.key", id="empty-key"),
        pytest.param({**EVENTBRIDGE, "source": "aws.ec2"}, "body.source", id="eventbridge-not-s3"),
        pytest.param(_without(EVENTBRIDGE, "detail-type"), "body.detail-type", id="no-detail-type"),
        pytest.param(_without(EVENTBRIDGE, "detail"), "body.detail", id="no-detail"),
        pytest.param(_without(EVENTBRIDGE, "detail", "object"), "body.detail.object", id="no-object"),
        pytest.param(_without(EVENTBRIDGE, "detail", "object", "key"), "body.detail.object.key", id="eb-no-key"),
        pytest.param(
            _without(EVENTBRIDGE, "detail", "bucket", "name"), "body.detail.bucket.name", id="eb-no-bucket-name"
        ),
        pytest.param(
            {**EVENTBRIDGE, "detail": {**EVENTBRIDGE["detail"], "object": {"key": "k", "sequencer": 7}}},
            "body.detail.object.sequencer",
            id="sequencer-not-text",
        ),
    ],
)
def test_garbage_is_a_poison_record_naming_the_field(body: Any, field: str) -> None:
    with pytest.raises(PoisonRecordError) as caught:
        object_events(body if isinstance(body, str) else json.dumps(body))
    assert caught.value.field == field
    assert caught.value.problem


# --- BucketReplicator ----------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, Any]] = []

    def __call__(
        self, s3: Any, mapping: BucketMapping, key: str, settings: S3Settings, *, target_s3: Any = None
    ) -> ReconcileResult:
        self.calls.append((mapping.source, mapping.target, key, target_s3))
        return ReconcileResult(key, "copied", 1, 3, 10)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr(events, "reconcile_key", rec)
    return rec


SPEC = parse_spec(
    {
        "region": "us-east-1",
        "buckets": [
            {"source": SOURCE, "target": "ferry-sample-target"},
            {"source": "other-src", "target": "other-dst"},
        ],
    }
)
# Stand-ins for the S3 clients: the recorder replaces reconcile_key, so they are only passed on.
S3: Any = "S3"
TARGET_S3: Any = "TARGET"


def sqs_record(body: Any) -> dict[str, Any]:
    return {"messageId": "m-1", "body": body if isinstance(body, str) else json.dumps(body)}


def test_every_key_of_a_message_is_reconciled_once(recorder: Recorder) -> None:
    # GIVEN the sample notification (eleven records, four keys named twice)
    body = (EVENTS / "s3_notification_batch.json").read_text(encoding="utf-8")

    # WHEN its SQS record is applied
    results = BucketReplicator(SPEC, s3=S3).apply_sqs_record(sqs_record(body))

    # THEN each distinct key is reconciled once into the mapped target, in order of first mention
    keys = [
        "dir/sub dir/file with spaces.txt",
        "a+b=c&d.txt",
        "percent%20literal%.txt",
        "unicode/日本語 ö.txt",
        "hash#q?x.txt",
        "trailing/",
        "moto/encodes slash/too",
    ]
    assert recorder.calls == [(SOURCE, "ferry-sample-target", k, None) for k in keys]
    assert [r.key for r in results] == keys


def test_the_target_client_is_passed_on(recorder: Recorder) -> None:
    BucketReplicator(SPEC, s3=S3, target_s3=TARGET_S3).apply_sqs_record(sqs_record(eventbridge("k")))
    assert recorder.calls == [(SOURCE, "ferry-sample-target", "k", "TARGET")]


def test_the_test_event_reconciles_nothing(recorder: Recorder) -> None:
    body = (EVENTS / "s3_test_event.json").read_text(encoding="utf-8")
    assert BucketReplicator(SPEC, s3=S3).apply_sqs_record(sqs_record(body)) == []
    assert recorder.calls == []


def test_an_unmapped_bucket_is_poison_naming_the_bucket(recorder: Recorder) -> None:
    # GIVEN a message naming a mapped and an unmapped bucket
    message = notification("a", bucket=SOURCE)
    message["Records"] += notification("b", bucket="not-in-spec")["Records"]

    # WHEN it is applied, THEN the mapped key is reconciled and the record fails as poison
    with pytest.raises(PoisonRecordError) as caught:
        BucketReplicator(SPEC, s3=S3).apply_sqs_record(sqs_record(message))
    assert "'not-in-spec'" in str(caught.value)
    assert recorder.calls == [(SOURCE, "ferry-sample-target", "a", None)]


def test_a_target_bucket_is_not_a_source(recorder: Recorder) -> None:
    with pytest.raises(PoisonRecordError, match="ferry-sample-target"):
        BucketReplicator(SPEC, s3=S3).apply_sqs_record(sqs_record(eventbridge("k", bucket="ferry-sample-target")))
    assert recorder.calls == []


@pytest.mark.parametrize("record", [{}, {"body": None}, {"body": {"Records": []}}])
def test_a_record_without_a_text_body_is_poison(recorder: Recorder, record: dict[str, Any]) -> None:
    with pytest.raises(PoisonRecordError) as caught:
        BucketReplicator(SPEC, s3=S3).apply_sqs_record(record)
    assert caught.value.field == "body"


def test_reconcile_errors_propagate_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> ReconcileResult:
        raise TimeoutError("slow")

    monkeypatch.setattr(events, "reconcile_key", boom)
    with pytest.raises(TimeoutError):
        BucketReplicator(SPEC, s3=S3).apply_sqs_record(sqs_record(eventbridge("k")))
