"""``flow demo``: the first thing a newcomer runs must work, offline, in seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flow.cli import main


def test_demo_runs_a_whole_flow_and_reports_it_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    monkeypatch.setattr("flow.cli.app.configure_logging", lambda **_: None)
    store = f"sqlite:///{tmp_path / 'demo.db'}"

    code = main(["demo", "--json", "--store", store])

    report = json.loads(capsys.readouterr().out)
    assert (code, report["state"], report["store"]) == (0, "api_ready", store)
    assert [step["trigger"] for step in report["history"]] == [
        "authorize",
        "receive_callback",
        "exchange_code",
        "issue_token",
        "grant_access",
        "begin_refresh",
        "complete_refresh",
    ]
    assert report["userinfo"] == {"sub": "demo-user"}


def test_demo_command_narrates_and_says_where_the_store_lives(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "flow", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "5. API access" in done.stdout
    assert "the store lives at" in done.stdout
    assert done.stderr == ""
