"""The Glue jobs carry the spec's roles through their arguments: args_for → config_from_args keeps them."""

from __future__ import annotations

import pytest

from ferry.errors import SpecError
from ferry.spec import parse_spec
from glue_jobs import bucket_backfill, table_backfill

pytestmark = pytest.mark.unit

SOURCE_ROLE = "arn:aws:iam::111111111111:role/ferry-source"
TARGET_ROLE = "arn:aws:iam::222222222222:role/ferry-target"
BASE = {
    "region": "eu-west-1",
    "tables": [{"source": "orders", "target": "orders-v2"}],
    "buckets": [{"source": "media", "target": "media-v2"}],
}


def _as_args(argv: list[str]) -> dict[str, str]:
    """What getResolvedOptions returns for the argument list: names without the dashes."""
    return {name.removeprefix("--"): value for name, value in zip(argv[::2], argv[1::2], strict=True)}


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        pytest.param({}, (None, None), id="no-roles"),
        pytest.param({"source_role_arn": SOURCE_ROLE}, (SOURCE_ROLE, None), id="source-only"),
        pytest.param(
            {"source_role_arn": SOURCE_ROLE, "target_role_arn": TARGET_ROLE}, (SOURCE_ROLE, TARGET_ROLE), id="both"
        ),
    ],
)
def test_both_glue_jobs_pass_the_roles_through_their_arguments(
    roles: dict[str, str], expected: tuple[str | None, str | None]
) -> None:
    # GIVEN a spec with (some) roles
    spec = parse_spec({**BASE, **roles})
    for job, source in ((table_backfill, "orders"), (bucket_backfill, "media")):
        # WHEN its Glue arguments are built and read back
        argv = job.args_for(spec, source)
        config = job.config_from_args(_as_args(argv))
        # THEN the job's spec has the same roles, and an absent role is no argument at all
        assert (config.spec.source_role_arn, config.spec.target_role_arn) == expected
        assert config.spec.source_where() == spec.source_where()
        assert config.spec.target_where() == spec.target_where()
        for name, value in zip(("--source_role_arn", "--target_role_arn"), expected, strict=True):
            assert (name in argv) == (value is not None)
        # AND the role arguments are optional arguments of the job (main asks getResolvedOptions for them)
        assert {"source_role_arn", "target_role_arn"} <= set(job.OPTIONAL_ARGS)


def test_a_bad_role_argument_names_the_field() -> None:
    argv = [*table_backfill.args_for(parse_spec(BASE), "orders"), "--target_role_arn", "ferry-target"]
    with pytest.raises(SpecError) as caught:
        table_backfill.config_from_args(_as_args(argv))
    assert caught.value.field == "target_role_arn"
