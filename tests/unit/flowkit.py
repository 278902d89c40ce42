"""Shared helpers for driver tests: a scripted authorization server and a clock."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from flow import (
    AuthMethod,
    Client,
    Engine,
    FlowRecord,
    ServerMetadata,
    TokenInfo,
    explicit_metadata,
)
from flow.drivers import Started
from flow.record import Secrets
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


@dataclass
class RotatingAS:
    """A token endpoint that rotates refresh tokens and counts refreshes per token.

    Like providers that detect reuse (RFC 9700 section 4.14.2), it answers a refresh
    token it already rotated, or never issued, with ``invalid_grant``. Serve it
    through ``httpx.MockTransport`` (:meth:`handler`) or over HTTP on 127.0.0.1
    (:class:`TokenServer`). Every token it issues is a registered canary.

    Attributes:
        refreshes: How many refresh requests came with each refresh token.
        answer: Answers a refresh request instead of the rules above, when set;
            gets the refresh token.
        gate: Held by each refresh request until as many are in flight.
        expires_in: The lifetime of the access tokens it issues, in seconds.
    """

    refreshes: Counter[str] = field(default_factory=Counter)
    answer: Callable[[str], tuple[int, dict[str, Any]]] | None = None
    gate: threading.Barrier | None = None
    expires_in: int = 600
    in_flight: int = 0
    most_in_flight: int = 0
    live: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def issue(self, *, refresh: bool = True) -> dict[str, Any]:
        """A fresh token response body; its refresh token becomes live."""
        body: dict[str, Any] = {
            "access_token": canary.canary("at"),
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }
        if refresh:
            body["refresh_token"] = canary.canary("rt")
            with self.lock:
                self.live.add(body["refresh_token"])
        return body

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The status and JSON body for one token request's form."""
        if form.get("grant_type") == "authorization_code":
            return 200, self.issue()
        presented = form.get("refresh_token", "")
        with self.lock:
            self.refreshes[presented] += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                self.gate.wait(timeout=10)
            if self.answer is not None:
                return self.answer(presented)
            with self.lock:
                if presented not in self.live:
                    return 400, {"error": "invalid_grant"}
                self.live.discard(presented)
            return 200, self.issue()
        finally:
            with self.lock:
                self.in_flight -= 1

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/token":
            return httpx.Response(404)
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        status, body = self.token(form)
        return json_response(status, body)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handler))

    def async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler))


class TokenServer:
    """A :class:`RotatingAS` served over HTTP on 127.0.0.1, in a thread.

    For processes that share one token endpoint: each opens the URL itself.
    """

    def __init__(self, endpoint: RotatingAS) -> None:
        self.endpoint = endpoint
        served = endpoint

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length).decode()
                form = {k: v[0] for k, v in parse_qs(raw).items()}
                status, body = (
                    served.token(form) if self.path == "/token" else (404, {})
                )
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reads the counts, not a request log."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def token_endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/token"

    def __enter__(self) -> TokenServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def credential_flow(
    flow_id: str,
    token_endpoint: str,
    expires_at: datetime,
    *,
    refresh_token: str | None,
) -> FlowRecord:
    """A finished flow in ``api_ready`` as a store would hold it, for a public
    client of the token endpoint given; its access token is a canary."""
    issued = expires_at - timedelta(hours=1)
    origin = token_endpoint.rsplit("/", 1)[0]
    return FlowRecord(
        id=flow_id,
        spec="authorization_code",
        spec_version=1,
        state="api_ready",
        version=5,
        provider="token-server",
        server=explicit_metadata(
            issuer=origin,
            authorization_endpoint=f"{origin}/authorize",
            token_endpoint=token_endpoint,
        ),
        client=Client("app-client", REDIRECT_URI, AuthMethod.NONE),
        scopes=("openid",),
        created_at=issued,
        updated_at=issued,
        expires_at=issued + timedelta(minutes=10),
        token=TokenInfo("Bearer", issued_at=issued, expires_at=expires_at),
        secrets=Secrets(access_token=canary.canary("at"), refresh_token=refresh_token),
    )
