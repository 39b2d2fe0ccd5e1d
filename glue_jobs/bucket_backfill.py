"""Glue job: bulk copy of one S3 bucket into its target, server-side, key by key.

Runs unchanged on AWS Glue 5.x (the ferry core through ``--extra-py-files ferry.zip``) and on
local Spark (``ferry backfill --engine local``).

    aws glue start-job-run --job-name ferry-prod-bucket-backfill --arguments '{
      "--source_bucket": "media", "--target_bucket": "media-v2", "--region": "us-east-1",
      "--splits": "8", "--prefix": "", "--delete_extra": "false", "--concurrency": "16"}'

The driver lists the source and the target and splits the keys into partitions, each with the keys
the target lacked; each Spark task reconciles its keys (ferry.buckets.reconcile) and returns its result.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from typing import Any

from ferry.buckets.backfill import (
    BucketBackfillSummary,
    BucketPlan,
    PartitionResult,
    list_backfill_keys,
    partition_keys,
    reconcile_partition,
)
from ferry.clients import BucketClients, bucket_clients
from ferry.errors import SetupError, SpecError
from ferry.spec import ROLE_FIELDS, Spec, parse_spec

log = logging.getLogger("ferry.glue.bucket_backfill")

REQUIRED_ARGS = ("source_bucket", "target_bucket", "region", "splits")
OPTIONAL_ARGS = (
    "endpoint_url",
    "prefix",
    "delete_extra",
    "concurrency",
    "request_rate",
    "multipart_threshold",
    "max_rounds",
    "source_role_arn",  # cross-account: assumed for the source bucket
    "target_role_arn",  # and for the target bucket (which makes the server-side copies)
)
_INT_ARGS = {"splits", "concurrency", "multipart_threshold", "max_rounds"}


@dataclass(frozen=True)
class BucketBackfillConfig:
    spec: Spec
    source: str


def config_from_args(args: dict[str, str]) -> BucketBackfillConfig:
    """Glue arguments (all strings) → the same validated Spec the CLI builds from YAML."""

    def number(name: str) -> Any:
        try:
            return int(args[name]) if name in _INT_ARGS else float(args[name])
        except ValueError:
            raise SpecError(f"--{name}", f"{args[name]!r} is not a number") from None

    s3: dict[str, Any] = {"splits": number("splits")}
    for name in ("concurrency", "request_rate", "multipart_threshold", "max_rounds"):
        if args.get(name) is not None:
            s3[name] = number(name)
    delete_extra = str(args.get("delete_extra") or "false").lower()
    if delete_extra not in ("true", "false"):
        raise SpecError("--delete_extra", f"must be true or false, got {delete_extra!r}")
    raw: dict[str, Any] = {
        "region": args["region"],
        "buckets": [
            {
                "source": args["source_bucket"],
                "target": args["target_bucket"],
                "prefix": args.get("prefix") or "",
                "delete_extra": delete_extra == "true",
            }
        ],
        "s3": s3,
    }
    if args.get("endpoint_url"):
        raw["endpoint_url"] = args["endpoint_url"]
    for name in ROLE_FIELDS:
        if args.get(name):
            raw[name] = args[name]
    return BucketBackfillConfig(parse_spec(raw), args["source_bucket"])


def args_for(spec: Spec, source: str, splits: int | None = None) -> list[str]:
    """The Glue-style argument list for one bucket of a spec (what `start-job-run` passes)."""
    mapping = spec.bucket(source)
    pairs = {
        "source_bucket": mapping.source,
        "target_bucket": mapping.target,
        "region": spec.region,
        "splits": str(splits or spec.s3.splits),
        "prefix": mapping.prefix,
        "delete_extra": "true" if mapping.delete_extra else "false",
        "concurrency": str(spec.s3.concurrency),
        "request_rate": str(spec.s3.request_rate),
        "multipart_threshold": str(spec.s3.multipart_threshold),
        "max_rounds": str(spec.s3.max_rounds),
    }
    if spec.endpoint_url:
        pairs["endpoint_url"] = spec.endpoint_url
    for name in ROLE_FIELDS:
        if getattr(spec, name):
            pairs[name] = getattr(spec, name)
    return [part for name, value in pairs.items() for part in (f"--{name}", value)]


def _check_buckets(clients: BucketClients, plan: BucketPlan) -> None:
    sides = (("source", plan.mapping.source, clients.source), ("target", plan.mapping.target, clients.target))
    for role, name, s3 in sides:
        try:
            s3.head_bucket(Bucket=name)
        except Exception as exc:
            raise SetupError(f"buckets: {role} bucket {name!r} is not reachable ({exc}); run `ferry init`") from None


def run_backfill(spark: Any, config: BucketBackfillConfig) -> BucketBackfillSummary:
    spec = config.spec
    plan = BucketPlan(
        spec.home_where(),
        spec.bucket(config.source),
        spec.s3,
        source_role_arn=spec.source_role_arn,
        target_role_arn=spec.target_role_arn,
    )
    clients = bucket_clients(spec)
    _check_buckets(clients, plan)
    started = time.monotonic()
    listed = list_backfill_keys(clients.source, plan.mapping, clients.target)
    partitions = partition_keys(listed.keys, spec.s3.splits)
    indexed = [(i, keys, listed.absent_of(keys)) for i, keys in enumerate(partitions)]
    rows = (
        spark.sparkContext.parallelize(indexed, len(indexed))
        .map(lambda part: reconcile_partition(plan, part[0], part[1], absent=part[2]).as_dict())
        .collect()
    )
    results = []
    for row in rows:
        row["failed"] = tuple(tuple(f) for f in row["failed"])
        results.append(PartitionResult(**row))
    return BucketBackfillSummary(
        plan.mapping.source,
        plan.mapping.target,
        tuple(sorted(results, key=lambda r: r.partition)),
        time.monotonic() - started,
    )


def main(argv: list[str] | None = None) -> BucketBackfillSummary:
    from awsglue.utils import getResolvedOptions

    argv = list(sys.argv if argv is None else argv)
    present = [name for name in OPTIONAL_ARGS if f"--{name}" in argv]
    on_glue = any(a in ("--JOB_RUN_ID", "--JOB_ID") for a in argv)
    args = getResolvedOptions(argv, (["JOB_NAME"] if on_glue else []) + list(REQUIRED_ARGS) + present)
    config = config_from_args(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    if on_glue:
        from awsglue.context import GlueContext
        from awsglue.job import Job
        from pyspark.context import SparkContext

        glue = GlueContext(SparkContext.getOrCreate())
        job = Job(glue)
        job.init(args["JOB_NAME"], args)
        summary = run_backfill(glue.spark_session, config)
    else:
        from glue_jobs.table_backfill import local_spark  # local runs only: on Glue the script stands alone

        summary = run_backfill(local_spark(min(config.spec.s3.splits, 4)), config)
    print(summary.describe())
    print(json.dumps({"partitions": [r.as_dict() for r in summary.results]}))
    if summary.failed:
        raise RuntimeError(f"bucket backfill failed for {len(summary.failed)} key(s):\n{summary.describe()}")
    if on_glue:
        job.commit()
    return summary


if __name__ == "__main__":
    main()
