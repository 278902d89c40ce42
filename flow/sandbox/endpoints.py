"""The sandbox's endpoints as functions from a request to a reply; no sockets here.

The rules enforced are the ones a client meets at a careful real server: PKCE S256
required, redirect URIs checked before anything is redirected, single-use codes,
refresh-token rotation with reuse detection and the RFC 9207 ``iss`` parameter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from .clients import SandboxClient, authenticate
from .failure import SandboxFailure, invalid_request
from .pages import error_page, login_page
from .replies import (
    Reply,
    bearer_error_reply,
    json_reply,
    oauth_error_reply,
    page_reply,
    redirect_reply,
)
from .state import IssuedTokens, SandboxState

SCOPES_SUPPORTED = ("openid", "profile", "email", "offline_access")
#: Granted when the authorization request names no scope (RFC 6749 section 3.3).
DEFAULT_SCOPE = "openid profile email"

#: An S256 challenge is a SHA-256 digest: 43 base64url characters, no padding.
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
#: RFC 7636 section 4.1: 43 to 128 unreserved characters.
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
_USERNAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_FORM_TYPE = "application/x-www-form-urlencoded"

Endpoint = Callable[["SandboxRequest"], Reply]


@dataclass(frozen=True, slots=True)
class SandboxRequest:
    """The parts of an HTTP request the endpoints read."""

    query: str = ""
    body: str = ""
    content_type: str | None = None
    authorization: str | None = None


def decode_params(text: str) -> dict[str, list[str]]:
    """Every value of every parameter of a query string or form body.

    Parameters without a value count as absent (RFC 6749 section 3.1).

    Raises:
        SandboxFailure: ``invalid_request`` for bytes that are not UTF-8.
    """
    try:
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict")
    except ValueError:
        raise invalid_request("parameters are not valid UTF-8") from None
    params: dict[str, list[str]] = {}
    for name, value in pairs:
        if value:
            params.setdefault(name, []).append(value)
    return params


def single(params: Mapping[str, list[str]], name: str) -> str | None:
    """The one value of ``name``, or ``None``.

    Raises:
        SandboxFailure: ``invalid_request`` when it is repeated (RFC 6749 section
            3.1).
    """
    values = params.get(name, [])
    if len(values) > 1:
        raise invalid_request(f"parameter {name!r} is repeated")
    return values[0] if values else None


def _required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name)
    if value is None:
        raise invalid_request(f"parameter {name!r} is missing")
    return value


class SandboxApp:
    """The endpoints of one sandbox, bound to its issuer, clients and state.

    Args:
        issuer: ``http://127.0.0.1:<port>``, used in metadata and in ``iss``.
        clients: The registered clients by id.
        state: The shared in-memory state.
    """

    def __init__(
        self, issuer: str, clients: Mapping[str, SandboxClient], state: SandboxState
    ) -> None:
        self.issuer = issuer
        self._clients = clients
        self._state = state
        self.metadata = self._metadata()
        self.routes: dict[str, dict[str, Endpoint]] = {
            "/.well-known/openid-configuration": {"GET": self.discovery},
            "/.well-known/oauth-authorization-server": {"GET": self.discovery},
            "/authorize": {"GET": self.authorize},
            "/authorize/decision": {"POST": self.decide},
            "/token": {"POST": self.token},
            "/userinfo": {"GET": self.userinfo},
            "/revoke": {"POST": self.revoke},
        }

    def _metadata(self) -> dict[str, Any]:
        # RFC 8414 section 2; the same document serves OpenID Connect Discovery.
        auth_methods = ["client_secret_basic", "client_secret_post", "none"]
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "revocation_endpoint": f"{self.issuer}/revoke",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "scopes_supported": list(SCOPES_SUPPORTED),
            "authorization_response_iss_parameter_supported": True,
        }

    def discovery(self, request: SandboxRequest) -> Reply:
        """``GET /.well-known/...``: the metadata document."""
        return json_reply(self.metadata)

    # -- authorization -------------------------------------------------------------

    def authorize(self, request: SandboxRequest) -> Reply:
        """``GET /authorize``: validate the request and show the login page.

        A missing or unknown client, or a redirect URI not registered for it, gets an
        error page: redirecting there would make the sandbox an open redirector
        (RFC 6749 section 4.1.2.1). Every other error goes back to the client.
        """
        try:
            params = decode_params(request.query)
            client_id = single(params, "client_id")
            redirect_uri = single(params, "redirect_uri")
        except SandboxFailure as failure:
            return page_reply(error_page(failure.description), 400)
        client = self._clients.get(client_id or "")
        if client is None:
            return page_reply(error_page("The client_id is missing or unknown."), 400)
        if redirect_uri is None or not client.allows_redirect(redirect_uri):
            message = f"The redirect_uri is missing or not registered for {client_id}."
            return page_reply(error_page(message), 400)

        state = None
        try:
            state = single(params, "state")
            code_challenge, scope = _check_authorization(params)
        except SandboxFailure as failure:
            return self._error_redirect(redirect_uri, failure, state)

        request_id = self._state.add_pending(
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            code_challenge=code_challenge,
            scope=scope,
            state=state,
        )
        page = login_page(
            request_id=request_id, client_id=client.client_id, scope=scope
        )
        return page_reply(page)

    def decide(self, request: SandboxRequest) -> Reply:
        """``POST /authorize/decision``: send the browser back with a code or a no."""
        try:
            form = _flat(decode_params(request.body))
        except SandboxFailure as failure:
            return page_reply(error_page(failure.description), 400)
        decision = form.get("decision")
        username = form.get("username", "")
        if decision not in {"allow", "deny"}:
            return page_reply(error_page("The decision must be allow or deny."), 400)
        if decision == "allow" and not _USERNAME.fullmatch(username):
            message = "A username is 1 to 64 letters, digits, '.', '_' or '-'."
            return page_reply(error_page(message), 400)

        pending = self._state.take_pending(form.get("request_id", ""))
        if pending is None:
            message = (
                "This login request is unknown, expired or already answered. "
                "Start again from the application."
            )
            return page_reply(error_page(message), 400)

        if decision == "deny":
            denied = SandboxFailure("access_denied", "the user denied the request")
            return self._error_redirect(pending.redirect_uri, denied, pending.state)
        code = self._state.issue_code(pending, username)
        params = {"code": code, "state": pending.state, "iss": self.issuer}
        return redirect_reply(pending.redirect_uri, params)

    def _error_redirect(
        self, redirect_uri: str, failure: SandboxFailure, state: str | None
    ) -> Reply:
        params = {
            "error": failure.error,
            "error_description": failure.description,
            "state": state,
            "iss": self.issuer,  # RFC 9207: errors carry the issuer too
        }
        return redirect_reply(redirect_uri, params)

    # -- token and revocation ------------------------------------------------------

    def token(self, request: SandboxRequest) -> Reply:
        """``POST /token``: the authorization code and refresh token grants."""
        try:
            form = _client_form(request)
            client = authenticate(self._clients, request.authorization, form)
            grant_type = _required(form, "grant_type")
            if grant_type == "authorization_code":
                issued = self._redeem(client, form)
            elif grant_type == "refresh_token":
                refresh_token = _required(form, "refresh_token")
                scope = form.get("scope")
                issued = self._state.refresh(client.client_id, refresh_token, scope)
            else:
                raise SandboxFailure(
                    "unsupported_grant_type", f"grant_type {grant_type!r} is not served"
                )
        except SandboxFailure as failure:
            return oauth_error_reply(failure)
        return json_reply(_token_response(issued))

    def _redeem(self, client: SandboxClient, form: Mapping[str, str]) -> IssuedTokens:
        code = _required(form, "code")
        redirect_uri = _required(form, "redirect_uri")
        verifier = _required(form, "code_verifier")
        if not _VERIFIER.fullmatch(verifier):
            raise invalid_request("code_verifier is malformed (RFC 7636 section 4.1)")
        return self._state.redeem_code(client.client_id, code, redirect_uri, verifier)

    def revoke(self, request: SandboxRequest) -> Reply:
        """``POST /revoke`` (RFC 7009); ``token_type_hint`` is not needed to search."""
        try:
            form = _client_form(request)
            client = authenticate(self._clients, request.authorization, form)
            self._state.revoke(client.client_id, _required(form, "token"))
        except SandboxFailure as failure:
            return oauth_error_reply(failure)
        return Reply(200)

    # -- the protected resource ----------------------------------------------------

    def userinfo(self, request: SandboxRequest) -> Reply:
        """``GET /userinfo`` with a Bearer token in the Authorization header only.

        The query-string method of RFC 6750 section 2.3 puts tokens in logs and
        histories, so the sandbox refuses it outright.
        """
        try:
            in_query = "access_token" in decode_params(request.query)
        except SandboxFailure:
            in_query = False
        if in_query:
            message = "send the token in the Authorization header, not the query"
            return bearer_error_reply(400, "invalid_request", message)

        scheme, _, token = (request.authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return bearer_error_reply(401, None, "a Bearer access token is required")
        owner = self._state.owner(token.strip())
        if owner is None:
            message = "the access token is unknown, expired or revoked"
            return bearer_error_reply(401, "invalid_token", message)

        name = " ".join(re.split(r"[._-]+", owner.username)).strip().title()
        return json_reply(
            {
                "sub": owner.username,
                "name": name or owner.username,
                "email": f"{owner.username}@sandbox.invalid",
            }
        )


def _check_authorization(params: Mapping[str, list[str]]) -> tuple[str, str]:
    """The code challenge and the scope of a valid request; errors to redirect."""
    response_type = single(params, "response_type")
    if response_type is None:
        raise invalid_request("response_type is missing")
    if response_type != "code":
        raise SandboxFailure(
            "unsupported_response_type", "only response_type=code is served"
        )

    # PKCE is required, and only S256 (RFC 9700 section 2.1.1).
    code_challenge = single(params, "code_challenge")
    method = single(params, "code_challenge_method")
    if code_challenge is None:
        raise invalid_request("PKCE is required: code_challenge is missing")
    if method != "S256":
        raise invalid_request("code_challenge_method must be S256")
    if not _CHALLENGE.fullmatch(code_challenge):
        raise invalid_request("code_challenge is not a base64url SHA-256 digest")

    scopes = (single(params, "scope") or DEFAULT_SCOPE).split()
    unknown = sorted(set(scopes) - set(SCOPES_SUPPORTED))
    if unknown:
        raise SandboxFailure("invalid_scope", f"unknown scope {' '.join(unknown)!r}")
    return code_challenge, " ".join(dict.fromkeys(scopes))


def _flat(params: Mapping[str, list[str]]) -> dict[str, str]:
    """One value per parameter; a repeated one is refused."""
    flat: dict[str, str] = {}
    for name in params:
        value = single(params, name)
        if value is not None:
            flat[name] = value
    return flat


def _client_form(request: SandboxRequest) -> dict[str, str]:
    """The form of a token or revocation request (RFC 6749 section 4.1.3)."""
    media_type = (request.content_type or "").partition(";")[0].strip().lower()
    if media_type != _FORM_TYPE:
        raise invalid_request(f"the body must be {_FORM_TYPE}")
    return _flat(decode_params(request.body))


def _token_response(issued: IssuedTokens) -> dict[str, Any]:
    return {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "refresh_token": issued.refresh_token,
        "scope": issued.scope,
    }
