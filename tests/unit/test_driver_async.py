"""The async driver runs the same engine: the same outcomes through asyncio."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flow import AsyncDriver, MemoryStore, SQLiteStore
from flow.errors import AccessDenied, FlowNotFound
from tests import canary
from tests.unit.flowkit import Clock, FakeAS, callback_for, confidential_client, engine


def test_async_flow_completes_and_a_repeat_is_already_handled(tmp_path: Path) -> None:
    fake, clock = FakeAS(), Clock()

    async def scenario() -> tuple[str, str, str]:
        store = SQLiteStore(tmp_path / "flows.db")
        async with AsyncDriver(
            store, engine=engine(clock), http=fake.async_client()
        ) as driver:
            started = await driver.start(
                confidential_client(),
                fake.server,
                client_secret=canary.canary("secret"),
                scopes=["openid"],
            )
            callback = callback_for(started)
            first = await driver.resume(callback)
            again = await driver.resume(callback)
            record = await driver.get(started.flow_id)
        return first.status, again.status, record.state

    assert asyncio.run(scenario()) == ("completed", "already_handled", "api_ready")
    assert len(fake.token_requests) == 1


def test_async_concurrent_duplicates_send_the_code_once() -> None:
    fake, clock = FakeAS(), Clock()

    async def scenario() -> list[str]:
        driver = AsyncDriver(
            MemoryStore(), engine=engine(clock), http=fake.async_client()
        )
        started = await driver.start(
            confidential_client(),
            fake.server,
            client_secret=canary.canary("secret"),
        )
        callback = callback_for(started)
        outcomes = await asyncio.gather(*(driver.resume(callback) for _ in range(5)))
        await driver.aclose()
        return [o.status for o in outcomes]

    statuses = asyncio.run(scenario())

    assert len(fake.token_requests) == 1
    assert statuses.count("completed") == 1


def test_async_denial_and_unknown_flow_raise_typed_errors() -> None:
    fake, clock = FakeAS(), Clock()

    async def scenario() -> str:
        driver = AsyncDriver(
            MemoryStore(), engine=engine(clock), http=fake.async_client()
        )
        started = await driver.start(
            confidential_client(), fake.server, client_secret=canary.canary("secret")
        )
        with pytest.raises(AccessDenied):
            await driver.resume(callback_for(started, code=None, error="access_denied"))
        with pytest.raises(FlowNotFound):
            await driver.resume("state=unknown&code=x")
        record = await driver.get(started.flow_id)
        await driver.aclose()
        return record.state

    assert asyncio.run(scenario()) == "denied"
    assert fake.token_requests == []
