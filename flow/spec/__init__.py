"""Flow specs: declared states, triggers and transitions, validated on load."""

from .loader import builtin_spec, bundled_spec_files, load_spec, spec_from_data
from .model import FlowSpec, StateKind, StateSpec, TransitionSpec

__all__ = [
    "FlowSpec",
    "StateKind",
    "StateSpec",
    "TransitionSpec",
    "builtin_spec",
    "bundled_spec_files",
    "load_spec",
    "spec_from_data",
]
