"""Scenario: many threads call an API at once with an expired access token.

Each round, ``threads`` threads wait on a barrier and then send one request each
through ``httpx.Client(auth=driver.auth(flow_id))``; the token endpoint counts the
refresh requests it receives (target: exactly one per round). A second round with
the fresh token, under the same contention, gives the latency without a refresh;
the difference of the medians is what the refresh added.

The driver's clock is moved two hours on between rounds, so the token the last
round obtained has expired when the next one starts.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

import flow

from .mockserver import (
    API_URL,
    AUTHORIZE_URL,
    CLIENT_ID,
    CLIENT_SECRET,
    ISSUER,
    REDIRECT_URI,
    SCOPES,
    TOKEN_URL,
    RotatingServer,
    callback_for,
)
from .stats import Check, Result, Row, timing_row

SCENARIO = "refresh under contention"
IMPLEMENTATION = "flow + SQLiteStore"


@dataclass(frozen=True)
class Sizes:
    """Concurrent callers, and how many expired/fresh round pairs."""

    threads: int = 32
    rounds: int = 10


class Clock:
    """A clock the scenario moves by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def api_ready(driver: flow.Driver) -> str:
    """Run one flow to ``api_ready``; its id."""
    server = flow.explicit_metadata(
        issuer=ISSUER,
        authorization_endpoint=AUTHORIZE_URL,
        token_endpoint=TOKEN_URL,
        iss_parameter_supported=True,
    )
    client = flow.Client(CLIENT_ID, REDIRECT_URI)
    started = driver.start(client, server, client_secret=CLIENT_SECRET, scopes=SCOPES)
    return driver.resume(callback_for(started.authorization_url)).flow_id


def burst(
    driver: flow.Driver, flow_id: str, server: RotatingServer, n: int
) -> list[int]:
    """``n`` simultaneous API calls; each one's latency in nanoseconds."""
    barrier = threading.Barrier(n)
    durations: list[int] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def call() -> None:
        with httpx.Client(
            auth=driver.auth(flow_id), transport=server.transport()
        ) as api:
            barrier.wait()
            began = time.perf_counter_ns()
            try:
                api.get(API_URL).raise_for_status()
            except BaseException as exc:  # reported below, all at once
                with lock:
                    failures.append(exc)
                return
            elapsed = time.perf_counter_ns() - began
        with lock:
            durations.append(elapsed)

    threads = [threading.Thread(target=call) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} API calls failed") from failures[0]
    return durations


def run(workdir: Path, sizes: Sizes = Sizes()) -> Result:
    """Run the scenario.

    Returns:
        Latency rows with an expired and with a fresh token (ratio against the
        fresh one), token requests per round, and the exactly-one target.
    """
    server = RotatingServer()
    clock = Clock()
    store = flow.SQLiteStore(workdir / "refresh.db")
    http = httpx.Client(transport=server.transport())
    driver = flow.Driver(store, engine=flow.Engine(clock=clock), http=http)
    expired: list[int] = []
    fresh: list[int] = []
    per_round: list[int] = []
    try:
        flow_id = api_ready(driver)
        for _ in range(sizes.rounds):
            clock.now += timedelta(hours=2)
            before = server.refresh_requests
            expired.extend(burst(driver, flow_id, server, sizes.threads))
            per_round.append(server.refresh_requests - before)
            fresh.extend(burst(driver, flow_id, server, sizes.threads))
    finally:
        driver.close()
        http.close()
        store.close()

    fresh_row = timing_row(SCENARIO, f"{IMPLEMENTATION}, fresh token", fresh)
    expired_row = timing_row(
        SCENARIO,
        f"{IMPLEMENTATION}, expired token",
        expired,
        note=f"{sizes.threads} threads at once",
    )
    added = expired_row.median - fresh_row.median
    result = Result(
        rows=[
            replace(fresh_row, ratio=1.0),
            replace(
                expired_row,
                ratio=expired_row.median / fresh_row.median,
                note=f"{expired_row.note}; refresh added {added:.0f} us",
            ),
        ]
    )
    result.rows.append(
        Row(
            SCENARIO,
            "token requests per round",
            "requests",
            float(max(per_round)),
            samples=len(per_round),
            note=f"each round: {sorted(set(per_round))}",
        )
    )
    result.samples[f"{SCENARIO}/expired"] = [d / 1e9 for d in expired]
    result.samples[f"{SCENARIO}/fresh"] = [d / 1e9 for d in fresh]
    result.checks.append(
        Check(
            "token requests per round of concurrent expired calls",
            float(max(per_round)),
            "exactly 1",
            all(count == 1 for count in per_round),
        )
    )
    return result
