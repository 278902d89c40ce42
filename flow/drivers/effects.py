"""What the engine asks a driver to do. Drivers perform these and nothing else."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TypeVar

from ..protocol import HttpRequest
from ..record import FlowRecord


@dataclass(frozen=True, slots=True)
class Insert:
    """Store a new flow; answers ``None`` or raises ``VersionConflict``."""

    record: FlowRecord


@dataclass(frozen=True, slots=True)
class Save:
    """Compare-and-set a flow; answers ``None`` or raises ``VersionConflict``."""

    record: FlowRecord


@dataclass(frozen=True, slots=True)
class Load:
    """Read a flow by id; answers a ``FlowRecord``."""

    flow_id: str


@dataclass(frozen=True, slots=True)
class FindByState:
    """Read the flow whose state value has this digest; answers a ``FlowRecord``."""

    state_hash: str


@dataclass(frozen=True, slots=True)
class Send:
    """Send an HTTP request; answers an ``HttpResponse`` or raises
    ``TransportError``."""

    request: HttpRequest


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait before looking again (another process holds the flow); answers
    ``None``."""

    seconds: float


Effect = Insert | Save | Load | FindByState | Send | Sleep

T = TypeVar("T")

#: An engine operation: a generator that yields effects and returns its result.
Program = Generator[Effect, object, T]

#: No operation needs more effects than this; a runner stops a program past it.
#: Waiting for another process's refresh takes the most: a poll is two effects.
MAX_EFFECTS = 1024
