"""Validating the authorization response that comes back through the browser.

The checks run in the order RFC 9207 and RFC 9700 require: the issuer first, then the
state, then an error answer, then the code. An error answer is only believed once the
issuer and the state prove where it came from (RFC 9207 section 2.4).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from ..errors import (
    CallbackError,
    DuplicateParameter,
    IssuerMismatch,
    MissingCode,
    OAuthError,
    StateMismatch,
    UnexpectedParameter,
    oauth_error,
)
from .pkce import same_digest, state_digest
from .text import sanitize

#: Parameters an authorization-code callback must never carry: tokens belong to the
#: implicit and hybrid flows, which flow does not run (RFC 9700 section 2.1.2), and
#: ``response`` to JARM, which flow does not request.
FORBIDDEN = frozenset(
    {"access_token", "id_token", "token", "response", "refresh_token"}
)

# A URL with a scheme, including private-use schemes of native apps
# (``com.example.app:/cb``, RFC 8252 section 7.1).
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")

#: The longest callback query accepted, in characters.
MAX_QUERY = 16 * 1024


@dataclass(frozen=True, slots=True)
class CallbackParams:
    """A callback's query, parsed once, duplicates kept for the checks.

    Its ``repr`` lists parameter names only.
    """

    pairs: tuple[tuple[str, str], ...]

    def __repr__(self) -> str:
        return f"CallbackParams(names={[name for name, _ in self.pairs]!r})"

    def get(self, name: str) -> str | None:
        """The first value of ``name``, or ``None``."""
        for key, value in self.pairs:
            if key == name:
                return value
        return None

    def names(self) -> list[str]:
        """Parameter names in order, with repeats."""
        return [name for name, _ in self.pairs]


def parse_callback(callback: str) -> CallbackParams:
    """Parse a callback given as a full URL, a query string or ``?query``.

    The query is parsed as it arrived: nothing is dropped or rebuilt, so an ``iss``
    that a web framework would lose still reaches the checks.

    Args:
        callback: The redirect URL the browser came back on, or its query.

    Returns:
        The parsed parameters.

    Raises:
        CallbackError: When the URL cannot be parsed, or the query is too long or
            is not valid percent-encoded UTF-8.
    """
    if callback.startswith("?"):
        query = callback[1:]
    elif callback.startswith("/") or _URL.match(callback):
        try:
            query = urlsplit(callback).query
        except ValueError:
            # urlsplit refuses some authorities, e.g. an unclosed "[" (IPv6).
            raise CallbackError("callback URL cannot be parsed") from None
    else:
        query = callback
    if len(query) > MAX_QUERY:
        raise CallbackError(f"callback query longer than {MAX_QUERY} characters")
    try:
        pairs = parse_qsl(
            query,
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            separator="&",
        )
    except (UnicodeDecodeError, ValueError):
        raise CallbackError(
            "callback query is not valid percent-encoded UTF-8"
        ) from None
    return CallbackParams(tuple(pairs))


def verify_callback(
    params: CallbackParams,
    *,
    issuer: str,
    iss_required: bool,
    state_hash: str,
) -> str:
    """Check a callback and return its authorization code.

    Args:
        params: The parsed callback.
        issuer: The issuer the flow started with.
        iss_required: The server advertises ``iss`` in authorization responses
            (RFC 9207 section 3), so it must be present.
        state_hash: The digest of the state value the flow sent.

    Returns:
        The authorization code.

    Raises:
        DuplicateParameter: A parameter appears twice (RFC 6749 section 3.1).
        UnexpectedParameter: The callback carries tokens.
        IssuerMismatch: ``iss`` is missing where required, or differs from the
            issuer by even one character (RFC 9207 section 2.4).
        StateMismatch: ``state`` is missing or is not the flow's.
        AccessDenied: A verified ``access_denied`` answer.
        OAuthError: Another verified error answer, typed by its code.
        MissingCode: Neither a code nor an error.
    """
    names = params.names()
    repeated = sorted(name for name, n in Counter(names).items() if n > 1)
    if repeated:
        raise DuplicateParameter(f"callback repeats parameters {repeated}")
    carried = sorted(FORBIDDEN.intersection(names))
    if carried:
        raise UnexpectedParameter(
            f"callback carries {carried}, which a code flow never returns"
        )

    # Issuer: compared as a plain string after one decoding (RFC 9207 section 2.4).
    iss = params.get("iss")
    if iss is None:
        if iss_required:
            raise IssuerMismatch("callback has no 'iss' but the server always sends it")
    elif iss != issuer:
        raise IssuerMismatch("callback 'iss' names another authorization server")

    state = params.get("state")
    if state is None:
        raise StateMismatch("callback has no 'state'")
    if not same_digest(state_digest(state), state_hash):
        raise StateMismatch("callback 'state' does not match the flow's")

    error = params.get("error")
    if error:
        raise _error_answer(error, params.get("error_description"))
    if error is not None:
        raise MissingCode("callback carries an empty 'error'")

    code = params.get("code")
    if not code:
        raise MissingCode("callback carries neither 'code' nor 'error'")
    return code


def _error_answer(error: str, description: str | None) -> OAuthError:
    return oauth_error(
        sanitize(error, 64), sanitize(description) if description else None
    )


__all__ = [
    "FORBIDDEN",
    "MAX_QUERY",
    "CallbackParams",
    "parse_callback",
    "verify_callback",
]
