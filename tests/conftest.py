"""Shared fixtures. The emulator is a real one, started per xdist worker: every test that uses it runs
once on moto and once on ministack (ids ``[moto]``, ``[ministack]``; ``FERRY_TEST_EMULATORS=moto`` runs
one). Tests create uniquely named resources in it, so they never see each other's data.

``@pytest.mark.emulators("moto", reason=...)`` keeps a test to the emulators named: a test that pins
one emulator's fault, or that needs what only one of them does; the other is reported as skipped
with the reason."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "chalice_app"))  # chalicelib, as Lambda sees it
sys.path.insert(0, str(ROOT))

from ferry.clients import AwsTarget, make_client  # noqa: E402
from ferry_dev.emulator import DUMMY_CREDENTIALS, EMULATORS, Emulator  # noqa: E402

REGION = "us-east-1"
TEST_EMULATORS_VARIABLE = "FERRY_TEST_EMULATORS"


def test_emulators() -> tuple[str, ...]:
    """The emulators the suite runs on: ``FERRY_TEST_EMULATORS`` (comma-separated), else both."""
    chosen = tuple(k.strip() for k in os.environ.get(TEST_EMULATORS_VARIABLE, ",".join(EMULATORS)).split(",") if k)
    unknown = [k for k in chosen if k not in EMULATORS]
    if unknown or not chosen:
        raise pytest.UsageError(f"{TEST_EMULATORS_VARIABLE}: {unknown or chosen} is not a list of {EMULATORS}")
    return chosen


test_emulators.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "emulators(*names, reason): run only on these emulators")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("emulators")
        callspec = getattr(item, "callspec", None)
        if marker is None or callspec is None:
            continue
        kind = callspec.params.get("emulator_kind")
        if kind is not None and kind not in marker.args:
            reason = marker.kwargs.get("reason", "")
            item.add_marker(pytest.mark.skip(reason=f"only on {', '.join(marker.args)}: {reason}"))


@pytest.fixture(scope="session", autouse=True)
def _aws_credentials() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in [*DUMMY_CREDENTIALS, "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"]}
    os.environ.update(DUMMY_CREDENTIALS)
    os.environ["AWS_DEFAULT_REGION"] = REGION
    os.environ.pop("AWS_ENDPOINT_URL", None)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session", params=test_emulators())
def emulator_kind(request: pytest.FixtureRequest) -> str:
    """Which emulator this test runs on (a session parameter: every test using it runs on each)."""
    return str(request.param)


@pytest.fixture(scope="session")
def emulator(emulator_kind: str) -> Iterator[Emulator]:
    with Emulator(kind=emulator_kind) as emu:
        yield emu


@pytest.fixture(scope="session")
def where(emulator: Emulator) -> AwsTarget:
    return AwsTarget(REGION, emulator.endpoint_url)


@pytest.fixture(scope="session")
def ddb(where: AwsTarget) -> Any:
    return make_client("dynamodb", where)


@pytest.fixture(scope="session")
def streams(where: AwsTarget) -> Any:
    return make_client("dynamodbstreams", where)


@pytest.fixture(scope="session")
def sqs(where: AwsTarget) -> Any:
    return make_client("sqs", where)


@pytest.fixture
def unique() -> str:
    """A short unique suffix for resource names."""
    return uuid.uuid4().hex[:10]


def create_table(
    ddb: Any,
    name: str,
    *,
    hash_key: tuple[str, str] = ("pk", "S"),
    range_key: tuple[str, str] | None = None,
    stream: bool = False,
    provisioned: tuple[int, int] | None = None,
) -> None:
    """Create a table in the emulator and wait until it is active."""
    keys = [{"AttributeName": hash_key[0], "KeyType": "HASH"}]
    attrs = [{"AttributeName": hash_key[0], "AttributeType": hash_key[1]}]
    if range_key:
        keys.append({"AttributeName": range_key[0], "KeyType": "RANGE"})
        attrs.append({"AttributeName": range_key[0], "AttributeType": range_key[1]})
    kwargs: dict[str, Any] = {"TableName": name, "KeySchema": keys, "AttributeDefinitions": attrs}
    if provisioned:
        kwargs["ProvisionedThroughput"] = {"ReadCapacityUnits": provisioned[0], "WriteCapacityUnits": provisioned[1]}
    else:
        kwargs["BillingMode"] = "PAY_PER_REQUEST"
    if stream:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    ddb.create_table(**kwargs)
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})


def scan_all(ddb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def old_and_new_tables(ddb: Any, where: AwsTarget, unique: str, **replication: Any) -> tuple[Any, str, str, str]:
    """An old table (with its stream), a new one, a state table and their spec: (spec, old, new, state table).
    ``replication``: the spec's replication settings."""
    from ferry.spec import parse_spec
    from ferry.tables.state import create_state_table

    old, new, state = f"old-{unique}", f"new-{unique}", f"state-{unique}"
    create_table(ddb, old, stream=True)
    create_table(ddb, new)
    create_state_table(ddb, state)
    spec = parse_spec(
        {
            "region": where.region,
            "endpoint_url": where.endpoint_url,
            "state_table": state,
            "tables": [{"source": old, "target": new, "protocol": "insert-only"}],
            "replication": {"phase_cache_seconds": 0, **replication},
        }
    )
    return spec, old, new, state


def two_way_tables(ddb: Any, where: AwsTarget, unique: str, **replication: Any) -> tuple[Any, str, str, str]:
    """:func:`old_and_new_tables` whose copy is done, after `ferry reverse` (prepare_reverse)."""
    from ferry.switch import prepare_reverse
    from ferry.tables.protocol import PHASE_LIVE
    from ferry.tables.state import StateStore

    spec, old, new, state = old_and_new_tables(ddb, where, unique, **replication)
    StateStore(ddb, state).set_phase(old, PHASE_LIVE)  # the copy is done (finalized)
    prepare_reverse(spec, sleep=lambda _: None)
    return spec, old, new, state
