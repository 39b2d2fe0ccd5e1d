"""The typed errors of ferry. ``ClientError`` is translated into these at the adapter edge."""

from __future__ import annotations


class FerryError(Exception):
    """Base class of every error ferry raises on purpose."""

    exit_code = 3


class SpecError(FerryError):
    """The spec (or job arguments) is invalid. The message names the field."""

    exit_code = 2

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class SetupError(FerryError):
    """A resource is missing or incompatible. The message names it and how to fix it."""

    exit_code = 2


class RetryableError(FerryError):
    """A transient failure (throttling, 5xx, timeouts): trying again later may succeed."""


class PermanentError(FerryError):
    """A failure that will not go away by retrying (access denied, missing table)."""


class PoisonRecordError(PermanentError):
    """A stream record or event that can never be applied as it is (e.g. unmapped table)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class OutcomeUnknown(RetryableError):
    """A conditional write whose answer was lost (the connection dropped after sending, or a 5xx): it may have
    landed. It is not sent again blindly, since a change made in between would be overwritten; the caller
    reads the destination and judges again."""


class ChangesHeld(RetryableError):
    """A record of a table whose changes are held (phase ``hold``: its replay copy has not been released)
    reached the consumer: it must not be applied yet, so it fails and is delivered again."""


class SourceChanged(RetryableError):
    """An S3 source object changed or vanished between being read and being copied: a pinned copy
    (``CopySourceIfMatch``) answered 412 PreconditionFailed, or the source key was gone (NoSuchKey).
    The round is lost; read the source again."""


class StreamTrimmed(PermanentError):
    """The stream records asked for are no longer in the stream (TrimmedDataAccessException: older
    than the stream's 24 hours)."""


class StreamNotFound(PermanentError):
    """The stream or shard asked for does not exist (any more) (ResourceNotFoundException)."""


class ShardIteratorExpired(RetryableError):
    """A shard iterator can no longer be used (ExpiredIteratorException); get a new one."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code  # the AWS error code, for logs
