"""The flow record: one run of a flow spec, as plain immutable data.

Secrets live apart from everything else in :class:`Secrets`, so that the store can
write them to their own column and encryption at rest can wrap them alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

#: JSON-compatible values, as kept in a record's context and transition details.
JSON = Any


class AuthMethod(StrEnum):
    """Client authentication at the token endpoint (RFC 6749 section 2.3)."""

    CLIENT_SECRET_BASIC = "client_secret_basic"  # noqa: S105 - a method name
    CLIENT_SECRET_POST = "client_secret_post"  # noqa: S105 - a method name
    NONE = "none"


@dataclass(frozen=True, slots=True)
class ServerMetadata:
    """The authorization server's issuer and endpoints, as a flow snapshots them.

    A flow keeps the endpoints it started with: the code goes only to the token
    endpoint of the issuer that issued it (RFC 9700 section 4.4.2).

    Attributes:
        issuer: The issuer identifier (RFC 8414), or the authorization endpoint's
            origin when the endpoints were given by hand.
        authorization_endpoint: Where the browser is sent.
        token_endpoint: Where codes and refresh tokens are exchanged.
        iss_parameter_supported: The server adds ``iss`` to its authorization
            responses (RFC 9207), so a callback without it is rejected.
        revocation_endpoint: RFC 7009, when known.
        userinfo_endpoint: OpenID Connect userinfo, when known.
        code_challenge_methods: PKCE methods advertised; empty when not advertised.
        token_endpoint_auth_methods: Client authentication methods advertised.
    """

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    iss_parameter_supported: bool = False
    revocation_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    code_challenge_methods: tuple[str, ...] = ()
    token_endpoint_auth_methods: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Client:
    """A client registration, without its secret.

    The secret is handed to the driver separately and stored with the other secrets.

    Attributes:
        client_id: The identifier the provider issued.
        redirect_uri: Sent byte for byte as registered (RFC 6749 section 4.1.3).
        auth_method: How the client authenticates at the token endpoint.
    """

    client_id: str
    redirect_uri: str
    auth_method: AuthMethod = AuthMethod.CLIENT_SECRET_BASIC


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What may be known about the credential without reading a token.

    Attributes:
        token_type: ``Bearer``, normalised.
        expires_at: When the access token expires; ``None`` when the server did not
            say (RFC 6749 section 5.1 makes ``expires_in`` optional).
        scope: The granted scope, when the server sent one.
        issued_at: When the token response was accepted.
        extra: Non-secret response fields the provider's spec keeps, such as
            Salesforce's ``instance_url``.
    """

    token_type: str
    issued_at: datetime
    expires_at: datetime | None = None
    scope: str | None = None
    extra: Mapping[str, JSON] = field(default_factory=dict)


_SECRET_FIELDS = (
    "client_secret",
    "code_verifier",
    "code",
    "access_token",
    "refresh_token",
    "id_token",
)


@dataclass(frozen=True, slots=True)
class Secrets:
    """Every secret a flow holds. Its ``repr`` says which are set, never their value.

    The ``state`` value is not here at all: flows are found and callbacks are
    checked through its SHA-256 digest, so the value itself is never stored.
    """

    client_secret: str | None = None
    code_verifier: str | None = None
    code: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    id_token: str | None = None

    def __repr__(self) -> str:
        held = [name for name in _SECRET_FIELDS if getattr(self, name) is not None]
        return f"Secrets(held={held!r})"

    def values(self) -> list[str]:
        """The secret values held, for redaction and leak checks."""
        return [
            value
            for name in _SECRET_FIELDS
            if (value := getattr(self, name)) is not None
        ]


@dataclass(frozen=True, slots=True)
class Transition:
    """One committed transition, as kept in a flow's history.

    Attributes:
        trigger: What was fired.
        source: The state before.
        dest: The state after.
        at: When it was applied.
        detail: Non-secret facts about it (a reason code, an HTTP status).
    """

    trigger: str
    source: str
    dest: str
    at: datetime
    detail: Mapping[str, JSON] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FlowRecord:
    """One flow: everything needed to resume it in any process.

    Attributes:
        id: The flow's identifier.
        spec: The flow spec's name.
        spec_version: The flow spec's version the flow started with.
        state: The current state.
        version: Incremented by every committed transition; the store's
            compare-and-set key.
        provider: A short provider name (the issuer's host when none is given).
        server: The issuer and endpoints the flow started with.
        client: The client registration, without its secret.
        scopes: The scopes requested.
        created_at: When the flow was started.
        updated_at: When the last transition was applied.
        expires_at: When an unfinished flow stops accepting its callback.
        state_hash: SHA-256 (hex) of the ``state`` value sent to the browser; the
            index a callback is matched by.
        binding_hash: SHA-256 (hex) of the value the flow was bound to at start,
            such as the user's session id (RFC 9700 section 2.1): a callback
            without the same value is refused and the flow left waiting.
        lease_until: While exchanging, until when the exchange belongs to the
            process that started it.
        reason: Why the flow failed, for failed states.
        token: Non-secret facts about the credential.
        context: The application's own JSON data, kept as given.
        history: Every committed transition, oldest first.
        secrets: Every secret, kept apart.
    """

    id: str
    spec: str
    spec_version: int
    state: str
    version: int
    provider: str
    server: ServerMetadata
    client: Client
    scopes: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    state_hash: str | None = None
    binding_hash: str | None = None
    lease_until: datetime | None = None
    reason: str | None = None
    token: TokenInfo | None = None
    context: Mapping[str, JSON] = field(default_factory=dict)
    history: tuple[Transition, ...] = ()
    secrets: Secrets = field(default_factory=Secrets)

    def __repr__(self) -> str:
        # Only identifying facts: enough to find the flow, nothing that could leak.
        return (
            f"FlowRecord(id={self.id!r}, spec={self.spec!r}, state={self.state!r}, "
            f"version={self.version}, provider={self.provider!r})"
        )
