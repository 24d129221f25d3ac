"""The error hierarchy shared by every layer.

Every error the hub raises is a :class:`HubError`. ``retriable`` tells a caller (or the
consumer runtime) whether trying the same thing again later may succeed. Driver errors
(asyncpg, aiokafka, botocore) are converted into these at one boundary per adapter.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "ConfigError",
    "ConflictError",
    "ForbiddenError",
    "HubError",
    "InputError",
    "LogError",
    "NotFoundError",
    "ProjectionError",
    "RateLimitedError",
    "SchemaError",
    "StoreError",
    "first_error",
]


class HubError(Exception):
    """Base of every Agent Hub error."""

    retriable: bool = False

    def __init__(self, message: str, *, retriable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retriable is not None:
            self.retriable = retriable

    def __str__(self) -> str:
        return self.message


class InputError(HubError):
    """Bad input from a caller; ``field`` names what is wrong."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, retriable=False)
        self.field = field


class SchemaError(HubError):
    """An event does not match its contract (encode or decode side)."""

    def __init__(self, message: str, *, event: str | None = None, field: str | None = None) -> None:
        super().__init__(message, retriable=False)
        self.event = event
        self.field = field


class ConfigError(HubError):
    """A setting or URL is wrong."""


class LogError(HubError):
    """The event log (Kafka or the Postgres log) failed."""

    retriable = True


class StoreError(HubError):
    """A store (Postgres read models, blob store) failed."""

    retriable = True


class ProjectionError(HubError):
    """A projection could not apply an event."""


class NotFoundError(HubError):
    """The thing asked for does not exist."""


class ConflictError(HubError):
    """The request conflicts with what is already stored."""


class AuthError(HubError):
    """No credential, or one the hub does not accept (unknown, malformed or revoked)."""


class ForbiddenError(HubError):
    """The credential is good but its role may not do this."""


class RateLimitedError(HubError):
    """Too many requests with one key; ``retry_after`` says how long to wait (seconds)."""

    retriable = True

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def first_error(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups, as task groups raise them."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
