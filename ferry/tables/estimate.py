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
