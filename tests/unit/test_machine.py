"""The shared flow machine: transitions fired on records, guards, and its errors."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flow.errors import (
    CallerError,
    ConfigurationError,
    GuardRejected,
    IllegalTransition,
)
from flow.machine import GUARDS, FlowMachine, default_machine, machine_for
from flow.machine.guards import (
    holds_access_token,
    holds_code,
    holds_refresh_token,
    lacks_refresh_token,
    ttl_elapsed,
    within_ttl,
)
from flow.record import Client, FlowRecord, Secrets, ServerMetadata, Transition
from flow.spec import builtin_spec, bundled_spec_files, load_spec

START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TTL = timedelta(minutes=10)


def make_record(state: str = "client_registered", **changes: Any) -> FlowRecord:
    """A flow record in ``state`` created at START, with ``changes`` applied."""
    record = FlowRecord(
        id="flow-1",
        spec="authorization_code",
        spec_version=1,
        state=state,
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
        expires_at=START + TTL,
    )
    return replace(record, **changes)


@pytest.fixture
def machine() -> FlowMachine:
    return default_machine()


# One shared machine ----------------------------------------------------------------


def test_default_machine_is_built_once() -> None:
    assert default_machine() is default_machine()
    assert machine_for(builtin_spec("authorization_code")) is default_machine()


def test_firing_on_many_records_registers_no_model(machine: FlowMachine) -> None:
    for index in range(50):
        record = make_record(id=f"flow-{index}")
        machine.fire(record, "authorize", START)
        machine.fire(record, "fail", START, reason="test")

    assert machine._machine.models == []


def test_machine_follows_the_spec_it_was_built_from(machine: FlowMachine) -> None:
    assert machine.spec == builtin_spec()
    assert machine.allowed("awaiting_login") == [
        "receive_callback",
        "deny",
        "expire",
        "fail",
        "cancel",
    ]
    assert machine.allowed("api_ready") == ["begin_refresh", "lapse", "revoke"]
    assert machine.allowed("failed") == []


# Firing a trigger ------------------------------------------------------------------


def test_fire_moves_the_state_and_bumps_the_version(machine: FlowMachine) -> None:
    record = make_record()
    later = START + timedelta(seconds=5)

    moved = machine.fire(record, "authorize", later)

    assert moved.state == "awaiting_login"
    assert moved.version == record.version + 1
    assert moved.updated_at == later
    assert moved.history == (
        Transition(
            trigger="authorize",
            source="client_registered",
            dest="awaiting_login",
            at=later,
            detail={},
        ),
    )


def test_fire_leaves_the_input_record_unchanged(machine: FlowMachine) -> None:
    record = make_record()
    before = replace(record)

    moved = machine.fire(record, "authorize", START, detail={"step": 1})

    assert record == before
    assert record.state == "client_registered"
    assert record.history == ()
    assert moved is not record


def test_fire_appends_to_the_history(machine: FlowMachine) -> None:
    record = machine.fire(make_record(), "authorize", START)
    later = START + timedelta(seconds=30)

    moved = machine.fire(
        record, "deny", later, detail={"error": "access_denied", "status": 302}
    )

    assert moved.history[0] == record.history[0]
    assert moved.history[1] == Transition(
        trigger="deny",
        source="awaiting_login",
        dest="denied",
        at=later,
        detail={"error": "access_denied", "status": 302},
    )


def test_fire_applies_changes_with_the_state(machine: FlowMachine) -> None:
    record = make_record("code_received", secrets=Secrets(code="the-code"))
    lease = START + timedelta(minutes=1)

    moved = machine.fire(record, "exchange_code", START, lease_until=lease)

    assert (moved.state, moved.lease_until) == ("exchanging", lease)


def test_the_whole_happy_path_reaches_success(machine: FlowMachine) -> None:
    record = make_record()
    steps: list[tuple[str, dict[str, Any]]] = [
        ("authorize", {}),
        ("receive_callback", {"secrets": Secrets(code="c")}),
        ("exchange_code", {}),
        ("issue_token", {"secrets": Secrets(code="c", access_token="at")}),
        ("grant_access", {}),
    ]

    for trigger, changes in steps:
        record = machine.fire(record, trigger, START, **changes)

    assert record.state == machine.spec.success
    assert record.version == 1 + len(steps)
    assert [entry.trigger for entry in record.history] == [t for t, _ in steps]
    assert [entry.dest for entry in record.history] == [
        "awaiting_login",
        "code_received",
        "exchanging",
        "token_issued",
        "api_ready",
    ]


# Illegal triggers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "trigger"),
    [
        ("awaiting_login", "exchange_code"),
        ("client_registered", "receive_callback"),
        ("api_ready", "exchange_code"),
        ("failed", "fail"),
        ("denied", "authorize"),
        ("awaiting_login", "teleport"),
        ("awaiting_login", "to_failed"),
    ],
)
def test_illegal_trigger_names_flow_state_and_trigger(
    machine: FlowMachine, state: str, trigger: str
) -> None:
    record = make_record(state, id="flow-42")

    with pytest.raises(IllegalTransition) as caught:
        machine.fire(record, trigger, START, reason="x")

    error = caught.value
    assert (error.flow_id, error.state, error.trigger) == ("flow-42", state, trigger)
    assert "flow-42" in str(error)
    assert repr(state) in str(error)
    assert repr(trigger) in str(error)


def test_trigger_from_an_undeclared_state_is_illegal(machine: FlowMachine) -> None:
    record = make_record("teleported", id="flow-42")

    with pytest.raises(IllegalTransition) as caught:
        machine.fire(record, "authorize", START)

    assert (caught.value.state, caught.value.trigger) == ("teleported", "authorize")
    assert "flow-42" in str(caught.value)


# Guards ----------------------------------------------------------------------------


def test_callback_after_expiry_is_refused_by_within_ttl(machine: FlowMachine) -> None:
    record = make_record("awaiting_login", id="flow-42")

    with pytest.raises(GuardRejected) as caught:
        machine.fire(record, "receive_callback", record.expires_at)

    error = caught.value
    assert (error.guard, error.trigger, error.state) == (
        "within_ttl",
        "receive_callback",
        "awaiting_login",
    )
    assert "within_ttl" in str(error)
    assert "flow-42" in str(error)


def test_callback_before_expiry_passes_within_ttl(machine: FlowMachine) -> None:
    record = make_record("awaiting_login")
    just_before = record.expires_at - timedelta(microseconds=1)

    moved = machine.fire(record, "receive_callback", just_before)

    assert moved.state == "code_received"


def test_expire_before_the_ttl_is_refused_by_ttl_elapsed(machine: FlowMachine) -> None:
    record = make_record("awaiting_login")

    with pytest.raises(GuardRejected) as caught:
        machine.fire(record, "expire", START)

    assert caught.value.guard == "ttl_elapsed"
    assert machine.fire(record, "expire", record.expires_at).state == "expired"


def test_exchange_without_a_code_is_refused_by_holds_code(
    machine: FlowMachine,
) -> None:
    record = make_record("code_received")

    with pytest.raises(GuardRejected) as caught:
        machine.fire(record, "exchange_code", START)

    assert caught.value.guard == "holds_code"
    assert "holds_code" in str(caught.value)


def test_guards_judge_the_record_with_its_changes(machine: FlowMachine) -> None:
    record = make_record("exchanging")
    tokens = Secrets(access_token="at")

    with pytest.raises(GuardRejected) as caught:
        machine.fire(record, "issue_token", START)
    moved = machine.fire(record, "issue_token", START, secrets=tokens)

    assert caught.value.guard == "holds_access_token"
    assert (moved.state, moved.secrets) == ("token_issued", tokens)


def test_a_refused_trigger_leaves_the_record_unchanged(machine: FlowMachine) -> None:
    record = make_record("code_received")
    before = replace(record)

    with pytest.raises(GuardRejected):
        machine.fire(record, "exchange_code", START)

    assert record == before


# The failed state needs a reason ---------------------------------------------------


def test_fail_without_a_reason_is_a_configuration_error(machine: FlowMachine) -> None:
    record = make_record("exchanging", id="flow-42")

    with pytest.raises(ConfigurationError) as caught:
        machine.fire(record, "fail", START)

    assert "needs a reason" in str(caught.value)
    assert "flow-42" in str(caught.value)


def test_fail_with_an_empty_reason_is_a_configuration_error(
    machine: FlowMachine,
) -> None:
    with pytest.raises(ConfigurationError):
        machine.fire(make_record(), "fail", START, reason="")


def test_fail_stores_the_reason_on_record_and_history(machine: FlowMachine) -> None:
    record = make_record("exchanging")

    moved = machine.fire(
        record, "fail", START, reason="invalid_grant", detail={"status": 400}
    )

    assert moved.state == "failed"
    assert moved.reason == "invalid_grant"
    assert moved.history[-1].detail == {"status": 400, "reason": "invalid_grant"}
    assert record.reason is None


# The guard functions ---------------------------------------------------------------


def test_every_guard_a_bundled_spec_names_exists() -> None:
    named = {
        guard
        for path in bundled_spec_files()
        for item in load_spec(path).transitions
        for guard in item.guards
    }

    assert named
    assert named - set(GUARDS) == set()


def test_within_ttl_and_ttl_elapsed_split_time_at_expiry() -> None:
    record = make_record()
    expiry = record.expires_at
    instants = [START, expiry - timedelta(microseconds=1), expiry, expiry + TTL]

    actual = [(within_ttl(record, t), ttl_elapsed(record, t)) for t in instants]

    assert actual == [(True, False), (True, False), (False, True), (False, True)]


@pytest.mark.parametrize(
    ("code", "expected"), [(None, False), ("", False), ("the-code", True)]
)
def test_holds_code(code: str | None, expected: bool) -> None:
    record = make_record(secrets=Secrets(code=code, access_token="at"))

    assert holds_code(record, START) is expected


@pytest.mark.parametrize(
    ("token", "expected"), [(None, False), ("", False), ("the-token", True)]
)
def test_holds_access_token(token: str | None, expected: bool) -> None:
    record = make_record(secrets=Secrets(code="c", access_token=token))

    assert holds_access_token(record, START) is expected


@pytest.mark.parametrize(
    ("token", "expected"), [(None, False), ("", False), ("the-token", True)]
)
def test_holds_refresh_token(token: str | None, expected: bool) -> None:
    record = make_record(secrets=Secrets(access_token="at", refresh_token=token))

    assert holds_refresh_token(record, START) is expected
    assert lacks_refresh_token(record, START) is not expected


def test_guard_table_maps_names_to_functions() -> None:
    functions = [
        within_ttl,
        ttl_elapsed,
        holds_code,
        holds_access_token,
        holds_refresh_token,
        lacks_refresh_token,
    ]

    assert dict(GUARDS) == {function.__name__: function for function in functions}


# Shared across threads and by property -------------------------------------------


def test_one_machine_serves_many_threads(machine: FlowMachine) -> None:
    errors: list[BaseException] = []
    finished: list[FlowRecord] = []

    def run(index: int) -> None:
        try:
            record = make_record(id=f"flow-{index}")
            for _ in range(20):
                record = machine.fire(record, "authorize", START)
                record = machine.fire(record, "fail", START, reason="loop")
                record = replace(record, state="client_registered")
            finished.append(record)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(len(r.history) for r in finished) == [40] * 8
    assert all(r.version == 41 for r in finished)
    assert machine._machine.models == []


TRIGGERS = [*sorted(builtin_spec().triggers), "teleport"]


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(TRIGGERS),
            st.sampled_from([None, "a_reason"]),
            st.booleans(),
            st.integers(min_value=0, max_value=20),
        ),
        max_size=12,
    )
)
def test_any_trigger_sequence_moves_only_along_the_spec(
    steps: list[tuple[str, str | None, bool, int]],
) -> None:
    machine = default_machine()
    spec = machine.spec
    edges = {
        (item.trigger, source): item.dest
        for item in spec.transitions
        for source in item.sources
    }
    record = make_record()

    for trigger, reason, with_secrets, minutes in steps:
        now = START + timedelta(minutes=minutes)
        secrets = Secrets(code="c", access_token="at") if with_secrets else Secrets()
        outcome: FlowRecord | CallerError
        try:
            outcome = machine.fire(record, trigger, now, reason=reason, secrets=secrets)
        except CallerError as exc:
            outcome = exc
        if isinstance(outcome, CallerError):
            expected = IllegalTransition | GuardRejected | ConfigurationError
            assert isinstance(outcome, expected)
            assert outcome.flow_id == record.id
            continue
        moved = outcome
        assert moved.state == edges[(trigger, record.state)]
        assert moved.version == record.version + 1
        assert moved.history[:-1] == record.history
        record = moved

    assert record.state in spec.states
    assert record.version == 1 + len(record.history)
