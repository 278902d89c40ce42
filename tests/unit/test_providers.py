"""The provider catalog, and each declared quirk reproduced through MockTransport."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from flow import AuthMethod, Client, Driver, MemoryStore
from flow.errors import ConfigurationError, OAuthError, SpecError
from flow.providers import Catalog, default_catalog
from flow.providers.table import markdown_table, replace_section
from tests import canary
from tests.unit.flowkit import Clock, callback_for, engine

ROOT = Path(__file__).resolve().parents[2]
REDIRECT = "http://127.0.0.1:8765/callback"

Respond = Callable[[httpx.Request], httpx.Response]


class Server:
    """Answers every token request with a scripted response, and counts them."""

    def __init__(self, respond: Respond) -> None:
        self.respond = respond
        self.requests: list[httpx.Request] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.respond(request)

    def form(self, index: int = -1) -> dict[str, str]:
        body = self.requests[index].content.decode()
        return {k: v[0] for k, v in parse_qs(body).items()}


def json_answer(body: dict[str, Any], status: int = 200) -> Respond:
    return lambda _: httpx.Response(
        status, content=json.dumps(body), headers={"content-type": "application/json"}
    )


def tokens(**extra: Any) -> dict[str, Any]:
    return {
        "access_token": canary.canary("at"),
        "token_type": "Bearer",
        "expires_in": 3600,
        "refresh_token": canary.canary("rt"),
        **extra,
    }


def driver(server: Server, clock: Clock | None = None) -> Driver:
    http = httpx.Client(transport=httpx.MockTransport(server.handler))
    return Driver(MemoryStore(), engine=engine(clock or Clock()), http=http)


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def run(
    provider: str,
    respond: Respond,
    *,
    client: Client | None = None,
    secret: str | None = "s3cret-value",
    params: dict[str, str] | None = None,
) -> tuple[Driver, Server, str, str]:
    """Start and resume a flow; returns the driver, server, flow id and auth URL."""
    server = Server(respond)
    drv = driver(server)
    if secret is not None:
        canary.register(secret)
    started = drv.start(
        client or Client("app", REDIRECT, AuthMethod.CLIENT_SECRET_POST),
        provider=provider,
        params=params,
        client_secret=secret,
    )
    drv.resume(callback_for(started, iss=None))
    return drv, server, started.flow_id, started.authorization_url


# The catalog -----------------------------------------------------------------------


def test_every_bundled_provider_validates_and_names_its_sources() -> None:
    catalog = default_catalog()

    ids = catalog.ids()
    files = sorted(p.stem for p in (ROOT / "specs/providers").glob("*.yaml"))

    assert ids == files
    assert {"google", "microsoft", "github", "slack", "dropbox", "salesforce"} <= set(
        ids
    )
    assert [i for i in ids if not catalog.get(i).sources] == []


def test_extends_inherits_and_overrides() -> None:
    gmail = default_catalog().get("google-mail")

    assert gmail.endpoints.token == "https://oauth2.googleapis.com/token"
    assert "https://www.googleapis.com/auth/gmail.readonly" in gmail.scopes
    assert "iss_parameter_supported" in gmail.uncertain


def write(folder: Path, name: str, text: str) -> None:
    (folder / f"{name}.yaml").write_text(text)


BASE = """
id: {id}
display_name: X
description: x
endpoints:
  authorization: https://x.example/{tenant}/auth
  token: https://x.example/token
"""


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        (BASE, "endpoints.authorization", "{tenant} is not declared"),
        (
            BASE + "params:\n  tenant: {description: t}\n  extra: {description: e}\n",
            "params.extra",
            "used nowhere",
        ),
        (BASE.replace("https://x.example/token", "http://x.example/token")
         + "params:\n  tenant: {description: t}\n", "endpoints.token", "https"),
        (BASE + "params:\n  tenant: {description: t}\nhooks: [nope]\n", "hooks[0]",
         "unknown hook"),
        (BASE + "params:\n  tenant: {description: t}\nuncertain: [pkce.level]\n",
         "uncertain[0]", "no field"),
        (BASE + "params:\n  tenant: {description: t}\npkce: maybe\n", "pkce",
         "must be"),
        (BASE + "params:\n  tenant: {description: t}\ncolour: red\n", "colour",
         "unknown field"),
    ],
)  # fmt: skip
def test_malformed_provider_specs_name_file_field_and_reason(
    tmp_path: Path, text: str, field: str, reason: str
) -> None:
    write(tmp_path, "bad", text.replace("{id}", "bad"))

    with pytest.raises(SpecError) as caught:
        Catalog(tmp_path)

    assert any(
        p.field == f"bad.yaml: {field}" and reason in p.reason
        for p in caught.value.problems
    ), caught.value.problems


def test_extends_cycle_and_unknown_parent_are_reported(tmp_path: Path) -> None:
    write(tmp_path, "a", "id: a\nextends: b\n")
    write(tmp_path, "b", "id: b\nextends: a\n")
    write(tmp_path, "c", "id: c\nextends: nowhere\n")

    with pytest.raises(SpecError) as caught:
        Catalog(tmp_path)

    reasons = " ".join(p.reason for p in caught.value.problems)
    assert "cycle" in reasons
    assert "unknown provider 'nowhere'" in reasons


# Parameters are checked before any request -------------------------------------------


@pytest.mark.parametrize(
    ("provider", "params", "message"),
    [
        ("microsoft", {"tenant": "bad/tenant"}, "does not match"),
        ("microsoft", {"region": "eu"}, "no parameter 'region'"),
        ("oidc", {}, "needs --param issuer"),
        ("salesforce", {"host": "evil.example"}, "does not match"),
        ("no-such-provider", {"x": "y"}, "need a catalog provider"),
    ],
)
def test_wrong_parameters_fail_before_any_request(
    provider: str, params: dict[str, str], message: str
) -> None:
    server = Server(json_answer(tokens()))

    with pytest.raises(ConfigurationError, match=message):
        driver(server).start(
            Client("app", REDIRECT, AuthMethod.NONE), provider=provider, params=params
        )

    assert server.requests == []


# Google -----------------------------------------------------------------------------


def test_google_desktop_client_sends_its_secret_and_asks_for_offline_access() -> None:
    desktop = Client("app.apps.googleusercontent.com", REDIRECT, AuthMethod.NONE)

    drv, server, flow_id, url = run("google", json_answer(tokens()), client=desktop)

    assert (query(url)["access_type"], query(url)["prompt"]) == ("offline", "consent")
    assert query(url)["scope"] == "openid email profile"
    assert server.form()["client_secret"] == "s3cret-value"
    assert "authorization" not in server.requests[-1].headers
    assert drv.get(flow_id).state == "api_ready"


def test_google_desktop_client_without_its_secret_is_refused() -> None:
    desktop = Client("app", REDIRECT, AuthMethod.NONE)

    with pytest.raises(ConfigurationError, match="wants the client secret"):
        driver(Server(json_answer(tokens()))).start(desktop, provider="google")


# Microsoft --------------------------------------------------------------------------


def test_microsoft_tenant_goes_into_the_urls_and_offline_access_into_scopes() -> None:
    public = Client("app", REDIRECT, AuthMethod.NONE)
    answer = json_answer(tokens(ext_expires_in=7200))

    drv, server, flow_id, url = run(
        "microsoft", answer, client=public, secret=None, params={"tenant": "consumers"}
    )

    record = drv.get(flow_id)
    assert url.startswith("https://login.microsoftonline.com/consumers/oauth2/v2.0/")
    assert str(server.requests[0].url) == (
        "https://login.microsoftonline.com/consumers/oauth2/v2.0/token"
    )
    assert query(url)["scope"].split() == [
        "openid",
        "profile",
        "User.Read",
        "offline_access",
    ]
    assert record.token is not None
    assert record.token.extra == {"ext_expires_in": 7200}
    assert "client_secret" not in server.form()


def test_microsoft_public_client_with_a_secret_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="refuses a secret"):
        driver(Server(json_answer(tokens()))).start(
            Client("app", REDIRECT, AuthMethod.NONE),
            provider="microsoft",
            client_secret="nope-secret",
        )


def test_microsoft_rotation_keeps_the_newest_refresh_token() -> None:
    first, second = tokens(), tokens()
    answers = iter([first, second])
    drv, server, flow_id, _ = run(
        "microsoft",
        lambda request: json_answer(next(answers))(request),
        client=Client("app", REDIRECT, AuthMethod.NONE),
        secret=None,
    )

    drv.refresh(flow_id)

    assert drv.get(flow_id).secrets.refresh_token == second["refresh_token"]
    assert server.form()["refresh_token"] == first["refresh_token"]


# GitHub -----------------------------------------------------------------------------


def test_github_form_encoded_answer_is_read() -> None:
    token = canary.canary("gho")
    body = f"access_token={token}&scope=read%3Auser&token_type=bearer"
    form_type = {"content-type": "application/x-www-form-urlencoded"}

    def answer(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers=form_type)

    drv, server, flow_id, _ = run("github", answer)

    record = drv.get(flow_id)
    assert server.requests[0].headers["accept"] == "application/json"
    assert (record.secrets.access_token, record.token and record.token.expires_at) == (
        token,
        None,
    )


def test_github_error_with_http_200_is_a_typed_error() -> None:
    answer = json_answer(
        {"error": "bad_verification_code", "error_description": "The code is wrong"}
    )

    with pytest.raises(OAuthError) as caught:
        run("github", answer)

    assert caught.value.error == "bad_verification_code"


# Slack ------------------------------------------------------------------------------


def test_slack_ok_false_is_a_typed_error() -> None:
    with pytest.raises(OAuthError) as caught:
        run("slack", json_answer({"ok": False, "error": "invalid_code"}))

    assert caught.value.error == "invalid_code"


def test_slack_user_token_under_authed_user_and_comma_scopes() -> None:
    user_token = canary.canary("xoxp")
    answer = json_answer(
        {
            "ok": True,
            "app_id": "A1",
            "team": {"id": "T1", "name": "Team"},
            "authed_user": {
                "id": "U1",
                "scope": "users:read,chat:write",
                "access_token": user_token,
                "token_type": "user",
            },
        }
    )

    drv, _, flow_id, url = run("slack", answer)

    record = drv.get(flow_id)
    assert record.secrets.access_token == user_token
    assert record.token is not None
    assert record.token.extra["team"] == {"id": "T1", "name": "Team"}
    assert record.token.extra["authed_user"] == {
        "id": "U1",
        "scope": "users:read,chat:write",
        "token_type": "user",
    }
    assert query(url)["scope"] == "users:read"


def test_slack_joins_scopes_with_commas() -> None:
    started = driver(Server(json_answer(tokens()))).start(
        Client("app", REDIRECT, AuthMethod.CLIENT_SECRET_POST),
        provider="slack",
        client_secret="s3cret-value",
        scopes=["users:read", "chat:write"],
    )

    assert query(started.authorization_url)["scope"] == "users:read,chat:write"


# Salesforce -------------------------------------------------------------------------


def test_salesforce_keeps_instance_url_and_has_no_expiry() -> None:
    answer = json_answer(
        {
            "access_token": canary.canary("sf"),
            "token_type": "Bearer",
            "instance_url": "https://acme.my.salesforce.com",
            "id": "https://login.salesforce.com/id/00D/005",
            "issued_at": "1733212345678",
            "refresh_token": canary.canary("sfrt"),
        }
    )

    drv, _, flow_id, url = run(
        "salesforce", answer, params={"host": "acme.my.salesforce.com"}
    )

    record = drv.get(flow_id)
    assert url.startswith("https://acme.my.salesforce.com/services/oauth2/authorize")
    assert record.token is not None
    assert record.token.expires_at is None
    assert record.token.extra == {
        "instance_url": "https://acme.my.salesforce.com",
        "id": "https://login.salesforce.com/id/00D/005",
        "issued_at": 1733212345,
    }
    assert "refresh_token" in query(url)["scope"].split()


# Dropbox ----------------------------------------------------------------------------


def test_dropbox_asks_for_offline_tokens_and_keeps_its_account_fields() -> None:
    answer = json_answer(tokens(account_id="dbid:1", uid="12"))

    drv, _, flow_id, url = run("dropbox", answer)

    record = drv.get(flow_id)
    assert query(url)["token_access_type"] == "offline"
    assert record.token is not None
    assert record.token.extra == {"account_id": "dbid:1", "uid": "12"}


def test_offline_can_be_turned_off() -> None:
    server = Server(json_answer(tokens()))

    started = driver(server).start(
        Client("app", REDIRECT, AuthMethod.CLIENT_SECRET_POST),
        provider="dropbox",
        client_secret="s3cret-value",
        offline=False,
    )

    assert "token_access_type" not in query(started.authorization_url)


def test_auth_method_the_provider_does_not_take_is_refused(tmp_path: Path) -> None:
    write(
        tmp_path,
        "postonly",
        BASE.replace("{id}", "postonly").replace("/{tenant}", "")
        + "client_auth: [client_secret_post]\n",
    )
    server = Server(json_answer(tokens()))
    http = httpx.Client(transport=httpx.MockTransport(server.handler))
    drv = Driver(
        MemoryStore(), engine=engine(Clock(), catalog=Catalog(tmp_path)), http=http
    )

    with pytest.raises(ConfigurationError, match="does not take"):
        drv.start(
            Client("app", REDIRECT, AuthMethod.CLIENT_SECRET_BASIC),
            provider="postonly",
            client_secret="s3cret-value",
        )


def test_readme_table_matches_the_catalog() -> None:
    readme = (ROOT / "README.md").read_text()

    expected = replace_section(readme, markdown_table())

    assert readme == expected, "run: python -m flow.providers.table README.md"


def test_a_child_with_its_own_params_replaces_the_parents() -> None:
    keycloak = default_catalog().get("keycloak")

    assert (keycloak.extends, sorted(keycloak.params)) == ("oidc", ["host", "realm"])
    assert keycloak.offline.scopes == ("offline_access",)


def test_keycloak_realm_and_host_make_the_issuer_it_discovers() -> None:
    issuer = "https://sso.example.com/realms/acme"
    document = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/protocol/openid-connect/auth",
        "token_endpoint": f"{issuer}/protocol/openid-connect/token",
    }
    server = Server(json_answer(document))

    started = driver(server).start(
        Client("app", REDIRECT, AuthMethod.NONE),
        provider="keycloak",
        params={"host": "sso.example.com", "realm": "acme"},
    )

    assert str(server.requests[0].url) == f"{issuer}/.well-known/openid-configuration"
    assert started.authorization_url.startswith(document["authorization_endpoint"])
