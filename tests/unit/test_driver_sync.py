"""The sync driver against a scripted token endpoint (httpx.MockTransport)."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

import flow
from flow import AuthMethod, Driver, SQLiteStore
from flow.drivers.effects import Send
from flow.errors import (
    AccessDenied,
    ConfigurationError,
    FlowExpired,
    FlowNotFound,
    IndeterminateExchange,
    InvalidGrant,
    IssuerMismatch,
    MalformedResponse,
    MetadataError,
    StateMismatch,
    TransportError,
    UnexpectedParameter,
    UserAgentMismatch,
)
from tests import canary
from tests.unit.flowkit import (
    ISSUER,
    Clock,
    FakeAS,
    callback_for,
    confidential_client,
    engine,
    json_response,
    query_of,
)

Events = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake() -> FakeAS:
    return FakeAS()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "flows.db"


def make_driver(db: Path, fake: FakeAS, clock: Clock, **kwargs: Any) -> Driver:
    return Driver(SQLiteStore(db), engine=engine(clock, **kwargs), http=fake.client())


def start(driver: Driver, fake: FakeAS, **kwargs: Any) -> flow.Started:
    secret = canary.canary("client-secret")
    return driver.start(
        kwargs.pop("client", confidential_client()),
        fake.server,
        client_secret=secret,
        scopes=["openid", "profile"],
        **kwargs,
    )


# The happy path --------------------------------------------------------------------


def test_flow_runs_from_start_to_api_ready_with_every_step_committed(
    db: Path, fake: FakeAS, clock: Clock, emitted: Events
) -> None:
    driver = make_driver(db, fake, clock)
    started = start(driver, fake)

    outcome = driver.resume(callback_for(started))

    record = driver.get(started.flow_id)
    assert (outcome.status, outcome.state) == ("completed", "api_ready")
    assert [(h.trigger, h.source, h.dest) for h in record.history] == [
        ("authorize", "client_registered", "awaiting_login"),
        ("receive_callback", "awaiting_login", "code_received"),
        ("exchange_code", "code_received", "exchanging"),
        ("issue_token", "exchanging", "token_issued"),
        ("grant_access", "token_issued", "api_ready"),
    ]
    assert record.version == 5
    assert record.secrets.access_token == fake.access_token
    assert record.secrets.refresh_token == fake.refresh_token
    assert (record.secrets.code, record.secrets.code_verifier) == (None, None)
    assert record.token is not None
    assert record.token.expires_at == clock.now + timedelta(seconds=3600)
    assert [e["event"] for e in emitted()] == [
        "flow.started",
        "flow.transition",
        "flow.paused",
        "flow.transition",
        "flow.transition",
        "flow.transition",
        "flow.transition",
        "flow.completed",
    ]


def test_token_request_carries_the_verifier_matching_the_challenge(
    db: Path, fake: FakeAS, clock: Clock
) -> None:
    driver = make_driver(db, fake, clock)
    started = start(driver, fake)
    challenge = query_of(started.authorization_url)["code_challenge"]

    driver.resume(callback_for(started))

    verifier = fake.token_form()["code_verifier"][0]
    digest = hashlib.sha256(verifier.encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == challenge
    assert query_of(started.authorization_url)["code_challenge_method"] == "S256"


def test_redirect_uri_reaches_the_token_request_byte_for_byte(
    db: Path, fake: FakeAS, clock: Clock
) -> None:
    odd = "https://app.test/cb/?b=2&a=1"
    driver = make_driver(db, fake, clock)
    started = start(driver, fake, client=confidential_client(redirect_uri=odd))

    driver.resume(callback_for(started))

    assert fake.token_form()["redirect_uri"] == [odd]


@pytest.mark.parametrize(
    ("method", "in_header", "in_form"),
    [
        (AuthMethod.CLIENT_SECRET_BASIC, True, False),
        (AuthMethod.CLIENT_SECRET_POST, False, True),
    ],
)
def test_client_authentication_method_is_honoured(
    db: Path,
    fake: FakeAS,
    clock: Clock,
    method: AuthMethod,
    in_header: bool,
    in_form: bool,
) -> None:
    driver = make_driver(db, fake, clock)
    started = start(driver, fake, client=confidential_client(method))

    driver.resume(callback_for(started))

    request = fake.token_requests[0]
    assert ("authorization" in request.headers) == in_header
    assert ("client_secret" in fake.token_form()) == in_form


def test_public_client_sends_its_id_and_no_secret(
    db: Path, fake: FakeAS, clock: Clock
) -> None:
    driver = make_driver(db, fake, clock)
    started = driver.start(
        confidential_client(AuthMethod.NONE), fake.server, scopes=["openid"]
    )

    driver.resume(callback_for(started))

    form = fake.token_form()
    assert (form["client_id"], "client_secret" in form) == (["app-client"], False)
    assert "authorization" not in fake.token_requests[0].headers


def test_flow_started_by_one_driver_is_resumed_by_another(
    db: Path, fake: FakeAS, clock: Clock
) -> None:
    first = make_driver(db, fake, clock)
    started = start(first, fake)
    first.store.close()
    first.close()

    second = make_driver(db, fake, clock)
    outcome = second.resume(callback_for(started))

    assert (outcome.flow_id, outcome.state) == (started.flow_id, "api_ready")


def test_each_transition_is_logged_only_after_its_commit(
    db: Path, fake: FakeAS, clock: Clock, emitted: Events
) -> None:
    seen: list[tuple[int, int]] = []

    class Watching(SQLiteStore):
        def save(self, record: flow.FlowRecord) -> None:
            logged = [
                e["version"] for e in emitted() if e["event"] == "flow.transition"
            ]
            seen.append((record.version, max(logged)))
            super().save(record)

    driver = Driver(Watching(db), engine=engine(clock), http=fake.client())
    driver.resume(callback_for(start(driver, fake)))

    assert seen == [(2, 1), (3, 2), (4, 3), (5, 4)]


def test_extra_callback_parameters_are_ignored_and_never_kept(
    db: Path, fake: FakeAS, clock: Clock, emitted: Events
) -> None:
    driver = make_driver(db, fake, clock)
    started = start(driver, fake)
    extra = canary.canary("extra")

    outcome = driver.resume(callback_for(started, foo=extra))

    assert outcome.state == "api_ready"
    assert extra.encode() not in b"".join(p.read_bytes() for p in db.parent.iterdir())
    assert extra not in repr(emitted())


# Repeated and concurrent callbacks -------------------------------------------------


def test_repeated_callback_sends_nothing_and_says_already_handled(
    db: Path, fake: FakeAS, clock: Clock
) -> None:
    driver = make_driver(db, fake, clock)
    callback = callback_for(start(driver, fake))
    driver.resume(callback)

    again = driver.resume(callback)

    assert (again.status, again.state, len(fake.token_requests)) == (
        "already_handled",
        "api_ready",
        1,
    )


def test_concurrent_duplicate_callbacks_send_the_code_once(
    db: Path, fake: FakeAS, clock: Clock, emitted: Events
) -> None:
    started = start(make_driver(db, fake, clock), fake)
    callback = callback_for(started)
    drivers = [make_driver(db, fake, clock) for _ in range(4)]
    barrier = threading.Barrier(len(drivers))
    outcomes: list[str] = []

    def resume(driver: Driver) -> None:
        barrier.wait()
        outcomes.append(driver.resume(callback).status)

    threads = [threading.Thread(target=resume, args=(d,)) for d in drivers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    record = drivers[0].get(started.flow_id)
    transitions = [
        (e["flow_id"], e["version"])
        for e in emitted()
        if e["event"] == "flow.transition"
    ]
    assert len(fake.token_requests) == 1
    assert (record.state, record.version) == ("api_ready", 5)
    assert set(outcomes) <= {"already_handled", "completed", "in_progress"}
    assert outcomes.count("completed") == 1
    assert len(transitions) == len(set(transitions)) == 5


# Bad callbacks -----------------------------------------------------------------------


def test_forged_state_finds_no_flow_and_sends_nothing(
    db: Path, fake: FakeAS, clock: Clock
) -> None:
    driver = make_driver(db, fake, clock)
    started = start(driver, fake)

    with pytest.raises(FlowNotFound) as caught:
        driver.resume(callback_for(started, state="forged-state"))

    canary.record_text(caught.value)
    assert driver.get(started.flow_id).state == "awaiting_login"
    assert fake.token_requests == []


def test_wrong_state_for_a_named_flow_fails_it(
    db: Path, fake: FakeAS, clock: Clock
) -> None:
    driver = make_driver(db, fake, clock)
    started = start(driver, fake)

    with pytest.raises(StateMismatch) as caught:
        driver.resume(callback_for(started, state="forged"), flow_id=started.flow_id)

    record = driver.get(started.flow_id)
    assert (record.state, record.reason, caught.value.flow_id) == (
        "failed",
        "state_mismatch",
        started.flow_id,
    )
    assert fake.token_requests == []


def test_error_with_a_wrong_state_is_a_state_mismatch(
    db: Path, fake: FakeAS, clock: Clock
) -> None:
    driver = make_driver(db, fake, clock)
    started = start(driver, fake)
    callback = callback_for(started, code=None, error="access_denied", state="bad")

    with pytest.raises(StateMismatch):
        driver.resume(callback, flow_id=started.flow_id)


@pytest.mark.parametrize(
    "iss", ["https://evil.test", f"{ISSUER}/", ISSUER.upper(), "https%3A%2F%2Fas.test"]
)
def test_wrong_issuer_fails_the_flow_before_any_request(
    db: Path, fake: FakeAS, clock: Clock, iss: str
) -> None:
    driver = make_driver(db, fake, clock)
    started = start(driver, fake)

    with pytest.raises(IssuerMismatch):
        driver.resume(callback_for(started, iss=iss))

    record = driver.get(started.flow_id)
    assert (record.state, record.reason, fake.token_requests) == (
        "failed",
        "iss_mismatch",
        [],
    )


def test_missing_issuer_fails_when_the_server_advertises_it(
    db: Path, fake: FakeAS, clock: Clock
) -> None:
    driver = make_driver(db, fake, clock)
    started = start(driver, fake)

    with pytest.raises(IssuerMismatch):
        driver.resume(callback_for(started, iss=None))


def test_user_denial_ends_the_flow_as_denied(
    db: Path, fake: FakeAS, clock: Clock, emitted: Events
) -> None:
    driver = make_driver(db, fake, clock)
    started = start(driver, fake)
    callback = callback_for(
        started, code=None, error="access_denied", error_description="nope\r\nX: y"
    )

    with pytest.raises(AccessDenied) as caught:
        driver.resume(callback)

    record = driver.get(started.flow_id)
    assert (record.state, record.secrets.code_verifier) == ("denied", None)
    assert "\r\n" not in str(caught.value)
    assert emitted()[-1]["event"] == "flow.failed"


def test_tokens_in_the_callback_fail_the_flow_and_are_not_kept(
    db: Path, fake: FakeAS, clock: Clock
) -> None:
    driver = make_driver(db, fake, clock)
    started = start(driver, fake)
    leaked = canary.canary("callback-at")

    with pytest.raises(UnexpectedParameter):
        driver.resume(callback_for(started, access_token=leaked))

    assert driver.get(started.flow_id).reason == "unexpected_parameter"
    assert leaked.encode() not in b"".join(p.read_bytes() for p in db.parent.iterdir())


def test_callback_after_the_time_to_live_expires_the_flow(
    db: Path, fake: FakeAS, clock: Clock
) -> None:
    driver = make_driver(db, fake, clock)
    started = start(driver, fake)
    clock.advance(minutes=11)

    with pytest.raises(FlowExpired):
        driver.resume(callback_for(started))

    assert driver.get(started.flow_id).state == "expired"
    assert fake.token_requests == []


def test_unknown_flow_id_is_a_typed_error(db: Path, fake: FakeAS, clock: Clock) -> None:
    driver = make_driver(db, fake, clock)

    with pytest.raises(FlowNotFound):
        driver.resume("code=x&state=y", flow_id="no-such-flow")


# Bad token responses -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "error", "reason"),
    [
        (
            httpx.Response(200, text="<html>oops</html>"),
            MalformedResponse,
            "malformed_token_response",
        ),
        (
            json_response(200, {"token_type": "Bearer"}),
            MalformedResponse,
            "malformed_token_response",
        ),
        (json_response(400, {"error": "invalid_grant"}), InvalidGrant, "invalid_grant"),
    ],
)
def test_bad_token_response_fails_the_flow_with_its_reason(
    db: Path,
    fake: FakeAS,
    clock: Clock,
    response: httpx.Response,
    error: type[Exception],
    reason: str,
) -> None:
    fake.respond = lambda _: response
    driver = make_driver(db, fake, clock)
    started = start(driver, fake)

    with pytest.raises(error):
        driver.resume(callback_for(started))

    record = driver.get(started.flow_id)
    assert (record.state, record.reason, record.secrets.code) == (
        "failed",
        reason,
        None,
    )


def test_timeout_after_sending_ends_as_indeterminate(
    db: Path, fake: FakeAS, clock: Clock
) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    fake.respond = slow
    driver = make_driver(db, fake, clock)
    started = start(driver, fake)

    with pytest.raises(IndeterminateExchange):
        driver.resume(callback_for(started))

    assert driver.get(started.flow_id).reason == "exchange_indeterminate"


def test_connection_refused_is_a_transport_error(
    db: Path, fake: FakeAS, clock: Clock
) -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    fake.respond = refused
    driver = make_driver(db, fake, clock)
    started = start(driver, fake)

    with pytest.raises(TransportError) as caught:
        driver.resume(callback_for(started))

    assert not isinstance(caught.value, IndeterminateExchange)
    assert driver.get(started.flow_id).reason == "transport_error"


# Crashes between steps ---------------------------------------------------------------


def _crash_at_send(driver: Driver, callback: str) -> None:
    """Run a resume until the token request is about to go out, then abandon it."""
    program = driver.engine.resume(callback)
    value: object = None
    while True:
        effect = program.send(value)
        if isinstance(effect, Send):
            program.close()
            return
        value = driver._run(_single(effect))


def _single(effect: Any) -> Any:
    return (yield effect)


def test_crash_before_sending_the_code_is_reported_in_progress_then_indeterminate(
    db: Path, fake: FakeAS, clock: Clock
) -> None:
    crashed = make_driver(db, fake, clock)
    started = start(crashed, fake)
    callback = callback_for(started)
    _crash_at_send(crashed, callback)

    later = make_driver(db, fake, clock)
    during = later.resume(callback)
    clock.advance(minutes=3)
    with pytest.raises(IndeterminateExchange):
        later.resume(callback)

    record = later.get(started.flow_id)
    assert during.status == "in_progress"
    assert (record.state, record.reason) == ("failed", "exchange_indeterminate")
    assert fake.token_requests == []


def test_crash_after_the_callback_commit_resumes_and_completes(
    db: Path, fake: FakeAS, clock: Clock
) -> None:
    crashed = make_driver(db, fake, clock)
    started = start(crashed, fake)
    callback = callback_for(started)
    program = crashed.engine.resume(callback)
    found = crashed.store.find_by_state(started_state_hash(crashed, started))
    program.send(None)
    saved = program.send(found)  # the receive_callback record
    crashed.store.save(saved.record)  # type: ignore[union-attr]
    program.close()

    during = make_driver(db, fake, clock).resume(callback)
    clock.advance(minutes=3)  # the dead process's lease runs out
    outcome = make_driver(db, fake, clock).resume(callback)

    assert (during.status, during.state) == ("in_progress", "code_received")
    assert (outcome.status, outcome.state) == ("completed", "api_ready")
    assert len(fake.token_requests) == 1


def started_state_hash(driver: Driver, started: flow.Started) -> str:
    hashed = driver.get(started.flow_id).state_hash
    assert hashed is not None
    return hashed


# Start -------------------------------------------------------------------------------


def test_confidential_client_without_secret_is_refused_before_anything_is_stored(
    db: Path, fake: FakeAS, clock: Clock
) -> None:
    driver = make_driver(db, fake, clock)

    with pytest.raises(ConfigurationError):
        driver.start(confidential_client(), fake.server)

    assert driver.store.list() == []


def test_start_discovers_the_issuer_when_given_a_url(clock: Clock, db: Path) -> None:
    document = {
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/auth",
        "token_endpoint": f"{ISSUER}/token",
        "authorization_response_iss_parameter_supported": True,
    }
    transport = httpx.MockTransport(lambda request: json_response(200, document))
    driver = Driver(
        SQLiteStore(db), engine=engine(clock), http=httpx.Client(transport=transport)
    )

    started = driver.start(confidential_client(AuthMethod.NONE), ISSUER)

    record = driver.get(started.flow_id)
    assert (
        record.server.authorization_endpoint,
        record.server.iss_parameter_supported,
    ) == (
        f"{ISSUER}/auth",
        True,
    )


def test_discovery_document_for_another_issuer_starts_nothing(
    clock: Clock, db: Path
) -> None:
    document = {
        "issuer": "https://other.test",
        "authorization_endpoint": "https://other.test/auth",
        "token_endpoint": "https://other.test/token",
    }
    transport = httpx.MockTransport(lambda request: json_response(200, document))
    driver = Driver(
        SQLiteStore(db), engine=engine(clock), http=httpx.Client(transport=transport)
    )

    with pytest.raises(MetadataError):
        driver.start(confidential_client(AuthMethod.NONE), ISSUER)

    assert driver.store.list() == []


def test_callback_from_another_browser_is_refused_and_the_flow_keeps_waiting(
    db: Path, fake: FakeAS, clock: Clock
) -> None:
    driver = make_driver(db, fake, clock)
    session = canary.canary("session")
    started = start(driver, fake, binding=session)
    callback = callback_for(started)

    with pytest.raises(UserAgentMismatch):
        driver.resume(callback, binding="attacker-session")
    with pytest.raises(UserAgentMismatch):
        driver.resume(callback)
    waiting = driver.get(started.flow_id)
    outcome = driver.resume(callback, binding=session)

    assert (waiting.state, waiting.version) == ("awaiting_login", 1)
    assert outcome.state == "api_ready"
    assert len(fake.token_requests) == 1
