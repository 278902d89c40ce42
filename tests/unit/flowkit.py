"""Shared helpers for driver tests: a scripted authorization server and a clock."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from flow import AuthMethod, Client, Engine, ServerMetadata, explicit_metadata
from flow.drivers import Started
from tests import canary

ISSUER = "https://as.test"
REDIRECT_URI = "https://app.test/callback"

Responder = Callable[[httpx.Request], httpx.Response]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class FakeAS:
    """A token endpoint behind ``httpx.MockTransport`` that counts what it gets.

    Every token it issues is a registered canary.
    """

    token_requests: list[httpx.Request] = field(default_factory=list)
    respond: Responder | None = None
    server: ServerMetadata = field(
        default_factory=lambda: explicit_metadata(
            issuer=ISSUER,
            authorization_endpoint=f"{ISSUER}/authorize",
            token_endpoint=f"{ISSUER}/token",
            iss_parameter_supported=True,
        )
    )
    access_token: str = field(default_factory=lambda: canary.canary("at"))
    refresh_token: str = field(default_factory=lambda: canary.canary("rt"))

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            self.token_requests.append(request)
            if self.respond is not None:
                return self.respond(request)
            return httpx.Response(
                200,
                json={
                    "access_token": self.access_token,
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "refresh_token": self.refresh_token,
                    "scope": "openid",
                },
            )
        return httpx.Response(404)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handler))

    def async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler))

    def token_form(self, index: int = 0) -> dict[str, list[str]]:
        return parse_qs(self.token_requests[index].content.decode())


def confidential_client(
    method: AuthMethod = AuthMethod.CLIENT_SECRET_BASIC,
    redirect_uri: str = REDIRECT_URI,
) -> Client:
    return Client("app-client", redirect_uri, method)


def engine(clock: Clock, **kwargs: Any) -> Engine:
    return Engine(clock=clock, **kwargs)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def callback_for(started: Started, **params: str | None) -> str:
    """The callback URL the server would send for ``started``, with overrides.

    The state value is registered as a canary; so is any code.
    """
    state = query_of(started.authorization_url)["state"]
    canary.register(state)
    values: dict[str, str | None] = {
        "code": canary.canary("code"),
        "state": state,
        "iss": ISSUER,
    }
    values.update(params)
    query = urlencode({k: v for k, v in values.items() if v is not None})
    return f"{REDIRECT_URI}?{query}"


def json_response(status: int, body: Any) -> httpx.Response:
    return httpx.Response(
        status, content=json.dumps(body), headers={"content-type": "application/json"}
    )
