"""Two-way table replication (docs/adr/0009) on the emulator, with the real handlers and local pollers.

GIVEN an old table whose copy is done and a new table, after `ferry reverse` (prepare_reverse)
WHEN changes are made on either side and both directions are drained until quiet
THEN each change makes exactly one replicated write (counted on the streams: every write of either
table is one stream record), both sides converge, a conflict is recorded and never ping-pongs, a
redelivered older record and the echo of an outdated value are skipped, not called conflicts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ConnectionClosedError

import ferry.aws
from ferry.aws import stream_arn_of
from ferry.backlog import stream_backlog, stream_records
from ferry.clients import AwsTarget, make_client
from ferry.spec import Spec, parse_spec
from ferry.switch import prepare_reverse
from ferry.tables.protocol import PHASE_LIVE
from ferry.tables.replicate import ALREADY, APPLIED, CONFLICT, ECHO, OVERTAKEN, REDELIVERED, TableReplicator
from ferry.tables.state import TABLE, PhaseCache, StateStore, create_state_table
from ferry.twoway import STEP_REVERSE, TwoWayStore, reverse_spec
from ferry_dev.replication import LocalReplication
from tests.conftest import create_table, old_and_new_tables, scan_all, two_way_tables

pytestmark = pytest.mark.functional


@dataclass
class Pair:
    ddb: Any
    streams: Any
    spec: Spec
    old: str
    new: str
    switch: TwoWayStore

    def put(self, table: str, pk: str, value: str) -> None:
        self.ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "v": {"S": value}})

    def delete(self, table: str, pk: str) -> None:
        self.ddb.delete_item(TableName=table, Key={"pk": {"S": pk}})

    def items(self, table: str) -> dict[str, str]:
        return {i["pk"]["S"]: i["v"]["S"] for i in scan_all(self.ddb, table)}

    def records(self, table: str) -> int:
        """Every record the table's stream holds: one per write that changed the table."""
        return stream_backlog(self.streams, stream_arn_of(self.ddb, table), {}).behind

    def settle(self, rounds: int = 6) -> None:
        """Drain forward and reverse in turn until a round applies nothing (echoes included)."""
        forward, backward = LocalReplication(self.spec), LocalReplication(self.spec, reverse=True)
        for _ in range(rounds):
            before = forward.applied() + backward.applied()
            forward.drain(60)
            backward.drain(60)
            if forward.applied() + backward.applied() == before:
                return
        raise AssertionError(f"still replicating after {rounds} rounds: an echo storm")


@pytest.fixture
def pair(ddb: Any, streams: Any, where: AwsTarget, unique: str) -> Iterator[Pair]:
    spec, old, new, state = two_way_tables(ddb, where, unique, on_failure_queue=f"fail-{unique}", batch_size=10)
    yield Pair(ddb, streams, spec, old, new, TwoWayStore(ddb, state))


def test_reverse_refuses_before_the_copy_is_done(ddb: Any, where: AwsTarget, unique: str) -> None:
    from ferry.errors import SetupError

    spec, old, new, state = old_and_new_tables(ddb, where, unique)
    StateStore(ddb, state).set_phase(old, "hold")
    with pytest.raises(SetupError, match="phase hold"):
        prepare_reverse(spec, sleep=lambda _: None)
    assert "StreamSpecification" not in ddb.describe_table(TableName=new)["Table"]  # nothing written
    assert TwoWayStore(ddb, state).steps(TABLE, old, new) == {}


def test_each_change_on_either_side_makes_exactly_one_replicated_write(pair: Pair) -> None:
    view = pair.ddb.describe_table(TableName=pair.new)["Table"]["StreamSpecification"]
    assert view == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    changes = 0
    for i in range(6):
        pair.put(pair.old, f"o{i}", "1")
        pair.put(pair.new, f"n{i}", "1")
        changes += 2
    pair.settle()
    for i in range(3):
        pair.put(pair.old, f"o{i}", "2")  # on the side that created it
        pair.put(pair.new, f"o{i + 3}", "2")  # on the other side, once the key had arrived there
        pair.put(pair.old, f"n{i}", "2")
        changes += 3
    pair.settle()
    for i in range(2):
        pair.delete(pair.new, f"o{i}")
        pair.delete(pair.old, f"n{i}")
        changes += 2
    pair.settle()
    assert pair.items(pair.old) == pair.items(pair.new)
    # every write to either table is one stream record: the users' `changes` and one replicated write each
    assert pair.records(pair.old) + pair.records(pair.new) == 2 * changes
    assert pair.switch.conflicts(TABLE, pair.old, pair.new) == []


def test_a_conflict_is_recorded_once_and_does_not_ping_pong(pair: Pair) -> None:
    pair.put(pair.old, "k", "0")
    pair.settle()
    pair.put(pair.old, "k", "A")
    pair.put(pair.new, "k", "B")
    pair.settle()  # raises on an echo storm
    (conflict,) = pair.switch.conflicts(TABLE, pair.old, pair.new)
    assert conflict.key == '{"pk":{"S":"k"}}'
    # neither side's write was overwritten: both are kept for the user to choose (ferry verify --repair --from)
    assert (pair.items(pair.old)["k"], pair.items(pair.new)["k"]) == ("A", "B")


def test_negative_control_without_the_judge_a_write_is_lost_silently(pair: Pair) -> None:
    """With the reverse step cleared, handlers apply blindly: the same conflict ends with one write
    silently lost on both sides and nothing reported (what the judge prevents)."""
    pair.put(pair.old, "k", "0")
    pair.settle()
    pair.switch.clear_step(TABLE, pair.old, pair.new, STEP_REVERSE)
    pair.put(pair.old, "k", "A")
    pair.put(pair.new, "k", "B")
    forward, backward = LocalReplication(pair.spec), LocalReplication(pair.spec, reverse=True)
    forward.drain(60)
    backward.drain(60)
    # reverse replayed the new side's B and then forward's echo A over the old side: B is gone everywhere
    assert (pair.items(pair.old)["k"], pair.items(pair.new)["k"]) == ("A", "A")
    assert pair.switch.conflicts(TABLE, pair.old, pair.new) == []


def _records(streams: Any, ddb: Any, table: str) -> list[dict[str, Any]]:
    """The table's stream records in order, shaped as a Lambda event's records."""
    return stream_records(streams, stream_arn_of(ddb, table))


def _replicator(pair: Pair, spec: Spec) -> TableReplicator:
    return TableReplicator(spec, pair.ddb, PhaseCache(StateStore(pair.ddb, spec.state_table), 0))


def test_a_redelivered_older_record_and_an_outdated_echo_are_skipped_not_conflicts(pair: Pair) -> None:
    forward, backward = _replicator(pair, pair.spec), _replicator(pair, reverse_spec(pair.spec))
    pair.put(pair.old, "k", "A")
    pair.put(pair.old, "k", "B")
    first, second = _records(pair.streams, pair.ddb, pair.old)
    assert [forward.apply_stream_record(r).outcome for r in (first, second)] == [APPLIED, APPLIED]
    # (a) a batch retried after a partial failure brings the older record back
    assert forward.apply_stream_record(first).outcome == REDELIVERED
    # (b) the echoes of A then B reach the old side, which is already at B: ferry wrote both, so both are echoes
    echo_a, echo_b = _records(pair.streams, pair.ddb, pair.new)
    assert [backward.apply_stream_record(r).outcome for r in (echo_a, echo_b)] == [ECHO, ECHO]
    assert pair.switch.conflicts(TABLE, pair.old, pair.new) == []
    # a later identical transition made by a user is not mistaken for an echo: the journal entry was taken
    pair.delete(pair.new, "k")
    pair.put(pair.new, "k", "B")  # absent -> B, not what ferry wrote (A -> B), applied as a change
    *_, delete, reinsert = _records(pair.streams, pair.ddb, pair.new)
    assert [backward.apply_stream_record(r).outcome for r in (delete, reinsert)] == [APPLIED, APPLIED]
    assert pair.items(pair.old) == {"k": "B"}
    assert backward.apply_stream_record(reinsert).outcome == REDELIVERED
    assert ALREADY and CONFLICT  # the remaining outcomes are asserted by the tests above


class _Crash(Exception):
    """A handler killed at one point of its work (the record is delivered again)."""


def _crash_once(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> None:
    real = getattr(owner, name)
    calls = iter([True])

    def crashing(*args: Any, **kwargs: Any) -> Any:
        if next(calls, False):
            raise _Crash(name)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, crashing)


def _synced_then_changed(pair: Pair) -> dict[str, Any]:
    """The old side's key k synced at A on both sides, then changed to B: that change's stream record."""
    pair.put(pair.old, "k", "A")
    pair.settle()
    pair.put(pair.old, "k", "B")
    (record,) = _records(pair.streams, pair.ddb, pair.old)[-1:]
    return record


@pytest.mark.parametrize("landed", [True, False], ids=["crash-after-the-write", "control-crash-before-it"])
def test_a_record_whose_own_write_began_before_a_crash_is_overtaken_not_a_conflict(
    pair: Pair, monkeypatch: pytest.MonkeyPatch, landed: bool
) -> None:
    """Found by the chaos switch phase under load: the write landed, the handler died before its mark, and
    the key's owner (the new side, which took it over once it arrived) changed it before the record came again:
    overtaken, and the owner's change travels back. Control, the crash one step earlier: the write never landed
    and the new side changed the key on its own (on A): the record writes nothing either, and the new side's
    change, judged against the old side's B, is the conflict."""
    import ferry.tables.replicate as replicate

    forward = _replicator(pair, pair.spec)
    record = _synced_then_changed(pair)
    if landed:
        _crash_once(monkeypatch, TwoWayStore, "mark_sequence")  # after the write, before its mark
    else:
        _crash_once(monkeypatch, replicate, "write_item_if")  # after the journal and the applying mark
    with pytest.raises(_Crash):
        forward.apply_stream_record(record)
    assert pair.items(pair.new) == {"k": "B" if landed else "A"}
    pair.put(pair.new, "k", "C")
    assert forward.apply_stream_record(record).outcome == OVERTAKEN
    if landed:
        *_, echo, change = _records(pair.streams, pair.ddb, pair.new)
        backward = _replicator(pair, reverse_spec(pair.spec))
        assert [backward.apply_stream_record(r).outcome for r in (echo, change)] == [ECHO, APPLIED]
    pair.settle()
    if landed:
        assert pair.items(pair.old) == pair.items(pair.new) == {"k": "C"}
        assert pair.switch.conflicts(TABLE, pair.old, pair.new) == []
    else:
        assert pair.items(pair.old) == {"k": "B"} and pair.items(pair.new) == {"k": "C"}
        assert [c.key for c in pair.switch.conflicts(TABLE, pair.old, pair.new)] == ['{"pk":{"S":"k"}}']


@pytest.mark.parametrize("guarded", [True, False], ids=["no-blind-resend", "control-botocore-resends"])
def test_a_write_whose_answer_was_lost_is_judged_again_not_sent_again(
    pair: Pair, where: AwsTarget, monkeypatch: pytest.MonkeyPatch, guarded: bool
) -> None:
    """The judged write landed, its answer was lost, and the key's owner changed it at once. Sent again as it
    was (botocore's retry), it would overwrite that change, whose record then travels back on top of nothing
    to report: lost silently (the control). Not resent, the key is read back at once: overtaken, converged."""
    if not guarded:
        monkeypatch.setattr(ferry.aws, "_no_blind_resend", lambda **_: None)
    judged = make_client("dynamodb", where)  # a client of its own: the hook below is on it alone
    forward = TableReplicator(pair.spec, judged, PhaseCache(StateStore(judged, pair.spec.state_table), 0))
    record = _synced_then_changed(pair)
    lost: list[str] = []

    def land_then_lose_the_answer(request: Any, **_: Any) -> None:
        if not lost and pair.new.encode() in request.body and b"ALL_OLD" in request.body:
            lost.append(request.url)
            pair.put(pair.new, "k", "B")  # the write lands ...
            pair.put(pair.new, "k", "C")  # ... the new side, owner now, changes the key ...
            raise ConnectionClosedError(endpoint_url=request.url)  # ... and the answer is lost

    judged.meta.events.register("before-send.dynamodb.PutItem", land_then_lose_the_answer)
    if guarded:
        assert forward.apply_stream_record(record).outcome == OVERTAKEN
    else:
        assert forward.apply_stream_record(record).outcome == APPLIED  # resent: B over C
    assert lost
    pair.settle()
    if guarded:
        assert pair.items(pair.old) == pair.items(pair.new) == {"k": "C"}
    else:
        assert pair.items(pair.old) == pair.items(pair.new) == {"k": "B"}  # C is gone, and nothing says so
    assert pair.switch.conflicts(TABLE, pair.old, pair.new) == []


def test_a_write_whose_answer_was_lost_and_that_landed_is_read_as_applied(pair: Pair, where: AwsTarget) -> None:
    """The common case of a lost answer: nobody wrote in between. The key read back holds the change: applied,
    sent once; its echo is still known."""
    judged = make_client("dynamodb", where)
    forward = TableReplicator(pair.spec, judged, PhaseCache(StateStore(judged, pair.spec.state_table), 0))
    record = _synced_then_changed(pair)
    sent: list[str] = []

    def land_then_lose_the_answer(request: Any, **_: Any) -> None:
        if pair.new.encode() in request.body and b"ALL_OLD" in request.body:
            sent.append(request.url)
            if len(sent) == 1:
                pair.put(pair.new, "k", "B")
                raise ConnectionClosedError(endpoint_url=request.url)

    judged.meta.events.register("before-send.dynamodb.PutItem", land_then_lose_the_answer)
    assert forward.apply_stream_record(record).outcome == APPLIED
    assert len(sent) == 1
    (echo,) = _records(pair.streams, pair.ddb, pair.new)[-1:]
    assert _replicator(pair, reverse_spec(pair.spec)).apply_stream_record(echo).outcome == ECHO
    assert pair.switch.conflicts(TABLE, pair.old, pair.new) == []


def test_a_redelivered_insert_does_not_resurrect_what_the_owner_deleted_after_it_landed(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the chaos switch phase: the insert landed, the handler died before its mark, reverse saw its
    echo, and the new side (the key's owner now) deleted the item: the target is absent again, the state the
    insert was made on (ABA). Judged again, it must not be written again: its echo was taken, so it landed."""
    forward, backward = _replicator(pair, pair.spec), _replicator(pair, reverse_spec(pair.spec))
    pair.put(pair.old, "k", "A")
    (insert,) = _records(pair.streams, pair.ddb, pair.old)
    _crash_once(monkeypatch, TwoWayStore, "mark_sequence")
    with pytest.raises(_Crash):
        forward.apply_stream_record(insert)
    (echo,) = _records(pair.streams, pair.ddb, pair.new)
    assert backward.apply_stream_record(echo).outcome == ECHO
    pair.delete(pair.new, "k")
    assert forward.apply_stream_record(insert).outcome == OVERTAKEN
    assert pair.items(pair.new) == {}
    pair.settle()
    assert pair.items(pair.old) == pair.items(pair.new) == {}
    assert pair.switch.conflicts(TABLE, pair.old, pair.new) == []


def _run(pair: Pair, tmp_path: Any, *args: str) -> Any:
    import json

    from click.testing import CliRunner

    from ferry.spec import spec_to_dict
    from ferry_cli.main import cli

    path = tmp_path / "ferry.yaml"
    path.write_text(json.dumps(spec_to_dict(pair.spec)))
    return CliRunner().invoke(cli, [args[0], "--spec", str(path), *args[1:]])


def test_verify_lists_a_conflict_and_repair_from_the_named_side_resolves_it(pair: Pair, tmp_path: Any) -> None:
    pair.put(pair.old, "k", "0")
    pair.put(pair.old, "other", "x")
    pair.settle()
    pair.put(pair.old, "k", "A")
    pair.put(pair.new, "k", "B")
    pair.settle()
    listed = _run(pair, tmp_path, "verify", "--reverse")
    assert listed.exit_code == 1, listed.output
    assert '{"pk":{"S":"k"}}' in listed.output and "1 open conflicts" in listed.output
    assert "other" not in listed.output  # only the conflicting key is named
    repaired = _run(pair, tmp_path, "verify", "--repair", "--from", "new")
    assert repaired.exit_code == 0, repaired.output
    assert "1 conflicts resolved" in repaired.output
    pair.settle()  # the repair's own change reaches the other direction: already there, nothing new
    assert pair.items(pair.old) == pair.items(pair.new) == {"k": "B", "other": "x"}
    assert pair.switch.conflicts(TABLE, pair.old, pair.new) == []
    assert _run(pair, tmp_path, "verify", "--reverse").exit_code == 0


def test_from_needs_repair_and_agrees_with_the_direction(pair: Pair, tmp_path: Any) -> None:
    alone = _run(pair, tmp_path, "verify", "--from", "new")
    assert alone.exit_code == 2 and "--from" in alone.output
    contradicting = _run(pair, tmp_path, "verify", "--reverse", "--repair", "--from", "old")
    assert contradicting.exit_code == 2 and "--from" in contradicting.output


@pytest.mark.parametrize("sources_only", [True, False], ids=["sources-only", "api"])
def test_reverse_for_terraform_creates_no_queue_or_rule(where: AwsTarget, ddb: Any, unique: str, sources_only: bool):
    """`ferry reverse --sources-only` (a Terraform stage) only turns capture on; without it (the quick path)
    it also creates the reverse events queue and rule — the control that the assertion can fail."""
    from ferry.aws import describe_rule_or_none, queue_url_or_none
    from ferry.buckets.setup import event_rule_name
    from ferry.clients import make_client
    from ferry_cli.deploy import prepare_sources

    old, new, state = f"old-{unique}", f"new-{unique}", f"state-{unique}"
    s3: Any = make_client("s3", where)
    sqs: Any = make_client("sqs", where)
    events: Any = make_client("events", where)
    for bucket in (old, new):
        s3.create_bucket(Bucket=bucket)
    create_state_table(ddb, state)
    spec = parse_spec(
        {
            "region": where.region,
            "endpoint_url": where.endpoint_url,
            "state_table": state,
            "buckets": [{"source": old, "target": new}],
            "s3": {"events_queue": f"events-{unique}"},
            "replication": {"phase_cache_seconds": 0},
        }
    )
    StateStore(ddb, state).set_phase(old, PHASE_LIVE, "bucket")
    prepare_reverse(spec, sleep=lambda _: None, capture=prepare_sources if sources_only else None)
    made = queue_url_or_none(sqs, f"events-{unique}-reverse") is not None
    ruled = describe_rule_or_none(events, event_rule_name(new)) is not None
    assert (made, ruled) == ((False, False) if sources_only else (True, True))


def test_a_journal_entry_asked_again_by_the_same_record_is_still_its_echo(ddb: Any, unique: str) -> None:
    """Found by the chaos run: a take whose response was lost is sent again. The same record (the same
    sequence number) still gets its echo; another record with the same transition does not."""
    state = f"state-{unique}"
    create_state_table(ddb, state)
    store = TwoWayStore(ddb, state)
    store.journal(TABLE, "new-t", "k", "t1")
    assert store.take_echo(TABLE, "new-t", "k", "t1", "n1", taker="100")
    assert store.take_echo(TABLE, "new-t", "k", "t1", "n1", taker="100")  # the same request, sent again
    assert not store.take_echo(TABLE, "new-t", "k", "t1", "n1", taker="101")  # a user's identical change later
    store.coincided(TABLE, "new-t", "k", "n2")
    assert store.take_echo(TABLE, "new-t", "k", "other", "n2", taker="102")
    assert not store.take_echo(TABLE, "new-t", "k", "other", "n2", taker="103")


def test_a_write_sent_again_after_it_landed_finds_its_own_result(ddb: Any, unique: str) -> None:
    """The adapter's conditional write answers what the item is when its condition fails, so a write whose
    first attempt landed (its response lost) is known for applied, not taken for a concurrent change."""
    from ferry.aws import write_item_if

    table = f"t-{unique}"
    create_table(ddb, table)
    item = {"pk": {"S": "k"}, "v": {"S": "1"}}
    absent = {"ConditionExpression": "attribute_not_exists(pk)"}
    assert write_item_if(ddb, table, absent, item=item) == (True, None)
    assert write_item_if(ddb, table, absent, item=item) == (False, item)
    present = {"ConditionExpression": "attribute_exists(pk)"}
    assert write_item_if(ddb, table, present, key={"pk": {"S": "k"}}) == (True, None)
    assert write_item_if(ddb, table, present, key={"pk": {"S": "k"}}) == (False, None)
