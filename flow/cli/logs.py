"""Logging set-up for the ``flow`` command (the library itself never does this)."""

from __future__ import annotations

import logging
import sys

import structlog

from ..events import redact_secrets


def configure_logging(*, verbosity: int, as_json: bool) -> None:
    """Send structlog events to stderr: readable on a terminal, JSON lines on request.

    Args:
        verbosity: 0 logs warnings and errors, 1 adds info (every transition), 2
            adds debug.
        as_json: One JSON object per line instead of the console format.
    """
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            redact_secrets,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
