"""``flow gc`` and ``flow refresh-due``: store upkeep, for cron jobs and workers.

Both print a one-line summary at the end (or the summary as JSON with ``--json``)
and draw a progress bar on stderr while they run, when stderr is a terminal.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta

from ..drivers import GcSummary, RefreshSummary
from ..drivers.maintenance import (
    GC_BATCH,
    REFRESH_BATCH,
    batch_size_for,
    planned_batches,
)
from . import output
from .app import Handler, driver_for
from .progress import Bar

#: How ``build_parser`` adds a subcommand: name, handler, one-line help.
Command = Callable[[str, Handler, str], argparse.ArgumentParser]


def add_commands(command: Command) -> None:
    """Declare ``gc`` and ``refresh-due`` with their flags."""
    gc = command("gc", cmd_gc, "expire abandoned flows, delete old finished ones")
    gc.add_argument(
        "--retention",
        type=_not_negative,
        default=7 * 24 * 3600.0,
        metavar="SECONDS",
        help="keep finished flows this long; 0 deletes them now (default 7 days)",
    )
    gc.add_argument(
        "--limit",
        type=_positive,
        default=10_000,
        metavar="N",
        help="expire, and delete, at most N flows each (default 10000)",
    )

    due = command("refresh-due", cmd_refresh_due, "refresh credentials expiring soon")
    due.add_argument(
        "--window",
        type=_not_negative,
        default=300.0,
        metavar="SECONDS",
        help="refresh tokens expiring within this time (default 300)",
    )
    due.add_argument(
        "--limit",
        type=_positive,
        default=10_000,
        metavar="N",
        help="look at most N credentials (default 10000)",
    )
    due.add_argument(
        "--concurrency",
        type=_positive,
        default=8,
        metavar="N",
        help="refreshes in flight at once (default 8)",
    )


def cmd_gc(args: argparse.Namespace, out: output.Output) -> int:
    batch_size = batch_size_for(args.limit, GC_BATCH)
    # Two steps (expire, then delete), each with its own batches.
    total = 2 * planned_batches(args.limit, batch_size)
    with driver_for(args) as driver, Bar("flow gc", total) as bar:
        summary = driver.gc(
            retention=timedelta(seconds=args.retention),
            limit=args.limit,
            batch_size=batch_size,
            progress=lambda done: bar.update(done.batches, _gc_counts(done)),
        )
    out.emit(asdict(summary), f"{_gc_counts(summary)} ({_batches(summary.batches)})")
    return 0


def cmd_refresh_due(args: argparse.Namespace, out: output.Output) -> int:
    batch_size = batch_size_for(args.limit, REFRESH_BATCH)
    total = planned_batches(args.limit, batch_size)
    with driver_for(args) as driver, Bar("flow refresh-due", total) as bar:
        summary = driver.refresh_due(
            window=timedelta(seconds=args.window),
            limit=args.limit,
            batch_size=batch_size,
            concurrency=args.concurrency,
            progress=lambda done: bar.update(done.batches, _refresh_counts(done)),
        )
    outcomes = [
        [flow_id, "reauth_required", cause]
        for flow_id, cause in summary.reauth_required.items()
    ] + [[flow_id, "failed", reason] for flow_id, reason in summary.failed.items()]
    lines = (
        [output.table(outcomes, ["flow id", "outcome", "reason"])] if outcomes else []
    )
    lines.append(f"{_refresh_counts(summary)} ({_batches(summary.batches)})")
    out.emit(asdict(summary), "\n".join(lines))
    # Failures keep their credential and want attention; a required login is an
    # answer from the provider, not a failure of this run.
    return 1 if summary.failed else 0


def _gc_counts(summary: GcSummary) -> str:
    return (
        f"expired {summary.expired}, deleted {summary.deleted}, "
        f"skipped {summary.skipped}"
    )


def _refresh_counts(summary: RefreshSummary) -> str:
    return (
        f"refreshed {summary.refreshed}, "
        f"reauth required {len(summary.reauth_required)}, "
        f"failed {len(summary.failed)}, skipped {summary.skipped}"
    )


def _batches(count: int) -> str:
    return f"{count} batch" if count == 1 else f"{count} batches"


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def _not_negative(text: str) -> float:
    """An argparse type: a number of seconds, zero or more."""
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value
