"""VERIFY for buckets against the emulator: every key, every attribute that makes two objects
identical, awkward key names included; re-checked before reporting; repaired through reconcile."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, cast

import pytest

from ferry.buckets.verify import (
    DIFFERENT,
    EXTRA,
    KINDS,
    MISSING,
    BucketDifference,
    BucketVerifyReport,
    verify_bucket,
)
from ferry.clients import AwsTarget, make_client
from ferry.errors import SetupError
from ferry.spec import BucketMapping, Spec, parse_spec
from ferry.tables.verify import TableVerifyReport

pytestmark = pytest.mark.functional

SECRET = "SECRET-metadata-value-must-never-be-logged"
MIB = 1024 * 1024

# Keys that trip up encoders, signers and listings.
AWKWARD_KEYS = (
    "plain.txt",
    "with space.txt",
    "plus+sign.txt",
    "percent%20literal.txt",
    "unicode/ünïcødé-日本語-😀.txt",
    "hash#fragment.txt",
    "question?mark=1&b=2.txt",
    "deep/a/b/c/d/e/f/g/h/file.bin",
    "folder/",
)


@pytest.fixture(scope="module")
def s3(where: AwsTarget) -> Any:
    return make_client("s3", where)


def make_spec(endpoint_url: str | None, source: str, target: str, **mapping: Any) -> Spec:
    return parse_spec(
        {
            "region": "us-east-1",
            "endpoint_url": endpoint_url,
            "buckets": [{"source": source, "target": target, **mapping}],
        }
    )


def put_both(s3: Any, buckets: tuple[str, str], key: str, body: bytes, **kwargs: Any) -> None:
    """The same object, written the same way, into both buckets."""
    for bucket in buckets:
        s3.put_object(Bucket=bucket, Key=key, Body=body, **kwargs)


def multipart_both(s3: Any, buckets: tuple[str, str], key: str, parts: list[bytes], **kwargs: Any) -> None:
    """The same multipart object (same part layout, so the same ``-N`` ETag) in both buckets."""
    for bucket in buckets:
        upload = s3.create_multipart_upload(Bucket=bucket, Key=key, **kwargs)["UploadId"]
        done = []
        for number, body in enumerate(parts, start=1):
            etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=body)["ETag"]
            done.append({"ETag": etag, "PartNumber": number})
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": done})


@pytest.fixture
def identical(s3: Any, where: AwsTarget, unique: str) -> tuple[Spec, BucketMapping]:
    """A source and a target holding the same objects: awkward keys, empty objects, headers,
    metadata, tags and a multipart object."""
    source, target = f"vsrc-{unique}", f"vdst-{unique}"
    both = (source, target)
    for bucket in both:
        s3.create_bucket(Bucket=bucket)
    for key in AWKWARD_KEYS:
        put_both(s3, both, key, b"" if key.endswith("/") else f"body of {key}".encode())
    put_both(s3, both, "empty.dat", b"")
    put_both(
        s3,
        both,
        "meta.json",
        b'{"a": 1}',
        ContentType="application/json",
        CacheControl="max-age=60",
        ContentEncoding="identity",
        Metadata={"owner": "team-a", "secret": SECRET},
    )
    put_both(s3, both, "tagged.txt", b"tagged", Tagging="team=a&stage=prod")
    multipart_both(
        s3,
        both,
        "big/multipart.bin",
        [b"a" * (5 * MIB), b"b" * 1024],
        ContentType="application/octet-stream",
        Metadata={"origin": "upload"},
    )
    spec = make_spec(where.endpoint_url, source, target)
    return spec, spec.buckets[0]


def break_target(s3: Any, mapping: BucketMapping) -> None:
    """One difference of every kind, and one per attribute that matters."""
    s3.delete_object(Bucket=mapping.target, Key="plain.txt")  # missing
    s3.put_object(Bucket=mapping.target, Key="only in target.txt", Body=b"x")  # extra
    original = s3.get_object(Bucket=mapping.source, Key="with space.txt")["Body"].read()
    s3.put_object(Bucket=mapping.target, Key="with space.txt", Body=original.upper())  # same size, new bytes
    s3.put_object(  # same body and headers, other metadata
        Bucket=mapping.target,
        Key="meta.json",
        Body=b'{"a": 1}',
        ContentType="application/json",
        CacheControl="max-age=60",
        ContentEncoding="identity",
        Metadata={"owner": "team-b", "secret": SECRET},
    )
    s3.put_object_tagging(  # other tags
        Bucket=mapping.target, Key="tagged.txt", Tagging={"TagSet": [{"Key": "team", "Value": "b"}]}
    )


EXPECTED = [
    BucketDifference(DIFFERENT, "meta.json", ("metadata",)),
    BucketDifference(DIFFERENT, "tagged.txt", ("tags",)),
    BucketDifference(DIFFERENT, "with space.txt", ("content",)),
    BucketDifference(EXTRA, "only in target.txt"),
    BucketDifference(MISSING, "plain.txt"),
]


def test_identical_buckets_verify_ok(identical, caplog):
    # GIVEN buckets with the same objects
    spec, mapping = identical
    # WHEN verified
    with caplog.at_level(logging.DEBUG, logger="ferry"):
        report = verify_bucket(spec, mapping, workers=4)
    # THEN nothing differs and every object was counted on both sides
    assert report.ok, report.as_dict()
    objects = len(AWKWARD_KEYS) + 4
    assert (report.source_items, report.target_items) == (objects, objects)
    assert report.counts() == {MISSING: 0, EXTRA: 0, DIFFERENT: 0}
    assert report.segments == 1 and report.repaired == 0
    assert SECRET not in caplog.text


def test_each_kind_of_difference_is_reported_exactly(s3, identical, caplog):
    # GIVEN a target with one missing, one extra and three different objects
    spec, mapping = identical
    break_target(s3, mapping)
    # WHEN verified
    with caplog.at_level(logging.DEBUG, logger="ferry"):
        report = verify_bucket(spec, mapping, workers=4)
    # THEN exactly those keys, kinds and attributes are reported
    assert list(report.differences) == EXPECTED
    assert report.counts() == {MISSING: 1, EXTRA: 1, DIFFERENT: 3}
    assert not report.ok
    assert report.source_items == len(AWKWARD_KEYS) + 4
    assert report.target_items == len(AWKWARD_KEYS) + 4  # one missing, one extra
    # AND keys are logged, metadata values never
    assert "only in target.txt" in caplog.text
    assert SECRET not in caplog.text

    # WHEN tags are not compared, THEN the tags difference is not one
    without_tags = verify_bucket(spec, mapping, compare_tags=False)
    assert list(without_tags.differences) == [d for d in EXPECTED if d.key != "tagged.txt"]
    # AND the spec's verify_tags is the default
    no_tags_spec = parse_spec({**_spec_dict(spec), "s3": {"verify_tags": False}})
    assert verify_bucket(no_tags_spec, mapping).counts()[DIFFERENT] == 2

    # AND the report is JSON, shaped like the table report
    data = json.loads(json.dumps(report.as_dict()))
    assert data["ok"] is False
    assert data["counts"] == {MISSING: 1, EXTRA: 1, DIFFERENT: 3}
    assert {"kind": DIFFERENT, "key": "meta.json", "attributes": ["metadata"]} in data["differences"]
    table_keys = TableVerifyReport("a", "b", 0, 0, (), 1, 0.0).as_dict().keys()
    assert data.keys() == table_keys
    assert report.samples() == {
        MISSING: ["plain.txt"],
        EXTRA: ["only in target.txt"],
        DIFFERENT: ["meta.json", "tagged.txt", "with space.txt"],
    }


def test_repair_fixes_every_difference(s3, identical):
    # GIVEN a target with every kind of difference
    spec, mapping = identical
    break_target(s3, mapping)
    s3.put_object(Bucket=mapping.target, Key="one more extra.txt", Body=b"x")  # the counts now differ
    # WHEN verified without, then with repair
    before = verify_bucket(spec, mapping)
    report = verify_bucket(spec, mapping, repair=True)
    # THEN every difference was fixed through reconcile
    assert report.ok, report.as_dict()
    assert report.repaired == len(EXPECTED) + 1
    # AND the extra key is gone, and a second verify finds nothing
    assert "Contents" not in s3.list_objects_v2(Bucket=mapping.target, Prefix="only in target")
    again = verify_bucket(spec, mapping)
    assert again.ok and again.repaired == 0
    # AND the repairing verify reported the object counts after the repair, not those it listed
    assert before.target_items != before.source_items
    assert (report.source_items, report.target_items) == (again.source_items, again.target_items)


def test_a_changed_multipart_object_is_repaired_with_its_layout(s3, identical):
    # GIVEN a target whose multipart object is a different multipart object of the same size, another
    # content type and no metadata (the content type given: the emulators default it differently)
    spec, mapping = identical
    upload = s3.create_multipart_upload(Bucket=mapping.target, Key="big/multipart.bin", ContentType="text/plain")[
        "UploadId"
    ]
    parts = []
    for number, body in enumerate([b"c" * (5 * MIB), b"b" * 1024], start=1):
        etag = s3.upload_part(
            Bucket=mapping.target, Key="big/multipart.bin", UploadId=upload, PartNumber=number, Body=body
        )["ETag"]
        parts.append({"ETag": etag, "PartNumber": number})
    s3.complete_multipart_upload(
        Bucket=mapping.target, Key="big/multipart.bin", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    # WHEN verified, THEN content, content type and metadata differ
    report = verify_bucket(spec, mapping)
    assert list(report.differences) == [
        BucketDifference(DIFFERENT, "big/multipart.bin", ("content", "ContentType", "metadata"))
    ]
    # AND repair makes it identical again (ETag included)
    assert verify_bucket(spec, mapping, repair=True).repaired == 1
    source_etag = s3.head_object(Bucket=mapping.source, Key="big/multipart.bin")["ETag"]
    assert s3.head_object(Bucket=mapping.target, Key="big/multipart.bin")["ETag"] == source_etag
    assert verify_bucket(spec, mapping).ok


def test_samples_are_capped_per_kind(s3, where, unique):
    # GIVEN 25 objects the target lacks
    source, target = f"many-{unique}", f"many-dst-{unique}"
    for bucket in (source, target):
        s3.create_bucket(Bucket=bucket)
    for i in range(25):
        s3.put_object(Bucket=source, Key=f"k{i:02d}", Body=b"x")
    spec = make_spec(where.endpoint_url, source, target)
    # WHEN verified
    report = verify_bucket(spec, spec.buckets[0])
    # THEN all 25 are counted, 20 sampled (or fewer when asked), and every kind has a sample list
    assert report.counts() == {MISSING: 25, EXTRA: 0, DIFFERENT: 0}
    samples = report.samples()
    assert set(samples) == set(KINDS)
    assert samples[MISSING] == [f"k{i:02d}" for i in range(20)]
    assert len(report.samples(per_kind=5)[MISSING]) == 5
    assert len(report.as_dict()["differences"]) == 25


def test_only_keys_under_the_prefix_are_compared(s3, where, unique):
    # GIVEN buckets that differ only outside the mapped prefix
    source, target = f"pre-{unique}", f"pre-dst-{unique}"
    for bucket in (source, target):
        s3.create_bucket(Bucket=bucket)
    put_both(s3, (source, target), "data/a", b"same")
    s3.put_object(Bucket=source, Key="logs/only-in-source", Body=b"x")
    s3.put_object(Bucket=target, Key="tmp/only-in-target", Body=b"x")
    s3.put_object(Bucket=source, Key="data/b", Body=b"new")
    spec = make_spec(where.endpoint_url, source, target, prefix="data/")
    # WHEN verified, THEN only the prefix counts
    report = verify_bucket(spec, spec.buckets[0])
    assert list(report.differences) == [BucketDifference(MISSING, "data/b")]
    assert (report.source_items, report.target_items) == (2, 1)


class RacingClient:
    """A client whose first target HEAD of one key is followed by the replication catching up, as
    if a live write was being applied while verify listed and compared."""

    def __init__(self, client: Any, target: str, key: str, catch_up: Callable[[], None]) -> None:
        self._client = client
        self._target, self._key = target, key
        self._catch_up = catch_up
        self.fired = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def head_object(self, **kwargs: Any) -> Any:
        response = self._client.head_object(**kwargs)
        if not self.fired and kwargs["Bucket"] == self._target and kwargs["Key"] == self._key:
            self.fired = True
            self._catch_up()
        return response


def test_a_difference_that_a_live_write_resolves_is_not_reported(s3, where, unique):
    # GIVEN a source object written just now, whose replication lands while verify compares it
    source, target = f"race-{unique}", f"race-dst-{unique}"
    for bucket in (source, target):
        s3.create_bucket(Bucket=bucket)
    put_both(s3, (source, target), "hot", b"old!")
    s3.put_object(Bucket=source, Key="hot", Body=b"new!")

    def replicate() -> None:
        s3.copy_object(Bucket=target, Key="hot", CopySource={"Bucket": source, "Key": "hot"})

    client = RacingClient(make_client("s3", where), target, "hot", replicate)
    spec = make_spec(where.endpoint_url, source, target)
    # WHEN verified
    report = verify_bucket(spec, spec.buckets[0], s3_factory=lambda: cast(Any, client))
    # THEN the first comparison saw a difference, the fresh re-read did not
    assert client.fired
    assert report.ok, report.as_dict()


def test_a_missing_bucket_is_a_setup_error(s3, where, unique):
    source = f"lonely-{unique}"
    s3.create_bucket(Bucket=source)
    spec = make_spec(where.endpoint_url, source, f"nowhere-{unique}")
    with pytest.raises(SetupError, match=f"nowhere-{unique}"):
        verify_bucket(spec, spec.buckets[0])


def test_report_interface_matches_the_table_report():
    # GIVEN both reports, THEN the CLI can print either with the same code
    for cls in (BucketVerifyReport, TableVerifyReport):
        for name in ("counts", "samples", "as_dict", "ok"):
            assert hasattr(cls, name), (cls, name)
    report = BucketVerifyReport("a", "b", 1, 1, (BucketDifference(EXTRA, "k"),), 1, 0.5)
    assert report.counts() == {MISSING: 0, EXTRA: 1, DIFFERENT: 0}
    assert BucketDifference(DIFFERENT, "k", ("tags",)).as_dict() == {
        "kind": DIFFERENT,
        "key": "k",
        "attributes": ["tags"],
    }


def _spec_dict(spec: Spec) -> dict[str, Any]:
    from ferry.spec import spec_to_dict

    data = spec_to_dict(spec)
    del data["tables"]
    return data
