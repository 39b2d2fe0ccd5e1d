"""The Glue script itself, run on local Spark against the emulator: arguments parsed by
awsglue's getResolvedOptions, one Spark task per segment, exact copy, resumable, fails loudly."""

from __future__ import annotations

import pytest

from ferry.clients import TableClients
from ferry.errors import SetupError
from ferry.jobs import run_argv
from ferry.spec import parse_spec
from ferry.tables.copy_run import begin_copy
from ferry.tables.setup import init_tables
from ferry.tables.state import SegmentCheckpoint, StateStore
from ferry.wire import items_equal, key_of
from ferry_dev.workload import seed_table
from glue_jobs import table_backfill
from tests.conftest import create_table, scan_all

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("spark")]


def _spec(emulator, unique, splits=4, protocol="replay"):
    return parse_spec(
        {
            "region": "us-east-1",
            "endpoint_url": emulator.endpoint_url,
            "state_table": f"state-{unique}",
            "tables": [{"source": f"src-{unique}", "target": f"dst-{unique}", "protocol": protocol}],
            "backfill": {"splits": splits},
            "replication": {"phase_cache_seconds": 0},
        }
    )


@pytest.mark.parametrize("protocol", ["replay", "insert-only"])
def test_glue_script_copies_the_table_exactly_with_one_task_per_segment(ddb, emulator, unique, protocol):
    # GIVEN a seeded source and an initialised migration
    spec = _spec(emulator, unique, protocol=protocol)
    create_table(ddb, f"src-{unique}", range_key=("sk", "N"))
    seeded = seed_table(ddb, f"src-{unique}", 300, seed=5)
    init_tables(spec, ddb)
    # WHEN the Glue script's main runs with Glue-style arguments
    argv = ["table_backfill.py", *run_argv(spec, f"src-{unique}")]
    summary = table_backfill.main(argv)
    # THEN 4 segments (Spark tasks) ran, all done, and the copy is exact
    assert [r.segment for r in summary.results] == [0, 1, 2, 3]
    assert all(r.status == "done" for r in summary.results)
    assert summary.written == seeded
    source = {repr(key_of(i, ("pk", "sk"))): i for i in scan_all(ddb, f"src-{unique}")}
    target = {repr(key_of(i, ("pk", "sk"))): i for i in scan_all(ddb, f"dst-{unique}")}
    assert source.keys() == target.keys()
    assert all(items_equal(source[k], target[k]) for k in source)
    checkpoints = StateStore(ddb, spec.state_table).list_segments(f"src-{unique}")
    assert sorted(cp.segment for cp in checkpoints) == [0, 1, 2, 3]
    if protocol == "replay":
        # AND the replay copy was written in batches and released at the end of the run
        assert sum(r.batch_requests for r in summary.results) >= seeded / 25 and "released" in summary.released
        assert StateStore(ddb, spec.state_table).get_phase(f"src-{unique}") == "replay"
        # AND a rerun is refused: it would write old images over the replayed changes
        with pytest.raises(SetupError, match="--protocol insert-only"):
            table_backfill.main(argv)
    else:
        # AND a rerun skips the finished segments without scanning
        again = table_backfill.main(argv)
        assert all(r.resumed and r.read_units == 0 for r in again.results)


def test_the_job_fails_at_the_end_with_a_summary_when_a_segment_fails(ddb, emulator, unique):
    # GIVEN a corrupt checkpoint for segment 0 (its LastEvaluatedKey lacks the key attributes):
    # DynamoDB rejects the resumed scan, a permanent error that must not be retried forever
    spec = _spec(emulator, unique, splits=2)
    create_table(ddb, f"src-{unique}")
    seed_table(ddb, f"src-{unique}", 20, big_item=False)
    init_tables(spec, ddb)
    begin_copy(spec, spec.tables[0], TableClients.of(ddb))  # a run recorded: the rerun resumes its checkpoints
    store = StateStore(ddb, spec.state_table)
    store.save_segment(f"src-{unique}", SegmentCheckpoint(0, 2, "running", {"nope": {"S": "x"}}, 0, 0, 0, 1))
    # WHEN the job runs THEN the healthy segment completes and the job fails at the end, naming segment 0
    with pytest.raises(RuntimeError, match=r"backfill failed \(1 failed\)") as failure:
        table_backfill.main(["table_backfill.py", *run_argv(spec, f"src-{unique}")])
    assert "segment 0: ClientError" in str(failure.value) or "segment 0:" in str(failure.value)
    by_segment = {cp.segment: cp for cp in store.list_segments(f"src-{unique}")}
    assert by_segment[0].status == "failed" and by_segment[0].error
    assert by_segment[1].status == "done"
    # AND nothing was released: the changes stay held until a rerun completes the copy
    assert store.get_phase(f"src-{unique}") == "hold"


@pytest.mark.parametrize("write", ["batch", "import"])
def test_the_glue_script_copies_from_a_point_in_time_export(
    ddb, where, emulator, emulator_kind, unique, write, monkeypatch
):
    # GIVEN a replay migration reading an export (point-in-time recovery on at init), ASCII items of every
    # type (moto's ImportTable mangles JSON escapes: tests/functional/test_replay.py pins it); on
    # ministack, whose export writes no file, the export's files as AWS documents them (docs/emulators.md)
    from ferry.clients import make_client
    from ferry.operations import initialize
    from tests.emulated_export import write_exports_as_aws_does

    if emulator_kind == "ministack":
        write_exports_as_aws_does(monkeypatch)

    spec = parse_spec(
        {
            "region": "us-east-1",
            "endpoint_url": emulator.endpoint_url,
            "state_table": f"state-{unique}",
            "tables": [{"source": f"src-{unique}", "target": f"dst-{unique}"}],
            "backfill": {"read": "export", "write": write, "export_bucket": f"exports-{unique}"},
            "replication": {"phase_cache_seconds": 0},
        }
    )
    create_table(ddb, f"src-{unique}")
    for i in range(60):
        ddb.put_item(
            TableName=f"src-{unique}",
            Item={
                "pk": {"S": f"k{i}"},
                "n": {"N": "12345678901234567890123456789012345678"},
                "b": {"BS": [b"\x00", b"\x01"]},
            },
        )
    make_client("s3", where).create_bucket(Bucket=f"exports-{unique}")
    initialize(spec, enable_pitr=True)
    # WHEN the Glue script runs
    summary = table_backfill.main(["table_backfill.py", *run_argv(spec, f"src-{unique}")])
    # THEN the target equals the source, copied by the export's data files (one task each) or imported
    assert summary.copied == 60 and not summary.failed and "released" in summary.released
    if write == "import":
        assert summary.results == () and summary.imported is not None and summary.imported.errors == 0
    else:
        assert summary.results and sum(r.read_units for r in summary.results) == 0
    source = {i["pk"]["S"]: i for i in scan_all(ddb, f"src-{unique}")}
    target = {i["pk"]["S"]: i for i in scan_all(ddb, f"dst-{unique}")}
    assert source.keys() == target.keys() and all(items_equal(source[k], target[k]) for k in source)
