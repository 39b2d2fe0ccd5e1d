"""Local live replication: one Lambda-like poller per source stream, calling the real handler."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from ferry.clients import AwsTarget, make_client
from ferry.local.stream_poller import StreamPoller, ensure_queue, stream_arn_for
from ferry.spec import Spec, spec_to_dict
from ferry.tables.state import StateStore

CHALICE_APP = Path(__file__).resolve().parent.parent / "chalice_app"


def load_table_stream_handler(spec: Spec) -> Any:
    """The very function Lambda runs (chalice_app/chalicelib/table_stream.handle), configured
    the way Lambda configures it: through FERRY_SPEC in the environment."""
    if str(CHALICE_APP) not in sys.path:
        sys.path.insert(0, str(CHALICE_APP))
    from chalicelib import table_stream

    os.environ["FERRY_SPEC"] = json.dumps(spec_to_dict(spec))
    table_stream.reset()
    return table_stream.handle


class LocalReplication:
    """Pollers for every table of the spec, run in one background thread."""

    def __init__(self, spec: Spec, *, starting_position: str | None = None, retry_backoff: float = 0.2) -> None:
        where = AwsTarget(spec.region, spec.endpoint_url)
        ddb = make_client("dynamodb", where)
        # Few retries: an expired iterator is recovered by the poller itself, not by botocore.
        streams = make_client("dynamodbstreams", where, max_attempts=2)
        sqs = make_client("sqs", where)
        handler = load_table_stream_handler(spec)
        store = StateStore(ddb, spec.state_table)
        queue_url = ensure_queue(sqs, spec.replication.on_failure_queue)
        self.queue_url = queue_url
        self.sqs = sqs
        self.pollers = [
            StreamPoller(
                streams=streams,
                sqs=sqs,
                stream_arn=stream_arn_for(ddb, mapping.source),
                source_table=mapping.source,
                handler=handler,
                batch_size=spec.replication.batch_size,
                starting_position=starting_position or spec.replication.starting_position,
                max_retries=spec.replication.max_retries,
                on_failure_queue_url=queue_url,
                checkpoints=store,
                retry_backoff=retry_backoff,
            )
            for mapping in spec.tables
        ]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, idle_sleep: float = 0.1) -> LocalReplication:
        for poller in self.pollers:
            thread = threading.Thread(
                target=poller.run, args=(self._stop, idle_sleep), name=f"poller-{poller.source_table}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []

    def drain(self, timeout: float = 120.0) -> None:
        """Stop the background loop, then poll until every stream has nothing left."""
        self.stop()
        for poller in self.pollers:
            poller.drain(timeout)

    def dlq_depth(self) -> int:
        attrs = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attrs["Attributes"]["ApproximateNumberOfMessages"])
