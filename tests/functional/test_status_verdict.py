"""The cutover verdict of ``ferry status`` on real state in the emulator, through the CLI: a small migration
reaching GO (exit 0), then each NO-GO (exit 1) made for real — the copy not done, a replay not released, no
consumer, lag, a message in the on-failure queue, a verify with differences, too old or from before the
copy finished, a tombstone left — and the deployed sources (CloudWatch metrics, the stage's mappings)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from ferry.clients import make_client
from ferry.tables.protocol import tombstone_for
from ferry_cli.main import cli
from tests.conftest import create_table

pytestmark = pytest.mark.functional


def _spec(tmp_path: Path, emulator: Any, unique: str, protocol: str, **cutover: float) -> str:
    body = {
        "region": "us-east-1",
        "endpoint_url": emulator.endpoint_url,
        "state_table": f"state-{unique}",
        "tables": [{"source": f"src-{unique}", "target": f"dst-{unique}", "protocol": protocol}],
        "backfill": {"splits": 2},
        "replication": {"phase_cache_seconds": 0, "on_failure_queue": f"failures-{unique}"},
        "cutover": dict(cutover),
    }
    path = tmp_path / "ferry.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return str(path)


def _run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def _status(spec: str, *extra: str) -> tuple[int, str]:
    """(exit code, the verdict line: the last line of the output)."""
    result = _run("status", "--spec", spec, *extra)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, " ".join(result.output.strip().splitlines()[-1].split())


def _migrated(ddb: Any, tmp_path: Path, emulator: Any, unique: str, protocol: str) -> str:
    """A small migration done end to end: init, copy (replay: released), drained, finalized, verified."""
    create_table(ddb, f"src-{unique}")
    for i in range(12):
        ddb.put_item(TableName=f"src-{unique}", Item={"pk": {"S": f"k{i}"}, "v": {"N": str(i)}})
    spec = _spec(tmp_path, emulator, unique, protocol)
    assert _run("init", "--spec", spec).exit_code == 0
    ddb.put_item(TableName=f"src-{unique}", Item={"pk": {"S": "k1"}, "v": {"N": "100"}})
    ddb.delete_item(TableName=f"src-{unique}", Key={"pk": {"S": "k2"}})
    for command in ("backfill", "replicate", "finalize", "verify"):
        args = ["--drain"] if command == "replicate" else []
        result = _run(command, "--spec", spec, *args)
        assert result.exit_code == 0, result.output
    return spec


def test_replay_migration_reaches_go_and_each_real_no_go_is_named(ddb, sqs, emulator, unique, tmp_path):
    # GIVEN a replay migration initialised, its copy not run
    create_table(ddb, f"src-{unique}")
    ddb.put_item(TableName=f"src-{unique}", Item={"pk": {"S": "a"}})
    spec = _spec(tmp_path, emulator, unique, "replay")
    assert _run("init", "--spec", spec).exit_code == 0
    ddb.put_item(TableName=f"src-{unique}", Item={"pk": {"S": "b"}})
    # THEN NO-GO: the copy is not done, the changes are held, nothing read the stream, never verified
    code, line = _status(spec)
    assert code == 1 and line.startswith("NO-GO: ")
    assert f"src-{unique}: copy not done (no backfill has run)" in line
    assert f"src-{unique}: changes held, the copy is not released (phase hold)" in line
    assert "no consumer has read the stream" in line and "never verified" in line
    # WHEN the copy runs and is released, but no poller has run yet
    assert _run("backfill", "--spec", spec).exit_code == 0
    code, line = _status(spec)
    assert code == 1 and "copy not done" not in line and "not released" not in line
    assert "no consumer has read the stream" in line
    # WHEN the backlog is replayed, the copy finalized and verified THEN GO, exit 0, as the last line
    for command in (["replicate", "--drain"], ["finalize"], ["verify"]):
        assert _run(command[0], "--spec", spec, *command[1:]).exit_code == 0
    assert _status(spec) == (0, "GO")


def test_lag_from_the_stream_after_the_pollers_checkpoints(ddb, emulator, unique, tmp_path):
    # GIVEN a migrated table at GO, its poller stopped
    spec = _migrated(ddb, tmp_path, emulator, unique, "replay")
    assert _status(spec) == (0, "GO")
    # WHEN the source changes and nothing applies it for longer than cutover.max_lag_seconds
    ddb.put_item(TableName=f"src-{unique}", Item={"pk": {"S": "late"}})
    spec = _spec(tmp_path, emulator, unique, "replay", max_lag_seconds=1)
    time.sleep(2.2)  # the stream's creation time is rounded down to the second on AWS
    # THEN NO-GO naming the table, the lag and the limit
    code, line = _status(spec)
    assert code == 1 and f"src-{unique}: replication lag " in line and "> cutover.max_lag_seconds 1" in line
    lag = float(line.split("replication lag ")[1].split(" s")[0])
    assert 1.0 < lag < 60
    # WHEN the poller drains THEN the lag is 0 and the verdict GO again
    assert _run("replicate", "--spec", spec, "--drain").exit_code == 0
    assert _status(spec) == (0, "GO")


def test_failure_queue_and_verify_no_gos(ddb, sqs, emulator, unique, tmp_path):
    spec = _migrated(ddb, tmp_path, emulator, unique, "replay")
    assert _status(spec) == (0, "GO")
    # WHEN a record's batch info waits in the on-failure queue THEN NO-GO naming the queue and the count
    url = sqs.get_queue_url(QueueName=f"failures-{unique}")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    code, line = _status(spec)
    assert code == 1 and line == f"NO-GO: queue failures-{unique}: 1 messages (see `ferry redrive`)"
    sqs.purge_queue(QueueUrl=url)
    assert _status(spec) == (0, "GO")
    # WHEN the last verify is older than cutover.max_verify_age_minutes THEN NO-GO
    old = _spec(tmp_path, emulator, unique, "replay", max_verify_age_minutes=0.01)
    time.sleep(0.8)
    code, line = _status(old)
    assert code == 1 and f"src-{unique}: last verify " in line and "> cutover.max_verify_age_minutes 0" in line
    # WHEN the target drifts and verify finds it THEN NO-GO with the number of differences
    spec = _spec(tmp_path, emulator, unique, "replay")
    ddb.put_item(TableName=f"dst-{unique}", Item={"pk": {"S": "zombie"}})
    assert _run("verify", "--spec", spec).exit_code == 1
    code, line = _status(spec)
    assert code == 1 and line == f"NO-GO: src-{unique}: last verify found 1 differences"


def test_insert_only_verify_before_the_copy_and_tombstones(ddb, emulator, unique, tmp_path):
    # GIVEN an insert-only migration verified before its copy (0 differences: both sides empty)
    create_table(ddb, f"src-{unique}")
    spec = _spec(tmp_path, emulator, unique, "insert-only")
    assert _run("init", "--spec", spec).exit_code == 0
    assert _run("verify", "--spec", spec).exit_code == 0
    time.sleep(0.05)
    # AND live changes replicated (a delete leaves a tombstone until finalize), then the copy
    ddb.put_item(TableName=f"src-{unique}", Item={"pk": {"S": "a"}})
    ddb.put_item(TableName=f"src-{unique}", Item={"pk": {"S": "gone"}})
    ddb.delete_item(TableName=f"src-{unique}", Key={"pk": {"S": "gone"}})
    for command in (["replicate", "--drain"], ["backfill"], ["replicate", "--drain"]):
        assert _run(command[0], "--spec", spec, *command[1:]).exit_code == 0
    # THEN NO-GO: the verify ran before the copy finished, and the tombstone is left (not finalized)
    code, line = _status(spec)
    assert code == 1
    assert f"src-{unique}: last verify ran " in line and " s before the copy finished" in line
    assert f"src-{unique}: phase backfill, not finalized: 1 tombstones left (run `ferry finalize`)" in line
    # WHEN finalized and verified THEN GO
    assert _run("finalize", "--spec", spec).exit_code == 0
    assert _run("verify", "--spec", spec).exit_code == 0
    assert _status(spec) == (0, "GO")
    # WHEN a tombstone is left in the target after all (a finalize that stopped half-way) THEN NO-GO, counted
    ddb.put_item(TableName=f"dst-{unique}", Item=tombstone_for({"pk": {"S": "gone"}}))
    code, line = _status(spec)
    assert code == 1 and line == f"NO-GO: src-{unique}: 1 tombstones left (run `ferry finalize`)"


def test_deployed_lag_from_cloudwatch_and_the_stage_s_mappings(ddb, where, emulator, unique, tmp_path):
    # GIVEN a migrated insert-only table and a stage whose table_stream function has no mapping yet
    spec = _migrated(ddb, tmp_path, emulator, unique, "insert-only")
    stage = f"s{unique[:8]}"
    function = f"ferry-{stage}-table_stream"
    # WHEN no IteratorAge datapoint exists THEN NO-GO: unknown lag, with the rule; and no mapping
    code, line = _status(spec, "--stage", stage)
    assert code == 1
    assert f"src-{unique}: replication lag unknown (no IteratorAge datapoint of {function}" in line
    assert f"src-{unique}: no stream mapping of {function}" in line
    # WHEN the function reports an IteratorAge of 12.3 s (milliseconds in CloudWatch)
    cloudwatch: Any = make_client("cloudwatch", where)
    cloudwatch.put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {
                "MetricName": "IteratorAge",
                "Dimensions": [{"Name": "FunctionName", "Value": function}],
                "Value": 12300.0,
                "Unit": "Milliseconds",
            }
        ],
    )
    # THEN NO-GO naming the lag, the limit and where it was read
    code, line = _status(spec, "--stage", stage)
    assert code == 1
    assert f"src-{unique}: replication lag 12.3 s > cutover.max_lag_seconds 5 (IteratorAge of {function}" in line
    # AND the local verdict is unaffected by the stage's metrics: GO from the pollers' checkpoints
    assert _status(spec) == (0, "GO")
