"""The one way a flow record goes in and out of storage: a versioned schema.

:func:`encode` turns a record into two JSON documents, the record body and its
secrets, so a store can keep (and one day encrypt) the secrets in a column of their
own. :func:`decode` is the inverse and turns anything it cannot read into
:class:`~flow.errors.CorruptRecord`, without quoting the data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load
from marshmallow import validate as v

from ..errors import CorruptRecord
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


_SCHEMA = FlowRecordSchema()


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
    document = _SCHEMA.dump(record)
    document["schema_version"] = SCHEMA_VERSION
    secrets = document.pop("secrets")
    return Encoded(
        body=json.dumps(document, separators=(",", ":"), ensure_ascii=False),
        secrets=json.dumps(secrets, separators=(",", ":"), ensure_ascii=False),
    )


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
