"""Marshmallow schemas for provider spec files, and the checks beyond their shape."""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validates
from marshmallow import validate as v

from ..errors import Problem
from ..record import AuthMethod
from .model import (
    Endpoints,
    Loopback,
    Offline,
    Param,
    Pkce,
    Provider,
    PublicSecret,
    Rotation,
    Source,
    TokenResponseRules,
)

_ID = v.Regexp(r"^[a-z][a-z0-9-]*$", error="must be lower-case letters, digits and -")
_NAME = v.Regexp(r"^[a-z][a-z0-9_]*$", error="must be snake_case")


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class _Tuple(fields.List[Any]):
    """A list in YAML, a tuple in the model."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        return tuple(super()._deserialize(value, attr, data, **kwargs))


def _strings() -> fields.Dict:
    return fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)


class ParamSchema(_Strict):
    description = fields.String(required=True, validate=v.Length(min=1, max=200))
    default = fields.String(load_default=None, allow_none=True)
    pattern = fields.String(load_default=None, allow_none=True)
    examples = _Tuple(fields.String(), load_default=tuple)

    @validates("pattern")
    def _compiles(self, value: str | None, **_: Any) -> None:
        if value is None:
            return
        try:
            re.compile(value)
        except re.error as exc:
            raise ValidationError(f"not a regular expression: {exc}") from None


class EndpointsSchema(_Strict):
    authorization = fields.String(load_default=None, allow_none=True)
    token = fields.String(load_default=None, allow_none=True)
    revocation = fields.String(load_default=None, allow_none=True)
    userinfo = fields.String(load_default=None, allow_none=True)
    device_authorization = fields.String(load_default=None, allow_none=True)
    introspection = fields.String(load_default=None, allow_none=True)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Endpoints:
        return Endpoints(**data)


class OfflineSchema(_Strict):
    scopes = _Tuple(fields.String(), load_default=tuple)
    params = _strings()
    note = fields.String(load_default=None, allow_none=True)
    limited = fields.Boolean(load_default=False)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Offline:
        return Offline(**data)


class TokenResponseSchema(_Strict):
    error_on_200 = fields.Boolean(load_default=False)
    ok_field = fields.String(load_default=None, allow_none=True)
    token_paths = _Tuple(fields.String(), load_default=lambda: ("",))
    form_encoded = fields.Boolean(load_default=False)
    token_type = fields.String(
        load_default="bearer", validate=v.OneOf(["bearer", "any"])
    )
    keep = _Tuple(fields.String(), load_default=tuple)
    expires_in = fields.String(
        load_default="always", validate=v.OneOf(["always", "sometimes", "never"])
    )

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> TokenResponseRules:
        return TokenResponseRules(**data)


class LoopbackSchema(_Strict):
    allowed = fields.Boolean(load_default=True)
    hosts = _Tuple(fields.String(), load_default=lambda: ("127.0.0.1",))
    any_port = fields.Boolean(load_default=True)
    note = fields.String(load_default=None, allow_none=True)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Loopback:
        return Loopback(**data)


class SourceSchema(_Strict):
    url = fields.String(required=True, validate=v.Length(min=1))
    checked = fields.Date(required=True)
    about = fields.String(load_default="")

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Source:
        return Source(**data)


class ProviderSchema(_Strict):
    """The shape of a provider spec file, after ``extends`` is merged in."""

    id = fields.String(required=True, validate=_ID)
    display_name = fields.String(required=True, validate=v.Length(min=1, max=80))
    description = fields.String(required=True, validate=v.Length(min=1, max=200))
    extends = fields.String(load_default=None, allow_none=True)
    abstract = fields.Boolean(load_default=False)
    params = fields.Dict(
        keys=fields.String(validate=_NAME),
        values=fields.Nested(ParamSchema),
        load_default=dict,
    )
    endpoints = fields.Nested(EndpointsSchema, load_default=Endpoints)
    discovery = fields.String(load_default=None, allow_none=True)
    issuer = fields.String(load_default=None, allow_none=True)
    iss_parameter_supported = fields.Boolean(load_default=False)
    scopes = _Tuple(fields.String(validate=v.Length(min=1)), load_default=tuple)
    scope_separator = fields.String(load_default=" ", validate=v.OneOf([" ", ","]))
    authorization_params = _strings()
    offline = fields.Nested(OfflineSchema, load_default=Offline)
    pkce = fields.Enum(Pkce, by_value=True, load_default=Pkce.SUPPORTED)
    client_auth = _Tuple(
        fields.Enum(AuthMethod, by_value=True),
        load_default=lambda: (AuthMethod.CLIENT_SECRET_BASIC,),
        validate=v.Length(min=1),
    )
    public_secret = fields.Enum(
        PublicSecret, by_value=True, load_default=PublicSecret.OPTIONAL
    )
    token_headers = _strings()
    token_response = fields.Nested(TokenResponseSchema, load_default=TokenResponseRules)
    rotation = fields.Enum(Rotation, by_value=True, load_default=Rotation.UNKNOWN)
    loopback = fields.Nested(LoopbackSchema, load_default=Loopback)
    hooks = _Tuple(fields.String(validate=_NAME), load_default=tuple)
    sources = _Tuple(fields.Nested(SourceSchema), load_default=tuple)
    uncertain = _Tuple(fields.String(), load_default=tuple)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Provider:
        data.pop("abstract")
        data["params"] = {
            name: Param(name=name, **spec) for name, spec in data["params"].items()
        }
        return Provider(**data)


PROVIDER_SCHEMA = ProviderSchema()


def template_names(template: str) -> list[str]:
    """The ``{name}`` placeholders of a URL template."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def check_provider(
    provider: Provider, *, known_hooks: Iterable[str], abstract: bool
) -> list[Problem]:
    """Check what the schema cannot: templates, endpoints, hooks, uncertain paths.

    Args:
        provider: A provider that passed :data:`PROVIDER_SCHEMA`.
        known_hooks: The hook names implemented in code.
        abstract: The spec is only a base for others (no endpoints needed).

    Returns:
        Every problem found; empty when the spec is sound.
    """
    problems: list[Problem] = []
    templates: dict[str, str] = {
        f"endpoints.{name}": value
        for name, value in _endpoint_items(provider.endpoints)
        if value is not None
    }
    for name in ("discovery", "issuer"):
        value = getattr(provider, name)
        if value is not None:
            templates[name] = value

    used: set[str] = set()
    for where, template in templates.items():
        try:
            names = template_names(template)
        except ValueError as exc:
            problems.append(Problem(where, f"bad template: {exc}"))
            continue
        used.update(names)
        for name in names:
            if name not in provider.params:
                problems.append(Problem(where, f"parameter {{{name}}} is not declared"))
        if not template.startswith("https://") and not template.startswith("{"):
            problems.append(Problem(where, "must be an https URL"))
    for name in provider.params:
        if name not in used:
            problems.append(Problem(f"params.{name}", "declared but used nowhere"))

    has_endpoints = provider.endpoints.authorization and provider.endpoints.token
    if not abstract and not has_endpoints and provider.discovery is None:
        problems.append(
            Problem(
                "endpoints",
                "needs authorization and token endpoints, or a discovery URL",
            )
        )
    hooks = set(known_hooks)
    for index, hook in enumerate(provider.hooks):
        if hook not in hooks:
            problems.append(
                Problem(f"hooks[{index}]", f"unknown hook {hook!r} ({sorted(hooks)})")
            )
    for index, path in enumerate(provider.uncertain):
        if not _has_path(provider, path):
            problems.append(Problem(f"uncertain[{index}]", f"no field {path!r}"))
    return problems


def _endpoint_items(endpoints: Endpoints) -> list[tuple[str, str | None]]:
    return [
        (name, getattr(endpoints, name))
        for name in (
            "authorization",
            "token",
            "revocation",
            "userinfo",
            "device_authorization",
            "introspection",
        )
    ]


def _has_path(provider: Provider, path: str) -> bool:
    target: Any = provider
    for part in path.split("."):
        if isinstance(target, Mapping):
            if part not in target:
                return False
            target = target[part]
        elif hasattr(target, part):
            target = getattr(target, part)
        else:
            return False
    return True
