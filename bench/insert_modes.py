"""Line 1, insert-only's two write modes side by side on ministack (the emulator whose PartiQL INSERT
refuses an existing key, as DynamoDB's does; on moto ``auto`` keeps PutItem, so there is nothing to compare).

One ministack, one seeded source of bench items (all ten types, 38-digit numbers, ~1 KB; seeded with
BatchWriteItem, not timed). Each run copies it into its own fresh target with ferry's own segment copy
(``plan_backfill`` + ``copy_segment``, the code each Spark task runs), SPLITS segments at once in threads:

- insert_mode put: one PutItem per item with ``attribute_not_exists`` (``write_concurrency`` at once);
- insert_mode partiql: chosen by ``auto`` (its probe must pick partiql here, else the run fails), 25 PartiQL
  INSERTs per BatchExecuteStatement with typed parameters.

Timed from the first segment's start to the last one's end; runs alternate (bench.common.alternate), the
medians are reported with their ratio. After every run the whole target is compared with the source item
by item with DynamoDB's semantics: both modes must be type-exact. No live load and no Spark: this isolates
the write path, which is the only thing the two modes change.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from bench.common import Row, Settings, Timed, alternate, fmt, ratio
from bench.table_source import bench_item, seed
from ferry.clients import AwsTarget, make_client
from ferry.spec import INSERT_PARTIQL, INSERT_PUT, parse_spec
from ferry.tables.backfill import BackfillSummary, copy_segment, plan_backfill
from ferry.tables.state import SEGMENT_DONE, create_state_table
from ferry.wire import items_equal, key_text
from ferry_dev.emulator import MINISTACK, Emulator, use_dummy_credentials
from ferry_dev.workload import HASH_KEY, RANGE_KEY, create_workload_table

REGION = "us-east-1"
SIZE, QUICK_SIZE = 4_000, 1_000
SPLITS = 4
WRITE_CONCURRENCY = 8  # the spec's default
MODES = {INSERT_PARTIQL: "auto", INSERT_PUT: INSERT_PUT}  # the mode measured -> the spec's insert_mode
TARGET_LEAD = 1.5  # partiql's claim: 25 items a request is clearly faster than one, at the same WCU


def _all_items(ddb: Any, table: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        for item in page.get("Items", []):
            found[key_text({HASH_KEY: item[HASH_KEY], RANGE_KEY: item[RANGE_KEY]})] = item
        if "LastEvaluatedKey" not in page:
            return found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def copy_with(endpoint: str, ddb: Any, source: str, mode: str, run: int) -> tuple[float, dict[str, Any]]:
    """Copy ``source`` into a fresh target with insert_mode ``mode`` (put, or partiql via auto): items/s and
    the run's counters, its chosen mode and whether the target equals the source item by item."""
    target, state = f"{source}-{mode}-{run}", f"{source}-state-{mode}-{run}"
    create_workload_table(ddb, target)
    create_state_table(ddb, state)
    try:
        spec = parse_spec(
            {
                "region": REGION,
                "endpoint_url": endpoint,
                "state_table": state,
                "tables": [{"source": source, "target": target, "protocol": "insert-only"}],
                "backfill": {
                    "splits": SPLITS,
                    "write_concurrency": WRITE_CONCURRENCY,
                    "insert_mode": MODES[mode],
                    # far above what the emulator serves: the emulator, not ferry's budget, is the limit
                    "on_demand_read_units": 1_000_000,
                    "on_demand_write_units": 1_000_000,
                    "read_percent": 1.0,
                    "write_percent": 1.0,
                },
            }
        )
        plan = plan_backfill(spec, spec.tables[0], ddb)
        if plan.insert_mode != mode:
            raise RuntimeError(f"insert_mode {MODES[mode]} chose {plan.insert_mode}, not {mode}: is this ministack?")
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=SPLITS) as pool:
            results = tuple(pool.map(lambda s: copy_segment(plan, s), range(SPLITS)))
        seconds = time.monotonic() - started
        summary = BackfillSummary(source, target, results, seconds)
        if summary.failed:
            raise RuntimeError(summary.describe())
        totals = summary.totals()
        want, got = _all_items(ddb, source), _all_items(ddb, target)
        exact = want.keys() == got.keys() and all(items_equal(want[k], got[k]) for k in want)
        details = {
            "mode": plan.insert_mode,
            "seconds": round(seconds, 3),
            "items": int(totals["written"]),
            "exact": exact,
            "put_requests": int(totals["put_requests"]),
            "partiql_requests": int(totals["partiql_requests"]),
            "write_units": totals["write_units"],
            "write_units_by_size": totals["write_units_by_size"],
            "done": all(r.status == SEGMENT_DONE for r in results),
        }
        return summary.written / seconds, details
    finally:  # the emulator is shared (the tests' session emulator): leave nothing behind
        ddb.delete_table(TableName=target)
        ddb.delete_table(TableName=state)


def rows_of(results: dict[str, Timed], items: int) -> list[Row]:
    """The two line-1 rows: partiql against put in items/s (the claim: TARGET_LEAD), and type-exactness."""
    partiql, put = results[INSERT_PARTIQL], results[INSERT_PUT]
    lead = ratio(partiql.median, put.median)
    runs = [d for t in (partiql, put) for d in t.extra]
    exact = bool(runs) and all(d["exact"] and d["items"] == items for d in runs)
    per_request = [d["items"] / d["partiql_requests"] for d in partiql.extra if d["partiql_requests"]]
    note = (
        f"ministack, {items:,} items of ~1 KB, {SPLITS} segments at once, write_concurrency {WRITE_CONCURRENCY}, "
        f"median of {len(partiql.samples)} alternated round(s); partiql chosen by auto's probe; "
        f"{min(per_request, default=0):.1f} items per BatchExecuteStatement"
    )
    return [
        Row(
            line="1",
            measure="insert-only copy on ministack: insert_mode partiql (25 INSERTs a request), items/s",
            ferry=fmt(partiql.median, "items/s"),
            other="insert_mode put (conditional PutItem per item)",
            other_value=fmt(put.median, "items/s"),
            lead=lead,
            target=f"≥ {TARGET_LEAD:g}×",
            met=None if lead is None else lead >= TARGET_LEAD,
            note=note,
        ),
        Row(
            line="1",
            measure="insert-only copy on ministack: every item type-exact in both insert modes",
            ferry="yes" if exact else "NO",
            target="every run exact",
            met=exact,
            note=f"{len(runs)} runs compared item by item with the source (DynamoDB semantics)",
        ),
    ]


def run(settings: Settings) -> tuple[list[Row], dict[str, Any]]:
    use_dummy_credentials()
    items = QUICK_SIZE if settings.quick else SIZE
    workdir = Path(settings.workdir) / "insert_modes"
    workdir.mkdir(parents=True, exist_ok=True)
    with Emulator(kind=MINISTACK, log_path=str(workdir / "emulator.log")) as emulator:
        ddb = make_client("dynamodb", AwsTarget(REGION, emulator.endpoint_url))
        source = "bench-insert-modes"
        create_workload_table(ddb, source)
        seed(ddb, source, (bench_item(i) for i in range(items)))
        approaches: dict[str, Callable[[int], tuple[float, dict[str, Any]]]] = {
            mode: partial(copy_with, emulator.endpoint_url, ddb, source, mode) for mode in MODES
        }
        results = alternate(approaches, settings.repeats)
    rows = rows_of(results, items)
    details = {
        "emulator": MINISTACK,
        "items": items,
        "samples": {mode: {"items_per_second": t.samples, "runs": t.extra} for mode, t in results.items()},
    }
    return rows, details
