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
from collections.abc import Mapping
from urllib.parse import urlencode

import aiohttp
import httpx
import orjson
from httpx_aiohttp import AiohttpTransport

from streams.connectors.base import HttpAnswer, HttpCall, Transient, Unknown

log = logging.getLogger(__name__)


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
    """Created once per worker; one connection pool is reused by every call.

    It speaks httpx's transport API (``httpx.Request`` in, ``httpx.Response`` out)
    rather than ``httpx.AsyncClient``: measured on this project's machine, the client
    layer (auth flow, redirects, cookie and header merging, an INFO log line per call)
    cost ~150 µs of CPU per call, as much as the transport itself (docs/benchmarks.md).
    Timeouts travel in the request's ``timeout`` extension as the client would put them.
    """

    def __init__(self, base_url: str, *, connect_timeout_s: float, read_timeout_s: float,
                 max_connections: int) -> None:
        limits = httpx.Limits(max_connections=max_connections,
                              max_keepalive_connections=max_connections)
        self._transport = AiohttpTransport(limits=limits)
        self._base_url = base_url.rstrip("/")
        self._urls: dict[str, httpx.URL] = {}
        self._timeout = {"connect": connect_timeout_s, "read": read_timeout_s,
                         "write": read_timeout_s, "pool": connect_timeout_s}

    def _url(self, path: str) -> httpx.URL:
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx.URL(self._base_url + path)
        return url

    async def send(self, call: HttpCall,
                   auth_headers: Mapping[str, str]) -> HttpAnswer | Transient | Unknown:
        headers = {"Accept": "application/json", **auth_headers, **call.headers}
        content = None
        if call.json is not None:
            content = orjson.dumps(call.json)
            headers["Content-Type"] = "application/json"
        elif call.form is not None:
            content = urlencode(call.form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        request = httpx.Request(call.method, self._url(call.path), params=call.params or None,
                                content=content, headers=headers,
                                extensions={"timeout": self._timeout})
        try:
            response = await self._transport.handle_async_request(request)
            try:
                body = await response.aread()
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            outcome = classify_failure(exc)
            log.warning("%s %s failed: %s (%s)", call.method, call.path, outcome.reason, exc)
            return outcome
        return HttpAnswer(response.status_code, response.headers, body)

    async def aclose(self) -> None:
        await self._transport.aclose()
