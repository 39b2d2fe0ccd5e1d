"""The ``table_stream`` Lambda: a DynamoDB stream batch → partial batch response.

Configuration enters once, from ``FERRY_SPEC`` (the spec as JSON, written by ``make deploy`` /
``chalice deploy``), and becomes a frozen Spec. Clients are built on the first invocation,
never at import time (Chalice imports app.py while packaging). After each batch one lag sample per
source table is written to the state table (ferry.runlog).
"""

from __future__ import annotations

import json
import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from ferry.clients import make_client
from ferry.spec import parse_spec
from ferry.tables.replicate import TableReplicator
from ferry.tables.state import PhaseCache, StateStore

logger = Logger(service="ferry-table-stream")
_replicator: TableReplicator | None = None


def replicator() -> TableReplicator:
    global _replicator
    if _replicator is None:
        spec = parse_spec(json.loads(os.environ["FERRY_SPEC"]))
        # Writes go to the target (its role, if any); the phase is read from the state table at home.
        target = make_client("dynamodb", spec.target_where())
        state = target if spec.target_where() == spec.home_where() else make_client("dynamodb", spec.home_where())
        phases = PhaseCache(StateStore(state, spec.state_table), spec.replication.phase_cache_seconds)
        _replicator = TableReplicator(spec, target, phases)
    return _replicator


def reset() -> None:
    """Forget the cached configuration and clients (tests, and local pollers after a spec change)."""
    global _replicator
    _replicator = None


def _record_handler(record: DynamoDBRecord) -> None:
    # The raw record, not Powertools' new_image helper: that one leaves binaries as base64 text.
    try:
        replicator().apply_stream_record(record.raw_event)
    except Exception as exc:
        logger.warning(
            "stream record failed",
            extra={"sequence_number": record.dynamodb.sequence_number if record.dynamodb else None, "error": str(exc)},
        )
        raise


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if not event.get("Records"):  # Powertools rejects an empty batch; there is nothing to fail
        return {"batchItemFailures": []}
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)
    response = dict(
        process_partial_response(event=event, record_handler=_record_handler, processor=processor, context=context)
    )
    _record_lags(event["Records"], response)
    return response


def _record_lags(records: list[dict[str, Any]], response: dict[str, Any]) -> None:
    """The run log's lag samples of the batch: never fails it (not even without a configuration)."""
    try:
        replicator().record_lags(records, response)
    except Exception as exc:
        logger.warning("lag sample not recorded", extra={"error": str(exc)})
