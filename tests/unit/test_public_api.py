"""The package's public face: a sorted ``__all__`` of names that exist."""

from __future__ import annotations

import flow


def test_all_is_sorted_and_every_name_exists() -> None:
    assert flow.__all__ == sorted(flow.__all__)
    assert [name for name in flow.__all__ if not hasattr(flow, name)] == []


def test_every_public_name_has_a_docstring() -> None:
    undocumented = [
        name
        for name in flow.__all__
        if callable(getattr(flow, name)) and not getattr(flow, name).__doc__
    ]

    assert undocumented == []
