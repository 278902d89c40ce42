"""Scenario: resume one flow among 10^3 ... 10^6 paused ones.

The timed step is exactly the start of the driver's resume: the engine's
``resume`` program finds the flow by the digest of the callback's ``state``,
applies ``receive_callback`` and commits it; the program is then closed (the token
request that would follow costs the same at any size).

Paused flows are bulk-loaded, not started one by one: a template record made by
the real engine is encoded once by :func:`flow.record.encode`, and each copy only
changes its id and state digest. Loading through a second connection in one
transaction, without indexes (the store recreates them when it opens), takes
seconds where a million ``start`` calls would take an hour. A few loaded records
are read back through the store, so a drift in the table layout fails loudly.

Another store joins the scenario by adding a :class:`Backend` to :data:`BACKENDS`:
PostgreSQL and Redis would bulk-load with ``COPY`` and pipelined ``HSET``.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import urlencode

import flow
from flow.drivers.effects import FindByState, Save
from flow.record import FlowRecord, encode

from .mockserver import CLIENT_ID, CLIENT_SECRET, CODE, ISSUER, REDIRECT_URI, SCOPES
from .stats import Check, Result, timing_row

SCENARIO = "resume at scale"
#: Far enough ahead that no loaded flow expires while the benchmark runs.
TTL = timedelta(days=7)
_TEMPLATE_ID = "00000000-template-flow-id-0000000000"
_ROW_SQL = (
    "INSERT INTO flows (id, version, state, spec, provider, state_hash, "
    "expires_at, updated_at, body, secrets) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def power(count: int) -> str:
    """``10^4`` for 10000; other counts as they are."""
    exponent = len(str(count)) - 1
    return f"10^{exponent}" if count == 10**exponent else str(count)


def state_value(index: int) -> str:
    """The ``state`` sent to the browser by loaded flow ``index``."""
    return f"bench-state-{index:09d}"


def digest(state: str) -> str:
    """SHA-256 hex of a state value, as the record keeps it."""
    return hashlib.sha256(state.encode()).hexdigest()


def template(engine: flow.Engine) -> FlowRecord:
    """A paused flow made by the real engine, as ``start`` would commit it."""
    store = flow.MemoryStore()
    driver = flow.Driver(store, engine=engine)
    server = flow.explicit_metadata(
        issuer=ISSUER,
        authorization_endpoint=f"{ISSUER}/authorize",
        token_endpoint=f"{ISSUER}/token",
        iss_parameter_supported=True,
    )
    client = flow.Client(CLIENT_ID, REDIRECT_URI)
    started = driver.start(client, server, client_secret=CLIENT_SECRET, scopes=SCOPES)
    driver.close()
    return replace(store.load(started.flow_id), id=_TEMPLATE_ID)


def rows(record: FlowRecord, count: int) -> Iterator[tuple[object, ...]]:
    """``count`` copies of ``record`` as rows of the SQLite store's table."""
    encoded = encode(record)
    assert record.state_hash is not None
    when = record.updated_at.astimezone(UTC).isoformat(timespec="microseconds")
    expires = record.expires_at.astimezone(UTC).isoformat(timespec="microseconds")
    for index in range(count):
        flow_id = f"{index:08d}-bench-flow-0000-000000000000"
        state_hash = digest(state_value(index))
        body = encoded.body.replace(_TEMPLATE_ID, flow_id).replace(
            record.state_hash, state_hash
        )
        yield (
            flow_id,
            record.version,
            record.state,
            record.spec,
            record.provider,
            state_hash,
            expires,
            when,
            body,
            encoded.secrets,
        )


class Backend(Protocol):
    """A store under test, and how to fill it fast."""

    name: str

    def load(self, workdir: Path, record: FlowRecord, count: int) -> flow.Store:
        """A store holding ``count`` copies of ``record`` (see :func:`rows`)."""
        ...

    def drop(self) -> None:
        """Delete what :meth:`load` made."""
        ...


class SQLiteBackend:
    """The embedded store, one file per size."""

    name = "flow + SQLiteStore"

    def __init__(self) -> None:
        self._path: Path | None = None

    def load(self, workdir: Path, record: FlowRecord, count: int) -> flow.Store:
        path = workdir / f"scale-{count}.db"
        flow.SQLiteStore(path).close()  # creates the table and its indexes
        db = sqlite3.connect(path, isolation_level=None)
        try:
            # The store recreates these when it opens; building them once after
            # the load is much faster than updating them row by row.
            db.execute("DROP INDEX flows_state_hash")
            db.execute("DROP INDEX flows_state")
            db.execute("PRAGMA synchronous = OFF")
            db.execute("BEGIN")
            db.executemany(_ROW_SQL, rows(record, count))
            db.execute("COMMIT")
        finally:
            db.close()
        self._path = path
        return flow.SQLiteStore(path)

    def drop(self) -> None:
        if self._path is not None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self._path}{suffix}").unlink(missing_ok=True)


#: Every store the scenario runs against.
BACKENDS: list[type[Backend]] = [SQLiteBackend]


@dataclass(frozen=True)
class Sizes:
    """Stored flow counts, how many flows to resume at each, in how many rounds."""

    counts: Sequence[int] = (10**3, 10**4, 10**5, 10**6)
    samples: int = 1000
    rounds: int = 10


def first_step(engine: flow.Engine, store: flow.Store, callback: str) -> None:
    """The resume path up to its first commit: find by state, fire, save."""
    program = engine.resume(callback)
    effect = next(program)
    assert isinstance(effect, FindByState), effect
    effect = program.send(store.find_by_state(effect.state_hash))
    assert isinstance(effect, Save), effect
    assert effect.record.state == "code_received", effect.record.state
    store.save(effect.record)
    program.close()


def callbacks(count: int, samples: int, seed: int) -> list[str]:
    """Callbacks for ``samples`` distinct random flows among ``count``."""
    chosen = random.Random(seed).sample(range(count), min(samples, count))  # noqa: S311
    return [
        f"{REDIRECT_URI}?"
        + urlencode({"code": CODE, "state": state_value(i), "iss": ISSUER})
        for i in chosen
    ]


def measure(engine: flow.Engine, store: flow.Store, batch: list[str]) -> list[int]:
    """Resume the flow of each callback in ``batch``; durations in ns."""
    clock = time.perf_counter_ns
    durations = []
    for callback in batch:
        began = clock()
        first_step(engine, store, callback)
        durations.append(clock() - began)
    return durations


@dataclass
class _Loaded:
    count: int
    backend: Backend
    store: flow.Store
    seconds: float
    pending: list[str]
    durations: list[int]


def run(workdir: Path, sizes: Sizes = Sizes()) -> Result:
    """Run the scenario for every backend and size.

    Every size is loaded first; the resumes then run in interleaved rounds (a
    batch per size per round), so drift in the machine's speed lands on all
    sizes alike.

    Returns:
        One row per backend and size (ratio against the smallest size), and the
        target: the largest size's median within 1.2 times the smallest's.
    """
    engine = flow.Engine(ttl=TTL)
    record = template(engine)
    result = Result()
    for kind in BACKENDS:
        loaded: list[_Loaded] = []
        try:
            for count in sizes.counts:
                backend = kind()
                began = time.perf_counter()
                store = backend.load(workdir, record, count)
                seconds = time.perf_counter() - began
                loaded.append(_Loaded(count, backend, store, seconds, [], []))
                _spot_check(store, count)
                loaded[-1].pending = callbacks(count, sizes.samples, seed=count)
            _interleave(engine, loaded, rounds=sizes.rounds)
        finally:
            for item in loaded:
                item.store.close()
                item.backend.drop()
        _summarise(result, loaded, sizes)
    return result


def _interleave(engine: flow.Engine, loaded: list[_Loaded], rounds: int) -> None:
    for index in range(rounds):
        for item in loaded[index % len(loaded) :] + loaded[: index % len(loaded)]:
            size = -(-len(item.pending) // (rounds - index))  # ceiling division
            batch, item.pending = item.pending[:size], item.pending[size:]
            item.durations.extend(measure(engine, item.store, batch))


def _summarise(result: Result, loaded: list[_Loaded], sizes: Sizes) -> None:
    name = loaded[0].backend.name
    found = [
        timing_row(
            f"{SCENARIO} n={power(item.count)}",
            name,
            item.durations,
            note=f"loaded in {item.seconds:.1f} s",
        )
        for item in loaded
    ]
    for row, item in zip(found, loaded, strict=True):
        result.samples[f"{row.scenario}/{name}"] = [d / 1e9 for d in item.durations]
    base = found[0].median
    result.rows.extend(replace(row, ratio=row.median / base) for row in found)
    ratio = found[-1].median / base
    result.checks.append(
        Check(
            f"{name}: resume n={power(sizes.counts[-1])} / n={power(sizes.counts[0])}",
            ratio,
            "<= 1.2",
            ratio <= 1.2,
        )
    )


def _spot_check(store: flow.Store, count: int) -> None:
    for index in {0, count // 2, count - 1}:
        found = store.find_by_state(digest(state_value(index)))
        assert found.state == "awaiting_login", found.state
    assert found.expires_at > datetime.now(UTC)
