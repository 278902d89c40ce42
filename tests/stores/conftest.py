"""Every store behind one fixture, with a raw view of what each one keeps.

PostgreSQL and Redis are the real services on this machine (override with
``FLOW_TEST_POSTGRES_URL`` and ``FLOW_TEST_REDIS_URL``). Each test gets its own
schema or key prefix, removed afterwards. Where a service is unreachable its tests
skip, saying why, except under CI, where they fail.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Collection, Coroutine, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import psycopg
import pytest
import redis
from psycopg import sql

from flow.record import Encoded, FlowRecord
from flow.stores import (
    AsyncStore,
    MemoryStore,
    PostgresStore,
    RedisStore,
    SQLiteStore,
    Store,
    ThreadedStore,
    open_async_store,
)
from flow.stores.base import Claim, Claimed, DueKey
from tests.conftest import IN_CI

T = TypeVar("T")

POSTGRES_URL = os.environ.get(
    "FLOW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("FLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

#: The most keys a test's clean-up deletes: far more than any test writes.
MAX_KEYS = 100_000

BACKENDS = [
    "memory",
    "sqlite_file",
    "sqlite_memory",
    "postgres",
    "redis",
    "async_postgres",
    "async_redis",
    "threaded_sqlite",
]


def unavailable(service: str, exc: BaseException) -> None:
    """Skip, or under CI fail, a test whose service cannot be reached."""
    reason = f"{service} unreachable: {type(exc).__name__}: {exc}"
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the store tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL test database, checked once per session."""
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            pass
    except Exception as exc:
        unavailable("PostgreSQL", exc)
    return POSTGRES_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis test database, checked once per session."""
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3) as client:
            client.ping()
    except Exception as exc:
        unavailable("Redis", exc)
    return REDIS_URL


def durable_store_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of fresh storage of ``kind``: ``sqlite_file``, ``postgres`` or ``redis``.

    PostgreSQL gets its own schema and Redis its own key prefix, both removed after
    the test by the fixtures that make them.
    """
    if kind == "sqlite_file":
        return f"sqlite:///{tmp_path / 'flows.db'}"
    if kind == "postgres":
        url = request.getfixturevalue("postgres_url")
        return f"{url}?schema={request.getfixturevalue('pg_schema')}"
    url = request.getfixturevalue("redis_url")
    return f"{url}?prefix={quote(request.getfixturevalue('redis_prefix'))}"


@pytest.fixture(params=["sqlite_file", "postgres", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of fresh storage in each store that processes can share."""
    return durable_store_url(request.param, request, tmp_path)


def pg_rows(url: str, query: Any, *params: object) -> list[tuple[Any, ...]]:
    """Run ``query`` on a connection of its own, as another client would."""
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


@pytest.fixture
def pg_schema(postgres_url: str) -> Iterator[str]:
    """A fresh schema name, and the schema dropped after the test."""
    schema = f"flow_test_{uuid.uuid4().hex[:12]}"
    yield schema
    drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
    pg_rows(postgres_url, drop)


def redis_client(url: str) -> redis.Redis:
    """A client of its own, answering in text."""
    return redis.Redis.from_url(url, decode_responses=True)


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A fresh key prefix, and every key under it deleted after the test."""
    prefix = f"flow_test_{uuid.uuid4().hex[:12]}:"
    yield prefix
    with redis_client(redis_url) as client:
        keys = []
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            keys.append(key)
            if len(keys) >= MAX_KEYS:
                break
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])


class SyncOverAsync:
    """A :class:`Store` that runs an :class:`AsyncStore` in an event loop thread.

    Threads calling it at once run their coroutines concurrently in the one loop,
    so the contract's thread races become coroutine races in the async stores.
    """

    def __init__(self, store: AsyncStore) -> None:
        self.store = store
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout=60)

    def insert(self, record: FlowRecord) -> None:
        self._run(self.store.insert(record))

    def save(self, record: FlowRecord) -> None:
        self._run(self.store.save(record))

    def load(self, flow_id: str) -> FlowRecord:
        return self._run(self.store.load(flow_id))

    def find_by_state(self, state_hash: str) -> FlowRecord:
        return self._run(self.store.find_by_state(state_hash))

    def delete(self, flow_id: str, version: int) -> None:
        self._run(self.store.delete(flow_id, version))

    def expiring(
        self, *, states: Collection[str], before: datetime, limit: int
    ) -> list[FlowRecord]:
        return self._run(self.store.expiring(states=states, before=before, limit=limit))

    def finished(
        self, *, states: Collection[str], updated_before: datetime, limit: int
    ) -> list[FlowRecord]:
        return self._run(
            self.store.finished(
                states=states, updated_before=updated_before, limit=limit
            )
        )

    def due(
        self,
        *,
        state: str,
        before: datetime,
        limit: int,
        after: DueKey | None = None,
    ) -> list[FlowRecord]:
        return self._run(
            self.store.due(state=state, before=before, limit=limit, after=after)
        )

    def claim_due(
        self,
        *,
        state: str,
        before: datetime,
        limit: int,
        claim: Claim,
        after: DueKey | None = None,
    ) -> list[Claimed]:
        return self._run(
            self.store.claim_due(
                state=state, before=before, limit=limit, claim=claim, after=after
            )
        )

    def list(
        self, *, state: str | None = None, provider: str | None = None, limit: int = 100
    ) -> list[FlowRecord]:
        return self._run(self.store.list(state=state, provider=provider, limit=limit))

    def close(self) -> None:
        """Close the store, then stop and close the loop."""
        try:
            self._run(self.store.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()


@dataclass
class Storage:
    """What a store keeps, read and written around the store, as another client.

    Attributes:
        raw: Every stored text of one flow: its ``body`` and ``secrets``, and
            every other column, field or index entry, by name.
        corrupt: Overwrites the stored ``body`` or ``secrets`` text of one flow.
    """

    raw: Callable[[str], dict[str, str]]
    corrupt: Callable[[str, str, str], None]


@dataclass
class Backend:
    """One store under test.

    Attributes:
        name: The parametrization id.
        store: The store, made synchronous when it is asynchronous.
        native: The store as flow hands it out.
        storage: A view of what it keeps.
    """

    name: str
    store: Store
    native: Store | AsyncStore
    storage: Storage


def memory_storage(store: MemoryStore) -> Storage:
    # Nothing outside the process can open a memory store: reach into its rows.
    def raw(flow_id: str) -> dict[str, str]:
        version, state_hash, encoded = store._rows[flow_id]
        return {
            "version": str(version),
            "state_hash": str(state_hash),
            "body": encoded.body,
            "secrets": encoded.secrets,
        }

    def corrupt(flow_id: str, field: str, text: str) -> None:
        version, state_hash, encoded = store._rows[flow_id]
        changed = Encoded(
            **{"body": encoded.body, "secrets": encoded.secrets, field: text}
        )
        store._rows[flow_id] = (version, state_hash, changed)

    return Storage(raw, corrupt)


_COLUMNS = (
    "id",
    "version",
    "state",
    "spec",
    "provider",
    "state_hash",
    "expires_at",
    "updated_at",
    "token_expires_at",
    "body",
    "secrets",
)
_SELECT = (
    "SELECT id, version, state, spec, provider, state_hash, expires_at, "
    "updated_at, token_expires_at, body, secrets FROM {table} WHERE id = {param}"
)


def sqlite_storage(store: SQLiteStore) -> Storage:
    def execute(query: str, *params: object) -> list[tuple[Any, ...]]:
        if store.path == ":memory:":
            # A private in-memory database is reachable through its one connection.
            with store._lock:
                return store._db.execute(query, params).fetchall()
        with closing(sqlite3.connect(store.path)) as db:
            rows = db.execute(query, params).fetchall()
            db.commit()
        return rows

    def raw(flow_id: str) -> dict[str, str]:
        (row,) = execute(_SELECT.format(table="flows", param="?"), flow_id)
        return dict(zip(_COLUMNS, map(str, row), strict=True))

    def corrupt(flow_id: str, field: str, text: str) -> None:
        update = {
            "body": "UPDATE flows SET body = ? WHERE id = ?",
            "secrets": "UPDATE flows SET secrets = ? WHERE id = ?",
        }[field]
        execute(update, text, flow_id)

    return Storage(raw, corrupt)


def postgres_storage(url: str, schema: str) -> Storage:
    table = sql.SQL("{}.flows").format(sql.Identifier(schema))

    def raw(flow_id: str) -> dict[str, str]:
        query = sql.SQL(_SELECT).format(table=table, param=sql.Placeholder())
        (row,) = pg_rows(url, query, flow_id)
        return dict(zip(_COLUMNS, map(str, row), strict=True))

    def corrupt(flow_id: str, field: str, text: str) -> None:
        query = sql.SQL("UPDATE {} SET {} = %s WHERE id = %s")
        pg_rows(url, query.format(table, sql.Identifier(field)), text, flow_id)

    return Storage(raw, corrupt)


def redis_storage(url: str, prefix: str) -> Storage:
    def raw(flow_id: str) -> dict[str, str]:
        # The flow's hash by field, and every other key under the prefix whole.
        found: dict[str, str] = {}
        with redis_client(url) as client:
            for key in client.scan_iter(match=f"{prefix}*", count=1000):
                kind = client.type(key)
                if kind == "hash":
                    value: Any = client.hgetall(key)
                elif kind == "zset":
                    value = client.zrange(key, 0, -1, withscores=True)
                else:
                    value = client.get(key)
                found[key] = str(value)
            found.update(client.hgetall(f"{prefix}flow:{flow_id}"))
        del found[f"{prefix}flow:{flow_id}"]
        return found

    def corrupt(flow_id: str, field: str, text: str) -> None:
        with redis_client(url) as client:
            client.hset(f"{prefix}flow:{flow_id}", field, text)

    return Storage(raw, corrupt)


def _open(name: str, request: pytest.FixtureRequest, path: Path) -> Backend:
    """Open the store ``name`` on fresh storage."""
    if name == "memory":
        memory = MemoryStore()
        return Backend(name, memory, memory, memory_storage(memory))
    if name in ("sqlite_file", "sqlite_memory", "threaded_sqlite"):
        sqlite = SQLiteStore(":memory:" if name == "sqlite_memory" else path)
        if name == "threaded_sqlite":
            threaded = ThreadedStore(sqlite)
            return Backend(
                name, SyncOverAsync(threaded), threaded, sqlite_storage(sqlite)
            )
        return Backend(name, sqlite, sqlite, sqlite_storage(sqlite))

    if name.endswith("postgres"):
        url = request.getfixturevalue("postgres_url")
        schema = request.getfixturevalue("pg_schema")
        storage = postgres_storage(url, schema)
        if name == "postgres":
            postgres_store = PostgresStore(url, schema=schema, max_size=4)
            return Backend(name, postgres_store, postgres_store, storage)
        native = open_async_store(f"{url}?schema={schema}")
        return Backend(name, SyncOverAsync(native), native, storage)

    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    storage = redis_storage(url, prefix)
    if name == "redis":
        redis_store = RedisStore(url, prefix=prefix)
        return Backend(name, redis_store, redis_store, storage)
    native = open_async_store(f"{url}?prefix={prefix}")
    return Backend(name, SyncOverAsync(native), native, storage)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each store in turn, opened on fresh storage and closed afterwards."""
    opened = _open(request.param, request, tmp_path / "flows.db")
    try:
        yield opened
    finally:
        opened.store.close()


@pytest.fixture
def store(backend: Backend) -> Store:
    """Each store in turn, as a synchronous :class:`Store`."""
    return backend.store
