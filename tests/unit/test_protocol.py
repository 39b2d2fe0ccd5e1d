"""ferry.tables.protocol: the per-record decisions, and a model-based check of the ordering
protocol between live replication and the backfill (docs/adr/0001).

The model runs the *real* decision functions (decide_stream_action, tombstone_for, is_tombstone,
insert_only_condition, tombstone_only_condition) against an in-memory target, over interleavings
chosen by hypothesis, and checks that the target ends equal to the source with no tombstone
left. Negative controls show the same model catches a naive backfill, a protocol without
tombstones and an unconditional tombstone sweep.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from ferry.tables.protocol import (
    PHASE_BACKFILL,
    PHASE_HOLD,
    PHASE_LIVE,
    PHASE_REPLAY,
    PHASES,
    TOMBSTONE_ATTRIBUTE,
    TOMBSTONE_VALUE,
    TTL_PRINCIPAL,
    StreamAction,
    decide_stream_action,
    insert_only_condition,
    is_tombstone,
    is_ttl_delete,
    tombstone_for,
    tombstone_only_condition,
)
from ferry.wire import Item, decode_stream_image, encode_lambda_value, items_equal, key_text

pytestmark = pytest.mark.unit

TTL_IDENTITY = {"type": "Service", "principalId": TTL_PRINCIPAL}

# --------------------------------------------------------------------------------------------
# decide_stream_action, table-driven

PUT, DELETE, TOMBSTONE, SKIP, HOLD = (
    StreamAction.PUT_NEW_IMAGE,
    StreamAction.DELETE,
    StreamAction.PUT_TOMBSTONE,
    StreamAction.SKIP,
    StreamAction.HOLD,
)

# phase spellings: the four real ones and "unknown" ones (state row missing, garbage, wrong case)
PHASE_VALUES: dict[str, list[str | None]] = {
    "backfill": [PHASE_BACKFILL],
    "live": [PHASE_LIVE],
    "replay": [PHASE_REPLAY],
    "hold": [PHASE_HOLD],
    "unknown": [None, "", "LIVE", "finalized", "HOLD"],
}

# (eventName, phase kind, ttl delete?, replicate_ttl_deletes?) -> action
DECISIONS: dict[tuple[str, str, bool, bool], StreamAction] = {}
for _event, _phase, _ttl, _replicate in itertools.product(
    ("INSERT", "MODIFY", "REMOVE"), PHASE_VALUES, (False, True), (False, True)
):
    if _phase == "hold":
        DECISIONS[(_event, _phase, _ttl, _replicate)] = HOLD  # a held table applies nothing until its release
    elif _event != "REMOVE":
        DECISIONS[(_event, _phase, _ttl, _replicate)] = PUT  # in every other phase
DECISIONS.update(
    {
        # once released, a replay table deletes for real (no copy runs concurrently)
        ("REMOVE", "replay", False, True): DELETE,
        ("REMOVE", "replay", False, False): DELETE,
        ("REMOVE", "replay", True, True): DELETE,
        ("REMOVE", "replay", True, False): SKIP,
        # ordinary deletes: a real delete once live, a tombstone otherwise
        ("REMOVE", "live", False, True): DELETE,
        ("REMOVE", "live", False, False): DELETE,
        ("REMOVE", "backfill", False, True): TOMBSTONE,
        ("REMOVE", "backfill", False, False): TOMBSTONE,
        ("REMOVE", "unknown", False, True): TOMBSTONE,
        ("REMOVE", "unknown", False, False): TOMBSTONE,
        # TTL expiries: replicated like deletes, or skipped
        ("REMOVE", "live", True, True): DELETE,
        ("REMOVE", "backfill", True, True): TOMBSTONE,
        ("REMOVE", "unknown", True, True): TOMBSTONE,
        ("REMOVE", "live", True, False): SKIP,
        ("REMOVE", "backfill", True, False): SKIP,
        ("REMOVE", "unknown", True, False): SKIP,
    }
)
DECISION_CASES = [
    pytest.param(event, phase, ttl, replicate, action, id=f"{event}-{phase}-{phase_kind}-ttl{ttl}-rep{replicate}")
    for (event, phase_kind, ttl, replicate), action in DECISIONS.items()
    for phase in PHASE_VALUES[phase_kind]
]


def test_decision_table_is_complete() -> None:
    assert len(DECISIONS) == 3 * 5 * 2 * 2
    assert set(PHASES) == {PHASE_BACKFILL, PHASE_LIVE, PHASE_HOLD, PHASE_REPLAY}


@pytest.mark.parametrize(("event", "phase", "ttl", "replicate", "action"), DECISION_CASES)
def test_decide_stream_action(event: str, phase: Any, ttl: bool, replicate: bool, action: StreamAction) -> None:
    assert decide_stream_action(event, phase, ttl_delete=ttl, replicate_ttl_deletes=replicate) is action


@pytest.mark.parametrize("event", ["DELETE", "UPDATE", "insert", "remove", "", "REMOVE ", None])
@pytest.mark.parametrize("phase", [PHASE_BACKFILL, PHASE_LIVE])
def test_unknown_event_name_raises(event: Any, phase: str) -> None:
    with pytest.raises(ValueError, match="eventName"):
        decide_stream_action(event, phase, ttl_delete=False, replicate_ttl_deletes=True)


# --------------------------------------------------------------------------------------------
# tombstones, TTL records, conditions


@pytest.mark.parametrize(
    "keys",
    [
        {"pk": {"S": "a"}},
        {"pk": {"N": "1.50"}, "sk": {"S": "x"}},
        {"pk": {"B": b"\x00\x01"}, "sk": {"N": "-1E-130"}},
    ],
)
def test_tombstone_for(keys: Item) -> None:
    before = copy.deepcopy(keys)
    tomb = tombstone_for(keys)
    assert keys == before  # not mutated
    assert {k: v for k, v in tomb.items() if k != TOMBSTONE_ATTRIBUTE} == keys
    assert tomb[TOMBSTONE_ATTRIBUTE] == TOMBSTONE_VALUE
    assert is_tombstone(tomb)
    assert not is_tombstone(keys)


def test_is_tombstone() -> None:
    assert is_tombstone({"pk": {"S": "a"}, TOMBSTONE_ATTRIBUTE: TOMBSTONE_VALUE})
    # a user attribute that happens to share the marker's name is not a tombstone
    assert not is_tombstone({"pk": {"S": "a"}, TOMBSTONE_ATTRIBUTE: {"BOOL": True}})
    assert is_tombstone({TOMBSTONE_ATTRIBUTE: TOMBSTONE_VALUE})  # the marker's exact value is what counts
    assert not is_tombstone({TOMBSTONE_ATTRIBUTE: {"S": "ferry:tombstone:v2"}})
    assert not is_tombstone({"pk": {"S": "a"}, "tombstone": {"BOOL": True}})
    assert not is_tombstone({"pk": {"S": TOMBSTONE_ATTRIBUTE}})
    assert not is_tombstone({})


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"eventName": "REMOVE", "userIdentity": TTL_IDENTITY}, True),
        ({"eventName": "REMOVE"}, False),
        ({"eventName": "REMOVE", "userIdentity": None}, False),
        ({"eventName": "REMOVE", "userIdentity": {}}, False),
        ({"eventName": "REMOVE", "userIdentity": {"type": "Service"}}, False),
        ({"eventName": "REMOVE", "userIdentity": {"type": "User", "principalId": TTL_PRINCIPAL}}, False),
        ({"eventName": "REMOVE", "userIdentity": {"type": "Service", "principalId": "lambda.amazonaws.com"}}, False),
    ],
)
def test_is_ttl_delete(record: dict[str, Any], expected: bool) -> None:
    assert is_ttl_delete(record) is expected


def test_ttl_principal_is_dynamodb() -> None:
    assert TTL_PRINCIPAL == "dynamodb.amazonaws.com"


_CONDITION = re.compile(r"^(attribute_exists|attribute_not_exists)\((#\w+)\)$")


@pytest.mark.parametrize("hash_key", ["pk", "name", "a.b", "#x", "with space", "ключ"])
def test_insert_only_condition(hash_key: str) -> None:
    cond = insert_only_condition(hash_key)
    assert cond == {
        "ConditionExpression": "attribute_not_exists(#ferry_hk)",
        "ExpressionAttributeNames": {"#ferry_hk": hash_key},
    }
    # the key name goes only through the placeholder (reserved words, dots, spaces are safe)
    assert _CONDITION.match(cond["ConditionExpression"])


def test_tombstone_only_condition() -> None:
    assert tombstone_only_condition() == {
        "ConditionExpression": "#ferry_ts = :ferry_ts",
        "ExpressionAttributeNames": {"#ferry_ts": TOMBSTONE_ATTRIBUTE},
        "ExpressionAttributeValues": {":ferry_ts": TOMBSTONE_VALUE},
    }


_EQUALS = re.compile(r"^(#\w+) = (:\w+)$")


def condition_holds(condition: Mapping[str, Any], current: Item | None) -> bool:
    """Evaluate the conditions the protocol uses (one function, or one equality), as DynamoDB would."""
    expression = condition["ConditionExpression"]
    equals = _EQUALS.match(expression)
    if equals:
        name = condition["ExpressionAttributeNames"][equals.group(1)]
        value = condition["ExpressionAttributeValues"][equals.group(2)]
        return current is not None and current.get(name) == value
    match = _CONDITION.match(expression)
    assert match, f"the model cannot evaluate {expression!r}"
    function, placeholder = match.groups()
    present = current is not None and condition["ExpressionAttributeNames"][placeholder] in current
    return present if function == "attribute_exists" else not present


def test_condition_evaluator_matches_documented_semantics() -> None:
    tomb = tombstone_for({"pk": {"S": "a"}})
    live = {"pk": {"S": "a"}, "v": {"N": "1"}}
    assert condition_holds(insert_only_condition("pk"), None)
    assert not condition_holds(insert_only_condition("pk"), live)
    assert not condition_holds(insert_only_condition("pk"), tomb)  # a tombstone blocks the insert
    assert condition_holds(tombstone_only_condition(), tomb)
    assert not condition_holds(tombstone_only_condition(), live)
    assert not condition_holds(tombstone_only_condition(), None)


# --------------------------------------------------------------------------------------------
# the model

HASH_KEY = "pk"
KEYS: Item = {HASH_KEY: {"B": b"\x00key"}}  # binary key: the model also exercises event decoding
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2024-01-01T00:00:00.000"


def version(n: int) -> Item:
    """The source item at version n (binaries nested, so decoding is on the path)."""
    return {
        **KEYS,
        "v": {"N": str(n)},
        "blob": {"B": bytes([n % 256]) * 3},
        "nested": {"M": {"l": {"L": [{"B": bytes([n % 256])}, {"S": f"v{n}"}]}}},
    }


@dataclass(frozen=True)
class Variant:
    """Which pieces of the protocol the model uses (the defaults are ferry's)."""

    decide: Callable[..., StreamAction] = decide_stream_action
    conditional_backfill: bool = True
    conditional_sweep: bool = True
    sweep_after_cache_expiry: bool = True


FERRY = Variant()


@dataclass
class World:
    source: Item | None
    target: dict[str, Item] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    cursor: int = 0  # next record the handler applies
    phase: str = PHASE_BACKFILL  # the state table's phase
    handler_phase: str | None = None  # the handler's cached view of it
    snapshot: Item | None = None
    scanned: bool = False
    written: bool = False
    switched: bool = False
    swept_seen: list[str] | None = None
    swept: bool = False
    trace: list[str] = field(default_factory=list)


def _emit(world: World, op: str, n: int) -> None:
    """Apply one source operation and emit its stream record (Lambda event form)."""
    old = world.source
    if op == "put":
        world.source = version(n)
        name = "INSERT" if old is None else "MODIFY"
        change = {"Keys": KEYS, "NewImage": world.source}
    else:
        world.source = None
        if old is None:
            return  # deleting nothing produces no record
        name = "REMOVE"
        change = {"Keys": KEYS, "OldImage": old}
    record: dict[str, Any] = {
        "eventName": name,
        "eventSourceARN": ARN,
        "dynamodb": encode_lambda_value({**change, "SequenceNumber": str(len(world.records) + 1)}),
    }
    if op == "ttl":
        record["userIdentity"] = dict(TTL_IDENTITY)
    world.records.append(record)


def _apply_record(world: World, variant: Variant, record: dict[str, Any]) -> None:
    """What the live handler does: decide with the real function, then write."""
    change = record["dynamodb"]
    keys = decode_stream_image(change["Keys"])
    action = variant.decide(
        record["eventName"],
        world.handler_phase,
        ttl_delete=is_ttl_delete(record),
        replicate_ttl_deletes=True,
    )
    if action is StreamAction.PUT_NEW_IMAGE:
        world.target[key_text(keys)] = decode_stream_image(change["NewImage"])
    elif action is StreamAction.DELETE:
        world.target.pop(key_text(keys), None)
    elif action is StreamAction.PUT_TOMBSTONE:
        world.target[key_text(keys)] = tombstone_for(keys)


def run_model(
    initial: int | None,
    ops: list[tuple[str, int]],
    choices: list[Any],
    variant: Variant = FERRY,
    start_view: str | None = PHASE_BACKFILL,
    redeliveries: int = 2,
) -> World:
    """Interleave source writes, the handler, the backfill (scan, insert) and finalize (switch,
    cache expiry, tombstone sweep) as ``choices`` say, then let everything finish.

    A choice is an index into the steps enabled at that point, a step name (hand-written
    scripts), or a number >= 1000: the handler goes back to an earlier record (redelivery).
    """
    world = World(source=version(initial) if initial is not None else None, handler_phase=start_view)
    key = key_text(KEYS)
    pending = list(ops)
    queue = list(choices)

    while True:
        enabled: list[str] = []
        if world.cursor < len(world.records):
            enabled.append("handler")
        if pending:
            enabled.append("source")
        if not world.scanned:
            enabled.append("scan")
        if world.scanned and not world.written:
            enabled.append("backfill-write")
        if world.written and not world.switched:
            enabled.append("switch")
        if world.switched and world.handler_phase != PHASE_LIVE:
            enabled.append("cache-expiry")
        sweep_allowed = world.handler_phase == PHASE_LIVE if variant.sweep_after_cache_expiry else world.switched
        if sweep_allowed and world.swept_seen is None:
            enabled.append("sweep-scan")
        if world.swept_seen is not None and not world.swept:
            enabled.append("sweep-delete")
        if not enabled:
            return world
        # redelivery (Lambda retries from the lowest failed record) only when asked for
        if queue and isinstance(queue[0], int) and queue[0] >= 1000 and world.cursor > 0 and redeliveries > 0:
            back = queue.pop(0) % world.cursor
            redeliveries -= 1
            world.trace.append(f"redeliver-from-{back}")
            world.cursor = back
            continue
        pick = queue.pop(0) if queue else 0
        step = pick if isinstance(pick, str) else enabled[pick % len(enabled)]
        assert step in enabled, (step, enabled, world.trace)
        world.trace.append(step)

        if step == "handler":
            _apply_record(world, variant, world.records[world.cursor])
            world.cursor += 1
        elif step == "source":
            op, n = pending.pop(0)
            _emit(world, op, n)
        elif step == "scan":
            world.snapshot = copy.deepcopy(world.source)
            world.scanned = True
        elif step == "backfill-write":
            world.written = True
            if world.snapshot is not None:
                current = world.target.get(key)
                if not variant.conditional_backfill or condition_holds(insert_only_condition(HASH_KEY), current):
                    world.target[key] = world.snapshot
        elif step == "switch":
            world.phase = PHASE_LIVE
            world.switched = True
        elif step == "cache-expiry":
            world.handler_phase = world.phase
        elif step == "sweep-scan":
            world.swept_seen = [k for k, item in world.target.items() if is_tombstone(item)]
        elif step == "sweep-delete":
            assert world.swept_seen is not None
            for k in world.swept_seen:
                current = world.target.get(k)
                if not variant.conditional_sweep or condition_holds(tombstone_only_condition(), current):
                    world.target.pop(k, None)
            world.swept = True


def converged(world: World) -> bool:
    """The target equals the source (absent, or DynamoDB-equal) and no tombstone is left."""
    if any(is_tombstone(item) for item in world.target.values()):
        return False
    if world.source is None:
        return world.target == {}
    return list(world.target) == [key_text(KEYS)] and items_equal(world.target[key_text(KEYS)], world.source)


operations = st.lists(
    st.tuples(st.sampled_from(["put", "put", "delete", "ttl"]), st.integers(1, 9)),
    max_size=7,
)
interleavings = st.tuples(
    st.one_of(st.none(), st.just(0)),  # the item exists before the stream starts, or not
    operations,
    st.lists(st.integers(0, 1100), max_size=40),  # >= 1000: a redelivery
    st.sampled_from([PHASE_BACKFILL, None]),  # the handler's first view: backfill or not yet known
)


def _fails(variant: Variant) -> Callable[[tuple[Any, ...]], bool]:
    def check(case: tuple[Any, ...]) -> bool:
        initial, ops, choices, view = case
        return not converged(run_model(initial, ops, choices, variant, start_view=view))

    return check


@settings(max_examples=600, deadline=None)
@given(interleavings)
def test_model_target_converges_to_source(case: tuple[Any, ...]) -> None:
    initial, ops, choices, view = case
    world = run_model(initial, ops, choices, FERRY, start_view=view)
    # everything happened
    assert world.cursor == len(world.records) and world.written and world.swept
    assert world.handler_phase == PHASE_LIVE
    assert converged(world), (world.trace, world.source, world.target)


STALE_IMAGE = (None, [("put", 1), ("put", 2)], ["source", "scan", "source", "handler", "handler", "backfill-write"])
RESURRECTION = (1, [("delete", 0)], ["scan", "source", "handler", "backfill-write"])
DELETE_AFTER_TOMBSTONE_REPLACED = (
    1,
    [("delete", 0), ("put", 2)],
    ["scan", "source", "handler", "backfill-write", "switch", "cache-expiry", "sweep-scan", "source", "handler"],
)


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(STALE_IMAGE, id="stale-scanned-image-after-newer-live-write"),
        pytest.param(RESURRECTION, id="scanned-item-deleted-before-backfill-write"),
        pytest.param(DELETE_AFTER_TOMBSTONE_REPLACED, id="live-put-between-sweep-scan-and-delete"),
    ],
)
def test_model_hand_picked_interleavings(script: tuple[Any, ...]) -> None:
    initial, ops, steps = script
    world = run_model(initial, ops, steps)
    assert world.trace[: len(steps)] == steps
    assert converged(world), (world.trace, world.target)


# Derandomized: a negative control must find its counterexample on every run, not on most runs
# (a random search over these interleavings once missed the unconditional sweep's counterexample).
NEGATIVE = settings(max_examples=5000, database=None, deadline=None, derandomize=True)


def test_negative_control_naive_backfill_loses_updates() -> None:
    """An unconditional backfill put lets an old scanned image overwrite a newer live write."""
    naive = Variant(conditional_backfill=False)
    world = run_model(*STALE_IMAGE, naive)
    assert world.source is not None and world.source["v"] == {"N": "2"}
    assert world.target[key_text(KEYS)]["v"] == {"N": "1"}  # the update is lost
    found = find(interleavings, _fails(naive), settings=NEGATIVE)
    assert not _fails(FERRY)(found)  # the same interleaving is fine with ferry's protocol


def test_negative_control_naive_backfill_resurrects_deletes() -> None:
    naive = Variant(conditional_backfill=False)
    world = run_model(*RESURRECTION, naive)
    assert world.source is None and world.target  # the deleted item came back
    assert not converged(world)


def _delete_without_tombstones(
    event_name: str, phase: Any, *, ttl_delete: bool, replicate_ttl_deletes: bool
) -> StreamAction:
    action = decide_stream_action(event_name, phase, ttl_delete=ttl_delete, replicate_ttl_deletes=replicate_ttl_deletes)
    return StreamAction.DELETE if action is StreamAction.PUT_TOMBSTONE else action


def test_negative_control_deletes_without_tombstones_resurrect() -> None:
    variant = Variant(decide=_delete_without_tombstones)
    found = find(interleavings, _fails(variant), settings=NEGATIVE)
    assert not _fails(FERRY)(found)


def test_negative_control_unconditional_sweep_deletes_live_writes() -> None:
    variant = Variant(conditional_sweep=False)
    world = run_model(*DELETE_AFTER_TOMBSTONE_REPLACED, variant)
    assert world.source is not None and world.target == {}  # the live put was swept away
    found = find(interleavings, _fails(variant), settings=NEGATIVE)
    assert not _fails(FERRY)(found)


def test_negative_control_sweeping_before_caches_expire_leaves_tombstones() -> None:
    """Why finalize waits out the handlers' phase cache: a handler that still believes in the
    backfill phase writes a tombstone after the sweep has run."""
    hasty = Variant(sweep_after_cache_expiry=False)
    script = [
        "scan",
        "backfill-write",
        "switch",
        "sweep-scan",
        "sweep-delete",
        "source",
        "source",
        "handler",
        "handler",
    ]
    world = run_model(None, [("put", 1), ("delete", 0)], script, hasty)
    assert world.trace[: len(script)] == script
    assert not converged(world)
    found = find(interleavings, _fails(hasty), settings=NEGATIVE)
    assert not _fails(FERRY)(found)
