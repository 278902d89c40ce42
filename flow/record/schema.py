"""The one way a flow record goes in and out of storage: a versioned schema.

:func:`encode` turns a record into two JSON documents, the record body and its
secrets, so a store can keep (and one day encrypt) the secrets in a column of their
own. :func:`decode` is the inverse and turns anything it cannot read into
:class:`~flow.errors.CorruptRecord`, without quoting the data.

The marshmallow schemas below are the one definition of the stored format. The
fast paths of :mod:`._plans`, compiled from their field declarations, keep
marshmallow's generic machinery off the hot path without replacing it:

* :func:`encode` dumps through a plan (marshmallow's dump costs about 100 us a
  record).
* :func:`decode` remembers the last records this process encoded. Text that is
  byte for byte what the schema just produced from a record that its load would
  return unchanged (a *canonical* record) decodes to a copy of that record.
  Anything else, and every record written by another process, goes through the
  full marshmallow load and its validation.

``tests/unit/test_record.py`` proves both equal to marshmallow's own dump and load
with hypothesis, types included.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, replace
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load
from marshmallow import validate as v

from ..errors import CorruptRecord
from ._plans import SchemaPlans, json_copy
from .model import (
    AuthMethod,
    Client,
    FlowRecord,
    Secrets,
    ServerMetadata,
    TokenInfo,
    Transition,
)

#: Bumped whenever the stored shape changes; older versions are migrated on load.
SCHEMA_VERSION = 1


def _when(**kwargs: Any) -> fields.AwareDateTime:
    return fields.AwareDateTime(format="iso", **kwargs)


# Variable-length tuples of strings: lists on disk, tuples in the record.
class _StringTuple(fields.List[str]):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(fields.String(), **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        return tuple(super()._deserialize(value, attr, data, **kwargs))


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class ServerMetadataSchema(_Strict):
    issuer = fields.String(required=True)
    authorization_endpoint = fields.String(required=True)
    token_endpoint = fields.String(required=True)
    iss_parameter_supported = fields.Boolean(required=True)
    revocation_endpoint = fields.String(allow_none=True, required=True)
    userinfo_endpoint = fields.String(allow_none=True, required=True)
    code_challenge_methods = _StringTuple(required=True)
    token_endpoint_auth_methods = _StringTuple(required=True)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> ServerMetadata:
        return ServerMetadata(**data)


class ClientSchema(_Strict):
    client_id = fields.String(required=True)
    redirect_uri = fields.String(required=True)
    auth_method = fields.Enum(AuthMethod, by_value=True, required=True)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Client:
        return Client(**data)


class TokenInfoSchema(_Strict):
    token_type = fields.String(required=True)
    issued_at = _when(required=True)
    expires_at = _when(required=True, allow_none=True)
    scope = fields.String(required=True, allow_none=True)
    extra = fields.Dict(
        keys=fields.String(), values=fields.Raw(allow_none=True), load_default=dict
    )

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> TokenInfo:
        return TokenInfo(**data)


class TransitionSchema(_Strict):
    trigger = fields.String(required=True)
    source = fields.String(required=True)
    dest = fields.String(required=True)
    at = _when(required=True)
    detail = fields.Dict(
        keys=fields.String(), values=fields.Raw(allow_none=True), required=True
    )

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Transition:
        return Transition(**data)


class SecretsSchema(_Strict):
    client_secret = fields.String(required=True, allow_none=True)
    code_verifier = fields.String(required=True, allow_none=True)
    code = fields.String(required=True, allow_none=True)
    access_token = fields.String(required=True, allow_none=True)
    refresh_token = fields.String(required=True, allow_none=True)
    id_token = fields.String(required=True, allow_none=True)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Secrets:
        return Secrets(**data)


class FlowRecordSchema(_Strict):
    """A whole flow record, secrets included, tagged with its schema version."""

    schema_version = fields.Integer(
        required=True, strict=True, validate=v.Equal(SCHEMA_VERSION)
    )
    id = fields.String(required=True, validate=v.Length(min=1))
    spec = fields.String(required=True)
    spec_version = fields.Integer(required=True, strict=True)
    state = fields.String(required=True)
    version = fields.Integer(required=True, strict=True, validate=v.Range(min=0))
    provider = fields.String(required=True)
    server = fields.Nested(ServerMetadataSchema, required=True)
    client = fields.Nested(ClientSchema, required=True)
    scopes = _StringTuple(required=True)
    created_at = _when(required=True)
    updated_at = _when(required=True)
    expires_at = _when(required=True)
    state_hash = fields.String(required=True, allow_none=True)
    binding_hash = fields.String(load_default=None, allow_none=True)
    lease_until = _when(required=True, allow_none=True)
    reason = fields.String(required=True, allow_none=True)
    token = fields.Nested(TokenInfoSchema, required=True, allow_none=True)
    context = fields.Dict(
        keys=fields.String(), values=fields.Raw(allow_none=True), required=True
    )
    history = fields.List(fields.Nested(TransitionSchema), required=True)
    secrets = fields.Nested(SecretsSchema, required=True)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> FlowRecord:
        del data["schema_version"]
        data["history"] = tuple(data["history"])
        return FlowRecord(**data)


#: The record class each schema's ``post_load`` builds.
_MODELS: dict[type[Schema], type] = {
    ServerMetadataSchema: ServerMetadata,
    ClientSchema: Client,
    TokenInfoSchema: TokenInfo,
    TransitionSchema: Transition,
    SecretsSchema: Secrets,
    FlowRecordSchema: FlowRecord,
}


_SCHEMA = FlowRecordSchema()
_RECORD_PLAN = SchemaPlans(_MODELS).plan(FlowRecordSchema)


class _Recent:
    """The last records :func:`encode` wrote, by their exact text.

    Bounded, so it costs a fixed amount of memory whatever the number of flows.
    A record is only handed back if it still encodes to that text (its context is
    a mutable dict that its owner may have changed since) and is canonical, and
    always as a copy of its mutable parts, so no caller can change what another
    one decodes. Those checks cost about a third of marshmallow's load. The kept
    records hold secrets the process already had in hand, for as long as 63 later
    encodings.
    """

    SIZE = 64

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str], FlowRecord] = {}

    def remember(self, encoded: Encoded, record: FlowRecord) -> None:
        """Note that ``record`` was encoded as ``encoded``."""
        key = (encoded.body, encoded.secrets)
        with self._lock:
            self._records.pop(key, None)
            if len(self._records) >= self.SIZE:
                del self._records[next(iter(self._records))]
            self._records[key] = record

    def recall(self, body: str, secrets: str) -> FlowRecord | None:
        """A copy of the record encoded as exactly this text, if it may stand in
        for marshmallow's load of it."""
        with self._lock:
            record = self._records.get((body, secrets))
        if record is None:
            return None
        if _texts(record) != Encoded(body, secrets) or not _RECORD_PLAN.canonical(
            record
        ):
            return None
        return _detached(record)

    def clear(self) -> None:
        """Forget everything (tests use this to force the marshmallow path)."""
        with self._lock:
            self._records.clear()


def _detached(record: FlowRecord) -> FlowRecord:
    # Everything else in a canonical record is immutable: frozen dataclasses,
    # strings, tuples, datetimes.
    return replace(
        record,
        context=json_copy(record.context),
        history=tuple(
            Transition(
                item.trigger, item.source, item.dest, item.at, json_copy(item.detail)
            )
            for item in record.history
        ),
    )


_RECENT = _Recent()
#: One encoder for every record: json.dumps with other than default options
#: builds a new encoder per call. Same options, same text.
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Encoded:
    """A record ready for storage: the body and the secrets, each a JSON text."""

    body: str
    secrets: str

    def __repr__(self) -> str:
        return f"Encoded(body=<{len(self.body)} chars>, secrets=<hidden>)"


def encode(record: FlowRecord) -> Encoded:
    """Serialise a record for storage.

    Args:
        record: The record to store.

    Returns:
        The body and the secrets as two compact JSON texts.
    """
    encoded = _texts(record)
    _RECENT.remember(encoded, record)
    return encoded


def _texts(record: FlowRecord) -> Encoded:
    document = _RECORD_PLAN.dump(record)
    assert document is not None  # only None dumps as None
    document["schema_version"] = SCHEMA_VERSION
    secrets = document.pop("secrets")
    return Encoded(body=_JSON.encode(document), secrets=_JSON.encode(secrets))


def decode(
    body: str | bytes, secrets: str | bytes, *, flow_id: str = "?"
) -> FlowRecord:
    """Read a stored record back.

    Args:
        body: The body JSON written by :func:`encode`.
        secrets: The secrets JSON written by :func:`encode`.
        flow_id: Named in the error when the record is unreadable.

    Returns:
        The record.

    Raises:
        CorruptRecord: When either part is not valid JSON, does not match the schema
            or carries an unknown schema version. The message names the fields at
            fault, never their values.
    """
    if isinstance(body, str) and isinstance(secrets, str):
        known = _RECENT.recall(body, secrets)
        if known is not None:
            return known
    try:
        document = json.loads(body)
        document["secrets"] = json.loads(secrets)
        record: FlowRecord = _SCHEMA.load(document)
    except (ValueError, TypeError, RecursionError) as exc:
        # RecursionError: json gives up on arrays or objects nested too deeply.
        raise CorruptRecord(
            f"stored record is not valid JSON ({type(exc).__name__})", flow_id=flow_id
        ) from None
    except ValidationError as exc:
        where = ", ".join(sorted(_paths(exc.messages)))
        raise CorruptRecord(
            f"stored record does not match schema version {SCHEMA_VERSION} "
            f"(fields: {where})",
            flow_id=flow_id,
        ) from None
    return record


def _paths(messages: Any, prefix: str = "") -> list[str]:
    if not isinstance(messages, dict):
        return [prefix or "<record>"]
    found = []
    for key, value in messages.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        found.extend(_paths(value, path))
    return found


__all__ = ["SCHEMA_VERSION", "Encoded", "FlowRecordSchema", "decode", "encode"]
