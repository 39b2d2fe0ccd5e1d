"""The state table: per source table its phase, where change capture began, the copy run and its
per-split checkpoints (scan segments or export files), the last verify result and (for the local
pollers) stream checkpoints. Keys: ``pk = "table#<source>"`` (``"bucket#<source>"`` for a bucket's
phase, capture and copy), ``sk`` below.

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
CAPTURE_SK = "capture"
COPY_SK = "copy"
SEGMENT_DONE = "done"
SEGMENT_RUNNING = "running"
SEGMENT_FAILED = "failed"
TABLE = "table"
BUCKET = "bucket"


def _pk(source: str, kind: str = TABLE) -> dict[str, str]:
    return {"S": f"{kind}#{source}"}


def segment_sk(total: int, segment: int) -> str:
    return f"segment#{total:07d}#{segment:07d}"


@dataclass(frozen=True)
class Capture:
    """Where and when change capture began: the stream (its ARN and the shards open then) or, for a
    bucket, the events queue. A replay copy is released only while every change since is still held."""

    captured_at: float  # epoch seconds
    where: str  # the stream ARN (tables) or the events queue ARN (buckets)
    shards: tuple[str, ...] = ()  # the stream's shards open at capture time


COPY_RUNNING = "running"
COPY_DONE = "done"


@dataclass(frozen=True)
class CopyRun:
    """One copy of a table or bucket: how it copies, how far it got, and the AWS jobs it started."""

    protocol: str = ""
    read: str = ""
    write: str = ""
    status: str = COPY_RUNNING
    signature: str = ""  # what its split checkpoints belong to: a rerun with another signature starts afresh
    export_arn: str = ""
    export_bucket: str = ""
    export_prefix: str = ""
    export_files: str = ""  # the export's data files, JSON (S3 keys), once the export completed
    exported_items: int = 0  # the export's ItemCount, once it completed
    import_arn: str = ""
    detail: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0
    items: int = 0
    # What the report draws against (recorded by begin_copy; 0 on items written before these fields):
    read_budget: float = 0.0  # units/s the whole copy may read from the source (capacity_budget)
    write_budget: float = 0.0  # units/s it may write to the target; 0 when ImportTable writes it
    estimated_seconds: float = 0.0  # ferry.tables.estimate.estimate_copy at the start; 0 when not estimated

    @property
    def done(self) -> bool:
        return self.status == COPY_DONE


_COPY_TEXT = (
    "protocol", "read", "write", "status", "signature", "export_arn", "export_bucket", "export_prefix",
    "export_files", "import_arn", "detail",
)  # fmt: skip
_COPY_NUMBERS = (
    "started_at", "finished_at", "items", "exported_items", "read_budget", "write_budget", "estimated_seconds",
)  # fmt: skip


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
    created = create_table_if_missing(ddb, definition, max_wait_attempts=60)
    if created:
        expire_state_items(ddb, name)
    return created


EXPIRES_ATTRIBUTE = "expires_at"  # the two-way journal and sequence marks (ferry.twoway) expire after 24 h


def expire_state_items(ddb: DynamoDBClient, name: str) -> list[str]:
    """Turn on the state table's TTL on ``expires_at`` (only items that carry it expire); idempotent."""
    current = ddb.describe_time_to_live(TableName=name).get("TimeToLiveDescription", {})
    if current.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and current.get("AttributeName") == EXPIRES_ATTRIBUTE:
        return []
    ddb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": EXPIRES_ATTRIBUTE}
    )
    return [f"state table {name}: items with {EXPIRES_ATTRIBUTE} expire (TTL)"]


class StateStore:
    """Reads and writes the state table with a low-level DynamoDB client."""

    def __init__(self, ddb: DynamoDBClient, table_name: str) -> None:
        self.ddb = ddb
        self.table_name = table_name

    def _get(self, source: str, sk: str, kind: str = TABLE) -> Item | None:
        response = self.ddb.get_item(
            TableName=self.table_name, Key={"pk": _pk(source, kind), "sk": {"S": sk}}, ConsistentRead=True
        )
        return cast("Item | None", response.get("Item"))

    def _put(self, source: str, sk: str, attributes: Item, kind: str = TABLE) -> None:
        item = {"pk": _pk(source, kind), "sk": {"S": sk}, "updated_at": {"N": f"{time.time():.3f}"}, **attributes}
        self.ddb.put_item(TableName=self.table_name, Item=item)

    # phase -------------------------------------------------------------------------------
    def get_phase(self, source: str, kind: str = TABLE) -> str:
        """The phase; a table without one counts as ``backfill`` (its REMOVEs become tombstones: safe
        whatever comes next). Use :meth:`phase_or_none` to tell "none yet" apart."""
        return self.phase_or_none(source, kind) or PHASE_BACKFILL

    def phase_or_none(self, source: str, kind: str = TABLE) -> str | None:
        item = self._get(source, PHASE_SK, kind)
        return item["phase"]["S"] if item else None

    def has_phase(self, source: str, kind: str = TABLE) -> bool:
        return self.phase_or_none(source, kind) is not None

    def set_phase(self, source: str, phase: str, kind: str = TABLE) -> None:
        """Set the phase; a release recorded earlier (when, how much was held) is kept."""
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}")
        kept = {k: v for k, v in (self._get(source, PHASE_SK, kind) or {}).items() if k in ("released_at", "held")}
        self._put(source, PHASE_SK, {"phase": {"S": phase}, **kept}, kind)

    def release(self, source: str, phase: str, released_at: float, kind: str = TABLE, held: int | None = None) -> None:
        """Record the release: ``phase`` (replay), when the held changes were let go and, when counted,
        how many were waiting then."""
        attributes: Item = {"phase": {"S": phase}, "released_at": {"N": f"{released_at:.3f}"}}
        if held is not None:
            attributes["held"] = {"N": str(held)}
        self._put(source, PHASE_SK, attributes, kind)

    def released_at(self, source: str, kind: str = TABLE) -> float | None:
        item = self._get(source, PHASE_SK, kind)
        return float(item["released_at"]["N"]) if item and "released_at" in item else None

    def held_at_release(self, source: str, kind: str = TABLE) -> int | None:
        item = self._get(source, PHASE_SK, kind)
        return int(item["held"]["N"]) if item and "held" in item else None

    # change capture and the copy run -------------------------------------------------------
    def save_capture(self, source: str, capture: Capture, kind: str = TABLE) -> None:
        attributes: Item = {"captured_at": {"N": f"{capture.captured_at:.3f}"}, "where": {"S": capture.where}}
        if capture.shards:
            attributes["shards"] = {"SS": list(capture.shards)}
        self._put(source, CAPTURE_SK, attributes, kind)

    def load_capture(self, source: str, kind: str = TABLE) -> Capture | None:
        item = self._get(source, CAPTURE_SK, kind)
        if not item:
            return None
        shards = tuple(sorted(item["shards"]["SS"])) if "shards" in item else ()
        return Capture(float(item["captured_at"]["N"]), item["where"]["S"], shards)

    def save_copy(self, source: str, run: CopyRun, kind: str = TABLE) -> None:
        attributes: Item = {name: {"S": str(getattr(run, name))} for name in _COPY_TEXT if getattr(run, name)}
        attributes.update({name: {"N": str(getattr(run, name))} for name in _COPY_NUMBERS})
        self._put(source, COPY_SK, attributes, kind)

    def load_copy(self, source: str, kind: str = TABLE) -> CopyRun | None:
        item = self._get(source, COPY_SK, kind)
        if not item:
            return None
        text = {name: item[name]["S"] for name in _COPY_TEXT if name in item}
        numbers = {name: type(getattr(CopyRun, name))(item[name]["N"]) for name in _COPY_NUMBERS if name in item}
        return CopyRun(**text, **numbers)

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

    def forget_copy(self, source: str, kind: str = TABLE) -> None:
        """Forget the recorded copy run and its checkpoints (``ferry backfill --restart``); its copy log
        stays, older than the next run's start (ferry.runlog)."""
        self.ddb.delete_item(TableName=self.table_name, Key={"pk": _pk(source, kind), "sk": {"S": COPY_SK}})
        if kind == TABLE:
            self.clear_segments(source)

    def clear_segments(self, source: str) -> int:
        segments = self.list_segments(source)
        for cp in segments:
            self.ddb.delete_item(
                TableName=self.table_name, Key={"pk": _pk(source), "sk": {"S": segment_sk(cp.total, cp.segment)}}
            )
        return len(segments)

    # verify result ------------------------------------------------------------------------
    def save_verify(self, source: str, summary_json: str, differences: int, kind: str = TABLE) -> None:
        """The last verify of ``source``: its report as JSON (counts by kind, sample keys) and how many
        differences it found; ``updated_at`` says when."""
        self._put(source, VERIFY_SK, {"summary": {"S": summary_json}, "differences": {"N": str(differences)}}, kind)

    def load_verify(self, source: str, kind: str = TABLE) -> tuple[str, int, float] | None:
        item = self._get(source, VERIFY_SK, kind)
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

    def save_stream_checkpoint(
        self, source: str, shard_id: str, sequence: str, finished: bool = False, applied: int | None = None
    ) -> None:
        """``applied``: records this shard's consumer has applied in all (``ferry status`` reads the rate)."""
        attributes: Item = {"sequence": {"S": sequence}, "finished": {"BOOL": finished}}
        if applied is not None:
            attributes["applied"] = {"N": str(applied)}
        self._put(source, f"stream#{shard_id}", attributes)

    def stream_applied(self, source: str) -> int:
        """Records applied by the local pollers of ``source``'s stream, over every shard."""
        page = self.ddb.query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": _pk(source), ":prefix": {"S": "stream#"}},
            ConsistentRead=True,
        )
        return sum(int(item.get("applied", {}).get("N", "0")) for item in page.get("Items", []))


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
