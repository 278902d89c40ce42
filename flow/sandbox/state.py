"""The sandbox's memory: pending logins, codes, grants and tokens, behind one lock.

A *grant* is what one user's consent to one client produced: the code, then every
access and refresh token obtained from it. Replaying a code or a rotated refresh
token revokes the whole grant, as RFC 6749 section 4.1.2 and RFC 9700 section
4.14.2 ask.

Codes and tokens are kept only as SHA-256 digests, so no repr, traceback or
debugger view of this state holds a usable credential. Nothing here is ever
persisted or pruned: the state lives as long as the server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .failure import SandboxFailure, invalid_grant, invalid_request

#: Codes live 60 seconds; RFC 6749 section 4.1.2 allows at most ten minutes.
CODE_TTL = 60.0
#: How long the login page waits for the user's decision.
PENDING_TTL = 600.0


@dataclass(frozen=True, slots=True)
class SandboxStats:
    """A snapshot of what the sandbox has served, for demos and tests.

    A token request counts once it has passed client authentication and its
    parameter checks, that is once a code or refresh token is looked up.

    Attributes:
        code_exchanges: Token requests with ``grant_type=authorization_code``.
        refresh_requests: Token requests with ``grant_type=refresh_token``.
        refreshes: Refresh requests that succeeded and rotated the refresh token.
        revocations: Accepted requests to the revocation endpoint.
        replays_detected: Codes or rotated refresh tokens presented again.
    """

    code_exchanges: int = 0
    refresh_requests: int = 0
    refreshes: int = 0
    revocations: int = 0
    replays_detected: int = 0


@dataclass(frozen=True, slots=True)
class PendingRequest:
    """A validated authorization request waiting for the user's decision."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    scope: str
    state: str | None
    expires_at: float


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    """What a successful token request returns (RFC 6749 section 5.1)."""

    access_token: str
    refresh_token: str
    expires_in: int
    scope: str


@dataclass(frozen=True, slots=True)
class TokenOwner:
    """Who an access token speaks for, as the userinfo endpoint needs it."""

    username: str
    client_id: str
    scope: str


@dataclass(slots=True)
class _Code:
    client_id: str
    redirect_uri: str
    code_challenge: str
    username: str
    scope: str
    expires_at: float
    used: bool = False
    grant_id: str | None = None


@dataclass(slots=True)
class _Grant:
    client_id: str
    username: str
    scope: str
    current_refresh: str = ""
    revoked: bool = False
    access_tokens: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class _Access:
    grant_id: str
    scope: str
    expires_at: float


def s256(verifier: str) -> str:
    """BASE64URL(SHA256(ASCII(verifier))) without padding (RFC 7636 section 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class SandboxState:
    """All mutable sandbox state; every public method holds the one lock.

    Args:
        access_token_ttl: Seconds an access token stays valid.
        clock: Monotonic seconds; tests pass a fake to expire things without
            sleeping.
    """

    def __init__(self, *, access_token_ttl: int, clock: Callable[[], float]) -> None:
        self._ttl = access_token_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._stats = SandboxStats()
        self._pending: dict[str, PendingRequest] = {}
        self._codes: dict[str, _Code] = {}
        self._grants: dict[str, _Grant] = {}
        self._access: dict[str, _Access] = {}
        # Every refresh token ever issued, by digest, with its grant. Rotated ones
        # stay so that their reuse is recognised.
        self._refresh: dict[str, str] = {}

    @property
    def stats(self) -> SandboxStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return self._stats

    # -- the authorization endpoint ------------------------------------------------

    def add_pending(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        code_challenge: str,
        scope: str,
        state: str | None,
    ) -> str:
        """Keep a validated request for the login page; return its unguessable id.

        The id is all the login page carries: the challenge and the state stay
        here.
        """
        request_id = secrets.token_urlsafe(32)
        request = PendingRequest(
            client_id,
            redirect_uri,
            code_challenge,
            scope,
            state,
            expires_at=self._clock() + PENDING_TTL,
        )
        with self._lock:
            self._pending[_digest(request_id)] = request
        return request_id

    def take_pending(self, request_id: str) -> PendingRequest | None:
        """Remove and return a pending request; ``None`` if unknown or expired."""
        with self._lock:
            request = self._pending.pop(_digest(request_id), None)
            if request is None or self._clock() >= request.expires_at:
                return None
            return request

    def issue_code(self, request: PendingRequest, username: str) -> str:
        """A single-use code bound to the request's client, redirect and challenge."""
        code = secrets.token_urlsafe(32)
        record = _Code(
            client_id=request.client_id,
            redirect_uri=request.redirect_uri,
            code_challenge=request.code_challenge,
            username=username,
            scope=request.scope,
            expires_at=self._clock() + CODE_TTL,
        )
        with self._lock:
            self._codes[_digest(code)] = record
        return code

    # -- the token endpoint --------------------------------------------------------

    def redeem_code(
        self, client_id: str, code: str, redirect_uri: str, verifier: str
    ) -> IssuedTokens:
        """Exchange a code for tokens (RFC 6749 section 4.1.3, RFC 7636 section 4.6).

        Raises:
            SandboxFailure: ``invalid_grant`` for every reason the code is refused.
        """
        with self._lock:
            self._count(code_exchanges=1)
            record = self._codes.get(_digest(code))
            if record is None:
                raise invalid_grant("unknown authorization code")

            # Replay: refuse, and revoke what the first use produced (RFC 6749
            # section 4.1.2). The first presentation consumes the code whatever
            # its outcome.
            if record.used:
                self._count(replays_detected=1)
                if record.grant_id is not None:
                    self._revoke_grant(record.grant_id)
                raise invalid_grant("authorization code was already used")
            record.used = True

            # Binding checks
            if self._clock() >= record.expires_at:
                raise invalid_grant("authorization code has expired")
            if record.client_id != client_id:
                raise invalid_grant("authorization code was issued to another client")
            if record.redirect_uri != redirect_uri:
                raise invalid_grant("redirect_uri differs from the authorization's")
            if not hmac.compare_digest(s256(verifier), record.code_challenge):
                raise invalid_grant("code_verifier does not match the code_challenge")

            grant_id = secrets.token_urlsafe(16)
            self._grants[grant_id] = _Grant(client_id, record.username, record.scope)
            record.grant_id = grant_id
            return self._issue(grant_id, record.scope)

    def refresh(
        self, client_id: str, refresh_token: str, scope: str | None
    ) -> IssuedTokens:
        """Rotate a refresh token (RFC 6749 section 6, RFC 9700 section 4.14.2).

        Args:
            client_id: The authenticated client.
            refresh_token: The token presented.
            scope: A narrower scope, or ``None`` to keep the grant's.

        Raises:
            SandboxFailure: ``invalid_grant``, or ``invalid_scope`` for a wider scope.
        """
        with self._lock:
            self._count(refresh_requests=1)
            digest = _digest(refresh_token)
            grant_id = self._refresh.get(digest)
            grant = self._grants.get(grant_id) if grant_id is not None else None
            if grant_id is None or grant is None:
                raise invalid_grant("unknown refresh token")
            if grant.client_id != client_id:
                raise invalid_grant("refresh token was issued to another client")
            if grant.revoked:
                raise invalid_grant("refresh token was revoked")

            # A rotated token coming back means two parties hold the grant; the
            # server cannot tell which is legitimate, so both lose it.
            if grant.current_refresh != digest:
                self._count(replays_detected=1)
                self._revoke_grant(grant_id)
                raise invalid_grant("refresh token was already used; grant revoked")

            granted = grant.scope.split()
            requested = granted if scope is None else scope.split()
            if not set(requested) <= set(granted):
                raise SandboxFailure("invalid_scope", "scope wider than the grant's")

            self._count(refreshes=1)
            return self._issue(grant_id, " ".join(requested))

    # -- resource and revocation endpoints ----------------------------------------

    def owner(self, access_token: str) -> TokenOwner | None:
        """Who ``access_token`` belongs to; ``None`` if unknown, expired or revoked."""
        with self._lock:
            access = self._access.get(_digest(access_token))
            if access is None or self._clock() >= access.expires_at:
                return None
            grant = self._grants[access.grant_id]
            if grant.revoked:
                return None
            return TokenOwner(grant.username, grant.client_id, access.scope)

    def revoke(self, client_id: str, token: str) -> None:
        """Revoke a token of ``client_id`` (RFC 7009 section 2.1).

        An access token is revoked alone; a refresh token takes its whole grant,
        access tokens included. Unknown tokens are ignored (section 2.2).

        Raises:
            SandboxFailure: ``invalid_request`` for another client's token.
        """
        with self._lock:
            self._count(revocations=1)
            digest = _digest(token)
            access = self._access.get(digest)
            grant_id = access.grant_id if access else self._refresh.get(digest)
            if grant_id is None:
                return
            if self._grants[grant_id].client_id != client_id:
                raise invalid_request("the token was issued to another client")
            if access is not None:
                del self._access[digest]
            else:
                self._revoke_grant(grant_id)

    # -- helpers; the lock is held -------------------------------------------------

    def _issue(self, grant_id: str, scope: str) -> IssuedTokens:
        grant = self._grants[grant_id]
        access_token = secrets.token_urlsafe(32)
        refresh_token = secrets.token_urlsafe(32)
        access_digest = _digest(access_token)
        self._access[access_digest] = _Access(
            grant_id, scope, self._clock() + self._ttl
        )
        grant.access_tokens.add(access_digest)
        grant.current_refresh = _digest(refresh_token)
        self._refresh[grant.current_refresh] = grant_id
        return IssuedTokens(access_token, refresh_token, self._ttl, scope)

    def _revoke_grant(self, grant_id: str) -> None:
        grant = self._grants[grant_id]
        grant.revoked = True
        for digest in grant.access_tokens:
            self._access.pop(digest, None)
        grant.access_tokens.clear()

    def _count(self, **increments: int) -> None:
        changes = {
            name: getattr(self._stats, name) + step for name, step in increments.items()
        }
        self._stats = replace(self._stats, **changes)
