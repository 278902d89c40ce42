"""Flow records: the flow as plain data, and the schema that stores it."""

from .model import (
    JSON,
    AuthMethod,
    Client,
    FlowRecord,
    Secrets,
    ServerMetadata,
    TokenInfo,
    Transition,
)
from .schema import SCHEMA_VERSION, Encoded, decode, encode

__all__ = [
    "JSON",
    "SCHEMA_VERSION",
    "AuthMethod",
    "Client",
    "Encoded",
    "FlowRecord",
    "Secrets",
    "ServerMetadata",
    "TokenInfo",
    "Transition",
    "decode",
    "encode",
]
