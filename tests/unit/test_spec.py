"""The flow spec loader: the bundled spec, and a SpecError for every malformed one."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from flow.errors import SpecError
from flow.spec import (
    FlowSpec,
    StateKind,
    builtin_spec,
    bundled_spec_files,
    load_spec,
    spec_from_data,
)

SPEC_FILE = Path(__file__).resolve().parents[2] / "specs/flows/authorization_code.yaml"

Mutation = Callable[[dict[str, Any]], None]


_PARSED: dict[str, Any] = yaml.safe_load(SPEC_FILE.read_text(encoding="utf-8"))


#: The index a transition appended to the bundled spec gets.
NEW = len(_PARSED["transitions"])


def valid_data() -> dict[str, Any]:
    """The bundled spec as parsed YAML, a fresh copy each call."""
    return copy.deepcopy(_PARSED)


def problems_of(data: Any, *, file: str = "broken.yaml") -> list[tuple[str, str]]:
    """The (field, reason) pairs that spec_from_data reports for ``data``."""
    with pytest.raises(SpecError) as caught:
        spec_from_data(data, file=file)
    assert caught.value.file == file
    return [(problem.field, problem.reason) for problem in caught.value.problems]


def has_problem(problems: list[tuple[str, str]], field: str, reason: str) -> bool:
    """Whether one problem names ``field`` and has ``reason`` in its text."""
    return any(f == field and reason in r for f, r in problems)


# The bundled spec ------------------------------------------------------------------


def test_bundled_spec_loads_with_its_states_and_kinds() -> None:
    spec = builtin_spec()

    expected = {
        "client_registered": StateKind.WORKING,
        "awaiting_login": StateKind.WAITING,
        "code_received": StateKind.WORKING,
        "exchanging": StateKind.WORKING,
        "token_issued": StateKind.WORKING,
        "api_ready": StateKind.WAITING,
        "failed": StateKind.TERMINAL,
        "denied": StateKind.TERMINAL,
        "expired": StateKind.TERMINAL,
    }
    actual = {name: spec.states[name].kind for name in expected}

    assert actual == expected
    assert (spec.name, spec.version) == ("authorization_code", 1)
    assert (spec.initial, spec.success) == ("client_registered", "api_ready")


def test_bundled_spec_marks_failures_as_needing_a_reason() -> None:
    spec = builtin_spec()

    actual = {name for name, state in spec.states.items() if state.requires_reason}

    assert actual == {"failed", "reauth_required"}


def test_bundled_spec_has_a_description_for_every_state_and_trigger() -> None:
    spec = builtin_spec()

    assert all(state.description for state in spec.states.values())
    assert all(spec.triggers.values())
    assert {item.trigger for item in spec.transitions} == set(spec.triggers)


def test_bundled_spec_is_loaded_once_and_remembers_its_file() -> None:
    assert builtin_spec() is builtin_spec()
    assert Path(builtin_spec().file).resolve() == SPEC_FILE


def test_bundled_spec_files_lists_the_authorization_code_spec() -> None:
    actual = [path.resolve() for path in bundled_spec_files()]

    assert SPEC_FILE in actual
    assert actual == sorted(actual)


def test_unknown_bundled_spec_name_is_a_spec_error() -> None:
    with pytest.raises(SpecError) as caught:
        builtin_spec("no_such_flow")

    assert "no_such_flow" in str(caught.value)


def test_spec_from_data_equals_the_loaded_file() -> None:
    from_data = spec_from_data(valid_data(), file=builtin_spec().file)

    assert from_data == builtin_spec()


def test_fail_transition_keeps_its_list_of_sources() -> None:
    spec = builtin_spec()
    fail = next(item for item in spec.transitions if item.trigger == "fail")

    expected = (
        "client_registered",
        "awaiting_login",
        "code_received",
        "exchanging",
        "token_issued",
    )

    assert fail.sources == expected
    assert fail.dest == "failed"


# Malformed specs, one problem each --------------------------------------------------


def _add_transition(trigger: str, source: str, dest: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        data["transitions"].append({"trigger": trigger, "source": source, "dest": dest})

    return mutate


def _set(path: tuple[Any, ...], value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def _drop(path: tuple[Any, ...]) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        node = data
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return mutate


def _add_state(name: str) -> Mutation:
    return _set(("states", name), {"kind": "working", "description": "Nobody."})


MALFORMED: list[tuple[str, Mutation, str, str]] = [
    (
        "unknown dest",
        _add_transition("fail", "api_ready", "nowhere"),
        f"transitions[{NEW}].dest",
        "unknown state 'nowhere'",
    ),
    (
        "unknown source",
        _add_transition("deny", "nowhere", "denied"),
        f"transitions[{NEW}].source",
        "unknown state 'nowhere'",
    ),
    (
        "unknown initial",
        _set(("initial",), "nowhere"),
        "initial",
        "unknown state 'nowhere'",
    ),
    (
        "unknown success",
        _set(("success",), "nowhere"),
        "success",
        "unknown state 'nowhere'",
    ),
    (
        "unreachable state",
        _add_state("limbo"),
        "states.limbo",
        "unreachable from the initial state 'client_registered'",
    ),
    (
        "no initial",
        _drop(("initial",)),
        "initial",
        "missing data for required field",
    ),
    (
        "no transitions",
        _drop(("transitions",)),
        "transitions",
        "missing data for required field",
    ),
    (
        "state without description",
        _drop(("states", "denied", "description")),
        "states.denied.description",
        "missing data for required field",
    ),
    (
        "transition without dest",
        _drop(("transitions", 0, "dest")),
        "transitions[0].dest",
        "missing data for required field",
    ),
    (
        "version as text",
        _set(("version",), "one"),
        "version",
        "not a valid integer",
    ),
    (
        "version as boolean",
        _set(("version",), True),
        "version",
        "not a valid integer",
    ),
    (
        "version zero",
        _set(("version",), 0),
        "version",
        "greater than or equal to 1",
    ),
    (
        "unknown kind",
        _set(("states", "awaiting_login", "kind"), "sleeping"),
        "states.awaiting_login.kind",
        "must be one of: working, waiting, terminal",
    ),
    (
        "transitions not a list",
        _set(("transitions",), {"trigger": "authorize"}),
        "transitions",
        "not a valid list",
    ),
    (
        "empty source list",
        _set(("transitions", 0, "source"), []),
        "transitions[0].source",
        "non-empty list",
    ),
    (
        "state name not snake_case",
        _set(("states", "Bad-Name"), {"kind": "working", "description": "x"}),
        "states.Bad-Name (name)",
        "must be snake_case",
    ),
    (
        "duplicate trigger from one source",
        _add_transition("authorize", "client_registered", "denied"),
        f"transitions[{NEW}].trigger",
        "duplicate trigger 'authorize' from state 'client_registered' "
        "(also in transitions[0])",
    ),
    (
        "unknown guard",
        _set(("transitions", 1, "guards"), ["within_ttl", "phase_of_moon"]),
        "transitions[1].guards",
        "unknown guard 'phase_of_moon'",
    ),
    (
        "trigger used but not declared",
        _drop(("triggers", "deny")),
        "transitions[2].trigger",
        "trigger 'deny' is not declared",
    ),
    (
        "trigger declared but unused",
        _set(("triggers", "teleport"), "Move anywhere."),
        "triggers.teleport",
        "declared but used by no transition",
    ),
    (
        "terminal state with outgoing transition",
        _add_transition("authorize", "denied", "awaiting_login"),
        f"transitions[{NEW}].source",
        "terminal state 'denied' cannot have transitions",
    ),
    (
        "unknown top-level key",
        _set(("colour",), "blue"),
        "colour",
        "unknown field",
    ),
    (
        "unknown key in a state",
        _set(("states", "failed", "colour"), "red"),
        "states.failed.colour",
        "unknown field",
    ),
    (
        "unknown key in a transition",
        _set(("transitions", 0, "colour"), "red"),
        "transitions[0].colour",
        "unknown field",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [pytest.param(m, f, r, id=name) for name, m, f, r in MALFORMED],
)
def test_malformed_spec_names_field_and_reason(
    mutate: Mutation, field: str, reason: str
) -> None:
    data = valid_data()
    mutate(data)

    problems = problems_of(data)

    assert has_problem(problems, field, reason), problems


@pytest.mark.parametrize(
    "mutate", [pytest.param(m, id=name) for name, m, _, _ in MALFORMED]
)
def test_malformed_spec_error_text_names_file_and_every_problem(
    mutate: Mutation,
) -> None:
    data = valid_data()
    mutate(data)

    with pytest.raises(SpecError) as caught:
        spec_from_data(data, file="specs/flows/broken.yaml")

    text = str(caught.value)
    assert caught.value.problems
    for problem in caught.value.problems:
        assert f"specs/flows/broken.yaml: {problem.field}: {problem.reason}" in text


@pytest.mark.parametrize(
    "document", [None, [], ["name"], "authorization_code", 42], ids=repr
)
def test_non_mapping_document_is_a_spec_error(document: Any) -> None:
    assert problems_of(document) == [("<document>", "must be a mapping")]


def test_several_problems_are_all_reported() -> None:
    data = valid_data()
    data["version"] = "one"
    data["colour"] = "blue"
    del data["states"]["failed"]["description"]

    problems = problems_of(data)

    assert has_problem(problems, "version", "not a valid integer")
    assert has_problem(problems, "colour", "unknown field")
    assert has_problem(problems, "states.failed.description", "missing data")


def test_several_graph_problems_are_all_reported() -> None:
    data = valid_data()
    _add_state("limbo")(data)
    _add_transition("authorize", "denied", "awaiting_login")(data)
    data["transitions"][1]["guards"] = ["phase_of_moon"]
    data["triggers"]["teleport"] = "Move anywhere."

    problems = problems_of(data)

    assert has_problem(problems, "states.limbo", "unreachable")
    assert has_problem(
        problems, f"transitions[{NEW}].source", "terminal state 'denied'"
    )
    assert has_problem(problems, "transitions[1].guards", "unknown guard")
    assert has_problem(problems, "triggers.teleport", "declared but used")
    assert len(problems) == 4


def test_known_guards_can_be_given() -> None:
    with pytest.raises(SpecError) as caught:
        spec_from_data(valid_data(), known_guards=["within_ttl"])

    expected = {
        f"transitions[{index}].guards"
        for index, item in enumerate(_PARSED["transitions"])
        if set(item.get("guards", [])) - {"within_ttl"}
    }
    fields = {problem.field for problem in caught.value.problems}
    assert expected
    assert fields == expected


# Files -------------------------------------------------------------------------------


def test_load_spec_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "copy.yaml"
    path.write_text(yaml.safe_dump(valid_data()), encoding="utf-8")

    spec = load_spec(path)

    assert spec.file == str(path)
    assert spec.states == builtin_spec().states
    assert spec.transitions == builtin_spec().transitions


def test_malformed_file_names_the_file(tmp_path: Path) -> None:
    data = valid_data()
    data["version"] = "one"
    path = tmp_path / "bad_version.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")

    with pytest.raises(SpecError) as caught:
        load_spec(path)

    assert caught.value.file == str(path)
    assert f"{path}: version: not a valid integer" in str(caught.value)


def test_invalid_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "not_yaml.yaml"
    path.write_text("name: x\nstates: [unclosed\nversion: 1\n", encoding="utf-8")

    with pytest.raises(SpecError) as caught:
        load_spec(path)

    assert caught.value.file == str(path)
    assert str(path) in str(caught.value)
    assert caught.value.problems[0].field.startswith("line ")


def test_yaml_that_is_not_a_mapping_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n", encoding="utf-8")

    with pytest.raises(SpecError) as caught:
        load_spec(path)

    assert f"{path}: <document>: must be a mapping" in str(caught.value)


def test_empty_file_is_a_spec_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")

    with pytest.raises(SpecError) as caught:
        load_spec(path)

    assert str(path) in str(caught.value)


def test_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(SpecError) as caught:
        load_spec(path)

    assert caught.value.file == str(path)
    assert [problem.field for problem in caught.value.problems] == ["<file>"]
    assert str(path) in str(caught.value)


def test_file_that_is_not_utf8_is_a_spec_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\n")

    with pytest.raises(SpecError) as caught:
        load_spec(path)

    assert caught.value.file == str(path)
    assert f"{path}: <file>: not UTF-8 text" in str(caught.value)


# Property: mutated specs give a spec or a SpecError, nothing else ---------------------

JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)

# Names the spec uses, so that added keys sometimes land where they mean something.
NAMES = st.sampled_from(
    [
        "name",
        "version",
        "initial",
        "states",
        "kind",
        "description",
        "requires_reason",
        "trigger",
        "source",
        "dest",
        "guards",
        "failed",
        "denied",
        "authorize",
        "limbo",
    ]
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``node``."""
    found: list[tuple[Any, ...]] = []
    children: list[tuple[Any, Any]] = []
    if isinstance(node, dict):
        children = list(node.items())
    elif isinstance(node, list):
        children = list(enumerate(node))
    for key, value in children:
        found.append((*prefix, key))
        found.extend(_paths(value, (*prefix, key)))
    return found


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


@st.composite
def mutated_specs(draw: st.DrawFn) -> dict[str, Any]:
    """The bundled spec with one to three random drops, changes and additions."""
    data = valid_data()
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(data)
        kind = draw(st.sampled_from(["drop", "change", "add"]))
        if kind == "drop" and paths:
            path = draw(st.sampled_from(paths))
            del _at(data, path[:-1])[path[-1]]
        elif kind == "change":
            scalars = [p for p in paths if not isinstance(_at(data, p), dict | list)]
            if scalars:
                path = draw(st.sampled_from(scalars))
                _at(data, path[:-1])[path[-1]] = draw(JSON_VALUES)
        else:
            mappings = [()] + [p for p in paths if isinstance(_at(data, p), dict)]
            path = draw(st.sampled_from(mappings))
            key = draw(NAMES | st.text(max_size=8))
            _at(data, path)[key] = draw(JSON_VALUES)
    return data


@settings(max_examples=300, deadline=None)
@given(mutated_specs())
def test_mutated_spec_gives_a_spec_or_a_spec_error(data: dict[str, Any]) -> None:
    outcome: FlowSpec | SpecError
    try:
        outcome = spec_from_data(data, file="mutant.yaml")
    except SpecError as exc:
        outcome = exc

    if isinstance(outcome, SpecError):
        assert outcome.problems
        assert all(problem.field and problem.reason for problem in outcome.problems)
        assert "mutant.yaml" in str(outcome)
    else:
        assert isinstance(outcome, FlowSpec)
