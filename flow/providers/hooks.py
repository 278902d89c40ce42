"""Named hooks: provider behaviour that a spec cannot declare.

A spec lists hook names; each hook is a small pure function here, with a test. Data
files never carry code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

#: A hook that adjusts a decoded token response before the RFC checks run.
ResponseHook = Callable[[dict[str, Any]], dict[str, Any]]


def salesforce_issued_at_ms(document: dict[str, Any]) -> dict[str, Any]:
    """Salesforce sends ``issued_at`` in milliseconds as a string; keep it in
    seconds so it reads like every other timestamp flow stores."""
    issued = document.get("issued_at")
    if isinstance(issued, str) and issued.isdigit():
        return {**document, "issued_at": int(issued) // 1000}
    return document


RESPONSE_HOOKS: Mapping[str, ResponseHook] = {
    "salesforce_issued_at_ms": salesforce_issued_at_ms,
}

#: Every hook name a provider spec may list.
HOOKS = frozenset(RESPONSE_HOOKS)
