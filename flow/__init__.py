"""flow: OAuth 2.0 client flows as declarative, resumable, persisted state machines.

Start a flow, send the user to its authorization URL, and resume it from the
callback in any process that reaches the same store::

    import flow

    store = flow.SQLiteStore("flows.db")
    with flow.Driver(store) as driver:
        started = driver.start(client, "https://issuer.example", scopes=["openid"])
        ...  # the user logs in; the browser comes back to the redirect URI
        outcome = driver.resume(callback_url)
"""

from .drivers import (
    AsyncDriver,
    Driver,
    Engine,
    GcSummary,
    Outcome,
    RefreshSummary,
    Started,
)
from .drivers.access import AsyncFlowAuth, FlowAuth
from .errors import (
    AccessDenied,
    CallbackError,
    CallerError,
    ConfigurationError,
    CorruptRecord,
    EnvironmentError_,
    FlowError,
    FlowExpired,
    FlowNotFound,
    FlowNotReady,
    IllegalTransition,
    IndeterminateExchange,
    InvalidClient,
    InvalidGrant,
    IssuerMismatch,
    MalformedResponse,
    MetadataError,
    OAuthError,
    ProviderError,
    ReauthRequired,
    SpecError,
    StateMismatch,
    StoreError,
    TransportError,
    UserAgentMismatch,
    VersionConflict,
)
from .events import redact_secrets
from .machine import FlowMachine, mermaid
from .protocol import explicit_metadata
from .record import AuthMethod, Client, FlowRecord, ServerMetadata, TokenInfo
from .spec import FlowSpec, load_spec
from .stores import (
    AsyncStore,
    MemoryStore,
    SQLiteStore,
    Store,
    ThreadedStore,
    open_async_store,
    open_store,
)

__all__ = [
    "AccessDenied",
    "AsyncDriver",
    "AsyncFlowAuth",
    "AsyncStore",
    "AuthMethod",
    "CallbackError",
    "CallerError",
    "Client",
    "ConfigurationError",
    "CorruptRecord",
    "Driver",
    "Engine",
    "EnvironmentError_",
    "FlowAuth",
    "FlowError",
    "FlowExpired",
    "FlowMachine",
    "FlowNotFound",
    "FlowNotReady",
    "FlowRecord",
    "FlowSpec",
    "GcSummary",
    "IllegalTransition",
    "IndeterminateExchange",
    "InvalidClient",
    "InvalidGrant",
    "IssuerMismatch",
    "MalformedResponse",
    "MemoryStore",
    "MetadataError",
    "OAuthError",
    "Outcome",
    "ProviderError",
    "ReauthRequired",
    "RefreshSummary",
    "SQLiteStore",
    "ServerMetadata",
    "SpecError",
    "Started",
    "StateMismatch",
    "Store",
    "StoreError",
    "ThreadedStore",
    "TokenInfo",
    "TransportError",
    "UserAgentMismatch",
    "VersionConflict",
    "explicit_metadata",
    "load_spec",
    "mermaid",
    "open_async_store",
    "open_store",
    "redact_secrets",
]
