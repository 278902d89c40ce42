"""Fixtures for end-to-end tests: the real authorization server, once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import IN_CI
from tests.e2e.harness import AuthServer, AuthServerUnavailableError, start_auth_server


@pytest.fixture(scope="session")
def auth_server() -> Iterator[AuthServer]:
    """oidc-provider on 127.0.0.1; skipped where it cannot run, except under CI."""
    try:
        server = start_auth_server()
    except AuthServerUnavailableError as exc:
        if IN_CI:
            pytest.fail(f"the e2e authorization server must run under CI: {exc}")
        pytest.skip(f"e2e authorization server unavailable: {exc}")
    try:
        yield server
    finally:
        server.stop()
    assert "server_error" not in server.stderr_tail(500), server.stderr_tail()
