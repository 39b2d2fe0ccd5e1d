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
