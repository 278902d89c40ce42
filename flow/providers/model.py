"""Provider specs as plain data: endpoints, capabilities and quirks of one server."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from ..record import AuthMethod


class Pkce(StrEnum):
    """Whether the server takes PKCE (RFC 7636)."""

    REQUIRED = "required"
    SUPPORTED = "supported"
    UNSUPPORTED = "unsupported"


class PublicSecret(StrEnum):
    """What a public (desktop) client does with the secret it was given.

    Google issues desktop clients a secret it does not treat as secret, yet its
    token endpoint requires it; Microsoft refuses a secret from a public client.
    """

    REQUIRED = "required"
    FORBIDDEN = "forbidden"
    OPTIONAL = "optional"


class Rotation(StrEnum):
    """What happens to a refresh token when it is used."""

    NONE = "none"  # the same refresh token stays valid
    ROTATES = "rotates"  # a new one each time; the old one is revoked
    ROTATES_KEEPS_OLD = "rotates_keeps_old"  # a new one; the old one still works
    OPTIONAL = "optional"  # depends on the app's settings
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Param:
    """A typed template parameter such as ``{tenant}`` or ``{host}``."""

    name: str
    description: str
    default: str | None = None
    pattern: str | None = None
    examples: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Endpoint URL templates; ``{name}`` refers to a declared parameter."""

    authorization: str | None = None
    token: str | None = None
    revocation: str | None = None
    userinfo: str | None = None
    device_authorization: str | None = None
    introspection: str | None = None


@dataclass(frozen=True, slots=True)
class Offline:
    """What it takes to get a refresh token: extra scopes and parameters.

    ``limited`` marks providers that issue refresh tokens only to some apps
    (GitHub Apps but not OAuth Apps, LinkedIn partners); the note says which.
    """

    scopes: tuple[str, ...] = ()
    params: Mapping[str, str] = field(default_factory=dict)
    note: str | None = None
    limited: bool = False


@dataclass(frozen=True, slots=True)
class TokenResponseRules:
    """How a provider's token responses bend RFC 6749 section 5.

    Attributes:
        error_on_200: Errors may come with HTTP 200 and an ``error`` field.
        ok_field: A boolean field that is ``false`` on errors (Slack's ``ok``).
        token_paths: Where the tokens are: ``""`` is the top level, other values
            name a nested object (Slack's ``authed_user``); the first path holding
            an ``access_token`` wins.
        form_encoded: The body may be ``application/x-www-form-urlencoded``.
        token_type: ``bearer`` requires a Bearer token type; ``any`` accepts the
            provider's own labels (Slack's ``bot`` and ``user`` tokens are used as
            Bearer tokens all the same).
        keep: Extra response fields stored with the credential
            (Salesforce's ``instance_url``).
        expires_in: ``always``, ``sometimes`` or ``never`` sent.
    """

    error_on_200: bool = False
    ok_field: str | None = None
    token_paths: tuple[str, ...] = ("",)
    form_encoded: bool = False
    token_type: str = "bearer"  # noqa: S105 - a token type, not a secret
    keep: tuple[str, ...] = ()
    expires_in: str = "always"


@dataclass(frozen=True, slots=True)
class Loopback:
    """Loopback redirects for desktop apps (RFC 8252 section 7.3)."""

    allowed: bool = True
    hosts: tuple[str, ...] = ("127.0.0.1",)
    any_port: bool = True
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Source:
    """Where a fact came from, and when it was last checked."""

    url: str
    checked: date
    about: str = ""


@dataclass(frozen=True, slots=True)
class Provider:
    """One authorization server's endpoints, capabilities and quirks.

    Attributes:
        id: The catalog id (``google``, ``microsoft``, ``google-mail``).
        display_name: A name for people.
        description: One line.
        extends: The provider this one was derived from, if any.
        params: Template parameters used in the URLs.
        endpoints: Endpoint URL templates.
        discovery: A metadata URL template (OpenID Connect Discovery, RFC 8414);
            declared endpoints win over discovered ones.
        issuer: The issuer template, compared with a callback's ``iss``.
        iss_parameter_supported: The server sends ``iss`` in callbacks (RFC 9207).
        scopes: Scopes requested when the caller names none.
        scope_separator: How scopes are joined (a comma for Slack).
        authorization_params: Parameters always added to the authorization URL.
        offline: What it takes to get a refresh token.
        pkce: PKCE support.
        client_auth: Client authentication methods, preferred first.
        public_secret: What a public client does with its secret.
        token_headers: Headers added to token requests.
        token_response: How token responses are read.
        rotation: Refresh token rotation.
        loopback: Loopback redirect rules.
        hooks: Named hooks in code for what data cannot say.
        sources: Where the facts came from.
        uncertain: Fields whose value is not verified against a source.
        file: Where the spec was loaded from.
    """

    id: str
    display_name: str
    description: str
    extends: str | None = None
    params: Mapping[str, Param] = field(default_factory=dict)
    endpoints: Endpoints = field(default_factory=Endpoints)
    discovery: str | None = None
    issuer: str | None = None
    iss_parameter_supported: bool = False
    scopes: tuple[str, ...] = ()
    scope_separator: str = " "
    authorization_params: Mapping[str, str] = field(default_factory=dict)
    offline: Offline = field(default_factory=Offline)
    pkce: Pkce = Pkce.SUPPORTED
    client_auth: tuple[AuthMethod, ...] = (AuthMethod.CLIENT_SECRET_BASIC,)
    public_secret: PublicSecret = PublicSecret.OPTIONAL
    token_headers: Mapping[str, str] = field(default_factory=dict)
    token_response: TokenResponseRules = field(default_factory=TokenResponseRules)
    rotation: Rotation = Rotation.UNKNOWN
    loopback: Loopback = field(default_factory=Loopback)
    hooks: tuple[str, ...] = ()
    sources: tuple[Source, ...] = ()
    uncertain: tuple[str, ...] = ()
    file: str = "<memory>"

    def __hash__(self) -> int:
        return hash((self.id, self.file))
