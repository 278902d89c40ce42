"""The Redis stores' key layout, and each operation as a program of Lua scripts.

Every read and write is one Lua script, so each runs atomically in one round trip:
Redis runs a script to its end before serving any other command ("Scripting with
Lua" in the Redis manual). That atomicity is the compare-and-set: the script reads
the stored version and writes only over the expected one.

Keys, under the store's prefix ``p``:

* ``{p}meta``: a hash holding ``schema_version``;
* ``{p}flow:{id}``: a hash per flow (``version``, ``state``, ``spec``, ``provider``,
  ``state_hash``, ``expires_at``, ``updated_at``, ``body``, ``secrets``);
* ``{p}state-hash:{digest}``: the id of the flow waiting for that callback state;
* ``{p}updated``, ``{p}in-state:{state}``, ``{p}by-provider:{provider}``: sorted
  sets of flow ids scored by ``updated_at`` in microseconds, for ``list``.

A script updating a flow learns its old state, provider and digest only by
reading the flow, so it builds those index keys from prefixes passed in ``ARGV``.
Redis Cluster accepts that only when all keys share a slot: give such a store a
prefix with a hash tag, such as ``{flow}:``.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from ..errors import CorruptRecord, FlowNotFound, StoreError, VersionConflict
from ..record import FlowRecord, decode, encode

T = TypeVar("T")

#: The version of the key layout above, kept in ``{prefix}meta``.
STORE_SCHEMA_VERSION = 1

#: Stamps an empty store with the layout version; answers the stored version.
STAMP = """
redis.call('HSETNX', KEYS[1], 'schema_version', ARGV[1])
return redis.call('HGET', KEYS[1], 'schema_version')
"""

# KEYS: flow hash, digest key, all-flows index, state index, provider index.
# ARGV: flow id, score, digest ('' for none), then the hash's field/value pairs.
INSERT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[3] ~= '' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[1]) end
for i = 3, 5 do redis.call('ZADD', KEYS[i], ARGV[2], ARGV[1]) end
return 1
"""

# KEYS: as for INSERT, with the new digest, state and provider.
# ARGV: flow id, score, new digest, expected version, then the key prefixes of
# digests, states and providers, then the hash's field/value pairs.
SAVE = """
local old = redis.call('HMGET', KEYS[1], 'version', 'state', 'provider', 'state_hash')
if not old[1] then return {'missing'} end
if old[1] ~= ARGV[4] then return {'conflict', old[1]} end
if ARGV[3] ~= '' then
    local owner = redis.call('GET', KEYS[2])
    if owner and owner ~= ARGV[1] then return {'taken'} end
end
if old[4] and old[4] ~= '' and old[4] ~= ARGV[3] then
    redis.call('DEL', ARGV[5] .. old[4])
end
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[1]) end
redis.call('ZREM', ARGV[6] .. old[2], ARGV[1])
redis.call('ZREM', ARGV[7] .. old[3], ARGV[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 8))
for i = 3, 5 do redis.call('ZADD', KEYS[i], ARGV[2], ARGV[1]) end
return {'saved'}
"""

# KEYS: a flow hash.
LOAD = """
return redis.call('HMGET', KEYS[1], 'version', 'body', 'secrets')
"""

# KEYS: a digest key. ARGV: the prefix of flow hashes.
FIND = """
local id = redis.call('GET', KEYS[1])
if not id then return false end
local row = redis.call('HMGET', ARGV[1] .. id, 'version', 'body', 'secrets')
return {id, row[1], row[2], row[3]}
"""

# KEYS: an index. ARGV: first and last rank, the prefix of flow hashes.
PAGE = """
local rows = {}
for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], ARGV[1], ARGV[2])) do
    local row = redis.call('HMGET', ARGV[3] .. id, 'provider', 'version', 'body',
        'secrets')
    rows[#rows + 1] = {id, row[1], row[2], row[3], row[4]}
end
return rows
"""


@dataclass(frozen=True, slots=True)
class Call:
    """One script to run, with its keys and arguments."""

    script: str
    keys: Sequence[str]
    args: Sequence[str | int] = ()


Program = Generator[Call, Any, T]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PAGE = 200


@dataclass(frozen=True, slots=True)
class Keys:
    """The store's keys under one prefix."""

    prefix: str

    @property
    def meta(self) -> str:
        return f"{self.prefix}meta"

    def flow(self, flow_id: str = "") -> str:
        return f"{self.prefix}flow:{flow_id}"

    def digest(self, state_hash: str | None = "") -> str:
        return f"{self.prefix}state-hash:{state_hash or ''}"

    def state(self, state: str = "") -> str:
        return f"{self.prefix}in-state:{state}"

    def provider(self, provider: str = "") -> str:
        return f"{self.prefix}by-provider:{provider}"

    @property
    def updated(self) -> str:
        return f"{self.prefix}updated"

    def indexes(self, record: FlowRecord) -> list[str]:
        """The keys both INSERT and SAVE take, in order."""
        return [
            self.flow(record.id),
            self.digest(record.state_hash),
            self.updated,
            self.state(record.state),
            self.provider(record.provider),
        ]


def _fields(record: FlowRecord) -> list[str | int]:
    encoded = encode(record)
    fields: dict[str, str | int] = {
        "version": record.version,
        "state": record.state,
        "spec": record.spec,
        "provider": record.provider,
        "state_hash": record.state_hash or "",
        "expires_at": record.expires_at.astimezone(UTC).isoformat(),
        "updated_at": record.updated_at.astimezone(UTC).isoformat(),
        "body": encoded.body,
        "secrets": encoded.secrets,
    }
    return [item for pair in fields.items() for item in pair]


def _score(record: FlowRecord) -> int:
    # Whole microseconds: exact in a sorted set's double up to the year 2255,
    # where float seconds would round.
    return (record.updated_at - _EPOCH) // timedelta(microseconds=1)


def _decoded(flow_id: str, row: Sequence[str | None]) -> FlowRecord:
    # row: version, body, secrets, as the scripts return them.
    if row[1] is None or row[2] is None:
        raise CorruptRecord("stored flow lacks its body or secrets", flow_id=flow_id)
    return decode(row[1], row[2], flow_id=flow_id)


def start_up(keys: Keys) -> Program[None]:
    """Record the layout version in an empty store; refuse a newer one."""
    stored = yield Call(STAMP, [keys.meta], [STORE_SCHEMA_VERSION])
    if not str(stored).isdigit() or int(stored) > STORE_SCHEMA_VERSION:
        raise StoreError(
            f"store schema version {stored} is not one this flow can read (it "
            f"reads {STORE_SCHEMA_VERSION} and older); upgrade flow"
        )


def insert(keys: Keys, record: FlowRecord) -> Program[None]:
    """Store a new flow, or raise VersionConflict when its id or digest is taken."""
    args = [record.id, _score(record), record.state_hash or "", *_fields(record)]
    if not (yield Call(INSERT, keys.indexes(record), args)):
        raise VersionConflict(
            "a flow with this id or state value exists", flow_id=record.id
        )


def save(keys: Keys, record: FlowRecord) -> Program[None]:
    """Compare-and-set: write ``record`` over version ``record.version - 1`` only."""
    args = [
        record.id,
        _score(record),
        record.state_hash or "",
        record.version - 1,
        keys.digest(),
        keys.state(),
        keys.provider(),
        *_fields(record),
    ]
    outcome, *stored = yield Call(SAVE, keys.indexes(record), args)
    if outcome == "missing":
        raise FlowNotFound("no stored flow has this id", flow_id=record.id)
    if outcome == "conflict":
        raise VersionConflict(
            f"stored version is {stored[0]}, not {record.version - 1}",
            flow_id=record.id,
        )
    if outcome == "taken":
        raise VersionConflict("another flow uses this state value", flow_id=record.id)


def load(keys: Keys, flow_id: str) -> Program[FlowRecord]:
    """The flow with this id."""
    row = yield Call(LOAD, [keys.flow(flow_id)])
    if row[0] is None:
        raise FlowNotFound("no stored flow has this id", flow_id=flow_id)
    return _decoded(flow_id, row)


def find_by_state(keys: Keys, state_hash: str) -> Program[FlowRecord]:
    """The flow waiting for the callback whose state has this digest."""
    found = yield Call(FIND, [keys.digest(state_hash)], [keys.flow()])
    if found is None or found[1] is None:
        raise FlowNotFound("no flow waits for this state")
    return _decoded(found[0], found[1:])


def list_flows(
    keys: Keys, state: str | None, provider: str | None, limit: int
) -> Program[list[FlowRecord]]:
    """Flows, most recently updated first, optionally filtered.

    One filter reads its own index. With both, the state's index is read page by
    page and each flow's provider checked, until ``limit`` flows are found.
    """
    if state is not None:
        index, wanted = keys.state(state), provider
    elif provider is not None:
        index, wanted = keys.provider(provider), None
    else:
        index, wanted = keys.updated, None
    page = limit if wanted is None else max(limit, _PAGE)
    if limit <= 0:
        return []

    found: dict[str, FlowRecord] = {}
    start = 0
    while len(found) < limit:
        rows = yield Call(PAGE, [index], [start, start + page - 1, keys.flow()])
        for flow_id, flow_provider, *row in rows:
            # A flow saved while we page moves to the top and shifts the others
            # down, so one may come twice; one deleted meanwhile has no version.
            if row[0] is not None and wanted in (None, flow_provider):
                found.setdefault(flow_id, _decoded(flow_id, row))
        if len(rows) < page:
            break
        start += page
    return list(found.values())[:limit]
