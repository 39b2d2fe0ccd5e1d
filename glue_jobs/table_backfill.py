"""Glue job: split-parallel backfill of one DynamoDB table into its target.

Runs unchanged on AWS Glue 5.x (Spark 3.5, Python 3.11; the ferry core arrives through
``--extra-py-files ferry.zip``) and on local Spark (``ferry backfill --engine local``, which calls
:func:`run_backfill` with the same JobRun). Its arguments are the contract of :mod:`ferry.jobs`:
the spec (``--spec_json``, a default argument of the job) and the source table of this run::

    aws glue start-job-run --job-name ferry-prod-table-backfill --arguments '{"--source": "orders"}'

One Spark task per parallel-scan segment; each task builds its own clients, scans its segment
with the low-level client and writes every item unchanged, insert-only (docs/adr/0001).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any

from ferry.clients import table_clients
from ferry.jobs import (
    TABLE,
    JobRun,
    configure_job_logging,
    job_run_from_arguments,
    on_glue,
    report_job_run,
    resolved_option_names,
    task_slots,
)
from ferry.operations import check_ready
from ferry.tables.backfill import BackfillSummary, SegmentResult, copy_segment, plan_backfill
from ferry.tables.finalize import start_backfill_phase
from ferry.tables.state import StateStore


def run_backfill(spark: Any, run: JobRun) -> BackfillSummary:
    """Validate, enter the backfill phase, copy every segment in its own Spark task, summarise."""
    spec = run.spec
    mapping = spec.table(run.source)
    clients = table_clients(spec)
    check_ready(dataclasses.replace(spec, tables=(mapping,), buckets=()), require_streams=True, ddb=clients)
    start_backfill_phase(spec, mapping, StateStore(clients.state, spec.state_table))
    # Segments beyond the cluster's task slots wait for a slot: the budget is shared among the
    # tasks that can run at once (speculative execution, off by default, would overspend it).
    context = spark.sparkContext
    slots = task_slots(dict(context.getConf().getAll()), int(context.defaultParallelism))
    plan = plan_backfill(spec, mapping, clients, concurrent_tasks=slots)
    started = time.monotonic()
    n = plan.total_segments
    rows = context.parallelize(range(n), n).map(lambda segment: copy_segment(plan, segment).as_dict()).collect()
    results = tuple(sorted((SegmentResult(**row) for row in rows), key=lambda r: r.segment))
    return BackfillSummary(mapping.source, mapping.target, results, time.monotonic() - started)


def main(argv: list[str] | None = None) -> BackfillSummary:
    """The Glue entry point; by hand also ``python -m glue_jobs.table_backfill --spec_json … --source …``."""
    # Glue runs each script alone, with only ferry.zip beside it: these few lines of Glue set-up are
    # the same in both scripts on purpose (everything they share otherwise is in ferry.jobs).
    from awsglue.utils import getResolvedOptions

    argv = list(sys.argv if argv is None else argv)
    args = getResolvedOptions(argv, resolved_option_names(argv))
    run = job_run_from_arguments(TABLE, args)
    configure_job_logging()
    if not on_glue(argv):
        from glue_jobs.local_spark import local_spark

        return report_job_run(run_backfill(local_spark(run.spec.backfill.splits), run), "segments")
    from awsglue.context import GlueContext
    from awsglue.job import Job
    from pyspark.context import SparkContext

    glue = GlueContext(SparkContext.getOrCreate())
    job = Job(glue)
    job.init(args["JOB_NAME"], args)
    summary = report_job_run(run_backfill(glue.spark_session, run), "segments")
    job.commit()
    return summary


if __name__ == "__main__":
    main()
