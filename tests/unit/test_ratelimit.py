"""ferry.ratelimit.CapacityBucket under a simulated clock: pay-after-the-fact token bucket."""

from __future__ import annotations

import math
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ferry.ratelimit import CapacityBucket

pytestmark = pytest.mark.unit


class FakeTime:
    """A simulated monotonic clock; ``sleep`` advances it (by at least one tick, like a real sleep)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, f"slept {seconds!r}: a bucket never needs to wait negative time"
        with self._lock:
            self.sleeps.append(seconds)
            before = self.now
            self.now += seconds
            if self.now == before:  # below the float resolution of `now`
                self.now = math.nextafter(before, math.inf)

    def work(self, seconds: float) -> None:
        """Time the caller spends outside the bucket (making the request, processing the page)."""
        with self._lock:
            self.now += seconds


def make(rate: float, burst: float | None = None, start: float = 1000.0) -> tuple[CapacityBucket, FakeTime]:
    fake = FakeTime(start)
    return CapacityBucket(rate, burst, clock=fake.clock, sleep=fake.sleep), fake


def tolerance(*values: float) -> float:
    return 1e-9 * max(1.0, *(abs(v) for v in values))


def test_rejects_non_positive_rate() -> None:
    for rate in (0, -1, -0.5):
        with pytest.raises(ValueError):
            CapacityBucket(rate)


def test_burst_defaults_to_rate_but_at_least_one() -> None:
    assert CapacityBucket(50).burst == 50
    assert CapacityBucket(0.25).burst == 1.0
    assert CapacityBucket(50, 7).burst == 7


def test_does_not_wait_while_balance_is_non_negative() -> None:
    bucket, fake = make(rate=10, burst=25)
    for cost in (5, 10, 10):  # exactly the burst: balance reaches 0, still not in debt
        bucket.acquire()
        bucket.charge(cost)
    bucket.acquire()
    assert fake.sleeps == []
    assert bucket.waited_seconds == 0
    assert bucket.charged_units == 25


def test_waits_out_a_debt() -> None:
    bucket, fake = make(rate=10, burst=10)
    bucket.acquire()
    bucket.charge(40)  # one big page: 30 units of debt
    start = fake.now
    bucket.acquire()
    assert fake.now - start == pytest.approx(3.0)  # 30 units at 10 units/s
    assert bucket.waited_seconds == pytest.approx(3.0)
    assert sum(fake.sleeps) == pytest.approx(3.0)
    # the debt is paid: the next request goes at once
    fake.sleeps.clear()
    bucket.acquire()
    assert fake.sleeps == []


def test_time_spent_working_pays_the_debt() -> None:
    bucket, fake = make(rate=10, burst=10)
    bucket.acquire()
    bucket.charge(30)  # 20 in debt
    fake.work(2.0)  # the caller was busy for as long as the debt takes to refill
    bucket.acquire()
    assert fake.sleeps == []
    fake.work(0.5)
    bucket.charge(1)
    bucket.acquire()
    assert fake.sleeps == []  # balance 5 - 1 = 4 >= 0


def test_idle_time_does_not_bank_more_than_the_burst() -> None:
    bucket, fake = make(rate=10, burst=10)
    fake.work(3600)  # an hour idle
    bucket.acquire()
    bucket.charge(30)  # 10 of balance, not 36000: 20 in debt
    start = fake.now
    bucket.acquire()
    assert fake.now - start == pytest.approx(2.0)


# Consumed capacity comes in halves and wholes; subnormal floats would only test float underflow.
costs = st.floats(min_value=0, max_value=500, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(min_value=0.5, max_value=5000, allow_nan=False),
    burst=st.one_of(st.none(), st.floats(min_value=1, max_value=1000, allow_nan=False)),
    steps=st.lists(st.tuples(costs, st.floats(min_value=0, max_value=5, allow_nan=False)), min_size=1, max_size=40),
)
def test_admitted_load_never_exceeds_rate_times_elapsed_plus_burst(
    rate: float, burst: float | None, steps: list[tuple[float, float]]
) -> None:
    """Acquire, pay the real cost (sometimes more than the burst), work a while; repeat.

    The cost of a request is known only after it is made, so one request may overdraw. The
    guarantee is about what is *let through*: whenever ``acquire`` returns, everything charged
    so far is at most ``rate * elapsed + burst``. Also: a single acquire sleeps a bounded number
    of times (no busy loop), and ``waited_seconds`` is the time actually slept.
    """
    bucket, fake = make(rate, burst)
    start = fake.now
    for cost, work in steps:
        sleeps_before = len(fake.sleeps)
        bucket.acquire()
        assert len(fake.sleeps) - sleeps_before <= 3
        elapsed = fake.now - start
        allowed = bucket.rate * elapsed + bucket.burst
        assert bucket.charged_units <= allowed + tolerance(allowed, bucket.charged_units)
        bucket.charge(cost)
        fake.work(work)
    bucket.acquire()
    elapsed = fake.now - start
    allowed = bucket.rate * elapsed + bucket.burst
    assert bucket.charged_units <= allowed + tolerance(allowed)
    assert bucket.charged_units == pytest.approx(sum(c for c, _ in steps))
    assert bucket.waited_seconds == pytest.approx(sum(fake.sleeps))


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(min_value=0.5, max_value=5000, allow_nan=False),
    burst=st.floats(min_value=1, max_value=1000, allow_nan=False),
    charges=st.lists(costs, min_size=1, max_size=40),
)
def test_back_to_back_requests_wait_exactly_for_the_debt(rate: float, burst: float, charges: list[float]) -> None:
    """With no time spent between requests the bucket is not too strict either: the run takes
    exactly as long as paying everything but the burst at ``rate`` (the last charge is paid by
    the final acquire)."""
    bucket, fake = make(rate, burst)
    start = fake.now
    for cost in charges:
        bucket.acquire()
        bucket.charge(cost)
    bucket.acquire()
    expected = max(0.0, (sum(charges) - burst) / rate)
    assert fake.now - start == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_thread_safety_smoke() -> None:
    bucket, fake = make(rate=1_000_000, burst=100)
    threads_n, per_thread = 8, 500
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(per_thread):
                bucket.acquire()
                bucket.charge(1.0)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert bucket.charged_units == threads_n * per_thread
    # balance = burst + refilled - charged: the clock moved only by sleeps, so every unit over the
    # burst was slept for (no charge was lost to a race on the balance)
    elapsed = fake.now - 1000.0
    assert bucket.charged_units <= bucket.rate * elapsed + bucket.burst + threads_n + 1e-6
    assert elapsed >= (bucket.charged_units - bucket.burst - threads_n) / bucket.rate - 1e-9
