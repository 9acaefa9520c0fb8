"""RazorpayX's own record of our links, for reconciliation (pure).

``GET /v1/payout-links?from=&to=&count=100&skip=``: the links created in a window
(``from``/``to`` are unix seconds, inclusive), newest first, at most 100 a page, paged
by ``skip``. The window's end is fixed by the caller in the past, so links created
while paging do not shift the pages. Ours are the items whose ``receipt`` is one of
our references; the entity states the amount in paise (our minor units) and the
currency.
"""
from __future__ import annotations

import math
from typing import Any

from streams.connectors.base import HttpAnswer, HttpCall, Rejected, Transient, is_our_reference
from streams.connectors.ledger import HeldLink, ListAnswer, ListPage
from streams.connectors.razorpay import transformers as tf

PAGE_SIZE = 100  # the documented maximum of `count`


def list_call(since: float, until: float, cursor: str | None) -> HttpCall:
    return HttpCall("GET", tf.LIST_PATH, params={
        "from": str(math.floor(since)), "to": str(math.ceil(until)),
        "count": str(PAGE_SIZE), "skip": cursor or "0"})


def held_link(entity: Any) -> HeldLink | None:
    """Our link in a list item, or None for an item that is not one of ours (or unreadable)."""
    if not isinstance(entity, dict) or not is_our_reference(entity.get("receipt")):
        return None
    link_id = tf.link_id(entity.get("id"))
    status = tf.entity_status(entity.get("status"))
    if link_id is None or status is None:
        return None
    amount, currency, created = (entity.get("amount"), entity.get("currency"),
                                 entity.get("created_at"))
    return HeldLink(reference=entity["receipt"], connector_payout_id=link_id,
                    connector_status=status,
                    amount_minor=amount if type(amount) is int else None,
                    currency=currency if isinstance(currency, str) else None,
                    created_at_ms=created * 1000 if type(created) is int else None)


def read_list_page(answer: HttpAnswer, cursor: str | None) -> ListAnswer:
    """One page: our links on it and the next ``skip``, or why the page proves nothing."""
    if answer.status != 200:
        outcome = tf.error_outcome(answer)
        if isinstance(outcome, Rejected):
            return outcome  # refused (credentials, a filter): the caller stops listing
        return Transient(getattr(outcome, "reason", "unanswered"), answer.status,
                         getattr(outcome, "retry_after_s", None))
    body = tf.parse_json(answer.body)
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list):
        return Transient("list_unreadable", answer.status)
    links = tuple(link for link in map(held_link, items) if link is not None)
    unreadable = sum(1 for item in items if isinstance(item, dict)
                     and is_our_reference(item.get("receipt"))) - len(links)
    if unreadable:
        return Transient("list_item_unreadable", answer.status)
    skip = int(cursor or "0") + len(items)
    return ListPage(links, str(skip) if len(items) >= PAGE_SIZE else None, len(items))
