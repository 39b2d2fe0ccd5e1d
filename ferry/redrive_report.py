"""What a redrive did, and the queue walk that the table and bucket redrives share.

A redrive reads a dead-letter queue (the stream on-failure queue, or the bucket events DLQ) and
hands each message to a function that re-applies its work; that function answers with an
:class:`Outcome`. A message whose work is done is deleted; any other is *kept*: it stays in the
queue (made visible again at the end of the walk) and its reason is reported.

Messages are received with a visibility timeout, so a kept message is not received twice in one
walk; a message that does come back (the work took longer than the timeout) is recognised by its
MessageId and not handled again. Only stdlib and boto3/botocore are used here.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from ferry.aws import call_with_retries, describe_error, error_name, is_aws_error
from ferry.errors import FerryError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)

Message = dict[str, Any]
MAX_RECEIVE = 10  # SQS ReceiveMessage limit
REASON_LIMIT = 2000
_STALE_ROUNDS = 3  # receives in a row returning only messages already handled in this walk


@dataclass(frozen=True)
class KeptMessage:
    """A message left in the queue, and why."""

    message_id: str
    reason: str
    subjects: tuple[str, ...] = ()  # tables, keys or s3:// keys the message is about, when known

    def as_dict(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "reason": self.reason, "subjects": list(self.subjects)}


@dataclass
class RedriveReport:
    """Counts of one redrive of one queue."""

    queue: str  # the queue URL
    seen: int = 0  # distinct messages received
    redriven: int = 0  # messages whose work is done, deleted from the queue
    keys_converged: int = 0  # keys made equal to the source's current state (a key named twice counts twice)
    actions: Counter[str] = field(default_factory=Counter)  # per write/reconcile action
    kept: list[KeptMessage] = field(default_factory=list)
    limit_reached: bool = False  # max_messages were handled: more messages may be waiting

    @property
    def ok(self) -> bool:
        return not self.kept

    def describe(self) -> str:
        actions = ", ".join(f"{name} {count}" for name, count in sorted(self.actions.items()))
        text = (
            f"{self.seen} messages seen, {self.redriven} redriven, {len(self.kept)} kept, "
            f"{self.keys_converged} keys converged" + (f" ({actions})" if actions else "")
        )
        if self.limit_reached:
            text += "; message limit reached, run again for the rest"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "seen": self.seen,
            "redriven": self.redriven,
            "keys_converged": self.keys_converged,
            "actions": dict(self.actions),
            "kept": [k.as_dict() for k in self.kept],
            "limit_reached": self.limit_reached,
        }


@dataclass
class Outcome:
    """What re-applying one message did. ``problem`` None means done: the message is deleted."""

    keys_converged: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    problem: str | None = None
    subjects: tuple[str, ...] = ()


class _QueueWalk:
    def __init__(self, sqs: SQSClient, queue_url: str, max_messages: int, visibility_timeout: int, wait_seconds: int):
        self.sqs = sqs
        self.queue_url = queue_url
        self.max_messages = max_messages
        self.visibility_timeout = visibility_timeout
        self.wait_seconds = wait_seconds
        self.handles: dict[str, str] = {}  # MessageId -> newest receipt handle, of every message received
        self.limit_reached = False

    def messages(self) -> Iterator[Message]:
        stale_rounds = 0
        while len(self.handles) < self.max_messages:
            wanted = min(MAX_RECEIVE, self.max_messages - len(self.handles))
            response = call_with_retries(
                partial(
                    self.sqs.receive_message,
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=wanted,
                    WaitTimeSeconds=self.wait_seconds,
                    VisibilityTimeout=self.visibility_timeout,
                    MessageSystemAttributeNames=["All"],
                ),
                f"ReceiveMessage {self.queue_url}",
            )
            received = cast("list[Message]", response.get("Messages", []))
            if not received:
                return
            fresh = 0
            for message in received:
                message_id = str(message["MessageId"])
                seen = message_id in self.handles
                self.handles[message_id] = str(message["ReceiptHandle"])
                if not seen:
                    fresh += 1
                    yield message
            # Only messages of this walk came back (their work outlasted the visibility timeout):
            # look a few more times for new ones, then stop rather than go round in circles.
            stale_rounds = 0 if fresh else stale_rounds + 1
            if stale_rounds >= _STALE_ROUNDS:
                return
        self.limit_reached = True

    def delete(self, message: Message) -> str | None:
        """Delete ``message``; the reason when that failed (it then comes back: harmless)."""
        handle = self.handles.get(str(message["MessageId"])) or str(message["ReceiptHandle"])
        try:
            call_with_retries(
                lambda: self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=handle),
                f"DeleteMessage {self.queue_url}",
            )
        except Exception as exc:
            if not is_aws_error(exc):
                raise
            return describe_error(exc)
        return None

    def release(self, message_ids: list[str]) -> None:
        """Make the kept messages visible again right away (for `ferry status` and the next redrive)."""
        for message_id in message_ids:
            try:
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url, ReceiptHandle=self.handles[message_id], VisibilityTimeout=0
                )
            except Exception as exc:  # it becomes visible anyway when its timeout ends
                if not is_aws_error(exc):
                    raise
                log.warning("%s: could not release kept message %s (%s)", self.queue_url, message_id, error_name(exc))


def redrive_queue(
    sqs: SQSClient,
    queue_url: str,
    redrive_one: Callable[[Message], Outcome],
    *,
    max_messages: int = 1000,
    visibility_timeout: int = 120,
    wait_seconds: int = 1,
) -> RedriveReport:
    """Hand each message of the queue (at most ``max_messages``) to ``redrive_one``; delete it when
    its outcome has no problem, keep it otherwise. A ``redrive_one`` that raises keeps the message."""
    if max_messages < 1:
        raise ValueError(f"max_messages must be at least 1, got {max_messages}")
    report = RedriveReport(queue=queue_url)
    walk = _QueueWalk(sqs, queue_url, max_messages, visibility_timeout, wait_seconds)
    kept_ids: list[str] = []
    try:
        for message in walk.messages():
            report.seen += 1
            message_id = str(message["MessageId"])
            try:
                outcome = redrive_one(message)
            except Exception as exc:
                if not isinstance(exc, FerryError) and not is_aws_error(exc):
                    log.exception("%s: redriving message %s failed unexpectedly", queue_url, message_id)
                outcome = Outcome(problem=describe_error(exc))
            report.keys_converged += outcome.keys_converged
            report.actions.update(outcome.actions)
            problem = outcome.problem
            if problem is None:
                failed_delete = walk.delete(message)
                if failed_delete is None:
                    report.redriven += 1
                    log.info("%s: message %s redriven", queue_url, message_id)
                    continue
                problem = f"its work is done but it could not be deleted ({failed_delete}); a rerun is harmless"
            kept = KeptMessage(message_id, problem[:REASON_LIMIT], outcome.subjects)
            report.kept.append(kept)
            kept_ids.append(message_id)
            log.warning("%s: message %s kept: %s", queue_url, message_id, kept.reason)
    finally:
        walk.release(kept_ids)
    report.limit_reached = walk.limit_reached
    return report
