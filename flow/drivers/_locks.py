"""One lock per flow id within a process, forgotten when nobody holds it."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

L = TypeVar("L", threading.Lock, asyncio.Lock)


class _Slot(Generic[L]):
    __slots__ = ("__weakref__", "lock")

    def __init__(self, lock: L) -> None:
        self.lock: L = lock


class FlowLocks(Generic[L]):
    """Hands out the same lock for the same flow id while someone holds a reference.

    Concurrent callers in one process that find one credential expired serialise
    on this lock, so only the first refreshes; the others then read its result.
    """

    def __init__(self, factory: Callable[[], L]) -> None:
        self._factory: Callable[[], L] = factory
        self._guard = threading.Lock()
        self._slots: weakref.WeakValueDictionary[str, _Slot[L]] = (
            weakref.WeakValueDictionary()
        )

    def slot(self, flow_id: str) -> _Slot[L]:
        """The slot for ``flow_id``; keep it referenced while using its lock."""
        with self._guard:
            slot = self._slots.get(flow_id)
            if slot is None:
                slot = _Slot(self._factory())
                self._slots[flow_id] = slot
            return slot
