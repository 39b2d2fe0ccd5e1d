"""The Glue jobs' contract, written once: their names, their scripts and their arguments.

The spec is the contract. Every run of a backfill job gets the whole spec as ``--spec_json`` (the
same compact JSON the Lambdas get in ``FERRY_SPEC``; Terraform and ``ferry wire`` set it as a
default argument of both jobs) and the one table or bucket it copies as ``--source``. The job
parses the spec with :func:`ferry.spec.parse_spec` like every other entry point, so a setting can
never be read differently by a job and by the functions, and a bad value fails the same way
everywhere (:class:`~ferry.errors.SpecError`, exit 2).

By hand::

    aws glue start-job-run --job-name ferry-prod-table-backfill --arguments '{"--source": "orders"}'
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ferry.deploy import APP_NAME, lambda_spec_json
from ferry.errors import SpecError
from ferry.spec import Spec, parse_spec

TABLE = "table"
BUCKET = "bucket"
KINDS = (TABLE, BUCKET)
SCRIPTS = {TABLE: "table_backfill.py", BUCKET: "bucket_backfill.py"}
SPEC_ARGUMENT = "spec_json"
SOURCE_ARGUMENT = "source"
# Glue passes these to every run of a job it starts; a run started by hand or locally has none.
_GLUE_RUN_MARKERS = ("--JOB_RUN_ID", "--JOB_ID")


@dataclass(frozen=True)
class JobRun:
    """What one run of a backfill job copies: ``source`` of ``spec`` (a table or a bucket, by the job).
    ``stage``: the deployment whose consumers a replay copy's release lets go (on Glue, from the job's
    name); None releases only the local pollers (they read the phase from the state table)."""

    spec: Spec
    source: str
    stage: str | None = None


def job_name(stage: str, kind: str) -> str:
    """``ferry-<stage>-table-backfill`` / ``ferry-<stage>-bucket-backfill`` (Terraform names them alike)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return f"{APP_NAME}-{stage}-{kind}-backfill"


def stage_of_job(name: str) -> str | None:
    """The stage in a job name ``ferry-<stage>-<kind>-backfill``, or None for another name."""
    for kind in KINDS:
        suffix = f"-{kind}-backfill"
        if name.startswith(f"{APP_NAME}-") and name.endswith(suffix) and len(name) > len(APP_NAME) + 1 + len(suffix):
            return name[len(APP_NAME) + 1 : -len(suffix)]
    return None


def on_glue(argv: Sequence[str]) -> bool:
    """Whether the script was started by Glue (which adds its run id), not by hand or by ferry."""
    return any(marker in argv for marker in _GLUE_RUN_MARKERS)


def resolved_option_names(argv: Sequence[str]) -> list[str]:
    """The options a job asks ``getResolvedOptions`` for (it treats every one as required)."""
    return (["JOB_NAME"] if on_glue(argv) else []) + [SPEC_ARGUMENT, SOURCE_ARGUMENT]


def job_run_from_arguments(kind: str, arguments: Mapping[str, str]) -> JobRun:
    """``getResolvedOptions``' answer → the validated JobRun. SpecError naming the field otherwise."""
    text = arguments.get(SPEC_ARGUMENT)
    if not text:
        raise SpecError(f"--{SPEC_ARGUMENT}", "is required: the spec as JSON (Terraform sets it on the job)")
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise SpecError(f"--{SPEC_ARGUMENT}", f"is not JSON ({type(exc).__name__})") from None
    spec = parse_spec(raw)
    source = arguments.get(SOURCE_ARGUMENT) or ""
    known = [t.source for t in spec.tables] if kind == TABLE else [b.source for b in spec.buckets]
    if source not in known:
        what = "source table" if kind == TABLE else "source bucket"
        raise SpecError(f"--{SOURCE_ARGUMENT}", f"{source!r} is not a {what} of the spec (it has: {', '.join(known)})")
    return JobRun(spec, source, stage_of_job(arguments.get("JOB_NAME", "")))


def run_arguments(spec: Spec, source: str) -> dict[str, str]:
    """``StartJobRun`` arguments for one run: the spec it runs with, and its source."""
    return {f"--{SPEC_ARGUMENT}": lambda_spec_json(spec), f"--{SOURCE_ARGUMENT}": source}


def run_argv(spec: Spec, source: str) -> list[str]:
    """The same arguments as a command line (``python -m glue_jobs.table_backfill …``)."""
    return [part for name, value in run_arguments(spec, source).items() for part in (name, value)]


def default_arguments(spec: Spec, artifacts_bucket: str) -> dict[str, str]:
    """The default arguments of both jobs (``ferry wire``; Terraform's glue-jobs module sets the same)."""
    return {
        "--extra-py-files": f"s3://{artifacts_bucket}/ferry.zip",
        "--enable-metrics": "true",
        "--enable-observability-metrics": "true",
        "--enable-continuous-cloudwatch-log": "true",
        "--job-language": "python",
        f"--{SPEC_ARGUMENT}": lambda_spec_json(spec),
    }


def with_splits(spec: Spec, kind: str, splits: int | None) -> Spec:
    """``spec`` with the job's split count (``backfill.splits`` or ``s3.splits``) replaced, when given."""
    if splits is None:
        return spec
    if kind == TABLE:
        return dataclasses.replace(spec, backfill=dataclasses.replace(spec.backfill, splits=splits))
    return dataclasses.replace(spec, s3=dataclasses.replace(spec.s3, splits=splits))


def task_slots(conf: Mapping[str, str], default_parallelism: int) -> int:
    """How many Spark tasks can run at once: with dynamic allocation its ceiling (executors × cores),
    else the context's default parallelism (local[n]: n; Glue: the workers' cores)."""
    if conf.get("spark.dynamicAllocation.enabled", "false").lower() == "true":
        executors = int(conf.get("spark.dynamicAllocation.maxExecutors", "0") or 0)
        cores = int(conf.get("spark.executor.cores", "1") or 1)
        if executors > 0:
            return executors * cores
    return max(1, default_parallelism)


class _Result(Protocol):
    def as_dict(self) -> dict[str, Any]: ...


class _Summary(Protocol):
    @property
    def results(self) -> Sequence[_Result]: ...

    @property
    def failed(self) -> Sequence[Any]: ...

    def describe(self) -> str: ...


S = TypeVar("S", bound=_Summary)


def configure_job_logging() -> None:
    """A run's log: ferry's progress at INFO, the SDK and Spark's bridge only when they warn."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("botocore", "py4j"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def report_job_run(summary: S, results_key: str) -> S:
    """Print a run's summary line and, as one JSON line ``{results_key: [...]}``, every per-task result
    (the run's output log on Glue; the bench reads it); raise when a task failed, so the run fails."""
    print(summary.describe())
    print(json.dumps({results_key: [r.as_dict() for r in summary.results]}))
    if summary.failed:
        raise RuntimeError(f"backfill failed ({len(summary.failed)} failed):\n{summary.describe()}")
    return summary
