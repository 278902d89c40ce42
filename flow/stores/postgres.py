"""PostgreSQL stores: many processes on many machines sharing one database.

Compare-and-set is one conditional ``UPDATE ... WHERE id = ? AND version = ?``: under
PostgreSQL's row locking, of two writers of one version the second waits for the
first to commit, re-checks its ``WHERE`` on the new row and updates nothing (READ
COMMITTED, section 13.2.1 of the PostgreSQL manual). So a plain pooled
connection in autocommit mode is enough; no explicit transaction or ``FOR UPDATE``.

The one exception is :meth:`PostgresStore.claim_due`, which lets refresh workers on
many machines share the due credentials: one transaction selects a page of due rows
``FOR UPDATE SKIP LOCKED``, saves what the engine's ``claim`` made of each, and
commits. A row another worker is claiming is skipped rather than waited for, and
once that worker commits the row is no longer due.

flow creates its own tables, under one schema per store (``flow`` by default), and
records their layout version in ``flow_meta``. Start-up takes a transaction-scoped
advisory lock first, because ``CREATE ... IF NOT EXISTS`` is not safe against a
concurrent twin: two processes creating one table at once can fail on the catalog's
unique index.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Collection
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from ..errors import ConfigurationError, StoreError, VersionConflict
from ..record import FlowRecord
from ._postgres_sql import (
    STORE_SCHEMA_VERSION,
    Program,
    claim_due,
    delete,
    due,
    expiring,
    find_by_state,
    finished,
    insert,
    list_flows,
    load,
    run,
    run_async,
    save,
    start_up,
)
from .base import Claim, Claimed, DueKey

T = TypeVar("T")

__all__ = ["STORE_SCHEMA_VERSION", "AsyncPostgresStore", "PostgresStore"]


def _failure(exc: psycopg.Error, work: Program[Any], flow_id: str | None) -> StoreError:
    # str(exc) can quote row values ("DETAIL: Failing row contains ...") and parts
    # of the connection string: only the SQLSTATE and the primary message are
    # kept, and the original is not chained.
    if (
        isinstance(exc, psycopg.errors.UniqueViolation)
        and exc.diag.constraint_name == "flows_state_hash"
    ):
        # A save that would move a flow onto another flow's state digest.
        return VersionConflict("another flow uses this state value", flow_id=flow_id)
    primary = exc.diag.message_primary or str(exc).split("\n", 1)[0]
    sqlstate = f" [{exc.sqlstate}]" if exc.sqlstate else ""
    # Named after the program: "save", "find by state", "start up"...
    doing = getattr(work, "__name__", "call").replace("_", " ")
    return StoreError(
        f"PostgreSQL {doing} failed: {type(exc).__name__}{sqlstate}: {primary}",
        flow_id=flow_id,
    )


def _describe(conninfo: str) -> str:
    try:
        parts = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        # The parser's message quotes the string, password included.
        raise ConfigurationError(
            "the PostgreSQL connection string cannot be parsed"
        ) from None
    shown = ("host", "port", "dbname", "user")
    return ", ".join(f"{key}={parts[key]!r}" for key in shown if key in parts)


def _checked_schema(schema: str) -> str:
    # PostgreSQL cuts identifiers to 63 bytes (NAMEDATALEN - 1, "Identifiers and
    # Key Words" in its manual): two long names could silently share one schema.
    if not schema or len(schema.encode()) > 63:
        raise ConfigurationError(
            "a PostgreSQL schema name has 1 to 63 bytes; pass a shorter schema"
        )
    return schema


def _seconds(timeout: float) -> int:
    # libpq's connect_timeout is whole seconds, and it treats anything below 2 as 2.
    return max(2, math.ceil(timeout))


class _PostgresBase:
    """What both stores share: settings, start-up checks and a safe ``repr``.

    Args:
        conninfo: A libpq connection string or ``postgresql://`` URL.
        schema: The PostgreSQL schema holding flow's tables.
        min_size: Connections kept open.
        max_size: Most connections open at once.
        timeout: Seconds to wait for the server, or for a free connection.

    Raises:
        ConfigurationError: The connection string or schema name is malformed.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = "flow",
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 30.0,
    ) -> None:
        self._shown = _describe(conninfo)
        self.schema = _checked_schema(schema)
        self._conninfo = conninfo
        self._timeout = timeout
        self._pool_options: dict[str, Any] = {
            "min_size": min_size,
            "max_size": max_size,
            "timeout": timeout,
            "kwargs": {"autocommit": True},
            "open": False,
        }
        self._start()

    def _start(self) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        shown = ", ".join(filter(None, [self._shown, f"schema={self.schema!r}"]))
        return f"{type(self).__name__}({shown})"


class PostgresStore(_PostgresBase):
    """A flow store in PostgreSQL, over a pool of connections.

    Safe across threads, processes and machines. Creates its schema and tables when
    they are missing: the role then needs ``CREATE`` on the database, or on the
    schema when that exists.

    Args:
        conninfo: A libpq connection string or ``postgresql://`` URL.
        schema: The PostgreSQL schema holding flow's tables.
        min_size: Connections kept open.
        max_size: Most connections open at once.
        timeout: Seconds to wait for the server, or for a free connection.

    Raises:
        ConfigurationError: The connection string or schema name is malformed.
        StoreError: The database cannot be reached, or holds tables of a newer
            flow.
    """

    def _start(self) -> None:
        # Start-up runs on a connection of its own, so that an unreachable server or
        # a refused login is reported as such rather than as a pool timeout.
        work = start_up(self.schema)
        try:
            with (
                psycopg.connect(
                    self._conninfo,
                    autocommit=True,
                    connect_timeout=_seconds(self._timeout),
                ) as conn,
                conn.transaction(),
            ):
                run(conn, self.schema, work)
        except psycopg.Error as exc:
            raise _failure(exc, work, None) from None
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            self._conninfo,
            # A connection broken by a server restart is replaced on checkout
            # instead of failing the caller's next call.
            check=ConnectionPool.check_connection,
            **self._pool_options,
        )
        self._pool.open()

    def _perform(
        self,
        program: Program[T],
        flow_id: str | None = None,
        *,
        transaction: bool = False,
    ) -> T:
        try:
            with self._pool.connection() as conn:
                if not transaction:
                    return run(conn, self.schema, program)
                with conn.transaction():
                    return run(conn, self.schema, program)
        except psycopg.Error as exc:
            raise _failure(exc, program, flow_id) from None

    def insert(self, record: FlowRecord) -> None:
        self._perform(insert(record), record.id)

    def save(self, record: FlowRecord) -> None:
        self._perform(save(record), record.id)

    def load(self, flow_id: str) -> FlowRecord:
        return self._perform(load(flow_id), flow_id)

    def find_by_state(self, state_hash: str) -> FlowRecord:
        return self._perform(find_by_state(state_hash))

    def delete(self, flow_id: str, version: int) -> None:
        self._perform(delete(flow_id, version), flow_id)

    def expiring(
        self, *, states: Collection[str], before: datetime, limit: int
    ) -> list[FlowRecord]:
        return self._perform(expiring(states, before, limit))

    def finished(
        self, *, states: Collection[str], updated_before: datetime, limit: int
    ) -> list[FlowRecord]:
        return self._perform(finished(states, updated_before, limit))

    def due(
        self,
        *,
        state: str,
        before: datetime,
        limit: int,
        after: DueKey | None = None,
    ) -> list[FlowRecord]:
        return self._perform(due(state, before, limit, after))

    def claim_due(
        self,
        *,
        state: str,
        before: datetime,
        limit: int,
        claim: Claim,
        after: DueKey | None = None,
    ) -> list[Claimed]:
        return self._perform(
            claim_due(state, before, limit, after, claim), transaction=True
        )

    def list(
        self, *, state: str | None = None, provider: str | None = None, limit: int = 100
    ) -> list[FlowRecord]:
        return self._perform(list_flows(state, provider, limit))

    def close(self) -> None:
        self._pool.close()


class AsyncPostgresStore(_PostgresBase):
    """The asyncio twin of :class:`PostgresStore`, over an asynchronous pool.

    Takes the same arguments. Nothing is connected until the first call, which
    creates the tables when they are missing and opens the pool in the running
    event loop: use the store from that loop only.
    """

    def _start(self) -> None:
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = (
            AsyncConnectionPool(
                self._conninfo,
                check=AsyncConnectionPool.check_connection,
                **self._pool_options,
            )
        )
        self._opening = asyncio.Lock()
        self._ready = False

    async def _open(self) -> None:
        async with self._opening:
            if self._ready:
                return
            work = start_up(self.schema)
            try:
                async with (
                    await psycopg.AsyncConnection.connect(
                        self._conninfo,
                        autocommit=True,
                        connect_timeout=_seconds(self._timeout),
                    ) as conn,
                    conn.transaction(),
                ):
                    await run_async(conn, self.schema, work)
            except psycopg.Error as exc:
                raise _failure(exc, work, None) from None
            await self._pool.open()
            self._ready = True

    async def _perform(
        self,
        program: Program[T],
        flow_id: str | None = None,
        *,
        transaction: bool = False,
    ) -> T:
        if not self._ready:
            await self._open()
        try:
            async with self._pool.connection() as conn:
                if not transaction:
                    return await run_async(conn, self.schema, program)
                async with conn.transaction():
                    return await run_async(conn, self.schema, program)
        except psycopg.Error as exc:
            raise _failure(exc, program, flow_id) from None

    async def insert(self, record: FlowRecord) -> None:
        await self._perform(insert(record), record.id)

    async def save(self, record: FlowRecord) -> None:
        await self._perform(save(record), record.id)

    async def load(self, flow_id: str) -> FlowRecord:
        return await self._perform(load(flow_id), flow_id)

    async def find_by_state(self, state_hash: str) -> FlowRecord:
        return await self._perform(find_by_state(state_hash))

    async def delete(self, flow_id: str, version: int) -> None:
        await self._perform(delete(flow_id, version), flow_id)

    async def expiring(
        self, *, states: Collection[str], before: datetime, limit: int
    ) -> list[FlowRecord]:
        return await self._perform(expiring(states, before, limit))

    async def finished(
        self, *, states: Collection[str], updated_before: datetime, limit: int
    ) -> list[FlowRecord]:
        return await self._perform(finished(states, updated_before, limit))

    async def due(
        self,
        *,
        state: str,
        before: datetime,
        limit: int,
        after: DueKey | None = None,
    ) -> list[FlowRecord]:
        return await self._perform(due(state, before, limit, after))

    async def claim_due(
        self,
        *,
        state: str,
        before: datetime,
        limit: int,
        claim: Claim,
        after: DueKey | None = None,
    ) -> list[Claimed]:
        return await self._perform(
            claim_due(state, before, limit, after, claim), transaction=True
        )

    async def list(
        self, *, state: str | None = None, provider: str | None = None, limit: int = 100
    ) -> list[FlowRecord]:
        return await self._perform(list_flows(state, provider, limit))

    async def close(self) -> None:
        await self._pool.close()
