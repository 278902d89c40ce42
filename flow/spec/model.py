"""Flow specs as plain, immutable data."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class StateKind(StrEnum):
    """What a state is doing: working, waiting on the outside world, or finished."""

    WORKING = "working"
    WAITING = "waiting"
    TERMINAL = "terminal"


@dataclass(frozen=True, slots=True)
class StateSpec:
    """One declared state.

    Attributes:
        name: The state's name, a situation such as ``awaiting_login``.
        kind: Working, waiting or terminal.
        description: One line for people reading logs and diagrams.
        requires_reason: Entering this state needs a reason code (failed states).
        deliberate: A terminal state someone chose (revoked, cancelled): reaching it
            is logged as ``flow.ended``, not ``flow.failed``.
    """

    name: str
    kind: StateKind
    description: str
    requires_reason: bool = False
    deliberate: bool = False


@dataclass(frozen=True, slots=True)
class TransitionSpec:
    """One declared transition: a trigger moves ``sources`` to ``dest``."""

    trigger: str
    sources: tuple[str, ...]
    dest: str
    guards: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FlowSpec:
    """A declared state machine for one grant type.

    Attributes:
        name: The spec's name, recorded in every flow that runs it.
        version: The spec's version, bumped when its states change meaning.
        description: One line.
        initial: The state a new flow starts in.
        success: The state that means the flow reached its goal.
        states: Every state by name, in declaration order.
        triggers: Every trigger's one-line description, by name.
        transitions: Every transition, in declaration order.
        file: Where the spec was loaded from.
    """

    name: str
    version: int
    description: str
    initial: str
    success: str
    states: dict[str, StateSpec]
    triggers: dict[str, str]
    transitions: tuple[TransitionSpec, ...]
    file: str = "<memory>"

    def __hash__(self) -> int:
        return hash((self.name, self.version, self.file))

    def state(self, name: str) -> StateSpec:
        """The declared state called ``name``."""
        return self.states[name]

    def is_terminal(self, name: str) -> bool:
        """Whether ``name`` is a terminal state."""
        return self.states[name].kind is StateKind.TERMINAL
