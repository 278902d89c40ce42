"""The machine layer: specs applied to flow records, and diagrams drawn from specs."""

from .diagram import diagram_document, mermaid
from .guards import GUARDS
from .machine import FlowMachine, default_machine, machine_for

__all__ = [
    "GUARDS",
    "FlowMachine",
    "default_machine",
    "diagram_document",
    "machine_for",
    "mermaid",
]
