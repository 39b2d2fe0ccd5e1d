"""`ferry plan` against the emulator: the numbers from DescribeTable and a bounded listing, --sample,
--json, a bucket with multipart objects, an unknown price name (exit 2), and no write at all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from ferry.clients import make_client
from ferry.wire import item_size
from ferry_cli.main import cli
from tests.conftest import create_table

pytestmark = pytest.mark.functional

ITEMS = 60
ITEM_BYTES = 2000  # two write units each


def _item(i: int) -> dict[str, Any]:
    item: dict[str, Any] = {"pk": {"S": f"k{i:04d}"}, "pad": {"S": ""}}
    item["pad"] = {"S": "x" * (ITEM_BYTES - item_size(item))}
    return item


def _everything(ddb: Any, s3: Any) -> tuple[set[str], dict[str, list[str]]]:
    tables = {n for page in ddb.get_paginator("list_tables").paginate() for n in page["TableNames"]}
    buckets: dict[str, list[str]] = {b["Name"]: [] for b in s3.list_buckets()["Buckets"]}
    for name in buckets:
        buckets[name] = sorted(f"{o['Key']}:{o['ETag']}" for o in s3.list_objects_v2(Bucket=name).get("Contents", []))
    return tables, buckets


@pytest.fixture
def source(ddb: Any, unique: str) -> str:
    name = f"plan-src-{unique}"
    create_table(ddb, name, provisioned=(40, 20), stream=True)
    for i in range(ITEMS):
        ddb.put_item(TableName=name, Item=_item(i))
    return name


@pytest.fixture
def s3(where: Any) -> Any:
    return make_client("s3", where)


@pytest.fixture
def bucket(s3: Any, unique: str) -> str:
    name = f"plan-bkt-{unique}"
    s3.create_bucket(Bucket=name)
    for i in range(12):
        s3.put_object(Bucket=name, Key=f"small/{i:02d}", Body=b"s" * 100)
    for key in ("big/a", "big/b"):
        upload = s3.create_multipart_upload(Bucket=name, Key=key)["UploadId"]
        parts = []
        for number in (1, 2, 3):
            body = b"p" * (5 * 1024**2 if number < 3 else 10)
            etag = s3.upload_part(Bucket=name, Key=key, UploadId=upload, PartNumber=number, Body=body)["ETag"]
            parts.append({"ETag": etag, "PartNumber": number})
        s3.complete_multipart_upload(Bucket=name, Key=key, UploadId=upload, MultipartUpload={"Parts": parts})
    return name


def _spec(tmp_path: Path, emulator: Any, unique: str, **extra: Any) -> str:
    body = {
        "region": "us-east-1",
        "endpoint_url": emulator.endpoint_url,
        "state_table": f"plan-state-{unique}",
        "backfill": {"read_percent": 0.5, "write_percent": 0.5},
        **extra,
    }
    path = tmp_path / "ferry.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return str(path)


def _plan(spec: str, *args: str) -> Any:
    return CliRunner().invoke(cli, ["plan", "--spec", spec, *args], catch_exceptions=False)


def test_plan_prices_a_table_from_describe_table_and_a_sample_and_writes_nothing(
    ddb: Any, s3: Any, emulator: Any, unique: str, tmp_path: Path, source: str, bucket: str
) -> None:
    spec = _spec(
        tmp_path,
        emulator,
        unique,
        tables=[{"source": source, "target": f"plan-dst-{unique}"}],
        buckets=[{"source": bucket, "target": f"plan-bdst-{unique}"}],
    )
    before = _everything(ddb, s3)
    out = tmp_path / "plan.json"
    result = _plan(spec, "--json", str(out), "--sample", "25", "--change-rate", "1")
    assert result.exit_code == 0, result.output
    assert "every six hours" in result.output and "recommended" in result.output
    assert _everything(ddb, s3) == before  # no table, bucket or object made; the state table not created

    plan = json.loads(out.read_text(encoding="utf-8"))
    table = plan["tables"][0]
    assert table["source_billing"] == "PROVISIONED" and table["target_exists"] is False
    assert table["stream"] == "NEW_AND_OLD_IMAGES"
    assert table["average_bytes"] == pytest.approx(ITEM_BYTES)  # measured by the Scan of 25 items
    assert "a Scan of 25 items" in table["average_from"]
    assert (table["read_budget_rcu_per_s"], table["write_budget_wcu_per_s"]) == (20.0, 10.0)
    paths = {p["path"]: p for p in table["paths"]}
    # DescribeTable's ItemCount: the emulators answer it live (AWS refreshes it about every six hours)
    assert table["items"] == ITEMS
    scan = paths["replay scan+batch"]
    assert scan["write_units"] == ITEMS * 2
    assert scan["seconds"] == pytest.approx(ITEMS * 2 / 10.0)  # the write side: 120 WCU at 10 WCU/s
    assert scan["read_units"] == pytest.approx(table["size_bytes"] / 4096 / 2)
    assert scan["hold"] == "fits" and scan["lambda_invocations"] == 1
    assert paths["insert-only"]["seconds"] == pytest.approx(scan["seconds"])
    assert paths["replay export+import"]["duration"] == "not estimated"
    assert not paths["replay export+import"]["available"]  # PITR is off
    assert table["recommended"]["path"] == "replay scan+batch"

    listed = plan["buckets"][0]
    assert (listed["objects"], listed["complete"], listed["lower_bound"]) == (14, True, False)
    assert listed["listed_multipart"] == 2 and listed["listed_parts"] == 6
    replay = next(p for p in listed["paths"] if p["path"] == "replay")
    # 2 listings + 12 CopyObject + per multipart key (Create, 3 UploadPartCopy, Complete); HEAD, tags, 3 part HEADs
    assert (replay["s3_put"], replay["s3_get"]) == (2 + 12 + 2 * 5, 2 * 5)


def test_a_cut_listing_takes_cloudwatch_s_figures_or_says_at_least(
    s3: Any, emulator: Any, emulator_kind: str, unique: str, tmp_path: Path, bucket: str
) -> None:
    spec = _spec(tmp_path, emulator, unique, buckets=[{"source": bucket, "target": f"plan-bdst-{unique}"}])
    out = tmp_path / "plan.json"
    result = _plan(spec, "--max-keys", "5", "--json", str(out))
    assert result.exit_code == 0, result.output
    listed = json.loads(out.read_text(encoding="utf-8"))["buckets"][0]
    assert (listed["listed"], listed["complete"]) == (5, False)
    if emulator_kind == "moto":  # moto serves CloudWatch's S3 storage metrics from its buckets
        assert (listed["objects"], listed["lower_bound"]) == (14, False)
        assert listed["bytes"] > 0  # moto's BucketSizeBytes, whatever it counts
        assert "CloudWatch" in listed["counted_by"] and "14 objects" in result.output
    else:  # ministack has none: the count is a lower bound
        assert (listed["objects"], listed["lower_bound"]) == (5, True)
        assert "≥ 5 objects" in result.output


def test_an_unknown_price_name_exits_2_naming_it_before_reading_anything(
    emulator: Any, unique: str, tmp_path: Path, source: str
) -> None:
    spec = _spec(
        tmp_path,
        emulator,
        unique,
        tables=[{"source": source, "target": f"plan-dst-{unique}"}],
        prices={"glue_dpu_hours": 0.5},
    )
    result = _plan(spec)
    assert result.exit_code == 2
    assert "prices.glue_dpu_hours" in result.output


def test_a_price_override_changes_the_cost(emulator: Any, unique: str, tmp_path: Path, source: str) -> None:
    costs = []
    for price in (0.625, 6.25):
        spec = _spec(
            tmp_path,
            emulator,
            unique,
            tables=[{"source": source, "target": f"plan-dst-{unique}", "protocol": "insert-only"}],
            prices={"ddb_on_demand_write_per_million": price},
        )
        out = tmp_path / f"plan-{price}.json"
        assert _plan(spec, "--json", str(out)).exit_code == 0
        table = json.loads(out.read_text(encoding="utf-8"))["tables"][0]
        insert = next(p for p in table["paths"] if p["path"] == "insert-only")
        assert table["recommended"]["path"] == "insert-only"
        costs.append((insert["cost_on_demand"], insert["write_units"]))
    (cheap, units), (dear, _) = costs
    assert dear - cheap == pytest.approx(units / 1e6 * (6.25 - 0.625))


def test_a_missing_source_table_exits_2(emulator: Any, unique: str, tmp_path: Path) -> None:
    spec = _spec(tmp_path, emulator, unique, tables=[{"source": f"nope-{unique}", "target": f"dst-{unique}"}])
    result = _plan(spec)
    assert result.exit_code == 2 and f"nope-{unique}" in result.output
