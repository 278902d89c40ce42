"""A stand-in for the system browser, for ``flow login`` tests.

``webbrowser`` runs ``$BROWSER`` with the authorization URL. This script logs in
on the test authorization server as a user would, follows the redirect to the
loopback listener, and prints the page it got (to a file named by
``FAKE_BROWSER_PAGE``, when set).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.e2e.harness import Browser


def main(url: str) -> None:
    with Browser() as browser:
        callback = browser.login(url)
    response = httpx.get(callback, timeout=30.0, trust_env=False)
    target = os.environ.get("FAKE_BROWSER_PAGE")
    if target:
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        Path(target).write_text(f"{response.status_code}\n{headers}\n\n{response.text}")


if __name__ == "__main__":
    main(sys.argv[1])
