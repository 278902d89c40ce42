"""A SANDBOX authorization server for demos and documentation. NEVER FOR PRODUCTION.

:class:`SandboxServer` runs a complete OAuth 2.0 authorization server on
``127.0.0.1`` so that ``flow demo`` and the documentation can show a whole flow with
no account and no network. It is deliberately not secure:

* anyone who types a username on its login page is logged in, with no password;
* the confidential demo client's secret is published in this package;
* everything lives in memory and is lost when the server stops;
* it binds 127.0.0.1 only and serves plain HTTP.

Do not point real applications at it, do not copy it into a real server, and do not
use it in tests that should meet a real authorization server: flow's end-to-end
tests use oidc-provider.
"""

from .clients import (
    DEMO_CLIENT_ID,
    DEMO_CONFIDENTIAL_CLIENT_ID,
    DEMO_CONFIDENTIAL_SECRET,
    SandboxClient,
)
from .server import SandboxServer
from .state import SandboxStats

__all__ = [
    "DEMO_CLIENT_ID",
    "DEMO_CONFIDENTIAL_CLIENT_ID",
    "DEMO_CONFIDENTIAL_SECRET",
    "SandboxClient",
    "SandboxServer",
    "SandboxStats",
]
