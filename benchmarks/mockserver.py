"""A scripted authorization server and API behind ``httpx.MockTransport``.

Every implementation under test talks to the same handlers, so the server's share
of a measured flow is the same for all of them: one precomputed JSON answer per
token request, and a callback built by the same small function.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

ISSUER = "https://as.bench"
AUTHORIZE_URL = f"{ISSUER}/authorize"
TOKEN_URL = f"{ISSUER}/token"
API_URL = "https://api.bench/me"
REDIRECT_URI = "https://app.bench/callback"
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret-0123456789"  # noqa: S105 - a fixture, not a secret
SCOPES = ("openid", "profile")
CODE = "bench-code"
ACCESS_TOKEN = "bench-at"  # noqa: S105 - a fixture, not a secret

_JSON = {"content-type": "application/json"}


def token_body(access_token: str, refresh_token: str) -> bytes:
    """A successful token response (RFC 6749 section 5.1) as bytes."""
    return json.dumps(
        {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "refresh_token": refresh_token,
            "scope": " ".join(SCOPES),
        }
    ).encode()


def callback_for(authorization_url: str, *, state: str | None = None) -> str:
    """The redirect the server sends back for ``authorization_url``.

    It carries a code, the request's ``state`` (or ``state`` when given, to forge
    one) and ``iss`` (RFC 9207), as a real server would.
    """
    query = dict(parse_qsl(urlsplit(authorization_url).query))
    params = {"code": CODE, "state": state or query["state"], "iss": ISSUER}
    return f"{REDIRECT_URI}?{urlencode(params)}"


@dataclass
class TokenEndpoint:
    """Answers every token request with the same valid token, and counts them.

    The count is read after a run to prove each implementation sent exactly one
    token request per flow; the last form is kept for the PKCE check.
    """

    body: bytes = field(default_factory=lambda: token_body(ACCESS_TOKEN, "bench-rt"))
    requests: int = 0
    last_form: dict[str, str] = field(default_factory=dict)
    last_authorization: str | None = None
    keep_forms: bool = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        """The ``MockTransport`` handler (sync and async)."""
        if request.url.path != "/token":
            return httpx.Response(404)
        self.requests += 1
        if self.keep_forms:
            self.last_form = dict(parse_qsl(request.content.decode()))
            self.last_authorization = request.headers.get("authorization")
        return httpx.Response(200, content=self.body, headers=_JSON)

    def transport(self) -> httpx.MockTransport:
        """A transport that routes every request to :meth:`handle`."""
        return httpx.MockTransport(self.handle)


@dataclass
class RotatingServer:
    """A token endpoint that rotates tokens on refresh, and an API that checks them.

    Used by the refresh-under-contention scenario: the API answers 401 to any
    token but the latest, so a caller that skipped the refresh would be caught.
    """

    generation: int = 0
    refresh_requests: int = 0
    code_requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def access_token(self) -> str:
        """The access token the API accepts now."""
        return f"bench-at-{self.generation}"

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Token endpoint at ``/token``, API at ``/me``."""
        if request.url.path == "/token":
            grant = dict(parse_qsl(request.content.decode())).get("grant_type")
            with self._lock:
                if grant == "refresh_token":
                    self.refresh_requests += 1
                else:
                    self.code_requests += 1
                self.generation += 1
                body = token_body(self.access_token, f"bench-rt-{self.generation}")
            return httpx.Response(200, content=body, headers=_JSON)
        if request.url.path == "/me":
            expected = f"Bearer {self.access_token}"
            if request.headers.get("authorization") != expected:
                return httpx.Response(401)
            return httpx.Response(200, json={"sub": "bench-user"})
        return httpx.Response(404)

    def transport(self) -> httpx.MockTransport:
        """A transport that routes every request to :meth:`handle`."""
        return httpx.MockTransport(self.handle)
