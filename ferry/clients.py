"""The one factory for AWS clients: explicit retry mode and timeouts, honours AWS_ENDPOINT_URL."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3
from botocore.config import Config

from ferry.errors import FerryError, PermanentError, RetryableError

log = logging.getLogger(__name__)
T = TypeVar("T")

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


@dataclass(frozen=True)
class AwsTarget:
    """Where the clients talk to: region, optional endpoint (emulator) and optional role to assume."""

    region: str
    endpoint_url: str | None = None
    role_arn: str | None = None


def client_config(max_attempts: int = 10, pool: int = 32) -> Config:
    return Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=pool,
        tcp_keepalive=True,
    )


def make_client(service: str, where: AwsTarget, *, max_attempts: int = 10, pool: int = 32) -> Any:
    """A low-level boto3 client. ``endpoint_url=None`` lets botocore honour AWS_ENDPOINT_URL."""
    session = boto3.session.Session()
    kwargs: dict[str, Any] = {}
    if where.role_arn:
        sts = session.client("sts", region_name=where.region, endpoint_url=where.endpoint_url)
        creds = sts.assume_role(RoleArn=where.role_arn, RoleSessionName="ferry")["Credentials"]
        kwargs = {
            "aws_access_key_id": creds["AccessKeyId"],
            "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"],
        }
    return session.client(
        service,
        region_name=where.region,
        endpoint_url=where.endpoint_url,
        config=client_config(max_attempts, pool),
        **kwargs,
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
