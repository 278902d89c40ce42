"""Canary secrets: unique values whose appearance anywhere in output is a leak.

Tests mint canaries for every secret they hand to flow (codes, tokens, client
secrets) or learn from it (state values, verifiers). Everything flow logs during the
whole suite is captured by ``tests/conftest.py``, together with the text of errors
and reprs that tests record with :func:`record_text`; at the end of the session
every captured text is searched for every canary.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

CANARIES: set[str] = set()
CAPTURED: list[str] = []
_playing_user = False


@contextmanager
def playing_the_user() -> Iterator[None]:
    """Leave out stdlib log records while a test plays the user's browser.

    The test's own user agent logs the URLs it follows (httpx at INFO, httpcore at
    DEBUG), codes and state values included: that is the browser's traffic, not
    flow's, so it is not scanned.
    """
    global _playing_user
    _playing_user = True
    try:
        yield
    finally:
        _playing_user = False


def capture_log_line(text: str) -> None:
    """Keep a stdlib log line for the scan, unless a test is playing the user."""
    if not _playing_user:
        CAPTURED.append(text)


def canary(kind: str) -> str:
    """A fresh, unique secret value, registered for the final leak scan."""
    value = f"cnry-{kind}-{uuid.uuid4().hex}"
    CANARIES.add(value)
    return value


def register(*values: str | None) -> None:
    """Register secrets learnt at run time (a state value, a real token)."""
    CANARIES.update(value for value in values if value)


def record_text(*items: object) -> None:
    """Keep ``str`` and ``repr`` of objects (errors, records) for the leak scan."""
    for item in items:
        CAPTURED.append(str(item))
        CAPTURED.append(repr(item))


def leaks(texts: list[str] | None = None) -> list[tuple[str, str]]:
    """Every (canary, excerpt) pair where a canary appears in captured text."""
    found = []
    for text in CAPTURED if texts is None else texts:
        for value in CANARIES:
            if value in text:
                at = text.index(value)
                found.append((value, text[max(0, at - 60) : at + len(value) + 20]))
    return found
