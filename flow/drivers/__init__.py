"""Drivers: thin shells that perform the engine's effects, sync and async."""

from .asyncio import AsyncDriver
from .engine import DEFAULT_LEASE, DEFAULT_TTL, Engine, Outcome, Started
from .sync import Driver

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_TTL",
    "AsyncDriver",
    "Driver",
    "Engine",
    "Outcome",
    "Started",
]
