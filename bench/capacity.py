"""Line 2 — capacity adherence: ferry's backfill against tables that throttle like DynamoDB.

A :class:`bench.throttle_proxy.ThrottleProxy` in front of the emulator makes the source and every
target a provisioned table of C = 100 write units/s and C' = 200 read units/s (1-second burst); the
tables are also created PROVISIONED with those numbers in the emulator, so ferry's budget
(DescribeTable × percent) reads them. Items are exactly 1,000 bytes (every attribute type, shallow
nesting): one write unit each, so C is 100 items/s and ferry's target p·C is 50 items/s.

Why C = 100 and not more: the emulator itself accepts only ~180-300 PutItem/s from the naive copy's
10 threads (this 2-core machine, depending on load). With C = 200 the naive copy never exceeded C and
was never throttled (measured: 0 of 1,002 requests), which would compare nothing; at C = 100 it
always pushes past C, as an unpaced copy does on a real table.

Per round, each on a fresh target behind the same proxy and source (order rotating):
- ferry: the Glue script's ``main`` on local Spark (``glue_jobs.table_backfill``, default 8 splits,
  write_percent = read_percent = 0.5), endpoint = the proxy;
- naive: a sequential boto3 resource ``Table.scan``, each page's items written with ``put_item`` by
  a pool of 10 threads (boto3's default connection pool size), with botocore's default retry
  configuration, whatever this botocore resolves it to (recorded in the details; botocore 1.44's
  default is "standard": 4 attempts for DynamoDB and a client-wide retry quota, not the old "legacy"
  mode's 10 attempts). A put that still fails is not redone: that item is lost.

Measured from the proxy: the sustained write rate (accepted items from the first accepted write to
the last — Spark's start-up is outside that window) as a fraction of p·C; the throttled share of
the requests each approach sent to the provisioned tables; and the items lost (source keys missing
in the target, by a key-only scan of both). Key sets rather than ``ferry verify``: a full scan of
these items costs the emulator ~1.5 ms per item, which would double the line's time; type
exactness is line 1's measure.

The same ferry run checks ``ferry plan``: before the copy, the plan's own function (``build_plan``)
reads the tables through the proxy and predicts the copy time of the path the run takes (insert-only:
2,000 items × 1 WCU / (p·C) = 40 s); the row compares it with the proxy's write window (first to last
accepted write), target within ±20 %.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from bench.common import Row, Settings, Timed, alternate, bench_emulator, fmt
from bench.throttle_proxy import AcceptedWrite, OperationStats, ThrottleProxy
from ferry.aws import error_code
from ferry.clients import AwsTarget, make_client
from ferry.spec import Spec, parse_spec
from ferry.tables.setup import init_tables
from ferry.wire import Item, item_size
from ferry_dev.emulator import Emulator, use_dummy_credentials

REGION = "us-east-1"
WRITE_CAPACITY = 100  # C: write units/s of every emulated table
READ_CAPACITY = 200  # C': read units/s
PERCENT = 0.5  # ferry's write_percent and read_percent (p)
SPLITS = 8  # ferry's default
BURST_SECONDS = 1.0
ITEM_BYTES = 1000  # one write unit
ITEMS = 2000  # 40 s at p·C; plus the naive copy (~25 s at C), Spark's start and setup: ~90 s
QUICK_ITEMS = 200  # 4 s at p·C; the quick run's time is mostly Spark's start-up
NAIVE_THREADS = 10
SOURCE = "cap-source"
KEY = ("pk", "sk")


def bench_item(rng: random.Random, index: int) -> Item:
    """An item of exactly ``ITEM_BYTES`` bytes with all ten attribute types, nested one level deep
    (the emulator is slow on deep nesting)."""
    item: Item = {
        "pk": {"S": f"item#{index:07d}"},
        "sk": {"N": str(index % 7)},
        "name": {"S": f"naïve 日本語 🚢 {index}"},
        "big": {"N": "12345678901234567890123456789012345678"},
        "tiny": {"N": "-1E-130"},
        "blob": {"B": rng.randbytes(16)},
        "tags": {"SS": ["a", f"t{rng.randint(0, 9)}"]},
        "scores": {"NS": ["1", "-0.5", str(rng.randint(2, 999))]},
        "chunks": {"BS": [rng.randbytes(4), rng.randbytes(5)]},
        "active": {"BOOL": rng.random() < 0.5},
        "nothing": {"NULL": True},
        "profile": {"M": {"a": {"S": "x"}, "n": {"N": "3.14"}, "b": {"B": rng.randbytes(8)}, "e": {"M": {}}}},
        "history": {"L": [{"S": "y"}, {"N": str(index)}, {"B": rng.randbytes(3)}, {"L": []}]},
        "padding": {"S": ""},
    }
    item["padding"] = {"S": "p" * (ITEM_BYTES - item_size(item))}
    return item


def create_provisioned_table(ddb: Any, name: str, *, stream: bool = False) -> None:
    kwargs: dict[str, Any] = {
        "TableName": name,
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        "ProvisionedThroughput": {"ReadCapacityUnits": READ_CAPACITY, "WriteCapacityUnits": WRITE_CAPACITY},
    }
    if stream:  # ferry needs the source's stream (its live path); the backfill does not read it
        kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    ddb.create_table(**kwargs)
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def seed(ddb: Any, table: str, count: int) -> None:
    rng = random.Random(2)
    for start in range(0, count, 25):
        pending: dict[str, Any] = {
            table: [{"PutRequest": {"Item": bench_item(rng, i)}} for i in range(start, min(count, start + 25))]
        }
        while pending:
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


def table_keys(ddb: Any, table: str) -> set[tuple[str, str]]:
    """Every key of ``table`` (a key-only consistent scan, straight to the emulator)."""
    keys: set[tuple[str, str]] = set()
    kwargs: dict[str, Any] = {"TableName": table, "ProjectionExpression": "pk, sk", "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        keys.update((i["pk"]["S"], i["sk"]["N"]) for i in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return keys
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


# --------------------------------------------------------------------------- what the proxy saw


@dataclass(frozen=True)
class WriteRate:
    items: int
    window: float  # seconds from the first accepted write to the last
    per_second: float  # items accepted after the first, per second of the window
    timeline: tuple[float, ...]  # write units accepted in each second from the first accepted write


def write_rate(accepted: list[AcceptedWrite]) -> WriteRate:
    if not accepted:
        return WriteRate(0, 0.0, float("nan"), ())
    ordered = sorted(accepted, key=lambda w: w.at)
    first, last = ordered[0].at, ordered[-1].at
    items = sum(w.items for w in ordered)
    window = last - first
    per_second = (items - ordered[0].items) / window if window > 0 else float("nan")
    timeline = [0.0] * (int(window) + 1)
    for w in ordered:
        timeline[int(w.at - first)] += w.units
    return WriteRate(items, window, per_second, tuple(timeline))


def throttle_counts(stats: dict[str, OperationStats]) -> tuple[int, int]:
    """(requests, throttled) to the provisioned tables."""
    requests = sum(s.forwarded + s.throttled for s in stats.values())
    return requests, sum(s.throttled for s in stats.values())


# --------------------------------------------------------------------------- the two approaches


@dataclass
class Bench:
    emulator: Emulator
    proxy: ThrottleProxy
    ddb: Any  # straight to the emulator: setup and loss checks are not charged
    source_keys: set[tuple[str, str]]

    def fresh_target(self, name: str) -> None:
        """Provision the source again (a full bucket for every run) and the new target."""
        self.proxy.provision(SOURCE, READ_CAPACITY, WRITE_CAPACITY)
        self.proxy.provision(name, READ_CAPACITY, WRITE_CAPACITY)
        self.proxy.reset_stats()

    def outcome(self, target: str, seconds: float, extra: dict[str, Any]) -> dict[str, Any]:
        rate = write_rate(self.proxy.accepted_writes(target))
        requests, throttled = throttle_counts(self.proxy.stats())
        missing = len(self.source_keys - table_keys(self.ddb, target))
        return {
            "target": target,
            "seconds": round(seconds, 2),
            "items_accepted": rate.items,
            "window_seconds": round(rate.window, 2),
            "write_rate": round(rate.per_second, 2),
            "of_p_c": round(rate.per_second / (PERCENT * WRITE_CAPACITY), 4),
            "requests": requests,
            "throttled": throttled,
            "throttled_share": throttled / requests if requests else float("nan"),
            "lost": missing,
            "per_operation": {k: vars(v) for k, v in sorted(self.proxy.stats().items())},
            "write_units_timeline": list(rate.timeline),
            **extra,
        }


def ferry_spec(bench: Bench, target: str, state: str) -> Spec:
    return parse_spec(
        {
            "region": REGION,
            "endpoint_url": bench.emulator.endpoint_url,
            "state_table": state,
            "tables": [{"source": SOURCE, "target": target, "protocol": "insert-only"}],
            "backfill": {"splits": SPLITS, "read_percent": PERCENT, "write_percent": PERCENT},
        }
    )


def run_ferry(bench: Bench, round_: int) -> tuple[float, dict[str, Any]]:
    from ferry.jobs import TABLE
    from glue_jobs.local_spark import run_locally

    target, state = f"cap-ferry-{round_}", f"cap-state-{round_}"
    spec = ferry_spec(bench, target, state)
    init_tables(spec, bench.ddb)  # target mirrors the source: PROVISIONED, C' RCU and C WCU
    bench.fresh_target(target)
    via_proxy = replace(spec, endpoint_url=bench.proxy.endpoint_url)
    planned = predicted_copy(via_proxy)  # `ferry plan`'s own code, read through the proxy before the copy
    started = time.monotonic()
    summary = run_locally(TABLE, via_proxy, SOURCE)  # failed segments: the losses below show what it cost
    seconds = time.monotonic() - started
    error = summary.describe() if summary.failed else ""
    details = bench.outcome(target, seconds, {"summary": summary.describe().splitlines()[:1], "error": error})
    # How many tasks ran at once on average: each holds p·C / splits of the budget.
    busy = sum(r.seconds for r in summary.results)
    details["mean_concurrent_tasks"] = round(busy / details["window_seconds"], 2) if details["window_seconds"] else None
    details["write_units_per_task"] = PERCENT * WRITE_CAPACITY / SPLITS
    details["plan"] = planned
    return details["of_p_c"], details


def run_naive(bench: Bench, round_: int) -> tuple[float, dict[str, Any]]:
    import boto3
    import botocore.session

    target = f"cap-naive-{round_}"
    create_provisioned_table(bench.ddb, target)
    bench.fresh_target(target)
    resource = boto3.session.Session().resource("dynamodb", region_name=REGION, endpoint_url=bench.proxy.endpoint_url)
    source, destination = resource.Table(SOURCE), resource.Table(target)
    failures: Counter[str] = Counter()
    aborted = ""
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=NAIVE_THREADS) as pool:
            kwargs: dict[str, Any] = {}
            while True:
                page = source.scan(**kwargs)
                futures = [pool.submit(destination.put_item, Item=item) for item in page["Items"]]
                for future in futures:
                    try:
                        future.result()
                    except Exception as exc:  # the naive copy logs and moves on: the item is lost
                        failures[error_code(exc) or type(exc).__name__] += 1
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    except Exception as exc:  # the scan itself gave up: everything not yet copied is lost
        aborted = f"{error_code(exc) or type(exc).__name__}: {exc}"
    seconds = time.monotonic() - started
    config = botocore.session.get_session()
    extra = {
        "failed_puts": sum(failures.values()),
        "failures": dict(failures),
        "aborted": aborted,
        "retry_mode": config.get_config_variable("retry_mode"),
        "max_attempts_config": config.get_config_variable("max_attempts"),
    }
    details = bench.outcome(target, seconds, extra)
    return details["of_p_c"], details


def predicted_copy(spec: Spec) -> dict[str, Any]:
    """`ferry plan`'s prediction for the path this line's ferry run takes (protocol insert-only: scan +
    conditional PutItem), by the function the command itself calls (``ferry_cli.plan.build_plan``)."""
    from ferry_cli.plan import PlanOptions, build_plan

    table = build_plan(spec, PlanOptions())["tables"][0]
    path = next(p for p in table["paths"] if p["path"] == table["recommended"]["path"])
    return {"path": path["path"], "seconds": path["seconds"], "formula": path["formula"], "items": table["items"]}


def plan_row(predicted: float, window: float, total: float) -> Row:
    """The plan's predicted copy time against the measured one: the proxy's window from the first accepted
    write to the last (the paced copy; Spark's start-up and the job's end are outside it)."""
    ratio = window / predicted if predicted else float("nan")
    return Row(
        line="2",
        measure="plan's predicted copy time vs measured",
        ferry=f"{window:.1f} s measured / {predicted:.1f} s predicted = {ratio:.2f}",
        other="whole run",
        other_value=f"{total:.1f} s",
        target="within ±20 %",
        met=0.8 <= ratio <= 1.2,
        note="measured: first to last write the proxy accepted (Spark's start-up, the scan's first page and "
        "the job's end excluded; the whole run with them is shown beside); predicted: `ferry plan` "
        "(build_plan) read through the proxy before the run, no start-up term",
    )


# --------------------------------------------------------------------------- the line


def _median(timed: Timed, key: str) -> float:
    values = [float(v) for d in timed.extra if (v := d.get(key)) is not None and v == v]  # drop None, NaN
    return statistics.median(values) if values else float("nan")


def _pct(value: float, digits: int = 1) -> str:
    return "n/a" if value != value else f"{value * 100:.{digits}f} %"


def run(settings: Settings) -> tuple[list[Row], dict[str, Any]]:
    use_dummy_credentials()
    count = QUICK_ITEMS if settings.quick else ITEMS
    # One round, whatever settings.repeats says: a round takes ~90 s, and each figure is already an
    # average over a window the proxy paces (the machine's noise moves it little); said in the details.
    rounds = 1
    with (
        Emulator(kind=bench_emulator()) as emulator,
        ThrottleProxy(emulator.endpoint_url, burst_seconds=BURST_SECONDS) as proxy,
    ):
        ddb = make_client("dynamodb", AwsTarget(REGION, emulator.endpoint_url))
        create_provisioned_table(ddb, SOURCE, stream=True)
        seed(ddb, SOURCE, count)
        bench = Bench(emulator, proxy, ddb, table_keys(ddb, SOURCE))
        approaches: dict[str, Callable[[int], tuple[float, dict[str, Any]]]] = {
            "ferry": lambda r: run_ferry(bench, r),
            "naive": lambda r: run_naive(bench, r),
        }
        results = alternate(approaches, rounds)
    ferry, naive = results["ferry"], results["naive"]
    target_rate = PERCENT * WRITE_CAPACITY
    ferry_share, naive_share = _median(ferry, "throttled_share"), _median(naive, "throttled_share")
    ferry_lost, naive_lost = max(d["lost"] for d in ferry.extra), max(d["lost"] for d in naive.extra)
    ferry_seconds, naive_seconds = _median(ferry, "seconds"), _median(naive, "seconds")
    scenario = f"C={WRITE_CAPACITY} WCU/s, C'={READ_CAPACITY} RCU/s, p={PERCENT}, {count:,} items of 1 KB"
    rows = [
        Row(
            line="2",
            measure="sustained write rate / p·C",
            ferry=f"{_pct(ferry.median, 0)} ({_median(ferry, 'write_rate'):.0f} items/s of {target_rate:.0f})",
            other="naive (ignores p)",
            other_value=f"{_pct(naive.median, 0)} ({_median(naive, 'write_rate'):.0f} items/s)",
            target="≥ 90 % of p·C",
            met=ferry.median >= 0.9,
            note=f"{scenario}; each Spark task holds p·C/{SPLITS} = {PERCENT * WRITE_CAPACITY / SPLITS:g} WCU/s, "
            f"{_median(ferry, 'mean_concurrent_tasks'):.1f} tasks ran at once on average",
        ),
        Row(
            line="2",
            measure="throttled share of requests",
            ferry=_pct(ferry_share, 2),
            other="naive",
            other_value=_pct(naive_share, 2),
            lead=(naive_share / ferry_share) if ferry_share else None,
            target="< 2 %",
            met=ferry_share < 0.02,
        ),
        Row(
            line="2",
            measure="items lost",
            ferry=fmt(ferry_lost),
            other="naive",
            other_value=fmt(naive_lost),
            target="0",
            met=ferry_lost == 0,
        ),
        Row(
            line="2",
            measure="copy time (ferry paced at p·C)",
            ferry=f"{ferry_seconds:.1f} s",
            other="naive",
            other_value=f"{naive_seconds:.1f} s",
            lead=naive_seconds / ferry_seconds if ferry_seconds else None,
            note="ferry leaves (1-p)·C to the application by design; the naive copy takes all of C",
        ),
    ]
    planned = ferry.extra[0].get("plan") or {}
    rows.append(plan_row(float(planned.get("seconds") or 0.0), _median(ferry, "window_seconds"), ferry_seconds))
    details: dict[str, Any] = {
        "scenario": {
            "write_capacity": WRITE_CAPACITY,
            "read_capacity": READ_CAPACITY,
            "percent": PERCENT,
            "burst_seconds": BURST_SECONDS,
            "splits": SPLITS,
            "items": count,
            "item_bytes": ITEM_BYTES,
            "naive_threads": NAIVE_THREADS,
            "rounds": rounds,
            "rounds_note": f"1 round instead of {settings.repeats}: the line's time budget (each round ~90 s)",
        },
        "ferry": {"median_of_p_c": ferry.median, "runs": ferry.extra},
        "naive": {"median_of_p_c": naive.median, "runs": naive.extra},
    }
    if math.isnan(ferry.median):
        rows[0] = replace(rows[0], met=False)
    return rows, details
