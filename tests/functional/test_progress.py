"""Progress while it runs (issue 13): the real ``backfill --engine local``, ``verify`` and ``replicate --drain``
draw rich bars with the right final numbers on a terminal, and nothing of the kind with ``-v`` or when the
output is not a terminal; verify records its results, tables and buckets, for status and the cutover."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from rich.console import Console

import ferry_cli.main as main
from ferry.clients import make_client
from ferry.tables.state import BUCKET, TABLE, StateStore
from ferry_cli.main import cli
from tests.conftest import create_table, scan_all

pytestmark = pytest.mark.functional

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
BAR_LINE = re.compile(r"[━╸╺]+.*[\d,]+/\S+ (items|objects|changes) .*ETA")  # a bar, then its count and ETA


def _has_bar(text: str) -> bool:
    return any(BAR_LINE.search(line) for line in text.splitlines())


SPLITS = 8


def _plain(output: str) -> str:
    return ANSI.sub("", output)


def _write_spec(tmp_path: Path, body: dict) -> str:
    path = tmp_path / "ferry.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return str(path)


def _table_spec(tmp_path: Path, emulator, unique: str) -> str:
    return _write_spec(
        tmp_path,
        {
            "region": "us-east-1",
            "endpoint_url": emulator.endpoint_url,
            "state_table": f"state-{unique}",
            "tables": [{"source": f"src-{unique}", "target": f"dst-{unique}", "protocol": "replay"}],
            "backfill": {"splits": SPLITS},
            "replication": {"phase_cache_seconds": 0},
        },
    )


@pytest.fixture
def terminal(monkeypatch):
    """The CLI's console as on a terminal (CliRunner's stdout is not one)."""
    monkeypatch.setattr(main, "console", Console(force_terminal=True, width=220))


def _last_count(text: str, unit: str) -> tuple[int, str]:
    """The last ``done/total unit`` a bar showed."""
    found = re.findall(rf"([\d,]+)/(~?[\d,?]+) {unit}", text)
    assert found, text
    done, total = found[-1]
    return int(done.replace(",", "")), total


def test_backfill_verify_and_drain_show_progress_with_the_final_numbers(ddb, emulator, unique, tmp_path, terminal):
    # GIVEN a replay table with items, initialised, and changes made after capture began (held)
    source = f"src-{unique}"
    create_table(ddb, source)
    for i in range(60):
        ddb.put_item(TableName=source, Item={"pk": {"S": f"k{i}"}, "v": {"N": str(i)}})
    spec = _write_spec_and_init(tmp_path, emulator, unique)
    ddb.delete_item(TableName=source, Key={"pk": {"S": "k0"}})
    ddb.put_item(TableName=source, Item={"pk": {"S": "k1"}, "v": {"N": "-1"}})
    ddb.put_item(TableName=source, Item={"pk": {"S": "new"}, "v": {"N": "7"}})
    items = len(scan_all(ddb, source))
    runner = CliRunner()
    # WHEN the backfill runs on local Spark
    result = runner.invoke(cli, ["backfill", "--spec", spec, "--engine", "local"])
    assert result.exit_code == 0, result.output
    # THEN its bar ends at every segment done and every item copied, against the approximate ItemCount
    text = _plain(result.output)
    assert _has_bar(text) and f"copy {source}" in text
    assert f"{SPLITS}/{SPLITS} segments" in text
    assert _last_count(text, "items")[0] == items
    assert _last_count(text, "items")[1].startswith("~")
    # WHEN the held changes are drained THEN the bar shows all three applied and none left
    result = runner.invoke(cli, ["replicate", "--spec", spec, "--drain"])
    assert result.exit_code == 0, result.output
    text = _plain(result.output)
    assert "catch-up" in text and _has_bar(text)
    assert _last_count(text, "changes") == (3, "3")
    assert "0 left" in text
    # WHEN verify runs THEN its bar ends at every segment and every item compared
    result = runner.invoke(cli, ["verify", "--spec", spec])
    assert result.exit_code == 0, result.output
    text = _plain(result.output)
    assert f"verify {source}" in text and f"{SPLITS}/{SPLITS} segments" in text
    assert _last_count(text, "items")[0] == items
    # AND the result is recorded as the richer JSON, kind "table"
    store = StateStore(ddb, f"state-{unique}")
    recorded = store.load_verify(source, TABLE)
    assert recorded is not None
    summary = json.loads(recorded[0])
    assert summary["ok"] is True and summary["source_items"] == summary["target_items"] == items
    assert summary["counts"] == {"missing": 0, "extra": 0, "different": 0, "tombstone": 0}
    assert summary["seconds"] > 0 and recorded[1] == 0


def _write_spec_and_init(tmp_path: Path, emulator, unique: str) -> str:
    spec = _table_spec(tmp_path, emulator, unique)
    result = CliRunner().invoke(cli, ["init", "--spec", spec])
    assert result.exit_code == 0, result.output
    return spec


@pytest.mark.parametrize("how", ["verbose", "not a terminal"])
def test_no_bar_with_verbose_or_without_a_terminal(ddb, emulator, unique, tmp_path, monkeypatch, how):
    # GIVEN a copied table, and the output either a terminal with -v, or not a terminal at all
    source = f"src-{unique}"
    create_table(ddb, source)
    for i in range(20):
        ddb.put_item(TableName=source, Item={"pk": {"S": f"k{i}"}})
    spec = _write_spec_and_init(tmp_path, emulator, unique)
    if how == "verbose":
        monkeypatch.setattr(main, "console", Console(force_terminal=True, width=220))
    flags = ["-v"] if how == "verbose" else []
    runner = CliRunner()
    # WHEN backfill, replicate --drain and verify run
    outputs = []
    for command in (["backfill", "--spec", spec], ["replicate", "--spec", spec, "--drain"], ["verify", "--spec", spec]):
        result = runner.invoke(cli, [*flags, *command])
        assert result.exit_code == 0, result.output
        outputs.append(_plain(result.output))
    # THEN each prints its plain lines only: no bar, no progress counts
    for text in outputs:
        assert not _has_bar(text)
        assert f"/{SPLITS} segments" not in text and "catch-up" not in text and "ETA" not in text
    assert "copied" in outputs[0] or "items" in outputs[0]
    assert "OK" in outputs[2]


def test_verify_with_json_shows_no_bar_and_records_the_sample_key(ddb, emulator, unique, tmp_path, terminal):
    # GIVEN a source item the target lacks, and verify asked for its JSON report on a terminal
    source = f"src-{unique}"
    create_table(ddb, source)
    create_table(ddb, f"dst-{unique}")
    ddb.put_item(TableName=source, Item={"pk": {"S": "only-in-source"}})
    spec = _write_spec_and_init(tmp_path, emulator, unique)
    report = tmp_path / "report.json"
    result = CliRunner().invoke(cli, ["verify", "--spec", spec, "--json", str(report)])
    # THEN it finds the difference and draws no bar
    assert result.exit_code == 1, result.output
    assert not _has_bar(_plain(result.output)) and "ETA" not in _plain(result.output)
    # AND the difference is recorded with its sample key
    recorded = StateStore(ddb, f"state-{unique}").load_verify(source)
    assert recorded is not None and recorded[1] == 1
    summary = json.loads(recorded[0])
    assert summary["counts"]["missing"] == 1
    assert [json.loads(k) for k in summary["samples"]["missing"]] == [{"pk": {"S": "only-in-source"}}]
    assert summary["ok"] is False and summary["source_items"] == 1 and summary["target_items"] == 0


def test_bucket_verify_shows_objects_and_records_kind_bucket(where, emulator, unique, tmp_path, terminal):
    # GIVEN an initialised bucket pair whose target lacks one object and has one the source has not
    s3 = make_client("s3", where)
    source, target = f"pics-{unique}", f"pics-v2-{unique}"
    s3.create_bucket(Bucket=source)
    state_table = f"state-{unique}"
    spec = _write_spec(
        tmp_path,
        {
            "region": "us-east-1",
            "endpoint_url": emulator.endpoint_url,
            "state_table": state_table,
            "buckets": [{"source": source, "target": target, "protocol": "insert-only"}],
            "s3": {"events_queue": f"events-{unique}", "splits": 2, "visibility_timeout": 5},
        },
    )
    runner = CliRunner()
    assert runner.invoke(cli, ["init", "--spec", spec]).exit_code == 0
    for i in range(12):
        s3.put_object(Bucket=source, Key=f"a/{i}.txt", Body=b"x" * i)
        if i != 5:
            s3.put_object(Bucket=target, Key=f"a/{i}.txt", Body=b"x" * i)
    s3.put_object(Bucket=target, Key="stray key.txt", Body=b"?")
    # WHEN verify runs on a terminal
    result = runner.invoke(cli, ["verify", "--spec", spec, "--skip-tags"])
    # THEN it finds both, and its bar ends at every source object compared, against the target's listing
    assert result.exit_code == 1, result.output
    text = _plain(result.output)
    assert f"verify {source}" in text and _has_bar(text)
    assert _last_count(text, "objects") == (12, "12")
    # AND the result is recorded under kind "bucket" with counts and the sample keys
    store = StateStore(make_client("dynamodb", where), state_table)
    assert store.load_verify(source, TABLE) is None
    recorded = store.load_verify(source, BUCKET)
    assert recorded is not None and recorded[1] == 2
    summary = json.loads(recorded[0])
    assert summary["counts"] == {"missing": 1, "extra": 1, "different": 0}
    assert summary["samples"] == {"missing": ["a/5.txt"], "extra": ["stray key.txt"], "different": []}
    assert summary["source_items"] == 12 and summary["target_items"] == 12 and summary["ok"] is False


def test_bucket_backfill_shows_the_objects_copied(where, emulator, unique, tmp_path, terminal):
    # GIVEN an initialised replay bucket with objects
    s3 = make_client("s3", where)
    source = f"docs-{unique}"
    s3.create_bucket(Bucket=source)
    for i in range(9):
        s3.put_object(Bucket=source, Key=f"d/{i}", Body=b"y" * (i + 1))
    spec = _write_spec(
        tmp_path,
        {
            "region": "us-east-1",
            "endpoint_url": emulator.endpoint_url,
            "state_table": f"state-{unique}",
            "buckets": [{"source": source, "target": f"docs-v2-{unique}", "protocol": "replay"}],
            "s3": {"events_queue": f"events-{unique}", "splits": 2, "visibility_timeout": 5},
        },
    )
    runner = CliRunner()
    assert runner.invoke(cli, ["init", "--spec", spec]).exit_code == 0
    # WHEN the backfill copies it on a terminal
    result = runner.invoke(cli, ["backfill", "--spec", spec, "--engine", "local"])
    # THEN its bar ends at every object copied
    assert result.exit_code == 0, result.output
    text = _plain(result.output)
    assert f"copy {source}" in text and _has_bar(text)
    assert _last_count(text, "objects") == (9, "9")
