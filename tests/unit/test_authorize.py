"""The authorization request URL (RFC 6749 section 4.1.1, RFC 7636 section 4.3)."""

from __future__ import annotations

from urllib.parse import parse_qs, parse_qsl, unquote, unquote_plus, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flow.errors import ConfigurationError
from flow.protocol.authorize import RESERVED, authorization_url
from flow.protocol.pkce import new_state, new_verifier, s256_challenge
from flow.record import Client, ServerMetadata

SERVER = ServerMetadata(
    issuer="https://as.example",
    authorization_endpoint="https://as.example/oauth/authorize",
    token_endpoint="https://as.example/oauth/token",
)
CLIENT = Client(client_id="client-1", redirect_uri="http://127.0.0.1:8765/callback")
STATE = "state-value-0123456789"
VERIFIER = "VERIFIER-CANARY-" + "v" * 40


def _url(
    server: ServerMetadata = SERVER,
    client: Client = CLIENT,
    *,
    scopes: tuple[str, ...] = (),
    extra: dict[str, str] | None = None,
) -> str:
    return authorization_url(
        server, client, state=STATE, verifier=VERIFIER, scopes=scopes, extra=extra
    )


def _params(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def _single(url: str) -> dict[str, str]:
    params = _params(url)
    assert all(len(values) == 1 for values in params.values())
    return {name: values[0] for name, values in params.items()}


# Where the browser goes -----------------------------------------------------------


def test_url_points_at_the_authorization_endpoint() -> None:
    parts = urlsplit(_url())

    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "as.example",
        "/oauth/authorize",
    )


def test_required_parameters_are_present_exactly_once() -> None:
    assert _single(_url()) == {
        "response_type": "code",
        "client_id": "client-1",
        "redirect_uri": "http://127.0.0.1:8765/callback",
        "state": STATE,
        "code_challenge": s256_challenge(VERIFIER),
        "code_challenge_method": "S256",
    }


def test_code_challenge_method_is_s256_even_when_the_server_advertises_nothing() -> (
    None
):
    server = ServerMetadata(
        issuer=SERVER.issuer,
        authorization_endpoint=SERVER.authorization_endpoint,
        token_endpoint=SERVER.token_endpoint,
        code_challenge_methods=(),
    )

    assert _single(_url(server))["code_challenge_method"] == "S256"


def test_code_challenge_method_is_s256_even_when_the_server_offers_plain() -> None:
    server = ServerMetadata(
        issuer=SERVER.issuer,
        authorization_endpoint=SERVER.authorization_endpoint,
        token_endpoint=SERVER.token_endpoint,
        code_challenge_methods=("plain",),
    )

    assert _single(_url(server))["code_challenge_method"] == "S256"


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://127.0.0.1:8765/callback/",
        "https://app.example:443/cb?b=2&a=1",
        "https://app.example/call%20back",
        "https://app.example/cb#",
        "com.example.app:/oauth2redirect",
        "https://app.example/ünïcode?x=é",
    ],
)
def test_redirect_uri_is_sent_byte_identical(redirect_uri: str) -> None:
    client = Client(client_id="client-1", redirect_uri=redirect_uri)

    assert _single(_url(client=client))["redirect_uri"] == redirect_uri


def test_client_id_with_reserved_characters_survives_encoding() -> None:
    client = Client(client_id="a b&c=d+e/f", redirect_uri=CLIENT.redirect_uri)

    assert _single(_url(client=client))["client_id"] == "a b&c=d+e/f"


# Scopes ---------------------------------------------------------------------------


def test_scopes_are_joined_with_spaces() -> None:
    url = _url(scopes=("openid", "profile", "email"))

    assert _single(url)["scope"] == "openid profile email"


def test_scope_order_is_kept() -> None:
    url = _url(scopes=("b", "a", "c"))

    assert _single(url)["scope"] == "b a c"


def test_no_scope_parameter_without_scopes() -> None:
    assert "scope" not in _params(_url())


# Endpoint query and fragment ------------------------------------------------------


def test_existing_endpoint_query_is_kept_first() -> None:
    server = ServerMetadata(
        issuer=SERVER.issuer,
        authorization_endpoint="https://as.example/authorize?tenant=acme&mode=x",
        token_endpoint=SERVER.token_endpoint,
    )

    pairs = parse_qsl(urlsplit(_url(server)).query, keep_blank_values=True)

    assert pairs[:2] == [("tenant", "acme"), ("mode", "x")]


def test_existing_endpoint_query_with_blank_value_is_kept() -> None:
    server = ServerMetadata(
        issuer=SERVER.issuer,
        authorization_endpoint="https://as.example/authorize?flag=",
        token_endpoint=SERVER.token_endpoint,
    )

    assert _params(_url(server))["flag"] == [""]


def test_endpoint_fragment_is_dropped() -> None:
    server = ServerMetadata(
        issuer=SERVER.issuer,
        authorization_endpoint="https://as.example/authorize?a=1#section",
        token_endpoint=SERVER.token_endpoint,
    )

    url = _url(server)

    assert (urlsplit(url).fragment, "#" in url) == ("", False)


# Extra parameters -----------------------------------------------------------------


def test_extra_parameters_are_added() -> None:
    params = _single(_url(extra={"prompt": "consent", "login_hint": "a@b.example"}))

    assert (params["prompt"], params["login_hint"]) == ("consent", "a@b.example")


def test_extra_parameters_do_not_displace_required_ones() -> None:
    params = _single(_url(extra={"prompt": "login"}))

    assert (params["state"], params["code_challenge_method"]) == (STATE, "S256")


@pytest.mark.parametrize("name", sorted(RESERVED))
def test_extra_parameter_that_collides_with_a_reserved_one_is_refused(
    name: str,
) -> None:
    with pytest.raises(ConfigurationError, match=name):
        _url(extra={name: "override"})


def test_reserved_names_cover_every_parameter_flow_sets() -> None:
    expected = {
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
    }

    assert set(RESERVED) == expected


def test_collision_error_does_not_echo_the_value() -> None:
    with pytest.raises(ConfigurationError) as caught:
        _url(extra={"code_challenge_method": "plain-CANARY"})

    assert "plain-CANARY" not in str(caught.value)


# The verifier stays secret (RFC 7636 section 4.3, SECURITY.md P3) -----------------


def test_verifier_never_appears_in_the_url() -> None:
    url = _url(scopes=("openid",), extra={"prompt": "consent"})

    decoded = (url, unquote(url), unquote_plus(url))

    assert [VERIFIER in text for text in decoded] == [False, False, False]


@settings(max_examples=50)
@given(scopes=st.lists(st.sampled_from(["openid", "email", "offline_access"])))
def test_fresh_verifier_never_appears_in_the_url(scopes: list[str]) -> None:
    verifier = new_verifier()
    state = new_state()

    url = authorization_url(
        SERVER, CLIENT, state=state, verifier=verifier, scopes=scopes
    )

    assert (verifier in unquote_plus(url), _single(url)["state"]) == (False, state)


def test_reserved_parameters_in_the_endpoint_query_are_not_sent_twice() -> None:
    server = ServerMetadata(
        issuer="https://as.example",
        authorization_endpoint="https://as.example/auth?client_id=other&tenant=t1",
        token_endpoint="https://as.example/token",
    )

    params = _single(_url(server))

    assert (params["client_id"], params["tenant"]) == ("client-1", "t1")
