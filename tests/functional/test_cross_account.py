"""Cross-account access through the spec's two optional roles, against the emulator.

Both emulators answer sts:AssumeRole for any role and then serve the assumed role's requests
*in the role's account*: a table created with the source role lives in account 111111111111 and
is invisible to the target role (222222222222) and to ferry's own credentials (the home account:
123456789012 on moto, 000000000000 on ministack). So a client routed to the wrong side does not
silently work here: it finds no table. Cross-account S3 reads need the source bucket's policy, as
on AWS: ministack enforces that, moto enforces no policy at all (pinned); ministack cannot make a
server-side copy across accounts even then (pinned), so the bucket copy across accounts runs on moto.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import boto3
import pytest
from botocore.exceptions import ClientError
from chalicelib import bucket_events, table_stream

from ferry import clients
from ferry.aws import stream_arn_of
from ferry.buckets.backfill import BucketPlan, reconcile_partition
from ferry.buckets.reconcile import COPIED, UNCHANGED, reconcile_key
from ferry.buckets.verify import verify_bucket
from ferry.clients import AwsTarget, BucketClients, TableClients, bucket_clients, make_client, table_clients
from ferry.release import release_table
from ferry.spec import Spec, parse_spec, spec_to_dict
from ferry.tables.backfill import copy_segment, plan_backfill
from ferry.tables.copy_run import begin_copy, finish_copy
from ferry.tables.finalize import finalize_table
from ferry.tables.setup import init_tables
from ferry.tables.state import StateStore
from ferry.tables.verify import verify_table
from ferry_dev.stream_poller import LocalContext, lambda_event
from tests.conftest import REGION, create_table, scan_all

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

pytestmark = pytest.mark.functional

SOURCE_ACCOUNT, TARGET_ACCOUNT = "111111111111", "222222222222"
# each emulator's answer to GetCallerIdentity for the dummy credentials
BASE_IDENTITIES = {"moto": "arn:aws:sts::123456789012:user/moto", "ministack": "arn:aws:iam::000000000000:root"}


@pytest.fixture
def base_identity(emulator_kind: str) -> str:
    return BASE_IDENTITIES[emulator_kind]


def identity(client: Any, endpoint_url: str) -> str:
    """The ARN a client signs as: sts:GetCallerIdentity made with that client's own credentials.

    (``_get_credentials`` is botocore's private accessor; good enough for a test.)"""
    frozen = client._get_credentials().get_frozen_credentials()
    sts = boto3.session.Session().client(
        "sts",
        region_name=REGION,
        endpoint_url=endpoint_url,
        aws_access_key_id=frozen.access_key,
        aws_secret_access_key=frozen.secret_key,
        aws_session_token=frozen.token,
    )
    return str(sts.get_caller_identity()["Arn"])


def assumed(account: str, role_name: str) -> str:
    return f"arn:aws:sts::{account}:assumed-role/{role_name}/ferry"


@pytest.fixture
def fresh_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty per-process credentials cache for this test (restored afterwards)."""
    monkeypatch.setattr(clients, "_role_credentials", {})


@pytest.fixture
def assume_calls(monkeypatch: pytest.MonkeyPatch, fresh_credentials: None) -> list[str]:
    """Every sts:AssumeRole ferry makes, by role ARN."""
    calls: list[str] = []
    real = clients._assume_role

    def spy(sts: Any, role_arn: str) -> dict[str, str]:
        calls.append(role_arn)
        return real(sts, role_arn)

    monkeypatch.setattr(clients, "_assume_role", spy)
    return calls


@dataclasses.dataclass
class Migration:
    spec: Spec
    source_role: str  # role names
    target_role: str

    @property
    def table(self) -> Any:
        return self.spec.tables[0]

    @property
    def bucket(self) -> Any:
        return self.spec.buckets[0]


@pytest.fixture(params=["insert-only"])
def migration(request: pytest.FixtureRequest, emulator: Any, unique: str, fresh_credentials: None) -> Migration:
    source_role, target_role = f"ferry-source-{unique}", f"ferry-target-{unique}"
    spec = parse_spec(
        {
            "region": REGION,
            "endpoint_url": emulator.endpoint_url,
            "state_table": f"state-{unique}",
            "source_role_arn": f"arn:aws:iam::{SOURCE_ACCOUNT}:role/{source_role}",
            "target_role_arn": f"arn:aws:iam::{TARGET_ACCOUNT}:role/migrations/{target_role}",
            "tables": [{"source": f"src-{unique}", "target": f"dst-{unique}", "protocol": request.param}],
            "buckets": [{"source": f"src-{unique}", "target": f"dst-{unique}"}],
            "backfill": {"splits": 2},
            "replication": {"phase_cache_seconds": 0, "on_failure_queue": f"failures-{unique}"},
        }
    )
    return Migration(spec, source_role, target_role)


@pytest.fixture
def handlers(monkeypatch: pytest.MonkeyPatch, migration: Migration) -> Iterator[tuple[Any, Any]]:
    """The two Lambda handlers, configured with the migration's spec through FERRY_SPEC."""
    monkeypatch.setenv("FERRY_SPEC", json.dumps(spec_to_dict(migration.spec)))
    table_stream.reset()
    bucket_events.reset()
    yield table_stream, bucket_events
    table_stream.reset()
    bucket_events.reset()


# --- (a) make_client with a role -------------------------------------------------------------


def test_a_client_with_a_role_signs_as_the_assumed_role(
    emulator: Any, unique: str, assume_calls: list[str], base_identity: str
) -> None:
    # GIVEN a target with a role in another account
    role = f"arn:aws:iam::{SOURCE_ACCOUNT}:role/reader-{unique}"
    where = AwsTarget(REGION, emulator.endpoint_url, role)
    # WHEN two clients are made for it
    sts = make_client("sts", where)
    ddb = make_client("dynamodb", where)
    # THEN both sign as the assumed role, session name "ferry" ...
    assert sts.get_caller_identity()["Arn"] == assumed(SOURCE_ACCOUNT, f"reader-{unique}")
    assert identity(ddb, emulator.endpoint_url) == assumed(SOURCE_ACCOUNT, f"reader-{unique}")
    # ... and share one credentials object: the role was assumed once for the process
    assert assume_calls == [role]
    assert clients.role_credentials(where) is clients.role_credentials(where)
    assert clients.role_credentials(where).method == "sts-assume-role"
    # AND a client without a role keeps the process's own credentials
    assert make_client("sts", AwsTarget(REGION, emulator.endpoint_url)).get_caller_identity()["Arn"] == base_identity
    assert assume_calls == [role]


def test_expired_role_credentials_are_refreshed_with_another_assume_role(
    emulator: Any, unique: str, monkeypatch: pytest.MonkeyPatch, assume_calls: list[str]
) -> None:
    # GIVEN the first AssumeRole answers credentials that have already expired
    role = f"arn:aws:iam::{TARGET_ACCOUNT}:role/writer-{unique}"
    spy = clients._assume_role

    def first_expired(sts: Any, role_arn: str) -> dict[str, str]:
        metadata = spy(sts, role_arn)
        if len(assume_calls) == 1:
            past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
            metadata["expiry_time"] = past.isoformat()
        return metadata

    monkeypatch.setattr(clients, "_assume_role", first_expired)
    where = AwsTarget(REGION, emulator.endpoint_url, role)
    sts = make_client("sts", where)
    assert assume_calls == [role]
    # WHEN the client makes a request
    arn = sts.get_caller_identity()["Arn"]
    # THEN botocore called the refresh function (AssumeRole again) before signing, and the request
    # went out with the fresh credentials
    assert assume_calls == [role, role]
    assert arn == assumed(TARGET_ACCOUNT, f"writer-{unique}")
    # AND fresh credentials are not refreshed again on the next request
    sts.get_caller_identity()
    assert assume_calls == [role, role]


def test_credentials_inside_the_refresh_window_are_renewed_while_clients_keep_working(
    emulator: Any, unique: str, monkeypatch: pytest.MonkeyPatch, assume_calls: list[str]
) -> None:
    # GIVEN a long-lived client of a role, already used once
    role = f"arn:aws:iam::{SOURCE_ACCOUNT}:role/long-run-{unique}"
    where = AwsTarget(REGION, emulator.endpoint_url, role)
    ddb = make_client("dynamodb", where)
    ddb.list_tables()
    credentials = clients.role_credentials(where)
    first_key = credentials.get_frozen_credentials().access_key
    assert assume_calls == [role]
    # WHEN its credentials enter the refresh window (as after an hour of a Glue backfill: here by
    # widening botocore's advisory and mandatory windows beyond the credentials' lifetime)
    # (inside the windows botocore refreshes on every read of the credentials, so a request may
    # refresh more than once)
    monkeypatch.setattr(credentials, "_advisory_refresh_timeout", 24 * 3600)
    monkeypatch.setattr(credentials, "_mandatory_refresh_timeout", 24 * 3600)
    ddb.list_tables()
    # THEN the same client assumed the role again and signs with the new credentials
    assert len(assume_calls) >= 2 and set(assume_calls) == {role}
    assert credentials.get_frozen_credentials().access_key != first_key
    # AND once the credentials are fresh (back to botocore's windows), requests assume nothing more
    windows = cast(Any, type(credentials))  # botocore's class defaults: private, so not in botocore-stubs
    monkeypatch.setattr(credentials, "_advisory_refresh_timeout", windows._advisory_refresh_timeout)
    monkeypatch.setattr(credentials, "_mandatory_refresh_timeout", windows._mandatory_refresh_timeout)
    renewed = len(assume_calls)
    assert identity(ddb, emulator.endpoint_url) == assumed(SOURCE_ACCOUNT, f"long-run-{unique}")
    ddb.list_tables()
    assert len(assume_calls) == renewed


# --- (b) which client each side gets ---------------------------------------------------------


def test_each_side_gets_its_own_role_and_ferrys_own_resources_the_base_credentials(
    migration: Migration, emulator: Any, handlers: tuple[Any, Any], base_identity: str
) -> None:
    spec, endpoint = migration.spec, emulator.endpoint_url
    source = assumed(SOURCE_ACCOUNT, migration.source_role)
    target = assumed(TARGET_ACCOUNT, migration.target_role)
    # the factories every command uses
    tables = table_clients(spec)
    assert identity(tables.source, endpoint) == source
    assert identity(tables.target, endpoint) == target
    assert identity(tables.state, endpoint) == base_identity
    buckets = bucket_clients(spec)
    assert identity(buckets.source, endpoint) == source
    assert identity(buckets.target, endpoint) == target
    # the plans the Spark tasks build their clients from
    plan = BucketPlan.of(spec, migration.bucket)
    task = BucketClients.connect(plan.source_where, plan.target_where)
    assert (identity(task.source, endpoint), identity(task.target, endpoint)) == (source, target)
    # the Lambdas: table_stream writes the target and reads the phase at home
    stream_replicator = table_stream.replicator()
    assert identity(stream_replicator.ddb, endpoint) == target
    assert identity(stream_replicator.phases.store.ddb, endpoint) == base_identity
    # bucket_events reads the source and copies into the target
    bucket_replicator = bucket_events.replicator()
    assert identity(bucket_replicator.s3, endpoint) == source
    assert identity(bucket_replicator.target_s3, endpoint) == target


def test_without_roles_one_client_serves_every_side(where: AwsTarget, fresh_credentials: None) -> None:
    spec = parse_spec(
        {"region": REGION, "endpoint_url": where.endpoint_url, "tables": [{"source": "abc", "target": "abc-v2"}]}
    )
    tables = table_clients(spec)
    assert tables.source is tables.target is tables.state
    buckets = bucket_clients(spec)
    assert buckets.source is buckets.target
    # and a single client given where TableClients are expected serves every side too
    assert TableClients.of(tables.source) == TableClients(tables.source, tables.source, tables.source)
    assert TableClients.of(tables) is tables
    assert clients._role_credentials == {}  # nothing was assumed


class Requests:
    """Records the operation and the bucket of every request a client makes (before it is sent)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[tuple[str, str, str | None]] = []  # (operation, Bucket, CopySource bucket)
        client.meta.events.register("provide-client-params.s3.*", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        copy_source = params.get("CopySource")
        self.calls.append((model.name, params.get("Bucket", ""), copy_source["Bucket"] if copy_source else None))

    def operations(self) -> set[str]:
        return {operation for operation, _, _ in self.calls}

    def buckets(self) -> set[str]:
        return {bucket for _, bucket, _ in self.calls}


def test_every_s3_request_goes_to_the_side_of_the_bucket_it_names(
    where: AwsTarget, sqs: Any, unique: str, fresh_credentials: None
) -> None:
    # GIVEN one client per side (recorded) and a source with a small object, a tagged one and a
    # multipart one above the threshold (copied part by part)
    spec = parse_spec(
        {
            "region": REGION,
            "endpoint_url": where.endpoint_url,
            "buckets": [{"source": f"src-{unique}", "target": f"dst-{unique}"}],
            "s3": {"multipart_threshold": 5 * 1024 * 1024, "concurrency": 2},
        }
    )
    mapping = spec.buckets[0]
    admin = make_client("s3", where)
    admin.create_bucket(Bucket=mapping.source)
    admin.put_object(Bucket=mapping.source, Key="small", Body=b"x")
    admin.put_object(Bucket=mapping.source, Key="tagged", Body=b"y", Tagging="a=b")
    upload = admin.create_multipart_upload(Bucket=mapping.source, Key="large")["UploadId"]
    parts: list[CompletedPartTypeDef] = []
    for number, size in ((1, 5 * 1024 * 1024), (2, 1024)):
        etag = admin.upload_part(
            Bucket=mapping.source, Key="large", UploadId=upload, PartNumber=number, Body=b"z" * size
        )["ETag"]
        parts.append({"ETag": etag, "PartNumber": number})
    admin.complete_multipart_upload(
        Bucket=mapping.source, Key="large", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    source, target = Requests(make_client("s3", where)), Requests(make_client("s3", where))
    sides = BucketClients(source.client, target.client)
    queue = sqs.create_queue(QueueName=f"events-{unique}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    # WHEN init, a backfill partition, and a verify with repair run with them
    from ferry.buckets.setup import init_buckets

    init_buckets(spec, sides, sqs, make_client("events", where), queue_url=queue, queue_arn=queue_arn)
    plan = BucketPlan.of(spec, mapping)
    assert reconcile_partition(plan, 0, ["small", "tagged", "large"], s3=sides).failed == ()
    admin.delete_object(Bucket=mapping.source, Key="small")  # the target's copy is now extra
    admin.put_object(Bucket=mapping.target, Key="tagged", Body=b"stale")  # and this one differs
    report = verify_bucket(spec, mapping, workers=2, repair=True, s3_factory=lambda: sides)
    assert report.ok and report.repaired == 2

    # THEN the source side only ever named the source bucket, and wrote nothing but its event configuration
    assert source.buckets() == {mapping.source}
    assert source.operations() >= {"HeadBucket", "GetBucketVersioning", "ListObjectsV2", "HeadObject"}
    assert {op for op in source.operations() if not op.startswith(("Get", "Head", "List"))} == {
        "PutBucketNotificationConfiguration"
    }
    # AND the target side named only the target bucket, and made every copy (reading the source server-side)
    assert target.buckets() == {mapping.target}
    assert target.operations() >= {
        "CreateBucket",
        "CopyObject",
        "CreateMultipartUpload",
        "UploadPartCopy",
        "CompleteMultipartUpload",
        "DeleteObject",
    }
    assert {copied for _, _, copied in target.calls if copied} == {mapping.source}


# --- (c) a migration end to end with both roles -----------------------------------------------


def _stream_records(streams: Any, stream_arn: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    for shard in shards:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records += page["Records"]
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return records


def test_a_table_migrates_across_accounts_with_both_roles(
    migration: Migration, emulator: Any, handlers: tuple[Any, Any]
) -> None:
    spec, mapping = migration.spec, migration.table
    source_ddb = make_client("dynamodb", spec.source_where())  # the application, in the source account
    target_ddb = make_client("dynamodb", spec.target_where())
    home_ddb = make_client("dynamodb", spec.home_where())
    # GIVEN a source table with items in the source account, and `init` with the spec's clients
    create_table(source_ddb, mapping.source)
    for i in range(20):
        source_ddb.put_item(TableName=mapping.source, Item={"pk": {"S": f"item-{i}"}, "n": {"N": str(i)}})
    init_tables(spec, table_clients(spec))
    # THEN the target was created in the target account and the state table at home, nowhere else
    assert mapping.target in target_ddb.list_tables()["TableNames"]
    assert spec.state_table in home_ddb.list_tables()["TableNames"]
    assert mapping.target not in home_ddb.list_tables()["TableNames"]
    assert spec.state_table not in target_ddb.list_tables()["TableNames"]

    # WHEN the backfill copies a segment with the clients its task builds from the plan
    plan = plan_backfill(spec, mapping, table_clients(spec))
    result = copy_segment(plan, 0)
    assert result.status == "done" and result.error == ""
    # ... and the rest, so that the whole table is there
    rest = [copy_segment(plan, s) for s in range(1, plan.total_segments)]
    assert all(r.status == "done" for r in rest)
    assert result.written + sum(r.written for r in rest) == 20
    assert len(StateStore(home_ddb, spec.state_table).list_segments(mapping.source)) == plan.total_segments

    # AND live changes reach the target through the table_stream Lambda (records from the source's stream)
    source_ddb.put_item(TableName=mapping.source, Item={"pk": {"S": "live"}, "n": {"N": "99"}})
    source_ddb.delete_item(TableName=mapping.source, Key={"pk": {"S": "item-0"}})
    streams = make_client("dynamodbstreams", spec.source_where())
    stream_arn = stream_arn_of(source_ddb, mapping.source)
    records = _stream_records(streams, stream_arn)
    assert records
    context = LocalContext("table_stream", "cross-account", deadline=float("inf"))
    response = table_stream.handle(lambda_event(records, stream_arn), context)
    assert response == {"batchItemFailures": []}
    target_keys = {item["pk"]["S"] for item in scan_all(target_ddb, mapping.target)}
    assert "live" in target_keys

    # AND finalize (phase at home, tombstones in the target) and verify find nothing left to do
    finalized = finalize_table(spec, mapping, table_clients(spec), sleep=lambda _: None)
    assert finalized.tombstones_removed == 1  # item-0, deleted during the backfill phase
    report = verify_table(spec, mapping, segments=2, workers=2)
    assert report.ok, report.counts()
    assert report.source_items == report.target_items == 20


@pytest.mark.parametrize("migration", ["replay"], indirect=True)
def test_a_replay_table_is_copied_and_released_across_accounts_with_both_roles(
    migration: Migration, emulator: Any, handlers: tuple[Any, Any]
) -> None:
    spec, mapping = migration.spec, migration.table
    source_ddb = make_client("dynamodb", spec.source_where())  # the application, in the source account
    target_ddb = make_client("dynamodb", spec.target_where())
    # GIVEN a replay table initialised across accounts, its copy done, and changes held meanwhile
    create_table(source_ddb, mapping.source)
    for i in range(20):
        source_ddb.put_item(TableName=mapping.source, Item={"pk": {"S": f"item-{i}"}, "n": {"N": str(i)}})
    clients = table_clients(spec)
    init_tables(spec, clients)
    run = begin_copy(spec, mapping, clients)
    plan = plan_backfill(spec, mapping, clients)
    assert plan.writes == "batch"
    results = [copy_segment(plan, s) for s in range(plan.total_segments)]
    source_ddb.put_item(TableName=mapping.source, Item={"pk": {"S": "live"}, "n": {"N": "99"}})
    source_ddb.delete_item(TableName=mapping.source, Key={"pk": {"S": "item-0"}})
    finish_copy(spec, mapping, clients, run, sum(r.written for r in results))
    # WHEN the release checks the source's stream (source role) and records it in the state table (home)
    streams = make_client("dynamodbstreams", spec.source_where())
    released = release_table(spec, mapping, clients, streams)
    assert "local pollers" in released.detail
    # AND the held records reach the target through the table_stream Lambda (target role)
    stream_arn = stream_arn_of(source_ddb, mapping.source)
    records = _stream_records(streams, stream_arn)
    context = LocalContext("table_stream", "cross-account", deadline=float("inf"))
    assert table_stream.handle(lambda_event(records, stream_arn), context) == {"batchItemFailures": []}
    # THEN the target equals the source: the delete was applied for real (no tombstone), and finalize marks it live
    assert finalize_table(spec, mapping, clients, sleep=lambda _: None).tombstones_removed == 0
    report = verify_table(spec, mapping, segments=2, workers=2)
    assert report.ok, report.counts()
    assert "item-0" not in {item["pk"]["S"] for item in scan_all(target_ddb, mapping.target)}


def grant_reads(s3: Any, bucket: str, account: str) -> None:
    """The source bucket's policy AWS needs for another account to read it (and copy from it)."""
    statement = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
        "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging", "s3:ListBucket"],
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
    }
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]}))


def two_accounts(emulator: Any, unique: str) -> tuple[Any, Any, str]:
    """S3 clients of the source and the target account, and a source bucket holding one object."""
    source_s3 = make_client("s3", AwsTarget(REGION, emulator.endpoint_url, f"arn:aws:iam::{SOURCE_ACCOUNT}:role/s"))
    target_s3 = make_client("s3", AwsTarget(REGION, emulator.endpoint_url, f"arn:aws:iam::{TARGET_ACCOUNT}:role/t"))
    bucket = f"theirs-{unique}"
    source_s3.create_bucket(Bucket=bucket)
    source_s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    return source_s3, target_s3, bucket


@pytest.mark.emulators("ministack", reason="moto enforces no bucket policy (pinned below)")
def test_another_account_reads_a_bucket_only_through_its_policy(
    emulator: Any, unique: str, fresh_credentials: None
) -> None:
    source_s3, target_s3, bucket = two_accounts(emulator, unique)
    with pytest.raises(ClientError, match="AccessDenied"):
        target_s3.get_object(Bucket=bucket, Key="k")
    grant_reads(source_s3, bucket, TARGET_ACCOUNT)
    assert target_s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


@pytest.mark.emulators("moto", reason="pins moto's fault: another account reads a bucket without its policy")
def test_moto_lets_another_account_read_a_bucket_without_its_policy(
    emulator: Any, unique: str, fresh_credentials: None
) -> None:
    # AWS: another account's request needs the bucket's policy to allow it (S3 User Guide, bucket
    # policies, cross-account permissions); moto enforces no policy. This fails the day it does.
    _, target_s3, bucket = two_accounts(emulator, unique)
    assert target_s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


@pytest.mark.emulators("ministack", reason="pins ministack's fault: no server-side copy across accounts")
def test_ministack_cannot_copy_from_another_accounts_bucket_even_with_its_policy(
    emulator: Any, unique: str, fresh_credentials: None
) -> None:
    # AWS: CopyObject and UploadPartCopy need read access to the source object and write access to
    # the destination (S3 API reference), which the policy and the target account's own bucket give.
    # ministack reads the object (GetObject) but looks the copy source up in the caller's account.
    # This fails the day ministack copies: then run the cross-account bucket copy on it too.
    source_s3, target_s3, bucket = two_accounts(emulator, unique)
    grant_reads(source_s3, bucket, TARGET_ACCOUNT)
    target_s3.create_bucket(Bucket=f"mine-{unique}")
    assert target_s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
    with pytest.raises(ClientError, match="NoSuchBucket"):
        target_s3.copy_object(Bucket=f"mine-{unique}", Key="k", CopySource={"Bucket": bucket, "Key": "k"})
    upload = target_s3.create_multipart_upload(Bucket=f"mine-{unique}", Key="m")["UploadId"]
    with pytest.raises(ClientError, match="NoSuchBucket"):
        target_s3.upload_part_copy(
            Bucket=f"mine-{unique}", Key="m", UploadId=upload, PartNumber=1, CopySource={"Bucket": bucket, "Key": "k"}
        )


@pytest.mark.emulators("moto", reason="ministack makes no server-side copy across accounts (pinned above)")
def test_a_bucket_reconciles_across_accounts_with_both_roles(
    migration: Migration, emulator: Any, handlers: tuple[Any, Any]
) -> None:
    spec, mapping = migration.spec, migration.bucket
    source_s3 = make_client("s3", spec.source_where())
    target_s3 = make_client("s3", spec.target_where())
    # GIVEN a source bucket in the source account, readable by the target account through its policy
    # (as AWS needs), and an empty target bucket in the target account
    source_s3.create_bucket(Bucket=mapping.source)
    grant_reads(source_s3, mapping.source, TARGET_ACCOUNT)
    target_s3.create_bucket(Bucket=mapping.target)
    for i in range(5):
        source_s3.put_object(
            Bucket=mapping.source,
            Key=f"docs/file {i}.txt",
            Body=f"body {i}".encode(),
            ContentType="text/plain",
            Metadata={"owner": "team-a"},
            Tagging="kind=doc",
        )
    buckets = bucket_clients(spec)
    # WHEN one key is reconciled with the spec's clients
    result = reconcile_key(buckets.source, mapping, "docs/file 0.txt", spec.s3, target_s3=buckets.target)
    # THEN the copy was made (server-side, by the target side) and the target holds the object
    assert result.action == COPIED
    copied = target_s3.get_object(Bucket=mapping.target, Key="docs/file 0.txt")
    assert copied["Body"].read() == b"body 0" and copied["Metadata"] == {"owner": "team-a"}
    tags = target_s3.get_object_tagging(Bucket=mapping.target, Key="docs/file 0.txt")["TagSet"]
    assert tags == [{"Key": "kind", "Value": "doc"}]
    # AND a backfill partition (clients built from the plan, as in a Spark task) copies the rest
    plan = BucketPlan.of(spec, mapping)
    keys = sorted(o["Key"] for o in source_s3.list_objects_v2(Bucket=mapping.source)["Contents"])
    partition = reconcile_partition(plan, 0, keys)
    assert partition.failed == ()
    assert partition.actions == {UNCHANGED: 1, COPIED: 4}
    # AND verify, through the same sides, finds the buckets identical
    report = verify_bucket(spec, mapping, workers=2)
    assert report.ok, report.counts()
    assert report.source_items == report.target_items == 5
