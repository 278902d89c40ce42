"""API access: ``httpx.Auth`` classes that send a stored flow's access token.

The token goes in the ``Authorization`` header only, never in a query string
(RFC 6750 section 2.1, RFC 9700 section 4.3.2). It is refreshed shortly before it
expires, and once more when the API answers 401 with the token just sent.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from datetime import timedelta
from typing import TYPE_CHECKING

import httpx

from ..errors import ConfigurationError
from .credential import DEFAULT_LEEWAY

if TYPE_CHECKING:
    from .asyncio import AsyncDriver
    from .sync import Driver


def _bearer(request: httpx.Request, token: str) -> None:
    request.headers["Authorization"] = f"Bearer {token}"


class FlowAuth(httpx.Auth):
    """Authenticates ``httpx.Client`` requests with a flow's access token.

    Args:
        driver: The driver whose store holds the flow.
        flow_id: A flow in ``api_ready``.
        leeway: Refresh when the token expires within this time.

    Example:
        >>> with httpx.Client(auth=driver.auth(flow_id)) as api:  # doctest: +SKIP
        ...     api.get("https://api.example/me")
    """

    requires_request_body = True

    def __init__(
        self, driver: Driver, flow_id: str, *, leeway: timedelta = DEFAULT_LEEWAY
    ) -> None:
        self._driver = driver
        self.flow_id = flow_id
        self._leeway = leeway

    def __repr__(self) -> str:
        return f"FlowAuth(flow_id={self.flow_id!r})"

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._driver.access_token(self.flow_id, leeway=self._leeway)
        _bearer(request, token)
        response = yield request
        if response.status_code == 401:
            record = self._driver.credential(self.flow_id, rejected=token)
            _bearer(request, record.secrets.access_token or "")
            yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        raise ConfigurationError(
            "FlowAuth serves httpx.Client; use AsyncDriver.auth() with AsyncClient"
        )
        yield request  # pragma: no cover - makes this an async generator


class AsyncFlowAuth(httpx.Auth):
    """Authenticates ``httpx.AsyncClient`` requests with a flow's access token.

    Args:
        driver: The async driver whose store holds the flow.
        flow_id: A flow in ``api_ready``.
        leeway: Refresh when the token expires within this time.
    """

    requires_request_body = True

    def __init__(
        self, driver: AsyncDriver, flow_id: str, *, leeway: timedelta = DEFAULT_LEEWAY
    ) -> None:
        self._driver = driver
        self.flow_id = flow_id
        self._leeway = leeway

    def __repr__(self) -> str:
        return f"AsyncFlowAuth(flow_id={self.flow_id!r})"

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise ConfigurationError(
            "AsyncFlowAuth serves httpx.AsyncClient; use Driver.auth() with Client"
        )
        yield request  # pragma: no cover - makes this a generator

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._driver.access_token(self.flow_id, leeway=self._leeway)
        _bearer(request, token)
        response = yield request
        if response.status_code == 401:
            record = await self._driver.credential(self.flow_id, rejected=token)
            _bearer(request, record.secrets.access_token or "")
            yield request
