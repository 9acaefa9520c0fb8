"""Revolut's own record of our links, for reconciliation (pure).

``GET /payout-links?limit=1000&created_before=``: newest first, paged backwards by the
oldest ``created_at`` seen (``created_before`` is exclusive), until a page reaches past
the window's start or is empty. Ours are the items whose ``request_id`` is one of our
references. Amounts are major units as JSON numbers: converted to minor units by the
currency's exponent through their shortest decimal form, never float arithmetic.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from streams import money
from streams.connectors.base import HttpAnswer, HttpCall, Rejected, Transient, is_our_reference
from streams.connectors.ledger import HeldLink, ListAnswer, ListPage
from streams.connectors.revolut import transformers as tf

_US = 1_000_000


def list_call(until: float, cursor: str | None) -> HttpCall:
    # created_before is exclusive: the first page starts just after the window's end.
    before = int(cursor) if cursor is not None else int(until * _US) + 1
    return HttpCall("GET", tf.LINKS_PATH, params={
        "limit": str(tf.LIST_LIMIT), "created_before": tf.format_timestamp_us(before)})


def minor_amount(value: Any, currency: Any) -> int | None:
    """A major-unit JSON number in minor units, or None when it is not an exact amount."""
    if type(value) not in (int, float) or not isinstance(currency, str):
        return None
    try:
        return money.to_minor(Decimal(repr(value)), currency)
    except (ValueError, ArithmeticError):
        return None


def held_link(entity: Any) -> HeldLink | None:
    if not isinstance(entity, dict) or not is_our_reference(entity.get("request_id")):
        return None
    link_id, state = tf.link_id(entity.get("id")), tf.link_state(entity.get("state"))
    created = tf.provider_timestamp_us(entity.get("created_at"))
    if link_id is None or state is None:
        return None
    currency = entity.get("currency")
    return HeldLink(reference=entity["request_id"], connector_payout_id=link_id,
                    connector_status=state,
                    amount_minor=minor_amount(entity.get("amount"), currency),
                    currency=currency if isinstance(currency, str) else None,
                    created_at_ms=created // 1000 if created is not None else None)


def read_list_page(answer: HttpAnswer, since: float, cursor: str | None) -> ListAnswer:
    """One page: our links created at or after ``since``, and the next ``created_before``
    (None once the page is empty or reaches back past ``since``)."""
    if answer.status != 200:
        if answer.status in (401, 403):
            return Rejected("provider_authentication_failed",
                            f"HTTP {answer.status} from revolut", None, answer.status, {})
        return tf.lookup_error(answer)
    items = tf.parse_json(answer.body)
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        return Transient("list_unreadable", answer.status)
    stamps = [tf.provider_timestamp_us(i.get("created_at")) for i in items]
    if any(s is None for s in stamps):
        return Transient("list_item_unreadable", answer.status)
    since_us = int(since * _US)
    links: list[HeldLink] = []
    for item, stamp in zip(items, stamps, strict=True):
        if stamp is not None and stamp >= since_us and is_our_reference(item.get("request_id")):
            link = held_link(item)
            if link is None:
                return Transient("list_item_unreadable", answer.status)
            links.append(link)
    known = [s for s in stamps if s is not None]
    oldest = min(known) if known else None
    if oldest is not None and cursor is not None and oldest >= int(cursor):
        return Transient("list_not_progressing", answer.status)  # created_before ignored
    done = oldest is None or oldest < since_us
    return ListPage(tuple(links), None if done else str(oldest), len(items))
