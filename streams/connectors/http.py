"""The flow wiring shared by providers that speak HTTP: auth, send, read.

A provider package supplies pure transformers (request → :class:`HttpCall`, answer →
outcome) and an auth scheme; :class:`HttpProviderClient` moves calls through the
worker's one transport for that provider. Token-based auth is
cached per account and shared by every call of the worker, refreshed ahead of expiry,
and once more when the provider says the token is invalid: such a refusal happens
before the provider does anything, so the call is safely sent again.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from streams.connectors.base import HttpAnswer, HttpCall, ProviderOutcome, Transient, Unknown
from streams.connectors.transport import ProviderTransport

log = logging.getLogger(__name__)


class AuthUnavailable(Exception):
    """No usable credentials right now (the token endpoint failed): nothing was sent."""


class AuthScheme(Protocol):
    async def headers(self, account: Any) -> Mapping[str, str]: ...

    def refused_token(self, answer: HttpAnswer) -> bool:
        """The answer says our token is invalid or expired (not: the credentials are)."""

    async def refresh(self, account: Any, refused: Mapping[str, str]) -> None:
        """Renew the account's credentials after ``refused`` (the headers the provider
        refused) -- only if they are still the current ones: calls in flight on an old
        token must not throw away the token just renewed."""


class HttpTransformers(Protocol):
    def read_create(self, answer: HttpAnswer, sent: HttpCall) -> ProviderOutcome: ...

    def lookup_call(self, reference: str, account: Any) -> HttpCall: ...

    def read_lookup(self, answer: HttpAnswer, reference: str) -> ProviderOutcome: ...


class StaticHeaders:
    """Auth that is a fixed header per account (HTTP Basic): nothing to refresh."""

    def __init__(self, header_of: Callable[[Any], Mapping[str, str]]) -> None:
        self._header_of = header_of

    async def headers(self, account: Any) -> Mapping[str, str]:
        return self._header_of(account)

    def refused_token(self, answer: HttpAnswer) -> bool:
        return False

    async def refresh(self, account: Any, refused: Mapping[str, str]) -> None:
        return None


@dataclass
class _Token:
    value: str
    expires_at: float  # monotonic


class TokenCache:
    """Bearer tokens per account, fetched by ``fetch`` and renewed ``early_s`` before expiry.

    One fetch at a time per account: a burst of calls on an expired token waits for one
    refresh instead of each asking the provider for a token.
    """

    def __init__(self, fetch: Callable[[Any], Awaitable[tuple[str, float]]],
                 key_of: Callable[[Any], str], *, early_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch  # account -> (token, lifetime in seconds); raises AuthUnavailable
        self._key_of = key_of
        self._early_s = early_s
        self._clock = clock
        self._tokens: dict[str, _Token] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.fetches = 0

    async def token(self, account: Any) -> str:
        key = self._key_of(account)
        current = self._tokens.get(key)
        if current is not None and current.expires_at - self._early_s > self._clock():
            return current.value
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            current = self._tokens.get(key)
            if current is not None and current.expires_at - self._early_s > self._clock():
                return current.value
            value, lifetime = await self._fetch(account)
            self.fetches += 1
            self._tokens[key] = _Token(value, self._clock() + lifetime)
            return value

    def forget(self, account: Any, token: str | None = None) -> None:
        """Drop the account's token (only if it is still ``token``, when given)."""
        key = self._key_of(account)
        current = self._tokens.get(key)
        if current is not None and (token is None or current.value == token):
            del self._tokens[key]


class HttpProviderClient:
    """create / lookup → outcome, for one HTTP provider, over the worker's transport."""

    def __init__(self, transport: ProviderTransport, transformers: HttpTransformers,
                 auth: AuthScheme) -> None:
        self.transport = transport
        self.transformers = transformers
        self.auth = auth

    async def create(self, prepared: HttpCall, account: Any) -> ProviderOutcome:
        answer = await self._send(prepared, account)
        if isinstance(answer, HttpAnswer):
            return self.transformers.read_create(answer, prepared)
        return answer

    async def lookup(self, reference: str, account: Any, sent: Any = None) -> ProviderOutcome:
        answer = await self._send(self.transformers.lookup_call(reference, account), account)
        if isinstance(answer, HttpAnswer):
            return self.transformers.read_lookup(answer, reference)
        return answer

    async def _send(self, call: HttpCall, account: Any) -> HttpAnswer | Transient | Unknown:
        for attempt in (1, 2):
            try:
                headers = await self.auth.headers(account)
            except AuthUnavailable as exc:
                return Transient(f"auth_unavailable:{exc}")
            answer = await self.transport.send(call, headers)
            if not (isinstance(answer, HttpAnswer) and self.auth.refused_token(answer)):
                return answer
            if attempt == 1:  # refused before anything was done: renew and send again
                log.info("%s %s: token refused; renewing it", call.method, call.path)
                await self.auth.refresh(account, headers)
        return answer

    async def aclose(self) -> None:
        await self.transport.aclose()
