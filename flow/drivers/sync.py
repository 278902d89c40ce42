"""The synchronous driver: performs the engine's effects with a store and httpx."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from types import TracebackType
from typing import Any, TypeVar

import httpx

from ..errors import FlowError
from ..protocol import HttpRequest, HttpResponse
from ..record import JSON, Client, FlowRecord, ServerMetadata
from ..stores import Store
from . import _http, maintenance
from ._locks import FlowLocks
from .access import FlowAuth
from .credential import DEFAULT_LEEWAY
from .effects import (
    MAX_EFFECTS,
    ClaimDue,
    Concurrently,
    Delete,
    FindByState,
    FindExpiring,
    FindFinished,
    Insert,
    Load,
    Program,
    Save,
    Send,
    Sleep,
)
from .engine import Engine, Outcome, Started
from .maintenance import GcSummary, Progress, RefreshSummary

T = TypeVar("T")


class Driver:
    """Runs flows in this thread: start, resume, and everything in between.

    Args:
        store: Where flows live between steps.
        engine: The rules to apply; defaults to the authorization code engine.
        http: An httpx client for the authorization server; one with sensible
            timeouts is made (and closed by :meth:`close`) when omitted.
    """

    def __init__(
        self,
        store: Store,
        *,
        engine: Engine | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self.store = store
        self.engine = engine or Engine()
        self._locks = FlowLocks(threading.Lock)
        self._own_http = http is None
        self.http = http or httpx.Client(
            timeout=_http.DEFAULT_TIMEOUT, follow_redirects=False
        )

    def __enter__(self) -> Driver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the httpx client if this driver made it. The store stays open."""
        if self._own_http:
            self.http.close()

    def discover(self, issuer: str) -> ServerMetadata:
        """Fetch the issuer's metadata and check that it names the same issuer.

        Raises:
            MetadataError: No usable document, or one for another issuer.
            TransportError: The server could not be reached.
        """
        return self._run(self.engine.discover(issuer))

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
    ) -> Started:
        """Start a flow: commit it as waiting for the user and return its URL.

        Args:
            client: The client registration.
            server: The server's metadata, or its issuer URL to discover it; may
                be left out when ``provider`` names a catalog provider.
            client_secret: The secret of a confidential client (and of a
                desktop client whose provider wants it, such as Google).
            scopes: Scopes to request; the provider's defaults when empty.
            provider: A catalog provider id (``google``, ``microsoft``, ...),
                whose quirks then apply; otherwise a short name for logs and
                listings (the issuer's host if omitted).
            params: The catalog provider's parameters (``{"tenant": ...}``).
            offline: Ask for a refresh token the way the provider wants it.
            context: The application's own JSON data, kept with the flow.
            extra_params: Further authorization parameters (``prompt``, ...).
            ttl: How long the flow waits for its callback.
            binding: A value that ties the flow to the user's browser, such as
                the session id; ``resume`` then needs the same value
                (RFC 9700 section 2.1).

        Returns:
            The flow id and the authorization URL to send the browser to.
        """
        return self._run(
            self.engine.start(
                client,
                server,
                client_secret=client_secret,
                scopes=scopes,
                provider=provider,
                params=params,
                offline=offline,
                context=context,
                extra_params=extra_params,
                ttl=ttl,
                binding=binding,
            )
        )

    def resume(
        self, callback: str, *, flow_id: str | None = None, binding: str | None = None
    ) -> Outcome:
        """Resume a flow from the callback its browser came back with.

        Args:
            callback: The full callback URL or its raw query string, untouched.
            flow_id: The flow, when known; found by the callback's state otherwise.
            binding: The value given to ``start``, as this request presents it.

        Returns:
            Where the flow stands: ``completed``, ``already_handled`` (a repeated
            callback; nothing was sent) or ``in_progress`` (another process is
            exchanging the code).

        Raises:
            FlowNotFound: No flow matches.
            CallbackError: The callback does not verify; the flow is failed
                (``UserAgentMismatch`` leaves it waiting for the real user).
            OAuthError: The server refused (the flow is denied or failed).
            FlowExpired: The flow's time-to-live ran out; the flow is expired.
            IndeterminateExchange: The code may have been sent by a process that
                crashed; the flow is failed and the code is not sent again.
        """
        return self._run(self.engine.resume(callback, flow_id=flow_id, binding=binding))

    def get(self, flow_id: str) -> FlowRecord:
        """The stored flow with this id."""
        return self.store.load(flow_id)

    def credential(
        self,
        flow_id: str,
        *,
        leeway: timedelta = DEFAULT_LEEWAY,
        rejected: str | None = None,
    ) -> FlowRecord:
        """The flow with a usable access token, refreshed first when needed.

        Callers in this process that ask at once cause one refresh: they wait for
        each other here, and across processes for the store's ``refreshing`` lease.

        Args:
            flow_id: A flow in ``api_ready``.
            leeway: Refresh when the token expires within this time.
            rejected: An access token the API refused with 401: refreshed once if
                it is still the stored one.

        Raises:
            ReauthRequired: The credential cannot be refreshed; log in again.
            FlowNotReady: The flow holds no credential in its state.
        """
        slot = self._locks.slot(flow_id)
        with slot.lock:
            return self._run(
                self.engine.access(flow_id, leeway=leeway, rejected=rejected)
            )

    def access_token(self, flow_id: str, *, leeway: timedelta = DEFAULT_LEEWAY) -> str:
        """A valid access token for ``flow_id``, refreshing when needed."""
        token = self.credential(flow_id, leeway=leeway).secrets.access_token
        assert token is not None  # api_ready guarantees it (holds_access_token)
        return token

    def refresh(self, flow_id: str) -> FlowRecord:
        """Refresh now, whatever the expiry says."""
        current = self.get(flow_id).secrets.access_token
        return self.credential(flow_id, rejected=current)

    def revoke(self, flow_id: str) -> FlowRecord:
        """Revoke the credential at the provider and erase it (RFC 7009)."""
        return self._run(self.engine.revoke(flow_id))

    def cancel(self, flow_id: str) -> FlowRecord:
        """End a flow whose user will not come back."""
        return self._run(self.engine.cancel(flow_id))

    def auth(self, flow_id: str, *, leeway: timedelta = DEFAULT_LEEWAY) -> FlowAuth:
        """An ``httpx.Auth`` that sends this flow's access token."""
        return FlowAuth(self, flow_id, leeway=leeway)

    def gc(
        self,
        *,
        retention: timedelta = maintenance.DEFAULT_RETENTION,
        limit: int = maintenance.DEFAULT_LIMIT,
        batch_size: int = maintenance.GC_BATCH,
        progress: Progress[GcSummary] | None = None,
    ) -> GcSummary:
        """Expire abandoned flows and delete finished ones past their retention.

        A waiting flow whose time-to-live ran out moves to ``expired`` (committed
        and logged like any transition, keeping no code or verifier); a finished
        flow whose last transition is older than ``retention`` is deleted. Both
        are compare-and-set: a flow another process moves meanwhile is skipped.

        Args:
            retention: How long finished flows are kept; zero deletes them now.
            limit: The most flows each of the two steps handles (and at most 200
                batches).
            batch_size: Flows read from the store per batch.
            progress: Called with the summary so far after each batch.

        Returns:
            How many flows were expired, deleted and skipped.

        Raises:
            ConfigurationError: A negative retention or limit, or a batch size
                below one.
            StoreError: The store failed.
        """
        return self._run(
            maintenance.gc(
                self.engine,
                retention=retention,
                limit=limit,
                batch_size=batch_size,
                progress=progress,
            )
        )

    def refresh_due(
        self,
        *,
        window: timedelta = maintenance.DEFAULT_WINDOW,
        limit: int = maintenance.DEFAULT_LIMIT,
        batch_size: int = maintenance.REFRESH_BATCH,
        concurrency: int = maintenance.DEFAULT_CONCURRENCY,
        progress: Progress[RefreshSummary] | None = None,
    ) -> RefreshSummary:
        """Refresh the credentials whose access token expires within ``window``.

        Safe to run in several processes and machines against one store: each due
        credential is claimed by one of them (``FOR UPDATE SKIP LOCKED`` on
        PostgreSQL, claim markers on Redis) and refreshed once, with the same
        rules as :meth:`credential`. Refreshes run in ``concurrency`` threads; the
        store and the httpx client must allow that (flow's own do).

        Args:
            window: Refresh tokens expiring within this time from now.
            limit: The most credentials this run looks at (and at most 200
                batches).
            batch_size: Credentials claimed per batch.
            concurrency: Refreshes in flight at once.
            progress: Called with the summary so far after each batch.

        Returns:
            How many credentials were refreshed, given up (``reauth_required``),
            failed (kept, with the reason) or skipped.

        Raises:
            ConfigurationError: A negative window or limit, or a batch size or
                concurrency below one.
            StoreError: The store failed while claiming.
        """
        return self._run(
            maintenance.refresh_due(
                self.engine,
                window=window,
                limit=limit,
                batch_size=batch_size,
                concurrency=concurrency,
                progress=progress,
            )
        )

    def _run(self, program: Program[T]) -> T:
        value: object = None
        error: FlowError | None = None
        for _ in range(MAX_EFFECTS):
            try:
                effect = program.send(value) if error is None else program.throw(error)
            except StopIteration as stop:
                result: T = stop.value
                return result
            value, error = None, None
            try:
                match effect:
                    case Insert(record):
                        self.store.insert(record)
                    case Save(record):
                        self.store.save(record)
                    case Load(flow_id):
                        value = self.store.load(flow_id)
                    case FindByState(state_hash):
                        value = self.store.find_by_state(state_hash)
                    case Send(request):
                        value = self._send(request)
                    case Sleep(seconds):
                        time.sleep(seconds)
                    case Delete(flow_id, version):
                        self.store.delete(flow_id, version)
                    case FindExpiring(states, before, limit):
                        value = self.store.expiring(
                            states=states, before=before, limit=limit
                        )
                    case FindFinished(states, updated_before, limit):
                        value = self.store.finished(
                            states=states, updated_before=updated_before, limit=limit
                        )
                    case ClaimDue(state, before, limit, claim, after):
                        value = self.store.claim_due(
                            state=state,
                            before=before,
                            limit=limit,
                            claim=claim,
                            after=after,
                        )
                    case Concurrently(programs, limit):
                        value = self._concurrently(programs, limit)
            except FlowError as exc:
                error = exc
        program.close()
        raise FlowError(f"operation did not finish within {MAX_EFFECTS} effects")

    def _concurrently(
        self, programs: Sequence[Program[Any]], limit: int
    ) -> list[object]:
        if limit <= 1 or len(programs) <= 1:
            return [self._attempt(program) for program in programs]
        with ThreadPoolExecutor(
            max_workers=min(limit, len(programs)), thread_name_prefix="flow"
        ) as pool:
            return list(pool.map(self._attempt, programs))

    def _attempt(self, program: Program[Any]) -> object:
        """Run one of several programs; its result, or the FlowError it raised."""
        try:
            result: object = self._run(program)
        except FlowError as exc:
            return exc
        return result

    def _send(self, request: HttpRequest) -> HttpResponse:
        try:
            response = self.http.send(_http.build(self.http, request), stream=True)
            try:
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > _http.MAX_RESPONSE:
                        raise _http.too_large()
            finally:
                response.close()
        except httpx.HTTPError as exc:
            raise _http.converted(exc) from exc
        return _http.answer(response, body)
