"""Glue job: the copy of one DynamoDB table into its target.

Runs unchanged on AWS Glue 5.x (Spark 3.5, Python 3.11; the ferry core arrives through
``--extra-py-files ferry.zip``) and on local Spark (``ferry backfill --engine local``, which calls
:func:`run_backfill` with the same JobRun). Its arguments are the contract of :mod:`ferry.jobs`:
the spec (``--spec_json``, a default argument of the job) and the source table of this run::

    aws glue start-job-run --job-name ferry-prod-table-backfill --arguments '{"--source": "orders"}'

The copy path is the spec's (``backfill.read`` × ``backfill.write``, by the table's protocol):
one Spark task per parallel-scan segment or per data file of a point-in-time export, each writing
every item unchanged — BatchWriteItem under replay, conditional PutItem under insert-only
(docs/adr/0001, 0004) — or ImportTable creating the target from the export. A replay copy that
completes is released at the end of the run (ferry.release).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any

from ferry.aws import stream_arn_of
from ferry.clients import make_client, table_clients
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
from ferry.operations import account_of, check_ready
from ferry.release import deployment_of, ensure_insert_only_consumer, release_table
from ferry.spec import READ_EXPORT, WRITE_IMPORT
from ferry.tables.backfill import BackfillSummary, SegmentResult, copy_segment, plan_backfill
from ferry.tables.copy_run import begin_copy, export_files, finish_copy, import_target


def run_backfill(spark: Any, run: JobRun) -> BackfillSummary:
    """Check, copy every split in its own Spark task (or import), record the run, release a replay copy."""
    spec = run.spec
    mapping = spec.table(run.source)
    clients = table_clients(spec)
    check_ready(dataclasses.replace(spec, tables=(mapping,), buckets=()), require_streams=True, ddb=clients)
    copy = begin_copy(spec, mapping, clients)
    deployment = deployment_of(spec, run.stage)
    if deployment is not None and not mapping.replay:
        ensure_insert_only_consumer(spec, deployment, stream_arn_of(clients.source, mapping.source))
    started = time.monotonic()
    export = imported = None
    if spec.backfill.read == READ_EXPORT:
        account = account_of(spec)
        copy, bucket, files = export_files(
            spec, mapping, clients, make_client("s3", spec.home_where()), copy, account=account
        )
        export = (bucket, files)
        if spec.backfill.write == WRITE_IMPORT:
            copy, imported = import_target(spec, mapping, clients, copy, files, account=account)
    results: tuple[SegmentResult, ...] = ()
    if imported is None:
        # Splits beyond the cluster's task slots wait for a slot: the budget is shared among the
        # tasks that can run at once (speculative execution, off by default, would overspend it).
        context = spark.sparkContext
        slots = task_slots(dict(context.getConf().getAll()), int(context.defaultParallelism))
        plan = plan_backfill(spec, mapping, clients, concurrent_tasks=slots, export=export)
        n = plan.splits
        rows = context.parallelize(range(n), max(n, 1)).map(lambda split: copy_segment(plan, split).as_dict()).collect()
        results = tuple(sorted((SegmentResult(**row) for row in rows), key=lambda r: r.segment))
    summary = BackfillSummary(mapping.source, mapping.target, results, time.monotonic() - started, imported=imported)
    if summary.failed:
        return summary
    finish_copy(spec, mapping, clients, copy, summary.copied)
    if mapping.replay:
        streams = make_client("dynamodbstreams", spec.source_where())
        released = release_table(spec, mapping, clients, streams, deployment=deployment)
        summary = dataclasses.replace(summary, released=released.describe())
    return summary


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
