"""Local live replication: Lambda-like pollers calling the real handlers.

One stream poller per source table (→ ``table_stream``) and one SQS poller on the bucket events
queue (→ ``bucket_events``), configured the way Lambda configures them: FERRY_SPEC.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from ferry.aws import queue_depth, stream_arn_of
from ferry.buckets.setup import ensure_event_queues
from ferry.clients import make_client
from ferry.spec import Spec, spec_to_dict
from ferry.tables.setup import ensure_failure_queue
from ferry.tables.state import StateStore
from ferry_dev.anomalies import DeliveryAnomalies
from ferry_dev.sqs_poller import SqsPoller
from ferry_dev.stream_poller import StreamPoller

CHALICE_APP = Path(__file__).resolve().parent.parent / "chalice_app"
SQS_POLLERS = 5


def load_handlers(spec: Spec) -> Any:
    """The chalicelib modules Lambda runs, configured through FERRY_SPEC as Lambda would be."""
    if str(CHALICE_APP) not in sys.path:
        sys.path.insert(0, str(CHALICE_APP))
    from chalicelib import bucket_events, table_stream

    os.environ["FERRY_SPEC"] = json.dumps(spec_to_dict(spec))
    table_stream.reset()
    bucket_events.reset()
    return table_stream, bucket_events


class LocalReplication:
    """Pollers for every table and bucket of the spec, each in its own background thread."""

    def __init__(
        self,
        spec: Spec,
        *,
        starting_position: str | None = None,
        retry_backoff: float = 0.2,
        anomalies: DeliveryAnomalies | None = None,
    ) -> None:
        self.sqs = make_client("sqs", spec.home_where())
        table_stream, bucket_events = load_handlers(spec)
        self.stream_pollers: list[StreamPoller] = []
        self.bucket_pollers: list[SqsPoller] = []
        self.queue_url = ""
        if spec.tables:
            # The streams are the source's (its side, its role); checkpoints go to the state table at home.
            source = make_client("dynamodb", spec.source_where())
            # Few retries: an expired iterator is recovered by the poller itself, not by botocore.
            streams = make_client("dynamodbstreams", spec.source_where(), max_attempts=2)
            store = StateStore(make_client("dynamodb", spec.home_where()), spec.state_table)
            self.queue_url, _ = ensure_failure_queue(self.sqs, spec.replication.on_failure_queue)
            self.stream_pollers = [
                StreamPoller(
                    streams=streams,
                    sqs=self.sqs,
                    stream_arn=stream_arn_of(source, mapping.source),
                    source_table=mapping.source,
                    handler=table_stream.handle,
                    batch_size=spec.replication.batch_size,
                    starting_position=starting_position or spec.replication.starting_position,
                    max_retries=spec.replication.max_retries,
                    on_failure_queue_url=self.queue_url,
                    checkpoints=store,
                    retry_backoff=retry_backoff,
                    anomalies=anomalies,
                )
                for mapping in spec.tables
            ]
        self.bucket_dlq_url = ""
        if spec.buckets:
            url, arn, self.bucket_dlq_url = ensure_event_queues(
                self.sqs, spec.s3.events_queue, spec.s3.max_receive_count, spec.s3.visibility_timeout
            )
            # Lambda's SQS event-source mapping starts with about five concurrent pollers; reconcile
            # is idempotent and order-free, so concurrent batches are safe.
            self.bucket_pollers = [
                SqsPoller(
                    self.sqs,
                    url,
                    arn,
                    bucket_events.handle,
                    batch_size=spec.s3.batch_size,
                    visibility_timeout=spec.s3.visibility_timeout,
                    retry_delay=min(5, spec.s3.visibility_timeout),
                    anomalies=anomalies,
                )
                for _ in range(SQS_POLLERS)
            ]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def pollers(self) -> list[Any]:
        return [*self.stream_pollers, *self.bucket_pollers]

    def start(self, idle_sleep: float = 0.1) -> LocalReplication:
        self._stop.clear()
        for i, poller in enumerate(self.pollers):
            thread = threading.Thread(target=poller.run, args=(self._stop, idle_sleep), name=f"poller-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []

    def drain(self, timeout: float = 120.0) -> None:
        """Stop the background loops, then poll until every stream and queue has nothing left."""
        self.stop()
        errors: list[BaseException] = []

        def drain_one(poller: Any) -> None:
            try:
                poller.drain(timeout)
            except BaseException as exc:  # re-raised below, in the caller's thread
                errors.append(exc)

        threads = [threading.Thread(target=drain_one, args=(p,), daemon=True) for p in self.pollers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def dlq_depth(self) -> int:
        """Messages in the stream on-failure queue plus the bucket events DLQ."""
        return sum(queue_depth(self.sqs, url) for url in (self.queue_url, self.bucket_dlq_url) if url)
