"""The state table: per source table its phase, per-segment backfill checkpoints, last verify
result and (for the local pollers) stream checkpoints. Keys: ``pk = "table#<source>"``, ``sk`` below.

LastEvaluatedKey is stored as a wire-format map, so a resumed scan restarts from exactly it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from ferry.aws import create_table_if_missing
from ferry.tables.protocol import PHASE_BACKFILL, PHASES
from ferry.wire import Item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PHASE_SK = "phase"
VERIFY_SK = "verify"
SEGMENT_DONE = "done"
SEGMENT_RUNNING = "running"
SEGMENT_FAILED = "failed"


def _pk(source: str) -> dict[str, str]:
    return {"S": f"table#{source}"}


def segment_sk(total: int, segment: int) -> str:
    return f"segment#{total:07d}#{segment:07d}"


@dataclass(frozen=True)
class SegmentCheckpoint:
    segment: int
    total: int
    status: str
    last_key: Item | None
    scanned: int
    written: int
    skipped: int
    pages: int
    error: str = ""


def create_state_table(ddb: DynamoDBClient, name: str) -> bool:
    """Create the state table if it does not exist. Returns True when it was created."""
    definition = {
        "TableName": name,
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
        "SSESpecification": {"Enabled": True},
    }
    return create_table_if_missing(ddb, definition, max_wait_attempts=60)


class StateStore:
    """Reads and writes the state table with a low-level DynamoDB client."""

    def __init__(self, ddb: DynamoDBClient, table_name: str) -> None:
        self.ddb = ddb
        self.table_name = table_name

    def _get(self, source: str, sk: str) -> Item | None:
        response = self.ddb.get_item(
            TableName=self.table_name, Key={"pk": _pk(source), "sk": {"S": sk}}, ConsistentRead=True
        )
        return cast("Item | None", response.get("Item"))

    def _put(self, source: str, sk: str, attributes: Item) -> None:
        item = {"pk": _pk(source), "sk": {"S": sk}, "updated_at": {"N": f"{time.time():.3f}"}, **attributes}
        self.ddb.put_item(TableName=self.table_name, Item=item)

    # phase -------------------------------------------------------------------------------
    def get_phase(self, source: str) -> str:
        item = self._get(source, PHASE_SK)
        return item["phase"]["S"] if item else PHASE_BACKFILL

    def has_phase(self, source: str) -> bool:
        return self._get(source, PHASE_SK) is not None

    def set_phase(self, source: str, phase: str) -> None:
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}")
        self._put(source, PHASE_SK, {"phase": {"S": phase}})

    # backfill checkpoints ------------------------------------------------------------------
    def load_segment(self, source: str, total: int, segment: int) -> SegmentCheckpoint | None:
        item = self._get(source, segment_sk(total, segment))
        return _checkpoint_from_item(item) if item else None

    def save_segment(self, source: str, cp: SegmentCheckpoint) -> None:
        attributes: Item = {
            "segment": {"N": str(cp.segment)},
            "total": {"N": str(cp.total)},
            "status": {"S": cp.status},
            "scanned": {"N": str(cp.scanned)},
            "written": {"N": str(cp.written)},
            "skipped": {"N": str(cp.skipped)},
            "pages": {"N": str(cp.pages)},
        }
        if cp.last_key is not None:
            attributes["last_key"] = {"M": cp.last_key}
        if cp.error:
            attributes["error"] = {"S": cp.error[:2000]}
        self._put(source, segment_sk(cp.total, cp.segment), attributes)

    def list_segments(self, source: str) -> list[SegmentCheckpoint]:
        out: list[SegmentCheckpoint] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": _pk(source), ":prefix": {"S": "segment#"}},
            "ConsistentRead": True,
        }
        while True:
            page = self.ddb.query(**kwargs)
            out.extend(_checkpoint_from_item(cast("Item", item)) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return out
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def clear_segments(self, source: str) -> int:
        segments = self.list_segments(source)
        for cp in segments:
            self.ddb.delete_item(
                TableName=self.table_name, Key={"pk": _pk(source), "sk": {"S": segment_sk(cp.total, cp.segment)}}
            )
        return len(segments)

    # verify result ------------------------------------------------------------------------
    def save_verify(self, source: str, summary_json: str, differences: int) -> None:
        self._put(source, VERIFY_SK, {"summary": {"S": summary_json}, "differences": {"N": str(differences)}})

    def load_verify(self, source: str) -> tuple[str, int, float] | None:
        item = self._get(source, VERIFY_SK)
        if not item:
            return None
        return item["summary"]["S"], int(item["differences"]["N"]), float(item["updated_at"]["N"])

    # local stream poller checkpoints --------------------------------------------------------
    def load_stream_checkpoint(self, source: str, shard_id: str) -> tuple[str, bool] | None:
        """(last processed sequence number, shard finished) or None."""
        item = self._get(source, f"stream#{shard_id}")
        if not item:
            return None
        return item.get("sequence", {}).get("S", ""), item.get("finished", {}).get("BOOL", False)

    def stream_checkpoints(self, source: str) -> list[tuple[str, str, bool, float]]:
        """(shard id, sequence number, finished, updated_at) for every shard a local poller read."""
        page = self.ddb.query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": _pk(source), ":prefix": {"S": "stream#"}},
            ConsistentRead=True,
        )
        return [
            (
                item["sk"]["S"].removeprefix("stream#"),
                item.get("sequence", {}).get("S", ""),
                item.get("finished", {}).get("BOOL", False),
                float(item["updated_at"]["N"]),
            )
            for item in page.get("Items", [])
        ]

    def save_stream_checkpoint(self, source: str, shard_id: str, sequence: str, finished: bool = False) -> None:
        self._put(source, f"stream#{shard_id}", {"sequence": {"S": sequence}, "finished": {"BOOL": finished}})


def _checkpoint_from_item(item: Item) -> SegmentCheckpoint:
    return SegmentCheckpoint(
        segment=int(item["segment"]["N"]),
        total=int(item["total"]["N"]),
        status=item["status"]["S"],
        last_key=item["last_key"]["M"] if "last_key" in item else None,
        scanned=int(item["scanned"]["N"]),
        written=int(item["written"]["N"]),
        skipped=int(item["skipped"]["N"]),
        pages=int(item["pages"]["N"]),
        error=item.get("error", {}).get("S", ""),
    )


class PhaseCache:
    """The handler's view of a table's phase, re-read at most every ``ttl`` seconds.

    ``finalize`` waits longer than ``ttl`` after switching the phase, so by then every handler
    sees the new one.
    """

    def __init__(self, store: StateStore, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[str, float]] = {}

    def phase(self, source: str) -> str:
        now = self.clock()
        cached = self._cache.get(source)
        if cached is not None and now - cached[1] < self.ttl:
            return cached[0]
        value = self.store.get_phase(source)
        self._cache[source] = (value, now)
        return value
