"""The synchronous driver: performs the engine's effects with a store and httpx."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from types import TracebackType
from typing import TypeVar

import httpx

from ..errors import FlowError
from ..protocol import HttpRequest, HttpResponse
from ..record import JSON, Client, FlowRecord, ServerMetadata
from ..stores import Store
from . import _http
from ._locks import FlowLocks
from .access import FlowAuth
from .credential import DEFAULT_LEEWAY
from .effects import MAX_EFFECTS, FindByState, Insert, Load, Program, Save, Send, Sleep
from .engine import Engine, Outcome, Started

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
            )
        )

    def resume(self, callback: str, *, flow_id: str | None = None) -> Outcome:
        """Resume a flow from the callback its browser came back with.

        Args:
            callback: The full callback URL or its raw query string, untouched.
            flow_id: The flow, when known; found by the callback's state otherwise.

        Returns:
            Where the flow stands: ``completed``, ``already_handled`` (a repeated
            callback; nothing was sent) or ``in_progress`` (another process is
            exchanging the code).

        Raises:
            FlowNotFound: No flow matches.
            CallbackError: The callback does not verify; the flow is failed.
            OAuthError: The server refused (the flow is denied or failed).
            FlowExpired: The flow's time-to-live ran out; the flow is expired.
            IndeterminateExchange: The code may have been sent by a process that
                crashed; the flow is failed and the code is not sent again.
        """
        return self._run(self.engine.resume(callback, flow_id=flow_id))

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
            except FlowError as exc:
                error = exc
        program.close()
        raise FlowError(f"operation did not finish within {MAX_EFFECTS} effects")

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
