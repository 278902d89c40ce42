"""The store contract, run against every store: one suite, so no store drifts.

The ``store`` fixture (``conftest.py``) opens each store in turn: memory, SQLite
(file and in-memory), PostgreSQL, Redis, and the asyncio stores (PostgreSQL, Redis,
SQLite behind ``ThreadedStore``) driven from a loop thread.

Besides single flows: compare-and-set deletion, and the maintenance queries
(expiring waiting flows, finished flows, due credentials and claiming them).
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from flow.errors import CorruptRecord, FlowNotFound, VersionConflict
from flow.record import FlowRecord, TokenInfo
from flow.stores import AsyncStore, Store
from flow.stores.base import due_key
from tests import canary
from tests.stores.conftest import Backend
from tests.stores.records import (
    CANARIES,
    START,
    assert_no_canary,
    credential,
    digest,
    make_record,
    next_version,
    race,
)

#: Later than every time in these tests.
LATER = START + timedelta(days=30)


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


# Deleting -----------------------------------------------------------------------------


def test_delete_of_the_stored_version_removes_the_flow_and_its_indexes(
    store: Store,
) -> None:
    record = make_record("flow-1", state="failed", reason="r")
    store.insert(record)
    store.insert(make_record("flow-2", updated_at=START + timedelta(minutes=1)))

    store.delete(record.id, record.version)

    with pytest.raises(FlowNotFound):
        store.load(record.id)
    with pytest.raises(FlowNotFound):
        store.find_by_state(record.state_hash or "")
    assert ids(store.list()) == ["flow-2"]
    assert store.finished(states=["failed"], updated_before=LATER, limit=10) == []
    assert ids(
        store.expiring(states=["failed", "awaiting_login"], before=LATER, limit=100)
    ) == ["flow-2"]


def test_a_deleted_flows_id_and_state_digest_can_be_used_again(store: Store) -> None:
    record = make_record()
    store.insert(record)
    store.delete(record.id, record.version)

    store.insert(record)

    assert store.find_by_state(record.state_hash or "") == record


def test_delete_of_another_version_conflicts_and_keeps_the_flow(store: Store) -> None:
    record = make_record()
    store.insert(record)
    store.save(next_version(record))

    with pytest.raises(VersionConflict) as caught:
        store.delete(record.id, record.version)

    assert caught.value.flow_id == record.id
    assert store.load(record.id).version == record.version + 1
    assert ids(store.list()) == [record.id]


def test_delete_of_an_unknown_flow_is_not_found(store: Store) -> None:
    with pytest.raises(FlowNotFound) as caught:
        store.delete("ghost", 1)

    assert caught.value.flow_id == "ghost"


def test_delete_leaves_a_digest_that_another_flow_took_since(store: Store) -> None:
    record = make_record("flow-1")
    store.insert(record)
    store.save(next_version(record, state_hash=None))
    newcomer = make_record("flow-2", state_hash=record.state_hash)
    store.insert(newcomer)

    store.delete("flow-1", record.version + 1)

    assert store.find_by_state(record.state_hash or "") == newcomer


# Expiring and finished flows ----------------------------------------------------------


def test_expiring_selects_by_state_and_expiry_earliest_first(store: Store) -> None:
    rows = [
        ("a", "awaiting_login", 30),
        ("b", "awaiting_login", 10),
        ("c", "client_registered", 20),
        ("d", "awaiting_login", 90),
        ("e", "api_ready", 5),
        ("f", "awaiting_login", 60),
    ]
    for flow_id, state, minutes in rows:
        store.insert(
            make_record(
                flow_id, state=state, expires_at=START + timedelta(minutes=minutes)
            )
        )
    waiting = ["awaiting_login", "client_registered"]

    found = store.expiring(
        states=waiting, before=START + timedelta(minutes=60), limit=10
    )

    assert ids(found) == ["b", "c", "a", "f"]
    assert found[0] == store.load("b")
    assert ids(
        store.expiring(states=waiting, before=START + timedelta(minutes=60), limit=2)
    ) == ["b", "c"]
    assert ids(store.expiring(states=["awaiting_login"], before=LATER, limit=100)) == [
        "b",
        "a",
        "f",
        "d",
    ]
    assert store.expiring(states=waiting, before=START, limit=10) == []
    assert store.expiring(states=[], before=LATER, limit=100) == []
    assert store.expiring(states=waiting, before=LATER, limit=0) == []


def test_expiring_follows_saves_and_breaks_ties_by_id(store: Store) -> None:
    for flow_id in ("m", "k", "z"):
        store.insert(make_record(flow_id))
    moved = store.load("z")

    store.save(next_version(moved, state="code_received"))
    store.save(next_version(store.load("m"), expires_at=START - timedelta(minutes=1)))

    assert ids(store.expiring(states=["awaiting_login"], before=LATER, limit=100)) == [
        "m",
        "k",
    ]
    assert ids(store.expiring(states=["code_received"], before=LATER, limit=100)) == [
        "z"
    ]


def test_expiring_orders_by_instant_whatever_the_offset(store: Store) -> None:
    plus_two = timezone(timedelta(hours=2))
    store.insert(make_record("utc", expires_at=START))
    store.insert(
        make_record("east", expires_at=datetime(2026, 1, 1, 13, 30, tzinfo=plus_two))
    )

    found = store.expiring(states=["awaiting_login"], before=START, limit=10)

    assert ids(found) == ["east", "utc"]


def test_finished_selects_by_state_and_last_update_oldest_first(store: Store) -> None:
    rows = [
        ("a", "failed", 3),
        ("b", "expired", 1),
        ("c", "api_ready", 0),
        ("d", "revoked", 2),
        ("e", "failed", 9),
    ]
    for flow_id, state, days in rows:
        store.insert(
            make_record(flow_id, state=state, updated_at=START + timedelta(days=days))
        )
    terminal = ["failed", "expired", "revoked"]

    found = store.finished(
        states=terminal, updated_before=START + timedelta(days=3), limit=10
    )

    assert ids(found) == ["b", "d", "a"]
    assert ids(store.finished(states=terminal, updated_before=LATER, limit=4)) == [
        "b",
        "d",
        "a",
        "e",
    ]
    assert ids(store.finished(states=["failed"], updated_before=LATER, limit=10)) == [
        "a",
        "e",
    ]
    assert store.finished(states=terminal, updated_before=START, limit=10) == []
    assert store.finished(states=terminal, updated_before=LATER, limit=0) == []


def test_finished_follows_saves_into_a_terminal_state(store: Store) -> None:
    record = make_record()
    store.insert(record)

    store.save(next_version(record, state="expired"))

    assert ids(store.finished(states=["expired"], updated_before=LATER, limit=5)) == [
        record.id
    ]
    assert (
        store.finished(states=["awaiting_login"], updated_before=LATER, limit=5) == []
    )


# Due credentials ----------------------------------------------------------------------


def test_due_selects_credentials_by_token_expiry_earliest_first(store: Store) -> None:
    rows = [
        ("a", timedelta(minutes=4), "api_ready"),
        ("b", timedelta(minutes=1), "api_ready"),
        ("c", None, "api_ready"),
        ("d", timedelta(minutes=2), "refreshing"),
        ("e", timedelta(minutes=9), "api_ready"),
        ("f", timedelta(minutes=-30), "api_ready"),
    ]
    for flow_id, expires_in, state in rows:
        store.insert(credential(flow_id, expires_in, state=state))
    window = START + timedelta(minutes=5)

    found = store.due(state="api_ready", before=window, limit=10)

    assert ids(found) == ["f", "b", "a"]
    assert found[1] == store.load("b")
    assert ids(store.due(state="api_ready", before=window, limit=2)) == ["f", "b"]
    assert ids(store.due(state="refreshing", before=window, limit=10)) == ["d"]
    assert ids(store.due(state="api_ready", before=LATER, limit=10)) == [
        "f",
        "b",
        "a",
        "e",
    ]
    assert store.due(state="api_ready", before=window, limit=0) == []


def test_due_pages_from_where_the_last_page_ended(store: Store) -> None:
    # Equal expiries are ordered by id, so a page may end between them.
    for flow_id in ("x", "w", "v", "u"):
        store.insert(credential(flow_id, timedelta(minutes=1)))
    store.insert(credential("t", timedelta(minutes=2)))
    store.insert(credential("s", timedelta(seconds=30)))

    pages: list[list[str]] = []
    after = None
    for _ in range(10):
        page = store.due(state="api_ready", before=LATER, limit=2, after=after)
        if not page:
            break
        pages.append(ids(page))
        after = due_key(page[-1])

    assert pages == [["s", "u"], ["v", "w"], ["x", "t"]]


def test_due_follows_saves_of_the_token_and_the_state(store: Store) -> None:
    first = credential("first", timedelta(minutes=1))
    second = credential("second", timedelta(minutes=2))
    third = credential("third", timedelta(minutes=3), state="awaiting_login")
    for record in (first, second, third):
        store.insert(record)
    window = START + timedelta(minutes=5)

    store.save(next_version(first, state="refreshing"))
    later = TokenInfo("Bearer", issued_at=START, expires_at=START + timedelta(hours=1))
    store.save(next_version(second, token=later))
    store.save(next_version(third, state="api_ready"))

    assert ids(store.due(state="api_ready", before=window, limit=10)) == ["third"]
    assert ids(store.due(state="refreshing", before=window, limit=10)) == ["first"]
    assert ids(store.due(state="api_ready", before=LATER, limit=10)) == [
        "third",
        "second",
    ]


def test_due_orders_by_instant_whatever_the_offset(store: Store) -> None:
    plus_two = timezone(timedelta(hours=2))
    east = datetime(2026, 1, 1, 13, 30, tzinfo=plus_two)
    store.insert(credential("utc", timedelta(0)))
    store.insert(
        credential(
            "east",
            None,
            token=TokenInfo("Bearer", issued_at=START, expires_at=east),
        )
    )

    assert ids(store.due(state="api_ready", before=START, limit=10)) == [
        "east",
        "utc",
    ]


# Claiming due credentials -------------------------------------------------------------


def begin(record: FlowRecord) -> FlowRecord:
    """What the engine's begin_refresh would make of a due credential."""
    return next_version(record, state="refreshing", lease_until=LATER)


def test_claim_due_saves_what_claim_returns_and_reports_every_flow(
    store: Store,
) -> None:
    for flow_id, minutes in (("a", 3), ("b", 1), ("c", 2), ("d", 60)):
        store.insert(credential(flow_id, timedelta(minutes=minutes)))
    seen: list[FlowRecord] = []

    def claim(record: FlowRecord) -> FlowRecord | None:
        seen.append(record)
        return None if record.id == "c" else begin(record)

    claimed = store.claim_due(
        state="api_ready", before=START + timedelta(minutes=5), limit=10, claim=claim
    )

    assert [(c.found.id, c.saved is not None) for c in claimed] == [
        ("b", True),
        ("c", False),
        ("a", True),
    ]
    assert [c.found for c in claimed] == seen
    assert claimed[0].found == credential("b", timedelta(minutes=1))
    assert claimed[0].saved == store.load("b") == begin(claimed[0].found)
    assert store.load("c") == credential("c", timedelta(minutes=2))
    assert ids(store.due(state="api_ready", before=LATER, limit=10)) == ["c", "d"]


def test_claim_due_honours_the_limit_and_the_page_position(store: Store) -> None:
    for flow_id, minutes in (("a", 1), ("b", 2), ("c", 3), ("d", 4)):
        store.insert(credential(flow_id, timedelta(minutes=minutes)))

    claimed = store.claim_due(
        state="api_ready",
        before=LATER,
        limit=2,
        claim=begin,
        after=due_key(store.load("a")),
    )

    assert [c.found.id for c in claimed] == ["b", "c"]
    assert ids(store.due(state="api_ready", before=LATER, limit=10)) == ["a", "d"]
    assert store.claim_due(state="api_ready", before=LATER, limit=0, claim=begin) == []


def test_claim_due_reports_a_save_that_is_not_the_next_version(store: Store) -> None:
    store.insert(credential("a", timedelta(minutes=1)))

    claimed = store.claim_due(
        state="api_ready",
        before=LATER,
        limit=5,
        claim=lambda record: replace(begin(record), version=record.version + 2),
    )

    assert [(c.found.id, c.saved) for c in claimed] == [("a", None)]
    assert store.load("a") == credential("a", timedelta(minutes=1))


def test_of_many_threads_claiming_at_once_each_flow_goes_to_exactly_one(
    store: Store,
) -> None:
    flow_ids = [f"due-{n:02}" for n in range(40)]
    for n, flow_id in enumerate(flow_ids):
        store.insert(credential(flow_id, timedelta(seconds=n)))
    taken: list[list[str]] = [[] for _ in range(4)]

    def work(index: int) -> None:
        # Each claimer pages through everything due, as a refresh run does.
        after = None
        for _ in range(len(flow_ids)):
            claimed = store.claim_due(
                state="api_ready", before=LATER, limit=3, claim=begin, after=after
            )
            if not claimed:
                return
            taken[index] += [c.found.id for c in claimed if c.saved is not None]
            after = due_key(claimed[-1].found)

    outcomes = race(4, work)

    assert outcomes == [None] * 4
    every = sorted(flow_id for claimer in taken for flow_id in claimer)
    assert every == flow_ids
    assert store.due(state="api_ready", before=LATER, limit=100) == []
    assert {store.load(flow_id).version for flow_id in flow_ids} == {2}
