"""Which provider serves a request, and with which of the merchant's accounts.

For a new link, in order: the request's own ``connector``; else the merchant's
preference list (``PAYOUT_ROUTING``, falling back to its ``*`` entry); else the
registry's order. Only providers that pay out in the request's currency and for
which the merchant has an account paying out in it qualify (a Prism account names its
currencies). Once a link's record exists, its
connector decides and routing is never consulted again (DESIGN.md rule 3):
:func:`route_existing`.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streams.config import Settings
from streams.connectors.registry import PROVIDERS


@dataclass(frozen=True)
class Route:
    connector: str
    account: Any  # the provider's own account type; its repr hides secrets


@dataclass(frozen=True)
class Unroutable:
    code: str
    message: str
    field: str


def route(request: Mapping[str, Any], settings: Settings) -> Route | Unroutable:
    currency = request["amount"]["currency"]
    merchant_id = request["merchant_id"]
    named = request.get("connector")
    if named is not None:
        provider = PROVIDERS.get(named)
        if provider is None:
            return Unroutable("unsupported_connector", f"no connector named {named}",
                              "connector")
        if currency not in provider.currencies:
            return Unroutable("unsupported_connector",
                              f"{named} does not pay out in {currency}", "amount.currency")
        found = route_existing(named, request, settings)
        if isinstance(found, Route) and not provider.pays_out(found.account, currency):
            return Unroutable("unsupported_connector", f"the merchant's {named} account does "
                              f"not pay out in {currency}", "amount.currency")
        return found
    serving = [name for name, p in PROVIDERS.items() if currency in p.currencies]
    if not serving:
        return Unroutable("unsupported_connector", f"no connector pays out in {currency}",
                          "amount.currency")
    preferred = [n for n in settings.preference(merchant_id) if n in serving]
    for name in preferred + [n for n in serving if n not in preferred]:
        account = settings.account(merchant_id, name)
        if account is not None and PROVIDERS[name].pays_out(account, currency):
            return Route(name, account)
    return Unroutable("connector_not_configured",
                      f"merchant has no credentials for a connector paying out in {currency} "
                      f"({', '.join(serving)})", "merchant_id")


def route_existing(connector: str, request: Mapping[str, Any],
                   settings: Settings) -> Route | Unroutable:
    """The route to a named connector: for a link whose record names it already."""
    account = settings.account(request["merchant_id"], connector)
    if account is None:
        return Unroutable("connector_not_configured",
                          f"merchant has no {connector} credentials configured", "merchant_id")
    return Route(connector, account)
