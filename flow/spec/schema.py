"""Marshmallow schemas for flow spec files, and the checks a schema cannot express."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load
from marshmallow import validate as v

from ..errors import Problem
from .model import FlowSpec, StateKind, StateSpec, TransitionSpec

_NAME = v.Regexp(r"^[a-z][a-z0-9_]*$", error="must be snake_case: a-z, 0-9 and _")


class _SourcesField(fields.Field[tuple[str, ...]]):
    """A state name, or a non-empty list of state names."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if (
            not isinstance(items, list)
            or not items
            or not all(isinstance(item, str) for item in items)
        ):
            raise ValidationError("must be a state name or a non-empty list of them")
        return tuple(items)


class StateSchema(Schema):
    class Meta:
        unknown = RAISE

    kind = fields.Enum(StateKind, by_value=True, required=True)
    description = fields.String(required=True, validate=v.Length(min=1, max=200))
    requires_reason = fields.Boolean(load_default=False)
    deliberate = fields.Boolean(load_default=False)


class TransitionSchema(Schema):
    class Meta:
        unknown = RAISE

    trigger = fields.String(required=True, validate=_NAME)
    source = _SourcesField(required=True)
    dest = fields.String(required=True, validate=_NAME)
    guards = fields.List(fields.String(validate=_NAME), load_default=list)


class FlowSpecSchema(Schema):
    """The shape of a flow spec file; :func:`check_spec` adds the graph checks."""

    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=_NAME)
    version = fields.Integer(required=True, strict=True, validate=v.Range(min=1))
    description = fields.String(required=True, validate=v.Length(min=1, max=200))
    initial = fields.String(required=True)
    success = fields.String(required=True)
    states = fields.Dict(
        keys=fields.String(validate=_NAME),
        values=fields.Nested(StateSchema),
        required=True,
        validate=v.Length(min=1),
    )
    triggers = fields.Dict(
        keys=fields.String(validate=_NAME),
        values=fields.String(validate=v.Length(min=1, max=200)),
        required=True,
        validate=v.Length(min=1),
    )
    transitions = fields.List(
        fields.Nested(TransitionSchema), required=True, validate=v.Length(min=1)
    )

    @post_load
    def _build(self, data: dict[str, Any], **_: Any) -> FlowSpec:
        states = {
            name: StateSpec(
                name=name,
                kind=state["kind"],
                description=state["description"],
                requires_reason=state["requires_reason"],
                deliberate=state["deliberate"],
            )
            for name, state in data["states"].items()
        }
        transitions = tuple(
            TransitionSpec(
                trigger=item["trigger"],
                sources=item["source"],
                dest=item["dest"],
                guards=tuple(item["guards"]),
            )
            for item in data["transitions"]
        )
        return FlowSpec(
            name=data["name"],
            version=data["version"],
            description=data["description"],
            initial=data["initial"],
            success=data["success"],
            states=states,
            triggers=dict(data["triggers"]),
            transitions=transitions,
        )


FLOW_SPEC_SCHEMA = FlowSpecSchema()


def flatten_messages(messages: Any, path: str = "") -> list[Problem]:
    """Turn marshmallow's nested error messages into field/reason problems."""
    if isinstance(messages, Mapping):
        problems = []
        for key, value in messages.items():
            if key in ("_schema", "value"):
                # "value" is marshmallow's wrapper for a dict entry's own errors.
                problems.extend(flatten_messages(value, path))
                continue
            if key == "key":
                problems.extend(flatten_messages(value, f"{path} (name)"))
                continue
            if isinstance(key, int):
                child = f"{path}[{key}]"
            else:
                child = f"{path}.{key}" if path else str(key)
            problems.extend(flatten_messages(value, child))
        return problems
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [Problem(path or "<document>", _plain(m)) for m in messages]
    if isinstance(messages, list):
        return [p for m in messages for p in flatten_messages(m, path)]
    return [Problem(path or "<document>", _plain(str(messages)))]


def _plain(message: str) -> str:
    # Marshmallow says "Unknown field."; a spec author wants "unknown field".
    message = message.rstrip(".")
    return re.sub(r"^[A-Z](?=[a-z])", lambda m: m.group().lower(), message)


def check_spec(spec: FlowSpec, known_guards: Iterable[str]) -> list[Problem]:
    """Check what the schema cannot: names that must exist, reachability, clashes.

    Args:
        spec: A spec that passed :data:`FLOW_SPEC_SCHEMA`.
        known_guards: The guard names the engine implements.

    Returns:
        Every problem found, in file order; empty when the spec is sound.
    """
    problems: list[Problem] = []
    states = spec.states
    guards = set(known_guards)

    for field in ("initial", "success"):
        name = getattr(spec, field)
        if name not in states:
            problems.append(Problem(field, f"unknown state {name!r}"))

    seen: dict[tuple[str, str], int] = {}
    for index, item in enumerate(spec.transitions):
        where = f"transitions[{index}]"
        if item.trigger not in spec.triggers:
            problems.append(
                Problem(f"{where}.trigger", f"trigger {item.trigger!r} is not declared")
            )
        if item.dest not in states:
            problems.append(Problem(f"{where}.dest", f"unknown state {item.dest!r}"))
        for source in item.sources:
            if source not in states:
                problems.append(Problem(f"{where}.source", f"unknown state {source!r}"))
            elif states[source].kind is StateKind.TERMINAL:
                problems.append(
                    Problem(
                        f"{where}.source",
                        f"terminal state {source!r} cannot have transitions",
                    )
                )
            key = (item.trigger, source)
            if key in seen:
                problems.append(
                    Problem(
                        f"{where}.trigger",
                        f"duplicate trigger {item.trigger!r} from state {source!r} "
                        f"(also in transitions[{seen[key]}])",
                    )
                )
            seen.setdefault(key, index)
        for guard in item.guards:
            if guard not in guards:
                known = ", ".join(sorted(guards))
                problems.append(
                    Problem(
                        f"{where}.guards",
                        f"unknown guard {guard!r} (known: {known})",
                    )
                )

    used = {item.trigger for item in spec.transitions}
    for trigger in spec.triggers:
        if trigger not in used:
            problems.append(
                Problem(f"triggers.{trigger}", "declared but used by no transition")
            )

    problems.extend(_unreachable(spec))
    return problems


def _unreachable(spec: FlowSpec) -> list[Problem]:
    if spec.initial not in spec.states:
        return []
    reached = {spec.initial}
    frontier = [spec.initial]
    while frontier:
        current = frontier.pop()
        for item in spec.transitions:
            if current in item.sources and item.dest not in reached:
                reached.add(item.dest)
                frontier.append(item.dest)
    return [
        Problem(
            f"states.{name}", f"unreachable from the initial state {spec.initial!r}"
        )
        for name in spec.states
        if name not in reached
    ]
