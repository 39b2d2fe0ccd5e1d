"""call_with_retries: transient errors are retried with bounded backoff, others fail at once; and the client factory."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from ferry.aws import call_with_retries, is_transient
from ferry.clients import AwsTarget, BucketClients, TableClients, make_client
from tests.aws_errors import client_error

pytestmark = pytest.mark.unit


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
    [
        client_error("ProvisionedThroughputExceededException"),
        client_error("ThrottlingException"),
        client_error("Boom", 503),
    ],
)
def test_transient_errors_are_retried_until_success(exc):
    call, calls = _flaky([exc, exc])
    retried: list[BaseException] = []
    sleeps: list[float] = []
    assert call_with_retries(call, "op", attempts=5, on_retry=retried.append, sleep=sleeps.append) == "ok"
    assert calls["n"] == 3 and len(retried) == 2 and len(sleeps) == 2
    assert all(0 < s <= 20 for s in sleeps)


def test_a_permanent_error_is_raised_at_once():
    call, calls = _flaky([client_error("AccessDeniedException"), client_error("X")])
    with pytest.raises(ClientError, match="AccessDenied"):
        call_with_retries(call, "op", attempts=5, sleep=lambda s: None)
    assert calls["n"] == 1


def test_attempts_are_bounded_and_the_last_error_is_raised_unchanged():
    throttle = client_error("ProvisionedThroughputExceededException")
    call, calls = _flaky([throttle] * 10)
    with pytest.raises(ClientError) as raised:
        call_with_retries(call, "op", attempts=4, sleep=lambda s: None)
    assert raised.value is throttle and calls["n"] == 4


def test_conditional_check_failure_is_not_transient():
    assert not is_transient(client_error("ConditionalCheckFailedException"))
    assert is_transient(client_error("InternalServerError", 500))


# --- the client factory -------------------------------------------------------------------------

NOWHERE = AwsTarget("eu-west-1", "http://127.0.0.1:9")  # clients are built without any request


@pytest.mark.parametrize(
    "service", ["dynamodb", "dynamodbstreams", "s3", "sqs", "events", "glue", "iam", "lambda", "sts"]
)
def test_make_client_builds_the_service_asked_for_with_the_explicit_config(service):
    client = make_client(service, NOWHERE, max_attempts=3, pool=4)
    assert client.meta.service_model.service_name == service
    assert client.meta.region_name == "eu-west-1" and client.meta.endpoint_url == NOWHERE.endpoint_url
    assert client.meta.config.retries["mode"] == "standard"
    assert client.meta.config.max_pool_connections == 4


def test_equal_targets_share_one_client_per_side():
    tables = TableClients.connect(NOWHERE, NOWHERE, NOWHERE)
    assert tables.source is tables.target is tables.state
    assert TableClients.of(tables) is tables
    buckets = BucketClients.connect(NOWHERE, AwsTarget("eu-west-1", "http://127.0.0.1:10"))
    assert buckets.source is not buckets.target
    assert buckets.source.meta.service_model.service_name == "s3"
    one = make_client("s3", NOWHERE)
    assert BucketClients.of(one) == BucketClients(one, one)
