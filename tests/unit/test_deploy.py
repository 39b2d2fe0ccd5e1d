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
    Arns,
    bucket_events_settings,
    policy_documents,
    queue_mapping_request,
    stream_mapping_request,
    stream_mapping_settings,
    table_variables,
    terraform_variables,
)
from ferry.errors import SpecError
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
    raw["buckets"] = [{"source": names[i], "target": names[i + 1]} for i in range(0, len(names) - 1, 2)]
    if draw(st.booleans()):
        raw["source_role_arn"] = ROLE
    return parse_spec(raw)


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return list(document["Statement"])


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
        ]
    )
    for role, document in documents.items():
        for statement in _statements(document):
            for action in statement["Action"]:
                assert re.fullmatch(r"[a-z0-9]+:[A-Za-z]+", action), f"{role}: wildcard or odd action {action!r}"
            for resource in statement["Resource"]:
                if resource == "*":
                    assert statement["Action"] == ["cloudwatch:PutMetricData"], f"{role}: '*' for {statement}"
                    assert statement["Condition"]["StringEquals"]["cloudwatch:namespace"] == "Glue"
                    continue
                if resource == ROLE:
                    continue
                assert resource.startswith(
                    (
                        "arn:aws:dynamodb:eu-west-1:111122223333:",
                        "arn:aws:s3:::",
                        "arn:aws:sqs:eu-west-1:111122223333:",
                        "arn:aws:logs:eu-west-1:111122223333:",
                    )
                ), resource
                if ":logs:" not in resource:
                    assert any(name in resource for name in names), f"{role}: {resource} names nothing of the spec"


def test_stream_function_may_only_write_targets_and_read_its_streams() -> None:
    spec = parse_spec({"region": "eu-west-1", "tables": [{"source": "orders", "target": "orders-v2"}]})
    document = policy_documents(spec, "dev", ARNS, artifacts_bucket="a-b-c")["table_stream"]
    by_sid = {s["Sid"]: s for s in _statements(document)}
    assert by_sid["WriteTargets"]["Resource"] == ["arn:aws:dynamodb:eu-west-1:111122223333:table/orders-v2"]
    assert by_sid["ReadSourceStreams"]["Resource"] == ["arn:aws:dynamodb:eu-west-1:111122223333:table/orders/stream/*"]
    # the source table itself is never writable by the stream function
    writes = {"dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem"}
    for statement in _statements(document):
        if writes & set(statement["Action"]):
            assert all("table/orders-v2" in r for r in statement["Resource"]), statement
    assert "AssumeMigrationRoles" not in by_sid  # no role in the spec, no sts:AssumeRole


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
    out = table_variables(source, None, target_name="orders-v2", target_arn="arn:t", ttl_attribute="expires")
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
    existing = table_variables(
        source, {"TableArn": "arn:existing"}, target_name="orders-v2", target_arn="arn:t", ttl_attribute=None
    )
    assert existing["create_target"] is False and existing["target_arn"] == "arn:existing"


def test_terraform_variables_carry_the_spec_for_the_functions() -> None:
    spec = parse_spec({"region": "eu-west-1", "tables": [{"source": "orders", "target": "orders-v2"}]})
    out = terraform_variables(spec, "prod", [], [])
    assert parse_spec(json.loads(out["spec_json"])) == spec
    assert out["stream_mapping"]["maximum_retry_attempts"] == spec.replication.max_retries
    assert out["stream_failure_queue_name"] == spec.replication.on_failure_queue
