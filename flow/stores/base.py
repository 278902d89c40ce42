"""The store contract every backend implements, sync and async.

A store keeps flow records between steps. Its one hard promise is compare-and-set on
the version: :meth:`Store.save` writes version ``n`` only over version ``n - 1``, so
of two writers that loaded the same version exactly one wins and the other gets
:class:`~flow.errors.VersionConflict`. Records go in and out only through
:func:`flow.record.encode` and :func:`flow.record.decode`.

Besides single flows, a store answers the questions of the maintenance programs
(:mod:`flow.drivers.maintenance`), each from an index and in bounded pages, oldest
first: which waiting flows outlived their time-to-live (:meth:`Store.expiring`),
which finished flows are past retention (:meth:`Store.finished`), and whose access
token is due for a refresh (:meth:`Store.due`, :meth:`Store.claim_due`). Stores know
no state names: the engine passes the ones its spec declares.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from ..record import FlowRecord

#: Where a page of :meth:`Store.due` ended: the last flow's token expiry and id.
DueKey = tuple[datetime, str]

#: Moves a due flow to its next version (the engine's ``begin_refresh``), or
#: returns ``None`` to leave it as it is. Called while the store holds the flow.
Claim = Callable[[FlowRecord], FlowRecord | None]


@dataclass(frozen=True, slots=True)
class Claimed:
    """One due flow that :meth:`Store.claim_due` handed to its ``claim``.

    Attributes:
        found: The flow as read while the store held it.
        saved: What ``claim`` returned, as saved; ``None`` when ``claim`` left the
            flow alone or the save lost a compare-and-set.
    """

    found: FlowRecord
    saved: FlowRecord | None


def due_key(record: FlowRecord) -> DueKey:
    """The position of ``record`` in the order of :meth:`Store.due`."""
    expires_at = record.token.expires_at if record.token else None
    if expires_at is None:
        raise ValueError("a flow without a token expiry is never due")
    return expires_at, record.id


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

    def delete(self, flow_id: str, version: int) -> None:
        """Delete the flow if its stored version is ``version`` (compare-and-set).

        Every index entry goes with it: its state digest is free for a new flow.

        Raises:
            VersionConflict: The stored version is another one.
            FlowNotFound: No flow has this id.
        """

    def expiring(
        self, *, states: Collection[str], before: datetime, limit: int
    ) -> list[FlowRecord]:
        """Flows in ``states`` whose ``expires_at`` is at or before ``before``.

        Returns:
            At most ``limit`` flows, the earliest ``expires_at`` first (then by id).
        """

    def finished(
        self, *, states: Collection[str], updated_before: datetime, limit: int
    ) -> list[FlowRecord]:
        """Flows in ``states`` last updated at or before ``updated_before``.

        Returns:
            At most ``limit`` flows, the least recently updated first (then by id).
        """

    def due(
        self,
        *,
        state: str,
        before: datetime,
        limit: int,
        after: DueKey | None = None,
    ) -> list[FlowRecord]:
        """Flows in ``state`` whose access token expires at or before ``before``.

        A flow without a token expiry (``record.token.expires_at is None``) is
        never due.

        Args:
            state: The state that holds a credential (the spec's success state).
            before: The latest token expiry to include.
            limit: The most flows to return.
            after: Start after this position, as :func:`due_key` gives it for the
                last flow of the previous page.

        Returns:
            At most ``limit`` flows, the earliest token expiry first (then by id).
        """

    def claim_due(
        self,
        *,
        state: str,
        before: datetime,
        limit: int,
        claim: Claim,
        after: DueKey | None = None,
    ) -> list[Claimed]:
        """Hand due flows that no other claimer holds to ``claim``; save its answers.

        Selects as :meth:`due` does, skipping flows another ``claim_due`` holds at
        that moment rather than waiting for them, so that workers sharing a store
        take disjoint pages. Each record ``claim`` returns (the next version of the
        flow it was given) is saved with compare-and-set.

        Args:
            state: As for :meth:`due`.
            before: As for :meth:`due`.
            limit: As for :meth:`due`.
            claim: Called once per flow while the store holds it; pure and quick.
                It should not raise: an error propagates, and the stores that
                claim a page in one transaction (SQLite, PostgreSQL) then save
                none of it, while the others keep what they saved before.
            after: As for :meth:`due`.

        Returns:
            Every flow handed to ``claim``, in the order of :meth:`due`.
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

    async def delete(self, flow_id: str, version: int) -> None:
        """See :meth:`Store.delete`."""

    async def expiring(
        self, *, states: Collection[str], before: datetime, limit: int
    ) -> list[FlowRecord]:
        """See :meth:`Store.expiring`."""

    async def finished(
        self, *, states: Collection[str], updated_before: datetime, limit: int
    ) -> list[FlowRecord]:
        """See :meth:`Store.finished`."""

    async def due(
        self,
        *,
        state: str,
        before: datetime,
        limit: int,
        after: DueKey | None = None,
    ) -> list[FlowRecord]:
        """See :meth:`Store.due`."""

    async def claim_due(
        self,
        *,
        state: str,
        before: datetime,
        limit: int,
        claim: Claim,
        after: DueKey | None = None,
    ) -> list[Claimed]:
        """See :meth:`Store.claim_due`."""

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

    async def delete(self, flow_id: str, version: int) -> None:
        await asyncio.to_thread(self.sync.delete, flow_id, version)

    async def expiring(
        self, *, states: Collection[str], before: datetime, limit: int
    ) -> list[FlowRecord]:
        return await asyncio.to_thread(
            self.sync.expiring, states=states, before=before, limit=limit
        )

    async def finished(
        self, *, states: Collection[str], updated_before: datetime, limit: int
    ) -> list[FlowRecord]:
        return await asyncio.to_thread(
            self.sync.finished,
            states=states,
            updated_before=updated_before,
            limit=limit,
        )

    async def due(
        self,
        *,
        state: str,
        before: datetime,
        limit: int,
        after: DueKey | None = None,
    ) -> list[FlowRecord]:
        return await asyncio.to_thread(
            self.sync.due, state=state, before=before, limit=limit, after=after
        )

    async def claim_due(
        self,
        *,
        state: str,
        before: datetime,
        limit: int,
        claim: Claim,
        after: DueKey | None = None,
    ) -> list[Claimed]:
        return await asyncio.to_thread(
            self.sync.claim_due,
            state=state,
            before=before,
            limit=limit,
            claim=claim,
            after=after,
        )

    async def list(
        self, *, state: str | None = None, provider: str | None = None, limit: int = 100
    ) -> list[FlowRecord]:
        return await asyncio.to_thread(
            self.sync.list, state=state, provider=provider, limit=limit
        )

    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)
