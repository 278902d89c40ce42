"""End-to-end harness: the real authorization server and a headless user agent.

The authorization server is oidc-provider (npm), pinned by
``tests/e2e/server/package-lock.json`` and configured by
``tests/e2e/server/server.mjs``. :func:`start_auth_server` runs it on 127.0.0.1
with an ephemeral port; :class:`Browser` plays the resource owner on its
development login and consent pages (``devInteractions``).

Install the server's dependencies once with::

    npm ci --prefix tests/e2e/server

Example:
    >>> server = start_auth_server()  # doctest: +SKIP
    >>> with Browser() as browser:  # doctest: +SKIP
    ...     callback = browser.login(authorization_url)
    >>> server.stop()  # doctest: +SKIP
"""

from __future__ import annotations

import collections
import ipaddress
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from types import TracebackType
from typing import IO, Final
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx

__all__ = [
    "CONFIDENTIAL_CLIENT_ID",
    "CONFIDENTIAL_CLIENT_SECRET",
    "NATIVE_REDIRECT_URI",
    "PUBLIC_CLIENT_ID",
    "SERVER_DIR",
    "WEB_REDIRECT_URI",
    "AuthServer",
    "AuthServerUnavailableError",
    "Browser",
    "BrowserError",
    "server_dependencies_installed",
    "start_auth_server",
]

SERVER_DIR: Final = Path(__file__).resolve().parent / "server"
"""Directory holding ``server.mjs``, ``package.json`` and ``package-lock.json``."""

SERVER_SCRIPT: Final = SERVER_DIR / "server.mjs"

CONFIDENTIAL_CLIENT_ID: Final = "flow-confidential"
"""Confidential web client; authenticates with client_secret_basic or _post."""

CONFIDENTIAL_CLIENT_SECRET: Final = "confidential-secret-0123456789"
"""Secret of :data:`CONFIDENTIAL_CLIENT_ID` (URL-safe, so Basic needs no escaping)."""

PUBLIC_CLIENT_ID: Final = "flow-public"
"""Public native client (``token_endpoint_auth_method: none``, PKCE required)."""

WEB_REDIRECT_URI: Final = "http://127.0.0.1:9/callback"
"""The confidential client's only redirect URI (exact match, nothing listens)."""

NATIVE_REDIRECT_URI: Final = "http://127.0.0.1/callback"
"""The public client's loopback redirect URI; any port is accepted (RFC 8252)."""

_INSTALL_HINT: Final = "run `npm ci --prefix tests/e2e/server` from the repository root"
_STDERR_TAIL_LINES: Final = 40
_READY_PREFIX: Final = "READY "


class AuthServerUnavailableError(RuntimeError):
    """The test authorization server cannot run here (no node, no node_modules)."""


def server_dependencies_installed() -> bool:
    """Tell whether the server's npm dependencies are installed.

    Returns:
        True when ``tests/e2e/server/node_modules/oidc-provider`` is present.
    """
    return (SERVER_DIR / "node_modules" / "oidc-provider" / "package.json").is_file()


def _drain(
    stream: IO[str],
    sink: collections.deque[str] | None,
    lines: queue.Queue[str | None] | None,
) -> None:
    """Read a child's pipe until EOF so the child never blocks on a full pipe.

    Args:
        stream: The pipe to read.
        sink: Bounded deque keeping the last lines, if wanted.
        lines: Queue receiving every line and then None at EOF, if wanted.
    """
    try:
        for line in stream:
            text = line.rstrip("\r\n")
            if sink is not None:
                sink.append(text)
            if lines is not None:
                lines.put(text)
    except (OSError, ValueError):  # pipe closed under us during stop()
        pass
    finally:
        if lines is not None:
            lines.put(None)


@dataclass
class AuthServer:
    """A running oidc-provider process and the facts tests need about it.

    Attributes:
        issuer: Issuer identifier and base URL, ``http://127.0.0.1:<port>``.
        confidential_client_id: Id of the confidential web client.
        confidential_client_secret: Its client secret.
        public_client_id: Id of the public native client.
        web_redirect_uri: Redirect URI registered for the confidential client.
        native_redirect_uri: Loopback redirect URI registered for the public
            client; the authorization request may add any port to it.
    """

    issuer: str
    _process: subprocess.Popen[str] = field(repr=False)
    _stderr: collections.deque[str] = field(repr=False)
    _cleanup: list[Path] = field(default_factory=list, repr=False)
    _readers: list[threading.Thread] = field(default_factory=list, repr=False)
    confidential_client_id: str = CONFIDENTIAL_CLIENT_ID
    confidential_client_secret: str = field(
        default=CONFIDENTIAL_CLIENT_SECRET, repr=False
    )
    public_client_id: str = PUBLIC_CLIENT_ID
    web_redirect_uri: str = WEB_REDIRECT_URI
    native_redirect_uri: str = NATIVE_REDIRECT_URI

    @property
    def discovery_url(self) -> str:
        """URL of the OpenID Connect discovery document."""
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def running(self) -> bool:
        """Whether the server process is still alive."""
        return self._process.poll() is None

    def stderr_tail(self, lines: int = _STDERR_TAIL_LINES) -> str:
        """Return the last lines the server wrote to stderr.

        Args:
            lines: How many lines at most.

        Returns:
            The lines joined with newlines (warnings, server_error traces).
        """
        return "\n".join(list(self._stderr)[-lines:])

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait for it; idempotent.

        Args:
            timeout: Seconds to wait after SIGTERM before killing.
        """
        proc = self._process
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        # The process is gone, so its pipes are at EOF and the reader threads
        # finish; only close a pipe nobody is reading any more.
        for reader in self._readers:
            reader.join(timeout=2.0)
        if not any(reader.is_alive() for reader in self._readers):
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        if proc.stdin is not None:
            proc.stdin.close()
        while self._cleanup:
            self._cleanup.pop().unlink(missing_ok=True)

    def __enter__(self) -> AuthServer:
        """Return self; the server is already running."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()


def start_auth_server(
    *,
    access_token_ttl: int = 3600,
    extra_clients: Sequence[Mapping[str, object]] | None = None,
    timeout: float = 20.0,
    port: int = 0,
) -> AuthServer:
    """Start oidc-provider on 127.0.0.1 and wait until it is ready.

    Args:
        access_token_ttl: Access token lifetime in seconds (clock tolerance is 0).
        extra_clients: Additional client metadata objects (oidc-provider's
            ``clients`` format, e.g. ``{"client_id": ..., "redirect_uris": [...]}``)
            registered after the two static clients.
        timeout: Seconds to wait for the ``READY`` line.
        port: Port to bind; 0 picks a free ephemeral port.

    Returns:
        The running server. Call :meth:`AuthServer.stop` when done.

    Raises:
        AuthServerUnavailableError: node is not on PATH or the npm dependencies
            are not installed.
        RuntimeError: The server exited or did not become ready in time; the
            message carries the tail of its stderr.
    """
    node = shutil.which("node")
    if node is None:
        msg = f"node is not on PATH; install Node.js 20+ and {_INSTALL_HINT}"
        raise AuthServerUnavailableError(msg)
    if not server_dependencies_installed():
        msg = f"oidc-provider is not installed in {SERVER_DIR}: {_INSTALL_HINT}"
        raise AuthServerUnavailableError(msg)

    env = {k: v for k, v in os.environ.items() if k != "FLOW_TEST_CLIENTS"}
    env["PORT"] = str(port)
    env["ACCESS_TOKEN_TTL"] = str(access_token_ttl)
    env["FLOW_EXIT_ON_STDIN_EOF"] = "1"  # server exits if we die: see stop()
    env.pop("NODE_OPTIONS", None)
    cleanup: list[Path] = []
    if extra_clients:
        with tempfile.NamedTemporaryFile(
            "w", prefix="flow-clients-", suffix=".json", delete=False
        ) as fh:
            json.dump([dict(c) for c in extra_clients], fh)
        cleanup.append(Path(fh.name))
        env["FLOW_TEST_CLIENTS"] = fh.name

    proc = subprocess.Popen(
        [node, str(SERVER_SCRIPT)],
        cwd=SERVER_DIR,
        env=env,
        stdin=subprocess.PIPE,  # never written; EOF tells the server to exit
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    stderr: collections.deque[str] = collections.deque(maxlen=500)
    stdout_lines: queue.Queue[str | None] = queue.Queue()
    readers = [
        threading.Thread(
            target=_drain,
            args=(stream, sink, lines),
            name=f"auth-server-{proc.pid}-{name}",
            daemon=True,
        )
        for name, stream, sink, lines in (
            ("stdout", proc.stdout, None, stdout_lines),
            ("stderr", proc.stderr, stderr, None),
        )
    ]
    for reader in readers:
        reader.start()
    server = AuthServer(
        issuer="", _process=proc, _stderr=stderr, _cleanup=cleanup, _readers=readers
    )

    deadline = time.monotonic() + timeout
    problem = f"did not print a READY line within {timeout:g} s"
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            line = stdout_lines.get(timeout=min(remaining, 0.1))
        except queue.Empty:
            continue
        if line is None:
            problem = "exited before it was ready"
            break
        if line.startswith(_READY_PREFIX):
            server.issuer = line.removeprefix(_READY_PREFIX).strip()
            return server
        problem = f"printed an unexpected line on stdout: {line[:200]!r}"
        break

    server.stop()  # also waits for the readers, so the stderr tail is complete
    msg = (
        f"oidc-provider ({SERVER_SCRIPT}) {problem}; exit code "
        f"{proc.returncode}. If its dependencies are broken, {_INSTALL_HINT}. "
        f"stderr tail:\n{server.stderr_tail()}"
    )
    raise RuntimeError(msg)


class BrowserError(RuntimeError):
    """The headless browser met a page or redirect it did not expect."""


@dataclass
class _Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)


class _PageParser(HTMLParser):
    """Collect the forms (with their named inputs) and links of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self.links: list[str] = []
        self.text: list[str] = []
        self._form: _Form | None = None
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = _Form(a.get("action", ""), a.get("method", "get").lower())
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None and a.get("name"):
            self._form.fields[a["name"]] = a.get("value", "")
        elif tag == "a" and "href" in a:
            self.links.append(a["href"])
        elif tag in ("style", "script"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag in ("style", "script") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.text.append(" ".join(data.split()))


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})


class Browser:
    """A headless user agent for oidc-provider's development interaction pages.

    Each instance has its own cookie jar (one simulated user with one session;
    oidc-provider scopes its interaction cookies to paths, which the jar
    honours). It only talks to loopback IP addresses, never follows a redirect
    that leaves the authorization server, and gives up after ``max_hops``
    requests.

    Args:
        max_hops: Upper bound on requests made by one :meth:`login` call.
        timeout: Per-request timeout in seconds.
    """

    def __init__(self, *, max_hops: int = 20, timeout: float = 10.0) -> None:
        """Create the browser and its cookie jar."""
        self.max_hops = max_hops
        self._client = httpx.Client(
            follow_redirects=False, timeout=timeout, trust_env=False
        )

    @property
    def cookies(self) -> httpx.Cookies:
        """This browser's cookie jar."""
        return self._client.cookies

    def close(self) -> None:
        """Close the underlying HTTP client."""
        self._client.close()

    def __enter__(self) -> Browser:
        """Return self."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the browser."""
        self.close()

    def login(
        self,
        authorization_url: str,
        *,
        user: str = "alice",
        consent: bool = True,
        password: str = "any-password",
    ) -> str:
        """Walk an authorization request through login and consent.

        Follows redirects (302/303 as GET), fills the login form (``prompt=login``,
        ``login``, ``password``) if the server asks for a login, and then either
        approves the consent form (``prompt=consent``) or, with ``consent=False``,
        follows the page's cancel link (``/interaction/<uid>/abort``), which
        makes the server answer ``error=access_denied``.

        Args:
            authorization_url: Full authorization endpoint URL with its query.
            user: Login name; it becomes the subject (``sub``).
            consent: Approve (True) or deny (False) at the consent page.
            password: Password to type; devInteractions accept anything.

        Returns:
            The redirect ``Location`` pointing at the client's redirect URI
            (with ``code``, ``state`` and ``iss``, or ``error``), not requested.

        Raises:
            BrowserError: On an unexpected status or page, a redirect somewhere
                other than the redirect URI, a denial that could not happen
                because no consent page was shown, or too many hops.
        """
        return self._run(
            authorization_url,
            user=user,
            password=password,
            consent=consent,
            cancel_first=False,
        )

    def cancel(self, authorization_url: str) -> str:
        """Start an authorization request and cancel at the first page shown.

        The user presses "Cancel" on the login page (or on the consent page if
        this browser's session is already logged in).

        Args:
            authorization_url: Full authorization endpoint URL with its query.

        Returns:
            The redirect ``Location`` to the client's redirect URI carrying
            ``error=access_denied``, not requested.

        Raises:
            BrowserError: As for :meth:`login`.
        """
        return self._run(
            authorization_url, user="", password="", consent=False, cancel_first=True
        )

    def _run(
        self,
        authorization_url: str,
        *,
        user: str,
        password: str,
        consent: bool,
        cancel_first: bool,
    ) -> str:
        as_origin = _origin(authorization_url)
        query = dict(parse_qsl(urlsplit(authorization_url).query))
        expected_redirect = query.get("redirect_uri")

        method, url, data = "GET", authorization_url, None
        cancelled = False
        for _ in range(self.max_hops):
            if not _is_loopback(url):
                msg = f"refusing to leave loopback: {_without_query(url)}"
                raise BrowserError(msg)
            response = self._client.request(method, url, data=data)
            status = response.status_code

            if status in _REDIRECTS:
                location: str | None = response.headers.get("location")
                if not location:
                    raise self._unexpected(response, "redirect without Location")
                target: str = urljoin(url, location)
                if _origin(target) != as_origin:
                    self._check_callback(target, expected_redirect)
                    if not consent and not cancelled:
                        msg = (
                            "the server showed no page to cancel on"
                            if cancel_first
                            else "the server never showed a consent page to deny"
                        ) + " (already logged in and consented in this browser?)"
                        raise BrowserError(msg)
                    return target
                if status in (307, 308):
                    url = target  # keep method and body
                else:
                    method, url, data = "GET", target, None
                continue

            if status != httpx.codes.OK:
                raise self._unexpected(response, "unexpected status")

            page = _PageParser()
            page.feed(response.text)
            page.close()
            prompts = {f.fields.get("prompt"): f for f in page.forms}
            abort = next(
                (h for h in page.links if urlsplit(h).path.endswith("/abort")), None
            )

            if cancel_first or ("consent" in prompts and not consent):
                if abort is None:
                    raise self._unexpected(response, "no cancel link on the page")
                method, url, data = "GET", urljoin(url, abort), None
                cancelled = True
            elif any(
                prompts[k].method != "post"
                for k in ("login", "consent")
                if k in prompts
            ):
                raise self._unexpected(response, "interaction form is not a POST")
            elif "login" in prompts:
                form = prompts["login"]
                fields = dict(form.fields)
                fields.update(login=user, password=password)
                method, url, data = "POST", urljoin(url, form.action), fields
            elif "consent" in prompts:
                form = prompts["consent"]
                method, url, data = "POST", urljoin(url, form.action), form.fields
            else:
                raise self._unexpected(response, "not a login or consent page")

        msg = f"gave up after {self.max_hops} requests without reaching the client"
        raise BrowserError(msg)

    @staticmethod
    def _check_callback(target: str, expected_redirect: str | None) -> None:
        if expected_redirect is not None and _without_query(target) != _without_query(
            expected_redirect
        ):
            msg = (
                f"redirected to {_without_query(target)}, "
                f"expected the redirect URI {_without_query(expected_redirect)}"
            )
            raise BrowserError(msg)
        if expected_redirect is None and not _is_loopback(target):
            msg = f"redirected off loopback to {_without_query(target)}"
            raise BrowserError(msg)

    @staticmethod
    def _unexpected(response: httpx.Response, why: str) -> BrowserError:
        page = _PageParser()
        try:
            page.feed(response.text)
            page.close()
            snippet = " ".join(page.text)
        except Exception:
            snippet = response.text
        snippet = snippet[:300]
        request = response.request
        return BrowserError(
            f"{why}: {request.method} {_without_query(str(request.url))} -> "
            f"{response.status_code}; body: {snippet!r}"
        )
