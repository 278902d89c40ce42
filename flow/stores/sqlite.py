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
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from ..errors import FlowNotFound, StoreError, VersionConflict
from ..record import FlowRecord, decode, encode
from .base import Claim, Claimed, DueKey

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
    token_expires_at TEXT,
    body        TEXT NOT NULL,
    secrets     TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS flows_state_hash
    ON flows (state_hash) WHERE state_hash IS NOT NULL;
CREATE INDEX IF NOT EXISTS flows_state ON flows (state, updated_at);
CREATE INDEX IF NOT EXISTS flows_expiring ON flows (state, expires_at, id);
CREATE INDEX IF NOT EXISTS flows_due ON flows (state, token_expires_at, id)
    WHERE token_expires_at IS NOT NULL;
"""

_COLUMNS = (
    "id, version, state, spec, provider, state_hash, expires_at, updated_at, "
    "token_expires_at"
)


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
                    if "flows_due" in statement:
                        self._add_missing_columns()
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

    def _add_missing_columns(self) -> None:
        # Files written before token_expires_at existed (same layout version, flow
        # is unreleased) get the column; the next save of each flow fills it.
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(flows)")}
        if "token_expires_at" not in columns:
            self._db.execute("ALTER TABLE flows ADD COLUMN token_expires_at TEXT")

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
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*self._columns(record), encoded.body, encoded.secrets),
                )
        except sqlite3.IntegrityError:
            raise VersionConflict(
                "a flow with this id or state value exists", flow_id=record.id
            ) from None
        except sqlite3.Error as exc:
            raise StoreError(f"insert failed: {exc}", flow_id=record.id) from exc

    def save(self, record: FlowRecord) -> None:
        try:
            with self._write() as db:
                if self._update(db, record):
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

    def _update(self, db: sqlite3.Connection, record: FlowRecord) -> bool:
        """Compare-and-set within the caller's write; whether it took."""
        encoded = encode(record)
        cursor = db.execute(
            "UPDATE flows SET version = ?, state = ?, spec = ?, provider = ?, "
            "state_hash = ?, expires_at = ?, updated_at = ?, token_expires_at = ?, "
            "body = ?, secrets = ? WHERE id = ? AND version = ?",
            (
                *self._columns(record)[1:],
                encoded.body,
                encoded.secrets,
                record.id,
                record.version - 1,
            ),
        )
        return cursor.rowcount == 1

    @staticmethod
    def _columns(record: FlowRecord) -> tuple[object, ...]:
        token_expiry = record.token.expires_at if record.token else None
        return (
            record.id,
            record.version,
            record.state,
            record.spec,
            record.provider,
            record.state_hash,
            _sortable(record.expires_at),
            _sortable(record.updated_at),
            None if token_expiry is None else _sortable(token_expiry),
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

    def delete(self, flow_id: str, version: int) -> None:
        try:
            with self._write() as db:
                cursor = db.execute(
                    "DELETE FROM flows WHERE id = ? AND version = ?", (flow_id, version)
                )
                if cursor.rowcount == 1:
                    return
                row = db.execute(
                    "SELECT version FROM flows WHERE id = ?", (flow_id,)
                ).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"delete failed: {exc}", flow_id=flow_id) from exc
        if row is None:
            raise FlowNotFound("no stored flow has this id", flow_id=flow_id)
        raise VersionConflict(
            f"stored version is {row[0]}, not {version}", flow_id=flow_id
        )

    def expiring(
        self, *, states: Collection[str], before: datetime, limit: int
    ) -> list[FlowRecord]:
        return self._oldest("expires_at", states, before, limit)

    def finished(
        self, *, states: Collection[str], updated_before: datetime, limit: int
    ) -> list[FlowRecord]:
        return self._oldest("updated_at", states, updated_before, limit)

    def _oldest(
        self,
        column: Literal["expires_at", "updated_at"],
        states: Collection[str],
        before: datetime,
        limit: int,
    ) -> list[FlowRecord]:
        if not states or limit <= 0:
            return []
        # column is one of two names fixed above; every value is a parameter.
        marks = ", ".join("?" * len(states))
        return self._select(
            f"SELECT id, body, secrets FROM flows WHERE state IN ({marks}) "  # noqa: S608
            f"AND {column} <= ? ORDER BY {column}, id LIMIT ?",
            (*states, _sortable(before), limit),
        )

    def due(
        self,
        *,
        state: str,
        before: datetime,
        limit: int,
        after: DueKey | None = None,
    ) -> list[FlowRecord]:
        if limit <= 0:
            return []
        return self._select(*_due_query(state, before, limit, after))

    def claim_due(
        self,
        *,
        state: str,
        before: datetime,
        limit: int,
        claim: Claim,
        after: DueKey | None = None,
    ) -> list[Claimed]:
        # One write transaction over the selection and the saves: a claimer in
        # another process waits for the write lock, then finds these flows moved.
        claimed: list[Claimed] = []
        if limit <= 0:
            return claimed
        try:
            with self._write() as db:
                rows = db.execute(*_due_query(state, before, limit, after)).fetchall()
                for flow_id, body, secrets in rows:
                    found = decode(body, secrets, flow_id=flow_id)
                    moved = claim(found)
                    if moved is not None and not self._update(db, moved):
                        moved = None
                    claimed.append(Claimed(found, moved))
        except sqlite3.Error as exc:
            raise StoreError(f"claim failed: {exc}") from exc
        return claimed

    def _select(self, query: str, params: Sequence[object]) -> list[FlowRecord]:
        try:
            with self._lock:
                rows = self._db.execute(query, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"read failed: {exc}") from exc
        return [decode(body, secrets, flow_id=i) for i, body, secrets in rows]

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


def _due_query(
    state: str, before: datetime, limit: int, after: DueKey | None
) -> tuple[str, tuple[object, ...]]:
    query = (
        "SELECT id, body, secrets FROM flows WHERE state = ? "
        "AND token_expires_at IS NOT NULL AND token_expires_at <= ? "
    )
    params: tuple[object, ...] = (state, _sortable(before))
    if after is not None:
        query += "AND (token_expires_at > ? OR (token_expires_at = ? AND id > ?)) "
        params += (_sortable(after[0]), _sortable(after[0]), after[1])
    return query + "ORDER BY token_expires_at, id LIMIT ?", (*params, limit)
