"""reconcile_key against the emulator: the target key ends up as the source key is now, whatever
order or number of times it is called; copies are server-side and pinned; the source is never written.

"The source changed between HEAD and copy" is made real: the test overwrites the source right before
the pinned copy is sent. ministack then answers 412 PreconditionFailed as S3 does; moto ignores
CopySourceIfMatch (pinned by test_moto_ignores_copy_source_if_match), so there a botocore hook on the
client reconcile uses raises the 412 too (see ``refuse_after``).

Two ministack faults shape the multipart sources (each pinned below, AWS's documentation cited there):
CreateMultipartUpload drops its tags (so a tagged multipart source is built on moto only) and ignores
``ChecksumType=FULL_OBJECT`` (so a full-object checksum on a multipart source exists on moto only).
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ferry.buckets.objects import ObjectState, differences, head_object, part_sizes
from ferry.buckets.reconcile import (
    ABSENT,
    CHANGED,
    COPIED,
    COPIED_MULTIPART,
    DELETED,
    IGNORED,
    UNCHANGED,
    ListedObject,
    ReconcileError,
    ReconcileResult,
    copy_listed,
    needs_part_copy,
    reconcile_key,
)
from ferry.clients import AwsTarget, make_client
from ferry.errors import RetryableError
from ferry.spec import BucketMapping, S3Settings
from tests.aws_errors import client_error

pytestmark = pytest.mark.functional

MiB = 1024 * 1024
SETTINGS = S3Settings()
LOW_THRESHOLD = S3Settings(multipart_threshold=5 * MiB)
SECRET = b"SECRET-BODY-must-never-be-logged"
WRITE_OPERATIONS = frozenset(
    {
        "PutObject",
        "CopyObject",
        "DeleteObject",
        "DeleteObjects",
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPartCopy",
        "CompleteMultipartUpload",
        "AbortMultipartUpload",
        "PutObjectTagging",
        "DeleteObjectTagging",
        "PutObjectAcl",
        "RestoreObject",
    }
)
HEADERS = {
    "ContentType": "application/vnd.ferry+json; charset=utf-8",
    "CacheControl": "public, max-age=600",
    "ContentEncoding": "gzip",
    "ContentDisposition": 'attachment; filename="report.json"',
    "ContentLanguage": "de-CH",
    "Expires": datetime(2031, 5, 17, 8, 30, tzinfo=UTC),
}
METADATA = {"owner": "team-a", "checksum-note": "x y+z", "empty": ""}
# spaces, '+', '=', '/', ':', '@' (moto's tag pattern refuses '%', '&' and non-ASCII letters)
TAGGING = "project=ferry&note=a%20b%2Bc&k%3De=v%2Fw%3Ax%40y"
TAGS = {"project": "ferry", "note": "a b+c", "k=e": "v/w:x@y"}
MINISTACK = "ministack"


# --- fixtures and helpers -----------------------------------------------------------------------


class Recorder:
    """Records every S3 operation a client makes (name, Bucket) and fails any write that names the
    source bucket, at the moment it is attempted."""

    def __init__(self, client: Any, source: str) -> None:
        self.source = source
        self.calls: list[tuple[str, str | None]] = []
        self.violations: list[str] = []
        self._lock = threading.Lock()
        client.meta.events.register("before-parameter-build.s3", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        with self._lock:
            self.calls.append((model.name, params.get("Bucket")))
        if model.name in WRITE_OPERATIONS and params.get("Bucket") == self.source:
            self.violations.append(f"{model.name} on the source bucket {self.source}")
            raise AssertionError(f"reconcile tried {model.name} on the source bucket {self.source}")

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()


@pytest.fixture(scope="module")
def admin(where: AwsTarget) -> Any:
    """The test's own client: sets up and mutates the source. Never given to reconcile."""
    return make_client("s3", where)


@pytest.fixture
def mapping(admin: Any, unique: str) -> BucketMapping:
    source, target = f"src-{unique}", f"dst-{unique}"
    admin.create_bucket(Bucket=source)
    admin.create_bucket(Bucket=target)
    return BucketMapping(source=source, target=target)


@pytest.fixture
def s3(where: AwsTarget) -> Any:
    """The client reconcile uses: a fresh one per test, so hooks never leak between tests."""
    return make_client("s3", where)


@pytest.fixture
def recorder(s3: Any, mapping: BucketMapping) -> Iterator[Recorder]:
    rec = Recorder(s3, mapping.source)
    yield rec
    assert rec.violations == [], rec.violations  # the source bucket is never written, in any test


def put(admin: Any, bucket: str, key: str, body: bytes = b"hello", **kwargs: Any) -> str:
    return str(admin.put_object(Bucket=bucket, Key=key, Body=body, **kwargs)["ETag"])


def put_multipart(admin: Any, bucket: str, key: str, parts: list[bytes], **kwargs: Any) -> str:
    upload_id = admin.create_multipart_upload(Bucket=bucket, Key=key, **kwargs)["UploadId"]
    done = []
    for number, body in enumerate(parts, start=1):
        extra = {"ChecksumAlgorithm": kwargs["ChecksumAlgorithm"]} if "ChecksumAlgorithm" in kwargs else {}
        answer = admin.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body, **extra)
        part = {"ETag": answer["ETag"], "PartNumber": number}
        part.update({k: v for k, v in answer.items() if k.startswith("Checksum") and k != "ChecksumType"})
        done.append(part)
    result = admin.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    return str(result["ETag"])


def body_of(admin: Any, bucket: str, key: str) -> bytes:
    return bytes(admin.get_object(Bucket=bucket, Key=key)["Body"].read())


def state(admin: Any, bucket: str, key: str) -> ObjectState | None:
    return head_object(admin, bucket, key)


def assert_mirrored(admin: Any, mapping: BucketMapping, key: str) -> None:
    """The target key is exactly the source key: both absent, or same bytes, headers, metadata, tags."""
    source, target = state(admin, mapping.source, key), state(admin, mapping.target, key)
    if source is None:
        assert target is None, f"{key!r} should be absent from the target"
        return
    assert target is not None, f"{key!r} missing from the target"
    assert differences(source, target) == []
    assert target.storage_class == source.storage_class
    assert target.sse == source.sse
    src_hash = hashlib.sha256(body_of(admin, mapping.source, key)).hexdigest()
    assert hashlib.sha256(body_of(admin, mapping.target, key)).hexdigest() == src_hash


def once(action: Callable[[], object]) -> Callable[..., None]:
    """A hook that runs ``action`` the first time it fires only."""
    fired = threading.Event()

    def hook(**_: Any) -> None:
        if not fired.is_set():
            fired.set()
            action()

    return hook


def refuse_after(
    s3: Any, operation: str, change: Callable[[], object], emulator_kind: str, *, every: bool = False
) -> list[str]:
    """Run ``change`` (an overwrite of the source) right before reconcile's first ``operation``
    (CopyObject or UploadPartCopy) is sent, or before each one with ``every``, so that its pin no longer
    holds. ministack answers 412 PreconditionFailed itself; moto copies regardless (its fault, pinned by
    test_moto_ignores_copy_source_if_match), so on moto the hook raises S3's 412. Returns the error
    codes the copies were answered, faked or real, as they come."""
    answers: list[str] = []
    fired = threading.Event()

    def before(**_: Any) -> None:
        if fired.is_set() and not every:
            return
        fired.set()
        change()
        if emulator_kind != MINISTACK:
            answers.append("PreconditionFailed")
            raise client_error("PreconditionFailed", 412, operation)

    def after(parsed: dict[str, Any], **_: Any) -> None:
        code = parsed.get("Error", {}).get("Code")
        if code:
            answers.append(str(code))

    s3.meta.events.register(f"before-call.s3.{operation}", before)
    s3.meta.events.register(f"after-call.s3.{operation}", after)
    return answers


def multipart_tagging(emulator_kind: str) -> dict[str, str]:
    """``Tagging`` for a multipart source, on moto only: ministack's CreateMultipartUpload drops tags
    (pinned by test_ministack_drops_the_tags_of_create_multipart_upload)."""
    return {} if emulator_kind == MINISTACK else {"Tagging": TAGGING}


# --- new, identical, changed ----------------------------------------------------------------------


def test_a_new_object_is_copied_with_headers_metadata_and_tags(admin, s3, mapping, recorder):
    # GIVEN a source object with every content header, user metadata, tags, a storage class and SSE
    put(
        admin,
        mapping.source,
        "docs/report.json",
        SECRET,
        Metadata=METADATA,
        Tagging=TAGGING,
        StorageClass="STANDARD_IA",
        ServerSideEncryption="AES256",
        **HEADERS,
    )
    # WHEN it is reconciled
    result = reconcile_key(s3, mapping, "docs/report.json", SETTINGS)
    # THEN one server-side CopyObject, issued against the target, made the target identical
    assert result == ReconcileResult("docs/report.json", COPIED, 1, result.requests, len(SECRET))
    assert recorder.names().count("CopyObject") == 1
    assert ("CopyObject", mapping.target) in recorder.calls
    assert "GetObject" not in recorder.names()  # the body never passed through the client
    assert_mirrored(admin, mapping, "docs/report.json")
    target = admin.head_object(Bucket=mapping.target, Key="docs/report.json")
    for name, value in HEADERS.items():
        if name == "Expires":
            assert target["ExpiresString"] == "Sat, 17 May 2031 08:30:00 GMT"
        else:
            assert target[name] == value
    assert target["Metadata"] == METADATA
    assert target["StorageClass"] == "STANDARD_IA"
    assert target["ServerSideEncryption"] == "AES256"
    tags = admin.get_object_tagging(Bucket=mapping.target, Key="docs/report.json")["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == TAGS


def test_an_identical_object_is_unchanged_with_reads_only(admin, s3, mapping, recorder):
    # GIVEN a key already reconciled
    put(admin, mapping.source, "a.txt", b"same", Metadata=METADATA, Tagging=TAGGING)
    reconcile_key(s3, mapping, "a.txt", SETTINGS)
    recorder.clear()
    # WHEN it is reconciled again
    result = reconcile_key(s3, mapping, "a.txt", SETTINGS)
    # THEN nothing is written: two HEADs and two tagging reads, nothing else
    assert result == ReconcileResult("a.txt", UNCHANGED, 0, 4, 0)
    assert sorted(recorder.calls) == sorted(
        [
            ("HeadObject", mapping.source),
            ("GetObjectTagging", mapping.source),
            ("HeadObject", mapping.target),
            ("GetObjectTagging", mapping.target),
        ]
    )


@pytest.mark.parametrize(
    "change",
    [
        "content-same-size",
        "content-new-size",
        "metadata-only",
        "tags-only",
        "tags-removed",
        "content-type-only",
        "expires-only",
    ],
)
def test_every_kind_of_change_is_copied(admin, s3, mapping, recorder, change):
    # GIVEN a reconciled key
    key = f"changes/{change}.bin"
    base: dict[str, Any] = {"Metadata": {"v": "1"}, "Tagging": "v=1", "ContentType": "text/plain"}
    put(admin, mapping.source, key, b"aaaa", **base)
    assert reconcile_key(s3, mapping, key, SETTINGS).action == COPIED
    # WHEN the source changes in one way only
    if change == "content-same-size":
        put(admin, mapping.source, key, b"bbbb", **base)
    elif change == "content-new-size":
        put(admin, mapping.source, key, b"bbbbbbbb", **base)
    elif change == "metadata-only":
        put(admin, mapping.source, key, b"aaaa", **{**base, "Metadata": {"v": "2"}})
    elif change == "tags-only":
        admin.put_object_tagging(Bucket=mapping.source, Key=key, Tagging={"TagSet": [{"Key": "v", "Value": "2"}]})
    elif change == "tags-removed":
        admin.delete_object_tagging(Bucket=mapping.source, Key=key)
    elif change == "content-type-only":
        put(admin, mapping.source, key, b"aaaa", **{**base, "ContentType": "text/csv"})
    else:
        put(admin, mapping.source, key, b"aaaa", **base, Expires=datetime(2040, 1, 1, tzinfo=UTC))
    before = state(admin, mapping.target, key)
    assert before is not None and differences(state(admin, mapping.source, key), before) != []  # type: ignore[arg-type]
    result = reconcile_key(s3, mapping, key, SETTINGS)
    # THEN it is copied once and the target equals the source again
    assert (result.action, result.rounds) == (COPIED, 1)
    assert_mirrored(admin, mapping, key)
    assert reconcile_key(s3, mapping, key, SETTINGS).action == UNCHANGED


# --- deletes ----------------------------------------------------------------------------------------


def test_a_deleted_source_deletes_the_target(admin, s3, mapping, recorder):
    # GIVEN a reconciled key, then deleted from the source
    put(admin, mapping.source, "gone.txt")
    reconcile_key(s3, mapping, "gone.txt", SETTINGS)
    admin.delete_object(Bucket=mapping.source, Key="gone.txt")
    # WHEN it is reconciled
    result = reconcile_key(s3, mapping, "gone.txt", SETTINGS)
    # THEN the target key is deleted (by a delete naming the target), and a repeat finds both absent
    assert (result.action, result.rounds, result.bytes_copied) == (DELETED, 1, 0)
    assert ("DeleteObject", mapping.target) in recorder.calls
    assert state(admin, mapping.target, "gone.txt") is None
    again = reconcile_key(s3, mapping, "gone.txt", SETTINGS)
    assert (again.action, again.rounds, again.requests) == (ABSENT, 0, 2)


def test_neither_side_has_the_key_is_absent(admin, s3, mapping, recorder):
    # GIVEN a key neither bucket has
    # WHEN it is reconciled
    result = reconcile_key(s3, mapping, "never/was.txt", SETTINGS)
    # THEN nothing is written: one HEAD per side
    assert result == ReconcileResult("never/was.txt", ABSENT, 0, 2, 0)
    assert [name for name in recorder.names() if name in WRITE_OPERATIONS] == []


def test_a_target_only_key_is_deleted(admin, s3, mapping, recorder):
    # GIVEN a key only the target has (a stale copy)
    put(admin, mapping.target, "stale.txt", b"old")
    # WHEN it is reconciled
    result = reconcile_key(s3, mapping, "stale.txt", SETTINGS)
    # THEN it is removed
    assert result.action == DELETED
    assert state(admin, mapping.target, "stale.txt") is None


def test_a_source_that_reappears_during_the_delete_is_copied(admin, s3, mapping, recorder):
    # GIVEN a key deleted from the source, recreated right after reconcile deletes the target copy
    put(admin, mapping.source, "phoenix.txt", b"v1")
    reconcile_key(s3, mapping, "phoenix.txt", SETTINGS)
    admin.delete_object(Bucket=mapping.source, Key="phoenix.txt")
    s3.meta.events.register(
        "after-call.s3.DeleteObject", once(lambda: put(admin, mapping.source, "phoenix.txt", b"v2"))
    )
    # WHEN it is reconciled
    result = reconcile_key(s3, mapping, "phoenix.txt", SETTINGS)
    # THEN the re-check after the delete sees it and goes round again: the target holds v2
    assert (result.action, result.rounds) == (COPIED, 2)
    assert body_of(admin, mapping.target, "phoenix.txt") == b"v2"
    assert_mirrored(admin, mapping, "phoenix.txt")


# --- order, duplicates, sequences -----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_delete_and_recreate_in_any_order_converges(admin, s3, mapping, recorder, seed):
    # GIVEN a source key that is created, deleted, recreated, deleted and recreated again,
    # with reconciles (= events, late or early, duplicated) run at random points of that history
    rng = random.Random(seed)
    key = "seq/item.txt"
    history: list[Callable[[], Any]] = [
        lambda: put(admin, mapping.source, key, b"v1", Metadata={"v": "1"}),
        lambda: admin.delete_object(Bucket=mapping.source, Key=key),
        lambda: put(admin, mapping.source, key, b"v2", Tagging="v=2"),
        lambda: admin.delete_object(Bucket=mapping.source, Key=key),
        lambda: put(admin, mapping.source, key, b"v3!", ContentType="text/x-v3"),
    ]
    if seed % 2:
        history.append(lambda: admin.delete_object(Bucket=mapping.source, Key=key))
    for change in history:
        change()
        for _ in range(rng.randint(0, 2)):
            # WHEN an event (for this or an earlier change) is processed now
            reconcile_key(s3, mapping, key, SETTINGS)
            # THEN the target equals the source as it is now, whichever event triggered it
            assert_mirrored(admin, mapping, key)
    # WHEN the last events finally arrive (late)
    final = reconcile_key(s3, mapping, key, SETTINGS)
    # THEN the target is the source's final state, and a duplicate changes nothing
    assert_mirrored(admin, mapping, key)
    assert reconcile_key(s3, mapping, key, SETTINGS).rounds == 0
    assert final.action in (UNCHANGED, COPIED, DELETED, ABSENT)


def test_duplicated_and_reordered_events_for_many_keys_converge(admin, s3, mapping, recorder):
    # GIVEN a batch of changes to many keys (puts, overwrites, deletes)
    keys = [f"batch/{i:02d}.txt" for i in range(12)]
    events: list[str] = []
    for i, key in enumerate(keys):
        put(admin, mapping.source, key, f"first {i}".encode())
        events.append(key)
        if i % 3 == 0:
            put(admin, mapping.source, key, f"second {i}".encode(), Metadata={"n": str(i)})
            events.append(key)
        if i % 4 == 1:
            admin.delete_object(Bucket=mapping.source, Key=key)
            events.append(key)
    # WHEN every event is delivered twice, in a shuffled order
    delivered = events * 2
    random.Random(7).shuffle(delivered)
    actions = [reconcile_key(s3, mapping, key, SETTINGS).action for key in delivered]
    # THEN every key mirrors the source, each key was written at most once, the rest were no-ops
    for key in keys:
        assert_mirrored(admin, mapping, key)
    writes = [a for a in actions if a in (COPIED, DELETED)]
    assert len(writes) == sum(1 for i in range(12) if i % 4 != 1)  # deleted-before-copy keys: absent
    assert set(actions) <= {COPIED, UNCHANGED, ABSENT}


def test_concurrent_reconciles_of_one_key_converge(admin, s3, mapping, recorder):
    # GIVEN a key changed once
    put(admin, mapping.source, "hot.txt", b"v1")
    reconcile_key(s3, mapping, "hot.txt", SETTINGS)
    put(admin, mapping.source, "hot.txt", b"v2", Metadata={"v": "2"})
    # WHEN eight reconciles of it run at the same time (duplicate deliveries to parallel consumers)
    results: list[ReconcileResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(reconcile_key(s3, mapping, "hot.txt", SETTINGS))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # THEN all succeed and the target is v2
    assert errors == []
    assert {r.action for r in results} <= {COPIED, UNCHANGED}
    assert_mirrored(admin, mapping, "hot.txt")


# --- awkward keys ---------------------------------------------------------------------------------

AWKWARD_KEYS = [
    "with space/file name.txt",
    "plus+sign+key",
    "percent%20literal%2Fnot-a-slash",
    "ünïcødé/日本語/☃.txt",
    "hash#fragment",
    "question?mark=1&x=2",
    "deep/" + "/".join(f"level{i}" for i in range(20)) + "/leaf.txt",
    "folder/with/trailing/slash/",
    "mixed &$@=;:,!'()*~[]{}^`|<>\\ key",
    "zero-byte-object",
]


@pytest.mark.parametrize("key", AWKWARD_KEYS)
def test_awkward_keys_are_copied_and_deleted_exactly(admin, s3, mapping, recorder, key):
    # GIVEN a source object under an awkward key (the trailing-slash "folder" and the last one empty)
    body = b"" if key.endswith("/") or key == "zero-byte-object" else SECRET
    put(admin, mapping.source, key, body, Metadata={"k": "v"}, Tagging="t=1")
    # WHEN it is reconciled, twice
    first = reconcile_key(s3, mapping, key, SETTINGS)
    second = reconcile_key(s3, mapping, key, SETTINGS)
    # THEN the same key exists in the target with the same bytes, and the repeat is a no-op
    assert (first.action, first.bytes_copied) == (COPIED, len(body))
    assert second.action == UNCHANGED
    assert_mirrored(admin, mapping, key)
    assert [o["Key"] for o in admin.list_objects_v2(Bucket=mapping.target).get("Contents", [])] == [key]
    # WHEN the source key is deleted and reconciled THEN the target key is gone too
    admin.delete_object(Bucket=mapping.source, Key=key)
    assert reconcile_key(s3, mapping, key, SETTINGS).action == DELETED
    assert admin.list_objects_v2(Bucket=mapping.target).get("KeyCount") == 0


# --- the source changes under the copy --------------------------------------------------------------


def test_overwritten_between_head_and_copy_converges_to_the_new_content(admin, s3, mapping, recorder, emulator_kind):
    # GIVEN a source key overwritten right before reconcile's CopyObject is sent
    # (S3, and ministack, answer 412 to the pinned copy; moto copies the new content instead)
    put(admin, mapping.source, "race.txt", b"old content", Metadata={"v": "old"})
    s3.meta.events.register(
        "before-call.s3.CopyObject",
        once(lambda: put(admin, mapping.source, "race.txt", b"NEW content!", Metadata={"v": "new"})),
    )
    # WHEN it is reconciled
    result = reconcile_key(s3, mapping, "race.txt", SETTINGS)
    # THEN the copy was pinned to the ETag read, and the re-read after it confirms the NEW content
    # (on ministack after a round lost to the 412)
    assert (result.action, result.rounds) == (COPIED, 2 if emulator_kind == MINISTACK else 1)
    assert body_of(admin, mapping.target, "race.txt") == b"NEW content!"
    assert admin.head_object(Bucket=mapping.target, Key="race.txt")["Metadata"] == {"v": "new"}
    assert_mirrored(admin, mapping, "race.txt")


def test_copies_are_pinned_to_the_etag_just_read(admin, s3, mapping, recorder):
    # GIVEN a source object, and a hook recording the copy's parameters
    etag = put(admin, mapping.source, "pinned.txt", b"pin me", Tagging="a=1&b=x%20y")
    seen: list[dict[str, Any]] = []
    s3.meta.events.register("provide-client-params.s3.CopyObject", lambda params, **_: seen.append(dict(params)))
    # WHEN it is reconciled
    reconcile_key(s3, mapping, "pinned.txt", SETTINGS)
    # THEN the copy names the target, reads the source server-side, and is pinned to the ETag
    assert len(seen) == 1
    params = seen[0]
    assert params["Bucket"] == mapping.target
    assert params["CopySource"] == {"Bucket": mapping.source, "Key": "pinned.txt"}
    assert params["CopySourceIfMatch"] == etag
    assert (params["MetadataDirective"], params["StorageClass"]) == ("COPY", "STANDARD")
    # tags as read, set explicitly: moto's TaggingDirective=COPY merges into the target's old tags
    assert (params["TaggingDirective"], params["Tagging"]) == ("REPLACE", "a=1&b=x%20y")


def test_a_412_on_the_copy_leads_to_another_round(admin, s3, mapping, recorder, emulator_kind):
    # GIVEN a source key overwritten right before the first (pinned) copy, which S3 refuses with 412
    put(admin, mapping.source, "412.txt", b"v1")
    answers = refuse_after(s3, "CopyObject", lambda: put(admin, mapping.source, "412.txt", b"v2 bigger"), emulator_kind)
    # WHEN it is reconciled
    result = reconcile_key(s3, mapping, "412.txt", SETTINGS)
    # THEN the lost round is followed by a new read and a copy of v2
    assert answers == ["PreconditionFailed"]
    assert (result.action, result.rounds) == (COPIED, 2)
    assert recorder.names().count("CopyObject") == 2
    assert result.bytes_copied == len(b"v2 bigger")
    assert body_of(admin, mapping.target, "412.txt") == b"v2 bigger"


def test_a_source_that_keeps_changing_raises_reconcile_error(admin, s3, mapping, recorder):
    # GIVEN a source key rewritten after every copy reconcile makes
    put(admin, mapping.source, "churn.txt", b"v0")
    counter = iter(range(1, 100))
    s3.meta.events.register(
        "after-call.s3.CopyObject", lambda **_: put(admin, mapping.source, "churn.txt", f"v{next(counter)}".encode())
    )
    settings = S3Settings(max_rounds=3)
    # WHEN it is reconciled
    with pytest.raises(ReconcileError) as raised:
        reconcile_key(s3, mapping, "churn.txt", settings)
    # THEN it gives up after max_rounds writes, naming the key, as a retryable error
    assert isinstance(raised.value, RetryableError)
    assert raised.value.key == "churn.txt" and raised.value.rounds == 3
    assert "churn.txt" in str(raised.value)
    assert recorder.names().count("CopyObject") == 3


def test_412_on_every_round_raises_reconcile_error(admin, s3, mapping, recorder, emulator_kind):
    # GIVEN a source overwritten right before every copy, which S3 therefore refuses with 412 every time
    put(admin, mapping.source, "always412.txt", b"v0")
    versions = iter(range(1, 100))
    answers = refuse_after(
        s3,
        "CopyObject",
        lambda: put(admin, mapping.source, "always412.txt", f"v{next(versions)}".encode()),
        emulator_kind,
        every=True,
    )
    # WHEN it is reconciled THEN ReconcileError after max_rounds, and nothing was written
    with pytest.raises(ReconcileError, match=r"always412\.txt"):
        reconcile_key(s3, mapping, "always412.txt", S3Settings(max_rounds=2))
    assert answers == ["PreconditionFailed"] * 2
    assert state(admin, mapping.target, "always412.txt") is None


def test_transient_errors_are_retried_and_permanent_ones_raised(admin, s3, mapping, recorder):
    # GIVEN a copy that first meets SlowDown (503), then a key whose copy is denied
    put(admin, mapping.source, "slow.txt", b"slow")
    put(admin, mapping.source, "denied.txt", b"denied")

    def slow_down() -> None:
        raise client_error("SlowDown", 503, "CopyObject")

    s3.meta.events.register("before-call.s3.CopyObject", once(slow_down))
    # WHEN the first is reconciled THEN the SlowDown is retried and the copy lands
    result = reconcile_key(s3, mapping, "slow.txt", SETTINGS)
    assert (result.action, result.rounds) == (COPIED, 1)
    assert recorder.names().count("CopyObject") == 2  # the same round, one retry
    assert_mirrored(admin, mapping, "slow.txt")

    # WHEN the second meets AccessDenied THEN it is raised unchanged
    def deny(**_: Any) -> None:
        raise client_error("AccessDenied", 403, "CopyObject")

    s3.meta.events.register("before-call.s3.CopyObject", deny)
    with pytest.raises(ClientError, match="AccessDenied"):
        reconcile_key(s3, mapping, "denied.txt", SETTINGS)


# --- multipart ----------------------------------------------------------------------------------------


def _multipart_source(admin: Any, mapping: BucketMapping, key: str, **kwargs: Any) -> str:
    parts = [b"a" * 5 * MiB, b"b" * 5 * MiB, b"c" * 1234]
    return put_multipart(admin, mapping.source, key, parts, **kwargs)


def test_a_multipart_source_above_the_threshold_is_copied_part_by_part(admin, s3, mapping, recorder, emulator_kind):
    # GIVEN a 3-part source (5 MiB, 5 MiB, 1234 B) with headers, metadata, tags (moto: see
    # multipart_tagging), storage class and SSE
    etag = _multipart_source(
        admin,
        mapping,
        "big/video.bin",
        Metadata=METADATA,
        **multipart_tagging(emulator_kind),
        StorageClass="STANDARD_IA",
        ServerSideEncryption="AES256",
        **HEADERS,
    )
    assert etag.endswith('-3"')
    # WHEN it is reconciled with a threshold below its size
    result = reconcile_key(s3, mapping, "big/video.bin", LOW_THRESHOLD)
    # THEN it is copied with UploadPartCopy in the source's layout: the target's ETag is the source's
    assert (result.action, result.rounds, result.bytes_copied) == (COPIED_MULTIPART, 1, 10 * MiB + 1234)
    names = recorder.names()
    assert names.count("UploadPartCopy") == 3 and "CopyObject" not in names
    assert ("CreateMultipartUpload", mapping.target) in recorder.calls
    assert admin.head_object(Bucket=mapping.target, Key="big/video.bin")["ETag"] == etag
    assert_mirrored(admin, mapping, "big/video.bin")
    target = admin.head_object(Bucket=mapping.target, Key="big/video.bin")
    assert target["ExpiresString"] == "Sat, 17 May 2031 08:30:00 GMT"
    assert target["ContentEncoding"] == "gzip" and target["ContentLanguage"] == "de-CH"
    assert target["Metadata"] == METADATA
    tags = admin.get_object_tagging(Bucket=mapping.target, Key="big/video.bin")["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == ({} if emulator_kind == MINISTACK else TAGS)
    assert admin.list_multipart_uploads(Bucket=mapping.target).get("Uploads", []) == []
    # AND a repeat is a no-op
    assert reconcile_key(s3, mapping, "big/video.bin", LOW_THRESHOLD).action == UNCHANGED


def test_every_part_copy_is_pinned_and_ranged(admin, s3, mapping, recorder):
    # GIVEN a multipart source and a hook recording the part copies
    etag = _multipart_source(admin, mapping, "ranges.bin")
    seen: list[dict[str, Any]] = []
    lock = threading.Lock()

    def record(params: dict[str, Any], **_: Any) -> None:
        with lock:
            seen.append(dict(params))

    s3.meta.events.register("before-parameter-build.s3.UploadPartCopy", record)
    # WHEN it is reconciled
    reconcile_key(s3, mapping, "ranges.bin", LOW_THRESHOLD)
    # THEN each part copies its range of the source, pinned to the ETag read
    by_part = {p["PartNumber"]: p for p in seen}
    assert sorted(by_part) == [1, 2, 3]
    assert [by_part[n]["CopySourceRange"] for n in (1, 2, 3)] == [
        f"bytes=0-{5 * MiB - 1}",
        f"bytes={5 * MiB}-{10 * MiB - 1}",
        f"bytes={10 * MiB}-{10 * MiB + 1233}",
    ]
    assert {p["CopySourceIfMatch"] for p in seen} == {etag}
    assert {p["Bucket"] for p in seen} == {mapping.target}


def test_a_failure_mid_multipart_aborts_the_upload_and_raises(admin, s3, mapping, recorder):
    # GIVEN a multipart source, and a part copy that fails on the second UploadPartCopy
    _multipart_source(admin, mapping, "fails.bin")
    calls = iter(range(1, 100))
    lock = threading.Lock()

    def fail_second(**_: Any) -> None:
        with lock:
            n = next(calls)
        if n == 2:
            raise client_error("AccessDenied", 403, "UploadPartCopy")

    s3.meta.events.register("before-call.s3.UploadPartCopy", fail_second)
    # WHEN it is reconciled
    with pytest.raises(ClientError, match="AccessDenied"):
        reconcile_key(s3, mapping, "fails.bin", LOW_THRESHOLD)
    # THEN the upload was aborted (none left open), nothing was completed, the error was raised
    assert ("AbortMultipartUpload", mapping.target) in recorder.calls
    assert "CompleteMultipartUpload" not in recorder.names()
    assert admin.list_multipart_uploads(Bucket=mapping.target).get("Uploads", []) == []
    assert state(admin, mapping.target, "fails.bin") is None


def test_a_412_on_a_part_copy_aborts_and_goes_round_again(admin, s3, mapping, recorder, emulator_kind):
    # GIVEN a multipart source overwritten (with a different layout) right before its first part copy,
    # so that S3 refuses the pinned part copies with 412
    _multipart_source(admin, mapping, "moving.bin", Metadata={"v": "1"})
    new_parts = [b"x" * 6 * MiB, b"y" * 10]
    answers = refuse_after(
        s3,
        "UploadPartCopy",
        lambda: put_multipart(admin, mapping.source, "moving.bin", new_parts, Metadata={"v": "2"}),
        emulator_kind,
    )
    # WHEN it is reconciled
    result = reconcile_key(s3, mapping, "moving.bin", LOW_THRESHOLD)
    # THEN the first upload was aborted and the second round copied the new version in its layout
    assert answers and set(answers) == {"PreconditionFailed"}  # parts copied concurrently may each meet it
    assert (result.action, result.rounds) == (COPIED_MULTIPART, 2)
    assert recorder.names().count("AbortMultipartUpload") == 1
    assert admin.list_multipart_uploads(Bucket=mapping.target).get("Uploads", []) == []
    assert_mirrored(admin, mapping, "moving.bin")
    assert admin.head_object(Bucket=mapping.target, Key="moving.bin")["Metadata"] == {"v": "2"}


def test_a_multipart_source_overwritten_mid_copy_converges(admin, s3, mapping, recorder):
    # GIVEN a multipart source overwritten by a single-part object before the first part copy is sent
    # (ministack refuses the pinned part copies with 412; moto ignores the pin, so its parts read the
    # new content: a mixed copy that the re-read shows different)
    _multipart_source(admin, mapping, "mixed.bin", Metadata={"v": "1"})
    s3.meta.events.register(
        "before-call.s3.UploadPartCopy",
        once(lambda: put(admin, mapping.source, "mixed.bin", b"z" * (10 * MiB + 1234), Metadata={"v": "2"})),
    )
    # WHEN it is reconciled
    result = reconcile_key(s3, mapping, "mixed.bin", LOW_THRESHOLD)
    # THEN the re-read after the write sees the difference, and the next round copies the new object
    assert result.rounds >= 2
    assert result.action == COPIED
    assert_mirrored(admin, mapping, "mixed.bin")


def test_a_source_overwritten_while_its_parts_are_read_is_a_lost_round(admin, s3, mapping, recorder):
    # GIVEN a multipart source replaced by a single-part object right after its first part HEAD
    _multipart_source(admin, mapping, "relayout.bin")
    replaced = threading.Event()

    def replace_once(params: dict[str, Any], **_: Any) -> None:
        if params.get("PartNumber") == 1 and not replaced.is_set():
            replaced.set()
            put(admin, mapping.source, "relayout.bin", b"single part now")

    s3.meta.events.register("provide-client-params.s3.HeadObject", replace_once)
    # WHEN it is reconciled
    result = reconcile_key(s3, mapping, "relayout.bin", LOW_THRESHOLD)
    # THEN the layout that no longer adds up costs a round, and the next one copies the new object
    assert replaced.is_set()
    assert (result.action, result.rounds) == (COPIED, 2)
    assert "CreateMultipartUpload" not in recorder.names()
    assert_mirrored(admin, mapping, "relayout.bin")


def test_a_multipart_source_below_the_threshold_without_checksum_keeps_its_layout(admin, s3, mapping, recorder):
    # GIVEN a multipart source without an additional checksum, below the (default 5 GiB) threshold:
    # a CopyObject would give the target a plain-MD5 ETag that can never be compared with "-3"
    etag = _multipart_source(admin, mapping, "legacy.bin")
    source = state(admin, mapping.source, "legacy.bin")
    assert source is not None and source.checksums == ()
    # WHEN it is reconciled
    result = reconcile_key(s3, mapping, "legacy.bin", SETTINGS)
    # THEN it is copied part by part, converges in one round, and stays unchanged afterwards
    assert (result.action, result.rounds) == (COPIED_MULTIPART, 1)
    assert admin.head_object(Bucket=mapping.target, Key="legacy.bin")["ETag"] == etag
    assert reconcile_key(s3, mapping, "legacy.bin", SETTINGS).action == UNCHANGED


@pytest.mark.emulators(
    "moto",
    reason="ministack ignores ChecksumType=FULL_OBJECT on CreateMultipartUpload "
    "(test_ministack_gives_a_multipart_upload_a_composite_checksum_when_asked_for_a_full_object_one)",
)
def test_a_multipart_source_below_the_threshold_with_a_full_object_checksum_is_one_copy(admin, s3, mapping, recorder):
    # GIVEN a multipart source carrying a full-object CRC32, below the threshold
    _multipart_source(admin, mapping, "modern.bin", ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")
    source = state(admin, mapping.source, "modern.bin")
    assert source is not None and source.multipart and source.checksums
    # WHEN it is reconciled
    result = reconcile_key(s3, mapping, "modern.bin", SETTINGS)
    # THEN one CopyObject is enough: the checksum shows the (re-ETagged) target identical
    assert (result.action, result.rounds) == (COPIED, 1)
    assert recorder.names().count("CopyObject") == 1
    assert reconcile_key(s3, mapping, "modern.bin", SETTINGS).action == UNCHANGED


class _PartAnswers:
    """An S3 client stub answering HEAD and GET with partNumber from ``heads`` / ``gets`` (part -> answer)."""

    def __init__(self, heads: dict[int, dict[str, Any]], gets: dict[int, dict[str, Any]]) -> None:
        self.heads, self.gets, self.closed = heads, gets, 0

    def head_object(self, PartNumber: int, **_: Any) -> dict[str, Any]:
        return self.heads[PartNumber]

    def get_object(self, PartNumber: int, **_: Any) -> dict[str, Any]:
        stub = self

        class Body:
            def close(self) -> None:
                stub.closed += 1

        return {**self.gets[PartNumber], "Body": Body()}


def test_part_sizes_come_from_part_heads_else_from_part_gets_read_no_further() -> None:
    # GIVEN a 2-part object of 7 bytes (5 + 2)
    state = ObjectState("k", 7, '"abc-2"', (), (), (), parts_count=2)
    whole = {"ContentLength": 7}  # a HEAD that ignored partNumber: the whole object, no PartsCount
    parts = {1: {"ContentLength": 5, "PartsCount": 2}, 2: {"ContentLength": 2, "PartsCount": 2}}
    # WHEN the part HEADs answer with the parts THEN their sizes are the layout, no GET made
    assert part_sizes(_PartAnswers(parts, {}), "b", "k", state) == (5, 2)  # type: ignore[arg-type]
    # WHEN they answer the whole object THEN each size comes from a part GET whose body is closed unread
    fallback = _PartAnswers({1: whole, 2: whole}, parts)
    assert part_sizes(fallback, "b", "k", state) == (5, 2)  # type: ignore[arg-type]
    assert fallback.closed == 2
    # WHEN neither answers with a part THEN it is an error, never a guessed layout
    with pytest.raises(ValueError, match="partNumber=1"):
        part_sizes(_PartAnswers({1: whole}, {1: whole}), "b", "k", state)  # type: ignore[arg-type]
    # AND parts that do not add up to the object are refused
    short = {1: {"ContentLength": 5, "PartsCount": 2}, 2: {"ContentLength": 1, "PartsCount": 2}}
    with pytest.raises(ValueError, match="add up to 6 bytes, not 7"):
        part_sizes(_PartAnswers(short, {}), "b", "k", state)  # type: ignore[arg-type]


def test_which_sources_are_copied_part_by_part() -> None:
    # GIVEN sources of each shape WHEN the copy method is chosen THEN only multipart ones can go by parts
    def shape(etag: str, size: int, checksums: tuple[tuple[str, str], ...] = ()) -> ObjectState:
        return ObjectState("k", size, etag, (), (), (), checksums=checksums)

    big = 6 * 1024**3
    assert not needs_part_copy(shape('"abc"', 5 * 1024**3), SETTINGS)  # single-part: always CopyObject
    assert needs_part_copy(shape('"abc-3"', big, (("ChecksumCRC32", "AAAA"),)), SETTINGS)  # > 5 GiB
    assert needs_part_copy(shape('"abc-3"', 10 * MiB), SETTINGS)  # no checksum: keep the ETag
    assert needs_part_copy(shape('"abc-3"', 10 * MiB, (("ChecksumCRC32", "AAAA-3"),)), SETTINGS)  # composite
    assert not needs_part_copy(shape('"abc-3"', 10 * MiB, (("ChecksumCRC32", "AAAA"),)), SETTINGS)


# --- scope, clients, logs -----------------------------------------------------------------------------


def test_keys_outside_the_prefix_are_ignored_without_a_request(admin, s3, mapping, recorder):
    # GIVEN a mapping limited to "in/", and a key on each side of it
    scoped = BucketMapping(mapping.source, mapping.target, prefix="in/")
    put(admin, mapping.source, "in/yes.txt")
    put(admin, mapping.source, "out/no.txt")
    # WHEN both are reconciled
    ignored = reconcile_key(s3, scoped, "out/no.txt", SETTINGS)
    assert recorder.calls == []
    copied = reconcile_key(s3, scoped, "in/yes.txt", SETTINGS)
    # THEN only the key under the prefix is copied; the other costs no request at all
    assert ignored == ReconcileResult("out/no.txt", IGNORED, 0, 0, 0)
    assert copied.action == COPIED
    assert state(admin, mapping.target, "out/no.txt") is None


def test_the_copy_is_issued_by_the_target_side_client(admin, s3, mapping, where):
    # GIVEN separate clients for the source and the target side (cross-account shape)
    target_s3 = make_client("s3", where)
    source_side, target_side = Recorder(s3, mapping.source), Recorder(target_s3, mapping.source)
    put(admin, mapping.source, "x/y.txt", b"two clients", Tagging="a=b")
    # WHEN it is reconciled, then deleted and reconciled
    assert reconcile_key(s3, mapping, "x/y.txt", SETTINGS, target_s3=target_s3).action == COPIED
    admin.delete_object(Bucket=mapping.source, Key="x/y.txt")
    assert reconcile_key(s3, mapping, "x/y.txt", SETTINGS, target_s3=target_s3).action == DELETED
    # THEN the source-side client only read the source; the target-side client did every write
    assert {bucket for _, bucket in source_side.calls} == {mapping.source}
    assert set(source_side.names()) == {"HeadObject", "GetObjectTagging"}
    assert {bucket for _, bucket in target_side.calls} == {mapping.target}
    assert {"CopyObject", "DeleteObject"} <= set(target_side.names())
    assert source_side.violations == target_side.violations == []


def test_a_mapping_onto_itself_is_refused(admin, s3, mapping):
    # GIVEN a mapping whose target is its source WHEN reconciled THEN it is refused before any request
    from ferry.errors import PermanentError

    with pytest.raises(PermanentError, match="must differ"):
        reconcile_key(s3, BucketMapping(mapping.source, mapping.source), "k", SETTINGS)


def test_logs_name_keys_never_bodies(admin, s3, mapping, recorder, caplog):
    # GIVEN an object whose body is a recognisable secret
    put(admin, mapping.source, "logged/key.txt", SECRET)
    # WHEN it is reconciled with debug logging on
    with caplog.at_level(logging.DEBUG, logger="ferry"):
        reconcile_key(s3, mapping, "logged/key.txt", SETTINGS)
        admin.delete_object(Bucket=mapping.source, Key="logged/key.txt")
        reconcile_key(s3, mapping, "logged/key.txt", SETTINGS)
    # THEN the logs name the key and never contain the body
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("ferry"))
    assert "logged/key.txt" in text
    assert SECRET.decode() not in text


# --- copy_listed: the replay copy, one request per key ---------------------------------------------


def _listed(admin: Any, bucket: str, key: str) -> ListedObject:
    (entry,) = [o for o in admin.list_objects_v2(Bucket=bucket, Prefix=key)["Contents"] if o["Key"] == key]
    return ListedObject(entry["Key"], entry["ETag"], entry["Size"], entry.get("StorageClass", "STANDARD"))


def test_copy_listed_copies_a_listed_key_exactly_in_one_request(admin, s3, mapping, recorder):
    # GIVEN a listed source key with content headers, metadata and tags
    put(admin, mapping.source, "one request.json", b'{"a": 1}', Metadata=METADATA, Tagging=TAGGING, **HEADERS)
    entry = _listed(admin, mapping.source, "one request.json")
    seen: list[dict[str, Any]] = []
    s3.meta.events.register("provide-client-params.s3.CopyObject", lambda params, **_: seen.append(dict(params)))
    # WHEN the replay copy copies it
    result = copy_listed(s3, mapping, entry, SETTINGS)
    # THEN one request, a CopyObject pinned to the listed ETag that copies headers, metadata and tags
    # server-side, and the target mirrors the source
    assert (result.action, result.requests, result.bytes_copied) == (COPIED, 1, entry.size)
    assert recorder.names() == ["CopyObject"]
    params = seen[0]
    assert params["CopySourceIfMatch"] == entry.etag and params["StorageClass"] == "STANDARD"
    assert (params["MetadataDirective"], params["TaggingDirective"]) == ("COPY", "COPY")
    assert_mirrored(admin, mapping, "one request.json")


def test_copy_listed_keeps_a_multipart_source_s_layout(admin, s3, mapping, recorder, emulator_kind):
    # GIVEN a multipart source (ETag ...-2) with headers, metadata and tags (moto: see multipart_tagging)
    etag = put_multipart(
        admin,
        mapping.source,
        "big.bin",
        [b"a" * (5 * MiB), b"b" * 1000],
        Metadata=METADATA,
        **multipart_tagging(emulator_kind),
    )
    assert etag.endswith('-2"')
    # WHEN the replay copy copies it
    result = copy_listed(s3, mapping, _listed(admin, mapping.source, "big.bin"), LOW_THRESHOLD)
    # THEN part by part with the source's layout: the target's ETag is the source's, every header kept
    assert result.action == COPIED_MULTIPART
    assert admin.head_object(Bucket=mapping.target, Key="big.bin")["ETag"] == etag
    assert_mirrored(admin, mapping, "big.bin")


@pytest.mark.parametrize("change", ["overwritten (412)", "deleted"])
def test_copy_listed_skips_a_key_that_changed_after_the_listing(admin, s3, mapping, recorder, change, emulator_kind):
    # GIVEN a listed key that changes before its copy: overwritten (S3 answers the pinned copy 412), or gone
    put(admin, mapping.source, "moved.txt", b"v1")
    entry = _listed(admin, mapping.source, "moved.txt")
    if change == "deleted":
        admin.delete_object(Bucket=mapping.source, Key="moved.txt")
        answers = []
    else:
        answers = refuse_after(s3, "CopyObject", lambda: put(admin, mapping.source, "moved.txt", b"v2"), emulator_kind)
    # WHEN the replay copy copies it
    result = copy_listed(s3, mapping, entry, SETTINGS)
    # THEN it is skipped without a write (its event waits in the queue and is reconciled at the release)
    assert answers == ([] if change == "deleted" else ["PreconditionFailed"])
    assert result.action == CHANGED and result.bytes_copied == 0
    assert admin.list_objects_v2(Bucket=mapping.target).get("KeyCount", 0) == 0


# --- the emulators' faults this file works around: each test fails the day its emulator is fixed ---------


@pytest.mark.emulators("moto", reason="pins moto's fault; ministack enforces CopySourceIfMatch as S3 does")
def test_moto_ignores_copy_source_if_match(admin, mapping):
    # GIVEN a source object, and an ETag that is not its own
    put(admin, mapping.source, "k", b"v1")
    wrong = '"00000000000000000000000000000000"'
    source = {"Bucket": mapping.source, "Key": "k"}
    upload_id = admin.create_multipart_upload(Bucket=mapping.target, Key="k")["UploadId"]
    # WHEN copied pinned to it, whole and as a part
    copied = admin.copy_object(Bucket=mapping.target, Key="k", CopySource=source, CopySourceIfMatch=wrong)
    part = admin.upload_part_copy(
        Bucket=mapping.target, Key="k", UploadId=upload_id, PartNumber=1, CopySource=source, CopySourceIfMatch=wrong
    )
    admin.abort_multipart_upload(Bucket=mapping.target, Key="k", UploadId=upload_id)
    # THEN moto copies both; S3 answers 412 PreconditionFailed to each ("x-amz-copy-source-if-match: Copies
    # the object if its entity tag (ETag) matches the specified tag", API_CopyObject and API_UploadPartCopy)
    assert copied["CopyObjectResult"]["ETag"] and part["CopyPartResult"]["ETag"]
    assert body_of(admin, mapping.target, "k") == b"v1"


@pytest.mark.emulators("ministack", reason="pins ministack's fault; moto answers a part HEAD with the part")
def test_ministack_ignores_the_part_number_of_a_head_object(admin, mapping):
    # GIVEN a 2-part object (ministack does not enforce the 5 MiB minimum part size)
    put_multipart(admin, mapping.source, "parts", [b"a" * 100, b"b" * 10])
    # WHEN its first part is read with HEAD and with GET
    head = admin.head_object(Bucket=mapping.source, Key="parts", PartNumber=1)
    get = admin.get_object(Bucket=mapping.source, Key="parts", PartNumber=1)
    get["Body"].close()
    # THEN the HEAD describes the whole object, without PartsCount; S3 "effectively performs a 'ranged'
    # HEAD request for the part specified" (API_HeadObject), as ministack's GET does
    assert (head["ContentLength"], "PartsCount" in head) == (110, False)
    assert (get["ContentLength"], get["PartsCount"]) == (100, 2)


@pytest.mark.emulators("moto", reason="pins moto's fault; ministack answers a part GET with the part")
def test_moto_ignores_the_part_number_of_a_get_object(admin, mapping):
    # GIVEN a 2-part object
    put_multipart(admin, mapping.source, "parts", [b"a" * 5 * MiB, b"b" * 10])
    # WHEN its second part is read with GET
    got = admin.get_object(Bucket=mapping.source, Key="parts", PartNumber=2)
    body = got["Body"].read()
    # THEN moto answers the whole object, without PartsCount; S3 "effectively performs a 'ranged' GET
    # request for the part specified" (API_GetObject). ferry reads a part's size with a GET only where a
    # part HEAD answers the whole object, which moto's does not.
    assert (len(body), "PartsCount" in got) == (5 * MiB + 10, False)


@pytest.mark.emulators("ministack", reason="pins ministack's fault; moto keeps the tags as S3 does")
def test_ministack_drops_the_tags_of_create_multipart_upload(admin, mapping):
    # GIVEN a multipart upload created with tags (x-amz-tagging, API_CreateMultipartUpload)
    put_multipart(admin, mapping.source, "tagged", [b"a" * 100, b"b" * 10], Tagging=TAGGING)
    # WHEN its tags are read THEN there are none: S3 gives the object the tags its upload was created with
    assert admin.get_object_tagging(Bucket=mapping.source, Key="tagged")["TagSet"] == []


@pytest.mark.emulators("ministack", reason="pins ministack's fault; moto gives the full-object checksum asked for")
def test_ministack_gives_a_multipart_upload_a_composite_checksum_when_asked_for_a_full_object_one(admin, mapping):
    # GIVEN a multipart upload created with a full-object CRC32 (x-amz-checksum-type, API_CreateMultipartUpload)
    parts = [b"a" * 100, b"b" * 10]
    put_multipart(admin, mapping.source, "crc", parts, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")
    # WHEN read THEN the checksum is a composite one ("<base64>-2"), not the CRC32 of the whole object
    head = admin.head_object(Bucket=mapping.source, Key="crc", ChecksumMode="ENABLED")
    assert head["ChecksumType"] == "COMPOSITE"
    assert head["ChecksumCRC32"].endswith("-2")


@pytest.mark.emulators("ministack", reason="pins ministack's fault; moto gives the copy a plain MD5 ETag as S3 does")
def test_ministack_gives_a_copy_of_a_multipart_object_the_source_s_multipart_etag(admin, mapping):
    # GIVEN a 2-part object
    etag = put_multipart(admin, mapping.source, "parts", [b"a" * 100, b"b" * 10])
    # WHEN copied with one CopyObject
    copied = admin.copy_object(
        Bucket=mapping.target, Key="parts", CopySource={"Bucket": mapping.source, "Key": "parts"}
    )
    # THEN its ETag is the source's "-2" one; S3: "Objects created by the PUT Object, POST Object, or Copy
    # operation [...] encrypted by SSE-S3 or plaintext, have ETags that are an MD5 digest of their object
    # data" (API_Object): the MD5 of the 110 bytes, without "-2"
    assert etag.endswith('-2"')
    assert copied["CopyObjectResult"]["ETag"] == etag
