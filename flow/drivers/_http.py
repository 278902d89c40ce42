"""Turning :class:`HttpRequest` into httpx calls and httpx answers into data."""

from __future__ import annotations

import httpx

from ..errors import TransportError
from ..protocol import HttpRequest, HttpResponse

#: Default timeouts for the authorization server: connect, read, write, pool.
DEFAULT_TIMEOUT = httpx.Timeout(10.0)
#: The largest response body read from an authorization server.
MAX_RESPONSE = 1024 * 1024


def build(
    client: httpx.Client | httpx.AsyncClient, request: HttpRequest
) -> httpx.Request:
    """The httpx request for ``request``."""
    return client.build_request(
        request.method, request.url, headers=dict(request.headers), data=request.form
    )


def answer(response: httpx.Response, body: bytes) -> HttpResponse:
    """Status, lower-cased headers and body as the core reads them."""
    headers = {key.lower(): value for key, value in response.headers.items()}
    return HttpResponse(response.status_code, headers, body)


def too_large() -> TransportError:
    return TransportError(f"response larger than {MAX_RESPONSE} bytes")


def converted(exc: httpx.HTTPError) -> TransportError:
    """A :class:`TransportError` that says whether the request may have been sent.

    Only a failure to connect proves the server saw nothing; any later failure may
    come after the server received the request.
    """
    not_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
    return TransportError(
        f"{type(exc).__name__} talking to the authorization server",
        maybe_sent=not not_sent,
    )
