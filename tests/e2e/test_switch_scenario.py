"""The whole switch through the CLI, on each emulator (docs/switching.md, docs/adr/0009): a migration, a rolling
switch with writes on both sides and one conflict, the cutover, writes on the new side only, then a rollback
that names the conflict, its resolution, and the old side equal to the new one, item by item and object by
object.

GIVEN a table and a bucket migrated with ferry (init, backfill on local Spark, the replay released and
drained, finalize, verify)
WHEN `ferry reverse` runs, both sides are written (each its own keys, and one key on both sides before either
direction runs), both directions drain, `ferry cutover` (forced: the conflict makes it NO-GO) and
`--confirm-switched` run, the new side alone is written and reverse drains, then `ferry rollback`
THEN rollback refuses naming exactly the conflicting key; `ferry verify --reverse --repair --from new` resolves
it; rollback then passes, `--confirm-switched` records it, and the old side holds what the new side holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from ferry.clients import AwsTarget, make_client
from ferry.tables.state import BUCKET, TABLE
from ferry.twoway import STEP_ROLLED_BACK, STEP_SWITCHED, TwoWayStore
from ferry_cli.main import cli
from tests.conftest import create_table, scan_all

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("spark")]


@dataclass
class Sides:
    ddb: Any
    s3: Any
    spec: str
    old: str
    new: str
    old_bucket: str
    new_bucket: str
    state: str

    def run(self, *args: str, code: int = 0) -> str:
        result = CliRunner().invoke(cli, [args[0], "--spec", self.spec, *args[1:]])
        text = " ".join(result.output.split())
        assert result.exit_code == code, (args, result.exit_code, result.output, result.exception)
        return text

    def put(self, table: str, pk: str, value: str) -> None:
        self.ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "v": {"S": value}, "n": {"N": str(len(value))}})

    def delete(self, table: str, pk: str) -> None:
        self.ddb.delete_item(TableName=table, Key={"pk": {"S": pk}})

    def items(self, table: str) -> dict[str, dict[str, Any]]:
        return {i["pk"]["S"]: i for i in scan_all(self.ddb, table)}

    def put_object(self, bucket: str, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/plain", Metadata={"by": bucket})

    def objects(self, bucket: str) -> dict[str, tuple[bytes, str, dict[str, str]]]:
        keys = [
            o["Key"]
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])
        ]
        out = {}
        for key in keys:
            got = self.s3.get_object(Bucket=bucket, Key=key)
            out[key] = (got["Body"].read(), got.get("ContentType", ""), got.get("Metadata", {}))
        return out

    def drain_both(self) -> None:
        """Forward, reverse, then each once more: the second round carries the echoes, which write nothing."""
        for _ in range(2):
            self.run("replicate", "--drain")
            self.run("replicate", "--reverse", "--drain")


@pytest.fixture
def sides(where: AwsTarget, ddb: Any, emulator: Any, unique: str, tmp_path: Path) -> Sides:
    old, new, old_bucket, new_bucket = f"old-{unique}", f"new-{unique}", f"media-{unique}", f"media-v2-{unique}"
    s3 = make_client("s3", where)
    create_table(ddb, old)
    s3.create_bucket(Bucket=old_bucket)
    body = {
        "region": "us-east-1",
        "endpoint_url": emulator.endpoint_url,
        "state_table": f"state-{unique}",
        "tables": [{"source": old, "target": new}],
        "buckets": [{"source": old_bucket, "target": new_bucket}],
        "backfill": {"splits": 2},
        "replication": {"phase_cache_seconds": 0, "on_failure_queue": f"failures-{unique}"},
        "s3": {"events_queue": f"events-{unique}", "splits": 2, "visibility_timeout": 5},
    }
    path = tmp_path / "ferry.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return Sides(ddb, s3, str(path), old, new, old_bucket, new_bucket, f"state-{unique}")


def test_migrate_switch_cut_over_and_roll_back_with_one_conflict(sides: Sides) -> None:
    s = sides
    # GIVEN a migrated table and bucket: history copied by the backfill, a change made during the copy replayed
    for pk in ("a", "b", "c", "conflict"):
        s.put(s.old, pk, "0")
    for key in ("a.txt", "b b+.txt"):
        s.put_object(s.old_bucket, key, b"0")
    s.run("init")
    s.put(s.old, "during", "1")
    s.put_object(s.old_bucket, "during.txt", b"1")
    s.run("backfill", "--engine", "local")
    s.run("replicate", "--drain")
    s.run("finalize")
    s.run("replicate", "--drain")
    s.run("verify")
    # WHEN ferry reverse runs and the service rolls over: instances on either side write their own keys, and one
    # key is changed on both sides before either direction runs
    s.run("reverse")
    s.put(s.old, "a", "old 1")
    s.put(s.old, "from-old", "1")
    s.delete(s.old, "b")
    s.put(s.new, "c", "new 1")
    s.put(s.new, "from-new", "1")
    s.put(s.old, "conflict", "A")
    s.put(s.new, "conflict", "B")
    s.put_object(s.old_bucket, "a.txt", b"old 1")
    s.put_object(s.new_bucket, "from new.txt", b"new 1")
    s.s3.delete_object(Bucket=s.new_bucket, Key="b b+.txt")
    s.drain_both()
    # THEN the conflict is NO-GO; forced, the cutover goes on and turns forward replication off
    refused = s.run("cutover", code=1)
    verdict = refused.split("NO-GO: ", 1)[1].split(". Fix what it names", 1)[0]
    assert "1 keys changed on both sides" in verdict, refused
    assert verdict.count(f"{s.old}:") == 1 and s.old_bucket not in verdict, verdict  # the conflict is the only reason
    s.run("cutover", "--force")
    s.run("cutover", "--force", "--confirm-switched")
    switch = TwoWayStore(s.ddb, s.state)
    assert STEP_SWITCHED in switch.steps(TABLE, s.old, s.new)
    # WHEN the service writes the new side only and reverse replication drains
    s.put(s.new, "after", "1")
    s.put(s.new, "a", "new 2")
    s.delete(s.new, "from-old")
    s.put_object(s.new_bucket, "after.txt", b"after")
    s.put_object(s.new_bucket, "a.txt", b"new 2")
    s.run("replicate", "--reverse", "--drain")
    # THEN rollback refuses, naming exactly the conflicting key
    refused = s.run("rollback", code=1)
    assert refused.count("open conflict") == 1 and 'key {"pk":{"S":"conflict"}}' in refused, refused
    differing = set(re.findall(r'\{"pk":\{"S":"([^"]+)"\}\}', refused))
    assert differing == {"conflict"}, refused
    assert (s.items(s.old)["conflict"]["v"]["S"], s.items(s.new)["conflict"]["v"]["S"]) == ("A", "B")  # both kept
    # WHEN the new side's state is made to win THEN rollback passes and, confirmed, records it
    assert "1 conflicts resolved" in s.run("verify", "--reverse", "--repair", "--from", "new")
    s.run("rollback")
    s.run("rollback", "--confirm-switched")
    for kind, a, b in ((TABLE, s.old, s.new), (BUCKET, s.old_bucket, s.new_bucket)):
        assert STEP_ROLLED_BACK in switch.steps(kind, a, b)
        assert switch.conflicts(kind, a, b) == []
    # AND the old side holds what the new side holds, item by item and object by object
    old_items, new_items = s.items(s.old), s.items(s.new)
    assert old_items == new_items
    assert {pk: i["v"]["S"] for pk, i in old_items.items()} == {
        "a": "new 2",
        "c": "new 1",
        "conflict": "B",
        "during": "1",
        "from-new": "1",
        "after": "1",
    }
    old_objects, new_objects = s.objects(s.old_bucket), s.objects(s.new_bucket)
    assert old_objects == new_objects
    assert {k: v[0] for k, v in old_objects.items()} == {
        "a.txt": b"new 2",
        "during.txt": b"1",
        "from new.txt": b"new 1",
        "after.txt": b"after",
    }
