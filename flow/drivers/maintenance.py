"""Store upkeep as engine programs: expiring and deleting flows, refreshing ahead.

:func:`gc` ends the flows whose user never came back (the spec's ``expire``
transition, committed and logged like any other) and deletes finished flows once
their retention has passed. :func:`refresh_due` refreshes the credentials whose
access token expires within a window, so that API calls rarely wait for a refresh.

Both read the store in bounded batches through its indexes and change flows only
by compare-and-set, so they never lock out, or wait for, a live flow: a flow that
moved on meanwhile is skipped and left to the next run. Several workers may run
``refresh_due`` against one store at once; :meth:`~flow.stores.Store.claim_due`
hands each due credential to one of them (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, claim markers on Redis, one write lock on SQLite).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

import structlog

from .. import events
from ..errors import (
    ConfigurationError,
    FlowError,
    FlowNotFound,
    GuardRejected,
    IllegalTransition,
    ReauthRequired,
    RefreshDeferred,
    VersionConflict,
)
from ..record import FlowRecord
from ..spec import StateKind
from ..stores.base import Claimed, DueKey, due_key
from . import credential
from .effects import (
    ClaimDue,
    Concurrently,
    Delete,
    FindExpiring,
    FindFinished,
    Program,
    Save,
)

if TYPE_CHECKING:
    from .engine import Engine

S = TypeVar("S")

#: How long a finished flow is kept before ``gc`` deletes it, by default.
DEFAULT_RETENTION = timedelta(days=7)
#: Refresh credentials whose access token expires within this time, by default.
DEFAULT_WINDOW = timedelta(minutes=5)
#: The most flows one run handles, by default.
DEFAULT_LIMIT = 10_000
#: Flows read per batch by ``gc``: one page of a store query.
GC_BATCH = 500
#: Credentials claimed per batch by ``refresh_due``: small enough that the last of
#: a batch is sent well within the lease its claim took.
REFRESH_BATCH = 100
#: Refreshes in flight at once, by default.
DEFAULT_CONCURRENCY = 8
#: The most batches one run reads, whatever the limit: every loop is bounded.
MAX_BATCHES = 200

#: Told the summary so far after each batch, for progress displays.
Progress = Callable[[S], None]

_logger = structlog.get_logger("flow")


@dataclass(frozen=True, slots=True)
class GcSummary:
    """What one :func:`gc` run did.

    Attributes:
        expired: Waiting flows moved to ``expired`` because their time-to-live ran
            out.
        deleted: Finished flows deleted after their retention.
        skipped: Flows another process changed between the read and the write:
            left as they are, for the next run.
        batches: Pages read from the store.
    """

    expired: int = 0
    deleted: int = 0
    skipped: int = 0
    batches: int = 0


@dataclass(frozen=True, slots=True)
class RefreshSummary:
    """What one :func:`refresh_due` run did.

    Attributes:
        refreshed: Credentials refreshed and committed with their new tokens.
        reauth_required: Credentials given up, by flow id, with the cause
            (``invalid_grant``, ``access_token_expired``, ...): their users must
            log in again.
        failed: Refreshes that failed, by flow id, with the reason code
            (``server_error``, ``transport_error``, ...): the credential is kept
            and tried again by a later run, never by this one. A
            ``version_conflict`` means another process ended the refresh first,
            having judged it abandoned.
        skipped: Due credentials left alone: claimed by another worker, without a
            refresh token and not yet expired, or deferred for lack of lease.
        batches: Pages claimed from the store.
    """

    refreshed: int = 0
    reauth_required: Mapping[str, str] = field(default_factory=dict)
    failed: Mapping[str, str] = field(default_factory=dict)
    skipped: int = 0
    batches: int = 0


# gc -----------------------------------------------------------------------------------


def gc(
    engine: Engine,
    *,
    retention: timedelta = DEFAULT_RETENTION,
    limit: int = DEFAULT_LIMIT,
    batch_size: int = GC_BATCH,
    progress: Progress[GcSummary] | None = None,
) -> Program[GcSummary]:
    """Expire abandoned flows, then delete finished flows older than ``retention``.

    Args:
        engine: The engine whose spec, machine and clock apply.
        retention: How long a finished flow is kept after its last transition;
            zero deletes it in the same run, the flows this run expired included.
        limit: The most flows each of the two steps handles; a run also reads
            no more than :data:`MAX_BATCHES` batches.
        batch_size: Flows read per batch.
        progress: Called with the summary so far after each batch.

    Returns:
        How many flows were expired, deleted and skipped.

    Raises:
        ConfigurationError: A negative retention or limit, or a batch size below
            one.
        StoreError: The store failed (a lost compare-and-set is only skipped).
    """
    if retention < timedelta(0):
        raise ConfigurationError("the retention cannot be negative")
    sizes = _batches(limit, batch_size)
    report = progress or _ignore
    expired = deleted = skipped = batches = 0

    # Expire: the spec names the states its expire transition leaves.
    waiting = sorted(
        source
        for transition in engine.spec.transitions
        if transition.trigger == "expire"
        for source in transition.sources
    )
    for size in sizes:
        found = cast(
            list[FlowRecord], (yield FindExpiring(waiting, engine.clock(), size))
        )
        if not found:
            break
        done = _settled((yield Concurrently([_expire(engine, r) for r in found], 1)))
        expired += sum(done)
        skipped += done.count(False)
        batches += 1
        report(GcSummary(expired, deleted, skipped, batches))
        if len(found) < size or not any(done):
            break

    # Delete: the cut-off is taken after expiring, so that a zero retention
    # includes the flows this run expired.
    terminal = [
        name
        for name, state in engine.spec.states.items()
        if state.kind is StateKind.TERMINAL
    ]
    cutoff = engine.clock() - retention
    for size in sizes:
        found = cast(list[FlowRecord], (yield FindFinished(terminal, cutoff, size)))
        if not found:
            break
        done = _settled((yield Concurrently([_delete(r) for r in found], 1)))
        deleted += sum(done)
        skipped += done.count(False)
        batches += 1
        report(GcSummary(expired, deleted, skipped, batches))
        if len(found) < size or not any(done):
            break

    return GcSummary(expired, deleted, skipped, batches)


def _expire(engine: Engine, record: FlowRecord) -> Program[bool]:
    """End one abandoned flow; whether this call did."""
    try:
        # _end also scrubs the code and the verifier, as every ending does.
        nxt = engine.end(record, "expire", engine.clock())
    except (IllegalTransition, GuardRejected):
        return False
    try:
        yield Save(nxt)
    except (VersionConflict, FlowNotFound):
        return False
    events.log_committed(engine.spec, nxt)
    return True


def _delete(record: FlowRecord) -> Program[bool]:
    """Delete one finished flow at the version read; whether this call did."""
    try:
        yield Delete(record.id, record.version)
    except (VersionConflict, FlowNotFound):
        return False
    _logger.info(
        "flow.deleted",
        flow_id=record.id,
        spec=record.spec,
        provider=record.provider,
        state=record.state,
    )
    return True


# refresh_due --------------------------------------------------------------------------


def refresh_due(
    engine: Engine,
    *,
    window: timedelta = DEFAULT_WINDOW,
    limit: int = DEFAULT_LIMIT,
    batch_size: int = REFRESH_BATCH,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress[RefreshSummary] | None = None,
) -> Program[RefreshSummary]:
    """Refresh every credential whose access token expires within ``window``.

    Each batch claims due credentials with ``begin_refresh`` (committed, with a
    lease, as :func:`flow.drivers.credential.access` does), then refreshes them,
    ``concurrency`` at a time. A credential is refreshed at most once per run,
    whatever the answer: a failure is not retried until a later run. One whose
    token expired without a refresh token is given up (``lapse``).

    Args:
        engine: The engine whose spec, machine and clock apply.
        window: Refresh tokens that expire within this time from now.
        limit: The most credentials this run looks at; a run also claims no
            more than :data:`MAX_BATCHES` batches.
        batch_size: Credentials claimed per batch.
        concurrency: Refreshes in flight at once.
        progress: Called with the summary so far after each batch.

    Returns:
        How many were refreshed, given up, failed or skipped.

    Raises:
        ConfigurationError: A negative window or limit, or a batch size or
            concurrency below one.
        StoreError: The store failed while claiming.
    """
    if window < timedelta(0):
        raise ConfigurationError("the refresh window cannot be negative")
    if concurrency < 1:
        raise ConfigurationError("the concurrency must be at least 1")
    sizes = _batches(limit, batch_size)
    report = progress or _ignore
    tally = _Tally()

    before = engine.clock() + window
    claim = functools.partial(_claim, engine, before)
    after: DueKey | None = None
    for size in sizes:
        claimed = cast(
            list[Claimed],
            (yield ClaimDue(engine.spec.success, before, size, claim, after)),
        )
        if not claimed:
            break
        # The next page starts after this one, so a credential left alone here
        # (or handed back by a failed refresh) is not met again in this run.
        after = due_key(claimed[-1].found)

        started = []
        for item in claimed:
            if item.saved is None:
                tally.skipped += 1
                continue
            events.log_committed(engine.spec, item.saved)
            if engine.spec.is_terminal(item.saved.state):
                tally.reauth_required[item.saved.id] = item.saved.reason or "lapsed"
            else:
                started.append(item.saved)
        programs = [credential.settle(engine, record) for record in started]
        outcomes = yield Concurrently(programs, concurrency)
        for record, outcome in zip(started, cast(list[object], outcomes), strict=True):
            tally.add(record.id, outcome)
        tally.batches += 1
        report(tally.summary())
        if len(claimed) < size:
            break

    return tally.summary()


def _claim(engine: Engine, before: datetime, record: FlowRecord) -> FlowRecord | None:
    """What a due credential becomes under this run's claim, if anything.

    Runs while the store holds the flow, so it only decides: nothing is sent.
    """
    now = engine.clock()
    expires_at = record.token.expires_at if record.token else None
    if record.state != engine.spec.success or expires_at is None or expires_at > before:
        return None
    try:
        if record.secrets.refresh_token:
            return credential.begin(engine, record, now)
        if now >= expires_at:
            return credential.lapse(engine, record, now)
    except (IllegalTransition, GuardRejected):
        # A spec without these transitions: nothing this run can do.
        return None
    # Still valid, and nothing can renew it: let it serve until it expires.
    return None


@dataclass
class _Tally:
    """The counts of a refresh run, as it goes."""

    refreshed: int = 0
    reauth_required: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: int = 0
    batches: int = 0

    def add(self, flow_id: str, outcome: object) -> None:
        match outcome:
            case FlowRecord():
                self.refreshed += 1
            case ReauthRequired(cause=cause):
                self.reauth_required[flow_id] = cause
            case RefreshDeferred():
                self.skipped += 1
            case FlowError(reason=reason):
                self.failed[flow_id] = reason
            case _:
                raise TypeError(f"unexpected refresh outcome {type(outcome).__name__}")

    def summary(self) -> RefreshSummary:
        return RefreshSummary(
            refreshed=self.refreshed,
            reauth_required=dict(self.reauth_required),
            failed=dict(self.failed),
            skipped=self.skipped,
            batches=self.batches,
        )


# Shared -------------------------------------------------------------------------------


def planned_batches(limit: int, batch_size: int) -> int:
    """The most batches one step of a run may read, for progress displays."""
    return len(_batches(limit, batch_size))


def batch_size_for(limit: int, default: int) -> int:
    """A batch size that lets one run reach ``limit`` within :data:`MAX_BATCHES`."""
    return max(default, -(-limit // MAX_BATCHES))


def _batches(limit: int, batch_size: int) -> list[int]:
    """The sizes of the batches that make up ``limit``, at most :data:`MAX_BATCHES`
    of them; the last may be smaller."""
    if limit < 0 or batch_size < 1:
        raise ConfigurationError("the limit must be at least 0, the batch size 1")
    limit = min(limit, batch_size * MAX_BATCHES)
    return [min(batch_size, limit - start) for start in range(0, limit, batch_size)]


def _settled(outcomes: object) -> list[bool]:
    """Each flow's outcome, or the first store error that stopped one."""
    done = []
    for outcome in cast(list[Any], outcomes):
        if isinstance(outcome, FlowError):
            raise outcome
        done.append(bool(outcome))
    return done


def _ignore(summary: object) -> None:
    """No progress display."""
