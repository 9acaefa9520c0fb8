"""Ask each provider what it holds of the window's links, within its rate limit.

Two ways, chosen per provider by what its API can do:

1. **List the window** (providers implementing :class:`~streams.connectors.ledger.LinkListing`)
   for every account the merchants use there: every link carrying one of our
   references, including links whose request we never read (orphans).
2. **Ask per reference** (every provider's lookup; the only way for a provider that
   cannot list): for each link of the window the listing did not show -- a provider that
   cannot list, a listing that failed, or a link created outside the listed window.

Every call passes the provider's rate limiter (``PAYOUT_RECONCILE_RATE_PER_S``) and a
bounded number run at once. An error or refusal proves nothing (DESIGN.md rule 2): the
call is retried with jittered backoff (Retry-After honoured) and, still unanswered,
the link is ``unverified`` -- never taken as absent.
"""
from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt

from streams.config import Settings
from streams.connectors.base import (
    LinkCreated,
    LinkLifecycle,
    LinkRef,
    NotFound,
    Rejected,
    Transient,
    Unknown,
)
from streams.connectors.ledger import LinkListing, ListAnswer, ListPage
from streams.connectors.provider import Endpoint, ProviderClient
from streams.connectors.registry import PROVIDERS
from streams.connectors.routing import Route, route
from streams.reconcile import facts as f
from streams.reconcile.facts import Kind
from streams.reconcile.join import FactStore

log = logging.getLogger(__name__)

ATTEMPTS = 5
BACKOFF_BASE_S = 0.25
BACKOFF_MAX_S = 8.0
ASK_CHUNK = 1_000


@dataclass
class Coverage:
    """What one provider was asked and answered (the report's provider table)."""

    provider: str
    lists: bool
    accounts_listed: int = 0
    accounts_unlisted: int = 0
    pages: int = 0
    listed: int = 0
    asked: int = 0
    found: int = 0
    absent: int = 0
    unverified: int = 0
    retries: int = 0


@dataclass(frozen=True)
class Ask:
    reference: str  # the join's key
    lookup_reference: str  # the reference the provider knows the link by
    connector: str
    merchant_id: str


def _delay(attempt: int, last: Any) -> float:
    delay = random.uniform(0, min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** attempt))
    if isinstance(last, Transient) and last.retry_after_s is not None:
        delay = max(delay, last.retry_after_s)
    return delay


def settled(lifecycle: LinkLifecycle, connector_status: str) -> bool:
    """Whether the provider is done moving the link: a final status, or a paid-out one
    that only a reversal could still move."""
    return lifecycle.final(connector_status) or lifecycle.reversible(connector_status)


def connector_of(facts_: list[f.Fact], settings: Settings) -> tuple[str, str] | None:
    """The provider and merchant a link is (or would have been) at: its outcome's
    connector, else where its request routes now (DESIGN.md rule 3: a record's
    connector is authoritative; without one, routing decides as it did)."""
    for fact in facts_:
        if fact.kind in (Kind.CREATED, Kind.FAILED_LINK) and fact.data.get("cn"):
            return str(fact.data["cn"]), str(fact.data.get("m") or "")
    for fact in facts_:
        if fact.kind is Kind.REQUEST:
            request = {"merchant_id": fact.data.get("m"), "connector": fact.data.get("n"),
                       "amount": {"currency": fact.data.get("c")}}
            routed = route(request, settings)
            if isinstance(routed, Route):
                return routed.connector, str(fact.data.get("m"))
            return None
    return None


class Holdings:
    def __init__(self, store: FactStore, settings: Settings, *, rate_per_s: float,
                 concurrency: int, clients: Mapping[str, ProviderClient] | None = None,
                 tick: Callable[[int], None] = lambda n: None) -> None:
        self.store = store
        self.settings = settings
        self.rate_per_s = rate_per_s
        self.concurrency = concurrency
        self.tick = tick
        self._own_clients = clients is None
        self.clients: dict[str, ProviderClient] = dict(clients or {
            name: p.client(Endpoint(settings.base_urls[name], settings.connect_timeout_s,
                                    settings.read_timeout_s, concurrency))
            for name, p in PROVIDERS.items()})
        self.limiters = {name: AsyncLimiter(max(rate_per_s, 0.001), 1.0) for name in PROVIDERS}
        self.coverage = {name: Coverage(name, isinstance(self.clients.get(name), LinkListing))
                         for name in PROVIDERS}

    async def aclose(self) -> None:
        if self._own_clients:
            for client in self.clients.values():
                await client.aclose()

    # --- 1. listing ---------------------------------------------------------------

    def _accounts(self, provider: str, merchants: set[str], every: bool) -> list[Any]:
        """Every distinct account at ``provider``: the window's merchants' and, unless the
        run is about some merchants only, every configured one (an orphan's merchant may
        have sent nothing in the window)."""
        found: list[Any] = []
        candidates = [self.settings.account(m, provider) for m in sorted(merchants)]
        if every:
            candidates += [accounts.get(provider)
                           for accounts in self.settings.credentials.values()]
        for account in candidates:
            if account is not None and account not in found:
                found.append(account)
        return found

    async def list_window(self, since: float, until: float, merchants: Mapping[str, set[str]],
                          *, providers: frozenset[str] = frozenset(),
                          every_account: bool = True) -> None:
        jobs = [self._list_account(name, account, since, until)
                for name, client in self.clients.items()
                if isinstance(client, LinkListing) and (not providers or name in providers)
                for account in self._accounts(name, merchants.get(name, set()), every_account)]
        await asyncio.gather(*jobs)
        self.store.flush()

    async def _list_account(self, provider: str, account: Any, since: float, until: float) -> None:
        client = self.clients[provider]
        assert isinstance(client, LinkListing)
        lifecycle, coverage = PROVIDERS[provider].lifecycle, self.coverage[provider]
        cursor: str | None = None
        while True:
            page = await self._call(provider, partial(client.list_page, account, since, until,
                                                      cursor))
            if not isinstance(page, ListPage):
                coverage.accounts_unlisted += 1
                log.warning("reconcile: listing %s stopped after %d pages (%s): its links "
                            "are asked one by one", provider, coverage.pages,
                            getattr(page, "reason", None) or getattr(page, "code", "?"))
                return
            coverage.pages += 1
            coverage.listed += len(page.links)
            self.tick(page.items)
            for link in page.links:
                self.store.add(f.held(link.reference, provider, link,
                                      settled(lifecycle, link.connector_status)))
            if page.next_cursor is None:
                coverage.accounts_listed += 1
                return
            cursor = page.next_cursor

    # --- 2. per reference ---------------------------------------------------------

    def plan_asks(self, providers: frozenset[str] = frozenset()) -> dict[str, set[str]]:
        """Write every link the providers must be asked about (its request, created or
        link-failed event says a link may exist) to the ``asks`` table; the merchants
        per provider, for listing. ``providers``: only these (all when empty)."""
        db = self.store.db
        db.execute("DROP TABLE IF EXISTS asks")
        db.execute("CREATE TABLE asks (ref TEXT PRIMARY KEY, lookup_ref TEXT, connector TEXT, "
                   "merchant TEXT)")
        merchants: dict[str, set[str]] = {}
        rows: list[tuple[str, str, str, str]] = []
        unroutable = 0
        for reference, facts_ in self.store.references(
                having=(Kind.REQUEST, Kind.CREATED, Kind.FAILED_LINK)):
            where = connector_of(facts_, self.settings)
            if where is None:
                unroutable += 1
                continue
            connector, merchant = where
            if providers and connector not in providers:
                continue
            merchants.setdefault(connector, set()).add(merchant)
            stated = next((str(x.data["r"]) for x in facts_
                           if x.kind is Kind.CREATED and x.data.get("r")), reference)
            if stated != reference:
                self.store.alias(stated, reference)
            rows.append((reference, stated, connector, merchant))
            if len(rows) >= ASK_CHUNK:
                db.executemany("INSERT OR IGNORE INTO asks VALUES (?, ?, ?, ?)", rows)
                rows.clear()
        db.executemany("INSERT OR IGNORE INTO asks VALUES (?, ?, ?, ?)", rows)
        if unroutable:
            log.info("reconcile: %d links route to no provider now (no outcome names one): "
                     "not asked", unroutable)
        return merchants

    async def ask_unlisted(self) -> None:
        """Ask per reference about every planned link no listing showed."""
        self.store.reindex()
        db = self.store.db
        db.execute("CREATE TEMP TABLE IF NOT EXISTS listed AS SELECT DISTINCT ref FROM facts "
                   "WHERE kind = ?", (int(Kind.HELD),))
        last = ""
        limit = asyncio.Semaphore(self.concurrency * len(PROVIDERS))
        while True:
            chunk = [Ask(*row) for row in db.execute(
                "SELECT ref, lookup_ref, connector, merchant FROM asks WHERE ref > ? AND ref "
                "NOT IN (SELECT ref FROM listed) ORDER BY ref LIMIT ?", (last, ASK_CHUNK))]
            if not chunk:
                break
            last = chunk[-1].reference

            async def bounded(ask: Ask) -> None:
                async with limit:
                    await self._ask(ask)
            await asyncio.gather(*(bounded(ask) for ask in chunk))
            self.store.flush()
        db.execute("DROP TABLE listed")

    async def _ask(self, ask: Ask) -> None:
        coverage = self.coverage.get(ask.connector)
        provider = PROVIDERS.get(ask.connector)
        client = self.clients.get(ask.connector)
        if coverage is None or provider is None or client is None:
            self.store.add(f.unverified(ask.reference, ask.connector, "unknown_connector"))
            return
        coverage.asked += 1
        account = self.settings.account(ask.merchant_id, ask.connector)
        if account is None:
            coverage.unverified += 1
            self.store.add(f.unverified(ask.reference, ask.connector, "no_account_configured"))
            self.tick(1)
            return
        # No create call to hand the lookup: the link's reference and merchant stand in
        # (Prism names the merchant in x-merchant-id when the account does not).
        named = LinkRef(ask.lookup_reference, "", ask.merchant_id)
        answer = await self._call(ask.connector, partial(client.lookup, ask.lookup_reference,
                                                         account, named))
        self.tick(1)
        if isinstance(answer, LinkCreated):
            coverage.found += 1
            self.store.add(f.Fact(ask.reference, Kind.HELD, 0, {
                "cn": ask.connector, "id": answer.connector_payout_id,
                "s": answer.connector_status, "a": None, "c": None,
                "fin": settled(provider.lifecycle, answer.connector_status)}))
        elif isinstance(answer, NotFound):
            coverage.absent += 1
            self.store.add(f.absent(ask.reference, ask.connector))
        else:
            coverage.unverified += 1
            reason = answer.code if isinstance(answer, Rejected) else answer.reason
            self.store.add(f.unverified(ask.reference, ask.connector, reason))

    # --- every call: the rate limit, and retries of answers that prove nothing -----

    async def _call(self, provider: str, call: Callable[[], Any]) -> Any:
        limiter, coverage = self.limiters[provider], self.coverage[provider]
        retrying = AsyncRetrying(
            retry=retry_if_result(lambda o: isinstance(o, (Transient, Unknown))),
            stop=stop_after_attempt(ATTEMPTS),
            wait=lambda rs: _delay(rs.attempt_number, rs.outcome.result() if rs.outcome else None),
            retry_error_callback=lambda rs: rs.outcome.result() if rs.outcome else None,
        )
        answer: ListAnswer | Any = None
        async for attempt in retrying:
            if attempt.retry_state.attempt_number > 1:
                coverage.retries += 1
            async with limiter:
                answer = await call()
            attempt.retry_state.set_result(answer)
        return answer
