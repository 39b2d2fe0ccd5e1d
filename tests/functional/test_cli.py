"""The ferry CLI: documented exit codes, messages naming the field, nothing written on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from click.testing import CliRunner

from ferry_cli.main import cli
from tests.conftest import create_table

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import NotificationConfigurationTypeDef

pytestmark = pytest.mark.functional


def _write_spec(tmp_path: Path, body: dict) -> str:
    path = tmp_path / "ferry.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return str(path)


def _tables(ddb) -> set[str]:
    return {n for page in ddb.get_paginator("list_tables").paginate() for n in page["TableNames"]}


def _base(emulator, unique, protocol="replay", **extra):
    return {
        "region": "us-east-1",
        "endpoint_url": emulator.endpoint_url,
        "state_table": f"state-{unique}",
        "tables": [{"source": f"src-{unique}", "target": f"dst-{unique}", "protocol": protocol}],
        "backfill": {"splits": 2},
        "replication": {"phase_cache_seconds": 0},
        **extra,
    }


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda s: s.update(bogus=1), "bogus"),
        (lambda s: s["backfill"].update(splitz=3), "backfill.splitz"),
        (lambda s: s["tables"][0].update(target=s["tables"][0]["source"]), "tables[0].target"),
        (lambda s: s["backfill"].update(read_percent=7), "backfill.read_percent"),
        (lambda s: s.pop("region"), "region"),
    ],
)
def test_an_invalid_spec_exits_2_naming_the_field_and_writes_nothing(ddb, emulator, unique, tmp_path, mutate, field):
    create_table(ddb, f"src-{unique}")
    body = _base(emulator, unique)
    mutate(body)
    before = _tables(ddb)
    result = CliRunner().invoke(cli, ["init", "--spec", _write_spec(tmp_path, body)])
    assert result.exit_code == 2
    assert field in result.output
    assert _tables(ddb) == before


def test_missing_source_and_different_key_schema_exit_2_before_any_write(ddb, emulator, unique, tmp_path):
    spec = _write_spec(tmp_path, _base(emulator, unique))
    result = CliRunner().invoke(cli, ["init", "--spec", spec])
    assert result.exit_code == 2 and f"src-{unique}" in result.output and "does not exist" in result.output
    create_table(ddb, f"src-{unique}")
    create_table(ddb, f"dst-{unique}", hash_key=("id", "N"))
    before = _tables(ddb)
    result = CliRunner().invoke(cli, ["init", "--spec", spec])
    assert result.exit_code == 2 and "key schema" in result.output
    assert _tables(ddb) == before


@pytest.mark.parametrize("protocol", ["replay", "insert-only"])
def test_init_backfill_verify_finalize_status_through_the_cli(ddb, emulator, unique, tmp_path, protocol):
    # GIVEN a source table with items
    create_table(ddb, f"src-{unique}")
    for i in range(30):
        ddb.put_item(TableName=f"src-{unique}", Item={"pk": {"S": f"k{i}"}, "ns": {"NS": ["1", "2.5"]}})
    spec = _write_spec(tmp_path, _base(emulator, unique, protocol))
    runner = CliRunner()
    assert runner.invoke(cli, ["init", "--spec", spec]).exit_code == 0
    # AND changes made after capture began
    ddb.delete_item(TableName=f"src-{unique}", Key={"pk": {"S": "k0"}})
    ddb.put_item(TableName=f"src-{unique}", Item={"pk": {"S": "k1"}, "v": {"N": "2"}})
    status = runner.invoke(cli, ["status", "--spec", spec])
    # THEN status says NO-GO (exit 1): nothing is copied yet
    assert status.exit_code == 1, status.output
    assert status.output.strip().splitlines()[-1].startswith("NO-GO"), status.output
    assert "copy" in status.output.strip().splitlines()[-1], status.output
    if protocol == "replay":  # the changes wait in the stream, and status counts them
        assert "phase hold" in status.output and "held: 2 changes wait in the stream" in status.output
    # WHEN verify runs before the backfill THEN it exits 1 and writes the full JSON report
    report = tmp_path / "report.json"
    result = runner.invoke(cli, ["verify", "--spec", spec, "--json", str(report)])
    assert result.exit_code == 1, result.output
    data = json.loads(report.read_text())
    assert data["reports"][0]["counts"]["missing"] == 29
    # WHEN finalize runs before the backfill THEN it refuses (2)
    assert runner.invoke(cli, ["finalize", "--spec", spec]).exit_code == 2
    # WHEN the backfill runs through the CLI (local engine, Spark) and the captured changes are applied
    result = runner.invoke(cli, ["backfill", "--spec", spec])
    assert result.exit_code == 0, result.output
    if protocol == "replay":
        assert "released (held" in " ".join(result.output.split())
    result = runner.invoke(cli, ["replicate", "--spec", spec, "--drain"])
    assert result.exit_code == 0, result.output
    # AND finalize ends the copy's phase (insert-only: the tombstone of k0 is removed)
    assert runner.invoke(cli, ["finalize", "--spec", spec]).exit_code == 0
    # THEN verify passes, and status tells the copy and the replay
    assert runner.invoke(cli, ["verify", "--spec", spec]).exit_code == 0
    status = runner.invoke(cli, ["status", "--spec", spec])
    assert status.exit_code == 0
    text = " ".join(status.output.split())
    assert "phase live" in text and "copy done (scan + batch, 29 items)" in text
    if protocol == "replay":
        assert "released " in text and "replay (local pollers): 0 behind, 2 applied" in text


def test_verify_repair_fixes_a_drifted_target(ddb, emulator, unique, tmp_path):
    create_table(ddb, f"src-{unique}")
    create_table(ddb, f"dst-{unique}")
    ddb.put_item(TableName=f"src-{unique}", Item={"pk": {"S": "a"}, "v": {"N": "1"}})
    ddb.put_item(TableName=f"dst-{unique}", Item={"pk": {"S": "a"}, "v": {"N": "2"}})
    ddb.put_item(TableName=f"dst-{unique}", Item={"pk": {"S": "zombie"}})
    spec = _write_spec(tmp_path, _base(emulator, unique))
    runner = CliRunner()
    assert runner.invoke(cli, ["init", "--spec", spec]).exit_code == 0
    result = runner.invoke(cli, ["verify", "--spec", spec, "--repair"])
    assert result.exit_code == 0, result.output
    assert "repaired 2" in result.output
    assert runner.invoke(cli, ["verify", "--spec", spec]).exit_code == 0


def test_the_installed_console_script_reports_usage_errors_with_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("region: [unclosed\n", encoding="utf-8")
    ferry = Path(sys.executable).parent / "ferry"
    result = subprocess.run([str(ferry), "verify", "--spec", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "not valid YAML" in result.stderr


def test_replicate_drain_applies_live_changes_through_the_real_handler(ddb, emulator, unique, tmp_path):
    # GIVEN an initialised insert-only migration and live writes to the source after init
    create_table(ddb, f"src-{unique}")
    spec = _write_spec(tmp_path, _base(emulator, unique, "insert-only"))
    runner = CliRunner()
    assert runner.invoke(cli, ["init", "--spec", spec]).exit_code == 0
    ddb.put_item(TableName=f"src-{unique}", Item={"pk": {"S": "a"}, "b": {"BS": [b"\x00", b"\xff"]}})
    ddb.put_item(TableName=f"src-{unique}", Item={"pk": {"S": "gone"}})
    ddb.delete_item(TableName=f"src-{unique}", Key={"pk": {"S": "gone"}})
    # WHEN `ferry replicate --drain` runs
    result = runner.invoke(cli, ["replicate", "--spec", spec, "--drain"])
    # THEN the put is replicated byte-exact and the delete left a tombstone (backfill phase)
    assert result.exit_code == 0, result.output
    got = ddb.get_item(TableName=f"dst-{unique}", Key={"pk": {"S": "a"}})["Item"]
    assert sorted(got["b"]["BS"]) == [b"\x00", b"\xff"]
    gone = ddb.get_item(TableName=f"dst-{unique}", Key={"pk": {"S": "gone"}})["Item"]
    assert "__ferry_tombstone" in gone
    assert "on-failure queue depth: 0" in result.output


def test_replicate_holds_a_replay_table_until_the_backfill_releases_it_then_applies_everything(
    ddb, emulator, unique, tmp_path
):
    # GIVEN an initialised replay migration and changes made after capture began
    from ferry.tables.state import StateStore

    create_table(ddb, f"src-{unique}")
    spec = _write_spec(tmp_path, _base(emulator, unique))
    runner = CliRunner()
    assert runner.invoke(cli, ["init", "--spec", spec]).exit_code == 0
    ddb.put_item(TableName=f"src-{unique}", Item={"pk": {"S": "a"}, "b": {"BS": [b"\x00", b"\xff"]}})
    ddb.put_item(TableName=f"src-{unique}", Item={"pk": {"S": "gone"}})
    ddb.delete_item(TableName=f"src-{unique}", Key={"pk": {"S": "gone"}})
    # WHEN `ferry replicate --drain` runs before the backfill
    result = runner.invoke(cli, ["replicate", "--spec", spec, "--drain"])
    # THEN it held: nothing applied, no checkpoint committed
    assert result.exit_code == 0, result.output
    assert "delivered=0" in result.output and "applied=0" in result.output
    assert StateStore(ddb, f"state-{unique}").stream_checkpoints(f"src-{unique}") == []
    assert ddb.scan(TableName=f"dst-{unique}")["Count"] == 0
    # WHEN the backfill copies (and releases) and replicate drains again
    assert runner.invoke(cli, ["backfill", "--spec", spec]).exit_code == 0
    result = runner.invoke(cli, ["replicate", "--spec", spec, "--drain"])
    # THEN every change since capture began was applied, in order, from the start of the stream: the put
    # byte-exact, the delete a real delete (no tombstone under replay)
    assert result.exit_code == 0, result.output
    assert "applied=3" in result.output
    got = ddb.get_item(TableName=f"dst-{unique}", Key={"pk": {"S": "a"}})["Item"]
    assert sorted(got["b"]["BS"]) == [b"\x00", b"\xff"]
    assert "Item" not in ddb.get_item(TableName=f"dst-{unique}", Key={"pk": {"S": "gone"}})
    # AND a rerun has nothing to do, while a second replay copy of the released table is refused before any
    # write, naming the way to copy again
    result = runner.invoke(cli, ["backfill", "--spec", spec])
    assert result.exit_code == 0 and "copied and released already" in " ".join(result.output.split())
    result = runner.invoke(cli, ["backfill", "--spec", spec, "--restart"])
    assert result.exit_code == 2 and "--protocol insert-only" in " ".join(result.output.split())
    assert "copy done" in runner.invoke(cli, ["status", "--spec", spec]).output
    assert runner.invoke(cli, ["backfill", "--spec", spec, "--protocol", "insert-only"]).exit_code == 0
    assert runner.invoke(cli, ["replicate", "--spec", spec, "--drain"]).exit_code == 0
    assert runner.invoke(cli, ["finalize", "--spec", spec]).exit_code == 0
    assert runner.invoke(cli, ["verify", "--spec", spec]).exit_code == 0


def test_backfill_engine_glue_starts_a_job_run_with_the_documented_arguments(ddb, emulator, unique, tmp_path, where):
    # GIVEN the stage's Glue job (the emulator records runs but does not execute them)
    from ferry.clients import make_client
    from ferry.jobs import job_name, job_run_from_arguments

    create_table(ddb, f"src-{unique}")
    spec = _write_spec(tmp_path, _base(emulator, unique))
    runner = CliRunner()
    assert runner.invoke(cli, ["init", "--spec", spec]).exit_code == 0
    glue = make_client("glue", where)
    stage = f"t{unique[:8]}"
    glue.create_job(
        Name=job_name(stage, "table"),
        Role="arn:aws:iam::123456789012:role/ferry",
        Command={"Name": "glueetl", "ScriptLocation": "s3://a/b.py"},
    )
    # WHEN ferry backfill --engine glue runs with a split count of its own
    result = runner.invoke(
        cli,
        ["backfill", "--spec", spec, "--engine", "glue", "--stage", stage, "--splits", "3", "--poll-seconds", "0.1"],
    )
    # THEN it started one run of the stage's job and followed it to SUCCEEDED
    assert result.exit_code == 0, result.output
    assert "SUCCEEDED" in result.output
    runs = glue.get_job_runs(JobName=job_name(stage, "table"))["JobRuns"]
    assert len(runs) == 1
    # AND the run's arguments are what the script reads: the spec as given (with --splits) and the source
    arguments = runs[0]["Arguments"]
    assert set(arguments) == {"--spec_json", "--source"}
    run = job_run_from_arguments("table", {k.removeprefix("--"): v for k, v in arguments.items()})
    assert run.source == f"src-{unique}" and run.spec.backfill.splits == 3
    assert run.spec.tables[0].target == f"dst-{unique}"


@pytest.mark.parametrize("protocol", ["replay", "insert-only"])
def test_buckets_through_the_cli_init_replicate_backfill_verify(where, emulator, unique, tmp_path, protocol):
    # GIVEN a source bucket with an existing notification configuration and an awkward key
    from ferry.clients import make_client

    s3, sqs = make_client("s3", where), make_client("sqs", where)
    source, target = f"media-{unique}", f"media-v2-{unique}"
    s3.create_bucket(Bucket=source)
    other = sqs.create_queue(QueueName=f"other-{unique}")["QueueUrl"]
    other_arn = sqs.get_queue_attributes(QueueUrl=other, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    existing: NotificationConfigurationTypeDef = {
        "QueueConfigurations": [{"QueueArn": other_arn, "Events": ["s3:ObjectCreated:*"]}]
    }
    s3.put_bucket_notification_configuration(Bucket=source, NotificationConfiguration=existing)
    s3.put_object(Bucket=source, Key="old one+two.txt", Body=b"old", ContentType="text/plain", Tagging="a=1")
    body = {
        "region": "us-east-1",
        "endpoint_url": emulator.endpoint_url,
        "buckets": [{"source": source, "target": target, "protocol": protocol}],
        "s3": {"events_queue": f"events-{unique}", "splits": 2, "visibility_timeout": 5},
    }
    spec = _write_spec(tmp_path, body)
    runner = CliRunner()
    # WHEN init runs THEN the target exists and the existing notification survived
    result = runner.invoke(cli, ["init", "--spec", spec])
    assert result.exit_code == 0, result.output
    s3.head_bucket(Bucket=target)
    kept = s3.get_bucket_notification_configuration(Bucket=source)["QueueConfigurations"]
    assert [c["QueueArn"] for c in kept] == [other_arn]
    # WHEN a live write happens and replicate drains the events queue THEN it is copied (insert-only), or
    # waits in the queue until the copy is released (replay)
    s3.put_object(Bucket=source, Key="live key+1 %.txt", Body=b"live", Metadata={"m": "1"})
    result = runner.invoke(cli, ["replicate", "--spec", spec, "--drain"])
    assert result.exit_code == 0, result.output
    copied = s3.list_objects_v2(Bucket=target).get("KeyCount", 0)
    assert copied == (0 if protocol == "replay" else 1)
    # WHEN the backfill runs and replicate drains THEN the old object is copied too and verify passes (tags
    # included)
    result = runner.invoke(cli, ["backfill", "--spec", spec])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["replicate", "--spec", spec, "--drain"])
    assert result.exit_code == 0, result.output
    assert s3.get_object(Bucket=target, Key="live key+1 %.txt")["Body"].read() == b"live"
    report = tmp_path / "r.json"
    result = runner.invoke(cli, ["verify", "--spec", spec, "--json", str(report)])
    assert result.exit_code == 0, result.output
    assert json.loads(report.read_text())["reports"][0]["source_items"] == 2
    # WHEN the target drifts THEN verify exits 1 and --repair fixes it
    s3.put_object_tagging(Bucket=target, Key="old one+two.txt", Tagging={"TagSet": [{"Key": "a", "Value": "2"}]})
    assert runner.invoke(cli, ["verify", "--spec", spec]).exit_code == 1
    assert runner.invoke(cli, ["verify", "--spec", spec, "--skip-tags"]).exit_code == 0
    assert runner.invoke(cli, ["verify", "--spec", spec, "--repair"]).exit_code == 0
    assert runner.invoke(cli, ["verify", "--spec", spec]).exit_code == 0
    # WHEN the target holds an object the source lacks THEN --repair removes it and prints the counts
    # after the repair, in the bucket's words (objects; no scan segments)
    s3.put_object(Bucket=target, Key="stray.bin", Body=b"x")
    result = runner.invoke(cli, ["verify", "--spec", spec, "--repair"])
    assert result.exit_code == 0, result.output
    line = " ".join(result.output.split())
    assert f"{source} -> {target}: OK source 2 objects, target 2 objects," in line and "repaired 1" in line
    assert "items" not in line and "segments" not in line


def test_an_invalid_bucket_spec_exits_2_naming_the_field(emulator, tmp_path):
    body = {
        "region": "us-east-1",
        "endpoint_url": emulator.endpoint_url,
        "buckets": [{"source": "Bad_Name", "target": "ok-target"}],
    }
    result = CliRunner().invoke(cli, ["init", "--spec", _write_spec(tmp_path, body)])
    assert result.exit_code == 2 and "buckets[0].source" in result.output
