"""The sandbox authorization server on 127.0.0.1, served from a daemon thread.

FOR DEMOS AND DOCUMENTATION ONLY. It keeps everything in memory, logs in anyone
who types a name, publishes its client secret and is never secure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from ..errors import CallerError, ConfigurationError
from .clients import DEFAULT_CLIENTS, LOOPBACK_HOST, SandboxClient
from .endpoints import SandboxApp, SandboxRequest
from .replies import COMMON_HEADERS, Reply, plain_reply
from .state import SandboxState, SandboxStats

#: Request bodies above 64 KiB are refused unread.
MAX_BODY = 64 * 1024
#: How often the serving thread looks for a stop request, in seconds.
POLL_INTERVAL = 0.02


class _Refused(Exception):
    """A request refused before it reaches an endpoint."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    app: SandboxApp

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay silent; the default prints a traceback to stderr."""


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    timeout = 10  # seconds a slow client may hold a connection

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def log_message(self, format: str, *args: Any) -> None:
        """Print nothing: request lines carry codes, states and tokens."""

    def version_string(self) -> str:
        """The ``Server`` header, without the Python version."""
        return "flow-sandbox"

    def _serve(self, method: str) -> None:
        try:
            reply = self._dispatch(method)
        except _Refused as refused:
            reply = refused.reply
        except Exception:
            # The message stays generic: an exception may quote a credential.
            reply = plain_reply(500, "The sandbox failed to answer this request.")
        self._write(reply)

    def _dispatch(self, method: str) -> Reply:
        # Routing
        target = urlsplit(self.path)
        route = self.server.app.routes.get(target.path)
        if route is None:
            return plain_reply(404, "No such endpoint in the sandbox.")
        endpoint = route.get(method)
        if endpoint is None:
            return plain_reply(405, "Method not allowed.", allow=", ".join(route))

        # A name that resolves to 127.0.0.1 by DNS rebinding is not our host.
        host = self._header("Host")
        if host is not None and host != f"{LOOPBACK_HOST}:{self.server.server_port}":
            return plain_reply(400, "Unexpected Host header.")

        request = SandboxRequest(
            query=target.query,
            body=self._body() if method == "POST" else "",
            content_type=self._header("Content-Type"),
            authorization=self._header("Authorization"),
        )
        return endpoint(request)

    def _header(self, name: str) -> str | None:
        values = self.headers.get_all(name) or []
        if len(values) > 1:
            raise _Refused(plain_reply(400, f"The {name} header is repeated."))
        return values[0] if values else None

    def _body(self) -> str:
        if self._header("Transfer-Encoding") is not None:
            raise _Refused(plain_reply(411, "Send a Content-Length, not chunks."))
        declared = self._header("Content-Length")
        if declared is None:
            raise _Refused(plain_reply(411, "A Content-Length is required."))
        if not (declared.isascii() and declared.isdigit()):
            raise _Refused(plain_reply(400, "Malformed Content-Length."))
        if int(declared) > MAX_BODY:
            raise _Refused(plain_reply(413, "The body is larger than 64 KiB."))
        raw = self.rfile.read(int(declared))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _Refused(plain_reply(400, "The body is not UTF-8.")) from None

    def _write(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in COMMON_HEADERS + reply.headers:
            self.send_header(name, value)
        if reply.content_type is not None:
            self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)


class SandboxServer:
    """A throwaway authorization server on ``127.0.0.1``, for demos only.

    It runs the authorization code grant with PKCE S256, refresh-token rotation,
    revocation (RFC 7009) and a userinfo endpoint, entirely in memory. The login
    page accepts any username without a password. Never use it for anything real,
    and never in tests that should meet a real authorization server.

    Use it as a context manager::

        with SandboxServer() as sandbox:
            print(sandbox.issuer)  # http://127.0.0.1:<port>

    Registered by default are the public client ``flow-demo`` (no secret; any
    ``http://127.0.0.1:<port>/...`` redirect URI) and the confidential client
    ``flow-demo-confidential`` (secret ``flow-demo-secret-not-secret``; redirect URIs
    under ``http://127.0.0.1:<port>/callback``).

    Args:
        access_token_ttl: Seconds an access token stays valid.
        clients: The clients to register instead of the two defaults.
        clock: Monotonic seconds used for every expiry; pass a fake to test expiry
            without sleeping.

    Raises:
        ConfigurationError: For a non-positive lifetime or a repeated client id.
    """

    def __init__(
        self,
        *,
        access_token_ttl: int = 3600,
        clients: Sequence[SandboxClient] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if access_token_ttl <= 0:
            raise ConfigurationError("access_token_ttl must be a positive number")
        registered = tuple(DEFAULT_CLIENTS if clients is None else clients)
        self._clients = {client.client_id: client for client in registered}
        if len(self._clients) != len(registered):
            raise ConfigurationError("each sandbox client needs its own client_id")
        self._state = SandboxState(access_token_ttl=access_token_ttl, clock=clock)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._started = False

    def start(self) -> Self:
        """Bind ``127.0.0.1`` on a free port and serve from a daemon thread.

        Returns:
            The server itself, now answering at :attr:`issuer`.

        Raises:
            CallerError: When this server was started before; create a new one.
        """
        if self._started:
            raise CallerError("a SandboxServer starts only once; create a new one")
        self._started = True

        httpd = _HTTPServer((LOOPBACK_HOST, 0), _Handler)
        issuer = f"http://{LOOPBACK_HOST}:{httpd.server_port}"
        httpd.app = SandboxApp(issuer, self._clients, self._state)
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL},
            name=f"flow-sandbox-{httpd.server_port}",
            daemon=True,
        )
        thread.start()
        self._httpd, self._thread = httpd, thread
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; harmless when not running."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._thread = None
        httpd.shutdown()
        httpd.server_close()
        thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def issuer(self) -> str:
        """``http://127.0.0.1:<port>``, the issuer and base of every endpoint.

        Raises:
            CallerError: Before :meth:`start` has bound a port.
        """
        return self._running().app.issuer

    @property
    def port(self) -> int:
        """The port bound on ``127.0.0.1``.

        Raises:
            CallerError: Before :meth:`start` has bound a port.
        """
        return self._running().server_port

    @property
    def clients(self) -> tuple[SandboxClient, ...]:
        """The registered clients."""
        return tuple(self._clients.values())

    @property
    def stats(self) -> SandboxStats:
        """A snapshot of the request counters."""
        return self._state.stats

    def __repr__(self) -> str:
        if self._httpd is None:
            return "SandboxServer(not started)"
        running = "running" if self._thread is not None else "stopped"
        return f"SandboxServer({self._httpd.app.issuer}, {running})"

    def _running(self) -> _HTTPServer:
        if self._httpd is None:
            raise CallerError("the SandboxServer has no address until start()")
        return self._httpd
