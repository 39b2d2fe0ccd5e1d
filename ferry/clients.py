"""The one factory for AWS clients: explicit retry mode and timeouts, honours AWS_ENDPOINT_URL,
and assumes a role (with credentials that refresh themselves) when the target names one."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast, overload

import boto3
import botocore.session
from botocore.client import BaseClient
from botocore.config import Config
from botocore.credentials import RefreshableCredentials

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_glue import GlueClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sts import STSClient

    from ferry.spec import Spec

ROLE_SESSION_NAME = "ferry"


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


# One credentials object per (role, region, endpoint) and process: every client of a role shares
# it, so a process assumes each role once and then once per refresh, however many clients it makes.
_role_credentials: dict[tuple[str, str, str | None], RefreshableCredentials] = {}
_role_credentials_lock = threading.Lock()


def _assume_role(sts: STSClient, role_arn: str) -> dict[str, str]:
    """One sts:AssumeRole, as the metadata botocore's RefreshableCredentials reads."""
    credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName=ROLE_SESSION_NAME)["Credentials"]
    return {
        "access_key": credentials["AccessKeyId"],
        "secret_key": credentials["SecretAccessKey"],
        "token": credentials["SessionToken"],
        "expiry_time": credentials["Expiration"].isoformat(),
    }


def role_credentials(where: AwsTarget) -> RefreshableCredentials:
    """Credentials of ``where.role_arn``, assumed with the process's own (home) credentials.

    They renew themselves: before every request botocore checks the expiry and, inside its refresh
    window (15 minutes ahead, blocking from 10 minutes ahead), calls sts:AssumeRole again, so a Glue
    backfill that runs for hours never signs with expired credentials. Cached per role, region and
    endpoint; the first call for a role makes the first sts:AssumeRole (a role that cannot be
    assumed fails here, before anything is written).
    """
    if not where.role_arn:
        raise ValueError("role_credentials needs an AwsTarget with a role_arn")
    role_arn = where.role_arn
    key = (role_arn, where.region, where.endpoint_url)
    with _role_credentials_lock:
        cached = _role_credentials.get(key)
        if cached is None:
            sts = boto3.session.Session().client(
                "sts", region_name=where.region, endpoint_url=where.endpoint_url, config=client_config()
            )

            def refresh() -> dict[str, str]:
                return _assume_role(sts, role_arn)

            cached = RefreshableCredentials.create_from_metadata(
                metadata=refresh(), refresh_using=refresh, method="sts-assume-role"
            )
            _role_credentials[key] = cached
    return cached


# make_client's type follows the service asked for: one overload per service ferry uses.
@overload
def make_client(
    service: Literal["dynamodb"], where: AwsTarget, *, max_attempts: int = ..., pool: int = ...
) -> DynamoDBClient: ...
@overload
def make_client(
    service: Literal["dynamodbstreams"], where: AwsTarget, *, max_attempts: int = ..., pool: int = ...
) -> DynamoDBStreamsClient: ...
@overload
def make_client(service: Literal["s3"], where: AwsTarget, *, max_attempts: int = ..., pool: int = ...) -> S3Client: ...
@overload
def make_client(
    service: Literal["sqs"], where: AwsTarget, *, max_attempts: int = ..., pool: int = ...
) -> SQSClient: ...
@overload
def make_client(
    service: Literal["events"], where: AwsTarget, *, max_attempts: int = ..., pool: int = ...
) -> EventBridgeClient: ...
@overload
def make_client(
    service: Literal["glue"], where: AwsTarget, *, max_attempts: int = ..., pool: int = ...
) -> GlueClient: ...
@overload
def make_client(
    service: Literal["iam"], where: AwsTarget, *, max_attempts: int = ..., pool: int = ...
) -> IAMClient: ...
@overload
def make_client(
    service: Literal["lambda"], where: AwsTarget, *, max_attempts: int = ..., pool: int = ...
) -> LambdaClient: ...
@overload
def make_client(
    service: Literal["sts"], where: AwsTarget, *, max_attempts: int = ..., pool: int = ...
) -> STSClient: ...
@overload
def make_client(service: str, where: AwsTarget, *, max_attempts: int = ..., pool: int = ...) -> BaseClient: ...
def make_client(service: str, where: AwsTarget, *, max_attempts: int = 10, pool: int = 32) -> BaseClient:
    """A low-level boto3 client. ``endpoint_url=None`` lets botocore honour AWS_ENDPOINT_URL.

    With ``where.role_arn`` the client signs with that role's self-refreshing credentials
    (:func:`role_credentials`), attached to a fresh botocore session: sessions are not thread-safe,
    so every client gets its own, while the credentials (thread-safe) are shared.
    """
    if where.role_arn:
        core = botocore.session.get_session()
        core._credentials = role_credentials(where)  # type: ignore[attr-defined]  # what get_credentials() returns
        session = boto3.session.Session(botocore_session=core)
    else:
        session = boto3.session.Session()
    # The service is a run-time value here: the overloads above give callers the precise type.
    new_client: Callable[..., BaseClient] = session.client
    return new_client(
        service,
        region_name=where.region,
        endpoint_url=where.endpoint_url,
        config=client_config(max_attempts, pool),
    )


def _one_client_per_target(
    service: Literal["dynamodb", "s3"], wheres: tuple[AwsTarget, ...], *, max_attempts: int, pool: int
) -> list[BaseClient]:
    """A client for each of ``wheres``; equal targets share one (without roles: a single client)."""
    made: dict[AwsTarget, BaseClient] = {}
    for where in wheres:
        if where not in made:
            made[where] = make_client(service, where, max_attempts=max_attempts, pool=pool)
    return [made[where] for where in wheres]


@dataclass(frozen=True)
class TableClients:
    """The DynamoDB clients of a migration, by side: ``source`` reads the source tables (and turns
    their streams on), ``target`` reads and writes the target tables, ``state`` is the state table
    in ferry's home account. Without roles the three are one and the same client."""

    source: DynamoDBClient
    target: DynamoDBClient
    state: DynamoDBClient

    @classmethod
    def of(cls, ddb: DynamoDBClient | TableClients) -> TableClients:
        """``ddb`` itself if it is a TableClients, else one client that serves every side."""
        return ddb if isinstance(ddb, TableClients) else cls(ddb, ddb, ddb)

    @classmethod
    def connect(
        cls, source: AwsTarget, target: AwsTarget, state: AwsTarget, *, max_attempts: int = 10, pool: int = 32
    ) -> TableClients:
        clients = _one_client_per_target("dynamodb", (source, target, state), max_attempts=max_attempts, pool=pool)
        return cls(*cast("list[DynamoDBClient]", clients))


@dataclass(frozen=True)
class BucketClients:
    """The S3 clients of a migration, by side: ``source`` reads the source buckets (and configures
    their event notifications), ``target`` reads and writes the target buckets and makes the
    server-side copies. Without roles both are one and the same client."""

    source: S3Client
    target: S3Client

    @classmethod
    def of(cls, s3: S3Client | BucketClients) -> BucketClients:
        """``s3`` itself if it is a BucketClients, else one client that serves both sides."""
        return s3 if isinstance(s3, BucketClients) else cls(s3, s3)

    @classmethod
    def connect(cls, source: AwsTarget, target: AwsTarget, *, max_attempts: int = 10, pool: int = 32) -> BucketClients:
        clients = _one_client_per_target("s3", (source, target), max_attempts=max_attempts, pool=pool)
        return cls(*cast("list[S3Client]", clients))


def table_clients(spec: Spec, *, max_attempts: int = 10, pool: int = 32) -> TableClients:
    """The spec's DynamoDB clients: source and target with their roles, state in the home account."""
    return TableClients.connect(
        spec.source_where(), spec.target_where(), spec.home_where(), max_attempts=max_attempts, pool=pool
    )


def bucket_clients(spec: Spec, *, max_attempts: int = 10, pool: int = 32) -> BucketClients:
    """The spec's S3 clients: source and target, each with its role."""
    return BucketClients.connect(spec.source_where(), spec.target_where(), max_attempts=max_attempts, pool=pool)
