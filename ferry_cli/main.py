"""``ferry`` — init, replicate, backfill, verify, finalize, status, reverse, cutover, rollback, demo.

Exit codes everywhere: 0 success, 1 verify found differences (or a NO-GO, a switch step refused or timed
out), 2 usage/spec/setup error (the message names the field or resource and how to fix it), 3 runtime
failure.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ferry.clients import TableClients, bucket_clients, make_client, table_clients
from ferry.errors import FerryError, SetupError, SpecError
from ferry.operations import check_ready
from ferry.spec import PROTOCOLS, READ_MODES, WRITE_MODES, Spec
from ferry_cli.specfile import load_spec
from ferry_dev.emulator import EMULATORS

EXIT_OK, EXIT_DIFFERENCES, EXIT_USAGE, EXIT_RUNTIME = 0, 1, 2, 3
console = Console()
err = Console(stderr=True, soft_wrap=True)


def _guard(fn: Callable[..., int | None]) -> Callable[..., None]:
    """Translate errors into the documented exit codes, with a message and no traceback. Messages
    are printed as text, never as rich markup (they quote user input such as names and keys)."""

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        from botocore.exceptions import BotoCoreError, NoCredentialsError

        from ferry.aws import is_aws_error

        try:
            code = fn(*args, **kwargs) or EXIT_OK
        except FerryError as exc:
            _error("error:", str(exc))
            code = exc.exit_code
        except NoCredentialsError:
            _error("error:", "no AWS credentials: configure a profile, or set endpoint_url for the emulator")
            code = EXIT_USAGE
        except BotoCoreError as exc:  # endpoint unreachable, connection reset, …
            _error("AWS error:", str(exc))
            code = EXIT_RUNTIME
        except Exception as exc:
            if is_aws_error(exc):  # an error answer of AWS: access denied, a missing resource, …
                _error("AWS error:", str(exc))
            else:
                logging.getLogger("ferry").exception("unexpected failure")
            code = EXIT_RUNTIME
        sys.exit(code)

    return run


def _error(label: str, message: str) -> None:
    err.print(Text(label, style="bold red"), Text(message))


def _spec_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--spec", "spec_path", required=True, type=click.Path(dir_okay=False), help="The spec file (YAML)."
    )(fn)


def _stage_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--stage",
        required=True,
        callback=_check_stage,
        help="Deployment stage (names: ferry-<stage>-…).",
    )(fn)


def _check_stage(ctx: click.Context, param: click.Parameter, value: str) -> str:
    import re

    if not re.fullmatch(r"[a-z][a-z0-9-]{0,15}", value):
        raise click.BadParameter(f"{value!r} must be 1-16 of a-z 0-9 - starting with a letter")
    return value


def _check_optional_stage(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return None if value is None else _check_stage(ctx, param, value)


def _ddb(spec: Spec) -> TableClients:
    return table_clients(spec)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log progress (keys and counts, never item payloads).")
def cli(verbose: bool) -> None:
    """ferry: migrate live DynamoDB tables without downtime, loss or corruption."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    for noisy in ("botocore", "urllib3", "py4j", "aws_lambda_powertools"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@cli.command()
@_spec_option
@click.option(
    "--enable-streams/--no-enable-streams",
    default=True,
    show_default=True,
    help="Enable NEW_AND_OLD_IMAGES streams on sources that have none.",
)
@click.option(
    "--sources-only",
    is_flag=True,
    help="Only enable the source streams and merge EventBridge into the source buckets' notifications "
    "(what `make deploy` runs: Terraform owns everything else).",
)
@click.option(
    "--enable-pitr",
    is_flag=True,
    help="Turn on point-in-time recovery on the source tables (backfill.read: export needs it; a change to "
    "the source, so only on request).",
)
@_guard
def init(spec_path: str, enable_streams: bool, sources_only: bool, enable_pitr: bool) -> int:
    """Check sources, create missing targets and the state table, enable/validate streams and
    bucket event capture and record where capture began. Everything is validated before the first write."""
    from ferry.operations import initialize

    spec = load_spec(spec_path)
    if sources_only:
        from ferry_cli.deploy import prepare_sources

        if not enable_streams:
            raise SpecError("--sources-only", "enables streams: it cannot be combined with --no-enable-streams")
        done = prepare_sources(spec, enable_pitr=enable_pitr)
    else:
        done = initialize(spec, enable_streams=enable_streams, enable_pitr=enable_pitr)
    for line in done or ["nothing to do: everything is in place"]:
        console.print(f"• {line}")
    return EXIT_OK


@cli.command()
@_spec_option
@click.option("--drain", is_flag=True, help="Stop when every stream has been read to its end.")
@click.option("--duration", type=float, default=0.0, help="Stop after this many seconds (0: until Ctrl-C).")
@click.option(
    "--anomalies",
    default="",
    help="Make deliveries misbehave as AWS may: 'duplicate=0.2,delay=0.1,reorder,redeliver=0.1,seed=3'.",
)
@click.option(
    "--reverse",
    is_flag=True,
    help="Replicate the new side back to the old one (after `ferry reverse`; docs/switching.md).",
)
@_guard
def replicate(spec_path: str, drain: bool, duration: float, anomalies: str, reverse: bool) -> int:
    """Local/dev only: run the stream handler fed like Lambda's event-source mapping."""
    from ferry_dev.replication import LocalReplication

    spec = load_spec(spec_path)
    if reverse:
        from ferry.switch import pair_steps, require_reverse, switch_store
        from ferry.twoway import reverse_spec

        require_reverse(pair_steps(switch_store(spec), spec), "ferry replicate --reverse")
        check_ready(reverse_spec(spec), require_streams=True)
    else:
        check_ready(spec, require_streams=True)
    from ferry_dev.anomalies import DeliveryAnomalies

    replication = LocalReplication(
        spec, anomalies=DeliveryAnomalies.parse(anomalies) if anomalies else None, reverse=reverse
    )
    if drain:
        _drain_with_progress(replication)
    else:
        replication.start()
        deadline = time.monotonic() + duration if duration else None
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        replication.stop()
    for poller in replication.stream_pollers:
        console.print(f"table {poller.source_table}: {poller.stats}")
    if replication.bucket_pollers:
        stats = [p.stats for p in replication.bucket_pollers]
        console.print(
            f"bucket events: {sum(s.delivered for s in stats)} delivered, {sum(s.succeeded for s in stats)} applied, "
            f"{sum(s.failed for s in stats)} failed (retried)"
        )
    console.print(f"on-failure queue depth: {replication.dlq_depth()}")
    return EXIT_OK


def _drain_with_progress(replication: Any) -> None:
    """``replicate --drain``: the catch-up on what was waiting (a replay table's held backlog, queued bucket
    events) with a progress bar on a terminal: applied of waiting, rate, ETA, left."""
    from ferry_cli.progress import ProgressBoard, Snapshot, bars_wanted

    board = ProgressBoard(console, enabled=bars_wanted(console))
    if not board.enabled:
        replication.drain()
        return
    waiting, before = replication.backlog(), replication.applied()

    def snapshot() -> Snapshot:
        applied = replication.applied() - before
        return Snapshot(applied, waiting, note=f"{max(0, waiting - applied):,} left")

    with board:
        board.follow("catch-up", snapshot, replication.drain, unit="changes")


def _copy_progress(spec: Spec, kind: str, source: str) -> tuple[Callable[[], Any], str, bool]:
    """For a local backfill's progress bar: a function reading how far the copy is from the state table
    (tables: the split checkpoints, against DescribeTable's approximate ItemCount and the plan's estimated
    time; buckets: the objects in the run log's copy samples of this run, then the finished run's count),
    the unit, and whether the total is approximate."""
    from ferry.jobs import TABLE
    from ferry.tables.estimate import duration, estimate_copy
    from ferry.tables.schema import describe_shape
    from ferry.tables.state import BUCKET as BUCKET_STATE
    from ferry.tables.state import SEGMENT_DONE, StateStore
    from ferry_cli.progress import Snapshot

    ddb = _ddb(spec)
    store = StateStore(ddb.state, spec.state_table)
    started = time.monotonic()
    if kind != TABLE:
        from ferry.runlog import CLOCK_SKEW_SECONDS, RunLog

        runlog = RunLog(ddb.state, spec.state_table)
        before = time.time()

        def bucket_snapshot() -> Snapshot:
            run = store.load_copy(source, BUCKET_STATE)
            if run is None or run.started_at < before - 1:  # the run of this backfill has not begun yet
                return Snapshot(0, None, note="listing")
            if run.done:
                return Snapshot(run.items, run.items, note=run.status)
            samples = runlog.copy_samples(source, BUCKET_STATE, since=run.started_at - CLOCK_SKEW_SECONDS)
            return Snapshot(sum(s.items for s in samples), None, note=run.status)

        return bucket_snapshot, "objects", False
    mapping = next(t for t in spec.tables if t.source == source)
    shape = describe_shape(ddb.source, source, "source")
    try:
        target = describe_shape(ddb.target, mapping.target, "target")
    except SetupError:  # an import creates its target: no shape yet, the estimate goes without it
        target = None
    planned = estimate_copy(shape, target, spec.backfill).seconds
    splits = spec.backfill.splits

    def table_snapshot() -> Snapshot:
        segments = [cp for cp in store.list_segments(source) if cp.total == splits]
        copied = sum(cp.written + cp.skipped for cp in segments)
        run = store.load_copy(source)
        if not segments and run is not None:  # an import: no splits, the run's count when it ends
            copied = run.items
        done = sum(cp.status == SEGMENT_DONE for cp in segments)
        note = ""
        if planned is not None:
            left = max(0.0, planned - (time.monotonic() - started))
            note = f"plan {duration(planned)}, {duration(left)} left"
        return Snapshot(copied, shape.item_count or None, f"{done}/{splits} segments", note)

    return table_snapshot, "items", True


def _local_backfill(spec: Spec, kind: str, source: str, stage: str | None) -> int:
    """One backfill on local Spark: the Glue script's own run_backfill, with the spec as given. On a
    terminal, a progress bar read from the state table while the Spark tasks copy."""
    from ferry.jobs import TABLE
    from ferry_cli.progress import ProgressBoard, bars_wanted
    from glue_jobs.local_spark import run_locally

    board = ProgressBoard(console, enabled=bars_wanted(console))
    if board.enabled:
        snapshot, unit, approximate = _copy_progress(spec, kind, source)
        with board:
            summary = board.follow(
                f"copy {source}",
                snapshot,
                lambda: run_locally(kind, spec, source, stage),
                unit=unit,
                approximate=approximate,
            )
    else:
        summary = run_locally(kind, spec, source, stage)
    done, unit = (summary.copied, "items") if kind == TABLE else (summary.keys, "keys")
    rate = done / summary.seconds if summary.seconds else 0.0
    style = "red" if summary.failed else "green"
    console.print(Text(summary.describe(), style=style), Text(f"({rate:.0f} {unit}/s)"))
    return EXIT_RUNTIME if summary.failed else EXIT_OK


def _glue_backfill(spec: Spec, kind: str, source: str, stage: str, poll: float) -> int:
    """One run of the stage's Glue job with the spec as given, followed to its end."""
    from ferry.jobs import job_name, run_arguments

    glue = make_client("glue", spec.home_where())
    name = job_name(stage, kind)
    run_id = glue.start_job_run(JobName=name, Arguments=run_arguments(spec, source))["JobRunId"]
    console.print(f"{source}: started Glue job run {run_id} of {name}", markup=False)
    while True:
        state = glue.get_job_run(JobName=name, RunId=run_id)["JobRun"]
        status = state["JobRunState"]
        if status in ("SUCCEEDED", "FAILED", "STOPPED", "TIMEOUT", "ERROR", "EXPIRED"):
            console.print(f"{source}: {status} {state.get('ErrorMessage', '')}", markup=False)
            return EXIT_OK if status == "SUCCEEDED" else EXIT_RUNTIME
        time.sleep(poll)


@cli.command()
@_spec_option
@click.option(
    "--splits",
    type=click.IntRange(1, 1_000_000),
    default=None,
    help="Parallel-scan segments / bucket partitions (Spark tasks); default from the spec.",
)
@click.option("--engine", type=click.Choice(["local", "glue"]), default="local", show_default=True)
@click.option("--table", "tables", multiple=True, help="Only these source tables or buckets (default: all).")
@click.option(
    "--stage",
    default=None,
    callback=_check_optional_stage,
    help="Deployment stage: the Glue jobs of --engine glue (ferry-<stage>-table-backfill, …; default dev) and, "
    "with --engine local, the deployed consumers a replay copy's release lets go (default: the local pollers).",
)
@click.option(
    "--protocol",
    type=click.Choice(PROTOCOLS),
    default=None,
    help="Override the spec's protocol: insert-only copies against a live target (a second copy after a release).",
)
@click.option("--read", "read_mode", type=click.Choice(READ_MODES), default=None, help="Override backfill.read.")
@click.option("--write", "write_mode", type=click.Choice(WRITE_MODES), default=None, help="Override backfill.write.")
@click.option("--restart", is_flag=True, help="Forget the recorded copy and its checkpoints and copy from the start.")
@click.option(
    "--poll-seconds",
    type=click.FloatRange(0.05, 600),
    default=15.0,
    show_default=True,
    help="Glue run polling interval.",
)
@_guard
def backfill(
    spec_path: str,
    splits: int | None,
    engine: str,
    tables: tuple[str, ...],
    stage: str | None,
    protocol: str | None,
    read_mode: str | None,
    write_mode: str | None,
    restart: bool,
    poll_seconds: float,
) -> int:
    """Copy existing items and objects, split-parallel, within the budget, by the protocol: replay (bulk
    writes while changes are held, then released) or insert-only (concurrently with the consumer)."""
    from ferry.jobs import BUCKET, TABLE, with_splits
    from ferry.spec import with_overrides
    from ferry.tables.protocol import RERUN_INSERT_ONLY
    from ferry.tables.state import BUCKET as BUCKET_STATE
    from ferry.tables.state import StateStore

    spec = with_overrides(load_spec(spec_path), protocol=protocol, read=read_mode, write=write_mode)
    ddb = _ddb(spec)
    check_ready(spec, require_streams=True, ddb=ddb)
    known = {t.source for t in spec.tables} | {b.source for b in spec.buckets}
    for name in tables:
        if name not in known:
            raise SpecError("--table", f"{name!r} is not a source table or bucket of the spec")
    runs = [(BUCKET, b.source, b.protocol) for b in spec.buckets] + [(TABLE, t.source, t.protocol) for t in spec.tables]
    store = StateStore(ddb.state, spec.state_table)
    code = EXIT_OK
    for kind, source, protocol in runs:
        if tables and source not in tables:
            continue
        state_kind = TABLE if kind == TABLE else BUCKET_STATE
        released = _released_copy(store, source, state_kind, protocol)
        if released is not None:
            if restart:  # a second replay copy of a released table: refused before anything is written
                raise SpecError("--restart", f"{source}: a replay copy cannot start: {released}")
            console.print(f"{source}: copied and released already; nothing to do (to copy again: {RERUN_INSERT_ONLY})")
            continue
        if restart:
            store.forget_copy(source, state_kind)
        run_spec = with_splits(spec, kind, splits)
        if engine == "glue":
            code = max(code, _glue_backfill(run_spec, kind, source, stage or "dev", poll_seconds))
        else:
            code = max(code, _local_backfill(run_spec, kind, source, stage))
    return code


def _released_copy(store: Any, source: str, kind: str, protocol: str) -> str | None:
    """Why a replay copy of ``source`` cannot start because its copy completed and was released (a rerun
    of ``ferry backfill`` skips it), or None."""
    from ferry.tables.finalize import backfill_complete
    from ferry.tables.protocol import PHASE_LIVE, PHASE_REPLAY, copy_refusal

    phase = store.phase_or_none(source, kind)
    if phase not in (PHASE_REPLAY, PHASE_LIVE) or not backfill_complete(store, source, kind)[0]:
        return None
    return copy_refusal(protocol, phase)


@cli.command()
@_spec_option
@click.option(
    "--stage",
    default=None,
    callback=_check_optional_stage,
    help="A deployed stage: create (tables) or enable (buckets) its consumers' mappings. Without it, the local "
    "pollers are let go.",
)
@click.option("--table", "sources", multiple=True, help="Only these source tables or buckets (default: all).")
@_guard
def release(spec_path: str, stage: str | None, sources: tuple[str, ...]) -> int:
    """Let a completed replay copy's held changes go (the backfill does it when its copy completes): checks
    that every change since capture began is still held (exit 3 if not), then lets the consumer apply them."""
    from ferry.release import release_all

    for released in release_all(load_spec(spec_path), stage=stage, sources=sources):
        console.print(f"• {released.describe()}", markup=False)
    return EXIT_OK


def print_verify_report(report: Any) -> None:
    """One line per table or bucket in its own words; a table of the differences with sample keys.
    Keys are printed as text, never as markup."""
    status = Text("OK", style="green") if report.ok else Text("DIFFERENCES", style="red")
    console.print(Text(f"{report.source} -> {report.target}: "), status, Text(f" {report.summary()}"), sep="")
    counts = report.counts()
    if not report.ok:
        table = Table("kind", "count", "sample keys (up to 20)")
        for kind, keys in report.samples(20).items():
            if counts.get(kind):
                table.add_row(kind, str(counts[kind]), Text("\n".join(keys)))
        console.print(table)


@cli.command()
@_spec_option
@click.option("--json", "json_path", type=click.Path(dir_okay=False, writable=True), help="Write the full report here.")
@click.option(
    "--repair", is_flag=True, help="Copy the source's current state for each differing key, then re-check it."
)
@click.option(
    "--reverse", is_flag=True, help="Compare the new side with the old one (after `ferry reverse`: new -> old)."
)
@click.option(
    "--from",
    "repair_from",
    type=click.Choice(["old", "new"]),
    default=None,
    help="With --repair: the side whose state wins for every differing key, conflicts included.",
)
@click.option(
    "--segments", type=click.IntRange(1, 1_000_000), default=None, help="Scan segments (default: backfill.splits)."
)
@click.option("--workers", type=click.IntRange(1, 256), default=4, show_default=True)
@click.option(
    "--skip-tags", is_flag=True, help="Buckets: do not compare tags (they cost a request per object and side)."
)
@_guard
def verify(
    spec_path: str,
    json_path: str | None,
    repair: bool,
    reverse: bool,
    repair_from: str | None,
    segments: int | None,
    workers: int,
    skip_tags: bool,
) -> int:
    """Compare source and target item by item / object by object; exit 1 on differences or open conflicts
    (keys changed on both sides while both directions replicated: docs/switching.md)."""
    from ferry.operations import open_conflicts, settle_conflicts, verify_all, verify_direction
    from ferry_cli.progress import ProgressBoard, Snapshot, bars_wanted

    board = ProgressBoard(console, enabled=bars_wanted(console, plain=bool(json_path)))

    def tell(progress: Any) -> None:
        parts = f"{progress.parts_done}/{progress.parts} segments" if progress.parts else ""
        snapshot = Snapshot(progress.compared, progress.expected, parts)
        board.show(f"verify {progress.source}", snapshot, unit=progress.unit, approximate=progress.unit == "items")

    spec = load_spec(spec_path)
    if repair_from is not None and not repair:
        raise SpecError("--from", "names the side a repair copies from: add --repair")
    checked = verify_direction(spec, reverse=reverse, repair_from=repair_from)
    with board:
        reports = verify_all(
            checked,
            segments=segments,
            workers=workers,
            repair=repair,
            skip_tags=skip_tags,
            on_progress=tell if board.enabled else None,
        )
    for report in reports:
        print_verify_report(report)
    closed, conflicts = settle_conflicts(spec) if repair else (0, open_conflicts(spec))
    if closed:
        console.print(f"{closed} conflicts resolved: both sides now hold the same state")
    if conflicts:
        table = Table("kind", "key", "changed on", "not applied to", title=f"{len(conflicts)} open conflicts")
        for c in conflicts[:50]:
            table.add_row(c.kind, Text(c.key), c.source, c.destination)
        console.print(table)
        console.print("resolve: `ferry verify --repair --from old` or `--from new` (that side's state wins)")
    if json_path:
        with open(json_path, "w", encoding="utf-8") as out:
            json.dump(
                {
                    "reports": [r.as_dict() for r in reports],
                    "conflicts": [{"kind": c.kind, "key": c.key, "source": c.source} for c in conflicts],
                },
                out,
                indent=2,
            )
        console.print(f"full report: {json_path}")
    return EXIT_OK if all(r.ok for r in reports) and not conflicts else EXIT_DIFFERENCES


@cli.command()
@_spec_option
@click.option("--force", is_flag=True, help="Finalize even if the backfill did not complete.")
@click.option(
    "--stage",
    default=None,
    callback=_check_optional_stage,
    help="A deployed stage: a replay table's stream mapping (no maximum record age while it caught up) gets "
    "replication.max_record_age_seconds.",
)
@_guard
def finalize(spec_path: str, force: bool, stage: str | None) -> int:
    """End the copy's phase: insert-only, handlers delete again and tombstones are removed; replay, a
    released table or bucket is marked live."""
    from ferry.aws import stream_arn_of
    from ferry.release import bound_record_age, deployment_of, finalize_bucket
    from ferry.tables.finalize import finalize_table
    from ferry.tables.state import StateStore

    spec = load_spec(spec_path)
    ddb = _ddb(spec)
    check_ready(dataclasses.replace(spec, buckets=()), require_streams=False, ddb=ddb)
    deployment = deployment_of(spec, stage)
    for mapping in spec.tables:
        result = finalize_table(spec, mapping, ddb, force=force)
        console.print(
            f"{result.source}: phase live, {result.tombstones_removed} tombstones removed from {result.target}"
        )
        if deployment is not None and mapping.replay:
            stream = stream_arn_of(ddb.source, mapping.source)
            console.print(bound_record_age(spec, mapping, deployment, stream), markup=False)
    if spec.buckets:
        store = StateStore(ddb.state, spec.state_table)
        for bucket in spec.buckets:
            console.print(finalize_bucket(spec, bucket.source, store), markup=False)
    return EXIT_OK


def _ago(stamp: float) -> str:
    seconds = max(0.0, time.time() - stamp)
    text = (
        f"{seconds:.0f} s"
        if seconds < 120
        else (f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h")
    )
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(stamp))} ({text} ago)"


def _rate(rate: float | None, unit: str) -> str:
    return "" if rate is None else f", draining at {rate:,.1f} {unit}/s"


def _table_hold_lines(spec: Spec, mapping: Any, store: Any) -> list[str]:
    """Capture, the held backlog or the replay's progress, for one table."""
    from ferry.backlog import drain_rate, stream_backlog
    from ferry.spec import STREAM_RETENTION_HOURS
    from ferry.tables.protocol import PHASE_HOLD, PHASE_REPLAY

    capture = store.load_capture(mapping.source)
    if capture is None:
        return ["capture: not begun (run `ferry init`)"]
    lines = [f"capture began {_ago(capture.captured_at)} on {capture.where.rsplit('/', 1)[-1]}"]
    phase = store.get_phase(mapping.source)
    checkpoints = {shard: sequence for shard, sequence, _, _ in store.stream_checkpoints(mapping.source)}
    if phase not in (PHASE_HOLD, PHASE_REPLAY) and not checkpoints:
        return lines
    backlog = stream_backlog(make_client("dynamodbstreams", spec.source_where()), capture.where, checkpoints)
    if phase == PHASE_HOLD:
        left = STREAM_RETENTION_HOURS - (time.time() - capture.captured_at) / 3600
        lines.append(
            f"held: {backlog.behind:,}{'' if backlog.complete else '+'} changes wait in the stream until the copy is "
            f"released (the oldest is trimmed in {left:.1f} h; backfill.max_hold_hours {spec.backfill.max_hold_hours:g})"
        )
        return lines
    released = store.released_at(mapping.source)
    if released is not None:
        lines.append(f"released {_ago(released)}")
    if checkpoints:
        rate = drain_rate(backlog.applied, released) if phase == PHASE_REPLAY else None
        lines.append(f"replay (local pollers): {backlog.describe()}{_rate(rate, 'records')}")
    else:
        lines.append("replay: deployed, the stream mapping applies it (see its IteratorAge metric)")
    return lines


def _bucket_hold_lines(spec: Spec, bucket: Any, store: Any, waiting: int | None) -> list[str]:
    from ferry.backlog import drain_rate
    from ferry.tables.finalize import backfill_complete
    from ferry.tables.state import BUCKET

    phase = store.phase_or_none(bucket.source, BUCKET)
    lines = [f"bucket {bucket.source} -> {bucket.target}: protocol {bucket.protocol}, phase {phase or 'none'}"]
    lines.append(f"  copy: {backfill_complete(store, bucket.source, BUCKET)[1]}")
    capture = store.load_capture(bucket.source, BUCKET)
    if capture is not None:
        lines.append(f"  capture began {_ago(capture.captured_at)}")
    released, held = store.released_at(bucket.source, BUCKET), store.held_at_release(bucket.source, BUCKET)
    if phase == "hold":
        lines.append(
            f"  held: {waiting if waiting is not None else '?'} events wait in the queue until the copy is released"
        )
    elif released is not None:
        rate = drain_rate(held - waiting, released) if held is not None and waiting is not None else None
        lines.append(
            f"  released {_ago(released)} with {held if held is not None else '?'} queued{_rate(rate, 'events')}"
        )
    return lines


@cli.command()
@_spec_option
@click.option(
    "--stage",
    default=None,
    callback=_check_optional_stage,
    help="A deployed stage: the verdict reads the lag from CloudWatch and the stage's event-source mappings "
    "(default: the local pollers' checkpoints).",
)
@_guard
def status(spec_path: str, stage: str | None) -> int:
    """Phase, copy progress, the held backlog and how fast it drains, queues, last verify; the last line is the
    cutover verdict, GO (exit 0) or NO-GO and its reasons (exit 1) (docs/cutover-verdict.md)."""
    from ferry.aws import queue_depth, queue_url_or_none
    from ferry.deploy import DLQ_SUFFIX
    from ferry.tables.finalize import backfill_complete
    from ferry.tables.state import StateStore
    from ferry_cli.cutover import cutover_verdict, gather_facts

    spec = load_spec(spec_path)
    home = spec.home_where()  # the state table and the queues are ferry's own
    store = StateStore(make_client("dynamodb", home), spec.state_table)
    sqs = make_client("sqs", home)

    def depth(queue: str) -> int | None:
        url = queue_url_or_none(sqs, queue)
        return None if url is None else queue_depth(sqs, url)

    def shown(value: int | None) -> str:
        return "n/a (queue not found)" if value is None else str(value)

    if spec.tables:
        failures = depth(spec.replication.on_failure_queue)
        console.print(f"stream on-failure queue {spec.replication.on_failure_queue}: {shown(failures)} messages")
    if spec.buckets:
        queue = spec.s3.events_queue
        waiting = depth(queue)
        console.print(
            f"bucket events queue {queue}: {shown(waiting)} waiting; DLQ {queue + DLQ_SUFFIX}: {shown(depth(queue + DLQ_SUFFIX))}"
        )
        for bucket in spec.buckets:
            for line in _bucket_hold_lines(spec, bucket, store, waiting):
                console.print(line, markup=False)
    for mapping in spec.tables:
        run = store.load_copy(mapping.source)
        how = f"{run.read} + {run.write}" if run and run.read else ""
        title = f"{mapping.source} -> {mapping.target}: protocol {mapping.protocol}, phase {store.get_phase(mapping.source)}"
        table = Table(title=title + (f", copy {how}" if how else ""))
        for column in ("segment", "status", "read", "written", "already present", "pages"):
            table.add_column(column)
        segments = sorted(store.list_segments(mapping.source), key=lambda c: (c.total, c.segment))
        for cp in segments:
            table.add_row(
                f"{cp.segment}/{cp.total}", cp.status, str(cp.scanned), str(cp.written), str(cp.skipped), str(cp.pages)
            )
        console.print(table)
        console.print(f"copy: {backfill_complete(store, mapping.source)[1]}", markup=False)
        if mapping.replay:
            for line in _table_hold_lines(spec, mapping, store):
                console.print(line, markup=False)
        shards = store.stream_checkpoints(mapping.source)
        if shards:
            newest = max(stamp for *_, stamp in shards)
            console.print(
                f"live (local pollers): {len(shards)} shard(s), last batch committed {time.time() - newest:.0f}s ago"
            )
        else:
            console.print("live: no local poller checkpoint (deployed: see the IteratorAge metric of table_stream)")
        last = store.load_verify(mapping.source)
        if last:
            summary, differences, stamp = last
            console.print(
                f"last verify {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(stamp))}: {differences} differences {summary}"
            )
        else:
            console.print("last verify: never")
    verdict = cutover_verdict(gather_facts(spec, store, stage=stage), spec.cutover)
    console.print(Text(verdict.line(), style="bold green" if verdict.go else "bold red"), soft_wrap=True)
    return EXIT_OK if verdict.go else EXIT_DIFFERENCES


# --- the switch (docs/switching.md) ----------------------------------------------------------------


def _switch_stage_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--stage",
        default=None,
        callback=_check_optional_stage,
        help="A deployed stage: its event-source mappings are the consumers (default: the local pollers).",
    )(fn)


def _timeout_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--timeout",
        type=click.FloatRange(0, None),
        default=600.0,
        show_default=True,
        help="Seconds to wait for replication to drain; then exit 1 naming what is in flight (rerun to go on).",
    )(fn)


def _say(line: str) -> None:
    console.print(line, markup=False, soft_wrap=True)


@cli.command("reverse")
@_spec_option
@_switch_stage_option
@click.option(
    "--sources-only",
    is_flag=True,
    help="Only enable the new tables' streams and EventBridge on the new buckets (a Terraform stage: "
    "`make deploy` with reverse = true then creates the reverse queues, rules and mappings).",
)
@_guard
def reverse_command(spec_path: str, stage: str | None, sources_only: bool) -> int:
    """Begin replicating the new side back to the old one (the switch's first step): refused (exit 1, nothing
    written) until every copy is done; then changes are judged both ways and the new side's changes captured."""
    from ferry_cli.switch import Invocation, reverse

    reverse(load_spec(spec_path), Invocation(spec_path, stage), _say, sources_only=sources_only)
    return EXIT_OK


@cli.command()
@_spec_option
@_switch_stage_option
@click.option("--force", is_flag=True, help="Go on although the cutover verdict is NO-GO (recorded as forced).")
@click.option(
    "--confirm-switched",
    is_flag=True,
    help="The service now writes the new resources: drain forward replication, then turn it off.",
)
@_timeout_option
@_guard
def cutover(spec_path: str, stage: str | None, force: bool, confirm_switched: bool, timeout: float) -> int:
    """Switch to the new side: GO check (exit 1 on NO-GO unless --force); with --confirm-switched, wait until
    forward replication has applied everything from before the switch, then turn it off (reverse stays on)."""
    from ferry_cli.switch import Invocation, cutover

    cutover(
        load_spec(spec_path),
        Invocation(spec_path, stage),
        _say,
        force=force,
        confirm_switched=confirm_switched,
        timeout=timeout,
    )
    return EXIT_OK


@cli.command()
@_spec_option
@_switch_stage_option
@click.option(
    "--confirm-switched",
    is_flag=True,
    help="The service writes the old resources again: drain reverse replication, then turn it off.",
)
@_timeout_option
@_guard
def rollback(spec_path: str, stage: str | None, confirm_switched: bool, timeout: float) -> int:
    """Go back to the old side: wait for reverse replication, verify the old side equals the new one and no
    conflict is open (exit 1 naming the keys otherwise); with --confirm-switched, turn reverse replication off."""
    from ferry_cli.switch import Invocation, rollback

    ok = rollback(
        load_spec(spec_path),
        Invocation(spec_path, stage),
        _say,
        confirm_switched=confirm_switched,
        timeout=timeout,
        show_report=print_verify_report,
    )
    return EXIT_OK if ok else EXIT_DIFFERENCES


@cli.command()
@_spec_option
@click.option("--tables/--no-tables", default=True, show_default=True, help="Redrive the stream on-failure queue.")
@click.option("--buckets/--no-buckets", default=True, show_default=True, help="Redrive the bucket events DLQ.")
@_guard
def redrive(spec_path: str, tables: bool, buckets: bool) -> int:
    """Re-apply dead-lettered work once its cause is fixed: each key becomes the source's current
    state (never an old image). Exit 3 when some messages had to be kept."""
    from rich.markup import escape

    from ferry.aws import queue_url_or_none
    from ferry.buckets.redrive import redrive_bucket_failures
    from ferry.deploy import DLQ_SUFFIX
    from ferry.tables.redrive import redrive_stream_failures

    spec = load_spec(spec_path)
    sqs = make_client("sqs", spec.home_where())
    reports: list[tuple[str, Any]] = []
    if tables and spec.tables:
        name = spec.replication.on_failure_queue
        url = queue_url_or_none(sqs, name)
        if url is None:
            console.print(f"stream on-failure queue {escape(name)}: not found, nothing to redrive")
        else:
            report = redrive_stream_failures(
                spec,
                ddb=table_clients(spec),
                sqs=sqs,
                streams=make_client("dynamodbstreams", spec.source_where()),
                queue_url=url,
            )
            reports.append((f"stream on-failure queue {name}", report))
    if buckets and spec.buckets:
        name = spec.s3.events_queue + DLQ_SUFFIX
        url = queue_url_or_none(sqs, name)
        if url is None:
            console.print(f"bucket events DLQ {escape(name)}: not found, nothing to redrive")
        else:
            s3 = bucket_clients(spec)
            report = redrive_bucket_failures(spec, s3=s3.source, target_s3=s3.target, sqs=sqs, dlq_url=url)
            reports.append((f"bucket events DLQ {name}", report))
    for label, report in reports:
        colour = "green" if report.ok else "red"
        console.print(f"[{colour}]{escape(label)}[/]: {escape(report.describe())}", soft_wrap=True)
        for kept in report.kept:
            console.print(f"  kept message {escape(kept.message_id)}: {escape(kept.reason)}", soft_wrap=True)
    kept_count = sum(len(r.kept) for _, r in reports)
    if kept_count:
        err.print(
            f"[bold red]{kept_count} message(s) kept[/]: fix what the reasons name, then run `ferry redrive` again"
        )
        return EXIT_RUNTIME
    return EXIT_OK


@cli.command()
@click.option("--items", type=click.IntRange(10, 1_000_000), default=5000, show_default=True)
@click.option("--splits", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option(
    "--traffic-rate",
    type=float,
    default=40.0,
    show_default=True,
    help="Live operations per second during the backfill.",
)
@click.option("--objects", type=click.IntRange(0, 100_000), default=1000, show_default=True, help="0: tables only.")
@click.option("--object-traffic-rate", type=float, default=8.0, show_default=True, help="Live object operations/s.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--protocol",
    type=click.Choice(PROTOCOLS),
    default="replay",
    show_default=True,
    help="replay: the copy writes in bulk while changes are held, then replays them; insert-only: concurrently.",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, writable=True), help="Write every phase's results here."
)
@click.option(
    "--emulator",
    type=click.Choice(EMULATORS),
    default=None,
    help="The embedded emulator (default: FERRY_EMULATOR, else ministack).",
)
@_guard
def demo(
    items: int,
    splits: int,
    traffic_rate: float,
    objects: int,
    object_traffic_rate: float,
    seed: int,
    protocol: str,
    json_path: str | None,
    emulator: str | None,
) -> int:
    """What `make demo` runs: a live table and bucket migrated end to end on the embedded emulator."""
    from ferry_cli.report import write_report
    from ferry_dev.demo import print_summary, run_demo

    result = run_demo(
        items=items,
        splits=splits,
        traffic_rate=traffic_rate,
        objects=objects,
        object_traffic_rate=object_traffic_rate,
        seed=seed,
        protocol=protocol,
        say=lambda line: console.print(line, markup=False),
        emulator=emulator,
        write_report=write_report,
    )
    print_summary(result, console)
    if result.report_path:
        console.print(f"report: {result.report_path}", markup=False, soft_wrap=True)
    if json_path:
        with open(json_path, "w", encoding="utf-8") as out:
            json.dump(result.as_dict(), out, indent=2)
        console.print(f"every phase's results: {json_path}", markup=False)
    return EXIT_OK if result.ok else EXIT_DIFFERENCES


@cli.command()
@click.option("--seeds", default="1-8", show_default=True, help="Seeds to run: '3', '1-8' or '1,5,9'.")
@click.option(
    "--minutes",
    type=float,
    default=9.0,
    show_default=True,
    help="The campaign's budget: a seed starts only if, at the slowest seed's pace so far, it ends inside it.",
)
@click.option("--items", type=click.IntRange(10, 100_000), default=300, show_default=True)
@click.option("--objects", type=click.IntRange(20, 10_000), default=60, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, writable=True), help="Write the results here.")
@click.option(
    "--emulator",
    type=click.Choice(EMULATORS),
    default=None,
    help="The embedded emulator (default: FERRY_EMULATOR, else ministack).",
)
@_guard
def chaos(seeds: str, minutes: float, items: int, objects: int, json_path: str | None, emulator: str | None) -> int:
    """A seeded campaign of live traffic, injected faults and crashes, each seed under both protocols;
    exit 1 on any divergence."""
    from dataclasses import asdict

    from ferry_dev.chaos import run_campaign

    chosen: list[int] = []
    for part in seeds.split(","):
        low, _, high = part.partition("-")
        if not low.strip().isdigit() or (high and not high.strip().isdigit()):
            raise SpecError("--seeds", f"{seeds!r} is not like '3', '1-8' or '1,5,9'")
        chosen += list(range(int(low), int(high or low) + 1))
    results = run_campaign(chosen, minutes=minutes, say=console.print, items=items, objects=objects, emulator=emulator)
    table = Table(
        "seed",
        "protocol",
        "operations",
        "faults injected",
        "crashes",
        "anomalies",
        "re-done Scan pages",
        "seconds",
        "differences",
        "switch: records / 2×writes, conflicts, differences",
    )
    for r in results:
        w = r.two_way
        switch = (
            f"{w.records} / {2 * w.writes}, {w.conflicts}, {w.differences} ({w.seconds:.0f} s)"
            if w is not None
            else "-"
        )
        table.add_row(
            str(r.seed),
            r.protocol,
            str(r.operations),
            ", ".join(f"{k} {v}" for k, v in sorted(r.faults.items())),
            ", ".join(f"{k} {v}" for k, v in sorted(r.crashes.items())),
            str(r.anomalies),
            f"{r.redone_pages} of {r.scans_forwarded} (≤ {r.redone_bound})",
            f"{r.seconds:.0f}",
            ("[green]0[/]" if r.ok else f"[red]{r.differences}[/] {r.detail}"),
            switch if w is None or w.ok else f"[red]{switch}[/] {w.detail}",
        )
    # a log file or CI is not a terminal: print the table at full width instead of 80 columns
    (console if console.is_terminal else Console(width=220)).print(table)
    if json_path:
        with open(json_path, "w", encoding="utf-8") as out:
            json.dump([asdict(r) for r in results], out, indent=2)
    return EXIT_OK if all(r.ok for r in results) else EXIT_DIFFERENCES


# --- deployment ------------------------------------------------------------------------------


@cli.command()
@_spec_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True),
    default="report.html",
    show_default=True,
    help="Where to write the HTML report (one self-contained file).",
)
@click.option(
    "--plan",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="A `ferry plan --json` file: its estimates are shown next to what was measured.",
)
@_guard
def report(spec_path: str, out: str, plan: str | None) -> int:
    """Throughput, capacity, lag, backlog, verify and estimate vs measured, from the state table alone."""
    from ferry_cli.report import write_report

    path = write_report(load_spec(spec_path), out, plan)
    console.print(f"report: {path}", markup=False)
    return EXIT_OK


@cli.command()
@_spec_option
@click.option("--json", "json_path", type=click.Path(dir_okay=False, writable=True), help="Write the plan here too.")
@click.option(
    "--sample",
    type=click.IntRange(0, 100_000),
    default=0,
    show_default=True,
    help="Measure the average item size from one Scan of this many items (0: TableSizeBytes / ItemCount).",
)
@click.option(
    "--max-keys",
    type=click.IntRange(1, 10_000_000),
    default=10_000,
    show_default=True,
    help="List at most this many keys per bucket; beyond, CloudWatch's storage metrics or a lower bound.",
)
@click.option(
    "--change-rate",
    type=click.FloatRange(0, None),
    default=0.0,
    show_default=True,
    help="Changes/s the service makes to each table and bucket (the replication side).",
)
@click.option("--glue-workers", type=click.IntRange(2, 299), default=2, show_default=True)
@click.option("--glue-worker-type", default="G.1X", show_default=True)
@_guard
def plan(
    spec_path: str,
    json_path: str | None,
    sample: int,
    max_keys: int,
    change_rate: float,
    glue_workers: int,
    glue_worker_type: str,
) -> int:
    """Estimate each copy path's duration, capacity, requests and cost, reading without writing."""
    from ferry_cli.plan import PlanOptions, build_plan, render

    spec = load_spec(spec_path)
    options = PlanOptions(sample, max_keys, change_rate, glue_workers, glue_worker_type)
    result = build_plan(spec, options)
    render(result, console)
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2, default=str)
    return EXIT_OK


@cli.command()
@_spec_option
@_guard
def whoami(spec_path: str) -> int:
    """Show the AWS identity of each side (home, source, target). Exit 2 without credentials."""
    from ferry_cli.deploy import identities

    for side, arn in identities(load_spec(spec_path)).items():
        console.print(f"{side}: {arn}", markup=False)
    return EXIT_OK


@cli.command()
@_spec_option
@_stage_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Default: terraform/stages/<stage>.ferry.tfvars.json",
)
@_guard
def tfvars(spec_path: str, stage: str, out: str | None) -> int:
    """Write Terraform's variables for a stage from the spec and the sources as they are."""
    from pathlib import Path

    from ferry_cli.deploy import terraform_variables_for, write_json

    path = Path(out or f"terraform/stages/{stage}.ferry.tfvars.json")
    variables = terraform_variables_for(load_spec(spec_path), stage)
    write_json(path, variables)
    console.print(
        f"wrote {path}: {len(variables['tables'])} table(s), {len(variables['buckets'])} bucket(s)", markup=False
    )
    for bucket in variables["buckets"]:
        if not bucket["manage_source_notifications"]:
            console.print(
                f"• {bucket['source']}: has other notifications; Terraform leaves its configuration alone "
                "(`ferry init --sources-only` merged EventBridge into it)",
                markup=False,
            )
    return EXIT_OK


@cli.command("chalice-config")
@_spec_option
@_stage_option
@click.option("--app-dir", type=click.Path(file_okay=False, exists=True), default="chalice_app", show_default=True)
@_guard
def chalice_config_command(spec_path: str, stage: str, app_dir: str) -> int:
    """Write a stage into chalice_app/.chalice: FERRY_SPEC and one least-privilege policy per function."""
    from pathlib import Path

    from ferry.operations import account_of
    from ferry_cli.deploy import chalice_config

    spec = load_spec(spec_path)
    for path in chalice_config(spec, stage, Path(app_dir), account=account_of(spec)):
        console.print(f"• wrote {path}", markup=False)
    return EXIT_OK


@cli.command()
@_spec_option
@_stage_option
@click.option("--glue-workers", type=click.IntRange(2, 299), default=2, show_default=True)
@click.option("--glue-worker-type", default="G.1X", show_default=True)
@_guard
def wire(spec_path: str, stage: str, glue_workers: int, glue_worker_type: str) -> int:
    """After `chalice deploy --stage`: create what Chalice cannot (event-source mappings with their
    safety settings, the bucket-events mapping, the Glue jobs). Same settings as Terraform."""
    from ferry_cli.deploy import wire as wire_stage

    for line in wire_stage(load_spec(spec_path), stage, workers=glue_workers, worker_type=glue_worker_type):
        console.print(f"• {line}", markup=False)
    return EXIT_OK


@cli.command("deploy-local")
@click.option("--stage", default="local", show_default=True, callback=_check_stage)
@click.option(
    "--emulator",
    type=click.Choice(EMULATORS),
    default=None,
    help="The embedded emulator (default: FERRY_EMULATOR, else ministack). On ministack the deployed functions run: "
    "the emulator's own mappings apply a live change through them.",
)
@_guard
def deploy_local(stage: str, emulator: str | None) -> int:
    """Rehearse the deployment against the embedded emulator and check what it created."""
    from ferry_dev.rehearsal import rehearse

    run = rehearse(stage, emulator=emulator)
    out = console if console.is_terminal else Console(width=220)  # a log or CI: full width
    for step in run.steps:
        out.print(f"• {step}", markup=False)
    table = Table(title=f"deployment rehearsal, stage {stage}, on {run.emulator}")
    for column in ("check", "ok", "found"):
        table.add_column(column)
    for what, ok, detail in run.checks:
        table.add_row(Text(what), Text("yes" if ok else "NO", style="green" if ok else "bold red"), Text(detail))
    out.print(table)
    return EXIT_OK if run.ok else EXIT_DIFFERENCES


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
