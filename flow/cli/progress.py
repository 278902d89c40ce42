"""A one-line progress bar on stderr, drawn only when stderr is a terminal.

Redrawn in place with a carriage return and wiped when done, so that neither a log
file nor a pipe ever receives it, and the command's answer on stdout stays clean.
"""

from __future__ import annotations

import shutil
import sys
from types import TracebackType
from typing import TextIO


class Bar:
    """A bar of ``done`` out of ``total`` steps, with a note after it.

    Args:
        label: What is running, shown first.
        total: The steps that fill the bar.
        stream: Where to draw; stderr by default. Nothing is drawn unless it is a
            terminal.
        width: Cells of the bar itself.
    """

    def __init__(
        self, label: str, total: int, *, stream: TextIO | None = None, width: int = 24
    ) -> None:
        self.label = label
        self.total = max(total, 1)
        self.stream = stream or sys.stderr
        self.width = width
        self.enabled = self.stream.isatty()
        self._drawn = 0

    def __enter__(self) -> Bar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def update(self, done: int, note: str = "") -> None:
        """Redraw the bar at ``done`` steps."""
        if not self.enabled:
            return
        filled = self.width * min(done, self.total) // self.total
        cells = "#" * filled + "." * (self.width - filled)
        line = f"{self.label} [{cells}] {done}/{self.total} {note}".rstrip()
        # One character short of the terminal's width: a full line would wrap and
        # leave the carriage return on the next row.
        line = line[: shutil.get_terminal_size().columns - 1]
        self.stream.write("\r" + line.ljust(self._drawn))
        self.stream.flush()
        self._drawn = len(line)

    def close(self) -> None:
        """Wipe the bar, leaving the cursor at the start of an empty line."""
        if self.enabled and self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r")
            self.stream.flush()
        self._drawn = 0
