"""structlog configuration: key-value logs on stderr (JSON with ``json=True``)."""

from __future__ import annotations

import logging
import sys

import structlog

__all__ = ["configure_logging", "quiet_library_logging"]


DRIVERS = ("aiokafka", "asyncio", "botocore", "aiobotocore")


def configure_logging(
    level: str = "info", *, json: bool = False, quiet_drivers: bool = False
) -> None:
    """Send structlog and stdlib logging to stderr at ``level``.

    ``quiet_drivers`` silences the drivers' own logging (short commands report failures
    themselves, in one line).
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr, force=True)
    for name in DRIVERS:
        logging.getLogger(name).setLevel(logging.CRITICAL if quiet_drivers else logging.NOTSET)


def quiet_library_logging() -> None:
    """For programs that use the hub as a library (the seeds' facade): unless they set up
    structlog themselves, the hub logs only warnings, and on stderr, never stdout."""
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
