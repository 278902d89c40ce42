"""What the PostgreSQL stores add to the contract: their tables, start-up and names."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from psycopg import sql

from flow.errors import ConfigurationError, StoreError
from flow.stores import AsyncPostgresStore, PostgresStore
from tests import canary
from tests.stores.conftest import pg_rows
from tests.stores.records import make_record, race

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
