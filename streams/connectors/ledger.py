"""What a provider holds: its own record of our links, read for reconciliation.

A reconciliation compares our topics with each provider's own record. Every provider
answers a per-reference question through its lookup (``ProviderClient.lookup``: the
link our reference names, or proof of absence). A provider that can list the links
created in a time window (each pages its own way: see its package's ``ledger.py``)
also implements :class:`LinkListing`, one page per call, so the caller owns paging,
retries and the rate limit; the page's items are the links carrying one of our
references, parsed by the provider's package.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from streams.connectors.base import Rejected, Transient, Unknown


@dataclass(frozen=True)
class HeldLink:
    """One link a provider holds under one of our references."""

    reference: str
    connector_payout_id: str
    connector_status: str
    amount_minor: int | None  # None: the provider's answer does not state it
    currency: str | None
    created_at_ms: int | None  # when the provider created it (unix ms), where stated


@dataclass(frozen=True)
class ListPage:
    """One page of a provider's list: our links on it, and where the next page starts
    (None: this was the last page of the window)."""

    links: tuple[HeldLink, ...]
    next_cursor: str | None
    items: int  # every item on the page, ours or not (what paging counted)


ListAnswer = ListPage | Rejected | Transient | Unknown


@runtime_checkable
class LinkListing(Protocol):
    """A provider client that lists the links created in a window, a page per call.

    ``cursor`` is None for the first page, then the previous page's ``next_cursor``.
    A refused or failed page proves nothing: the caller asks again or, giving up,
    checks the window's references one by one instead.
    """

    async def list_page(self, account: Any, since: float, until: float,
                        cursor: str | None) -> ListAnswer: ...
