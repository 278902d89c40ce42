"""Records for store tests: canary secrets, a waiting flow, the next version."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from flow.record import Client, FlowRecord, Secrets, ServerMetadata, TokenInfo
from tests import canary

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
canary.register(*CANARIES.values())


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


def credential(
    flow_id: str, expires_in: timedelta | None, **changes: Any
) -> FlowRecord:
    """A flow in api_ready whose access token expires ``expires_in`` after START."""
    expires_at = None if expires_in is None else START + expires_in
    changes.setdefault(
        "token", TokenInfo("Bearer", issued_at=START, expires_at=expires_at)
    )
    changes.setdefault("state", "api_ready")
    changes.setdefault("state_hash", None)
    return make_record(flow_id, **changes)


def next_version(record: FlowRecord, **changes: Any) -> FlowRecord:
    """What a committed transition would save after ``record``."""
    changes.setdefault("updated_at", record.updated_at + timedelta(seconds=1))
    return replace(record, version=record.version + 1, **changes)


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


def assert_no_canary(text: str) -> None:
    leaked = [value for value in CANARIES.values() if value in text]
    assert leaked == [], f"secret values leaked: {leaked}"
