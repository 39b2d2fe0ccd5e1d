"""The deployment commands: what they change (only the sources, for `init --sources-only`), what
they refuse, and that `ferry tfvars` reproduces the source faithfully."""

from __future__ import annotations

import fnmatch
import functools
import io
import json
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from botocore.client import BaseClient
from click.testing import CliRunner

from ferry.clients import make_client
from ferry.deploy import Arns, bucket_events_settings, policy_documents
from ferry.jobs import JobRun
from ferry.operations import initialize
from ferry.spec import parse_spec
from ferry_cli.main import cli
from tests.conftest import create_table
from tests.emulated_export import SCAFFOLD_USER_AGENT, write_exports_as_aws_does

pytestmark = pytest.mark.functional


def _spec(tmp_path: Path, emulator, unique: str, **extra) -> str:
    body = {
        "region": "us-east-1",
        "endpoint_url": emulator.endpoint_url,
        "state_table": f"state-{unique}",
        "tables": [{"source": f"src-{unique}", "target": f"dst-{unique}"}],
        **extra,
    }
    path = tmp_path / "ferry.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return str(path)


def _tables(ddb) -> set[str]:
    return {n for page in ddb.get_paginator("list_tables").paginate() for n in page["TableNames"]}


def test_sources_only_enables_the_stream_and_creates_nothing_else(ddb, emulator, unique, tmp_path):
    create_table(ddb, f"src-{unique}", range_key=("sk", "N"))
    before = _tables(ddb)
    result = CliRunner().invoke(cli, ["init", "--spec", _spec(tmp_path, emulator, unique), "--sources-only"])
    assert result.exit_code == 0, result.output
    assert f"enabled stream (NEW_AND_OLD_IMAGES) on src-{unique}" in result.output
    assert _tables(ddb) == before  # no target, no state table: Terraform creates those
    stream = ddb.describe_table(TableName=f"src-{unique}")["Table"]["StreamSpecification"]
    assert stream == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    again = CliRunner().invoke(cli, ["init", "--spec", _spec(tmp_path, emulator, unique), "--sources-only"])
    assert again.exit_code == 0 and "nothing to do" in again.output


def test_tfvars_refuses_a_source_without_its_stream(ddb, emulator, unique, tmp_path):
    create_table(ddb, f"src-{unique}")
    out = tmp_path / "vars.json"
    result = CliRunner().invoke(
        cli, ["tfvars", "--spec", _spec(tmp_path, emulator, unique), "--stage", "dev", "--out", str(out)]
    )
    assert result.exit_code == 2
    assert "tables[0].source" in result.output and "ferry init --sources-only" in result.output
    assert not out.exists()


def test_tfvars_writes_the_source_shape_and_the_shared_settings(ddb, emulator, unique, tmp_path):
    create_table(ddb, f"src-{unique}", range_key=("sk", "B"), stream=True, provisioned=(7, 3))
    out = tmp_path / "vars.json"
    spec = _spec(tmp_path, emulator, unique, replication={"max_retries": 5, "batch_size": 25})
    result = CliRunner().invoke(cli, ["tfvars", "--spec", spec, "--stage", "prod", "--out", str(out)])
    assert result.exit_code == 0, result.output
    variables = json.loads(out.read_text())
    (table,) = variables["tables"]
    assert table["create_target"] is True
    assert (table["hash_key"], table["range_key"]) == ("pk", "sk")
    assert {"name": "sk", "type": "B"} in table["attributes"]
    assert (table["billing_mode"], table["read_capacity"], table["write_capacity"]) == ("PROVISIONED", 7, 3)
    assert variables["stream_mapping"]["maximum_retry_attempts"] == 5
    assert variables["stream_mapping"]["batch_size"] == 25
    assert variables["stage"] == "prod" and variables["state_table_name"] == f"state-{unique}"


def test_tfvars_refuses_an_existing_target_with_other_keys(ddb, emulator, unique, tmp_path):
    create_table(ddb, f"src-{unique}", stream=True)
    create_table(ddb, f"dst-{unique}", hash_key=("id", "N"))
    result = CliRunner().invoke(
        cli, ["tfvars", "--spec", _spec(tmp_path, emulator, unique), "--stage", "dev", "--out", str(tmp_path / "v")]
    )
    assert result.exit_code == 2 and "tables[0].target" in result.output


@pytest.mark.parametrize("stage", ["Prod", "1dev", "a-very-long-stage-name-x", ""])
def test_a_bad_stage_name_exits_2(emulator, unique, tmp_path, stage):
    result = CliRunner().invoke(cli, ["tfvars", "--spec", _spec(tmp_path, emulator, unique), "--stage", stage])
    assert result.exit_code == 2 and "--stage" in result.output


def test_whoami_without_credentials_exits_2_with_a_clear_message(tmp_path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    spec = tmp_path / "f.yaml"
    spec.write_text("region: us-east-1\ntables: [{source: orders, target: orders-v2}]\n")
    result = CliRunner().invoke(cli, ["whoami", "--spec", str(spec)])
    assert result.exit_code == 2
    assert "no AWS credentials" in result.output


def test_chalice_config_writes_a_stage_with_one_policy_per_function(emulator, unique, tmp_path):
    app = tmp_path / "app"
    (app / ".chalice").mkdir(parents=True)
    (app / ".chalice" / "config.json").write_text(json.dumps({"version": "2.0", "app_name": "ferry", "stages": {}}))
    spec = _spec(tmp_path, emulator, unique, s3={"visibility_timeout": 60})
    result = CliRunner().invoke(cli, ["chalice-config", "--spec", spec, "--stage", "qa", "--app-dir", str(app)])
    assert result.exit_code == 0, result.output
    stage = json.loads((app / ".chalice" / "config.json").read_text())["stages"]["qa"]
    assert stage["lambda_timeout"] == 60  # never above the events queue's visibility timeout
    assert json.loads(stage["environment_variables"]["FERRY_SPEC"])["tables"][0]["source"] == f"src-{unique}"
    for fn in ("table_stream", "bucket_events", "table_stream_reverse", "bucket_events_reverse"):
        assert stage["lambda_functions"][fn] == {"autogen_policy": False, "iam_policy_file": f"policy-qa-{fn}.json"}
        policy = json.loads((app / ".chalice" / f"policy-qa-{fn}.json").read_text())
        assert policy["Statement"], fn


# --- replay: what `ferry wire` holds, and what the jobs may call ----------------------------------------

ACCOUNT = "123456789012"  # the policies' ARNs only: the tests compare actions


def _functions(where: Any, stage: str, functions: tuple[str, ...] = ("table_stream", "bucket_events")) -> None:
    """The stage's functions, as `chalice deploy` leaves them (the emulator only stores them)."""
    iam, lam = make_client("iam", where), make_client("lambda", where)
    role = iam.create_role(
        RoleName=f"ferry-{stage}-{functions[0]}"[:64],
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("app.py", "".join(f"def {fn}(event, context):\n    return {{}}\n" for fn in functions))
    for fn in functions:
        lam.create_function(
            FunctionName=f"ferry-{stage}-{fn}",
            Runtime="python3.11",
            Role=role,
            Handler=f"app.{fn}",
            Code={"ZipFile": package.getvalue()},
        )


def _replay_spec(emulator: Any, unique: str, **backfill: Any) -> dict[str, Any]:
    return {
        "region": "us-east-1",
        "endpoint_url": emulator.endpoint_url,
        "state_table": f"state-{unique}",
        "tables": [
            {"source": f"src-{unique}", "target": f"dst-{unique}"},  # replay, the default
            {"source": f"io-{unique}", "target": f"io-dst-{unique}", "protocol": "insert-only"},
        ],
        "buckets": [{"source": f"media-{unique}", "target": f"media-dst-{unique}"}],
        "backfill": {"splits": 2, **backfill},
        "replication": {"on_failure_queue": f"failures-{unique}"},
        "s3": {"events_queue": f"events-{unique}", "splits": 2},
    }


def _mappings(lam: Any, source_arn: str) -> list[dict[str, Any]]:
    return list(lam.list_event_source_mappings(EventSourceArn=source_arn)["EventSourceMappings"])


def test_wire_maps_insert_only_tables_holds_replay_buckets_and_never_disables_a_released_mapping(
    ddb, sqs, where, emulator, unique, tmp_path
):
    # GIVEN a replay table, an insert-only table and a replay bucket, initialized, and a deployed stage
    create_table(ddb, f"src-{unique}", stream=True)
    create_table(ddb, f"io-{unique}", stream=True)
    make_client("s3", where).create_bucket(Bucket=f"media-{unique}")
    path = tmp_path / "ferry.yaml"
    path.write_text(yaml.safe_dump(_replay_spec(emulator, unique)), encoding="utf-8")
    assert CliRunner().invoke(cli, ["init", "--spec", str(path)]).exit_code == 0
    stage = f"w{unique[:8]}"
    _functions(where, stage)
    lam = make_client("lambda", where)
    # WHEN `ferry wire` runs
    wired = CliRunner().invoke(cli, ["wire", "--spec", str(path), "--stage", stage])
    assert wired.exit_code == 0, wired.output
    # THEN the insert-only table's stream has its mapping with the spec's finite record age
    stream = {t: ddb.describe_table(TableName=t)["Table"]["LatestStreamArn"] for t in (f"src-{unique}", f"io-{unique}")}
    (insert_only,) = _mappings(lam, stream[f"io-{unique}"])
    assert (insert_only["StartingPosition"], insert_only["MaximumRecordAgeInSeconds"]) == ("TRIM_HORIZON", 21600)
    # AND the replay table's stream has none: its release creates it
    assert _mappings(lam, stream[f"src-{unique}"]) == []
    assert f"src-{unique}: replay: its stream mapping is created by its release" in wired.output
    # AND the events queue's mapping exists, disabled: the buckets' events are held
    url = sqs.get_queue_url(QueueName=f"events-{unique}")["QueueUrl"]
    queue = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert queue["MessageRetentionPeriod"] == "1209600"
    (events,) = _mappings(lam, queue["QueueArn"])
    assert events["State"] == "Disabled" and events["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # WHEN the release enables it, and `ferry wire` runs again (a redeploy)
    lam.update_event_source_mapping(UUID=events["UUID"], Enabled=True)
    glue = make_client("glue", where)
    for kind in ("table", "bucket"):  # the emulator has no UpdateJob (HTTP 500): wire creates them again
        glue.delete_job(JobName=f"ferry-{stage}-{kind}-backfill")
    again = CliRunner().invoke(cli, ["wire", "--spec", str(path), "--stage", stage])
    assert again.exit_code == 0, again.output
    # THEN the mapping stays enabled, and still only one of each exists
    (events_after,) = _mappings(lam, queue["QueueArn"])
    assert (events_after["UUID"], events_after["State"]) == (events["UUID"], "Enabled")
    assert len(_mappings(lam, stream[f"io-{unique}"])) == 1 and _mappings(lam, stream[f"src-{unique}"]) == []


# The IAM action an API call needs, where it is not the operation's own name (S3's, mostly).
IAM_ACTION = {
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "HeadBucket"): "s3:ListBucket",
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "CopyObject"): "s3:PutObject",  # and s3:GetObject on the source, granted with the source's reads
    ("s3", "UploadPartCopy"): "s3:PutObject",
    ("s3", "CreateMultipartUpload"): "s3:PutObject",
    ("s3", "CompleteMultipartUpload"): "s3:PutObject",
    ("s3", "GetBucketEncryption"): "s3:GetEncryptionConfiguration",
    # ferry's PartiQL statements are all INSERTs: "To insert items using PartiQL for DynamoDB, you must have
    # dynamodb:PartiQLInsert permission" (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ql-iam.html)
    ("dynamodb", "BatchExecuteStatement"): "dynamodb:PartiQLInsert",
}
NEEDS_NO_PERMISSION = {("sts", "GetCallerIdentity")}


@contextmanager
def _recorded_actions() -> Iterator[set[str]]:
    """The IAM action of every AWS call made in this process while it is open (every client, on every side),
    but the test's own writing of an export's files where the emulator writes none (tests/emulated_export.py)."""
    actions: set[str] = set()
    make_api_call = vars(BaseClient)["_make_api_call"]  # private to botocore: every client call goes through it

    def recording(client: Any, operation: str, params: Any) -> Any:
        call = (client.meta.service_model.signing_name, operation)
        scaffold = SCAFFOLD_USER_AGENT in (client.meta.config.user_agent_extra or "")
        if call not in NEEDS_NO_PERMISSION and not scaffold:
            actions.add(IAM_ACTION.get(call, f"{call[0]}:{operation}"))
        return make_api_call(client, operation, params)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BaseClient, "_make_api_call", recording)
        yield actions


class _Rdd:
    def __init__(self, items: Any) -> None:
        self.items = list(items)

    def map(self, f: Any) -> _Rdd:
        return _Rdd(f(item) for item in self.items)

    def collect(self) -> list[Any]:
        return self.items


# The Spark the Glue scripts use, run in this process so that every task's calls are recorded too.
FAKE_SPARK = SimpleNamespace(
    sparkContext=SimpleNamespace(
        defaultParallelism=2,
        parallelize=lambda items, slices: _Rdd(items),
        getConf=lambda: SimpleNamespace(getAll=lambda: []),
    )
)
# Granted but not called by the job's own code: Glue reads the script and writes the logs and metrics.
GLUE_ITSELF = {"s3:GetObject", "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}
GLUE_ITSELF |= {"cloudwatch:PutMetricData"}


def _granted(spec: Any, stage: str, role: str) -> set[str]:
    document = policy_documents(spec, stage, Arns("us-east-1", ACCOUNT), artifacts_bucket="artifacts")[role]
    return {a for statement in document["Statement"] for a in statement["Action"]}


@pytest.mark.parametrize(
    ("backfill", "not_called"),
    [
        # DeleteItem clears an earlier run's checkpoints (a first run has none) and, insert_mode auto (the
        # default), the probe's item: the insert-only table's probe INSERTs it (PartiQLInsert, called on both
        # emulators; moto's answer makes the copy write with PutItem)
        pytest.param({}, {"dynamodb:DeleteItem"}, id="scan+batch"),
        # put: no probe and no INSERT, so the role may not run one
        pytest.param({"insert_mode": "put"}, {"dynamodb:DeleteItem"}, id="scan+batch+put"),
        # partiql: INSERTs into the insert-only target, no probe (moto cannot run them: test_insert_mode.py)
        pytest.param(
            {"insert_mode": "partiql"},
            {"dynamodb:DeleteItem"},
            id="scan+batch+partiql",
            marks=pytest.mark.emulators("ministack", reason="moto answers a PartiQL INSERT with parameters 500"),
        ),
        pytest.param(
            {"read": "export", "write": "import"},
            # DynamoDB itself writes the export and the import's logs, and ImportTable lists the data files,
            # with the caller's rights (the job lists them only where the export has no manifest: moto's)
            {"s3:PutObject", "s3:AbortMultipartUpload", "s3:PutObjectAcl", "s3:ListBucket", "dynamodb:DeleteItem"}
            | {f"logs:{a}" for a in ("DescribeLogGroups", "DescribeLogStreams", "PutRetentionPolicy")},
            id="export+import",
        ),
    ],
)
def test_the_table_job_calls_only_what_its_role_grants_and_uses_what_it_grants(
    ddb, sqs, where, emulator, unique, backfill, not_called, monkeypatch
):
    """The job as Glue runs it, in this process (Spark tasks too), every AWS call recorded: each needs an
    action ferry/deploy.py (and so Terraform) grants the job's role, and the role grants nothing the run
    did not call but what Glue or DynamoDB do with it and a rerun's clean-up."""
    from glue_jobs import table_backfill

    # GIVEN initialized tables with items and TTL, a deployed stage; an export bucket when the copy exports
    raw = _replay_spec(emulator, unique, **backfill, export_bucket=f"exports-{unique}")
    raw["buckets"] = []
    if backfill.get("write") == "import":
        raw["tables"] = raw["tables"][:1]  # ImportTable creates the target: replay only
    spec = parse_spec(raw)
    for mapping in spec.tables:
        create_table(ddb, mapping.source, stream=True)
        ddb.update_time_to_live(
            TableName=mapping.source, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"}
        )
        for i in range(5):
            ddb.put_item(TableName=mapping.source, Item={"pk": {"S": f"k{i}"}, "n": {"N": str(i)}})
    make_client("s3", where).create_bucket(Bucket=f"exports-{unique}")
    initialize(spec, enable_pitr=True)
    sqs.create_queue(QueueName=f"failures-{unique}")
    stage = f"t{unique[:8]}"
    _functions(where, stage)
    monkeypatch.setattr(table_backfill, "export_files", functools.partial(table_backfill.export_files, poll=0.05))
    monkeypatch.setattr(table_backfill, "import_target", functools.partial(table_backfill.import_target, poll=0.05))
    if emulator.kind == "ministack":  # its export writes no file: the test writes AWS's (tests/emulated_export.py)
        write_exports_as_aws_does(monkeypatch)
    # WHEN the table job copies every table and releases the replay one for the stage
    with _recorded_actions() as called:
        for mapping in spec.tables:
            summary = table_backfill.run_backfill(FAKE_SPARK, JobRun(spec, mapping.source, stage))
            assert not summary.failed and summary.copied == 5
    # THEN every call is granted
    granted = _granted(spec, stage, "table_backfill")
    assert called - granted == set(), f"called but not granted: {sorted(called - granted)}"
    # AND every grant was called, but by Glue or DynamoDB themselves, or only on a rerun
    expected = (GLUE_ITSELF | not_called) - called  # the job reads what Glue reads too (an export's manifests)
    assert granted - called == expected, f"granted, not called: {sorted(granted - called)}"
    lam = make_client("lambda", where)
    released_stream = ddb.describe_table(TableName=spec.tables[0].source)["Table"]["LatestStreamArn"]
    (created,) = _mappings(lam, released_stream)
    assert (created["StartingPosition"], created["MaximumRecordAgeInSeconds"]) == ("TRIM_HORIZON", -1)


def test_the_bucket_job_calls_only_what_its_role_grants_and_releases_the_held_events(
    sqs, where, emulator, unique, tmp_path
):
    from glue_jobs import bucket_backfill

    # GIVEN a replay bucket with objects, initialized (its events held), and a stage whose queue mapping is disabled
    raw = _replay_spec(emulator, unique)
    raw["tables"] = []
    spec = parse_spec(raw)
    s3 = make_client("s3", where)
    s3.create_bucket(Bucket=f"media-{unique}")
    for i in range(4):
        s3.put_object(Bucket=f"media-{unique}", Key=f"photos/{i}.jpg", Body=b"x" * (i + 1))
    initialize(spec)
    stage = f"b{unique[:8]}"
    _functions(where, stage)
    lam = make_client("lambda", where)
    url = sqs.get_queue_url(QueueName=f"events-{unique}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    lam.create_event_source_mapping(
        EventSourceArn=queue_arn, FunctionName=f"ferry-{stage}-bucket_events", Enabled=False
    )
    # WHEN the bucket job copies and releases
    with _recorded_actions() as called:
        summary = bucket_backfill.run_backfill(FAKE_SPARK, JobRun(spec, f"media-{unique}", stage))
    assert not summary.failed and summary.keys == 4
    # THEN every call is granted, and every grant called but Glue's own, what only an insert-only
    # reconcile or a part-by-part copy does (deletes, tag reads and writes, versions, aborts), and the
    # creation of a queue mapping that is missing (here it exists, disabled)
    granted = _granted(spec, stage, "bucket_backfill")
    assert called - granted == set(), f"called but not granted: {sorted(called - granted)}"
    reconcile_only = {"s3:DeleteObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload", "s3:GetObjectVersion"}
    reconcile_only |= {"s3:GetObjectTagging", "lambda:CreateEventSourceMapping"}
    assert granted - called == GLUE_ITSELF | reconcile_only, f"granted, not called: {sorted(granted - called)}"
    # AND the events queue's mapping is enabled now
    (mapping,) = _mappings(lam, queue_arn)
    assert mapping["State"] == "Enabled"


# --- reverse replication and the switch: ferry reverse / cutover / rollback's API path (docs/adr/0009) -----

REVERSE_FUNCTIONS = ("table_stream_reverse", "bucket_events_reverse")


def _settled(read: Any, timeout: float = 15.0) -> dict[str, str]:
    """``read()`` once no mapping is on its way to a state any more (Enabling, Disabling, Creating, Updating)."""
    deadline = time.monotonic() + timeout
    while True:
        states = dict(read())
        if not any(state.endswith("ing") for state in states.values()) or time.monotonic() > deadline:
            return states
        time.sleep(0.3)


def test_wire_reverse_maps_the_new_side_and_the_switch_turns_each_direction_off_and_on(
    ddb, sqs, where, emulator, unique
):
    from ferry.deploy import queue_mapping_request, stream_mapping_request, stream_mapping_settings
    from ferry.errors import SetupError
    from ferry_cli.deploy import mappings_state, set_mappings_enabled, wire_reverse

    # GIVEN a table and a bucket replicated forward: both forward mappings exist, enabled
    spec = parse_spec({**_replay_spec(emulator, unique), "tables": _replay_spec(emulator, unique)["tables"][:1]})
    source, target = spec.tables[0].source, spec.tables[0].target
    create_table(ddb, source, stream=True)
    create_table(ddb, target)
    stage = f"r{unique[:8]}"
    _functions(where, stage)
    lam = make_client("lambda", where)
    failures = sqs.create_queue(QueueName=f"failures-{unique}")["QueueUrl"]
    events = sqs.create_queue(QueueName=f"events-{unique}")["QueueUrl"]
    arn_of = {
        url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for url in (failures, events)
    }
    source_stream = ddb.describe_table(TableName=source)["Table"]["LatestStreamArn"]
    lam.create_event_source_mapping(
        **stream_mapping_request(
            stream_mapping_settings(spec, replay=True),
            stream_arn=source_stream,
            function=f"ferry-{stage}-table_stream",
            on_failure_arn=arn_of[failures],
        )
    )
    lam.create_event_source_mapping(
        **queue_mapping_request(
            bucket_events_settings(spec), queue_arn=arn_of[events], function=f"ferry-{stage}-bucket_events"
        )
    )
    forward = _settled(lambda: mappings_state(spec, stage, "forward"))
    assert forward == {source_stream: "Enabled", arn_of[events]: "Enabled"}
    # WHEN wire_reverse runs before the reverse functions are deployed (a Terraform stage before `make deploy`)
    skipped = wire_reverse(spec, stage)
    # THEN it maps nothing, creates no queue, and says which function is missing
    assert [line.split(" ")[0] for line in skipped] == [f"ferry-{stage}-{fn}" for fn in REVERSE_FUNCTIONS]
    assert all("is not deployed" in line for line in skipped)
    assert mappings_state(spec, stage, "reverse") == {}
    assert sqs.list_queues(QueueNamePrefix=f"events-{unique}-reverse").get("QueueUrls", []) == []
    # AND, deployed, it refuses a new table without its stream, naming it and `ferry reverse` (negative control)
    _functions(where, stage, REVERSE_FUNCTIONS)
    with pytest.raises(SetupError, match=r"tables\[0\]\.target: .*ferry reverse"):
        wire_reverse(spec, stage)
    assert mappings_state(spec, stage, "reverse") == {}
    # WHEN `ferry reverse` has enabled the new table's stream, and wire_reverse runs (twice: idempotent)
    ddb.update_table(
        TableName=target, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    )
    target_stream = ddb.describe_table(TableName=target)["Table"]["LatestStreamArn"]
    wired = wire_reverse(spec, stage)
    again = wire_reverse(spec, stage)
    # THEN the new table's stream feeds table_stream_reverse, at TRIM_HORIZON with every safety setting and
    # the reverse on-failure queue; the reverse events queue (created, with its DLQ) feeds bucket_events_reverse
    assert any(f"created queue failures-{unique}-reverse" in line for line in wired), wired
    assert any(f"created queue events-{unique}-reverse and events-{unique}-reverse-dlq" in line for line in wired)
    assert not any("created" in line for line in again), again
    (stream_mapping,) = _mappings(lam, target_stream)
    reverse_failures = sqs.get_queue_url(QueueName=f"failures-{unique}-reverse")["QueueUrl"]
    reverse_failures_arn = sqs.get_queue_attributes(QueueUrl=reverse_failures, AttributeNames=["QueueArn"])
    assert stream_mapping["FunctionArn"].endswith(f":function:ferry-{stage}-table_stream_reverse")
    assert stream_mapping["StartingPosition"] == "TRIM_HORIZON"
    assert stream_mapping["MaximumRecordAgeInSeconds"] == spec.replication.max_record_age_seconds
    assert stream_mapping["MaximumRetryAttempts"] == spec.replication.max_retries
    assert stream_mapping["BisectBatchOnFunctionError"] is True
    assert stream_mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert (
        stream_mapping["DestinationConfig"]["OnFailure"]["Destination"]
        == (reverse_failures_arn["Attributes"]["QueueArn"])
    )
    reverse_events = sqs.get_queue_url(QueueName=f"events-{unique}-reverse")["QueueUrl"]
    queue = sqs.get_queue_attributes(QueueUrl=reverse_events, AttributeNames=["All"])["Attributes"]
    assert json.loads(queue["RedrivePolicy"])["deadLetterTargetArn"].endswith(f"events-{unique}-reverse-dlq")
    (queue_mapping,) = _mappings(lam, queue["QueueArn"])
    assert queue_mapping["FunctionArn"].endswith(f":function:ferry-{stage}-bucket_events_reverse")
    assert queue_mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    reverse = _settled(lambda: mappings_state(spec, stage, "reverse"))
    assert reverse == {target_stream: "Enabled", queue["QueueArn"]: "Enabled"}
    assert _settled(lambda: mappings_state(spec, stage, "forward")) == forward  # the forward side untouched
    # WHEN `ferry cutover` turns forward replication off (twice: idempotent)
    disabled = set_mappings_enabled(spec, stage, "forward", False)
    assert len(disabled) == 2 and all(line.startswith("disabled event-source mapping") for line in disabled)
    assert _settled(lambda: mappings_state(spec, stage, "forward")) == {
        source_stream: "Disabled",
        arn_of[events]: "Disabled",
    }
    assert all(line.startswith("disabled already") for line in set_mappings_enabled(spec, stage, "forward", False))
    # THEN reverse replication still runs
    assert _settled(lambda: mappings_state(spec, stage, "reverse")) == reverse
    # WHEN `ferry rollback` turns reverse off, and wire_reverse runs again (a rerun of `ferry reverse`)
    set_mappings_enabled(spec, stage, "reverse", False)
    wire_reverse(spec, stage)
    # THEN the reverse mappings stay disabled: a rerun never enables what the rollback disabled
    assert set(_settled(lambda: mappings_state(spec, stage, "reverse")).values()) == {"Disabled"}
    # AND forward replication can be turned on again
    set_mappings_enabled(spec, stage, "forward", True)
    assert set(_settled(lambda: mappings_state(spec, stage, "forward")).values()) == {"Enabled"}
    with pytest.raises(SetupError, match="direction must be one of forward, reverse"):
        set_mappings_enabled(spec, stage, "sideways", True)


# --- both directions judge with only what their roles grant (docs/adr/0009) ---------------------------------


@contextmanager
def _recorded_calls() -> Iterator[list[tuple[str, str, dict[str, Any]]]]:
    """(service, operation, parameters) of every AWS call made in this process while it is open."""
    calls: list[tuple[str, str, dict[str, Any]]] = []
    make_api_call = vars(BaseClient)["_make_api_call"]

    def recording(client: Any, operation: str, params: Any) -> Any:
        calls.append((client.meta.service_model.signing_name, operation, dict(params)))
        return make_api_call(client, operation, params)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BaseClient, "_make_api_call", recording)
        yield calls


def _condition_holds(condition: dict[str, Any], leading_key: str | None, attributes: list[str]) -> bool:
    """The two condition forms ferry's function policies use, evaluated as IAM does for one-key item calls."""
    for test, keys in condition.items():
        for key, values in keys.items():
            requested = {"dynamodb:LeadingKeys": [] if leading_key is None else [leading_key]}.get(key, attributes)
            if key not in ("dynamodb:LeadingKeys", "dynamodb:Attributes"):
                return False
            if test == "ForAllValues:StringLike":
                matches = all(any(fnmatch.fnmatchcase(r, v) for v in values) for r in requested)
            elif test == "ForAllValues:StringEquals":
                matches = all(r in values for r in requested)
            else:
                return False
            if not matches:
                return False
    return True


def _denied(document: dict[str, Any], calls: list[tuple[str, str, dict[str, Any]]], arns: Arns) -> list[str]:
    """The DynamoDB calls no statement of ``document`` allows (action, table ARN, partition key, attributes)."""
    denied = []
    for service, operation, params in calls:
        if service != "dynamodb":
            continue
        action, resource = f"dynamodb:{operation}", arns.table(params["TableName"])
        item = params.get("Key") or params.get("Item") or {}
        leading = next(iter(item.get("pk", {}).values()), None) if "pk" in item else None
        attributes = sorted(params.get("Item", {}))
        if not any(
            action in st["Action"]
            and any(fnmatch.fnmatchcase(resource, r) for r in st["Resource"])
            and _condition_holds(st.get("Condition", {}), leading, attributes)
            for st in document["Statement"]
        ):
            denied.append(f"{action} {params['TableName']} {leading} {attributes}")
    return denied


def test_both_table_handlers_judge_with_only_what_their_roles_grant(ddb, streams, where, emulator, unique, monkeypatch):
    """The forward and the reverse function, run as Lambda runs them on a batch of real stream records after
    `ferry reverse`: an applied change, an echo, a conflict. Every DynamoDB call (the destination's consistent
    read, the journal, the sequence marks, the conflict, the lag sample) is allowed by its own role's
    statements, conditions included (dynamodb:LeadingKeys, dynamodb:Attributes), as IAM would evaluate them;
    the other direction's role would deny the reverse function's writes (negative control)."""
    from chalicelib import table_stream

    from ferry.deploy import lambda_spec_json
    from ferry.switch import prepare_reverse
    from ferry.tables.protocol import PHASE_LIVE
    from ferry.tables.state import StateStore
    from ferry_dev.stream_poller import LocalContext, lambda_event

    # GIVEN an insert-only table whose copy is done, and `ferry reverse` has begun
    spec = parse_spec(
        {
            "region": "us-east-1",
            "endpoint_url": emulator.endpoint_url,
            "state_table": f"state-{unique}",
            "tables": [{"source": f"src-{unique}", "target": f"dst-{unique}", "protocol": "insert-only"}],
            "replication": {"on_failure_queue": f"failures-{unique}", "phase_cache_seconds": 0},
        }
    )
    source, target = spec.tables[0].source, spec.tables[0].target
    create_table(ddb, source, stream=True)
    initialize(spec)
    StateStore(ddb, spec.state_table).set_phase(source, PHASE_LIVE)
    prepare_reverse(spec, sleep=lambda _: None)
    monkeypatch.setenv("FERRY_SPEC", lambda_spec_json(spec))
    table_stream.reset()
    # AND changes on both sides: "a" old side only, "b" new side only, "c" on both (a conflict)
    for table, key, value in ((source, "a", "1"), (target, "b", "2"), (source, "c", "old"), (target, "c", "new")):
        ddb.put_item(TableName=table, Item={"pk": {"S": key}, "v": {"S": value}})
    context = LocalContext("table_stream", "test-request", deadline=float("inf"))
    arns = Arns("us-east-1", ACCOUNT)
    documents = policy_documents(spec, "dev", arns, artifacts_bucket="artifacts")

    def batch(table: str) -> dict[str, Any]:
        arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        records: list[dict[str, Any]] = []
        for shard in shards:
            iterator = streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records += page["Records"]
        return lambda_event(records, arn)

    # WHEN the forward function handles the old side's batch, then the reverse function the new side's
    # (which holds the echo of the forward write of "a")
    forward_batch = batch(source)
    with _recorded_calls() as forward_calls:
        assert table_stream.handle(forward_batch, context) == {"batchItemFailures": []}
    reverse_batch = batch(target)
    with _recorded_calls() as reverse_calls:
        assert table_stream.handle_reverse(reverse_batch, context) == {"batchItemFailures": []}
    # THEN both sides hold "a" and "b", and "c" is a conflict on either side, not applied
    assert ddb.get_item(TableName=target, Key={"pk": {"S": "a"}})["Item"]["v"] == {"S": "1"}
    assert ddb.get_item(TableName=source, Key={"pk": {"S": "b"}})["Item"]["v"] == {"S": "2"}
    assert ddb.get_item(TableName=source, Key={"pk": {"S": "c"}})["Item"]["v"] == {"S": "old"}
    # AND every DynamoDB call was allowed by the function's own role
    assert _denied(documents["table_stream"], forward_calls, arns) == []
    assert _denied(documents["table_stream_reverse"], reverse_calls, arns) == []
    # AND the judge did use what the new statements grant: the destination's consistent read, the journal, the
    # sequence marks and a conflict record, each through the two-way items' statement
    for calls, destination in ((forward_calls, target), (reverse_calls, source)):
        made = {
            (op, p["TableName"], str(next(iter(p.get("Key", p.get("Item", {})).get("pk", {}).values()), "")))
            for service, op, p in calls
            if service == "dynamodb"
        }
        assert any(op == "GetItem" and table == destination for op, table, _ in made)
        prefixes = {pk.split("#", 1)[0] + "#" for op, table, pk in made if table == spec.state_table and "#" in pk}
        assert {"journal#", "seen#", "conflict#", "twoway#"} <= prefixes, sorted(made)
    # AND the forward role would refuse the reverse function's writes to the old table (negative control)
    refused = _denied(documents["table_stream"], reverse_calls, arns)
    assert any(line.startswith(f"dynamodb:PutItem {source} ") for line in refused), refused
    assert any(line.startswith(f"dynamodb:GetItem {source} ") for line in refused), refused
