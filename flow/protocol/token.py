"""The token request and the token response (RFC 6749 sections 4.1.3, 5.1, 5.2)."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote

from ..errors import ConfigurationError, MalformedResponse, OAuthError, oauth_error
from ..providers.hooks import ResponseHook
from ..providers.model import TokenResponseRules
from ..record import AuthMethod, Client, ServerMetadata, TokenInfo
from .http import SENSITIVE, HttpRequest, HttpResponse
from .text import sanitize

#: The largest token response accepted, in bytes.
MAX_BODY = 256 * 1024
#: RFC 6749 section 5 as written: JSON, Bearer, errors with HTTP 400.
STANDARD = TokenResponseRules()
_FORM_TYPES = ("application/x-www-form-urlencoded", "text/plain")


@dataclass(frozen=True, slots=True)
class TokenResult:
    """A valid token response: secrets to store and facts about them."""

    access_token: str
    info: TokenInfo
    refresh_token: str | None = None
    id_token: str | None = None

    def __repr__(self) -> str:
        return f"TokenResult(info={self.info!r})"


def code_request(
    server: ServerMetadata,
    client: Client,
    *,
    client_secret: str | None,
    code: str,
    verifier: str | None,
    headers: Mapping[str, str] | None = None,
) -> HttpRequest:
    """The token request that redeems an authorization code.

    Args:
        server: The server snapshot the flow started with: the code goes nowhere else.
        client: The client registration; its redirect URI is sent unchanged.
        client_secret: The secret, for confidential clients.
        code: The authorization code.
        verifier: The PKCE code verifier, unless the flow ran without PKCE.
        headers: Extra headers the provider needs.

    Returns:
        A form POST to the token endpoint.

    Raises:
        ConfigurationError: When the client's method needs a secret it lacks.
    """
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": client.redirect_uri,
    }
    if verifier is not None:
        form["code_verifier"] = verifier
    return _authenticated(server.token_endpoint, client, client_secret, form, headers)


def _authenticated(
    url: str,
    client: Client,
    client_secret: str | None,
    form: dict[str, str],
    extra_headers: Mapping[str, str] | None = None,
) -> HttpRequest:
    headers = {"Accept": "application/json", **(extra_headers or {})}
    method = client.auth_method
    if method is AuthMethod.NONE:
        # A public client identifies itself in the body (RFC 6749 section 3.2.1).
        # Some providers still want the secret they gave a desktop client
        # (Google); the engine passes one only when the provider asks for it.
        form["client_id"] = client.client_id
        if client_secret:
            form["client_secret"] = client_secret
    elif not client_secret:
        raise ConfigurationError(
            f"client authentication {method.value!r} needs a client secret; pass "
            "client_secret, or register a public client with auth method 'none'"
        )
    elif method is AuthMethod.CLIENT_SECRET_BASIC:
        headers["Authorization"] = basic_credentials(client.client_id, client_secret)
    else:
        form["client_id"] = client.client_id
        form["client_secret"] = client_secret
    return HttpRequest("POST", url, headers=headers, form=form)


def basic_credentials(client_id: str, client_secret: str) -> str:
    """The ``Authorization`` header value for ``client_secret_basic``.

    Both parts are form-urlencoded before base64 (RFC 6749 section 2.3.1), which
    plain HTTP Basic implementations forget.
    """
    pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode("ascii")).decode("ascii")


def parse_token_response(
    response: HttpResponse,
    now: datetime,
    rules: TokenResponseRules = STANDARD,
    hooks: Sequence[ResponseHook] = (),
) -> TokenResult:
    """Read a token endpoint answer.

    Args:
        response: Status, headers and body as received.
        now: When the answer arrived; ``expires_in`` counts from here.
        rules: The provider's departures from RFC 6749 section 5; the RFC's own
            rules by default.
        hooks: The provider's named response hooks, applied after decoding.

    Returns:
        The validated result.

    Raises:
        OAuthError: An RFC 6749 section 5.2 error answer, typed by its code,
            including errors a provider sends with HTTP 200.
        MalformedResponse: Anything else that is not a valid section 5.1 answer.
    """
    document = _json_object(response, form_encoded=rules.form_encoded)
    for hook in hooks:
        document = hook(document)
    if response.status != 200:
        raise _error_from(document, response.status)
    if rules.error_on_200 and document.get("error") is not None:
        raise _error_from(document, response.status)
    if rules.ok_field is not None and document.get(rules.ok_field) is False:
        raise _error_from(document, response.status)
    return _token_from(document, now, rules)


def _json_object(
    response: HttpResponse, *, form_encoded: bool = False
) -> dict[str, Any]:
    if len(response.body) > MAX_BODY:
        raise MalformedResponse(f"token response larger than {MAX_BODY} bytes")
    if form_encoded and response.content_type in _FORM_TYPES:
        # GitHub answers form-encoded unless asked for JSON (and sometimes anyway).
        try:
            pairs = parse_qsl(response.body.decode("utf-8"), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            raise MalformedResponse(
                "form-encoded token response is unreadable"
            ) from None
        document: dict[str, Any] = dict(pairs)
        for name in ("expires_in", "refresh_token_expires_in"):
            if document.get(name, "").isdigit():
                document[name] = int(document[name])
        return document
    if response.content_type != "application/json":
        raise MalformedResponse(
            f"token response is {response.content_type or 'untyped'!r} "
            f"(HTTP {response.status}), not application/json"
        )
    try:
        document = json.loads(response.body)
    except (ValueError, RecursionError):
        # RecursionError: nesting deep enough to exhaust the decoder's stack.
        raise MalformedResponse(
            f"token response body is not JSON (HTTP {response.status})"
        ) from None
    if not isinstance(document, dict):
        raise MalformedResponse("token response must be a JSON object")
    return document


def _error_from(
    document: dict[str, Any], status: int
) -> OAuthError | MalformedResponse:
    error = document.get("error")
    if not isinstance(error, str) or not error:
        return MalformedResponse(
            f"token endpoint failed with HTTP {status} and no error"
        )
    description = document.get("error_description")
    return oauth_error(
        sanitize(error, 64),
        sanitize(description) if isinstance(description, str) else None,
    )


def _token_from(
    document: dict[str, Any], now: datetime, rules: TokenResponseRules
) -> TokenResult:
    top = document
    for path in rules.token_paths:
        nested = document.get(path) if path else document
        if isinstance(nested, dict) and "access_token" in nested:
            document = nested
            break
    access_token = document.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise MalformedResponse("'access_token' must be a non-empty string")

    token_type = document.get("token_type")
    if not isinstance(token_type, str):
        raise MalformedResponse("'token_type' must be a string")
    # Token types are case-insensitive (RFC 6749 section 5.1); flow only knows Bearer
    # and must not use a type it does not understand (section 7.1).
    if token_type.lower() != "bearer" and rules.token_type != "any":  # noqa: S105
        raise MalformedResponse(f"unsupported token_type {sanitize(token_type, 32)!r}")

    expires_in = document.get("expires_in")
    expires_at = None
    if "expires_in" in document:  # absent means unknown; null is malformed
        if (
            isinstance(expires_in, bool)
            or not isinstance(expires_in, int | float)
            or not math.isfinite(expires_in)
            or expires_in <= 0
        ):
            raise MalformedResponse("'expires_in' must be a positive number")
        try:
            expires_at = now + timedelta(seconds=expires_in)
        except OverflowError:
            raise MalformedResponse("'expires_in' is too large") from None

    optional: dict[str, str | None] = {}
    for name in ("refresh_token", "id_token", "scope"):
        value = document.get(name)
        if name in document and not isinstance(value, str):
            raise MalformedResponse(f"{name!r} must be a string when present")
        optional[name] = value

    return TokenResult(
        access_token=access_token,
        refresh_token=optional["refresh_token"] or None,
        id_token=optional["id_token"] or None,
        info=TokenInfo(
            token_type="Bearer",  # noqa: S106 - a token type, not a secret
            issued_at=now,
            expires_at=expires_at,
            scope=optional["scope"],
            extra=_kept(top, rules.keep),
        ),
    )


def _kept(document: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The extra fields a provider's spec keeps, with any secret inside removed."""
    return {
        name: _without_secrets(document[name]) for name in names if name in document
    }


def _without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _without_secrets(v)
            for k, v in value.items()
            if k.lower() not in SENSITIVE
        }
    if isinstance(value, list):
        return [_without_secrets(item) for item in value]
    return value


def refresh_request(
    server: ServerMetadata,
    client: Client,
    *,
    client_secret: str | None,
    refresh_token: str,
    headers: Mapping[str, str] | None = None,
) -> HttpRequest:
    """The token request that uses a refresh token (RFC 6749 section 6).

    No ``scope`` is sent, so the server grants the same scope as before.

    Args:
        server: The server snapshot the flow started with.
        client: The client registration.
        client_secret: The secret, for confidential clients.
        refresh_token: The refresh token currently stored.

    Returns:
        A form POST to the token endpoint.
    """
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return _authenticated(server.token_endpoint, client, client_secret, form, headers)


def revocation_request(
    endpoint: str,
    client: Client,
    *,
    client_secret: str | None,
    token: str,
    hint: str,
) -> HttpRequest:
    """A token revocation request (RFC 7009 section 2.1).

    Args:
        endpoint: The server's revocation endpoint.
        client: The client registration; it authenticates as at the token endpoint.
        client_secret: The secret, for confidential clients.
        token: The token to revoke.
        hint: ``refresh_token`` or ``access_token``.
    """
    form = {"token": token, "token_type_hint": hint}
    return _authenticated(endpoint, client, client_secret, form)


def check_revocation_response(response: HttpResponse) -> None:
    """Accept a revocation answer: HTTP 200, whatever the body (RFC 7009 2.2).

    Raises:
        OAuthError: An RFC 7009 section 2.2.1 error answer, typed by its code.
        MalformedResponse: Any other failure.
    """
    if response.status == 200:
        return
    try:
        document = _json_object(response)
    except MalformedResponse:
        raise MalformedResponse(
            f"revocation endpoint answered HTTP {response.status}"
        ) from None
    raise _error_from(document, response.status)
