"""Both Glue scripts on local Spark with the spec's roles: every Spark task (its own Python process)
assumes the source and target roles itself, from the role ARNs in the job's arguments.

The emulator serves an assumed role's requests in the role's account, so the source (account
111111111111), the target (222222222222) and the state table (home, 123456789012) are in three
accounts here: a task that used the wrong side would find no table.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ferry.clients import make_client, table_clients
from ferry.jobs import run_argv
from ferry.spec import parse_spec
from ferry.tables.setup import init_tables
from ferry.tables.state import StateStore, create_state_table
from ferry_dev.workload import seed_table
from glue_jobs import bucket_backfill, table_backfill
from tests.conftest import create_table, scan_all

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("spark")]


def _spec(emulator: Any, unique: str) -> Any:
    return parse_spec(
        {
            "region": "us-east-1",
            "endpoint_url": emulator.endpoint_url,
            "state_table": f"state-{unique}",
            "source_role_arn": f"arn:aws:iam::111111111111:role/glue-source-{unique}",
            "target_role_arn": f"arn:aws:iam::222222222222:role/glue-target-{unique}",
            "tables": [{"source": f"src-{unique}", "target": f"dst-{unique}"}],
            "buckets": [{"source": f"src-{unique}", "target": f"dst-{unique}"}],
            "backfill": {"splits": 2},
            "s3": {"splits": 2, "concurrency": 2},
            "replication": {"phase_cache_seconds": 0},
        }
    )


def test_the_table_glue_script_copies_across_accounts_with_the_roles(emulator: Any, unique: str) -> None:
    # GIVEN a seeded source in the source account and `init` done with the spec's clients
    spec = _spec(emulator, unique)
    source = make_client("dynamodb", spec.source_where())
    create_table(source, f"src-{unique}")
    seeded = seed_table(source, f"src-{unique}", 60, big_item=False)
    init_tables(spec, table_clients(spec))
    # WHEN the Glue script runs with the role arguments
    argv = run_argv(spec, f"src-{unique}")
    assert parse_spec(json.loads(argv[argv.index("--spec_json") + 1])).target_where() == spec.target_where()
    summary = table_backfill.main(["table_backfill.py", *argv])
    # THEN every segment ran, and the target account's table holds every item
    assert [r.status for r in summary.results] == ["done", "done"]
    assert summary.written == seeded
    target = make_client("dynamodb", spec.target_where())
    assert len(scan_all(target, f"dst-{unique}")) == seeded
    # AND the checkpoints are in the state table at home
    home = make_client("dynamodb", spec.home_where())
    assert len(StateStore(home, spec.state_table).list_segments(f"src-{unique}")) == 2


@pytest.mark.emulators(
    "moto",
    reason="ministack answers a CopyObject from another account's bucket NoSuchBucket even with its policy "
    "(test_cross_account.py::test_ministack_cannot_copy_from_another_accounts_bucket_even_with_its_policy)",
)
def test_the_bucket_glue_script_copies_across_accounts_with_the_roles(emulator: Any, unique: str) -> None:
    # GIVEN a source bucket in the source account and an empty target in the target account
    spec = _spec(emulator, unique)
    source = make_client("s3", spec.source_where())
    target = make_client("s3", spec.target_where())
    source.create_bucket(Bucket=f"src-{unique}")
    target.create_bucket(Bucket=f"dst-{unique}")
    for i in range(6):
        source.put_object(Bucket=f"src-{unique}", Key=f"k/{i}", Body=f"object {i}".encode(), Tagging="t=1")
    create_state_table(make_client("dynamodb", spec.home_where()), spec.state_table)  # ferry's own, at home
    # WHEN the Glue script runs with the role arguments
    summary = bucket_backfill.main(["bucket_backfill.py", *run_argv(spec, f"src-{unique}")])
    # THEN every object was copied (server-side, by the target side) and nothing failed
    assert summary.failed == ()
    assert summary.actions == {"copied": 6}
    listed = target.list_objects_v2(Bucket=f"dst-{unique}")["Contents"]
    assert sorted(o["Key"] for o in listed) == [f"k/{i}" for i in range(6)]
    assert target.get_object(Bucket=f"dst-{unique}", Key="k/3")["Body"].read() == b"object 3"
