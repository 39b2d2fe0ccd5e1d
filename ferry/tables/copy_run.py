"""One copy of a table, as its Glue job's driver runs it: the checks before the first write, the export
and the import (when the copy uses them), and the record of the run in the state table.

- ``begin_copy`` refuses a copy that must not run (a replay copy after its release or next to an
  insert-only consumer, an export without point-in-time recovery, an import onto an existing table, a
  replay copy estimated to outlast ``backfill.max_hold_hours``), enters the insert-only phase when the
  protocol is insert-only, and records the run — or resumes the one recorded, when it copies the same way.
- ``export_files`` starts the point-in-time export (once: a rerun finds its ARN), waits for it and
  lists its data files (one Spark task each).
- ``import_target`` has ImportTable create the target from those files and waits for it: any item it
  could not import fails the run.
- ``finish_copy`` records the completed run; a replay copy is then released (ferry.release).

The run records what the report compares the measured copy with: the read and write budgets (units/s,
``capacity_budget`` of the whole copy) and the estimate of its duration at the start; a fresh run
leaves the previous run's copy log behind its start, and a completed import is one copy sample (ferry.runlog).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ferry.aws import describe_table_or_none, point_in_time_recovery_enabled, start_export, start_import
from ferry.clients import TableClients, make_client
from ferry.deploy import export_bucket
from ferry.errors import PermanentError, SetupError
from ferry.runlog import CopySample, RunLog, epoch_of
from ferry.spec import READ_EXPORT, READ_SCAN, WRITE_IMPORT, Spec, TableMapping
from ferry.tables.backfill import capacity_budget
from ferry.tables.estimate import duration, estimate_copy
from ferry.tables.export import (
    data_directory,
    export_data_files,
    export_prefix,
    import_parameters,
    wait_for_export,
    wait_for_import,
)
from ferry.tables.finalize import start_backfill_phase
from ferry.tables.protocol import PHASE_HOLD, copy_refusal
from ferry.tables.schema import TableShape, describe_shape, shape_from_description
from ferry.tables.setup import copy_ttl, record_capture
from ferry.tables.state import COPY_DONE, COPY_RUNNING, TABLE, CopyRun, StateStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportResult:
    import_arn: str
    imported: int
    processed: int
    errors: int


def _signature(spec: Spec, mapping: TableMapping) -> str:
    settings = spec.backfill
    splits = settings.splits if settings.read == READ_SCAN else ""
    return f"{mapping.protocol}/{settings.read}/{settings.write}/{splits}"


def require_point_in_time_recovery(clients: TableClients, spec: Spec, mapping: TableMapping) -> None:
    if spec.backfill.read == READ_EXPORT and not point_in_time_recovery_enabled(clients.source, mapping.source):
        raise SetupError(
            f"backfill.read: export needs point-in-time recovery on {mapping.source!r}, which is off; turn it on "
            "with `ferry init --enable-pitr` (a change to the source, so only on request) or use read: scan"
        )


def begin_copy(
    spec: Spec,
    mapping: TableMapping,
    clients: TableClients,
    *,
    restart: bool = False,
    now: Callable[[], float] = time.time,
) -> CopyRun:
    """Check everything, then record the run (or resume the one recorded). SetupError (exit 2), no
    write made, when the copy must not run.

    A replay table without a phase (deployed by Terraform after ``ferry init --sources-only``, which
    enabled its stream but wrote no state) begins its capture here, before anything is read: its
    stream mapping does not exist until the release creates it, so its changes are held already."""
    store = StateStore(clients.state, spec.state_table)
    phase = store.phase_or_none(mapping.source)
    capture_now = mapping.replay and phase is None
    refusal = None if capture_now else copy_refusal(mapping.protocol, phase)
    if refusal is not None:
        raise SetupError(f"{mapping.source}: a replay copy cannot start: {refusal}")
    settings = spec.backfill
    require_point_in_time_recovery(clients, spec, mapping)
    run = store.load_copy(mapping.source)
    source = describe_shape(clients.source, mapping.source, "source")
    target_description = describe_table_or_none(clients.target, mapping.target)
    if settings.write == WRITE_IMPORT:
        import_parameters(source, mapping.target)  # refuses local secondary indexes
        if target_description is not None and not (run and run.import_arn):
            raise SetupError(
                f"backfill.write: import creates {mapping.target!r}, which exists already; ImportTable cannot load an "
                "existing table: drop it, or use write: batch"
            )
    signature = _signature(spec, mapping)
    resuming = run is not None and run.signature == signature and not restart
    if mapping.replay and not resuming:  # a new copy must fit in the hold window (a resumed one: the release)
        _check_hold_window(spec, mapping, source, target_description)
    # Every check passed: now the writes.
    if capture_now:  # capture begins before anything is read
        streams = make_client("dynamodbstreams", spec.source_where())
        record_capture(store, clients, streams, mapping, now=now())
        store.set_phase(mapping.source, PHASE_HOLD)
    if not mapping.replay:
        start_backfill_phase(spec, mapping, store)  # the consumer applies changes concurrently: tombstones on
    if resuming and run is not None:
        log.info("%s: resuming the copy started at %s (%s)", mapping.source, time.ctime(run.started_at), run.status)
        return run
    store.clear_segments(mapping.source)
    read_budget, write_budget, estimated = _plan_figures(spec, source, target_description)
    run = CopyRun(
        protocol=mapping.protocol,
        read=settings.read,
        write=settings.write,
        status=COPY_RUNNING,
        signature=signature,
        started_at=round(now(), 3),
        read_budget=round(read_budget, 3),
        write_budget=round(write_budget, 3),
        estimated_seconds=round(estimated, 3),
    )
    store.save_copy(mapping.source, run)
    return run


def _plan_figures(
    spec: Spec, source: TableShape, target_description: dict[str, Any] | None
) -> tuple[float, float, float]:
    """(read budget, write budget, estimated seconds) of a new copy, as the report draws them: the budgets
    of the whole copy in units/s (no write budget when ImportTable writes), the estimate 0 when there is
    none (an estimate that fails is logged, never stops the copy)."""
    settings = spec.backfill
    target = shape_from_description(target_description) if target_description else None
    read_budget = capacity_budget(source, settings.read_percent, settings.on_demand_read_units, write=False)
    write_budget = 0.0
    if settings.write != WRITE_IMPORT and target is not None:
        write_budget = capacity_budget(target, settings.write_percent, settings.on_demand_write_units, write=True)
    try:
        seconds = estimate_copy(source, target, settings).seconds
    except Exception as exc:  # the estimate is for people
        log.warning("%s: no estimate of the copy: %s", source.name, exc)
        seconds = None
    return read_budget, write_budget, float(seconds or 0.0)


def _check_hold_window(
    spec: Spec, mapping: TableMapping, source: TableShape, target_description: dict[str, Any] | None
) -> None:
    settings = spec.backfill
    target = shape_from_description(target_description) if target_description else None
    estimate = estimate_copy(source, target, settings)
    if estimate.seconds is not None and estimate.seconds > settings.max_hold_hours * 3600:
        raise SetupError(
            f"{mapping.source}: the copy is estimated at {duration(estimate.seconds)} at its budget "
            f"({estimate.describe()}), above backfill.max_hold_hours ({settings.max_hold_hours:g}): the held "
            "changes could be trimmed from the stream before they are replayed; raise backfill.read_percent / "
            "write_percent, or use protocol insert-only"
        )


def export_files(
    spec: Spec,
    mapping: TableMapping,
    clients: TableClients,
    s3: S3Client,
    run: CopyRun,
    *,
    account: str,
    poll: float = 10.0,
) -> tuple[CopyRun, str, tuple[str, ...]]:
    """The export's bucket and data files: started once (its ARN is recorded, so a rerun waits for the same
    export), waited for, listed. ``s3`` reads the export bucket (ferry's home account)."""
    store = StateStore(clients.state, spec.state_table)
    if run.export_files:
        return run, run.export_bucket, tuple(json.loads(run.export_files))
    if not run.export_arn:
        bucket = export_bucket(spec, account)
        prefix = export_prefix(mapping.source, f"{int(run.started_at * 1000)}")
        table_arn = str(describe_shape(clients.source, mapping.source, "source").raw["TableArn"])
        arn = start_export(
            clients.source,
            table_arn=table_arn,
            bucket=bucket,
            prefix=prefix,
            bucket_owner=account,
            token=f"ferry-{int(run.started_at * 1000)}",
        )
        run = replace(run, export_arn=arn, export_bucket=bucket, export_prefix=prefix)
        store.save_copy(mapping.source, run)
        log.info("%s: export %s to s3://%s/%s started", mapping.source, arn, bucket, prefix)
    description = wait_for_export(clients.source, run.export_arn, poll=poll)
    files = tuple(export_data_files(s3, run.export_bucket, run.export_prefix, description))
    run = replace(run, export_files=json.dumps(files), exported_items=int(description.get("ItemCount") or 0))
    store.save_copy(mapping.source, run)
    log.info("%s: export %s complete: %d data files", mapping.source, run.export_arn, len(files))
    return run, run.export_bucket, files


def import_target(
    spec: Spec,
    mapping: TableMapping,
    clients: TableClients,
    run: CopyRun,
    files: tuple[str, ...],
    *,
    account: str,
    poll: float = 10.0,
) -> tuple[CopyRun, ImportResult]:
    """ImportTable creates the target from the export's files (once: a rerun waits for the same import).
    PermanentError when any item could not be imported, or when fewer items were imported than exported
    (an import that drops items without counting them as errors must not pass for a copy)."""
    store = StateStore(clients.state, spec.state_table)
    if not run.import_arn:
        source = describe_shape(clients.source, mapping.source, "source")
        arn = start_import(
            clients.target,
            bucket=run.export_bucket,
            key_prefix=data_directory(list(files)),
            bucket_owner=account,
            table=import_parameters(source, mapping.target),
            token=f"ferry-import-{int(run.started_at * 1000)}",
        )
        run = replace(run, import_arn=arn)
        store.save_copy(mapping.source, run)
        log.info("%s: import %s into %s started", mapping.source, arn, mapping.target)
    description = wait_for_import(clients.target, run.import_arn, poll=poll)
    result = ImportResult(
        run.import_arn,
        imported=int(description.get("ImportedItemCount") or 0),
        processed=int(description.get("ProcessedItemCount") or 0),
        errors=int(description.get("ErrorCount") or 0),
    )
    if result.errors:
        raise PermanentError(
            f"{mapping.source}: import {result.import_arn} could not import {result.errors} of {result.processed} "
            f"items (see its CloudWatch log group {description.get('CloudWatchLogGroupArn', '')}); the copy failed"
        )
    if run.exported_items and result.imported != run.exported_items:
        raise PermanentError(
            f"{mapping.source}: import {result.import_arn} loaded {result.imported} items, the export "
            f"{run.export_arn} holds {run.exported_items}; the copy failed (verify names the missing keys)"
        )
    copy_ttl(clients, mapping)
    _record_import(spec, mapping, clients, run, description, result)
    return run, result


def _record_import(
    spec: Spec, mapping: TableMapping, clients: TableClients, run: CopyRun, description: Any, result: ImportResult
) -> None:
    """The import as one copy sample (split 0, no capacity units: ImportTable does not consume the target's);
    written again by a rerun under the same key."""
    started = epoch_of(description.get("StartTime")) or run.started_at
    ended = epoch_of(description.get("EndTime")) or time.time()
    sample = CopySample(
        split=0,
        started=round(started, 3),
        ended=round(max(ended, started), 3),
        items=result.imported,
        bytes=int(description.get("ProcessedSizeBytes") or 0),
    )
    RunLog(clients.state, spec.state_table).save_copy_sample(mapping.source, TABLE, sample)


def finish_copy(
    spec: Spec,
    mapping: TableMapping,
    clients: TableClients,
    run: CopyRun,
    items: int,
    *,
    now: Callable[[], float] = time.time,
) -> CopyRun:
    """Record the run as complete (``items`` copied)."""
    run = replace(run, status=COPY_DONE, finished_at=round(now(), 3), items=items)
    StateStore(clients.state, spec.state_table).save_copy(mapping.source, run)
    return run
