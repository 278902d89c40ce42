"""Parsing and verifying the authorization response (SECURITY.md sections 1, 2, 8).

RFC 6749 section 4.1.2, RFC 9207 section 2.4, RFC 9700 sections 2.1 and 4.7.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flow.errors import (
    AccessDenied,
    CallbackError,
    DuplicateParameter,
    FlowError,
    InvalidRequest,
    InvalidScope,
    IssuerMismatch,
    MissingCode,
    OAuthError,
    ServerError,
    StateMismatch,
    TemporarilyUnavailable,
    UnauthorizedClient,
    UnexpectedParameter,
    UnsupportedResponseType,
)
from flow.protocol.callback import (
    FORBIDDEN,
    MAX_QUERY,
    CallbackParams,
    parse_callback,
    verify_callback,
)
from flow.protocol.pkce import state_digest
from flow.protocol.text import MAX_TEXT

ISSUER = "https://as.example"
STATE = "s7aTe-VaLuE_0123456789"
STATE_HASH = state_digest(STATE)
CODE = "c0de-CANARY"
#: FULLWIDTH NUMBER SIGN: NFKC-normalises to "#", which urlsplit refuses in a host.
FULLWIDTH_HASH = "\uff03"


def _query(*pairs: tuple[str, str]) -> str:
    return urlencode(pairs)


def _good(*extra: tuple[str, str]) -> str:
    return _query(("code", CODE), ("state", STATE), ("iss", ISSUER), *extra)


def _verify(callback: str, *, iss_required: bool = True) -> str:
    return verify_callback(
        parse_callback(callback),
        issuer=ISSUER,
        iss_required=iss_required,
        state_hash=STATE_HASH,
    )


# parse_callback: accepted shapes --------------------------------------------------

EXPECTED_PAIRS = (("code", "abc"), ("state", "xyz"))


@pytest.mark.parametrize(
    "callback",
    [
        "https://app.example/cb?code=abc&state=xyz",
        "http://127.0.0.1:8765/cb?code=abc&state=xyz#frag",
        "code=abc&state=xyz",
        "?code=abc&state=xyz",
        "/cb?code=abc&state=xyz",
        "/cb?code=abc&state=xyz#frag",
    ],
)
def test_parse_accepts_url_query_and_path_forms(callback: str) -> None:
    assert parse_callback(callback).pairs == EXPECTED_PAIRS


def test_parse_reads_bare_query_with_unencoded_iss_url() -> None:
    params = parse_callback("iss=http://127.0.0.1:3000&code=abc&state=xyz")

    assert params.pairs == (
        ("iss", "http://127.0.0.1:3000"),
        ("code", "abc"),
        ("state", "xyz"),
    )


def test_parse_reads_bare_query_with_unencoded_https_iss_first() -> None:
    params = parse_callback("iss=https://as.example/tenant&state=xyz")

    assert params.get("iss") == "https://as.example/tenant"


def test_parse_keeps_duplicates_in_order() -> None:
    params = parse_callback("state=a&code=x&state=b")

    assert params.pairs == (("state", "a"), ("code", "x"), ("state", "b"))


def test_parse_keeps_blank_values() -> None:
    assert parse_callback("code=&state=x").pairs == (("code", ""), ("state", "x"))


def test_parse_decodes_percent_encoding_exactly_once() -> None:
    params = parse_callback("iss=https%253A%252F%252Fas.example&state=%C3%A9")

    assert params.pairs == (("iss", "https%3A%2F%2Fas.example"), ("state", "é"))


def test_parse_does_not_split_on_semicolons() -> None:
    assert parse_callback("code=a;state=b").pairs == (("code", "a;state=b"),)


def test_parse_of_empty_query_gives_no_pairs() -> None:
    assert parse_callback("").pairs == ()


def test_get_returns_first_value_and_names_keep_repeats() -> None:
    params = CallbackParams((("a", "1"), ("b", "2"), ("a", "3")))

    assert (params.get("a"), params.get("z"), params.names()) == (
        "1",
        None,
        ["a", "b", "a"],
    )


def test_params_repr_shows_names_only() -> None:
    text = repr(parse_callback(_good()))

    assert (CODE in text, STATE in text, "code" in text) == (False, False, True)


# parse_callback: rejected input ---------------------------------------------------


@pytest.mark.parametrize(
    "callback",
    [
        "code=%ff&state=x",
        "state=%c3%28",
        "code=%e2%82",
        "state=%ed%a0%80",
        "https://app.example/cb?code=%80",
        "%fe%ff=x",
    ],
)
def test_parse_rejects_invalid_percent_encoded_utf8(callback: str) -> None:
    with pytest.raises(CallbackError):
        parse_callback(callback)


def test_parse_rejects_query_longer_than_max_query() -> None:
    with pytest.raises(CallbackError):
        parse_callback("code=" + "a" * MAX_QUERY)


def test_parse_rejects_long_query_inside_a_url() -> None:
    with pytest.raises(CallbackError):
        parse_callback("https://app.example/cb?code=" + "a" * MAX_QUERY)


def test_parse_rejects_one_megabyte_query() -> None:
    with pytest.raises(CallbackError):
        parse_callback("x=" + "%41" * (1024 * 1024 // 3))


def test_parse_accepts_query_of_exactly_max_query() -> None:
    query = "code=" + "a" * (MAX_QUERY - len("code="))

    assert len(parse_callback(query).pairs) == 1


@pytest.mark.parametrize(
    "callback",
    [
        "//[",
        "//]",
        "https://[::1/cb?code=a&state=b",
        f"https://a{FULLWIDTH_HASH}b/cb?code=a",
    ],
)
def test_parse_rejects_unparseable_url_with_callback_error(callback: str) -> None:
    with pytest.raises(CallbackError):
        parse_callback(callback)


# verify_callback: success and C8 --------------------------------------------------


def test_valid_callback_returns_the_code() -> None:
    assert _verify(_good()) == CODE


def test_unknown_extra_parameters_are_ignored() -> None:
    callback = _good(("foo", "CANARY"), ("session_state", "x"), ("scope", "openid"))

    assert _verify(callback) == CODE


def test_callback_as_full_url_with_iss_verifies() -> None:
    assert _verify("https://app.example/cb?" + _good()) == CODE


def test_bare_query_with_unencoded_iss_verifies() -> None:
    callback = f"code={CODE}&state={STATE}&iss={ISSUER}"

    assert _verify(callback) == CODE


# verify_callback: check order (C4) ------------------------------------------------


def test_error_with_wrong_state_is_a_state_mismatch() -> None:
    callback = _query(("error", "access_denied"), ("state", "WRONG"), ("iss", ISSUER))

    with pytest.raises(StateMismatch):
        _verify(callback)


def test_error_with_wrong_state_and_no_iss_is_a_state_mismatch_when_optional() -> None:
    callback = _query(("error", "access_denied"), ("state", "WRONG"))

    with pytest.raises(StateMismatch):
        _verify(callback, iss_required=False)


def test_error_without_state_is_a_state_mismatch() -> None:
    callback = _query(("error", "access_denied"), ("iss", ISSUER))

    with pytest.raises(StateMismatch):
        _verify(callback)


def test_error_with_wrong_iss_is_an_issuer_mismatch() -> None:
    callback = _query(
        ("error", "access_denied"), ("state", STATE), ("iss", "https://evil.example")
    )

    with pytest.raises(IssuerMismatch):
        _verify(callback)


def test_wrong_iss_and_wrong_state_is_an_issuer_mismatch() -> None:
    callback = _query(
        ("code", CODE), ("state", "WRONG"), ("iss", "https://evil.example")
    )

    with pytest.raises(IssuerMismatch):
        _verify(callback)


def test_missing_required_iss_and_wrong_state_is_an_issuer_mismatch() -> None:
    with pytest.raises(IssuerMismatch):
        _verify(_query(("code", CODE), ("state", "WRONG")))


def test_error_is_checked_before_code() -> None:
    callback = _good(("error", "access_denied"))

    with pytest.raises(AccessDenied):
        _verify(callback)


def test_missing_code_with_wrong_state_is_a_state_mismatch() -> None:
    with pytest.raises(StateMismatch):
        _verify(_query(("state", "WRONG"), ("iss", ISSUER)))


# Issuer (M1, M2) ------------------------------------------------------------------


@pytest.mark.parametrize(
    "iss",
    [
        "https://evil.example",
        "https://as.example/",
        "https://AS.example",
        "HTTPS://as.example",
        "https://as.example.evil.example",
        "https://as.example:443",
        "http://as.example",
        " https://as.example",
        "",
    ],
)
def test_iss_that_differs_in_any_character_is_rejected(iss: str) -> None:
    callback = _query(("code", CODE), ("state", STATE), ("iss", iss))

    with pytest.raises(IssuerMismatch):
        _verify(callback)


def test_double_encoded_iss_is_rejected() -> None:
    twice = quote(quote(ISSUER, safe=""), safe="")
    callback = f"code={CODE}&state={STATE}&iss={twice}"

    with pytest.raises(IssuerMismatch):
        _verify(callback)


def test_missing_iss_is_rejected_when_required() -> None:
    with pytest.raises(IssuerMismatch):
        _verify(_query(("code", CODE), ("state", STATE)))


def test_missing_iss_is_accepted_when_not_required() -> None:
    callback = _query(("code", CODE), ("state", STATE))

    assert _verify(callback, iss_required=False) == CODE


def test_present_iss_must_match_even_when_not_required() -> None:
    callback = _query(("code", CODE), ("state", STATE), ("iss", "https://evil.example"))

    with pytest.raises(IssuerMismatch):
        _verify(callback, iss_required=False)


def test_matching_iss_is_accepted_when_not_required() -> None:
    assert _verify(_good(), iss_required=False) == CODE


# State (C1, C2) -------------------------------------------------------------------


def test_missing_state_is_a_state_mismatch() -> None:
    with pytest.raises(StateMismatch):
        _verify(_query(("code", CODE), ("iss", ISSUER)))


@pytest.mark.parametrize(
    "state",
    ["", "WRONG", STATE.upper(), STATE + " ", STATE[:-1], STATE_HASH],
)
def test_wrong_state_is_a_state_mismatch(state: str) -> None:
    callback = _query(("code", CODE), ("state", state), ("iss", ISSUER))

    with pytest.raises(StateMismatch):
        _verify(callback)


# Error answers (C4, L5) -----------------------------------------------------------


def _error_callback(error: str, description: str | None = None) -> str:
    pairs = [("error", error), ("state", STATE), ("iss", ISSUER)]
    if description is not None:
        pairs.append(("error_description", description))
    return _query(*pairs)


def test_verified_access_denied_raises_access_denied_with_description() -> None:
    with pytest.raises(AccessDenied) as caught:
        _verify(_error_callback("access_denied", "The user said no"))

    assert (caught.value.error, caught.value.description) == (
        "access_denied",
        "The user said no",
    )


def test_access_denied_without_description_has_none() -> None:
    with pytest.raises(AccessDenied) as caught:
        _verify(_error_callback("access_denied"))

    assert caught.value.description is None


def test_crlf_laden_10kb_description_becomes_one_short_escaped_line() -> None:
    description = ("forged\r\nlog: line " * 1000)[:10_000]

    with pytest.raises(AccessDenied) as caught:
        _verify(_error_callback("access_denied", description))

    kept = caught.value.description
    assert kept is not None
    assert (len(kept) <= MAX_TEXT, "\r" in kept, "\n" in kept) == (True, False, False)
    assert kept.startswith("forged\\r\\nlog: line ")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("invalid_request", InvalidRequest),
        ("unauthorized_client", UnauthorizedClient),
        ("access_denied", AccessDenied),
        ("unsupported_response_type", UnsupportedResponseType),
        ("invalid_scope", InvalidScope),
        ("server_error", ServerError),
        ("temporarily_unavailable", TemporarilyUnavailable),
    ],
)
def test_error_codes_map_to_typed_errors(code: str, expected: type[OAuthError]) -> None:
    with pytest.raises(OAuthError) as caught:
        _verify(_error_callback(code))

    assert (type(caught.value), caught.value.error) == (expected, code)


def test_unknown_error_code_raises_the_oauth_error_base() -> None:
    with pytest.raises(OAuthError) as caught:
        _verify(_error_callback("weird_error"))

    assert (type(caught.value), caught.value.error) == (OAuthError, "weird_error")


def test_error_code_with_control_characters_is_escaped() -> None:
    with pytest.raises(OAuthError) as caught:
        _verify(_error_callback("bad\r\nerror"))

    assert caught.value.error == "bad\\r\\nerror"


# Missing code (C5) ----------------------------------------------------------------


def test_no_code_and_no_error_is_missing_code() -> None:
    with pytest.raises(MissingCode):
        _verify(_query(("state", STATE), ("iss", ISSUER)))


def test_empty_code_is_missing_code() -> None:
    with pytest.raises(MissingCode):
        _verify(_query(("code", ""), ("state", STATE), ("iss", ISSUER)))


# Duplicates (C6) ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["state", "code", "iss", "error"])
def test_duplicated_parameter_is_rejected(name: str) -> None:
    value = {"state": STATE, "code": CODE, "iss": ISSUER, "error": "x"}[name]

    with pytest.raises(DuplicateParameter):
        _verify(_good((name, value), (name, value)))


def test_duplicate_is_rejected_even_with_identical_values() -> None:
    callback = _query(("code", CODE), ("state", STATE), ("state", STATE))

    with pytest.raises(DuplicateParameter):
        _verify(callback, iss_required=False)


def test_duplicate_error_message_does_not_echo_values() -> None:
    with pytest.raises(DuplicateParameter) as caught:
        _verify(_good(("code", "SECOND-CANARY")))

    assert (CODE in str(caught.value), "SECOND-CANARY" in str(caught.value)) == (
        False,
        False,
    )


NAMES = [
    "code",
    "state",
    "iss",
    "error",
    "error_description",
    "error_uri",
    "session_state",
    "scope",
    "foo",
]
GOOD_VALUES = {"code": CODE, "state": STATE, "iss": ISSUER}


@settings(max_examples=150)
@given(
    names=st.lists(st.sampled_from(NAMES), min_size=1, unique=True),
    data=st.data(),
)
def test_any_duplicated_parameter_name_is_rejected(
    names: list[str], data: st.DataObject
) -> None:
    repeated = data.draw(st.sampled_from(names))
    pairs = [(name, GOOD_VALUES.get(name, "v")) for name in [*names, repeated]]
    shuffled = data.draw(st.permutations(pairs))
    iss_required = data.draw(st.booleans())

    with pytest.raises(DuplicateParameter):
        _verify(_query(*shuffled), iss_required=iss_required)


# Tokens in a code callback (C7) ---------------------------------------------------


@pytest.mark.parametrize(
    "name", ["access_token", "id_token", "response", "token", "refresh_token"]
)
def test_token_parameters_in_a_code_callback_are_rejected(name: str) -> None:
    with pytest.raises(UnexpectedParameter) as caught:
        _verify(_good((name, "TOKEN-CANARY")))

    assert "TOKEN-CANARY" not in str(caught.value)


def test_forbidden_names_cover_tokens_and_jarm() -> None:
    expected = {"access_token", "id_token", "response", "token"}

    assert expected - FORBIDDEN == set()


def test_token_parameter_is_rejected_even_with_an_error_answer() -> None:
    callback = _error_callback("access_denied") + "&access_token=x"

    with pytest.raises(UnexpectedParameter):
        _verify(callback)


# Fuzzing (B4): only typed errors --------------------------------------------------

URL_CHARACTERS = [*"%&=?#/;:+ abcdefABCDEF0123456789", "é", "\x00", "\r", "[", "]"]
URLISH = st.text(
    alphabet=st.sampled_from([*URL_CHARACTERS, FULLWIDTH_HASH]), max_size=80
)


def _verify_or_typed_error(callback: str, iss_required: bool) -> None:
    try:
        code = _verify(callback, iss_required=iss_required)
    except FlowError:
        return
    assert (isinstance(code, str), code != "") == (True, True)


@settings(max_examples=300)
@given(callback=st.text(), iss_required=st.booleans())
def test_arbitrary_text_raises_only_flow_errors(
    callback: str, iss_required: bool
) -> None:
    _verify_or_typed_error(callback, iss_required)


@settings(max_examples=300)
@given(
    prefix=st.sampled_from(
        ["", "?", "/cb?", "//", "https://", "https://app.example/?"]
    ),
    body=URLISH,
    iss_required=st.booleans(),
)
def test_url_like_text_raises_only_flow_errors(
    prefix: str, body: str, iss_required: bool
) -> None:
    _verify_or_typed_error(prefix + body, iss_required)


@settings(max_examples=200)
@given(raw=st.binary(max_size=40), iss_required=st.booleans())
def test_arbitrary_percent_encoded_bytes_raise_only_flow_errors(
    raw: bytes, iss_required: bool
) -> None:
    encoded = "".join(f"%{byte:02X}" for byte in raw)

    _verify_or_typed_error(f"{_good()}&x={encoded}", iss_required)


GOOD_PAIRS = [("code", CODE), ("state", STATE), ("iss", ISSUER)]
HARMLESS = ["foo", "scope", "session_state", "error_description", "error_uri"]
noise_pairs = st.tuples(
    st.sampled_from(HARMLESS)
    | st.sampled_from([*GOOD_VALUES, "error", "access_token", "response"])
    | st.text(max_size=6),
    st.sampled_from([CODE, STATE, ISSUER, "access_denied", ""]) | st.text(max_size=6),
)


@settings(max_examples=300)
@given(
    good=st.lists(st.sampled_from(GOOD_PAIRS), unique=True, max_size=3),
    repeat=st.lists(st.sampled_from(GOOD_PAIRS), max_size=1),
    noise=st.lists(noise_pairs, max_size=3),
    iss_required=st.booleans(),
    data=st.data(),
)
def test_structured_callbacks_verify_only_when_every_check_passes(
    good: list[tuple[str, str]],
    repeat: list[tuple[str, str]],
    noise: list[tuple[str, str]],
    iss_required: bool,
    data: st.DataObject,
) -> None:
    pairs = data.draw(st.permutations([*good, *repeat, *noise]))
    try:
        code = _verify(_query(*pairs), iss_required=iss_required)
    except FlowError:
        return

    # Reaching here means: no repeats, state and iss matched, no error, a code.
    names = [name for name, _ in pairs]
    found = dict(pairs)
    assert (
        len(names) == len(set(names)),
        code,
        found.get("state"),
        found.get("iss", None if iss_required else ISSUER),
        "error" in found,
    ) == (True, found["code"], STATE, ISSUER, False)


def test_parse_reads_a_private_use_scheme_callback() -> None:
    callback = f"com.example.app:/oauth2redirect?{_good()}"

    assert _verify(callback) == CODE


def test_empty_error_is_a_malformed_callback() -> None:
    with pytest.raises(MissingCode):
        _verify(_good(("error", "")))
