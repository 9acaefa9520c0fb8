"""The worker's Cashfree client: create / look up a Cashgram → one outcome, never raising.

Beyond the shared HTTP flow (:class:`~streams.connectors.http.HttpProviderClient`) it
knows three Cashfree facts:

* **409 ``cashgram_id_already_exists`` is success**: our ``cashgramId`` is the link's
  deterministic reference, so an earlier attempt created the Cashgram. The create
  answers what :meth:`lookup` finds, and ``Unknown`` if the lookup can't say, so the
  link is looked up again later and never failed.
* **A refused token is renewed precisely**: the token a call was refused with is
  dropped (only if still current) and the call sent once more with a fresh one.
* **Refused credentials** fail a create definitely (``provider_authentication_failed``)
  but are only a ``Transient`` for a lookup, which never proves anything by failing.

After creation it polls a Cashgram (``getCashgramStatus``) and cancels one
(``deactivateCashgram``), with the same token handling.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from streams.connectors.base import (
    CancelOutcome,
    HttpAnswer,
    HttpCall,
    LinkCreated,
    LinkRef,
    ProviderOutcome,
    StatusOutcome,
    Transient,
    Unknown,
)
from streams.connectors.cashfree.account import CashfreeAccount
from streams.connectors.cashfree.auth import CashfreeAuth, CredentialsRefused
from streams.connectors.cashfree.transformers import CashfreeConnector
from streams.connectors.http import HttpProviderClient
from streams.connectors.transport import ProviderTransport

log = logging.getLogger(__name__)

REMEMBERED_EXPIRIES = 65_536  # ~ a few MB: covers every link in flight on a worker


class CashfreeClient(HttpProviderClient):
    transformers: CashfreeConnector
    auth: CashfreeAuth

    def __init__(self, transport: ProviderTransport, transformers: CashfreeConnector,
                 auth: CashfreeAuth, *, remembered: int = REMEMBERED_EXPIRIES) -> None:
        super().__init__(transport, transformers, auth)
        # reference → the linkExpiry last sent for it: a status answer states no expiry,
        # so a Cashgram found by lookup reports the one this worker asked for.
        self._expiries: OrderedDict[str, str] = OrderedDict()
        self._remembered = remembered

    async def create(self, prepared: HttpCall, account: CashfreeAccount) -> ProviderOutcome:
        body = prepared.json or {}
        reference = body.get("cashgramId", "")
        self._remember(reference, body.get("linkExpiry"))
        try:
            answer = await self._send(prepared, account)
        except CredentialsRefused as refused:
            return refused.refusal  # nothing was sent: definite
        if not isinstance(answer, HttpAnswer):
            return answer
        if self.transformers.already_exists(answer):
            found = await self.lookup(reference, account)
            if isinstance(found, LinkCreated):
                return found
            why = found.reason if isinstance(found, (Transient, Unknown)) else "not_found"
            log.warning("cashgram %s already exists but its lookup did not answer (%s): "
                        "it stays in doubt", reference, why)
            return Unknown(f"cashgram_id_already_exists:{why}", 409)
        return self.transformers.read_create(answer, prepared)

    async def lookup(self, reference: str, account: CashfreeAccount,
                     sent: Any = None) -> ProviderOutcome:
        try:
            answer = await self._send(self.transformers.lookup_call(reference), account)
        except CredentialsRefused as refused:
            return Transient(f"lookup_refused:{refused.refusal.code}", refused.refusal.status_code)
        if isinstance(answer, Unknown):  # a lookup creates nothing: a lost answer is Transient
            return Transient(f"lookup_{answer.reason}", answer.status_code)
        if not isinstance(answer, HttpAnswer):
            return answer
        # The status answer states no expiry: the one this worker sent, else the one the
        # create call for this reference states (the same request, the same India day).
        expiry = self._expiries.get(reference)
        if expiry is None and isinstance(sent, HttpCall) and isinstance(sent.json, dict):
            stated = sent.json.get("linkExpiry")
            expiry = stated if isinstance(stated, str) else None
        return self.transformers.read_lookup(answer, reference, expiry)


    def _remember(self, reference: str, link_expiry: object) -> None:
        if not reference or not isinstance(link_expiry, str):
            return
        self._expiries[reference] = link_expiry
        self._expiries.move_to_end(reference)
        while len(self._expiries) > self._remembered:
            self._expiries.popitem(last=False)

    # -- after creation ---------------------------------------------------------------
    async def status(self, link: LinkRef, account: CashfreeAccount) -> StatusOutcome:
        """getCashgramStatus; refused credentials are a refusal (which proves nothing)."""
        try:
            answer = await self._send(self.transformers.status_call(link), account)
        except CredentialsRefused as refused:
            return refused.refusal
        if not isinstance(answer, HttpAnswer):
            return answer
        return self.transformers.read_status(answer, link)

    async def cancel(self, link: LinkRef, account: CashfreeAccount) -> CancelOutcome:
        """deactivateCashgram. A refused token is renewed and the call sent once more
        (refused before anything was done); a lost answer is Unknown (it may have
        deactivated the Cashgram)."""
        try:
            answer = await self._send(self.transformers.cancel_call(link), account)
        except CredentialsRefused as refused:
            return refused.refusal
        if not isinstance(answer, HttpAnswer):
            return answer
        return self.transformers.read_cancel(answer, link)
