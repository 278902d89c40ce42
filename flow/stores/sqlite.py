"""The embedded default store: one SQLite file, safe across threads and processes.

Every connection runs in WAL mode with ``synchronous=NORMAL`` and a busy timeout.
WAL lets readers work while one process writes; ``NORMAL`` survives a crash of the
process (a committed transition is never lost to ``kill -9``) but may lose the last
commits on a power cut or an OS crash; pass ``synchronous="FULL"`` for that.
Writes open with ``BEGIN IMMEDIATE``, so a writer waits for the lock within the busy
timeout instead of failing with ``SQLITE_BUSY`` halfway through. WAL does not work on
network file systems.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from ..errors import FlowNotFound, StoreError, VersionConflict
from ..record import FlowRecord, decode, encode

#: The version of the table layout below, kept in ``flow_meta``.
STORE_SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS flow_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS flows (
    id          TEXT PRIMARY KEY,
    version     INTEGER NOT NULL,
    state       TEXT NOT NULL,
    spec        TEXT NOT NULL,
    provider    TEXT NOT NULL,
    state_hash  TEXT,
    expires_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    body        TEXT NOT NULL,
    secrets     TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS flows_state_hash
    ON flows (state_hash) WHERE state_hash IS NOT NULL;
CREATE INDEX IF NOT EXISTS flows_state ON flows (state, updated_at);
"""

_COLUMNS = "id, version, state, spec, provider, state_hash, expires_at, updated_at"


def _sortable(when: datetime) -> str:
    # list() orders by these text columns: one offset and one width make the text
    # order the time order (12:00+00:00 is later than 13:30+02:00).
    return when.astimezone(UTC).isoformat(timespec="microseconds")


class SQLiteStore:
    """A flow store in one SQLite file.

    One connection per store object, shared by its threads behind a lock; open one
    store per process. Several processes may use the same file at once.

    Args:
        path: The database file; created with its folder when missing. ``":memory:"``
            gives a private in-memory database.
        busy_timeout: How long a writer waits for another process's lock, in
            seconds.
        synchronous: ``"NORMAL"`` (survives process crashes) or ``"FULL"`` (also
            survives power loss, at the cost of an fsync per commit).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 10.0,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    ) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=busy_timeout,
            )
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute(f"PRAGMA synchronous = {synchronous}")
            with self._write():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(
                    "INSERT OR IGNORE INTO flow_meta (key, value) "
                    "VALUES ('schema_version', ?)",
                    (str(STORE_SCHEMA_VERSION),),
                )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store: {exc}") from exc
        self._check_version()

    def __repr__(self) -> str:
        return f"SQLiteStore(path={self.path!r})"

    def _check_version(self) -> None:
        row = self._db.execute(
            "SELECT value FROM flow_meta WHERE key = 'schema_version'"
        ).fetchone()
        if row is None or int(row[0]) > STORE_SCHEMA_VERSION:
            self._db.close()
            raise StoreError(
                f"store schema version {row and row[0]} is newer than this flow "
                f"({STORE_SCHEMA_VERSION}); upgrade flow"
            )

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock before the first read, so a writer waits
        # (busy_timeout) instead of failing halfway (SQLITE_BUSY on upgrade).
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def pragma(self, name: str) -> str:
        """The current value of a PRAGMA, for checks and diagnostics."""
        with self._lock:
            row = self._db.execute(f"PRAGMA {name}").fetchone()
        return str(row[0])

    def insert(self, record: FlowRecord) -> None:
        encoded = encode(record)
        try:
            with self._write() as db:
                db.execute(
                    f"INSERT INTO flows ({_COLUMNS}, body, secrets) "  # noqa: S608
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*self._columns(record), encoded.body, encoded.secrets),
                )
        except sqlite3.IntegrityError:
            raise VersionConflict(
                "a flow with this id or state value exists", flow_id=record.id
            ) from None
        except sqlite3.Error as exc:
            raise StoreError(f"insert failed: {exc}", flow_id=record.id) from exc

    def save(self, record: FlowRecord) -> None:
        encoded = encode(record)
        try:
            with self._write() as db:
                cursor = db.execute(
                    "UPDATE flows SET version = ?, state = ?, spec = ?, provider = ?, "
                    "state_hash = ?, expires_at = ?, updated_at = ?, body = ?, "
                    "secrets = ? WHERE id = ? AND version = ?",
                    (
                        *self._columns(record)[1:],
                        encoded.body,
                        encoded.secrets,
                        record.id,
                        record.version - 1,
                    ),
                )
                if cursor.rowcount == 1:
                    return
                row = db.execute(
                    "SELECT version FROM flows WHERE id = ?", (record.id,)
                ).fetchone()
        except sqlite3.IntegrityError:
            raise VersionConflict(
                "another flow uses this state value", flow_id=record.id
            ) from None
        except sqlite3.Error as exc:
            raise StoreError(f"save failed: {exc}", flow_id=record.id) from exc
        if row is None:
            raise FlowNotFound("no stored flow has this id", flow_id=record.id)
        raise VersionConflict(
            f"stored version is {row[0]}, not {record.version - 1}", flow_id=record.id
        )

    @staticmethod
    def _columns(record: FlowRecord) -> tuple[object, ...]:
        return (
            record.id,
            record.version,
            record.state,
            record.spec,
            record.provider,
            record.state_hash,
            _sortable(record.expires_at),
            _sortable(record.updated_at),
        )

    def _one(self, where: str, value: str, missing: str) -> FlowRecord:
        try:
            with self._lock:
                row = self._db.execute(
                    f"SELECT id, body, secrets FROM flows WHERE {where} = ?",  # noqa: S608
                    (value,),
                ).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"read failed: {exc}") from exc
        if row is None:
            raise FlowNotFound(missing, flow_id=value if where == "id" else None)
        return decode(row[1], row[2], flow_id=row[0])

    def load(self, flow_id: str) -> FlowRecord:
        return self._one("id", flow_id, "no stored flow has this id")

    def find_by_state(self, state_hash: str) -> FlowRecord:
        return self._one("state_hash", state_hash, "no flow waits for this state")

    def list(
        self, *, state: str | None = None, provider: str | None = None, limit: int = 100
    ) -> list[FlowRecord]:
        clauses, params = [], []
        for column, value in (("state", state), ("provider", provider)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        try:
            with self._lock:
                rows = self._db.execute(
                    f"SELECT id, body, secrets FROM flows {where} "  # noqa: S608
                    "ORDER BY updated_at DESC LIMIT ?",
                    (*params, limit),
                ).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"read failed: {exc}") from exc
        return [decode(body, secrets, flow_id=i) for i, body, secrets in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
