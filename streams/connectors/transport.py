"""The thin HTTP layer: one aiohttp connection pool per provider per worker.

It sends a connector's :class:`HttpCall` and returns an :class:`HttpAnswer`, or says
whether a failed call *provably never reached* the provider (:class:`Transient`) or
may have (:class:`Unknown`). Only a failure to open a connection (refused, DNS,
connect or pool timeout) proves that; everything after the first byte may have been
written -- a server dropping the connection after reading the request, a read
timeout, a reset -- is an unknown outcome, and the link is looked up before anything
is sent again.

Raw ``aiohttp.ClientSession``, not an httpx client: measured on this project's machine,
~100 µs of CPU per call against ~180 µs for httpx's transport API over the same
aiohttp and ~320 µs for ``httpx.AsyncClient`` (docs/benchmarks.md). At ~1 ms of CPU per
link on a CPU-bound worker, the provider call was the largest single item.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from urllib.parse import urlencode

import aiohttp
import orjson
from yarl import URL

from streams.connectors.base import HttpAnswer, HttpCall, Transient, Unknown
from streams.ownership import require_ownership

log = logging.getLogger(__name__)

# Raised before a byte of the request was written: connection refused or reset while
# connecting, DNS failure, TLS handshake failure, connect timeout, no free connection in
# the pool in time (aiohttp's ``connect`` timeout covers the pool wait).
_NEVER_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


def never_sent(exc: BaseException) -> bool:
    """True only when the request provably did not reach the provider."""
    return isinstance(exc, _NEVER_SENT)


def classify_failure(exc: BaseException) -> Transient | Unknown:
    if never_sent(exc):
        return Transient(f"not_sent:{type(exc).__name__}")
    return Unknown(f"no_answer:{type(exc).__name__}")


class ProviderTransport:
    """Created once per worker per provider; one connection pool is reused by every call.

    The session is opened on first use, inside the worker's running loop.
    """

    def __init__(self, base_url: str, *, connect_timeout_s: float, read_timeout_s: float,
                 max_connections: int) -> None:
        self._base_url = base_url.rstrip("/")
        self._max_connections = max_connections
        # connect: getting a connection, pool wait included (never sent if it fires);
        # sock_read: silence while waiting for the answer (may have been created);
        # total: no call outlives connect + read, the call window a new owner of the
        # link's partition waits out before looking the link up (streams.ownership).
        self._timeout = aiohttp.ClientTimeout(total=connect_timeout_s + read_timeout_s,
                                              connect=connect_timeout_s,
                                              sock_connect=connect_timeout_s,
                                              sock_read=read_timeout_s)
        self._urls: dict[str, URL] = {}
        self._session: aiohttp.ClientSession | None = None

    def _url(self, path: str) -> URL:
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = URL(self._base_url + path)
        return url

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0,
                                         ttl_dns_cache=300)
        # No cookies: provider APIs authenticate per call, and a jar costs CPU per answer.
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout,
                                              cookie_jar=aiohttp.DummyCookieJar(),
                                              auto_decompress=True, raise_for_status=False)
        return self._session

    async def send(self, call: HttpCall,
                   auth_headers: Mapping[str, str]) -> HttpAnswer | Transient | Unknown:
        session = self._session or self._open()
        headers = {"Accept": "application/json", **auth_headers, **call.headers}
        content = None
        if call.json is not None:
            content = orjson.dumps(call.json)
            headers["Content-Type"] = "application/json"
        elif call.form is not None:
            content = urlencode(call.form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        url = self._url(call.path)
        if call.params:
            url = url.update_query(call.params)
        # Fencing (streams.ownership): the last check before bytes may leave. Raises
        # Fenced, which is not a provider outcome: the work is abandoned, not retried.
        require_ownership()
        try:
            async with session.request(call.method, url, data=content, headers=headers,
                                       allow_redirects=False) as response:
                body = await response.read()
                return HttpAnswer(response.status, response.headers, body)
        except (TimeoutError, aiohttp.ClientError) as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # The work was abandoned (cancelled) while the call ran, and the
                # cancellation surfaced as a timeout: it is not a provider outcome.
                raise asyncio.CancelledError from exc
            outcome = classify_failure(exc)
            # The exception's text names the host and the socket error, never headers.
            log.warning("%s %s failed: %s (%s)", call.method, call.path, outcome.reason, exc)
            return outcome

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
