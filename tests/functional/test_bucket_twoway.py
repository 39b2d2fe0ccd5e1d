"""Two-way bucket replication against the emulator (docs/adr/0009, ferry.buckets.twoway).

Forward (old → new) and reverse (new → old, ``reverse_spec``) are two real ``BucketReplicator``s over
real buckets and a real state table, fed EventBridge-style SQS records: one for each user change, on the
side it was made, and one for each write ferry makes (its echo, on the other side). Every S3 write the
replicators send is counted by a botocore hook on their client.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ConnectionClosedError

import ferry.aws
from ferry.buckets.events import BucketReplicator
from ferry.buckets.objects import head_object
from ferry.buckets.reconcile import (
    ABSENT,
    CONFLICT,
    COPIED,
    COPIED_MULTIPART,
    DELETED,
    OUTDATED,
    UNCHANGED,
    ReconcileResult,
)
from ferry.buckets.twoway import KeyGuard, SyncStore, fingerprint
from ferry.clients import AwsTarget, make_client
from ferry.spec import parse_spec
from ferry.tables.state import create_state_table
from ferry.twoway import BUCKET, STEP_CAPTURE, STEP_REVERSE, TwoWayStore, reverse_spec

pytestmark = pytest.mark.functional

WRITES = frozenset({"PutObject", "CopyObject", "DeleteObject", "DeleteObjects", "CompleteMultipartUpload"})
WROTE = (COPIED, COPIED_MULTIPART, DELETED)
DETAIL_TYPES = {"created": "Object Created", "removed": "Object Deleted", "tags": "Object Tags Added"}


@dataclass
class Pair:
    s3: Any  # the test's own client: the users' writes
    store: TwoWayStore
    old: str
    new: str
    forward: BucketReplicator
    reverse: BucketReplicator
    writes: list[str] = field(default_factory=list)  # S3 write operations the replicators sent

    def steps(self, *steps: str) -> None:
        for step in steps:
            self.store.record_step(BUCKET, self.old, self.new, step)

    def put(self, bucket: str, key: str, body: bytes, **tags: str) -> None:
        tagging = {"Tagging": "&".join(f"{k}={v}" for k, v in tags.items())} if tags else {}
        self.s3.put_object(
            Bucket=bucket, Key=key, Body=body, ContentType="text/plain", Metadata={"who": bucket}, **tagging
        )

    def deliver(self, bucket: str, key: str, kind: str = "created") -> ReconcileResult:
        """One event of ``bucket``'s key to the replicator of that side (old: forward, new: reverse)."""
        body = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": DETAIL_TYPES[kind],
            "source": "aws.s3",
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "detail": {"bucket": {"name": bucket}, "object": {"key": key}},
        }
        replicator = self.forward if bucket == self.old else self.reverse
        results = replicator.apply_sqs_record({"messageId": str(uuid.uuid4()), "body": json.dumps(body)})
        # an EventBridge key that unquote_plus changes is also reconciled decoded (absent here): not counted
        (result,) = [r for r in results if r.key == key]
        assert all(r.action in (ABSENT, UNCHANGED) for r in results if r.key != key)
        return result

    def change(self, bucket: str, key: str, kind: str = "created") -> list[ReconcileResult]:
        """A user change's event on its side, then the echo of whatever ferry wrote, on the other side."""
        first = self.deliver(bucket, key, kind)
        other = self.new if bucket == self.old else self.old
        return [first, self.deliver(other, key, kind)] if first.action in WROTE else [first]

    def snapshot(self, bucket: str) -> dict[str, tuple[bytes, str | None, dict[str, str], list[tuple[str, str]]]]:
        out = {}
        for entry in self.s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            got = self.s3.get_object(Bucket=bucket, Key=entry["Key"])
            tags = self.s3.get_object_tagging(Bucket=bucket, Key=entry["Key"])["TagSet"]
            out[entry["Key"]] = (
                got["Body"].read(),
                got.get("ContentType"),
                got.get("Metadata", {}),
                sorted((t["Key"], t["Value"]) for t in tags),
            )
        return out

    def body(self, bucket: str, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def conflicts(self) -> list[str]:
        return [c.key for c in self.store.conflicts(BUCKET, self.old, self.new)]


@pytest.fixture(scope="module")
def state(where: AwsTarget) -> Iterator[tuple[Any, str]]:
    ddb = make_client("dynamodb", where)
    name = f"ferry-state-twoway-{uuid.uuid4().hex[:8]}"
    create_state_table(ddb, name)
    yield ddb, name
    ddb.delete_table(TableName=name)


@pytest.fixture
def pair(where: AwsTarget, state: tuple[Any, str], unique: str) -> Pair:
    ddb, table = state
    s3 = make_client("s3", where)
    old, new = f"old-{unique}", f"new-{unique}"
    for bucket in (old, new):
        s3.create_bucket(Bucket=bucket)
    spec = parse_spec(
        {
            "region": where.region,
            "endpoint_url": where.endpoint_url,
            "state_table": table,
            "buckets": [{"source": old, "target": new}],
            "replication": {"phase_cache_seconds": 0},  # a step recorded mid-test counts at once
        }
    )
    writer = make_client("s3", where)  # the replicators' client: every write it sends is counted
    writes: list[str] = []
    writer.meta.events.register(
        "before-call.s3", lambda model, **_: writes.append(model.name) if model.name in WRITES else None
    )
    store = TwoWayStore(ddb, table)
    forward = BucketReplicator(spec, writer, writer, switch=store)
    reverse = BucketReplicator(reverse_spec(spec), writer, writer, switch=store)
    return Pair(s3, store, old, new, forward, reverse, writes)


def test_each_change_on_either_side_makes_exactly_one_write(pair: Pair) -> None:
    # GIVEN two-way replication on (capture, then reverse), two empty buckets
    pair.steps(STEP_CAPTURE, STEP_REVERSE)
    # creates, overwrites, tag changes and deletes on both sides, each of a key the other side has synced
    changes: list[tuple[str, str, str]] = [
        (pair.old, "a.txt", "created"),
        (pair.new, "dir/b.txt", "created"),
        (pair.old, "dir/b.txt", "created"),  # overwritten on the side it was replicated to
        (pair.new, "a.txt", "created"),
        (pair.old, "a.txt", "tags"),
        (pair.new, "dir/b.txt", "tags"),
        (pair.new, "dir/b.txt", "removed"),
        (pair.old, "c d+e.txt", "created"),
        (pair.old, "c d+e.txt", "removed"),
        (pair.new, "a.txt", "removed"),
    ]
    results: list[ReconcileResult] = []

    # WHEN each is made, then its event and the echo of ferry's write are processed in turn
    for version, (bucket, key, kind) in enumerate(changes):
        if kind == "created":
            pair.put(bucket, key, f"{key} v{version} from {bucket}".encode(), v=str(version))
        elif kind == "tags":
            pair.s3.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": [{"Key": "t", "Value": "x"}]})
        else:
            pair.s3.delete_object(Bucket=bucket, Key=key)
        results += pair.change(bucket, key, kind)
        results.append(pair.deliver(bucket, key, kind))  # and a redelivery of the user's event

    # THEN each change made exactly one write (echoes and redeliveries none), and the two sides are equal
    wrote = [r for r in results if r.action in WROTE]
    assert len(wrote) == len(changes), [(r.key, r.action) for r in results]
    assert len(pair.writes) == len(changes), pair.writes
    assert all(r.action in (*WROTE, UNCHANGED, ABSENT) for r in results), [(r.key, r.action) for r in results]
    assert pair.snapshot(pair.old) == pair.snapshot(pair.new)
    assert pair.snapshot(pair.old) == {}
    assert pair.conflicts() == []

    # and a key that lives on: one write, equal sides, its sync record exactly the two sides' fingerprints
    pair.put(pair.new, "kept.txt", b"kept", t="1")
    assert [r.action for r in pair.change(pair.new, "kept.txt")] == [COPIED, UNCHANGED]
    assert pair.snapshot(pair.old) == pair.snapshot(pair.new) != {}
    record = SyncStore(pair.store.ddb, pair.store.table_name).read(pair.old, pair.new, "kept.txt")
    assert record is not None
    heads = {b: head_object(pair.s3, b, "kept.txt") for b in (pair.old, pair.new)}
    assert dict(record.sides) == {b: frozenset({fingerprint(state)}) for b, state in heads.items()}


@pytest.mark.parametrize("two_way", [True, False], ids=["two-way", "negative-control-one-way"])
def test_a_key_changed_on_both_sides_is_a_conflict_never_a_silent_overwrite(pair: Pair, two_way: bool) -> None:
    # GIVEN a key synced on both sides (with two-way on, or — the negative control — without any step)
    if two_way:
        pair.steps(STEP_CAPTURE, STEP_REVERSE)
    pair.put(pair.old, "k.txt", b"base")
    pair.change(pair.old, "k.txt")
    pair.writes.clear()

    # WHEN a user writes A' on the old side and another B' on the new side before either is replicated
    pair.put(pair.old, "k.txt", b"A-prime from old")
    pair.put(pair.new, "k.txt", b"B-prime from new")
    results = [pair.deliver(pair.old, "k.txt"), pair.deliver(pair.new, "k.txt")]
    results += [pair.deliver(pair.old, "k.txt"), pair.deliver(pair.new, "k.txt")]  # redelivered

    if two_way:
        # THEN nothing is written in either direction, each side keeps its value, one conflict is open
        assert [r.action for r in results] == [CONFLICT] * 4
        assert pair.writes == []
        assert pair.body(pair.old, "k.txt") == b"A-prime from old"
        assert pair.body(pair.new, "k.txt") == b"B-prime from new"
        assert pair.conflicts() == ["k.txt"]
        (conflict,) = pair.store.conflicts(BUCKET, pair.old, pair.new)
        assert conflict.source_hash != conflict.destination_hash
    else:
        # THEN (one-way) the first reconcile overwrites the other side's change, unreported: the guard's job
        assert results[0].action == COPIED and pair.writes == ["CopyObject"]
        assert pair.body(pair.old, "k.txt") == pair.body(pair.new, "k.txt") == b"A-prime from old"
        assert pair.conflicts() == []


def test_keys_untouched_since_capture_apply_and_a_crash_after_the_journal_converges(pair: Pair) -> None:
    # GIVEN keys equal on both sides before reverse capture began (no sync record), then capture and reverse
    for key in ("p.txt", "q.txt", "r.txt", "s.txt"):
        pair.put(pair.old, key, f"{key} before".encode())
        pair.s3.copy_object(Bucket=pair.new, Key=key, CopySource={"Bucket": pair.old, "Key": key})
    time.sleep(1.05)  # Last-Modified has whole seconds: the capture step lies in a later one
    pair.steps(STEP_CAPTURE, STEP_REVERSE)

    # WHEN untouched keys change on either side
    pair.put(pair.new, "p.txt", b"p from new")
    pair.put(pair.old, "q.txt", b"q from old")
    pair.s3.delete_object(Bucket=pair.old, Key="r.txt")
    results = (
        pair.change(pair.new, "p.txt") + pair.change(pair.old, "q.txt") + pair.change(pair.old, "r.txt", "removed")
    )

    # THEN each is applied (one write each, its echo none)
    assert [r.action for r in results] == [COPIED, UNCHANGED, COPIED, UNCHANGED, DELETED, ABSENT]
    assert pair.body(pair.old, "p.txt") == b"p from new" and pair.body(pair.new, "q.txt") == b"q from old"
    assert pair.conflicts() == []

    # BUT a key without a sync record whose destination was written after capture is a conflict
    pair.put(pair.new, "s.txt", b"s from new")
    pair.put(pair.old, "s.txt", b"s from old")
    assert pair.deliver(pair.old, "s.txt").action == CONFLICT
    assert pair.conflicts() == ["s.txt"]

    # WHEN a synced key changes and reconcile "crashes" after journaling its write, before the copy
    pair.put(pair.old, "q.txt", b"q again from old")
    mapping = pair.forward.spec.buckets[0]
    guard = KeyGuard(pair.store, mapping, "q.txt", capture=None)
    assert guard.refusal(head_object(pair.s3, pair.new, "q.txt"), head_object(pair.s3, pair.old, "q.txt")) is None
    pair.writes.clear()
    # THEN the redelivered event still applies it: no false conflict
    assert [r.action for r in pair.change(pair.old, "q.txt")] == [COPIED, UNCHANGED]
    assert pair.body(pair.new, "q.txt") == b"q again from old"

    # WHEN it crashes after journaling and after the copy, before the record was settled
    pair.put(pair.new, "p.txt", b"p again from new")
    guard = KeyGuard(pair.store, reverse_spec(pair.forward.spec).buckets[0], "p.txt", capture=None)
    assert guard.refusal(head_object(pair.s3, pair.old, "p.txt"), head_object(pair.s3, pair.new, "p.txt")) is None
    pair.s3.copy_object(Bucket=pair.old, Key="p.txt", CopySource={"Bucket": pair.new, "Key": "p.txt"})
    # and the new side changes once more before the retry: the copy the journal announced is a base
    pair.put(pair.new, "p.txt", b"p a third time from new")
    # THEN the retry applies that change, and the next one (from the other side) applies too
    assert [r.action for r in pair.change(pair.new, "p.txt")] == [COPIED, UNCHANGED]
    assert pair.body(pair.old, "p.txt") == b"p a third time from new"
    pair.put(pair.old, "p.txt", b"p from old at last")
    assert [r.action for r in pair.change(pair.old, "p.txt")] == [COPIED, UNCHANGED]
    assert pair.body(pair.new, "p.txt") == b"p from old at last"
    assert pair.writes == ["CopyObject", "CopyObject", "CopyObject"]
    assert pair.conflicts() == ["s.txt"]


def test_concurrent_writes_of_a_sync_record_never_lose_a_base(pair: Pair) -> None:
    # GIVEN a key's sync record, and a reconcile holding a version of it that another has since moved on
    sync = SyncStore(pair.store.ddb, pair.store.table_name)
    first = sync.add(pair.old, pair.new, "k", {pair.new: {"x"}}, None)

    # WHEN a second addition and a settle are made from stale versions (None: "there was no record")
    second = sync.add(pair.old, pair.new, "k", {pair.new: {"y"}}, None)
    exact = sync.settle(pair.old, pair.new, "k", {pair.old: "a", pair.new: "z"}, first)

    # THEN each was merged into what was there, not written over it
    assert second.bases(pair.new) == {"x", "y"}
    assert not exact
    merged = sync.read(pair.old, pair.new, "k")
    assert merged is not None and dict(merged.sides) == {pair.old: {"a"}, pair.new: {"x", "y", "z"}}

    # and a settle from the current version sets the record to exactly the converged fingerprints
    assert sync.settle(pair.old, pair.new, "k", {pair.old: "a", pair.new: "z"}, merged)
    final = sync.read(pair.old, pair.new, "k")
    assert final is not None and dict(final.sides) == {pair.old: {"a"}, pair.new: {"z"}}
    assert final.version == merged.version + 1


def test_an_outdated_echo_writes_nothing_and_is_no_conflict(pair: Pair) -> None:
    """Found by the chaos run's switch phase: the new side writes B1, reverse carries it to the old side, the
    new side writes B2 before forward sees the old side's event of that copy. The old side holds a synced
    state (B1), the new side moved on (B2): the event is outdated, not a conflict; B2 travels in reverse."""
    pair.steps(STEP_CAPTURE, STEP_REVERSE)
    pair.put(pair.new, "k", b"B1")
    assert pair.deliver(pair.new, "k").action in WROTE
    pair.put(pair.new, "k", b"B2")
    assert pair.deliver(pair.old, "k").action == OUTDATED  # the echo of the B1 copy, arriving late
    assert pair.deliver(pair.new, "k").action in WROTE
    assert pair.body(pair.old, "k") == pair.body(pair.new, "k") == b"B2"
    assert pair.conflicts() == []


def test_a_change_landing_right_after_ferrys_copy_is_no_conflict(pair: Pair, where: AwsTarget) -> None:
    """Found by the chaos run: the new side writes a key the moment ferry's copy of it has landed there (it
    took the key over), before the reconcile that copied it re-reads both sides. That change is on top of the
    copy: outdated for the forward call, carried back by reverse, never a conflict."""
    pair.steps(STEP_CAPTURE, STEP_REVERSE)
    user = make_client("s3", where)
    landed: list[str] = []

    def write_after_copy(**_: Any) -> None:
        if not landed:  # once: the user's write right behind ferry's copy
            landed.append("y")
            user.put_object(Bucket=pair.new, Key="k", Body=b"Y")

    pair.forward.s3.meta.events.register("after-call.s3.CopyObject", write_after_copy)  # the one client it has
    pair.put(pair.old, "k", b"X")
    assert pair.deliver(pair.old, "k").action == OUTDATED
    assert landed and pair.body(pair.new, "k") == b"Y"
    assert pair.deliver(pair.new, "k").action in WROTE
    assert pair.body(pair.old, "k") == b"Y"
    assert pair.conflicts() == []


class _Crash(Exception):
    """A reconcile killed at one point of its work (its event is delivered again)."""


@pytest.mark.parametrize("landed", [True, False], ids=["after-the-copy", "control-before-the-copy"])
def test_a_crash_after_the_copy_then_the_owners_change_is_no_conflict(pair: Pair, landed: bool) -> None:
    """Found by the chaos switch phase under load: ferry's copy landed, the reconcile died before it saw both
    sides equal (settle), and the new side, which took the key over once it arrived, changed it; then the event
    came again. That change is on top of the copy: outdated forward, carried back, no conflict. Control: the
    same crash just before the copy, the new side's change made on its own older state, is a conflict."""
    pair.steps(STEP_CAPTURE, STEP_REVERSE)
    pair.put(pair.old, "k", b"W")
    assert [r.action for r in pair.change(pair.old, "k")] == [COPIED, UNCHANGED]
    crashes: list[str] = []

    def crash(event_name: str, **_: Any) -> None:
        if not crashes:  # once: the event's second delivery runs through
            crashes.append(event_name)
            raise _Crash(event_name)

    copied: list[str] = []
    pair.forward.s3.meta.events.register("after-call.s3.CopyObject", lambda **_: copied.append("x"))
    if landed:
        pair.forward.s3.meta.events.register("before-call.s3.HeadObject", lambda **kw: crash(**kw) if copied else None)
    else:
        pair.forward.s3.meta.events.register("before-call.s3.CopyObject", crash)
    pair.put(pair.old, "k", b"X")
    with pytest.raises(_Crash):
        pair.deliver(pair.old, "k")
    assert pair.body(pair.new, "k") == (b"X" if landed else b"W")
    pair.put(pair.new, "k", b"Y")  # the new side's owner writes it
    if landed:
        assert pair.deliver(pair.old, "k").action == OUTDATED
        assert pair.deliver(pair.new, "k").action in WROTE
        assert pair.body(pair.old, "k") == b"Y"
        assert pair.conflicts() == []
    else:
        assert pair.deliver(pair.old, "k").action == CONFLICT
        assert pair.deliver(pair.new, "k").action == CONFLICT
        assert (pair.body(pair.old, "k"), pair.body(pair.new, "k")) == (b"X", b"Y")
        assert pair.conflicts() == ["k"]


@pytest.mark.parametrize("guarded", [True, False], ids=["no-blind-resend", "control-botocore-resends"])
def test_a_copy_whose_answer_was_lost_is_read_again_not_sent_again(
    pair: Pair, monkeypatch: pytest.MonkeyPatch, guarded: bool
) -> None:
    """Ferry's copy landed, the new side's owner wrote the key at once, and the copy's answer was lost. Sent
    again as it was (botocore's retry), the copy would overwrite that write, and every later event would find
    both sides equal: lost silently (the control). Not resent, both sides are read again: the new side's write
    is on a state ferry cannot tell from a concurrent one, so it is a conflict, reported and both kept."""
    if not guarded:
        monkeypatch.setattr(ferry.aws, "_no_blind_resend", lambda **_: None)
    pair.steps(STEP_CAPTURE, STEP_REVERSE)
    pair.put(pair.old, "k", b"W")
    assert [r.action for r in pair.change(pair.old, "k")] == [COPIED, UNCHANGED]
    lost: list[str] = []

    def land_then_lose_the_answer(request: Any, **_: Any) -> None:
        if not lost:
            lost.append(request.url)
            pair.s3.copy_object(Bucket=pair.new, Key="k", CopySource={"Bucket": pair.old, "Key": "k"})  # it lands
            pair.put(pair.new, "k", b"Y")  # the owner writes the key at once
            raise ConnectionClosedError(endpoint_url=request.url)  # and the answer is lost

    pair.forward.s3.meta.events.register("before-send.s3.CopyObject", land_then_lose_the_answer)
    pair.put(pair.old, "k", b"X")
    forward = pair.deliver(pair.old, "k").action
    assert lost
    if guarded:
        assert forward == CONFLICT
        assert (pair.body(pair.old, "k"), pair.body(pair.new, "k")) == (b"X", b"Y")
        assert pair.conflicts() == ["k"]
    else:
        assert forward == COPIED  # resent: X over Y
        assert [r.action for r in pair.change(pair.new, "k")] == [UNCHANGED]
        assert pair.body(pair.old, "k") == pair.body(pair.new, "k") == b"X"  # Y is gone, and nothing says so
        assert pair.conflicts() == []


def test_a_copy_whose_answer_was_lost_and_that_landed_is_read_as_landed(pair: Pair) -> None:
    """The common case of a lost answer: nobody wrote in between. The re-read finds the copy: converged."""
    pair.steps(STEP_CAPTURE, STEP_REVERSE)
    sent: list[str] = []

    def land_then_lose_the_answer(request: Any, **_: Any) -> None:
        sent.append(request.url)
        if len(sent) == 1:
            pair.s3.copy_object(Bucket=pair.new, Key="k", CopySource={"Bucket": pair.old, "Key": "k"})
            raise ConnectionClosedError(endpoint_url=request.url)

    pair.forward.s3.meta.events.register("before-send.s3.CopyObject", land_then_lose_the_answer)
    pair.put(pair.old, "k", b"X")
    assert [r.action for r in pair.change(pair.old, "k")] == [COPIED, UNCHANGED]
    assert len(sent) == 1  # the copy was not sent again: both sides were read, and found equal
    assert pair.body(pair.new, "k") == b"X" and pair.conflicts() == []


def test_a_conflict_is_called_only_on_states_read_again_after_the_record(pair: Pair) -> None:
    """Found by the chaos switch phase under load: a slow forward reconcile read the old side (N1) and the new
    side (N2); before it judged, reverse carried N2 back, the new side deleted the key, reverse carried the
    delete, and the key's record was settled at "absent" on both sides. Judged on its old reads against that
    record, neither state was a base: a false conflict. The states are read again first: both absent."""
    pair.steps(STEP_CAPTURE, STEP_REVERSE)
    pair.put(pair.old, "k", b"N1")
    assert [r.action for r in pair.change(pair.old, "k")] == [COPIED, UNCHANGED]
    pair.put(pair.new, "k", b"N2")
    taggings: list[str] = []

    def meanwhile(**_: Any) -> None:
        taggings.append("read")
        if len(taggings) == 2:  # the forward reconcile has read the old side (N1) and the new one (N2)
            assert pair.deliver(pair.new, "k").action == COPIED
            pair.s3.delete_object(Bucket=pair.new, Key="k")
            assert pair.deliver(pair.new, "k", "removed").action == DELETED

    pair.forward.s3.meta.events.register("after-call.s3.GetObjectTagging", meanwhile)
    assert pair.deliver(pair.old, "k").action == ABSENT
    assert len(taggings) > 2 and pair.conflicts() == []
