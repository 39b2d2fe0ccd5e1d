"""The local pollers' hold (docs/adr/0004): while a replay copy runs, its consumer reads nothing and
commits no checkpoint; once the release lets go (the phase in the state table is no longer ``hold``),
it applies everything from the start of the stream or queue.

:class:`ReleaseGate` is what a poller asks before each round. It also times the catch-up: from the
moment the gate opened to the first round that found nothing left, and how many records or messages
were applied in between (the held backlog, plus what arrived during the catch-up).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class CatchUp:
    """A released consumer's catch-up: what it applied from its release until it first had nothing left."""

    applied: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.applied / self.seconds if self.seconds > 0 else 0.0


class ReleaseGate:
    """Closed while ``released()`` says no (asked at most every ``recheck`` seconds); open for good once
    it says yes."""

    def __init__(
        self, released: Callable[[], bool], *, recheck: float = 0.5, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._released = released
        self._recheck = recheck
        self._clock = clock
        self._lock = threading.Lock()
        self._asked_at: float | None = None
        self.opened_at: float | None = None
        self.was_held = False  # closed at least once: there was a hold to catch up on
        self._applied_at_open = 0
        self.catch_up: CatchUp | None = None

    def is_open(self, applied: int = 0) -> bool:
        """Whether the poller may read now. ``applied``: what it has applied so far (for the catch-up)."""
        with self._lock:
            if self.opened_at is not None:
                return True
            now = self._clock()
            if self._asked_at is not None and now - self._asked_at < self._recheck:
                return False
            self._asked_at = now
            if not self._released():
                self.was_held = True
                return False
            self.opened_at, self._applied_at_open = now, applied
            return True

    def ask_afresh(self) -> None:
        """Make the next :meth:`is_open` ask ``released()`` now rather than answer from the last asking.
        A drain calls it first: the release may have come within the recheck interval, and a drain that
        took the old answer would find a held consumer with "nothing to do" and stop before the catch-up."""
        with self._lock:
            self._asked_at = None

    def round_done(self, busy: bool, applied: int) -> None:
        """After a round: the first one that found nothing to do ends the catch-up."""
        with self._lock:
            if self.opened_at is None or self.catch_up is not None or busy or not self.was_held:
                return
            self.catch_up = CatchUp(applied - self._applied_at_open, self._clock() - self.opened_at)
