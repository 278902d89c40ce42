"""Scenario: complete flows against the real authorization server (oidc-provider).

The server runs on 127.0.0.1 (``tests/e2e/harness.py``), and a headless browser
(:class:`~tests.e2e.harness.Browser`) logs in and consents for every flow. Two
figures per contender:

* flows per second, wall clock, with the browser and the server in the loop: what
  one client thread gets through end to end;
* client CPU per flow (``time.process_time``), counting only the client's own
  halves, the start and the resume, and not the browser's requests, which run in
  this process too. The server is another process, so its CPU is not counted.
  A collection runs (untimed) before each half, so the browser's garbage (parsed
  pages, cookies) is not collected on the clock of whichever client allocates
  next.

The contenders are flow with an SQLite store and bare httpx doing the same
requests by hand (PKCE, state and issuer checks, Basic authentication).
"""

from __future__ import annotations

import gc
import secrets
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx

import flow
from tests.e2e.harness import (
    CONFIDENTIAL_CLIENT_ID,
    CONFIDENTIAL_CLIENT_SECRET,
    WEB_REDIRECT_URI,
    AuthServer,
    AuthServerUnavailableError,
    Browser,
    start_auth_server,
)

from .implementations import s256
from .stats import Check, Result, Row

SCENARIO = "end to end (oidc-provider)"
FLOW = "flow + SQLiteStore"
BARE = "httpx by hand"
SCOPES = ("openid",)


@dataclass(frozen=True)
class Sizes:
    """Flows per contender (alternating), after one untimed flow each."""

    flows: int = 100


#: Runs the client's first half, then the browser, then the second half; returns
#: the client CPU seconds of the two halves.
Contender = Callable[[Browser], float]


def flow_contender(driver: flow.Driver, server: flow.ServerMetadata) -> Contender:
    """flow's driver: ``start``, the browser, ``resume``."""
    client = flow.Client(CONFIDENTIAL_CLIENT_ID, WEB_REDIRECT_URI)

    def one(browser: Browser) -> float:
        gc.collect()
        began = time.process_time()
        started = driver.start(
            client, server, client_secret=CONFIDENTIAL_CLIENT_SECRET, scopes=SCOPES
        )
        paused = time.process_time()
        callback = browser.login(started.authorization_url)
        gc.collect()
        resumed = time.process_time()
        outcome = driver.resume(callback)
        done = time.process_time()
        assert outcome.state == "api_ready", outcome.state
        return (paused - began) + (done - resumed)

    return one


def bare_contender(http: httpx.Client, server: flow.ServerMetadata) -> Contender:
    """The same requests written by hand with httpx."""
    auth = httpx.BasicAuth(CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET)

    def one(browser: Browser) -> float:
        gc.collect()
        began = time.process_time()
        state, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": CONFIDENTIAL_CLIENT_ID,
                "redirect_uri": WEB_REDIRECT_URI,
                "scope": " ".join(SCOPES),
                "state": state,
                "code_challenge": s256(verifier),
                "code_challenge_method": "S256",
            }
        )
        url = f"{server.authorization_endpoint}?{query}"
        paused = time.process_time()
        callback = browser.login(url)
        gc.collect()
        resumed = time.process_time()
        params = dict(httpx.URL(callback).params)
        if params.get("state") != state or params.get("iss") != server.issuer:
            raise ValueError("callback does not match the request")
        response = http.post(
            server.token_endpoint,
            data={
                "grant_type": "authorization_code",
                "code": params["code"],
                "redirect_uri": WEB_REDIRECT_URI,
                "code_verifier": verifier,
            },
            auth=auth,
            headers={"Accept": "application/json"},
        )
        response.raise_for_status()
        assert response.json()["access_token"]
        done = time.process_time()
        return (paused - began) + (done - resumed)

    return one


def unavailable() -> str | None:
    """Why the authorization server cannot run here, or ``None``."""
    try:
        start_auth_server().stop()
    except AuthServerUnavailableError as exc:
        return str(exc)
    return None


def run(workdir: Path, sizes: Sizes = Sizes()) -> Result:
    """Run the scenario, or skip it when Node.js or oidc-provider is missing."""
    try:
        auth_server = start_auth_server()
    except AuthServerUnavailableError as exc:
        return Result(skipped={SCENARIO: str(exc)})
    http = httpx.Client(trust_env=False)
    store = flow.SQLiteStore(workdir / "e2e.db")
    driver = flow.Driver(store, http=http)
    try:
        server = driver.discover(auth_server.issuer)
        contenders = {
            FLOW: flow_contender(driver, server),
            BARE: bare_contender(http, server),
        }
        cpu, wall = _alternate(contenders, sizes.flows)
    finally:
        driver.close()
        http.close()
        store.close()
        _stop(auth_server)
    return _summary(cpu, wall, sizes.flows)


def _alternate(
    contenders: dict[str, Contender], flows: int
) -> tuple[dict[str, list[float]], dict[str, float]]:
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    wall = dict.fromkeys(contenders, 0.0)
    for one in contenders.values():  # untimed: connections, discovery caches
        with Browser() as browser:
            one(browser)
    for _ in range(flows):
        for name, one in contenders.items():
            began = time.perf_counter()
            with Browser() as browser:
                cpu[name].append(one(browser))
            wall[name] += time.perf_counter() - began
    return cpu, wall


def _summary(cpu: dict[str, list[float]], wall: dict[str, float], flows: int) -> Result:
    result = Result()
    base = statistics.median(cpu[BARE])
    for name, seconds in cpu.items():
        median = statistics.median(seconds)
        result.rows.append(
            Row(
                SCENARIO,
                f"{name}: client CPU per flow",
                "us",
                median * 1e6,
                samples=flows,
                ratio=median / base if base else None,
                note="start + resume only; browser and server excluded",
            )
        )
        result.samples[f"{SCENARIO}/{name} cpu"] = [s for s in seconds if s > 0]
    for name, total in wall.items():
        result.rows.append(
            Row(
                SCENARIO,
                f"{name}: flows per second",
                "flows/s",
                flows / total,
                samples=flows,
                ratio=(flows / total) / (flows / wall[BARE]),
                note="wall clock, browser and server included",
            )
        )
    cpu_ratio = statistics.median(cpu[FLOW]) / base if base else float("nan")
    result.checks.append(
        Check("end to end: flow client CPU / by hand", cpu_ratio, "report", True)
    )
    return result


def _stop(server: AuthServer) -> None:
    tail = server.stderr_tail(200)
    server.stop()
    if "server_error" in tail:
        raise RuntimeError(f"the authorization server failed:\n{tail}")
