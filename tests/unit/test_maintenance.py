"""``gc`` and ``refresh_due``: store upkeep through the engine, with a fake clock."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from flow import (
    AsyncDriver,
    Driver,
    FlowNotFound,
    FlowRecord,
    GcSummary,
    MemoryStore,
    RefreshSummary,
    SQLiteStore,
)
from flow.errors import ConfigurationError
from flow.stores import Store
from tests import canary
from tests.unit.flowkit import (
    Clock,
    FakeAS,
    RotatingAS,
    callback_for,
    confidential_client,
    credential_flow,
    engine,
)

Events = Callable[[], list[dict[str, Any]]]

#: The server the flows start with; RotatingAS answers its token endpoint.
SERVER = FakeAS().server


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server() -> RotatingAS:
    return RotatingAS()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return SQLiteStore(tmp_path / "flows.db")


def driver_for(store: Store, server: RotatingAS, clock: Clock) -> Driver:
    return Driver(store, engine=engine(clock), http=server.client())


def start(driver: Driver, count: int) -> list[str]:
    """Flows waiting for their user, who will never come back."""
    return [
        driver.start(
            confidential_client(), SERVER, client_secret=canary.canary("secret")
        ).flow_id
        for _ in range(count)
    ]


def finish(driver: Driver, count: int) -> list[str]:
    """Flows taken to api_ready through a callback."""
    flow_ids = []
    for _ in range(count):
        started = driver.start(
            confidential_client(), SERVER, client_secret=canary.canary("secret")
        )
        driver.resume(callback_for(started))
        flow_ids.append(started.flow_id)
    return flow_ids


def rotate(server: RotatingAS, token: str) -> tuple[int, dict[str, Any]]:
    """The rotating answer, from inside a custom one."""
    with server.lock:
        if token not in server.live:
            return 400, {"error": "invalid_grant"}
        server.live.discard(token)
    return 200, server.issue()


def triggers(record: FlowRecord) -> list[str]:
    return [step.trigger for step in record.history]


# gc: expiring abandoned flows ---------------------------------------------------------


def test_gc_expires_abandoned_flows_and_leaves_live_ones(
    store: Store, server: RotatingAS, clock: Clock, emitted: Events
) -> None:
    driver = driver_for(store, server, clock)
    abandoned = start(driver, 2)
    finished = finish(driver, 1)
    clock.advance(minutes=11)
    fresh = start(driver, 1)

    summary = driver.gc()

    assert summary == GcSummary(expired=2, deleted=0, skipped=0, batches=1)
    for flow_id in abandoned:
        record = driver.get(flow_id)
        assert (record.state, triggers(record)[-1]) == ("expired", "expire")
    assert [driver.get(f).state for f in finished + fresh] == [
        "api_ready",
        "awaiting_login",
    ]
    expired = [
        event["flow_id"]
        for event in emitted()
        if event["event"] == "flow.transition" and event["trigger"] == "expire"
    ]
    assert sorted(expired) == sorted(abandoned)


def test_a_flow_ended_by_gc_keeps_no_verifier_or_code(
    store: Store, server: RotatingAS, clock: Clock
) -> None:
    driver = driver_for(store, server, clock)
    (flow_id,) = start(driver, 1)
    assert driver.get(flow_id).secrets.code_verifier is not None
    clock.advance(minutes=11)

    driver.gc()

    secrets = driver.get(flow_id).secrets
    assert (secrets.code_verifier, secrets.code) == (None, None)
    assert secrets.client_secret is not None


def test_a_callback_after_gc_gets_an_answer_and_sends_nothing(
    store: Store, server: RotatingAS, clock: Clock
) -> None:
    driver = driver_for(store, server, clock)
    started = driver.start(
        confidential_client(), SERVER, client_secret=canary.canary("s")
    )
    clock.advance(minutes=11)
    driver.gc()

    outcome = driver.resume(callback_for(started))

    assert (outcome.state, outcome.status) == ("expired", "already_handled")
    assert server.refreshes == {}


# gc: deleting finished flows ----------------------------------------------------------


def test_gc_deletes_finished_flows_once_their_retention_passed(
    store: Store, server: RotatingAS, clock: Clock, emitted: Events
) -> None:
    driver = driver_for(store, server, clock)
    abandoned = start(driver, 2)
    (finished,) = finish(driver, 1)
    clock.advance(minutes=11)
    driver.gc(retention=timedelta(days=7))
    clock.advance(days=6)

    early = driver.gc(retention=timedelta(days=7))
    clock.advance(days=1)
    late = driver.gc(retention=timedelta(days=7))

    assert (early.deleted, late.deleted) == (0, 2)
    for flow_id in abandoned:
        with pytest.raises(FlowNotFound):
            driver.get(flow_id)
    assert driver.get(finished).state == "api_ready"
    deleted = [e for e in emitted() if e["event"] == "flow.deleted"]
    assert sorted(e["flow_id"] for e in deleted) == sorted(abandoned)
    assert {e["state"] for e in deleted} == {"expired"}


def test_gc_with_no_retention_deletes_what_it_expired_in_the_same_run(
    store: Store, server: RotatingAS, clock: Clock
) -> None:
    driver = driver_for(store, server, clock)
    start(driver, 3)
    clock.advance(minutes=11)

    summary = driver.gc(retention=timedelta(0))

    assert (summary.expired, summary.deleted) == (3, 3)
    assert store.list() == []


def test_gc_works_in_bounded_batches_and_reports_each(
    store: Store, server: RotatingAS, clock: Clock
) -> None:
    driver = driver_for(store, server, clock)
    start(driver, 5)
    clock.advance(minutes=11)
    seen: list[GcSummary] = []

    first = driver.gc(limit=3, batch_size=2, progress=seen.append)
    rest = driver.gc(batch_size=2)

    assert (first.expired, first.batches) == (3, 2)
    assert [s.expired for s in seen] == [2, 3]
    assert rest.expired == 2
    assert [r.state for r in store.list()] == ["expired"] * 5


class RacingStore(MemoryStore):
    """A memory store where another process moves the first flow of every page
    just after gc read it."""

    def expiring(self, **query: Any) -> list[FlowRecord]:
        found = super().expiring(**query)
        if found:
            first = found[0]
            self.save(replace(first, version=first.version + 1, reason="moved"))
        return found

    def finished(self, **query: Any) -> list[FlowRecord]:
        found = super().finished(**query)
        if found:
            self.delete(found[0].id, found[0].version)
        return found


def test_gc_skips_flows_another_process_changed_meanwhile(
    server: RotatingAS, clock: Clock
) -> None:
    store = RacingStore()
    driver = driver_for(store, server, clock)
    start(driver, 3)
    clock.advance(minutes=11)

    summary = driver.gc(retention=timedelta(0))

    # Expiring: one of three moved on. Deleting: one of two deleted by "them".
    assert summary == GcSummary(expired=2, deleted=1, skipped=2, batches=2)


@pytest.mark.parametrize(
    "options",
    [
        {"retention": timedelta(seconds=-1)},
        {"limit": -1},
        {"batch_size": 0},
    ],
)
def test_gc_refuses_options_that_make_no_sense(
    store: Store, server: RotatingAS, clock: Clock, options: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError):
        driver_for(store, server, clock).gc(**options)


def test_async_gc_expires_and_deletes(
    tmp_path: Path, server: RotatingAS, clock: Clock
) -> None:
    store = SQLiteStore(tmp_path / "a.db")
    start(driver_for(store, server, clock), 2)
    clock.advance(minutes=11)

    async def scenario() -> GcSummary:
        async with AsyncDriver(store, engine=engine(clock)) as driver:
            return await driver.gc(retention=timedelta(0))

    assert asyncio.run(scenario()) == GcSummary(2, 2, 0, 2)


# refresh_due --------------------------------------------------------------------------


def test_refresh_due_refreshes_each_credential_in_the_window_once(
    store: Store, server: RotatingAS, clock: Clock
) -> None:
    driver = driver_for(store, server, clock)
    flow_ids = finish(driver, 3)
    before = {f: driver.get(f).secrets for f in flow_ids}
    clock.advance(minutes=8)  # the 10-minute tokens expire within 5 minutes

    summary = driver.refresh_due()
    again = driver.refresh_due()

    assert summary == RefreshSummary(refreshed=3, batches=1)
    assert again == RefreshSummary()
    assert sorted(server.refreshes) == sorted(
        s.refresh_token or "" for s in before.values()
    )
    assert set(server.refreshes.values()) == {1}
    for flow_id in flow_ids:
        record = driver.get(flow_id)
        assert triggers(record)[-2:] == ["begin_refresh", "complete_refresh"]
        assert record.secrets.refresh_token != before[flow_id].refresh_token
        assert record.secrets.access_token != before[flow_id].access_token


def test_refresh_due_leaves_tokens_outside_the_window(
    store: Store, server: RotatingAS, clock: Clock
) -> None:
    driver = driver_for(store, server, clock)
    finish(driver, 2)
    clock.advance(minutes=4)

    summary = driver.refresh_due(window=timedelta(minutes=5))

    assert summary == RefreshSummary()
    assert server.refreshes == {}


def test_invalid_grant_requires_a_new_login_and_is_never_retried(
    store: Store, server: RotatingAS, clock: Clock
) -> None:
    driver = driver_for(store, server, clock)
    (flow_id,) = finish(driver, 1)
    server.answer = lambda _: (400, {"error": "invalid_grant"})
    clock.advance(minutes=8)

    summary = driver.refresh_due()
    again = driver.refresh_due()

    assert summary.reauth_required == {flow_id: "invalid_grant"}
    assert again == RefreshSummary()
    record = driver.get(flow_id)
    assert (record.state, record.secrets.refresh_token) == ("reauth_required", None)
    assert sum(server.refreshes.values()) == 1


def test_a_failed_refresh_keeps_the_credential_and_is_not_retried_in_the_run(
    store: Store, server: RotatingAS, clock: Clock
) -> None:
    driver = driver_for(store, server, clock)
    failing, working = finish(driver, 2)
    doomed = driver.get(failing).secrets.refresh_token
    clock.advance(minutes=8)
    server.answer = lambda token: (
        (500, {"error": "server_error"}) if token == doomed else rotate(server, token)
    )

    # One flow per batch: the failed one is behind the page position afterwards.
    summary = driver.refresh_due(batch_size=1)

    assert summary.failed == {failing: "server_error"}
    assert summary.refreshed == 1
    assert server.refreshes[doomed or ""] == 1
    record = driver.get(failing)
    assert (record.state, triggers(record)[-2:]) == (
        "api_ready",
        ["begin_refresh", "abort_refresh"],
    )
    assert driver.get(working).state == "api_ready"


def test_a_credential_without_refresh_token_lapses_once_expired_only(
    store: Store, server: RotatingAS, clock: Clock
) -> None:
    expiry = clock.now + timedelta(minutes=2)
    for flow_id, expires_at in (
        ("expired", clock.now - timedelta(minutes=1)),
        ("valid-1", expiry),
        ("valid-2", expiry),
        ("renewable", expiry + timedelta(seconds=1)),
    ):
        store.insert(
            credential_flow(
                flow_id,
                "https://as.test/token",
                expires_at,
                refresh_token=(
                    server.issue()["refresh_token"] if flow_id == "renewable" else None
                ),
            )
        )
    driver = driver_for(store, server, clock)

    # Pages of one: the valid flows left alone must not hold up the one behind.
    summary = driver.refresh_due(batch_size=1)

    assert summary == RefreshSummary(
        refreshed=1,
        reauth_required={"expired": "access_token_expired"},
        skipped=2,
        batches=4,
    )
    lapsed = driver.get("expired")
    assert (lapsed.state, triggers(lapsed)[-1]) == ("reauth_required", "lapse")
    assert lapsed.secrets.access_token is None
    assert driver.get("valid-1") == store.load("valid-1")
    assert driver.get("valid-1").version == 5


def test_refreshes_run_concurrently_up_to_the_limit(
    store: Store, server: RotatingAS, clock: Clock
) -> None:
    driver = driver_for(store, server, clock)
    finish(driver, 8)
    clock.advance(minutes=8)
    # Each refresh waits until four are in flight: four must run at once.
    server.gate = threading.Barrier(4)

    summary = driver.refresh_due(concurrency=4)

    assert summary.refreshed == 8
    assert server.most_in_flight == 4


def test_a_refresh_that_waited_past_half_its_lease_is_not_sent(
    store: Store, server: RotatingAS, clock: Clock
) -> None:
    driver = driver_for(store, server, clock)
    first, second = finish(driver, 2)
    clock.advance(minutes=8)

    def slow(token: str) -> tuple[int, dict[str, Any]]:
        clock.advance(seconds=90)  # the first refresh takes most of the lease
        return rotate(server, token)

    server.answer = slow

    summary = driver.refresh_due(concurrency=1)

    # Both are due at the same instant; which goes first depends on their ids.
    last_steps = sorted(
        (driver.get(flow_id).state, sorted(driver.get(flow_id).history[-1].detail))
        for flow_id in (first, second)
    )
    assert (summary.refreshed, summary.skipped) == (1, 1)
    assert sum(server.refreshes.values()) == 1
    assert last_steps == [("api_ready", ["error"]), ("api_ready", ["rotated"])]
    details = [dict(driver.get(i).history[-1].detail) for i in (first, second)]
    assert {"error": "refresh_deferred"} in details


def test_drivers_sharing_a_store_refresh_each_credential_once(
    tmp_path: Path, server: RotatingAS, clock: Clock
) -> None:
    db = tmp_path / "shared.db"
    flow_ids = finish(driver_for(SQLiteStore(db), server, clock), 12)
    clock.advance(minutes=8)
    drivers = [driver_for(SQLiteStore(db), server, clock) for _ in range(4)]
    barrier = threading.Barrier(len(drivers))
    summaries: list[RefreshSummary] = []

    def work(driver: Driver) -> None:
        barrier.wait()
        summaries.append(driver.refresh_due(batch_size=2, concurrency=2))

    threads = [threading.Thread(target=work, args=(d,)) for d in drivers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sum(s.refreshed for s in summaries) == 12
    assert [s.failed for s in summaries] == [{}] * 4
    assert len(server.refreshes) == 12
    assert set(server.refreshes.values()) == {1}
    store = SQLiteStore(db)
    assert {store.load(f).state for f in flow_ids} == {"api_ready"}


def test_async_refresh_due_runs_refreshes_as_tasks(
    tmp_path: Path, server: RotatingAS, clock: Clock
) -> None:
    store = SQLiteStore(tmp_path / "a.db")
    finish(driver_for(store, server, clock), 6)
    clock.advance(minutes=8)
    in_flight = {"now": 0, "most": 0}

    async def handler(request: httpx.Request) -> httpx.Response:
        in_flight["now"] += 1
        in_flight["most"] = max(in_flight["most"], in_flight["now"])
        await asyncio.sleep(0.01)
        in_flight["now"] -= 1
        return server.handler(request)

    async def scenario() -> RefreshSummary:
        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        async with AsyncDriver(store, engine=engine(clock), http=http) as driver:
            summary = await driver.refresh_due(concurrency=3)
        await http.aclose()
        return summary

    summary = asyncio.run(scenario())

    assert summary == RefreshSummary(refreshed=6, batches=1)
    assert 1 < in_flight["most"] <= 3
    assert set(server.refreshes.values()) == {1}


@pytest.mark.parametrize(
    "options",
    [
        {"window": timedelta(seconds=-1)},
        {"concurrency": 0},
        {"batch_size": 0},
        {"limit": -1},
    ],
)
def test_refresh_due_refuses_options_that_make_no_sense(
    store: Store, server: RotatingAS, clock: Clock, options: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError):
        driver_for(store, server, clock).refresh_due(**options)


def test_a_run_reads_a_bounded_number_of_batches(
    store: Store, server: RotatingAS, clock: Clock
) -> None:
    driver = driver_for(store, server, clock)
    start(driver, 3)
    clock.advance(minutes=11)

    summary = driver.gc(limit=1_000_000, batch_size=1, retention=timedelta(days=1))

    assert (summary.expired, summary.batches) == (3, 3)


def test_summaries_are_plain_data() -> None:
    summary = RefreshSummary(refreshed=1, failed={"f": "server_error"})

    assert asdict(summary) == {
        "refreshed": 1,
        "reauth_required": {},
        "failed": {"f": "server_error"},
        "skipped": 0,
        "batches": 0,
    }
