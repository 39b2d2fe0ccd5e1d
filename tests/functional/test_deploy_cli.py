"""The deployment commands: what they change (only the sources, for `init --sources-only`), what
they refuse, and that `ferry tfvars` reproduces the source faithfully."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ferry_cli.main import cli
from tests.conftest import create_table

pytestmark = pytest.mark.functional


def _spec(tmp_path: Path, emulator, unique: str, **extra) -> str:
    body = {
        "region": "us-east-1",
        "endpoint_url": emulator.endpoint_url,
        "state_table": f"state-{unique}",
        "tables": [{"source": f"src-{unique}", "target": f"dst-{unique}"}],
        **extra,
    }
    path = tmp_path / "ferry.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return str(path)


def _tables(ddb) -> set[str]:
    return {n for page in ddb.get_paginator("list_tables").paginate() for n in page["TableNames"]}


def test_sources_only_enables_the_stream_and_creates_nothing_else(ddb, emulator, unique, tmp_path):
    create_table(ddb, f"src-{unique}", range_key=("sk", "N"))
    before = _tables(ddb)
    result = CliRunner().invoke(cli, ["init", "--spec", _spec(tmp_path, emulator, unique), "--sources-only"])
    assert result.exit_code == 0, result.output
    assert f"enabled stream (NEW_AND_OLD_IMAGES) on src-{unique}" in result.output
    assert _tables(ddb) == before  # no target, no state table: Terraform creates those
    stream = ddb.describe_table(TableName=f"src-{unique}")["Table"]["StreamSpecification"]
    assert stream == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    again = CliRunner().invoke(cli, ["init", "--spec", _spec(tmp_path, emulator, unique), "--sources-only"])
    assert again.exit_code == 0 and "nothing to do" in again.output


def test_tfvars_refuses_a_source_without_its_stream(ddb, emulator, unique, tmp_path):
    create_table(ddb, f"src-{unique}")
    out = tmp_path / "vars.json"
    result = CliRunner().invoke(
        cli, ["tfvars", "--spec", _spec(tmp_path, emulator, unique), "--stage", "dev", "--out", str(out)]
    )
    assert result.exit_code == 2
    assert "tables[0].source" in result.output and "ferry init --sources-only" in result.output
    assert not out.exists()


def test_tfvars_writes_the_source_shape_and_the_shared_settings(ddb, emulator, unique, tmp_path):
    create_table(ddb, f"src-{unique}", range_key=("sk", "B"), stream=True, provisioned=(7, 3))
    out = tmp_path / "vars.json"
    spec = _spec(tmp_path, emulator, unique, replication={"max_retries": 5, "batch_size": 25})
    result = CliRunner().invoke(cli, ["tfvars", "--spec", spec, "--stage", "prod", "--out", str(out)])
    assert result.exit_code == 0, result.output
    variables = json.loads(out.read_text())
    (table,) = variables["tables"]
    assert table["create_target"] is True
    assert (table["hash_key"], table["range_key"]) == ("pk", "sk")
    assert {"name": "sk", "type": "B"} in table["attributes"]
    assert (table["billing_mode"], table["read_capacity"], table["write_capacity"]) == ("PROVISIONED", 7, 3)
    assert variables["stream_mapping"]["maximum_retry_attempts"] == 5
    assert variables["stream_mapping"]["batch_size"] == 25
    assert variables["stage"] == "prod" and variables["state_table_name"] == f"state-{unique}"


def test_tfvars_refuses_an_existing_target_with_other_keys(ddb, emulator, unique, tmp_path):
    create_table(ddb, f"src-{unique}", stream=True)
    create_table(ddb, f"dst-{unique}", hash_key=("id", "N"))
    result = CliRunner().invoke(
        cli, ["tfvars", "--spec", _spec(tmp_path, emulator, unique), "--stage", "dev", "--out", str(tmp_path / "v")]
    )
    assert result.exit_code == 2 and "tables[0].target" in result.output


@pytest.mark.parametrize("stage", ["Prod", "1dev", "a-very-long-stage-name-x", ""])
def test_a_bad_stage_name_exits_2(emulator, unique, tmp_path, stage):
    result = CliRunner().invoke(cli, ["tfvars", "--spec", _spec(tmp_path, emulator, unique), "--stage", stage])
    assert result.exit_code == 2 and "--stage" in result.output


def test_whoami_without_credentials_exits_2_with_a_clear_message(tmp_path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    spec = tmp_path / "f.yaml"
    spec.write_text("region: us-east-1\ntables: [{source: orders, target: orders-v2}]\n")
    result = CliRunner().invoke(cli, ["whoami", "--spec", str(spec)])
    assert result.exit_code == 2
    assert "no AWS credentials" in result.output


def test_chalice_config_writes_a_stage_with_one_policy_per_function(emulator, unique, tmp_path):
    app = tmp_path / "app"
    (app / ".chalice").mkdir(parents=True)
    (app / ".chalice" / "config.json").write_text(json.dumps({"version": "2.0", "app_name": "ferry", "stages": {}}))
    spec = _spec(tmp_path, emulator, unique, s3={"visibility_timeout": 60})
    result = CliRunner().invoke(cli, ["chalice-config", "--spec", spec, "--stage", "qa", "--app-dir", str(app)])
    assert result.exit_code == 0, result.output
    stage = json.loads((app / ".chalice" / "config.json").read_text())["stages"]["qa"]
    assert stage["lambda_timeout"] == 60  # never above the events queue's visibility timeout
    assert json.loads(stage["environment_variables"]["FERRY_SPEC"])["tables"][0]["source"] == f"src-{unique}"
    for fn in ("table_stream", "bucket_events"):
        assert stage["lambda_functions"][fn] == {"autogen_policy": False, "iam_policy_file": f"policy-qa-{fn}.json"}
        policy = json.loads((app / ".chalice" / f"policy-qa-{fn}.json").read_text())
        assert policy["Statement"], fn
