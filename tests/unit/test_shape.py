"""The shape core (ferry.shape, docs/adr/0010): transform, routing, the writes of one change, the key rule.

The property test plays random histories of a small key space through a model of both protocols — the
history copied once from a snapshot (``place``) while every change also goes through ``plan_change`` — and
checks the targets against the shape applied to the source's final state, item by item, including items a
target holds that no source item maps to. Negative control: the same history with the shape applied only to
the snapshot copy (the live path copying the raw item, as a transform done only in the backfill would) fails.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ferry.shape import (
    Delete,
    Put,
    Route,
    Shape,
    ShapeError,
    Shaper,
    Transform,
    When,
    check_sample,
)
from ferry.wire import Item, items_equal, key_of, key_text

KEYS = ("pk", "sk")
USERS = Route("app-users", When("type", equals="user"))
ORDERS = Route("app-orders", When("sk", begins_with="ORDER#"))
SPLIT = Shape((USERS, ORDERS), Transform(rename=(("old_name", "new_name"),), drop=("legacy_flag",)))


def item(pk: str, sk: str, **attributes: str) -> Item:
    return {"pk": {"S": pk}, "sk": {"S": sk}, **{name: {"S": value} for name, value in attributes.items()}}


@pytest.fixture
def hook_module() -> Iterator[types.ModuleType]:
    module = types.ModuleType("ferry_test_hooks")
    sys.modules[module.__name__] = module
    yield module
    del sys.modules[module.__name__]


def test_rename_drop_then_first_matching_route() -> None:
    shaper = Shaper(SPLIT)
    placed = shaper.place(item("u1", "PROFILE", type="user", old_name="Ann", legacy_flag="x"))
    assert placed.table == "app-users"
    assert placed.item == item("u1", "PROFILE", type="user", new_name="Ann")
    assert shaper.place(item("u1", "ORDER#7", type="order")).table == "app-orders"
    # the first route wins: a user whose sort key also begins with ORDER# goes to users
    assert shaper.place(item("u1", "ORDER#8", type="user")).table == "app-users"
    unrouted = shaper.place(item("u1", "CART", type="cart"))
    assert unrouted.unrouted and unrouted.table is None and not unrouted.dropped


def test_numbers_match_by_value_and_a_route_without_when_takes_the_rest() -> None:
    shape = Shape((Route("tens", When("n", equals="10")), Route("rest")))
    shaper = Shaper(shape)
    assert shaper.place({"pk": {"S": "a"}, "n": {"N": "10.0"}}).table == "tens"
    assert shaper.place({"pk": {"S": "a"}, "n": {"N": "11"}}).table == "rest"
    assert shaper.place({"pk": {"S": "a"}, "n": {"S": "10"}}).table == "tens"
    assert Shaper(Shape((Route("t", When("n", equals="ten")),))).place({"n": {"N": "1"}}).unrouted


def test_a_hook_runs_on_wire_format_and_may_drop(hook_module: types.ModuleType) -> None:
    def reshape(shaped: Item) -> Item | None:
        if shaped.get("type") == {"S": "temp"}:
            return None
        return {**shaped, "kind": {"S": shaped["type"]["S"].upper()}}

    hook_module.reshape = reshape  # type: ignore[attr-defined]
    shaper = Shaper(Shape((Route("all"),), Transform(function="ferry_test_hooks:reshape")))
    assert shaper.place(item("a", "1", type="user")).item == item("a", "1", type="user", kind="USER")
    dropped = shaper.place(item("a", "2", type="temp"))
    assert dropped.dropped and not dropped.unrouted


def test_a_hook_that_is_missing_raises_or_returns_garbage_is_a_clear_error(hook_module: types.ModuleType) -> None:
    with pytest.raises(ShapeError, match=r"'package\.module:callable'"):
        Shaper(Shape((Route("t"),), Transform(function="no_colon")))
    with pytest.raises(ShapeError, match="cannot import"):
        Shaper(Shape((Route("t"),), Transform(function="ferry_no_such_module:f")))
    with pytest.raises(ShapeError, match="no callable 'absent'"):
        Shaper(Shape((Route("t"),), Transform(function="ferry_test_hooks:absent")))
    hook_module.broken = lambda shaped: shaped["missing"]  # type: ignore[attr-defined]
    hook_module.garbage = lambda shaped: [shaped]  # type: ignore[attr-defined]
    with pytest.raises(ShapeError, match="raised KeyError"):
        Shaper(Shape((Route("t"),), Transform(function="ferry_test_hooks:broken"))).place(item("a", "1"))
    with pytest.raises(ShapeError, match="returned list"):
        Shaper(Shape((Route("t"),), Transform(function="ferry_test_hooks:garbage"))).place(item("a", "1"))


def test_a_change_of_the_routing_attribute_moves_the_item() -> None:
    shaper = Shaper(SPLIT)
    old, new = item("u1", "ORDER#1", type="order"), item("u1", "ORDER#1", type="user")
    assert shaper.plan_change(old, new, KEYS) == [
        Delete("app-orders", item("u1", "ORDER#1")),
        Put("app-users", new),
    ]
    # a change that stays on its route is one put; a delete deletes where the old image was
    assert shaper.plan_change(new, {**new, "x": {"S": "1"}}, KEYS) == [Put("app-users", {**new, "x": {"S": "1"}})]
    assert shaper.plan_change(new, None, KEYS) == [Delete("app-users", item("u1", "ORDER#1"))]
    # a change to an unrouted state deletes the old placement and puts nothing
    profile = item("u1", "PROFILE", type="user")
    assert shaper.plan_change(profile, item("u1", "PROFILE", type="cart"), KEYS) == [
        Delete("app-users", key_of(profile, KEYS))
    ]
    assert shaper.plan_change(None, item("u1", "CART", type="cart"), KEYS) == []


def test_the_target_key_is_the_renamed_source_key() -> None:
    shaper = Shaper(Shape((Route("t"),), Transform(rename=(("pk", "id"),))))
    assert shaper.plan_change(item("a", "1"), None, KEYS) == [Delete("t", {"id": {"S": "a"}, "sk": {"S": "1"}})]


def test_the_key_rule_on_samples(hook_module: types.ModuleType) -> None:
    sample = item("u1", "ORDER#1", type="user", name="Ann", note="n")
    assert check_sample(Shaper(SPLIT), sample, KEYS) == []

    def by_name(shaped: Item) -> Item:  # routes on an attribute no route reads: a REMOVE could not follow it
        return {**shaped, "type": {"S": "user" if shaped["name"]["S"] == "Ann" else "order"}}

    def keyed_by_note(shaped: Item) -> Item:  # the target key depends on a payload attribute
        return {**shaped, "sk": {"S": shaped["sk"]["S"] + shaped["note"]["S"]}}

    counter = iter(range(1000))

    def unstable(shaped: Item) -> Item:
        return {**shaped, "n": {"N": str(next(counter))}}

    hook_module.by_name, hook_module.keyed_by_note, hook_module.unstable = by_name, keyed_by_note, unstable  # type: ignore[attr-defined]
    problems = {
        name: [
            p.problem
            for p in check_sample(
                Shaper(Shape(SPLIT.routes, Transform(function=f"ferry_test_hooks:{name}"))), sample, KEYS
            )
        ]
        for name in ("by_name", "keyed_by_note", "unstable")
    }
    assert problems["by_name"] == ["changing attribute 'name' moves the item (its route depends on it)"]
    assert problems["keyed_by_note"] == ["changing attribute 'note' changes the target key"]
    assert problems["unstable"] == ["not deterministic: two applications to the same item differ"]
    dropping_the_key = Shaper(Shape((Route("t"),), Transform(drop=("sk",))))
    assert [p.problem for p in check_sample(dropping_the_key, sample, KEYS)] == [
        "the shaped item lacks the target key attribute(s) sk"
    ]


# --- the property: any history, both protocols -----------------------------------------------------------

TYPES = ("user", "order", "cart")
SORTS = ("PROFILE", "ORDER#1", "ORDER#2")


@st.composite
def shapes(draw: st.DrawFn) -> Shape:
    routes = draw(
        st.lists(
            st.sampled_from([USERS, ORDERS, Route("app-carts", When("type", equals="cart")), Route("app-rest")]),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    rename = draw(st.sampled_from([(), (("name", "full_name"),), (("pk", "id"),)]))
    drop = draw(st.sampled_from([(), ("legacy",)]))
    return Shape(tuple(routes), Transform(rename=rename, drop=drop))


_values = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES), "name": st.sampled_from(("a", "b")), "legacy": st.sampled_from(("x", "y"))}
)
_change = st.tuples(st.sampled_from(("u1", "u2")), st.sampled_from(SORTS), st.one_of(st.none(), _values))


def _apply_writes(targets: dict[str, dict[str, Item]], writes: list[Any], key_names: tuple[str, ...]) -> None:
    for write in writes:
        table = targets.setdefault(write.table, {})
        if isinstance(write, Put):
            table[key_text(key_of(write.item, key_names))] = write.item
        else:
            table.pop(key_text(write.key), None)


def migrate(shape: Shape, history: list[Any], snapshot_at: int, *, live_shaped: bool = True) -> dict[str, Any]:
    """Both protocols at once, on dicts: the snapshot copy (insert-only: conditional, tombstones honoured;
    replay: its changes held and replayed after) and the live changes. Returns the differences found."""
    shaper = Shaper(shape)
    key_names = shape.target_key_names(KEYS)
    raw = Shaper(Shape((Route(shape.routes[0].table),)))  # the negative control's live path: no transform
    source: dict[str, Item] = {}
    changes: list[tuple[Item | None, Item | None]] = []
    snapshot: dict[str, Item] = {}
    for index, (pk, sk, values) in enumerate(history):
        if index == snapshot_at:
            snapshot = dict(source)
        key = key_text(item(pk, sk))
        old = source.get(key)
        new = None if values is None else item(pk, sk, **values)
        if new is None:
            source.pop(key, None)
        else:
            source[key] = new
        if old is not None or new is not None:
            changes.append((old, new))
    if snapshot_at >= len(history):
        snapshot = dict(source)
    live = shaper if live_shaped else raw
    results: dict[str, Any] = {}
    # replay: copy the snapshot, then replay every change made since capture began (all of them: capture
    # first), in order, through the live path
    replay: dict[str, dict[str, Item]] = {}
    for one in snapshot.values():
        _apply_writes(replay, shaper.plan_change(None, one, KEYS), key_names)
    for old, new in changes:
        _apply_writes(replay, live.plan_change(old, new, KEYS), key_names)
    results["replay"] = replay
    # insert-only: live changes applied as they happen, with tombstones for deletes; the snapshot copy is
    # conditional (it writes a key only where no live write or tombstone is)
    insert: dict[str, dict[str, Item | None]] = {}
    for old, new in changes:
        for write in live.plan_change(old, new, KEYS):
            table = insert.setdefault(write.table, {})
            if isinstance(write, Put):
                table[key_text(key_of(write.item, key_names))] = write.item
            else:
                table[key_text(write.key)] = None  # a tombstone
    for one in snapshot.values():
        for write in shaper.plan_change(None, one, KEYS):
            assert isinstance(write, Put)
            insert.setdefault(write.table, {}).setdefault(key_text(key_of(write.item, key_names)), write.item)
    results["insert-only"] = {t: {k: v for k, v in items.items() if v is not None} for t, items in insert.items()}
    expected: dict[str, dict[str, Item]] = {}
    for one in source.values():
        _apply_writes(expected, shaper.plan_change(None, one, KEYS), key_names)
    return {protocol: differences(expected, got) for protocol, got in results.items()}


def differences(expected: dict[str, dict[str, Item]], got: dict[str, dict[str, Item]]) -> list[str]:
    out = []
    for table in sorted(set(expected) | set(got)):
        want, have = expected.get(table, {}), got.get(table, {})
        for key in sorted(set(want) | set(have)):
            if key not in have:
                out.append(f"{table} missing {key}")
            elif key not in want:
                out.append(f"{table} extra {key}")
            elif not items_equal(want[key], have[key]):
                out.append(f"{table} differs {key}")
    return out


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(shape=shapes(), history=st.lists(_change, max_size=12), snapshot_at=st.integers(0, 12))
def test_any_history_under_either_protocol_ends_with_the_targets_equal_to_the_shaped_source(
    shape: Shape, history: list[Any], snapshot_at: int
) -> None:
    assert migrate(shape, history, snapshot_at) == {"replay": [], "insert-only": []}


def test_negative_control_the_shape_in_the_backfill_only_loses_the_live_changes() -> None:
    history = [
        ("u1", "ORDER#1", {"type": "user", "name": "a", "legacy": "x"}),
        ("u1", "ORDER#1", {"type": "order", "name": "a", "legacy": "x"}),
    ]
    found = migrate(SPLIT, history, snapshot_at=1, live_shaped=False)
    assert found["replay"] and found["insert-only"]
