"""Fixtures for end-to-end tests: the real authorization server, once per session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import IN_CI
from tests.e2e.harness import AuthServer, AuthServerUnavailableError, start_auth_server

#: Access token lifetime of the short-lived server, in seconds.
SHORT_TOKEN_TTL = 4


def running_server(**options: Any) -> AuthServer:
    """Start oidc-provider; skip where it cannot run, fail instead under CI."""
    try:
        return start_auth_server(**options)
    except AuthServerUnavailableError as exc:
        if IN_CI:
            pytest.fail(f"the e2e authorization server must run under CI: {exc}")
        pytest.skip(f"e2e authorization server unavailable: {exc}")


def _serve(server: AuthServer) -> Iterator[AuthServer]:
    try:
        yield server
    finally:
        server.stop()
    # A 500 inside the server would otherwise only show up as an odd response.
    assert "server_error" not in server.stderr_tail(500), server.stderr_tail()


@pytest.fixture(scope="session")
def auth_server() -> Iterator[AuthServer]:
    """oidc-provider on 127.0.0.1; skipped where it cannot run, except under CI."""
    yield from _serve(running_server())


@pytest.fixture(scope="session")
def short_lived_auth_server() -> Iterator[AuthServer]:
    """A second server whose access tokens expire after SHORT_TOKEN_TTL seconds."""
    yield from _serve(running_server(access_token_ttl=SHORT_TOKEN_TTL))
