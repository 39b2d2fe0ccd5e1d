"""REDRIVE for buckets: re-apply the bucket events that ended in ``<events_queue>-dlq``, once
their cause is fixed.

Each message goes through :meth:`ferry.buckets.events.BucketReplicator.apply_sqs_record`, exactly
as the ``bucket_events`` Lambda would handle it: every key it names is reconciled, which reads the
source's current object and makes the target equal to it. That is convergent by construction, so
an old event can never make the target staler. A message is deleted when every key reconciled,
and kept (with the reason) otherwise: an unreadable body, a bucket that is not in the spec, a
target bucket still missing, …
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from ferry.aws import describe_error, is_aws_error
from ferry.buckets.events import BucketReplicator, object_events
from ferry.errors import FerryError
from ferry.redrive_report import KeptMessage, Message, Outcome, RedriveReport, redrive_queue
from ferry.spec import Spec

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

__all__ = ["KeptMessage", "RedriveReport", "redrive_bucket_failures"]

log = logging.getLogger(__name__)


def _subjects(body: Any) -> tuple[str, ...]:
    """The s3:// keys a message body names, for the report; () when it cannot be read."""
    try:
        events = object_events(body if isinstance(body, str) else "")
    except Exception:
        return ()
    return tuple(dict.fromkeys(f"s3://{e.bucket}/{e.key}" for e in events))


def redrive_bucket_failures(
    spec: Spec,
    *,
    s3: S3Client,
    sqs: SQSClient,
    dlq_url: str,
    max_messages: int = 1000,
    visibility_timeout: int = 120,
    wait_seconds: int = 1,
    target_s3: S3Client | None = None,
) -> RedriveReport:
    """Redrive the bucket events DLQ at ``dlq_url`` (normally ``<spec.s3.events_queue>-dlq``):
    reconcile the keys of every message, delete the messages that succeeded, keep the others.

    ``s3`` reads the sources and ``target_s3`` (default ``s3``) the targets, as in
    :class:`~ferry.buckets.events.BucketReplicator`; ``sqs`` is the DLQ's (home account)."""
    replicator = BucketReplicator(spec, s3, target_s3)

    def redrive_one(message: Message) -> Outcome:
        body = message.get("Body", "")
        subjects = _subjects(body)
        record = {"messageId": message.get("MessageId"), "body": body, "eventSource": "aws:sqs"}
        try:
            results = replicator.apply_sqs_record(record)
        except Exception as exc:
            if not isinstance(exc, FerryError) and not is_aws_error(exc):
                log.exception("redrive of a bucket event failed unexpectedly")
            where = f"{', '.join(subjects)}: " if subjects else ""
            return Outcome(problem=f"{where}{describe_error(exc)}", subjects=subjects)
        return Outcome(len(results), Counter(r.action for r in results), None, subjects)

    report = redrive_queue(
        sqs,
        dlq_url,
        redrive_one,
        max_messages=max_messages,
        visibility_timeout=visibility_timeout,
        wait_seconds=wait_seconds,
    )
    log.info("redrive of %s: %s", dlq_url, report.describe())
    return report
