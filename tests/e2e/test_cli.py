"""The ``flow`` command end to end against the real authorization server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import flow
from flow.cli import main
from tests import canary
from tests.e2e.conftest import SHORT_TOKEN_TTL
from tests.e2e.harness import (
    CONFIDENTIAL_CLIENT_ID,
    CONFIDENTIAL_CLIENT_SECRET,
    PUBLIC_CLIENT_ID,
    WEB_REDIRECT_URI,
    AuthServer,
    Browser,
)

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


class Cli:
    """Runs ``flow`` in this process, as a script would run the console command."""

    def __init__(
        self, store: str, capsys: pytest.CaptureFixture[str], monkeypatch: Any
    ) -> None:
        self.store = store
        self.capsys = capsys
        # The suite's own structlog set-up captures events for the leak scan.
        monkeypatch.setattr("flow.cli.app.configure_logging", lambda **_: None)

    def run(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main([*args, "--store", self.store])
        out, err = self.capsys.readouterr()
        canary.record_text(err)
        return code, out, err

    def json(self, *args: str) -> Any:
        code, out, err = self.run(*args, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any) -> Cli:
    return Cli(f"sqlite:///{tmp_path / 'cli.db'}", capsys, monkeypatch)


@pytest.fixture
def browser() -> Iterator[Browser]:
    with Browser() as user_agent:
        yield user_agent


def start_args(server: AuthServer) -> list[str]:
    return [
        "start",
        "--issuer", server.issuer,
        "--client-id", CONFIDENTIAL_CLIENT_ID,
        "--client-secret", CONFIDENTIAL_CLIENT_SECRET,
        "--redirect-uri", WEB_REDIRECT_URI,
        "--scope", "openid",
        "--scope", "profile",
        "--scope", "offline_access",
        "--provider", "oidc-test",
    ]  # fmt: skip


def logged_in(cli: Cli, server: AuthServer, browser: Browser) -> str:
    started = cli.json(*start_args(server))
    with canary.playing_the_user():
        callback = browser.login(started["authorization_url"])
    resumed = cli.json("resume", "--callback", callback)
    assert resumed == {
        "flow_id": started["flow_id"],
        "state": "api_ready",
        "status": "completed",
    }
    return str(started["flow_id"])


def test_start_resume_show_token_call_refresh_revoke(
    auth_server: AuthServer, cli: Cli, browser: Browser
) -> None:
    started = cli.json(*start_args(auth_server))
    assert (started["state"], set(started)) == (
        "awaiting_login",
        {"flow_id", "state", "authorization_url"},
    )
    with canary.playing_the_user():
        callback = browser.login(started["authorization_url"])
    flow_id = started["flow_id"]

    code, out, _ = cli.run("resume", "--callback", callback)
    assert (code, flow_id in out, "api_ready" in out) == (0, True, True)

    shown = cli.json("show", flow_id)
    assert shown["state"] == "api_ready"
    assert [(h["trigger"], h["dest"]) for h in shown["history"]][-1] == (
        "grant_access",
        "api_ready",
    )
    assert all(set(h) >= {"trigger", "source", "dest", "at"} for h in shown["history"])

    code, token, _ = cli.run("token", flow_id)
    canary.register(token.strip())
    assert code == 0

    called = cli.json("call", flow_id, f"{auth_server.issuer}/me")
    assert (called["status"], json.loads(called["body"])["sub"]) == (200, "alice")

    # The token "expires" within a leeway longer than its life: refreshed now.
    refreshed = cli.json("token", flow_id, "--leeway", "100000")
    canary.register(refreshed["access_token"])
    assert refreshed["access_token"] != token.strip()
    triggers = [h["trigger"] for h in cli.json("show", flow_id)["history"]]
    assert triggers[-2:] == ["begin_refresh", "complete_refresh"]

    listed = cli.json("list", "--provider", "oidc-test")
    assert [f["flow_id"] for f in listed["flows"]] == [flow_id]

    revoked = cli.json("revoke", flow_id)
    assert (revoked["state"], revoked["at_provider"]) == ("revoked", True)
    with httpx.Client(trust_env=False) as http:
        dead = http.get(
            f"{auth_server.issuer}/me",
            headers={"Authorization": f"Bearer {refreshed['access_token']}"},
        )
    assert dead.status_code == 401


def test_resume_with_flow_id_and_query(
    auth_server: AuthServer, cli: Cli, browser: Browser
) -> None:
    started = cli.json(*start_args(auth_server))
    with canary.playing_the_user():
        callback = browser.login(started["authorization_url"])

    resumed = cli.json("resume", started["flow_id"], callback.split("?", 1)[1])

    assert resumed["state"] == "api_ready"


def test_human_output_is_short_and_aligned(
    auth_server: AuthServer, cli: Cli, browser: Browser
) -> None:
    flow_id = logged_in(cli, auth_server, browser)

    code, out, _ = cli.run("show", flow_id)

    head = out.split("\n\n")[0].splitlines()
    assert code == 0
    assert len({line.index(line.split()[-1]) for line in head[:2]}) == 1
    assert "awaiting_login -> code_received" in out


@pytest.mark.parametrize(
    "args",
    [
        ["show", "no-such-flow"],
        ["token", "no-such-flow"],
        ["revoke", "no-such-flow"],
        ["resume", "--callback", "http://127.0.0.1:9/callback?code=x&state=forged"],
        ["resume"],
        ["start", "--client-id", "x", "--redirect-uri", "http://127.0.0.1/cb"],
    ],
)
def test_bad_arguments_give_one_line_errors_and_exit_1(
    cli: Cli, args: list[str]
) -> None:
    code, out, err = cli.run(*args)

    assert code == 1
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("flow: error: ")


def test_errors_are_json_on_stdout_with_json(cli: Cli) -> None:
    code, out, _ = cli.run("show", "no-such-flow", "--json")

    assert (code, json.loads(out)["error"]) == (1, "unknown_flow")


def test_usage_errors_exit_2(cli: Cli) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["start", "--store", cli.store])

    assert caught.value.code == 2


def test_check_reports_every_problem_with_file_and_field(
    cli: Cli, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (ROOT / "specs/flows/authorization_code.yaml")
        .read_text()
        .replace("kind: waiting", "kind: sleeping", 1)
    )

    good = ROOT / "specs/flows/authorization_code.yaml"
    json_code, json_out, _ = cli.run("check", str(bad), str(good), "--json")
    code, out, _ = cli.run("check", str(bad))

    report = json.loads(json_out)
    assert json_code == 1

    problems = report["files"][0]["problems"]
    assert code == 1
    assert {p["field"] for p in problems} == {"states.awaiting_login.kind"}
    assert report["files"][1]["valid"] is True
    assert all(line.startswith(f"{bad}: ") for line in out.strip().splitlines())


def test_diagram_prints_mermaid_and_writes_files(cli: Cli, tmp_path: Path) -> None:
    printed = cli.json("diagram")
    written = cli.json("diagram", "--write", str(tmp_path / "d"))

    assert printed["mermaid"].splitlines()[3] == "stateDiagram-v2"
    assert written["written"] == [str(tmp_path / "d" / "authorization_code.md")]


def test_concurrent_token_requests_refresh_once_against_the_real_server(
    auth_server: AuthServer, cli: Cli, browser: Browser, tmp_path: Path
) -> None:
    # oidc-provider revokes the whole grant when a rotated refresh token is used
    # twice: a double refresh would make every token below fail at /me.
    flow_id = logged_in(cli, auth_server, browser)
    store = flow.SQLiteStore(tmp_path / "cli.db")
    with flow.Driver(store) as driver:
        old = driver.get(flow_id).secrets.access_token
        barrier = threading.Barrier(6)
        tokens: list[str] = []

        def call() -> None:
            barrier.wait()
            tokens.append(
                driver.credential(flow_id, rejected=old).secrets.access_token or ""
            )

        threads = [threading.Thread(target=call) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        record = driver.get(flow_id)
        with httpx.Client(auth=driver.auth(flow_id), trust_env=False) as api:
            me = api.get(f"{auth_server.issuer}/me")

    canary.register(*tokens)
    refreshes = [h for h in record.history if h.trigger == "complete_refresh"]
    assert (len(set(tokens)), len(refreshes), me.status_code) == (1, 1, 200)


# The console command in its own process ----------------------------------------------


def run_flow(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flow", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_login_through_the_system_browser_and_loopback(
    auth_server: AuthServer, tmp_path: Path
) -> None:
    page = tmp_path / "page.txt"
    store = f"sqlite:///{tmp_path / 'login.db'}"
    browser = f"{sys.executable} {ROOT / 'tests/e2e/fake_browser.py'} %s"

    done = run_flow(
        "login",
        "--issuer", auth_server.issuer,
        "--client-id", PUBLIC_CLIENT_ID,
        "--scope", "openid",
        "--store", store,
        "--json",
        "--timeout", "30",
        env={"BROWSER": browser, "FAKE_BROWSER_PAGE": str(page)},
    )  # fmt: skip

    result = json.loads(done.stdout)
    seen = page.read_text()
    canary.record_text(done.stderr)
    assert (done.returncode, result["state"]) == (0, "api_ready"), done.stderr
    assert seen.startswith("200\n")
    assert "cache-control: no-store" in seen.lower()
    assert "referrer-policy: no-referrer" in seen.lower()
    assert "code=" not in seen
    assert "state=" not in seen


def test_ctrl_c_during_login_cancels_the_flow(
    auth_server: AuthServer, tmp_path: Path
) -> None:
    db = tmp_path / "cancel.db"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "flow", "login",
            "--issuer", auth_server.issuer,
            "--client-id", PUBLIC_CLIENT_ID,
            "--store", f"sqlite:///{db}",
            "--no-browser",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        for _ in range(200):  # bounded: about 10 s
            if db.exists() and flow.SQLiteStore(db).list(state="awaiting_login"):
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()

    (record,) = flow.SQLiteStore(db).list()
    assert (process.returncode, record.state) == (130, "cancelled")
    assert "Open this URL" in err


def test_log_json_writes_json_lines_to_stderr_only(tmp_path: Path) -> None:
    done = run_flow("list", "-v", "--log-json", "--store", "memory://", "--json")

    assert done.returncode == 0
    assert json.loads(done.stdout) == {"flows": []}
    assert all(json.loads(line) for line in done.stderr.splitlines())


@pytest.mark.parametrize(
    "command",
    ["start", "resume", "login", "show", "list", "token", "call", "revoke",
     "diagram", "check", "demo", "gc", "refresh-due"],
)  # fmt: skip
def test_every_command_has_help(command: str) -> None:
    done = run_flow(command, "--help")

    assert (done.returncode, done.stdout.startswith("usage: flow")) == (0, True)


def test_token_and_call_refresh_after_the_token_expired(
    short_lived_auth_server: AuthServer, cli: Cli, browser: Browser
) -> None:
    flow_id = logged_in(cli, short_lived_auth_server, browser)
    before = cli.json("token", flow_id, "--leeway", "0")["access_token"]
    canary.register(before)
    # Let the access token expire at the server (its clock tolerance is 0).
    time.sleep(SHORT_TOKEN_TTL + 0.5)

    called = cli.json("call", flow_id, f"{short_lived_auth_server.issuer}/me")
    after = cli.json("token", flow_id, "--leeway", "0")["access_token"]
    canary.register(after)

    history = [h["trigger"] for h in cli.json("show", flow_id)["history"]]
    assert called["status"] == 200
    assert after != before
    assert history.count("complete_refresh") >= 1


def test_start_with_a_catalog_provider_and_its_parameter(cli: Cli) -> None:
    started = cli.json(
        "start",
        "--provider", "microsoft",
        "--param", "tenant=consumers",
        "--client-id", "00000000-0000-0000-0000-000000000000",
        "--redirect-uri", "http://localhost:8400/callback",
    )  # fmt: skip

    assert started["authorization_url"].startswith(
        "https://login.microsoftonline.com/consumers/oauth2/v2.0/authorize?"
    )
    assert "offline_access" in started["authorization_url"]


def test_wrong_provider_parameter_is_a_one_line_error(cli: Cli) -> None:
    code, out, err = cli.run(
        "start",
        "--provider", "microsoft",
        "--param", "tenant=no/slashes",
        "--client-id", "x",
        "--redirect-uri", "http://localhost:8400/callback",
    )  # fmt: skip

    assert (code, out, len(err.strip().splitlines())) == (1, "", 1)
    assert "does not match" in err


def test_providers_lists_the_catalog_and_shows_one(cli: Cli) -> None:
    listed = cli.json("providers")
    shown = cli.json("providers", "show", "google")

    assert {"google", "microsoft", "oidc"} <= {p["id"] for p in listed["providers"]}
    assert (shown["public_client_secret"], shown["refresh_token"]["params"]) == (
        "required",
        {"access_type": "offline", "prompt": "consent"},
    )


def test_login_takes_the_provider_as_an_argument(tmp_path: Path) -> None:
    db = tmp_path / "google.db"

    done = run_flow(
        "login", "google",
        "--client-id", "app.apps.googleusercontent.com",
        "--client-secret", "desktop-secret-not-secret",
        "--no-browser", "--timeout", "0.5",
        "--store", f"sqlite:///{db}",
    )  # fmt: skip

    (record,) = flow.SQLiteStore(db).list()
    assert done.returncode == 1
    assert "https://accounts.google.com/o/oauth2/v2/auth?" in done.stderr
    assert "access_type=offline" in done.stderr
    assert (record.provider, record.state) == ("google", "cancelled")
