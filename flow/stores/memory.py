"""An in-memory store, for tests and short-lived scripts.

Records are kept encoded, exactly as a database would keep them, so that the memory
store exercises the same schema and never hands out a record another caller can
mutate. The maintenance queries decode every flow: fine for what this store is for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable
from datetime import datetime

from ..errors import FlowNotFound, VersionConflict
from ..record import Encoded, FlowRecord, decode, encode
from .base import Claim, Claimed, DueKey, due_key


class MemoryStore:
    """A thread-safe in-process store. Everything is lost when the process ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, tuple[int, str | None, Encoded]] = {}
        self._by_state: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"MemoryStore(flows={len(self._rows)})"

    def insert(self, record: FlowRecord) -> None:
        encoded = encode(record)
        with self._lock:
            if record.id in self._rows:
                raise VersionConflict("a flow with this id exists", flow_id=record.id)
            if record.state_hash is not None and record.state_hash in self._by_state:
                raise VersionConflict(
                    "another flow uses this state value", flow_id=record.id
                )
            self._rows[record.id] = (record.version, record.state_hash, encoded)
            if record.state_hash is not None:
                self._by_state[record.state_hash] = record.id

    def save(self, record: FlowRecord) -> None:
        encoded = encode(record)
        with self._lock:
            self._save(record, encoded)

    def _save(self, record: FlowRecord, encoded: Encoded) -> None:
        # The compare-and-set itself; the caller holds the lock.
        row = self._rows.get(record.id)
        if row is None:
            raise FlowNotFound("no stored flow has this id", flow_id=record.id)
        if row[0] != record.version - 1:
            raise VersionConflict(
                f"stored version is {row[0]}, not {record.version - 1}",
                flow_id=record.id,
            )
        owner = self._by_state.get(record.state_hash or "")
        if owner is not None and owner != record.id:
            raise VersionConflict(
                "another flow uses this state value", flow_id=record.id
            )
        if row[1] is not None and row[1] != record.state_hash:
            self._by_state.pop(row[1], None)
        if record.state_hash is not None:
            self._by_state[record.state_hash] = record.id
        self._rows[record.id] = (record.version, record.state_hash, encoded)

    def load(self, flow_id: str) -> FlowRecord:
        with self._lock:
            row = self._rows.get(flow_id)
        if row is None:
            raise FlowNotFound("no stored flow has this id", flow_id=flow_id)
        return decode(row[2].body, row[2].secrets, flow_id=flow_id)

    def find_by_state(self, state_hash: str) -> FlowRecord:
        with self._lock:
            flow_id = self._by_state.get(state_hash)
        if flow_id is None:
            raise FlowNotFound("no flow waits for this callback's state")
        return self.load(flow_id)

    def delete(self, flow_id: str, version: int) -> None:
        with self._lock:
            row = self._rows.get(flow_id)
            if row is None:
                raise FlowNotFound("no stored flow has this id", flow_id=flow_id)
            if row[0] != version:
                raise VersionConflict(
                    f"stored version is {row[0]}, not {version}", flow_id=flow_id
                )
            del self._rows[flow_id]
            if row[1] is not None and self._by_state.get(row[1]) == flow_id:
                del self._by_state[row[1]]

    def expiring(
        self, *, states: Collection[str], before: datetime, limit: int
    ) -> list[FlowRecord]:
        with self._lock:
            records = self._decoded()
        return _oldest(
            (r for r in records if r.state in states and r.expires_at <= before),
            key=lambda r: (r.expires_at, r.id),
            limit=limit,
        )

    def finished(
        self, *, states: Collection[str], updated_before: datetime, limit: int
    ) -> list[FlowRecord]:
        with self._lock:
            records = self._decoded()
        return _oldest(
            (
                r
                for r in records
                if r.state in states and r.updated_at <= updated_before
            ),
            key=lambda r: (r.updated_at, r.id),
            limit=limit,
        )

    def due(
        self,
        *,
        state: str,
        before: datetime,
        limit: int,
        after: DueKey | None = None,
    ) -> list[FlowRecord]:
        with self._lock:
            return self._due(state, before, limit, after)

    def claim_due(
        self,
        *,
        state: str,
        before: datetime,
        limit: int,
        claim: Claim,
        after: DueKey | None = None,
    ) -> list[Claimed]:
        # One lock over the selection and the saves: a second claimer waits for
        # this one and then finds the claimed flows moved on.
        claimed: list[Claimed] = []
        with self._lock:
            for found in self._due(state, before, limit, after):
                moved = claim(found)
                if moved is not None:
                    try:
                        self._save(moved, encode(moved))
                    except (VersionConflict, FlowNotFound):
                        moved = None
                claimed.append(Claimed(found, moved))
        return claimed

    def _due(
        self, state: str, before: datetime, limit: int, after: DueKey | None
    ) -> list[FlowRecord]:
        # The caller holds the lock.
        chosen = []
        for record in self._decoded():
            expiry = record.token.expires_at if record.token else None
            if record.state != state or expiry is None or expiry > before:
                continue
            if after is None or due_key(record) > after:
                chosen.append(record)
        return _oldest(chosen, key=due_key, limit=limit)

    def _decoded(self) -> list[FlowRecord]:
        # The caller holds the lock.
        return [
            decode(encoded.body, encoded.secrets, flow_id=flow_id)
            for flow_id, (_, _, encoded) in self._rows.items()
        ]

    def list(
        self, *, state: str | None = None, provider: str | None = None, limit: int = 100
    ) -> list[FlowRecord]:
        with self._lock:
            records = self._decoded()
        chosen = [
            r
            for r in records
            if (state is None or r.state == state)
            and (provider is None or r.provider == provider)
        ]
        chosen.sort(key=lambda r: r.updated_at, reverse=True)
        return chosen[:limit]

    def close(self) -> None:
        """Nothing to release."""


def _oldest(
    records: Iterable[FlowRecord],
    *,
    key: Callable[[FlowRecord], tuple[datetime, str]],
    limit: int,
) -> list[FlowRecord]:
    return sorted(records, key=key)[: max(limit, 0)]
