"""The store contract every backend implements, sync and async.

A store keeps flow records between steps. Its one hard promise is compare-and-set on
the version: :meth:`Store.save` writes version ``n`` only over version ``n - 1``, so
of two writers that loaded the same version exactly one wins and the other gets
:class:`~flow.errors.VersionConflict`. Records go in and out only through
:func:`flow.record.encode` and :func:`flow.record.decode`.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

from ..record import FlowRecord


@runtime_checkable
class Store(Protocol):
    """A synchronous flow store."""

    def insert(self, record: FlowRecord) -> None:
        """Store a new flow.

        Raises:
            VersionConflict: A flow with this id or state digest already exists.
        """

    def save(self, record: FlowRecord) -> None:
        """Replace the stored version ``record.version - 1`` with ``record``.

        Raises:
            VersionConflict: The stored version is not ``record.version - 1``.
            FlowNotFound: No flow has this id.
        """

    def load(self, flow_id: str) -> FlowRecord:
        """The flow with this id.

        Raises:
            FlowNotFound: No flow has this id.
            CorruptRecord: The stored record cannot be read.
        """

    def find_by_state(self, state_hash: str) -> FlowRecord:
        """The flow whose ``state`` value has this SHA-256 digest.

        Raises:
            FlowNotFound: No flow has this digest.
        """

    def list(
        self, *, state: str | None = None, provider: str | None = None, limit: int = 100
    ) -> list[FlowRecord]:
        """Flows, most recently updated first, optionally filtered."""

    def close(self) -> None:
        """Release connections."""


@runtime_checkable
class AsyncStore(Protocol):
    """An asynchronous flow store, with the same contract as :class:`Store`."""

    async def insert(self, record: FlowRecord) -> None:
        """See :meth:`Store.insert`."""

    async def save(self, record: FlowRecord) -> None:
        """See :meth:`Store.save`."""

    async def load(self, flow_id: str) -> FlowRecord:
        """See :meth:`Store.load`."""

    async def find_by_state(self, state_hash: str) -> FlowRecord:
        """See :meth:`Store.find_by_state`."""

    async def list(
        self, *, state: str | None = None, provider: str | None = None, limit: int = 100
    ) -> list[FlowRecord]:
        """See :meth:`Store.list`."""

    async def close(self) -> None:
        """See :meth:`Store.close`."""


class ThreadedStore:
    """An :class:`AsyncStore` over a synchronous store, each call in a worker thread.

    Suits stores whose calls are short (memory, SQLite); network stores get native
    async implementations.

    Args:
        store: The synchronous store to wrap; it must be safe to call from threads.
    """

    def __init__(self, store: Store) -> None:
        self.sync = store

    def __repr__(self) -> str:
        return f"ThreadedStore({self.sync!r})"

    async def insert(self, record: FlowRecord) -> None:
        await asyncio.to_thread(self.sync.insert, record)

    async def save(self, record: FlowRecord) -> None:
        await asyncio.to_thread(self.sync.save, record)

    async def load(self, flow_id: str) -> FlowRecord:
        return await asyncio.to_thread(self.sync.load, flow_id)

    async def find_by_state(self, state_hash: str) -> FlowRecord:
        return await asyncio.to_thread(self.sync.find_by_state, state_hash)

    async def list(
        self, *, state: str | None = None, provider: str | None = None, limit: int = 100
    ) -> list[FlowRecord]:
        return await asyncio.to_thread(
            self.sync.list, state=state, provider=provider, limit=limit
        )

    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)
