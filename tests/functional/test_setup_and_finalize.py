"""init validates everything before writing anything and records where capture began; finalize ends
the insert-only backfill phase and removes tombstones conditionally, or marks a released replay table
live."""

from __future__ import annotations

import time

import pytest

from ferry.errors import SetupError
from ferry.spec import parse_spec
from ferry.tables.backfill import copy_segment, plan_backfill
from ferry.tables.finalize import finalize_table, start_backfill_phase
from ferry.tables.protocol import (
    PHASE_BACKFILL,
    PHASE_HOLD,
    PHASE_LIVE,
    PHASE_REPLAY,
    TOMBSTONE_ATTRIBUTE,
    tombstone_for,
)
from ferry.tables.schema import describe_shape
from ferry.tables.setup import init_tables
from ferry.tables.state import COPY_DONE, CopyRun, StateStore
from tests.conftest import create_table, scan_all

pytestmark = pytest.mark.functional


def _spec(emulator, tables, state="ferry-state", protocol="insert-only"):
    return parse_spec(
        {
            "region": "us-east-1",
            "endpoint_url": emulator.endpoint_url,
            "state_table": state,
            "tables": [{**t, "protocol": protocol} for t in tables],
            "backfill": {"splits": 2},
            "replication": {"phase_cache_seconds": 0},
        }
    )


def _table_names(ddb) -> set[str]:
    return {name for page in ddb.get_paginator("list_tables").paginate() for name in page["TableNames"]}


@pytest.mark.parametrize(("protocol", "phase"), [("replay", PHASE_HOLD), ("insert-only", PHASE_BACKFILL)])
def test_init_creates_target_and_state_table_and_enables_the_stream(ddb, streams, emulator, unique, protocol, phase):
    # GIVEN a source with a composite key, a GSI and no stream
    source = f"src-{unique}"
    ddb.create_table(
        TableName=source,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "B"},
            {"AttributeName": "gk", "AttributeType": "N"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-gk",
                "KeySchema": [{"AttributeName": "gk", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    spec = _spec(emulator, [{"source": source, "target": f"dst-{unique}"}], state=f"state-{unique}", protocol=protocol)
    # WHEN init runs
    before = time.time()
    actions = init_tables(spec, ddb)
    # THEN the stream is on, the target has the same keys and index, the phase is the protocol's
    assert any("enabled stream" in a for a in actions)
    src, dst = describe_shape(ddb, source), describe_shape(ddb, f"dst-{unique}")
    assert src.stream_view_type == "NEW_AND_OLD_IMAGES"
    assert dst.key_types == (("pk", "S"), ("sk", "B"))
    assert [i["IndexName"] for i in dst.raw["GlobalSecondaryIndexes"]] == ["by-gk"]
    store = StateStore(ddb, f"state-{unique}")
    assert store.get_phase(source) == phase
    # AND capture is recorded: when it began, on which stream, with the shards open then (the stream is ENABLED)
    capture = store.load_capture(source)
    assert capture is not None and before <= capture.captured_at <= time.time()
    assert capture.where == src.stream_arn
    shards = streams.describe_stream(StreamArn=src.stream_arn)["StreamDescription"]["Shards"]
    assert capture.shards == tuple(sorted(s["ShardId"] for s in shards)) and capture.shards
    # AND a second init has nothing left to do: capture began at the first
    assert init_tables(spec, ddb) == []
    assert store.load_capture(source) == capture


@pytest.mark.parametrize(
    "problem",
    ["missing source", "different key schema", "second table missing"],
)
def test_init_refuses_before_any_write(ddb, emulator, unique, problem):
    # GIVEN a spec with one good table and one problem
    good_source = f"good-{unique}"
    create_table(ddb, good_source)
    tables = [{"source": good_source, "target": f"good-dst-{unique}"}]
    if problem == "missing source":
        tables.append({"source": f"nope-{unique}", "target": f"nope-dst-{unique}"})
    elif problem == "different key schema":
        create_table(ddb, f"bad-src-{unique}")
        create_table(ddb, f"bad-dst-{unique}", hash_key=("id", "N"))
        tables.append({"source": f"bad-src-{unique}", "target": f"bad-dst-{unique}"})
    else:
        tables.append({"source": f"gone-{unique}", "target": f"gone-dst-{unique}"})
    state = f"state-{unique}"
    before = _table_names(ddb)
    # WHEN init runs THEN it fails naming the table and the field
    with pytest.raises(SetupError, match=r"tables\[1\]"):
        init_tables(_spec(emulator, tables, state=state), ddb)
    # AND nothing was written: no table created, the good source's stream untouched
    assert _table_names(ddb) == before
    assert describe_shape(ddb, good_source).stream_arn is None


def test_finalize_removes_tombstones_but_keeps_live_writes_and_switches_phase(ddb, emulator, unique):
    # GIVEN a finished backfill and a target with tombstones
    source, target, state = f"src-{unique}", f"dst-{unique}", f"state-{unique}"
    create_table(ddb, source)
    ddb.put_item(TableName=source, Item={"pk": {"S": "kept"}, "v": {"N": "1"}})
    spec = _spec(emulator, [{"source": source, "target": target}], state=state)
    init_tables(spec, ddb)
    plan = plan_backfill(spec, spec.tables[0], ddb)
    for s in range(plan.total_segments):
        copy_segment(plan, s)
    for i in range(30):
        ddb.put_item(TableName=target, Item=tombstone_for({"pk": {"S": f"gone-{i}"}}))
    # WHEN finalize runs
    result = finalize_table(spec, spec.tables[0], ddb, sleep=lambda s: None)
    # THEN all tombstones are gone, the copied item stays, handlers now delete
    assert result.tombstones_removed == 30
    remaining = scan_all(ddb, target)
    assert [i["pk"]["S"] for i in remaining] == ["kept"]
    assert not any(TOMBSTONE_ATTRIBUTE in i for i in remaining)
    assert StateStore(ddb, state).get_phase(source) == PHASE_LIVE


def test_finalize_refuses_while_the_backfill_is_incomplete(ddb, emulator, unique):
    source, state = f"src-{unique}", f"state-{unique}"
    create_table(ddb, source)
    spec = _spec(emulator, [{"source": source, "target": f"dst-{unique}"}], state=state)
    init_tables(spec, ddb)
    with pytest.raises(SetupError, match="backfill is not complete"):
        finalize_table(spec, spec.tables[0], ddb, sleep=lambda s: None)
    assert StateStore(ddb, state).get_phase(source) == PHASE_BACKFILL


def test_a_new_backfill_after_finalize_returns_to_the_backfill_phase_and_waits(ddb, emulator, unique):
    source, state = f"src-{unique}", f"state-{unique}"
    create_table(ddb, source)
    spec = _spec(emulator, [{"source": source, "target": f"dst-{unique}"}], state=state)
    init_tables(spec, ddb)
    store = StateStore(ddb, state)
    store.set_phase(source, PHASE_LIVE)
    waits: list[float] = []
    start_backfill_phase(spec, spec.tables[0], store, sleep=waits.append)
    assert store.get_phase(source) == PHASE_BACKFILL
    assert waits and waits[0] > 2 * spec.replication.phase_cache_seconds


def test_finalize_marks_a_released_replay_table_live_and_refuses_while_it_is_held(ddb, emulator, unique):
    # GIVEN a replay table whose changes are held (init) and a tombstone-looking user item in its target
    source, target, state = f"src-{unique}", f"dst-{unique}", f"state-{unique}"
    create_table(ddb, source)
    spec = _spec(emulator, [{"source": source, "target": target}], state=state, protocol="replay")
    init_tables(spec, ddb)
    store = StateStore(ddb, state)
    store.save_copy(source, CopyRun(protocol="replay", status=COPY_DONE))
    # WHEN finalize runs before the release THEN it refuses: the held changes have not been replayed
    with pytest.raises(SetupError, match="still held"):
        finalize_table(spec, spec.tables[0], ddb, sleep=lambda s: None)
    assert store.get_phase(source) == PHASE_HOLD
    # WHEN it runs after the release THEN the table is live at once, with no wait and nothing swept
    store.release(source, PHASE_REPLAY, time.time())
    ddb.put_item(TableName=target, Item=tombstone_for({"pk": {"S": "a user's item"}}))
    result = finalize_table(spec, spec.tables[0], ddb, sleep=lambda s: pytest.fail("no wait under replay"))
    assert (result.tombstones_removed, result.waited_seconds) == (0, 0.0)
    assert store.get_phase(source) == PHASE_LIVE
    assert len(scan_all(ddb, target)) == 1  # a replay never writes tombstones, so it never sweeps any
