"""Structured log events, and a redaction processor for applications to install.

flow logs through ``structlog.get_logger("flow")`` and never configures logging: the
application decides where events go. Every event is emitted only after the store
committed what it reports. Event names are stable:

``flow.started``
    A flow was created and committed.
``flow.transition``
    One committed transition: ``trigger``, ``source``, ``dest``, ``version``.
``flow.paused``
    The flow waits on the outside world (the user's browser).
``flow.completed``
    The flow reached its success state.
``flow.ended``
    The flow reached a terminal state someone chose (``revoked``, ``cancelled``).
``flow.failed``
    The flow ended in any other terminal state, with its ``reason``.
``flow.deleted``
    ``gc`` deleted a finished flow past its retention.

Every event carries ``flow_id``, ``spec`` and ``provider``. None carries a token,
code, verifier, state value, client secret or callback URL.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from .record import FlowRecord
from .spec import FlowSpec, StateKind

#: Keys whose values :func:`redact_secrets` masks wherever they appear.
SECRET_KEYS = frozenset(
    {
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "code",
        "code_verifier",
        "verifier",
        "client_secret",
        "secret",
        "password",
        "state_value",
        "callback",
        "callback_url",
        "authorization",
        "authorization_url",
        "cookie",
        "set-cookie",
    }
)

REDACTED = "<redacted>"

_logger = structlog.get_logger("flow")


def redact_secrets(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor that masks secret-bearing keys, nested ones included.

    flow's own events never carry secrets; install this processor so that the
    application's events cannot leak them either::

        structlog.configure(processors=[flow.redact_secrets, ...])
    """
    for key in list(event_dict):
        event_dict[key] = _redact(key, event_dict[key])
    return event_dict


def _redact(key: str, value: Any) -> Any:
    if key.lower() in SECRET_KEYS and value is not None:
        return REDACTED
    if isinstance(value, Mapping):
        return {k: _redact(str(k), v) for k, v in value.items()}
    return value


def log_started(record: FlowRecord) -> None:
    """Report a newly committed flow."""
    _bound(record).info("flow.started", state=record.state)


def log_committed(spec: FlowSpec, record: FlowRecord) -> None:
    """Report the transition ``record`` was committed with, and what it led to."""
    entry = record.history[-1]
    log = _bound(record)
    fields: dict[str, Any] = {
        "trigger": entry.trigger,
        "source": entry.source,
        "dest": entry.dest,
        "version": record.version,
    }
    fields.update(entry.detail)
    log.info("flow.transition", **fields)

    kind = spec.states[entry.dest].kind
    if entry.dest == spec.success:
        log.info("flow.completed", state=entry.dest)
    elif spec.states[entry.dest].deliberate:
        log.info("flow.ended", state=entry.dest)
    elif kind is StateKind.TERMINAL:
        log.warning("flow.failed", state=entry.dest, reason=record.reason or entry.dest)
    elif kind is StateKind.WAITING:
        log.info("flow.paused", state=entry.dest)


def _bound(record: FlowRecord) -> Any:
    return _logger.bind(flow_id=record.id, spec=record.spec, provider=record.provider)
