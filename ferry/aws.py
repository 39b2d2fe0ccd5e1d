"""The one adapter around boto3: named operations that call AWS and translate its errors once.

Everything else in ferry calls these instead of a client method whose failure it would have to
interpret. An operation answers in ferry's terms — a value, ``None`` for "does not exist", a bool,
or one of :mod:`ferry.errors` — so no other module looks at a ``ClientError`` or its code.

Each operation translates exactly the AWS errors its docstring names; every other error (throttling,
5xx, access denied, …) propagates unchanged, so :func:`call_with_retries` around an operation still
retries what is transient and callers still see what is permanent. The translated errors are never
transient, so wrapping an operation in :func:`call_with_retries` or not makes no difference to them.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

from botocore.exceptions import ClientError, HTTPClientError

from ferry.errors import (
    FerryError,
    OutcomeUnknown,
    PermanentError,
    RetryableError,
    SetupError,
    ShardIteratorExpired,
    SourceChanged,
    StreamNotFound,
    StreamTrimmed,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import PutItemOutputTypeDef
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_dynamodbstreams.literals import ShardIteratorTypeType
    from mypy_boto3_dynamodbstreams.type_defs import GetRecordsOutputTypeDef
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_glue import GlueClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.literals import BucketLocationConstraintType
    from mypy_boto3_s3.type_defs import (
        CopyObjectOutputTypeDef,
        HeadObjectOutputTypeDef,
        ListObjectsV2OutputTypeDef,
        TagTypeDef,
        UploadPartCopyOutputTypeDef,
    )
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType

log = logging.getLogger(__name__)
T = TypeVar("T")

STREAM_VIEW: Final = "NEW_AND_OLD_IMAGES"
_NO_QUEUE_CODES = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})  # HEAD answers carry no body: "404"
_NO_BUCKET_CODES = frozenset({"404", "NoSuchBucket", "NotFound"})
_FORBIDDEN_CODES = frozenset({"403", "AccessDenied", "Forbidden"})
# A pinned copy failing with these: the source is no longer what was read.
_SOURCE_CHANGED_CODES = frozenset({"PreconditionFailed", "412", "NoSuchKey"})


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
# Per-statement errors of BatchExecuteStatement (BatchStatementError codes) that say "not now": send again.
# TransactionConflict: the item is in a transaction that is running.
STATEMENT_RESEND_CODES = frozenset(
    {
        "ProvisionedThroughputExceeded",
        "ThrottlingError",
        "RequestLimitExceeded",
        "InternalServerError",
        "TransactionConflict",
    }
)
PROBE_ATTEMPTS = 5  # throttled probe INSERTs are sent again this many times in all; nothing else is


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError, or '' for anything else."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _status(exc: BaseException) -> int:
    """The HTTP status of an AWS error answer, or 0."""
    response = getattr(exc, "response", None)
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) if isinstance(response, dict) else 0
    return status if isinstance(status, int) else 0


def is_aws_error(exc: BaseException) -> bool:
    """Whether ``exc`` is an error answer of an AWS service (botocore's ClientError), as opposed to
    a failure to reach it or a bug: callers log those two differently."""
    return isinstance(exc, ClientError)


def error_name(exc: BaseException) -> str:
    """A short name for a failure, for messages and logs: the AWS error code, else the exception's class."""
    return error_code(exc) or type(exc).__name__


def describe_error(exc: BaseException) -> str:
    """A one-line reason for a failure: ferry's own message, or the AWS error code and message."""
    if isinstance(exc, FerryError):
        return str(exc)
    return f"{error_name(exc)}: {exc}"


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
    return _status(exc) >= 500


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
            log.warning("%s: transient error %s, retry in %.2fs", what, error_name(exc), delay)
            sleep(delay)
    raise AssertionError("unreachable: attempts must be at least 1")


def translate_error(exc: Exception, what: str) -> Exception:
    """A data-path failure as one of ferry's errors, at the adapter edge: transient AWS errors
    become RetryableError, other AWS errors PermanentError; ferry's own errors pass unchanged."""
    if isinstance(exc, FerryError):
        return exc
    detail = f"{what}: {error_name(exc)}: {exc}"
    if is_transient(exc):
        return RetryableError(detail)
    if error_code(exc):
        return PermanentError(detail)
    return exc


def _or_none(call: Callable[[], T], absent: Callable[[ClientError], bool]) -> T | None:
    """``call()``, or None when AWS answers that what it reads does not exist (``absent``)."""
    try:
        return call()
    except ClientError as exc:
        if absent(exc):
            return None
        raise


def _code_in(*codes: str) -> Callable[[ClientError], bool]:
    return lambda exc: error_code(exc) in codes


# --- SQS ---------------------------------------------------------------------------------------


def queue_url_or_none(sqs: SQSClient, name: str) -> str | None:
    """The URL of queue ``name``, or None when it does not exist (QueueDoesNotExist /
    AWS.SimpleQueueService.NonExistentQueue)."""

    def absent(exc: ClientError) -> bool:  # the code is namespaced differently by SQS's two protocols
        return any(code in error_code(exc) for code in _NO_QUEUE_CODES)

    return _or_none(lambda: str(sqs.get_queue_url(QueueName=name)["QueueUrl"]), absent)


def queue_arn_of(sqs: SQSClient, queue_url: str) -> str:
    """The ARN of the queue at ``queue_url`` (its QueueArn attribute); no error is translated."""
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
    return str(attributes["QueueArn"])


def queue_depth(sqs: SQSClient, queue_url: str) -> int:
    """Messages waiting in the queue (ApproximateNumberOfMessages)."""
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def ensure_queue(sqs: SQSClient, name: str, attributes: Mapping[str, str]) -> str:
    """The URL of queue ``name`` with ``attributes`` set: created, or brought up to date when it exists."""
    wanted = cast("Mapping[QueueAttributeNameType, str]", attributes)
    url = queue_url_or_none(sqs, name)
    if url is None:
        return str(sqs.create_queue(QueueName=name, Attributes=wanted)["QueueUrl"])
    sqs.set_queue_attributes(QueueUrl=url, Attributes=wanted)
    return url


# --- DynamoDB ----------------------------------------------------------------------------------


def is_missing_resource(exc: BaseException) -> bool:
    """Whether ``exc`` is AWS saying the named resource (a table, a function, a mapping) does not exist."""
    return error_code(exc) == "ResourceNotFoundException"


def describe_table_or_none(ddb: DynamoDBClient, name: str) -> dict[str, Any] | None:
    """DescribeTable's ``Table``, or None when the table does not exist (ResourceNotFoundException)."""
    return _or_none(lambda: dict(ddb.describe_table(TableName=name)["Table"]), _code_in("ResourceNotFoundException"))


@contextmanager
def missing_table_raises(error: Exception) -> Iterator[None]:
    """Inside the block, DynamoDB's ResourceNotFoundException (a table the requests name does not
    exist) is raised as ``error``, without the AWS error as its context; anything else passes unchanged."""
    try:
        yield
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise error from None
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


def create_table_if_missing(ddb: DynamoDBClient, definition: Mapping[str, Any], *, max_wait_attempts: int = 60) -> bool:
    """Create the table of CreateTable arguments ``definition`` unless DescribeTable finds it
    (ResourceNotFoundException means: create it), and wait until it exists. True when it was created."""
    name = str(definition["TableName"])
    if describe_table_or_none(ddb, name) is not None:
        return False
    ddb.create_table(**definition)
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": max_wait_attempts})
    return True


def put_item_if(
    ddb: DynamoDBClient,
    table: str,
    item: Mapping[str, Any],
    condition: Mapping[str, Any],
    *,
    consumed_capacity: bool = False,
) -> tuple[bool, PutItemOutputTypeDef | None]:
    """A conditional PutItem: ``(True, response)`` when written, ``(False, None)`` when the condition
    (``ConditionExpression`` and its names/values) did not hold (ConditionalCheckFailedException).
    ``consumed_capacity`` asks for the request's ConsumedCapacity (TOTAL)."""
    extra: dict[str, Any] = dict(condition)
    if consumed_capacity:
        extra["ReturnConsumedCapacity"] = "TOTAL"
    try:
        return True, ddb.put_item(TableName=table, Item=item, **extra)
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return False, None
        raise


_unsure = threading.local()  # .writing: this thread is sending a write that must not be resent blindly


def _no_blind_resend(response: Any = None, caught_exception: Any = None, **_: Any) -> bool | None:
    """botocore ``needs-retry`` hook, first in line: while this thread is inside :func:`unsure_write`, a failure
    that may have landed (connection lost after sending, a read timeout, a 5xx) is not sent again (False);
    anything else (throttling, a connection never made) is left to the client's retry mode (None)."""
    if not getattr(_unsure, "writing", False):
        return None
    if isinstance(caught_exception, HTTPClientError) or (response is not None and response[0].status_code >= 500):
        return False
    return None


@contextmanager
def unsure_write(client: Any, operation: str, what: str) -> Iterator[None]:
    """Around one write (``operation``, e.g. ``PutItem``, ``CopyObject``) of ``client`` that must never be resent
    blindly: under two-way replication its precondition is only as strong as its caller's read, so a write sent
    again after its first attempt landed could overwrite a change the destination's owner made in between.
    A failure that may have landed raises :class:`OutcomeUnknown`; the caller reads the destination and judges
    again. Throttling and connections never made are still retried by the client's retry mode."""
    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register_first(
        f"needs-retry.{service}.{operation}",
        _no_blind_resend,
        unique_id=f"ferry-no-blind-resend-{service}-{operation}",
    )
    _unsure.writing = True
    try:
        yield
    except ClientError as exc:
        if _status(exc) >= 500:
            raise OutcomeUnknown(f"{what}: {error_name(exc)}; it may have landed") from exc
        raise
    except HTTPClientError as exc:
        raise OutcomeUnknown(f"{what}: {type(exc).__name__}; it may have landed") from exc
    finally:
        _unsure.writing = False


def write_item_if(
    ddb: DynamoDBClient,
    table: str,
    condition: Mapping[str, Any],
    *,
    item: Mapping[str, Any] | None = None,
    key: Mapping[str, Any] | None = None,
) -> tuple[bool, dict[str, Any] | None]:
    """A conditional PutItem of ``item`` or, without one, DeleteItem of ``key``: ``(True, None)`` when written,
    ``(False, current)`` when the condition did not hold, ``current`` the item as it is then (None: absent),
    from the failure itself (ReturnValuesOnConditionCheckFailure). Never resent blindly (:func:`unsure_write`):
    OutcomeUnknown when its answer was lost."""
    operation = "PutItem" if item is not None else "DeleteItem"
    try:
        with unsure_write(ddb, operation, f"{operation} on {table}"):
            if item is not None:
                ddb.put_item(TableName=table, Item=item, ReturnValuesOnConditionCheckFailure="ALL_OLD", **condition)
            elif key is not None:
                ddb.delete_item(TableName=table, Key=key, ReturnValuesOnConditionCheckFailure="ALL_OLD", **condition)
            else:
                raise ValueError("write_item_if needs an item to put or a key to delete")
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            current = cast("dict[str, Any] | None", exc.response.get("Item"))
            return False, dict(current) if current else None
        raise
    return True, None


def delete_item_if(ddb: DynamoDBClient, table: str, key: Mapping[str, Any], condition: Mapping[str, Any]) -> bool:
    """A conditional DeleteItem: True when deleted, False when the condition did not hold
    (ConditionalCheckFailedException: the item is not, or no longer, what the condition describes)."""
    try:
        ddb.delete_item(TableName=table, Key=key, **condition)
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def batch_write_puts(
    ddb: DynamoDBClient, table: str, requests: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], float | None]:
    """One BatchWriteItem of PutRequests into ``table`` (at most 25, no key twice): ``(unprocessed, units)``,
    the requests DynamoDB did not process (to be sent again: they are never dropped here) and the write
    units it reports having consumed (None when it reports none). No error is translated."""
    response = ddb.batch_write_item(RequestItems={table: cast("Any", requests)}, ReturnConsumedCapacity="TOTAL")
    unprocessed = list((response.get("UnprocessedItems") or {}).get(table, []))
    consumed = next(
        (c.get("CapacityUnits") for c in response.get("ConsumedCapacity", []) if c.get("TableName") == table), None
    )
    return cast("list[dict[str, Any]]", unprocessed), None if consumed is None else float(consumed)


def batch_execute_writes(
    ddb: DynamoDBClient, table: str, statements: list[dict[str, Any]]
) -> tuple[list[tuple[str, str]], float | None]:
    """One BatchExecuteStatement of PartiQL write statements on ``table`` (at most 25, each ``{"Statement",
    "Parameters"}``): ``(outcomes, units)``, per statement in order ``(code, message)`` — ``("", "")`` when it
    was applied, else its BatchStatementError (``DuplicateItem``, ``ThrottlingError``, …): per-statement errors
    are answers, never raised here — and the write units DynamoDB reports consumed on ``table`` (None when it
    reports none). An error of the whole request propagates unchanged."""
    response = ddb.batch_execute_statement(Statements=cast("Any", statements), ReturnConsumedCapacity="TOTAL")
    answers = response.get("Responses") or []
    if len(answers) != len(statements):
        raise PermanentError(
            f"BatchExecuteStatement on {table}: {len(answers)} answers to {len(statements)} statements"
        )
    outcomes = [
        (str(a.get("Error", {}).get("Code", "")), str(a.get("Error", {}).get("Message", "")))
        if a.get("Error")
        else ("", "")
        for a in answers
    ]
    units = [c.get("CapacityUnits") for c in response.get("ConsumedCapacity", []) if c.get("TableName") == table]
    known = [float(u) for u in units if u is not None]
    return outcomes, sum(known) if known else None


def insert_refuses_existing_key(
    ddb: DynamoDBClient, table: str, statement: Mapping[str, Any], key: Mapping[str, Any]
) -> tuple[bool, str]:
    """Whether this endpoint's PartiQL INSERT is insert-only: ``statement`` (an INSERT of a fresh probe item
    whose key is ``key``) is sent twice in BatchExecuteStatement; the second must come back ``DuplicateItem``
    (DynamoDB's documented answer for an existing key). ``(True, why)`` then, else ``(False, why)`` — also when
    AWS answers either request with an error (an endpoint that cannot run the statement cannot be used). The
    probe item is deleted afterwards. Only AWS error answers are translated; anything else propagates.

    Give it a client without botocore's retries (``max_attempts=1``): a throttled INSERT is sent again here,
    up to PROBE_ATTEMPTS times with backoff, but an endpoint that answers 5xx to the statement (moto does) is
    not asked again — it cannot run it."""

    def insert() -> str:
        for attempt in range(PROBE_ATTEMPTS):
            last = attempt == PROBE_ATTEMPTS - 1
            try:
                response = ddb.batch_execute_statement(Statements=[cast("Any", dict(statement))])
            except ClientError as exc:
                if error_code(exc) not in THROTTLING_CODES or last:
                    raise
                code = error_code(exc)
            else:
                error = (response.get("Responses") or [{}])[0].get("Error")
                code = str(error.get("Code", "")) if error else ""
                if code not in STATEMENT_RESEND_CODES or last:
                    return code
            time.sleep(min(2.0, 0.1 * 2**attempt) * random.uniform(0.5, 1.0))
            log.info("insert-mode probe: %s, sent again", code)
        raise AssertionError("unreachable: PROBE_ATTEMPTS is at least 1")

    try:
        first = insert()
        if first:
            return False, f"the first INSERT of a new key failed ({first})"
        try:
            second = insert()
        except ClientError as exc:  # an endpoint raising for the whole request, as ExecuteStatement does
            if error_code(exc) != "DuplicateItemException":
                raise
            second = "DuplicateItemException"
    except ClientError as exc:
        return False, f"INSERT failed: {error_name(exc)} (HTTP {_status(exc)})"
    finally:
        try:
            ddb.delete_item(TableName=table, Key=cast("Any", dict(key)))
        except ClientError as exc:
            log.warning("the insert-mode probe item in %s was not deleted: %s", table, error_name(exc))
    if second in ("DuplicateItem", "DuplicateItemException"):
        return True, f"a second INSERT of the same key answered {second}"
    return False, f"a second INSERT of the same key answered {second or 'success: it overwrote'}"


def point_in_time_recovery_enabled(ddb: DynamoDBClient, table: str) -> bool:
    """Whether ``table`` has point-in-time recovery ENABLED (DescribeContinuousBackups). SetupError naming
    the table when it does not exist (TableNotFoundException)."""
    try:
        response = ddb.describe_continuous_backups(TableName=table)
    except ClientError as exc:
        if error_code(exc) in ("TableNotFoundException", "ResourceNotFoundException"):
            raise SetupError(f"table {table!r} does not exist") from exc
        raise
    description = response.get("ContinuousBackupsDescription", {}).get("PointInTimeRecoveryDescription", {})
    return description.get("PointInTimeRecoveryStatus") == "ENABLED"


def start_export(
    ddb: DynamoDBClient, *, table_arn: str, bucket: str, prefix: str, bucket_owner: str, token: str
) -> str:
    """ExportTableToPointInTime (DynamoDB JSON, to ``s3://bucket/prefix``, as of now): the export's ARN.
    ``token`` makes a retried start the same export. SetupError when the table has no point-in-time
    recovery (PointInTimeRecoveryUnavailableException)."""
    try:
        response = ddb.export_table_to_point_in_time(
            TableArn=table_arn,
            S3Bucket=bucket,
            S3Prefix=prefix,
            S3BucketOwner=bucket_owner,
            ExportFormat="DYNAMODB_JSON",
            ExportType="FULL_EXPORT",
            S3SseAlgorithm="AES256",
            ClientToken=token,
        )
    except ClientError as exc:
        if "PointInTimeRecoveryUnavailable" in error_code(exc):
            raise SetupError(
                f"backfill.read: export needs point-in-time recovery on {table_arn.rsplit('/', 1)[-1]!r}; "
                "run `ferry init --enable-pitr`"
            ) from exc
        raise
    return str(response["ExportDescription"]["ExportArn"])


def describe_export(ddb: DynamoDBClient, export_arn: str) -> dict[str, Any]:
    """DescribeExport's ``ExportDescription``; no error is translated."""
    return dict(ddb.describe_export(ExportArn=export_arn)["ExportDescription"])


def start_import(
    ddb: DynamoDBClient, *, bucket: str, key_prefix: str, bucket_owner: str, table: Mapping[str, Any], token: str
) -> str:
    """ImportTable of gzipped DynamoDB JSON under ``s3://bucket/key_prefix`` into a new table made with
    ``table`` (TableCreationParameters): the import's ARN. SetupError when that table exists already
    (ResourceInUseException) or another import with the token differs (ImportConflictException)."""
    try:
        response = ddb.import_table(
            ClientToken=token,
            S3BucketSource={"S3Bucket": bucket, "S3KeyPrefix": key_prefix, "S3BucketOwner": bucket_owner},
            InputFormat="DYNAMODB_JSON",
            InputCompressionType="GZIP",
            TableCreationParameters=cast("Any", dict(table)),
        )
    except ClientError as exc:
        if error_code(exc) in ("ResourceInUseException", "ImportConflictException"):
            raise SetupError(
                f"backfill.write: import creates {table['TableName']!r}, which exists already (or another import "
                f"does): ImportTable cannot load an existing table; drop it or use write: batch ({error_code(exc)})"
            ) from exc
        raise
    return str(response["ImportTableDescription"]["ImportArn"])


def describe_import(ddb: DynamoDBClient, import_arn: str) -> dict[str, Any]:
    """DescribeImport's ``ImportTableDescription``; no error is translated."""
    return dict(ddb.describe_import(ImportArn=import_arn)["ImportTableDescription"])


# --- DynamoDB Streams --------------------------------------------------------------------------


def _stream_error(exc: ClientError) -> Exception | None:
    """The ferry error for a stream read that can no longer succeed as asked, or None."""
    code = error_code(exc)
    if code == "TrimmedDataAccessException":
        return StreamTrimmed(describe_error(exc))
    if code == "ResourceNotFoundException":
        return StreamNotFound(describe_error(exc))
    if code == "ExpiredIteratorException":
        return ShardIteratorExpired(describe_error(exc), code)
    return None


def shard_iterator(
    streams: DynamoDBStreamsClient,
    stream_arn: str,
    shard_id: str,
    iterator_type: ShardIteratorTypeType,
    sequence_number: str | None = None,
) -> str:
    """GetShardIterator. StreamTrimmed when ``sequence_number`` is no longer in the stream
    (TrimmedDataAccessException), StreamNotFound when the stream or shard is gone (ResourceNotFoundException)."""
    kwargs: dict[str, Any] = {"StreamArn": stream_arn, "ShardId": shard_id, "ShardIteratorType": iterator_type}
    if sequence_number is not None:
        kwargs["SequenceNumber"] = sequence_number
    try:
        return str(streams.get_shard_iterator(**kwargs)["ShardIterator"])
    except ClientError as exc:
        translated = _stream_error(exc)
        if translated is None:
            raise
        raise translated from exc


def get_records(
    streams: DynamoDBStreamsClient, iterator: str, limit: int, *, server_error_expires: bool = False
) -> GetRecordsOutputTypeDef:
    """GetRecords. ShardIteratorExpired when the iterator can no longer be used (ExpiredIteratorException),
    StreamTrimmed when its records are gone (TrimmedDataAccessException), StreamNotFound when the
    stream or shard is (ResourceNotFoundException).

    ``server_error_expires``: an iterator GetRecords refuses is ShardIteratorExpired too, to be acquired
    again: a ValidationException (AWS's documented answer to input it cannot accept; ministack's to a
    bad iterator) or a 5xx (moto's); without it both propagate unchanged (a 5xx for
    :func:`call_with_retries`)."""
    try:
        return streams.get_records(ShardIterator=iterator, Limit=limit)
    except ClientError as exc:
        translated = _stream_error(exc)
        refused = _status(exc) >= 500 or error_code(exc) == "ValidationException"
        if translated is None and server_error_expires and refused:
            translated = ShardIteratorExpired(describe_error(exc), error_code(exc))
        if translated is None:
            raise
        raise translated from exc


def describe_stream_shards(streams: DynamoDBStreamsClient, stream_arn: str) -> tuple[str, list[dict[str, Any]]]:
    """DescribeStream, every page: ``(StreamStatus, shards)``. StreamNotFound when the stream is gone
    (ResourceNotFoundException)."""
    shards: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"StreamArn": stream_arn}
    try:
        while True:
            description = streams.describe_stream(**kwargs)["StreamDescription"]
            shards.extend(cast("list[dict[str, Any]]", description.get("Shards", [])))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return str(description.get("StreamStatus", "")), shards
            kwargs["ExclusiveStartShardId"] = last
    except ClientError as exc:
        translated = _stream_error(exc)
        if translated is None:
            raise
        raise translated from exc


# --- S3 ----------------------------------------------------------------------------------------


def _not_found(exc: ClientError, codes: frozenset[str]) -> bool:
    return error_code(exc) in codes or _status(exc) == 404


def _object_not_found(exc: ClientError) -> bool:
    return _not_found(exc, _NOT_FOUND_CODES)


def head_bucket(s3: S3Client, bucket: str, *, field: str | None = None) -> tuple[bool, str | None]:
    """HeadBucket: ``(exists, region)``; ``(False, None)`` when there is no such bucket (404 /
    NoSuchBucket / NotFound). A name that answers 403 (AccessDenied / Forbidden) exists but is not
    ours: SetupError, naming ``field`` (the spec field holding the name) when given."""
    try:
        head = s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if _not_found(exc, _NO_BUCKET_CODES):
            return False, None
        if error_code(exc) in _FORBIDDEN_CODES or _status(exc) == 403:
            prefix = f"{field}: " if field else ""
            raise SetupError(
                f"{prefix}bucket {bucket!r} exists but is not accessible with these credentials "
                "(owned by another account, or access denied)"
            ) from exc
        raise
    region = head.get("BucketRegion") or head.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get(
        "x-amz-bucket-region"
    )
    return True, region


def create_bucket_if_missing(s3: S3Client, bucket: str, region: str) -> bool:
    """CreateBucket in ``region``: True when created, False when this account already owns it
    (BucketAlreadyOwnedByYou: a concurrent run made it). Every other error propagates."""
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        location = cast("BucketLocationConstraintType", region)
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": location}
    try:
        s3.create_bucket(**kwargs)
    except ClientError as exc:
        if error_code(exc) == "BucketAlreadyOwnedByYou":
            return False
        raise
    return True


def bucket_encryption_or_none(s3: S3Client, bucket: str) -> dict[str, Any] | None:
    """The bucket's ServerSideEncryptionConfiguration, or None when it has none
    (ServerSideEncryptionConfigurationNotFoundError)."""
    response = _or_none(
        lambda: s3.get_bucket_encryption(Bucket=bucket), _code_in("ServerSideEncryptionConfigurationNotFoundError")
    )
    config = response.get("ServerSideEncryptionConfiguration") if response else None
    return dict(config) if config else None


def public_access_block_or_none(s3: S3Client, bucket: str) -> dict[str, Any] | None:
    """The bucket's PublicAccessBlockConfiguration, or None when it has none
    (NoSuchPublicAccessBlockConfiguration)."""
    response = _or_none(
        lambda: s3.get_public_access_block(Bucket=bucket), _code_in("NoSuchPublicAccessBlockConfiguration")
    )
    return None if response is None else dict(response.get("PublicAccessBlockConfiguration", {}))


def head_object_or_none(s3: S3Client, bucket: str, key: str) -> HeadObjectOutputTypeDef | None:
    """HeadObject with checksums (``ChecksumMode=ENABLED``), or None when the key does not exist
    (404 / NoSuchKey / NotFound)."""
    return _or_none(lambda: s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED"), _object_not_found)


def object_bytes_or_none(s3: S3Client, bucket: str, key: str) -> bytes | None:
    """GetObject's whole body, or None when the key does not exist (404 / NoSuchKey / NotFound)."""
    return _or_none(lambda: s3.get_object(Bucket=bucket, Key=key)["Body"].read(), _object_not_found)


def object_tags_or_none(s3: S3Client, bucket: str, key: str) -> list[TagTypeDef] | None:
    """GetObjectTagging's TagSet, or None when the key does not exist (404 / NoSuchKey / NotFound)."""
    return _or_none(lambda: list(s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]), _object_not_found)


def list_objects_page(
    s3: S3Client, bucket: str, prefix: str = "", continuation_token: str | None = None
) -> ListObjectsV2OutputTypeDef:
    """One ListObjectsV2 page under ``prefix``. SetupError naming the bucket when it does not exist (NoSuchBucket)."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if continuation_token is not None:
        kwargs["ContinuationToken"] = continuation_token
    try:
        return s3.list_objects_v2(**kwargs)
    except ClientError as exc:
        if error_code(exc) == "NoSuchBucket":
            raise SetupError(f"bucket {bucket!r} does not exist; check the spec or run `ferry init`") from exc
        raise


def _source_changed(exc: ClientError) -> SourceChanged | None:
    if error_code(exc) in _SOURCE_CHANGED_CODES or _status(exc) == 412:
        return SourceChanged(error_code(exc) or "412")
    return None


def copy_object_pinned(
    s3: S3Client, *, source_bucket: str, bucket: str, key: str, etag: str, **arguments: Any
) -> CopyObjectOutputTypeDef:
    """A server-side CopyObject of ``s3://source_bucket/key`` to ``s3://bucket/key``, pinned to the
    source's ``etag`` (``CopySourceIfMatch``); ``arguments`` are CopyObject's others (directives,
    storage class, SSE). SourceChanged when the source is no longer that version (412 /
    PreconditionFailed) or no longer there (NoSuchKey)."""
    try:
        return s3.copy_object(
            Bucket=bucket,
            Key=key,
            CopySource={"Bucket": source_bucket, "Key": key},
            CopySourceIfMatch=etag,
            **arguments,
        )
    except ClientError as exc:
        changed = _source_changed(exc)
        if changed is None:
            raise
        raise changed from exc


def upload_part_copy_pinned(
    s3: S3Client,
    *,
    source_bucket: str,
    bucket: str,
    key: str,
    etag: str,
    upload_id: str,
    part_number: int,
    byte_range: str,
) -> UploadPartCopyOutputTypeDef:
    """One UploadPartCopy of ``byte_range`` (``bytes=first-last``) of ``s3://source_bucket/key``, pinned
    to ``etag`` like :func:`copy_object_pinned`, with the same translation: SourceChanged on 412 /
    PreconditionFailed / NoSuchKey."""
    try:
        return s3.upload_part_copy(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=part_number,
            CopySource={"Bucket": source_bucket, "Key": key},
            CopySourceRange=byte_range,
            CopySourceIfMatch=etag,
        )
    except ClientError as exc:
        changed = _source_changed(exc)
        if changed is None:
            raise
        raise changed from exc


# --- Lambda event-source mappings ----------------------------------------------------------------


def event_source_mappings(lam: LambdaClient, source_arn: str, function: str) -> list[dict[str, Any]]:
    """The event-source mappings of ``function`` on the stream or queue ``source_arn``. [] when the function
    does not exist (ResourceNotFoundException): nothing of it can be mapped."""
    found: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"EventSourceArn": source_arn, "FunctionName": function}
    while True:
        page = _or_none(lambda: lam.list_event_source_mappings(**kwargs), _code_in("ResourceNotFoundException"))
        if page is None:
            return found
        found += [dict(m) for m in page.get("EventSourceMappings", [])]
        if not page.get("NextMarker"):
            return found
        kwargs["Marker"] = page["NextMarker"]


def create_event_source_mapping(lam: LambdaClient, request: Mapping[str, Any]) -> str:
    """CreateEventSourceMapping with ``request`` (its arguments): the mapping's UUID. SetupError naming the
    function when it is not deployed (ResourceNotFoundException)."""
    try:
        return str(lam.create_event_source_mapping(**request)["UUID"])
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise SetupError(
                f"function {request.get('FunctionName')!r} does not exist: deploy ferry first (make deploy / "
                f"chalice deploy) ({describe_error(exc)})"
            ) from exc
        raise


def enable_event_source_mapping(lam: LambdaClient, uuid: str) -> None:
    """UpdateEventSourceMapping Enabled=True, with :func:`update_event_source_mapping`'s translation."""
    update_event_source_mapping(lam, uuid, Enabled=True)


def update_event_source_mapping(lam: LambdaClient, uuid: str, **settings: Any) -> None:
    """UpdateEventSourceMapping with ``settings``. RetryableError while the mapping is changing state
    already (ResourceInUseException: Creating, Updating, …); SetupError when it is gone
    (ResourceNotFoundException)."""
    try:
        lam.update_event_source_mapping(UUID=uuid, **settings)
    except ClientError as exc:
        if error_code(exc) == "ResourceInUseException":
            raise RetryableError(f"event-source mapping {uuid} is changing state: {describe_error(exc)}") from exc
        if error_code(exc) == "ResourceNotFoundException":
            raise SetupError(f"event-source mapping {uuid} does not exist (any more): deploy ferry again") from exc
        raise


# --- EventBridge, Glue, IAM --------------------------------------------------------------------


def describe_rule_or_none(events: EventBridgeClient, name: str) -> dict[str, Any] | None:
    """DescribeRule's answer, or None when there is no such rule (ResourceNotFoundException)."""
    return _or_none(lambda: dict(events.describe_rule(Name=name)), _code_in("ResourceNotFoundException"))


def glue_job_or_none(glue: GlueClient, name: str) -> dict[str, Any] | None:
    """GetJob's ``Job``, or None when there is no such job (EntityNotFoundException)."""
    return _or_none(lambda: dict(glue.get_job(JobName=name)["Job"]), _code_in("EntityNotFoundException"))


def role_arn_or_create(iam: IAMClient, name: str, trust_policy: str) -> str:
    """The ARN of role ``name``: created with the trust policy document ``trust_policy`` (JSON), or,
    when it exists already (EntityAlreadyExists, IAM's code of its EntityAlreadyExistsException), read;
    an existing role's trust policy is left as it is."""
    try:
        return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust_policy)["Role"]["Arn"])
    except ClientError as exc:
        if error_code(exc) != "EntityAlreadyExists":
            raise
    return str(iam.get_role(RoleName=name)["Role"]["Arn"])
