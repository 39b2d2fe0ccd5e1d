"""The files AWS writes for a DynamoDB export, written by the test where the emulator writes none.

ministack's ExportTableToPointInTime completes and DescribeExport names a manifest, but no object is
written to the bucket (its fault, pinned by tests/functional/test_replay.py::
test_the_emulator_s_export_writes_no_files_and_ferry_fails_the_copy). On ministack,
``write_exports_as_aws_does`` makes every export ferry waits for leave, once it is COMPLETED, what AWS
documents (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/S3DataExport.Output.html):

    <export-prefix>/AWSDynamoDB/<ExportId>/_started
    <export-prefix>/AWSDynamoDB/<ExportId>/manifest-summary.json   (+ .checksum)
    <export-prefix>/AWSDynamoDB/<ExportId>/manifest-files.json     (+ .checksum), one line per data file
    <export-prefix>/AWSDynamoDB/<ExportId>/data/<name>.json.gz     one {"Item": …} per line; an empty
                                                                   partition gives an empty file

with the table's items in DynamoDB JSON (binaries base64; non-ASCII text escaped in one file, not in
the other: JSON allows both), so the rest of a copy — ferry's reader, one
split per data file, ImportTable — runs against the emulator as it runs against AWS. The ExportId is the
last element of the export's ARN; the data files' keys in the manifest are full keys (the reader test in
test_replay.py covers keys relative to the prefix). The writer's own calls go through clients whose user
agent carries SCAFFOLD_USER_AGENT, so a test recording ferry's calls can leave them out.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from typing import Any

import boto3
import pytest
from botocore.config import Config

import ferry.tables.copy_run as copy_run

SCAFFOLD_USER_AGENT = "ferry-test-emulated-export"
DATA_FILES = 3  # the items round-robin over the first two; the third stays empty, as an empty partition's


def _dynamodb_json(value: Any) -> Any:
    """The low-level client's value as DynamoDB JSON: binaries base64 at every depth."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {k: _dynamodb_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dynamodb_json(v) for v in value]
    return value


def _clients(endpoint_url: str) -> tuple[Any, Any]:
    """S3 and DynamoDB clients of the emulator, marked as the test's own (SCAFFOLD_USER_AGENT)."""
    config = Config(user_agent_extra=SCAFFOLD_USER_AGENT, retries={"mode": "standard"})
    s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name="us-east-1", config=config)
    ddb = boto3.client("dynamodb", endpoint_url=endpoint_url, region_name="us-east-1", config=config)
    return s3, ddb


def write_export_files(endpoint_url: str, description: dict[str, Any]) -> list[str]:
    """Write a COMPLETED export's files as AWS does (once: nothing when its manifest exists); the data files' keys."""
    s3, ddb = _clients(endpoint_url)
    bucket, prefix = description["S3Bucket"], description.get("S3Prefix", "").rstrip("/")
    export_id = description["ExportArn"].rsplit("/", 1)[-1]
    base = f"{prefix}/AWSDynamoDB/{export_id}" if prefix else f"AWSDynamoDB/{export_id}"
    if s3.list_objects_v2(Bucket=bucket, Prefix=f"{base}/manifest-summary.json").get("KeyCount"):
        return []
    s3.put_object(Bucket=bucket, Key=f"{base}/_started", Body=b"")
    table = description["TableArn"].rsplit("/", 1)[-1]
    items: list[dict[str, Any]] = []
    for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items.extend(page["Items"])
    files: list[str] = []
    lines: list[str] = []
    for i in range(DATA_FILES):
        mine = items[i::2] if i < 2 else []
        escaped = i == 1  # JSON may or may not escape non-ASCII text: the first file does not, the second does
        text = "".join(json.dumps({"Item": _dynamodb_json(item)}, ensure_ascii=escaped) + "\n" for item in mine)
        body = gzip.compress(text.encode("utf-8"))
        key = f"{base}/data/{hashlib.md5(f'{export_id}/{i}'.encode()).hexdigest()[:26]}.json.gz"
        etag = s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"].strip('"')
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode("ascii")
        lines.append(json.dumps({"itemCount": len(mine), "md5Checksum": md5, "etag": etag, "dataFileS3Key": key}))
        files.append(key)
    listing = ("\n".join(lines) + "\n").encode("utf-8")
    s3.put_object(Bucket=bucket, Key=f"{base}/manifest-files.json", Body=listing)
    s3.put_object(Bucket=bucket, Key=f"{base}/manifest-files.checksum", Body=hashlib.md5(listing).hexdigest().encode())
    summary = {
        "version": "2020-06-30",
        "exportArn": description["ExportArn"],
        "tableArn": description["TableArn"],
        "s3Bucket": bucket,
        "s3Prefix": prefix or None,
        "s3SseAlgorithm": "AES256",
        "manifestFilesS3Key": f"{base}/manifest-files.json",
        "billedSizeBytes": 0,
        "itemCount": len(items),
        "outputFormat": "DYNAMODB_JSON",
        "exportType": "FULL_EXPORT",
    }
    summary_body = json.dumps(summary).encode("utf-8")
    s3.put_object(Bucket=bucket, Key=f"{base}/manifest-summary.json", Body=summary_body)
    s3.put_object(
        Bucket=bucket, Key=f"{base}/manifest-summary.checksum", Body=hashlib.md5(summary_body).hexdigest().encode()
    )
    return files


def write_exports_as_aws_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every export a copy waits for writes AWS's files once it has COMPLETED (see the module docstring)."""
    waited_for = copy_run.wait_for_export

    def wait_then_write(ddb: Any, export_arn: str, **kwargs: Any) -> dict[str, Any]:
        description = waited_for(ddb, export_arn, **kwargs)
        write_export_files(ddb.meta.endpoint_url, description)
        return description

    monkeypatch.setattr(copy_run, "wait_for_export", wait_then_write)
