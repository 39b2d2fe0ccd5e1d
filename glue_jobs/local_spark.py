"""Local Spark for the backfill jobs (``ferry backfill --engine local``, the demo, the tests).

Never used on Glue, which builds its own session: the scripts import this module only when Glue
did not start them. ``run_locally`` is what every local caller runs: the job's own
``run_backfill`` with the same JobRun a Glue run would parse from its arguments.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ferry.jobs import TABLE, JobRun
from ferry.spec import Spec

MAX_LOCAL_CORES = 4


def local_spark(splits: int) -> Any:
    """A local session with up to ``splits`` task slots (at most MAX_LOCAL_CORES), on loopback only,
    started when the job first uses it (an import copy, and a bucket copy small enough for the driver's
    threads, never do: they spare the JVM's start-up)."""
    return _SparkOnFirstUse(splits)


def _session(splits: int) -> Any:
    from pyspark.sql import SparkSession

    # PySpark starts its Python workers with $PYSPARK_PYTHON: make it this interpreter, whose
    # environment has the ferry package (on Glue, --extra-py-files provides it instead).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    return (
        SparkSession.builder.master(f"local[{max(1, min(splits, MAX_LOCAL_CORES))}]")
        .appName("ferry-backfill")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")  # no progress bars between the lines a person reads
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.task.maxFailures", "1")
        .config("spark.python.worker.reuse", "true")
        .getOrCreate()
    )


class _SparkOnFirstUse:
    """The local session, started only when the job first touches it (an import copy never does)."""

    def __init__(self, splits: int) -> None:
        self._splits = splits
        self._session: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._session is None:
            self._session = _session(self._splits)
        return getattr(self._session, name)


def run_locally(kind: str, spec: Spec, source: str, stage: str | None = None) -> Any:
    """Run one table (``kind`` TABLE) or bucket backfill of ``spec`` on local Spark; its summary.
    ``stage``: a deployed stage whose consumers the release of a replay copy lets go."""
    from glue_jobs import bucket_backfill, table_backfill

    run = JobRun(spec, source, stage)
    if kind == TABLE:
        return table_backfill.run_backfill(local_spark(spec.backfill.splits), run)
    return bucket_backfill.run_backfill(local_spark(spec.s3.splits), run)
