"""Stores: where flow records live between steps.

The memory and SQLite stores come with flow. The PostgreSQL and Redis stores need
their drivers, installed with the ``postgres`` and ``redis`` extras; they are
imported on first use, so flow works without them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import ConfigurationError
from .base import AsyncStore, Store, ThreadedStore
from .memory import MemoryStore
from .sqlite import SQLiteStore

if TYPE_CHECKING:
    from .postgres import AsyncPostgresStore, PostgresStore
    from .redis import AsyncRedisStore, RedisStore

#: Each optional store: the module that holds it, which is also its extra's name.
_OPTIONAL = {
    "AsyncPostgresStore": "postgres",
    "PostgresStore": "postgres",
    "AsyncRedisStore": "redis",
    "RedisStore": "redis",
}
_POSTGRES = ("postgresql", "postgres")
_REDIS = ("redis", "rediss")


@contextmanager
def _extra(name: str) -> Iterator[None]:
    """Turn a missing driver into advice on which extra to install."""
    try:
        yield
    except ImportError as exc:
        raise ConfigurationError(
            f"the {name} store needs its driver ({exc}); install it with "
            f"pip install 'flow-oauth[{name}]'"
        ) from None


def __getattr__(name: str) -> Any:
    # PEP 562: the optional stores are imported when first named.
    if name in _OPTIONAL:
        with _extra(_OPTIONAL[name]):
            module = import_module(f"{__name__}.{_OPTIONAL[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _split_option(url: str, option: str) -> tuple[str, str | None]:
    """The URL without the query parameter ``option``, and that parameter's value."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    values = [value for key, value in query if key == option]
    if len(values) > 1:
        raise ConfigurationError(f"the store URL gives {option!r} more than once")
    rest = urlencode([(key, value) for key, value in query if key != option])
    return urlunsplit(parts._replace(query=rest)), (values[0] if values else None)


def _embedded(url: str) -> Store:
    """The memory or SQLite store a URL names."""
    parts = urlsplit(url)
    if parts.scheme == "memory":
        return MemoryStore()
    if parts.scheme != "sqlite":
        raise ConfigurationError(
            f"unknown store scheme {parts.scheme!r}; use memory://, sqlite:///PATH, "
            "postgresql://... or redis://..."
        )
    if parts.netloc or not parts.path.startswith("/") or parts.path == "/":
        raise ConfigurationError(
            "an SQLite store URL looks like sqlite:///relative.db or "
            "sqlite:////absolute/path.db"
        )
    return SQLiteStore(Path(parts.path[1:]))


def open_store(url: str) -> Store:
    """Open a store from a URL.

    Args:
        url: ``memory://``; ``sqlite:///relative/path.db`` or
            ``sqlite:////absolute/path.db`` (the SQLAlchemy convention);
            ``postgresql://user@host/db`` (or ``postgres://``), where ``?schema=``
            names the schema (default ``flow``) beside libpq's own parameters;
            ``redis://host:6379/0`` or ``rediss://`` (TLS), where ``?prefix=``
            sets the key prefix (default ``flow:``).

    Returns:
        A synchronous store. For asyncio drivers, see :func:`open_async_store`.

    Raises:
        ConfigurationError: For an unknown scheme, a malformed URL, or a store
            whose driver is not installed (the message names the extra).
        StoreError: The database cannot be reached or was written by a newer flow.
    """
    scheme = urlsplit(url).scheme
    if scheme in _POSTGRES:
        conninfo, schema = _split_option(url, "schema")
        with _extra("postgres"):
            from .postgres import PostgresStore
        return PostgresStore(conninfo, schema="flow" if schema is None else schema)
    if scheme in _REDIS:
        address, prefix = _split_option(url, "prefix")
        with _extra("redis"):
            from .redis import RedisStore
        return RedisStore(address, prefix="flow:" if prefix is None else prefix)
    return _embedded(url)


def open_async_store(url: str) -> AsyncStore:
    """Open a store for asyncio from a URL.

    Args:
        url: As for :func:`open_store`.

    Returns:
        The native asyncio store for PostgreSQL and Redis, which connects on its
        first call; the memory and SQLite stores wrapped in :class:`ThreadedStore`.

    Raises:
        ConfigurationError: For an unknown scheme, a malformed URL, or a store
            whose driver is not installed (the message names the extra).
    """
    scheme = urlsplit(url).scheme
    if scheme in _POSTGRES:
        conninfo, schema = _split_option(url, "schema")
        with _extra("postgres"):
            from .postgres import AsyncPostgresStore
        return AsyncPostgresStore(conninfo, schema="flow" if schema is None else schema)
    if scheme in _REDIS:
        address, prefix = _split_option(url, "prefix")
        with _extra("redis"):
            from .redis import AsyncRedisStore
        return AsyncRedisStore(address, prefix="flow:" if prefix is None else prefix)
    return ThreadedStore(_embedded(url))


__all__ = [
    "AsyncPostgresStore",
    "AsyncRedisStore",
    "AsyncStore",
    "MemoryStore",
    "PostgresStore",
    "RedisStore",
    "SQLiteStore",
    "Store",
    "ThreadedStore",
    "open_async_store",
    "open_store",
]
