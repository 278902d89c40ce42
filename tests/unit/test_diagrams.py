"""The diagrams in diagrams/ are generated from the specs and kept up to date."""

from __future__ import annotations

from pathlib import Path

import pytest

from flow.machine import diagram_document, mermaid
from flow.machine.diagram import write_diagrams
from flow.spec import FlowSpec, builtin_spec, bundled_spec_files, load_spec

REPO = Path(__file__).resolve().parents[2]
DIAGRAMS = REPO / "diagrams"
SPEC_FILES = bundled_spec_files()


def test_there_is_at_least_one_bundled_spec() -> None:
    assert "authorization_code" in [path.stem for path in SPEC_FILES]


@pytest.mark.parametrize("spec_file", SPEC_FILES, ids=lambda path: path.stem)
def test_committed_diagram_matches_its_spec(spec_file: Path) -> None:
    spec = load_spec(spec_file)
    committed = DIAGRAMS / f"{spec.name}.md"

    expected = diagram_document(spec)
    actual = committed.read_text(encoding="utf-8") if committed.is_file() else ""

    assert actual == expected, (
        f"{committed.relative_to(REPO)} is out of date with "
        f"{spec_file.name}; run `python -m flow.machine diagrams` and commit it"
    )


def test_every_committed_diagram_has_a_spec() -> None:
    names = {load_spec(path).name for path in SPEC_FILES}

    orphans = [p.name for p in DIAGRAMS.glob("*.md") if p.stem not in names]

    assert orphans == []


@pytest.mark.parametrize("spec_file", SPEC_FILES, ids=lambda path: path.stem)
def test_mermaid_shows_every_state_and_transition(spec_file: Path) -> None:
    spec = load_spec(spec_file)

    text = mermaid(spec)
    lines = text.splitlines()

    assert "stateDiagram-v2" in lines
    assert f"  [*] --> {spec.initial}" in lines
    for name in spec.states:
        assert f'  state "{name}" as {name}' in lines
    for item in spec.transitions:
        guards = "".join(f" [{guard}]" for guard in item.guards)
        for source in item.sources:
            # Edges between the same two states share one line, "a | b".
            edge = f"  {source} --> {item.dest}: "
            labels = [
                label
                for line in lines
                if line.startswith(edge)
                for label in line[len(edge) :].split(" | ")
            ]
            assert f"{item.trigger}{guards}" in labels


@pytest.mark.parametrize("spec_file", SPEC_FILES, ids=lambda path: path.stem)
def test_mermaid_ends_terminal_states_and_notes_non_working_ones(
    spec_file: Path,
) -> None:
    spec = load_spec(spec_file)

    lines = mermaid(spec).splitlines()

    for name, state in spec.states.items():
        assert (f"  {name} --> [*]" in lines) is spec.is_terminal(name)
        note = f"  note right of {name}: {state.kind.value}"
        assert (note in lines) is (state.kind.value != "working")


def test_guard_is_shown_in_brackets() -> None:
    text = mermaid(builtin_spec())

    assert "awaiting_login --> code_received: receive_callback [within_ttl]" in text
    assert "[holds_code]" in text


def test_mermaid_is_stable_and_has_no_current_state() -> None:
    spec = builtin_spec()

    first = mermaid(spec)

    assert first == mermaid(spec)
    assert "classDef" not in first
    assert "title: authorization_code (v1)" in first.splitlines()


def test_document_has_the_diagram_and_both_tables() -> None:
    spec: FlowSpec = builtin_spec()

    document = diagram_document(spec)

    assert document.startswith(f"# {spec.name}\n")
    assert f"```mermaid\n{mermaid(spec)}```" in document
    assert "specs/flows/authorization_code.yaml" in document
    for name, state in spec.states.items():
        assert f"| `{name}` | {state.kind.value} | {state.description} |" in document
    for name, description in spec.triggers.items():
        assert f"| `{name}` | {description} |" in document


def test_write_diagrams_writes_the_committed_files(tmp_path: Path) -> None:
    written = write_diagrams(tmp_path / "out")

    names = [f"{load_spec(path).name}.md" for path in SPEC_FILES]
    assert [path.name for path in written] == names
    for path in written:
        assert path.read_text(encoding="utf-8") == (DIAGRAMS / path.name).read_text(
            encoding="utf-8"
        )
