"""flow against the real authorization server (oidc-provider), end to end."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

import flow
from flow import AuthMethod, Client
from flow.errors import AccessDenied, FlowNotFound, IssuerMismatch, MalformedResponse
from tests import canary
from tests.e2e.harness import (
    CONFIDENTIAL_CLIENT_ID,
    CONFIDENTIAL_CLIENT_SECRET,
    NATIVE_REDIRECT_URI,
    PUBLIC_CLIENT_ID,
    WEB_REDIRECT_URI,
    AuthServer,
    Browser,
)

pytestmark = pytest.mark.e2e

canary.register(CONFIDENTIAL_CLIENT_SECRET)
SCOPES = ["openid", "profile", "offline_access"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[flow.SQLiteStore]:
    store = flow.SQLiteStore(tmp_path / "flows.db")
    yield store
    store.close()


@pytest.fixture
def browser() -> Iterator[Browser]:
    with Browser() as user_agent:
        yield user_agent


def confidential(method: AuthMethod) -> Client:
    return Client(CONFIDENTIAL_CLIENT_ID, WEB_REDIRECT_URI, method)


def public(port: int = 53124) -> Client:
    redirect = NATIVE_REDIRECT_URI.replace("127.0.0.1", f"127.0.0.1:{port}")
    return Client(PUBLIC_CLIENT_ID, redirect, AuthMethod.NONE)


def login(browser: Browser, started: flow.Started, *, consent: bool = True) -> str:
    with canary.playing_the_user():
        callback = browser.login(started.authorization_url, consent=consent)
    params = parse_qs(urlsplit(callback).query)
    canary.register(*params.get("code", []), *params.get("state", []))
    return callback


def userinfo(server: AuthServer, access_token: str) -> httpx.Response:
    with httpx.Client(trust_env=False) as http:
        document = http.get(f"{server.issuer}/.well-known/openid-configuration").json()
        return http.get(
            document["userinfo_endpoint"],
            headers={"Authorization": f"Bearer {access_token}"},
        )


def tokens_of(record: flow.FlowRecord) -> str:
    canary.register(record.secrets.access_token, record.secrets.refresh_token)
    assert record.secrets.access_token is not None
    return record.secrets.access_token


@pytest.mark.parametrize(
    "method", [AuthMethod.CLIENT_SECRET_BASIC, AuthMethod.CLIENT_SECRET_POST]
)
def test_confidential_client_reaches_api_access(
    auth_server: AuthServer,
    store: flow.SQLiteStore,
    browser: Browser,
    method: AuthMethod,
) -> None:
    with flow.Driver(store) as driver:
        started = driver.start(
            confidential(method),
            auth_server.issuer,
            client_secret=CONFIDENTIAL_CLIENT_SECRET,
            scopes=SCOPES,
        )
        outcome = driver.resume(login(browser, started))

    record = store.load(started.flow_id)
    assert (outcome.status, outcome.state) == ("completed", "api_ready")
    assert record.secrets.refresh_token is not None
    assert userinfo(auth_server, tokens_of(record)).json()["sub"] == "alice"


def test_public_client_with_pkce_reaches_api_access(
    auth_server: AuthServer, store: flow.SQLiteStore, browser: Browser
) -> None:
    with flow.Driver(store) as driver:
        started = driver.start(public(), auth_server.issuer, scopes=SCOPES)
        outcome = driver.resume(login(browser, started))

    record = store.load(started.flow_id)
    assert outcome.state == "api_ready"
    assert userinfo(auth_server, tokens_of(record)).status_code == 200


def test_flow_started_by_one_driver_is_finished_by_a_new_one(
    auth_server: AuthServer, tmp_path: Path, browser: Browser
) -> None:
    path = tmp_path / "shared.db"
    first_store = flow.SQLiteStore(path)
    with flow.Driver(first_store) as first:
        started = first.start(public(), auth_server.issuer, scopes=SCOPES)
    first_store.close()
    callback = login(browser, started)

    # A new store and driver over the same file, as a second process would have.
    second_store = flow.SQLiteStore(path)
    with flow.Driver(second_store) as second:
        outcome = second.resume(callback)
    record = second_store.load(started.flow_id)
    second_store.close()

    assert (outcome.flow_id, outcome.state) == (started.flow_id, "api_ready")
    assert userinfo(auth_server, tokens_of(record)).status_code == 200


def test_async_driver_reaches_api_access(
    auth_server: AuthServer, store: flow.SQLiteStore, browser: Browser
) -> None:
    async def scenario() -> flow.Outcome:
        async with flow.AsyncDriver(store) as driver:
            started = await driver.start(public(), auth_server.issuer, scopes=SCOPES)
            callback = await asyncio.to_thread(login, browser, started)
            return await driver.resume(callback)

    outcome = asyncio.run(scenario())

    assert outcome.state == "api_ready"
    assert userinfo(auth_server, tokens_of(outcome.record)).status_code == 200


def test_replayed_callback_sends_nothing_and_the_tokens_keep_working(
    auth_server: AuthServer, store: flow.SQLiteStore, browser: Browser
) -> None:
    # oidc-provider revokes every token issued from a code that is redeemed twice:
    # if flow sent the code again, the userinfo call below would fail.
    with flow.Driver(store) as driver:
        started = driver.start(public(), auth_server.issuer, scopes=SCOPES)
        callback = login(browser, started)
        driver.resume(callback)
        replay = driver.resume(callback)

    record = store.load(started.flow_id)
    assert (replay.status, replay.state) == ("already_handled", "api_ready")
    assert userinfo(auth_server, tokens_of(record)).status_code == 200


def test_forged_state_is_refused(
    auth_server: AuthServer, store: flow.SQLiteStore, browser: Browser
) -> None:
    with flow.Driver(store) as driver:
        started = driver.start(public(), auth_server.issuer, scopes=SCOPES)
        callback = login(browser, started)
        query = parse_qs(urlsplit(callback).query)
        forged = callback.replace(query["state"][0], "forged-by-an-attacker")

        with pytest.raises(FlowNotFound) as caught:
            driver.resume(forged)
        outcome = driver.resume(callback)

    canary.record_text(caught.value)
    assert outcome.state == "api_ready"


def test_wrong_issuer_in_the_callback_fails_the_flow(
    auth_server: AuthServer, store: flow.SQLiteStore, browser: Browser
) -> None:
    with flow.Driver(store) as driver:
        started = driver.start(public(), auth_server.issuer, scopes=SCOPES)
        callback = login(browser, started)
        query = parse_qs(urlsplit(callback).query)
        mixed_up = callback.replace(
            f"iss={query['iss'][0].replace(':', '%3A').replace('/', '%2F')}",
            "iss=https%3A%2F%2Fattacker.example",
        )

        with pytest.raises(IssuerMismatch) as caught:
            driver.resume(mixed_up)

    canary.record_text(caught.value)
    record = store.load(started.flow_id)
    assert (record.state, record.reason) == ("failed", "iss_mismatch")


def test_user_who_denies_consent_ends_the_flow_as_denied(
    auth_server: AuthServer, store: flow.SQLiteStore, browser: Browser
) -> None:
    with flow.Driver(store) as driver:
        started = driver.start(public(), auth_server.issuer, scopes=SCOPES)
        callback = login(browser, started, consent=False)

        with pytest.raises(AccessDenied) as caught:
            driver.resume(callback)

    canary.record_text(caught.value)
    assert store.load(started.flow_id).state == "denied"


class _Garbage(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = b"<html><body>Service temporarily broken</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def test_token_endpoint_that_returns_garbage_fails_the_flow(
    auth_server: AuthServer, store: flow.SQLiteStore, browser: Browser
) -> None:
    garbage = ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    threading.Thread(target=garbage.serve_forever, daemon=True).start()
    try:
        with flow.Driver(store) as driver:
            real = driver.discover(auth_server.issuer)
            broken = flow.ServerMetadata(
                issuer=real.issuer,
                authorization_endpoint=real.authorization_endpoint,
                token_endpoint=f"http://127.0.0.1:{garbage.server_port}/token",
                iss_parameter_supported=True,
            )
            started = driver.start(public(), broken, scopes=SCOPES)
            with pytest.raises(MalformedResponse) as caught:
                driver.resume(login(browser, started))
    finally:
        garbage.shutdown()
        garbage.server_close()

    canary.record_text(caught.value)
    record = store.load(started.flow_id)
    assert (record.state, record.reason) == ("failed", "malformed_token_response")


def test_generic_openid_connect_provider_is_filled_by_discovery(
    auth_server: AuthServer, store: flow.SQLiteStore, browser: Browser
) -> None:
    with flow.Driver(store) as driver:
        started = driver.start(
            public(),
            provider="oidc",
            params={"issuer": auth_server.issuer},
        )
        outcome = driver.resume(login(browser, started))

    record = store.load(started.flow_id)
    scopes = parse_qs(urlsplit(started.authorization_url).query)["scope"][0].split()
    assert (record.provider, outcome.state) == ("oidc", "api_ready")
    assert scopes == ["openid", "profile", "email", "offline_access"]
    assert record.server.iss_parameter_supported is True
    assert userinfo(auth_server, tokens_of(record)).status_code == 200
