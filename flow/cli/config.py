"""Settings the ``flow`` command reads from flags and the environment."""

from __future__ import annotations

import os
from pathlib import Path

from ..stores import Store, open_store

#: Environment variable naming the store URL.
STORE_ENV = "FLOW_STORE"
#: Environment variable holding a client secret, so it stays out of ``ps`` output.
SECRET_ENV = "FLOW_CLIENT_SECRET"  # noqa: S105 - a variable name


def state_dir() -> Path:
    """Where flow keeps its default store: ``$XDG_STATE_HOME/flow``.

    Falls back to ``~/.local/state/flow`` as the XDG Base Directory specification
    says.
    """
    base = os.environ.get("XDG_STATE_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else None
    return (root or Path.home() / ".local" / "state") / "flow"


def default_store_url() -> str:
    """The SQLite file under :func:`state_dir`."""
    return f"sqlite:///{state_dir() / 'flows.db'}"


def store_url(flag: str | None) -> str:
    """The store URL: the flag, else ``FLOW_STORE``, else the default file."""
    return flag or os.environ.get(STORE_ENV) or default_store_url()


def open_cli_store(flag: str | None) -> Store:
    """Open the store the command should use."""
    return open_store(store_url(flag))
