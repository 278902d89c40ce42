"""An in-memory store, for tests and short-lived scripts.

Records are kept encoded, exactly as a database would keep them, so that the memory
store exercises the same schema and never hands out a record another caller can
mutate.
"""

from __future__ import annotations

import threading

from ..errors import FlowNotFound, VersionConflict
from ..record import Encoded, FlowRecord, decode, encode


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

    def list(
        self, *, state: str | None = None, provider: str | None = None, limit: int = 100
    ) -> list[FlowRecord]:
        with self._lock:
            rows = list(self._rows.items())
        records = [decode(e.body, e.secrets, flow_id=i) for i, (_, _, e) in rows]
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
