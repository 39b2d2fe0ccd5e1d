"""A token bucket that is paid in consumed capacity units, after the fact.

DynamoDB tells how much a request cost only in its response (``ConsumedCapacity``), so the
bucket lets a caller go while its balance is non-negative and then charges the real cost; a
large page leaves a debt that the following requests wait out. Over any window the average
stays at ``rate`` units per second, with bursts bounded by ``burst``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class CapacityBucket:
    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(rate, 1.0))
        self._clock = clock
        self._sleep = sleep
        self._balance = self.burst
        self._stamp = clock()
        self._lock = threading.Lock()
        self.waited_seconds = 0.0
        self.charged_units = 0.0

    def _refill(self) -> None:
        now = self._clock()
        self._balance = min(self.burst, self._balance + (now - self._stamp) * self.rate)
        self._stamp = now

    def acquire(self) -> None:
        """Block until the balance is non-negative (the previous requests' debt is paid)."""
        while True:
            with self._lock:
                self._refill()
                if self._balance >= 0:
                    return
                wait = -self._balance / self.rate
            self.waited_seconds += wait
            self._sleep(wait)

    def charge(self, units: float) -> None:
        """Pay for a request that has been made."""
        with self._lock:
            self._refill()
            self._balance -= units
            self.charged_units += units
