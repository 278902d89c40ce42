"""The life of a finished flow's credential: refresh, revocation, cancellation.

Like the code exchange, a refresh is committed as started (``refreshing``, with a
lease) before the refresh token is sent, because a rotated refresh token used twice
makes the provider revoke the whole grant (RFC 9700 section 4.14.2). Of several
processes that find the token expired, the one whose ``begin_refresh`` commits sends
the request; the others wait for its result and read the new token from the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, cast

from .. import events
from ..errors import (
    FlowError,
    FlowNotReady,
    MalformedResponse,
    OAuthError,
    ReauthRequired,
    RefreshDeferred,
    TransportError,
    VersionConflict,
)
from ..protocol import (
    HttpResponse,
    check_revocation_response,
    parse_token_response,
    refresh_request,
    revocation_request,
)
from ..record import JSON, FlowRecord, Secrets
from .effects import Load, Program, Save, Send, Sleep

if TYPE_CHECKING:
    from .engine import Engine

#: Refresh this long before the access token expires, by default.
DEFAULT_LEEWAY = timedelta(seconds=30)
#: First and longest pause while another process refreshes.
_POLL_FIRST, _POLL_MAX = 0.05, 0.5
#: The most loop turns one operation takes: polls for a whole lease, plus steps.
_MAX_TURNS = 512
#: Why a credential lapses: its access token expired and nothing can renew it.
_LAPSED = "access_token_expired"


def access(
    engine: Engine,
    flow_id: str,
    *,
    leeway: timedelta = DEFAULT_LEEWAY,
    rejected: str | None = None,
) -> Program[FlowRecord]:
    """The flow with a usable access token, refreshed first when needed.

    Args:
        engine: The engine whose machine and clock apply.
        flow_id: The flow.
        leeway: Refresh when the token expires within this time.
        rejected: An access token the API just refused (HTTP 401): refresh if it is
            still the stored one; if another caller already replaced it, use theirs.
    """
    record = cast(FlowRecord, (yield Load(flow_id)))
    owned = False
    pause = _POLL_FIRST
    for _ in range(_MAX_TURNS):
        now = engine.clock()
        error: FlowError | None = None
        match record.state:
            case "api_ready" if not _needs_refresh(record, now, leeway, rejected):
                return record
            case "api_ready" if record.secrets.refresh_token is None:
                error = ReauthRequired(
                    "the access token expired and there is no refresh token; "
                    "log in again",
                    cause=_LAPSED,
                )
                nxt = lapse(engine, record, now)
            case "api_ready":
                nxt = begin(engine, record, now)
            case "refreshing" if owned:
                nxt, error = yield from _refresh(engine, record)
            case "refreshing" if record.lease_until and now < record.lease_until:
                # Another process is refreshing: wait for its result.
                yield Sleep(pause)
                pause = min(pause * 2, _POLL_MAX)
                record = cast(FlowRecord, (yield Load(flow_id)))
                continue
            case "refreshing":
                error = ReauthRequired(
                    "a refresh stopped before its answer was recorded; the refresh "
                    "token may be rotated, so it is not sent again: log in again",
                    cause="refresh_indeterminate",
                )
                nxt = _give_up(engine, record, "reject_refresh", now, error.cause)
            case "reauth_required":
                raise ReauthRequired(
                    "the credential can no longer be refreshed; log in again",
                    cause=record.reason or "reauth_required",
                ).attach(flow_id=record.id, state=record.state)
            case _:
                raise FlowNotReady(
                    f"no credential in state {record.state!r}; finish the flow first",
                    flow_id=record.id,
                    state=record.state,
                )

        try:
            yield Save(nxt)
        except VersionConflict:
            record = cast(FlowRecord, (yield Load(flow_id)))
            owned = False
            continue
        events.log_committed(engine.spec, nxt)
        owned = nxt.state == "refreshing"
        record = nxt
        if error is not None:
            raise error.attach(flow_id=record.id, state=record.state)
        if record.state == "api_ready":
            # One refresh per call, even if the new token is already inside the
            # leeway: a short-lived token must not make a refresh loop.
            return record

    raise FlowError("credential did not settle", flow_id=flow_id, state=record.state)


def begin(engine: Engine, record: FlowRecord, now: datetime) -> FlowRecord:
    """The credential committed as being refreshed by the caller, with a lease."""
    return engine.machine.fire(
        record, "begin_refresh", now, lease_until=now + engine.exchange_lease
    )


def lapse(engine: Engine, record: FlowRecord, now: datetime) -> FlowRecord:
    """The credential given up: its access token expired with no refresh token."""
    return _give_up(engine, record, "lapse", now, _LAPSED)


def settle(engine: Engine, record: FlowRecord) -> Program[FlowRecord]:
    """Send the refresh the caller committed with :func:`begin`; commit the answer.

    The refresh token goes out only while enough of the lease is left for the
    request to finish within it: past that, another process may judge the refresh
    abandoned, so the credential is handed back untouched instead.

    Args:
        engine: The engine whose machine and clock apply.
        record: The flow as the caller's ``begin_refresh`` committed it.

    Returns:
        The flow back in ``api_ready`` with its new tokens.

    Raises:
        ReauthRequired: The provider refused the refresh token, or the outcome is
            unknown; the credential is given up.
        RefreshDeferred: Too little of the lease was left; nothing was sent.
        FlowError: The refresh failed but consumed nothing (a server error, no
            connection); the credential is kept.
        VersionConflict: Another process moved the flow on meanwhile.
    """
    now = engine.clock()
    lease_until = record.lease_until or now
    if lease_until - now < engine.exchange_lease / 2:
        error: FlowError | None = RefreshDeferred(
            "the refresh waited too long for its turn and was not sent; the "
            "credential is kept for the next run"
        )
        nxt = _keep(engine, record, now, RefreshDeferred.reason)
    else:
        nxt, error = yield from _refresh(engine, record)
    yield Save(nxt)
    events.log_committed(engine.spec, nxt)
    if error is not None:
        raise error.attach(flow_id=nxt.id, state=nxt.state)
    return nxt


def _needs_refresh(
    record: FlowRecord, now: datetime, leeway: timedelta, rejected: str | None
) -> bool:
    if rejected is not None:
        return rejected == record.secrets.access_token
    expires_at = record.token.expires_at if record.token else None
    return expires_at is not None and now >= expires_at - leeway


def _refresh(
    engine: Engine, record: FlowRecord
) -> Program[tuple[FlowRecord, FlowError | None]]:
    secrets = record.secrets
    handling = engine.token_handling(record.provider)
    request = refresh_request(
        record.server,
        record.client,
        client_secret=handling.secret_for(record),
        refresh_token=secrets.refresh_token or "",
        headers=handling.headers,
    )
    try:
        response = cast(HttpResponse, (yield Send(request)))
    except TransportError as exc:
        now = engine.clock()
        if not exc.maybe_sent:
            return _keep(engine, record, now, exc.reason), exc
        error = ReauthRequired(
            f"the refresh request failed after it may have been sent ({exc}); "
            "the refresh token is not sent again: log in again",
            cause="refresh_indeterminate",
        )
        return _give_up(engine, record, "reject_refresh", now, error.cause), error

    now = engine.clock()
    try:
        result = parse_token_response(response, now, handling.rules, handling.hooks)
    except OAuthError as exc:
        if exc.reason != "invalid_grant":
            return _keep(engine, record, now, exc.reason), exc
        error = ReauthRequired(
            "the provider refused the refresh token (invalid_grant); log in again",
            cause="invalid_grant",
        )
        return _give_up(engine, record, "reject_refresh", now, error.cause), error
    except MalformedResponse as exc:
        if response.status != 200:
            return _keep(engine, record, now, exc.reason), exc
        # A 200 we cannot read may carry a rotated refresh token we never saw.
        error = ReauthRequired(
            f"unreadable refresh answer ({exc.message}); log in again",
            cause="refresh_indeterminate",
        )
        return _give_up(engine, record, "reject_refresh", now, error.cause), error

    # RFC 6749 section 6: a new refresh token replaces the old one, in this same
    # committed transition; without one, the old one stays valid.
    refreshed = engine.machine.fire(
        record,
        "complete_refresh",
        now,
        token=result.info,
        lease_until=None,
        secrets=replace(
            secrets,
            access_token=result.access_token,
            refresh_token=result.refresh_token or secrets.refresh_token,
            id_token=result.id_token or secrets.id_token,
        ),
        detail={"rotated": result.refresh_token is not None},
    )
    return refreshed, None


def _keep(engine: Engine, record: FlowRecord, now: datetime, why: str) -> FlowRecord:
    return engine.machine.fire(
        record, "abort_refresh", now, lease_until=None, detail={"error": why}
    )


def _give_up(
    engine: Engine, record: FlowRecord, trigger: str, now: datetime, reason: str
) -> FlowRecord:
    return engine.machine.fire(
        record,
        trigger,
        now,
        reason=reason,
        lease_until=None,
        secrets=_erased(record),
    )


def _erased(record: FlowRecord) -> Secrets:
    return replace(
        record.secrets,
        access_token=None,
        refresh_token=None,
        id_token=None,
        code=None,
        code_verifier=None,
    )


def revoke(engine: Engine, flow_id: str) -> Program[FlowRecord]:
    """Revoke the credential at the provider (RFC 7009) and erase the tokens.

    The refresh token is revoked first (that usually ends its access tokens too,
    RFC 7009 section 2.1), then the access token. Without a revocation endpoint the
    tokens are only erased, and the history says so. Revoking twice is harmless.
    """
    for _ in range(_MAX_TURNS):
        record = cast(FlowRecord, (yield Load(flow_id)))
        if record.state == "revoked":
            return record
        if record.state != "api_ready":
            raise FlowNotReady(
                f"cannot revoke in state {record.state!r}",
                flow_id=record.id,
                state=record.state,
            )
        handling = engine.token_handling(record.provider)
        endpoint = record.server.revocation_endpoint
        secrets = record.secrets
        if endpoint is not None:
            for token, hint in (
                (secrets.refresh_token, "refresh_token"),
                (secrets.access_token, "access_token"),
            ):
                if token is None:
                    continue
                request = revocation_request(
                    endpoint,
                    record.client,
                    client_secret=handling.secret_for(record),
                    token=token,
                    hint=hint,
                )
                check_revocation_response(cast(HttpResponse, (yield Send(request))))
        detail: Mapping[str, JSON] = {"at_provider": endpoint is not None}
        nxt = engine.machine.fire(
            record,
            "revoke",
            engine.clock(),
            token=None,
            secrets=_erased(record),
            detail=detail,
        )
        try:
            yield Save(nxt)
        except VersionConflict:
            continue
        events.log_committed(engine.spec, nxt)
        return nxt
    raise FlowError("revocation did not settle", flow_id=flow_id)


def cancel(engine: Engine, flow_id: str) -> Program[FlowRecord]:
    """End a flow that is still waiting for its user; a finished flow is left as is."""
    for _ in range(_MAX_TURNS):
        record = cast(FlowRecord, (yield Load(flow_id)))
        if engine.spec.is_terminal(record.state) or record.state not in (
            "client_registered",
            "awaiting_login",
        ):
            return record
        nxt = engine.machine.fire(
            record,
            "cancel",
            engine.clock(),
            secrets=replace(record.secrets, code_verifier=None),
        )
        try:
            yield Save(nxt)
        except VersionConflict:
            continue
        events.log_committed(engine.spec, nxt)
        return nxt
    raise FlowError("cancellation did not settle", flow_id=flow_id)
