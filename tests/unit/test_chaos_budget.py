"""The chaos campaign keeps to its budget: a seed starts only if it would end inside it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ferry_dev import chaos
from ferry_dev.chaos import SeedResult

pytestmark = pytest.mark.unit


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


def _campaign(monkeypatch: pytest.MonkeyPatch, seconds_per_seed: dict[int, float], minutes: float) -> list[int]:
    clock = _Clock()
    monkeypatch.setattr(chaos.time, "monotonic", clock.monotonic)

    def run_seed(seed: int, **_: Any) -> Iterator[SeedResult]:
        clock.now += seconds_per_seed[seed]
        yield SeedResult(seed)

    monkeypatch.setattr(chaos, "run_seed", run_seed)
    said: list[str] = []
    results = chaos.run_campaign(list(seconds_per_seed), minutes=minutes, say=said.append)
    return [r.seed for r in results]


def test_a_seed_that_would_overrun_the_budget_is_not_started(monkeypatch: pytest.MonkeyPatch) -> None:
    # 150 s a seed, 9 minutes: three end at 450 s; a fourth would end at 600 s > 540 s.
    assert _campaign(monkeypatch, {s: 150.0 for s in range(1, 9)}, minutes=9) == [1, 2, 3]


def test_the_slowest_seed_so_far_sets_the_pace(monkeypatch: pytest.MonkeyPatch) -> None:
    # 200 s, then 100 s: at 300 s the next would end at 500 s (inside 540 s); at 400 s, at 600 s.
    assert _campaign(monkeypatch, {1: 200.0, 2: 100.0, 3: 100.0, 4: 100.0}, minutes=9) == [1, 2, 3]


def test_the_first_seed_always_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _campaign(monkeypatch, {1: 900.0, 2: 1.0}, minutes=1) == [1]
