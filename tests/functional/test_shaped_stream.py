"""The stream handler applying a shape (docs/adr/0010) on the emulator: real stream records of a single-table
design through the real ``TableReplicator`` into two real target tables.

GIVEN a source table (pk, sk) split by ``type``/``sk`` into users and orders, with a rename and a drop
WHEN users, orders and an unrouted item are written, moved between routes and deleted
THEN each target holds exactly the shaped items routed to it; a move deletes (or, while the phase keeps
tombstones, tombstones) the old placement; an unrouted item fails its record (``error``, nothing written) or
is skipped (``skip``). The property test plays random histories through the handler and compares the targets
with the shaped final source (tests/unit/test_shape.py's model of the expected state).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ferry.aws import stream_arn_of
from ferry.backlog import stream_records
from ferry.clients import AwsTarget
from ferry.errors import PoisonRecordError
from ferry.shape import Route, Shape, Shaper, Transform, When
from ferry.spec import Spec, parse_spec
from ferry.tables.protocol import PHASE_BACKFILL, PHASE_LIVE, is_tombstone
from ferry.tables.replicate import TableReplicator
from ferry.tables.state import PhaseCache, StateStore, create_state_table
from ferry.wire import Item, items_equal, key_of, key_text
from tests.conftest import create_table, scan_all

pytestmark = pytest.mark.functional

KEYS = ("pk", "sk")
SPLIT = Shape(
    (Route("users", When("type", equals="user")), Route("orders", When("sk", begins_with="ORDER#"))),
    Transform(rename=(("old_name", "new_name"),), drop=("legacy_flag",)),
)
_runs = itertools.count()


class Split:
    def __init__(self, ddb: Any, streams: Any, where: AwsTarget, unique: str, shape: Shape) -> None:
        self.ddb, self.streams = ddb, streams
        n = next(_runs)
        self.source, self.state = f"app-{unique}-{n}", f"state-{unique}-{n}"
        self.tables = {route.table: f"{route.table}-{unique}-{n}" for route in shape.routes}
        create_table(self.ddb, self.source, range_key=("sk", "S"), stream=True)
        for table in self.tables.values():
            create_table(self.ddb, table, range_key=("sk", "S"))
        create_state_table(self.ddb, self.state)
        self.shape = dataclasses.replace(
            shape, routes=tuple(dataclasses.replace(r, table=self.tables[r.table]) for r in shape.routes)
        )
        plain = parse_spec(
            {
                "region": where.region,
                "endpoint_url": where.endpoint_url,
                "state_table": self.state,
                "tables": [{"source": self.source, "target": self.shape.routes[0].table}],
                "replication": {"phase_cache_seconds": 0},
            }
        )
        # parse_spec refuses a shape until every path applies it: the handler's own part is built here
        mapping = dataclasses.replace(plain.tables[0], shape=self.shape)
        self.spec: Spec = dataclasses.replace(plain, tables=(mapping,))
        self.store = StateStore(self.ddb, self.state)
        self.store.set_phase(self.source, PHASE_LIVE)
        self.replicator = TableReplicator(self.spec, self.ddb, PhaseCache(self.store, 0))
        self.applied = 0

    def put(self, pk: str, sk: str, **attributes: str) -> None:
        self.ddb.put_item(TableName=self.source, Item=_item(pk, sk, **attributes))

    def delete(self, pk: str, sk: str) -> None:
        self.ddb.delete_item(TableName=self.source, Key={"pk": {"S": pk}, "sk": {"S": sk}})

    def pump(self) -> list[Any]:
        """Every stream record not applied yet, through the handler; the outcomes (an exception for a failed one)."""
        records = stream_records(self.streams, stream_arn_of(self.ddb, self.source))[self.applied :]
        outcomes: list[Any] = []
        for record in records:
            try:
                outcomes.append(self.replicator.apply_stream_record(record))
            except PoisonRecordError as exc:
                outcomes.append(exc)
            self.applied += 1
        return outcomes

    def target(self, route: str) -> dict[str, Item]:
        return {key_text(key_of(i, KEYS)): i for i in scan_all(self.ddb, self.tables[route])}


@pytest.fixture
def split(ddb: Any, streams: Any, where: AwsTarget, unique: str) -> Iterator[Split]:
    yield Split(ddb, streams, where, unique, SPLIT)


def _item(pk: str, sk: str, **attributes: str) -> Item:
    return {"pk": {"S": pk}, "sk": {"S": sk}, **{k: {"S": v} for k, v in attributes.items()}}


def test_items_are_routed_reshaped_moved_and_deleted(split: Split) -> None:
    split.put("u1", "PROFILE", type="user", old_name="Ann", legacy_flag="x")
    split.put("u1", "ORDER#1", type="order", total="5")
    split.put("u2", "PROFILE", type="user", old_name="Bob")
    assert all(not isinstance(o, Exception) for o in split.pump())
    assert split.target("users") == {
        key_text(_item("u1", "PROFILE")): _item("u1", "PROFILE", type="user", new_name="Ann"),
        key_text(_item("u2", "PROFILE")): _item("u2", "PROFILE", type="user", new_name="Bob"),
    }
    assert list(split.target("orders")) == [key_text(_item("u1", "ORDER#1"))]
    # a MODIFY that changes the routing attribute moves the item; a REMOVE deletes where it was placed
    split.put("u1", "ORDER#1", type="user", total="5")
    split.delete("u2", "PROFILE")
    split.pump()
    assert split.target("orders") == {}
    assert set(split.target("users")) == {key_text(_item("u1", "PROFILE")), key_text(_item("u1", "ORDER#1"))}


def test_an_unrouted_item_fails_its_record_and_nothing_is_written(split: Split) -> None:
    split.put("u1", "PROFILE", type="user")
    split.pump()
    split.put("u1", "PROFILE", type="cart")  # now matches no route
    (outcome,) = split.pump()
    assert isinstance(outcome, PoisonRecordError) and "matches no route" in str(outcome)
    assert "targets" in outcome.field
    assert list(split.target("users")) == [key_text(_item("u1", "PROFILE"))]  # the old placement untouched


def test_with_unrouted_skip_the_old_placement_goes_and_nothing_fails(
    ddb: Any, streams: Any, where: AwsTarget, unique: str
) -> None:
    split = Split(ddb, streams, where, unique, dataclasses.replace(SPLIT, unrouted="skip"))
    split.put("u1", "PROFILE", type="user")
    split.put("u1", "PROFILE", type="cart")
    split.put("u1", "CART#1", type="cart")
    assert all(not isinstance(o, Exception) for o in split.pump())
    assert split.target("users") == {} and split.target("orders") == {}


def test_while_the_phase_keeps_tombstones_a_move_leaves_one_on_the_old_route(split: Split) -> None:
    split.store.set_phase(split.source, PHASE_BACKFILL)
    split.put("u1", "ORDER#1", type="order")
    split.put("u1", "ORDER#1", type="user")
    split.pump()
    (left,) = split.target("orders").values()
    assert is_tombstone(left)
    assert not is_tombstone(next(iter(split.target("users").values())))


_values = st.fixed_dictionaries({"type": st.sampled_from(("user", "order", "cart")), "old_name": st.just("n")})
_change = st.tuples(
    st.sampled_from(("u1", "u2")), st.sampled_from(("PROFILE", "ORDER#1")), st.one_of(st.none(), _values)
)


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=st.lists(_change, min_size=1, max_size=8), pumps=st.lists(st.booleans(), max_size=8))
def test_any_history_through_the_handler_ends_as_the_shaped_source(
    ddb: Any, streams: Any, where: AwsTarget, unique: str, history: list[Any], pumps: list[bool]
) -> None:
    split = Split(ddb, streams, where, unique, dataclasses.replace(SPLIT, unrouted="skip"))
    source: dict[str, Item] = {}
    for step, (pk, sk, values) in enumerate(history):
        key = key_text(_item(pk, sk))
        if values is None:
            split.delete(pk, sk)
            source.pop(key, None)
        else:
            split.put(pk, sk, **values)
            source[key] = _item(pk, sk, **values)
        if step < len(pumps) and pumps[step]:
            split.pump()
    split.pump()
    shaper = Shaper(split.shape)
    expected: dict[str, dict[str, Item]] = {table: {} for table in split.tables.values()}
    for one in source.values():
        placed = shaper.place(one)
        if placed.table is not None and placed.item is not None:
            expected[placed.table][key_text(key_of(placed.item, KEYS))] = placed.item
    for route, table in split.tables.items():
        got = split.target(route)
        assert set(got) == set(expected[table]), route
        assert all(items_equal(got[k], expected[table][k]) for k in got), route


def test_negative_control_a_handler_without_the_shape_leaves_the_live_changes_unshaped(split: Split) -> None:
    """As if the transform ran in the backfill only: the live path copies raw items to one table."""
    plain = dataclasses.replace(split.spec, tables=(dataclasses.replace(split.spec.tables[0], shape=None),))
    split.replicator = TableReplicator(plain, split.ddb, PhaseCache(split.store, 0))
    split.put("u1", "PROFILE", type="user", old_name="Ann", legacy_flag="x")
    split.put("u1", "ORDER#1", type="order")
    split.pump()
    users = split.target("users")
    assert users[key_text(_item("u1", "PROFILE"))] == _item(
        "u1", "PROFILE", type="user", old_name="Ann", legacy_flag="x"
    )
    assert key_text(_item("u1", "ORDER#1")) in users and split.target("orders") == {}
