"""Scenario: what a paused flow costs in process memory, and on disk.

Process memory is what :mod:`tracemalloc` sees Python allocate while flows are
started with an SQLite store and every reference to them is dropped. It is taken
as a slope: after a first batch fills whatever is bounded (the record codec's
recent-records memo, SQLite's statement cache, interned strings), a second batch
of the same size shows what each further paused flow keeps. The target is none:
a paused flow lives in the store. SQLite's own page cache is C memory outside
tracemalloc's view, and bounded by ``PRAGMA cache_size``.
"""

from __future__ import annotations

import gc
import os
import sqlite3
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import flow

from .implementations import FlowContender
from .mockserver import TokenEndpoint
from .stats import Check, Result, Row

SCENARIO = "memory"
IMPLEMENTATION = "flow + SQLiteStore"


@dataclass(frozen=True)
class Sizes:
    """Flows per batch, and untimed flows started first."""

    flows: int = 2000
    warmup: int = 200


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def run(workdir: Path, sizes: Sizes = Sizes()) -> Result:
    """Run the scenario.

    Returns:
        Bytes of process memory per paused flow, bytes per stored record (file
        size over flows, and the encoded body and secrets), and the target.
    """
    path = workdir / "memory.db"
    contender = FlowContender(TokenEndpoint(), flow.SQLiteStore(path), IMPLEMENTATION)
    try:
        for _ in range(sizes.warmup):
            contender.authorize()
        tracemalloc.start()
        try:
            before = _traced()
            for _ in range(sizes.flows):
                contender.authorize()
            middle = _traced()
            for _ in range(sizes.flows):
                contender.authorize()
            after = _traced()
        finally:
            tracemalloc.stop()
    finally:
        contender.close()

    first = (middle - before) / sizes.flows
    steady = (after - middle) / sizes.flows
    total = sizes.warmup + 2 * sizes.flows
    file_bytes, encoded_bytes = _stored(path)
    result = Result(
        rows=[
            Row(
                SCENARIO,
                f"{IMPLEMENTATION}: process memory per paused flow",
                "bytes",
                steady,
                samples=sizes.flows,
                note=f"first batch {first:.0f} B/flow while bounded caches fill",
            ),
            Row(
                SCENARIO,
                f"{IMPLEMENTATION}: file size per stored flow",
                "bytes",
                file_bytes / total,
                samples=total,
                note="table, indexes and free space, after a WAL checkpoint",
            ),
            Row(
                SCENARIO,
                f"{IMPLEMENTATION}: encoded body + secrets per flow",
                "bytes",
                encoded_bytes,
                samples=total,
                note="UTF-8 bytes of the two JSON texts of a paused flow",
            ),
        ]
    )
    result.checks.append(
        Check(
            "process memory per paused flow (bytes)",
            steady,
            "none (< 64)",
            steady < 64,
        )
    )
    return result


def _stored(path: Path) -> tuple[int, float]:
    db = sqlite3.connect(path)
    try:
        # Fold the write-ahead log into the file, so its size is the data's.
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (average,) = db.execute(
            "SELECT avg(length(CAST(body AS BLOB)) + length(CAST(secrets AS BLOB))) "
            "FROM flows"
        ).fetchone()
    finally:
        db.close()
    return os.path.getsize(path), float(average)
