"""The Revolut flow wiring: bearer tokens from the refresh flow, create, and a paged lookup.

:class:`RevolutAuth` keeps one access token per account in a shared
:class:`~streams.connectors.http.TokenCache` (one refresh at a time, renewed ahead of
expiry). :class:`RevolutClient` sends through the worker's one transport; it is its own
class rather than :class:`~streams.connectors.http.HttpProviderClient` for two reasons:
a 401 forgets exactly the token that was refused (so a burst of calls refused on one
expired token refreshes once, not once per call), and a lookup is several list calls --
Revolut cannot filter by ``request_id``. After creation it polls a link (``GET
/payout-links/{id}``) and cancels one, with the same token handling.
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from streams.connectors.base import (
    CancelOutcome,
    HttpAnswer,
    HttpCall,
    LinkRef,
    ProviderOutcome,
    Rejected,
    StatusOutcome,
    Transient,
    Unknown,
)
from streams.connectors.http import AuthUnavailable, TokenCache
from streams.connectors.ledger import ListAnswer
from streams.connectors.revolut import ledger
from streams.connectors.revolut.account import RevolutAccount
from streams.connectors.revolut.transformers import (
    CredentialsRefused,
    NextPage,
    RevolutConnector,
)
from streams.connectors.transport import ProviderTransport

log = logging.getLogger(__name__)

# How far back a lookup without better knowledge pages: our links are created within
# seconds of their `creating` record, and a link in doubt is re-checked on a bounded
# cadence, so 8 days (a day more than the longest expiry_period) covers every lookup
# the processor makes. A link in doubt for longer needs an operator anyway (alerted).
LOOKBACK_S = 8 * 86_400
# When this worker sent the create itself, the link cannot be older than that send, give
# or take the difference between our clock and Revolut's (NTP keeps it to milliseconds;
# two minutes is generous). This keeps the lookup after a timeout to a page or two.
CLOCK_SKEW_S = 120.0
MAX_PAGES = 2_000  # 2M links: a runaway guard, not a working limit
SENT_MEMORY = 50_000  # references whose first send time we remember (LRU)
RENEW_AHEAD_S = 300.0  # renew a token this long before it expires (at most a quarter of its life)
FAILURE_HOLD_S = 1.0  # callers queued behind a failed token fetch fail at once, for this long


def usable_lifetime(lifetime_s: float) -> float:
    """How long to use a token that lives ``lifetime_s``: renewed ahead of its expiry,
    by five minutes or a quarter of its life, whichever is shorter."""
    return lifetime_s - min(RENEW_AHEAD_S, lifetime_s / 4)


@dataclass(frozen=True)
class _Refused:
    """The token endpoint refused the credentials: nothing was sent."""

    reason: CredentialsRefused


def _credentials_refused(answer: _Refused) -> Rejected:
    """The token endpoint refused the account's credentials: nothing was sent."""
    refused = answer.reason
    return Rejected("provider_authentication_failed",
                    "revolut refused the client's refresh token or assertion "
                    f"(HTTP {refused.status}" + (f" {refused.error}" if refused.error else "") + ")",
                    None, refused.status,
                    {"code": refused.error, "message": refused.description,
                     "reason": "token_refresh_refused", "field": None})


class RevolutAuth:
    """Bearer tokens per account (an :class:`~streams.connectors.http.AuthScheme`).

    ``refresh`` only forgets the refused token; the next ``headers`` fetches a new one
    inside the caller's error handling, so a failing token endpoint is an answer
    (:class:`AuthUnavailable` → Transient), never an exception out of a provider call.
    """

    def __init__(self, transport: ProviderTransport, transformers: RevolutConnector, *,
                 clock: Callable[[], float] = time.monotonic,
                 failure_hold_s: float = FAILURE_HOLD_S) -> None:
        self._transport = transport
        self._transformers = transformers
        self._clock = clock
        self._hold_s = failure_hold_s
        self._failed: dict[str, tuple[float, Exception]] = {}
        self.cache = TokenCache(self._fetch, key_of=lambda account: account.token_key,
                                early_s=0.0, clock=clock)  # the margin is in the lifetime

    async def token(self, account: RevolutAccount) -> str:
        """A live token; raises :class:`AuthUnavailable` or :class:`CredentialsRefused`."""
        return await self.cache.token(account)

    async def headers(self, account: RevolutAccount) -> Mapping[str, str]:
        return {"Authorization": "Bearer " + await self.token(account)}

    def refused_token(self, answer: HttpAnswer) -> bool:
        """Any 401. Revolut's code for an expired token is undocumented (the simulator's
        9001 is its own choice), and a 401 is an authentication refusal made before the
        request is processed, so one re-send with a fresh token is safe. A 401 that
        survives a fresh token is then a definite ``provider_authentication_failed``."""
        return answer.status == 401

    async def refresh(self, account: RevolutAccount, token: str | None = None) -> None:
        self.cache.forget(account, token)

    async def _fetch(self, account: RevolutAccount) -> tuple[str, float]:
        key = account.token_key
        failed = self._failed.get(key)
        if failed is not None and self._clock() - failed[0] < self._hold_s:
            # A fetch just failed: the callers that queued behind it don't each wait a
            # timeout of their own on a token endpoint that is down or refusing us.
            exc = failed[1]
            raise (CredentialsRefused(exc.status, exc.error, exc.description)
                   if isinstance(exc, CredentialsRefused) else AuthUnavailable(*exc.args))
        answer = await self._transport.send(self._transformers.token_call(account), {})
        try:
            if not isinstance(answer, HttpAnswer):
                raise AuthUnavailable(f"token_{answer.reason}")
            token, lifetime = self._transformers.read_token(answer)
        except (AuthUnavailable, CredentialsRefused) as exc:
            self._failed[key] = (self._clock(), exc)
            log.warning("revolut token refresh for client %s failed: %s",
                        account.client_id, exc)
            raise
        self._failed.pop(key, None)
        return token, usable_lifetime(lifetime)


class RevolutClient:
    """create / lookup → outcome for Revolut (a :class:`~streams.connectors.provider.ProviderClient`)."""

    def __init__(self, transport: ProviderTransport, transformers: RevolutConnector,
                 auth: RevolutAuth, *, clock: Callable[[], float] = time.time,
                 lookback_s: float = LOOKBACK_S, clock_skew_s: float = CLOCK_SKEW_S,
                 max_pages: int = MAX_PAGES) -> None:
        self.transport = transport
        self.transformers = transformers
        self.auth = auth
        self._clock = clock  # wall clock, comparable with Revolut's created_at
        self._lookback_us = int(lookback_s * 1_000_000)
        self._skew_us = int(clock_skew_s * 1_000_000)
        self._max_pages = max_pages
        self._first_sent: OrderedDict[str, int] = OrderedDict()  # reference → µs
        self.list_calls = 0

    async def create(self, prepared: HttpCall, account: RevolutAccount) -> ProviderOutcome:
        reference = prepared.json.get("request_id") if prepared.json is not None else None
        if isinstance(reference, str):
            self._note_sent(reference)
        answer = await self._send(prepared, account)
        if isinstance(answer, _Refused):
            return _credentials_refused(answer)
        if isinstance(answer, HttpAnswer):
            return self.transformers.read_create(answer, prepared)
        return answer

    async def status(self, link: LinkRef, account: RevolutAccount) -> StatusOutcome:
        """``GET /payout-links/{id}``: the link's state (a refusal proves nothing)."""
        call = self.transformers.status_call(link)
        if isinstance(call, Rejected):
            return call
        answer = await self._send(call, account)
        if isinstance(answer, _Refused):
            return _credentials_refused(answer)
        if isinstance(answer, HttpAnswer):
            return self.transformers.read_status(answer, link)
        return answer

    async def cancel(self, link: LinkRef, account: RevolutAccount) -> CancelOutcome:
        """``POST /payout-links/{id}/cancel``. A 401 is answered before anything is done,
        so the re-send with a fresh token is safe; a lost answer is Unknown."""
        call = self.transformers.cancel_call(link)
        if isinstance(call, Rejected):
            return call
        answer = await self._send(call, account)
        if isinstance(answer, _Refused):
            return _credentials_refused(answer)
        if isinstance(answer, HttpAnswer):
            return self.transformers.read_cancel(answer, link)
        return answer

    async def lookup(self, reference: str, account: RevolutAccount,
                     sent: Any = None) -> ProviderOutcome:
        """Page through the newest-first list for ``request_id == reference``.

        Never creates; every failure is :class:`Transient` (it proves nothing), and only
        an empty page or one reaching past the window's start is proof of absence.
        """
        not_before = self._window_start(reference)
        cursor: int | None = None
        for _ in range(self._max_pages):
            self.list_calls += 1
            answer = await self._send(
                self.transformers.lookup_call(reference, account, cursor), account)
            if isinstance(answer, _Refused):
                return Transient("lookup_refused:provider_authentication_failed",
                                 answer.reason.status)
            if isinstance(answer, Unknown):  # a read that got no answer: nothing created
                return Transient(f"lookup_{answer.reason}", answer.status_code)
            if isinstance(answer, Transient):
                return answer
            page = self.transformers.read_lookup_page(
                answer, reference, not_before_us=not_before, created_before_us=cursor)
            if not isinstance(page, NextPage):
                return page
            cursor = page.created_before_us
        log.warning("revolut lookup of %s: more than %d pages in the window", reference,
                    self._max_pages)
        return Transient("lookup_window_too_large")

    async def list_page(self, account: RevolutAccount, since: float, until: float,
                        cursor: str | None) -> ListAnswer:
        """A page of the links created in ``[since, until]`` (streams.connectors.ledger)."""
        self.list_calls += 1
        answer = await self._send(ledger.list_call(until, cursor), account)
        if isinstance(answer, _Refused):
            return _credentials_refused(answer)
        if isinstance(answer, Unknown):  # a read that got no answer: nothing was changed
            return Transient(f"list_{answer.reason}", answer.status_code)
        if isinstance(answer, Transient):
            return answer
        return ledger.read_list_page(answer, since, cursor)

    async def aclose(self) -> None:
        await self.transport.aclose()

    def _note_sent(self, reference: str) -> None:
        if reference in self._first_sent:
            return
        self._first_sent[reference] = int(self._clock() * 1_000_000)
        if len(self._first_sent) > SENT_MEMORY:
            self._first_sent.popitem(last=False)

    def _window_start(self, reference: str) -> int:
        """The oldest ``created_at`` our link can have, as far as this worker knows."""
        sent = self._first_sent.get(reference)
        if sent is not None:
            return sent - self._skew_us
        return int(self._clock() * 1_000_000) - self._lookback_us

    async def _send(self, call: HttpCall, account: RevolutAccount
                    ) -> HttpAnswer | Transient | Unknown | _Refused:
        """Send with the account's token; on a 401, forget that token and send once more.

        A 401 is answered before the request is processed, so the re-send cannot make a
        second link.
        """
        answer: HttpAnswer | Transient | Unknown | _Refused = Transient("not_sent")
        for attempt in (1, 2):
            try:
                token = await self.auth.token(account)
            except AuthUnavailable as exc:
                return Transient(f"auth_unavailable:{exc}")
            except CredentialsRefused as exc:
                return _Refused(exc)
            answer = await self.transport.send(call, {"Authorization": "Bearer " + token})
            if not (isinstance(answer, HttpAnswer) and self.auth.refused_token(answer)):
                return answer
            if attempt == 1:
                log.info("%s %s: revolut refused the access token; renewing it",
                         call.method, call.path)
                await self.auth.refresh(account, token)
        return answer

