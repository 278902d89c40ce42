"""HTTP exchanges described as data: the core builds requests and reads responses,
the drivers send them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

#: Form fields and headers whose values are never shown.
SENSITIVE = frozenset(
    {
        "authorization",
        "client_secret",
        "code",
        "code_verifier",
        "refresh_token",
        "access_token",
        "token",
        "id_token",
        "password",
        "cookie",
    }
)


def _masked(items: Mapping[str, str]) -> dict[str, str]:
    return {
        key: ("<redacted>" if key.lower() in SENSITIVE else value)
        for key, value in items.items()
    }


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A request for a driver to send, form-encoded when ``form`` is set.

    Its ``repr`` masks credentials in the form and the headers.
    """

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    form: Mapping[str, str] | None = None

    def __repr__(self) -> str:
        form = _masked(self.form) if self.form is not None else None
        return (
            f"HttpRequest(method={self.method!r}, url={self.url!r}, "
            f"headers={_masked(self.headers)!r}, form={form!r})"
        )


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """What a driver received: status, headers (lower-case names) and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def __repr__(self) -> str:
        return f"HttpResponse(status={self.status}, body=<{len(self.body)} bytes>)"

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-cased."""
        return self.headers.get("content-type", "").split(";")[0].strip().lower()
