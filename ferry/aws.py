"""The one adapter around boto3: named operations that call AWS and translate its errors once.

Everything else in ferry calls these instead of a client method whose failure it would have to
interpret. An operation answers in ferry's terms — a value, ``None`` for "does not exist", or one of
:mod:`ferry.errors` — so no other module looks at a ``ClientError`` code.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import ClientError

from ferry.errors import FerryError, PermanentError, RetryableError, SetupError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)
T = TypeVar("T")

STREAM_VIEW = "NEW_AND_OLD_IMAGES"
_NO_QUEUE_CODES = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


# --- errors ------------------------------------------------------------------------------------

THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "Throttling",
        "SlowDown",
        "TooManyRequestsException",
        "RequestThrottled",  # SQS
        "RequestThrottledException",
    }
)
TRANSIENT_CODES = THROTTLING_CODES | frozenset(
    {"InternalServerError", "InternalFailure", "ServiceUnavailable", "InternalError", "LimitExceededException"}
)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError, or '' for anything else."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def is_transient(exc: BaseException) -> bool:
    """Throttling, 5xx, and connection-level failures are worth retrying."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError, ReadTimeoutError

    # HTTPClientError covers ConnectionClosedError: a connection reset before or after the request.
    if isinstance(exc, (BotoConnectionError, ReadTimeoutError, HTTPClientError)):
        return True
    code = error_code(exc)
    if code in TRANSIENT_CODES:
        return True
    response = getattr(exc, "response", None) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) if isinstance(response, dict) else 0
    return isinstance(status, int) and status >= 500


def call_with_retries(
    call: Callable[[], T],
    what: str,
    *,
    attempts: int = 8,
    base_delay: float = 0.1,
    on_retry: Callable[[BaseException], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``call`` (which already has botocore's retries) until it succeeds, fails permanently,
    or stays transient for ``attempts`` tries; backoff is exponential with jitter, capped at 20 s.
    The last exception is re-raised unchanged."""
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc) or attempt == attempts - 1:
                raise
            if on_retry is not None:
                on_retry(exc)
            delay = min(20.0, base_delay * 2**attempt) * random.uniform(0.5, 1.0)
            log.warning("%s: transient error %s, retry in %.2fs", what, error_code(exc) or type(exc).__name__, delay)
            sleep(delay)
    raise AssertionError("unreachable: attempts must be at least 1")


def translate_error(exc: Exception, what: str) -> Exception:
    """A data-path failure as one of ferry's errors, at the adapter edge: transient AWS errors
    become RetryableError, other AWS errors PermanentError; ferry's own errors pass unchanged."""
    if isinstance(exc, FerryError):
        return exc
    detail = f"{what}: {error_code(exc) or type(exc).__name__}: {exc}"
    if is_transient(exc):
        return RetryableError(detail)
    if error_code(exc):
        return PermanentError(detail)
    return exc


# --- SQS ---------------------------------------------------------------------------------------


def queue_url_or_none(sqs: SQSClient, name: str) -> str | None:
    """The URL of queue ``name``, or None when it does not exist."""
    try:
        return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
    except ClientError as exc:
        if any(code in error_code(exc) for code in _NO_QUEUE_CODES):
            return None
        raise


def queue_arn_of(sqs: SQSClient, queue_url: str) -> str:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
    return str(attributes["QueueArn"])


def queue_depth(sqs: SQSClient, queue_url: str) -> int:
    """Messages waiting in the queue (ApproximateNumberOfMessages)."""
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def ensure_queue(sqs: SQSClient, name: str, attributes: dict[str, str]) -> str:
    """The URL of queue ``name`` with ``attributes`` set: created, or brought up to date when it exists."""
    url = queue_url_or_none(sqs, name)
    if url is None:
        return str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])
    sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    return url


# --- DynamoDB ----------------------------------------------------------------------------------


def describe_table_or_none(ddb: DynamoDBClient, name: str) -> dict[str, Any] | None:
    """DescribeTable's ``Table``, or None when the table does not exist."""
    try:
        return dict(ddb.describe_table(TableName=name)["Table"])
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise


def stream_arn_of(ddb: DynamoDBClient, table: str) -> str:
    """The ARN of ``table``'s stream. SetupError when the table, or a stream with new images, is missing."""
    description = describe_table_or_none(ddb, table)
    if description is None:
        raise SetupError(f"table {table!r} does not exist")
    stream = description.get("StreamSpecification") or {}
    arn = description.get("LatestStreamArn")
    if not arn or not stream.get("StreamEnabled"):
        raise SetupError(
            f"table {table!r} has no stream: enable one with StreamViewType {STREAM_VIEW} "
            f"(aws dynamodb update-table --table-name {table} "
            f"--stream-specification StreamEnabled=true,StreamViewType={STREAM_VIEW})"
        )
    if stream.get("StreamViewType") not in ("NEW_IMAGE", STREAM_VIEW):
        raise SetupError(
            f"the stream of {table!r} is {stream.get('StreamViewType')}: replication needs {STREAM_VIEW} "
            "(disable the stream and enable it again with that view type)"
        )
    return str(arn)
