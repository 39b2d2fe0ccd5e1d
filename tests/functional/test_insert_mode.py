"""backfill.insert_mode on both emulators: ``auto`` probes the endpoint once per copy and writes PartiQL
INSERTs only where an INSERT of an existing key answers DuplicateItem (ministack, like DynamoDB); on moto,
whose INSERT silently overwrites (pinned here), it keeps the conditional PutItem. The partiql copy is
insert-only (a live write or a tombstone is never overwritten), exact for every type, falls back to PutItem
for a statement over 8,192 characters, sends throttled statements again and fails a split naming the key."""

from __future__ import annotations

import logging
import random
import threading
import uuid
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings

from ferry.aws import batch_execute_writes
from ferry.clients import make_client
from ferry.spec import parse_spec
from ferry.tables import backfill
from ferry.tables.backfill import copy_segment, insert_mode_for, plan_backfill
from ferry.tables.partiql import insert_statement
from ferry.tables.protocol import tombstone_for
from ferry.tables.setup import init_tables
from ferry.tables.state import SEGMENT_DONE, SEGMENT_FAILED, StateStore
from ferry.wire import items_equal, key_of
from ferry_dev.workload import make_item, seed_table
from tests.conftest import create_table, scan_all
from tests.unit.strategies import items

pytestmark = pytest.mark.functional
KEYS = ("pk", "sk")
ENFORCES = pytest.mark.emulators("ministack", reason="its PartiQL INSERT refuses an existing key (DuplicateItem)")
MOTO_FAULT = pytest.mark.emulators("moto", reason="pins moto's PartiQL INSERT, which overwrites an existing key")
INSERT_DOC = "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ql-reference.insert.html"
STATEMENT_DOC = "https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchStatementRequest.html"


def _setup(ddb: Any, emulator: Any, unique: str, items: int, splits: int = 2, insert_mode: str = "auto") -> Any:
    source, target, state = f"src-{unique}", f"dst-{unique}", f"state-{unique}"
    create_table(ddb, source, hash_key=("pk", "S"), range_key=("sk", "N"))
    if items:
        seed_table(ddb, source, items, seed=3)
    spec = parse_spec(
        {
            "region": "us-east-1",
            "endpoint_url": emulator.endpoint_url,
            "state_table": state,
            "tables": [{"source": source, "target": target, "protocol": "insert-only"}],
            "backfill": {"splits": splits, "write_concurrency": 4, "insert_mode": insert_mode},
            "replication": {"phase_cache_seconds": 0},
        }
    )
    init_tables(spec, ddb)
    return spec


@pytest.fixture
def hooked(where: Any) -> Any:
    """A client of its own for a test that registers botocore hooks (the session's ``ddb`` must stay clean)."""
    return make_client("dynamodb", where)


@pytest.fixture
def once(where: Any) -> Any:
    """A client without botocore's retries: moto answers a PartiQL statement with parameters 500, which
    botocore would otherwise ask again 9 times with backoff."""
    return make_client("dynamodb", where, max_attempts=1)


def _by_key(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {repr(sorted(key_of(i, KEYS).items())): i for i in items}


def _exact(ddb: Any, plan: Any) -> bool:
    source, target = _by_key(scan_all(ddb, plan.source)), _by_key(scan_all(ddb, plan.target))
    return source.keys() == target.keys() and all(items_equal(source[k], target[k]) for k in source)


# --- auto: the probe ----------------------------------------------------------------------------


def test_auto_uses_partiql_only_where_insert_refuses_an_existing_key(ddb, emulator, emulator_kind, unique, caplog):
    # GIVEN an insert-only table with insert_mode auto (the default)
    spec = _setup(ddb, emulator, unique, items=0)
    assert spec.backfill.insert_mode == "auto"
    # WHEN the driver plans the copy
    with caplog.at_level(logging.INFO, logger="ferry.tables.backfill"):
        plan = plan_backfill(spec, spec.tables[0], ddb)
    # THEN ministack (DuplicateItem on the second INSERT) gets partiql; moto (whose INSERT with parameters
    # fails, and whose INSERT of an existing key overwrites) gets the conditional PutItem; the choice is logged
    expected = {"ministack": "partiql", "moto": "put"}[emulator_kind]
    assert plan.insert_mode == expected
    assert any(f"insert-only writes use {expected} (insert_mode auto" in r.getMessage() for r in caplog.records)
    # AND the probe left nothing in the state table
    assert not [i for i in scan_all(ddb, spec.state_table) if i["pk"]["S"].startswith("probe#")]


def test_a_replay_plan_does_not_probe(ddb, hooked, emulator, unique):
    spec = _setup(ddb, emulator, unique, items=0)
    replay = replace(spec.tables[0], protocol="replay")
    calls: list[str] = []
    hooked.meta.events.register("before-call.dynamodb.BatchExecuteStatement", lambda **_: calls.append("probe"))
    plan = plan_backfill(spec, replay, hooked)
    assert plan.writes == backfill.WRITES_BATCH and plan.insert_mode == "put" and calls == []


@ENFORCES
def test_auto_keeps_put_when_the_second_insert_is_not_refused(ddb, hooked, emulator, unique):
    # GIVEN an endpoint whose second INSERT of the probe key answers success (as an overwriting one does):
    # the DuplicateItem answers are taken out of the responses
    spec = _setup(ddb, emulator, unique, items=0)

    def overwrite(parsed: dict[str, Any], **_: Any) -> None:
        for answer in parsed.get("Responses", []):
            answer.pop("Error", None)

    hooked.meta.events.register("after-call.dynamodb.BatchExecuteStatement", overwrite)
    # WHEN the driver decides the insert mode (auto) against it, THEN it keeps the conditional PutItem
    assert insert_mode_for("auto", lambda: hooked, spec.state_table) == "put"
    assert insert_mode_for("auto", lambda: ddb, spec.state_table) == "partiql"  # the same endpoint, unhooked


# --- moto's fault, and why the probe matters -------------------------------------------------------


@MOTO_FAULT
def test_moto_insert_of_an_existing_key_overwrites_and_its_parameters_fail(ddb, once, unique):
    """moto's fault: DynamoDB answers an INSERT of an existing key with DuplicateItemException (INSERT_DOC);
    moto overwrites the item silently. And `?` parameters inside VALUE {…} answer HTTP 500."""
    table = f"pin-{unique}"
    create_table(ddb, table)
    # a live write, then an (older) INSERT of the same key as a literal statement: moto overwrites it
    ddb.put_item(TableName=table, Item={"pk": {"S": "k"}, "v": {"S": "live"}})
    ddb.execute_statement(Statement=f"INSERT INTO \"{table}\" VALUE {{'pk': 'k', 'v': 'stale'}}")
    assert ddb.get_item(TableName=table, Key={"pk": {"S": "k"}})["Item"]["v"] == {"S": "stale"}
    answer = ddb.batch_execute_statement(Statements=[{"Statement": f"INSERT INTO \"{table}\" VALUE {{'pk': 'k'}}"}])
    assert "Error" not in answer["Responses"][0]  # no DuplicateItem either
    # typed parameters, which the partiql mode needs to keep every type exact, are a server error
    with pytest.raises(ClientError) as caught:
        once.batch_execute_statement(
            Statements=[{"Statement": f"INSERT INTO \"{table}\" VALUE {{'pk': ?}}", "Parameters": [{"S": "n"}]}]
        )
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500


@MOTO_FAULT
def test_forcing_partiql_on_moto_writes_nothing_and_fails_the_split_while_auto_copies_with_put(
    ddb, once, emulator, unique
):
    # GIVEN an insert-only copy on moto with a live write already in the target
    spec = _setup(ddb, emulator, unique, items=20, splits=1, insert_mode="partiql")
    forced = replace(plan_backfill(spec, spec.tables[0], ddb), max_write_attempts=1)
    live = make_item(random.Random(5), 3, version=999)
    ddb.put_item(TableName=forced.target, Item=live)
    # WHEN partiql is forced (no probe): the segment fails, names the request, keeps its checkpoint,
    # and wrote nothing — moto cannot run the statements
    result = copy_segment(forced, 0, once)
    assert result.status == SEGMENT_FAILED and "500" in result.error
    assert result.written == 0 and result.partiql_requests >= 1
    assert len(scan_all(ddb, forced.target)) == 1
    # WHEN the same copy runs with auto, THEN it uses PutItem and keeps the live write
    auto = plan_backfill(replace(spec, backfill=replace(spec.backfill, insert_mode="auto")), spec.tables[0], ddb)
    assert auto.insert_mode == "put"
    StateStore(ddb, spec.state_table).clear_segments(spec.tables[0].source)
    result = copy_segment(auto, 0, ddb)
    assert result.status == SEGMENT_DONE and result.written == 19 and result.skipped == 1
    assert result.partiql_requests == 0 and result.put_requests == 20
    assert items_equal(ddb.get_item(TableName=auto.target, Key=key_of(live, KEYS))["Item"], live)


# --- partiql on an endpoint that enforces insert-only ----------------------------------------------


@ENFORCES
def test_partiql_copies_every_type_exactly_and_never_overwrites_a_live_write_or_a_tombstone(ddb, emulator, unique):
    # GIVEN 60 items of every type (38-digit numbers, nested binaries, one of ~400 KB), a newer live
    # version of one key and a tombstone for another already in the target
    spec = _setup(ddb, emulator, unique, items=60)
    plan = plan_backfill(spec, spec.tables[0], ddb)
    assert plan.insert_mode == "partiql"
    newer = make_item(random.Random(1), 3, version=999)
    ddb.put_item(TableName=plan.target, Item=newer)
    deleted_key = {"pk": {"S": "user#000004"}, "sk": {"N": "4"}}
    ddb.put_item(TableName=plan.target, Item=tombstone_for(deleted_key))
    # WHEN both segments are copied
    results = [copy_segment(plan, s) for s in range(plan.total_segments)]
    # THEN the two keys were "already present" (DuplicateItem), untouched; everything else is exact
    assert all(r.status == SEGMENT_DONE for r in results)
    assert sum(r.written for r in results) == 58 and sum(r.skipped for r in results) == 2
    assert sum(r.put_requests for r in results) == 0 and sum(r.partiql_requests for r in results) >= 3
    assert items_equal(ddb.get_item(TableName=plan.target, Key=key_of(newer, KEYS))["Item"], newer)
    assert items_equal(ddb.get_item(TableName=plan.target, Key=deleted_key)["Item"], tombstone_for(deleted_key))
    source, target = _by_key(scan_all(ddb, plan.source)), _by_key(scan_all(ddb, plan.target))
    assert source.keys() == target.keys()
    skipped = {repr(sorted(key_of(newer, KEYS).items())), repr(sorted(deleted_key.items()))}
    assert all(items_equal(source[k], target[k]) for k in source if k not in skipped)
    # AND capacity was charged for every statement that reached an item (the present ones too)
    assert sum(r.write_units for r in results) > 0 and sum(r.write_units_by_size for r in results) >= 60


@ENFORCES
def test_an_item_whose_statement_is_over_8192_characters_is_written_with_the_conditional_put(ddb, emulator, unique):
    # GIVEN two items with an attribute name of 9,000 characters (DynamoDB allows 64 KB), one of them
    # already in the target with other values, and ordinary items
    spec = _setup(ddb, emulator, unique, items=10, splits=1)
    long_name = "n" * 9000
    rng = random.Random(2)
    wide = [{**make_item(rng, 100 + i), long_name: {"NS": ["12345678901234567890123456789012345678"]}} for i in (0, 1)]
    for item in wide:
        ddb.put_item(TableName=f"src-{unique}", Item=item)
    present = {**wide[1], "version": {"N": "999"}}
    plan = plan_backfill(spec, spec.tables[0], ddb)
    ddb.put_item(TableName=plan.target, Item=present)
    # WHEN the segment is copied with partiql
    result = copy_segment(plan, 0, ddb)
    # THEN the two wide items went through PutItem (one written, one refused by its condition), the rest as INSERTs
    assert result.status == SEGMENT_DONE and result.put_requests == 2
    assert result.written == 11 and result.skipped == 1 and result.partiql_requests >= 1
    got = ddb.get_item(TableName=plan.target, Key=key_of(wide[0], KEYS))["Item"]
    assert items_equal(got, wide[0])
    assert items_equal(ddb.get_item(TableName=plan.target, Key=key_of(present, KEYS))["Item"], present)


class _ThrottledStatements:
    """For the first ``rounds`` BatchExecuteStatement calls, every other statement is held back from the
    request and answered with a per-statement ``code`` (as DynamoDB answers a throttled statement): nothing
    of it reached the table. Records every request's size."""

    def __init__(self, client: Any, rounds: int, codes: tuple[str, ...]) -> None:
        self.rounds, self.codes, self.injected = rounds, codes, 0
        self.sizes: list[int] = []
        self._lock = threading.Lock()
        self._call = threading.local()  # hooks of one call run in its thread; the copier's calls in several
        client.meta.events.register("provide-client-params.dynamodb.BatchExecuteStatement", self._params)
        client.meta.events.register("after-call.dynamodb.BatchExecuteStatement", self._answer)

    def _params(self, params: dict[str, Any], **_: Any) -> None:
        statements = params["Statements"]
        self._call.held = []
        with self._lock:
            self.sizes.append(len(statements))
            refuse = self.rounds > 0
            self.rounds -= refuse
        if refuse and len(statements) > 1:
            self._call.held = [i for i in range(len(statements)) if i % 2]
            params["Statements"] = [s for i, s in enumerate(statements) if not i % 2]

    def _answer(self, parsed: dict[str, Any], **_: Any) -> None:
        held = getattr(self._call, "held", [])
        if not held:
            return
        answers = list(parsed["Responses"])
        for n, position in enumerate(held):
            code = self.codes[n % len(self.codes)]
            answers.insert(position, {"Error": {"Code": code, "Message": "injected"}, "TableName": "t"})
        parsed["Responses"] = answers
        with self._lock:
            self.injected += len(held)


THROTTLES = ("ProvisionedThroughputExceeded", "ThrottlingError", "RequestLimitExceeded", "InternalServerError")


@ENFORCES
def test_throttled_statements_are_sent_again_with_backoff_never_dropped(ddb, hooked, emulator, unique):
    # GIVEN a partiql copy whose first four BatchExecuteStatement calls come back half throttled, per statement
    spec = _setup(ddb, emulator, unique, items=80, splits=1)
    plan = plan_backfill(spec, spec.tables[0], ddb)
    assert plan.insert_mode == "partiql"
    throttle = _ThrottledStatements(hooked, rounds=4, codes=THROTTLES)
    # WHEN the segment is copied
    result = copy_segment(plan, 0, hooked)
    # THEN every throttled statement was sent again (counted), none was dropped, and none counted as present
    assert throttle.injected > 0 and result.resent == throttle.injected
    assert result.status == SEGMENT_DONE and result.written == 80 and result.skipped == 0
    assert result.partiql_requests == len(throttle.sizes) > 4 and max(throttle.sizes) == 25
    assert _exact(ddb, plan)


@ENFORCES
def test_statements_throttled_every_round_fail_the_split_with_its_checkpoint_kept(
    ddb, hooked, emulator, unique, monkeypatch
):
    spec = _setup(ddb, emulator, unique, items=30, splits=1)
    plan = replace(plan_backfill(spec, spec.tables[0], ddb), page_size=10)
    monkeypatch.setattr(backfill, "MAX_UNPROCESSED_ROUNDS", 3)
    _ThrottledStatements(hooked, rounds=10**6, codes=("ThrottlingError",))
    result = copy_segment(plan, 0, hooked)
    assert result.status == SEGMENT_FAILED and "still throttled after 3 rounds" in result.error
    assert "rerun to resume" in result.error and result.written < 30
    checkpoint = StateStore(ddb, spec.state_table).load_segment(plan.source, plan.splits, 0)
    assert checkpoint is not None and checkpoint.status == SEGMENT_FAILED


@ENFORCES
def test_any_other_statement_error_fails_the_split_naming_the_key_not_the_payload(ddb, hooked, emulator, unique):
    spec = _setup(ddb, emulator, unique, items=8, splits=1, insert_mode="partiql")
    plan = plan_backfill(spec, spec.tables[0], ddb)
    _ThrottledStatements(hooked, rounds=1, codes=("ValidationError",))
    result = copy_segment(plan, 0, hooked)
    assert result.status == SEGMENT_FAILED
    assert "PartiQL INSERT of key" in result.error and "ValidationError" in result.error
    assert "user#" in result.error and "padding" not in result.error and "ppppp" not in result.error


_ROUND_TRIP_TABLES: set[str] = set()


@ENFORCES
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(item=items(min_size=1, max_size=6))
def test_any_item_inserted_as_statement_and_parameters_reads_back_equal(ddb, unique, item):
    # GIVEN any item of any types and attribute names (hypothesis), keyed freshly
    table = f"rt-{unique}"  # ``unique`` is one value for all the examples of one test run
    if table not in _ROUND_TRIP_TABLES:
        create_table(ddb, table, hash_key=("key ' \\ ?", "S"))  # even the key's name needs quoting
        _ROUND_TRIP_TABLES.add(table)
    key = {"key ' \\ ?": {"S": uuid.uuid4().hex}}
    item = {**{k: v for k, v in item.items() if k not in key}, **key}
    request = insert_statement(table, item)
    assert request is not None
    # WHEN it is inserted the way the partiql mode does, THEN it was written and reads back equal
    outcomes, _ = batch_execute_writes(ddb, table, [request])
    assert outcomes == [("", "")]
    got = ddb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    assert items_equal(got, item), (got, item)
    # AND a second INSERT of the key is refused, per statement
    assert batch_execute_writes(ddb, table, [request])[0][0][0] == "DuplicateItem"


@pytest.mark.emulators("ministack", reason="pins ministack's fault: it runs statements over the documented limit")
def test_ministack_runs_a_statement_over_8192_characters_which_aws_documents_as_too_long(ddb, once, unique):
    """ministack's fault: BatchStatementRequest.Statement is at most 8,192 characters (STATEMENT_DOC; AWS
    answers a longer one with a ValidationException); ministack runs it. So the emulator cannot show the
    fallback is needed: test_an_item_whose_statement_is_over_8192… asserts the PutItem was used instead."""
    table = f"long-{unique}"
    create_table(ddb, table)
    statement = f"INSERT INTO \"{table}\" VALUE {{'pk': ?, '{'n' * 9000}': ?}}"
    assert len(statement) > 8192
    answer = once.batch_execute_statement(Statements=[{"Statement": statement, "Parameters": [{"S": "k"}, {"S": "v"}]}])
    assert "Error" not in answer["Responses"][0]
    assert ddb.get_item(TableName=table, Key={"pk": {"S": "k"}})["Item"]["n" * 9000] == {"S": "v"}
