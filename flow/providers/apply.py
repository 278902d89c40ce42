"""What a provider's spec changes in a flow: its start and its token exchanges.

Pure functions: the engine asks them how to build the authorization request and
how to read token responses for a provider, and gets plain values back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import ConfigurationError
from ..record import AuthMethod, Client, FlowRecord
from .hooks import RESPONSE_HOOKS, ResponseHook
from .model import Pkce, Provider, PublicSecret, TokenResponseRules

#: Token handling for servers outside the catalog: RFC 6749 as written.
STANDARD_RULES = TokenResponseRules()


@dataclass(frozen=True, slots=True)
class StartPlan:
    """How to build one flow's authorization request."""

    scopes: tuple[str, ...]
    extra: Mapping[str, str]
    scope_separator: str = " "
    pkce: bool = True


@dataclass(frozen=True, slots=True)
class TokenHandling:
    """How to send token requests to a provider and read its answers."""

    rules: TokenResponseRules = STANDARD_RULES
    hooks: tuple[ResponseHook, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    public_secret: bool = False

    def secret_for(self, record: FlowRecord) -> str | None:
        """The secret to send: public clients send one only if the provider asks."""
        if record.client.auth_method is AuthMethod.NONE and not self.public_secret:
            return None
        return record.secrets.client_secret


def plan_start(
    provider: Provider | None,
    client: Client,
    *,
    client_secret: str | None,
    scopes: Sequence[str],
    extra: Mapping[str, str] | None,
    offline: bool,
) -> StartPlan:
    """The authorization request for ``client`` at ``provider``.

    Args:
        provider: The catalog provider, or ``None`` for a server given by hand.
        client: The client registration.
        client_secret: The secret, if the client has one.
        scopes: Scopes the caller asked for; the provider's defaults when empty.
        extra: Further authorization parameters from the caller; they win.
        offline: Ask for a refresh token the way the provider wants it.

    Raises:
        ConfigurationError: A client set-up the provider cannot serve, found
            before any request is sent.
    """
    if client.auth_method is not AuthMethod.NONE and not client_secret:
        raise ConfigurationError(
            f"client authentication {client.auth_method.value!r} needs a "
            "client_secret; use auth_method 'none' for a public client"
        )
    if provider is None:
        return StartPlan(tuple(scopes), dict(extra or {}))

    _check_client(provider, client, client_secret)
    chosen = list(scopes or provider.scopes)
    params = dict(provider.authorization_params)
    if offline:
        chosen += [s for s in provider.offline.scopes if s not in chosen]
        params.update(provider.offline.params)
    params.update(extra or {})
    return StartPlan(
        scopes=tuple(chosen),
        extra=params,
        scope_separator=provider.scope_separator,
        pkce=provider.pkce is not Pkce.UNSUPPORTED,
    )


def _check_client(provider: Provider, client: Client, secret: str | None) -> None:
    method = client.auth_method
    if method is AuthMethod.NONE:
        if provider.public_secret is PublicSecret.REQUIRED and not secret:
            raise ConfigurationError(
                f"{provider.display_name} wants the client secret even from a "
                "public (desktop) client; pass client_secret"
            )
        if provider.public_secret is PublicSecret.FORBIDDEN and secret:
            raise ConfigurationError(
                f"{provider.display_name} refuses a secret from a public client; "
                "omit client_secret or use a confidential auth method"
            )
    elif method not in provider.client_auth:
        allowed = ", ".join(m.value for m in provider.client_auth)
        raise ConfigurationError(
            f"{provider.display_name} does not take {method.value!r}; use one of "
            f"{allowed}"
        )


def token_handling(provider: Provider | None) -> TokenHandling:
    """How token requests and responses go for ``provider``."""
    if provider is None:
        return TokenHandling()
    return TokenHandling(
        rules=provider.token_response,
        hooks=tuple(RESPONSE_HOOKS[name] for name in provider.hooks),
        headers=dict(provider.token_headers),
        public_secret=provider.public_secret is PublicSecret.REQUIRED,
    )
