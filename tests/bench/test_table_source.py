"""Line 1's source and load: the load's mix of writes, reproducible from its seed, on its schedule until
finished, and the keys it remembers — every key whose item the load changed is among them (what the
baselines' verify relies on to tell the load's effect from a copy's own damage)."""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

import pytest

from bench.table_source import (
    ITEM_BYTES,
    PlannedWrite,
    SourceLoad,
    bench_item,
    bench_key,
    fresh_source,
    plan_write,
)
from ferry.wire import item_size, items_equal, key_text
from ferry_dev.workload import HASH_KEY, RANGE_KEY


def _plans(n: int, items: int = 100) -> list[PlannedWrite]:
    rng = random.Random(3)
    out: list[PlannedWrite] = []
    created = 0
    for version in range(1, n + 1):
        planned = plan_write(rng, "t", items, version, created)
        created += planned.operation == "insert"
        out.append(planned)
    return out


def _index(item: dict[str, Any]) -> int:
    return int(item[HASH_KEY]["S"].removeprefix("item#"))


@pytest.mark.unit
def test_the_load_mixes_overwrites_updates_deletes_and_new_items_as_documented() -> None:
    plans = _plans(4000)
    share = Counter(p.operation for p in plans)
    assert share["overwrite"] == pytest.approx(1600, rel=0.1)
    assert share["update"] == pytest.approx(1200, rel=0.1)
    assert share["delete"] == pytest.approx(600, rel=0.15)
    assert share["insert"] == pytest.approx(600, rel=0.15)
    # the same seed plans the same writes (every approach of line 1 gets the same load)
    assert [p.request for p in _plans(50)] == [p.request for p in _plans(50)]


@pytest.mark.unit
def test_the_loads_writes_exercise_sets_binaries_and_38_digit_numbers_on_real_keys() -> None:
    plans = _plans(400, items=100)
    update = next(p for p in plans if p.operation == "update")
    values = update.request["ExpressionAttributeValues"]
    index = int(update.request["Key"]["pk"]["S"].removeprefix("item#"))
    assert update.method == "update_item" and update.request["Key"] == bench_key(index)
    assert len(values[":v"]["N"].replace(".", "")) == 38
    assert set(values[":t"]) == {"SS"} and set(values[":c"]) == {"BS"}
    overwrite = next(p for p in plans if p.operation == "overwrite")
    item = overwrite.request["Item"]
    assert item_size(item) > ITEM_BYTES and item["tags"]["SS"][-1].startswith("v")  # a new version of a seeded item
    # deletes and overwrites touch seeded keys; inserts only keys beyond them, each once
    seeded = {bench_item(i)["pk"]["S"] for i in range(100)}
    assert all(p.request["Key"]["pk"]["S"] in seeded for p in plans if p.operation == "delete")
    inserted = [p.request["Item"]["pk"]["S"] for p in plans if p.operation == "insert"]
    assert len(set(inserted)) == len(inserted) and not set(inserted) & seeded


@pytest.mark.unit
def test_each_planned_write_names_the_key_it_writes_and_whether_it_was_seeded() -> None:
    for planned in _plans(400, items=100):
        request = planned.request
        written = request.get("Key") or {HASH_KEY: request["Item"][HASH_KEY], RANGE_KEY: request["Item"][RANGE_KEY]}
        assert planned.key == written
        assert planned.seeded == (int(written[HASH_KEY]["S"].removeprefix("item#")) < 100)
        assert planned.seeded == (planned.operation != "insert")


@pytest.mark.functional
def test_the_load_writes_on_its_schedule_until_finished(ddb: Any, unique: str) -> None:
    table = f"load-{unique}"
    fresh_source(ddb, table, 20)
    load = SourceLoad(ddb, table, 20, rate=50.0)
    load.start()
    time.sleep(0.5)
    load.finish()
    writes = load.writes
    time.sleep(0.2)
    assert writes > 0 and load.errors == []
    assert load.writes == writes  # finished: nothing is written afterwards
    assert load.stopped_at >= load.started_at
    assert load.summary()["load_writes"] == writes
    load.finish()  # idempotent


@pytest.mark.functional
def test_every_item_the_load_changed_has_its_key_among_the_touched(ddb: Any, unique: str) -> None:
    # GIVEN a fresh source of 60 bench items
    table = f"touched-{unique}"
    sizes = fresh_source(ddb, table, 60)
    assert sizes == [item_size(bench_item(i)) for i in range(60)]
    # WHEN the load writes for a while
    load = SourceLoad(ddb, table, 60, rate=100.0)
    load.start()
    time.sleep(0.6)
    load.finish()
    # THEN every item that is no longer its seeded self, every seeded item gone and every new item is touched
    items = {key_text(bench_key(_index(i))): i for i in ddb.scan(TableName=table)["Items"]}
    changed = {k for k, item in items.items() if not items_equal(item, bench_item(_index(item)))}
    gone = {key_text(bench_key(i)) for i in range(60)} - items.keys()
    assert changed | gone, "the load changed nothing: the check below would prove nothing"
    assert changed | gone <= load.touched
    # AND the untouched seeded items are exactly as seeded (the count the baselines' rows give)
    untouched = [i for i in range(60) if key_text(bench_key(i)) not in load.touched]
    assert len(untouched) == 60 - load.touched_seeded
    assert all(items_equal(items[key_text(bench_key(i))], bench_item(i)) for i in untouched)
