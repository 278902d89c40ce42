"""The PostgreSQL stores' statements: the tables, and each operation as a program.

A program is a generator that yields the statements of one operation (:class:`Step`)
and receives their results, with no I/O of its own, like the engine's programs of
effects. :func:`run` and :func:`run_async` execute one on a connection, so that the
sync and the asyncio store share every statement and every decision.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Collection, Generator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar, cast

import psycopg
from psycopg import sql

from ..errors import FlowNotFound, StoreError, VersionConflict
from ..record import FlowRecord, decode, encode
from .base import Claim, Claimed, DueKey

T = TypeVar("T")

#: The version of the table layout below, kept in ``flow_meta``.
STORE_SCHEMA_VERSION = 1

_TABLES = (
    """CREATE TABLE IF NOT EXISTS {schema}.flows (
        id          text PRIMARY KEY,
        version     bigint NOT NULL,
        state       text NOT NULL,
        spec        text NOT NULL,
        provider    text NOT NULL,
        state_hash  text,
        expires_at  timestamptz NOT NULL,
        updated_at  timestamptz NOT NULL,
        token_expires_at timestamptz,
        body        text NOT NULL,
        secrets     text NOT NULL
    )""",
    """CREATE UNIQUE INDEX IF NOT EXISTS flows_state_hash
        ON {schema}.flows (state_hash) WHERE state_hash IS NOT NULL""",
    "CREATE INDEX IF NOT EXISTS flows_state ON {schema}.flows (state, updated_at)",
    "CREATE INDEX IF NOT EXISTS flows_updated ON {schema}.flows (updated_at)",
    "CREATE INDEX IF NOT EXISTS flows_expiring ON {schema}.flows (state, expires_at)",
    # Ids compare bytewise (COLLATE "C") wherever they order a page, so that every
    # store pages in the same order whatever the database's collation.
    """CREATE INDEX IF NOT EXISTS flows_due
        ON {schema}.flows (state, token_expires_at, id COLLATE "C")
        WHERE token_expires_at IS NOT NULL""",
)

_UPDATE = (
    "UPDATE {schema}.flows SET version = %s, state = %s, spec = %s, "
    "provider = %s, state_hash = %s, expires_at = %s, updated_at = %s, "
    "token_expires_at = %s, body = %s, secrets = %s WHERE id = %s AND version = %s"
)


def _lock_key(schema: str) -> int:
    # Advisory locks take one bigint; derive it from the schema so that stores of
    # different schemas do not wait for each other.
    digest = hashlib.sha256(f"flow.stores.postgres:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True, slots=True)
class Step:
    """One statement; ``text`` names the store's schema as ``{schema}``."""

    text: str
    params: Sequence[object] = ()
    want: Literal["rowcount", "one", "all"] = "one"


Program = Generator[Step, Any, T]


@functools.lru_cache(maxsize=64)
def _compose(text: str, schema: str) -> sql.Composed:
    # The schema is an identifier, quoted by psycopg; everything else is a
    # parameter.
    return sql.SQL(text).format(schema=sql.Identifier(schema))


def start_up(schema: str) -> Program[None]:
    """Create what is missing, in one transaction, and refuse a newer layout."""
    yield Step("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema),))
    if (yield Step("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))) is None:
        # Only when missing: CREATE SCHEMA IF NOT EXISTS demands the database's
        # CREATE privilege even when the schema is there.
        yield Step("CREATE SCHEMA IF NOT EXISTS {schema}", want="rowcount")
    yield Step(
        "CREATE TABLE IF NOT EXISTS {schema}.flow_meta "
        "(key text PRIMARY KEY, value text NOT NULL)",
        want="rowcount",
    )
    yield Step(
        "INSERT INTO {schema}.flow_meta (key, value) "
        "VALUES ('schema_version', %s) ON CONFLICT (key) DO NOTHING",
        (str(STORE_SCHEMA_VERSION),),
        want="rowcount",
    )
    row = yield Step(
        "SELECT value FROM {schema}.flow_meta WHERE key = 'schema_version'"
    )
    stored = str(row[0]) if row else "missing"
    if not stored.isdigit() or int(stored) > STORE_SCHEMA_VERSION:
        raise StoreError(
            f"store schema version {stored} is not one this flow can read (it "
            f"reads {STORE_SCHEMA_VERSION} and older); upgrade flow"
        )
    for statement in _TABLES:
        yield Step(statement, want="rowcount")


def _columns(record: FlowRecord) -> tuple[object, ...]:
    encoded = encode(record)
    return (
        record.version,
        record.state,
        record.spec,
        record.provider,
        record.state_hash,
        record.expires_at,
        record.updated_at,
        record.token.expires_at if record.token else None,
        encoded.body,
        encoded.secrets,
    )


def _update(record: FlowRecord) -> Step:
    return Step(
        _UPDATE, (*_columns(record), record.id, record.version - 1), want="rowcount"
    )


def insert(record: FlowRecord) -> Program[None]:
    """Store a new flow, or raise VersionConflict when its id or digest is taken."""
    # No conflict target: a clash on the id and one on the state digest's unique
    # index both insert nothing.
    inserted = yield Step(
        "INSERT INTO {schema}.flows (id, version, state, spec, provider, "
        "state_hash, expires_at, updated_at, token_expires_at, body, secrets) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT DO NOTHING",
        (record.id, *_columns(record)),
        want="rowcount",
    )
    if inserted != 1:
        raise VersionConflict(
            "a flow with this id or state value exists", flow_id=record.id
        )


def save(record: FlowRecord) -> Program[None]:
    """Compare-and-set: write ``record`` over version ``record.version - 1`` only."""
    updated = yield _update(record)
    if updated == 1:
        return

    # Nothing updated: say whether the flow is missing or has moved on.
    stored = yield Step(
        "SELECT version FROM {schema}.flows WHERE id = %s", (record.id,)
    )
    if stored is None:
        raise FlowNotFound("no stored flow has this id", flow_id=record.id)
    raise VersionConflict(
        f"stored version is {stored[0]}, not {record.version - 1}", flow_id=record.id
    )


def load(flow_id: str) -> Program[FlowRecord]:
    """The flow with this id."""
    row = yield Step(
        "SELECT id, body, secrets FROM {schema}.flows WHERE id = %s", (flow_id,)
    )
    if row is None:
        raise FlowNotFound("no stored flow has this id", flow_id=flow_id)
    return decode(row[1], row[2], flow_id=row[0])


def find_by_state(state_hash: str) -> Program[FlowRecord]:
    """The flow waiting for the callback whose state has this digest."""
    row = yield Step(
        "SELECT id, body, secrets FROM {schema}.flows WHERE state_hash = %s",
        (state_hash,),
    )
    if row is None:
        raise FlowNotFound("no flow waits for this state")
    return decode(row[1], row[2], flow_id=row[0])


def list_flows(
    state: str | None, provider: str | None, limit: int
) -> Program[list[FlowRecord]]:
    """Flows, most recently updated first, optionally filtered."""
    filters = {"state": state, "provider": provider}
    columns = [column for column, value in filters.items() if value is not None]
    where = " AND ".join(column + " = %s" for column in columns)
    # Column names from the fixed set above; every value is a parameter. The id
    # breaks ties in the order Redis gives equal scores.
    text = "SELECT id, body, secrets FROM {schema}.flows "
    text += f"WHERE {where} " if where else ""
    text += "ORDER BY updated_at DESC, id DESC LIMIT %s"
    rows = yield Step(
        text, (*(filters[column] for column in columns), limit), want="all"
    )
    return [decode(body, secrets, flow_id=i) for i, body, secrets in rows]


def delete(flow_id: str, version: int) -> Program[None]:
    """Compare-and-set: delete the flow only while it is at ``version``."""
    deleted = yield Step(
        "DELETE FROM {schema}.flows WHERE id = %s AND version = %s",
        (flow_id, version),
        want="rowcount",
    )
    if deleted == 1:
        return
    stored = yield Step("SELECT version FROM {schema}.flows WHERE id = %s", (flow_id,))
    if stored is None:
        raise FlowNotFound("no stored flow has this id", flow_id=flow_id)
    raise VersionConflict(
        f"stored version is {stored[0]}, not {version}", flow_id=flow_id
    )


def expiring(
    states: Collection[str], before: datetime, limit: int
) -> Program[list[FlowRecord]]:
    """Flows in ``states`` past their ``expires_at``, the earliest first."""
    return (yield from _oldest("expires_at", states, before, limit))


def finished(
    states: Collection[str], updated_before: datetime, limit: int
) -> Program[list[FlowRecord]]:
    """Flows in ``states`` last updated by ``updated_before``, the oldest first."""
    return (yield from _oldest("updated_at", states, updated_before, limit))


def _oldest(
    column: Literal["expires_at", "updated_at"],
    states: Collection[str],
    before: datetime,
    limit: int,
) -> Program[list[FlowRecord]]:
    if not states or limit <= 0:
        return []
    # column is one of two names fixed above; every value is a parameter.
    rows = yield Step(
        f"SELECT id, body, secrets FROM {{schema}}.flows WHERE state = ANY(%s) "  # noqa: S608
        f'AND {column} <= %s ORDER BY {column}, id COLLATE "C" LIMIT %s',
        (list(states), before, limit),
        want="all",
    )
    return [decode(body, secrets, flow_id=i) for i, body, secrets in rows]


def _due_select(
    state: str, before: datetime, limit: int, after: DueKey | None, *, lock: bool
) -> Step:
    text = (
        "SELECT id, body, secrets FROM {schema}.flows WHERE state = %s "
        "AND token_expires_at IS NOT NULL AND token_expires_at <= %s "
    )
    params: tuple[object, ...] = (state, before)
    if after is not None:
        text += (
            "AND (token_expires_at > %s "
            'OR (token_expires_at = %s AND id COLLATE "C" > %s)) '
        )
        params += (after[0], after[0], after[1])
    text += 'ORDER BY token_expires_at, id COLLATE "C" LIMIT %s'
    if lock:
        # Rows another claimer holds are passed over, not waited for: workers
        # take disjoint pages (section "The Locking Clause" of the manual).
        text += " FOR UPDATE SKIP LOCKED"
    return Step(text, (*params, limit), want="all")


def due(
    state: str, before: datetime, limit: int, after: DueKey | None
) -> Program[list[FlowRecord]]:
    """Flows in ``state`` whose token expires by ``before``, the earliest first."""
    if limit <= 0:
        return []
    rows = yield _due_select(state, before, limit, after, lock=False)
    return [decode(body, secrets, flow_id=i) for i, body, secrets in rows]


def claim_due(
    state: str, before: datetime, limit: int, after: DueKey | None, claim: Claim
) -> Program[list[Claimed]]:
    """Lock a page of due flows, skipping locked ones; save what ``claim`` returns.

    Must run in one transaction, so that the row locks last until the saves
    commit.
    """
    if limit <= 0:
        return []
    rows = yield _due_select(state, before, limit, after, lock=True)
    claimed: list[Claimed] = []
    for flow_id, body, secrets in rows:
        found = decode(body, secrets, flow_id=flow_id)
        moved = claim(found)
        # Under the row lock the update can only miss if claim returned a record
        # that is not the next version of this one.
        if moved is not None and (yield _update(moved)) != 1:
            moved = None
        claimed.append(Claimed(found, moved))
    return claimed


def run(conn: psycopg.Connection[Any], schema: str, program: Program[T]) -> T:
    """Execute ``program`` on ``conn``, for the tables in ``schema``."""
    result: Any = None
    while True:
        try:
            step = program.send(result)
        except StopIteration as done:
            return cast(T, done.value)
        cursor = conn.execute(_compose(step.text, schema), step.params)
        if step.want == "rowcount":
            result = cursor.rowcount
        else:
            result = cursor.fetchone() if step.want == "one" else cursor.fetchall()


async def run_async(
    conn: psycopg.AsyncConnection[Any], schema: str, program: Program[T]
) -> T:
    """Execute ``program`` on ``conn``: :func:`run`, awaited."""
    result: Any = None
    while True:
        try:
            step = program.send(result)
        except StopIteration as done:
            return cast(T, done.value)
        cursor = await conn.execute(_compose(step.text, schema), step.params)
        if step.want == "rowcount":
            result = cursor.rowcount
        elif step.want == "one":
            result = await cursor.fetchone()
        else:
            result = await cursor.fetchall()
