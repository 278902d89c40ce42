"""One ``transitions`` machine per flow spec, built once and shared by every flow.

Flows are not registered with the machine: each trigger is fired on a throw-away
cursor that carries the record (``machine.events[name].trigger(cursor)``). That keeps
the machine free of per-flow state, so a process can hold any number of flows at no
memory cost and a Machine is never built per flow.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, cast

from transitions import EventData, Machine, MachineError

from ..errors import ConfigurationError, GuardRejected, IllegalTransition
from ..record import JSON, FlowRecord, Transition
from ..spec import FlowSpec, builtin_spec
from .guards import GUARDS


class _Cursor:
    """What ``transitions`` sees as the model: the state and what the guards need."""

    __slots__ = ("now", "record", "state")

    def __init__(self, record: FlowRecord, now: datetime) -> None:
        self.record = record
        self.state = record.state
        self.now = now


def _guard_condition(name: str) -> Any:
    guard = GUARDS[name]

    def condition(event: EventData) -> bool:
        cursor = cast(_Cursor, event.model)
        return guard(cursor.record, cursor.now)

    condition.__name__ = name
    return condition


def transition_table(
    spec: FlowSpec, condition: Callable[[str], Any]
) -> list[dict[str, Any]]:
    """The spec's transitions in the form ``transitions`` takes; each guard name is
    turned into a condition by ``condition``."""
    return [
        {
            "trigger": item.trigger,
            "source": list(item.sources),
            "dest": item.dest,
            "conditions": [condition(guard) for guard in item.guards],
        }
        for item in spec.transitions
    ]


class FlowMachine:
    """Applies a spec's transitions to flow records.

    Args:
        spec: A validated flow spec.
    """

    def __init__(self, spec: FlowSpec) -> None:
        self.spec = spec
        self._machine = Machine(
            model=None,
            states=list(spec.states),
            transitions=transition_table(spec, _guard_condition),
            initial=spec.initial,
            auto_transitions=False,
            send_event=True,
        )
        self._guards = {
            (item.trigger, source): item.guards
            for item in spec.transitions
            for source in item.sources
        }

    def allowed(self, state: str) -> list[str]:
        """The triggers declared from ``state``, in spec order."""
        return [trigger for (trigger, source) in self._guards if source == state]

    def fire(
        self,
        record: FlowRecord,
        trigger: str,
        now: datetime,
        *,
        reason: str | None = None,
        detail: Mapping[str, JSON] | None = None,
        **changes: Any,
    ) -> FlowRecord:
        """Apply one transition and return the next version of the record.

        The input record is left untouched; nothing is persisted or logged here.

        Args:
            record: The flow as last committed.
            trigger: The trigger to fire.
            now: The time of the transition, also seen by the guards.
            reason: A reason code, required by states that declare
                ``requires_reason`` (the failed state).
            detail: Non-secret facts kept in the history entry.
            **changes: Record fields to change along with the state; the guards
                see the record with these changes applied.

        Returns:
            The record in its new state, with its version incremented and the
            transition appended to its history.

        Raises:
            IllegalTransition: No transition for ``trigger`` from the current state.
            GuardRejected: A guard of the transition refused it.
            ConfigurationError: A reason is missing where the spec requires one.
        """
        # Guards judge the record as it would be after the transition: the tokens
        # that issue_token stores are what holds_access_token checks.
        if reason:
            changes["reason"] = reason
        proposed = replace(record, **changes) if changes else record
        cursor = _Cursor(proposed, now)
        event = self._machine.events.get(trigger)
        # transitions raises ValueError for a state it does not know; a record in a
        # state this spec never declared is as illegal as an undeclared trigger.
        if event is None or record.state not in self.spec.states:
            raise IllegalTransition(
                flow_id=record.id, state=record.state, trigger=trigger
            )
        try:
            moved = event.trigger(cursor)
        except MachineError:
            raise IllegalTransition(
                flow_id=record.id, state=record.state, trigger=trigger
            ) from None
        if not moved:
            raise GuardRejected(
                flow_id=record.id,
                state=record.state,
                trigger=trigger,
                guard=self._failed_guard(proposed, trigger, now),
            )

        dest = cursor.state
        if self.spec.states[dest].requires_reason and not reason:
            raise ConfigurationError(
                f"trigger {trigger!r} into {dest!r} needs a reason code",
                flow_id=record.id,
                state=record.state,
            )
        entry_detail = dict(detail or {})
        if reason:
            entry_detail["reason"] = reason
        entry = Transition(
            trigger=trigger, source=record.state, dest=dest, at=now, detail=entry_detail
        )
        return replace(
            proposed,
            state=dest,
            version=record.version + 1,
            updated_at=now,
            history=(*record.history, entry),
        )

    def _failed_guard(self, record: FlowRecord, trigger: str, now: datetime) -> str:
        for name in self._guards.get((trigger, record.state), ()):
            if not GUARDS[name](record, now):
                return name
        return "?"


@functools.cache
def machine_for(spec: FlowSpec) -> FlowMachine:
    """The shared machine of ``spec``, built on first use."""
    return FlowMachine(spec)


def default_machine() -> FlowMachine:
    """The shared machine of the bundled authorization code spec."""
    return machine_for(builtin_spec("authorization_code"))
