"""The thin HTTP layer: one shared httpx client per worker, on the aiohttp transport.

It sends a connector's :class:`HttpCall` and returns an :class:`HttpAnswer`, or says
whether a failed call *provably never reached* the provider. That distinction is made
from the underlying cause: httpx-aiohttp maps every ``aiohttp.ClientConnectionError``,
including a server dropping the connection after reading the request, to
``httpx.ConnectTimeout``, so the httpx exception type alone would call a lost response
"safe to retry" and create a second link.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp
import httpx
import orjson
from httpx_aiohttp import AiohttpTransport

from streams.connectors.base import HttpAnswer, HttpCall, Transient, Unknown

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BasicAuth:
    username: str
    password: str

    def __repr__(self) -> str:  # secrets never reach a log line
        return f"BasicAuth(username={self.username!r}, password=***)"


def never_sent(exc: BaseException) -> bool:
    """True only when the request provably did not reach the provider."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
        return True
    if cause is None and isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout,
                                          httpx.PoolTimeout)):
        return True  # httpx's own transport: raised before a byte was written
    return False


def classify_failure(exc: BaseException) -> Transient | Unknown:
    if never_sent(exc):
        return Transient(f"not_sent:{type(exc).__name__}")
    return Unknown(f"no_answer:{type(exc).__name__}")


class ProviderTransport:
    """Created once per worker; connection pools are reused across all calls."""

    def __init__(self, base_url: str, *, connect_timeout_s: float, read_timeout_s: float,
                 max_connections: int) -> None:
        limits = httpx.Limits(max_connections=max_connections,
                              max_keepalive_connections=max_connections)
        self._client = httpx.AsyncClient(
            base_url=base_url,
            transport=AiohttpTransport(limits=limits),
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )

    async def send(self, call: HttpCall, auth: BasicAuth) -> HttpAnswer | Transient | Unknown:
        try:
            response = await self._client.request(
                call.method, call.path, params=call.params or None,
                content=None if call.json is None else orjson.dumps(call.json),
                headers=call.headers, auth=(auth.username, auth.password),
            )
        except httpx.HTTPError as exc:
            outcome = classify_failure(exc)
            log.warning("%s %s failed: %s (%s)", call.method, call.path, outcome.reason, exc)
            return outcome
        return HttpAnswer(response.status_code, dict(response.headers), response.content)

    async def aclose(self) -> None:
        await self._client.aclose()
