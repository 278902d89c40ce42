"""The ``flow`` command: start, resume, log in, inspect and use flows.

Answers go to stdout (text, or one JSON document with ``--json``); logs and errors
go to stderr. Exit status: 0 on success, 1 when flow refuses or fails, 2 for bad
usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from ..drivers import Driver, Started
from ..errors import ConfigurationError, FlowError, SpecError
from ..machine import diagram_document, mermaid
from ..machine.diagram import write_diagrams
from ..protocol import explicit_metadata
from ..providers import default_catalog
from ..record import AuthMethod, Client, ServerMetadata
from ..spec import builtin_spec, load_spec
from . import output
from .config import SECRET_ENV, open_cli_store
from .logs import configure_logging

Handler = Callable[[argparse.Namespace, output.Output], int]


# Parsers ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``flow`` command and its subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--store",
        metavar="URL",
        help="store URL: sqlite:///PATH or memory:// (default: $FLOW_STORE, else an "
        "SQLite file under $XDG_STATE_HOME/flow)",
    )
    common.add_argument("--json", action="store_true", help="print JSON on stdout")
    common.add_argument(
        "--log-json", action="store_true", help="log JSON lines on stderr"
    )
    common.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-v, -vv)"
    )

    parser = argparse.ArgumentParser(
        prog="flow",
        description="Run OAuth 2.0 flows as resumable, persisted state machines.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    start = command("start", cmd_start, "start a flow and print its authorization URL")
    _server_flags(start)
    _client_flags(start, redirect_required=True)

    resume = command("resume", cmd_resume, "finish a flow from its callback")
    resume.add_argument("--callback", metavar="URL", help="the callback URL")
    resume.add_argument(
        "flow_id", nargs="?", help="the flow (found by state if omitted)"
    )
    resume.add_argument("query", nargs="?", help="the callback's query string")

    from .login import cmd_login

    login = command("login", cmd_login, "log in through the browser (loopback)")
    login.add_argument(
        "provider_name", nargs="?", metavar="PROVIDER", help="a catalog provider"
    )
    _server_flags(login)
    _client_flags(login, redirect_required=False)
    login.add_argument("--no-browser", action="store_true", help="only print the URL")
    login.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long to wait for the browser (default 300)",
    )

    show = command("show", cmd_show, "show a flow's state and history")
    show.add_argument("flow_id")

    listing = command("list", cmd_list, "list flows, newest first")
    listing.add_argument("--state", help="only flows in this state")
    listing.add_argument("--provider", help="only flows of this provider")
    listing.add_argument("--limit", type=int, default=50, help="at most this many")

    token = command("token", cmd_token, "print a valid access token")
    token.add_argument("flow_id")
    token.add_argument(
        "--leeway",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="refresh when the token expires within this time (default 30)",
    )

    call = command("call", cmd_call, "call an API with a flow's credential")
    call.add_argument("flow_id")
    call.add_argument("url")
    call.add_argument("-X", "--method", default="GET", help="HTTP method (default GET)")
    call.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="extra request header (repeatable)",
    )
    call.add_argument("-d", "--data", help="request body")

    revoke = command("revoke", cmd_revoke, "revoke a flow's credential and erase it")
    revoke.add_argument("flow_id")

    diagram = command("diagram", cmd_diagram, "print or write spec diagrams (Mermaid)")
    diagram.add_argument(
        "spec", nargs="?", help="a spec file (default: the bundled one)"
    )
    diagram.add_argument(
        "--write",
        metavar="DIR",
        type=Path,
        help="write one Markdown page per bundled spec into DIR",
    )

    check = command("check", cmd_check, "validate spec files and list every problem")
    check.add_argument("files", nargs="+", type=Path)

    from .providers import cmd_providers

    providers = command("providers", cmd_providers, "list or show catalog providers")
    providers.add_argument(
        "action", nargs="?", choices=["list", "show"], default="list"
    )
    providers.add_argument("name", nargs="?", help="the provider to show")

    from .demo import cmd_demo

    command("demo", cmd_demo, "run a complete flow against a local sandbox server")

    from .maintenance import add_commands

    add_commands(command)
    return parser


def _server_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("authorization server")
    group.add_argument("--issuer", metavar="URL", help="issuer URL, for discovery")
    group.add_argument("--authorization-endpoint", metavar="URL")
    group.add_argument("--token-endpoint", metavar="URL")
    group.add_argument("--revocation-endpoint", metavar="URL")
    group.add_argument("--userinfo-endpoint", metavar="URL")
    group.add_argument(
        "--provider",
        metavar="NAME",
        help="a catalog provider (see flow providers), or a label for listings",
    )
    group.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a provider parameter such as tenant=consumers (repeatable)",
    )


def _client_flags(parser: argparse.ArgumentParser, *, redirect_required: bool) -> None:
    group = parser.add_argument_group("client registration")
    group.add_argument("--client-id", required=True)
    group.add_argument(
        "--client-secret",
        help=f"the client secret (or set ${SECRET_ENV}; omit for public clients)",
    )
    group.add_argument(
        "--auth-method",
        choices=[m.value for m in AuthMethod],
        help="token endpoint authentication (default: client_secret_basic with a "
        "secret, none without)",
    )
    group.add_argument(
        "--redirect-uri", required=redirect_required, help="the registered redirect URI"
    )
    group.add_argument(
        "--scope", action="append", default=[], help="a scope to request (repeatable)"
    )
    group.add_argument(
        "--auth-param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra authorization request parameter (repeatable)",
    )
    group.add_argument(
        "--no-offline",
        action="store_true",
        help="do not ask the provider for a refresh token",
    )
    group.add_argument(
        "--ttl",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long the flow waits for its callback (default 600)",
    )


# Shared pieces -----------------------------------------------------------------------


def client_from(
    args: argparse.Namespace, redirect_uri: str
) -> tuple[Client, str | None]:
    """The client registration and secret named by the flags.

    Without ``--auth-method``: ``flow login`` registers a desktop (public) client;
    ``flow start`` a confidential one when a secret is given, authenticating the
    way the catalog provider prefers.
    """
    secret = args.client_secret or os.environ.get(SECRET_ENV) or None
    catalog = default_catalog()
    if args.auth_method:
        method = AuthMethod(args.auth_method)
    elif secret and args.command != "login":
        preferred = (
            catalog.get(args.provider).client_auth[0]
            if args.provider in catalog
            else AuthMethod.CLIENT_SECRET_BASIC
        )
        method = preferred
    else:
        method = AuthMethod.NONE
    return Client(args.client_id, redirect_uri, method), secret


def server_from(args: argparse.Namespace) -> ServerMetadata | str | None:
    """The server: endpoint flags, an ``--issuer`` to discover, or none (the
    catalog provider named by ``--provider`` knows its endpoints)."""
    if args.authorization_endpoint or args.token_endpoint:
        if not (args.authorization_endpoint and args.token_endpoint):
            raise ConfigurationError(
                "give both --authorization-endpoint and --token-endpoint"
            )
        return explicit_metadata(
            issuer=args.issuer,
            authorization_endpoint=args.authorization_endpoint,
            token_endpoint=args.token_endpoint,
            revocation_endpoint=args.revocation_endpoint,
            userinfo_endpoint=args.userinfo_endpoint,
        )
    if args.issuer:
        return str(args.issuer)
    if not args.provider:
        raise ConfigurationError(
            "name the server with --provider NAME, --issuer URL, or "
            "--authorization-endpoint and --token-endpoint"
        )
    return None


def pairs(items: Sequence[str], flag: str) -> dict[str, str]:
    """``NAME=VALUE`` flags as a mapping."""
    values = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigurationError(f"{flag} expects NAME=VALUE, got {item!r}")
        values[name] = value
    return values


def start_flow(args: argparse.Namespace, driver: Driver, redirect_uri: str) -> Started:
    """Start a flow from the start/login flags."""
    client, secret = client_from(args, redirect_uri)
    return driver.start(
        client,
        server_from(args),
        client_secret=secret,
        scopes=args.scope,
        provider=args.provider,
        params=pairs(args.param, "--param"),
        offline=not args.no_offline,
        extra_params=pairs(args.auth_param, "--auth-param"),
        ttl=timedelta(seconds=args.ttl),
    )


def driver_for(args: argparse.Namespace) -> Driver:
    """A driver over the store named by the flags."""
    return Driver(open_cli_store(args.store))


# Commands ----------------------------------------------------------------------------


def cmd_start(args: argparse.Namespace, out: output.Output) -> int:
    with driver_for(args) as driver:
        started = start_flow(args, driver, args.redirect_uri)
    out.emit(
        {
            "flow_id": started.flow_id,
            "state": started.state,
            "authorization_url": started.authorization_url,
        }
    )
    return 0


def cmd_resume(args: argparse.Namespace, out: output.Output) -> int:
    if args.callback:
        callback, flow_id = args.callback, args.flow_id
    elif args.flow_id and args.query:
        callback, flow_id = args.query, args.flow_id
    else:
        raise ConfigurationError("give --callback URL, or the flow id and the query")
    with driver_for(args) as driver:
        outcome = driver.resume(callback, flow_id=flow_id)
    out.emit(
        {"flow_id": outcome.flow_id, "state": outcome.state, "status": outcome.status}
    )
    return 0


def cmd_show(args: argparse.Namespace, out: output.Output) -> int:
    with driver_for(args) as driver:
        record = driver.get(args.flow_id)
    data = output.summary(record)
    data["history"] = output.history(record)
    brief = {k: v for k, v in data.items() if k != "history"}
    out.emit(data, f"{output.fields(brief)}\n\n{output.timeline(record)}")
    return 0


def cmd_list(args: argparse.Namespace, out: output.Output) -> int:
    with driver_for(args) as driver:
        records = driver.store.list(
            state=args.state, provider=args.provider, limit=args.limit
        )
    rows = [
        [r.id, r.state, r.provider, r.updated_at.strftime("%Y-%m-%d %H:%M:%S")]
        for r in records
    ]
    out.emit(
        {"flows": [output.summary(r) for r in records]},
        output.table(rows, ["flow id", "state", "provider", "updated"])
        if rows
        else "no flows",
    )
    return 0


def cmd_token(args: argparse.Namespace, out: output.Output) -> int:
    with driver_for(args) as driver:
        record = driver.credential(args.flow_id, leeway=timedelta(seconds=args.leeway))
    token = record.secrets.access_token or ""
    expires = record.token.expires_at if record.token else None
    out.emit(
        {"flow_id": record.id, "access_token": token, "expires_at": expires}, token
    )
    return 0


def cmd_call(args: argparse.Namespace, out: output.Output) -> int:
    headers = {}
    for item in args.header:
        name, sep, value = item.partition(":")
        if not sep:
            raise ConfigurationError(f"--header expects NAME:VALUE, got {item!r}")
        headers[name.strip()] = value.strip()
    with (
        driver_for(args) as driver,
        httpx.Client(auth=driver.auth(args.flow_id), timeout=30.0) as api,
    ):
        try:
            response = api.request(
                args.method.upper(), args.url, headers=headers, content=args.data
            )
        except httpx.HTTPError as exc:
            raise ConfigurationError(
                f"request failed: {type(exc).__name__}: {exc}"
            ) from exc
    body = response.text
    out.emit(
        {
            "status": response.status_code,
            "headers": dict(response.headers),
            "body": body,
        },
        body,
    )
    return 0 if response.is_success else 1


def cmd_revoke(args: argparse.Namespace, out: output.Output) -> int:
    with driver_for(args) as driver:
        record = driver.revoke(args.flow_id)
    at_provider = bool(record.history and record.history[-1].detail.get("at_provider"))
    out.emit({"flow_id": record.id, "state": record.state, "at_provider": at_provider})
    return 0


def cmd_diagram(args: argparse.Namespace, out: output.Output) -> int:
    if args.write:
        written = write_diagrams(args.write)
        out.emit({"written": [str(p) for p in written]}, "\n".join(map(str, written)))
        return 0
    spec = load_spec(args.spec) if args.spec else builtin_spec()
    text = mermaid(spec)
    out.emit(
        {"spec": spec.name, "mermaid": text, "markdown": diagram_document(spec)},
        text.rstrip(),
    )
    return 0


def cmd_check(args: argparse.Namespace, out: output.Output) -> int:
    results: list[dict[str, Any]] = []
    lines: list[str] = []
    for file in args.files:
        try:
            load_spec(file)
        except SpecError as exc:
            problems = [{"field": p.field, "reason": p.reason} for p in exc.problems]
            lines.extend(f"{file}: {p.field}: {p.reason}" for p in exc.problems)
        else:
            problems = []
            lines.append(f"{file}: ok")
        results.append({"file": str(file), "valid": not problems, "problems": problems})
    out.emit({"files": results}, "\n".join(lines))
    return 0 if all(r["valid"] for r in results) else 1


# Entry point -------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``flow`` command.

    Args:
        argv: The arguments after the program name; ``sys.argv[1:]`` by default.

    Returns:
        The exit status.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(verbosity=args.verbose, as_json=args.log_json)
    out = output.Output(as_json=args.json)
    handler: Handler = args.handler
    try:
        return handler(args, out)
    except FlowError as exc:
        message = (
            str(exc).splitlines()[0]
            if not isinstance(exc, SpecError)
            else (f"{exc.file}: " + "; ".join(str(p) for p in exc.problems))
        )
        if args.json:
            out.emit({"error": exc.reason, "message": message, "flow_id": exc.flow_id})
        print(f"flow: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("flow: interrupted", file=sys.stderr)
        return 130
