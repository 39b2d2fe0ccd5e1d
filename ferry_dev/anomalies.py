"""Delivery anomalies the local pollers can be told to produce, as AWS may: at-least-once SQS
delivery (duplicates), late and out-of-order deliveries, and stream batches delivered again."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

from ferry.errors import SpecError


@dataclass(frozen=True)
class DeliveryAnomalies:
    duplicate: float = 0.0  # SQS: a handled message is made visible again instead of deleted
    delay: float = 0.0  # SQS: a received message is put back for 1-3 s before it is handled
    reorder: bool = False  # SQS: a batch's messages reach the handler shuffled
    redeliver: float = 0.0  # streams: a handled batch is delivered once more (checkpoint not advanced)
    seed: int = 0
    _rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)

    def chance(self, probability: float) -> bool:
        with self._lock:
            return probability > 0 and self._rng.random() < probability

    def shuffle(self, items: list[Any]) -> None:
        with self._lock:
            self._rng.shuffle(items)

    def uniform(self, low: float, high: float) -> float:
        with self._lock:
            return self._rng.uniform(low, high)

    @classmethod
    def parse(cls, text: str) -> DeliveryAnomalies:
        """``duplicate=0.2,delay=0.1,reorder,redeliver=0.1,seed=3`` (every part optional)."""
        values: dict[str, float | int | bool] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, value = part.partition("=")
            if name == "reorder" and not value:
                values["reorder"] = True
                continue
            if name not in ("duplicate", "delay", "redeliver", "seed"):
                raise SpecError("--anomalies", f"unknown anomaly {name!r} (duplicate, delay, reorder, redeliver, seed)")
            try:
                number = int(value) if name == "seed" else float(value)
            except ValueError:
                raise SpecError("--anomalies", f"{part!r}: {value!r} is not a number") from None
            if name != "seed" and not 0 <= number < 1:
                raise SpecError("--anomalies", f"{name} must be a probability in [0, 1), got {value}")
            values[name] = number
        return cls(**values)  # type: ignore[arg-type]
