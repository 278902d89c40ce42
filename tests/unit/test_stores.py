"""What the SQLite store adds to the store contract, and opening stores by URL.

The contract itself, run against every store, is in ``tests/stores``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from flow.errors import ConfigurationError, CorruptRecord, StoreError, VersionConflict
from flow.stores import (
    AsyncPostgresStore,
    AsyncRedisStore,
    AsyncStore,
    MemoryStore,
    SQLiteStore,
    ThreadedStore,
    open_async_store,
    open_store,
)
from tests.stores.records import assert_no_canary, make_record, next_version, race

# SQLite ----------------------------------------------------------------------------


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "flows.db"


@pytest.fixture
def sqlite_store(db_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(db_path)
    yield opened
    opened.close()


def raw_rows(path: Path, query: str, *params: object) -> list[tuple[Any, ...]]:
    """Run ``query`` on the file with sqlite3 itself, as another tool would."""
    with closing(sqlite3.connect(path)) as db:
        rows: list[tuple[Any, ...]] = db.execute(query, params).fetchall()
        db.commit()
    return rows


class TestSQLiteStore:
    def test_connection_runs_wal_normal_with_a_busy_timeout(
        self, sqlite_store: SQLiteStore
    ) -> None:
        assert sqlite_store.pragma("journal_mode") == "wal"
        assert sqlite_store.pragma("synchronous") == "1"
        assert int(sqlite_store.pragma("busy_timeout")) > 0

    def test_full_synchronous_can_be_chosen(self, db_path: Path) -> None:
        store = SQLiteStore(db_path, synchronous="FULL", busy_timeout=2.5)

        try:
            assert store.pragma("synchronous") == "2"
            assert store.pragma("busy_timeout") == "2500"
        finally:
            store.close()

    def test_meta_table_holds_the_schema_version(
        self, sqlite_store: SQLiteStore, db_path: Path
    ) -> None:
        rows = raw_rows(db_path, "SELECT key, value FROM flow_meta")

        assert rows == [("schema_version", "1")]

    def test_store_written_by_a_newer_flow_is_refused(self, db_path: Path) -> None:
        SQLiteStore(db_path).close()
        raw_rows(
            db_path,
            "UPDATE flow_meta SET value = '99' WHERE key = 'schema_version'",
        )

        with pytest.raises(StoreError) as caught:
            SQLiteStore(db_path)

        assert "99" in str(caught.value)
        assert "upgrade flow" in str(caught.value)

    def test_reopening_keeps_the_flows(self, db_path: Path) -> None:
        record = make_record()
        first = SQLiteStore(db_path)
        first.insert(record)
        first.close()

        second = SQLiteStore(db_path)
        try:
            assert second.load(record.id) == record
            assert raw_rows(db_path, "SELECT value FROM flow_meta") == [("1",)]
        finally:
            second.close()

    def test_two_stores_on_one_file_share_flows_and_cas(self, db_path: Path) -> None:
        one, two = SQLiteStore(db_path), SQLiteStore(db_path)
        try:
            record = make_record()
            one.insert(record)
            assert two.load(record.id) == record
            with pytest.raises(VersionConflict):
                two.insert(make_record())

            two.save(next_version(record, state="code_received"))
            with pytest.raises(VersionConflict):
                one.save(next_version(record, state="failed"))

            assert one.load(record.id).state == "code_received"
            assert [r.id for r in one.list()] == [record.id]
        finally:
            one.close()
            two.close()

    def test_threads_on_two_stores_of_one_file_let_one_writer_win(
        self, db_path: Path
    ) -> None:
        stores = [SQLiteStore(db_path), SQLiteStore(db_path)]
        try:
            record = make_record()
            stores[0].insert(record)
            candidates = [next_version(record, reason=f"w{i}") for i in range(8)]

            outcomes = race(8, lambda i: stores[i % 2].save(candidates[i]))

            winners = [i for i, outcome in enumerate(outcomes) if outcome is None]
            losers = [o for o in outcomes if o is not None]
            assert len(winners) == 1
            assert all(isinstance(o, VersionConflict) for o in losers), losers
            assert stores[1].load(record.id) == candidates[winners[0]]
        finally:
            for store in stores:
                store.close()

    def test_row_of_another_schema_is_a_corrupt_record(
        self, sqlite_store: SQLiteStore, db_path: Path
    ) -> None:
        record = make_record()
        sqlite_store.insert(record)
        raw_rows(
            db_path,
            "UPDATE flows SET body = json_set(body, '$.schema_version', 2)",
        )

        with pytest.raises(CorruptRecord) as caught:
            sqlite_store.load(record.id)

        assert "schema_version" in str(caught.value)
        assert_no_canary(str(caught.value))

    def test_missing_folder_is_created(self, tmp_path: Path) -> None:
        store = SQLiteStore(tmp_path / "a" / "b" / "flows.db")
        store.close()

        assert (tmp_path / "a" / "b" / "flows.db").is_file()


# open_store --------------------------------------------------------------------------


def test_open_memory_store() -> None:
    store = open_store("memory://")

    assert isinstance(store, MemoryStore)


def test_open_relative_sqlite_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    store = open_store("sqlite:///data/flows.db")
    try:
        assert isinstance(store, SQLiteStore)
        assert store.path == str(Path("data/flows.db"))
        assert (tmp_path / "data" / "flows.db").is_file()
    finally:
        store.close()


def test_open_absolute_sqlite_store(tmp_path: Path) -> None:
    path = tmp_path / "abs.db"
    assert str(path).startswith("/")

    store = open_store(f"sqlite:///{path}")
    try:
        assert isinstance(store, SQLiteStore)
        assert store.path == str(path)
        assert path.is_file()
    finally:
        store.close()


@pytest.mark.parametrize(
    "url",
    [
        "mysql://db.test/flows",
        "flows.db",
        "",
        "sqlite://host/flows.db",
        "sqlite:flows.db",
        "sqlite://",
        "sqlite:///",
        # Refused before any connection is tried:
        "postgresql://127.0.0.1:1/test?schema=a&schema=b",
        "postgres://127.0.0.1:1/test?schema=",
        "redis://127.0.0.1:1/0?prefix=",
        "rediss://127.0.0.1:1/0?prefix=a&prefix=b",
    ],
)
@pytest.mark.parametrize("opener", [open_store, open_async_store])
def test_bad_store_url_is_a_configuration_error(
    opener: Callable[[str], object], url: str
) -> None:
    with pytest.raises(ConfigurationError):
        opener(url)


@pytest.mark.parametrize("url", ["memory://", "sqlite:///{tmp}/flows.db"])
def test_open_async_store_runs_embedded_stores_in_threads(
    tmp_path: Path, url: str
) -> None:
    store = open_async_store(url.format(tmp=tmp_path))

    assert isinstance(store, ThreadedStore)
    assert isinstance(store.sync, MemoryStore | SQLiteStore)
    asyncio.run(store.close())


def test_open_async_store_gives_native_stores_that_connect_later() -> None:
    # Nothing listens on port 1: these stores connect on their first call only.
    postgres = open_async_store("postgresql://postgres@127.0.0.1:1/test?schema=s1")
    redis = open_async_store("rediss://127.0.0.1:1/2?prefix=app%3Aflows%3A")

    assert isinstance(postgres, AsyncPostgresStore)
    assert postgres.schema == "s1"
    assert isinstance(redis, AsyncRedisStore)
    assert redis.prefix == "app:flows:"
    assert isinstance(postgres, AsyncStore)
    asyncio.run(postgres.close())
    asyncio.run(redis.close())


@pytest.fixture
def no_drivers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make psycopg and redis unimportable, as where the extras are not installed."""
    for driver in ("psycopg", "psycopg_pool", "redis"):
        monkeypatch.setitem(sys.modules, driver, None)
    for module in list(sys.modules):
        if module.startswith(("flow.stores.postgres", "flow.stores.redis")) or (
            module.startswith(("flow.stores._postgres", "flow.stores._redis"))
        ):
            monkeypatch.delitem(sys.modules, module)


@pytest.mark.usefixtures("no_drivers")
@pytest.mark.parametrize(
    ("url", "extra"),
    [
        ("postgresql://127.0.0.1/test", "postgres"),
        ("postgres://127.0.0.1/test", "postgres"),
        ("redis://127.0.0.1:6379/0", "redis"),
        ("rediss://127.0.0.1:6379/0", "redis"),
    ],
)
def test_a_missing_driver_names_the_extra_to_install(url: str, extra: str) -> None:
    for opener in (open_store, open_async_store):
        with pytest.raises(ConfigurationError) as caught:
            opener(url)

        assert f"pip install 'flow-oauth[{extra}]'" in str(caught.value)


@pytest.mark.usefixtures("no_drivers")
def test_memory_and_sqlite_work_without_the_drivers(tmp_path: Path) -> None:
    import flow.stores

    store = open_store(f"sqlite:///{tmp_path}/flows.db")
    store.close()

    with pytest.raises(ConfigurationError, match=r"flow-oauth\[redis\]"):
        flow.stores.RedisStore  # noqa: B018 - the attribute access is the test


def test_every_name_in_all_exists_and_all_is_sorted() -> None:
    import flow.stores

    assert flow.stores.__all__ == sorted(flow.stores.__all__)
    assert [n for n in flow.stores.__all__ if not hasattr(flow.stores, n)] == []


def test_a_file_from_before_token_expiry_was_indexed_still_opens(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.executescript(
            "CREATE TABLE flow_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "INSERT INTO flow_meta VALUES ('schema_version', '1');"
            "CREATE TABLE flows (id TEXT PRIMARY KEY, version INTEGER NOT NULL,"
            " state TEXT NOT NULL, spec TEXT NOT NULL, provider TEXT NOT NULL,"
            " state_hash TEXT, expires_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
            " body TEXT NOT NULL, secrets TEXT NOT NULL);"
        )
    old.close()

    store = SQLiteStore(path)

    columns = [
        row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(flows)")
    ]
    assert "token_expires_at" in columns
    assert store.list() == []
