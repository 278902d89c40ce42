"""Refresh, revocation, cancellation and httpx.Auth, through httpx.MockTransport."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from flow import AuthMethod, Driver, SQLiteStore
from flow.drivers import AsyncDriver
from flow.drivers.effects import Effect, Program, Send
from flow.errors import (
    FlowNotReady,
    ReauthRequired,
    ServerError,
    TransportError,
)
from flow.protocol import explicit_metadata
from flow.record import ServerMetadata
from tests import canary
from tests.unit.flowkit import (
    ISSUER,
    Clock,
    callback_for,
    confidential_client,
    engine,
    json_response,
)

API = "https://api.test/me"


@dataclass
class Provider:
    """Token, revocation and API endpoints with rotating refresh tokens."""

    rotate: bool = True
    refresh_answer: httpx.Response | None = None
    refresh_error: type[httpx.TransportError] | None = None
    grants: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    api_calls: list[httpx.Request] = field(default_factory=list)
    api_bearers: list[str] = field(default_factory=list)
    valid: set[str] = field(default_factory=set)
    refresh_tokens: set[str] = field(default_factory=set)
    server: ServerMetadata = field(
        default_factory=lambda: explicit_metadata(
            issuer=ISSUER,
            authorization_endpoint=f"{ISSUER}/authorize",
            token_endpoint=f"{ISSUER}/token",
            revocation_endpoint=f"{ISSUER}/revoke",
            iss_parameter_supported=True,
        )
    )
    lock: threading.Lock = field(default_factory=threading.Lock)

    def tokens(self) -> dict[str, object]:
        access, refresh = canary.canary("at"), canary.canary("rt")
        self.valid.add(access)
        self.refresh_tokens.add(refresh)
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 600,
            "refresh_token": refresh,
        }

    def handler(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            return self._handle(request)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if request.url.path == "/token":
            self.grants.append(form["grant_type"])
            if form["grant_type"] == "authorization_code":
                return json_response(200, self.tokens())
            if self.refresh_error is not None:
                raise self.refresh_error("boom", request=request)
            if self.refresh_answer is not None:
                return self.refresh_answer
            if form["refresh_token"] not in self.refresh_tokens:
                return json_response(400, {"error": "invalid_grant"})
            body = self.tokens()
            if not self.rotate:
                self.refresh_tokens.discard(str(body.pop("refresh_token")))
            else:
                self.refresh_tokens.discard(form["refresh_token"])
            return json_response(200, body)
        if request.url.path == "/revoke":
            self.revoked.append(form["token_type_hint"])
            self.valid.discard(form["token"])
            self.refresh_tokens.discard(form["token"])
            return httpx.Response(200)
        if request.url.host == "api.test":
            self.api_calls.append(request)
            bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
            self.api_bearers.append(bearer)
            if bearer in self.valid:
                return json_response(200, {"sub": "alice"})
            return httpx.Response(401)
        return httpx.Response(404)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def provider() -> Provider:
    return Provider()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "flows.db"


def driver_for(db: Path, provider: Provider, clock: Clock) -> Driver:
    http = httpx.Client(transport=provider.transport())
    return Driver(SQLiteStore(db), engine=engine(clock), http=http)


def finished_flow(driver: Driver, provider: Provider) -> str:
    started = driver.start(
        confidential_client(AuthMethod.CLIENT_SECRET_POST),
        provider.server,
        client_secret=canary.canary("secret"),
    )
    driver.resume(callback_for(started))
    return started.flow_id


def triggers(driver: Driver, flow_id: str) -> list[str]:
    return [step.trigger for step in driver.get(flow_id).history[5:]]


# Refresh -----------------------------------------------------------------------------


def test_fresh_token_is_used_without_any_request(
    db: Path, provider: Provider, clock: Clock
) -> None:
    driver = driver_for(db, provider, clock)
    flow_id = finished_flow(driver, provider)

    token = driver.access_token(flow_id)

    assert token == driver.get(flow_id).secrets.access_token
    assert provider.grants == ["authorization_code"]


def test_token_near_expiry_is_refreshed_and_the_rotated_token_replaces_the_old(
    db: Path, provider: Provider, clock: Clock
) -> None:
    driver = driver_for(db, provider, clock)
    flow_id = finished_flow(driver, provider)
    before = driver.get(flow_id).secrets
    clock.advance(seconds=580)  # within the 30 s leeway of a 600 s token

    token = driver.access_token(flow_id)

    after = driver.get(flow_id)
    assert provider.grants == ["authorization_code", "refresh_token"]
    assert token != before.access_token
    assert after.secrets.refresh_token not in (None, before.refresh_token)
    assert triggers(driver, flow_id) == ["begin_refresh", "complete_refresh"]
    assert after.history[-1].detail == {"rotated": True}


def test_refresh_without_rotation_keeps_the_refresh_token(
    db: Path, provider: Provider, clock: Clock
) -> None:
    provider.rotate = False
    driver = driver_for(db, provider, clock)
    flow_id = finished_flow(driver, provider)
    before = driver.get(flow_id).secrets.refresh_token

    driver.refresh(flow_id)

    assert driver.get(flow_id).secrets.refresh_token == before


def test_invalid_grant_requires_a_new_login_and_is_never_retried(
    db: Path, provider: Provider, clock: Clock
) -> None:
    provider.refresh_answer = json_response(400, {"error": "invalid_grant"})
    driver = driver_for(db, provider, clock)
    flow_id = finished_flow(driver, provider)

    with pytest.raises(ReauthRequired) as first:
        driver.refresh(flow_id)
    with pytest.raises(ReauthRequired):
        driver.access_token(flow_id)

    record = driver.get(flow_id)
    assert (record.state, record.reason, first.value.cause) == (
        "reauth_required",
        "invalid_grant",
        "invalid_grant",
    )
    assert (record.secrets.access_token, record.secrets.refresh_token) == (None, None)
    assert provider.grants == ["authorization_code", "refresh_token"]


def test_server_error_on_refresh_keeps_the_credential(
    db: Path, provider: Provider, clock: Clock
) -> None:
    provider.refresh_answer = json_response(500, {"error": "server_error"})
    driver = driver_for(db, provider, clock)
    flow_id = finished_flow(driver, provider)

    with pytest.raises(ServerError):
        driver.refresh(flow_id)

    record = driver.get(flow_id)
    assert (record.state, triggers(driver, flow_id)) == (
        "api_ready",
        ["begin_refresh", "abort_refresh"],
    )
    assert record.secrets.refresh_token is not None


def test_refresh_lost_in_transit_is_not_sent_again(
    db: Path, provider: Provider, clock: Clock
) -> None:
    provider.refresh_error = httpx.ReadTimeout
    driver = driver_for(db, provider, clock)
    flow_id = finished_flow(driver, provider)

    with pytest.raises(ReauthRequired) as caught:
        driver.refresh(flow_id)

    assert caught.value.cause == "refresh_indeterminate"
    assert driver.get(flow_id).state == "reauth_required"


def test_refresh_that_never_connected_keeps_the_credential(
    db: Path, provider: Provider, clock: Clock
) -> None:
    provider.refresh_error = httpx.ConnectError
    driver = driver_for(db, provider, clock)
    flow_id = finished_flow(driver, provider)

    with pytest.raises(TransportError):
        driver.refresh(flow_id)

    assert driver.get(flow_id).state == "api_ready"


def test_expired_token_without_refresh_token_lapses(
    db: Path, provider: Provider, clock: Clock
) -> None:
    driver = driver_for(db, provider, clock)
    provider.tokens = lambda: {  # type: ignore[method-assign]
        "access_token": canary.canary("at"),
        "token_type": "Bearer",
        "expires_in": 60,
    }
    flow_id = finished_flow(driver, provider)
    clock.advance(minutes=2)

    with pytest.raises(ReauthRequired) as caught:
        driver.access_token(flow_id)

    assert caught.value.cause == "access_token_expired"
    assert triggers(driver, flow_id) == ["lapse"]


def test_concurrent_callers_in_one_process_cause_one_refresh(
    db: Path, provider: Provider, clock: Clock
) -> None:
    driver = driver_for(db, provider, clock)
    flow_id = finished_flow(driver, provider)
    clock.advance(minutes=20)
    barrier = threading.Barrier(8)
    tokens: list[str] = []

    def call() -> None:
        barrier.wait()
        tokens.append(driver.access_token(flow_id))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert provider.grants.count("refresh_token") == 1
    assert (len(set(tokens)), len(tokens)) == (1, 8)


def test_callers_in_separate_drivers_share_one_refresh_through_the_store(
    db: Path, provider: Provider, clock: Clock
) -> None:
    flow_id = finished_flow(driver_for(db, provider, clock), provider)
    clock.advance(minutes=20)
    drivers = [driver_for(db, provider, clock) for _ in range(4)]
    barrier = threading.Barrier(len(drivers))
    tokens: list[str] = []

    def call(driver: Driver) -> None:
        barrier.wait()
        tokens.append(driver.access_token(flow_id))

    threads = [threading.Thread(target=call, args=(d,)) for d in drivers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert provider.grants.count("refresh_token") == 1
    assert (len(set(tokens)), len(tokens)) == (1, 4)


def test_refresh_abandoned_mid_flight_is_never_sent_again(
    db: Path, provider: Provider, clock: Clock
) -> None:
    crashed = driver_for(db, provider, clock)
    flow_id = finished_flow(crashed, provider)
    program = crashed.engine.access(flow_id, rejected=crashed.access_token(flow_id))
    value: object = None
    while not isinstance(effect := program.send(value), Send):
        value = crashed._run(_once(effect))
    program.close()  # the process died with the refresh committed, not sent

    clock.advance(minutes=3)
    with pytest.raises(ReauthRequired) as caught:
        driver_for(db, provider, clock).access_token(flow_id)

    assert caught.value.cause == "refresh_indeterminate"
    assert provider.grants == ["authorization_code"]


def _once(effect: Effect) -> Program[object]:
    return (yield effect)


def test_flow_that_is_not_finished_has_no_credential(
    db: Path, provider: Provider, clock: Clock
) -> None:
    driver = driver_for(db, provider, clock)
    started = driver.start(
        confidential_client(), provider.server, client_secret=canary.canary("s")
    )

    with pytest.raises(FlowNotReady):
        driver.access_token(started.flow_id)


# httpx.Auth -----------------------------------------------------------------------


def test_auth_sends_the_token_in_the_header_and_retries_once_after_401(
    db: Path, provider: Provider, clock: Clock
) -> None:
    driver = driver_for(db, provider, clock)
    flow_id = finished_flow(driver, provider)
    provider.valid.clear()  # the API forgets the token: the next call gets 401

    with httpx.Client(transport=provider.transport(), auth=driver.auth(flow_id)) as api:
        response = api.get(API)

    first, second = provider.api_bearers
    assert response.status_code == 200
    assert provider.grants.count("refresh_token") == 1
    assert (first != second, second == driver.get(flow_id).secrets.access_token) == (
        True,
        True,
    )
    assert provider.api_calls[-1].url.query == b""


def test_auth_gives_up_after_one_refresh(
    db: Path, provider: Provider, clock: Clock
) -> None:
    driver = driver_for(db, provider, clock)
    flow_id = finished_flow(driver, provider)

    def refuse_all(request: httpx.Request) -> httpx.Response:
        provider.api_calls.append(request)
        return httpx.Response(401)

    transport = httpx.MockTransport(refuse_all)
    with httpx.Client(transport=transport, auth=driver.auth(flow_id)) as api:
        response = api.get(API)

    assert response.status_code == 401
    assert provider.grants.count("refresh_token") == 1
    assert len(provider.api_calls) == 2


def test_async_auth_refreshes_once_for_concurrent_requests(
    tmp_path: Path, provider: Provider, clock: Clock
) -> None:
    async def scenario() -> list[int]:
        http = httpx.AsyncClient(transport=provider.transport())
        driver = AsyncDriver(
            SQLiteStore(tmp_path / "a.db"), engine=engine(clock), http=http
        )
        started = await driver.start(
            confidential_client(), provider.server, client_secret=canary.canary("s")
        )
        await driver.resume(callback_for(started))
        clock.advance(minutes=20)
        auth = driver.auth(started.flow_id)
        async with httpx.AsyncClient(transport=provider.transport(), auth=auth) as api:
            responses = await asyncio.gather(*(api.get(API) for _ in range(10)))
        await driver.aclose()
        return [r.status_code for r in responses]

    assert asyncio.run(scenario()) == [200] * 10
    assert provider.grants.count("refresh_token") == 1


# Revocation and cancellation ---------------------------------------------------------


def test_revoke_calls_the_endpoint_and_erases_the_tokens(
    db: Path, provider: Provider, clock: Clock
) -> None:
    driver = driver_for(db, provider, clock)
    flow_id = finished_flow(driver, provider)

    record = driver.revoke(flow_id)
    again = driver.revoke(flow_id)

    assert provider.revoked == ["refresh_token", "access_token"]
    assert (record.state, again.state) == ("revoked", "revoked")
    assert (record.secrets.access_token, record.secrets.refresh_token) == (None, None)
    assert record.history[-1].detail == {"at_provider": True}
    with pytest.raises(FlowNotReady):
        driver.access_token(flow_id)


def test_revoke_without_an_endpoint_only_erases(
    db: Path, provider: Provider, clock: Clock
) -> None:
    provider.server = explicit_metadata(
        issuer=ISSUER,
        authorization_endpoint=f"{ISSUER}/authorize",
        token_endpoint=f"{ISSUER}/token",
        iss_parameter_supported=True,
    )
    driver = driver_for(db, provider, clock)
    flow_id = finished_flow(driver, provider)

    record = driver.revoke(flow_id)

    assert (record.state, provider.revoked) == ("revoked", [])
    assert record.history[-1].detail == {"at_provider": False}


def test_cancel_ends_a_waiting_flow_and_leaves_a_finished_one(
    db: Path, provider: Provider, clock: Clock
) -> None:
    driver = driver_for(db, provider, clock)
    waiting = driver.start(
        confidential_client(), provider.server, client_secret=canary.canary("s")
    )
    finished = finished_flow(driver, provider)

    assert driver.cancel(waiting.flow_id).state == "cancelled"
    assert driver.cancel(finished).state == "api_ready"
    assert driver.get(waiting.flow_id).secrets.code_verifier is None


def test_revocation_and_cancellation_are_logged_as_ended_not_failed(
    db: Path, provider: Provider, clock: Clock, emitted: Callable[[], list[Any]]
) -> None:
    driver = driver_for(db, provider, clock)
    waiting = driver.start(
        confidential_client(), provider.server, client_secret=canary.canary("s")
    )
    finished = finished_flow(driver, provider)

    driver.cancel(waiting.flow_id)
    driver.revoke(finished)

    ends = [
        (e["event"], e.get("state"))
        for e in emitted()
        if e["event"] in ("flow.ended", "flow.failed")
    ]
    assert ends == [("flow.ended", "cancelled"), ("flow.ended", "revoked")]
