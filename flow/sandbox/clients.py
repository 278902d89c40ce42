"""Clients registered with the sandbox, their redirect URIs and their authentication.

Two clients exist unless the caller registers others: the public ``flow-demo`` and
the confidential ``flow-demo-confidential``, whose secret is printed right here
because it protects nothing.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from ..errors import ConfigurationError
from .failure import invalid_client, invalid_request

#: The public client: no secret, token_endpoint_auth_method ``none``.
DEMO_CLIENT_ID = "flow-demo"
#: The confidential client: client_secret_basic or client_secret_post.
DEMO_CONFIDENTIAL_CLIENT_ID = "flow-demo-confidential"
#: Its secret, published on purpose: the sandbox is never a place for real secrets.
DEMO_CONFIDENTIAL_SECRET = "flow-demo-secret-not-secret"  # noqa: S105 (published)

#: Redirect URIs on 127.0.0.1 may use any port (RFC 8252 section 7.3).
LOOPBACK_HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class SandboxClient:
    """A client registered with the sandbox.

    Attributes:
        client_id: The client identifier sent in every request.
        client_secret: ``None`` for a public client, which authenticates with
            ``none`` and relies on PKCE alone; otherwise the secret accepted through
            ``client_secret_basic`` and ``client_secret_post``.
        redirect_uri_prefixes: A redirect URI is allowed when it equals one of these
            or continues one at a ``/`` or ``?``. The port of an
            ``http://127.0.0.1`` URI is ignored on both sides, so a native app may
            listen on any port (RFC 8252 section 7.3).

    Raises:
        ConfigurationError: For an empty id, an empty secret or no redirect prefix.
    """

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    redirect_uri_prefixes: tuple[str, ...] = (f"http://{LOOPBACK_HOST}/",)

    def __post_init__(self) -> None:
        if not self.client_id:
            raise ConfigurationError("a sandbox client needs a non-empty client_id")
        if self.client_secret == "":
            raise ConfigurationError(
                f"sandbox client {self.client_id!r} has an empty secret; "
                "pass None to register a public client"
            )
        if not self.redirect_uri_prefixes:
            raise ConfigurationError(
                f"sandbox client {self.client_id!r} needs at least one redirect "
                "URI prefix"
            )

    @property
    def is_public(self) -> bool:
        """Whether the client has no secret (RFC 6749 section 2.1)."""
        return self.client_secret is None

    def allows_redirect(self, redirect_uri: str) -> bool:
        """Whether ``redirect_uri`` is registered for this client.

        Args:
            redirect_uri: The URI exactly as the authorization request sent it.

        Returns:
            ``True`` when it matches a prefix; never for a URI with a fragment, user
            information or characters outside printable ASCII.
        """
        candidate = _comparable(redirect_uri)
        if candidate is None:
            return False
        for prefix in self.redirect_uri_prefixes:
            registered = _comparable(prefix)
            if registered is not None and _continues(candidate, registered):
                return True
        return False


DEFAULT_CLIENTS = (
    SandboxClient(DEMO_CLIENT_ID),
    SandboxClient(
        DEMO_CONFIDENTIAL_CLIENT_ID,
        client_secret=DEMO_CONFIDENTIAL_SECRET,
        redirect_uri_prefixes=(f"http://{LOOPBACK_HOST}/callback",),
    ),
)


def _comparable(uri: str) -> str | None:
    """``uri`` with the port of a loopback URI removed, or ``None`` if unusable."""
    # Printable ASCII only, as the URI goes back out in a Location header; and no
    # fragment (RFC 6749 section 3.1.2).
    if not uri or "#" in uri or any(not "!" <= char <= "~" for char in uri):
        return None
    parts = urlsplit(uri)
    try:
        parts.port  # noqa: B018 - reading the port validates it
    except ValueError:
        return None
    if parts.username is not None or not parts.scheme or not parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname == LOOPBACK_HOST:
        return urlunsplit(("http", LOOPBACK_HOST, parts.path or "/", parts.query, ""))
    return uri


def _continues(uri: str, prefix: str) -> bool:
    if uri == prefix:
        return True
    if not uri.startswith(prefix):
        return False
    # Match at a boundary, so "/callback" does not also allow "/callbackevil".
    return prefix.endswith("/") or uri[len(prefix)] in "/?"


def authenticate(
    clients: Mapping[str, SandboxClient],
    authorization: str | None,
    form: Mapping[str, str],
) -> SandboxClient:
    """Identify and authenticate the client of a token or revocation request.

    A confidential client uses HTTP Basic or ``client_secret`` in the body, never both
    (RFC 6749 section 2.3); a public client sends only ``client_id``.

    Args:
        clients: The registered clients by id.
        authorization: The ``Authorization`` header, if any.
        form: The decoded request body.

    Returns:
        The authenticated client.

    Raises:
        SandboxFailure: ``invalid_client`` (HTTP 401) or ``invalid_request``.
    """
    secret: str | None
    if authorization is not None:
        if "client_secret" in form:
            raise invalid_request("use one client authentication method, not two")
        client_id, secret = _basic_credentials(authorization)
        if form.get("client_id", client_id) != client_id:
            raise invalid_request("client_id differs from the Basic credentials")
    else:
        client_id = form.get("client_id", "")
        secret = form.get("client_secret")
        if not client_id:
            raise invalid_client("no client authentication was sent")

    client = clients.get(client_id)
    if client is None:
        raise invalid_client(f"unknown client_id {client_id!r}")
    if client.client_secret is None:
        if secret is not None:
            raise invalid_client("a public client must not send a secret")
        return client
    if secret is None:
        raise invalid_client("a confidential client must authenticate")
    if not hmac.compare_digest(secret.encode(), client.client_secret.encode()):
        raise invalid_client("wrong client secret")
    return client


def _basic_credentials(authorization: str) -> tuple[str, str]:
    """The client id and secret of an HTTP Basic header.

    Both were form-urlencoded before base64 (RFC 6749 section 2.3.1), so each is
    form-decoded after splitting on the first colon.
    """
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        raise invalid_client("the token endpoint accepts only Basic authorization")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise invalid_client("malformed Basic credentials") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise invalid_client("Basic credentials without a colon")
    return unquote_plus(client_id), unquote_plus(secret)
