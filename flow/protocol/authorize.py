"""The authorization request (RFC 6749 section 4.1.1, RFC 7636 section 4.3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import ConfigurationError
from ..record import Client, ServerMetadata
from .pkce import s256_challenge

#: Parameters flow sets itself; callers may not override them through ``extra``.
RESERVED = frozenset(
    {
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
    }
)


def authorization_url(
    server: ServerMetadata,
    client: Client,
    *,
    state: str,
    verifier: str | None,
    scopes: Sequence[str] = (),
    extra: Mapping[str, str] | None = None,
    scope_separator: str = " ",
) -> str:
    """Build the URL the user's browser is sent to.

    PKCE with S256 is always used (RFC 9700 section 2.1.1), whatever the server
    advertises, and ``state`` is always sent: CSRF protection never rests on PKCE
    alone (RFC 9700 section 4.7.1).

    Args:
        server: The authorization server.
        client: The client registration.
        state: The fresh state value for this flow.
        verifier: The fresh PKCE verifier for this flow; ``None`` only for a
            provider declared not to support PKCE.
        scopes: Scopes to request, joined with spaces (RFC 6749 section 3.3).
        extra: Further parameters, such as ``prompt`` or ``login_hint``.
        scope_separator: The provider's separator (Slack joins with commas).

    Returns:
        The authorization endpoint with the request's query appended to any query
        the endpoint already has (RFC 6749 section 3.1).

    Raises:
        ConfigurationError: When ``extra`` tries to set a parameter flow owns.
    """
    clash = RESERVED.intersection(extra or {})
    if clash:
        raise ConfigurationError(
            f"extra authorization parameters may not set {sorted(clash)}; "
            "pass them as arguments instead"
        )

    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "state": state,
    }
    if verifier is not None:
        params["code_challenge"] = s256_challenge(verifier)
        params["code_challenge_method"] = "S256"
    if scopes:
        params["scope"] = scope_separator.join(scopes)
    params.update(extra or {})

    parts = urlsplit(server.authorization_endpoint)
    # The endpoint's own query is kept (RFC 6749 section 3.1), but never a second
    # copy of a parameter flow sets: repeated parameters make requests ambiguous.
    query = [
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if name not in params
    ]
    query.extend(params.items())
    return urlunsplit(parts._replace(query=urlencode(query), fragment=""))
