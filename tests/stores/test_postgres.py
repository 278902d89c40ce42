"""What the PostgreSQL stores add to the contract: their tables, start-up and names."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from psycopg import sql

from flow.errors import ConfigurationError, StoreError
from flow.record import FlowRecord
from flow.stores import AsyncPostgresStore, PostgresStore
from flow.stores.base import Claimed
from tests import canary
from tests.stores.conftest import pg_rows
from tests.stores.records import START, credential, make_record, next_version, race

PASSWORD = canary.canary("postgres-password")


def with_password(url: str) -> str:
    # Trust authentication never asks for it, so the store connects all the same.
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@")


def meta(url: str, schema: str) -> list[tuple[object, ...]]:
    query = sql.SQL("SELECT key, value FROM {}.flow_meta").format(
        sql.Identifier(schema)
    )
    return pg_rows(url, query)


def test_tables_are_created_with_the_schema_version(
    postgres_url: str, pg_schema: str
) -> None:
    PostgresStore(postgres_url, schema=pg_schema).close()

    tables = pg_rows(
        postgres_url,
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = %s ORDER BY table_name",
        pg_schema,
    )
    assert tables == [("flow_meta",), ("flows",)]
    assert meta(postgres_url, pg_schema) == [("schema_version", "1")]


def test_reopening_keeps_the_flows(postgres_url: str, pg_schema: str) -> None:
    record = make_record()
    first = PostgresStore(postgres_url, schema=pg_schema)
    first.insert(record)
    first.close()

    second = PostgresStore(postgres_url, schema=pg_schema)
    try:
        assert second.load(record.id) == record
    finally:
        second.close()
    assert meta(postgres_url, pg_schema) == [("schema_version", "1")]


def test_stores_starting_at_once_create_the_tables_once(
    postgres_url: str, pg_schema: str
) -> None:
    opened: list[PostgresStore] = []

    outcomes = race(
        6, lambda _: opened.append(PostgresStore(postgres_url, schema=pg_schema))
    )

    for store in opened:
        store.close()
    assert outcomes == [None] * 6
    assert meta(postgres_url, pg_schema) == [("schema_version", "1")]


def test_tables_of_a_newer_flow_are_refused(postgres_url: str, pg_schema: str) -> None:
    PostgresStore(postgres_url, schema=pg_schema).close()
    pg_rows(
        postgres_url,
        sql.SQL("UPDATE {}.flow_meta SET value = '99'").format(
            sql.Identifier(pg_schema)
        ),
    )

    with pytest.raises(StoreError) as caught:
        PostgresStore(postgres_url, schema=pg_schema)
    late = AsyncPostgresStore(postgres_url, schema=pg_schema)
    with pytest.raises(StoreError) as caught_late:
        asyncio.run(late.list())

    for error in (caught.value, caught_late.value):
        assert "99" in str(error)
        assert "upgrade flow" in str(error)


@pytest.fixture
def limited_role(postgres_url: str, pg_schema: str) -> Iterator[str]:
    """A role that owns the store's schema but may not create schemas."""
    role = f"flow_test_role_{uuid.uuid4().hex[:8]}"
    pg_rows(postgres_url, sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    pg_rows(
        postgres_url,
        sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
            sql.Identifier(pg_schema), sql.Identifier(role)
        ),
    )
    yield role
    pg_rows(
        postgres_url,
        sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(pg_schema)),
    )
    pg_rows(postgres_url, sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_an_existing_schema_needs_no_database_privilege(
    postgres_url: str, pg_schema: str, limited_role: str
) -> None:
    url = postgres_url.replace(
        "postgresql://postgres@", f"postgresql://{limited_role}@"
    )
    record = make_record()

    store = PostgresStore(url, schema=pg_schema)
    try:
        store.insert(record)
        assert store.load(record.id) == record
    finally:
        store.close()


def test_repr_shows_where_but_not_the_password(
    postgres_url: str, pg_schema: str
) -> None:
    store = PostgresStore(with_password(postgres_url), schema=pg_schema)
    late = AsyncPostgresStore(with_password(postgres_url), schema=pg_schema)
    try:
        shown = repr(store) + repr(late)
    finally:
        store.close()

    canary.record_text(store, late)
    assert PASSWORD not in shown
    assert "dbname='test'" in shown
    assert f"schema={pg_schema!r}" in shown


def test_an_unreachable_server_is_a_store_error_without_the_password() -> None:
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/test"

    with pytest.raises(StoreError) as caught:
        PostgresStore(url, timeout=1)

    canary.record_text(caught.value)
    assert "127.0.0.1" in str(caught.value)
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize(
    ("conninfo", "schema"),
    [
        (f"postgresql://postgres:{PASSWORD} x@/test", "flow"),
        (f"host=db password='{PASSWORD}", "flow"),
        ("postgresql://postgres@127.0.0.1/test", ""),
        ("postgresql://postgres@127.0.0.1/test", "s" * 64),
    ],
)
def test_malformed_settings_are_refused_before_connecting(
    conninfo: str, schema: str
) -> None:
    for kind in (PostgresStore, AsyncPostgresStore):
        with pytest.raises(ConfigurationError) as caught:
            kind(conninfo, schema=schema)

        canary.record_text(caught.value)
        assert PASSWORD not in str(caught.value)


def test_claim_due_passes_over_a_row_another_transaction_holds(
    postgres_url: str, pg_schema: str
) -> None:
    store = PostgresStore(postgres_url, schema=pg_schema)
    for n, flow_id in enumerate(["held", "free-1", "free-2"]):
        store.insert(credential(flow_id, timedelta(minutes=n)))
    claimed: list[list[Claimed]] = []

    def begin(record: FlowRecord) -> FlowRecord:
        return next_version(record, state="refreshing")

    def claim() -> None:
        claimed.append(
            store.claim_due(
                state="api_ready",
                before=START + timedelta(hours=1),
                limit=10,
                claim=begin,
            )
        )

    # Another worker is in the middle of claiming "held": its row lock is taken.
    with psycopg.connect(postgres_url) as other:
        other.execute(
            sql.SQL("SELECT id FROM {}.flows WHERE id = 'held' FOR UPDATE").format(
                sql.Identifier(pg_schema)
            )
        )
        worker = threading.Thread(target=claim)
        worker.start()
        # Without SKIP LOCKED the claim would wait here for the lock, for ever.
        worker.join(timeout=30)
        blocked = worker.is_alive()
        other.rollback()
    worker.join(timeout=30)

    try:
        assert not blocked
        assert [c.found.id for c in claimed[0]] == ["free-1", "free-2"]
        assert store.load("held").state == "api_ready"
    finally:
        store.close()


def test_a_claim_that_raises_saves_nothing(postgres_url: str, pg_schema: str) -> None:
    store = PostgresStore(postgres_url, schema=pg_schema)
    for n, flow_id in enumerate(["first", "second"]):
        store.insert(credential(flow_id, timedelta(minutes=n)))

    def claim(record: FlowRecord) -> FlowRecord:
        if record.id == "second":
            raise RuntimeError("the claim broke")
        return next_version(record, state="refreshing")

    try:
        with pytest.raises(RuntimeError):
            store.claim_due(
                state="api_ready",
                before=START + timedelta(hours=1),
                limit=5,
                claim=claim,
            )
        assert store.load("first").state == "api_ready"
    finally:
        store.close()


def test_indexes_for_the_maintenance_queries_exist(
    postgres_url: str, pg_schema: str
) -> None:
    PostgresStore(postgres_url, schema=pg_schema).close()

    indexes = pg_rows(
        postgres_url,
        "SELECT indexname FROM pg_indexes WHERE schemaname = %s ORDER BY indexname",
        pg_schema,
    )
    assert {"flows_due", "flows_expiring", "flows_state"} <= {i for (i,) in indexes}
