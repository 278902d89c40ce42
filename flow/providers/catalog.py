"""The provider catalog: every spec under ``specs/providers``, with ``extends``.

A spec may extend another: the parent's fields are the defaults, the child's win,
and mappings are merged key by key, except ``params``: a child that declares them
replaces them whole, since its URL templates are its own. ``abstract: true`` marks
a base that is not a provider on its own.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from marshmallow import ValidationError

from ..errors import ConfigurationError, Problem, SpecError
from ..record import ServerMetadata
from ..spec.schema import flatten_messages
from .hooks import HOOKS
from .model import Provider
from .schema import PROVIDER_SCHEMA, check_provider, template_names

_ROOTS = (
    Path(__file__).resolve().parent.parent / "specs" / "providers",
    Path(__file__).resolve().parent.parent.parent / "specs" / "providers",
)


class Catalog:
    """Providers by id, loaded from a folder of YAML specs.

    Args:
        folder: The folder; the bundled catalog when omitted.

    Raises:
        SpecError: Listing every problem of every file, each with its field.
    """

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or _bundled_folder()
        raw = {path: _read(path) for path in sorted(self.folder.glob("*.yaml"))}
        documents = {str(doc.get("id")): (path, doc) for path, doc in raw.items()}
        problems: list[tuple[str, Problem]] = []
        self._providers: dict[str, Provider] = {}
        self._abstract: set[str] = set()
        for key, (path, _) in documents.items():
            try:
                merged = _merged(key, documents, chain=())
                provider = PROVIDER_SCHEMA.load(merged)
            except ValidationError as exc:
                problems.extend((str(path), p) for p in flatten_messages(exc.messages))
                continue
            except SpecError as exc:
                problems.extend((str(path), p) for p in exc.problems)
                continue
            abstract = bool(merged.get("abstract"))
            found = check_provider(provider, known_hooks=HOOKS, abstract=abstract)
            if path.stem != provider.id:
                found.append(Problem("id", f"must match the file name {path.stem!r}"))
            problems.extend((str(path), p) for p in found)
            if abstract:
                self._abstract.add(provider.id)
            self._providers[provider.id] = replace(provider, file=str(path))
        if problems:
            raise SpecError(
                str(self.folder),
                [
                    Problem(f"{Path(file).name}: {p.field}", p.reason)
                    for file, p in problems
                ],
            )

    def __contains__(self, provider_id: object) -> bool:
        return provider_id in self._providers and provider_id not in self._abstract

    def ids(self) -> list[str]:
        """Every concrete provider id, sorted."""
        return sorted(p for p in self._providers if p not in self._abstract)

    def get(self, provider_id: str) -> Provider:
        """The provider with this id.

        Raises:
            ConfigurationError: No such provider, with the known ids.
        """
        if provider_id not in self:
            raise ConfigurationError(
                f"unknown provider {provider_id!r}; known: {', '.join(self.ids())}"
            )
        return self._providers[provider_id]


def _bundled_folder() -> Path:
    for root in _ROOTS:
        if root.is_dir():
            return root
    raise ConfigurationError("the bundled provider catalog is missing")


@functools.cache
def default_catalog() -> Catalog:
    """The bundled catalog, loaded once per process."""
    return Catalog()


def _read(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SpecError(
            str(path), [Problem("<file>", str(exc).splitlines()[0])]
        ) from None
    if not isinstance(document, dict):
        raise SpecError(str(path), [Problem("<document>", "must be a mapping")])
    return document


def _merged(
    key: str,
    documents: Mapping[str, tuple[Path, dict[str, Any]]],
    chain: tuple[str, ...],
) -> dict[str, Any]:
    if key in chain:
        cycle = " -> ".join((*chain, key))
        raise SpecError("", [Problem("extends", f"cycle: {cycle}")])
    _, document = documents[key]
    parent = document.get("extends")
    if parent is None:
        return dict(document)
    if parent not in documents:
        raise SpecError("", [Problem("extends", f"unknown provider {parent!r}")])
    base = _merged(str(parent), documents, (*chain, key))
    base.pop("abstract", None)
    merged = _deep_merge(base, document)
    # Provenance accumulates: the parent's sources and uncertain facts still apply
    # to whatever the child did not restate.
    for key in ("uncertain", "sources"):
        merged[key] = [*base.get(key, []), *document.get(key, [])]
    return merged


#: Fields a child replaces whole: new URL templates come with their own parameters.
_REPLACED = frozenset({"params"})


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in override.items():
        if key in _REPLACED:
            result[key] = value
        elif isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = _deep_merge(dict(result[key]), value)
        else:
            result[key] = value
    return result


# Resolving a provider into endpoints ---------------------------------------------


def bind_params(provider: Provider, given: Mapping[str, str]) -> dict[str, str]:
    """Check parameters against the provider's declarations; fill defaults.

    Raises:
        ConfigurationError: An unknown name, a missing value or a value that does
            not match its pattern; raised before any request is sent.
    """
    unknown = sorted(set(given) - set(provider.params))
    if unknown:
        known = ", ".join(sorted(provider.params)) or "none"
        raise ConfigurationError(
            f"provider {provider.id!r} has no parameter {unknown[0]!r} (known: {known})"
        )
    values: dict[str, str] = {}
    for name, param in provider.params.items():
        value = given.get(name, param.default)
        if value is None:
            raise ConfigurationError(
                f"provider {provider.id!r} needs --param {name}=... "
                f"({param.description})"
            )
        if param.pattern and not re.fullmatch(param.pattern, value):
            raise ConfigurationError(
                f"parameter {name}={value!r} does not match {param.pattern!r} "
                f"for provider {provider.id!r}"
            )
        values[name] = value
    return values


def render(template: str | None, values: Mapping[str, str]) -> str | None:
    """Fill a URL template's ``{name}`` placeholders."""
    if template is None:
        return None
    for name in template_names(template):
        template = template.replace("{" + name + "}", values[name])
    return template


def static_metadata(provider: Provider, values: Mapping[str, str]) -> ServerMetadata:
    """Server metadata from the provider's declared endpoints.

    Raises:
        ConfigurationError: When the provider declares no endpoints (it is filled
            by discovery instead).
    """
    from ..protocol.metadata import metadata_from_document

    endpoints = provider.endpoints
    if endpoints.authorization is None or endpoints.token is None:
        raise ConfigurationError(f"provider {provider.id!r} is found by discovery")
    document: dict[str, Any] = {
        "issuer": render(provider.issuer, values)
        or render(endpoints.authorization, values),
        "authorization_endpoint": render(endpoints.authorization, values),
        "token_endpoint": render(endpoints.token, values),
        "revocation_endpoint": render(endpoints.revocation, values),
        "userinfo_endpoint": render(endpoints.userinfo, values),
        "authorization_response_iss_parameter_supported": (
            provider.iss_parameter_supported
        ),
    }
    return metadata_from_document(document)
