"""ReleaseGate: a local poller's hold, asked at most every ``recheck`` seconds — and afresh by a drain."""

from __future__ import annotations

import pytest

from ferry_dev.hold import ReleaseGate

pytestmark = pytest.mark.unit


class _World:
    def __init__(self) -> None:
        self.now = 0.0
        self.released = False
        self.asked = 0

    def clock(self) -> float:
        return self.now

    def is_released(self) -> bool:
        self.asked += 1
        return self.released


def test_within_the_recheck_interval_the_gate_answers_from_its_last_asking() -> None:
    world = _World()
    gate = ReleaseGate(world.is_released, recheck=0.5, clock=world.clock)
    assert not gate.is_open()
    world.released, world.now = True, 0.2
    # the release came 0.2 s after the last asking: the cached answer is still "held" (negative control)
    assert not gate.is_open() and world.asked == 1
    world.now = 0.6
    assert gate.is_open() and world.asked == 2


def test_asking_afresh_sees_a_release_made_within_the_recheck_interval() -> None:
    # GIVEN a gate asked a moment ago (held) and a release right after
    world = _World()
    gate = ReleaseGate(world.is_released, recheck=60.0, clock=world.clock)
    assert not gate.is_open()
    world.released, world.now = True, 0.1
    # WHEN a drain asks afresh THEN the gate opens now, and times the catch-up from here
    gate.ask_afresh()
    assert gate.is_open(applied=5) and world.asked == 2
    world.now = 2.1
    gate.round_done(busy=False, applied=12)
    assert gate.catch_up is not None and gate.catch_up.applied == 7 and gate.catch_up.seconds == pytest.approx(2.0)


def test_asking_afresh_keeps_a_held_gate_closed() -> None:
    world = _World()
    gate = ReleaseGate(world.is_released, recheck=60.0, clock=world.clock)
    assert not gate.is_open()
    gate.ask_afresh()
    assert not gate.is_open() and world.asked == 2 and gate.was_held
