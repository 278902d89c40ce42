"""Two to four processes resume the same callback at once, for every durable store.

One token request reaches the server, one process completes the flow, the others
answer in_progress or already_handled, and each transition is logged once.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, MutableMapping
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import structlog

import flow
from flow import AuthMethod, Client
from tests import canary
from tests.crash.test_crash import TokenEndpoint


@pytest.fixture(scope="module")
def token_endpoint() -> Iterator[TokenEndpoint]:
    endpoint = TokenEndpoint()
    yield endpoint
    endpoint.close()


def resume(url: str, callback: str, start: Barrier, results: Queue[Any]) -> None:
    """One process: resume the callback and report its answer and its events."""
    events: list[dict[str, Any]] = []

    def keep(
        logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        events.append(dict(event))
        raise structlog.DropEvent

    structlog.configure(processors=[keep])
    store = flow.open_store(url)
    with flow.Driver(store) as driver:
        start.wait(timeout=60)
        outcome: str
        try:
            outcome = driver.resume(callback).status
        except flow.FlowError as error:
            outcome = f"error:{error.reason}"
    store.close()
    results.put((outcome, events))


@pytest.mark.parametrize("processes", [2, 4])
def test_one_process_wins_the_callback_and_the_code_goes_out_once(
    store_url: str, token_endpoint: TokenEndpoint, processes: int
) -> None:
    store = flow.open_store(store_url)
    with flow.Driver(store) as driver:
        server = flow.explicit_metadata(
            issuer="http://127.0.0.1:9",
            authorization_endpoint="http://127.0.0.1:9/authorize",
            token_endpoint=token_endpoint.url,
        )
        started = driver.start(
            Client("race", "http://127.0.0.1:9/cb", AuthMethod.NONE), server
        )
    state = parse_qs(urlsplit(started.authorization_url).query)["state"][0]
    code = canary.canary("race-code")
    canary.register(state)
    callback = f"http://127.0.0.1:9/cb?code={code}&state={state}"

    context = multiprocessing.get_context("spawn")
    start = context.Barrier(processes)
    results: Queue[Any] = context.Queue()
    workers = [
        context.Process(target=resume, args=(store_url, callback, start, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    answers = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)

    final = store.load(started.flow_id)
    store.close()
    outcomes = [outcome for outcome, _ in answers]
    logged = [
        event["version"]
        for _, events in answers
        for event in events
        if event["event"] == "flow.transition"
    ]
    for _, events in answers:
        canary.CAPTURED.extend(repr(event) for event in events)
    assert token_endpoint.codes.count(code) == 1
    assert final.state == "api_ready"
    assert outcomes.count("completed") == 1, outcomes
    assert set(outcomes) <= {"completed", "in_progress", "already_handled"}
    assert sorted(logged) == [2, 3, 4, 5]  # one event per transition after start
