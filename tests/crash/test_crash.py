"""Proof under crashes: a child process is SIGKILLed at each point of a resume.

For an SQLite file and PostgreSQL. Afterwards an SQLite file passes
``PRAGMA integrity_check``, every transition the
child saw acknowledged is in the store, the token endpoint saw the code at most
once, and the flow either finishes when resumed again or ends failed with a reason.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

import flow
from flow import AuthMethod, Client
from flow.errors import FlowError
from tests import canary
from tests.stores.conftest import (  # noqa: F401 - fixtures used by name
    durable_store_url,
    pg_schema,
    postgres_url,
)

ROOT = Path(__file__).resolve().parents[2]


class TokenEndpoint:
    """A real token endpoint on 127.0.0.1 that counts each code it is sent."""

    def __init__(self) -> None:
        self.codes: list[str] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                form = parse_qs(self.rfile.read(length).decode())
                endpoint.codes.append(form["code"][0])
                body = json.dumps(
                    {
                        "access_token": canary.canary("crash-at"),
                        "token_type": "Bearer",
                        "expires_in": 3600,
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/token"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def token_endpoint() -> Iterator[TokenEndpoint]:
    endpoint = TokenEndpoint()
    yield endpoint
    endpoint.close()


def started_flow(url: str, token_url: str) -> tuple[str, str]:
    """A committed flow and the callback its browser would bring back."""
    server = flow.explicit_metadata(
        issuer="http://127.0.0.1:9",
        authorization_endpoint="http://127.0.0.1:9/authorize",
        token_endpoint=token_url,
    )
    store = flow.open_store(url)
    with flow.Driver(store) as driver:
        started = driver.start(
            Client("crash-client", "http://127.0.0.1:9/cb", AuthMethod.NONE), server
        )
    store.close()
    state = parse_qs(urlsplit(started.authorization_url).query)["state"][0]
    code = canary.canary("crash-code")
    canary.register(state)
    return started.flow_id, f"http://127.0.0.1:9/cb?code={code}&state={state}"


def run_child(url: str, callback: str, point: str, nth: int, seed: int) -> list[int]:
    done = subprocess.run(
        [
            sys.executable, "-m", "tests.crash.child",
            "--store", url, "--callback", callback,
            "--point", point, "--nth", str(nth), "--seed", str(seed),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    killed = done.returncode == -signal.SIGKILL
    finished = done.returncode == 0 and "done" in done.stdout
    assert killed or finished, done.stderr
    canary.record_text(done.stderr)
    return [
        int(line.split()[1]) for line in done.stdout.splitlines() if line[:3] == "ack"
    ]


#: Where the child dies, and what must follow: the final state and how many times
#: the code reached the token endpoint in all.
POINTS = {
    ("before_commit", 1): ("api_ready", 1),  # before receive_callback is written
    ("after_commit", 1): ("api_ready", 1),  # code_received committed, nothing sent
    ("before_commit", 2): ("api_ready", 1),  # before exchange_code is written
    ("after_commit", 2): ("failed", 0),  # exchanging committed, nothing sent
    ("before_http", 1): ("failed", 0),  # the request was about to leave
    ("after_http", 1): ("failed", 1),  # the server answered; nothing recorded
    ("before_commit", 3): ("failed", 1),  # the answer was about to be recorded
    ("after_commit", 3): ("api_ready", 1),  # token_issued committed
}


@pytest.fixture(params=["sqlite_file", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Fresh storage in each store a crash test covers."""
    return durable_store_url(request.param, request, tmp_path)


@pytest.mark.parametrize(
    ("point", "nth"), [*POINTS, *(("random", seed) for seed in range(6))]
)
def test_killed_resume_leaves_a_consistent_store_and_sends_the_code_once(
    store_url: str, token_endpoint: TokenEndpoint, point: str, nth: int
) -> None:
    flow_id, callback = started_flow(store_url, token_endpoint.url)
    code = parse_qs(urlsplit(callback).query)["code"][0]

    acked = run_child(store_url, callback, point, nth, seed=nth)

    if store_url.startswith("sqlite:///"):
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = flow.open_store(store_url)
    record = store.load(flow_id)
    # Every acknowledged transition is stored: one history entry per version.
    assert record.version >= max(acked, default=1)
    assert len(record.history) == record.version

    # A new process picks the flow up three minutes later, after the dead
    # process's exchange lease (two minutes) and within the flow's ten-minute TTL.
    later = datetime.now(UTC) + timedelta(minutes=3)
    engine = flow.Engine(clock=lambda: later)
    with flow.Driver(store, engine=engine) as driver:
        try:
            driver.resume(callback)
        except FlowError as error:
            canary.record_text(error)
        final = driver.get(flow_id)
    store.close()

    assert token_endpoint.codes.count(code) <= 1
    if (point, nth) in POINTS:
        assert (final.state, token_endpoint.codes.count(code)) == POINTS[point, nth]
    if final.state == "failed":
        assert final.reason in {"exchange_indeterminate"}
    else:
        assert final.state == "api_ready"
        assert token_endpoint.codes.count(code) == 1
