"""The worker's RazorpayX client: the shared HTTP flow, plus the poll and the cancel.

Razorpay authenticates every call with HTTP Basic (nothing to renew), so both are one
call each through :class:`~streams.connectors.http.HttpProviderClient`'s send; the
transformers read the answer. A transport failure keeps its meaning: never sent
(Transient), or sent without an answer (Unknown: a cancel may have happened).
"""
from __future__ import annotations

from streams.connectors.base import (
    CancelOutcome,
    HttpAnswer,
    HttpCall,
    LinkRef,
    StatusOutcome,
    Transient,
)
from streams.connectors.http import HttpProviderClient
from streams.connectors.ledger import ListAnswer
from streams.connectors.razorpay import ledger, transformers as tf
from streams.connectors.razorpay.account import RazorpayAccount


class RazorpayClient(HttpProviderClient):
    async def status(self, link: LinkRef, account: RazorpayAccount) -> StatusOutcome:
        call = tf.status_call(link)
        if not isinstance(call, HttpCall):
            return call
        answer = await self._send(call, account)
        return tf.read_status(answer, link) if isinstance(answer, HttpAnswer) else answer

    async def list_page(self, account: RazorpayAccount, since: float, until: float,
                        cursor: str | None) -> ListAnswer:
        """A page of the links created in ``[since, until]`` (streams.connectors.ledger)."""
        answer = await self._send(ledger.list_call(since, until, cursor), account)
        if isinstance(answer, HttpAnswer):
            return ledger.read_list_page(answer, cursor)
        return Transient(answer.reason, answer.status_code)  # a read: nothing was changed

    async def cancel(self, link: LinkRef, account: RazorpayAccount) -> CancelOutcome:
        call = tf.cancel_call(link)
        if not isinstance(call, HttpCall):
            return call
        answer = await self._send(call, account)
        return tf.read_cancel(answer, link) if isinstance(answer, HttpAnswer) else answer
