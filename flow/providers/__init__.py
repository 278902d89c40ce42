"""Providers: a declarative catalog of authorization servers and their quirks."""

from .catalog import Catalog, bind_params, default_catalog, render, static_metadata
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

__all__ = [
    "Catalog",
    "Endpoints",
    "Loopback",
    "Offline",
    "Param",
    "Pkce",
    "Provider",
    "PublicSecret",
    "Rotation",
    "Source",
    "TokenResponseRules",
    "bind_params",
    "default_catalog",
    "render",
    "static_metadata",
]
