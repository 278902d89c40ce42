"""The benchmark scenarios still run, with tiny sizes. No timing is ever asserted.

Numbers only have to exist and be positive: how fast anything runs is the
benchmark's business (``python -m benchmarks``), never the test suite's. Peers
that are not installed (authlib, httpx-oauth: benchmark dependencies only) are
skipped with the reason.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks import __main__ as cli
from benchmarks import (
    end_to_end,
    memory,
    peers,
    refresh,
    report,
    resume_scale,
    single_flow,
)
from benchmarks.stats import Result

TINY = single_flow.Sizes(rounds=2, per_round=3, warmup=2)


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Result:
    return single_flow.run(tmp_path_factory.mktemp("single"), TINY)


@pytest.mark.parametrize(
    "name",
    [
        single_flow.FLOW_MEMORY,
        single_flow.FLOW_SQLITE,
        single_flow.FLOOR,
        peers.AUTHLIB,
        peers.HTTPX_OAUTH,
    ],
)
def test_single_flow_times_every_contender(single: Result, name: str) -> None:
    if name in single.skipped:
        pytest.skip(single.skipped[name])

    row = single.row(single_flow.SCENARIO, name)

    assert row.samples == TINY.rounds * TINY.per_round
    assert row.median > 0
    assert row.p99 is not None
    assert row.p99 >= row.median
    assert row.ratio is not None


def test_single_flow_reports_its_targets(single: Result) -> None:
    names = [check.name for check in single.checks]

    assert "flow + MemoryStore / floor" in names
    assert all(math.isfinite(check.value) for check in single.checks)


def test_resume_at_scale_runs_on_a_hundred_stored_flows(tmp_path: Path) -> None:
    sizes = resume_scale.Sizes(counts=(10**2,), samples=10)

    result = resume_scale.run(tmp_path, sizes)

    (row,) = result.rows
    assert (row.scenario, row.samples) == ("resume at scale n=10^2", 10)
    assert row.median > 0
    assert list(tmp_path.iterdir()) == []  # the database is dropped afterwards


def test_memory_reports_bytes_per_flow(tmp_path: Path) -> None:
    result = memory.run(tmp_path, memory.Sizes(flows=20, warmup=5))

    assert len(result.rows) == 3
    assert all(math.isfinite(row.median) for row in result.rows)
    assert result.rows[1].median > 0  # the file holds something per flow


def test_refresh_under_contention_sends_exactly_one_token_request(
    tmp_path: Path,
) -> None:
    result = refresh.run(tmp_path, refresh.Sizes(threads=8, rounds=2))

    requests = result.row(refresh.SCENARIO, "token requests per round")
    assert requests.median == 1
    assert [check.met for check in result.checks] == [True]


def test_end_to_end_against_the_real_server(tmp_path: Path) -> None:
    result = end_to_end.run(tmp_path, end_to_end.Sizes(flows=1))
    if end_to_end.SCENARIO in result.skipped:
        pytest.skip(result.skipped[end_to_end.SCENARIO])

    units = sorted(row.unit for row in result.rows)
    assert units == ["flows/s", "flows/s", "us", "us"]
    assert all(row.median > 0 for row in result.rows)


def test_command_prints_a_table_and_writes_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The suite's own structlog set-up (the leak scan) must stay in place.
    monkeypatch.setattr(cli, "configure_logging", lambda: None)
    output = tmp_path / "results.json"

    status = cli.main(["--quick", "--only", "refresh", "--json", str(output)])

    document = json.loads(output.read_text())
    assert status == 0
    assert "refresh under contention" in capsys.readouterr().out
    assert document["machine"]["cpus"] >= 1
    assert {row["scenario"] for row in document["rows"]} == {refresh.SCENARIO}


def test_markdown_table_has_a_line_per_row(single: Result) -> None:
    lines = report.markdown(single.rows).splitlines()

    assert len(lines) == 2 + len(single.rows)
