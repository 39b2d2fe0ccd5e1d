"""The ``bucket_events`` Lambda: a batch of SQS messages (S3 notifications or EventBridge S3
events) → partial batch response.

Each message's keys are reconciled (the source's current state is copied to the target), so
duplicated, reordered and stale events are harmless. A message that fails (transient error, or
an unmapped bucket / unreadable body) is listed in ``batchItemFailures``: SQS delivers it again
and, after the queue's ``maxReceiveCount``, moves it to the dead-letter queue.

Configuration enters once, from ``FERRY_SPEC`` (the spec as JSON, written by ``make deploy`` /
``chalice deploy``), and becomes a frozen Spec. Clients are built on the first invocation,
never at import time (Chalice imports app.py while packaging). After each batch one lag sample per
source bucket is written to the state table at home (ferry.runlog).

The same code replicates in reverse (``handle_reverse``: the new buckets' events back to the old buckets,
docs/adr/0009): its configuration is the same spec, reversed (ferry.twoway.reverse_spec).
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from ferry.buckets.events import BucketReplicator
from ferry.clients import bucket_clients, make_client
from ferry.errors import PoisonRecordError
from ferry.runlog import RunLog
from ferry.spec import parse_spec
from ferry.twoway import reverse_spec

logger = Logger(service="ferry-bucket-events")
FORWARD, REVERSE = "forward", "reverse"
_replicators: dict[str, BucketReplicator] = {}


def replicator(direction: str = FORWARD) -> BucketReplicator:
    if direction not in _replicators:
        spec = parse_spec(json.loads(os.environ["FERRY_SPEC"]))
        spec = reverse_spec(spec) if direction == REVERSE else spec
        clients = bucket_clients(spec)  # source read with its role, target written with its own
        runlog = RunLog(make_client("dynamodb", spec.home_where()), spec.state_table)  # lag samples
        _replicators[direction] = BucketReplicator(spec, clients.source, clients.target, runlog)
    return _replicators[direction]


def reset() -> None:
    """Forget the cached configuration and clients (tests, and local pollers after a spec change)."""
    _replicators.clear()


def _record_handler(record: SQSRecord, reconciled_in_batch: set[tuple[str, str]], direction: str = FORWARD) -> None:
    try:
        replicator(direction).apply_sqs_record(record.raw_event, reconciled_in_batch)
    except Exception as exc:
        log = logger.error if isinstance(exc, PoisonRecordError) else logger.warning
        log(
            "bucket event failed",
            extra={
                "message_id": record.message_id,
                "receive_count": record.attributes.approximate_receive_count,
                "error": str(exc),
            },
        )
        raise


def handle(event: dict[str, Any], context: Any, direction: str = FORWARD) -> dict[str, Any]:
    if not event.get("Records"):  # Powertools rejects an empty batch; there is nothing to fail
        return {"batchItemFailures": []}
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    # One reconcile per key and batch: S3 often sends several events for one change (created +
    # tags), and a reconcile reads the source's current state, which covers them all.
    record_handler = functools.partial(_record_handler, reconciled_in_batch=set(), direction=direction)
    response = dict(
        process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    )
    _record_lags(event["Records"], response, direction)
    return response


def handle_reverse(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The reverse function: the new buckets' events back to the old ones (ferry reverse)."""
    return handle(event, context, REVERSE)


def _record_lags(records: list[dict[str, Any]], response: dict[str, Any], direction: str) -> None:
    """The run log's lag samples of the batch: never fails it (not even without a configuration)."""
    try:
        replicator(direction).record_lags(records, response)
    except Exception as exc:
        logger.warning("lag sample not recorded", extra={"error": str(exc)})
