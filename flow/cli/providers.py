"""``flow providers``: the catalog, and one provider's capabilities."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ConfigurationError
from ..providers import Provider, default_catalog
from . import output


def capabilities(provider: Provider) -> dict[str, Any]:
    """A provider's capabilities as JSON-ready data."""
    endpoints = provider.endpoints
    return {
        "id": provider.id,
        "name": provider.display_name,
        "description": provider.description,
        "extends": provider.extends,
        "params": {
            name: {
                "description": p.description,
                "default": p.default,
                "pattern": p.pattern,
                "examples": list(p.examples),
            }
            for name, p in provider.params.items()
        },
        "authorization_endpoint": endpoints.authorization,
        "token_endpoint": endpoints.token,
        "revocation_endpoint": endpoints.revocation,
        "userinfo_endpoint": endpoints.userinfo,
        "device_authorization_endpoint": endpoints.device_authorization,
        "discovery": provider.discovery,
        "default_scopes": list(provider.scopes),
        "scope_separator": provider.scope_separator,
        "refresh_token": {
            "scopes": list(provider.offline.scopes),
            "params": dict(provider.offline.params),
            "note": provider.offline.note,
        },
        "pkce": provider.pkce.value,
        "client_auth": [m.value for m in provider.client_auth],
        "public_client_secret": provider.public_secret.value,
        "rotation": provider.rotation.value,
        "loopback": {
            "allowed": provider.loopback.allowed,
            "hosts": list(provider.loopback.hosts),
            "any_port": provider.loopback.any_port,
            "note": provider.loopback.note,
        },
        "hooks": list(provider.hooks),
        "uncertain": list(provider.uncertain),
        "sources": [
            {"url": s.url, "checked": s.checked.isoformat(), "about": s.about}
            for s in provider.sources
        ],
    }


def cmd_providers(args: argparse.Namespace, out: output.Output) -> int:
    """List the catalog, or show one provider."""
    catalog = default_catalog()
    if args.action == "show" or args.name:
        if not args.name:
            raise ConfigurationError("flow providers show NAME")
        data = capabilities(catalog.get(args.name))
        brief = {
            k: v
            for k, v in data.items()
            if k
            not in ("params", "refresh_token", "loopback", "sources", "description")
        }
        params = "\n".join(
            f"  {name}: {p['description']} (default {p['default'] or '-'})"
            for name, p in data["params"].items()
        )
        refresh = data["refresh_token"]
        loop = data["loopback"]
        extra = {
            "refresh token via": " ".join(refresh["scopes"])
            + " ".join(f" {k}={v}" for k, v in refresh["params"].items())
            or "always issued or not at all",
            "loopback": f"{' '.join(loop['hosts'])}, "
            + ("any port" if loop["any_port"] else "fixed port"),
        }
        brief["scope_separator"] = (
            "space" if brief["scope_separator"] == " " else "comma"
        )
        table = output.fields({**brief, **extra})
        text = f"{data['name']}: {data['description']}\n\n{table}"
        if params:
            text += f"\n\nparameters:\n{params}"
        out.emit(data, text)
        return 0
    rows = [
        [p.id, p.display_name, p.pkce.value, p.rotation.value, ", ".join(p.params)]
        for p in (catalog.get(i) for i in catalog.ids())
    ]
    out.emit(
        {"providers": [capabilities(catalog.get(i)) for i in catalog.ids()]},
        output.table(rows, ["id", "name", "pkce", "rotation", "params"]),
    )
    return 0
