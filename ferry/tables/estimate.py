"""How long a table copy takes at its budget, by DynamoDB's capacity rules (used before a replay copy
starts: it must finish, and be replayed, inside the stream's 24 hours; docs/adr/0004).

- reads (scan): the table's bytes in eventually consistent 4 KB read units, ``size / 4 KB / 2``, at
  ``read_percent`` of the source's read capacity (or ``on_demand_read_units``);
- writes (batch): one write unit per started KB of each item, ``items × ceil(average size / 1 KB)``,
  at ``write_percent`` of the target's write capacity (or ``on_demand_write_units``).

The copy reads and writes at the same time, so it takes the longer of the two. An export reads no
capacity and an import writes none; AWS publishes no rate for either, so their time is not estimated
here (the release check still refuses to replay a stream that lost records). DescribeTable's
ItemCount and TableSizeBytes are refreshed about every six hours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ferry.spec import READ_SCAN, WRITE_BATCH, BackfillSettings
from ferry.tables.backfill import capacity_budget
from ferry.tables.schema import TableShape


@dataclass(frozen=True)
class CopyEstimate:
    read_seconds: float | None  # None: not estimated (an export reads no capacity)
    write_seconds: float | None  # None: not estimated (an import writes no capacity)

    @property
    def seconds(self) -> float | None:
        known = [s for s in (self.read_seconds, self.write_seconds) if s is not None]
        return max(known) if known else None

    def describe(self) -> str:
        parts = []
        if self.read_seconds is not None:
            parts.append(f"reads {duration(self.read_seconds)}")
        if self.write_seconds is not None:
            parts.append(f"writes {duration(self.write_seconds)}")
        return ", ".join(parts) or "not estimated (export and import)"


def duration(seconds: float) -> str:
    """A duration for a person: seconds, minutes or hours."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def table_bytes(shape: TableShape) -> int:
    return int(shape.raw.get("TableSizeBytes") or 0)


def estimate_copy(source: TableShape, target: TableShape | None, settings: BackfillSettings) -> CopyEstimate:
    """The copy's read and write time at the budget (``target`` None: the target does not exist yet and
    takes the source's capacity, as ferry creates it)."""
    items, size = source.item_count, table_bytes(source)
    read_seconds = write_seconds = None
    if settings.read == READ_SCAN:
        read_units = size / 4096 / 2
        read_seconds = read_units / capacity_budget(
            source, settings.read_percent, settings.on_demand_read_units, write=False
        )
    if settings.write == WRITE_BATCH:
        average = size / items if items else 0.0
        write_units = items * max(1, math.ceil(average / 1024))
        write_seconds = write_units / capacity_budget(
            target or source, settings.write_percent, settings.on_demand_write_units, write=True
        )
    return CopyEstimate(read_seconds, write_seconds)


# --------------------------------------------------------------------------- `ferry plan`'s table formulas
# Pure arithmetic on DescribeTable's figures and the spec's budget: no I/O. The CLI (ferry_cli/plan.py)
# gathers the figures and prices the units these functions count.

PATH_SCAN_BATCH = "replay scan+batch"
PATH_EXPORT_BATCH = "replay export+batch"
PATH_EXPORT_IMPORT = "replay export+import"
PATH_INSERT_ONLY = "insert-only"
PATHS = (PATH_SCAN_BATCH, PATH_EXPORT_BATCH, PATH_EXPORT_IMPORT, PATH_INSERT_ONLY)
READ_UNIT_BYTES = 4096  # one strongly consistent read unit; an eventually consistent read costs half
WRITE_UNIT_BYTES = 1024
GIB = 1024**3


def scan_read_units(size_bytes: float) -> float:
    """Read units of an eventually consistent Scan of ``size_bytes``: ``size / 4 KB / 2``."""
    return max(0.0, size_bytes) / READ_UNIT_BYTES / 2


def units_per_item(average_bytes: float) -> int:
    """Write units of one item of ``average_bytes`` (PutItem, BatchWriteItem or PartiQL INSERT alike)."""
    return max(1, math.ceil(average_bytes / WRITE_UNIT_BYTES))


def item_write_units(items: int, average_bytes: float) -> int:
    """``items × ceil(average / 1 KB)``."""
    return max(0, items) * units_per_item(average_bytes)


def seconds_at(units: float, units_per_second: float) -> float:
    """Time to consume ``units`` at ``units_per_second`` (the budget: percent × capacity)."""
    if units_per_second <= 0:
        raise ValueError("a budget must be positive")
    return units / units_per_second


@dataclass(frozen=True)
class PathEstimate:
    """One copy path's time and the units it consumes. ``None`` seconds: not estimated (export and
    import run at a rate AWS does not publish)."""

    path: str
    read_units: float  # RCU the copy consumes on the source (0 for an export)
    write_units: float  # WCU the copy consumes on the target (0 for an import)
    read_seconds: float | None
    write_seconds: float | None
    export_bytes: int  # billed per GB by the export
    import_bytes: int  # billed per GB (uncompressed) by the import
    glue: bool  # whether a Glue job runs for the copy (not for export+import: ImportTable loads it)
    formula: str

    @property
    def estimated(self) -> bool:
        """Whether ``seconds`` is the whole copy: False when an export or import time is missing."""
        return self.path in (PATH_SCAN_BATCH, PATH_INSERT_ONLY)

    @property
    def seconds(self) -> float | None:
        """The longer of the read and the write side (for an export path: the batch side only, a lower
        bound; for export+import: None)."""
        return CopyEstimate(self.read_seconds, self.write_seconds).seconds


def estimate_path(
    path: str,
    items: int,
    size_bytes: int,
    average_bytes: float,
    read_rate: float,
    write_rate: float,
) -> PathEstimate:
    """The copy of ``items`` items (``size_bytes`` in all, ``average_bytes`` each) by ``path``, at
    ``read_rate`` RCU/s on the source and ``write_rate`` WCU/s on the target (the budgets)."""
    if path not in PATHS:
        raise ValueError(f"unknown path {path!r}")
    per_item = units_per_item(average_bytes)
    rcu = scan_read_units(size_bytes) if path in (PATH_SCAN_BATCH, PATH_INSERT_ONLY) else 0.0
    wcu = float(item_write_units(items, average_bytes)) if path != PATH_EXPORT_IMPORT else 0.0
    read_seconds = seconds_at(rcu, read_rate) if path in (PATH_SCAN_BATCH, PATH_INSERT_ONLY) else None
    write_seconds = seconds_at(wcu, write_rate) if path != PATH_EXPORT_IMPORT else None
    scan = f"scan: {size_bytes:,} B / 4 KB / 2 = {rcu:,.1f} RCU / {read_rate:,.1f} RCU/s"
    write = f"{items:,} × ceil({average_bytes:,.0f} B / 1 KB) = {items:,} × {per_item} WCU / {write_rate:,.1f} WCU/s"
    if path == PATH_SCAN_BATCH:
        formula = f"max({scan}; batch: {write})"
    elif path == PATH_INSERT_ONLY:
        formula = f"max({scan}; conditional PutItem: {write})"
    elif path == PATH_EXPORT_BATCH:
        formula = f"export (0 RCU, time not estimated) + batch: {write}"
    else:
        formula = "export + import: 0 RCU, 0 WCU, billed per GB; time not estimated (AWS publishes no rate)"
    exported = 0 if path in (PATH_SCAN_BATCH, PATH_INSERT_ONLY) else size_bytes
    return PathEstimate(
        path=path,
        read_units=rcu,
        write_units=wcu,
        read_seconds=read_seconds,
        write_seconds=write_seconds,
        export_bytes=exported,
        import_bytes=size_bytes if path == PATH_EXPORT_IMPORT else 0,
        glue=path != PATH_EXPORT_IMPORT,
        formula=formula,
    )


def catch_up_seconds(change_rate: float, copy_seconds: float, replay_rate: float) -> float:
    """Time to replay what a held copy let queue: ``change_rate × copy_seconds`` changes, drained at
    ``replay_rate - change_rate`` (the service keeps changing meanwhile). ``inf`` when the replay is no
    faster than the changes arrive."""
    held = max(0.0, change_rate) * max(0.0, copy_seconds)
    if held == 0:
        return 0.0
    drain = replay_rate - change_rate
    return held / drain if drain > 0 else math.inf


def fits_hold(copy_seconds: float, catch_up: float, max_hold_hours: float) -> bool:
    """Whether copy + catch-up ≤ ``max_hold_hours``."""
    return copy_seconds + catch_up <= max_hold_hours * 3600


def glue_dpu_hours(seconds: float, workers: int, dpu_per_worker: float) -> float:
    """``workers × DPU × hours``, with Glue's 1-minute minimum per job run."""
    return workers * dpu_per_worker * max(seconds, 60.0) / 3600


def invocations(change_rate: float, seconds: float, batch_size: int) -> int:
    """Lambda invocations to deliver ``change_rate × seconds`` records in batches of ``batch_size``
    (full batches: a lower bound when traffic is light and batches leave part-empty)."""
    return math.ceil(max(0.0, change_rate) * max(0.0, seconds) / max(1, batch_size))
