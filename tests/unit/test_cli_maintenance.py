"""``flow gc`` and ``flow refresh-due``, run in this process, and their progress bar."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flow import Driver, SQLiteStore
from flow.cli import main
from flow.cli.progress import Bar
from tests import canary
from tests.unit.flowkit import (
    Clock,
    FakeAS,
    RotatingAS,
    TokenServer,
    confidential_client,
    credential_flow,
    engine,
)


class Cli:
    """Runs ``flow`` in this process against one SQLite file."""

    def __init__(
        self, db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
    ) -> None:
        self.db = db
        self.capsys = capsys
        # The suite's own structlog set-up captures events for the leak scan.
        monkeypatch.setattr("flow.cli.app.configure_logging", lambda **_: None)

    def run(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main([*args, "--store", f"sqlite:///{self.db}"])
        out, err = self.capsys.readouterr()
        canary.record_text(out, err)
        return code, out, err


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any) -> Cli:
    return Cli(tmp_path / "cli.db", capsys, monkeypatch)


@pytest.fixture
def token_server() -> Iterator[TokenServer]:
    with TokenServer(RotatingAS()) as server:
        yield server


def abandoned_flows(db: Path, count: int) -> None:
    """Flows started a day ago by a user who never came back."""
    clock = Clock()
    clock.now = datetime.now(UTC) - timedelta(days=1)
    with Driver(SQLiteStore(db), engine=engine(clock)) as driver:
        for _ in range(count):
            driver.start(
                confidential_client(),
                FakeAS().server,
                client_secret=canary.canary("secret"),
            )


def due_flows(db: Path, server: TokenServer, count: int) -> list[str]:
    """Credentials whose access token expires in a minute."""
    store = SQLiteStore(db)
    soon = datetime.now(UTC) + timedelta(minutes=1)
    flow_ids = []
    for n in range(count):
        record = credential_flow(
            f"due-{n}",
            server.token_endpoint,
            soon,
            refresh_token=server.endpoint.issue()["refresh_token"],
        )
        store.insert(record)
        flow_ids.append(record.id)
    store.close()
    return flow_ids


# flow gc ------------------------------------------------------------------------------


def test_gc_expires_then_deletes_and_reports_as_json(cli: Cli) -> None:
    abandoned_flows(cli.db, 2)

    code, out, err = cli.run("gc", "--json")
    code_again, out_again, _ = cli.run("gc", "--retention", "0", "--json")

    assert (code, err) == (0, "")
    assert json.loads(out) == {"expired": 2, "deleted": 0, "skipped": 0, "batches": 1}
    assert code_again == 0
    assert json.loads(out_again) == {
        "expired": 0,
        "deleted": 2,
        "skipped": 0,
        "batches": 1,
    }
    assert SQLiteStore(cli.db).list() == []


def test_gc_ends_with_a_one_line_summary_and_no_bar_off_a_terminal(cli: Cli) -> None:
    abandoned_flows(cli.db, 3)

    code, out, err = cli.run("gc", "--retention", "0", "--limit", "2")

    assert code == 0
    assert out == "expired 2, deleted 2, skipped 0 (2 batches)\n"
    assert err == ""


@pytest.mark.parametrize(
    "flags", [["--limit", "0"], ["--retention", "-1"], ["--limit", "many"]]
)
def test_gc_refuses_bad_flags_as_usage_errors(cli: Cli, flags: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.run("gc", *flags)

    assert caught.value.code == 2


# flow refresh-due ---------------------------------------------------------------------


def test_refresh_due_refreshes_each_credential_once_and_reports_as_json(
    cli: Cli, token_server: TokenServer
) -> None:
    due_flows(cli.db, token_server, 3)

    code, out, err = cli.run("refresh-due", "--json", "--concurrency", "2")
    again = json.loads(cli.run("refresh-due", "--json")[1])

    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "refreshed": 3,
        "reauth_required": {},
        "failed": {},
        "skipped": 0,
        "batches": 1,
    }
    assert again["refreshed"] == 0
    assert list(token_server.endpoint.refreshes.values()) == [1, 1, 1]


def test_refresh_due_lists_failures_then_sums_up_and_exits_1(
    cli: Cli, token_server: TokenServer
) -> None:
    failing, lapsing, working = due_flows(cli.db, token_server, 3)
    store = SQLiteStore(cli.db)
    doomed = store.load(failing).secrets.refresh_token
    refused = store.load(lapsing).secrets.refresh_token
    store.close()
    live = token_server.endpoint

    def answer(token: str) -> tuple[int, dict[str, Any]]:
        if token == doomed:
            return 503, {"error": "temporarily_unavailable"}
        if token == refused:
            return 400, {"error": "invalid_grant"}
        return 200, live.issue()

    live.answer = answer

    code, out, err = cli.run("refresh-due", "--window", "600")

    lines = out.splitlines()
    assert code == 1
    assert err == ""
    assert lines[-1] == (
        "refreshed 1, reauth required 1, failed 1, skipped 0 (1 batch)"
    )
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:-1]}
    assert rows == {
        lapsing: ["reauth_required", "invalid_grant"],
        failing: ["failed", "temporarily_unavailable"],
    }
    assert SQLiteStore(cli.db).load(working).state == "api_ready"


def test_refresh_due_outside_the_window_does_nothing(
    cli: Cli, token_server: TokenServer
) -> None:
    due_flows(cli.db, token_server, 2)

    code, out, _ = cli.run("refresh-due", "--window", "0")

    assert (code, out) == (
        0,
        "refreshed 0, reauth required 0, failed 0, skipped 0 (0 batches)\n",
    )
    assert token_server.endpoint.refreshes == {}


# The progress bar ---------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_redraws_one_line_on_a_terminal_and_wipes_it() -> None:
    screen = Terminal()

    with Bar("flow gc", 4, stream=screen, width=8) as bar:
        bar.update(1, "expired 10")
        bar.update(4, "expired 40")

    drawn = screen.getvalue()
    assert "\n" not in drawn
    assert drawn.split("\r")[1:3] == [
        "flow gc [##......] 1/4 expired 10",
        "flow gc [########] 4/4 expired 40",
    ]
    assert drawn.endswith("\r" + " " * len("flow gc [########] 4/4 expired 40") + "\r")


def test_bar_draws_nothing_off_a_terminal() -> None:
    log = io.StringIO()

    with Bar("flow gc", 4, stream=log) as bar:
        bar.update(2, "expired 1")

    assert log.getvalue() == ""
