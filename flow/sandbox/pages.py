"""The sandbox's two HTML pages: the pretend login and the error page.

Every interpolated value is escaped. The login page carries only the pending
request's id; the code challenge and the client's state never reach the browser a
second time.
"""

from __future__ import annotations

from html import escape

#: The default in the username field.
DEFAULT_USERNAME = "demo-user"

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - flow sandbox</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto;
  padding: 0 1rem; color: #222; }}
.banner {{ background: #fff3cd; border: 1px solid #e0b100; padding: .75rem;
  border-radius: .25rem; }}
label, input, button {{ font-size: 1rem; }}
button {{ margin-right: .5rem; padding: .4rem 1.2rem; }}
</style>
</head>
<body>
<p class="banner"><strong>flow sandbox: for demos only.</strong> This is not a real
login and not a real authorization server. It is never secure; do not use it for
anything that matters.</p>
<h1>{title}</h1>
{content}
</body>
</html>
"""

_LOGIN = """<p>The client <code>{client_id}</code> asks for the scope
<code>{scope}</code>. Any username is accepted; no password is asked.</p>
<form method="post" action="/authorize/decision">
<input type="hidden" name="request_id" value="{request_id}">
<p><label for="username">Username</label>
<input id="username" name="username" value="{username}" maxlength="64"
 pattern="[A-Za-z0-9._\\-]{{1,64}}" required></p>
<p><button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny" formnovalidate>Deny</button></p>
</form>
"""


def login_page(*, request_id: str, client_id: str, scope: str) -> str:
    """The consent form that posts the user's decision to ``/authorize/decision``.

    Args:
        request_id: The id of the pending request, the form's only hidden field.
        client_id: Shown to the user.
        scope: Shown to the user.

    Returns:
        A complete HTML document.
    """
    content = _LOGIN.format(
        client_id=escape(client_id),
        scope=escape(scope),
        request_id=escape(request_id),
        username=escape(DEFAULT_USERNAME),
    )
    return _PAGE.format(title="Sign in to the sandbox", content=content)


def error_page(message: str) -> str:
    """A page for errors that must not redirect (RFC 6749 section 4.1.2.1).

    Args:
        message: What went wrong, in plain words.

    Returns:
        A complete HTML document.
    """
    content = f"<p>{escape(message)}</p>"
    return _PAGE.format(title="The request was refused", content=content)
