"""The engine: every step of a flow, as a program of effects with no I/O of its own.

An operation such as :meth:`Engine.resume` is a generator. It yields effects (load
this flow, save that record, send this request) and receives their results; the sync
and async drivers only perform the effects. So the rules live here once:

* a transition is saved (compare-and-set) before it is logged and before anything
  relies on it;
* the exchange is committed as started before the code is sent, and a flow found in
  that state by anyone but the process that started it is never sent again;
* a callback for a flow that has moved on changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal, cast
from urllib.parse import urlsplit

from .. import events
from ..errors import (
    AccessDenied,
    CallbackError,
    ConfigurationError,
    FlowError,
    FlowExpired,
    IndeterminateExchange,
    MalformedResponse,
    MetadataError,
    OAuthError,
    StateMismatch,
    TransportError,
    UserAgentMismatch,
    VersionConflict,
)
from ..machine import FlowMachine, default_machine
from ..protocol import (
    HttpResponse,
    authorization_url,
    code_request,
    discovery_requests,
    new_state,
    new_verifier,
    parse_callback,
    parse_metadata,
    parse_token_response,
    state_digest,
    verify_callback,
)
from ..protocol.callback import CallbackParams
from ..protocol.pkce import same_digest
from ..providers import (
    Catalog,
    Provider,
    bind_params,
    default_catalog,
    render,
    static_metadata,
)
from ..providers.apply import TokenHandling, plan_start, token_handling
from ..record import JSON, Client, FlowRecord, Secrets, ServerMetadata
from . import credential
from .effects import FindByState, Insert, Load, Program, Save, Send

#: How long a started flow waits for its callback, by default.
DEFAULT_TTL = timedelta(minutes=10)
#: How long an exchange belongs to the process that started it. Longer than any
#: token request can take, so a second process never mistakes a slow exchange for
#: a crashed one.
DEFAULT_LEASE = timedelta(minutes=2)
#: The most transitions one resume may apply; a flow has six.
MAX_STEPS = 16

Status = Literal["completed", "already_handled", "in_progress"]


@dataclass(frozen=True, slots=True)
class Started:
    """A new flow, committed and waiting for the user.

    Attributes:
        flow_id: The flow's id.
        authorization_url: Send the user's browser here. It carries the state
            value, so it is left out of the ``repr``.
        state: The flow's state (``awaiting_login``).
        expires_at: When the flow stops accepting its callback.
    """

    flow_id: str
    authorization_url: str = field(repr=False)
    state: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where a resumed flow stands.

    Attributes:
        flow_id: The flow's id.
        state: Its state after this call.
        status: ``completed`` when this call took the flow to its end;
            ``already_handled`` when an earlier callback did (nothing was sent);
            ``in_progress`` when another call accepted this callback first and is
            still finishing the flow (nothing was sent by this call).
        record: The flow as last read or committed.
    """

    flow_id: str
    state: str
    status: Status
    record: FlowRecord = field(repr=False)


class Engine:
    """The rules of a flow spec, shared by the sync and async drivers.

    Args:
        machine: The flow machine; defaults to the bundled authorization code spec.
        clock: Returns the current time, timezone-aware.
        ttl: How long a started flow waits for its callback.
        exchange_lease: How long an exchange belongs to the process that began it.
        new_id: Makes flow ids.
        catalog: The provider catalog; the bundled one by default.
    """

    def __init__(
        self,
        machine: FlowMachine | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        ttl: timedelta = DEFAULT_TTL,
        exchange_lease: timedelta = DEFAULT_LEASE,
        new_id: Callable[[], str] | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.machine = machine or default_machine()
        self.spec = self.machine.spec
        self.clock = clock or (lambda: datetime.now(UTC))
        self.ttl = ttl
        self.exchange_lease = exchange_lease
        self.new_id = new_id or (lambda: str(uuid.uuid4()))
        self._catalog = catalog

    @property
    def catalog(self) -> Catalog:
        """The provider catalog, loaded on first use."""
        if self._catalog is None:
            self._catalog = default_catalog()
        return self._catalog

    # Credential --------------------------------------------------------------------

    def access(
        self,
        flow_id: str,
        *,
        leeway: timedelta = credential.DEFAULT_LEEWAY,
        rejected: str | None = None,
    ) -> Program[FlowRecord]:
        """See :func:`flow.drivers.credential.access`."""
        return credential.access(self, flow_id, leeway=leeway, rejected=rejected)

    def revoke(self, flow_id: str) -> Program[FlowRecord]:
        """See :func:`flow.drivers.credential.revoke`."""
        return credential.revoke(self, flow_id)

    def cancel(self, flow_id: str) -> Program[FlowRecord]:
        """See :func:`flow.drivers.credential.cancel`."""
        return credential.cancel(self, flow_id)

    # Discovery -------------------------------------------------------------------

    def discover(self, issuer: str) -> Program[ServerMetadata]:
        """Fetch and check the metadata of ``issuer`` (OpenID, then RFC 8414)."""
        for request in discovery_requests(issuer):
            response = cast(HttpResponse, (yield Send(request)))
            if response.status == 404:
                continue
            return parse_metadata(response, issuer)
        raise MetadataError(f"no metadata document found for issuer {issuer!r}")

    # Start -------------------------------------------------------------------------

    def start(
        self,
        client: Client,
        server: ServerMetadata | str | None = None,
        *,
        client_secret: str | None = None,
        scopes: Sequence[str] = (),
        provider: str | None = None,
        params: Mapping[str, str] | None = None,
        offline: bool = True,
        context: Mapping[str, JSON] | None = None,
        extra_params: Mapping[str, str] | None = None,
        ttl: timedelta | None = None,
        binding: str | None = None,
    ) -> Program[Started]:
        """Create a flow, commit it in the waiting state, and return its URL.

        The server is given as metadata, as an issuer URL to discover, or left out
        when ``provider`` names a catalog provider (whose ``params`` fill its URL
        templates). Every argument is checked before any request is sent.
        """
        spec = self._catalog_provider(provider, params)
        plan = plan_start(
            spec,
            client,
            client_secret=client_secret,
            scopes=scopes,
            extra=extra_params,
            offline=offline,
        )
        if server is None:
            server = yield from self._provider_server(spec, params or {})
        elif isinstance(server, str):
            server = yield from self.discover(server)

        now = self.clock()
        state = new_state()
        verifier = new_verifier() if plan.pkce else None
        url = authorization_url(
            server,
            client,
            state=state,
            verifier=verifier,
            scopes=plan.scopes,
            extra=plan.extra,
            scope_separator=plan.scope_separator,
        )
        scopes = plan.scopes
        initial = FlowRecord(
            id=self.new_id(),
            spec=self.spec.name,
            spec_version=self.spec.version,
            state=self.spec.initial,
            version=0,
            provider=(spec.id if spec else provider) or _host(server.issuer),
            server=server,
            client=client,
            scopes=tuple(scopes),
            created_at=now,
            updated_at=now,
            expires_at=now + (ttl or self.ttl),
            context=dict(context or {}),
            secrets=Secrets(client_secret=client_secret),
        )
        record = self.machine.fire(
            initial,
            "authorize",
            now,
            state_hash=state_digest(state),
            binding_hash=state_digest(binding) if binding is not None else None,
            secrets=replace(initial.secrets, code_verifier=verifier),
        )

        yield Insert(record)
        events.log_started(record)
        events.log_committed(self.spec, record)
        return Started(record.id, url, record.state, record.expires_at)

    def _catalog_provider(
        self, provider: str | None, params: Mapping[str, str] | None
    ) -> Provider | None:
        if provider is not None and provider in self.catalog:
            spec = self.catalog.get(provider)
            bind_params(spec, params or {})
            return spec
        if params:
            raise ConfigurationError(
                f"parameters {sorted(params)} need a catalog provider; "
                f"{provider!r} is not one"
            )
        return None

    def _provider_server(
        self, spec: Provider | None, params: Mapping[str, str]
    ) -> Program[ServerMetadata]:
        if spec is None:
            raise ConfigurationError(
                "name the server: metadata, an issuer URL, or a catalog provider"
            )
        values = bind_params(spec, params)
        if spec.endpoints.authorization and spec.endpoints.token:
            return static_metadata(spec, values)
        issuer = render(spec.issuer, values)
        if issuer is None:
            raise ConfigurationError(f"provider {spec.id!r} declares no issuer")
        return (yield from self.discover(issuer))

    def token_handling(self, provider: str) -> TokenHandling:
        """How token requests and answers go for a flow's provider."""
        spec = self.catalog.get(provider) if provider in self.catalog else None
        return token_handling(spec)

    # Resume ------------------------------------------------------------------------

    def resume(
        self, callback: str, *, flow_id: str | None = None, binding: str | None = None
    ) -> Program[Outcome]:
        """Take a flow from its callback to API access, committing every step.

        Args:
            callback: The URL the browser came back on, or its raw query string,
                exactly as received.
            flow_id: The flow to resume; found by the callback's state otherwise.
            binding: The value the flow was bound to at start (the user's session
                id, say), as the request carrying this callback presents it.
        """
        params = parse_callback(callback)
        if flow_id is not None:
            record = cast(FlowRecord, (yield Load(flow_id)))
        else:
            state = params.get("state")
            if state is None:
                raise StateMismatch("callback has no 'state'; no flow can be found")
            record = cast(FlowRecord, (yield FindByState(state_digest(state))))

        # A resume owns the flow from the callback it accepted to api_ready, under
        # a lease: another resume of the same callback answers "in_progress" and
        # never drives the flow, unless the lease ran out (the owner died).
        owned = False
        committed = False
        for _ in range(MAX_STEPS):
            now = self.clock()
            leased = record.lease_until is not None and now < record.lease_until
            error: FlowError | None = None
            match record.state:
                case "awaiting_login":
                    _check_binding(record, binding)
                    nxt, error = self._on_callback(record, params, now)
                case "code_received" | "exchanging" | "token_issued" if (
                    leased and not owned
                ):
                    return Outcome(record.id, record.state, "in_progress", record)
                case "code_received":
                    nxt = self.machine.fire(
                        record,
                        "exchange_code",
                        now,
                        lease_until=now + self.exchange_lease,
                    )
                case "exchanging" if owned:
                    nxt, error = yield from self._exchange(record)
                case "exchanging":
                    error = IndeterminateExchange(
                        "the process exchanging the code stopped before recording "
                        "the answer; the code is not sent twice, log in again"
                    )
                    nxt = self.end(record, "fail", now, reason=error.reason)
                case "token_issued":
                    nxt = self.machine.fire(
                        record, "grant_access", now, lease_until=None
                    )
                case _:
                    status: Status = "completed" if committed else "already_handled"
                    return Outcome(record.id, record.state, status, record)

            try:
                yield Save(nxt)
            except VersionConflict:
                # Someone else moved the flow on: look again, and own nothing.
                record = cast(FlowRecord, (yield Load(record.id)))
                owned = False
                continue
            events.log_committed(self.spec, nxt)
            owned = True
            committed = True
            record = nxt
            if error is not None:
                raise error.attach(flow_id=record.id, state=record.state)

        raise FlowError(
            f"flow did not settle within {MAX_STEPS} steps",
            flow_id=record.id,
            state=record.state,
        )

    def _on_callback(
        self, record: FlowRecord, params: CallbackParams, now: datetime
    ) -> tuple[FlowRecord, FlowError | None]:
        if now >= record.expires_at:
            expired = FlowExpired(
                "the callback came after the flow's time-to-live; start a new flow"
            )
            return self.end(record, "expire", now), expired
        try:
            code = verify_callback(
                params,
                issuer=record.server.issuer,
                iss_required=record.server.iss_parameter_supported,
                state_hash=record.state_hash or "",
            )
        except AccessDenied as exc:
            return self.end(record, "deny", now, detail={"error": exc.error}), exc
        except (CallbackError, OAuthError) as exc:
            return self.end(record, "fail", now, reason=exc.reason), exc
        secrets = replace(record.secrets, code=code)
        accepted = self.machine.fire(
            record,
            "receive_callback",
            now,
            secrets=secrets,
            lease_until=now + self.exchange_lease,
        )
        return accepted, None

    def _exchange(
        self, record: FlowRecord
    ) -> Program[tuple[FlowRecord, FlowError | None]]:
        secrets = record.secrets
        handling = self.token_handling(record.provider)
        request = code_request(
            record.server,
            record.client,
            client_secret=handling.secret_for(record),
            code=secrets.code or "",
            verifier=secrets.code_verifier,
            headers=handling.headers,
        )
        try:
            response = cast(HttpResponse, (yield Send(request)))
        except TransportError as exc:
            now = self.clock()
            if exc.maybe_sent:
                error: FlowError = IndeterminateExchange(
                    f"the token request failed after it may have been sent ({exc}); "
                    "the code is not sent twice, log in again"
                )
            else:
                error = exc
            return self.end(record, "fail", now, reason=error.reason), error

        now = self.clock()
        try:
            result = parse_token_response(response, now, handling.rules, handling.hooks)
        except (OAuthError, MalformedResponse) as exc:
            detail = {"http_status": response.status}
            return self.end(record, "fail", now, reason=exc.reason, detail=detail), exc
        issued = self.machine.fire(
            record,
            "issue_token",
            now,
            token=result.info,
            secrets=replace(
                secrets,
                code=None,
                code_verifier=None,
                access_token=result.access_token,
                refresh_token=result.refresh_token,
                id_token=result.id_token,
            ),
            detail={"http_status": response.status},
        )
        return issued, None

    def end(
        self,
        record: FlowRecord,
        trigger: str,
        now: datetime,
        *,
        reason: str | None = None,
        detail: Mapping[str, JSON] | None = None,
    ) -> FlowRecord:
        """Fire a trigger that ends the flow, scrubbing the code and verifier.

        A flow that ends keeps no code or verifier (SECURITY L5); the state digest
        stays so that a repeated callback still finds the flow and gets an answer.
        """
        scrubbed = replace(record.secrets, code=None, code_verifier=None)
        return self.machine.fire(
            record,
            trigger,
            now,
            reason=reason,
            detail=detail,
            secrets=scrubbed,
            lease_until=None,
        )


def _check_binding(record: FlowRecord, binding: str | None) -> None:
    # RFC 9700 section 2.1: CSRF protection binds the state to the user agent. A
    # callback from another browser is refused before anything changes, so a
    # forged callback cannot end the real user's flow.
    if record.binding_hash is None:
        return
    if binding is None or not same_digest(state_digest(binding), record.binding_hash):
        raise UserAgentMismatch(
            "the callback does not come from the browser that started this flow",
            flow_id=record.id,
            state=record.state,
        )


def _host(url: str) -> str:
    return urlsplit(url).hostname or "custom"
