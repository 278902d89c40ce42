"""The leak scan itself: it must find a canary wherever one is captured."""

from __future__ import annotations

import structlog

from tests import canary


def test_scan_finds_a_canary_in_any_captured_text() -> None:
    secret = "cnry-selftest-" + "0" * 8
    texts = ["nothing here", f"prefix {secret} suffix"]
    canary.CANARIES.add(secret)
    try:
        found = canary.leaks(texts)
    finally:
        canary.CANARIES.discard(secret)

    assert [value for value, _ in found] == [secret]


def test_flow_logger_events_reach_the_capture() -> None:
    before = len(canary.CAPTURED)

    structlog.get_logger("flow").info("selftest.event", marker="visible")

    assert "visible" in "".join(canary.CAPTURED[before:])
