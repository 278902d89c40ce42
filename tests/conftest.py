"""Suite-wide fixtures: captured logs, the leak scan, and service availability."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, MutableMapping
from typing import Any

import pytest
import structlog

from tests import canary

IN_CI = os.environ.get("CI", "").lower() == "true"


def _capture(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    canary.CAPTURED.append(repr(dict(event_dict)))
    EVENTS.append(dict(event_dict, log_level=method_name))
    raise structlog.DropEvent


EVENTS: list[dict[str, Any]] = []


class _StdlibCapture(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        canary.capture_log_line(self.format(record))


def pytest_configure(config: pytest.Config) -> None:
    # Everything flow logs, at every level, is kept for the leak scan. No redaction
    # processor here: the scan must see what flow itself emits.
    structlog.configure(
        processors=[_capture],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=False,
    )
    handler = _StdlibCapture(level=logging.DEBUG)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.DEBUG)
    logging.getLogger("transitions").setLevel(logging.WARNING)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    found = canary.leaks()
    if found:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = [f"  {value}: ...{excerpt}..." for value, excerpt in found[:20]]
        message = "SECRET LEAK: canary values appeared in captured output:\n"
        if reporter is not None:
            reporter.write_line(message + "\n".join(lines), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def emitted() -> Callable[[], list[dict[str, Any]]]:
    """Returns the structlog events emitted since the test began, in order."""
    start = len(EVENTS)
    return lambda: EVENTS[start:]
