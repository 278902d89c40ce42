"""``python -m benchmarks.profile``: where one flow's time goes, by pyinstrument.

Runs the single-flow scenario's flow contender (``--store memory`` or
``--store sqlite``) under pyinstrument's sampling profiler and prints the call
tree, then the functions with the most time of their own. Sampling, unlike
cProfile, adds the same small cost to every function, so the shares it reports
hold without it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
from pathlib import Path
from typing import Any

import flow

from .__main__ import configure_logging
from .implementations import FlowContender
from .mockserver import TokenEndpoint


def _store(kind: str, folder: Path) -> flow.Store:
    return flow.MemoryStore() if kind == "memory" else flow.SQLiteStore(folder / "p.db")


def _own_time(frame: Any, totals: dict[str, float]) -> None:
    # pyinstrument records a frame's own time in synthetic "[self]" children.
    name = f"{frame.function} ({Path(frame.file_path or '?').name}:{frame.line_no})"
    for child in frame.children:
        if child.is_synthetic:
            totals[name] = totals.get(name, 0.0) + child.time
        else:
            _own_time(child, totals)


def main(argv: list[str] | None = None) -> int:
    """Profile ``--flows`` flows with the chosen store."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    parser.add_argument("--store", choices=("memory", "sqlite"), default="memory")
    parser.add_argument("--flows", type=int, default=3000)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)
    try:
        pyinstrument: Any = importlib.import_module("pyinstrument")
    except ImportError:
        sys.exit("needs pyinstrument: pip install -r benchmarks/requirements.txt")
    configure_logging()

    with tempfile.TemporaryDirectory(prefix="flow-profile-") as folder:
        store = _store(args.store, Path(folder))
        contender = FlowContender(TokenEndpoint(), store, f"flow + {args.store}")
        contender.run(200)  # warm up: imports, caches, connections
        profiler = pyinstrument.Profiler(interval=0.0002)
        profiler.start()
        contender.run(args.flows)
        session = profiler.stop()
        contender.close()

    print(profiler.output_text(unicode=False, color=False))
    totals: dict[str, float] = {}
    root = session.root_frame()
    _own_time(root, totals)
    print(
        f"functions with the most own time ({root.time / args.flows * 1e6:.0f} us "
        "per flow under the profiler):"
    )
    for name, seconds in sorted(totals.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"  {seconds / root.time:6.1%}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
