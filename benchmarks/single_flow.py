"""Scenario: one complete authorization-code flow, every contender side by side.

Before anything is timed, each contender runs one checked flow: exactly one token
request, carrying the code and a verifier that matches the challenge of its
authorization URL; and a callback with a forged ``state`` must fail before any
token request is sent. Timed flows are then counted against the token endpoint, so
a contender that skipped or repeated the request would be caught.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import flow

from . import peers
from .implementations import BareHttpx, FlowContender, SyncFlow, s256
from .mockserver import ACCESS_TOKEN, CODE, TokenEndpoint
from .stats import Check, Result, Row, interleave, timing_row, with_ratios

SCENARIO = "single flow"
FLOOR = BareHttpx.name
FLOW_MEMORY = "flow + MemoryStore"
FLOW_SQLITE = "flow + SQLiteStore"


@dataclass(frozen=True)
class Sizes:
    """How much to run: rounds of ``per_round`` flows each, after ``warmup``."""

    rounds: int = 30
    per_round: int = 100
    warmup: int = 200


def contenders(workdir: Path) -> tuple[list[SyncFlow], dict[str, str]]:
    """Every contender that can run here, and why the others cannot."""
    found: list[SyncFlow] = [
        FlowContender(TokenEndpoint(), flow.MemoryStore(), FLOW_MEMORY),
        FlowContender(
            TokenEndpoint(), flow.SQLiteStore(workdir / "single.db"), FLOW_SQLITE
        ),
        BareHttpx(TokenEndpoint()),
    ]
    skipped: dict[str, str] = {}
    for name, kind in peers.PEERS.items():
        reason = peers.missing(name)
        if reason is None:
            found.append(kind(TokenEndpoint()))
        else:
            skipped[name] = reason
    return found, skipped


def verify(contender: SyncFlow) -> None:
    """Prove the contender does the work every other one does.

    Raises:
        AssertionError: It sent no token request, or two, or an unchecked
            verifier, or accepted a forged state.
    """
    endpoint = contender.endpoint
    endpoint.keep_forms, endpoint.requests = True, 0
    url, token = contender.once()
    query = dict(parse_qsl(urlsplit(url).query))
    form = endpoint.last_form
    assert endpoint.requests == 1, f"{contender.name}: {endpoint.requests} requests"
    assert token == ACCESS_TOKEN, contender.name
    assert form.get("code") == CODE, contender.name
    assert query.get("code_challenge_method") == "S256", contender.name
    assert s256(form["code_verifier"]) == query["code_challenge"], contender.name
    assert endpoint.last_authorization, f"{contender.name}: no client_secret_basic"

    try:
        contender.once(state="forged-state-value")
    except Exception:  # noqa: S110 - any refusal will do; none is a bug
        pass
    else:
        raise AssertionError(f"{contender.name} accepted a forged state")
    assert endpoint.requests == 1, f"{contender.name} sent a forged callback's code"
    endpoint.keep_forms, endpoint.requests = False, 0


def run(workdir: Path, sizes: Sizes = Sizes()) -> Result:
    """Run the scenario.

    Args:
        workdir: A temporary folder for the SQLite file.
        sizes: How many flows.

    Returns:
        One row per contender (ratios against the floor), and the two targets.
    """
    found, skipped = contenders(workdir)
    try:
        for contender in found:
            verify(contender)
        timings = interleave(
            {c.name: c.run for c in found},
            rounds=sizes.rounds,
            per_round=sizes.per_round,
            warmup=sizes.warmup,
        )
        expected = sizes.warmup + sizes.rounds * sizes.per_round
        for contender in found:
            sent = contender.endpoint.requests
            assert sent == expected, f"{contender.name}: {sent} token requests"
    finally:
        for contender in found:
            contender.close()

    rows = with_ratios(
        [timing_row(SCENARIO, name, values) for name, values in timings.items()],
        FLOOR,
    )
    result = Result(rows=rows, skipped=skipped)
    result.samples = {
        f"{SCENARIO}/{name}": [v / 1e9 for v in values]
        for name, values in timings.items()
    }
    result.checks = targets(rows)
    return result


def targets(rows: list[Row]) -> list[Check]:
    """flow + SQLite against authlib (<= 0.9), flow + memory against the floor."""
    median = {row.implementation: row.median for row in rows}
    checks = []
    if FLOW_SQLITE in median and peers.AUTHLIB in median:
        ratio = median[FLOW_SQLITE] / median[peers.AUTHLIB]
        checks.append(
            Check("flow + SQLiteStore / authlib", ratio, "<= 0.9", ratio <= 0.9)
        )
    ratio = median[FLOW_MEMORY] / median[FLOOR]
    checks.append(Check("flow + MemoryStore / floor", ratio, "<= 1.3", ratio <= 1.3))
    return checks
