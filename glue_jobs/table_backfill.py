"""Glue job: split-parallel backfill of one DynamoDB table into its target.

Runs unchanged on AWS Glue 5.x (Spark 3.5, Python 3.11; the ferry core arrives through
``--extra-py-files ferry.zip``) and on local Spark (``ferry backfill --engine local``).

    aws glue start-job-run --job-name ferry-prod-table-backfill --arguments '{
      "--source_table": "orders", "--target_table": "orders-v2", "--state_table": "ferry-state",
      "--region": "us-east-1", "--splits": "8", "--read_percent": "0.5", "--write_percent": "0.5"}'

One Spark task per parallel-scan segment; each task builds its own clients, scans its segment
with the low-level client and writes every item unchanged, insert-only (docs/adr/0001).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from dataclasses import dataclass
from typing import Any

from ferry.clients import table_clients
from ferry.errors import FerryError
from ferry.spec import ROLE_FIELDS, Spec, parse_spec
from ferry.tables.backfill import BackfillSummary, SegmentResult, copy_segment, plan_backfill
from ferry.tables.finalize import start_backfill_phase
from ferry.tables.setup import inspect_tables
from ferry.tables.state import StateStore

log = logging.getLogger("ferry.glue.table_backfill")

REQUIRED_ARGS = ("source_table", "target_table", "state_table", "region", "splits", "read_percent", "write_percent")
OPTIONAL_ARGS = (
    "endpoint_url",
    "on_demand_read_units",
    "on_demand_write_units",
    "write_concurrency",
    "page_size",
    "phase_cache_seconds",
    "source_role_arn",  # cross-account: assumed for the source table
    "target_role_arn",  # and for the target table
)
_INT_ARGS = {"splits", "on_demand_read_units", "on_demand_write_units", "write_concurrency", "page_size"}
_FLOAT_ARGS = {"read_percent", "write_percent", "phase_cache_seconds"}


@dataclass(frozen=True)
class BackfillConfig:
    spec: Spec
    source: str
    splits: int


def config_from_args(args: dict[str, str]) -> BackfillConfig:
    """Glue arguments (all strings) → the same validated Spec the CLI builds from YAML."""

    def number(name: str) -> Any:
        text = args[name]
        try:
            return int(text) if name in _INT_ARGS else float(text)
        except ValueError:
            raise FerryError(f"--{name}: {text!r} is not a number") from None

    backfill = {n: number(n) for n in ("splits", "read_percent", "write_percent")}
    for name in ("on_demand_read_units", "on_demand_write_units", "write_concurrency", "page_size"):
        if args.get(name) is not None:
            backfill[name] = number(name)
    raw: dict[str, Any] = {
        "region": args["region"],
        "state_table": args["state_table"],
        "tables": [{"source": args["source_table"], "target": args["target_table"]}],
        "backfill": backfill,
    }
    if args.get("endpoint_url"):
        raw["endpoint_url"] = args["endpoint_url"]
    for name in ROLE_FIELDS:
        if args.get(name):
            raw[name] = args[name]
    if args.get("phase_cache_seconds") is not None:
        raw["replication"] = {"phase_cache_seconds": number("phase_cache_seconds")}
    spec = parse_spec(raw)
    return BackfillConfig(spec, args["source_table"], spec.backfill.splits)


def args_for(spec: Spec, source: str, splits: int | None = None) -> list[str]:
    """The Glue-style argument list for one table of a spec (what `start-job-run` passes)."""
    mapping = spec.table(source)
    b = spec.backfill
    pairs = {
        "source_table": mapping.source,
        "target_table": mapping.target,
        "state_table": spec.state_table,
        "region": spec.region,
        "splits": str(splits or b.splits),
        "read_percent": str(b.read_percent),
        "write_percent": str(b.write_percent),
        "on_demand_read_units": str(b.on_demand_read_units),
        "on_demand_write_units": str(b.on_demand_write_units),
        "write_concurrency": str(b.write_concurrency),
        "page_size": str(b.page_size),
        "phase_cache_seconds": str(spec.replication.phase_cache_seconds),
    }
    if spec.endpoint_url:
        pairs["endpoint_url"] = spec.endpoint_url
    for name in ROLE_FIELDS:
        if getattr(spec, name):
            pairs[name] = getattr(spec, name)
    return [part for name, value in pairs.items() for part in (f"--{name}", value)]


def run_backfill(spark: Any, config: BackfillConfig) -> BackfillSummary:
    """Validate, enter the backfill phase, copy every segment in its own Spark task, summarise."""
    spec = config.spec
    mapping = spec.table(config.source)
    clients = table_clients(spec)
    inspect_tables(
        dataclasses.replace(spec, tables=(mapping,), buckets=()),
        clients,
        require_targets=True,
        require_streams=True,
    )
    start_backfill_phase(spec, mapping, StateStore(clients.state, spec.state_table))
    # Segments beyond the cluster's task slots wait for a slot: the budget is shared among the
    # tasks that can run at once (speculative execution, off by default, would overspend it).
    plan = plan_backfill(spec, mapping, clients, config.splits, concurrent_tasks=task_slots(spark))
    started = time.monotonic()
    n = plan.total_segments
    rows = (
        spark.sparkContext.parallelize(range(n), n).map(lambda segment: copy_segment(plan, segment).as_dict()).collect()
    )
    results = tuple(sorted((SegmentResult(**row) for row in rows), key=lambda r: r.segment))
    return BackfillSummary(mapping.source, mapping.target, results, time.monotonic() - started)


def task_slots(spark: Any) -> int:
    """How many Spark tasks can run at once: with dynamic allocation its ceiling (executors ×
    cores), else the context's default parallelism (local[n]: n; Glue: the workers' cores)."""
    conf = spark.sparkContext.getConf()
    if conf.get("spark.dynamicAllocation.enabled", "false").lower() == "true":
        executors = int(conf.get("spark.dynamicAllocation.maxExecutors", "0") or 0)
        cores = int(conf.get("spark.executor.cores", "1") or 1)
        if executors > 0:
            return executors * cores
    return max(1, int(spark.sparkContext.defaultParallelism))


def _on_glue(argv: list[str]) -> bool:
    return any(a in ("--JOB_RUN_ID", "--JOB_ID") for a in argv)


def local_spark(parallelism: int) -> Any:
    import os

    from pyspark.sql import SparkSession

    # PySpark starts its Python workers with $PYSPARK_PYTHON: make it this interpreter, whose
    # environment has the ferry package (on Glue, --extra-py-files provides it instead).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # local runs stay on loopback
    return (
        SparkSession.builder.master(f"local[{max(1, parallelism)}]")
        .appName("ferry-table-backfill")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.task.maxFailures", "1")
        .config("spark.python.worker.reuse", "true")
        .getOrCreate()
    )


def main(argv: list[str] | None = None) -> BackfillSummary:
    from awsglue.utils import getResolvedOptions

    argv = list(sys.argv if argv is None else argv)
    present = [name for name in OPTIONAL_ARGS if f"--{name}" in argv]
    on_glue = _on_glue(argv)
    args = getResolvedOptions(argv, (["JOB_NAME"] if on_glue else []) + list(REQUIRED_ARGS) + present)
    config = config_from_args(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    logging.getLogger("py4j").setLevel(logging.WARNING)
    if on_glue:
        from awsglue.context import GlueContext
        from awsglue.job import Job
        from pyspark.context import SparkContext

        glue = GlueContext(SparkContext.getOrCreate())
        job = Job(glue)
        job.init(args["JOB_NAME"], args)
        summary = run_backfill(glue.spark_session, config)
    else:
        summary = run_backfill(local_spark(min(config.splits, 4)), config)
    print(summary.describe())
    print(json.dumps({"segments": [r.as_dict() for r in summary.results]}))
    if summary.failed:
        raise RuntimeError(f"backfill failed for {len(summary.failed)} segment(s):\n{summary.describe()}")
    if on_glue:
        job.commit()
    return summary


if __name__ == "__main__":
    main()
