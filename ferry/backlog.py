"""What waits to be applied (``ferry status``): a replay table's held or replaying stream records, and the
bucket events queue.

A stream has no count of its records: they are read, from the oldest the stream still has, and
counted against the local pollers' checkpoints (up to ``limit``; GetRecords returns at most 1,000 a
call). Deployed, a released table's consumer is the stream mapping, whose lag CloudWatch reports
(IteratorAge); while it is held nothing reads the stream, and ferry's count is the held backlog.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ferry.aws import describe_stream_shards, get_records, shard_iterator

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient

READ_LIMIT = 1000
EMPTY_READS = 2  # an open shard answers empty pages at its end: stop after this many in a row


@dataclass(frozen=True)
class StreamBacklog:
    applied: int  # records at or before the checkpoints (what the consumer has applied)
    behind: int  # records after them (all of them when there is no checkpoint: the held backlog)
    complete: bool  # False: counting stopped at the limit (the figures are lower bounds)

    def describe(self) -> str:
        more = "" if self.complete else "≥ "
        return f"{more}{self.behind:,} behind, {more}{self.applied:,} applied"


def _sequence(record: dict[str, Any]) -> int:
    return int(record["dynamodb"]["SequenceNumber"])


def _each_record(streams: DynamoDBStreamsClient, stream_arn: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(shard id, record) for every record the stream holds, each shard from its oldest record."""
    _, shards = describe_stream_shards(streams, stream_arn)
    for shard in shards:
        shard_id = shard["ShardId"]
        iterator: str | None = shard_iterator(streams, stream_arn, shard_id, "TRIM_HORIZON")
        empty = 0
        while iterator and empty < EMPTY_READS:
            page = get_records(streams, iterator, READ_LIMIT)
            records = page.get("Records", [])
            empty = 0 if records else empty + 1
            for record in records:
                yield shard_id, dict(record)
            iterator = page.get("NextShardIterator")


def stream_backlog(
    streams: DynamoDBStreamsClient, stream_arn: str, checkpoints: dict[str, str], *, limit: int = 200_000
) -> StreamBacklog:
    """Count the stream's records before and after ``checkpoints`` (shard id → last applied sequence
    number; a shard without one is all behind), reading every shard from its oldest record."""
    applied = behind = 0
    for shard_id, record in _each_record(streams, stream_arn):
        checkpoint = checkpoints.get(shard_id)
        if checkpoint and _sequence(record) <= int(checkpoint):
            applied += 1
        else:
            behind += 1
        if applied + behind >= limit:
            return StreamBacklog(applied, behind, complete=False)
    return StreamBacklog(applied, behind, complete=True)


def stream_records(streams: DynamoDBStreamsClient, stream_arn: str) -> list[dict[str, Any]]:
    """Every record the stream holds (each shard oldest first), as a Lambda event carries them (with
    ``eventSourceARN``): for tests and the chaos run's accounting, not a hot path."""
    return [{**record, "eventSourceARN": stream_arn} for _, record in _each_record(streams, stream_arn)]


def drain_rate(applied_since: int, since: float | None, now: float | None = None) -> float | None:
    """Records (or messages) applied per second since the release, or None before it."""
    if since is None:
        return None
    elapsed = (time.time() if now is None else now) - since
    return applied_since / elapsed if elapsed > 0 else None


@dataclass(frozen=True)
class StreamLag:
    """How far the consumer is behind the stream, from the records after its checkpoints (``ferry status``'s
    cutover verdict): ``oldest_at`` is the ApproximateCreationDateTime of the oldest record not yet applied
    (None: every shard read to its end, no lag), ``held_left`` the records not yet applied that were made
    at or before ``held_until`` (the release: the replay backlog still to go)."""

    oldest_at: float | None
    held_left: int
    complete: bool  # False: counting the held records stopped at the limit (held_left is a lower bound)

    def seconds(self, now: float) -> float:
        return 0.0 if self.oldest_at is None else max(0.0, now - self.oldest_at)


def _created(record: dict[str, Any]) -> float:
    """A stream record's ApproximateCreationDateTime as epoch seconds (botocore gives a datetime; AWS
    rounds it down to the second, so an age read from it is at most a second high)."""
    value = record["dynamodb"].get("ApproximateCreationDateTime")
    if value is None:
        return time.time()  # no creation time: treat the record as made now (its age unknown, not hidden)
    return float(value.timestamp()) if hasattr(value, "timestamp") else float(value)


def stream_lag(
    streams: DynamoDBStreamsClient,
    stream_arn: str,
    checkpoints: dict[str, str],
    *,
    held_until: float | None = None,
    limit: int = 10_000,
) -> StreamLag:
    """Read each shard from just after its checkpoint (``AFTER_SEQUENCE_NUMBER``; a shard without one from
    its oldest record): the first record there is the oldest the consumer has not applied. With
    ``held_until``, go on counting that shard's records made at or before it (a shard is in order, so
    the first one after it ends the count), up to ``limit`` records over all shards.

    Cost: one DescribeStream, then per shard one GetShardIterator and one GetRecords (plus up to
    EMPTY_READS empty pages at a shard's end, and one page per 1,000 held records still to count);
    nothing is written. A closed shard read to its end answers no record and ends its iterator."""
    oldest: float | None = None
    held = counted = 0
    _, shards = describe_stream_shards(streams, stream_arn)
    for shard in shards:
        shard_id = shard["ShardId"]
        checkpoint = checkpoints.get(shard_id)
        if checkpoint:
            iterator: str | None = shard_iterator(streams, stream_arn, shard_id, "AFTER_SEQUENCE_NUMBER", checkpoint)
        else:
            iterator = shard_iterator(streams, stream_arn, shard_id, "TRIM_HORIZON")
        empty = 0
        while iterator and empty < EMPTY_READS:
            page = get_records(streams, iterator, READ_LIMIT)
            records = [dict(r) for r in page.get("Records", [])]
            empty = 0 if records else empty + 1
            if records:
                created = _created(records[0])
                oldest = created if oldest is None else min(oldest, created)
            if held_until is None and records:
                break
            after = [r for r in records if _created(r) > held_until] if held_until is not None else []
            held += len(records) - len(after)
            counted += len(records)
            if after:
                break
            if counted >= limit:
                return StreamLag(oldest, held, complete=False)
            iterator = page.get("NextShardIterator")
    return StreamLag(oldest, held, complete=True)
