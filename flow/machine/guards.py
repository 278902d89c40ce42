"""The guards a flow spec may name. Each is pure: it reads the record and the clock.

A spec names guards; the machine looks them up here. Adding a guard means adding a
function to :data:`GUARDS`, with a test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from ..record import FlowRecord

Guard = Callable[[FlowRecord, datetime], bool]


def within_ttl(record: FlowRecord, now: datetime) -> bool:
    """The flow's time-to-live has not run out."""
    return now < record.expires_at


def ttl_elapsed(record: FlowRecord, now: datetime) -> bool:
    """The flow's time-to-live has run out."""
    return now >= record.expires_at


def holds_code(record: FlowRecord, now: datetime) -> bool:
    """An authorization code is stored and waiting to be exchanged."""
    return bool(record.secrets.code)


def holds_access_token(record: FlowRecord, now: datetime) -> bool:
    """A non-empty access token is stored."""
    return bool(record.secrets.access_token)


def holds_refresh_token(record: FlowRecord, now: datetime) -> bool:
    """A refresh token is stored."""
    return bool(record.secrets.refresh_token)


def lacks_refresh_token(record: FlowRecord, now: datetime) -> bool:
    """No refresh token is stored, so the credential cannot outlive its token."""
    return not record.secrets.refresh_token


GUARDS: Mapping[str, Guard] = {
    guard.__name__: guard
    for guard in (
        within_ttl,
        ttl_elapsed,
        holds_code,
        holds_access_token,
        holds_refresh_token,
        lacks_refresh_token,
    )
}
