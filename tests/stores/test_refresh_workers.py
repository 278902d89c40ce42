"""Refresh workers in separate processes sharing one store and one token endpoint.

Four spawned processes run ``refresh_due`` at once over the same due credentials,
against a token endpoint on 127.0.0.1 that rotates refresh tokens and counts every
refresh by the token presented. Each credential must be refreshed exactly once:
a refresh token presented twice would be a double refresh (and, at a real
provider, the end of the grant).
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from flow import Driver
from flow.stores import open_store
from tests.stores.conftest import durable_store_url
from tests.stores.test_processes import PROCESSES, TIMEOUT, run_together
from tests.unit.flowkit import RotatingAS, TokenServer, credential_flow

#: Due credentials shared by the workers.
FLOWS = 50


@pytest.fixture(params=["postgres", "redis", "sqlite_file"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of fresh storage in each store that processes can share."""
    return durable_store_url(request.param, request, tmp_path)


def refresh_worker(url: str, start: Barrier, results: Queue[Any]) -> None:
    """Run one ``refresh_due`` over the shared store; put its summary on ``results``."""
    try:
        # The transitions are read from the store afterwards, not from logs.
        structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING)
        )
        store = open_store(url)
        with httpx.Client(trust_env=False, timeout=10.0) as http:
            driver = Driver(store, http=http)
            start.wait(timeout=TIMEOUT)
            # Small batches, so that the workers' pages interleave.
            summary = driver.refresh_due(batch_size=4, concurrency=4)
        store.close()
        results.put(("done", asdict(summary)))
    except BaseException:
        results.put(("crash", traceback.format_exc()))


def test_workers_refresh_each_due_credential_exactly_once(store_url: str) -> None:
    endpoint = RotatingAS()
    store = open_store(store_url)
    with TokenServer(endpoint) as server:
        soon = datetime.now(UTC) + timedelta(minutes=1)
        originals = {}
        for n in range(FLOWS):
            refresh_token = endpoint.issue()["refresh_token"]
            record = credential_flow(
                f"due-{n:02}",
                server.token_endpoint,
                soon + timedelta(milliseconds=n),
                refresh_token=refresh_token,
            )
            store.insert(record)
            originals[record.id] = refresh_token

        done = run_together(refresh_worker, [(store_url,)] * PROCESSES)
    summaries = [summary for _, summary in done]

    try:
        records = [store.load(flow_id) for flow_id in originals]
    finally:
        store.close()
    assert sorted(endpoint.refreshes) == sorted(originals.values())
    assert set(endpoint.refreshes.values()) == {1}
    assert sum(s["refreshed"] for s in summaries) == FLOWS
    assert [(s["failed"], s["reauth_required"]) for s in summaries] == [
        ({}, {})
    ] * PROCESSES
    for record in records:
        assert record.state == "api_ready"
        assert record.history[-1].trigger == "complete_refresh"
        assert record.secrets.refresh_token in endpoint.live
