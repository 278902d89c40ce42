"""Measurements and their summary: rows of a results table, and the timing loop.

Implementations of one scenario are timed in interleaved rounds (each round runs a
batch of every implementation, in rotating order), so that drift in the machine's
speed during a run (another process, frequency scaling, a growing database) falls
on all of them alike instead of on whichever ran last.
"""

from __future__ import annotations

import gc
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

#: Runs ``n`` iterations and returns the duration of each, in nanoseconds.
Batch = Callable[[int], list[int]]


@dataclass(frozen=True)
class Row:
    """One line of the results table.

    Attributes:
        scenario: What was measured (``single flow``, ``resume n=10^4``, ...).
        implementation: Who did it (``flow + SQLite``, ``authlib``, ...).
        unit: ``us``, ``bytes``, ``flows/s``, ``requests``.
        median: The median (or the single value, for counts).
        p99: The 99th percentile, where there is a distribution.
        samples: How many values the figures summarise.
        ratio: ``median`` divided by the reference row's median in this scenario.
        note: One line of context.
    """

    scenario: str
    implementation: str
    unit: str
    median: float
    p99: float | None = None
    samples: int = 1
    ratio: float | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The row as plain JSON data."""
        return {
            "scenario": self.scenario,
            "implementation": self.implementation,
            "unit": self.unit,
            "median": self.median,
            "p99": self.p99,
            "samples": self.samples,
            "ratio": self.ratio,
            "note": self.note,
        }


@dataclass(frozen=True)
class Check:
    """A target of the issue and whether this run met it."""

    name: str
    value: float
    target: str
    met: bool

    def as_dict(self) -> dict[str, Any]:
        """The check as plain JSON data."""
        return {
            "name": self.name,
            "value": self.value,
            "target": self.target,
            "met": self.met,
        }


@dataclass
class Result:
    """What one scenario produced: table rows, target checks and raw samples.

    ``samples`` holds raw timings in seconds by ``scenario/implementation``, for
    the optional pyperf file.
    """

    rows: list[Row] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    samples: dict[str, list[float]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def extend(self, other: Result) -> None:
        """Append another scenario's results."""
        self.rows.extend(other.rows)
        self.checks.extend(other.checks)
        self.samples.update(other.samples)
        self.skipped.update(other.skipped)

    def row(self, scenario: str, implementation: str) -> Row:
        """The row with this scenario and implementation.

        Raises:
            KeyError: No such row.
        """
        for row in self.rows:
            if (row.scenario, row.implementation) == (scenario, implementation):
                return row
        raise KeyError(f"{scenario} / {implementation}")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by the nearest-rank method."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def timing_row(
    scenario: str,
    implementation: str,
    durations_ns: Sequence[int],
    *,
    note: str = "",
) -> Row:
    """A row in microseconds from per-iteration durations in nanoseconds."""
    micros = [d / 1000 for d in durations_ns]
    return Row(
        scenario=scenario,
        implementation=implementation,
        unit="us",
        median=statistics.median(micros),
        p99=percentile(micros, 99),
        samples=len(micros),
        note=note,
    )


def with_ratios(rows: Sequence[Row], reference: str) -> list[Row]:
    """The rows with ``ratio`` set against the row of implementation ``reference``."""
    base = next((r.median for r in rows if r.implementation == reference), None)
    if not base:
        return list(rows)
    return [replace(row, ratio=row.median / base) for row in rows]


def interleave(
    batches: Mapping[str, Batch], *, rounds: int, per_round: int, warmup: int
) -> dict[str, list[int]]:
    """Time every implementation in interleaved rounds.

    Args:
        batches: A batch runner per implementation name.
        rounds: How many rounds.
        per_round: Iterations of each implementation per round.
        warmup: Untimed iterations of each implementation first (imports, caches,
            connection pools).

    Returns:
        Per-iteration durations in nanoseconds, by implementation.
    """
    names = list(batches)
    for name in names:
        batches[name](warmup)
    timings: dict[str, list[int]] = {name: [] for name in names}
    for index in range(rounds):
        # Rotate the order so no implementation always runs right after another.
        shift = index % len(names)
        # A collection between rounds, not inside them: garbage left by one
        # implementation should not be collected on another's clock.
        gc.collect()
        for name in names[shift:] + names[:shift]:
            timings[name].extend(batches[name](per_round))
    return timings
