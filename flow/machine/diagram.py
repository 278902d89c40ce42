"""Mermaid state diagrams drawn from flow specs, for ``diagrams/``."""

from __future__ import annotations

from pathlib import Path

from transitions.extensions import GraphMachine

from ..spec import FlowSpec, StateKind
from .machine import transition_table


def mermaid(spec: FlowSpec) -> str:
    """The spec as a Mermaid ``stateDiagram-v2``, guards shown in brackets.

    Args:
        spec: A validated flow spec.

    Returns:
        The diagram text, stable for a given spec.
    """
    machine = GraphMachine(
        model=None,
        states=list(spec.states),
        # Guards stay names: the diagram shows them, nothing evaluates them.
        transitions=transition_table(spec, str),
        initial=spec.initial,
        auto_transitions=False,
        graph_engine="mermaid",
        title=(spec_title := f"{spec.name} (v{spec.version})"),
        show_conditions=True,
    )
    # GraphMachine draws the graph of a model; a throw-away one in the initial state.
    machine.add_model(_Model(spec.initial))
    text: str = machine.get_graph().draw(None)

    # transitions writes a bare title line inside the front matter and colours the
    # model's state; a spec diagram wants a titled front matter and no "current" state.
    lines = [
        f"title: {spec.name} (v{spec.version})" if line == spec_title else line.rstrip()
        for line in text.splitlines()
        if not line.lstrip().startswith(("classDef ", "Class "))
    ]
    notes = [
        f"  note right of {name}: {state.kind.value}"
        for name, state in spec.states.items()
        if state.kind is not StateKind.WORKING
    ]
    ends = [
        f"  {name} --> [*]"
        for name, state in spec.states.items()
        if state.kind is StateKind.TERMINAL
    ]
    return "\n".join([*lines, *ends, *notes]) + "\n"


class _Model:
    def __init__(self, state: str) -> None:
        self.state = state


def diagram_document(spec: FlowSpec) -> str:
    """A Markdown page holding the spec's diagram and its state table."""
    rows = "\n".join(
        f"| `{name}` | {state.kind.value} | {state.description} |"
        for name, state in spec.states.items()
    )
    triggers = "\n".join(
        f"| `{name}` | {description} |" for name, description in spec.triggers.items()
    )
    return (
        f"# {spec.name}\n\n"
        f"{spec.description}. Generated from `specs/flows/{Path(spec.file).name}` by "
        "`python -m flow.machine`; do not edit by hand.\n\n"
        f"```mermaid\n{mermaid(spec)}```\n\n"
        f"| state | kind | meaning |\n|---|---|---|\n{rows}\n\n"
        f"| trigger | what it does |\n|---|---|\n{triggers}\n"
    )


def diagram_path(spec: FlowSpec, folder: Path) -> Path:
    """Where the diagram of ``spec`` lives in ``folder``."""
    return folder / f"{spec.name}.md"


def write_diagrams(folder: Path) -> list[Path]:
    """Write one diagram page per bundled flow spec into ``folder``.

    Returns:
        The files written.
    """
    from ..spec import bundled_spec_files, load_spec

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for file in bundled_spec_files():
        spec = load_spec(file)
        target = diagram_path(spec, folder)
        target.write_text(diagram_document(spec), encoding="utf-8")
        written.append(target)
    return written
