"""The export paths of a table copy: a point-in-time export to S3, its data files read back exactly,
and ImportTable, which creates the target from them (docs/adr/0004, 0005).

An export reads no capacity from the source table and an import writes none to the target. ferry
reads the export's files itself — DynamoDB JSON is already the wire format, so every set, 38-digit
number and binary stays as it is — rather than through Glue's DynamoDB connector, whose DynamicFrame
turns sets into lists and numbers into Long/Double (docs/adr/0005).

Where the data files are: AWS writes ``<prefix>/AWSDynamoDB/<ExportId>/manifest-summary.json``, which
names ``manifest-files.json``, which lists every ``data/*.json.gz`` (JSON lines, one ``{"Item": …}``
each). moto writes the data file only (``<prefix>/AWSDynamoDB/<uuid>/data/<uuid>.gz``, no manifest,
another uuid than the export's). ferry reads the manifest when DescribeExport names one and otherwise
lists ``data/`` under the export's own prefix, which is unique per copy run, so the two layouts are read
by the same code and no other export's files can be taken for this one's. A manifest that DescribeExport
names but the bucket does not hold (an export deleted or expired since, or ministack's, which writes no
file at all) fails the copy naming it: nothing else says which data files are the export's.
"""

from __future__ import annotations

import gzip
import json
import logging
import posixpath
import time
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any, cast

from ferry.aws import (
    call_with_retries,
    create_bucket_if_missing,
    describe_export,
    describe_import,
    head_bucket,
    object_bytes_or_none,
    public_access_block_or_none,
)
from ferry.errors import PermanentError, SetupError
from ferry.tables.schema import TableShape, create_table_arguments
from ferry.wire import Item, decode_stream_image

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

FIRST_POLL = 0.25  # seconds before the first look again at an export or import; doubles up to the poll
EXPORT_EXPIRY_DAYS = 7  # the default export bucket deletes an export a week after it was written
EXPORT_PREFIX = "ferry-exports"
_DONE_EXPORT = "COMPLETED"
_DONE_IMPORT = "COMPLETED"
_FAILED = ("FAILED", "CANCELLED", "CANCELLING")


def default_export_bucket(account: str, region: str) -> str:
    """The bucket ``ferry init`` creates for exports when the spec names none."""
    return f"ferry-exports-{account}-{region}"


def export_prefix(source: str, run: str) -> str:
    """Where one copy run's export goes: unique per run, so its data files are only its own."""
    return f"{EXPORT_PREFIX}/{source}/{run}"


def ensure_export_bucket(s3: S3Client, bucket: str, region: str, *, tls_only: bool = True) -> list[str]:
    """The default export bucket, created or brought up to date: SSE-S3 by default, every public access
    blocked, TLS only (a bucket policy denies plain HTTP; ``tls_only=False`` when ferry itself talks plain
    HTTP to an emulator's endpoint, which such a policy would shut out too), and a lifecycle rule that
    expires exports after EXPORT_EXPIRY_DAYS days (and incomplete uploads after one). One line per change
    made. (Terraform's export bucket is the same with a KMS key; across accounts its policy also grants
    the two roles.)"""
    from ferry.buckets.setup import PUBLIC_ACCESS_BLOCK

    done: list[str] = []
    if not head_bucket(s3, bucket, field="backfill.export_bucket")[0]:
        if create_bucket_if_missing(s3, bucket, region):
            done.append(f"created export bucket {bucket}")
        s3.get_waiter("bucket_exists").wait(Bucket=bucket)
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    current = public_access_block_or_none(s3, bucket) or {}
    if any(not current.get(name) for name in PUBLIC_ACCESS_BLOCK):
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)
        done.append(f"blocked all public access to {bucket}")
    if tls_only:
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(tls_only_policy(bucket)))
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "ferry-expire-exports",
                    "Status": "Enabled",
                    "Filter": {"Prefix": f"{EXPORT_PREFIX}/"},
                    "Expiration": {"Days": EXPORT_EXPIRY_DAYS},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                }
            ]
        },
    )
    return done


def tls_only_policy(bucket: str) -> dict[str, Any]:
    """A bucket policy that refuses every request made without TLS."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def _wait(
    describe: Callable[[], dict[str, Any]],
    status_key: str,
    done: str,
    what: str,
    *,
    timeout: float,
    poll: float,
    sleep: Callable[[float], None],
) -> dict[str, Any]:
    """Describe until ``done``. The first looks come quickly (a small table's export takes seconds) and
    the wait between them doubles up to ``poll`` (a large one takes hours: a status call every ``poll``
    seconds then costs nothing that matters)."""
    deadline = time.monotonic() + timeout
    wait = min(FIRST_POLL, poll)
    while True:
        description = call_with_retries(describe, what)
        status = str(description.get(status_key, ""))
        if status == done:
            return description
        if status in _FAILED:
            raise PermanentError(
                f"{what} {status}: {description.get('FailureCode') or ''} {description.get('FailureMessage') or ''}".strip()
            )
        if time.monotonic() > deadline:
            raise PermanentError(f"{what} still {status or 'unknown'} after {timeout:.0f}s; rerun to keep waiting")
        sleep(wait)
        wait = min(poll, wait * 2)


def wait_for_export(
    ddb: DynamoDBClient,
    export_arn: str,
    *,
    timeout: float = 86400.0,
    poll: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """DescribeExport until COMPLETED: its description. PermanentError when it FAILED (with AWS's reason)."""
    return _wait(
        lambda: describe_export(ddb, export_arn), "ExportStatus", _DONE_EXPORT, f"export {export_arn}",
        timeout=timeout, poll=poll, sleep=sleep,
    )  # fmt: skip


def wait_for_import(
    ddb: DynamoDBClient,
    import_arn: str,
    *,
    timeout: float = 86400.0,
    poll: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """DescribeImport until COMPLETED: its description (ImportedItemCount, ErrorCount, …).
    PermanentError when it FAILED or was cancelled."""
    return _wait(
        lambda: describe_import(ddb, import_arn), "ImportStatus", _DONE_IMPORT, f"import {import_arn}",
        timeout=timeout, poll=poll, sleep=sleep,
    )  # fmt: skip


def _read_manifest(s3: S3Client, bucket: str, key: str) -> str:
    """One manifest's text. PermanentError naming it when the bucket does not hold it (NoSuchKey)."""
    body = call_with_retries(lambda: object_bytes_or_none(s3, bucket, key), f"GetObject {key}")
    if body is None:
        raise PermanentError(
            f"the export's manifest s3://{bucket}/{key} does not exist: the export was deleted or expired since, "
            "or never written; rerun the copy with --restart for a new export"
        )
    return body.decode("utf-8")


def _under(prefix: str, key: str) -> str:
    """A manifest's key as stored: AWS's examples give keys from ``AWSDynamoDB/…``, relative to the prefix."""
    return key if not prefix or key.startswith(prefix.rstrip("/") + "/") else f"{prefix.rstrip('/')}/{key}"


def export_data_files(s3: S3Client, bucket: str, prefix: str, description: dict[str, Any]) -> list[str]:
    """The S3 keys of an export's data files, sorted: from its manifests when DescribeExport names one,
    else every ``…/data/…`` object under the export's prefix (see the module docstring)."""
    manifest = description.get("ExportManifest")
    if manifest:
        summary = json.loads(_read_manifest(s3, bucket, _under(prefix, str(manifest))))
        lines = _read_manifest(s3, bucket, _under(prefix, summary["manifestFilesS3Key"])).splitlines()
        return sorted(_under(prefix, json.loads(line)["dataFileS3Key"]) for line in lines if line.strip())
    keys: list[str] = []
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": f"{prefix.rstrip('/')}/AWSDynamoDB/"}
    while True:
        page = call_with_retries(lambda: s3.list_objects_v2(**kwargs), f"ListObjectsV2 {bucket}")
        keys += [entry["Key"] for entry in page.get("Contents", []) if "/data/" in entry["Key"]]
        if not page.get("IsTruncated"):
            return sorted(keys)
        kwargs["ContinuationToken"] = page["NextContinuationToken"]


def data_directory(files: list[str]) -> str:
    """The one ``…/data/`` directory every data file is in (ImportTable's S3KeyPrefix). PermanentError when
    the files are in several or none (then an import would load other files too, or nothing)."""
    directories = {posixpath.dirname(key) + "/" for key in files}
    if len(directories) != 1:
        raise PermanentError(
            f"the export's data files are in {len(directories)} directories, not one: {sorted(directories)[:3]}"
        )
    return directories.pop()


def parse_export_line(line: str | bytes) -> Item | None:
    """One line of a DynamoDB JSON data file → the item in the low-level client's form (binaries as
    bytes at every depth, numbers as their exact text). None for a blank line."""
    if not line.strip():
        return None
    record = json.loads(line)
    return decode_stream_image(record["Item"])


def read_export_items(s3: S3Client, bucket: str, key: str, *, skip: int = 0) -> Iterator[Item]:
    """The items of one gzipped DynamoDB JSON data file, in file order, after the first ``skip``."""
    body = call_with_retries(lambda: s3.get_object(Bucket=bucket, Key=key)["Body"], f"GetObject {key}")
    with gzip.GzipFile(fileobj=cast("IO[bytes]", body)) as lines:  # reads the stream as it goes
        seen = 0
        for line in lines:
            item = parse_export_line(line)
            if item is None:
                continue
            seen += 1
            if seen > skip:
                yield item


def import_parameters(source: TableShape, target_name: str) -> dict[str, Any]:
    """ImportTable's TableCreationParameters: the source's keys, global indexes, billing mode and capacity,
    encrypted. SetupError when the source has local secondary indexes (ImportTable cannot create them)."""
    if source.raw.get("LocalSecondaryIndexes"):
        raise SetupError(
            f"backfill.write: import cannot create the local secondary indexes of {source.name!r} "
            "(ImportTable has no LocalSecondaryIndexes); use write: batch for this table"
        )
    return create_table_arguments(source, target_name)
