"""The replay protocol's table side against the emulator: the checks before a copy, the point-in-time
export read back exactly (moto's layout and AWS's), ImportTable creating the target, and the release
refusing whatever would lose a held change (docs/adr/0004).

ministack's export writes no file (pinned below): on it the tests that export take ``aws_exports``,
which writes, once the export has completed, the files AWS documents (tests/emulated_export.py)."""

from __future__ import annotations

import gzip
import json
import posixpath
import time
from dataclasses import dataclass, replace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ferry.clients import AwsTarget, TableClients, make_client
from ferry.errors import PermanentError, SetupError
from ferry.operations import initialize
from ferry.release import Deployment, ReleaseRefused, bound_record_age, release_table
from ferry.spec import parse_spec
from ferry.tables.backfill import copy_segment, plan_backfill
from ferry.tables.copy_run import begin_copy, export_files, finish_copy, import_target
from ferry.tables.export import ensure_export_bucket, export_data_files, parse_export_line, tls_only_policy
from ferry.tables.setup import init_tables
from ferry.tables.state import Capture, StateStore
from ferry.tables.verify import verify_table
from ferry.wire import encode_lambda_value, items_equal, key_of
from ferry_dev.workload import make_big_item, make_item, seed_table
from tests.conftest import create_table, scan_all
from tests.emulated_export import write_exports_as_aws_does

pytestmark = pytest.mark.functional
KEYS = ("pk", "sk")


def _spec(emulator: Any, unique: str, **backfill: Any) -> Any:
    return parse_spec(
        {
            "region": "us-east-1",
            "endpoint_url": emulator.endpoint_url,
            "state_table": f"state-{unique}",
            "tables": [{"source": f"src-{unique}", "target": f"dst-{unique}"}],
            "backfill": {"splits": 2, "export_bucket": f"exports-{unique}", **backfill},
            "replication": {"phase_cache_seconds": 0, "on_failure_queue": f"failures-{unique}"},
        }
    )


def _source(ddb: Any, unique: str, items: int = 40) -> int:
    """Items of every type, unicode, 38-digit numbers, binaries nested in maps and lists, one near 400 KB."""
    create_table(ddb, f"src-{unique}", hash_key=("pk", "S"), range_key=("sk", "N"))
    return seed_table(ddb, f"src-{unique}", items, seed=11)


def _importable_source(ddb: Any, unique: str, items: int = 30) -> int:
    """Items of every type that moto's ImportTable can load: ASCII strings, no empty map, none near 400 KB
    (its three faults, each pinned below in test_the_emulator_s_import_…)."""
    create_table(ddb, f"src-{unique}", hash_key=("pk", "S"), range_key=("sk", "N"))
    for i in range(items):
        ddb.put_item(TableName=f"src-{unique}", Item=_ascii_item(i))
    return items


def _ascii_item(i: int) -> dict[str, Any]:
    return {
        "pk": {"S": f"user#{i:04d}"},
        "sk": {"N": str(i % 7)},
        "n38": {"N": "12345678901234567890123456789012345678"},
        "tiny": {"N": "1E-130"},
        "blob": {"B": bytes([i % 256, 0, 255])},
        "ss": {"SS": ["a", f"s{i}"]},
        "ns": {"NS": ["1.5", "-2", "9.9E+125"]},
        "bs": {"BS": [b"\x00", bytes([i % 256 or 1])]},
        "flag": {"BOOL": i % 2 == 0},
        "nothing": {"NULL": True},
        "doc": {"M": {"b": {"B": b"\x01\x02"}, "l": {"L": [{"B": b"\x03"}, {"S": ""}, {"N": "0"}]}}},
    }


def _same(ddb: Any, unique: str) -> bool:
    source = {repr(sorted(key_of(i, KEYS).items())): i for i in scan_all(ddb, f"src-{unique}")}
    target = {repr(sorted(key_of(i, KEYS).items())): i for i in scan_all(ddb, f"dst-{unique}")}
    return source.keys() == target.keys() and all(items_equal(source[k], target[k]) for k in source)


def _tables(ddb: Any) -> set[str]:
    return {n for page in ddb.get_paginator("list_tables").paginate() for n in page["TableNames"]}


@pytest.fixture(scope="module")
def account(where: Any) -> str:
    """The emulator's account (moto's 123456789012, ministack's 000000000000)."""
    return str(make_client("sts", where).get_caller_identity()["Account"])


@pytest.fixture
def aws_exports(emulator_kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On ministack, whose export writes no file, every export ferry waits for writes AWS's files."""
    if emulator_kind == "ministack":
        write_exports_as_aws_does(monkeypatch)


@dataclass
class Exported:
    """A replay migration by export (+ import) initialised, its copy begun and its export made."""

    spec: Any
    clients: TableClients
    run: Any
    files: tuple[str, ...]
    account: str

    @property
    def mapping(self) -> Any:
        return self.spec.tables[0]

    def import_target(self) -> Any:
        return import_target(
            self.spec, self.mapping, self.clients, self.run, self.files, account=self.account, poll=0.1
        )


def _exported(
    ddb: Any, where: Any, emulator: Any, unique: str, *, write: str = "import", target: Any = None
) -> Exported:
    """``ferry init --enable-pitr``, the copy begun, the export made and listed (the source exists)."""
    spec = _spec(emulator, unique, read="export", write=write)
    make_client("s3", where).create_bucket(Bucket=f"exports-{unique}")
    initialize(spec, enable_pitr=True)
    clients = TableClients(ddb, target or ddb, ddb)
    run = begin_copy(spec, spec.tables[0], clients)
    account = str(make_client("sts", where).get_caller_identity()["Account"])
    run, _, files = export_files(
        spec, spec.tables[0], clients, make_client("s3", where), run, account=account, poll=0.1
    )
    return Exported(spec, clients, run, files, account)


# --- before the copy -----------------------------------------------------------------------------


def test_an_export_without_point_in_time_recovery_is_refused_before_any_write(ddb, where, emulator, unique):
    # GIVEN a source without point-in-time recovery and a spec that reads an export
    _source(ddb, unique, 3)
    spec = _spec(emulator, unique, read="export")
    s3 = make_client("s3", where)
    s3.create_bucket(Bucket=f"exports-{unique}")
    before = _tables(ddb)
    # WHEN init runs without --enable-pitr THEN exit 2 naming the setting, and nothing was written
    with pytest.raises(SetupError, match=r"backfill\.read: export needs point-in-time recovery.*--enable-pitr"):
        initialize(spec)
    assert _tables(ddb) == before
    assert ddb.describe_table(TableName=f"src-{unique}")["Table"].get("StreamSpecification") is None
    # WHEN it runs with it THEN point-in-time recovery is on
    assert any("point-in-time recovery" in line for line in initialize(spec, enable_pitr=True))
    backups = ddb.describe_continuous_backups(TableName=f"src-{unique}")["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_init_creates_the_default_export_bucket_encrypted_private_and_expiring(
    ddb, where, emulator, unique, account, aws_exports
):
    _source(ddb, unique, 3)
    spec = parse_spec(
        {
            "region": "us-east-1",
            "endpoint_url": emulator.endpoint_url,
            "state_table": f"state-{unique}",
            "tables": [{"source": f"src-{unique}", "target": f"dst-{unique}"}],
            "backfill": {"read": "export"},
        }
    )
    initialize(spec, enable_pitr=True)
    s3 = make_client("s3", where)
    bucket = f"ferry-exports-{account}-us-east-1"
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rule["Status"] == "Enabled" and rule["Expiration"]["Days"] == 7
    # ferry talks plain HTTP to the emulator, so the bucket is not TLS-only here: ferry reads its exports
    with pytest.raises(ClientError, match="NoSuchBucketPolicy"):
        s3.get_bucket_policy(Bucket=bucket)
    clients = TableClients.of(ddb)
    run = begin_copy(spec, spec.tables[0], clients)
    assert export_files(spec, spec.tables[0], clients, s3, run, account=account, poll=0.1)[2]


@pytest.mark.emulators("moto", reason="ministack does not evaluate bucket policies (pinned below)")
def test_an_export_bucket_made_for_https_refuses_plain_http(where, unique):
    # GIVEN the export bucket as ferry makes it against AWS (TLS only)
    s3 = make_client("s3", where)
    bucket = f"tls-only-{unique}"
    ensure_export_bucket(s3, bucket, "us-east-1")
    (deny,) = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # THEN a request without TLS is refused (the emulator evaluates the policy; it speaks plain HTTP)
    with pytest.raises(ClientError, match=r"AccessDenied|Forbidden"):
        s3.put_object(Bucket=bucket, Key="ferry-exports/x", Body=b"x")


@pytest.mark.emulators("ministack", reason="pins ministack's fault; moto denies the request as AWS does")
def test_the_emulator_ignores_a_bucket_policy_that_denies_plain_http(where, unique):
    """An emulator fault, pinned: ministack stores a bucket policy but does not evaluate it, so a request
    made without TLS passes a policy that denies ``aws:SecureTransport: false``. AWS denies it
    (https://repost.aws/knowledge-center/s3-bucket-policy-for-config-rule: "Amazon S3 allows both HTTP and
    HTTPS requests"; such a policy "explicitly denies access to HTTP requests"); moto does too, and
    test_an_export_bucket_made_for_https_refuses_plain_http asserts it there."""
    s3 = make_client("s3", where)
    bucket = f"tls-only-{unique}"
    ensure_export_bucket(s3, bucket, "us-east-1")
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == tls_only_policy(bucket)
    s3.put_object(Bucket=bucket, Key="ferry-exports/x", Body=b"x")  # over plain HTTP, and not refused
    assert s3.get_object(Bucket=bucket, Key="ferry-exports/x")["Body"].read() == b"x"


def test_a_replay_copy_estimated_to_outlast_its_hold_window_is_refused(ddb, emulator, unique):
    # GIVEN a target of 1 write unit and 40 items: 40 s at the least budget (1 unit/s), above a 0.01 h (36 s)
    # hold window
    source, target = f"src-{unique}", f"dst-{unique}"
    create_table(ddb, source, provisioned=(100, 100))
    create_table(ddb, target, provisioned=(1, 1))
    seed_table(ddb, source, 40, big_item=False)
    spec = parse_spec(
        {
            "region": "us-east-1",
            "endpoint_url": emulator.endpoint_url,
            "state_table": f"state-{unique}",
            "tables": [{"source": source, "target": target}],
            "backfill": {"max_hold_hours": 0.01},
        }
    )
    init_tables(spec, ddb)
    # WHEN the copy begins THEN it is refused, naming the estimate and the way out
    with pytest.raises(SetupError, match=r"estimated at 40 s at its budget .*max_hold_hours \(0\.01\).*insert-only"):
        begin_copy(spec, spec.tables[0], TableClients.of(ddb))
    assert StateStore(ddb, spec.state_table).load_copy(source) is None  # nothing recorded
    # AND an insert-only copy, which holds nothing, may run
    insert_only = replace(spec, tables=(replace(spec.tables[0], protocol="insert-only"),))
    assert begin_copy(insert_only, insert_only.tables[0], TableClients.of(ddb)).protocol == "insert-only"


# --- export + batch ------------------------------------------------------------------------------


def test_an_export_is_copied_exactly_one_split_per_data_file_without_reading_the_table(
    ddb, where, emulator, unique, account, aws_exports
):
    # GIVEN a source of every attribute type (38-digit numbers, sets, binaries nested in maps and lists)
    seeded = _source(ddb, unique)
    # WHEN the export is made and read back, one split per data file
    exported = _exported(ddb, where, emulator, unique, write="batch")
    spec, mapping, clients, run, files = exported.spec, exported.mapping, exported.clients, exported.run, exported.files
    plan = plan_backfill(spec, mapping, clients, export=(run.export_bucket, files))
    results = [copy_segment(plan, split) for split in range(plan.splits)]
    # THEN every item arrived unchanged, written in batches, and no read unit was spent on the source
    assert plan.splits == len(files) >= 1 and all(r.status == "done" for r in results)
    assert sum(r.written for r in results) == seeded
    assert sum(r.scan_requests for r in results) == 0 and sum(r.read_units for r in results) == 0
    assert sum(r.file_requests for r in results) == len(files) and sum(r.batch_requests for r in results) >= 2
    assert _same(ddb, unique)
    # AND a rerun finds the same export (recorded), not a new one
    again, _, same_files = export_files(spec, mapping, clients, make_client("s3", where), run, account=account)
    assert (again.export_arn, same_files) == (run.export_arn, files)


def test_the_reader_takes_aws_s_layout_from_its_manifests(where, unique):
    # GIVEN an export laid out as AWS documents it: manifest-summary.json names manifest-files.json, which
    # lists the data files (keys relative to the prefix); another export's data file lies beside them
    s3 = make_client("s3", where)
    bucket, prefix, export_id = f"aws-layout-{unique}", "runs/42", "01700000000000-abcdef12"
    s3.create_bucket(Bucket=bucket)
    items = [
        {"pk": {"S": "a"}, "sk": {"N": "1"}, "n": {"N": "12345678901234567890123456789012345678"}},
        {"pk": {"S": "b"}, "sk": {"N": "2"}, "bs": {"BS": [b"\x00", b"\xff"]}, "m": {"M": {"b": {"B": b"\x01"}}}},
    ]
    data = []
    for i, item in enumerate(items):
        key = f"AWSDynamoDB/{export_id}/data/part-{i}.json.gz"
        line = json.dumps({"Item": encode_lambda_value(item)}) + "\n"
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=gzip.compress(line.encode()))
        data.append(key)
    s3.put_object(Bucket=bucket, Key=f"{prefix}/AWSDynamoDB/9999-other/data/x.json.gz", Body=gzip.compress(b""))
    files_key = f"AWSDynamoDB/{export_id}/manifest-files.json"
    lines = "\n".join(json.dumps({"itemCount": 1, "dataFileS3Key": key}) for key in data)
    s3.put_object(Bucket=bucket, Key=f"{prefix}/{files_key}", Body=lines.encode())
    summary = {"manifestFilesS3Key": files_key, "itemCount": 2, "outputFormat": "DYNAMODB_JSON"}
    summary_key = f"AWSDynamoDB/{export_id}/manifest-summary.json"
    s3.put_object(Bucket=bucket, Key=f"{prefix}/{summary_key}", Body=json.dumps(summary).encode())
    # WHEN the data files are found from the export's description
    found = export_data_files(s3, bucket, prefix, {"ExportManifest": summary_key})
    # THEN exactly the manifest's files, and each line reads back as the item, binaries as bytes
    assert found == [f"{prefix}/{key}" for key in data]
    for key, item in zip(found, items, strict=True):
        body = gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        assert parse_export_line(body.splitlines()[0]) == item
    assert parse_export_line(b"  \n") is None


def test_the_reader_fails_naming_a_manifest_the_bucket_does_not_hold(where, unique):
    # GIVEN an export whose description names a manifest that is not in the bucket (deleted, expired)
    s3 = make_client("s3", where)
    bucket = f"no-manifest-{unique}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="runs/7/AWSDynamoDB/0170-ab/data/x.json.gz", Body=gzip.compress(b""))
    # WHEN its data files are looked for THEN the copy fails naming the manifest, not with S3's NoSuchKey
    with pytest.raises(PermanentError, match=rf"manifest s3://{bucket}/runs/7/AWSDynamoDB/0170-ab/manifest-summary"):
        export_data_files(s3, bucket, "runs/7", {"ExportManifest": "AWSDynamoDB/0170-ab/manifest-summary.json"})


# --- export + import -----------------------------------------------------------------------------


def test_an_import_creates_the_target_that_init_left_alone(ddb, where, emulator, unique, aws_exports):
    # GIVEN a replay copy by export + import: init enables what it needs but does not create the target
    seeded = _importable_source(ddb, unique)
    exported = _exported(ddb, where, emulator, unique)
    assert f"dst-{unique}" not in _tables(ddb)
    spec, mapping, clients = exported.spec, exported.mapping, exported.clients
    # WHEN the export is imported
    run, result = exported.import_target()
    # THEN the target exists with the source's keys, every item imported exactly, no error
    assert (result.imported, result.errors) == (seeded, 0)
    target = ddb.describe_table(TableName=f"dst-{unique}")["Table"]
    assert target["KeySchema"] == ddb.describe_table(TableName=f"src-{unique}")["Table"]["KeySchema"]
    assert _same(ddb, unique)
    # AND a rerun waits for the same import rather than starting another (the target exists now)
    assert begin_copy(spec, mapping, clients).import_arn == run.import_arn


@pytest.mark.emulators("moto", reason="pins moto's ImportTable fault; ministack imports it as AWS does (below)")
def test_the_emulator_s_import_drops_items_holding_an_empty_map_and_ferry_fails_the_copy(ddb, where, emulator, unique):
    """An emulator fault, pinned: moto's ImportTable parses each line with py_partiql_parser, which yields
    nothing for an object holding an empty map ({"M": {}}), so the item is neither imported nor counted as
    an error. DynamoDB's import reads DynamoDB JSON, where an empty map is valid. ferry compares what was
    imported with what was exported and fails the copy instead of passing a target that lacks items."""
    seeded = _importable_source(ddb, unique, 4)
    for i in range(2):
        ddb.put_item(TableName=f"src-{unique}", Item={**_ascii_item(100 + i), "empty": {"M": {}}})
    seeded += 2
    exported = _exported(ddb, where, emulator, unique)
    assert exported.run.exported_items == seeded
    with pytest.raises(PermanentError, match=rf"loaded \d items, the export .* holds {seeded}"):
        exported.import_target()


@pytest.mark.emulators("moto", reason="pins moto's ImportTable fault; ministack imports it as AWS does (below)")
def test_the_emulator_s_import_leaves_json_escapes_in_strings_and_verify_finds_them(ddb, where, emulator, unique):
    """An emulator fault, pinned: moto's ImportTable parses each line with py_partiql_parser, which keeps a
    JSON escape such as \\u00d6 as those six characters instead of the letter it stands for (moto's own
    export writes non-ASCII text escaped, as JSON allows). DynamoDB's import reads JSON as JSON. The counts
    agree, so the copy completes — and ferry's verify, item by item, names every key it changed."""
    _importable_source(ddb, unique, 3)
    ddb.put_item(TableName=f"src-{unique}", Item={**_ascii_item(50), "name": {"S": "Zürich 日本語"}})
    exported = _exported(ddb, where, emulator, unique)
    exported.import_target()
    report = verify_table(exported.spec, exported.mapping, workers=2)
    assert [(d.kind, d.attributes) for d in report.differences] == [("different", ("name",))]
    assert "user#0050" in report.differences[0].key


@pytest.mark.emulators("moto", reason="pins moto's ImportTable fault; ministack imports it as AWS does (below)")
def test_the_emulator_s_import_refuses_an_item_near_400_kb(ddb, where, emulator, unique):
    """An emulator fault, pinned: moto's ImportTable fails on an item of ~395 KB by DynamoDB's sizing
    rules (which its PutItem accepts), "Item size has exceeded the maximum allowed size"; DynamoDB's limit
    is 400 KB by those rules, so AWS imports it. ferry fails the copy with the import's reason."""
    create_table(ddb, f"src-{unique}", hash_key=("pk", "S"), range_key=("sk", "N"))
    ddb.put_item(TableName=f"src-{unique}", Item=make_big_item(1))
    exported = _exported(ddb, where, emulator, unique)
    with pytest.raises(PermanentError, match=r"FAILED.*maximum allowed size"):
        exported.import_target()


@pytest.mark.emulators("ministack", reason="moto's ImportTable drops, changes or refuses these items (pinned above)")
def test_an_import_loads_empty_maps_non_ascii_text_and_an_item_near_400_kb_exactly(
    ddb, where, emulator, unique, aws_exports
):
    """What moto's ImportTable gets wrong, as AWS documents the import: each line is DynamoDB JSON, read as
    JSON — an empty map is a value, a string is the same whether its letters are escaped or not — and an
    item may be as large as DynamoDB allows (400 KB)
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/S3DataImport.Format.html). The files
    are AWS's layout (tests/emulated_export.py: one data file escapes non-ASCII text, one does not)."""
    seeded = _importable_source(ddb, unique, 4)
    for i in range(2):
        text = {"S": "Zürich 日本語 \u00d6"}  # the last six characters are the letters \, u, 0, 0, d, 6
        ddb.put_item(TableName=f"src-{unique}", Item={**_ascii_item(100 + i), "empty": {"M": {}}, "name": text})
    ddb.put_item(TableName=f"src-{unique}", Item=make_big_item(1))
    seeded += 3
    exported = _exported(ddb, where, emulator, unique)
    assert exported.run.exported_items == seeded
    _, result = exported.import_target()
    assert (result.imported, result.errors) == (seeded, 0)
    assert _same(ddb, unique)
    report = verify_table(exported.spec, exported.mapping, workers=2)
    assert (report.source_items, report.target_items, report.differences) == (seeded, seeded, ())


@pytest.mark.emulators("ministack", reason="pins ministack's fault; moto writes the data file")
def test_the_emulator_s_export_writes_no_files_and_ferry_fails_the_copy(ddb, where, emulator, unique, account):
    """An emulator fault, pinned: ministack's ExportTableToPointInTime completes, counts the items and names
    a manifest, but writes nothing to the bucket. AWS writes the manifests and the data files under
    ``<export-prefix>/AWSDynamoDB/<ExportId>/``
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/S3DataExport.Output.html). ferry
    fails the copy naming the missing manifest rather than copying nothing."""
    _importable_source(ddb, unique, 3)
    spec = _spec(emulator, unique, read="export", write="batch")
    s3 = make_client("s3", where)
    s3.create_bucket(Bucket=f"exports-{unique}")
    initialize(spec, enable_pitr=True)
    clients = TableClients.of(ddb)
    run = begin_copy(spec, spec.tables[0], clients)
    with pytest.raises(PermanentError, match=r"the export's manifest s3://exports-.*/manifest-summary\.json does not"):
        export_files(spec, spec.tables[0], clients, s3, run, account=account, poll=0.1)
    recorded = StateStore(ddb, spec.state_table).load_copy(f"src-{unique}")
    assert recorded is not None and recorded.export_arn  # the export ran
    description = ddb.describe_export(ExportArn=recorded.export_arn)["ExportDescription"]
    assert (description["ExportStatus"], description["ItemCount"]) == ("COMPLETED", 3)
    assert s3.list_objects_v2(Bucket=f"exports-{unique}").get("KeyCount") == 0


def test_an_import_onto_an_existing_target_is_refused_before_any_write(ddb, where, emulator, unique):
    _source(ddb, unique, 3)
    create_table(ddb, f"dst-{unique}", hash_key=("pk", "S"), range_key=("sk", "N"))
    spec = _spec(emulator, unique, read="export", write="import")
    make_client("s3", where).create_bucket(Bucket=f"exports-{unique}")
    before = _tables(ddb)
    with pytest.raises(SetupError, match=r"tables\[0\]\.target: .* exists, but backfill.write: import creates"):
        initialize(spec, enable_pitr=True)
    assert _tables(ddb) == before


def test_an_import_cannot_create_local_secondary_indexes(ddb, where, emulator, unique):
    ddb.create_table(
        TableName=f"src-{unique}",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
            {"AttributeName": "at", "AttributeType": "S"},
        ],
        LocalSecondaryIndexes=[
            {
                "IndexName": "by-at",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "at", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    spec = _spec(emulator, unique, read="export", write="import")
    make_client("s3", where).create_bucket(Bucket=f"exports-{unique}")
    with pytest.raises(SetupError, match="local secondary indexes"):
        initialize(spec, enable_pitr=True)


def test_an_import_that_could_not_import_every_item_fails_the_copy(ddb, where, emulator, unique, aws_exports):
    # GIVEN an import whose description reports items it could not import (the emulator imports all, so
    # its answer is changed the way AWS answers when some lines are rejected)
    _importable_source(ddb, unique, 5)
    target = make_client("dynamodb", AwsTarget("us-east-1", emulator.endpoint_url))
    target.meta.events.register(
        "after-call.dynamodb.DescribeImport",
        lambda parsed, **_: parsed["ImportTableDescription"].update(ErrorCount=2),
    )
    exported = _exported(ddb, where, emulator, unique, target=target)
    # WHEN the import is waited for THEN the copy fails, naming the count
    with pytest.raises(PermanentError, match="could not import 2 of"):
        exported.import_target()


def test_an_import_that_rejects_an_item_fails_the_copy(ddb, where, emulator, unique, aws_exports):
    # GIVEN an export, and beside its data files one more that holds an item without the sort key, which
    # ImportTable must reject (the import reads every file under the data directory)
    _importable_source(ddb, unique, 3)
    exported = _exported(ddb, where, emulator, unique)
    directory = posixpath.dirname(exported.files[0])
    rejected = json.dumps({"Item": {"pk": {"S": "no-sort-key"}}}) + "\n"
    s3 = make_client("s3", where)
    s3.put_object(
        Bucket=exported.run.export_bucket, Key=f"{directory}/rejected.json.gz", Body=gzip.compress(rejected.encode())
    )
    # WHEN it is imported THEN the copy fails with the import's reason (both emulators fail the whole import:
    # ministack with AWS's ItemValidationError, moto with the PutItem's ValidationException; an import that
    # completes counting the item as an error fails it too: test_an_import_that_could_not_import_every_item…)
    with pytest.raises(PermanentError, match=r"import arn:\S+ FAILED: .*(ItemValidationError|Missing the key sk)"):
        exported.import_target()


# --- the release ---------------------------------------------------------------------------------


def _copied(ddb: Any, emulator: Any, unique: str) -> tuple[Any, TableClients, Any]:
    """A replay table initialised and copied (scan + batch), not released yet."""
    seeded = _source(ddb, unique, 10)
    spec = _spec(emulator, unique)
    init_tables(spec, ddb)
    clients, mapping = TableClients.of(ddb), spec.tables[0]
    run = begin_copy(spec, mapping, clients)
    plan = plan_backfill(spec, mapping, clients)
    for split in range(plan.splits):
        copy_segment(plan, split, clients)
    finish_copy(spec, mapping, clients, run, seeded)
    return spec, clients, mapping


def test_the_release_lets_the_held_changes_go_once_and_is_idempotent(ddb, streams, emulator, unique):
    spec, clients, mapping = _copied(ddb, emulator, unique)
    store = StateStore(ddb, spec.state_table)
    released = release_table(spec, mapping, clients, streams)
    assert store.get_phase(mapping.source) == "replay" and released.released_at > 0
    again = release_table(spec, mapping, clients, streams)
    assert again.detail == "already released" and store.released_at(mapping.source) == released.released_at


def test_the_release_refuses_before_the_copy_finished(ddb, streams, emulator, unique):
    _source(ddb, unique, 5)
    spec = _spec(emulator, unique)
    init_tables(spec, ddb)
    begin_copy(spec, spec.tables[0], TableClients.of(ddb))
    with pytest.raises(SetupError, match="the copy has not finished"):
        release_table(spec, spec.tables[0], TableClients.of(ddb), streams)
    assert StateStore(ddb, spec.state_table).get_phase(spec.tables[0].source) == "hold"


@pytest.mark.parametrize("loss", ["capture older than the stream's 24 hours", "a shard open at capture is gone"])
def test_the_release_refuses_a_copy_that_outlasted_the_retention(ddb, streams, emulator, unique, loss):
    # GIVEN a completed copy whose held changes cannot all be in the stream any more
    spec, clients, mapping = _copied(ddb, emulator, unique)
    store = StateStore(ddb, spec.state_table)
    capture = store.load_capture(mapping.source)
    assert capture is not None
    if loss.startswith("capture"):
        store.save_capture(mapping.source, replace(capture, captured_at=time.time() - 24 * 3600 - 60))
    else:
        store.save_capture(mapping.source, Capture(capture.captured_at, capture.where, ("shardId-trimmed-long-ago",)))
    # WHEN it is released THEN it refuses (exit 3), naming the protocol to rerun with, and still holds
    with pytest.raises(ReleaseRefused, match=r"outlasted the stream's retention.*insert-only") as refused:
        release_table(spec, mapping, clients, streams)
    assert refused.value.exit_code == 3
    assert store.get_phase(mapping.source) == "hold"


def test_a_deployed_release_creates_the_stream_mapping_at_trim_horizon_with_no_record_age(
    ddb, streams, sqs, where, emulator, unique
):
    # GIVEN a deployed stage: its table_stream function exists, and the on-failure queue
    iam, lam = make_client("iam", where), make_client("lambda", where)
    role = iam.create_role(
        RoleName=f"fn-{unique}",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    stage = f"s{unique[:8]}"
    lam.create_function(
        FunctionName=f"ferry-{stage}-table_stream",
        Runtime="python3.11",
        Role=role,
        Handler="app.table_stream",
        Code={"ZipFile": _zip()},
    )
    sqs.create_queue(QueueName=f"failures-{unique}")
    spec, clients, mapping = _copied(ddb, emulator, unique)
    stream_arn = ddb.describe_table(TableName=mapping.source)["Table"]["LatestStreamArn"]
    assert lam.list_event_source_mappings(EventSourceArn=stream_arn)["EventSourceMappings"] == []
    # WHEN the copy is released for the stage
    released = release_table(spec, mapping, clients, streams, deployment=Deployment(stage, lam, sqs))
    # THEN the mapping exists now, from the oldest record, never discarding a held record for its age
    (created,) = lam.list_event_source_mappings(EventSourceArn=stream_arn)["EventSourceMappings"]
    assert created["FunctionArn"].endswith(f"ferry-{stage}-table_stream")
    assert created["StartingPosition"] == "TRIM_HORIZON"
    assert created["MaximumRecordAgeInSeconds"] == -1
    assert created["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "created stream mapping" in released.detail
    # AND a second release leaves it as it is
    assert "exists" in release_table(spec, mapping, clients, streams, deployment=Deployment(stage, lam, sqs)).detail
    assert len(lam.list_event_source_mappings(EventSourceArn=stream_arn)["EventSourceMappings"]) == 1
    # WHEN the catch-up is done (finalize --stage) THEN the mapping gets the spec's finite record age, as an
    # insert-only mapping has: a mapping that falls behind skips into the on-failure queue, not into trimming
    detail = bound_record_age(spec, mapping, Deployment(stage, lam, sqs), stream_arn)
    (bounded,) = lam.list_event_source_mappings(EventSourceArn=stream_arn)["EventSourceMappings"]
    assert bounded["MaximumRecordAgeInSeconds"] == spec.replication.max_record_age_seconds
    assert "now skips records older than" in detail
    assert "already" in bound_record_age(spec, mapping, Deployment(stage, lam, sqs), stream_arn)


def _zip() -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def table_stream(event, context):\n    return {}\n")
    return buffer.getvalue()


def test_changes_during_the_copy_are_held_then_replayed_over_the_copied_images(ddb, streams, emulator, unique):
    # GIVEN a replay table and a write made after capture began but before the copy read the key
    spec = _spec(emulator, unique)
    _source(ddb, unique, 10)
    init_tables(spec, ddb)
    newer = make_item(__import__("random").Random(4), 2, version=77)
    ddb.put_item(TableName=f"src-{unique}", Item=newer)
    clients, mapping = TableClients.of(ddb), spec.tables[0]
    run = begin_copy(spec, mapping, clients)
    plan = plan_backfill(spec, mapping, clients)
    for split in range(plan.splits):
        copy_segment(plan, split, clients)
    ddb.delete_item(TableName=f"src-{unique}", Key=key_of(newer, KEYS))  # after the copy read it
    finish_copy(spec, mapping, clients, run, 10)
    assert not _same(ddb, unique)  # the target has the deleted key
    # WHEN the copy is released and the held records are applied in order by the real handler
    release_table(spec, mapping, clients, streams)
    from ferry_dev.replication import LocalReplication

    LocalReplication(spec, retry_backoff=0).drain(timeout=60)
    # THEN the target equals the source
    assert _same(ddb, unique)


def test_a_replay_copy_without_init_begins_its_capture_before_it_reads(ddb, emulator, unique):
    # GIVEN a replay table deployed as `make deploy` does it: `ferry init --sources-only` enabled the
    # source's stream, Terraform made the target and the state table, and nothing recorded a phase
    from ferry.tables.state import create_state_table

    create_table(ddb, f"src-{unique}", hash_key=("pk", "S"), range_key=("sk", "N"), stream=True)
    create_table(ddb, f"dst-{unique}", hash_key=("pk", "S"), range_key=("sk", "N"))
    spec = _spec(emulator, unique)
    create_state_table(ddb, spec.state_table)
    store = StateStore(ddb, spec.state_table)
    assert store.phase_or_none(f"src-{unique}") is None
    # WHEN its copy begins
    before = time.time()
    begin_copy(spec, spec.tables[0], TableClients.of(ddb))
    # THEN capture began then, on the source's stream, and the changes are held
    capture = store.load_capture(f"src-{unique}")
    assert capture is not None and capture.captured_at >= before and capture.shards
    assert capture.where == ddb.describe_table(TableName=f"src-{unique}")["Table"]["LatestStreamArn"]
    assert store.get_phase(f"src-{unique}") == "hold"


def test_the_shared_events_queue_opens_once_no_bucket_is_held(ddb, emulator, unique):
    # GIVEN two replay buckets held (their copies recorded, one done), sharing the events queue
    from ferry.release import queue_released, release_bucket
    from ferry.tables.state import BUCKET, COPY_DONE, CopyRun, create_state_table

    spec = parse_spec(
        {
            "region": "us-east-1",
            "endpoint_url": emulator.endpoint_url,
            "state_table": f"state-{unique}",
            "buckets": [
                {"source": f"a-{unique}", "target": f"a2-{unique}"},
                {"source": f"b-{unique}", "target": f"b2-{unique}"},
            ],
        }
    )
    create_state_table(ddb, spec.state_table)
    store = StateStore(ddb, spec.state_table)
    for bucket in spec.buckets:
        store.save_capture(bucket.source, Capture(time.time(), "queue:x"), BUCKET)
        store.set_phase(bucket.source, "hold", BUCKET)
    store.save_copy(f"a-{unique}", CopyRun(protocol="replay", status=COPY_DONE), BUCKET)
    # WHEN the second's copy has not finished THEN it is not released (exit 2) and the queue stays closed
    with pytest.raises(SetupError, match="the copy has not finished"):
        release_bucket(spec, f"b-{unique}", store)
    # WHEN the first is released THEN the queue still waits for the second
    first = release_bucket(spec, f"a-{unique}", store)
    assert "opens once" in first.detail and f"b-{unique}" in first.detail and not queue_released(store, spec)
    # WHEN the second's events are older than the queue keeps them THEN it is refused (exit 3)
    store.save_copy(f"b-{unique}", CopyRun(protocol="replay", status=COPY_DONE), BUCKET)
    store.save_capture(f"b-{unique}", Capture(time.time() - 15 * 24 * 3600, "queue:x"), BUCKET)
    with pytest.raises(ReleaseRefused, match="outlasted the events queue's retention"):
        release_bucket(spec, f"b-{unique}", store)
    # WHEN it is younger THEN it is released and the queue opens
    store.save_capture(f"b-{unique}", Capture(time.time(), "queue:x"), BUCKET)
    assert "local pollers" in release_bucket(spec, f"b-{unique}", store).detail
    assert queue_released(store, spec)
