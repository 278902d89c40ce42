"""Dump plans compiled from marshmallow schemas, once per schema class.

The schemas stay the one definition of the stored format. A :class:`Plan`, read
from a schema's field declarations, dumps an object exactly as ``Schema.dump``
would without marshmallow's generic per-field machinery (about 100 us a record),
and tells whether an object is *canonical*: one that the schema's load would give
back unchanged, types included.

A field type the plans do not know stops the import. ``tests/unit/test_record.py``
proves the results equal to marshmallow's own dump and load with hypothesis.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields

_Convert = Callable[[Any], Any]
_Canonical = Callable[[Any], bool]


def _text(value: Any) -> Any:
    # marshmallow's String dump: str() of anything, bytes decoded as UTF-8.
    if type(value) is str or value is None:
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def _integer(value: Any) -> Any:
    return None if value is None else int(value)


def _iso(value: Any) -> Any:
    return None if value is None else datetime.isoformat(value)


def _keep(value: Any) -> Any:
    return value


def _json_canonical(value: Any) -> bool:
    # A Raw value survives a JSON round trip unchanged, types included: no tuples,
    # no subclasses, no non-string keys, no NaN or infinity.
    kind = type(value)
    if value is None or kind is str or kind is bool or kind is int:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is list:
        return all(_json_canonical(item) for item in value)
    if kind is dict:
        return all(
            type(key) is str and _json_canonical(item) for key, item in value.items()
        )
    return False


def json_copy(value: Any) -> Any:
    """Fresh containers for a canonical JSON value; scalars are immutable."""
    kind = type(value)
    if kind is dict:
        return {key: json_copy(item) for key, item in value.items()}
    if kind is list:
        return [json_copy(item) for item in value]
    return value


def _is_datetime(value: Any) -> bool:
    # isoformat() then fromisoformat() gives back the same datetime only for the
    # timezone.utc singleton and fold 0; other zones come back as fixed offsets.
    return type(value) is datetime and value.tzinfo is UTC and value.fold == 0


def _field_plan(
    plans: SchemaPlans, field: fields.Field[Any]
) -> tuple[_Convert, _Canonical]:
    """How marshmallow dumps ``field``, and which values its load returns as is.

    Every marshmallow field dumps ``None`` as ``None``, nullable or not; so does
    every converter here.
    """
    convert: _Convert
    canonical: _Canonical
    kind = type(field)
    if isinstance(field, fields.Nested):
        plan = plans.plan(type(field.schema))
        convert, canonical = plan.dump, plan.canonical
    elif isinstance(field, fields.List):
        # Both kinds of list come back as tuples: _StringTuple makes them, and
        # FlowRecordSchema's post_load turns the history into one.
        inner, inner_ok = _field_plan(plans, field.inner)

        def convert(value: Any) -> Any:
            return None if value is None else [inner(item) for item in value]

        def canonical(value: Any) -> bool:
            return type(value) is tuple and all(inner_ok(item) for item in value)

    elif (
        isinstance(field, fields.Dict)
        and kind is fields.Dict
        and type(field.key_field) is fields.String
        and type(field.value_field) is fields.Raw
    ):

        def convert(value: Any) -> Any:
            if value is None:
                return None
            return {_text(key): item for key, item in value.items()}

        def canonical(value: Any) -> bool:
            return type(value) is dict and _json_canonical(value)

    elif isinstance(field, fields.AwareDateTime) and field.format == "iso":
        convert, canonical = _iso, _is_datetime
    elif isinstance(field, fields.Enum) and field.by_value is True:
        enum = field.enum

        def convert(value: Any) -> Any:
            return None if value is None else value.value

        def canonical(value: Any) -> bool:
            return type(value) is enum

    elif kind is fields.String:
        convert, canonical = _text, lambda value: type(value) is str
    elif kind is fields.Integer:
        convert, canonical = _integer, lambda value: type(value) is int
    elif kind is fields.Boolean:
        convert, canonical = _keep, lambda value: type(value) is bool
    else:
        raise TypeError(f"no dump plan for {kind.__name__}; teach _field_plan")
    return convert, _loadable(field, canonical)


def _loadable(field: fields.Field[Any], canonical: _Canonical) -> _Canonical:
    """``canonical``, plus what the field's load checks: nulls and validators."""
    validators = tuple(field.validators)
    allow_none = field.allow_none

    def valid(value: Any) -> bool:
        if value is None:
            return allow_none
        if not canonical(value):
            return False
        try:
            for validator in validators:
                validator(value)
        except ValidationError:
            return False
        return True

    return valid


@dataclass(frozen=True, slots=True)
class Plan:
    """One schema's fields, as (attribute, key, convert, canonical)."""

    model: type
    fields: tuple[tuple[str, str, _Convert, _Canonical], ...]

    def dump(self, obj: Any) -> dict[str, Any] | None:
        """What ``Schema.dump`` returns for ``obj``, in the schema's field order."""
        if obj is None:
            return None
        return {
            key: convert(getattr(obj, name)) for name, key, convert, _ in self.fields
        }

    def canonical(self, obj: Any) -> bool:
        """Whether loading the dump of ``obj`` gives back ``obj``, types and all."""
        return type(obj) is self.model and all(
            ok(getattr(obj, name)) for name, _, _, ok in self.fields
        )


class SchemaPlans:
    """Dump plans for a family of schemas, built on first use.

    Args:
        models: The record class each schema's ``post_load`` makes.
    """

    def __init__(self, models: Mapping[type[Schema], type]) -> None:
        self._models = models
        self._plans: dict[type[Schema], Plan] = {}

    def plan(self, schema: type[Schema]) -> Plan:
        """How to dump ``schema``'s objects, and which ones are canonical."""
        if schema not in self._plans:
            model = self._models[schema]
            # A declared field the record lacks (schema_version) is skipped, as
            # marshmallow skips an attribute it cannot find.
            self._plans[schema] = Plan(
                model,
                tuple(
                    (
                        field.attribute or name,
                        field.data_key or name,
                        *_field_plan(self, field),
                    )
                    for name, field in schema().dump_fields.items()
                    if hasattr(model, field.attribute or name)
                ),
            )
        return self._plans[schema]
