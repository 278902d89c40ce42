"""Four processes, many API calls, one expired token, the real authorization server.

oidc-provider revokes the whole grant when a rotated refresh token is used twice,
so a second refresh anywhere would make calls fail. Every store that processes can
share is tried: an SQLite file, PostgreSQL and Redis.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

import flow
from flow import AuthMethod, Client
from tests import canary
from tests.conftest import IN_CI
from tests.e2e.harness import (
    NATIVE_REDIRECT_URI,
    PUBLIC_CLIENT_ID,
    AuthServer,
    AuthServerUnavailableError,
    Browser,
    start_auth_server,
)
from tests.stores.conftest import (  # noqa: F401 - fixtures used by name
    pg_schema,
    postgres_url,
    redis_prefix,
    redis_url,
)

pytestmark = pytest.mark.e2e
PROCESSES, CALLS = 4, 8
TOKEN_TTL = 4


@pytest.fixture(scope="module")
def short_tokens() -> Iterator[AuthServer]:
    """A server whose access tokens live a few seconds."""
    try:
        server = start_auth_server(access_token_ttl=TOKEN_TTL)
    except AuthServerUnavailableError as exc:
        if IN_CI:
            pytest.fail(f"the e2e authorization server must run under CI: {exc}")
        pytest.skip(f"e2e authorization server unavailable: {exc}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite_file", "postgres", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite_file":
        return f"sqlite:///{tmp_path / 'flows.db'}"
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        return f"{url}?schema={request.getfixturevalue('pg_schema')}"
    url = request.getfixturevalue("redis_url")
    return f"{url}?prefix={quote(request.getfixturevalue('redis_prefix'))}"


def call_api(
    store_url: str, flow_id: str, userinfo: str, start: Barrier, results: Queue[Any]
) -> None:
    """One process: CALLS concurrent API calls through FlowAuth."""
    store = flow.open_store(store_url)
    statuses: list[int] = []
    with flow.Driver(store) as driver:
        # No leeway: refresh only once the token has really expired.
        auth = driver.auth(flow_id, leeway=timedelta(0))

        def one() -> None:
            with httpx.Client(auth=auth, trust_env=False, timeout=30) as api:
                statuses.append(api.get(userinfo).status_code)

        threads = [threading.Thread(target=one) for _ in range(CALLS)]
        start.wait(timeout=60)
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    store.close()
    results.put(statuses)


def test_four_processes_with_an_expired_token_refresh_once(
    short_tokens: AuthServer, store_url: str
) -> None:
    store = flow.open_store(store_url)
    with flow.Driver(store) as driver, Browser() as browser:
        redirect = NATIVE_REDIRECT_URI.replace("127.0.0.1", "127.0.0.1:53125")
        started = driver.start(
            Client(PUBLIC_CLIENT_ID, redirect, AuthMethod.NONE),
            short_tokens.issuer,
            scopes=["openid", "offline_access"],
        )
        with canary.playing_the_user():
            callback = browser.login(started.authorization_url)
        driver.resume(callback)
        record = driver.get(started.flow_id)
        userinfo = record.server.userinfo_endpoint or ""
    canary.register(record.secrets.access_token, record.secrets.refresh_token)

    # Wait (bounded) until the access token has really expired at the server.
    expires_at = record.token.expires_at if record.token else None
    assert expires_at is not None
    while datetime.now(UTC) < expires_at:
        time.sleep(0.1)

    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    results: Queue[Any] = context.Queue()
    workers = [
        context.Process(
            target=call_api, args=(store_url, started.flow_id, userinfo, start, results)
        )
        for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    statuses = [status for _ in workers for status in results.get(timeout=120)]
    for worker in workers:
        worker.join(timeout=30)

    final = store.load(started.flow_id)
    store.close()
    canary.register(final.secrets.access_token, final.secrets.refresh_token)
    refreshes = [h for h in final.history if h.trigger == "complete_refresh"]
    assert statuses == [200] * PROCESSES * CALLS
    assert (final.state, len(refreshes)) == ("api_ready", 1)
