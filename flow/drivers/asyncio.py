"""The asynchronous driver: the same engine, effects awaited."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Mapping, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any, TypeVar, cast

import httpx

from ..errors import FlowError
from ..protocol import HttpRequest, HttpResponse
from ..record import JSON, Client, FlowRecord, ServerMetadata
from ..stores import AsyncStore, Store, ThreadedStore
from . import _http, maintenance
from ._locks import FlowLocks
from .access import AsyncFlowAuth
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


class AsyncDriver:
    """Runs flows on an event loop. Same operations and errors as
    :class:`~flow.Driver`.

    Args:
        store: An async store, or a sync one (run in worker threads).
        engine: The rules to apply; defaults to the authorization code engine.
        http: An ``httpx.AsyncClient``; one is made (and closed by :meth:`aclose`)
            when omitted.
    """

    def __init__(
        self,
        store: AsyncStore | Store,
        *,
        engine: Engine | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.store: AsyncStore = (
            cast(AsyncStore, store)
            if inspect.iscoroutinefunction(store.load)
            else ThreadedStore(cast(Store, store))
        )
        self.engine = engine or Engine()
        self._locks = FlowLocks(asyncio.Lock)
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(
            timeout=_http.DEFAULT_TIMEOUT, follow_redirects=False
        )

    async def __aenter__(self) -> AsyncDriver:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the httpx client if this driver made it. The store stays open."""
        if self._own_http:
            await self.http.aclose()

    async def discover(self, issuer: str) -> ServerMetadata:
        """See :meth:`flow.Driver.discover`."""
        return await self._run(self.engine.discover(issuer))

    async def start(
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
        """See :meth:`flow.Driver.start`."""
        return await self._run(
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

    async def resume(
        self, callback: str, *, flow_id: str | None = None, binding: str | None = None
    ) -> Outcome:
        """See :meth:`flow.Driver.resume`."""
        return await self._run(
            self.engine.resume(callback, flow_id=flow_id, binding=binding)
        )

    async def get(self, flow_id: str) -> FlowRecord:
        """The stored flow with this id."""
        return await self.store.load(flow_id)

    async def credential(
        self,
        flow_id: str,
        *,
        leeway: timedelta = DEFAULT_LEEWAY,
        rejected: str | None = None,
    ) -> FlowRecord:
        """See :meth:`flow.Driver.credential`."""
        slot = self._locks.slot(flow_id)
        async with slot.lock:
            return await self._run(
                self.engine.access(flow_id, leeway=leeway, rejected=rejected)
            )

    async def access_token(
        self, flow_id: str, *, leeway: timedelta = DEFAULT_LEEWAY
    ) -> str:
        """See :meth:`flow.Driver.access_token`."""
        record = await self.credential(flow_id, leeway=leeway)
        assert record.secrets.access_token is not None
        return record.secrets.access_token

    async def refresh(self, flow_id: str) -> FlowRecord:
        """See :meth:`flow.Driver.refresh`."""
        current = (await self.get(flow_id)).secrets.access_token
        return await self.credential(flow_id, rejected=current)

    async def revoke(self, flow_id: str) -> FlowRecord:
        """See :meth:`flow.Driver.revoke`."""
        return await self._run(self.engine.revoke(flow_id))

    async def cancel(self, flow_id: str) -> FlowRecord:
        """See :meth:`flow.Driver.cancel`."""
        return await self._run(self.engine.cancel(flow_id))

    def auth(
        self, flow_id: str, *, leeway: timedelta = DEFAULT_LEEWAY
    ) -> AsyncFlowAuth:
        """An ``httpx.Auth`` for ``httpx.AsyncClient`` that sends this flow's token."""
        return AsyncFlowAuth(self, flow_id, leeway=leeway)

    async def gc(
        self,
        *,
        retention: timedelta = maintenance.DEFAULT_RETENTION,
        limit: int = maintenance.DEFAULT_LIMIT,
        batch_size: int = maintenance.GC_BATCH,
        progress: Progress[GcSummary] | None = None,
    ) -> GcSummary:
        """See :meth:`flow.Driver.gc`."""
        return await self._run(
            maintenance.gc(
                self.engine,
                retention=retention,
                limit=limit,
                batch_size=batch_size,
                progress=progress,
            )
        )

    async def refresh_due(
        self,
        *,
        window: timedelta = maintenance.DEFAULT_WINDOW,
        limit: int = maintenance.DEFAULT_LIMIT,
        batch_size: int = maintenance.REFRESH_BATCH,
        concurrency: int = maintenance.DEFAULT_CONCURRENCY,
        progress: Progress[RefreshSummary] | None = None,
    ) -> RefreshSummary:
        """See :meth:`flow.Driver.refresh_due`; refreshes run as asyncio tasks."""
        return await self._run(
            maintenance.refresh_due(
                self.engine,
                window=window,
                limit=limit,
                batch_size=batch_size,
                concurrency=concurrency,
                progress=progress,
            )
        )

    async def _run(self, program: Program[T]) -> T:
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
                        await self.store.insert(record)
                    case Save(record):
                        await self.store.save(record)
                    case Load(flow_id):
                        value = await self.store.load(flow_id)
                    case FindByState(state_hash):
                        value = await self.store.find_by_state(state_hash)
                    case Send(request):
                        value = await self._send(request)
                    case Sleep(seconds):
                        await asyncio.sleep(seconds)
                    case Delete(flow_id, version):
                        await self.store.delete(flow_id, version)
                    case FindExpiring(states, before, limit):
                        value = await self.store.expiring(
                            states=states, before=before, limit=limit
                        )
                    case FindFinished(states, updated_before, limit):
                        value = await self.store.finished(
                            states=states, updated_before=updated_before, limit=limit
                        )
                    case ClaimDue(state, before, limit, claim, after):
                        value = await self.store.claim_due(
                            state=state,
                            before=before,
                            limit=limit,
                            claim=claim,
                            after=after,
                        )
                    case Concurrently(programs, limit):
                        value = await self._concurrently(programs, limit)
            except FlowError as exc:
                error = exc
        program.close()
        raise FlowError(f"operation did not finish within {MAX_EFFECTS} effects")

    async def _concurrently(
        self, programs: Sequence[Program[Any]], limit: int
    ) -> list[object]:
        gate = asyncio.Semaphore(max(limit, 1))

        async def attempt(program: Program[Any]) -> object:
            async with gate:
                try:
                    result: object = await self._run(program)
                except FlowError as exc:
                    return exc
                return result

        # A task group: an unexpected error cancels the others instead of leaving
        # them running unawaited.
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(attempt(program)) for program in programs]
        return [task.result() for task in tasks]

    async def _send(self, request: HttpRequest) -> HttpResponse:
        try:
            response = await self.http.send(
                _http.build(self.http, request), stream=True
            )
            try:
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > _http.MAX_RESPONSE:
                        raise _http.too_large()
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            raise _http.converted(exc) from exc
        return _http.answer(response, body)
