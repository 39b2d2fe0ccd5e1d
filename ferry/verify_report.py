"""What verify reports, for tables and buckets alike: counts per kind, samples, the full list."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

SAMPLES_RECORDED = 20  # sample keys per kind in the recorded summary


@dataclass(frozen=True)
class VerifyProgress:
    """How far one verify got, for a progress callback (``on_progress``): ``compared`` items or objects
    so far; tables also ``parts_done`` of ``parts`` segments; ``expected`` the count it will likely reach
    (DescribeTable's ItemCount, or the target's listing), None when not known."""

    source: str
    unit: str  # "items" (tables) or "objects" (buckets)
    compared: int
    expected: int | None = None
    parts_done: int = 0
    parts: int = 0


OnVerifyProgress = Callable[[VerifyProgress], None]


class _Difference(Protocol):
    kind: str
    key: str

    def as_dict(self) -> dict[str, Any]: ...


class VerifyReportMixin:
    """Shared by TableVerifyReport and BucketVerifyReport (frozen dataclasses with the fields below)."""

    KINDS: ClassVar[tuple[str, ...]]
    UNIT: ClassVar[str]  # what is counted: "items" (tables), "objects" (buckets)
    PARTS: ClassVar[str]  # what it was read in: "segments" (parallel scan), "" (one listing)
    source: str
    target: str
    source_items: int
    target_items: int
    differences: Any  # a tuple of the module's own Difference type (read only here)
    segments: int
    seconds: float
    repaired: int

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(self.KINDS, 0)
        difference: _Difference
        for difference in self.differences:
            out[difference.kind] = out.get(difference.kind, 0) + 1
        return out

    @property
    def ok(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        """One line in the report's own words: ``source 326 objects, target 326 objects, 1.2s, repaired 1``.
        With a repair, the counts are those after it."""
        parts = [f"source {self.source_items:,} {self.UNIT}", f"target {self.target_items:,} {self.UNIT}"]
        if self.PARTS:
            parts.append(f"{self.segments} {self.PARTS}")
        parts.append(f"{self.seconds:.1f}s")
        if self.repaired:
            parts.append(f"repaired {self.repaired}")
        return ", ".join(parts)

    def samples(self, per_kind: int = 20) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {kind: [] for kind in self.KINDS}
        for d in self.differences:
            keys = out.setdefault(d.kind, [])
            if len(keys) < per_kind:
                keys.append(d.key)
        return out

    def recorded(self) -> dict[str, Any]:
        """What the state table keeps of the last verify (``status``, the report, the cutover verdict):
        counts and up to SAMPLES_RECORDED sample keys per kind, both sides' counts, how long, and ok."""
        return {
            "counts": self.counts(),
            "samples": self.samples(SAMPLES_RECORDED),
            "source_items": self.source_items,
            "target_items": self.target_items,
            "seconds": round(self.seconds, 3),
            "ok": self.ok,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "ok": self.ok,
            "source_items": self.source_items,
            "target_items": self.target_items,
            "segments": self.segments,
            "seconds": round(self.seconds, 3),
            "repaired": self.repaired,
            "counts": self.counts(),
            "differences": [d.as_dict() for d in self.differences],
        }
