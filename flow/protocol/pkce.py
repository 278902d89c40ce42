"""PKCE (RFC 7636) and the other per-flow random values."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

#: 32 random bytes: a 43-character verifier carrying 256 bits (RFC 7636 section 7.1).
VERIFIER_BYTES = 32
#: 24 random bytes: a state value of 192 bits, above the 128 RFC 6749 section 10.10
#: requires and the 160 it recommends.
STATE_BYTES = 24


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def new_verifier() -> str:
    """A fresh code verifier: 43 unreserved characters, 256 bits of entropy."""
    return _b64url(secrets.token_bytes(VERIFIER_BYTES))


def new_state() -> str:
    """A fresh ``state`` value for one authorization request."""
    return _b64url(secrets.token_bytes(STATE_BYTES))


def s256_challenge(verifier: str) -> str:
    """The S256 code challenge: BASE64URL(SHA256(ASCII(verifier))), RFC 7636 4.2."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def state_digest(state: str) -> str:
    """The SHA-256 hex digest a flow keeps instead of its state value."""
    return hashlib.sha256(state.encode("utf-8", "surrogatepass")).hexdigest()


def same_digest(left: str, right: str) -> bool:
    """Constant-time comparison of two digests."""
    return hmac.compare_digest(left.encode("ascii"), right.encode("ascii"))
