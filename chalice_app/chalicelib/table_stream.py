"""The ``table_stream`` Lambda: a DynamoDB stream batch → partial batch response.

Configuration enters once, from ``FERRY_SPEC`` (the spec as JSON, written by ``make deploy`` /
``chalice deploy``), and becomes a frozen Spec. Clients are built on the first invocation,
never at import time (Chalice imports app.py while packaging). After each batch one lag sample per
source table is written to the state table (ferry.runlog).

The same code replicates in reverse (``handle_reverse``: the new tables' streams back to the old tables,
docs/adr/0009): its configuration is the same spec, reversed (ferry.twoway.reverse_spec).
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from ferry.clients import make_client
from ferry.errors import RetryableError
from ferry.spec import parse_spec
from ferry.tables.replicate import TableReplicator
from ferry.tables.state import PhaseCache, StateStore
from ferry.twoway import reverse_spec

logger = Logger(service="ferry-table-stream")
FORWARD, REVERSE = "forward", "reverse"
_replicators: dict[str, TableReplicator] = {}


def replicator(direction: str = FORWARD) -> TableReplicator:
    if direction not in _replicators:
        spec = parse_spec(json.loads(os.environ["FERRY_SPEC"]))
        spec = reverse_spec(spec) if direction == REVERSE else spec
        # Writes go to the target (its role, if any); the phase is read from the state table at home.
        target = make_client("dynamodb", spec.target_where())
        state = target if spec.target_where() == spec.home_where() else make_client("dynamodb", spec.home_where())
        phases = PhaseCache(StateStore(state, spec.state_table), spec.replication.phase_cache_seconds)
        _replicators[direction] = TableReplicator(spec, target, phases)
    return _replicators[direction]


def reset() -> None:
    """Forget the cached configuration and clients (tests, and local pollers after a spec change)."""
    _replicators.clear()


def _record_handler(record: DynamoDBRecord, direction: str, failed_keys: set[str]) -> None:
    # The raw record, not Powertools' new_image helper: that one leaves binaries as base64 text.
    key = replicator(direction).record_key(record.raw_event)
    try:
        if key is not None and key in failed_keys:
            # The batch is retried from its first failed record: a later record of the same key must wait
            # for it, or the key's changes would be applied out of order.
            raise RetryableError("an earlier record of this key failed in this batch")
        replicator(direction).apply_stream_record(record.raw_event)
    except Exception as exc:
        if key is not None:
            failed_keys.add(key)
        logger.warning(
            "stream record failed",
            extra={"sequence_number": record.dynamodb.sequence_number if record.dynamodb else None, "error": str(exc)},
        )
        raise


def handle(event: dict[str, Any], context: Any, direction: str = FORWARD) -> dict[str, Any]:
    if not event.get("Records"):  # Powertools rejects an empty batch; there is nothing to fail
        return {"batchItemFailures": []}
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)
    record_handler = functools.partial(_record_handler, direction=direction, failed_keys=set())
    response = dict(
        process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    )
    _record_lags(event["Records"], response, direction)
    return response


def handle_reverse(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The reverse function: the new tables' changes back to the old ones (ferry reverse)."""
    return handle(event, context, REVERSE)


def _record_lags(records: list[dict[str, Any]], response: dict[str, Any], direction: str) -> None:
    """The run log's lag samples of the batch: never fails it (not even without a configuration)."""
    try:
        replicator(direction).record_lags(records, response)
    except Exception as exc:
        logger.warning("lag sample not recorded", extra={"error": str(exc)})
