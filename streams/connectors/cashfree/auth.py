"""Cashfree's bearer tokens: bought at ``POST /payout/v1/authorize``, shared per account.

One :class:`CashfreeAuth` per worker holds a :class:`~streams.connectors.http.TokenCache`,
so every call of the worker for an account uses one token, renewed ahead of its expiry
by one fetch at a time. What authorize answers decides what a create becomes:

* a token → the call goes out;
* the credentials refused (401/403) → :class:`CredentialsRefused`: a definite failure of
  the create, remembered for ``refusal_hold_s`` so a wrong secret does not send one
  authorize call per link;
* anything else (5xx, 429, timeout, connection refused, an unreadable token) →
  :class:`~streams.connectors.http.AuthUnavailable`: nothing was sent, Transient.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from streams.connectors.base import HttpAnswer, Rejected
from streams.connectors.cashfree.account import CashfreeAccount
from streams.connectors.cashfree.transformers import (
    DEFAULT_TOKEN_LIFETIME_S,
    MAX_TOKEN_LIFETIME_S,
    CashfreeConnector,
    Token,
)
from streams.connectors.http import AuthUnavailable, TokenCache
from streams.connectors.transport import ProviderTransport

log = logging.getLogger(__name__)

RENEW_EARLY_S = 60.0
REFUSAL_HOLD_S = 30.0


class CredentialsRefused(Exception):
    """Cashfree refused the account's client id/secret: no call was sent, none will work."""

    def __init__(self, refusal: Rejected) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


class CashfreeAuth:
    """Bearer-token auth for every Cashfree call of a worker (an ``AuthScheme``)."""

    def __init__(self, transport: ProviderTransport, connector: CashfreeConnector, *,
                 early_s: float = RENEW_EARLY_S, refusal_hold_s: float = REFUSAL_HOLD_S,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self._transport = transport
        self._connector = connector
        self._early_s = early_s
        self._refusal_hold_s = refusal_hold_s
        self._monotonic = monotonic
        self._wall = wall  # `expiry` is a unix time
        self._refused: dict[str, tuple[float, Rejected]] = {}
        self.tokens = TokenCache(self._fetch, key_of=lambda account: account.cache_key,
                                 early_s=early_s, clock=monotonic)

    async def token(self, account: CashfreeAccount) -> str:
        """The account's live token; raises AuthUnavailable or CredentialsRefused."""
        return await self.tokens.token(account)

    def forget(self, account: CashfreeAccount, token: str) -> None:
        """Drop ``token`` after Cashfree refused it, unless a newer one replaced it already
        (a burst of refused calls then causes one fetch, not one each)."""
        self.tokens.forget(account, token)

    # -- AuthScheme ---------------------------------------------------------------------
    async def headers(self, account: CashfreeAccount) -> Mapping[str, str]:
        return {"Authorization": f"Bearer {await self.token(account)}"}

    def refused_token(self, answer: HttpAnswer) -> bool:
        return self._connector.refused_token(answer)

    async def refresh(self, account: CashfreeAccount, refused: Mapping[str, str]) -> None:
        """Drop the refused token (not a newer one that replaced it meanwhile)."""
        self.forget(account, refused.get("Authorization", "").removeprefix("Bearer "))

    # -- the token endpoint ---------------------------------------------------------------
    async def _fetch(self, account: CashfreeAccount) -> tuple[str, float]:
        held = self._refused.get(account.cache_key)
        if held is not None:
            if held[0] > self._monotonic():
                raise CredentialsRefused(held[1])
            del self._refused[account.cache_key]
        answer = await self._transport.send(self._connector.authorize_call(),
                                            account.authorize_headers())
        if not isinstance(answer, HttpAnswer):  # authorize creates nothing: a lost answer is safe
            raise AuthUnavailable(f"authorize:{answer.reason}")
        read = self._connector.read_authorize(answer)
        if isinstance(read, Rejected):
            log.warning("cashfree refused the credentials of client id %s (HTTP %s): "
                        "creates fail as provider_authentication_failed", account.client_id,
                        read.status_code)
            self._refused[account.cache_key] = (self._monotonic() + self._refusal_hold_s, read)
            raise CredentialsRefused(read)
        if not isinstance(read, Token):
            raise AuthUnavailable(read.reason)
        return read.value, self._cache_lifetime(read)

    def _cache_lifetime(self, token: Token) -> float:
        """How long to keep the token, as the cache counts it (it renews ``early_s`` before).

        The stated ``expiry`` when believable (in the future, at most an hour away), else
        Cashfree's documented 6 minutes. A token shorter-lived than twice ``early_s`` is
        renewed at half its life instead of on every call.
        """
        lifetime = DEFAULT_TOKEN_LIFETIME_S
        if token.expiry is not None:
            stated = token.expiry - self._wall()
            if 0 < stated <= MAX_TOKEN_LIFETIME_S:
                lifetime = stated
        if lifetime <= 2 * self._early_s:
            return self._early_s + lifetime / 2
        return lifetime
