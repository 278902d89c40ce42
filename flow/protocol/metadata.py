"""Authorization server metadata: RFC 8414 and OpenID Connect Discovery 1.0."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import MetadataError
from ..record import ServerMetadata
from .http import HttpRequest, HttpResponse

MAX_METADATA = 512 * 1024


def discovery_requests(issuer: str) -> list[HttpRequest]:
    """The metadata documents to try for ``issuer``, in order.

    OpenID Connect Discovery appends ``/.well-known/openid-configuration`` to the
    issuer (section 4.1); RFC 8414 inserts ``/.well-known/oauth-authorization-server``
    between the host and the path (section 3.1).
    """
    check_url(issuer, "issuer")
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    openid = urlunsplit(parts._replace(path=f"{path}/.well-known/openid-configuration"))
    oauth = urlunsplit(
        parts._replace(path=f"/.well-known/oauth-authorization-server{path}")
    )
    headers = {"Accept": "application/json"}
    return [HttpRequest("GET", openid, headers), HttpRequest("GET", oauth, headers)]


def parse_metadata(response: HttpResponse, expected_issuer: str) -> ServerMetadata:
    """Validate a metadata document fetched for ``expected_issuer``.

    The ``issuer`` in the document must equal the one it was fetched for, character
    for character (RFC 8414 section 3.3, OpenID Connect Discovery section 4.3);
    otherwise a server could pose as another (mix-up, RFC 9700 section 4.4).

    Raises:
        MetadataError: An unusable document, with what is wrong in it.
    """
    if response.status != 200:
        raise MetadataError(f"metadata request answered HTTP {response.status}")
    if len(response.body) > MAX_METADATA:
        raise MetadataError("metadata document is too large")
    try:
        document = json.loads(response.body)
    except (ValueError, RecursionError):
        # RecursionError: nesting deep enough to exhaust the decoder's stack.
        raise MetadataError("metadata document is not JSON") from None
    if not isinstance(document, dict):
        raise MetadataError("metadata document must be a JSON object")

    issuer = document.get("issuer")
    if issuer != expected_issuer:
        raise MetadataError(
            f"metadata names issuer {issuer!r}, but was fetched for {expected_issuer!r}"
        )
    return metadata_from_document(document)


def metadata_from_document(document: dict[str, Any]) -> ServerMetadata:
    """Build :class:`ServerMetadata` from a metadata document (issuer not checked).

    Raises:
        MetadataError: When a required endpoint is missing or a URL is unusable.
    """

    def url(name: str) -> str:
        value = document.get(name)
        if not isinstance(value, str):
            raise MetadataError(f"metadata field {name!r} must be a URL")
        check_url(value, name)
        return value

    def optional_url(name: str) -> str | None:
        return url(name) if document.get(name) is not None else None

    def strings(name: str) -> tuple[str, ...]:
        value = document.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise MetadataError(f"metadata field {name!r} must be a list of strings")
        return tuple(value)

    return ServerMetadata(
        issuer=url("issuer"),
        authorization_endpoint=url("authorization_endpoint"),
        token_endpoint=url("token_endpoint"),
        iss_parameter_supported=document.get(
            "authorization_response_iss_parameter_supported"
        )
        is True,
        revocation_endpoint=optional_url("revocation_endpoint"),
        userinfo_endpoint=optional_url("userinfo_endpoint"),
        code_challenge_methods=strings("code_challenge_methods_supported"),
        token_endpoint_auth_methods=strings("token_endpoint_auth_methods_supported"),
    )


def explicit_metadata(
    *,
    authorization_endpoint: str,
    token_endpoint: str,
    issuer: str | None = None,
    iss_parameter_supported: bool = False,
    revocation_endpoint: str | None = None,
    userinfo_endpoint: str | None = None,
) -> ServerMetadata:
    """Server metadata from endpoints given by hand, for servers without discovery.

    Args:
        authorization_endpoint: Where the browser goes.
        token_endpoint: Where the code is exchanged.
        issuer: The issuer identifier; defaults to the authorization endpoint's
            origin. It is compared with a callback's ``iss`` when one is present.
        iss_parameter_supported: Require ``iss`` in callbacks (RFC 9207).
        revocation_endpoint: RFC 7009 endpoint, if any.
        userinfo_endpoint: OpenID Connect userinfo endpoint, if any.

    Raises:
        MetadataError: When a URL is unusable.
    """
    document: dict[str, Any] = {
        "issuer": issuer or _origin(authorization_endpoint),
        "authorization_endpoint": authorization_endpoint,
        "token_endpoint": token_endpoint,
        "authorization_response_iss_parameter_supported": iss_parameter_supported,
        "revocation_endpoint": revocation_endpoint,
        "userinfo_endpoint": userinfo_endpoint,
    }
    return metadata_from_document(document)


def _origin(url: str) -> str:
    check_url(url, "authorization_endpoint")
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def check_url(value: str, name: str) -> None:
    """Require an absolute https URL, or http on a loopback host (for tests).

    Raises:
        MetadataError: Naming the field at fault.
    """
    try:
        parts = urlsplit(value)
    except ValueError:
        # urlsplit refuses some authorities, e.g. an unclosed "[" (IPv6).
        raise MetadataError(f"{name} is not a parseable URL") from None
    loopback = parts.hostname in {"127.0.0.1", "localhost", "::1"}
    secure = parts.scheme == "https" or (parts.scheme == "http" and loopback)
    if secure and parts.hostname and not parts.fragment:
        return
    raise MetadataError(
        f"{name} must be an https URL without fragment (http only on loopback)"
    )
