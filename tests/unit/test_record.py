"""The record schema: a lossless JSON round trip, secrets kept apart, corrupt input."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import fields, is_dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from flow.errors import CorruptRecord
from flow.record import (
    SCHEMA_VERSION,
    AuthMethod,
    Client,
    Encoded,
    FlowRecord,
    Secrets,
    ServerMetadata,
    TokenInfo,
    Transition,
    decode,
    encode,
)
from flow.record import schema as schema_module
from flow.record.schema import FlowRecordSchema

START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

#: One distinct value per secret field, so that a leak says which secret leaked.
CANARIES = Secrets(
    client_secret="canary-client-secret-7c1e",
    code_verifier="canary-code-verifier-3b9a",
    code="canary-code-51d0",
    access_token="canary-access-token-e24f",
    refresh_token="canary-refresh-token-90aa",
    id_token="canary-id-token-1f6c",
)


def make_record(**changes: Any) -> FlowRecord:
    """A full record: every optional field set, all secrets the canaries."""
    record = FlowRecord(
        id="flow-1",
        spec="authorization_code",
        spec_version=1,
        state="api_ready",
        version=6,
        provider="example",
        server=ServerMetadata(
            issuer="https://as.test",
            authorization_endpoint="https://as.test/authorize",
            token_endpoint="https://as.test/token",
            iss_parameter_supported=True,
            revocation_endpoint="https://as.test/revoke",
            userinfo_endpoint=None,
            code_challenge_methods=("S256",),
            token_endpoint_auth_methods=("client_secret_basic", "none"),
        ),
        client=Client(
            client_id="client",
            redirect_uri="https://app.test/cb",
            auth_method=AuthMethod.CLIENT_SECRET_POST,
        ),
        scopes=("openid", "email"),
        created_at=START,
        updated_at=START + timedelta(seconds=3, microseconds=250),
        expires_at=START + timedelta(minutes=10),
        state_hash="ab" * 32,
        lease_until=START + timedelta(minutes=1),
        reason=None,
        token=TokenInfo(
            token_type="Bearer",
            issued_at=START,
            expires_at=START + timedelta(hours=1),
            scope="openid email",
        ),
        context={"user": 7, "tags": ["a", "b"], "nested": {"ok": True, "x": None}},
        history=(
            Transition("authorize", "client_registered", "awaiting_login", START, {}),
            Transition(
                "deny", "awaiting_login", "denied", START, {"error": "access_denied"}
            ),
        ),
        secrets=CANARIES,
    )
    return replace(record, **changes)


def body_document(record: FlowRecord) -> dict[str, Any]:
    """The body of ``record`` as a JSON object, to be broken by a test."""
    document: dict[str, Any] = json.loads(encode(record).body)
    return document


def assert_no_canary(text: str) -> None:
    leaked = [value for value in CANARIES.values() if value in text]
    assert leaked == [], f"secret values leaked: {leaked}"


# Round trip ------------------------------------------------------------------------


def test_round_trip_of_a_full_record() -> None:
    record = make_record()

    assert decode(*_parts(encode(record))) == record


def test_round_trip_of_a_bare_record() -> None:
    record = make_record(
        state_hash=None,
        lease_until=None,
        token=None,
        context={},
        history=(),
        secrets=Secrets(),
        server=ServerMetadata("https://i", "https://i/a", "https://i/t"),
    )

    assert decode(*_parts(encode(record))) == record


def test_round_trip_keeps_tuples_and_enums() -> None:
    decoded = decode(*_parts(encode(make_record())))

    assert isinstance(decoded.scopes, tuple)
    assert isinstance(decoded.history, tuple)
    assert isinstance(decoded.server.code_challenge_methods, tuple)
    assert decoded.client.auth_method is AuthMethod.CLIENT_SECRET_POST


def test_decode_accepts_bytes() -> None:
    encoded = encode(make_record())

    decoded = decode(encoded.body.encode(), encoded.secrets.encode())

    assert decoded == make_record()


def test_body_carries_the_schema_version() -> None:
    assert body_document(make_record())["schema_version"] == SCHEMA_VERSION == 1


def _parts(encoded: Encoded) -> tuple[str, str]:
    return encoded.body, encoded.secrets


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


TEXT = st.text(max_size=20)
WHEN = st.datetimes(timezones=st.just(UTC))
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3)
    ),
    max_leaves=8,
)
JSON_OBJECTS = st.dictionaries(TEXT, JSON_VALUES, max_size=4)
STRING_TUPLES = st.lists(TEXT, max_size=3).map(tuple)

RECORDS: st.SearchStrategy[FlowRecord] = st.builds(
    FlowRecord,
    id=st.text(min_size=1, max_size=20),
    spec=TEXT,
    spec_version=st.integers(),
    state=TEXT,
    version=st.integers(min_value=0),
    provider=TEXT,
    server=st.builds(
        ServerMetadata,
        issuer=TEXT,
        authorization_endpoint=TEXT,
        token_endpoint=TEXT,
        iss_parameter_supported=st.booleans(),
        revocation_endpoint=_optional(TEXT),
        userinfo_endpoint=_optional(TEXT),
        code_challenge_methods=STRING_TUPLES,
        token_endpoint_auth_methods=STRING_TUPLES,
    ),
    client=st.builds(
        Client,
        client_id=TEXT,
        redirect_uri=TEXT,
        auth_method=st.sampled_from(AuthMethod),
    ),
    scopes=STRING_TUPLES,
    created_at=WHEN,
    updated_at=WHEN,
    expires_at=WHEN,
    state_hash=_optional(TEXT),
    lease_until=_optional(WHEN),
    reason=_optional(TEXT),
    token=_optional(
        st.builds(
            TokenInfo,
            token_type=TEXT,
            issued_at=WHEN,
            expires_at=_optional(WHEN),
            scope=_optional(TEXT),
        )
    ),
    context=JSON_OBJECTS,
    history=st.lists(
        st.builds(
            Transition,
            trigger=TEXT,
            source=TEXT,
            dest=TEXT,
            at=WHEN,
            detail=JSON_OBJECTS,
        ),
        max_size=3,
    ).map(tuple),
    secrets=st.builds(
        Secrets,
        client_secret=_optional(TEXT),
        code_verifier=_optional(TEXT),
        code=_optional(TEXT),
        access_token=_optional(TEXT),
        refresh_token=_optional(TEXT),
        id_token=_optional(TEXT),
    ),
)


@settings(max_examples=120, deadline=None)
@given(RECORDS)
def test_round_trip_is_lossless(record: FlowRecord) -> None:
    encoded = encode(record)

    assert decode(encoded.body, encoded.secrets) == record


@settings(max_examples=30, deadline=None)
@given(RECORDS)
def test_encoding_is_deterministic(record: FlowRecord) -> None:
    assert encode(record) == encode(decode(*_parts(encode(record))))


# Secrets kept apart ----------------------------------------------------------------


def test_secrets_are_only_in_the_secrets_text() -> None:
    encoded = encode(make_record())

    assert_no_canary(encoded.body)
    for value in CANARIES.values():
        assert value in encoded.secrets


def test_secrets_text_holds_nothing_but_secrets() -> None:
    encoded = encode(make_record())

    assert set(json.loads(encoded.secrets)) == {
        "client_secret",
        "code_verifier",
        "code",
        "access_token",
        "refresh_token",
        "id_token",
    }
    assert "secrets" not in json.loads(encoded.body)


def test_reprs_show_no_secret() -> None:
    record = make_record()

    assert_no_canary(repr(record))
    assert_no_canary(repr(record.secrets))
    assert_no_canary(repr(encode(record)))
    assert_no_canary(str(record))


def test_secrets_repr_says_which_are_held() -> None:
    secrets = Secrets(code="canary-code-51d0", refresh_token="canary-rt")

    assert repr(secrets) == "Secrets(held=['code', 'refresh_token'])"


def test_secrets_values_lists_the_set_values() -> None:
    assert Secrets(code="c", id_token="i").values() == ["c", "i"]
    assert len(CANARIES.values()) == 6


# Corrupt input ---------------------------------------------------------------------

Breaker = Callable[[dict[str, Any]], None]


def _setter(key: str, value: Any) -> Breaker:
    def breaker(document: dict[str, Any]) -> None:
        document[key] = value

    return breaker


def _dropper(key: str) -> Breaker:
    def breaker(document: dict[str, Any]) -> None:
        del document[key]

    return breaker


def _nested(key: str, inner: str, value: Any) -> Breaker:
    def breaker(document: dict[str, Any]) -> None:
        document[key][inner] = value

    return breaker


BROKEN_BODIES: list[tuple[str, Breaker, str]] = [
    ("wrong type of version", _setter("version", "6"), "version"),
    ("float version", _setter("version", 6.0), "version"),
    ("boolean version", _setter("version", True), "version"),
    ("negative version", _setter("version", -1), "version"),
    ("wrong type of scopes", _setter("scopes", "openid"), "scopes"),
    ("wrong type of context", _setter("context", ["a"]), "context"),
    ("naive datetime", _setter("created_at", "2026-01-01T12:00:00"), "created_at"),
    ("not a datetime", _setter("updated_at", "yesterday"), "updated_at"),
    ("empty id", _setter("id", ""), "id"),
    ("unknown field", _setter("colour", "blue"), "colour"),
    ("missing field", _dropper("provider"), "provider"),
    ("missing optional field", _dropper("reason"), "reason"),
    ("schema version 2", _setter("schema_version", 2), "schema_version"),
    ("schema version as text", _setter("schema_version", "1"), "schema_version"),
    ("no schema version", _dropper("schema_version"), "schema_version"),
    (
        "unknown auth method",
        _nested("client", "auth_method", "telepathy"),
        "client.auth_method",
    ),
    ("unknown nested field", _nested("server", "colour", "red"), "server.colour"),
    ("history not a list", _setter("history", {"0": {}}), "history"),
]


@pytest.mark.parametrize(
    ("breaker", "field"),
    [pytest.param(b, f, id=name) for name, b, f in BROKEN_BODIES],
)
def test_body_not_matching_the_schema_is_corrupt(breaker: Breaker, field: str) -> None:
    document = body_document(make_record())
    breaker(document)
    body = json.dumps(document)

    with pytest.raises(CorruptRecord) as caught:
        decode(body, encode(make_record()).secrets, flow_id="flow-1")

    message = str(caught.value)
    assert caught.value.flow_id == "flow-1"
    assert field in message
    assert_no_canary(message)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(encode(make_record()).body[:-40], id="truncated"),
        pytest.param("", id="empty"),
        pytest.param("[]", id="array"),
        pytest.param("42", id="number"),
        pytest.param("null", id="null"),
        pytest.param('"text"', id="string"),
        pytest.param("{'single': 'quotes'}", id="not json"),
        pytest.param(b"\xff\xfe{}", id="not utf-8"),
        pytest.param("[" * 100_000, id="deeply nested"),
    ],
)
def test_unreadable_body_is_corrupt(body: str | bytes) -> None:
    secrets = encode(make_record()).secrets

    with pytest.raises(CorruptRecord) as caught:
        decode(body, secrets, flow_id="flow-1")

    assert caught.value.flow_id == "flow-1"
    assert caught.value.reason == "corrupt_state"
    assert_no_canary(str(caught.value))


@pytest.mark.parametrize(
    "secrets",
    [
        pytest.param(encode(make_record()).secrets[:-10], id="truncated"),
        pytest.param("[]", id="array"),
        pytest.param('{"code": "canary-code-51d0"}', id="missing fields"),
        pytest.param(
            encode(make_record()).secrets.replace('"code":', '"kode":'),
            id="unknown field",
        ),
        pytest.param(
            encode(make_record()).secrets.replace(
                '"canary-code-51d0"', '["canary-code-51d0"]'
            ),
            id="wrong type",
        ),
    ],
)
def test_unreadable_secrets_are_corrupt_and_not_quoted(secrets: str) -> None:
    body = encode(make_record()).body

    with pytest.raises(CorruptRecord) as caught:
        decode(body, secrets, flow_id="flow-1")

    assert_no_canary(str(caught.value))
    assert_no_canary(repr(caught.value))


def test_corrupt_error_does_not_chain_the_parse_error() -> None:
    with pytest.raises(CorruptRecord) as caught:
        decode("{", encode(make_record()).secrets)

    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


@settings(max_examples=200, deadline=None)
@given(st.binary() | st.text())
def test_arbitrary_body_is_only_ever_corrupt(body: bytes | str) -> None:
    with pytest.raises(CorruptRecord) as caught:
        decode(body, encode(make_record()).secrets)

    assert_no_canary(str(caught.value))


@settings(max_examples=100, deadline=None)
@given(st.binary() | st.text())
def test_arbitrary_secrets_are_only_ever_corrupt(secrets: bytes | str) -> None:
    with pytest.raises(CorruptRecord):
        decode(encode(make_record()).body, secrets)


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_body_with_a_field_replaced_decodes_or_is_corrupt(data: st.DataObject) -> None:
    document = body_document(make_record())
    key = data.draw(st.sampled_from(sorted(document)))
    document[key] = data.draw(JSON_VALUES)

    try:
        decoded = decode(json.dumps(document), encode(make_record()).secrets)
    except CorruptRecord as exc:
        assert_no_canary(str(exc))
    else:
        assert isinstance(decoded, FlowRecord)


def test_schema_class_is_public_and_strict() -> None:
    with pytest.raises(Exception, match="Unknown field"):
        FlowRecordSchema().load({"colour": "blue"})


# The fast paths against marshmallow ------------------------------------------------
#
# encode() dumps through a plan compiled from the schema, and decode() hands back
# the records this process just encoded. Both must be indistinguishable from
# marshmallow's own dump and load, types included: these tests compare them with
# FlowRecordSchema used directly, on valid records and on records marshmallow
# converts or rejects.


def _marshmallow_encode(record: FlowRecord) -> Encoded:
    document = FlowRecordSchema().dump(record)
    document["schema_version"] = SCHEMA_VERSION
    secrets = document.pop("secrets")
    return Encoded(
        json.dumps(document, separators=(",", ":"), ensure_ascii=False),
        json.dumps(secrets, separators=(",", ":"), ensure_ascii=False),
    )


def _marshmallow_decode(body: str, secrets: str) -> FlowRecord:
    document = json.loads(body)
    document["secrets"] = json.loads(secrets)
    record: FlowRecord = FlowRecordSchema().load(document)
    return record


def _shape(value: Any) -> Any:
    """``value`` as nested (type, contents), so 1, 1.0 and True differ."""
    if is_dataclass(value) and not isinstance(value, type):
        return (
            type(value),
            [(f.name, _shape(getattr(value, f.name))) for f in fields(value)],
        )
    if isinstance(value, dict):
        return (type(value), [(_shape(k), _shape(v)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return (type(value), [_shape(item) for item in value])
    if isinstance(value, datetime):
        return (type(value), value, value.tzinfo, value.fold)
    return (type(value), value)


PLUS_TWO = timezone(timedelta(hours=2))

#: Changes marshmallow's dump converts or its load refuses or converts back to
#: something else: the memo must never answer for these.
ODD_CHANGES: list[dict[str, Any]] = [
    {"created_at": START.astimezone(PLUS_TWO)},
    {"expires_at": START.replace(tzinfo=None)},
    {"lease_until": START.replace(fold=1)},
    {"context": {"pair": (1, 2)}},
    {"context": {1: "one"}},
    {"context": {"nan": math.nan}},
    {"context": {"inf": math.inf}},
    {"version": True},
    {"version": -1},
    {"spec_version": 2.0},
    {"id": ""},
    {"id": AuthMethod.NONE},
    {"state": b"api_ready"},
    {"scopes": ["openid"]},
    {"history": [Transition("t", "a", "b", START, {})]},
    {"history": (Transition("t", "a", "b", START, {"n": (1,)}),)},
    {"reason": 42},
    {"token": TokenInfo("Bearer", START.astimezone(PLUS_TWO))},
    {"server": ServerMetadata("https://i", "https://i/a", "https://i/t", 1)},  # type: ignore[arg-type]
    {"client": Client("c", "https://c/cb", "none")},  # type: ignore[arg-type]
    {"secrets": Secrets(code=7)},  # type: ignore[arg-type]
    {"provider": None},
]

ODD_RECORDS: st.SearchStrategy[FlowRecord] = st.builds(
    lambda record, change: replace(record, **change),
    RECORDS,
    st.sampled_from(ODD_CHANGES),
)


def _outcome(call: Callable[[], Any]) -> Any:
    try:
        return ("value", call())
    except Exception as exc:  # the kind of failure is what is compared
        return ("error", type(exc))


@settings(max_examples=150, deadline=None)
@given(RECORDS | ODD_RECORDS)
def test_fast_encode_writes_what_marshmallow_writes(record: FlowRecord) -> None:
    assert _outcome(lambda: encode(record)) == _outcome(
        lambda: _marshmallow_encode(record)
    )


@settings(max_examples=150, deadline=None)
@given(RECORDS | ODD_RECORDS)
def test_decoding_what_was_just_encoded_matches_marshmallow(record: FlowRecord) -> None:
    try:
        encoded = encode(record)
    except Exception:  # marshmallow fails alike, as the test above shows
        return

    try:
        expected = _shape(_marshmallow_decode(encoded.body, encoded.secrets))
    except (ValidationError, ValueError):
        with pytest.raises(CorruptRecord):
            decode(encoded.body, encoded.secrets)
    else:
        assert _shape(decode(encoded.body, encoded.secrets)) == expected


@settings(max_examples=150, deadline=None)
@given(RECORDS | ODD_RECORDS)
def test_decoding_text_written_elsewhere_matches_marshmallow(
    record: FlowRecord,
) -> None:
    try:
        encoded = _marshmallow_encode(record)
    except Exception:  # not a record marshmallow can write
        return
    schema_module._RECENT.clear()  # as in a process that did not write it

    try:
        expected = _shape(_marshmallow_decode(encoded.body, encoded.secrets))
    except (ValidationError, ValueError):
        with pytest.raises(CorruptRecord):
            decode(encoded.body, encoded.secrets)
    else:
        assert _shape(decode(encoded.body, encoded.secrets)) == expected


def test_a_record_just_encoded_decodes_without_marshmallow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    encoded = encode(make_record())

    # The memo answers: a marshmallow load would now fail with AttributeError.
    monkeypatch.setattr(schema_module, "_SCHEMA", None)

    assert decode(encoded.body, encoded.secrets) == make_record()


def test_a_decoded_record_cannot_change_the_next_one() -> None:
    encoded = encode(make_record())

    first = decode(encoded.body, encoded.secrets)
    first.context["user"] = 8  # type: ignore[index]
    first.context["tags"].append("c")
    first.history[1].detail["error"] = "changed"  # type: ignore[index]

    assert decode(encoded.body, encoded.secrets) == make_record()


def test_changing_an_encoded_record_does_not_change_its_decoding() -> None:
    record = make_record(context={"user": 7})
    encoded = encode(record)

    record.context["user"] = 8  # type: ignore[index]

    assert decode(encoded.body, encoded.secrets).context == {"user": 7}


def test_a_record_from_elsewhere_is_validated_by_marshmallow() -> None:
    document = body_document(make_record())
    document["version"] = "6"  # what another process might have written
    body = json.dumps(document, separators=(",", ":"), ensure_ascii=False)

    with pytest.raises(CorruptRecord, match="version"):
        decode(body, encode(make_record()).secrets)
