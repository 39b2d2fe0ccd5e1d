"""call_with_retries: transient errors are retried with bounded backoff, others fail at once."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from ferry.aws import call_with_retries, is_transient

pytestmark = pytest.mark.unit


def _error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


def _flaky(failures: list[Exception]):
    calls = {"n": 0}

    def call() -> str:
        calls["n"] += 1
        if failures:
            raise failures.pop(0)
        return "ok"

    return call, calls


@pytest.mark.parametrize(
    "exc",
    [_error("ProvisionedThroughputExceededException"), _error("ThrottlingException"), _error("Boom", 503)],
)
def test_transient_errors_are_retried_until_success(exc):
    call, calls = _flaky([exc, exc])
    retried: list[BaseException] = []
    sleeps: list[float] = []
    assert call_with_retries(call, "op", attempts=5, on_retry=retried.append, sleep=sleeps.append) == "ok"
    assert calls["n"] == 3 and len(retried) == 2 and len(sleeps) == 2
    assert all(0 < s <= 20 for s in sleeps)


def test_a_permanent_error_is_raised_at_once():
    call, calls = _flaky([_error("AccessDeniedException"), _error("X")])
    with pytest.raises(ClientError, match="AccessDenied"):
        call_with_retries(call, "op", attempts=5, sleep=lambda s: None)
    assert calls["n"] == 1


def test_attempts_are_bounded_and_the_last_error_is_raised_unchanged():
    throttle = _error("ProvisionedThroughputExceededException")
    call, calls = _flaky([throttle] * 10)
    with pytest.raises(ClientError) as raised:
        call_with_retries(call, "op", attempts=4, sleep=lambda s: None)
    assert raised.value is throttle and calls["n"] == 4


def test_conditional_check_failure_is_not_transient():
    assert not is_transient(_error("ConditionalCheckFailedException"))
    assert is_transient(_error("InternalServerError", 500))
