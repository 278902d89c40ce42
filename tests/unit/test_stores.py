"""The store contract, run against every backend, and what SQLite adds to it."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from flow.errors import (
    ConfigurationError,
    CorruptRecord,
    FlowNotFound,
    StoreError,
    VersionConflict,
)
from flow.record import Client, FlowRecord, Secrets, ServerMetadata
from flow.stores import (
    AsyncStore,
    MemoryStore,
    SQLiteStore,
    Store,
    ThreadedStore,
    open_store,
)

START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

#: One distinct value per secret field, so that a leak says which secret leaked.
CANARIES = Secrets(
    client_secret="canary-client-secret-4d2a",
    code_verifier="canary-code-verifier-8e13",
    code="canary-code-a7b5",
    access_token="canary-access-token-06fc",
    refresh_token="canary-refresh-token-c3e9",
    id_token="canary-id-token-5b71",
)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def make_record(flow_id: str = "flow-1", **changes: Any) -> FlowRecord:
    """A waiting flow with every secret set to a canary, with ``changes`` applied."""
    record = FlowRecord(
        id=flow_id,
        spec="authorization_code",
        spec_version=1,
        state="awaiting_login",
        version=1,
        provider="example",
        server=ServerMetadata(
            issuer="https://as.test",
            authorization_endpoint="https://as.test/authorize",
            token_endpoint="https://as.test/token",
        ),
        client=Client(client_id="client", redirect_uri="https://app.test/cb"),
        scopes=("openid",),
        created_at=START,
        updated_at=START,
        expires_at=START + timedelta(minutes=10),
        state_hash=digest(f"state-of-{flow_id}"),
        context={"note": None, "n": 1},
        secrets=CANARIES,
    )
    return replace(record, **changes)


def next_version(record: FlowRecord, **changes: Any) -> FlowRecord:
    """What a committed transition would save after ``record``."""
    return replace(
        record,
        version=record.version + 1,
        updated_at=record.updated_at + timedelta(seconds=1),
        **changes,
    )


StoreFactory = Callable[[], Store]


@pytest.fixture(params=["memory", "sqlite_file", "sqlite_memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    backends: dict[str, StoreFactory] = {
        "memory": MemoryStore,
        "sqlite_file": lambda: SQLiteStore(tmp_path / "flows.db"),
        "sqlite_memory": lambda: SQLiteStore(":memory:"),
    }
    opened = backends[request.param]()
    yield opened
    opened.close()


def race(count: int, attempt: Callable[[int], None]) -> list[BaseException | None]:
    """Run ``attempt(i)`` in ``count`` threads released together; their outcomes."""
    barrier = threading.Barrier(count)
    outcomes: list[BaseException | None] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            attempt(index)
        except BaseException as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


# The contract ----------------------------------------------------------------------


class TestStoreContract:
    def test_is_a_store(self, store: Store) -> None:
        assert isinstance(store, Store)

    def test_insert_then_load_gives_the_same_record(self, store: Store) -> None:
        record = make_record()

        store.insert(record)

        assert store.load(record.id) == record

    def test_insert_of_an_existing_id_conflicts(self, store: Store) -> None:
        store.insert(make_record())

        with pytest.raises(VersionConflict) as caught:
            store.insert(make_record(state_hash=digest("another state")))

        assert caught.value.flow_id == "flow-1"

    def test_insert_of_a_second_flow_with_the_same_state_conflicts(
        self, store: Store
    ) -> None:
        first = make_record("flow-1")
        store.insert(first)

        with pytest.raises(VersionConflict):
            store.insert(make_record("flow-2", state_hash=first.state_hash))

        with pytest.raises(FlowNotFound):
            store.load("flow-2")
        assert store.find_by_state(first.state_hash or "") == first

    def test_flows_without_a_state_digest_do_not_clash(self, store: Store) -> None:
        store.insert(make_record("flow-1", state_hash=None))
        store.insert(make_record("flow-2", state_hash=None))

        assert {r.id for r in store.list()} == {"flow-1", "flow-2"}

    def test_save_of_the_next_version_replaces_the_record(self, store: Store) -> None:
        record = make_record()
        store.insert(record)
        moved = next_version(record, state="code_received", reason="r")

        store.save(moved)

        assert store.load(record.id) == moved

    def test_save_of_a_stale_version_conflicts(self, store: Store) -> None:
        record = make_record()
        store.insert(record)
        store.save(next_version(record))

        with pytest.raises(VersionConflict) as caught:
            store.save(next_version(record, state="failed"))

        assert caught.value.flow_id == record.id
        assert store.load(record.id).version == 2
        assert store.load(record.id).state == "awaiting_login"

    @pytest.mark.parametrize("version", [1, 3, 10])
    def test_save_that_skips_or_repeats_a_version_conflicts(
        self, store: Store, version: int
    ) -> None:
        record = make_record()
        store.insert(record)

        with pytest.raises(VersionConflict):
            store.save(replace(record, version=version))

        assert store.load(record.id) == record

    def test_of_two_writers_of_one_version_exactly_one_wins(self, store: Store) -> None:
        record = make_record()
        store.insert(record)
        mine = store.load(record.id)
        theirs = store.load(record.id)

        store.save(next_version(mine, state="code_received"))
        with pytest.raises(VersionConflict):
            store.save(next_version(theirs, state="failed"))

        assert store.load(record.id).state == "code_received"

    def test_of_many_threads_saving_one_version_exactly_one_wins(
        self, store: Store
    ) -> None:
        record = make_record()
        store.insert(record)
        candidates = [next_version(record, reason=f"writer-{i}") for i in range(8)]

        outcomes = race(8, lambda i: store.save(candidates[i]))

        winners = [i for i, outcome in enumerate(outcomes) if outcome is None]
        losers = [o for o in outcomes if o is not None]
        assert len(winners) == 1
        assert all(isinstance(o, VersionConflict) for o in losers), losers
        assert store.load(record.id) == candidates[winners[0]]

    def test_save_of_an_unknown_flow_is_not_found(self, store: Store) -> None:
        with pytest.raises(FlowNotFound) as caught:
            store.save(make_record("ghost", version=2))

        assert caught.value.flow_id == "ghost"

    def test_load_of_an_unknown_flow_is_not_found(self, store: Store) -> None:
        store.insert(make_record())

        with pytest.raises(FlowNotFound) as caught:
            store.load("ghost")

        assert caught.value.flow_id == "ghost"

    def test_find_by_state_finds_by_digest(self, store: Store) -> None:
        record = make_record("flow-1")
        store.insert(record)
        store.insert(make_record("flow-2"))

        assert store.find_by_state(digest("state-of-flow-1")) == record
        with pytest.raises(FlowNotFound):
            store.find_by_state(digest("state-of-nobody"))

    def test_find_by_state_follows_a_changed_digest(self, store: Store) -> None:
        record = make_record()
        store.insert(record)
        moved = next_version(record, state_hash=digest("fresh"))

        store.save(moved)

        assert store.find_by_state(digest("fresh")) == moved
        with pytest.raises(FlowNotFound):
            store.find_by_state(record.state_hash or "")

    def test_find_by_state_misses_a_cleared_digest(self, store: Store) -> None:
        record = make_record()
        store.insert(record)

        store.save(next_version(record, state_hash=None))

        with pytest.raises(FlowNotFound):
            store.find_by_state(record.state_hash or "")

    def test_list_filters_orders_and_limits(self, store: Store) -> None:
        rows = [
            ("a", "awaiting_login", "google", 3),
            ("b", "api_ready", "google", 5),
            ("c", "awaiting_login", "github", 1),
            ("d", "awaiting_login", "google", 4),
            ("e", "failed", "github", 2),
        ]
        for flow_id, state, provider, minutes in rows:
            store.insert(
                make_record(
                    flow_id,
                    state=state,
                    provider=provider,
                    updated_at=START + timedelta(minutes=minutes),
                )
            )

        def ids(records: list[FlowRecord]) -> list[str]:
            return [record.id for record in records]

        assert ids(store.list()) == ["b", "d", "a", "e", "c"]
        assert ids(store.list(limit=2)) == ["b", "d"]
        assert ids(store.list(state="awaiting_login")) == ["d", "a", "c"]
        assert ids(store.list(provider="github")) == ["e", "c"]
        assert ids(store.list(state="awaiting_login", provider="google")) == [
            "d",
            "a",
        ]
        assert ids(store.list(state="awaiting_login", limit=1)) == ["d"]
        assert ids(store.list(state="denied")) == []

    def test_list_orders_by_instant_whatever_the_offset(self, store: Store) -> None:
        plus_two = timezone(timedelta(hours=2))
        # 13:30+02:00 is 11:30 UTC: earlier than 12:00 UTC, though it reads later.
        store.insert(make_record("utc", updated_at=START))
        store.insert(
            make_record(
                "east", updated_at=datetime(2026, 1, 1, 13, 30, tzinfo=plus_two)
            )
        )

        assert [record.id for record in store.list()] == ["utc", "east"]

    def test_list_of_an_empty_store_is_empty(self, store: Store) -> None:
        assert store.list() == []

    def test_loaded_records_are_independent_copies(self, store: Store) -> None:
        record = make_record(context={"items": [1, 2]})
        store.insert(record)

        first = store.load(record.id)
        first.context["items"].append(3)

        assert store.load(record.id) == record


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


def assert_no_canary(text: str) -> None:
    leaked = [value for value in CANARIES.values() if value in text]
    assert leaked == [], f"secret values leaked: {leaked}"


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

    def test_secrets_are_never_in_the_body_column(
        self, sqlite_store: SQLiteStore, db_path: Path
    ) -> None:
        record = make_record()
        sqlite_store.insert(record)
        sqlite_store.save(next_version(record, state="code_received"))

        rows = raw_rows(
            db_path,
            "SELECT id, version, state, spec, provider, state_hash, expires_at, "
            "updated_at, body, secrets FROM flows",
        )

        assert len(rows) == 1
        *columns, body, secrets = rows[0]
        assert_no_canary(body)
        assert_no_canary(" ".join(str(column) for column in columns))
        for value in CANARIES.values():
            assert value in secrets

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

    @pytest.mark.parametrize("column", ["body", "secrets"])
    def test_corrupt_row_is_a_corrupt_record(
        self, sqlite_store: SQLiteStore, db_path: Path, column: str
    ) -> None:
        record = make_record()
        sqlite_store.insert(record)
        update = {
            "body": "UPDATE flows SET body = ?",
            "secrets": "UPDATE flows SET secrets = ?",
        }[column]
        raw_rows(db_path, update, '{"garbage": tru')

        with pytest.raises(CorruptRecord) as caught:
            sqlite_store.load(record.id)
        with pytest.raises(CorruptRecord):
            sqlite_store.find_by_state(record.state_hash or "")

        assert caught.value.flow_id == record.id
        assert_no_canary(str(caught.value))

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
        "postgres://db.test/flows",
        "redis://localhost",
        "flows.db",
        "",
        "sqlite://host/flows.db",
        "sqlite:flows.db",
        "sqlite://",
        "sqlite:///",
    ],
)
def test_bad_store_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError):
        open_store(url)


# ThreadedStore -----------------------------------------------------------------------


def test_threaded_store_passes_every_call_through() -> None:
    inner = MemoryStore()
    store = ThreadedStore(inner)
    record = make_record()
    moved = next_version(record, state="code_received")

    async def scenario() -> None:
        await store.insert(record)
        assert await store.load(record.id) == record
        await store.save(moved)
        assert await store.find_by_state(record.state_hash or "") == moved
        assert await store.list(state="code_received", provider="example") == [moved]
        assert await store.list(state="failed") == []
        with pytest.raises(VersionConflict):
            await store.save(moved)
        with pytest.raises(FlowNotFound):
            await store.load("ghost")
        await store.close()

    asyncio.run(scenario())

    assert isinstance(store, AsyncStore)
    assert store.sync is inner
    assert inner.load(record.id) == moved


def test_threaded_store_lets_one_of_many_concurrent_saves_win(
    tmp_path: Path,
) -> None:
    store = ThreadedStore(SQLiteStore(tmp_path / "flows.db"))
    record = make_record()
    candidates = [next_version(record, reason=f"w{i}") for i in range(6)]

    async def scenario() -> list[BaseException | None]:
        await store.insert(record)
        results = await asyncio.gather(
            *(store.save(c) for c in candidates), return_exceptions=True
        )
        return [r if isinstance(r, BaseException) else None for r in results]

    try:
        outcomes = asyncio.run(scenario())
    finally:
        store.sync.close()

    assert sum(outcome is None for outcome in outcomes) == 1
    assert all(isinstance(o, VersionConflict) for o in outcomes if o is not None)
