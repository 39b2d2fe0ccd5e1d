"""ferry.spec: parsing into frozen dataclasses, the plain-dict round trip, and field-naming errors."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ferry.clients import AwsTarget
from ferry.errors import SpecError
from ferry.spec import (
    BackfillSettings,
    ReplicationSettings,
    Spec,
    TableMapping,
    parse_spec,
    spec_to_dict,
)

pytestmark = pytest.mark.unit

# The README form of a spec (what `ferry.yaml` holds), as YAML/JSON would load it.
README_SPEC: dict[str, Any] = {
    "region": "us-east-1",
    "endpoint_url": "http://127.0.0.1:4566",
    "state_table": "ferry-state",
    "tables": [{"source": "orders", "target": "orders-v2"}],
    "backfill": {"splits": 8, "read_percent": 0.5, "write_percent": 0.5},
}

MINIMAL: dict[str, Any] = {"region": "eu-west-1", "tables": [{"source": "orders", "target": "orders-v2"}]}


def with_changes(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    out.update(changes)
    return out


def spec_error(raw: Any) -> SpecError:
    with pytest.raises(SpecError) as caught:
        parse_spec(raw)
    return caught.value


# --------------------------------------------------------------------------------------------
# valid specs


def test_readme_spec_parses_with_values_and_defaults() -> None:
    spec = parse_spec(README_SPEC)
    assert spec == Spec(
        region="us-east-1",
        endpoint_url="http://127.0.0.1:4566",
        state_table="ferry-state",
        tables=(TableMapping("orders", "orders-v2", replicate_ttl_deletes=True),),
        backfill=BackfillSettings(splits=8, read_percent=0.5, write_percent=0.5),
        replication=ReplicationSettings(),
    )
    # defaults not in the file
    assert spec.backfill.on_demand_read_units == 4000
    assert spec.backfill.on_demand_write_units == 1000
    assert spec.backfill.write_concurrency == 8
    assert spec.backfill.page_size == 0
    assert spec.replication.batch_size == 100
    assert spec.replication.max_retries == 3
    assert spec.replication.starting_position == "TRIM_HORIZON"
    assert spec.replication.phase_cache_seconds == 5.0
    assert spec.replication.on_failure_queue == "ferry-stream-failures"
    assert isinstance(spec.tables, tuple)


def test_minimal_spec_defaults() -> None:
    spec = parse_spec(MINIMAL)
    assert spec.endpoint_url is None
    assert spec.state_table == "ferry-state"
    assert spec.backfill == BackfillSettings()
    assert spec.replication == ReplicationSettings()
    assert spec.tables[0].replicate_ttl_deletes is True


def test_json_form_parses_the_same() -> None:
    assert parse_spec(json.loads(json.dumps(README_SPEC))) == parse_spec(README_SPEC)


def test_spec_is_frozen() -> None:
    spec = parse_spec(README_SPEC)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.region = "eu-west-1"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.backfill.splits = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.tables[0].target = "x-y-z"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.replication.max_retries = 0  # type: ignore[misc]


def test_int_is_accepted_where_a_float_is_expected() -> None:
    spec = parse_spec(with_changes(MINIMAL, backfill={"read_percent": 1}, replication={"phase_cache_seconds": 0}))
    assert spec.backfill.read_percent == 1.0 and isinstance(spec.backfill.read_percent, float)
    assert spec.replication.phase_cache_seconds == 0.0


def test_null_settings_sections_mean_defaults() -> None:
    spec = parse_spec(with_changes(MINIMAL, backfill=None, replication=None, endpoint_url=None))
    assert spec.backfill == BackfillSettings()
    assert spec.replication == ReplicationSettings()
    assert spec.endpoint_url is None


@pytest.mark.parametrize(
    ("changes", "check"),
    [
        ({"backfill": {"splits": 1}}, lambda s: s.backfill.splits == 1),
        ({"backfill": {"splits": 1_000_000}}, lambda s: s.backfill.splits == 1_000_000),
        ({"backfill": {"read_percent": 0.01, "write_percent": 1.0}}, lambda s: s.backfill.write_percent == 1.0),
        ({"backfill": {"page_size": 0}}, lambda s: s.backfill.page_size == 0),
        ({"replication": {"max_retries": 0}}, lambda s: s.replication.max_retries == 0),
        ({"replication": {"batch_size": 10_000}}, lambda s: s.replication.batch_size == 10_000),
        (
            {
                "replication": {"starting_position": "LATEST"},
                "tables": [{"source": "t1-x", "target": "t2-x", "protocol": "insert-only"}],
            },
            lambda s: s.replication.starting_position == "LATEST",
        ),
        ({"tables": [{"source": "abc", "target": "a" * 255}]}, lambda s: s.tables[0].target == "a" * 255),
        ({"tables": [{"source": "a.b", "target": "A_b-9"}]}, lambda s: s.tables[0].source == "a.b"),
        (
            {"tables": [{"source": "t1-x", "target": "t2-x", "replicate_ttl_deletes": False}]},
            lambda s: s.tables[0].replicate_ttl_deletes is False,
        ),
        ({"region": "us-gov-west-1"}, lambda s: s.region == "us-gov-west-1"),
        ({"endpoint_url": "https://dynamodb.example.com"}, lambda s: s.endpoint_url == "https://dynamodb.example.com"),
    ],
)
def test_boundary_values_accepted(changes: dict[str, Any], check: Any) -> None:
    assert check(parse_spec(with_changes(MINIMAL, **changes)))


SOURCE_ROLE = "arn:aws:iam::111111111111:role/ferry-source"
TARGET_ROLE = "arn:aws:iam::222222222222:role/migrations/ferry-target"


def test_role_arns_are_optional_and_default_to_none() -> None:
    spec = parse_spec(MINIMAL)
    assert spec.source_role_arn is None and spec.target_role_arn is None
    plain = spec_to_dict(spec)
    assert "source_role_arn" not in plain and "target_role_arn" not in plain  # absent, not null
    assert parse_spec(with_changes(MINIMAL, source_role_arn=None, target_role_arn=None)) == spec


@pytest.mark.parametrize(
    "arn",
    [
        SOURCE_ROLE,
        TARGET_ROLE,  # with a path
        "arn:aws-cn:iam::123456789012:role/service-role/a+b=c,d.e@f_g-h",
        "arn:aws-us-gov:iam::123456789012:role/R",
    ],
)
def test_valid_role_arns_are_accepted_on_both_sides(arn: str) -> None:
    spec = parse_spec(with_changes(MINIMAL, source_role_arn=arn, target_role_arn=arn))
    assert spec.source_role_arn == arn and spec.target_role_arn == arn


def test_role_arns_survive_the_plain_form() -> None:
    spec = parse_spec(with_changes(MINIMAL, source_role_arn=SOURCE_ROLE, target_role_arn=TARGET_ROLE))
    plain = spec_to_dict(spec)
    assert (plain["source_role_arn"], plain["target_role_arn"]) == (SOURCE_ROLE, TARGET_ROLE)
    assert parse_spec(json.loads(json.dumps(plain))) == spec


def test_each_side_gets_its_role_and_home_none() -> None:
    spec = parse_spec(
        with_changes(
            README_SPEC,
            source_role_arn=SOURCE_ROLE,
            target_role_arn=TARGET_ROLE,
        )
    )
    assert spec.source_where() == AwsTarget("us-east-1", "http://127.0.0.1:4566", SOURCE_ROLE)
    assert spec.target_where() == AwsTarget("us-east-1", "http://127.0.0.1:4566", TARGET_ROLE)
    assert spec.home_where() == AwsTarget("us-east-1", "http://127.0.0.1:4566", None)
    # without roles all three sides are the same place
    plain = parse_spec(MINIMAL)
    assert plain.source_where() == plain.target_where() == plain.home_where() == AwsTarget("eu-west-1")


def test_table_lookup() -> None:
    spec = parse_spec(
        with_changes(MINIMAL, tables=[{"source": "a-1", "target": "a-2"}, {"source": "b-1", "target": "b-2"}])
    )
    assert spec.table("b-1").target == "b-2"
    assert spec.mapping_for_source("a-2") is None  # targets are not sources
    with pytest.raises(SpecError) as caught:
        spec.table("nope")
    assert caught.value.field == "tables"


# --------------------------------------------------------------------------------------------
# round trip through the plain form (Lambda environment, Glue arguments)

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1", "cn-north-1"]
table_names = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", min_size=3, max_size=20
)
percents = st.floats(min_value=0.01, max_value=1.0, allow_nan=False)
role_arns = st.builds(
    "arn:{}:iam::{}:role/{}".format,
    st.sampled_from(["aws", "aws-cn", "aws-us-gov"]),
    st.from_regex(r"\d{12}", fullmatch=True),
    st.from_regex(r"([a-z0-9-]{1,8}/){0,2}[A-Za-z0-9+=,.@_-]{1,64}", fullmatch=True),
)


@st.composite
def valid_specs(draw: Any, *, with_roles: bool = False) -> dict[str, Any]:
    """A valid spec mapping; ``with_roles`` adds source/target role ARNs (each maybe)."""
    state_table = draw(table_names)
    names = draw(st.lists(table_names.filter(lambda n: n != state_table), min_size=2, max_size=6, unique=True))
    pairs = len(names) // 2
    tables = []
    for i in range(pairs):
        entry: dict[str, Any] = {"source": names[2 * i], "target": names[2 * i + 1]}
        if draw(st.booleans()):
            entry["replicate_ttl_deletes"] = draw(st.booleans())
        if draw(st.booleans()):
            entry["protocol"] = draw(st.sampled_from(["replay", "insert-only"]))
        tables.append(entry)
    raw: dict[str, Any] = {"region": draw(st.sampled_from(REGIONS)), "tables": tables, "state_table": state_table}
    if draw(st.booleans()):
        raw["endpoint_url"] = draw(st.sampled_from(["http://localhost:4566", "https://ddb.example.com:8000/x"]))
    for name in ("source_role_arn", "target_role_arn"):
        if with_roles and draw(st.booleans()):
            raw[name] = draw(role_arns)
    backfill = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "splits": st.integers(1, 1_000_000),
                "read_percent": percents,
                "write_percent": percents,
                "on_demand_read_units": st.integers(1, 40_000),
                "on_demand_write_units": st.integers(1, 40_000),
                "write_concurrency": st.integers(1, 64),
                "page_size": st.integers(0, 10_000),
                "read": st.sampled_from(["scan", "export"]),
                "max_hold_hours": st.floats(min_value=0.01, max_value=23.99, allow_nan=False),
                "export_bucket": st.sampled_from(["", "my-exports", "ferry.exports-1"]),
            },
        )
    )
    if backfill.get("read") == "export" and all(t.get("protocol", "replay") == "replay" for t in tables):
        backfill["write"] = draw(st.sampled_from(["batch", "import"]))
    if backfill or draw(st.booleans()):
        raw["backfill"] = backfill
    replication = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "batch_size": st.integers(1, 10_000),
                "max_retries": st.integers(0, 10_000),
                "starting_position": st.sampled_from(["TRIM_HORIZON", "LATEST"]),
                "phase_cache_seconds": st.floats(min_value=0, max_value=3600, allow_nan=False),
                "on_failure_queue": st.text(min_size=1, max_size=20),
                "max_record_age_seconds": st.integers(60, 72000),
            },
        )
    )
    if replication or draw(st.booleans()):
        raw["replication"] = replication
    if replication.get("starting_position") == "LATEST":  # only insert-only tables may start at LATEST
        for table in tables:
            table["protocol"] = "insert-only"
        raw.get("backfill", {}).pop("write", None)
    return raw


@settings(max_examples=150, deadline=None)
@given(valid_specs(with_roles=True))
def test_round_trip_through_plain_dict(raw: dict[str, Any]) -> None:
    spec = parse_spec(raw)
    plain = spec_to_dict(spec)
    assert parse_spec(plain) == spec
    assert parse_spec(json.loads(json.dumps(plain))) == spec  # survives JSON (Lambda env, Glue args)
    assert spec.region == raw["region"]
    assert [(t.source, t.target) for t in spec.tables] == [(t["source"], t["target"]) for t in raw["tables"]]
    assert (spec.source_role_arn, spec.target_role_arn) == (raw.get("source_role_arn"), raw.get("target_role_arn"))
    for section, cls in (("backfill", BackfillSettings), ("replication", ReplicationSettings)):
        given_values = raw.get(section) or {}
        for f in dataclasses.fields(cls):
            expected = given_values.get(f.name, getattr(cls(), f.name))
            assert getattr(getattr(spec, section), f.name) == expected


def test_spec_to_dict_form() -> None:
    plain = spec_to_dict(parse_spec(MINIMAL))
    assert "endpoint_url" not in plain  # absent, not null
    assert plain["tables"] == [
        {"source": "orders", "target": "orders-v2", "replicate_ttl_deletes": True, "protocol": "replay"}
    ]
    assert plain["backfill"]["splits"] == 8
    assert spec_to_dict(parse_spec(README_SPEC))["endpoint_url"] == "http://127.0.0.1:4566"


# --------------------------------------------------------------------------------------------
# every error names its field

TABLE = {"source": "orders", "target": "orders-v2"}

ERROR_CASES: list[tuple[str, Any, str]] = [
    ("not-a-mapping", ["region"], "spec"),
    ("unknown-top-level", with_changes(MINIMAL, regoin="us-east-1"), "regoin"),
    ("unknown-nested-backfill", with_changes(MINIMAL, backfill={"splitz": 8}), "backfill.splitz"),
    ("unknown-nested-replication", with_changes(MINIMAL, replication={"retries": 1}), "replication.retries"),
    ("unknown-table-key", with_changes(MINIMAL, tables=[{**TABLE, "tagret": "x"}]), "tables[0].tagret"),
    ("missing-region", {"tables": [TABLE]}, "region"),
    ("bad-region", with_changes(MINIMAL, region="US-EAST-1"), "region"),
    ("bad-region-no-number", with_changes(MINIMAL, region="us-east"), "region"),
    ("region-not-string", with_changes(MINIMAL, region=1), "region"),
    ("bad-endpoint", with_changes(MINIMAL, endpoint_url="localhost:4566"), "endpoint_url"),
    ("endpoint-not-string", with_changes(MINIMAL, endpoint_url=4566), "endpoint_url"),
    ("bad-state-table", with_changes(MINIMAL, state_table="st"), "state_table"),
    ("source-role-not-string", with_changes(MINIMAL, source_role_arn=123), "source_role_arn"),
    ("source-role-not-arn", with_changes(MINIMAL, source_role_arn="ferry-source"), "source_role_arn"),
    (
        "source-role-is-a-user",
        with_changes(MINIMAL, source_role_arn="arn:aws:iam::111111111111:user/ferry"),
        "source_role_arn",
    ),
    (
        "source-role-short-account",
        with_changes(MINIMAL, source_role_arn="arn:aws:iam::11111111111:role/ferry"),
        "source_role_arn",
    ),
    ("source-role-empty", with_changes(MINIMAL, source_role_arn=""), "source_role_arn"),
    (
        "target-role-no-name",
        with_changes(MINIMAL, target_role_arn="arn:aws:iam::222222222222:role/"),
        "target_role_arn",
    ),
    (
        "target-role-other-service",
        with_changes(MINIMAL, target_role_arn="arn:aws:sts::222222222222:assumed-role/ferry/x"),
        "target_role_arn",
    ),
    (
        "target-role-space",
        with_changes(MINIMAL, target_role_arn="arn:aws:iam::222222222222:role/my role"),
        "target_role_arn",
    ),
    ("target-role-list", with_changes(MINIMAL, target_role_arn=[TARGET_ROLE]), "target_role_arn"),
    ("missing-tables", {"region": "us-east-1"}, "tables"),
    ("empty-tables", with_changes(MINIMAL, tables=[]), "tables"),
    ("tables-not-list", with_changes(MINIMAL, tables={"source": "orders", "target": "orders-v2"}), "tables"),
    ("table-not-mapping", with_changes(MINIMAL, tables=["orders"]), "tables[0]"),
    ("missing-source", with_changes(MINIMAL, tables=[{"target": "orders-v2"}]), "tables[0].source"),
    ("missing-target", with_changes(MINIMAL, tables=[{"source": "orders"}]), "tables[0].target"),
    (
        "source-equals-target",
        with_changes(MINIMAL, tables=[{"source": "orders", "target": "orders"}]),
        "tables[0].target",
    ),
    (
        "duplicate-source",
        with_changes(MINIMAL, tables=[TABLE, {"source": "orders", "target": "orders-v3"}]),
        "tables[1].source",
    ),
    (
        "duplicate-target",
        with_changes(MINIMAL, tables=[TABLE, {"source": "items", "target": "orders-v2"}]),
        "tables[1].target",
    ),
    (
        "target-reused-as-source",
        with_changes(MINIMAL, tables=[TABLE, {"source": "orders-v2", "target": "orders-v3"}]),
        "tables[1].source",
    ),
    (
        "source-is-state-table",
        with_changes(MINIMAL, tables=[{"source": "ferry-state", "target": "x-v2"}]),
        "tables[0].source",
    ),
    (
        "target-is-custom-state-table",
        with_changes(MINIMAL, state_table="my-state", tables=[{"source": "orders", "target": "my-state"}]),
        "tables[0].target",
    ),
    ("table-name-space", with_changes(MINIMAL, tables=[{"source": "my orders", "target": "x-v2"}]), "tables[0].source"),
    ("table-name-slash", with_changes(MINIMAL, tables=[{"source": "orders", "target": "a/b"}]), "tables[0].target"),
    ("table-name-too-short", with_changes(MINIMAL, tables=[{"source": "ab", "target": "x-v2"}]), "tables[0].source"),
    (
        "table-name-too-long",
        with_changes(MINIMAL, tables=[{"source": "orders", "target": "a" * 256}]),
        "tables[0].target",
    ),
    ("table-name-unicode", with_changes(MINIMAL, tables=[{"source": "ordérs", "target": "x-v2"}]), "tables[0].source"),
    ("table-name-not-string", with_changes(MINIMAL, tables=[{"source": 123, "target": "x-v2"}]), "tables[0].source"),
    (
        "ttl-flag-not-bool",
        with_changes(MINIMAL, tables=[{**TABLE, "replicate_ttl_deletes": "yes"}]),
        "tables[0].replicate_ttl_deletes",
    ),
    (
        "ttl-flag-int",
        with_changes(MINIMAL, tables=[{**TABLE, "replicate_ttl_deletes": 1}]),
        "tables[0].replicate_ttl_deletes",
    ),
    ("backfill-not-mapping", with_changes(MINIMAL, backfill=[8]), "backfill"),
    ("splits-string", with_changes(MINIMAL, backfill={"splits": "8"}), "backfill.splits"),
    ("splits-bool", with_changes(MINIMAL, backfill={"splits": True}), "backfill.splits"),
    ("splits-float", with_changes(MINIMAL, backfill={"splits": 8.0}), "backfill.splits"),
    ("splits-null", with_changes(MINIMAL, backfill={"splits": None}), "backfill.splits"),
    ("splits-zero", with_changes(MINIMAL, backfill={"splits": 0}), "backfill.splits"),
    ("splits-too-many", with_changes(MINIMAL, backfill={"splits": 1_000_001}), "backfill.splits"),
    ("read-percent-bool", with_changes(MINIMAL, backfill={"read_percent": True}), "backfill.read_percent"),
    ("read-percent-string", with_changes(MINIMAL, backfill={"read_percent": "0.5"}), "backfill.read_percent"),
    ("read-percent-zero", with_changes(MINIMAL, backfill={"read_percent": 0}), "backfill.read_percent"),
    ("read-percent-over", with_changes(MINIMAL, backfill={"read_percent": 1.5}), "backfill.read_percent"),
    ("read-percent-nan", with_changes(MINIMAL, backfill={"read_percent": math.nan}), "backfill.read_percent"),
    ("write-percent-negative", with_changes(MINIMAL, backfill={"write_percent": -0.5}), "backfill.write_percent"),
    ("write-percent-as-percent", with_changes(MINIMAL, backfill={"write_percent": 50}), "backfill.write_percent"),
    (
        "write-concurrency-bool",
        with_changes(MINIMAL, backfill={"write_concurrency": True}),
        "backfill.write_concurrency",
    ),
    ("write-concurrency-zero", with_changes(MINIMAL, backfill={"write_concurrency": 0}), "backfill.write_concurrency"),
    (
        "on-demand-read-zero",
        with_changes(MINIMAL, backfill={"on_demand_read_units": 0}),
        "backfill.on_demand_read_units",
    ),
    (
        "on-demand-write-negative",
        with_changes(MINIMAL, backfill={"on_demand_write_units": -1}),
        "backfill.on_demand_write_units",
    ),
    ("page-size-negative", with_changes(MINIMAL, backfill={"page_size": -1}), "backfill.page_size"),
    ("replication-not-mapping", with_changes(MINIMAL, replication="fast"), "replication"),
    (
        "bad-starting-position",
        with_changes(MINIMAL, replication={"starting_position": "AT_TIMESTAMP"}),
        "replication.starting_position",
    ),
    (
        "starting-position-lowercase",
        with_changes(MINIMAL, replication={"starting_position": "latest"}),
        "replication.starting_position",
    ),
    (
        "starting-position-not-string",
        with_changes(MINIMAL, replication={"starting_position": 0}),
        "replication.starting_position",
    ),
    ("max-retries-negative", with_changes(MINIMAL, replication={"max_retries": -1}), "replication.max_retries"),
    ("max-retries-bool", with_changes(MINIMAL, replication={"max_retries": False}), "replication.max_retries"),
    ("max-retries-infinite", with_changes(MINIMAL, replication={"max_retries": 10_001}), "replication.max_retries"),
    ("batch-size-zero", with_changes(MINIMAL, replication={"batch_size": 0}), "replication.batch_size"),
    ("batch-size-too-big", with_changes(MINIMAL, replication={"batch_size": 10_001}), "replication.batch_size"),
    ("batch-size-bool", with_changes(MINIMAL, replication={"batch_size": True}), "replication.batch_size"),
    (
        "phase-cache-negative",
        with_changes(MINIMAL, replication={"phase_cache_seconds": -1}),
        "replication.phase_cache_seconds",
    ),
    (
        "phase-cache-bool",
        with_changes(MINIMAL, replication={"phase_cache_seconds": True}),
        "replication.phase_cache_seconds",
    ),
    (
        "failure-queue-not-string",
        with_changes(MINIMAL, replication={"on_failure_queue": 5}),
        "replication.on_failure_queue",
    ),
]


@pytest.mark.parametrize(("raw", "field"), [pytest.param(raw, field, id=name) for name, raw, field in ERROR_CASES])
def test_error_names_the_field(raw: Any, field: str) -> None:
    error = spec_error(raw)
    assert error.field == field
    assert str(error).startswith(f"{field}: ")
    assert error.problem
    assert error.exit_code == 2


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        pytest.param(with_changes(MINIMAL, region=None), "region", id="region-null"),
        pytest.param(
            with_changes(MINIMAL, tables=[{"source": None, "target": "x-v2"}]), "tables[0].source", id="source-null"
        ),
        pytest.param(
            with_changes(MINIMAL, tables=[{"source": "orders", "target": None}]), "tables[0].target", id="target-null"
        ),
    ],
)
def test_null_required_value_names_the_field(raw: Any, field: str) -> None:
    assert spec_error(raw).field == field


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        pytest.param(
            with_changes(MINIMAL, tables=[{"source": "orders\n", "target": "x-v2"}]), "tables[0].source", id="table"
        ),
        pytest.param(with_changes(MINIMAL, region="us-east-1\n"), "region", id="region"),
        pytest.param(with_changes(MINIMAL, state_table="ferry-state\n"), "state_table", id="state-table"),
        pytest.param(
            with_changes(MINIMAL, source_role_arn="arn:aws:iam::111111111111:role/ferry\n"),
            "source_role_arn",
            id="source-role",
        ),
    ],
)
def test_trailing_newline_is_not_a_valid_name(raw: Any, field: str) -> None:
    assert spec_error(raw).field == field


@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_phase_cache_seconds_must_be_finite(value: float) -> None:
    assert spec_error(with_changes(MINIMAL, replication={"phase_cache_seconds": value})).field == (
        "replication.phase_cache_seconds"
    )


# --------------------------------------------------------------------------------------------
# fuzz: anything either parses or raises SpecError, never another exception


def json_like(allow_null: bool) -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.booleans(),
        st.integers(-(10**7), 10**7),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=10),
        st.sampled_from(["us-east-1", "orders", "orders-v2", "ferry-state", "LATEST", "http://x"]),
        *([st.none()] if allow_null else []),
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=10,
    )


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, (*path, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, (*path, i)))
    return out


@st.composite
def mutated_specs(draw: Any, allow_null: bool) -> Any:
    """A valid spec with one place replaced (maybe by null), deleted, or given an extra key."""
    raw = copy.deepcopy(
        draw(st.sampled_from([README_SPEC, MINIMAL])) if draw(st.booleans()) else draw(valid_specs(with_roles=True))
    )
    path = draw(st.sampled_from(_paths(raw)))
    if not path:
        return draw(json_like(allow_null))
    parent = raw
    for step in path[:-1]:
        parent = parent[step]
    how = draw(st.sampled_from(["replace", "delete", "add-key", "null" if allow_null else "delete"]))
    if how == "null":
        parent[path[-1]] = None
    elif how == "replace":
        parent[path[-1]] = draw(json_like(allow_null))
    elif how == "delete":
        del parent[path[-1]]
    elif isinstance(parent[path[-1]], dict):
        parent[path[-1]][draw(st.text(max_size=8))] = draw(json_like(allow_null))
    return raw


def _parse_or_spec_error(raw: Any) -> None:
    try:
        spec = parse_spec(raw)
    except SpecError as error:
        assert isinstance(error.field, str)  # may be "" when the offending key itself is ""
        assert str(error) == f"{error.field}: {error.problem}"
        return
    assert isinstance(spec, Spec)
    assert repr(parse_spec(spec_to_dict(spec))) == repr(spec)  # repr: a NaN setting is not == itself


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.one_of(json_like(allow_null=False), mutated_specs(allow_null=False)))
def test_fuzz_never_raises_anything_but_spec_error(raw: Any) -> None:
    _parse_or_spec_error(raw)


@FUZZ
@example(with_changes(MINIMAL, region=None))
@given(st.one_of(json_like(allow_null=True), mutated_specs(allow_null=True)))
def test_fuzz_with_nulls_never_raises_anything_but_spec_error(raw: Any) -> None:
    _parse_or_spec_error(raw)


# --------------------------------------------------------------------------------------------
# protocols and copy paths (docs/adr/0004)

BUCKET = {"source": "media", "target": "media-v2"}


def test_replay_is_the_default_protocol_with_scan_and_batch() -> None:
    spec = parse_spec(with_changes(MINIMAL, buckets=[BUCKET]))
    assert spec.tables[0].protocol == "replay" and spec.tables[0].replay
    assert spec.buckets[0].protocol == "replay" and spec.buckets[0].replay
    assert (spec.backfill.read, spec.backfill.write, spec.backfill.max_hold_hours) == ("scan", "batch", 20.0)
    assert spec.backfill.export_bucket == ""


def test_the_issue_spec_parses() -> None:
    spec = parse_spec(
        {
            "region": "us-east-1",
            "tables": [{"source": "orders", "target": "orders-v2", "protocol": "replay"}],
            "buckets": [{"source": "media", "target": "media-v2", "protocol": "replay"}],
            "backfill": {"read": "export", "write": "import", "max_hold_hours": 20, "export_bucket": "my-exports"},
        }
    )
    assert spec.backfill.read == "export" and spec.backfill.write == "import"
    assert spec.backfill.export_bucket == "my-exports" and spec.backfill.max_hold_hours == 20.0
    assert parse_spec(json.loads(json.dumps(spec_to_dict(spec)))) == spec


PROTOCOL_ERRORS: list[tuple[str, Any, str]] = [
    ("protocol-unknown", with_changes(MINIMAL, tables=[{**TABLE, "protocol": "copy"}]), "tables[0].protocol"),
    ("protocol-not-string", with_changes(MINIMAL, tables=[{**TABLE, "protocol": True}]), "tables[0].protocol"),
    ("bucket-protocol-unknown", with_changes(MINIMAL, buckets=[{**BUCKET, "protocol": "sync"}]), "buckets[0].protocol"),
    (
        "buckets-mixed-protocols",
        with_changes(MINIMAL, buckets=[BUCKET, {"source": "m-2", "target": "m-3", "protocol": "insert-only"}]),
        "buckets[1].protocol",
    ),
    ("read-unknown", with_changes(MINIMAL, backfill={"read": "dump"}), "backfill.read"),
    ("write-unknown", with_changes(MINIMAL, backfill={"write": "put"}), "backfill.write"),
    ("import-without-export", with_changes(MINIMAL, backfill={"write": "import"}), "backfill.write"),
    (
        "import-with-insert-only",
        with_changes(
            MINIMAL, tables=[{**TABLE, "protocol": "insert-only"}], backfill={"read": "export", "write": "import"}
        ),
        "tables[0].protocol",
    ),
    ("hold-zero", with_changes(MINIMAL, backfill={"max_hold_hours": 0}), "backfill.max_hold_hours"),
    ("hold-a-day", with_changes(MINIMAL, backfill={"max_hold_hours": 24}), "backfill.max_hold_hours"),
    ("export-bucket-bad", with_changes(MINIMAL, backfill={"export_bucket": "Exports"}), "backfill.export_bucket"),
    (
        "latest-with-replay",
        with_changes(MINIMAL, replication={"starting_position": "LATEST"}),
        "replication.starting_position",
    ),
]


@pytest.mark.parametrize(("raw", "field"), [pytest.param(r, f, id=i) for i, r, f in PROTOCOL_ERRORS])
def test_protocol_errors_name_their_field(raw: Any, field: str) -> None:
    assert spec_error(raw).field == field


def test_command_line_overrides_apply_to_every_table_and_bucket() -> None:
    from ferry.spec import with_overrides

    spec = parse_spec(with_changes(MINIMAL, buckets=[BUCKET]))
    changed = with_overrides(spec, protocol="insert-only")
    assert [t.protocol for t in changed.tables] == ["insert-only"] and changed.buckets[0].protocol == "insert-only"
    export = with_overrides(spec, read="export", write="import")
    assert (export.backfill.read, export.backfill.write) == ("export", "import")
    assert with_overrides(spec) == spec
    for kwargs, option in (
        ({"write": "import"}, "--write"),  # needs --read export
        ({"protocol": "insert-only", "read": "export", "write": "import"}, "--protocol"),
        ({"read": "dump"}, "--read"),
        ({"protocol": "both"}, "--protocol"),
    ):
        with pytest.raises(SpecError) as caught:
            with_overrides(spec, **kwargs)
        assert caught.value.field == option, kwargs


# --------------------------------------------------------------------------------------------
# backfill.insert_mode: how protocol insert-only writes (docs/adr/0001)


def test_insert_mode_defaults_to_auto_and_each_mode_round_trips() -> None:
    assert parse_spec(MINIMAL).backfill.insert_mode == "auto"
    for mode in ("auto", "put", "partiql"):
        spec = parse_spec(
            with_changes(MINIMAL, tables=[{**TABLE, "protocol": "insert-only"}], backfill={"insert_mode": mode})
        )
        assert spec.backfill.insert_mode == mode
        assert parse_spec(json.loads(json.dumps(spec_to_dict(spec)))) == spec


@pytest.mark.parametrize("value", ["batch", "PartiQL", "PUT", "", "partiql ", True, 25, ["put"]])
def test_an_invalid_insert_mode_names_the_field_and_exits_2(value: Any) -> None:
    error = spec_error(with_changes(MINIMAL, backfill={"insert_mode": value}))
    assert error.field == "backfill.insert_mode"
    assert error.exit_code == 2
    expected = "must be one of auto, put, partiql" if isinstance(value, str) else "must be str"
    assert error.problem.startswith(expected)


# --- transforms and splits (docs/adr/0010): parsed and checked, refused until the paths apply them ---------

ISSUE_15_EXAMPLE = {
    "source": "app",
    "protocol": "replay",
    "targets": [
        {"table": "app-users", "when": {"attribute": "type", "equals": "user"}},
        {"table": "app-orders", "when": {"attribute": "sk", "begins_with": "ORDER#"}},
    ],
    "transform": {
        "rename": {"old_name": "new_name"},
        "drop": ["legacy_flag"],
        "function": "mypkg.shapes:reshape",
    },
}


def test_the_split_example_parses_into_its_shape() -> None:
    from ferry.shape import Route, Shape, Transform, When
    from ferry.spec import parse_shape

    assert parse_shape(ISSUE_15_EXAMPLE, "tables[0]") == Shape(
        (Route("app-users", When("type", equals="user")), Route("app-orders", When("sk", begins_with="ORDER#"))),
        Transform((("old_name", "new_name"),), ("legacy_flag",), "mypkg.shapes:reshape"),
        "error",
    )
    one = parse_shape({"source": "app", "target": "app-v2", "transform": {"drop": ["x"]}}, "tables[0]")
    assert one == Shape((Route("app-v2"),), Transform(drop=("x",)))
    assert parse_shape({**ISSUE_15_EXAMPLE, "unrouted": "skip", "transform": None}, "t").unrouted == "skip"
    assert parse_shape(
        {"source": "app", "targets": [{"table": "app-n", "when": {"attribute": "n", "equals": 7}}]}, "t"
    ).routes[0].when == When("n", equals="7")


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"target": "app-v2"}, "tables[0].targets", "not both"),
        ({"targets": []}, "tables[0].targets", "non-empty list"),
        ({"targets": [{"table": "app"}]}, "tables[0].targets[0].table", "differ from the source"),
        ({"targets": [{"table": "a-b"}, {"table": "a-b"}]}, "tables[0].targets[1].table", "already a target"),
        ({"targets": [{"table": "x"}]}, "tables[0].targets[0].table", "not a valid DynamoDB table name"),
        ({"targets": [{"table": "a-b", "when": {"attribute": "t"}}]}, "tables[0].targets[0].when", "exactly one"),
        (
            {"targets": [{"table": "a-b", "when": {"attribute": "t", "equals": True}}]},
            "tables[0].targets[0].when.equals",
            "string or a number",
        ),
        ({"targets": [{"table": "a-b", "when": {"equals": "u"}}]}, "tables[0].targets[0].when.attribute", "required"),
        ({"targets": [{"table": "a-b", "where": {}}]}, "tables[0].targets[0].where", "unknown key"),
        ({"transform": {"rename": {"a": "c", "b": "c"}}}, "tables[0].transform.rename", "same name"),
        ({"transform": {"rename": {"a": 3}}}, "tables[0].transform.rename.a", "new attribute"),
        ({"transform": {"drop": "legacy"}}, "tables[0].transform.drop", "list of attribute names"),
        (
            {"transform": {"function": "mypkg.shapes.reshape"}},
            "tables[0].transform.function",
            "package.module:callable",
        ),
        ({"unrouted": "maybe"}, "tables[0].unrouted", "one of error, skip"),
    ],
)
def test_each_bad_shape_field_is_named(change: dict[str, Any], field: str, problem: str) -> None:
    raw = {**ISSUE_15_EXAMPLE, **change}
    with pytest.raises(SpecError) as caught:
        parse_spec({"region": "us-east-1", "tables": [raw]})
    assert caught.value.field == field and problem in caught.value.problem


def test_a_valid_shape_is_refused_until_every_path_applies_it() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({"region": "us-east-1", "tables": [ISSUE_15_EXAMPLE]})
    assert caught.value.field == "tables[0].targets" and "not applied" in caught.value.problem
    with pytest.raises(SpecError, match="unrouted"):
        parse_spec({"region": "us-east-1", "tables": [{"source": "app", "target": "app-v2", "unrouted": "skip"}]})
