"""`make deploy-local`: the documented deployment steps against a fresh emulator (each of them: moto and
ministack), then every promised resource read back independently of the rehearsal's own checks. On
ministack the deployed functions run too, invoked by the emulator's own mappings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ferry.clients import AwsTarget, make_client
from ferry.spec import parse_spec
from ferry_dev.emulator import Emulator
from ferry_dev.rehearsal import Rehearsal, rehearse

pytestmark = [pytest.mark.deploy, pytest.mark.xdist_group("deploy")]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rehearsed(emulator_kind: str) -> Iterator[tuple[Rehearsal, AwsTarget]]:
    with Emulator(kind=emulator_kind) as emu:
        run = rehearse("local", emu.endpoint_url, emu.kind)
        yield run, AwsTarget("us-east-1", emu.endpoint_url)


def test_every_check_of_the_rehearsal_passes(rehearsed: tuple[Rehearsal, AwsTarget]) -> None:
    run, _ = rehearsed
    failed = [(what, detail) for what, ok, detail in run.checks if not ok]
    assert run.checks and not failed, failed


def test_functions_have_one_least_privilege_role_each(rehearsed: tuple[Rehearsal, AwsTarget]) -> None:
    _, where = rehearsed
    lam, iam = make_client("lambda", where), make_client("iam", where)
    names = sorted(f["FunctionName"] for f in lam.list_functions()["Functions"])
    assert names == [
        "ferry-local-bucket_events",
        "ferry-local-bucket_events_reverse",
        "ferry-local-table_stream",
        "ferry-local-table_stream_reverse",
    ]
    roles = set()
    for name in names:
        config = lam.get_function_configuration(FunctionName=name)
        assert json.loads(config["Environment"]["Variables"]["FERRY_SPEC"])["tables"][0]["target"] == "orders-v2"
        role = config["Role"].split("/")[-1]
        roles.add(role)
        for policy_name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
            document = json.loads(document) if isinstance(document, str) else document
            for statement in document["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert all("*" not in a for a in actions), (name, statement)
                resources = (
                    statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                )
                assert "*" not in resources, (name, statement)
    assert len(roles) == 4


def test_the_replay_consumers_were_held_until_the_release(rehearsed: tuple[Rehearsal, AwsTarget]) -> None:
    """Read back before the copy: the rehearsal checked (and passed) what only exists then."""
    run, _ = rehearsed
    passed = {what for what, ok, _ in run.checks if ok}
    assert "replay orders: no stream mapping before the release" in passed
    assert "  held: queue mapping Disabled" in passed
    assert "  after release: queue mapping Enabled" in passed
    steps = "\n".join(run.steps)
    assert "ferry wire: orders: replay: its stream mapping is created by its release" in steps
    assert "ferry backfill:   table orders: released" in steps and "ferry release: table orders: released" in steps


def _stream_mapping(where: AwsTarget, table: str) -> dict[str, Any]:
    ddb, lam = make_client("dynamodb", where), make_client("lambda", where)
    stream = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    (mapping,) = lam.list_event_source_mappings(EventSourceArn=stream)["EventSourceMappings"]
    return dict(mapping)


@pytest.mark.parametrize(("table", "age"), [("orders", -1), ("invoices", 21600)], ids=["replay", "insert-only"])
def test_stream_mappings_have_the_safety_settings(rehearsed: tuple[Rehearsal, AwsTarget], table: str, age: int) -> None:
    """The replay table's mapping, created by its release, never drops a held record for its age (-1); the
    insert-only table's, created by `ferry wire`, skips records older than the spec's 6 h. Both start at
    TRIM_HORIZON, with every other safety setting."""
    _, where = rehearsed
    sqs = make_client("sqs", where)
    mapping = _stream_mapping(where, table)
    assert mapping["FunctionArn"].endswith(":function:ferry-local-table_stream")
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert mapping["MaximumRecordAgeInSeconds"] == age
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert 0 <= mapping["MaximumRetryAttempts"] <= 10
    assert mapping["State"] == "Enabled"
    failure_queue = sqs.get_queue_url(QueueName="ferry-stream-failures")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=failure_queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == arn


def test_bucket_events_flow_into_a_queue_with_a_dlq_and_partial_batches(
    rehearsed: tuple[Rehearsal, AwsTarget],
) -> None:
    _, where = rehearsed
    s3, sqs = make_client("s3", where), make_client("sqs", where)
    lam, events = make_client("lambda", where), make_client("events", where)
    notification = s3.get_bucket_notification_configuration(Bucket="media-src")
    assert len(notification["QueueConfigurations"]) == 1  # the bucket's own notification is kept
    url = sqs.get_queue_url(QueueName="ferry-bucket-events")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"].endswith(":ferry-bucket-events-dlq")
    assert attributes["MessageRetentionPeriod"] == "1209600"  # a replay copy holds the events here
    (mapping,) = lam.list_event_source_mappings(EventSourceArn=attributes["QueueArn"])["EventSourceMappings"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["FunctionArn"].endswith(":function:ferry-local-bucket_events")
    assert mapping["State"] == "Enabled"  # created disabled by `ferry wire`, enabled by the release
    (target,) = events.list_targets_by_rule(Rule="ferry-media-src")["Targets"]
    assert target["Arn"] == attributes["QueueArn"]


def test_glue_jobs_carry_the_shared_package_and_defaults(rehearsed: tuple[Rehearsal, AwsTarget]) -> None:
    run, where = rehearsed
    glue, s3 = make_client("glue", where), make_client("s3", where)
    for kind, script in (("table", "table_backfill.py"), ("bucket", "bucket_backfill.py")):
        job = glue.get_job(JobName=f"ferry-local-{kind}-backfill")["Job"]
        assert job["GlueVersion"] == "5.0" and job["Command"]["Name"] == "glueetl"
        bucket, key = job["Command"]["ScriptLocation"].removeprefix("s3://").split("/", 1)
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == (REPO / "glue_jobs" / script).read_bytes()
        zip_bucket, zip_key = job["DefaultArguments"]["--extra-py-files"].removeprefix("s3://").split("/", 1)
        assert s3.head_object(Bucket=zip_bucket, Key=zip_key)["ContentLength"] > 10_000
        # the whole spec, as the functions get it; each run then names only its --source
        spec = parse_spec(json.loads(job["DefaultArguments"]["--spec_json"]))
        assert spec == run.spec
        assert not {"--region", "--state_table", "--source_table"} & set(job["DefaultArguments"])


def test_terraform_variables_match_the_roots_and_the_source(rehearsed: tuple[Rehearsal, AwsTarget]) -> None:
    import hcl2
    from hcl2 import SerializationOptions

    options = SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
    run, _ = rehearsed
    table, invoices = run.tfvars["tables"]
    assert (table["source"], table["protocol"], invoices["protocol"]) == ("orders", "replay", "insert-only")
    assert run.tfvars["bucket_events"]["hold_until_release"] is True  # the bucket is replay
    assert run.tfvars["backfill"]["read"] == "scan" and run.tfvars["backfill"]["export_bucket"] == ""
    assert table["create_target"] is True  # tfvars ran before the quick path created it
    assert (table["hash_key"], table["range_key"], table["ttl_attribute"]) == ("pk", "sk", "expires")
    assert [g["name"] for g in table["global_secondary_indexes"]] == ["by-customer"]
    assert table["local_secondary_indexes"][0]["non_key_attributes"] == ["total"]
    assert table["source_stream_arn"].startswith(table["source_arn"] + "/stream/")
    (bucket,) = run.tfvars["buckets"]
    assert bucket["manage_source_notifications"] is False  # it has a queue notification of its own
    declared: dict[str, Any] = {}
    with (REPO / "terraform" / "variables.tf").open() as f:  # the one root, every stage
        for block in hcl2.load(f, serialization_options=options).get("variable", []):
            declared.update(block)
    assert declared, "terraform/variables.tf declares no variable"
    unknown = set(run.tfvars) - set(declared)
    assert not unknown, f"terraform/variables.tf: tfvars keys without a variable: {unknown}"
    required = {name for name, body in declared.items() if "default" not in body}
    missing = required - set(run.tfvars)
    assert not missing, f"terraform/variables.tf: required variables not written: {missing}"


def test_the_rehearsal_notices_a_mapping_without_its_safety_settings(
    rehearsed: tuple[Rehearsal, AwsTarget],
) -> None:
    """Negative control: the rehearsal's read-back fails when a setting is missing."""
    from ferry_dev.rehearsal import inspect

    run, where = rehearsed
    lam = make_client("lambda", where)
    mapping = _stream_mapping(where, "invoices")
    lam.update_event_source_mapping(UUID=mapping["UUID"], BisectBatchOnFunctionError=False)
    try:
        again = Rehearsal(run.stage, run.spec)
        inspect(again, released=True)
        failed = [what for what, ok, _ in again.checks if not ok]
        assert failed == [f"  settings of {mapping['UUID']}"]
    finally:
        lam.update_event_source_mapping(UUID=mapping["UUID"], BisectBatchOnFunctionError=True)


def test_the_rehearsal_notices_a_release_that_let_nothing_go(rehearsed: tuple[Rehearsal, AwsTarget]) -> None:
    """Negative control: a disabled events mapping after the release, and a replay mapping with a finite
    record age, are both failures of the read-back."""
    from ferry_dev.rehearsal import inspect

    run, where = rehearsed
    lam, sqs = make_client("lambda", where), make_client("sqs", where)
    url = sqs.get_queue_url(QueueName="ferry-bucket-events")["QueueUrl"]
    queue = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    (events,) = lam.list_event_source_mappings(EventSourceArn=queue)["EventSourceMappings"]
    replay = _stream_mapping(where, "orders")
    lam.update_event_source_mapping(UUID=events["UUID"], Enabled=False)
    lam.update_event_source_mapping(UUID=replay["UUID"], MaximumRecordAgeInSeconds=21600)
    try:
        again = Rehearsal(run.stage, run.spec)
        inspect(again, released=True)
        failed = [what for what, ok, _ in again.checks if not ok]
        assert failed == [f"  settings of {replay['UUID']}", "  after release: queue mapping Enabled"]
    finally:
        lam.update_event_source_mapping(UUID=events["UUID"], Enabled=True)
        lam.update_event_source_mapping(UUID=replay["UUID"], MaximumRecordAgeInSeconds=-1)


LIVE_CHECKS = [
    "deployed table_stream applied a live change to orders-v2 (replay)",
    "deployed table_stream applied a live change to invoices-v2 (insert-only)",
    "deployed bucket_events applied a live change to media-dst",
]
LAG_CHECKS = [  # the run log's lag samples, written by the deployed functions with ferry's IAM
    "deployed table_stream recorded lag samples of orders",
    "deployed table_stream recorded lag samples of invoices",
    "deployed bucket_events recorded lag samples of media-src",
]


@pytest.mark.emulators("ministack", reason="moto runs no Lambda without Docker")
def test_the_deployed_functions_apply_live_changes_through_the_emulators_mappings(
    rehearsed: tuple[Rehearsal, AwsTarget],
) -> None:
    """After the release, a change to each source reached its target: the emulator's own mappings invoked
    the functions `chalice deploy` created (nothing else consumes the stream or the queue here)."""
    run, where = rehearsed
    passed = {what for what, ok, _ in run.checks if ok}
    assert set(LIVE_CHECKS + LAG_CHECKS) <= passed, [c for c in run.checks if c[0] in LIVE_CHECKS + LAG_CHECKS]
    lam = make_client("lambda", where)
    # the release's stream mapping (orders), `ferry wire`'s (invoices) and the queue's, each with a success
    results = [
        m.get("LastProcessingResult", "")
        for function in ("ferry-local-table_stream", "ferry-local-bucket_events")
        for m in lam.list_event_source_mappings(FunctionName=function)["EventSourceMappings"]
    ]
    assert len(results) == 3 and all(r.startswith("OK") for r in results), results


@pytest.mark.emulators("ministack", reason="moto runs no Lambda without Docker")
def test_the_live_check_fails_when_a_mapping_does_not_run(rehearsed: tuple[Rehearsal, AwsTarget]) -> None:
    """Negative control: with the insert-only table's stream mapping and the events queue's mapping
    disabled, their changes are not applied and the rehearsal's live check says so; the replay table's
    still passes."""
    from ferry_dev.rehearsal import check_functions_apply_live_changes

    run, where = rehearsed
    lam, ddb, sqs = make_client("lambda", where), make_client("dynamodb", where), make_client("sqs", where)
    stream = ddb.describe_table(TableName="invoices")["Table"]["LatestStreamArn"]
    url = sqs.get_queue_url(QueueName="ferry-bucket-events")["QueueUrl"]
    queue = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    stopped = [
        lam.list_event_source_mappings(EventSourceArn=arn)["EventSourceMappings"][0]["UUID"] for arn in (stream, queue)
    ]
    for uuid in stopped:
        lam.update_event_source_mapping(UUID=uuid, Enabled=False)
    try:
        again = Rehearsal(run.stage, run.spec, run.emulator)
        check_functions_apply_live_changes(again, within=4.0)
        assert [what for what, ok, _ in again.checks if not ok] == LIVE_CHECKS[1:] + LAG_CHECKS[1:]
        assert [what for what, ok, _ in again.checks if ok] == LIVE_CHECKS[:1] + LAG_CHECKS[:1]
    finally:
        for uuid in stopped:
            lam.update_event_source_mapping(UUID=uuid, Enabled=True)


REVERSE_CHECKS = [  # `ferry reverse --stage`: the new side's stream and events mapped to the reverse functions
    "reverse: stream mapping orders-v2 → ferry-local-table_stream_reverse",
    "reverse: stream mapping invoices-v2 → ferry-local-table_stream_reverse",
    "reverse: queue ferry-bucket-events-reverse",
    "  queue mapping ferry-bucket-events-reverse → ferry-local-bucket_events_reverse, enabled",
]
REVERSE_LIVE_CHECKS = [
    "deployed table_stream_reverse applied a live change to orders (replay)",
    "deployed table_stream_reverse applied a live change to invoices (insert-only)",
    "deployed bucket_events_reverse applied a live change to media-src",
]


def test_ferry_reverse_maps_the_new_side_to_the_reverse_functions(rehearsed: tuple[Rehearsal, AwsTarget]) -> None:
    run, where = rehearsed
    passed = {what for what, ok, _ in run.checks if ok}
    assert set(REVERSE_CHECKS) <= passed, [c for c in run.checks if c[0].startswith("reverse")]
    steps = "\n".join(run.steps)
    assert "ferry finalize: invoices: phase live" in steps and "ferry reverse: " in steps
    # the new table's stream, read from its start by the reverse function, with the reverse on-failure queue
    mapping = _stream_mapping(where, "orders-v2")
    assert mapping["FunctionArn"].endswith(":function:ferry-local-table_stream_reverse")
    assert (mapping["StartingPosition"], mapping["MaximumRecordAgeInSeconds"]) == ("TRIM_HORIZON", 21600)
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"].endswith(":ferry-stream-failures-reverse")


@pytest.mark.emulators("ministack", reason="moto runs no Lambda without Docker")
def test_the_deployed_reverse_functions_carry_new_side_changes_back(rehearsed: tuple[Rehearsal, AwsTarget]) -> None:
    """After `ferry reverse --stage`, a change to each new table and to the new bucket reached the old side:
    the emulator's mappings invoked the reverse functions `chalice deploy` created."""
    run, _ = rehearsed
    passed = {what for what, ok, _ in run.checks if ok}
    assert set(REVERSE_LIVE_CHECKS) <= passed, [c for c in run.checks if c[0] in REVERSE_LIVE_CHECKS]


@pytest.mark.emulators("ministack", reason="moto runs no Lambda without Docker")
def test_the_reverse_live_check_fails_when_reverse_replication_is_off(rehearsed: tuple[Rehearsal, AwsTarget]) -> None:
    """Negative control: with the reverse mappings disabled (as `ferry rollback` leaves them), the new side's
    changes do not reach the old side and the rehearsal's reverse check says so."""
    from ferry_dev.rehearsal import check_reverse_applies_live_changes

    run, where = rehearsed
    lam = make_client("lambda", where)
    stopped = [
        m["UUID"]
        for function in ("ferry-local-table_stream_reverse", "ferry-local-bucket_events_reverse")
        for m in lam.list_event_source_mappings(FunctionName=function)["EventSourceMappings"]
    ]
    assert len(stopped) == 3
    for uuid in stopped:
        lam.update_event_source_mapping(UUID=uuid, Enabled=False)
    try:
        again = Rehearsal(run.stage, run.spec, run.emulator)
        check_reverse_applies_live_changes(again, within=4.0)
        assert [what for what, ok, _ in again.checks if not ok] == REVERSE_LIVE_CHECKS
    finally:
        for uuid in stopped:
            lam.update_event_source_mapping(UUID=uuid, Enabled=True)
