"""The Redis stores' key layout, and each operation as a program of Lua scripts.

Every read and write is one Lua script (:mod:`flow.stores._redis_lua`), so each
runs atomically in one round trip: Redis runs a script to its end before serving
any other command ("Scripting with Lua" in the Redis manual). That atomicity is
the compare-and-set: the script reads the stored version and writes only over the
expected one.

Keys, under the store's prefix ``p``:

* ``{p}meta``: a hash holding ``schema_version``;
* ``{p}flow:{id}``: a hash per flow (``version``, ``state``, ``spec``, ``provider``,
  ``state_hash``, ``expires_at``, ``updated_at``, ``body``, ``secrets``);
* ``{p}state-hash:{digest}``: the id of the flow waiting for that callback state;
* ``{p}updated``, ``{p}in-state:{state}``, ``{p}by-provider:{provider}``: sorted
  sets of flow ids scored by ``updated_at`` in microseconds, for ``list`` (and
  ``finished``);
* ``{p}expires-in:{state}``: flow ids scored by ``expires_at``, for ``expiring``;
* ``{p}token-expires-in:{state}``: flow ids scored by their access token's expiry,
  for ``due``; a flow whose token has no expiry is in none;
* ``{p}claim:{id}``: set for a short while by ``claim_due`` on each flow it hands
  out, with an expiry, so that a worker that dies holding it holds it no longer.

A script updating a flow learns its old state, provider and digest only by
reading the flow, so it builds those index keys from prefixes passed in ``ARGV``.
Redis Cluster accepts that only when all keys share a slot: give such a store a
prefix with a hash tag, such as ``{flow}:``.
"""

from __future__ import annotations

from collections.abc import Collection, Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from ..errors import CorruptRecord, FlowNotFound, StoreError, VersionConflict
from ..record import FlowRecord, decode, encode
from ._redis_lua import DELETE, DUE, FIND, INSERT, LOAD, OLDEST, PAGE, SAVE, STAMP
from .base import Claim, Claimed, DueKey

T = TypeVar("T")

#: The version of the key layout above, kept in ``{prefix}meta``.
STORE_SCHEMA_VERSION = 1


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

    def expiring(self, state: str = "") -> str:
        return f"{self.prefix}expires-in:{state}"

    def due(self, state: str = "") -> str:
        return f"{self.prefix}token-expires-in:{state}"

    def claim(self, flow_id: str = "") -> str:
        return f"{self.prefix}claim:{flow_id}"

    def indexes(self, record: FlowRecord) -> list[str]:
        """The keys both INSERT and SAVE take, in order."""
        return [
            self.flow(record.id),
            self.digest(record.state_hash),
            self.updated,
            self.state(record.state),
            self.provider(record.provider),
            self.expiring(record.state),
            self.due(record.state),
        ]

    def prefixes(self) -> list[str]:
        """The prefixes of the per-value keys SAVE and DELETE rebuild."""
        return [
            self.digest(),
            self.state(),
            self.provider(),
            self.expiring(),
            self.due(),
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


def _micros(when: datetime) -> int:
    # Whole microseconds: exact in a sorted set's double up to the year 2255,
    # where float seconds would round.
    return (when - _EPOCH) // timedelta(microseconds=1)


def _scores(record: FlowRecord) -> tuple[int, int, int | str]:
    """The flow's scores: updated, expires, and token expiry ('' for none)."""
    token_expiry = record.token.expires_at if record.token else None
    return (
        _micros(record.updated_at),
        _micros(record.expires_at),
        "" if token_expiry is None else _micros(token_expiry),
    )


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
    updated, expires, token_expires = _scores(record)
    args = [
        record.id,
        updated,
        record.state_hash or "",
        expires,
        token_expires,
        *_fields(record),
    ]
    if not (yield Call(INSERT, keys.indexes(record), args)):
        raise VersionConflict(
            "a flow with this id or state value exists", flow_id=record.id
        )


def save(keys: Keys, record: FlowRecord) -> Program[None]:
    """Compare-and-set: write ``record`` over version ``record.version - 1`` only."""
    updated, expires, token_expires = _scores(record)
    args = [
        record.id,
        updated,
        record.state_hash or "",
        record.version - 1,
        expires,
        token_expires,
        *keys.prefixes(),
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


def delete(keys: Keys, flow_id: str, version: int) -> Program[None]:
    """Compare-and-set: delete the flow and its index entries while at ``version``."""
    outcome, *stored = yield Call(
        DELETE,
        [keys.flow(flow_id), keys.updated, keys.claim(flow_id)],
        [flow_id, version, *keys.prefixes()],
    )
    if outcome == "missing":
        raise FlowNotFound("no stored flow has this id", flow_id=flow_id)
    if outcome == "conflict":
        raise VersionConflict(
            f"stored version is {stored[0]}, not {version}", flow_id=flow_id
        )


def expiring(
    keys: Keys, states: Collection[str], before: datetime, limit: int
) -> Program[list[FlowRecord]]:
    """Flows in ``states`` past their ``expires_at``, the earliest first."""
    indexes = [keys.expiring(state) for state in sorted(states)]
    return (yield from _oldest(keys, indexes, before, limit))


def finished(
    keys: Keys, states: Collection[str], updated_before: datetime, limit: int
) -> Program[list[FlowRecord]]:
    """Flows in ``states`` last updated by ``updated_before``, the oldest first."""
    indexes = [keys.state(state) for state in sorted(states)]
    return (yield from _oldest(keys, indexes, updated_before, limit))


def _oldest(
    keys: Keys, indexes: list[str], before: datetime, limit: int
) -> Program[list[FlowRecord]]:
    if not indexes or limit <= 0:
        return []
    rows = yield Call(OLDEST, indexes, [_micros(before), limit, keys.flow()])
    return [_decoded(flow_id, row) for flow_id, *row in rows if row[0] is not None]


#: How long a claim marker keeps other workers off a flow: far longer than the
#: moment between the claim and its save, which is all it has to cover.
CLAIM_HOLD = timedelta(seconds=30)
#: The most index entries one page of ``due`` looks at, per flow it may return.
_LOOK_AHEAD = 4


def _due_rows(
    keys: Keys,
    state: str,
    before: datetime,
    limit: int,
    after: DueKey | None,
    *,
    claiming: bool,
) -> Program[list[list[Any]]]:
    rows = yield Call(
        DUE,
        [keys.due(state)],
        [
            _micros(before),
            "" if after is None else _micros(after[0]),
            "" if after is None else after[1],
            limit,
            keys.flow(),
            keys.claim() if claiming else "",
            CLAIM_HOLD // timedelta(milliseconds=1),
            limit * _LOOK_AHEAD + 100,
        ],
    )
    # A flow deleted since the index was read has no version.
    return [row for row in rows if row[1] is not None]


def due(
    keys: Keys, state: str, before: datetime, limit: int, after: DueKey | None
) -> Program[list[FlowRecord]]:
    """Flows in ``state`` whose token expires by ``before``, the earliest first."""
    if limit <= 0:
        return []
    rows = yield from _due_rows(keys, state, before, limit, after, claiming=False)
    return [_decoded(flow_id, row) for flow_id, *row in rows]


def claim_due(
    keys: Keys,
    state: str,
    before: datetime,
    limit: int,
    after: DueKey | None,
    claim: Claim,
) -> Program[list[Claimed]]:
    """Mark a page of due flows no other worker marked; save what ``claim`` returns.

    The markers only spread the work: the compare-and-set of each save is what
    keeps two workers from both moving one flow, even past a marker's expiry.
    """
    if limit <= 0:
        return []
    rows = yield from _due_rows(keys, state, before, limit, after, claiming=True)
    claimed: list[Claimed] = []
    for flow_id, *row in rows:
        found = _decoded(flow_id, row)
        moved = claim(found)
        if moved is not None:
            try:
                yield from save(keys, moved)
            except (VersionConflict, FlowNotFound):
                # Someone saved the flow between the mark and this save.
                moved = None
        claimed.append(Claimed(found, moved))
    return claimed
