"""What ferry knows about one object, and when two objects are "identical".

Identical = same size, same content identity, same content headers, same user metadata, same
tags. Content identity is the ETag when both ETags are comparable (same form: plain MD5, or
multipart ``-N`` with the same part count, no SSE-KMS), otherwise an additional checksum both
sides carry. When neither can compare (SSE-KMS objects uploaded without checksums), the target
counts as holding the source's content if it was written after the source was last modified —
ferry's copies are pinned to the source ETag read just before, so a copy made after the source's
last write carries that write. This is the one weaker comparison; objects with checksums never
need it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ferry.aws import head_object_or_none, object_tags_or_none

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CONTENT_HEADERS = ("ContentType", "ContentEncoding", "ContentDisposition", "ContentLanguage", "CacheControl", "Expires")


@dataclass(frozen=True)
class ObjectState:
    key: str
    size: int
    etag: str
    headers: tuple[tuple[str, str], ...]  # (name, value) for the CONTENT_HEADERS present
    metadata: tuple[tuple[str, str], ...]  # user metadata (x-amz-meta-*), sorted
    tags: tuple[tuple[str, str], ...] | None  # sorted; None when not read
    storage_class: str = "STANDARD"
    sse: str | None = None  # ServerSideEncryption: AES256 | aws:kms | aws:kms:dsse
    sse_kms_key_id: str | None = None
    parts_count: int = 1
    part_sizes: tuple[int, ...] = field(default=(), compare=False)  # multipart layout, when read
    checksums: tuple[tuple[str, str], ...] = ()  # ChecksumCRC32 / ChecksumSHA256 / …
    last_modified: float = field(default=0.0, compare=False)  # epoch seconds

    @property
    def multipart(self) -> bool:
        return "-" in self.etag

    def header(self, name: str) -> str | None:
        return dict(self.headers).get(name)


def head_object(s3: S3Client, bucket: str, key: str, *, with_tags: bool = True) -> ObjectState | None:
    """HEAD (with checksums) plus, optionally, GetObjectTagging. None when the key does not exist."""
    head = head_object_or_none(s3, bucket, key)
    if head is None:
        return None
    tags: tuple[tuple[str, str], ...] | None = None
    if with_tags:
        tag_set = object_tags_or_none(s3, bucket, key)
        if tag_set is None:
            return None
        tags = tuple(sorted((t["Key"], t["Value"]) for t in tag_set))
    return state_from_head(key, head, tags)


def state_from_head(key: str, head: Mapping[str, Any], tags: tuple[tuple[str, str], ...] | None) -> ObjectState:
    headers = []
    for name in CONTENT_HEADERS:
        value = head.get("ExpiresString") if name == "Expires" else head.get(name)
        if value not in (None, ""):
            headers.append((name, str(value)))
    etag = str(head.get("ETag", ""))
    parts = etag.rsplit("-", 1)[1].strip('"') if "-" in etag else "1"
    return ObjectState(
        key=key,
        size=int(head.get("ContentLength", 0)),
        etag=etag,
        headers=tuple(headers),
        metadata=tuple(sorted((k.lower(), v) for k, v in (head.get("Metadata") or {}).items())),
        tags=tags,
        storage_class=str(head.get("StorageClass") or "STANDARD"),
        sse=head.get("ServerSideEncryption"),
        sse_kms_key_id=head.get("SSEKMSKeyId"),
        parts_count=int(parts) if parts.isdigit() else 1,
        checksums=tuple(
            sorted((k, str(v)) for k, v in head.items() if k.startswith("Checksum") and k != "ChecksumType")
        ),
        last_modified=head["LastModified"].timestamp() if hasattr(head.get("LastModified"), "timestamp") else 0.0,
    )


def part_sizes(s3: S3Client, bucket: str, key: str, state: ObjectState) -> tuple[int, ...]:
    """The source's multipart layout (size of each part). Not pinned here: every UploadPartCopy is
    pinned with CopySourceIfMatch, and the copy's ETag equals the source's only if the layout was right."""
    if not state.multipart:
        return (state.size,)
    sizes = tuple(_part_size(s3, bucket, key, number) for number in range(1, state.parts_count + 1))
    if sum(sizes) != state.size:
        raise ValueError(f"parts of {key!r} add up to {sum(sizes)} bytes, not {state.size}")
    return sizes


def _part_size(s3: S3Client, bucket: str, key: str, number: int) -> int:
    """The size of part ``number``: a HEAD with ``PartNumber``, which S3 answers with that part's
    ContentLength and the object's ``PartsCount`` (API_HeadObject). An answer without ``PartsCount``
    is the whole object — an endpoint that ignores ``partNumber`` on HEAD (ministack does) — and then
    the size is the ContentLength of a GetObject of that part, its body closed unread; a GET answer
    without ``PartsCount`` either is not a part and raises. The sum check in :func:`part_sizes` and
    the ETag comparison after the copy stand either way."""
    head = s3.head_object(Bucket=bucket, Key=key, PartNumber=number)
    if "PartsCount" in head:
        return int(head["ContentLength"])
    part = s3.get_object(Bucket=bucket, Key=key, PartNumber=number)
    part["Body"].close()
    if "PartsCount" not in part:
        raise ValueError(f"{key!r}: neither HEAD nor GET with partNumber={number} answered with a part")
    return int(part["ContentLength"])


def _etags_comparable(a: ObjectState, b: ObjectState) -> bool:
    kms = any(s.sse and s.sse.startswith("aws:kms") for s in (a, b))
    return not kms and a.multipart == b.multipart and a.parts_count == b.parts_count


def differences(source: ObjectState, target: ObjectState, *, compare_tags: bool = True) -> list[str]:
    """Names of what differs ("size", "content", "ContentType", "metadata", "tags" …); [] = identical."""
    out: list[str] = []
    if source.size != target.size:
        out.append("size")
    if _etags_comparable(source, target):
        if source.etag != target.etag:
            out.append("content")
    else:
        source_sums, target_sums = dict(source.checksums), dict(target.checksums)
        common = source_sums.keys() & target_sums.keys()
        if common:
            if any(source_sums[k] != target_sums[k] for k in common):
                out.append("content")
        elif not (source.last_modified and target.last_modified >= source.last_modified):
            out.append("content")
    source_headers, target_headers = dict(source.headers), dict(target.headers)
    for name in CONTENT_HEADERS:
        if source_headers.get(name) != target_headers.get(name):
            out.append(name)
    if source.metadata != target.metadata:
        out.append("metadata")
    if compare_tags and source.tags is not None and target.tags is not None and source.tags != target.tags:
        out.append("tags")
    return out
