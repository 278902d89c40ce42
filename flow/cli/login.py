"""``flow login``: the desktop experience of RFC 8252.

A one-shot HTTP listener on the loopback interface receives the browser's redirect;
the system browser is opened on the authorization URL; the terminal shows that it
waits, and Ctrl-C ends the flow as cancelled.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import webbrowser
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import urlsplit

from ..errors import ConfigurationError, FlowError
from . import output
from .app import driver_for, start_flow

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>flow</title></head>
<body style="font-family: sans-serif; margin: 4em auto; max-width: 32em">
<h1>{title}</h1><p>{body}</p></body></html>
"""
_SUCCESS = ("Signed in", "You can close this window and return to the terminal.")
_FAILURE = ("Sign-in failed", "Return to the terminal to see why.")


class LoopbackListener:
    """Receives one redirect on ``http://127.0.0.1:PORT/PATH``.

    The page shown to the browser says only whether it worked: never the code or
    the state, never cached, never sent as a referrer (RFC 9700 section 4.2.4).

    Args:
        port: The port to bind; 0 picks a free one (any port is allowed for
            loopback redirects, RFC 8252 section 7.3).
        path: The redirect URI's path.
    """

    def __init__(self, *, port: int = 0, path: str = "/callback") -> None:
        self.path = path
        self.query: str | None = None
        self._received = threading.Event()
        self._answered = threading.Event()
        self._page = _FAILURE
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                target = urlsplit(self.path)
                if target.path != listener.path or listener.query is not None:
                    self.send_error(404)
                    return
                listener.query = target.query
                listener._received.set()
                listener._answered.wait(timeout=60)
                title, body = listener._page
                page = _PAGE.format(title=title, body=body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("Pragma", "no-cache")
                self.send_header("Referrer-Policy", "no-referrer")
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, format: str, *args: object) -> None:
                """The request line holds the code: never print it."""

        self._server = HTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        """The port bound."""
        return int(self._server.server_address[1])

    def wait(self, timeout: float, *, tick: float = 0.2) -> str:
        """Block until the redirect arrives; returns its raw query.

        Raises:
            TimeoutError: Nothing arrived within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        frames = "|/-\\"
        turn = 0
        while not self._received.wait(timeout=tick):
            if time.monotonic() > deadline:
                raise TimeoutError
            if sys.stderr.isatty():
                sys.stderr.write(f"\rwaiting for the browser {frames[turn % 4]} ")
                sys.stderr.flush()
                turn += 1
        if sys.stderr.isatty():
            sys.stderr.write("\r" + " " * 30 + "\r")
        return self.query or ""

    def answer(self, *, success: bool) -> None:
        """Show the browser the success or failure page."""
        self._page = _SUCCESS if success else _FAILURE
        self._answered.set()

    def close(self) -> None:
        """Stop listening."""
        self._answered.set()
        self._server.shutdown()
        self._server.server_close()


def _open_browser(url: str) -> bool:
    # Opened from a thread: some browser commands only return when they exit.
    opened: list[bool] = []
    thread = threading.Thread(target=lambda: opened.append(webbrowser.open(url)))
    thread.daemon = True
    thread.start()
    thread.join(timeout=5)
    return bool(opened and opened[0]) or thread.is_alive()


def cmd_login(args: argparse.Namespace, out: output.Output) -> int:
    """Log in through the system browser and a loopback redirect."""
    if args.provider_name:
        if args.provider and args.provider != args.provider_name:
            raise ConfigurationError("name the provider once")
        args.provider = args.provider_name
    port, path = 0, "/callback"
    if args.redirect_uri:
        parts = urlsplit(args.redirect_uri)
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost"):
            raise ConfigurationError(
                "flow login needs a loopback redirect URI such as "
                "http://127.0.0.1:8765/callback (RFC 8252 section 7.3)"
            )
        port, path = parts.port or 0, parts.path or "/"

    listener = LoopbackListener(port=port, path=path)
    redirect_uri = args.redirect_uri or f"http://127.0.0.1:{listener.port}{path}"
    try:
        with driver_for(args) as driver:
            started = start_flow(args, driver, redirect_uri)
            if args.no_browser or not _open_browser(started.authorization_url):
                print(
                    f"Open this URL in a browser:\n\n  {started.authorization_url}\n",
                    file=sys.stderr,
                )
            try:
                query = listener.wait(args.timeout)
            except (KeyboardInterrupt, TimeoutError) as stop:
                driver.cancel(started.flow_id)
                if isinstance(stop, KeyboardInterrupt):
                    print("cancelled", file=sys.stderr)
                    return 130
                raise ConfigurationError(
                    f"no answer from the browser within {args.timeout:g} s; "
                    "the flow is cancelled"
                ) from None
            try:
                outcome = driver.resume(query, flow_id=started.flow_id)
            except FlowError:
                listener.answer(success=False)
                raise
            listener.answer(success=outcome.state == "api_ready")
    finally:
        listener.close()

    out.emit(
        {"flow_id": outcome.flow_id, "state": outcome.state, "status": outcome.status}
    )
    return 0
