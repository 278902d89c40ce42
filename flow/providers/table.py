"""The README's provider table, generated from the catalog.

``python -m flow.providers.table README.md`` rewrites the part of the file between
``<!-- providers:begin -->`` and ``<!-- providers:end -->``; a test fails when the
committed table no longer matches the catalog.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .catalog import Catalog, default_catalog
from .model import Provider

BEGIN, END = "<!-- providers:begin -->", "<!-- providers:end -->"


def _refresh(provider: Provider) -> str:
    parts = [f"`{s}`" for s in provider.offline.scopes]
    parts += [f"`{k}={v}`" for k, v in provider.offline.params.items()]
    needed = " + ".join(parts) or "nothing extra"
    return f"{needed} (some apps only)" if provider.offline.limited else needed


def _row(provider: Provider) -> str:
    params = ", ".join(f"`{name}`" for name in provider.params) or "-"
    loopback = provider.loopback
    if not loopback.allowed:
        where = "no"
    else:
        port = "any port" if loopback.any_port else "fixed port"
        where = f"{', '.join(loopback.hosts)} ({port})"
    revocation = "RFC 7009" if provider.endpoints.revocation else "-"
    note = " *" if provider.uncertain else ""
    cells = [
        f"`{provider.id}`{note}",
        provider.display_name,
        params,
        provider.pkce.value,
        _refresh(provider),
        provider.rotation.value.replace("_", " "),
        revocation,
        where,
    ]
    return "| " + " | ".join(cells) + " |"


def markdown_table(catalog: Catalog | None = None) -> str:
    """Every provider's capabilities as a Markdown table."""
    catalog = catalog or default_catalog()
    header = (
        "| provider | name | parameters | PKCE | to get a refresh token | rotation "
        "| revocation | loopback redirect |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    rows = [_row(catalog.get(provider_id)) for provider_id in catalog.ids()]
    footnote = (
        "\n\n\\* some facts are not yet checked against a source; "
        "`flow providers show ID` lists them."
    )
    return header + "\n" + "\n".join(rows) + footnote


def replace_section(text: str, table: str) -> str:
    """``text`` with the marked section replaced by ``table``."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return f"{text[:start]}\n{table}\n{text[end:]}"


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    target.write_text(replace_section(target.read_text(), markdown_table()))
