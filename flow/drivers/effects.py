"""What the engine asks a driver to do. Drivers perform these and nothing else."""

from __future__ import annotations

from collections.abc import Collection, Generator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from ..protocol import HttpRequest
from ..record import FlowRecord
from ..stores.base import Claim, DueKey


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


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete a flow at this version (compare-and-set); answers ``None`` or raises
    ``VersionConflict`` or ``FlowNotFound``."""

    flow_id: str
    version: int


@dataclass(frozen=True, slots=True)
class FindExpiring:
    """Read flows in ``states`` past their ``expires_at``; answers a list of
    ``FlowRecord``, the earliest first (:meth:`~flow.stores.Store.expiring`)."""

    states: Collection[str]
    before: datetime
    limit: int


@dataclass(frozen=True, slots=True)
class FindFinished:
    """Read flows in ``states`` last updated by ``updated_before``; answers a list
    of ``FlowRecord``, the oldest first (:meth:`~flow.stores.Store.finished`)."""

    states: Collection[str]
    updated_before: datetime
    limit: int


@dataclass(frozen=True, slots=True)
class ClaimDue:
    """Claim a page of due credentials no one else holds; answers a list of
    :class:`~flow.stores.base.Claimed` (:meth:`~flow.stores.Store.claim_due`)."""

    state: str
    before: datetime
    limit: int
    claim: Claim
    after: DueKey | None = None


@dataclass(frozen=True, slots=True)
class Concurrently:
    """Run these programs, at most ``limit`` at a time; answers a list with each
    one's result, or the ``FlowError`` it raised, in the programs' order."""

    programs: Sequence[Program[Any]]
    limit: int


Effect = (
    Insert
    | Save
    | Load
    | FindByState
    | Send
    | Sleep
    | Delete
    | FindExpiring
    | FindFinished
    | ClaimDue
    | Concurrently
)

T = TypeVar("T")

#: An engine operation: a generator that yields effects and returns its result.
Program = Generator[Effect, object, T]

#: No operation needs more effects than this; a runner stops a program past it.
#: Waiting for another process's refresh takes the most: a poll is two effects.
MAX_EFFECTS = 1024
