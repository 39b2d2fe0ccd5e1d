"""Line 5's deciding parts: the fidelity checker (with negative controls: a copy that loses tags, a
multipart ETag turned plain, a missing key), the counting proxy (object bodies counted, server-side
copies not), the backfill summary parser — and the request cut it led to in reconcile_key
(``target_absent``), shown to keep copies exact when the listing it relies on is stale."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest

from bench import bucket_copy
from bench.bucket_copy import (
    Fingerprint,
    check_fidelity,
    counting_proxy,
    data_bytes,
    fidelity_text,
    fingerprint,
    mismatches,
    parse_ferry_summary,
)
from ferry.buckets.backfill import BucketPlan, list_backfill_keys, reconcile_partition
from ferry.buckets.objects import differences, head_object
from ferry.buckets.reconcile import ABSENT, COPIED, COPIED_MULTIPART, reconcile_key
from ferry.clients import AwsTarget, make_client
from ferry.spec import BucketMapping, S3Settings

MiB = 1024 * 1024
SETTINGS = S3Settings()
# ministack's CreateMultipartUpload drops its tags (pinned in tests/functional/test_reconcile.py,
# test_ministack_drops_the_tags_of_create_multipart_upload): its multipart sources are untagged.
MINISTACK = "ministack"
REFERENCE = Fingerprint(10, '"abc-4"', "video/mp4", (("index", "1"),), (("team", "ferry"),))


# --- the fidelity checker ------------------------------------------------------------------------


@pytest.mark.unit
def test_an_exact_copy_has_no_mismatch() -> None:
    assert mismatches(REFERENCE, Fingerprint(**REFERENCE.__dict__)) == []


@pytest.mark.unit
@pytest.mark.parametrize(
    ("change", "kind"),
    [
        ({"etag": '"d41d8cd98f00b204e9800998ecf8427e"'}, "etag"),  # multipart ETag turned plain
        ({"size": 11}, "size"),
        ({"content_type": "binary/octet-stream"}, "content_type"),
        ({"metadata": ()}, "metadata"),
        ({"tags": ()}, "tags"),  # tags lost
    ],
)
def test_each_kind_of_loss_is_a_mismatch(change: dict[str, Any], kind: str) -> None:
    # negative controls: a checker that compared nothing would pass all of these
    target = Fingerprint(**{**REFERENCE.__dict__, **change})
    assert mismatches(REFERENCE, target) == [kind]
    assert mismatches(REFERENCE, None) == ["missing"]


@pytest.mark.unit
def test_the_summary_and_the_byte_count_are_read_correctly() -> None:
    output = (
        "2026 INFO ...\nbench-copy-source -> dst: 8 partitions, 2010 keys (copied 2000, copied-multipart 10), "
        '0 failed, 12.5s\n{"partitions": []}\n'
    )
    assert parse_ferry_summary(output) == {
        "keys": 2010,
        "actions": {"copied": 2000, "copied-multipart": 10},
        "failed": 0,
        "job_seconds": 12.5,
    }
    with pytest.raises(RuntimeError):
        parse_ferry_summary("no summary here")
    assert data_bytes({"s3:GetObject": 5, "s3:PutObject": 7, "s3:UploadPart": 1, "s3:CopyObject": 100}) == 13
    assert fidelity_text({"checked": 3, "objects_with_mismatch": 0, "extra_objects": 0, "mismatches": {}}) == (
        "exact (3 objects)"
    )


@pytest.mark.functional
def test_the_checker_finds_lost_tags_and_a_changed_multipart_etag(
    where: AwsTarget, unique: str, emulator_kind: str
) -> None:
    # GIVEN a source with a tagged single-part object and a multipart one (tagged but on ministack), and
    # two targets: one exact (copied the way ferry does), one the way a careless tool does (downloaded
    # and uploaded again in one piece, no tags: S3 gives it a plain-MD5 ETag)
    s3 = make_client("s3", where)
    source, exact, careless = f"src-{unique}", f"exact-{unique}", f"careless-{unique}"
    for bucket in (source, exact, careless):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=source, Key="small", Body=b"x" * 100, ContentType="text/plain", Tagging="a=1")
    tagging = {} if emulator_kind == MINISTACK else {"Tagging": "a=2"}
    _multipart(s3, source, "large", [b"a" * 5 * MiB, b"b" * 100], ContentType="video/mp4", **tagging)
    mapping = BucketMapping(source=source, target=exact)
    for key in ("small", "large"):
        reconcile_key(s3, mapping, key, SETTINGS)
        original = s3.get_object(Bucket=source, Key=key)
        s3.put_object(Bucket=careless, Key=key, Body=original["Body"].read(), ContentType=original["ContentType"])
    reference = {k: fingerprint(s3, source, k) for k in ("small", "large")}
    # WHEN both targets are checked
    good = check_fidelity(s3, reference, exact, full=True)  # type: ignore[arg-type]
    bad = check_fidelity(s3, reference, careless, full=True)  # type: ignore[arg-type]
    listing_only = check_fidelity(s3, reference, careless, full=False)  # type: ignore[arg-type]
    # THEN the exact copy passes, and the careless one fails on tags (every tagged object) and the
    # multipart ETag
    assert (good["objects_with_mismatch"], good["mismatches"]) == (0, {})
    assert bad["mismatches"] == {"tags": 1 if emulator_kind == MINISTACK else 2, "etag": 1}
    assert bad["examples"]["etag"] == "large"
    assert listing_only["mismatches"] == {"etag": 1}  # the listing sees ETags, not tags


@pytest.mark.functional
def test_the_proxy_counts_object_bodies_and_not_server_side_copies(emulator: Any, unique: str) -> None:
    # GIVEN a client talking to the emulator through the counting proxy
    with counting_proxy(emulator.endpoint_url) as proxy:
        s3 = make_client("s3", AwsTarget("us-east-1", proxy.endpoint_url))
        s3.create_bucket(Bucket=f"p-{unique}")
        # WHEN an object is uploaded, downloaded, copied server-side and HEAD-ed
        s3.put_object(Bucket=f"p-{unique}", Key="k", Body=b"z" * 1000)
        assert s3.get_object(Bucket=f"p-{unique}", Key="k")["Body"].read() == b"z" * 1000
        s3.copy_object(Bucket=f"p-{unique}", Key="copy", CopySource={"Bucket": f"p-{unique}", "Key": "k"})
        s3.head_object(Bucket=f"p-{unique}", Key="copy")
        body = proxy.body_bytes()
    # THEN the upload and the download count their bodies (the upload may be framed with a checksum
    # trailer), the copy and the HEAD count none of the object's bytes
    assert body["s3:GetObject"] == 1000
    assert 1000 <= body["s3:PutObject"] < 1200
    assert body.get("s3:HeadObject", 0) == 0
    assert body["s3:CopyObject"] < 1000  # its XML answer only
    assert data_bytes(body) == body["s3:GetObject"] + body["s3:PutObject"]


# --- the request cut: reconcile_key(target_absent=True) -------------------------------------------


class _Calls:
    def __init__(self, client: Any) -> None:
        self.names: list[tuple[str, str | None]] = []
        self.params: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        client.meta.events.register("provide-client-params.s3", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        with self._lock:
            self.names.append((model.name, params.get("Bucket")))
            self.params.setdefault(model.name, []).append(dict(params))


def _multipart(s3: Any, bucket: str, key: str, parts: list[bytes], **kwargs: Any) -> str:
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, **kwargs)["UploadId"]
    done = [
        {"ETag": s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=n, Body=b)["ETag"], "PartNumber": n}
        for n, b in enumerate(parts, start=1)
    ]
    return str(
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": done})["ETag"]
    )


def _exact(admin: Any, mapping: BucketMapping, key: str) -> None:
    source, target = head_object(admin, mapping.source, key), head_object(admin, mapping.target, key)
    assert source is not None and target is not None
    assert differences(source, target) == []
    assert target.etag == source.etag
    source_body = admin.get_object(Bucket=mapping.source, Key=key)["Body"].read()
    assert admin.get_object(Bucket=mapping.target, Key=key)["Body"].read() == source_body


@pytest.fixture
def sides(where: AwsTarget, unique: str) -> tuple[Any, Any, BucketMapping]:
    admin = make_client("s3", where)
    mapping = BucketMapping(source=f"src-{unique}", target=f"dst-{unique}")
    admin.create_bucket(Bucket=mapping.source)
    admin.create_bucket(Bucket=mapping.target)
    return admin, make_client("s3", where), mapping


HEADERS = {"ContentType": "application/json", "CacheControl": "max-age=60", "ContentLanguage": "fr"}


@pytest.mark.functional
def test_a_key_listed_absent_is_copied_exactly_with_two_requests_fewer(sides: tuple[Any, Any, BucketMapping]) -> None:
    admin, s3, mapping = sides
    # GIVEN a source object with headers, metadata and tags, and a target listed without it
    admin.put_object(
        Bucket=mapping.source, Key="a b+c.json", Body=b"{}", Metadata={"v": "1"}, Tagging="t=1&u=x%20y", **HEADERS
    )
    calls = _Calls(s3)
    # WHEN it is reconciled with target_absent
    result = reconcile_key(s3, mapping, "a b+c.json", SETTINGS, target_absent=True)
    # THEN the first round read only the source's HEAD; the pinned copy took the tags server-side;
    # after it both sides were read in full (HEAD + tags each): 6 requests instead of 8
    assert (result.action, result.rounds, result.requests) == (COPIED, 1, 6)
    assert calls.names[:2] == [("HeadObject", mapping.source), ("CopyObject", mapping.target)]
    assert sorted(calls.names[2:]) == sorted(
        [(op, bucket) for op in ("HeadObject", "GetObjectTagging") for bucket in (mapping.source, mapping.target)]
    )
    copy = calls.params["CopyObject"][0]
    assert copy["CopySourceIfMatch"] == admin.head_object(Bucket=mapping.source, Key="a b+c.json")["ETag"]
    assert (copy["TaggingDirective"], copy["MetadataDirective"], "Tagging" in copy) == ("COPY", "COPY", False)
    _exact(admin, mapping, "a b+c.json")
    tags = admin.get_object_tagging(Bucket=mapping.target, Key="a b+c.json")["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {"t": "1", "u": "x y"}


@pytest.mark.functional
def test_a_stale_listing_still_ends_exact(sides: tuple[Any, Any, BucketMapping]) -> None:
    admin, s3, mapping = sides
    # GIVEN a key listed absent that the target has by now, with other content and an extra tag
    # (moto's TaggingDirective=COPY merges into existing tags: the extra one would survive the copy)
    admin.put_object(Bucket=mapping.source, Key="k", Body=b"source", Tagging="keep=1", Metadata={"v": "new"})
    admin.put_object(Bucket=mapping.target, Key="k", Body=b"older!", Tagging="keep=0&extra=1", Metadata={"v": "old"})
    # WHEN it is reconciled with target_absent
    result = reconcile_key(s3, mapping, "k", SETTINGS, target_absent=True)
    # THEN the re-read after the copy saw whatever still differed, and the key converged exactly
    assert result.action == COPIED and result.rounds <= SETTINGS.max_rounds
    _exact(admin, mapping, "k")
    tags = admin.get_object_tagging(Bucket=mapping.target, Key="k")["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {"keep": "1"}


@pytest.mark.functional
def test_source_tags_changed_after_the_head_are_caught_by_the_re_read(sides: tuple[Any, Any, BucketMapping]) -> None:
    admin, s3, mapping = sides
    # GIVEN a key listed absent whose source tags change after the copy (the ETag pin does not cover tags)
    admin.put_object(Bucket=mapping.source, Key="k", Body=b"body", Tagging="v=1")
    fired = threading.Event()

    def retag(**_: Any) -> None:
        if not fired.is_set():
            fired.set()
            admin.put_object_tagging(Bucket=mapping.source, Key="k", Tagging={"TagSet": [{"Key": "v", "Value": "2"}]})

    s3.meta.events.register("after-call.s3.CopyObject", retag)
    # WHEN it is reconciled with target_absent
    result = reconcile_key(s3, mapping, "k", SETTINGS, target_absent=True)
    # THEN the re-read found the new tags and a second round set them
    assert fired.is_set() and (result.action, result.rounds) == (COPIED, 2)
    assert admin.get_object_tagging(Bucket=mapping.target, Key="k")["TagSet"] == [{"Key": "v", "Value": "2"}]


@pytest.mark.functional
def test_a_multipart_key_listed_absent_keeps_its_layout_and_tags(
    sides: tuple[Any, Any, BucketMapping], emulator_kind: str
) -> None:
    admin, s3, mapping = sides
    # GIVEN a multipart source (no full-object checksum, tagged but on ministack) listed absent from the target
    tags = [] if emulator_kind == MINISTACK else [{"Key": "t", "Value": "1"}]
    etag = _multipart(
        admin,
        mapping.source,
        "big",
        [b"a" * 5 * MiB, b"b" * 5 * MiB, b"c" * 10],
        Metadata={"m": "1"},
        **({"Tagging": "t=1"} if tags else {}),
    )
    # WHEN it is reconciled with target_absent
    result = reconcile_key(s3, mapping, "big", SETTINGS, target_absent=True)
    # THEN its tags were read for CreateMultipartUpload, and the copy kept the "-3" ETag exactly
    assert (result.action, result.rounds) == (COPIED_MULTIPART, 1)
    assert admin.head_object(Bucket=mapping.target, Key="big")["ETag"] == etag
    _exact(admin, mapping, "big")
    assert admin.get_object_tagging(Bucket=mapping.target, Key="big")["TagSet"] == tags


@pytest.mark.functional
def test_a_source_deleted_since_the_listing_reads_the_target(sides: tuple[Any, Any, BucketMapping]) -> None:
    admin, s3, mapping = sides
    # GIVEN a key listed absent from the target whose source is gone, but which the target has
    admin.put_object(Bucket=mapping.target, Key="gone", Body=b"x")
    # WHEN it is reconciled with target_absent THEN the target is read (not trusted) and deleted
    assert reconcile_key(s3, mapping, "gone", SETTINGS, target_absent=True).action == "deleted"
    assert reconcile_key(s3, mapping, "never", SETTINGS, target_absent=True).action == ABSENT


@pytest.mark.functional
def test_the_backfill_lists_the_target_and_skips_reads_only_for_missing_keys(
    sides: tuple[Any, Any, BucketMapping], where: AwsTarget
) -> None:
    admin, s3, mapping = sides
    # GIVEN a source of three keys, one of which the target already has identically
    for key in ("a", "b", "c"):
        admin.put_object(Bucket=mapping.source, Key=key, Body=key.encode(), Tagging="t=1")
    reconcile_key(s3, mapping, "b", SETTINGS)
    # WHEN the keys are listed and the partition reconciled
    listed = list_backfill_keys(admin, mapping)
    assert (listed.keys, sorted(listed.absent)) == (["a", "b", "c"], ["a", "c"])
    plan = BucketPlan(where, where, mapping, SETTINGS)
    result = reconcile_partition(plan, 0, listed.keys, s3=s3, absent=listed.absent_of(listed.keys))
    # THEN the present key cost its 4 reads, each absent one 6 requests, and all three are exact
    assert result.actions == {"copied": 2, "unchanged": 1} and not result.failed
    assert result.requests == 4 + 2 * 6
    for key in ("a", "b", "c"):
        _exact(admin, mapping, key)


@pytest.mark.functional
def test_the_reference_is_the_source_as_written_and_a_changed_source_is_refused(
    where: AwsTarget, unique: str, monkeypatch: pytest.MonkeyPatch, emulator_kind: str
) -> None:
    # GIVEN a small source seeded the bench's way (one multipart object of 4 x 5 MB parts)
    monkeypatch.setattr(bucket_copy, "SOURCE", f"seed-{unique}")
    s3 = make_client("s3", where)
    reference = bucket_copy.seed_source(s3, bucket_copy.Sizes(small=5, large=1))
    large = bucket_copy.large_key(0)
    assert len(reference) == 6
    assert reference[large].etag.endswith('-4"')
    if emulator_kind == MINISTACK:
        # THEN on ministack the multipart object lost the tags it was uploaded with, and the bench
        # refuses to measure against a source that is not as written
        assert fingerprint(s3, f"seed-{unique}", large) == replace(reference[large], tags=())
        with pytest.raises(RuntimeError, match=rf"{large}.*not as written: \['tags'\]"):
            bucket_copy.confirm_reference(s3, reference)
        return
    # THEN the reference is what a read of the source shows, the multipart ETag included
    for key, written in reference.items():
        assert fingerprint(s3, f"seed-{unique}", key) == written
    assert bucket_copy.confirm_reference(s3, reference) == 6
    # AND a source changed behind the reference's back is refused (negative control)
    s3.put_object_tagging(
        Bucket=f"seed-{unique}", Key=bucket_copy.small_key(0), Tagging={"TagSet": [{"Key": "team", "Value": "x"}]}
    )
    with pytest.raises(RuntimeError, match="not as written"):
        bucket_copy.confirm_reference(s3, reference)


# --- ferry's replay copy (issue 11) -------------------------------------------------------------


@pytest.mark.unit
def test_the_replay_run_gets_its_protocol_and_its_own_state_table_and_only_s3_requests_count() -> None:
    from ferry.jobs import BUCKET, job_run_from_arguments

    argv = bucket_copy.ferry_argv("http://127.0.0.1:1", "dst-bucket", "replay", "bench-copy-state-replay-0")
    arguments = dict(zip(argv[3::2], argv[4::2], strict=True))
    run = job_run_from_arguments(BUCKET, {k.removeprefix("--"): v for k, v in arguments.items()})
    assert run.spec.buckets[0].replay and run.spec.state_table == "bench-copy-state-replay-0"
    requests = {"s3:CopyObject": 200, "s3:ListObjectsV2": 2, "dynamodb:PutItem": 5, "sqs:GetQueueUrl": 1}
    assert bucket_copy.s3_requests(requests) == 202


def _timed(objects_per_s: float, **run: Any) -> Any:
    from bench.common import Timed

    fidelity = {"objects_with_mismatch": 0, "extra_objects": 0, "checked": 10, "mismatches": {}}
    return Timed([objects_per_s], [{"fidelity": fidelity, "s3_requests_per_object": 1.0, "released": True,
                                     "steady_objects_per_s": objects_per_s, "requests_by_operation": {}, **run}])  # fmt: skip


@pytest.mark.unit
def test_the_replay_copy_must_be_ahead_of_both_tools_exact_released_and_near_one_request_per_object() -> None:
    sizes = bucket_copy.Sizes(10, 0)
    results = {"aws s3 sync": _timed(100.0), "s5cmd": _timed(150.0), "ferry replay": _timed(160.0)}
    rows = bucket_copy.replay_rows(results, sizes)
    assert [r.met for r in rows] == [True, True, True, True]
    # negative controls: behind one tool; more than 1.1 requests per object; a lost tag; not released
    behind = bucket_copy.replay_rows({**results, "ferry replay": _timed(120.0)}, sizes)
    assert [r.met for r in behind][:2] == [True, False]
    costly = bucket_copy.replay_rows({**results, "ferry replay": _timed(160.0, s3_requests_per_object=1.11)}, sizes)
    assert costly[2].met is False
    lossy = {"objects_with_mismatch": 1, "extra_objects": 0, "checked": 10, "mismatches": {"tags": 1}}
    lost = bucket_copy.replay_rows({**results, "ferry replay": _timed(160.0, fidelity=lossy)}, sizes)
    assert [r.met for r in lost] == [False, False, True, False]
    held = bucket_copy.replay_rows({**results, "ferry replay": _timed(160.0, released=False)}, sizes)
    assert held[-1].met is False


@pytest.mark.unit
def test_the_replay_rows_say_where_the_time_goes_per_object_for_each_side() -> None:
    cpu = {"emulator_cpu_ms_per_object": 4.5, "client_cpu_ms_per_object": 2.0}
    results = {
        "aws s3 sync": _timed(100.0, emulator_cpu_ms_per_object=4.25, client_cpu_ms_per_object=2.2),
        "s5cmd": _timed(150.0, emulator_cpu_ms_per_object=3.5, client_cpu_ms_per_object=0.6),
        "ferry replay": _timed(160.0, **cpu),
    }
    text = bucket_copy.where_the_time_goes(results)
    assert "ferry replay 4.50 / 2.00, aws s3 sync 4.25 / 2.20, s5cmd 3.50 / 0.60" in text
    assert text in bucket_copy.replay_rows(results, bucket_copy.Sizes(10, 0))[0].note
    # a side measured without them says so instead of showing a number
    assert "s5cmd not measured" in bucket_copy.where_the_time_goes({**results, "s5cmd": _timed(150.0)})
