"""Responses described as data; the HTTP handler only writes them out."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from .failure import SandboxFailure

#: Sent with every response: nothing the sandbox answers may be cached
#: (RFC 6749 section 5.1) or leak through a Referer header (RFC 9700 section 4.2.4).
COMMON_HEADERS = (
    ("Cache-Control", "no-store"),
    ("Pragma", "no-cache"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
)

#: Pages may not be framed, run scripts or load anything.
_PAGE_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    ),
    ("X-Frame-Options", "DENY"),
)

#: Every 401 names a scheme (RFC 9110 section 11.6.1).
_BASIC_CHALLENGE = ("WWW-Authenticate", 'Basic realm="flow-sandbox"')


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP response: status, extra headers and body."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


def json_reply(document: Mapping[str, Any], status: int = 200) -> Reply:
    """A JSON body."""
    body = json.dumps(document, indent=2).encode("utf-8")
    return Reply(status, body, "application/json")


def page_reply(html: str, status: int = 200) -> Reply:
    """An HTML page that cannot be framed and runs no script."""
    return Reply(
        status, html.encode("utf-8"), "text/html; charset=utf-8", _PAGE_HEADERS
    )


def redirect_reply(redirect_uri: str, params: Mapping[str, str | None]) -> Reply:
    """A 302 to ``redirect_uri`` with ``params`` added to its query.

    The existing query is kept (RFC 6749 section 3.1.2); parameters whose value is
    ``None`` are left out.
    """
    present = {key: value for key, value in params.items() if value is not None}
    added = urlencode(present)
    parts = urlsplit(redirect_uri)
    query = f"{parts.query}&{added}" if parts.query else added
    return Reply(302, headers=(("Location", urlunsplit(parts._replace(query=query))),))


def oauth_error_reply(failure: SandboxFailure) -> Reply:
    """The JSON error body of RFC 6749 section 5.2."""
    document = {"error": failure.error, "error_description": failure.description}
    reply = json_reply(document, failure.status)
    if failure.status == 401:
        return replace(reply, headers=(_BASIC_CHALLENGE,))
    return reply


def bearer_error_reply(status: int, error: str | None, description: str) -> Reply:
    """A refusal from the userinfo endpoint (RFC 6750 section 3).

    Without credentials the challenge carries no ``error`` (section 3.1).
    """
    challenge = 'Bearer realm="flow-sandbox"'
    if error is not None:
        challenge += f', error="{error}", error_description="{description}"'
    document = {"error_description": description}
    if error is not None:
        document["error"] = error
    reply = json_reply(document, status)
    return replace(reply, headers=(("WWW-Authenticate", challenge),))


def plain_reply(status: int, message: str, allow: str | None = None) -> Reply:
    """A short text answer for requests outside the protocol: 404, 405, 413."""
    headers = (("Allow", allow),) if allow is not None else ()
    return Reply(status, message.encode("utf-8"), "text/plain; charset=utf-8", headers)
