"""The fingerprint of one side's object (ferry.buckets.twoway): what ``objects.differences`` compares, nothing else."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ferry.buckets.objects import ObjectState
from ferry.buckets.twoway import fingerprint, sync_pk
from ferry.twoway import ABSENT

BASE = ObjectState(
    key="a b+c.txt",
    size=5,
    etag='"5d41402abc4b2a76b9719d911017c592"',
    headers=(("ContentType", "text/plain"),),
    metadata=(("who", "old"),),
    tags=(("t", "1"),),
    checksums=(("ChecksumCRC32", "NhCmhg=="),),
    last_modified=1_700_000_000.0,
)


def test_no_object_is_absent() -> None:
    assert fingerprint(None) == ABSENT
    assert fingerprint(BASE) != ABSENT
    assert len(fingerprint(BASE)) == 32


@pytest.mark.parametrize(
    "changed",
    [
        replace(BASE, size=6),
        replace(BASE, etag='"0"'),
        replace(BASE, headers=(("ContentType", "text/html"),)),
        replace(BASE, metadata=(("who", "new"),)),
        replace(BASE, tags=(("t", "2"),)),
        replace(BASE, tags=()),
        replace(BASE, checksums=(("ChecksumCRC32", "AAAAAA=="),)),
    ],
    ids=["size", "etag", "header", "metadata", "tags", "no-tags", "checksum"],
)
def test_what_differences_compares_changes_the_fingerprint(changed: ObjectState) -> None:
    assert fingerprint(changed) != fingerprint(BASE)


def test_what_it_does_not_compare_keeps_the_fingerprint() -> None:
    # a rewrite of the same object (only its time moves), its storage class, its part layout
    same = replace(BASE, last_modified=1_800_000_000.0, storage_class="STANDARD_IA", part_sizes=(5,))
    assert fingerprint(same) == fingerprint(BASE)


def test_a_keys_sync_record_is_the_same_from_either_direction() -> None:
    assert sync_pk("old", "new", "k") == sync_pk("new", "old", "k")
    assert sync_pk("old", "new", "k") != sync_pk("old", "new", "k2")
    assert sync_pk("old", "new", "k").startswith("sync#bucket#new|old#")
