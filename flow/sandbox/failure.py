"""The one exception the sandbox raises internally: an OAuth error to answer with."""

from __future__ import annotations


class SandboxFailure(Exception):
    """An error response the sandbox sends back (RFC 6749 sections 4.1.2.1 and 5.2).

    It never leaves the sandbox: the endpoints turn it into a JSON error body, an
    error redirect or an HTML page.

    Attributes:
        error: The RFC 6749 error code, such as ``invalid_grant``.
        description: A human-readable ``error_description``; never holds a secret.
        status: The HTTP status for a JSON answer: 400, or 401 for ``invalid_client``
            and ``invalid_token``.
    """

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


def invalid_request(description: str) -> SandboxFailure:
    """A request that is missing, repeats or garbles a parameter."""
    return SandboxFailure("invalid_request", description)


def invalid_client(description: str) -> SandboxFailure:
    """Client authentication failed: always HTTP 401 (RFC 6749 section 5.2)."""
    return SandboxFailure("invalid_client", description, status=401)


def invalid_grant(description: str) -> SandboxFailure:
    """A code or refresh token that is unknown, used, expired or not this client's."""
    return SandboxFailure("invalid_grant", description)
