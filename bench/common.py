"""What every benchmark line shares: the row it reports, side-by-side alternation with medians,
the printed table and the JSON file. Ratios are the claims; absolute numbers depend on the machine."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ferry_dev.emulator import MOTO, emulator_kind


@dataclass(frozen=True)
class Settings:
    quick: bool = False
    repeats: int = 3  # pairs are run alternately this many times; medians are reported
    workdir: Path = Path("build/bench")


@dataclass(frozen=True)
class Row:
    """One printed line: ferry's figure against one other approach.

    ``lead`` is how far ferry is ahead (> 1: ahead), already oriented so that higher is better
    for ferry whatever the unit (for a cost, baseline / ferry). ``met`` is the target's verdict,
    None where the line has no target."""

    line: str
    measure: str
    ferry: str
    other: str = ""
    other_value: str = ""
    lead: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""


@dataclass
class Timed:
    """Several runs of one approach: the median and every sample, for the JSON."""

    samples: list[float] = field(default_factory=list)
    extra: list[dict[str, Any]] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")


def alternate(approaches: dict[str, Callable[[int], tuple[float, dict[str, Any]]]], repeats: int) -> dict[str, Timed]:
    """Run each approach once per round, rotating the order every round (the machine is shared and
    noisy: no approach always gets the warm or the cold slot). Each call returns (value, details)."""
    results = {name: Timed() for name in approaches}
    names = list(approaches)
    for round_ in range(repeats):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            value, details = approaches[name](round_)
            results[name].samples.append(value)
            results[name].extra.append(details)
    return results


def ratio(ferry: float, other: float) -> float | None:
    if not other or other != other or ferry != ferry:  # zero or NaN
        return None
    return ferry / other


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def write_json(path: Path, rows: list[Row], details: dict[str, Any], settings: Settings) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "machine": machine(),
        "quick": settings.quick,
        "repeats": settings.repeats,
        "rows": [asdict(r) for r in rows],
        "details": details,
    }
    path.write_text(json.dumps(body, indent=2, default=str) + "\n")


def fmt(value: float, unit: str = "", digits: int = 0) -> str:
    if value != value:
        return "n/a"
    return f"{value:,.{digits}f}{(' ' + unit) if unit else ''}"


def bench_emulator() -> str:
    """The emulator the bench measures on: ``FERRY_EMULATOR``, else moto. BENCHMARKS.md's numbers are
    moto's, and on ministack line 5 cannot measure fidelity (its CreateMultipartUpload drops tags:
    docs/emulators.md); line 1's insert modes run on ministack, which enforces insert-only INSERTs."""
    return emulator_kind(default=MOTO)
