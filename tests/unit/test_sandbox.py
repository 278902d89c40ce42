"""The demo-only sandbox authorization server, driven over HTTP with plain httpx.

These are the only tests that may use the sandbox: flow itself is tested against
oidc-provider. RFC 6749, RFC 7636, RFC 7009, RFC 6750, RFC 8252, RFC 9207 and
RFC 9700 section 4.14.2.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

import httpx
import pytest

from flow.errors import CallerError, ConfigurationError
from flow.sandbox import (
    DEMO_CLIENT_ID,
    DEMO_CONFIDENTIAL_CLIENT_ID,
    DEMO_CONFIDENTIAL_SECRET,
    SandboxClient,
    SandboxServer,
    SandboxStats,
)

PUBLIC_REDIRECT = "http://127.0.0.1:8765/cb"
CONFIDENTIAL_REDIRECT = "http://127.0.0.1:8766/callback"
STATE = "state-7Hq2"
ACCESS_TTL = 300
#: httpx loads its CA bundle for every client; these plain-HTTP tests share one.
TLS = ssl.create_default_context()


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Pkce:
    """A verifier and its S256 challenge, computed here without flow's helpers."""

    verifier: str
    challenge: str


class _Inputs(HTMLParser):
    """Collects the ``<input>`` fields of a page by name."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        name = named.get("name")
        if tag == "input" and name is not None:
            self.fields[name] = named.get("value") or ""


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(clock: FakeClock) -> Iterator[SandboxServer]:
    with SandboxServer(access_token_ttl=ACCESS_TTL, clock=clock) as sandbox:
        yield sandbox


@pytest.fixture
def http(server: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.issuer, timeout=5.0, verify=TLS) as client:
        yield client


def new_pkce() -> Pkce:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return Pkce(verifier, challenge)


def basic(client_id: str, secret: str) -> dict[str, str]:
    """HTTP Basic with each part form-urlencoded first (RFC 6749 section 2.3.1)."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def form_inputs(html: str) -> dict[str, str]:
    parser = _Inputs()
    parser.feed(html)
    return parser.fields


def redirect_params(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    return {name: values[0] for name, values in query.items()}


def authorize(
    http: httpx.Client,
    pkce: Pkce | None,
    *,
    client_id: str = DEMO_CLIENT_ID,
    redirect_uri: str = PUBLIC_REDIRECT,
    **extra: str,
) -> httpx.Response:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": STATE,
    }
    if pkce is not None:
        params |= {"code_challenge": pkce.challenge, "code_challenge_method": "S256"}
    return http.get("/authorize", params=params | extra)


def decide(
    http: httpx.Client, page: httpx.Response, decision: str = "allow"
) -> httpx.Response:
    request_id = form_inputs(page.text)["request_id"]
    form = {"request_id": request_id, "username": "demo-user", "decision": decision}
    return http.post("/authorize/decision", data=form)


def login(
    http: httpx.Client,
    pkce: Pkce,
    *,
    client_id: str = DEMO_CLIENT_ID,
    redirect_uri: str = PUBLIC_REDIRECT,
) -> dict[str, str]:
    """Log in as demo-user, allow, and return the callback's parameters."""
    page = authorize(http, pkce, client_id=client_id, redirect_uri=redirect_uri)
    assert page.status_code == 200
    return redirect_params(decide(http, page))


def exchange(
    http: httpx.Client,
    code: str,
    verifier: str,
    *,
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    redirect_uri: str = PUBLIC_REDIRECT,
) -> httpx.Response:
    body = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    body |= {"client_id": DEMO_CLIENT_ID} if form is None else form
    return http.post("/token", data=body, headers=headers)


def tokens(http: httpx.Client) -> dict[str, Any]:
    """Run the public client's whole flow and return the token response."""
    pkce = new_pkce()
    callback = login(http, pkce)
    response = exchange(http, callback["code"], pkce.verifier)
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def refresh(http: httpx.Client, refresh_token: str, **extra: str) -> httpx.Response:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": DEMO_CLIENT_ID,
    }
    return http.post("/token", data=form | extra)


def error_of(response: httpx.Response) -> tuple[int, str]:
    assert response.headers["content-type"] == "application/json"
    return response.status_code, response.json()["error"]


# -- discovery -----------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"],
)
def test_discovery_names_every_endpoint_and_capability(
    server: SandboxServer, http: httpx.Client, path: str
) -> None:
    document = http.get(path).json()

    issuer = server.issuer
    assert document["issuer"] == issuer
    assert document["authorization_endpoint"] == f"{issuer}/authorize"
    assert document["token_endpoint"] == f"{issuer}/token"
    assert document["userinfo_endpoint"] == f"{issuer}/userinfo"
    assert document["revocation_endpoint"] == f"{issuer}/revoke"
    assert document["response_types_supported"] == ["code"]
    assert document["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "none",
    ]
    assert "openid" in document["scopes_supported"]
    assert document["authorization_response_iss_parameter_supported"] is True


# -- the authorization code flow ----------------------------------------------


def test_public_client_completes_the_code_flow_with_pkce(
    server: SandboxServer, http: httpx.Client
) -> None:
    pkce = new_pkce()

    callback = login(http, pkce)
    assert set(callback) == {"code", "state", "iss"}
    assert (callback["state"], callback["iss"]) == (STATE, server.issuer)

    response = exchange(http, callback["code"], pkce.verifier)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    document = response.json()
    assert set(document) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "scope",
    }
    assert (document["token_type"], document["expires_in"]) == ("Bearer", ACCESS_TTL)
    assert document["scope"] == "openid profile email"

    claims = http.get("/userinfo", headers=bearer(document["access_token"])).json()
    assert claims == {
        "sub": "demo-user",
        "name": "Demo User",
        "email": "demo-user@sandbox.invalid",
    }


def test_redirect_uri_keeps_its_query_and_any_loopback_port(
    http: httpx.Client,
) -> None:
    redirect_uri = "http://127.0.0.1:40123/cb?session=a%20b"
    page = authorize(http, new_pkce(), redirect_uri=redirect_uri)

    location = decide(http, page).headers["location"]

    assert location.startswith("http://127.0.0.1:40123/cb?session=a%20b&code=")


@pytest.mark.parametrize("method", ["basic", "post"])
def test_confidential_client_authenticates_with_its_secret(
    http: httpx.Client, method: str
) -> None:
    pkce = new_pkce()
    callback = login(
        http,
        pkce,
        client_id=DEMO_CONFIDENTIAL_CLIENT_ID,
        redirect_uri=CONFIDENTIAL_REDIRECT,
    )
    if method == "basic":
        form: dict[str, str] = {}
        headers = basic(DEMO_CONFIDENTIAL_CLIENT_ID, DEMO_CONFIDENTIAL_SECRET)
    else:
        form = {
            "client_id": DEMO_CONFIDENTIAL_CLIENT_ID,
            "client_secret": DEMO_CONFIDENTIAL_SECRET,
        }
        headers = {}

    response = exchange(
        http,
        callback["code"],
        pkce.verifier,
        form=form,
        headers=headers,
        redirect_uri=CONFIDENTIAL_REDIRECT,
    )

    assert response.status_code == 200


def test_basic_credentials_are_form_decoded_after_base64() -> None:
    secret = "s3cret: +/%é&="
    client = SandboxClient(
        "app:1", client_secret=secret, redirect_uri_prefixes=(PUBLIC_REDIRECT,)
    )
    with (
        SandboxServer(clients=[client]) as sandbox,
        httpx.Client(base_url=sandbox.issuer, verify=TLS) as http,
    ):
        pkce = new_pkce()
        callback = login(http, pkce, client_id="app:1")

        response = exchange(
            http,
            callback["code"],
            pkce.verifier,
            form={},
            headers=basic("app:1", secret),
        )

    assert response.status_code == 200


@pytest.mark.parametrize("method", ["basic", "post"])
def test_wrong_secret_is_invalid_client_with_a_challenge(
    http: httpx.Client, method: str
) -> None:
    if method == "basic":
        form: dict[str, str] = {}
        headers = basic(DEMO_CONFIDENTIAL_CLIENT_ID, "wrong")
    else:
        form = {"client_id": DEMO_CONFIDENTIAL_CLIENT_ID, "client_secret": "wrong"}
        headers = {}

    response = exchange(
        http, "any-code", new_pkce().verifier, form=form, headers=headers
    )

    assert error_of(response) == (401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic ")


@pytest.mark.parametrize(
    ("form", "headers"),
    [
        ({"client_id": DEMO_CONFIDENTIAL_CLIENT_ID}, {}),
        ({"client_id": DEMO_CLIENT_ID, "client_secret": "unexpected"}, {}),
        ({"client_id": "nobody"}, {}),
        ({}, {}),
        ({}, {"Authorization": "Basic !!not-base64!!"}),
    ],
    ids=["confidential-no-secret", "public-with-secret", "unknown", "none", "garbled"],
)
def test_client_authentication_failures_are_invalid_client(
    http: httpx.Client, form: dict[str, str], headers: dict[str, str]
) -> None:
    response = exchange(
        http, "any-code", new_pkce().verifier, form=form, headers=headers
    )

    assert error_of(response) == (401, "invalid_client")


def test_basic_and_post_together_are_refused(http: httpx.Client) -> None:
    form = {"client_secret": DEMO_CONFIDENTIAL_SECRET}
    headers = basic(DEMO_CONFIDENTIAL_CLIENT_ID, DEMO_CONFIDENTIAL_SECRET)

    response = exchange(http, "c", new_pkce().verifier, form=form, headers=headers)

    assert error_of(response) == (400, "invalid_request")


def test_pkce_mismatch_is_invalid_grant(http: httpx.Client) -> None:
    callback = login(http, new_pkce())

    response = exchange(http, callback["code"], new_pkce().verifier)

    assert error_of(response) == (400, "invalid_grant")


@pytest.mark.parametrize(
    "change",
    [
        {"redirect_uri": PUBLIC_REDIRECT + "/"},
        {"client_id": DEMO_CONFIDENTIAL_CLIENT_ID},
    ],
    ids=["redirect-uri", "client"],
)
def test_code_is_bound_to_its_client_and_redirect_uri(
    http: httpx.Client, change: dict[str, str]
) -> None:
    pkce = new_pkce()
    callback = login(http, pkce)
    form = {"client_id": DEMO_CLIENT_ID} | change
    if form["client_id"] == DEMO_CONFIDENTIAL_CLIENT_ID:
        form["client_secret"] = DEMO_CONFIDENTIAL_SECRET
    redirect_uri = form.pop("redirect_uri", PUBLIC_REDIRECT)

    response = exchange(
        http, callback["code"], pkce.verifier, form=form, redirect_uri=redirect_uri
    )

    assert error_of(response) == (400, "invalid_grant")


def test_code_expires_after_sixty_seconds(http: httpx.Client, clock: FakeClock) -> None:
    pkce = new_pkce()
    callback = login(http, pkce)

    clock.advance(60)
    response = exchange(http, callback["code"], pkce.verifier)

    assert error_of(response) == (400, "invalid_grant")


def test_code_replay_is_refused_and_revokes_the_first_tokens(
    server: SandboxServer, http: httpx.Client
) -> None:
    pkce = new_pkce()
    callback = login(http, pkce)
    first = exchange(http, callback["code"], pkce.verifier).json()

    replay = exchange(http, callback["code"], pkce.verifier)

    assert error_of(replay) == (400, "invalid_grant")
    assert (
        http.get("/userinfo", headers=bearer(first["access_token"])).status_code == 401
    )
    assert error_of(refresh(http, first["refresh_token"])) == (400, "invalid_grant")
    assert server.stats.replays_detected == 1


# -- authorization errors ------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"code_challenge": new_pkce().challenge},
        {"code_challenge": new_pkce().challenge, "code_challenge_method": "plain"},
        {"code_challenge": "too-short", "code_challenge_method": "S256"},
    ],
    ids=["no-pkce", "no-method", "plain", "malformed"],
)
def test_missing_or_weak_pkce_redirects_with_invalid_request(
    server: SandboxServer, http: httpx.Client, params: dict[str, str]
) -> None:
    response = authorize(http, None, **params)

    callback = redirect_params(response)
    assert callback["error"] == "invalid_request"
    assert (callback["state"], callback["iss"]) == (STATE, server.issuer)
    assert "code" not in callback


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "openid admin"}, "invalid_scope"),
    ],
)
def test_other_authorization_errors_go_back_to_the_client(
    http: httpx.Client, params: dict[str, str], error: str
) -> None:
    response = authorize(http, new_pkce(), **params)

    assert redirect_params(response)["error"] == error


@pytest.mark.parametrize(
    ("client_id", "redirect_uri"),
    [
        (DEMO_CLIENT_ID, "https://attacker.example/cb"),
        (DEMO_CLIENT_ID, "http://localhost:8765/cb"),
        (DEMO_CLIENT_ID, "http://127.0.0.1:8765@attacker.example/cb"),
        (DEMO_CLIENT_ID, "http://127.0.0.1:8765/cb#fragment"),
        (DEMO_CLIENT_ID, "http://127.0.0.1:8765/cb\r\nSet-Cookie: a=b"),
        (DEMO_CLIENT_ID, ""),
        (DEMO_CONFIDENTIAL_CLIENT_ID, "http://127.0.0.1:8766/elsewhere"),
        (DEMO_CONFIDENTIAL_CLIENT_ID, "http://127.0.0.1:8766/callbackevil"),
        ("unknown-client", PUBLIC_REDIRECT),
    ],
)
def test_bad_client_or_redirect_uri_gets_a_page_not_a_redirect(
    http: httpx.Client, client_id: str, redirect_uri: str
) -> None:
    response = authorize(
        http, new_pkce(), client_id=client_id, redirect_uri=redirect_uri
    )

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "location" not in response.headers


def test_deny_redirects_with_access_denied_state_and_iss(
    server: SandboxServer, http: httpx.Client
) -> None:
    page = authorize(http, new_pkce())

    callback = redirect_params(decide(http, page, "deny"))

    assert callback["error"] == "access_denied"
    assert (callback["state"], callback["iss"]) == (STATE, server.issuer)
    assert "code" not in callback


def test_login_page_carries_only_the_request_id(http: httpx.Client) -> None:
    pkce = new_pkce()

    page = authorize(http, pkce)

    assert set(form_inputs(page.text)) == {"request_id", "username"}
    assert form_inputs(page.text)["username"] == "demo-user"
    assert pkce.challenge not in page.text
    assert STATE not in page.text


def test_a_login_request_is_answered_once(http: httpx.Client) -> None:
    page = authorize(http, new_pkce())
    decide(http, page)

    again = decide(http, page)

    assert again.status_code == 400
    assert "location" not in again.headers


def test_a_login_request_expires(http: httpx.Client, clock: FakeClock) -> None:
    page = authorize(http, new_pkce())

    clock.advance(600)

    assert decide(http, page).status_code == 400


def test_a_malformed_username_is_refused(http: httpx.Client) -> None:
    request_id = form_inputs(authorize(http, new_pkce()).text)["request_id"]
    form = {"request_id": request_id, "username": "<script>", "decision": "allow"}

    response = http.post("/authorize/decision", data=form)

    assert response.status_code == 400
    assert "<script>" not in response.text


# -- refresh -------------------------------------------------------------------


def test_refresh_rotates_the_refresh_token(http: httpx.Client) -> None:
    first = tokens(http)

    second = refresh(http, first["refresh_token"]).json()

    assert second["refresh_token"] != first["refresh_token"]
    assert http.get("/userinfo", headers=bearer(second["access_token"])).is_success
    assert refresh(http, second["refresh_token"]).status_code == 200


def test_reusing_a_rotated_refresh_token_revokes_the_grant(
    server: SandboxServer, http: httpx.Client
) -> None:
    first = tokens(http)
    second = refresh(http, first["refresh_token"]).json()

    reuse = refresh(http, first["refresh_token"])

    assert error_of(reuse) == (400, "invalid_grant")
    assert (
        http.get("/userinfo", headers=bearer(second["access_token"])).status_code == 401
    )
    assert error_of(refresh(http, second["refresh_token"])) == (400, "invalid_grant")
    assert server.stats.replays_detected == 1


def test_refresh_may_narrow_the_scope_but_not_widen_it(http: httpx.Client) -> None:
    refresh_token = tokens(http)["refresh_token"]

    narrowed = refresh(http, refresh_token, scope="openid").json()
    widened = refresh(http, narrowed["refresh_token"], scope="openid offline_access")

    assert narrowed["scope"] == "openid"
    assert error_of(widened) == (400, "invalid_scope")


# -- access tokens and userinfo ------------------------------------------------


def test_access_token_expires_by_the_clock(
    http: httpx.Client, clock: FakeClock
) -> None:
    access_token = tokens(http)["access_token"]

    clock.advance(ACCESS_TTL)
    response = http.get("/userinfo", headers=bearer(access_token))

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_userinfo_refuses_a_token_in_the_query_string(http: httpx.Client) -> None:
    access_token = tokens(http)["access_token"]

    response = http.get("/userinfo", params={"access_token": access_token})

    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


def test_userinfo_without_credentials_gets_a_bare_challenge(
    http: httpx.Client,
) -> None:
    response = http.get("/userinfo")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="flow-sandbox"'


def test_userinfo_refuses_an_unknown_token(http: httpx.Client) -> None:
    response = http.get("/userinfo", headers=bearer("made-up"))

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


# -- revocation ----------------------------------------------------------------


def test_revoking_a_refresh_token_revokes_its_access_tokens(
    http: httpx.Client,
) -> None:
    issued = tokens(http)
    form = {"token": issued["refresh_token"], "token_type_hint": "refresh_token"}

    response = http.post("/revoke", data=form | {"client_id": DEMO_CLIENT_ID})

    assert response.status_code == 200
    assert (
        http.get("/userinfo", headers=bearer(issued["access_token"])).status_code == 401
    )
    assert error_of(refresh(http, issued["refresh_token"])) == (400, "invalid_grant")


def test_revoking_an_access_token_leaves_the_refresh_token(
    http: httpx.Client,
) -> None:
    issued = tokens(http)

    form = {"token": issued["access_token"], "client_id": DEMO_CLIENT_ID}
    response = http.post("/revoke", data=form)

    assert response.status_code == 200
    assert (
        http.get("/userinfo", headers=bearer(issued["access_token"])).status_code == 401
    )
    assert refresh(http, issued["refresh_token"]).status_code == 200


def test_revoking_an_unknown_token_succeeds(http: httpx.Client) -> None:
    form = {"token": "made-up", "client_id": DEMO_CLIENT_ID}

    assert http.post("/revoke", data=form).status_code == 200


def test_revocation_authenticates_the_client(http: httpx.Client) -> None:
    headers = basic(DEMO_CONFIDENTIAL_CLIENT_ID, "wrong")

    response = http.post("/revoke", data={"token": "t"}, headers=headers)

    assert error_of(response) == (401, "invalid_client")


def test_a_client_cannot_revoke_another_clients_token(http: httpx.Client) -> None:
    issued = tokens(http)
    headers = basic(DEMO_CONFIDENTIAL_CLIENT_ID, DEMO_CONFIDENTIAL_SECRET)

    response = http.post(
        "/revoke", data={"token": issued["refresh_token"]}, headers=headers
    )

    assert error_of(response) == (400, "invalid_request")
    assert refresh(http, issued["refresh_token"]).status_code == 200


# -- the token endpoint's request checks ---------------------------------------


def test_unsupported_grant_type(http: httpx.Client) -> None:
    form = {"grant_type": "password", "client_id": DEMO_CLIENT_ID}

    response = http.post("/token", data=form)

    assert error_of(response) == (400, "unsupported_grant_type")


def test_token_request_must_be_a_form(http: httpx.Client) -> None:
    body = {"grant_type": "refresh_token", "client_id": DEMO_CLIENT_ID}

    response = http.post("/token", json=body)

    assert error_of(response) == (400, "invalid_request")


def test_a_repeated_parameter_is_refused(http: httpx.Client) -> None:
    body = (
        "grant_type=refresh_token&refresh_token=a&refresh_token=b&client_id=flow-demo"
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded"}

    response = http.post("/token", content=body, headers=headers)

    assert error_of(response) == (400, "invalid_request")


def test_a_body_over_64_kib_is_refused(http: httpx.Client) -> None:
    form = {"grant_type": "refresh_token", "refresh_token": "x" * (64 * 1024)}

    response = http.post("/token", data=form)

    assert response.status_code == 413


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/token", 405), ("POST", "/userinfo", 405), ("GET", "/missing", 404)],
)
def test_unknown_routes_and_methods(
    http: httpx.Client, method: str, path: str, status: int
) -> None:
    assert http.request(method, path).status_code == status


# -- the server ----------------------------------------------------------------


def test_every_answer_carries_no_store_and_no_referrer(http: httpx.Client) -> None:
    page = authorize(http, new_pkce())
    responses = [
        http.get("/.well-known/openid-configuration"),
        page,
        decide(http, page),
        authorize(http, None),
        authorize(http, new_pkce(), client_id="unknown-client"),
        http.post("/token", data={"grant_type": "password"}),
        http.get("/userinfo"),
    ]

    for response in responses:
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["referrer-policy"] == "no-referrer"


def test_server_listens_on_loopback_only(server: SandboxServer) -> None:
    assert server.issuer == f"http://127.0.0.1:{server.port}"

    # All of 127.0.0.0/8 is loopback on Linux; a wildcard bind would answer here.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.2:{server.port}/", timeout=2.0, verify=TLS)


def test_a_foreign_host_header_is_refused(http: httpx.Client) -> None:
    response = http.get(
        "/.well-known/openid-configuration", headers={"Host": "rebound.example"}
    )

    assert response.status_code == 400


def test_stats_count_token_requests_refreshes_and_revocations(
    server: SandboxServer, http: httpx.Client
) -> None:
    issued = tokens(http)
    rotated = refresh(http, issued["refresh_token"]).json()
    http.post("/revoke", data={"token": rotated["refresh_token"], "client_id": "x"})
    form = {"token": rotated["refresh_token"], "client_id": DEMO_CLIENT_ID}
    http.post("/revoke", data=form)

    assert server.stats == SandboxStats(
        code_exchanges=1, refresh_requests=1, refreshes=1, revocations=1
    )


def test_the_server_prints_nothing(
    http: httpx.Client, capfd: pytest.CaptureFixture[str]
) -> None:
    tokens(http)
    http.get("/missing")

    assert capfd.readouterr() == ("", "")


def test_issuer_is_unknown_before_start() -> None:
    with pytest.raises(CallerError):
        _ = SandboxServer().issuer


def test_a_server_starts_once(server: SandboxServer) -> None:
    server.stop()

    with pytest.raises(CallerError):
        server.start()


@pytest.mark.parametrize(
    "make",
    [
        lambda: SandboxServer(access_token_ttl=0),
        lambda: SandboxServer(
            clients=[SandboxClient("twice"), SandboxClient("twice", client_secret="s")]
        ),
        lambda: SandboxClient("c", client_secret=""),
        lambda: SandboxClient("c", redirect_uri_prefixes=()),
    ],
    ids=["ttl", "repeated-id", "empty-secret", "no-redirect"],
)
def test_bad_configuration_is_refused(make: Callable[[], object]) -> None:
    with pytest.raises(ConfigurationError):
        make()


def test_a_client_repr_hides_its_secret() -> None:
    client = SandboxClient("c", client_secret="hidden-value")

    assert "hidden-value" not in repr(client)


def test_no_other_test_uses_the_sandbox() -> None:
    # The sandbox is for demos; flow's own tests meet oidc-provider instead.
    tests_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    uses = re.compile(r"flow\.sandbox|from flow import[^\n]*\bsandbox\b")
    users = []
    for folder, subfolders, files in os.walk(tests_root):
        subfolders[:] = [name for name in subfolders if name != "node_modules"]
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith(".py") and path != os.path.abspath(__file__):
                with open(path, encoding="utf-8") as source:
                    if uses.search(source.read()):
                        users.append(path)

    assert users == []
