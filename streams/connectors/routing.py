"""Which connector serves a request, and with which credentials."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from streams.config import RazorpayCredentials, Settings
from streams.connectors.transport import BasicAuth

# Currencies each connector can pay out in, for requests that name no connector.
CURRENCIES = {"razorpay": frozenset({"INR"})}


@dataclass(frozen=True)
class Route:
    connector: str
    account: RazorpayCredentials
    auth: BasicAuth


@dataclass(frozen=True)
class Unroutable:
    code: str
    message: str
    field: str


def route(request: Mapping[str, Any], settings: Settings) -> Route | Unroutable:
    currency = request["amount"]["currency"]
    connector = request.get("connector")
    if connector is None:
        connector = next((c for c, cs in CURRENCIES.items() if currency in cs), None)
        if connector is None:
            return Unroutable("unsupported_connector",
                              f"no connector pays out in {currency}", "amount.currency")
    elif currency not in CURRENCIES.get(connector, frozenset()):
        return Unroutable("unsupported_connector",
                          f"{connector} does not pay out in {currency}", "amount.currency")
    return route_existing(connector, request, settings)


def route_existing(connector: str, request: Mapping[str, Any],
                   settings: Settings) -> Route | Unroutable:
    """The route to a named connector: for a link whose record names it already."""
    account = settings.razorpay_credentials(request["merchant_id"])
    if account is None:
        return Unroutable("connector_not_configured",
                          f"merchant has no {connector} credentials configured", "merchant_id")
    return Route(connector, account, BasicAuth(account.key_id, account.key_secret))
