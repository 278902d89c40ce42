"""The protocol core: OAuth 2.0 requests built and responses read, with no I/O."""

from .authorize import authorization_url
from .callback import CallbackParams, parse_callback, verify_callback
from .http import HttpRequest, HttpResponse
from .metadata import (
    discovery_requests,
    explicit_metadata,
    metadata_from_document,
    parse_metadata,
)
from .pkce import new_state, new_verifier, s256_challenge, state_digest
from .token import (
    TokenResult,
    basic_credentials,
    check_revocation_response,
    code_request,
    parse_token_response,
    refresh_request,
    revocation_request,
)

__all__ = [
    "CallbackParams",
    "HttpRequest",
    "HttpResponse",
    "TokenResult",
    "authorization_url",
    "basic_credentials",
    "check_revocation_response",
    "code_request",
    "discovery_requests",
    "explicit_metadata",
    "metadata_from_document",
    "new_state",
    "new_verifier",
    "parse_callback",
    "parse_metadata",
    "parse_token_response",
    "refresh_request",
    "revocation_request",
    "s256_challenge",
    "state_digest",
    "verify_callback",
]
