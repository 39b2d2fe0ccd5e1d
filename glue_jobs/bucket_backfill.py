"""Glue job: bulk copy of one S3 bucket into its target, server-side, key by key.

Runs unchanged on AWS Glue 5.x (the ferry core through ``--extra-py-files ferry.zip``) and on
local Spark (``ferry backfill --engine local``, which calls :func:`run_backfill` with the same
JobRun). Its arguments are the contract of :mod:`ferry.jobs`: the spec (``--spec_json``, a default
argument of the job) and the source bucket of this run::

    aws glue start-job-run --job-name ferry-prod-bucket-backfill --arguments '{"--source": "media"}'

The driver lists the source and the target and splits the keys into partitions. Under replay (the
bucket's events held in the queue) a key the listings show equal costs nothing and every other one is
one pinned CopyObject (ferry.buckets.reconcile.copy_listed); the completed copy is released at the end
of the run (ferry.release). Under insert-only each key is reconciled (``reconcile_key``). Each partition
runs in its own Spark task; a small copy (at most DRIVER_COPY_MAX_KEYS keys) runs its partitions in the
driver's threads instead, with the same ``reconcile_partition``.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any

from ferry.buckets.backfill import (
    BucketBackfillSummary,
    BucketPlan,
    PartitionResult,
    begin_bucket_copy,
    finish_bucket_copy,
    list_backfill_keys,
    partition_clients,
    partition_keys,
    reconcile_partition,
)
from ferry.buckets.reconcile import ListedObject
from ferry.clients import BucketClients, make_client
from ferry.jobs import (
    BUCKET,
    JobRun,
    configure_job_logging,
    job_run_from_arguments,
    on_glue,
    report_job_run,
    resolved_option_names,
)
from ferry.operations import check_ready
from ferry.release import deployment_of, release_bucket
from ferry.tables.state import StateStore

# A copy of at most this many keys runs in the driver's threads, not in Spark tasks: its partitions one
# after another, each with s3.concurrency copies in flight (what one task runs), on one set of clients.
# At S3's tens of milliseconds per copy, 10,000 keys take well under a minute that way — about what a
# Spark job this small spends starting its workers (locally, the JVM first) and a set of clients per
# task. A larger copy is spread over the cluster's tasks.
DRIVER_COPY_MAX_KEYS = 10_000

# one partition's work: (number, keys, keys the target listing lacked, replay: the keys' listing entries)
Partition = tuple[int, list[str], list[str], list[ListedObject]]


def copy_partitions(
    spark: Any, plan: BucketPlan, partitions: list[Partition], clients: BucketClients
) -> list[dict[str, Any]]:
    """Every partition copied or reconciled by ``reconcile_partition``; their results as dicts. At most
    DRIVER_COPY_MAX_KEYS keys in all: in the driver's threads, one partition after another, with the
    driver's ``clients`` (made by partition_clients), without touching ``spark`` (locally it is then never
    started); otherwise one Spark task per partition, each with its own clients."""
    if sum(len(keys) for _, keys, _, _ in partitions) <= DRIVER_COPY_MAX_KEYS:
        runlog = plan.runlog()  # one state table client for the driver's partitions
        return [
            reconcile_partition(plan, number, keys, clients, absent=absent, listed=listed, runlog=runlog).as_dict()
            for number, keys, absent, listed in partitions
        ]
    return list(
        spark.sparkContext.parallelize(partitions, max(1, len(partitions)))
        .map(lambda part: reconcile_partition(plan, part[0], part[1], absent=part[2], listed=part[3]).as_dict())
        .collect()
    )


def run_backfill(spark: Any, run: JobRun) -> BucketBackfillSummary:
    """Validate both buckets, list them, copy or reconcile every partition (copy_partitions), summarise;
    release a completed replay copy."""
    spec = run.spec
    mapping = spec.bucket(run.source)
    plan = BucketPlan.of(spec, mapping)
    clients = partition_clients(plan)  # the spec's S3 clients, with a connection for each copy in flight
    check_ready(dataclasses.replace(spec, tables=(), buckets=(mapping,)), require_streams=False, s3=clients)
    store = StateStore(make_client("dynamodb", spec.home_where()), spec.state_table)
    copy = begin_bucket_copy(spec, mapping, store)
    started = time.monotonic()
    listed = list_backfill_keys(clients.source, mapping, clients.target)
    keys = [k for k in listed.keys if k not in listed.equal] if mapping.replay else listed.keys
    partitions = partition_keys(keys, spec.s3.splits)
    indexed: list[Partition] = [
        (i, part, listed.absent_of(part), listed.entries_of(part) if mapping.replay else [])
        for i, part in enumerate(partitions)
    ]
    results = []
    for row in copy_partitions(spark, plan, indexed, clients):
        row["failed"] = tuple(tuple(f) for f in row["failed"])
        results.append(PartitionResult(**row))
    results.sort(key=lambda r: r.partition)
    equal = len(listed.equal) if mapping.replay else 0
    summary = BucketBackfillSummary(mapping.source, mapping.target, tuple(results), time.monotonic() - started, equal)
    if summary.failed:
        return summary
    finish_bucket_copy(store, mapping, copy, summary.keys)
    if mapping.replay:
        deployment = deployment_of(spec, run.stage)
        sqs = make_client("sqs", spec.home_where())
        released = release_bucket(spec, mapping.source, store, deployment=deployment, sqs=sqs)
        summary = dataclasses.replace(summary, released=released.describe())
    return summary


def main(argv: list[str] | None = None) -> BucketBackfillSummary:
    """The Glue entry point; by hand also ``python -m glue_jobs.bucket_backfill --spec_json … --source …``."""
    # Glue runs each script alone, with only ferry.zip beside it: these few lines of Glue set-up are
    # the same in both scripts on purpose (everything they share otherwise is in ferry.jobs).
    from awsglue.utils import getResolvedOptions

    argv = list(sys.argv if argv is None else argv)
    args = getResolvedOptions(argv, resolved_option_names(argv))
    run = job_run_from_arguments(BUCKET, args)
    configure_job_logging()
    if not on_glue(argv):
        from glue_jobs.local_spark import local_spark

        return report_job_run(run_backfill(local_spark(run.spec.s3.splits), run), "partitions")
    from awsglue.context import GlueContext
    from awsglue.job import Job
    from pyspark.context import SparkContext

    glue = GlueContext(SparkContext.getOrCreate())
    job = Job(glue)
    job.init(args["JOB_NAME"], args)
    summary = report_job_run(run_backfill(glue.spark_session, run), "partitions")
    job.commit()
    return summary


if __name__ == "__main__":
    main()
