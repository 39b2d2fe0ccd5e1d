"""The deployment settings both paths share (Terraform variables, `ferry wire`) and the
least-privilege policies of the quick path."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ferry.deploy import (
    QUEUE_RETENTION_SECONDS,
    Arns,
    backfill_variables,
    bucket_events_settings,
    policy_documents,
    queue_mapping_request,
    reverse_bucket_events_settings,
    reverse_failure_queue_name,
    reverse_stream_mapping_settings,
    stream_mapping_request,
    stream_mapping_settings,
    table_variables,
    terraform_variables,
)
from ferry.errors import SpecError
from ferry.runlog import LAG_SAMPLE_ATTRIBUTES
from ferry.spec import parse_spec
from tests.unit.test_spec import valid_specs

pytestmark = pytest.mark.unit

ARNS = Arns("eu-west-1", "111122223333")
ROLE = "arn:aws:iam::444455556666:role/ferry-source-reader"


@st.composite
def specs_with_buckets(draw: Any) -> Any:
    raw = draw(valid_specs())
    names = draw(
        st.lists(st.from_regex(r"[a-z][a-z0-9-]{2,20}[a-z0-9]", fullmatch=True), min_size=0, max_size=4, unique=True)
    )
    protocol = draw(st.sampled_from(["replay", "insert-only"]))
    raw["buckets"] = [
        {"source": names[i], "target": names[i + 1], "protocol": protocol} for i in range(0, len(names) - 1, 2)
    ]
    if draw(st.booleans()):
        raw["source_role_arn"] = ROLE
    return parse_spec(raw)


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return list(document["Statement"])


# The only statements on "*": AWS accepts no other resource for these actions, and each but the
# list is narrowed by a condition (metrics to Glue's namespace, a created mapping to ferry's function).
STAR_STATEMENTS = {
    "JobMetrics": (["cloudwatch:PutMetricData"], "StringEquals"),
    "ListMappings": (["lambda:ListEventSourceMappings"], None),
    "CreateOwnMapping": (["lambda:CreateEventSourceMapping"], "ArnLike"),
}


@settings(max_examples=100, deadline=None)
@given(specs_with_buckets())
def test_policies_name_every_resource_and_never_wildcard_an_action(spec: Any) -> None:
    documents = policy_documents(spec, "prod", ARNS, artifacts_bucket="ferry-prod-artifacts-111122223333")
    names = (
        [t.source for t in spec.tables]
        + [t.target for t in spec.tables]
        + [b.source for b in spec.buckets]
        + [b.target for b in spec.buckets]
        + [
            spec.state_table,
            spec.replication.on_failure_queue,
            spec.s3.events_queue,
            "ferry-prod-artifacts-111122223333",
            spec.backfill.export_bucket or f"ferry-exports-111122223333-{spec.region}",
            "function:ferry-prod-",  # the stage's own functions
        ]
    )
    for role, document in documents.items():
        for statement in _statements(document):
            for action in statement["Action"]:
                assert re.fullmatch(r"[a-z0-9]+:[A-Za-z]+", action), f"{role}: wildcard or odd action {action!r}"
            for resource in statement["Resource"]:
                if resource == "*":
                    actions, condition = STAR_STATEMENTS[statement["Sid"]]
                    assert statement["Action"] == actions, f"{role}: '*' for {statement}"
                    assert condition is None or condition in statement["Condition"], statement
                    continue
                if resource == ROLE:
                    continue
                assert resource.startswith(
                    (
                        "arn:aws:dynamodb:eu-west-1:111122223333:",
                        "arn:aws:s3:::",
                        "arn:aws:sqs:eu-west-1:111122223333:",
                        "arn:aws:logs:eu-west-1:111122223333:",
                        "arn:aws:lambda:eu-west-1:111122223333:event-source-mapping:",
                    )
                ), resource
                if ":logs:" in resource:
                    continue
                if ":event-source-mapping:" in resource:  # narrowed to the stage's function
                    assert _own_function_condition(statement).startswith("arn:aws:lambda:"), statement
                    continue
                assert any(name in resource for name in names), f"{role}: {resource} names nothing of the spec"
            if "Condition" in statement and "ArnLike" in statement["Condition"]:
                assert ":function:ferry-prod-" in _own_function_condition(statement), statement


def _own_function_condition(statement: dict[str, Any]) -> str:
    arn, qualified = statement["Condition"]["ArnLike"]["lambda:FunctionArn"]
    assert qualified == f"{arn}:*", statement
    return str(arn)


@pytest.mark.parametrize(
    ("function", "reads", "writes", "failures"),
    [
        ("table_stream", "orders", "orders-v2", "ferry-stream-failures"),
        # reverse replication (docs/adr/0009): the new table's stream back to the old table
        ("table_stream_reverse", "orders-v2", "orders", "ferry-stream-failures-reverse"),
    ],
)
def test_stream_function_may_only_write_targets_and_read_its_streams(
    function: str, reads: str, writes: str, failures: str
) -> None:
    spec = parse_spec({"region": "eu-west-1", "tables": [{"source": "orders", "target": "orders-v2"}]})
    document = policy_documents(spec, "dev", ARNS, artifacts_bucket="a-b-c")[function]
    by_sid = {s["Sid"]: s for s in _statements(document)}
    table = "arn:aws:dynamodb:eu-west-1:111122223333:table/"
    assert by_sid["ApplyToTargets"]["Resource"] == [table + writes]
    # the judge reads the destination (consistent) before it writes it
    assert by_sid["ApplyToTargets"]["Action"] == ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem"]
    assert by_sid["ReadSourceStreams"]["Resource"] == [f"{table}{reads}/stream/*"]
    assert by_sid["SendFailures"]["Resource"] == [f"arn:aws:sqs:eu-west-1:111122223333:{failures}"]
    # the table it reads is never writable by the function; the state table only by a lag sample's PutItem,
    # of a sample's attributes alone (not a phase, not a checkpoint), and the two-way items
    writes_actions = {"dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem"}
    for statement in _statements(document):
        if writes_actions & set(statement["Action"]) and statement["Sid"] not in ("RecordLagSamples", "JudgeTwoWay"):
            assert all(r == table + writes for r in statement["Resource"]), statement
    lag = by_sid["RecordLagSamples"]
    assert lag["Action"] == ["dynamodb:PutItem"] and lag["Resource"] == [table + "ferry-state"]
    allowed = lag["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"]
    assert "phase" not in allowed and "sequence" not in allowed and set(allowed) == set(LAG_SAMPLE_ATTRIBUTES)
    assert "AssumeMigrationRoles" not in by_sid  # no role in the spec, no sts:AssumeRole


TWO_WAY_KEYS = ["twoway#*", "journal#*", "seen#*", "conflict#*", "sync#*"]


@pytest.mark.parametrize("function", ["table_stream", "bucket_events", "table_stream_reverse", "bucket_events_reverse"])
def test_the_handlers_touch_only_the_two_way_items_of_the_state_table(function: str) -> None:
    """Both directions judge (docs/adr/0009): GetItem, PutItem, DeleteItem on the state table, confined by
    dynamodb:LeadingKeys to the partition keys of ferry.twoway's items; the jobs get none of it."""
    documents = policy_documents(_spec(), "dev", ARNS, artifacts_bucket="a-b-c")
    by_sid = {s["Sid"]: s for s in _statements(documents[function])}
    judge = by_sid["JudgeTwoWay"]
    assert judge["Action"] == ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem"]
    assert judge["Resource"] == [STATE_TABLE]
    assert judge["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": TWO_WAY_KEYS}}
    for statement in _statements(documents[function]):  # no other write to the state table
        if STATE_TABLE in statement["Resource"] and statement["Sid"] not in ("JudgeTwoWay", "RecordLagSamples"):
            assert statement["Action"] == ["dynamodb:GetItem"], statement
    for job in ("table_backfill", "bucket_backfill"):
        assert "JudgeTwoWay" not in {s["Sid"] for s in _statements(documents[job])}


def test_the_reverse_bucket_function_reads_the_new_buckets_and_writes_the_old_ones() -> None:
    documents = policy_documents(_spec(), "dev", ARNS, artifacts_bucket="a-b-c")
    forward = {s["Sid"]: s for s in _statements(documents["bucket_events"])}
    reverse = {s["Sid"]: s for s in _statements(documents["bucket_events_reverse"])}
    assert forward["ReadSourceObjects"]["Resource"] == ["arn:aws:s3:::media/*"]
    assert forward["WriteTargetObjects"]["Resource"] == ["arn:aws:s3:::media-v2/*"]
    assert reverse["ReadSourceObjects"]["Resource"] == ["arn:aws:s3:::media-v2/*"]
    assert reverse["WriteTargetObjects"]["Resource"] == ["arn:aws:s3:::media/*"]
    queue = "arn:aws:sqs:eu-west-1:111122223333:ferry-bucket-events"
    assert (forward["ConsumeEventsQueue"]["Resource"], reverse["ConsumeEventsQueue"]["Resource"]) == (
        [queue],
        [queue + "-reverse"],
    )
    # the same actions, statement by statement: only the resources are swapped
    assert {k: v["Action"] for k, v in forward.items()} == {k: v["Action"] for k, v in reverse.items()}
    logs = "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/ferry-dev-bucket_events_reverse:*"
    assert reverse["WriteLogs"]["Resource"] == [logs]


def test_a_spec_without_tables_or_buckets_gives_its_functions_only_their_logs() -> None:
    buckets_only = parse_spec({"region": "eu-west-1", "buckets": [{"source": "media", "target": "media-v2"}]})
    documents = policy_documents(buckets_only, "dev", ARNS, artifacts_bucket="a-b-c")
    for function in ("table_stream", "table_stream_reverse"):
        assert [s["Sid"] for s in _statements(documents[function])] == ["WriteLogs"]


def test_roles_in_the_spec_are_the_only_assumable_ones() -> None:
    spec = parse_spec(
        {"region": "eu-west-1", "tables": [{"source": "orders", "target": "orders-v2"}], "source_role_arn": ROLE}
    )
    for document in policy_documents(spec, "dev", ARNS, artifacts_bucket="a-b-c").values():
        assumed = [s for s in _statements(document) if "sts:AssumeRole" in s["Action"]]
        assert [s["Resource"] for s in assumed] == [[ROLE]]


def test_stream_mapping_carries_every_safety_setting() -> None:
    spec = parse_spec(
        {
            "region": "eu-west-1",
            "tables": [{"source": "orders", "target": "orders-v2"}],
            "replication": {"batch_size": 50, "max_retries": 4, "max_record_age_seconds": 3600},
        }
    )
    request = stream_mapping_request(
        stream_mapping_settings(spec), stream_arn="arn:s", function="f", on_failure_arn="arn:q"
    )
    assert request["StartingPosition"] == "TRIM_HORIZON"
    assert request["BatchSize"] == 50
    assert request["MaximumRetryAttempts"] == 4
    assert request["MaximumRecordAgeInSeconds"] == 3600
    assert request["BisectBatchOnFunctionError"] is True
    assert request["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert request["DestinationConfig"] == {"OnFailure": {"Destination": "arn:q"}}
    queue = queue_mapping_request(bucket_events_settings(spec), queue_arn="arn:e", function="g")
    assert queue["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


@pytest.mark.parametrize("age", [59, 72001, 86400, -1])
def test_record_age_must_leave_time_to_redrive(age: int) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(
            {
                "region": "eu-west-1",
                "tables": [{"source": "aaa", "target": "bbb"}],
                "replication": {"max_record_age_seconds": age},
            }
        )
    assert caught.value.field == "replication.max_record_age_seconds"


def test_table_variables_reproduce_keys_indexes_billing_and_ttl() -> None:
    source = {
        "TableName": "orders",
        "TableArn": "arn:aws:dynamodb:eu-west-1:999:table/orders",
        "LatestStreamArn": "arn:aws:dynamodb:eu-west-1:999:table/orders/stream/2026",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
            {"AttributeName": "c", "AttributeType": "B"},
        ],
        "BillingModeSummary": {"BillingMode": "PROVISIONED"},
        "ProvisionedThroughput": {"ReadCapacityUnits": 20, "WriteCapacityUnits": 10},
        "GlobalSecondaryIndexes": [
            {
                "IndexName": "by-c",
                "KeySchema": [{"AttributeName": "c", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["x"]},
                "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 6},
            }
        ],
    }
    out = table_variables(
        source,
        None,
        target_name="orders-v2",
        target_arn="arn:t",
        ttl_attribute="expires",
        protocol="replay",
        import_creates_target=False,
    )
    assert out["create_target"] is True and out["target_arn"] == "arn:t"
    assert (out["hash_key"], out["range_key"]) == ("pk", "sk")
    assert out["attributes"] == [{"name": "pk", "type": "S"}, {"name": "sk", "type": "N"}, {"name": "c", "type": "B"}]
    assert (out["billing_mode"], out["read_capacity"], out["write_capacity"]) == ("PROVISIONED", 20, 10)
    assert out["global_secondary_indexes"] == [
        {
            "name": "by-c",
            "hash_key": "c",
            "range_key": None,
            "projection_type": "INCLUDE",
            "non_key_attributes": ["x"],
            "read_capacity": 5,
            "write_capacity": 6,
        }
    ]
    assert out["ttl_attribute"] == "expires"
    assert out["protocol"] == "replay"
    existing = table_variables(
        source,
        {"TableArn": "arn:existing"},
        target_name="orders-v2",
        target_arn="arn:t",
        ttl_attribute=None,
        protocol="insert-only",
        import_creates_target=False,
    )
    assert existing["create_target"] is False and existing["target_arn"] == "arn:existing"
    assert existing["protocol"] == "insert-only"
    # backfill.write: import: ImportTable creates the target, so Terraform must not
    imported = table_variables(
        source, None, target_name="orders-v2", target_arn="arn:t", ttl_attribute=None, protocol="replay",
        import_creates_target=True,
    )  # fmt: skip
    assert imported["create_target"] is False and imported["target_arn"] == "arn:t"


def test_table_variables_name_the_target_stream_only_while_it_is_enabled() -> None:
    """The reverse function's mapping reads the target's stream: `ferry tfvars` writes its ARN once `ferry
    reverse` enabled it, and "" before (or after a disable: DescribeTable keeps LatestStreamArn)."""
    source = {
        "TableName": "orders",
        "TableArn": "arn:aws:dynamodb:eu-west-1:999:table/orders",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    }
    stream = "arn:aws:dynamodb:eu-west-1:999:table/orders-v2/stream/2026"

    def written(target: dict[str, Any] | None) -> str:
        out = table_variables(
            source, target, target_name="orders-v2", target_arn="arn:t", ttl_attribute=None, protocol="replay",
            import_creates_target=False,
        )  # fmt: skip
        return str(out["target_stream_arn"])

    assert written(None) == ""
    assert written({"TableArn": "arn:t"}) == ""
    enabled = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert written({"TableArn": "arn:t", "LatestStreamArn": stream, "StreamSpecification": enabled}) == stream
    disabled = {"StreamEnabled": False}
    assert written({"TableArn": "arn:t", "LatestStreamArn": stream, "StreamSpecification": disabled}) == ""


def test_reverse_mappings_keep_every_safety_setting_and_are_never_held() -> None:
    spec = parse_spec(
        {
            "region": "eu-west-1",
            "tables": [{"source": "orders", "target": "orders-v2", "protocol": "insert-only"}],
            "buckets": [{"source": "media", "target": "media-v2"}],  # replay: the forward queue is held
            "replication": {"starting_position": "LATEST", "max_record_age_seconds": 3600, "max_retries": 4},
        }
    )
    forward = stream_mapping_request(stream_mapping_settings(spec), stream_arn="s", function="f", on_failure_arn="q")
    reverse = stream_mapping_request(
        reverse_stream_mapping_settings(spec), stream_arn="s", function="f", on_failure_arn="q"
    )
    # the new table's stream exists only since `ferry reverse`: read from its start, whatever the spec says
    assert reverse["StartingPosition"] == "TRIM_HORIZON" and forward["StartingPosition"] == "LATEST"
    assert {k: v for k, v in reverse.items() if k != "StartingPosition"} == {
        k: v for k, v in forward.items() if k != "StartingPosition"
    }
    assert reverse["MaximumRecordAgeInSeconds"] == 3600 and reverse["BisectBatchOnFunctionError"] is True
    assert reverse_failure_queue_name(spec) == "ferry-stream-failures-reverse"
    events = reverse_bucket_events_settings(spec)
    assert events.queue_name == "ferry-bucket-events-reverse"
    assert bucket_events_settings(spec).hold_until_release is True and events.hold_until_release is False
    assert queue_mapping_request(events, queue_arn="e", function="g")["Enabled"] is True
    assert events.message_retention_seconds == QUEUE_RETENTION_SECONDS


def test_terraform_variables_carry_the_spec_for_the_functions() -> None:
    spec = parse_spec({"region": "eu-west-1", "tables": [{"source": "orders", "target": "orders-v2"}]})
    out = terraform_variables(spec, "prod", [], [], account="111122223333")
    assert parse_spec(json.loads(out["spec_json"])) == spec
    assert out["stream_mapping"]["maximum_retry_attempts"] == spec.replication.max_retries
    assert out["stream_failure_queue_name"] == spec.replication.on_failure_queue
    assert out["reverse"] is False  # until `ferry reverse` has begun
    assert terraform_variables(spec, "prod", [], [], account="111122223333", reverse=True)["reverse"] is True


# --- replay: held consumers, released mappings, the copy paths' permissions ------------------------


def _spec(protocol: str = "replay", **backfill: Any) -> Any:
    return parse_spec(
        {
            "region": "eu-west-1",
            "tables": [{"source": "orders", "target": "orders-v2", "protocol": protocol}],
            "buckets": [{"source": "media", "target": "media-v2", "protocol": protocol}],
            "backfill": backfill,
            "replication": {"max_record_age_seconds": 3600, "max_retries": 4},
        }
    )


def test_a_released_stream_mapping_starts_at_the_oldest_record_and_never_drops_a_held_one() -> None:
    # a spec whose insert-only mappings start at LATEST and skip records older than an hour
    spec = parse_spec(
        {
            "region": "eu-west-1",
            "tables": [{"source": "orders", "target": "orders-v2", "protocol": "insert-only"}],
            "replication": {"starting_position": "LATEST", "max_record_age_seconds": 3600, "max_retries": 4},
        }
    )
    replay = stream_mapping_request(
        stream_mapping_settings(spec, replay=True), stream_arn="arn:s", function="f", on_failure_arn="arn:q"
    )
    # whatever the spec says for insert-only tables: TRIM_HORIZON, and no maximum record age
    assert (replay["StartingPosition"], replay["MaximumRecordAgeInSeconds"]) == ("TRIM_HORIZON", -1)
    # and every other safety setting as an insert-only table's mapping has it
    assert replay["MaximumRetryAttempts"] == 4
    assert replay["BisectBatchOnFunctionError"] is True
    assert replay["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert replay["DestinationConfig"] == {"OnFailure": {"Destination": "arn:q"}}
    insert_only = stream_mapping_request(
        stream_mapping_settings(spec), stream_arn="arn:s", function="f", on_failure_arn="arn:q"
    )
    assert (insert_only["StartingPosition"], insert_only["MaximumRecordAgeInSeconds"]) == ("LATEST", 3600)
    assert {k: v for k, v in replay.items() if k not in ("StartingPosition", "MaximumRecordAgeInSeconds")} == {
        k: v for k, v in insert_only.items() if k not in ("StartingPosition", "MaximumRecordAgeInSeconds")
    }


def test_the_events_queue_mapping_is_held_only_for_replay_buckets() -> None:
    held, live = bucket_events_settings(_spec("replay")), bucket_events_settings(_spec("insert-only"))
    assert (held.hold_until_release, live.hold_until_release) == (True, False)
    tables_only = parse_spec({"region": "eu-west-1", "tables": [{"source": "orders", "target": "orders-v2"}]})
    assert bucket_events_settings(tables_only).hold_until_release is False
    # the queue keeps what it holds 14 days, the SQS maximum
    assert held.message_retention_seconds == QUEUE_RETENTION_SECONDS == 1_209_600
    created_held = queue_mapping_request(held, queue_arn="arn:e", function="g", enabled=not held.hold_until_release)
    assert created_held["Enabled"] is False
    assert queue_mapping_request(held, queue_arn="arn:e", function="g")["Enabled"] is True  # the release's


def _actions(document: dict[str, Any]) -> set[str]:
    return {a for statement in _statements(document) for a in statement["Action"]}


JOB_BASICS = {"s3:GetObject", "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}
JOB_BASICS |= {"cloudwatch:PutMetricData"}
TABLE_JOB = JOB_BASICS | {
    "dynamodb:GetItem",  # state: phase, capture, copy run, checkpoints
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:DeleteItem",
    "dynamodb:DescribeTable",  # both sides
    "dynamodb:DescribeStream",  # capture's shards, the release's check
    "sqs:GetQueueUrl",  # the on-failure queue of the mapping the release creates
    "sqs:GetQueueAttributes",
    "lambda:ListEventSourceMappings",
    "lambda:CreateEventSourceMapping",
}
STATE_TABLE = "arn:aws:dynamodb:eu-west-1:111122223333:table/ferry-state"
SCAN = {"dynamodb:Scan"}
HELD_COUNT = {"dynamodb:GetShardIterator", "dynamodb:GetRecords"}  # a replay table's release counts the held changes
BATCH = {"dynamodb:BatchWriteItem", "dynamodb:PutItem"}
EXPORT = {
    "dynamodb:DescribeContinuousBackups",
    "dynamodb:ExportTableToPointInTime",
    "dynamodb:DescribeExport",
    "s3:PutObject",
    "s3:AbortMultipartUpload",
    "s3:PutObjectAcl",
    "s3:GetObject",
    "s3:ListBucket",
}
IMPORT = {"dynamodb:ImportTable", "dynamodb:DescribeImport", "dynamodb:DescribeTimeToLive", "dynamodb:UpdateTimeToLive"}
IMPORT |= {f"logs:{a}" for a in ("CreateLogGroup", "CreateLogStream", "DescribeLogGroups", "DescribeLogStreams")}
IMPORT |= {"logs:PutLogEvents", "logs:PutRetentionPolicy"}


@pytest.mark.parametrize(
    ("backfill", "expected"),
    [
        ({}, TABLE_JOB | HELD_COUNT | SCAN | BATCH),
        ({"read": "export"}, TABLE_JOB | HELD_COUNT | EXPORT | BATCH),
        ({"read": "export", "write": "import"}, TABLE_JOB | HELD_COUNT | EXPORT | IMPORT),
    ],
    ids=["scan+batch", "export+batch", "export+import"],
)
def test_the_table_job_may_do_exactly_what_its_copy_path_calls(backfill: dict[str, Any], expected: set[str]) -> None:
    document = policy_documents(_spec(**backfill), "prod", ARNS, artifacts_bucket="a-b-c")["table_backfill"]
    assert _actions(document) == expected


PARTIQL_INSERT = {"dynamodb:PartiQLInsert"}


@pytest.mark.parametrize(
    ("protocol", "insert_mode", "expected"),
    [
        # auto (the default): INSERTs where the probe chooses them, and the probe in the state table
        ("insert-only", None, TABLE_JOB | SCAN | BATCH | PARTIQL_INSERT),
        ("insert-only", "auto", TABLE_JOB | SCAN | BATCH | PARTIQL_INSERT),
        ("insert-only", "partiql", TABLE_JOB | SCAN | BATCH | PARTIQL_INSERT),
        ("insert-only", "put", TABLE_JOB | SCAN | BATCH),  # conditional PutItem only
        ("replay", "auto", TABLE_JOB | HELD_COUNT | SCAN | BATCH),  # replay writes BatchWriteItem whatever the mode
        ("replay", "partiql", TABLE_JOB | HELD_COUNT | SCAN | BATCH),
    ],
    ids=[
        "insert-only-default",
        "insert-only-auto",
        "insert-only-partiql",
        "insert-only-put",
        "replay-auto",
        "replay-partiql",
    ],
)
def test_the_table_job_may_insert_with_partiql_only_where_insert_mode_can_choose_it(
    protocol: str, insert_mode: str | None, expected: set[str]
) -> None:
    backfill = {} if insert_mode is None else {"insert_mode": insert_mode}
    document = policy_documents(_spec(protocol, **backfill), "prod", ARNS, artifacts_bucket="a-b-c")["table_backfill"]
    assert _actions(document) == expected
    by_sid = {s["Sid"]: s for s in _statements(document)}
    target = "arn:aws:dynamodb:eu-west-1:111122223333:table/orders-v2"
    inserts = protocol == "insert-only" and insert_mode != "put"
    probes = protocol == "insert-only" and insert_mode in (None, "auto")
    assert ("InsertTargetItems" in by_sid, "ProbeInsertMode" in by_sid) == (inserts, probes)
    if inserts:
        assert by_sid["InsertTargetItems"]["Action"] == ["dynamodb:PartiQLInsert"]
        assert by_sid["InsertTargetItems"]["Resource"] == [target]
    if probes:
        # two INSERTs of one probe key into the state table, then its DeleteItem (granted with the state's)
        assert by_sid["ProbeInsertMode"]["Action"] == ["dynamodb:PartiQLInsert"]
        assert by_sid["ProbeInsertMode"]["Resource"] == [STATE_TABLE]
        assert "dynamodb:DeleteItem" in by_sid["ReadWriteState"]["Action"]
        assert by_sid["ReadWriteState"]["Resource"] == [STATE_TABLE]
    # the functions never write with PartiQL
    others = policy_documents(_spec(protocol, **backfill), "prod", ARNS, artifacts_bucket="a-b-c")
    assert not {a for role in ("table_stream", "bucket_events", "bucket_backfill") for a in _actions(others[role])} & (
        PARTIQL_INSERT
    )


def test_partiql_inserts_reach_the_insert_only_targets_only() -> None:
    # GIVEN a replay table and two insert-only tables
    def spec(insert_mode: str) -> Any:
        tables = [
            {"source": "orders", "target": "orders-v2"},
            {"source": "events", "target": "events-v2", "protocol": "insert-only"},
            {"source": "audit", "target": "audit-v2", "protocol": "insert-only"},
        ]
        return parse_spec({"region": "eu-west-1", "tables": tables, "backfill": {"insert_mode": insert_mode}})

    def inserted(insert_mode: str) -> list[str]:
        document = policy_documents(spec(insert_mode), "prod", ARNS, artifacts_bucket="a-b-c")["table_backfill"]
        return sorted(
            r for s in _statements(document) if "dynamodb:PartiQLInsert" in s["Action"] for r in s["Resource"]
        )

    # WHEN insert_mode is partiql (no probe)
    # THEN only the insert-only targets may get INSERTs: never the replay target, a source or the state table
    targets = [
        "arn:aws:dynamodb:eu-west-1:111122223333:table/audit-v2",
        "arn:aws:dynamodb:eu-west-1:111122223333:table/events-v2",
    ]
    assert inserted("partiql") == targets
    # AND with auto the state table is added for the probe, nothing else; with put nothing at all
    assert inserted("auto") == sorted([*targets, STATE_TABLE])
    assert inserted("put") == []


def test_the_table_job_never_writes_a_source_and_exports_only_into_the_export_bucket() -> None:
    spec = _spec(read="export", write="import")
    document = policy_documents(spec, "prod", ARNS, artifacts_bucket="a-b-c")["table_backfill"]
    source = "arn:aws:dynamodb:eu-west-1:111122223333:table/orders"
    writes = {"dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:UpdateTimeToLive"}
    writes |= {"dynamodb:ImportTable"}
    for statement in _statements(document):
        if writes & set(statement["Action"]):
            assert not [r for r in statement["Resource"] if r == source or r.startswith(source + "/")], statement
    by_sid = {s["Sid"]: s for s in _statements(document)}
    assert by_sid["ExportSources"]["Resource"] == [source]
    assert by_sid["DescribeExports"]["Resource"] == [source + "/export/*"]
    assert by_sid["WriteExports"]["Resource"] == ["arn:aws:s3:::ferry-exports-111122223333-eu-west-1/ferry-exports/*"]
    assert by_sid["ImportTargets"]["Resource"] == [
        "arn:aws:dynamodb:eu-west-1:111122223333:table/orders-v2",
        "arn:aws:dynamodb:eu-west-1:111122223333:table/orders-v2/import/*",
    ]
    assert by_sid["SetTargetTtl"]["Resource"] == ["arn:aws:dynamodb:eu-west-1:111122223333:table/orders-v2"]
    named = policy_documents(_spec(read="export", export_bucket="my-exports"), "prod", ARNS, artifacts_bucket="a-b-c")[
        "table_backfill"
    ]
    assert {s["Sid"]: s for s in _statements(named)}["ReadExports"]["Resource"] == [
        "arn:aws:s3:::my-exports",
        "arn:aws:s3:::my-exports/ferry-exports/*",
    ]


def test_the_jobs_manage_only_their_own_stage_s_mappings() -> None:
    documents = policy_documents(_spec(), "prod", ARNS, artifacts_bucket="a-b-c")
    table = {s["Sid"]: s for s in _statements(documents["table_backfill"])}
    stream_fn = "arn:aws:lambda:eu-west-1:111122223333:function:ferry-prod-table_stream"
    assert table["CreateOwnMapping"]["Condition"] == {"ArnLike": {"lambda:FunctionArn": [stream_fn, stream_fn + ":*"]}}
    assert "lambda:UpdateEventSourceMapping" not in _actions(documents["table_backfill"])  # it only creates
    assert table["FindFailureQueue"]["Resource"] == ["arn:aws:sqs:eu-west-1:111122223333:ferry-stream-failures"]
    bucket = {s["Sid"]: s for s in _statements(documents["bucket_backfill"])}
    bucket_fn = "arn:aws:lambda:eu-west-1:111122223333:function:ferry-prod-bucket_events"
    own = {"ArnLike": {"lambda:FunctionArn": [bucket_fn, bucket_fn + ":*"]}}
    assert bucket["CreateOwnMapping"]["Condition"] == own and bucket["EnableOwnMapping"]["Condition"] == own
    assert bucket["EnableOwnMapping"]["Resource"] == ["arn:aws:lambda:eu-west-1:111122223333:event-source-mapping:*"]
    assert bucket["FindEventsQueue"]["Resource"] == ["arn:aws:sqs:eu-west-1:111122223333:ferry-bucket-events"]
    assert bucket["ReadWriteState"]["Action"] == ["dynamodb:GetItem", "dynamodb:PutItem"]
    # insert-only buckets are never held: their job leaves the mapping and the queue alone
    insert_only = policy_documents(_spec("insert-only"), "prod", ARNS, artifacts_bucket="a-b-c")["bucket_backfill"]
    assert not {a for a in _actions(insert_only) if a.startswith(("lambda:", "sqs:"))}
    # the functions themselves need nothing new
    assert not {a for a in _actions(documents["table_stream"]) if a.startswith("lambda:")}


def test_terraform_variables_carry_the_protocols_and_the_copy_path() -> None:
    spec = _spec(read="export")
    out = terraform_variables(spec, "prod", [], [], account="111122223333")
    assert out["bucket_events"]["hold_until_release"] is True
    assert out["backfill"] == backfill_variables(spec, "111122223333")
    assert out["backfill"]["export_bucket"] == "ferry-exports-111122223333-eu-west-1"
    assert out["backfill"]["create_export_bucket"] is True
    assert (out["backfill"]["read"], out["backfill"]["write"]) == ("export", "batch")
    assert out["backfill"]["insert_mode"] == "auto"  # the default, and what the spec says otherwise
    put = terraform_variables(_spec("insert-only", insert_mode="put"), "prod", [], [], account="111122223333")
    assert put["backfill"]["insert_mode"] == "put"
