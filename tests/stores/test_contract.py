"""The store contract, run against every store: one suite, so no store drifts.

The ``store`` fixture (``conftest.py``) opens each store in turn: memory, SQLite
(file and in-memory), PostgreSQL, Redis, and the asyncio stores (PostgreSQL, Redis,
SQLite behind ``ThreadedStore``) driven from a loop thread.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from flow.errors import CorruptRecord, FlowNotFound, VersionConflict
from flow.record import FlowRecord
from flow.stores import AsyncStore, Store
from tests import canary
from tests.stores.conftest import Backend
from tests.stores.records import (
    CANARIES,
    START,
    assert_no_canary,
    digest,
    make_record,
    next_version,
    race,
)


def ids(records: list[FlowRecord]) -> list[str]:
    return [record.id for record in records]


def test_is_a_store_of_its_kind(backend: Backend) -> None:
    native = backend.native
    asynchronous = backend.name.startswith(("async", "threaded"))

    assert isinstance(native, AsyncStore if asynchronous else Store)
    # The asyncio driver tells the two kinds apart by this test.
    assert inspect.iscoroutinefunction(native.load) == asynchronous


def test_insert_then_load_gives_the_same_record(store: Store) -> None:
    record = make_record()

    store.insert(record)

    assert store.load(record.id) == record


def test_insert_of_an_existing_id_conflicts(store: Store) -> None:
    store.insert(make_record())

    with pytest.raises(VersionConflict) as caught:
        store.insert(make_record(state_hash=digest("another state")))

    assert caught.value.flow_id == "flow-1"
    with pytest.raises(FlowNotFound):
        store.find_by_state(digest("another state"))


def test_insert_of_a_second_flow_with_the_same_state_conflicts(store: Store) -> None:
    first = make_record("flow-1")
    store.insert(first)

    with pytest.raises(VersionConflict):
        store.insert(make_record("flow-2", state_hash=first.state_hash))

    with pytest.raises(FlowNotFound):
        store.load("flow-2")
    assert store.find_by_state(first.state_hash or "") == first
    assert ids(store.list()) == ["flow-1"]


def test_save_onto_another_flows_state_digest_conflicts(store: Store) -> None:
    first = make_record("flow-1")
    second = make_record("flow-2", state_hash=digest("state-of-flow-2"))
    store.insert(first)
    store.insert(second)

    with pytest.raises(VersionConflict):
        store.save(
            replace(second, version=second.version + 1, state_hash=first.state_hash)
        )

    assert store.find_by_state(first.state_hash or "") == first
    assert store.load("flow-2") == second


def test_flows_without_a_state_digest_do_not_clash(store: Store) -> None:
    store.insert(make_record("flow-1", state_hash=None))
    store.insert(make_record("flow-2", state_hash=None))

    assert sorted(ids(store.list())) == ["flow-1", "flow-2"]


def test_save_of_the_next_version_replaces_the_record(store: Store) -> None:
    record = make_record()
    store.insert(record)
    moved = next_version(record, state="code_received", reason="r")

    store.save(moved)

    assert store.load(record.id) == moved


def test_save_of_a_stale_version_conflicts(store: Store) -> None:
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
    store: Store, version: int
) -> None:
    record = make_record()
    store.insert(record)

    with pytest.raises(VersionConflict):
        store.save(replace(record, version=version, state="failed"))

    assert store.load(record.id) == record


def test_of_two_writers_of_one_version_exactly_one_wins(store: Store) -> None:
    record = make_record()
    store.insert(record)
    mine = store.load(record.id)
    theirs = store.load(record.id)

    store.save(next_version(mine, state="code_received"))
    with pytest.raises(VersionConflict):
        store.save(next_version(theirs, state="failed"))

    assert store.load(record.id).state == "code_received"


def test_of_many_threads_saving_one_version_exactly_one_wins(store: Store) -> None:
    record = make_record()
    store.insert(record)
    candidates = [next_version(record, reason=f"writer-{i}") for i in range(8)]

    outcomes = race(8, lambda i: store.save(candidates[i]))

    winners = [i for i, outcome in enumerate(outcomes) if outcome is None]
    losers = [outcome for outcome in outcomes if outcome is not None]
    assert len(winners) == 1
    assert all(isinstance(o, VersionConflict) for o in losers), losers
    assert store.load(record.id) == candidates[winners[0]]


def test_save_of_an_unknown_flow_is_not_found(store: Store) -> None:
    with pytest.raises(FlowNotFound) as caught:
        store.save(make_record("ghost", version=2))

    assert caught.value.flow_id == "ghost"
    with pytest.raises(FlowNotFound):
        store.load("ghost")


def test_load_of_an_unknown_flow_is_not_found(store: Store) -> None:
    store.insert(make_record())

    with pytest.raises(FlowNotFound) as caught:
        store.load("ghost")

    assert caught.value.flow_id == "ghost"


def test_find_by_state_finds_by_digest(store: Store) -> None:
    record = make_record("flow-1")
    store.insert(record)
    store.insert(make_record("flow-2"))

    assert store.find_by_state(digest("state-of-flow-1")) == record
    with pytest.raises(FlowNotFound):
        store.find_by_state(digest("state-of-nobody"))


def test_find_by_state_follows_a_changed_digest(store: Store) -> None:
    record = make_record()
    store.insert(record)
    moved = next_version(record, state_hash=digest("fresh"))

    store.save(moved)

    assert store.find_by_state(digest("fresh")) == moved
    with pytest.raises(FlowNotFound):
        store.find_by_state(record.state_hash or "")


def test_find_by_state_misses_a_cleared_digest(store: Store) -> None:
    record = make_record()
    store.insert(record)

    store.save(next_version(record, state_hash=None))

    with pytest.raises(FlowNotFound):
        store.find_by_state(record.state_hash or "")


def test_a_cleared_digest_can_be_taken_by_another_flow(store: Store) -> None:
    record = make_record("flow-1")
    store.insert(record)
    store.save(next_version(record, state_hash=None))
    newcomer = make_record("flow-2", state_hash=record.state_hash)

    store.insert(newcomer)

    assert store.find_by_state(record.state_hash or "") == newcomer


def test_list_filters_orders_and_limits(store: Store) -> None:
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

    assert ids(store.list()) == ["b", "d", "a", "e", "c"]
    assert ids(store.list(limit=2)) == ["b", "d"]
    assert ids(store.list(state="awaiting_login")) == ["d", "a", "c"]
    assert ids(store.list(provider="github")) == ["e", "c"]
    assert ids(store.list(state="awaiting_login", provider="google")) == ["d", "a"]
    assert ids(store.list(state="awaiting_login", limit=1)) == ["d"]
    assert ids(store.list(state="denied")) == []


def test_list_follows_saves_to_another_state_and_time(store: Store) -> None:
    first, second = make_record("first"), make_record("second")
    store.insert(first)
    store.insert(second)

    store.save(
        next_version(first, state="api_ready", updated_at=START + timedelta(hours=1))
    )

    assert ids(store.list()) == ["first", "second"]
    assert ids(store.list(state="api_ready")) == ["first"]
    assert ids(store.list(state="awaiting_login")) == ["second"]


def test_list_with_two_filters_looks_past_the_latest_flows(store: Store) -> None:
    # Many recent flows match the state but not the provider; the few that match
    # both are older than all of them.
    for n in range(210):
        store.insert(
            make_record(f"recent-{n:03}", updated_at=START + timedelta(seconds=n))
        )
    for n in range(3):
        store.insert(
            make_record(
                f"old-{n}", provider="github", updated_at=START - timedelta(days=n + 1)
            )
        )

    found = store.list(state="awaiting_login", provider="github", limit=5)

    assert ids(found) == ["old-0", "old-1", "old-2"]
    assert len(store.list(limit=250)) == 213


def test_list_orders_by_instant_whatever_the_offset(store: Store) -> None:
    plus_two = timezone(timedelta(hours=2))
    # 13:30+02:00 is 11:30 UTC: earlier than 12:00 UTC, though it reads later.
    store.insert(make_record("utc", updated_at=START))
    store.insert(
        make_record("east", updated_at=datetime(2026, 1, 1, 13, 30, tzinfo=plus_two))
    )

    assert ids(store.list()) == ["utc", "east"]


def test_list_of_an_empty_store_is_empty(store: Store) -> None:
    assert store.list() == []


def test_loaded_records_are_independent_copies(store: Store) -> None:
    record = make_record(context={"items": [1, 2]})
    store.insert(record)

    first = store.load(record.id)
    first.context["items"].append(3)

    assert store.load(record.id) == record


def test_secrets_are_kept_apart_from_everything_else(backend: Backend) -> None:
    record = make_record()
    backend.store.insert(record)
    backend.store.save(next_version(record, state="code_received"))

    stored = backend.storage.raw(record.id)

    secrets = stored.pop("secrets")
    assert "body" in stored
    for name, text in stored.items():
        assert [v for v in CANARIES.values() if v in text] == [], name
    assert [v for v in CANARIES.values() if v not in secrets] == []


@pytest.mark.parametrize("field", ["body", "secrets"])
@pytest.mark.parametrize("text", ['{"garbage": tru', '{"schema_version": 2}', ""])
def test_corrupt_stored_text_is_a_corrupt_record(
    backend: Backend, field: str, text: str
) -> None:
    record = make_record()
    backend.store.insert(record)
    backend.storage.corrupt(record.id, field, text)

    with pytest.raises(CorruptRecord) as caught:
        backend.store.load(record.id)
    with pytest.raises(CorruptRecord) as found:
        backend.store.find_by_state(record.state_hash or "")

    canary.record_text(caught.value, found.value)
    assert caught.value.flow_id == record.id
    assert found.value.flow_id == record.id
    assert_no_canary(str(caught.value) + repr(caught.value))
