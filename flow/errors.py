"""The exception tree of flow, split by who is at fault.

Every exception derives from :class:`FlowError`. Its three branches say where the
fault lies: :class:`CallerError` (a bad spec, an illegal transition, a bad argument or
a callback that does not verify), :class:`ProviderError` (the authorization server
answered with an RFC 6749 error or with something malformed) and
:class:`EnvironmentError_` (the network or the store failed).

Messages never contain a token, code, verifier, state value, client secret or
callback URL: they name the flow, its state and what was tried.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AccessDenied",
    "CallbackError",
    "CallerError",
    "ConfigurationError",
    "CorruptRecord",
    "DuplicateParameter",
    "EnvironmentError_",
    "FlowError",
    "FlowExpired",
    "FlowNotFound",
    "FlowNotReady",
    "GuardRejected",
    "IllegalTransition",
    "IndeterminateExchange",
    "InvalidClient",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidScope",
    "IssuerMismatch",
    "MalformedResponse",
    "MetadataError",
    "MissingCode",
    "OAuthError",
    "Problem",
    "ProviderError",
    "ReauthRequired",
    "RefreshDeferred",
    "ServerError",
    "SpecError",
    "StateMismatch",
    "StoreError",
    "TemporarilyUnavailable",
    "TransportError",
    "UnauthorizedClient",
    "UnexpectedParameter",
    "UnsupportedGrantType",
    "UnsupportedResponseType",
    "UserAgentMismatch",
    "VersionConflict",
    "oauth_error",
]


class FlowError(Exception):
    """Root of every error raised by flow.

    Attributes:
        reason: A stable, machine-readable reason code. When the error ended a flow,
            the flow's failed state records the same code.
        flow_id: The flow the error belongs to, when there is one.
        state: The state the flow was left in, when known.
    """

    reason = "error"

    def __init__(
        self,
        message: str,
        *,
        flow_id: str | None = None,
        state: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.flow_id = flow_id
        self.state = state

    def attach(self, *, flow_id: str, state: str | None = None) -> FlowError:
        """Record which flow this error ended, and in which state; returns self."""
        self.flow_id = flow_id
        if state is not None:
            self.state = state
        return self

    def __str__(self) -> str:
        where = []
        if self.flow_id is not None:
            where.append(f"flow {self.flow_id}")
        if self.state is not None:
            where.append(f"state {self.state}")
        prefix = f"[{', '.join(where)}] " if where else ""
        return f"{prefix}{self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


# Caller errors ---------------------------------------------------------------------


class CallerError(FlowError):
    """The caller asked for something that cannot be done."""

    reason = "caller_error"


class ConfigurationError(CallerError):
    """A bad argument: client registration, endpoints, store URL, options."""

    reason = "configuration_error"


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found in a spec file: where it is and what is wrong."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class SpecError(CallerError):
    """A flow spec file is malformed.

    Attributes:
        file: The spec file (or ``<memory>`` for a spec given as data).
        problems: Every problem found, each naming the field and the reason.
    """

    reason = "spec_error"

    def __init__(self, file: str, problems: Sequence[Problem]) -> None:
        self.file = file
        self.problems = tuple(problems)
        lines = [f"{file}: {problem}" for problem in self.problems]
        super().__init__("invalid flow spec\n" + "\n".join(lines))


class IllegalTransition(CallerError):
    """A trigger was fired in a state that has no transition for it."""

    reason = "illegal_transition"

    def __init__(self, *, flow_id: str, state: str, trigger: str) -> None:
        super().__init__(
            f"trigger {trigger!r} is not allowed in state {state!r}; "
            "load the flow again to see where it stands",
            flow_id=flow_id,
            state=state,
        )
        self.trigger = trigger


class GuardRejected(CallerError):
    """A trigger is declared from this state but one of its guards said no."""

    reason = "guard_rejected"

    def __init__(self, *, flow_id: str, state: str, trigger: str, guard: str) -> None:
        super().__init__(
            f"trigger {trigger!r} refused by guard {guard!r}",
            flow_id=flow_id,
            state=state,
        )
        self.trigger = trigger
        self.guard = guard


class FlowNotFound(CallerError):
    """No stored flow has this id, or no waiting flow expects this callback."""

    reason = "unknown_flow"


class FlowNotReady(CallerError):
    """The flow holds no usable credential in its current state."""

    reason = "not_ready"


class FlowExpired(CallerError):
    """The flow's time-to-live ran out before the callback arrived."""

    reason = "expired"


class CallbackError(CallerError):
    """The callback handed to ``resume`` does not verify (RFC 9700 section 4.7)."""

    reason = "invalid_callback"


class StateMismatch(CallbackError):
    """The callback's ``state`` is missing or does not match the flow's."""

    reason = "state_mismatch"


class UserAgentMismatch(CallbackError):
    """The callback does not come from the user agent the flow was started for.

    The flow is left waiting, so the real user can still finish it.
    """

    reason = "ua_mismatch"


class IssuerMismatch(CallbackError):
    """The callback's ``iss`` is missing or names another server (RFC 9207)."""

    reason = "iss_mismatch"


class MissingCode(CallbackError):
    """The callback carries neither an authorization code nor an error."""

    reason = "invalid_response"


class DuplicateParameter(CallbackError):
    """A callback parameter appears more than once."""

    reason = "duplicate_parameter"


class UnexpectedParameter(CallbackError):
    """The callback carries tokens, as an implicit or hybrid response would."""

    reason = "unexpected_parameter"


# Provider errors -------------------------------------------------------------------


class ProviderError(FlowError):
    """The authorization server's answer is an error or cannot be trusted."""

    reason = "provider_error"


class ReauthRequired(ProviderError):
    """The credential cannot be refreshed any more: the user must log in again.

    The reason code says why: ``invalid_grant`` (the provider refused the refresh
    token), ``refresh_indeterminate`` (a refresh may have rotated the token without
    the answer being recorded) or ``access_token_expired`` (no refresh token).
    """

    reason = "reauth_required"

    def __init__(self, message: str, *, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


class MetadataError(ProviderError):
    """Server metadata is unusable: missing fields, bad URLs or a foreign issuer."""

    reason = "invalid_metadata"


class MalformedResponse(ProviderError):
    """A token endpoint answer breaks RFC 6749 section 5.1 or 5.2."""

    reason = "malformed_token_response"


class OAuthError(ProviderError):
    """An error response defined by RFC 6749 (sections 4.1.2.1 and 5.2).

    Attributes:
        error: The ``error`` code as the server sent it.
        description: The ``error_description``, escaped and truncated.
    """

    reason = "oauth_error"

    def __init__(
        self,
        error: str,
        description: str | None = None,
        *,
        flow_id: str | None = None,
        state: str | None = None,
    ) -> None:
        self.error = error
        self.description = description
        detail = f": {description}" if description else ""
        super().__init__(
            f"authorization server answered {error!r}{detail}",
            flow_id=flow_id,
            state=state,
        )


class InvalidRequest(OAuthError):
    """``invalid_request``: a parameter is missing, repeated or malformed."""

    reason = "invalid_request"


class InvalidClient(OAuthError):
    """``invalid_client``: client authentication failed; check id and secret."""

    reason = "invalid_client"


class InvalidGrant(OAuthError):
    """``invalid_grant``: the code or refresh token is invalid, used or expired."""

    reason = "invalid_grant"


class UnauthorizedClient(OAuthError):
    """``unauthorized_client``: the client may not use this grant type."""

    reason = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    """``unsupported_grant_type``: the server does not support this grant."""

    reason = "unsupported_grant_type"


class InvalidScope(OAuthError):
    """``invalid_scope``: a requested scope is unknown or not allowed."""

    reason = "invalid_scope"


class AccessDenied(OAuthError):
    """``access_denied``: the user (or the server) refused the authorization."""

    reason = "access_denied"


class UnsupportedResponseType(OAuthError):
    """``unsupported_response_type``: the server does not issue codes this way."""

    reason = "unsupported_response_type"


class ServerError(OAuthError):
    """``server_error``: the authorization server failed."""

    reason = "server_error"


class TemporarilyUnavailable(OAuthError):
    """``temporarily_unavailable``: the server is overloaded or in maintenance."""

    reason = "temporarily_unavailable"


_OAUTH_ERRORS: dict[str, type[OAuthError]] = {
    cls.reason: cls
    for cls in (
        InvalidRequest,
        InvalidClient,
        InvalidGrant,
        UnauthorizedClient,
        UnsupportedGrantType,
        InvalidScope,
        AccessDenied,
        UnsupportedResponseType,
        ServerError,
        TemporarilyUnavailable,
    )
}


def oauth_error(error: str, description: str | None = None) -> OAuthError:
    """Build the typed error for an RFC 6749 ``error`` code.

    Args:
        error: The code as sent by the server.
        description: The already sanitised ``error_description``.

    Returns:
        An instance of the class registered for the code, or of :class:`OAuthError`
        for a code the RFC does not define.
    """
    return _OAUTH_ERRORS.get(error, OAuthError)(error, description)


# Environment errors ----------------------------------------------------------------


class EnvironmentError_(FlowError):
    """Something outside flow and the provider failed: the network or the store."""

    reason = "environment_error"


class TransportError(EnvironmentError_):
    """The HTTP request to the authorization server failed.

    Attributes:
        maybe_sent: False only when the connection was never made, so the request
            surely did not reach the server.
    """

    reason = "transport_error"

    def __init__(self, message: str, *, maybe_sent: bool = True) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


class IndeterminateExchange(EnvironmentError_):
    """The code may or may not have reached the token endpoint.

    flow never sends an authorization code twice (RFC 6749 section 4.1.2), so the flow
    ends here; start a new one to log in again.
    """

    reason = "exchange_indeterminate"


class RefreshDeferred(EnvironmentError_):
    """A refresh claimed by a worker was not sent: too little of its lease was left.

    Another process may judge a refresh abandoned once its lease ends, so a refresh
    token goes out only well within the lease. The credential is kept as it was.
    """

    reason = "refresh_deferred"


class StoreError(EnvironmentError_):
    """The store failed to read or write a flow."""

    reason = "store_error"


class VersionConflict(StoreError):
    """Another writer saved this flow first (compare-and-set on the version)."""

    reason = "version_conflict"


class CorruptRecord(StoreError):
    """A stored record cannot be decoded: truncated, unknown version or state."""

    reason = "corrupt_state"
