"""Redis stores: many processes on many machines sharing one Redis.

Every operation is one Lua script (see :mod:`flow.stores._redis_scripts` for the key
layout), so compare-and-set, the uniqueness of ids and callback digests, and the
indexes that ``list`` and the maintenance queries read all change together or not
at all. Refresh workers share the due credentials through ``claim_due``: one
script reads a page of due flows and marks each with a short-lived claim key
(``SET NX PX``), passing over flows another worker marked; each claimed flow is
then saved with the usual compare-and-set.

Redis keeps data in memory; what survives a crash depends on its persistence
settings. With the append-only file and ``appendfsync everysec`` (the usual
choice) about one second of acknowledged writes may be lost (Redis manual,
"Persistence"), so a flow may come back one transition earlier than a process last
saw it. Every version is still written once: a lost transition is redone or
refused, never merged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import datetime
from typing import Any, TypeVar, cast

import redis
import redis.asyncio
from redis.commands.core import AsyncScript, Script

from ..errors import ConfigurationError, StoreError
from ..record import FlowRecord
from ._redis_lua import (
    DELETE,
    DUE,
    FIND,
    INSERT,
    LOAD,
    OLDEST,
    PAGE,
    SAVE,
    STAMP,
)
from ._redis_scripts import (
    STORE_SCHEMA_VERSION,
    Keys,
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
    save,
    start_up,
)
from .base import Claim, Claimed, DueKey

T = TypeVar("T")

__all__ = ["STORE_SCHEMA_VERSION", "AsyncRedisStore", "RedisStore"]

_SCRIPTS = (STAMP, INSERT, SAVE, DELETE, LOAD, FIND, PAGE, OLDEST, DUE)


def _failure(
    exc: redis.RedisError, work: Program[Any], flow_id: str | None
) -> StoreError:
    # Redis error replies name the command or the script line, never its
    # arguments; only the first line is kept.
    text = str(exc).split("\n", 1)[0]
    # Named after the program: "save", "find by state", "start up"...
    doing = getattr(work, "__name__", "call").replace("_", " ")
    return StoreError(
        f"Redis {doing} failed: {type(exc).__name__}: {text}", flow_id=flow_id
    )


def _client_options(timeout: float) -> dict[str, Any]:
    return {
        # Bodies and secrets are UTF-8 JSON: the scripts' replies come back as str.
        "decode_responses": True,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
    }


def _checked_prefix(prefix: str) -> str:
    if not prefix:
        raise ConfigurationError(
            "a Redis store needs a key prefix, such as 'flow:', so that its keys "
            "stay apart from the application's"
        )
    return prefix


class _RedisBase:
    """What both stores share: settings and a ``repr`` without the password.

    Args:
        url: A ``redis://`` or ``rediss://`` (TLS) URL, as redis-py reads it.
        prefix: Put before every key the store writes.
        timeout: Seconds to wait for a connection or an answer.

    Raises:
        ConfigurationError: The URL or the prefix is unusable.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "flow:",
        timeout: float = 10.0,
    ) -> None:
        self.prefix = _checked_prefix(prefix)
        self._keys = Keys(self.prefix)
        try:
            self._open(url, _client_options(timeout))
        except ValueError:
            # redis-py's message may quote the URL, password included.
            raise ConfigurationError(
                "the Redis URL cannot be read; it looks like redis://HOST:PORT/DB"
            ) from None
        self._start()

    def _open(self, url: str, options: dict[str, Any]) -> None:
        """Make the client and register the scripts; connects to nothing."""
        raise NotImplementedError

    def _start(self) -> None:
        """Anything to do on creation, after :meth:`_open`."""

    def _where(self, kwargs: dict[str, Any]) -> str:
        shown = ("host", "port", "db", "path")
        where = ", ".join(f"{key}={kwargs[key]!r}" for key in shown if key in kwargs)
        return f"{type(self).__name__}({where}, prefix={self.prefix!r})"


class RedisStore(_RedisBase):
    """A flow store in Redis, over redis-py's connection pool.

    Safe across threads, processes and machines. Checks on creation that the
    server answers and that its keys were not written by a newer flow.

    Args:
        url: A ``redis://`` or ``rediss://`` (TLS) URL, as redis-py reads it.
        prefix: Put before every key the store writes.
        timeout: Seconds to wait for a connection or an answer.

    Raises:
        ConfigurationError: The URL or the prefix is unusable.
        StoreError: Redis cannot be reached, or holds keys of a newer flow.
    """

    def _open(self, url: str, options: dict[str, Any]) -> None:
        self._client: redis.Redis = redis.Redis.from_url(url, **options)
        self._scripts: dict[str, Script] = {
            text: self._client.register_script(text) for text in _SCRIPTS
        }

    def _start(self) -> None:
        try:
            self._perform(start_up(self._keys))
        except StoreError:
            self._client.close()
            raise

    def __repr__(self) -> str:
        return self._where(self._client.connection_pool.connection_kwargs)

    def _perform(self, program: Program[T], flow_id: str | None = None) -> T:
        reply: Any = None
        try:
            while True:
                call = program.send(reply)
                reply = self._scripts[call.script](keys=call.keys, args=call.args)
        except StopIteration as done:
            return cast(T, done.value)
        except redis.RedisError as exc:
            raise _failure(exc, program, flow_id) from exc

    def insert(self, record: FlowRecord) -> None:
        self._perform(insert(self._keys, record), record.id)

    def save(self, record: FlowRecord) -> None:
        self._perform(save(self._keys, record), record.id)

    def load(self, flow_id: str) -> FlowRecord:
        return self._perform(load(self._keys, flow_id), flow_id)

    def find_by_state(self, state_hash: str) -> FlowRecord:
        return self._perform(find_by_state(self._keys, state_hash))

    def delete(self, flow_id: str, version: int) -> None:
        self._perform(delete(self._keys, flow_id, version), flow_id)

    def expiring(
        self, *, states: Collection[str], before: datetime, limit: int
    ) -> list[FlowRecord]:
        return self._perform(expiring(self._keys, states, before, limit))

    def finished(
        self, *, states: Collection[str], updated_before: datetime, limit: int
    ) -> list[FlowRecord]:
        return self._perform(finished(self._keys, states, updated_before, limit))

    def due(
        self,
        *,
        state: str,
        before: datetime,
        limit: int,
        after: DueKey | None = None,
    ) -> list[FlowRecord]:
        return self._perform(due(self._keys, state, before, limit, after))

    def claim_due(
        self,
        *,
        state: str,
        before: datetime,
        limit: int,
        claim: Claim,
        after: DueKey | None = None,
    ) -> list[Claimed]:
        return self._perform(claim_due(self._keys, state, before, limit, after, claim))

    def list(
        self, *, state: str | None = None, provider: str | None = None, limit: int = 100
    ) -> list[FlowRecord]:
        return self._perform(list_flows(self._keys, state, provider, limit))

    def close(self) -> None:
        self._client.close()


class AsyncRedisStore(_RedisBase):
    """The asyncio twin of :class:`RedisStore`, over ``redis.asyncio``.

    Takes the same arguments. Nothing is connected until the first call, which
    checks the layout version; use the store from one event loop.
    """

    def _open(self, url: str, options: dict[str, Any]) -> None:
        self._client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(url, **options)
        self._scripts: dict[str, AsyncScript] = {
            text: self._client.register_script(text) for text in _SCRIPTS
        }
        self._opening = asyncio.Lock()
        self._ready = False

    def __repr__(self) -> str:
        return self._where(self._client.connection_pool.connection_kwargs)

    async def _perform(self, program: Program[T], flow_id: str | None = None) -> T:
        if not self._ready:
            async with self._opening:
                if not self._ready:
                    await self._run(start_up(self._keys), None)
                    self._ready = True
        return await self._run(program, flow_id)

    async def _run(self, program: Program[T], flow_id: str | None) -> T:
        reply: Any = None
        try:
            while True:
                call = program.send(reply)
                script = self._scripts[call.script]
                reply = await script(keys=call.keys, args=call.args)
        except StopIteration as done:
            return cast(T, done.value)
        except redis.RedisError as exc:
            raise _failure(exc, program, flow_id) from exc

    async def insert(self, record: FlowRecord) -> None:
        await self._perform(insert(self._keys, record), record.id)

    async def save(self, record: FlowRecord) -> None:
        await self._perform(save(self._keys, record), record.id)

    async def load(self, flow_id: str) -> FlowRecord:
        return await self._perform(load(self._keys, flow_id), flow_id)

    async def find_by_state(self, state_hash: str) -> FlowRecord:
        return await self._perform(find_by_state(self._keys, state_hash))

    async def delete(self, flow_id: str, version: int) -> None:
        await self._perform(delete(self._keys, flow_id, version), flow_id)

    async def expiring(
        self, *, states: Collection[str], before: datetime, limit: int
    ) -> list[FlowRecord]:
        return await self._perform(expiring(self._keys, states, before, limit))

    async def finished(
        self, *, states: Collection[str], updated_before: datetime, limit: int
    ) -> list[FlowRecord]:
        return await self._perform(finished(self._keys, states, updated_before, limit))

    async def due(
        self,
        *,
        state: str,
        before: datetime,
        limit: int,
        after: DueKey | None = None,
    ) -> list[FlowRecord]:
        return await self._perform(due(self._keys, state, before, limit, after))

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
            claim_due(self._keys, state, before, limit, after, claim)
        )

    async def list(
        self, *, state: str | None = None, provider: str | None = None, limit: int = 100
    ) -> list[FlowRecord]:
        return await self._perform(list_flows(self._keys, state, provider, limit))

    async def close(self) -> None:
        await self._client.aclose()
