"""Drivers: thin shells that perform the engine's effects, sync and async."""

from .asyncio import AsyncDriver
from .engine import DEFAULT_LEASE, DEFAULT_TTL, Engine, Outcome, Started
from .maintenance import GcSummary, RefreshSummary
from .sync import Driver

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_TTL",
    "AsyncDriver",
    "Driver",
    "Engine",
    "GcSummary",
    "Outcome",
    "RefreshSummary",
    "Started",
]
