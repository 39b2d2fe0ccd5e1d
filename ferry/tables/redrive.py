"""REDRIVE for tables: re-apply the stream records that ended in the on-failure queue, once their
cause is fixed, without ever making the target staler.

A dead-lettered record is old by the time it is redriven, and its image is not even in the queue
(messages carry keys and batch information only). So a redrive never applies a record: for each
key a message names it makes the target equal to the source's *current* state, respecting the
ordering protocol (docs/adr/0001) — :func:`converge_key`:

- source item present → PutItem of it unchanged (what the live handler does with a NewImage);
- source item absent → DeleteItem while the table's phase is ``live``, otherwise a tombstone, so a
  stale backfill insert cannot resurrect the item;
- then the source is read again: if a live write changed it meanwhile (the handler may have
  applied that write before ours landed), the key goes round again with the new state. A write
  after that re-read reaches the target through the stream, after ours.

The keys of a message come from its ``ferry`` object (local poller) when it has one; a message
of Lambda's event-source mapping only has ``DDBStreamBatchInfo``, so the records between its
start and end sequence numbers are read again from the stream and their keys taken. A message is
deleted only when every one of its keys converged; otherwise it is kept and the reason reported
(records trimmed, stream gone, table not in the spec, target still missing, …).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ferry.aws import (
    call_with_retries,
    describe_error,
    get_records,
    is_aws_error,
    missing_table_raises,
    shard_iterator,
)
from ferry.clients import TableClients
from ferry.errors import FerryError, RetryableError, SetupError, StreamNotFound, StreamTrimmed
from ferry.redrive_report import KeptMessage, Message, Outcome, RedriveReport, redrive_queue
from ferry.spec import Spec, TableMapping
from ferry.tables.protocol import deletes_leave_tombstones, tombstone_for
from ferry.tables.replicate import table_name_from_arn
from ferry.tables.schema import TableShape, describe_shape
from ferry.tables.state import StateStore
from ferry.wire import Item, items_equal, key_from_text, key_text

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_sqs import SQSClient

__all__ = [
    "DELETE",
    "PUT",
    "TOMBSTONE",
    "KeptMessage",
    "RedriveReport",
    "converge_key",
    "redrive_stream_failures",
    "stream_batch_keys",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

PUT = "put"
DELETE = "delete"
TOMBSTONE = "tombstone"
GET_RECORDS_LIMIT = 1000
_EMPTY_PAGES = 5  # GetRecords pages without records before a range is given up as unreadable


def _call(fn: Callable[[], T], what: str) -> T:
    return call_with_retries(fn, what, attempts=8, base_delay=0.2)


def _read_source(ddb: DynamoDBClient, mapping: TableMapping, key: Item) -> Item | None:
    missing = SetupError(f"source table {mapping.source!r} does not exist in this account and region")
    with missing_table_raises(missing):
        response = _call(
            lambda: ddb.get_item(TableName=mapping.source, Key=key, ConsistentRead=True), f"GetItem {mapping.source}"
        )
    return cast("Item | None", response.get("Item"))


def _write_target(fn: Callable[[], object], mapping: TableMapping, what: str) -> None:
    missing = SetupError(
        f"target table {mapping.target!r} does not exist: fix the cause (run `ferry init` to create it), "
        "then redrive again"
    )
    with missing_table_raises(missing):
        _call(fn, f"{what} {mapping.target}")


def _phase(store: StateStore, spec: Spec, source: str) -> str:
    with missing_table_raises(SetupError(f"state table {spec.state_table!r} does not exist: run `ferry init`")):
        return _call(lambda: store.get_phase(source), f"GetItem {spec.state_table}")


def _same(before: Item | None, after: Item | None) -> bool:
    if before is None or after is None:
        return before is None and after is None
    return items_equal(before, after)


def converge_key(
    ddb: DynamoDBClient | TableClients, spec: Spec, mapping: TableMapping, key: Item, *, max_rounds: int = 5
) -> str:
    """Make the target's ``key`` equal to the source's current state, respecting the protocol.

    Returns the last write made: ``"put"`` (the source item, unchanged), ``"delete"`` (source
    absent, phase live, replay or hold) or ``"tombstone"`` (source absent, phase backfill or unknown). Raises
    :class:`RetryableError` when the source kept changing for ``max_rounds`` rounds, and
    :class:`SetupError` naming the table when the source or the target does not exist.
    ``ddb``: TableClients (source read, target written, phase from the state table), or one client.
    """
    if max_rounds < 1:
        raise ValueError(f"max_rounds must be at least 1, got {max_rounds}")
    clients = TableClients.of(ddb)
    target = clients.target
    store = StateStore(clients.state, spec.state_table)
    current = _read_source(clients.source, mapping, key)
    for round_number in range(1, max_rounds + 1):
        if current is not None:
            _write_target(partial(target.put_item, TableName=mapping.target, Item=current), mapping, "PutItem")
            action = PUT
        elif not deletes_leave_tombstones(_phase(store, spec, mapping.source)):
            _write_target(partial(target.delete_item, TableName=mapping.target, Key=key), mapping, "DeleteItem")
            action = DELETE
        else:
            _write_target(
                partial(target.put_item, TableName=mapping.target, Item=tombstone_for(key)), mapping, "PutItem"
            )
            action = TOMBSTONE
        after = _read_source(clients.source, mapping, key)
        if _same(current, after):
            # A tombstone written after finalize's sweep would stay: if the phase turned live
            # meanwhile, go round again and delete for real.
            if action != TOMBSTONE or deletes_leave_tombstones(_phase(store, spec, mapping.source)):
                log.info(
                    "redrive %s -> %s: %s key %s (round %d)",
                    mapping.source,
                    mapping.target,
                    action,
                    key_text(key),
                    round_number,
                )
                return action
        else:
            log.info(
                "redrive %s -> %s: source of key %s changed during round %d, going again",
                mapping.source,
                mapping.target,
                key_text(key),
                round_number,
            )
        current = after
    raise RetryableError(
        f"{mapping.source} -> {mapping.target}: key {key_text(key)} did not converge in {max_rounds} rounds "
        "(the source kept changing); redrive again"
    )


# --- keys of a message ------------------------------------------------------------------------


def _record_key(change: Mapping[str, Any]) -> Item:
    """The key of one GetRecords record. The key attributes are taken from the record's image when
    it has one (equal to ``Keys`` on AWS; the emulator base64-encodes binary attributes of ``Keys``
    a second time, but not those of the images), else from ``Keys``."""
    keys: Item = change.get("Keys") or {}
    for image_name in ("NewImage", "OldImage"):
        image = change.get(image_name) or {}
        if keys and all(name in image for name in keys):
            return {name: image[name] for name in keys}
    return keys


def stream_batch_keys(streams: DynamoDBStreamsClient, info: dict[str, Any]) -> tuple[list[Item], str | None]:
    """The distinct keys of the records of ``DDBStreamBatchInfo`` ``info``, read again from the
    stream, and a problem when not all of them could be read (trimmed records, stream gone)."""
    try:
        stream_arn = str(info["streamArn"])
        shard_id = str(info["shardId"])
        start = str(info["startSequenceNumber"])
        end = str(info["endSequenceNumber"])
        first, last = int(start), int(end)
    except (KeyError, TypeError, ValueError) as exc:
        return [], f"DDBStreamBatchInfo is incomplete or malformed ({type(exc).__name__}: {exc})"
    expected = info.get("batchSize")
    where = f"records {start}..{end} of shard {shard_id} of {stream_arn}"
    keys: dict[str, Item] = {}
    found = 0
    try:
        iterator: str | None = _call(
            lambda: shard_iterator(streams, stream_arn, shard_id, "AT_SEQUENCE_NUMBER", start), "GetShardIterator"
        )
        empty = 0
        done = False
        while iterator and not done and empty < _EMPTY_PAGES:
            page = _call(partial(get_records, streams, iterator, GET_RECORDS_LIMIT), "GetRecords")
            records = page.get("Records", [])
            empty = 0 if records else empty + 1
            for record in records:
                change = record.get("dynamodb") or {}
                sequence = int(change["SequenceNumber"])
                if sequence < first:
                    continue
                if sequence > last:
                    done = True
                    break
                found += 1
                record_keys = _record_key(change)
                if record_keys:
                    keys.setdefault(key_text(record_keys), record_keys)
                if sequence == last:
                    done = True
                    break
            iterator = page.get("NextShardIterator")
    except StreamTrimmed as exc:
        return [], f"{where} are no longer in the stream (trimmed after 24 hours): {describe_error(exc)}"
    except StreamNotFound as exc:
        return [], f"the stream or shard of {where} no longer exists: {describe_error(exc)}"
    except Exception as exc:
        if not isinstance(exc, FerryError) and not is_aws_error(exc):  # an expired iterator is a FerryError
            raise
        return [], f"cannot read {where}: {describe_error(exc)}"
    if found == 0:
        return [], f"{where} are no longer in the stream (trimmed?)"
    if isinstance(expected, int) and found < expected:
        return list(keys.values()), f"only {found} of the {expected} {where} could be read"
    return list(keys.values()), None


class _StreamRedriver:
    def __init__(
        self, spec: Spec, ddb: DynamoDBClient | TableClients, streams: DynamoDBStreamsClient, max_rounds: int
    ) -> None:
        self.spec = spec
        self.clients = TableClients.of(ddb)
        self.streams = streams
        self.max_rounds = max_rounds
        self._shapes: dict[str, TableShape | FerryError] = {}

    def shape(self, table: str) -> TableShape:
        cached = self._shapes.get(table)
        if cached is None:
            try:
                cached = describe_shape(self.clients.source, table, "source")
            except SetupError as exc:
                cached = exc
            self._shapes[table] = cached
        if isinstance(cached, FerryError):
            raise cached
        return cached

    def mapping(self, table: str) -> TableMapping | str:
        mapping = self.spec.mapping_for_source(table)
        if mapping is None:
            return (
                f"table {table!r} is not a source table of this spec: redrive with the spec that maps it, "
                "or add it to tables"
            )
        return mapping

    def keys_from_ferry(self, table: str, text: Any) -> Item | str:
        if not isinstance(text, str):
            return "ferry.keys is not a string"
        shape = self.shape(table)
        try:
            key = key_from_text(text, shape.key_type_map)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return f"ferry.keys {text[:200]!r} cannot be read ({type(exc).__name__}: {exc})"
        if not key:
            return "ferry.keys is empty"
        if set(key) != set(shape.key_names):
            return f"ferry.keys {text[:200]} does not match the key schema of {table!r} ({', '.join(shape.key_names)})"
        return key

    def __call__(self, message: Message) -> Outcome:
        try:
            body: Any = json.loads(message.get("Body", ""))
        except (json.JSONDecodeError, RecursionError):
            return Outcome(problem="the message body is not JSON")
        if not isinstance(body, dict):
            return Outcome(problem="the message body is not a JSON object")
        extra = body.get("ferry")
        info = body.get("DDBStreamBatchInfo")
        keys: list[Item] = []
        problems: list[str] = []
        if (
            isinstance(extra, dict)
            and isinstance(extra.get("sourceTable"), str)
            and extra.get("keys") not in (None, "{}")
        ):
            table = str(extra["sourceTable"])
            mapping = self.mapping(table)
            if isinstance(mapping, str):
                return Outcome(problem=mapping, subjects=(table,))
            key = self.keys_from_ferry(table, extra["keys"])
            if isinstance(key, str):
                return Outcome(problem=key, subjects=(table,))
            keys = [key]
        elif isinstance(info, dict):
            try:
                table = table_name_from_arn(str(info.get("streamArn", "")))
            except FerryError as exc:
                return Outcome(problem=f"DDBStreamBatchInfo.streamArn: {exc}")
            mapping = self.mapping(table)
            if isinstance(mapping, str):
                return Outcome(problem=mapping, subjects=(table,))
            keys, problem = stream_batch_keys(self.streams, info)
            if problem:
                problems.append(problem)
        else:
            return Outcome(problem="the message has neither usable ferry.keys nor DDBStreamBatchInfo")

        actions: Counter[str] = Counter()
        converged = 0
        for index, key in enumerate(keys):
            try:
                actions[converge_key(self.clients, self.spec, mapping, key, max_rounds=self.max_rounds)] += 1
                converged += 1
            except Exception as exc:
                if not isinstance(exc, FerryError) and not is_aws_error(exc):
                    log.exception("redrive of key %s of %s failed unexpectedly", key_text(key), table)
                problems.append(f"key {key_text(key)}: {describe_error(exc)}")
                if isinstance(exc, SetupError):  # a missing table: every other key would fail the same way
                    if index + 1 < len(keys):
                        problems.append(f"{len(keys) - index - 1} more keys not tried")
                    break
        subjects = (table, *(key_text(k) for k in keys))
        if problems:
            return Outcome(converged, actions, f"table {table!r}: " + "; ".join(problems), subjects)
        return Outcome(converged, actions, None, subjects)


def redrive_stream_failures(
    spec: Spec,
    *,
    ddb: DynamoDBClient | TableClients,
    sqs: SQSClient,
    streams: DynamoDBStreamsClient,
    queue_url: str,
    max_messages: int = 1000,
    max_rounds: int = 5,
    visibility_timeout: int = 120,
    wait_seconds: int = 1,
) -> RedriveReport:
    """Redrive the stream on-failure queue at ``queue_url`` (normally ``spec.replication.on_failure_queue``):
    converge every key of every message, delete the messages whose keys all converged, keep the others.

    ``ddb``: TableClients, or one client for every side; ``streams`` reads the source's streams
    (source side); ``sqs`` is the queue's (home account)."""
    redriver = _StreamRedriver(spec, ddb, streams, max_rounds)
    report = redrive_queue(
        sqs,
        queue_url,
        redriver,
        max_messages=max_messages,
        visibility_timeout=visibility_timeout,
        wait_seconds=wait_seconds,
    )
    log.info("redrive of %s: %s", queue_url, report.describe())
    return report
