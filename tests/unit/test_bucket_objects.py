"""objects.differences: what "identical" means for two objects, including SSE-KMS objects whose
ETags cannot be compared."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ferry.buckets.objects import ObjectState, differences

pytestmark = pytest.mark.unit

BASE = ObjectState(
    key="k",
    size=10,
    etag='"0123456789abcdef0123456789abcdef"',
    headers=(("ContentType", "text/plain"),),
    metadata=(("a", "1"),),
    tags=(("t", "1"),),
    last_modified=1000.0,
)


def test_identical_objects_have_no_difference():
    assert differences(BASE, replace(BASE, last_modified=5.0)) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"size": 11}, ["size"]),
        ({"etag": '"ffffffffffffffffffffffffffffffff"'}, ["content"]),
        ({"headers": (("ContentType", "image/png"),)}, ["ContentType"]),
        ({"headers": ()}, ["ContentType"]),
        ({"metadata": (("a", "2"),)}, ["metadata"]),
        ({"tags": ()}, ["tags"]),
    ],
)
def test_each_kind_of_change_is_named(change, expected):
    assert differences(BASE, replace(BASE, **change)) == expected


def test_tags_are_ignored_when_asked_or_not_read():
    target = replace(BASE, tags=(("t", "2"),))
    assert differences(BASE, target, compare_tags=False) == []
    assert differences(BASE, replace(target, tags=None)) == []


def test_multipart_etags_with_different_part_counts_fall_back_to_checksums():
    source = replace(BASE, etag='"abc-3"', parts_count=3, checksums=(("ChecksumCRC32", "AAAA"),))
    same = replace(BASE, etag='"abc-2"', parts_count=2, checksums=(("ChecksumCRC32", "AAAA"),))
    other = replace(same, checksums=(("ChecksumCRC32", "BBBB"),))
    assert differences(source, same) == []
    assert differences(source, other) == ["content"]


KMS = replace(BASE, sse="aws:kms", etag='"kms-etag-source"')


def test_kms_objects_compare_by_checksum_when_both_have_one():
    target = replace(KMS, etag='"kms-etag-target"', checksums=(("ChecksumSHA256", "x"),))
    source = replace(KMS, checksums=(("ChecksumSHA256", "x"),))
    assert differences(source, target) == []
    assert differences(source, replace(target, checksums=(("ChecksumSHA256", "y"),))) == ["content"]


def test_kms_objects_without_checksums_need_a_target_written_after_the_source():
    # the copy (pinned to the source ETag) happened after the source's last write: same content
    copied_after = replace(KMS, etag='"kms-etag-target"', last_modified=KMS.last_modified + 1)
    assert differences(KMS, copied_after) == []
    # the source changed after the target was written: its content may differ
    stale = replace(copied_after, last_modified=KMS.last_modified - 1)
    assert differences(KMS, stale) == ["content"]
