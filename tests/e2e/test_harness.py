"""Prove the end-to-end harness against the real oidc-provider server.

Nothing here uses the ``flow`` package: requests are built by hand with httpx so
that a failure points at the harness or the server configuration, not at flow.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.e2e.conftest import running_server
from tests.e2e.harness import (
    AuthServer,
    Browser,
    BrowserError,
)

pytestmark = pytest.mark.e2e

NATIVE_CALLBACK = "http://127.0.0.1:53123/callback"


@pytest.fixture(scope="module")
def server() -> Iterator[AuthServer]:
    """One oidc-provider process for the whole module."""
    srv = running_server()
    try:
        yield srv
    finally:
        srv.stop()
    # A 500 inside the server would otherwise only show up as an odd response.
    assert "server_error" not in srv.stderr_tail(500), srv.stderr_tail()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """A plain HTTP client for the token, userinfo and other back-channel calls."""
    with httpx.Client(timeout=10.0, trust_env=False) as client:
        yield client


def pkce_pair() -> tuple[str, str]:
    """Return a fresh PKCE (verifier, S256 challenge)."""
    verifier = secrets.token_urlsafe(64)  # 86 characters, within 43..128
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return verifier, challenge


def authorization_url(
    server: AuthServer,
    *,
    client_id: str,
    redirect_uri: str,
    scope: str,
    state: str,
    challenge: str,
) -> str:
    """Build an authorization code request URL by hand."""
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return f"{server.issuer}/auth?{urlencode(query)}"


def callback_params(callback: str) -> dict[str, str]:
    """Return the single-valued query parameters of a callback URL."""
    params = parse_qs(urlsplit(callback).query, strict_parsing=True)
    assert all(len(v) == 1 for v in params.values()), params
    return {k: v[0] for k, v in params.items()}


def token_json(response: httpx.Response) -> Mapping[str, Any]:
    """Assert a successful token response and return its JSON body."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("cache-control") == "no-store"
    body: Mapping[str, Any] = response.json()
    assert body["token_type"] == "Bearer"
    return body


def test_discovery(server: AuthServer, http: httpx.Client) -> None:
    assert server.issuer.startswith("http://127.0.0.1:")
    response = http.get(server.discovery_url)
    assert response.status_code == 200
    meta = response.json()
    assert meta["issuer"] == server.issuer
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert {"client_secret_basic", "client_secret_post", "none"} <= set(
        meta["token_endpoint_auth_methods_supported"]
    )
    assert {"openid", "offline_access", "profile", "email", "api:read"} <= set(
        meta["scopes_supported"]
    )
    for endpoint in (
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
    ):
        assert meta[endpoint].startswith(server.issuer + "/"), endpoint


def test_public_client_code_flow(server: AuthServer, http: httpx.Client) -> None:
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    url = authorization_url(
        server,
        client_id=server.public_client_id,
        redirect_uri=NATIVE_CALLBACK,
        scope="openid offline_access api:read profile",
        state=state,
        challenge=challenge,
    )
    with Browser() as browser:
        callback = browser.login(url, user="alice")

    assert callback.startswith(NATIVE_CALLBACK + "?")
    params = callback_params(callback)
    assert params["state"] == state
    assert params["iss"] == server.issuer
    assert params["code"]

    token = token_json(
        http.post(
            f"{server.issuer}/token",
            data={
                "grant_type": "authorization_code",
                "code": params["code"],
                "redirect_uri": NATIVE_CALLBACK,
                "client_id": server.public_client_id,
                "code_verifier": verifier,
            },
        )
    )
    assert token["access_token"]
    assert token["refresh_token"]
    assert token["expires_in"] == 3600
    # offline_access is dropped without prompt=consent (OIDC Core 11); the
    # server issues a refresh token anyway. The custom scope comes through.
    assert set(token["scope"].split()) == {"openid", "api:read", "profile"}

    userinfo = http.get(
        f"{server.issuer}/me",
        headers={"Authorization": f"Bearer {token['access_token']}"},
    )
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["sub"] == "alice"
    assert userinfo.json()["name"] == "alice"

    # Rotation: the refresh token is replaced, and the old one stops working.
    refreshed = token_json(
        http.post(
            f"{server.issuer}/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": token["refresh_token"],
                "client_id": server.public_client_id,
            },
        )
    )
    assert refreshed["refresh_token"] != token["refresh_token"]
    reused = http.post(
        f"{server.issuer}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token["refresh_token"],
            "client_id": server.public_client_id,
        },
    )
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    # Reusing a rotated refresh token revoked the whole grant (the adapter's
    # grant index works): the newest refresh token is dead too.
    newest = http.post(
        f"{server.issuer}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refreshed["refresh_token"],
            "client_id": server.public_client_id,
        },
    )
    assert newest.status_code == 400
    assert newest.json()["error"] == "invalid_grant"


def test_code_replay_revokes_tokens(server: AuthServer, http: httpx.Client) -> None:
    verifier, challenge = pkce_pair()
    url = authorization_url(
        server,
        client_id=server.public_client_id,
        redirect_uri=NATIVE_CALLBACK,
        scope="openid",
        state="s",
        challenge=challenge,
    )
    with Browser() as browser:
        params = callback_params(browser.login(url))
    data = {
        "grant_type": "authorization_code",
        "code": params["code"],
        "redirect_uri": NATIVE_CALLBACK,
        "client_id": server.public_client_id,
        "code_verifier": verifier,
    }
    token = token_json(http.post(f"{server.issuer}/token", data=data))
    replay = http.post(f"{server.issuer}/token", data=data)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    userinfo = http.get(
        f"{server.issuer}/me",
        headers={"Authorization": f"Bearer {token['access_token']}"},
    )
    assert userinfo.status_code == 401


def test_public_client_requires_pkce(server: AuthServer) -> None:
    query = {
        "response_type": "code",
        "client_id": server.public_client_id,
        "redirect_uri": NATIVE_CALLBACK,
        "scope": "openid",
        "state": "s",
    }
    with Browser() as browser:
        callback = browser.login(f"{server.issuer}/auth?{urlencode(query)}")
    params = callback_params(callback)
    assert params["error"] == "invalid_request"
    assert params["iss"] == server.issuer


@pytest.mark.parametrize("cancel_at_login", [False, True])
def test_denied_login(server: AuthServer, cancel_at_login: bool) -> None:
    _, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    url = authorization_url(
        server,
        client_id=server.public_client_id,
        redirect_uri=NATIVE_CALLBACK,
        scope="openid",
        state=state,
        challenge=challenge,
    )
    with Browser() as browser:
        if cancel_at_login:
            callback = browser.cancel(url)
        else:
            callback = browser.login(url, consent=False)
    assert callback.startswith(NATIVE_CALLBACK + "?")
    params = callback_params(callback)
    assert params["error"] == "access_denied"
    assert params["state"] == state
    assert params["iss"] == server.issuer
    assert "code" not in params


def _confidential_code(server: AuthServer, browser: Browser) -> tuple[str, str]:
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    url = authorization_url(
        server,
        client_id=server.confidential_client_id,
        redirect_uri=server.web_redirect_uri,
        scope="openid email",
        state=state,
        challenge=challenge,
    )
    params = callback_params(browser.login(url, user="bob"))
    assert params["state"] == state
    assert params["iss"] == server.issuer
    return params["code"], verifier


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_confidential_client_code_flow(
    server: AuthServer, http: httpx.Client, auth_method: str
) -> None:
    with Browser() as browser:
        code, verifier = _confidential_code(server, browser)

    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": server.web_redirect_uri,
        "code_verifier": verifier,
    }
    if auth_method == "client_secret_basic":
        # The secret is URL-safe, so RFC 6749 2.3.1 form-encoding is a no-op.
        basic = httpx.BasicAuth(
            server.confidential_client_id, server.confidential_client_secret
        )
        response = http.post(f"{server.issuer}/token", data=data, auth=basic)
    else:
        data["client_id"] = server.confidential_client_id
        data["client_secret"] = server.confidential_client_secret
        response = http.post(f"{server.issuer}/token", data=data)
    token = token_json(response)
    assert token["access_token"]
    assert token["refresh_token"]

    userinfo = http.get(
        f"{server.issuer}/me",
        headers={"Authorization": f"Bearer {token['access_token']}"},
    )
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["email"] == "bob@example.test"


def test_confidential_client_wrong_secret(
    server: AuthServer, http: httpx.Client
) -> None:
    with Browser() as browser:
        code, verifier = _confidential_code(server, browser)
    response = http.post(
        f"{server.issuer}/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": server.web_redirect_uri,
            "code_verifier": verifier,
        },
        auth=(server.confidential_client_id, "wrong-secret"),
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_introspection_and_revocation(server: AuthServer, http: httpx.Client) -> None:
    with Browser() as browser:
        code, verifier = _confidential_code(server, browser)
    auth = (server.confidential_client_id, server.confidential_client_secret)
    token = token_json(
        http.post(
            f"{server.issuer}/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": server.web_redirect_uri,
                "code_verifier": verifier,
            },
            auth=auth,
        )
    )
    introspected = http.post(
        f"{server.issuer}/token/introspection",
        data={"token": token["access_token"]},
        auth=auth,
    )
    assert introspected.status_code == 200
    assert introspected.json()["active"] is True
    assert introspected.json()["sub"] == "bob"

    revoked = http.post(
        f"{server.issuer}/token/revocation",
        data={"token": token["refresh_token"], "token_type_hint": "refresh_token"},
        auth=auth,
    )
    assert revoked.status_code == 200
    # Revoking the refresh token kills the grant, access token included.
    after = http.post(
        f"{server.issuer}/token/introspection",
        data={"token": token["access_token"]},
        auth=auth,
    )
    assert after.json() == {"active": False}


def test_web_redirect_uri_mismatch_is_an_error_page(server: AuthServer) -> None:
    _, challenge = pkce_pair()
    url = authorization_url(
        server,
        client_id=server.confidential_client_id,
        redirect_uri="http://127.0.0.1:10/callback",  # wrong port for a web client
        scope="openid",
        state="s",
        challenge=challenge,
    )
    with Browser() as browser, pytest.raises(BrowserError, match="400"):
        browser.login(url)


def test_short_token_ttl_and_extra_clients(http: httpx.Client) -> None:
    extra = {
        "client_id": "flow-extra",
        "client_secret": "extra-secret-0123456789",
        "token_endpoint_auth_method": "client_secret_post",
        "redirect_uris": ["http://127.0.0.1:9/extra"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    }
    srv = running_server(access_token_ttl=1, extra_clients=[extra])
    try:
        verifier, challenge = pkce_pair()
        url = authorization_url(
            srv,
            client_id="flow-extra",
            redirect_uri="http://127.0.0.1:9/extra",
            scope="openid",
            state="s",
            challenge=challenge,
        )
        with Browser() as browser:
            params = callback_params(browser.login(url))
        token = token_json(
            http.post(
                f"{srv.issuer}/token",
                data={
                    "grant_type": "authorization_code",
                    "code": params["code"],
                    "redirect_uri": "http://127.0.0.1:9/extra",
                    "code_verifier": verifier,
                    "client_id": "flow-extra",
                    "client_secret": "extra-secret-0123456789",
                },
            )
        )
        assert token["expires_in"] == 1
        time.sleep(1.5)  # clockTolerance is 0: the token is dead by now
        userinfo = http.get(
            f"{srv.issuer}/me",
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )
        assert userinfo.status_code == 401
    finally:
        srv.stop()
    assert not srv.running
