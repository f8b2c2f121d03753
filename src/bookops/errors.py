"""The bookops exceptions.

Every error a user can cause or meet is a ``BookopsError``; the CLI prints its
message on one line and exits with its ``exit_code``::

    BookopsError (exit 1)
    ├── UserError (exit 2)            bad input, unknown book, a job already running
    │   └── BookBusy                  another job holds the book's lease
    ├── ConfigError (exit 3)          settings that cannot work
    ├── StoreError (exit 4)           the database is unreachable or refused a write
    └── ProviderError (exit 5)        an engine or endpoint failed; the kinds match WorkResult
        ├── RateLimited               429: the whole provider pool pauses for ``retry_after``
        ├── TransientError            5xx, timeouts, dropped connections: retried
        ├── InvalidOutput             output that failed validation: re-asked, then failed
        └── PermanentError            will not succeed on retry: failed at once
"""

from __future__ import annotations

from enum import Enum

__all__ = [
    "BookBusy",
    "BookopsError",
    "ConfigError",
    "ErrorKind",
    "InvalidOutput",
    "PermanentError",
    "ProviderError",
    "RateLimited",
    "StoreError",
    "TransientError",
    "UserError",
]


class ErrorKind(str, Enum):
    """Why a unit of work failed; decides whether the pool retries it."""

    rate_limited = "rate_limited"
    transient = "transient"
    invalid_output = "invalid_output"
    permanent = "permanent"


class BookopsError(Exception):
    """Base of every bookops error."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UserError(BookopsError):
    """Bad input from the user: a path, a book id, an option."""

    exit_code = 2


class BookBusy(UserError):
    """Another job holds the lease on this book."""

    def __init__(self, message: str, *, job_id: str | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id


class ConfigError(BookopsError):
    """Settings that cannot work (a bad URI, an unknown provider)."""

    exit_code = 3


class StoreError(BookopsError):
    """The store is unreachable, busy past its timeout, or refused a write."""

    exit_code = 4


class ProviderError(BookopsError):
    """An OCR engine or LLM endpoint failed. ``kind`` drives the pool's retry policy."""

    exit_code = 5
    kind: ErrorKind = ErrorKind.permanent


class RateLimited(ProviderError):
    """The provider answered 429; ``retry_after`` seconds when it said so."""

    kind = ErrorKind.rate_limited

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TransientError(ProviderError):
    """A failure that may pass: 5xx, timeout, dropped connection."""

    kind = ErrorKind.transient


class InvalidOutput(ProviderError):
    """The provider answered, but the answer failed validation.

    ``repaired=True`` means the caller already re-asked with the error (the structured-output
    repair loop): the pool then fails the unit instead of paying for the same loop again.
    """

    kind = ErrorKind.invalid_output

    def __init__(self, message: str, *, repaired: bool = False) -> None:
        super().__init__(message)
        self.repaired = repaired


class PermanentError(ProviderError):
    """A failure that retrying will not fix (bad request, unreadable page)."""

    kind = ErrorKind.permanent
