"""ferry/aws.py is the one adapter around boto3: nothing else interprets AWS errors.

The structure checks read every module's syntax tree (comments and docstrings do not count):
outside ferry/aws.py no module imports botocore's ClientError, calls ``error_code`` or reaches
for a client's modelled exceptions (``client.exceptions.ResourceNotFoundException``), and no
shipped module asks SQS for a queue URL itself (``queue_url_or_none`` is the one place). A
control runs the same checker on a source that breaks every rule. Then the adapter's pure
helpers and its translations, with fake clients that raise what AWS would (no I/O).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from ferry.aws import (
    copy_object_pinned,
    describe_error,
    error_name,
    get_records,
    head_bucket,
    is_aws_error,
    missing_table_raises,
    put_item_if,
    shard_iterator,
)
from ferry.errors import (
    PermanentError,
    RetryableError,
    SetupError,
    ShardIteratorExpired,
    SourceChanged,
    StreamNotFound,
    StreamTrimmed,
)
from tests.aws_errors import client_error

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ("ferry", "ferry_cli", "ferry_dev", "glue_jobs", "chalice_app/chalicelib")
ADAPTER = ROOT / "ferry" / "aws.py"

IMPORTS_CLIENT_ERROR = "imports ClientError"
CALLS_ERROR_CODE = "calls error_code"
MODELLED_EXCEPTION = "uses a client's modelled exception"
ASKS_QUEUE_URL = "calls get_queue_url"


def adapter_violations(source: str, *, queue_lookups: bool = False) -> list[tuple[int, str]]:
    """(line, rule) for every place in ``source`` that does what only ferry/aws.py may do."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "botocore.exceptions":
            if any(alias.name == "ClientError" for alias in node.names):
                found.append((node.lineno, IMPORTS_CLIENT_ERROR))
        elif isinstance(node, ast.Attribute) and node.attr == "ClientError":
            found.append((node.lineno, IMPORTS_CLIENT_ERROR))  # botocore.exceptions.ClientError, exceptions.ClientError
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name == "error_code":
                found.append((node.lineno, CALLS_ERROR_CODE))
            if queue_lookups and name == "get_queue_url":
                found.append((node.lineno, ASKS_QUEUE_URL))
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "exceptions"
            and node.attr != "ClientError"  # reported above already
        ):
            found.append((node.lineno, MODELLED_EXCEPTION))
    return sorted(found)


def _modules() -> list[Path]:
    paths = [path for folder in CHECKED for path in sorted((ROOT / folder).rglob("*.py"))]
    return [path for path in paths if path != ADAPTER and ".venv" not in path.parts]


def test_the_checked_folders_hold_the_modules_that_talk_to_aws() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in _modules()}
    for expected in (
        "ferry/tables/redrive.py",
        "ferry/buckets/reconcile.py",
        "ferry/buckets/setup.py",
        "ferry_cli/deploy.py",
        "ferry_cli/main.py",
        "ferry_dev/stream_poller.py",
        "chalice_app/chalicelib/table_stream.py",
        "glue_jobs/table_backfill.py",
    ):
        assert expected in names
    assert "ferry/aws.py" not in names


def test_no_module_but_the_adapter_interprets_aws_errors() -> None:
    problems = []
    for path in _modules():  # a queue is looked up through queue_url_or_none only, everywhere
        for line, rule in adapter_violations(path.read_text(encoding="utf-8"), queue_lookups=True):
            problems.append(f"{path.relative_to(ROOT)}:{line}: {rule}")
    assert problems == [], "\n".join(problems)


def test_the_checker_reports_each_rule_it_enforces() -> None:
    """Control: a module breaking every rule is reported once per place."""
    bad = """
from botocore.exceptions import BotoCoreError, ClientError
import botocore.exceptions
from ferry.aws import error_code
from ferry import aws


def f(ddb, sqs, exc):
    try:
        ddb.describe_table(TableName="t")
    except ddb.exceptions.ResourceNotFoundException:
        pass
    except botocore.exceptions.ClientError:
        pass
    if error_code(exc) == "X" or aws.error_code(exc):
        return sqs.get_queue_url(QueueName="q")
"""
    assert adapter_violations(bad, queue_lookups=True) == [
        (2, IMPORTS_CLIENT_ERROR),
        (11, MODELLED_EXCEPTION),
        (13, IMPORTS_CLIENT_ERROR),
        (15, CALLS_ERROR_CODE),
        (15, CALLS_ERROR_CODE),
        (16, ASKS_QUEUE_URL),
    ]


def test_the_checker_ignores_comments_docstrings_and_allowed_imports() -> None:
    """Control: words in comments and docstrings, and other botocore exceptions, are not violations."""
    clean = '''
"""Catches ClientError? No: error_code(exc) and ddb.exceptions.ResourceNotFoundException are only named here."""
from botocore.exceptions import BotoCoreError, NoCredentialsError  # not ClientError

exceptions = {}  # a name, not a client's modelled exceptions


def g(exc):
    # error_code(exc) == "ResourceNotFoundException" and client.exceptions.QueueDoesNotExist
    return isinstance(exc, (BotoCoreError, NoCredentialsError)), exceptions.get("x")
'''
    assert adapter_violations(clean, queue_lookups=True) == []


# --- pure helpers ----------------------------------------------------------------------------


def test_is_aws_error_tells_an_answer_of_aws_from_other_failures() -> None:
    assert is_aws_error(client_error("AccessDenied", 403))
    assert not is_aws_error(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert not is_aws_error(SetupError("x"))
    assert not is_aws_error(ValueError("x"))


def test_error_name_is_the_code_or_the_class() -> None:
    assert error_name(client_error("SlowDown", 503)) == "SlowDown"
    assert error_name(ValueError("boom")) == "ValueError"


def test_describe_error_gives_ferry_messages_as_they_are_and_aws_errors_with_their_code() -> None:
    assert describe_error(SetupError("table 't' does not exist")) == "table 't' does not exist"
    described = describe_error(client_error("ResourceNotFoundException", operation="GetItem"))
    assert described.startswith("ResourceNotFoundException: An error occurred (ResourceNotFoundException)")
    assert describe_error(KeyError("k")) == "KeyError: 'k'"


def test_missing_table_raises_the_given_error_without_the_aws_context() -> None:
    wanted = SetupError("state table 's' does not exist: run `ferry init`")
    with pytest.raises(SetupError) as raised, missing_table_raises(wanted):
        raise client_error("ResourceNotFoundException")
    assert raised.value is wanted and raised.value.__suppress_context__


@pytest.mark.parametrize("error", [client_error("AccessDeniedException"), client_error("ThrottlingException")])
def test_missing_table_raises_lets_every_other_error_through_unchanged(error: ClientError) -> None:
    with pytest.raises(ClientError) as raised, missing_table_raises(SetupError("unused")):
        raise error
    assert raised.value is error


# --- translations, with fake clients -----------------------------------------------------------


class Raising:
    """A fake client whose every method raises ``error``, and records the arguments it got."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        def method(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            raise self.error

        return method


def raising(error: Exception) -> Any:
    """A ``Raising`` fake, typed as ``Any``: it stands in for whichever boto3 client is asked for."""
    return Raising(error)


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ExpiredIteratorException", 400, ShardIteratorExpired),
        ("TrimmedDataAccessException", 400, StreamTrimmed),
        ("ResourceNotFoundException", 400, StreamNotFound),
    ],
)
def test_get_records_translates_what_can_no_longer_be_read(code: str, status: int, expected: type) -> None:
    error = client_error(code, status, "GetRecords")
    with pytest.raises(expected) as raised:
        get_records(raising(error), "iterator", 10)
    assert raised.value.__cause__ is error
    assert str(raised.value) == describe_error(error)  # the reason a redrive reports stays the same


@pytest.mark.parametrize(
    ("code", "status"), [("InternalServerError", 500), ("ValidationException", 400)], ids=["moto", "aws-ministack"]
)
def test_get_records_counts_a_refused_iterator_as_expired_only_when_asked(code: str, status: int) -> None:
    # moto answers a bad iterator with a 500; AWS documents a 400 ValidationException (ministack's answer)
    error = client_error(code, status, "GetRecords")
    with pytest.raises(ClientError) as raised:
        get_records(raising(error), "iterator", 10)
    assert raised.value is error  # left for call_with_retries
    with pytest.raises(ShardIteratorExpired) as expired:
        get_records(raising(error), "iterator", 10, server_error_expires=True)
    assert expired.value.code == code and isinstance(expired.value, RetryableError)


def test_shard_iterator_passes_the_sequence_number_only_when_given() -> None:
    streams = raising(client_error("TrimmedDataAccessException", 400, "GetShardIterator"))
    with pytest.raises(StreamTrimmed):
        shard_iterator(streams, "arn", "shard", "AT_SEQUENCE_NUMBER", "42")
    with pytest.raises(StreamTrimmed):
        shard_iterator(streams, "arn", "shard", "TRIM_HORIZON")
    assert [kwargs.get("SequenceNumber") for _, kwargs in streams.calls] == ["42", None]


@pytest.mark.parametrize(("code", "status"), [("PreconditionFailed", 412), ("", 412), ("NoSuchKey", 404)])
def test_a_pinned_copy_meeting_a_changed_source_is_source_changed(code: str, status: int) -> None:
    error = client_error(code, status, "CopyObject")
    s3 = raising(error)
    with pytest.raises(SourceChanged) as raised:
        copy_object_pinned(s3, source_bucket="src", bucket="dst", key="k", etag='"e"')
    assert raised.value.__cause__ is error and str(raised.value) == (code or "412")
    ((name, kwargs),) = s3.calls
    assert name == "copy_object" and kwargs["CopySourceIfMatch"] == '"e"' and kwargs["Bucket"] == "dst"


def test_a_pinned_copy_passes_other_errors_unchanged() -> None:
    error = client_error("AccessDenied", 403, "CopyObject")
    with pytest.raises(ClientError) as raised:
        copy_object_pinned(raising(error), source_bucket="s", bucket="d", key="k", etag="e")
    assert raised.value is error


@pytest.mark.parametrize(("code", "status"), [("403", 403), ("AccessDenied", 403), ("Forbidden", 0)])
def test_a_bucket_that_answers_403_is_a_setup_error_naming_the_field(code: str, status: int) -> None:
    with pytest.raises(SetupError, match=r"^buckets\[0\]\.target: bucket 'taken' exists but is not accessible"):
        head_bucket(raising(client_error(code, status, "HeadBucket")), "taken", field="buckets[0].target")


@pytest.mark.parametrize(("code", "status"), [("404", 404), ("NoSuchBucket", 404), ("NotFound", 0), ("", 404)])
def test_a_bucket_that_answers_404_does_not_exist(code: str, status: int) -> None:
    assert head_bucket(raising(client_error(code, status, "HeadBucket")), "gone") == (False, None)


def test_a_conditional_put_reports_a_failed_condition_and_raises_the_rest() -> None:
    condition = {"ConditionExpression": "attribute_not_exists(#k)", "ExpressionAttributeNames": {"#k": "pk"}}
    failed = raising(client_error("ConditionalCheckFailedException", 400, "PutItem"))
    assert put_item_if(failed, "t", {"pk": {"S": "a"}}, condition, consumed_capacity=True) == (False, None)
    ((_, kwargs),) = failed.calls
    assert (
        kwargs["ReturnConsumedCapacity"] == "TOTAL"
        and kwargs["ConditionExpression"] == condition["ConditionExpression"]
    )
    missing = client_error("ResourceNotFoundException", 400, "PutItem")
    with pytest.raises(ClientError) as raised:
        put_item_if(raising(missing), "t", {"pk": {"S": "a"}}, condition)
    assert raised.value is missing


def test_the_translated_errors_are_ferrys_and_never_transient() -> None:
    from ferry.aws import is_transient

    for error in (
        SourceChanged("412"),
        StreamTrimmed("x"),
        StreamNotFound("x"),
        ShardIteratorExpired("x", "ExpiredIteratorException"),
    ):
        assert not is_transient(error)  # call_with_retries around an operation does not retry them
    assert issubclass(StreamTrimmed, PermanentError) and issubclass(StreamNotFound, PermanentError)
