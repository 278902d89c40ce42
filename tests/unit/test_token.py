"""The token request and response (RFC 6749 sections 2.3.1, 4.1.3, 5.1, 5.2).

SECURITY.md T1-T3, L1.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flow.errors import (
    ConfigurationError,
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    MalformedResponse,
    OAuthError,
    ProviderError,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from flow.protocol.http import HttpRequest, HttpResponse
from flow.protocol.text import MAX_TEXT
from flow.protocol.token import (
    MAX_BODY,
    TokenResult,
    basic_credentials,
    code_request,
    parse_token_response,
)
from flow.record import AuthMethod, Client, ServerMetadata

SERVER = ServerMetadata(
    issuer="https://as.example",
    authorization_endpoint="https://as.example/authorize",
    token_endpoint="https://as.example/token",
)
REDIRECT_URI = "http://127.0.0.1:8765/cb/?b=2&a=1"
CODE = "CODE-CANARY-7f3a"
VERIFIER = "VERIFIER-CANARY-" + "v" * 40
SECRET = "SECRET-CANARY:+/%é"
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
JSON_TYPE = {"content-type": "application/json"}


def _client(method: AuthMethod, client_id: str = "client-1") -> Client:
    return Client(client_id=client_id, redirect_uri=REDIRECT_URI, auth_method=method)


def _request(method: AuthMethod, secret: str | None = SECRET) -> HttpRequest:
    return code_request(
        SERVER, _client(method), client_secret=secret, code=CODE, verifier=VERIFIER
    )


def _form(request: HttpRequest) -> dict[str, str]:
    assert request.form is not None
    return dict(request.form)


def _decode_basic(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.partition(" ")
    assert scheme == "Basic"
    client_id, _, secret = base64.b64decode(encoded).decode("ascii").partition(":")
    return unquote_plus(client_id), unquote_plus(secret)


# code_request: what every method sends --------------------------------------------


@pytest.mark.parametrize("method", list(AuthMethod))
def test_code_request_posts_to_the_token_endpoint(method: AuthMethod) -> None:
    request = _request(method)

    assert (request.method, request.url) == ("POST", "https://as.example/token")


@pytest.mark.parametrize("method", list(AuthMethod))
def test_code_request_carries_grant_code_redirect_uri_and_verifier(
    method: AuthMethod,
) -> None:
    form = _form(_request(method))

    assert {
        name: form[name]
        for name in ("grant_type", "code", "redirect_uri", "code_verifier")
    } == {
        "grant_type": "authorization_code",
        "code": CODE,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": VERIFIER,
    }


@pytest.mark.parametrize("method", list(AuthMethod))
def test_code_request_asks_for_json(method: AuthMethod) -> None:
    assert _request(method).headers["Accept"] == "application/json"


# client_secret_basic --------------------------------------------------------------


def test_basic_sends_credentials_in_the_authorization_header_only() -> None:
    request = _request(AuthMethod.CLIENT_SECRET_BASIC)

    assert (
        "client_secret" in _form(request),
        "client_id" in _form(request),
        "Authorization" in request.headers,
    ) == (False, False, True)


def test_basic_header_form_encodes_both_parts_before_base64() -> None:
    # RFC 6749 section 2.3.1: ':' '+' '/' '%' and non-ASCII are percent-encoded.
    pair = "client%3A1:SECRET-CANARY%3A%2B%2F%25%C3%A9"
    expected = "Basic " + base64.b64encode(pair.encode("ascii")).decode("ascii")

    request = code_request(
        SERVER,
        _client(AuthMethod.CLIENT_SECRET_BASIC, client_id="client:1"),
        client_secret=SECRET,
        code=CODE,
        verifier=VERIFIER,
    )

    assert request.headers["Authorization"] == expected


@settings(max_examples=200)
@given(
    client_id=st.text(min_size=1),
    secret=st.text(min_size=1),
)
def test_basic_header_decodes_back_to_id_and_secret(
    client_id: str, secret: str
) -> None:
    header = basic_credentials(client_id, secret)

    assert (header.isascii(), _decode_basic(header)) == (True, (client_id, secret))


# client_secret_post and none ------------------------------------------------------


def test_post_sends_id_and_secret_in_the_form_without_authorization() -> None:
    request = _request(AuthMethod.CLIENT_SECRET_POST)
    form = _form(request)

    assert (
        form["client_id"],
        form["client_secret"],
        "Authorization" in request.headers,
    ) == (
        "client-1",
        SECRET,
        False,
    )


def test_none_sends_client_id_only() -> None:
    request = _request(AuthMethod.NONE, secret=None)
    form = _form(request)

    assert (
        form["client_id"],
        "client_secret" in form,
        "Authorization" in request.headers,
    ) == (
        "client-1",
        False,
        False,
    )


def test_none_sends_a_secret_only_in_the_body_when_the_engine_passes_one() -> None:
    # The engine passes a public client's secret only for providers that demand
    # it (Google's desktop clients); it never goes into a header.
    request = _request(AuthMethod.NONE, secret=SECRET)

    assert (
        SECRET in repr(dict(request.headers)),
        _form(request)["client_secret"],
        "Authorization" in request.headers,
    ) == (False, SECRET, False)


@pytest.mark.parametrize(
    "method", [AuthMethod.CLIENT_SECRET_BASIC, AuthMethod.CLIENT_SECRET_POST]
)
@pytest.mark.parametrize("secret", [None, ""])
def test_confidential_method_without_secret_is_a_configuration_error(
    method: AuthMethod, secret: str | None
) -> None:
    with pytest.raises(ConfigurationError):
        _request(method, secret=secret)


# Request repr (L1) ----------------------------------------------------------------


@pytest.mark.parametrize("method", list(AuthMethod))
def test_request_repr_hides_code_verifier_secret_and_authorization(
    method: AuthMethod,
) -> None:
    request = _request(method)
    canaries = [CODE, VERIFIER, SECRET]
    if "Authorization" in request.headers:
        canaries.append(request.headers["Authorization"].split(" ", 1)[1])

    shown = repr(request) + str(request)

    assert [canary for canary in canaries if canary in shown] == []


def test_request_repr_still_shows_non_secret_fields() -> None:
    shown = repr(_request(AuthMethod.CLIENT_SECRET_BASIC))

    assert ("authorization_code" in shown, REDIRECT_URI in shown) == (True, True)


# parse_token_response: helpers ----------------------------------------------------

ACCESS = "AT-CANARY-1"
REFRESH = "RT-CANARY-2"
ID_TOKEN = "IDT-CANARY-3"


def _good(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "access_token": ACCESS,
        "token_type": "Bearer",
        "expires_in": 3600,
        "refresh_token": REFRESH,
        "id_token": ID_TOKEN,
        "scope": "openid email",
    }
    document.update(changes)
    return document


def _response(
    document: object,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    body = json.dumps(document).encode("utf-8")
    return HttpResponse(status, JSON_TYPE if headers is None else headers, body)


def _parse(response: HttpResponse) -> TokenResult:
    return parse_token_response(response, NOW)


def _without(name: str) -> dict[str, Any]:
    document = _good()
    del document[name]
    return document


# parse_token_response: valid answers ----------------------------------------------


def test_valid_response_gives_tokens_and_facts() -> None:
    result = _parse(_response(_good()))

    assert (
        result.access_token,
        result.refresh_token,
        result.id_token,
        result.info.token_type,
        result.info.issued_at,
        result.info.expires_at,
        result.info.scope,
    ) == (
        ACCESS,
        REFRESH,
        ID_TOKEN,
        "Bearer",
        NOW,
        NOW + timedelta(seconds=3600),
        "openid email",
    )


def test_minimal_response_leaves_optional_fields_empty() -> None:
    document = {"access_token": ACCESS, "token_type": "Bearer"}

    result = _parse(_response(document))

    assert (result.refresh_token, result.id_token, result.info.scope) == (
        None,
        None,
        None,
    )


@pytest.mark.parametrize("token_type", ["Bearer", "bearer", "BEARER", "bEARER"])
def test_token_type_is_case_insensitive_and_normalised(token_type: str) -> None:
    result = _parse(_response(_good(token_type=token_type)))

    assert result.info.token_type == "Bearer"


@pytest.mark.parametrize(
    ("expires_in", "delta"),
    [
        (3600, timedelta(seconds=3600)),
        (1, timedelta(seconds=1)),
        (1.5, timedelta(seconds=1.5)),
        (86400.25, timedelta(days=1, milliseconds=250)),
    ],
)
def test_expires_in_gives_an_absolute_expiry(
    expires_in: float, delta: timedelta
) -> None:
    result = _parse(_response(_good(expires_in=expires_in)))

    assert result.info.expires_at == NOW + delta


def test_absent_expires_in_leaves_expiry_unknown() -> None:
    assert _parse(_response(_without("expires_in"))).info.expires_at is None


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON"],
)
def test_json_content_types_are_accepted(content_type: str) -> None:
    result = _parse(_response(_good(), headers={"content-type": content_type}))

    assert result.access_token == ACCESS


def test_unknown_fields_are_ignored() -> None:
    result = _parse(_response(_good(foo={"nested": [1, 2]}, token_extra=None)))

    assert result.access_token == ACCESS


def test_body_of_exactly_max_body_is_accepted() -> None:
    body = json.dumps(_good()).encode("utf-8")
    padded = body + b" " * (MAX_BODY - len(body))

    result = _parse(HttpResponse(200, JSON_TYPE, padded))

    assert result.access_token == ACCESS


def test_result_repr_shows_no_token() -> None:
    result = _parse(_response(_good()))
    shown = repr(result) + str(result)

    assert [t for t in (ACCESS, REFRESH, ID_TOKEN) if t in shown] == []


# parse_token_response: malformed answers (T1-T3) ----------------------------------


def _rejected(response: HttpResponse) -> MalformedResponse:
    with pytest.raises(MalformedResponse) as caught:
        _parse(response)
    return caught.value


@pytest.mark.parametrize(
    "expires_in",
    [0, -1, -0.5, 0.0, "3600", "", True, False, [], {}, 10**20, 1e300],
)
def test_bad_expires_in_is_malformed(expires_in: object) -> None:
    _rejected(_response(_good(expires_in=expires_in)))


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_expires_in_is_malformed(literal: bytes) -> None:
    body = b'{"access_token": "a", "token_type": "Bearer", "expires_in": %s}' % literal

    _rejected(HttpResponse(200, JSON_TYPE, body))


@pytest.mark.parametrize("access_token", ["", 123, None, [], {}, True])
def test_bad_access_token_is_malformed(access_token: object) -> None:
    _rejected(_response(_good(access_token=access_token)))


def test_missing_access_token_is_malformed() -> None:
    _rejected(_response(_without("access_token")))


@pytest.mark.parametrize(
    "token_type", ["mac", "foo", "", "Bearer ", "DPoP", 1, None, ["Bearer"]]
)
def test_unsupported_token_type_is_malformed(token_type: object) -> None:
    _rejected(_response(_good(token_type=token_type)))


def test_missing_token_type_is_malformed() -> None:
    _rejected(_response(_without("token_type")))


@pytest.mark.parametrize("body", [b"null", b"[]", b'"x"', b"1", b"true", b"[{}]"])
def test_body_that_is_not_a_json_object_is_malformed(body: bytes) -> None:
    _rejected(HttpResponse(200, JSON_TYPE, body))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"access_token=a&token_type=bearer",
        b"\xff\xfe\x00garbage",
        b"{'a': 1}",
    ],
)
def test_body_that_is_not_json_is_malformed(body: bytes) -> None:
    _rejected(HttpResponse(200, JSON_TYPE, body))


def test_deeply_nested_json_body_is_malformed() -> None:
    _rejected(HttpResponse(200, JSON_TYPE, b"[" * 100_000))


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "text/html"},
        {"content-type": "text/plain"},
        {"content-type": "application/jsonp"},
        {"content-type": "application/x-www-form-urlencoded"},
        {},
    ],
)
def test_wrong_or_missing_content_type_is_malformed(headers: dict[str, str]) -> None:
    _rejected(_response(_good(), headers=headers))


@pytest.mark.parametrize("name", ["refresh_token", "scope", "id_token"])
@pytest.mark.parametrize("value", [None, 1, [], {}])
def test_optional_string_field_of_another_type_is_malformed(
    name: str, value: object
) -> None:
    _rejected(_response(_good(**{name: value})))


def test_body_over_max_body_is_malformed() -> None:
    body = json.dumps(_good()).encode("utf-8")
    padded = body + b" " * (MAX_BODY + 1 - len(body))

    _rejected(HttpResponse(200, JSON_TYPE, padded))


def test_malformed_error_does_not_echo_tokens() -> None:
    error = _rejected(_response(_good(token_type="mac")))

    assert [t for t in (ACCESS, REFRESH, ID_TOKEN) if t in str(error)] == []


# parse_token_response: error answers (RFC 6749 section 5.2) -----------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("invalid_request", InvalidRequest),
        ("invalid_client", InvalidClient),
        ("invalid_grant", InvalidGrant),
        ("unauthorized_client", UnauthorizedClient),
        ("unsupported_grant_type", UnsupportedGrantType),
        ("invalid_scope", InvalidScope),
    ],
)
@pytest.mark.parametrize("status", [400, 401])
def test_error_answer_raises_the_typed_error(
    code: str, expected: type[OAuthError], status: int
) -> None:
    with pytest.raises(OAuthError) as caught:
        _parse(_response({"error": code}, status=status))

    assert (type(caught.value), caught.value.error) == (expected, code)


def test_unknown_error_code_raises_the_oauth_error_base() -> None:
    with pytest.raises(OAuthError) as caught:
        _parse(_response({"error": "custom_error"}, status=400))

    assert (type(caught.value), caught.value.error) == (OAuthError, "custom_error")


def test_error_description_is_escaped_and_truncated() -> None:
    document = {"error": "invalid_grant", "error_description": "x\r\ny" * 5000}

    with pytest.raises(InvalidGrant) as caught:
        _parse(_response(document, status=400))

    description = caught.value.description
    assert description is not None
    assert (len(description) <= MAX_TEXT, "\n" in description) == (True, False)


def test_non_string_error_description_is_dropped() -> None:
    document = {"error": "invalid_grant", "error_description": ["a"]}

    with pytest.raises(InvalidGrant) as caught:
        _parse(_response(document, status=400))

    assert caught.value.description is None


def test_server_error_page_in_html_is_malformed() -> None:
    html = HttpResponse(500, {"content-type": "text/html"}, b"<h1>Oops</h1>")

    _rejected(html)


@pytest.mark.parametrize(
    "document", [{}, {"error": ""}, {"error": 400}, {"error": None}, {"message": "x"}]
)
def test_error_status_with_json_lacking_an_error_code_is_malformed(
    document: dict[str, object],
) -> None:
    _rejected(_response(document, status=400))


def test_error_status_with_a_token_body_is_not_accepted() -> None:
    _rejected(_response(_good(), status=500))


# Property: only a valid result or a ProviderError ---------------------------------

FIELDS = [
    "access_token",
    "token_type",
    "expires_in",
    "refresh_token",
    "id_token",
    "scope",
    "error",
    "error_description",
]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.sampled_from(["Bearer", "bEaReR", "mac", "", "invalid_grant"])
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
token_documents = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=8), json_values, max_size=8
)


def _perturbed(changes: dict[str, Any], dropped: set[str]) -> dict[str, Any]:
    """A valid answer with some fields replaced and some removed."""
    document = _good(**changes)
    return {name: value for name, value in document.items() if name not in dropped}


perturbed_documents = st.builds(
    _perturbed,
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=2),
    st.sets(st.sampled_from(FIELDS), max_size=2),
)


def _accept_or_provider_error(response: HttpResponse) -> None:
    try:
        result = _parse(response)
    except ProviderError:
        return
    assert (
        response.status,
        isinstance(result.access_token, str) and result.access_token != "",
        result.info.token_type,
    ) == (200, True, "Bearer")


@settings(max_examples=300)
@given(
    document=json_values | token_documents | perturbed_documents,
    status=st.sampled_from([200, 200, 400, 401, 500]),
)
def test_any_json_body_gives_a_bearer_result_or_a_provider_error(
    document: object, status: int
) -> None:
    body = json.dumps(document, allow_nan=True).encode("utf-8")

    _accept_or_provider_error(HttpResponse(status, JSON_TYPE, body))


@settings(max_examples=100)
@given(body=st.binary(max_size=64), status=st.sampled_from([200, 400, 500]))
def test_any_bytes_give_a_result_or_a_provider_error(body: bytes, status: int) -> None:
    _accept_or_provider_error(HttpResponse(status, JSON_TYPE, body))


def test_null_expires_in_is_malformed_while_absent_means_unknown() -> None:
    with pytest.raises(MalformedResponse):
        _parse(_response({**_good(), "expires_in": None}))

    assert _parse(_response(_without("expires_in"))).info.expires_at is None
