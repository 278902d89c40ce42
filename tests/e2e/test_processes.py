"""Four processes, many API calls, one expired token, the real authorization server.

oidc-provider revokes the whole grant when a rotated refresh token is used twice,
so a second refresh anywhere would make calls fail. Every store that processes can
share is tried: an SQLite file, PostgreSQL and Redis.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

import httpx
import pytest

import flow
from flow import AuthMethod, Client
from tests import canary
from tests.e2e.harness import (
    NATIVE_REDIRECT_URI,
    PUBLIC_CLIENT_ID,
    AuthServer,
    Browser,
)
from tests.stores.conftest import (  # noqa: F401 - fixtures used by name
    pg_schema,
    postgres_url,
    redis_prefix,
    redis_url,
    store_url,
)

pytestmark = pytest.mark.e2e
PROCESSES, CALLS = 4, 8


def call_api(
    url: str, flow_id: str, userinfo: str, start: Barrier, results: Queue[Any]
) -> None:
    """One process: CALLS concurrent API calls through FlowAuth."""
    store = flow.open_store(url)
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
    short_lived_auth_server: AuthServer,
    store_url: str,  # noqa: F811 - the fixture imported above
) -> None:
    store = flow.open_store(store_url)
    with flow.Driver(store) as driver, Browser() as browser:
        redirect = NATIVE_REDIRECT_URI.replace("127.0.0.1", "127.0.0.1:53125")
        started = driver.start(
            Client(PUBLIC_CLIENT_ID, redirect, AuthMethod.NONE),
            short_lived_auth_server.issuer,
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
