"""What the Redis stores add to the contract: their keys, start-up and names."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from flow.errors import ConfigurationError, CorruptRecord, StoreError
from flow.record import FlowRecord
from flow.stores import AsyncRedisStore, RedisStore
from tests import canary
from tests.stores.conftest import redis_client
from tests.stores.records import (
    START,
    assert_no_canary,
    credential,
    make_record,
    next_version,
)

PASSWORD = canary.canary("redis-password")


def keys(url: str, prefix: str) -> set[str]:
    with redis_client(url) as client:
        return set(client.scan_iter(match=f"{prefix}*", count=1000))


def test_meta_holds_the_schema_version(redis_url: str, redis_prefix: str) -> None:
    RedisStore(redis_url, prefix=redis_prefix).close()

    with redis_client(redis_url) as client:
        assert client.hgetall(f"{redis_prefix}meta") == {"schema_version": "1"}


def test_every_key_is_under_the_prefix_and_indexes_follow_saves(
    redis_url: str, redis_prefix: str
) -> None:
    store = RedisStore(redis_url, prefix=redis_prefix)
    record = make_record("f1", provider="github")
    try:
        store.insert(record)
        store.save(next_version(record, state="api_ready", state_hash=None))
    finally:
        store.close()

    # The digest and the old state's indexes are gone; nothing is left outside.
    assert keys(redis_url, redis_prefix) == {
        f"{redis_prefix}meta",
        f"{redis_prefix}flow:f1",
        f"{redis_prefix}updated",
        f"{redis_prefix}in-state:api_ready",
        f"{redis_prefix}expires-in:api_ready",
        f"{redis_prefix}by-provider:github",
    }


def test_a_credential_is_indexed_by_token_expiry_and_delete_leaves_only_meta(
    redis_url: str, redis_prefix: str
) -> None:
    store = RedisStore(redis_url, prefix=redis_prefix)
    record = credential("f1", timedelta(minutes=5))
    try:
        store.insert(record)
        indexed = keys(redis_url, redis_prefix)
        store.delete(record.id, record.version)
    finally:
        store.close()

    assert f"{redis_prefix}token-expires-in:api_ready" in indexed
    assert keys(redis_url, redis_prefix) == {f"{redis_prefix}meta"}


def test_claim_due_passes_over_a_flow_another_worker_marked(
    redis_url: str, redis_prefix: str
) -> None:
    store = RedisStore(redis_url, prefix=redis_prefix)
    for n, flow_id in enumerate(["held", "free"]):
        store.insert(credential(flow_id, timedelta(minutes=n)))
    with redis_client(redis_url) as client:
        client.set(f"{redis_prefix}claim:held", "1", px=30_000)

    def begin(record: FlowRecord) -> FlowRecord:
        return next_version(record, state="refreshing")

    try:
        claimed = store.claim_due(
            state="api_ready", before=START + timedelta(hours=1), limit=5, claim=begin
        )
        again = store.claim_due(
            state="api_ready", before=START + timedelta(hours=1), limit=5, claim=begin
        )
        assert [c.found.id for c in claimed] == ["free"]
        assert again == []
        assert store.load("held").state == "api_ready"
    finally:
        store.close()
    with redis_client(redis_url) as client:
        # The marker expires by itself: a worker that dies cannot keep it.
        assert 0 < client.pttl(f"{redis_prefix}claim:free") <= 30_000


def test_a_declined_flow_stays_marked_so_other_workers_pass_over_it(
    redis_url: str, redis_prefix: str
) -> None:
    store = RedisStore(redis_url, prefix=redis_prefix)
    store.insert(credential("declined", timedelta(minutes=1)))

    try:
        first = store.claim_due(
            state="api_ready",
            before=START + timedelta(hours=1),
            limit=5,
            claim=lambda _: None,
        )
        second = store.due(
            state="api_ready", before=START + timedelta(hours=1), limit=5
        )
    finally:
        store.close()

    assert [(c.found.id, c.saved) for c in first] == [("declined", None)]
    assert [r.id for r in second] == ["declined"]


def test_keys_of_a_newer_flow_are_refused(redis_url: str, redis_prefix: str) -> None:
    with redis_client(redis_url) as client:
        client.hset(f"{redis_prefix}meta", "schema_version", "99")

    with pytest.raises(StoreError) as caught:
        RedisStore(redis_url, prefix=redis_prefix)
    late = AsyncRedisStore(redis_url, prefix=redis_prefix)

    async def first_call() -> None:
        try:
            await late.list()
        finally:
            await late.close()

    with pytest.raises(StoreError) as caught_late:
        asyncio.run(first_call())

    for error in (caught.value, caught_late.value):
        assert "99" in str(error)
        assert "upgrade flow" in str(error)


def test_a_flow_hash_without_its_body_is_a_corrupt_record(
    redis_url: str, redis_prefix: str
) -> None:
    store = RedisStore(redis_url, prefix=redis_prefix)
    record = make_record()
    store.insert(record)
    with redis_client(redis_url) as client:
        client.hdel(f"{redis_prefix}flow:{record.id}", "body")

    try:
        with pytest.raises(CorruptRecord) as caught:
            store.load(record.id)
        with pytest.raises(CorruptRecord):
            store.list()
    finally:
        store.close()

    canary.record_text(caught.value)
    assert caught.value.flow_id == record.id
    assert_no_canary(str(caught.value))


def test_repr_shows_where_but_not_the_password() -> None:
    late = AsyncRedisStore(f"redis://:{PASSWORD}@127.0.0.1:1/3", prefix="app:")

    shown = repr(late)

    canary.record_text(late)
    assert PASSWORD not in shown
    assert shown == "AsyncRedisStore(host='127.0.0.1', port=1, db=3, prefix='app:')"
    asyncio.run(late.close())


def test_an_unreachable_server_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError) as caught:
        RedisStore(f"redis://:{PASSWORD}@127.0.0.1:1/0", timeout=1)

    canary.record_text(caught.value)
    assert "127.0.0.1" in str(caught.value)
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "prefix"),
    [
        (f"http://:{PASSWORD}@127.0.0.1/0", "flow:"),
        ("redis://127.0.0.1:6379/0", ""),
    ],
)
def test_malformed_settings_are_refused_before_connecting(
    url: str, prefix: str
) -> None:
    for kind in (RedisStore, AsyncRedisStore):
        with pytest.raises(ConfigurationError) as caught:
            kind(url, prefix=prefix)

        canary.record_text(caught.value)
        assert PASSWORD not in str(caught.value)
