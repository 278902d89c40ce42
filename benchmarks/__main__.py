"""``python -m benchmarks``: run every scenario, print the table, write JSON.

Options: ``--quick`` for tiny sizes (seconds, to check that everything runs),
``--json PATH`` for the results as JSON, ``--pyperf PATH`` for the raw timings in
pyperf's format, ``--only NAME`` (repeatable) to run some scenarios.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import structlog

from . import end_to_end, memory, refresh, resume_scale, single_flow
from .report import machine, markdown, table, write_json, write_pyperf
from .stats import Result

Scenario = Callable[[Path, bool], Result]


def _single(workdir: Path, quick: bool) -> Result:
    sizes = (
        single_flow.Sizes(rounds=3, per_round=10, warmup=10)
        if quick
        else single_flow.Sizes()
    )
    return single_flow.run(workdir, sizes)


def _scale(workdir: Path, quick: bool) -> Result:
    sizes = (
        resume_scale.Sizes(counts=(10**2, 10**3), samples=50)
        if quick
        else resume_scale.Sizes()
    )
    return resume_scale.run(workdir, sizes)


def _memory(workdir: Path, quick: bool) -> Result:
    sizes = memory.Sizes(flows=100, warmup=20) if quick else memory.Sizes()
    return memory.run(workdir, sizes)


def _e2e(workdir: Path, quick: bool) -> Result:
    sizes = end_to_end.Sizes(flows=3) if quick else end_to_end.Sizes()
    return end_to_end.run(workdir, sizes)


def _refresh(workdir: Path, quick: bool) -> Result:
    sizes = refresh.Sizes(threads=8, rounds=2) if quick else refresh.Sizes()
    return refresh.run(workdir, sizes)


SCENARIOS: dict[str, Scenario] = {
    "single": _single,
    "scale": _scale,
    "memory": _memory,
    "e2e": _e2e,
    "refresh": _refresh,
}


def configure_logging() -> None:
    """Log as a production application would: flow's info events filtered out.

    Without this, structlog's default prints every event to the terminal, and the
    benchmark would measure the terminal.
    """
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        cache_logger_on_first_use=True,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios chosen on the command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes")
    parser.add_argument("--json", type=Path, help="write the results as JSON")
    parser.add_argument("--pyperf", type=Path, help="write raw timings for pyperf")
    parser.add_argument(
        "--markdown", action="store_true", help="also print a Markdown table"
    )
    parser.add_argument(
        "--only", action="append", choices=sorted(SCENARIOS), help="run only these"
    )
    args = parser.parse_args(argv)
    configure_logging()
    # authlib's warning that it prefers an httpx fork is not news for a benchmark.
    warnings.filterwarnings("ignore", message=".*httpx2.*")

    info = machine()
    print(
        f"{info['cpus']} CPUs, {info['cpu_model']}, "
        f"{info['implementation']} {info['python']}, {info['platform']}"
    )
    result = Result()
    with tempfile.TemporaryDirectory(prefix="flow-bench-") as folder:
        for name in args.only or list(SCENARIOS):
            began = time.perf_counter()
            result.extend(SCENARIOS[name](Path(folder), args.quick))
            print(f"  {name}: {time.perf_counter() - began:.1f} s", flush=True)

    print()
    print(table(result))
    if args.markdown:
        print()
        print(markdown(result.rows))
    if args.json:
        options = {"quick": args.quick, "only": args.only}
        write_json(result, args.json, options)
    if args.pyperf:
        write_pyperf(result, args.pyperf)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
