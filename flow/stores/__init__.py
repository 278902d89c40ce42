"""Stores: where flow records live between steps."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ConfigurationError
from .base import AsyncStore, Store, ThreadedStore
from .memory import MemoryStore
from .sqlite import SQLiteStore


def open_store(url: str) -> Store:
    """Open a store from a URL.

    Args:
        url: ``memory://``, ``sqlite:///relative/path.db`` or
            ``sqlite:////absolute/path.db`` (the SQLAlchemy convention).

    Returns:
        A synchronous store; wrap it in :class:`ThreadedStore` for async drivers.

    Raises:
        ConfigurationError: For an unknown scheme or a malformed URL.
    """
    parts = urlsplit(url)
    if parts.scheme == "memory":
        return MemoryStore()
    if parts.scheme == "sqlite":
        if parts.netloc or not parts.path.startswith("/") or parts.path == "/":
            raise ConfigurationError(
                "an SQLite store URL looks like sqlite:///relative.db or "
                "sqlite:////absolute/path.db"
            )
        return SQLiteStore(Path(parts.path[1:]))
    raise ConfigurationError(
        f"unknown store scheme {parts.scheme!r}; use memory:// or sqlite:///PATH"
    )


__all__ = [
    "AsyncStore",
    "MemoryStore",
    "SQLiteStore",
    "Store",
    "ThreadedStore",
    "open_store",
]
