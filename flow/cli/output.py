"""What the ``flow`` command prints: short aligned text for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO

from ..record import FlowRecord


class Output:
    """Writes a command's answer to stdout, as text or as one JSON document.

    Args:
        as_json: Print JSON instead of text.
        stream: Where answers go; stdout by default.
    """

    def __init__(self, *, as_json: bool, stream: TextIO | None = None) -> None:
        self.as_json = as_json
        self.stream = stream or sys.stdout

    def emit(self, data: Mapping[str, Any], text: str | None = None) -> None:
        """Print ``data`` as JSON, or ``text`` (default: aligned fields)."""
        if self.as_json:
            print(
                json.dumps(data, default=_jsonable, sort_keys=False), file=self.stream
            )
        else:
            print(text if text is not None else fields(data), file=self.stream)

    def emit_raw(self, text: str) -> None:
        """Print text as is, for answers that are data themselves."""
        print(text, file=self.stream)


def fields(data: Mapping[str, Any]) -> str:
    """``key  value`` lines with the values aligned."""
    width = max((len(key) for key in data), default=0)
    return "\n".join(
        f"{key.replace('_', ' '):<{width}}  {_plain(value)}"
        for key, value in data.items()
    )


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """Rows as columns aligned under a header."""
    all_rows = [list(header), *[list(row) for row in rows]]
    widths = [max(len(row[i]) for row in all_rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in all_rows
    )


def summary(record: FlowRecord) -> dict[str, Any]:
    """The non-secret facts of a flow, for ``show`` and ``list``."""
    token = record.token
    return {
        "flow_id": record.id,
        "state": record.state,
        "provider": record.provider,
        "spec": record.spec,
        "reason": record.reason,
        "client_id": record.client.client_id,
        "scopes": list(record.scopes),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "token_expires_at": token.expires_at if token else None,
    }


def history(record: FlowRecord) -> list[dict[str, Any]]:
    """The flow's transitions, oldest first, as JSON-ready objects."""
    return [
        {
            "trigger": step.trigger,
            "source": step.source,
            "dest": step.dest,
            "at": step.at,
            "detail": dict(step.detail),
        }
        for step in record.history
    ]


def timeline(record: FlowRecord) -> str:
    """The history as aligned lines: time, trigger, source -> dest, detail."""
    rows = []
    for step in record.history:
        detail = " ".join(f"{k}={v}" for k, v in step.detail.items())
        rows.append(
            [
                step.at.strftime("%Y-%m-%d %H:%M:%S"),
                step.trigger,
                f"{step.source} -> {step.dest}",
                detail,
            ]
        )
    return table(rows, ["at", "trigger", "transition", "detail"])


def _plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S %Z")
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value) or "-"
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
