"""The authorization-code flow as each contender runs it: flow, and bare httpx.

An implementation has two halves, as a web application would: :meth:`authorize`
(build the authorization URL; the application keeps whatever it must between the
two requests) and :meth:`complete` (validate the callback, redeem the code, read the
token). Between them, :func:`~benchmarks.mockserver.callback_for` plays the browser
and the authorization server.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Coroutine
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

import flow

from .mockserver import (
    AUTHORIZE_URL,
    CLIENT_ID,
    CLIENT_SECRET,
    ISSUER,
    REDIRECT_URI,
    SCOPES,
    TOKEN_URL,
    TokenEndpoint,
    callback_for,
)

#: Whatever the application keeps between the two halves (state, verifier).
Pending = Any


class SyncFlow:
    """A contender whose two halves are plain calls.

    Args:
        endpoint: The token endpoint this contender talks to (its own, so that its
            requests can be counted).
    """

    name = "?"

    def __init__(self, endpoint: TokenEndpoint) -> None:
        self.endpoint = endpoint

    def authorize(self) -> tuple[str, Pending]:
        """Start a flow: the authorization URL, and what to keep until the callback."""
        raise NotImplementedError

    def complete(self, pending: Pending, callback: str) -> str:
        """Validate the callback, redeem the code and return the access token."""
        raise NotImplementedError

    def run(self, n: int) -> list[int]:
        """Run ``n`` complete flows; the duration of each, in nanoseconds."""
        clock = time.perf_counter_ns
        durations = []
        for _ in range(n):
            began = clock()
            url, pending = self.authorize()
            self.complete(pending, callback_for(url))
            durations.append(clock() - began)
        return durations

    def once(self, *, state: str | None = None) -> tuple[str, str]:
        """One flow, optionally with a forged callback ``state``: (URL, token)."""
        url, pending = self.authorize()
        return url, self.complete(pending, callback_for(url, state=state))

    def close(self) -> None:
        """Release clients and stores."""


class AsyncFlow(SyncFlow):
    """A contender whose halves are coroutines, run on one reused event loop.

    A batch is one coroutine that times each flow from inside the loop, so the
    cost of entering the loop (``run_until_complete``) is paid once per batch and
    not charged to the flows: an async application's loop is already running.
    """

    def __init__(self, endpoint: TokenEndpoint) -> None:
        super().__init__(endpoint)
        self.loop = asyncio.new_event_loop()

    async def authorize_async(self) -> tuple[str, Pending]:
        """See :meth:`SyncFlow.authorize`."""
        raise NotImplementedError

    async def complete_async(self, pending: Pending, callback: str) -> str:
        """See :meth:`SyncFlow.complete`."""
        raise NotImplementedError

    def _wait(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coroutine)

    def authorize(self) -> tuple[str, Pending]:
        result: tuple[str, Pending] = self._wait(self.authorize_async())
        return result

    def complete(self, pending: Pending, callback: str) -> str:
        token: str = self._wait(self.complete_async(pending, callback))
        return token

    def run(self, n: int) -> list[int]:
        durations: list[int] = self._wait(self._batch(n))
        return durations

    async def _batch(self, n: int) -> list[int]:
        clock = time.perf_counter_ns
        durations = []
        for _ in range(n):
            began = clock()
            url, pending = await self.authorize_async()
            await self.complete_async(pending, callback_for(url))
            durations.append(clock() - began)
        return durations

    def close(self) -> None:
        self.loop.close()


class FlowContender(SyncFlow):
    """flow's :class:`~flow.Driver` with a given store: start, then resume.

    Every transition is committed to the store before the next one, as in
    production; the callback finds its flow by ``state`` in the store.
    """

    def __init__(self, endpoint: TokenEndpoint, store: flow.Store, name: str) -> None:
        super().__init__(endpoint)
        self.name = name
        self.store = store
        self.http = httpx.Client(transport=endpoint.transport())
        self.driver = flow.Driver(store, http=self.http)
        self.client = flow.Client(
            CLIENT_ID, REDIRECT_URI, flow.AuthMethod.CLIENT_SECRET_BASIC
        )
        self.server = flow.explicit_metadata(
            issuer=ISSUER,
            authorization_endpoint=AUTHORIZE_URL,
            token_endpoint=TOKEN_URL,
            iss_parameter_supported=True,
        )

    def authorize(self) -> tuple[str, Pending]:
        started = self.driver.start(
            self.client, self.server, client_secret=CLIENT_SECRET, scopes=SCOPES
        )
        return started.authorization_url, None

    def complete(self, pending: Pending, callback: str) -> str:
        outcome = self.driver.resume(callback)
        token = outcome.record.secrets.access_token
        if outcome.status != "completed" or token is None:
            raise RuntimeError(f"flow ended {outcome.status} in {outcome.state}")
        return token

    def close(self) -> None:
        self.driver.close()
        self.http.close()
        self.store.close()


def s256(verifier: str) -> str:
    """The PKCE S256 challenge (RFC 7636 section 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def check_callback(callback: str, state: str) -> str:
    """What an application does by hand with a callback: the code, if it is ours.

    Raises:
        ValueError: The state or the issuer does not match.
    """
    params = dict(parse_qsl(urlsplit(callback).query))
    if not hmac.compare_digest(params.get("state", "").encode(), state.encode()):
        raise ValueError("state mismatch")
    if params.get("iss") != ISSUER:
        raise ValueError("issuer mismatch")
    return params["code"]


class BareHttpx(SyncFlow):
    """The floor: the same requests written by hand with httpx, persisting nothing."""

    name = "httpx (floor)"

    def __init__(self, endpoint: TokenEndpoint) -> None:
        super().__init__(endpoint)
        self.http = httpx.Client(transport=endpoint.transport())
        self.auth = httpx.BasicAuth(CLIENT_ID, CLIENT_SECRET)

    def authorize(self) -> tuple[str, Pending]:
        state = secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(32)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": CLIENT_ID,
                "redirect_uri": REDIRECT_URI,
                "scope": " ".join(SCOPES),
                "state": state,
                "code_challenge": s256(verifier),
                "code_challenge_method": "S256",
            }
        )
        return f"{AUTHORIZE_URL}?{query}", (state, verifier)

    def complete(self, pending: Pending, callback: str) -> str:
        state, verifier = pending
        code = check_callback(callback, state)
        response = self.http.post(
            TOKEN_URL,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
            },
            auth=self.auth,
            headers={"Accept": "application/json"},
        )
        document = response.json()
        if response.status_code != 200 or "access_token" not in document:
            raise ValueError("token request failed")
        token: str = document["access_token"]
        return token

    def close(self) -> None:
        self.http.close()
