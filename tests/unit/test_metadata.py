"""Authorization server metadata (RFC 8414, OpenID Connect Discovery 1.0).

SECURITY.md M6 and B2.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flow.errors import MetadataError
from flow.protocol.http import HttpResponse
from flow.protocol.metadata import (
    MAX_METADATA,
    discovery_requests,
    explicit_metadata,
    metadata_from_document,
    parse_metadata,
)
from flow.record import ServerMetadata

ISSUER = "https://as.example"
JSON_TYPE = {"content-type": "application/json"}


def _document(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/authorize",
        "token_endpoint": f"{ISSUER}/token",
        "revocation_endpoint": f"{ISSUER}/revoke",
        "userinfo_endpoint": f"{ISSUER}/userinfo",
        "authorization_response_iss_parameter_supported": True,
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
        ],
        "response_types_supported": ["code"],
    }
    document.update(changes)
    return document


def _without(name: str) -> dict[str, Any]:
    document = _document()
    del document[name]
    return document


def _response(document: object, status: int = 200) -> HttpResponse:
    return HttpResponse(status, JSON_TYPE, json.dumps(document).encode("utf-8"))


def _parse(document: object, expected_issuer: str = ISSUER) -> ServerMetadata:
    return parse_metadata(_response(document), expected_issuer)


# discovery_requests ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("issuer", "expected"),
    [
        (
            "https://as.example",
            [
                "https://as.example/.well-known/openid-configuration",
                "https://as.example/.well-known/oauth-authorization-server",
            ],
        ),
        (
            "https://as.example/",
            [
                "https://as.example/.well-known/openid-configuration",
                "https://as.example/.well-known/oauth-authorization-server",
            ],
        ),
        (
            "https://as.example/tenant/a",
            [
                "https://as.example/tenant/a/.well-known/openid-configuration",
                "https://as.example/.well-known/oauth-authorization-server/tenant/a",
            ],
        ),
        (
            "https://as.example:8443/tenant/",
            [
                "https://as.example:8443/tenant/.well-known/openid-configuration",
                "https://as.example:8443/.well-known/oauth-authorization-server/tenant",
            ],
        ),
        (
            "http://127.0.0.1:3000",
            [
                "http://127.0.0.1:3000/.well-known/openid-configuration",
                "http://127.0.0.1:3000/.well-known/oauth-authorization-server",
            ],
        ),
    ],
)
def test_discovery_tries_openid_then_rfc8414(issuer: str, expected: list[str]) -> None:
    assert [request.url for request in discovery_requests(issuer)] == expected


def test_discovery_requests_are_json_gets() -> None:
    requests = discovery_requests(ISSUER)

    assert [(r.method, r.headers["Accept"], r.form) for r in requests] == [
        ("GET", "application/json", None),
        ("GET", "application/json", None),
    ]


@pytest.mark.parametrize(
    "issuer", ["http://as.example", "as.example", "/issuer", "https://as.example#x"]
)
def test_discovery_refuses_an_insecure_or_relative_issuer(issuer: str) -> None:
    with pytest.raises(MetadataError):
        discovery_requests(issuer)


# parse_metadata: a good document --------------------------------------------------


def test_good_document_gives_server_metadata() -> None:
    assert _parse(_document()) == ServerMetadata(
        issuer=ISSUER,
        authorization_endpoint=f"{ISSUER}/authorize",
        token_endpoint=f"{ISSUER}/token",
        iss_parameter_supported=True,
        revocation_endpoint=f"{ISSUER}/revoke",
        userinfo_endpoint=f"{ISSUER}/userinfo",
        code_challenge_methods=("S256",),
        token_endpoint_auth_methods=("client_secret_basic", "client_secret_post"),
    )


def test_minimal_document_leaves_optional_fields_empty() -> None:
    document = {
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/authorize",
        "token_endpoint": f"{ISSUER}/token",
    }

    assert _parse(document) == ServerMetadata(
        issuer=ISSUER,
        authorization_endpoint=f"{ISSUER}/authorize",
        token_endpoint=f"{ISSUER}/token",
    )


def test_issuer_with_a_path_must_match_exactly() -> None:
    issuer = "https://as.example/tenant/a"

    assert _parse(_document(issuer=issuer), issuer).issuer == issuer


# Issuer mismatch (M6) -------------------------------------------------------------


@pytest.mark.parametrize(
    "issuer",
    [
        "https://as.example/",
        "https://evil.example",
        "https://AS.example",
        "https://as.example:443",
        "http://as.example",
        "",
        None,
        123,
        ["https://as.example"],
    ],
)
def test_issuer_that_differs_from_the_one_fetched_is_refused(issuer: object) -> None:
    with pytest.raises(MetadataError):
        _parse(_document(issuer=issuer))


def test_missing_issuer_is_refused() -> None:
    with pytest.raises(MetadataError):
        _parse(_without("issuer"))


def test_issuer_fetched_with_a_trailing_slash_must_match_with_it() -> None:
    with pytest.raises(MetadataError):
        _parse(_document(), expected_issuer=ISSUER + "/")


# Endpoints (B2) -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["authorization_endpoint", "token_endpoint"])
def test_missing_required_endpoint_is_refused(name: str) -> None:
    with pytest.raises(MetadataError, match=name):
        _parse(_without(name))


@pytest.mark.parametrize("name", ["authorization_endpoint", "token_endpoint"])
@pytest.mark.parametrize("value", [None, 1, ["https://as.example/x"], ""])
def test_required_endpoint_that_is_not_a_url_string_is_refused(
    name: str, value: object
) -> None:
    with pytest.raises(MetadataError):
        _parse(_document(**{name: value}))


@pytest.mark.parametrize(
    "name",
    [
        "authorization_endpoint",
        "token_endpoint",
        "revocation_endpoint",
        "userinfo_endpoint",
    ],
)
@pytest.mark.parametrize(
    "url",
    [
        "http://as.example/endpoint",
        "http://localhost.evil.example/endpoint",
        "http://127.0.0.1.evil.example/endpoint",
        "http://127.0.0.1@evil.example/endpoint",
        "ftp://as.example/endpoint",
        "javascript:alert(1)",
        "/endpoint",
        "as.example/endpoint",
        "https:///endpoint",
        "https://as.example/endpoint#fragment",
        "https://[::1/endpoint",
        "https://as\uff03example/endpoint",
    ],
)
def test_unusable_endpoint_url_is_refused(name: str, url: str) -> None:
    with pytest.raises(MetadataError, match=name):
        _parse(_document(**{name: url}))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_http_is_allowed_on_loopback(host: str) -> None:
    issuer = f"http://{host}:3000"
    document = _document(
        issuer=issuer,
        authorization_endpoint=f"{issuer}/authorize",
        token_endpoint=f"{issuer}/token",
        revocation_endpoint=None,
        userinfo_endpoint=None,
    )

    assert _parse(document, issuer).token_endpoint == f"{issuer}/token"


@pytest.mark.parametrize(
    "name",
    ["code_challenge_methods_supported", "token_endpoint_auth_methods_supported"],
)
@pytest.mark.parametrize("value", ["S256", [1], [None], {"S256": True}, None])
def test_list_field_that_is_not_a_list_of_strings_is_refused(
    name: str, value: object
) -> None:
    with pytest.raises(MetadataError, match=name):
        _parse(_document(**{name: value}))


# The HTTP answer ------------------------------------------------------------------


@pytest.mark.parametrize("status", [201, 204, 301, 302, 400, 404, 500])
def test_status_other_than_200_is_refused(status: int) -> None:
    with pytest.raises(MetadataError):
        parse_metadata(_response(_document(), status=status), ISSUER)


@pytest.mark.parametrize("body", [b"", b"{", b"<html></html>", b"\xff\xfe", b"NaN]"])
def test_body_that_is_not_json_is_refused(body: bytes) -> None:
    with pytest.raises(MetadataError):
        parse_metadata(HttpResponse(200, JSON_TYPE, body), ISSUER)


@pytest.mark.parametrize("body", [b"null", b"[]", b'"x"', b"1", b"true"])
def test_body_that_is_not_a_json_object_is_refused(body: bytes) -> None:
    with pytest.raises(MetadataError):
        parse_metadata(HttpResponse(200, JSON_TYPE, body), ISSUER)


def test_deeply_nested_body_is_refused() -> None:
    with pytest.raises(MetadataError):
        parse_metadata(HttpResponse(200, JSON_TYPE, b"[" * 100_000), ISSUER)


def test_body_over_max_metadata_is_refused() -> None:
    body = json.dumps(_document()).encode("utf-8")
    padded = body + b" " * (MAX_METADATA + 1 - len(body))

    with pytest.raises(MetadataError):
        parse_metadata(HttpResponse(200, JSON_TYPE, padded), ISSUER)


# RFC 9207 support flag ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", False),
        ("True", False),
        (1, False),
        (None, False),
        ([True], False),
    ],
)
def test_iss_parameter_supported_only_when_literally_true(
    value: object, expected: bool
) -> None:
    document = _document(authorization_response_iss_parameter_supported=value)

    assert _parse(document).iss_parameter_supported is expected


def test_iss_parameter_supported_defaults_to_false() -> None:
    document = _without("authorization_response_iss_parameter_supported")

    assert _parse(document).iss_parameter_supported is False


# metadata_from_document and explicit_metadata -------------------------------------


def test_metadata_from_document_skips_the_issuer_comparison_only() -> None:
    other = "https://other.example"

    assert metadata_from_document(_document(issuer=other)).issuer == other


@pytest.mark.parametrize(
    ("authorization_endpoint", "origin"),
    [
        ("https://login.example/oauth/authorize", "https://login.example"),
        ("https://login.example:8443/a/authorize?x=1", "https://login.example:8443"),
        ("http://127.0.0.1:3000/authorize", "http://127.0.0.1:3000"),
    ],
)
def test_explicit_metadata_defaults_issuer_to_the_authorization_origin(
    authorization_endpoint: str, origin: str
) -> None:
    metadata = explicit_metadata(
        authorization_endpoint=authorization_endpoint,
        token_endpoint="https://login.example/oauth/token",
    )

    assert metadata.issuer == origin


def test_explicit_metadata_keeps_what_it_was_given() -> None:
    metadata = explicit_metadata(
        authorization_endpoint="https://login.example/authorize",
        token_endpoint="https://login.example/token",
        issuer="https://login.example/tenant",
        iss_parameter_supported=True,
        revocation_endpoint="https://login.example/revoke",
        userinfo_endpoint="https://login.example/me",
    )

    assert metadata == ServerMetadata(
        issuer="https://login.example/tenant",
        authorization_endpoint="https://login.example/authorize",
        token_endpoint="https://login.example/token",
        iss_parameter_supported=True,
        revocation_endpoint="https://login.example/revoke",
        userinfo_endpoint="https://login.example/me",
    )


@pytest.mark.parametrize(
    ("authorization_endpoint", "token_endpoint"),
    [
        ("http://login.example/authorize", "https://login.example/token"),
        ("https://login.example/authorize", "http://login.example/token"),
        ("https://[::1/authorize", "https://login.example/token"),
        ("/authorize", "https://login.example/token"),
    ],
)
def test_explicit_metadata_refuses_unusable_urls(
    authorization_endpoint: str, token_endpoint: str
) -> None:
    with pytest.raises(MetadataError):
        explicit_metadata(
            authorization_endpoint=authorization_endpoint,
            token_endpoint=token_endpoint,
        )


# Property: a valid snapshot or a MetadataError ------------------------------------

FIELDS = [
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "revocation_endpoint",
    "userinfo_endpoint",
    "authorization_response_iss_parameter_supported",
    "code_challenge_methods_supported",
    "token_endpoint_auth_methods_supported",
]
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.sampled_from([ISSUER, f"{ISSUER}/a", "http://x", "https://[", "S256"]),
    lambda children: st.lists(children, max_size=3),
    max_leaves=6,
)


@settings(max_examples=200)
@given(
    base=st.booleans(),
    changes=st.dictionaries(st.sampled_from(FIELDS), values, max_size=4),
)
def test_any_document_gives_a_matching_snapshot_or_a_metadata_error(
    base: bool, changes: dict[str, Any]
) -> None:
    document = {**(_document() if base else {}), **changes}
    try:
        metadata = _parse(document)
    except MetadataError:
        return

    assert metadata.issuer == ISSUER
