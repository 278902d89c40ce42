"""The libraries people use today, driven the way their documentation shows.

Both are benchmark dependencies only (``benchmarks/requirements.txt``); when one is
not installed its rows are skipped with the reason. They are imported through
:mod:`importlib`, so this module type-checks without them (their attributes are
``Any``).

Both get the most favourable set-up their APIs allow, so that flow's ratios are not
flattered: one client object reused for every flow, the mock transport plugged in
where the library takes a transport, and no SSL context built per call.
"""

from __future__ import annotations

import importlib
import secrets
import warnings
from types import ModuleType, TracebackType
from typing import Any

import httpx

from .implementations import AsyncFlow, Pending, SyncFlow, check_callback, s256
from .mockserver import (
    AUTHORIZE_URL,
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    SCOPES,
    TOKEN_URL,
    TokenEndpoint,
)

AUTHLIB = "authlib"
HTTPX_OAUTH = "httpx-oauth"

_MODULES = {
    AUTHLIB: "authlib.integrations.httpx_client",
    HTTPX_OAUTH: "httpx_oauth.oauth2",
}


def _load(name: str) -> ModuleType:
    with warnings.catch_warnings():
        # authlib 1.9 warns on import that it prefers a fork of httpx; the
        # benchmark measures the httpx integration people run today. Its
        # deprecation module installs an "always" filter when imported, so it is
        # imported first and the "ignore" goes in front of it.
        if name == AUTHLIB:
            importlib.import_module("authlib.deprecate")
        warnings.simplefilter("ignore")
        return importlib.import_module(_MODULES[name])


def missing(name: str) -> str | None:
    """Why peer ``name`` cannot run here, or ``None`` when it can."""
    try:
        _load(name)
    except ImportError as exc:
        return (
            f"{name} is not installed ({exc.name}); "
            "pip install -r benchmarks/requirements.txt"
        )
    return None


class Authlib(SyncFlow):
    """authlib's ``OAuth2Client`` for httpx (sync).

    ``create_authorization_url`` with a verifier adds the S256 challenge;
    ``fetch_token`` with ``authorization_response`` parses the callback and checks
    its ``state`` against the one given (authlib raises ``MismatchingStateException``).
    """

    name = AUTHLIB

    def __init__(self, endpoint: TokenEndpoint) -> None:
        super().__init__(endpoint)
        module = _load(AUTHLIB)
        self.security: Any = importlib.import_module("authlib.common.security")
        self.client: Any = module.OAuth2Client(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106
            scope=" ".join(SCOPES),
            redirect_uri=REDIRECT_URI,
            code_challenge_method="S256",
            transport=endpoint.transport(),
        )

    def authorize(self) -> tuple[str, Pending]:
        verifier = self.security.generate_token(48)
        url, state = self.client.create_authorization_url(
            AUTHORIZE_URL, code_verifier=verifier
        )
        return url, (state, verifier)

    def complete(self, pending: Pending, callback: str) -> str:
        state, verifier = pending
        token = self.client.fetch_token(
            TOKEN_URL,
            authorization_response=callback,
            code_verifier=verifier,
            state=state,
        )
        access_token: str = token["access_token"]
        return access_token

    def close(self) -> None:
        self.client.close()


class _Borrowed:
    """An async context manager that lends a client without closing it."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def __aenter__(self) -> httpx.AsyncClient:
        return self.client

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class HttpxOAuth(AsyncFlow):
    """httpx-oauth's generic ``OAuth2`` client (async only).

    It takes a precomputed PKCE challenge and does not check ``state``: the
    application does both, as its documentation leaves them to the caller. It
    makes a new ``AsyncClient`` per token request by default; here
    ``get_httpx_client`` lends one shared client instead (its documented hook),
    which is cheaper for it, not dearer.
    """

    name = HTTPX_OAUTH

    def __init__(self, endpoint: TokenEndpoint) -> None:
        super().__init__(endpoint)
        module = _load(HTTPX_OAUTH)
        self.http = httpx.AsyncClient(transport=endpoint.transport())
        self.client: Any = module.OAuth2(
            CLIENT_ID,
            CLIENT_SECRET,
            AUTHORIZE_URL,
            TOKEN_URL,
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106
        )
        self.client.get_httpx_client = lambda: _Borrowed(self.http)

    async def authorize_async(self) -> tuple[str, Pending]:
        state = secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(32)
        url = await self.client.get_authorization_url(
            REDIRECT_URI,
            state=state,
            scope=list(SCOPES),
            code_challenge=s256(verifier),
            code_challenge_method="S256",
        )
        return url, (state, verifier)

    async def complete_async(self, pending: Pending, callback: str) -> str:
        state, verifier = pending
        code = check_callback(callback, state)
        token = await self.client.get_access_token(
            code, REDIRECT_URI, code_verifier=verifier
        )
        access_token: str = token["access_token"]
        return access_token

    def close(self) -> None:
        self.loop.run_until_complete(self.http.aclose())
        super().close()


PEERS: dict[str, type[SyncFlow]] = {AUTHLIB: Authlib, HTTPX_OAUTH: HttpxOAuth}
