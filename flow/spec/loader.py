"""Loading flow specs from YAML files, with errors that name file, field and reason."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from marshmallow import ValidationError

from ..errors import Problem, SpecError
from .model import FlowSpec
from .schema import FLOW_SPEC_SCHEMA, check_spec, flatten_messages

#: Where the specs bundled with flow live: ``specs/`` beside the package in a source
#: checkout, ``flow/specs/`` inside an installed wheel.
_SPEC_ROOTS = (
    Path(__file__).resolve().parent.parent / "specs",
    Path(__file__).resolve().parent.parent.parent / "specs",
)


def spec_from_data(
    data: Any, *, file: str = "<memory>", known_guards: Iterable[str] | None = None
) -> FlowSpec:
    """Validate already parsed spec data.

    Args:
        data: The parsed document, normally a mapping.
        file: Named in every problem reported.
        known_guards: Guard names to accept; defaults to the engine's guards.

    Returns:
        The validated spec.

    Raises:
        SpecError: Listing every problem found, each with its field and reason.
    """
    if known_guards is None:
        from ..machine.guards import GUARDS

        known_guards = GUARDS

    if not isinstance(data, dict):
        raise SpecError(file, [Problem("<document>", "must be a mapping")])
    try:
        spec: FlowSpec = FLOW_SPEC_SCHEMA.load(data)
    except ValidationError as exc:
        raise SpecError(file, flatten_messages(exc.messages)) from None

    problems = check_spec(spec, known_guards)
    if problems:
        raise SpecError(file, problems)
    return replace(spec, file=file)


def load_spec(path: str | Path) -> FlowSpec:
    """Load and validate a flow spec file.

    Args:
        path: A YAML file.

    Returns:
        The validated spec.

    Raises:
        SpecError: When the file cannot be read or parsed, or the spec is malformed.
    """
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(
            file, [Problem("<file>", exc.strerror or "unreadable")]
        ) from None
    except UnicodeDecodeError as exc:
        raise SpecError(
            file, [Problem("<file>", f"not UTF-8 text (byte {exc.start})")]
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "<document>"
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise SpecError(file, [Problem(where, str(problem))]) from None
    return spec_from_data(data, file=file)


def spec_path(name: str) -> Path:
    """The file of the bundled spec called ``name``.

    Raises:
        SpecError: When no bundled spec has that name.
    """
    for root in _SPEC_ROOTS:
        candidate = root / "flows" / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    raise SpecError(name, [Problem("<file>", "no bundled flow spec with this name")])


def builtin_spec(name: str = "authorization_code") -> FlowSpec:
    """The bundled spec called ``name``, loaded once per process."""
    return _builtin(name)


@functools.cache
def _builtin(name: str) -> FlowSpec:
    return load_spec(spec_path(name))


def bundled_spec_files() -> list[Path]:
    """Every bundled flow spec file, sorted by name."""
    for root in _SPEC_ROOTS:
        folder = root / "flows"
        if folder.is_dir():
            return sorted(folder.glob("*.yaml"))
    return []
