"""The results as a table for people, JSON for machines, and a pyperf file.

The pyperf file holds every raw timing of the run in pyperf's own format, so the
usual tools apply to it: ``python -m pyperf stats FILE``, ``python -m pyperf hist
FILE`` and, for a before/after comparison with significance tests,
``python -m pyperf compare_to before.json after.json``.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from .stats import Result, Row


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor() or "unknown"
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("us", "bytes") and value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"


def table(result: Result) -> str:
    """The results as a plain-text table, then the targets and the skips."""
    header = ("scenario", "implementation", "unit", "median", "p99", "ratio")
    lines = [header] + [
        (
            row.scenario,
            row.implementation,
            row.unit,
            _number(row.median, row.unit),
            _number(row.p99, row.unit),
            "-" if row.ratio is None else f"{row.ratio:.2f}",
        )
        for row in result.rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = []
    for index, line in enumerate(lines):
        cells = [
            cell.ljust(width) if column < 3 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        text.append("  ".join(cells).rstrip())
        if index == 0:
            text.append("  ".join("-" * width for width in widths))
    if result.checks:
        text.append("")
        text.append("targets:")
        for check in result.checks:
            verdict = "met" if check.met else "MISSED"
            text.append(
                f"  {check.name}: {check.value:.2f} (target {check.target}) {verdict}"
            )
    for name, reason in result.skipped.items():
        text.append(f"skipped {name}: {reason}")
    return "\n".join(text)


def markdown(rows: list[Row]) -> str:
    """The rows as a Markdown table, for the README."""
    lines = [
        "| scenario | implementation | median | p99 | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        unit = f" {row.unit}"
        p99 = "-" if row.p99 is None else _number(row.p99, row.unit) + unit
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}"
        lines.append(
            f"| {row.scenario} | {row.implementation} | "
            f"{_number(row.median, row.unit)}{unit} | {p99} | {ratio} |"
        )
    return "\n".join(lines)


def write_json(result: Result, path: Path, options: dict[str, Any]) -> None:
    """The rows, checks, skips and machine as one JSON document."""
    document = {
        "machine": machine(),
        "options": options,
        "rows": [row.as_dict() for row in result.rows],
        "checks": [check.as_dict() for check in result.checks],
        "skipped": result.skipped,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def write_pyperf(result: Result, path: Path) -> None:
    """Every raw timing as a pyperf benchmark suite.

    Raises:
        SystemExit: pyperf is not installed.
    """
    try:
        pyperf: Any = importlib.import_module("pyperf")
    except ImportError:
        sys.exit("--pyperf needs pyperf: pip install -r benchmarks/requirements.txt")
    benchmarks = []
    for name, values in result.samples.items():
        positive = [value for value in values if value > 0]
        if not positive:
            continue
        run = pyperf.Run(positive, metadata={"name": name, "unit": "second"})
        benchmarks.append(pyperf.Benchmark([run]))
    pyperf.BenchmarkSuite(benchmarks).dump(str(path), replace=True)
