"""The Glue jobs' one argument contract (ferry/jobs.py): the spec as JSON plus the source of the run.

GIVEN a spec, WHEN its run arguments are built and read back the way each script reads them, THEN
the job runs with exactly that spec; and a bad argument fails the same way for both jobs (a
SpecError naming the field: exit 2), which the four hand-written copies of the contract did not.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ferry.errors import SpecError
from ferry.jobs import (
    BUCKET,
    KINDS,
    TABLE,
    JobRun,
    default_arguments,
    job_name,
    job_run_from_arguments,
    on_glue,
    resolved_option_names,
    run_arguments,
    run_argv,
    task_slots,
    with_splits,
)
from ferry.spec import parse_spec, spec_to_dict

pytestmark = pytest.mark.unit

SOURCE_ROLE = "arn:aws:iam::111111111111:role/ferry-source"
TARGET_ROLE = "arn:aws:iam::222222222222:role/ferry-target"
BASE: dict[str, Any] = {
    "region": "eu-west-1",
    "tables": [{"source": "orders", "target": "orders-v2"}],
    "buckets": [{"source": "media", "target": "media-v2", "prefix": "photos/"}],
    "backfill": {"splits": 6, "read_percent": 0.25},
    "s3": {"splits": 3, "concurrency": 5},
}
SOURCES = {TABLE: "orders", BUCKET: "media"}


def _as_resolved(arguments: dict[str, str]) -> dict[str, str]:
    """What getResolvedOptions returns for run arguments: names without the dashes."""
    return {name.removeprefix("--"): value for name, value in arguments.items()}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "roles",
    [{}, {"source_role_arn": SOURCE_ROLE}, {"source_role_arn": SOURCE_ROLE, "target_role_arn": TARGET_ROLE}],
    ids=["no-roles", "source-role", "both-roles"],
)
def test_a_run_reads_back_exactly_the_spec_it_was_given(kind: str, roles: dict[str, str]) -> None:
    spec = parse_spec({**BASE, **roles})
    run = job_run_from_arguments(kind, _as_resolved(run_arguments(spec, SOURCES[kind])))
    assert run == JobRun(spec, SOURCES[kind])
    assert (run.spec.source_where(), run.spec.target_where()) == (spec.source_where(), spec.target_where())


def test_the_command_line_form_carries_the_same_arguments() -> None:
    spec = parse_spec(BASE)
    argv = run_argv(spec, "orders")
    assert dict(zip(argv[::2], argv[1::2], strict=True)) == run_arguments(spec, "orders")


def test_both_jobs_get_the_same_default_arguments_and_they_hold_the_whole_spec() -> None:
    spec = parse_spec({**BASE, "source_role_arn": SOURCE_ROLE})
    arguments = default_arguments(spec, "ferry-prod-artifacts-123")
    assert arguments["--extra-py-files"] == "s3://ferry-prod-artifacts-123/ferry.zip"
    assert parse_spec(json.loads(arguments["--spec_json"])) == spec
    # nothing the spec already carries is passed a second time
    assert not {"--region", "--state_table", "--source_role_arn", "--splits"} & set(arguments)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        pytest.param({"source": "orders"}, "--spec_json", id="no-spec"),
        pytest.param({"spec_json": "{not json", "source": "orders"}, "--spec_json", id="not-json"),
        pytest.param({"spec_json": "[" * 100_000, "source": "orders"}, "--spec_json", id="nested-too-deep"),
        pytest.param(
            {"spec_json": json.dumps({**BASE, "backfill": {"splits": "eight"}}), "source": "orders"},
            "backfill.splits",
            id="bad-number",
        ),
        pytest.param(
            {"spec_json": json.dumps({**BASE, "s3": {"splits": "three"}}), "source": "media"},
            "s3.splits",
            id="bad-bucket-number",
        ),
        pytest.param(
            {"spec_json": json.dumps({**BASE, "tables": [{"source": "a-table", "target": "a-table"}]}), "source": "x"},
            "tables[0].target",
            id="invalid-spec",
        ),
        pytest.param({"spec_json": json.dumps(BASE), "source": "nope"}, "--source", id="unknown-source"),
        pytest.param({"spec_json": json.dumps(BASE)}, "--source", id="no-source"),
    ],
)
def test_a_bad_argument_is_a_spec_error_naming_the_field_in_both_jobs(
    kind: str, arguments: dict[str, str], field: str
) -> None:
    with pytest.raises(SpecError) as caught:
        job_run_from_arguments(kind, arguments)
    assert caught.value.field == field
    assert caught.value.exit_code == 2


def test_a_source_of_the_other_kind_is_refused() -> None:
    # the bucket's name is no table of the spec, and the other way round
    spec_json = json.dumps(spec_to_dict(parse_spec(BASE)))
    with pytest.raises(SpecError, match="not a source table"):
        job_run_from_arguments(TABLE, {"spec_json": spec_json, "source": "media"})
    with pytest.raises(SpecError, match="not a source bucket"):
        job_run_from_arguments(BUCKET, {"spec_json": spec_json, "source": "orders"})


def test_glue_runs_also_ask_for_the_job_name() -> None:
    assert resolved_option_names(["script.py", "--spec_json", "{}", "--source", "x"]) == ["spec_json", "source"]
    glue = ["script.py", "--JOB_ID", "j_1", "--JOB_RUN_ID", "jr_1", "--JOB_NAME", "n", "--source", "x"]
    assert on_glue(glue) and not on_glue(glue[:1])
    assert resolved_option_names(glue) == ["JOB_NAME", "spec_json", "source"]


def test_job_names_are_made_in_one_place() -> None:
    assert job_name("prod", TABLE) == "ferry-prod-table-backfill"
    assert job_name("dev", BUCKET) == "ferry-dev-bucket-backfill"
    with pytest.raises(ValueError, match="kind"):
        job_name("prod", "tables")


def test_with_splits_replaces_the_split_count_of_the_job_kind_only() -> None:
    spec = parse_spec(BASE)
    assert with_splits(spec, TABLE, None) is spec
    tables = with_splits(spec, TABLE, 2)
    assert (tables.backfill.splits, tables.s3.splits) == (2, 3)
    assert tables.backfill.read_percent == 0.25
    buckets = with_splits(spec, BUCKET, 9)
    assert (buckets.backfill.splits, buckets.s3.splits) == (6, 9)
    assert buckets.s3.concurrency == 5


@pytest.mark.parametrize(
    ("conf", "parallelism", "slots"),
    [
        ({}, 4, 4),
        ({}, 0, 1),
        ({"spark.dynamicAllocation.enabled": "true", "spark.dynamicAllocation.maxExecutors": "9"}, 4, 9),
        (
            {
                "spark.dynamicAllocation.enabled": "TRUE",
                "spark.dynamicAllocation.maxExecutors": "5",
                "spark.executor.cores": "4",
            },
            2,
            20,
        ),
        ({"spark.dynamicAllocation.enabled": "true"}, 3, 3),  # no ceiling: the default parallelism
        ({"spark.dynamicAllocation.enabled": "false", "spark.dynamicAllocation.maxExecutors": "9"}, 2, 2),
    ],
)
def test_task_slots(conf: dict[str, str], parallelism: int, slots: int) -> None:
    assert task_slots(conf, parallelism) == slots
