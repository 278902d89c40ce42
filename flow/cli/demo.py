"""``flow demo``: a complete flow in seconds, with no account and no network.

It runs against :mod:`flow.sandbox`, a throw-away authorization server on 127.0.0.1
that exists for this demo and the documentation only. Every step is the real
library: the flow is committed to an SQLite file, the first driver stops, and a new
driver resumes the flow from that file as another process would.
"""

from __future__ import annotations

import argparse
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..drivers import Driver
from ..record import AuthMethod, Client
from ..sandbox import DEMO_CLIENT_ID, SandboxServer
from ..stores import SQLiteStore, open_store
from . import output

_SCOPES = ["openid", "profile", "email"]


class _Form(HTMLParser):
    """Collects the hidden fields of the sandbox's login form."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "input" and named.get("type") == "hidden" and named.get("name"):
            self.fields[named["name"] or ""] = named.get("value") or ""


def play_the_user(authorization_url: str, username: str = "demo-user") -> str:
    """Do what the person does in the browser; return where the browser is sent.

    The redirect back to the application is not followed: the demo hands it to
    ``flow resume`` as a web back end would receive it.
    """
    with httpx.Client(trust_env=False, timeout=10.0) as browser:
        page = browser.get(authorization_url)
        page.raise_for_status()
        form = _Form()
        form.feed(page.text)
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(authorization_url))
        decision = browser.post(
            f"{origin}/authorize/decision",
            data={**form.fields, "username": username, "decision": "allow"},
        )
    return decision.headers["location"]


def cmd_demo(args: argparse.Namespace, out: output.Output) -> int:
    """Run a whole flow against the sandbox and narrate each stage."""
    say = (lambda *_: None) if out.as_json else _narrator()
    if args.store:
        store_url = args.store
    else:
        folder = Path(tempfile.mkdtemp(prefix="flow-demo-"))
        store_url = f"sqlite:///{folder / 'demo.db'}"

    with SandboxServer() as sandbox:
        say("1. client registered", f"sandbox authorization server at {sandbox.issuer}")
        say("", "(a throw-away server on 127.0.0.1, for this demo only)")
        client = Client(
            DEMO_CLIENT_ID, "http://127.0.0.1:8400/callback", AuthMethod.NONE
        )

        # The first driver starts the flow and stops: nothing stays in memory.
        first_store = open_store(store_url)
        with Driver(first_store) as first:
            started = first.start(client, sandbox.issuer, scopes=_SCOPES)
        first_store.close()
        say("2. user login", f"flow {started.flow_id} is {started.state}")
        say("", f"authorization URL: {_shorten(started.authorization_url)}")

        callback = play_the_user(started.authorization_url)
        say("", "the user signed in; the browser returns to the redirect URI")

        # A new driver over the same store picks the flow up, as another process.
        second_store = open_store(store_url)
        with Driver(second_store) as second:
            outcome = second.resume(callback)
            say("3. authorization code", "verified the issuer, the state and the code")
            say("4. access token", f"exchanged the code once: flow is {outcome.state}")

            with httpx.Client(
                auth=second.auth(started.flow_id), trust_env=False
            ) as api:
                profile = api.get(f"{sandbox.issuer}/userinfo").json()
            say("5. API access", f"userinfo says sub={profile.get('sub')!r}")

            second.refresh(started.flow_id)
            say("", "refreshed the access token (the old refresh token is replaced)")
            record = second.get(started.flow_id)
        second_store.close()

    location = _location(store_url)
    if out.as_json:
        out.emit(
            {
                "flow_id": record.id,
                "state": record.state,
                "store": store_url,
                "userinfo": {"sub": profile.get("sub")},
                "history": output.history(record),
            }
        )
        return 0
    out.emit_raw("\ntransitions, each committed before it was logged:\n")
    out.emit_raw(output.timeline(record))
    out.emit_raw(f"\nthe store lives at {location}")
    out.emit_raw(f"look again with: flow show {record.id} --store {store_url}")
    return 0


def _narrator() -> Any:
    def say(stage: str, text: str) -> None:
        print(f"{stage:<24}{text}")

    return say


def _shorten(url: str, width: int = 72) -> str:
    return url if len(url) <= width else url[: width - 3] + "..."


def _location(store_url: str) -> str:
    store = open_store(store_url)
    try:
        return store.path if isinstance(store, SQLiteStore) else store_url
    finally:
        store.close()
