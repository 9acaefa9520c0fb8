"""RazorpayX Payout Links: everything about the provider lives in this package.

``account`` (credentials), ``transformers`` (pure request/answer mapping, errors,
lookup by ``receipt``) and the :class:`RazorpayProvider` below (auth: HTTP Basic per
merchant; base URL; the client). Amounts are paise, our minor units, as they are.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.connectors.base import HttpCall, Unsupported
from streams.connectors.http import HttpProviderClient, StaticHeaders
from streams.connectors.provider import Endpoint
from streams.connectors.razorpay.account import RazorpayAccount, parse_account
from streams.connectors.razorpay.transformers import (
    MAX_EXPIRY_LEAD_S,
    MIN_EXPIRY_LEAD_S,
    NAME,
    RazorpayConnector,
)
from streams.connectors.transport import ProviderTransport

__all__ = ["PROVIDER", "RazorpayAccount", "RazorpayConnector", "RazorpayProvider",
           "MAX_EXPIRY_LEAD_S", "MIN_EXPIRY_LEAD_S"]


class RazorpayProvider:
    name = NAME
    currencies = frozenset({"INR"})
    base_url_env = "RAZORPAY_BASE_URL"
    default_base_url = "http://127.0.0.1:8081"  # the simulator; production sets the real API
    # The simulator's development account (streams/devkit/sims/razorpay.py).
    dev_account: Mapping[str, Any] | None = {"key_id": "rzp_test_demo", "key_secret": "demo_secret",
                   "account_number": "2323230041626905"}

    def __init__(self) -> None:
        self.transformers = RazorpayConnector()

    def parse_account(self, raw: Mapping[str, Any]) -> RazorpayAccount:
        return parse_account(raw)

    def pays_out(self, account: Any, currency: str) -> bool:
        return currency in self.currencies

    def circuit(self, account: Any) -> str:
        return self.name

    def unsupported(self, request: Mapping[str, Any], now: float) -> Unsupported | None:
        return self.transformers.unsupported(request, now)

    def prepare(self, request: Mapping[str, Any], reference: str,
                account: RazorpayAccount) -> HttpCall:
        return self.transformers.create_call(request, reference, account)

    def client(self, endpoint: Endpoint) -> HttpProviderClient:
        transport = ProviderTransport(
            endpoint.base_url, connect_timeout_s=endpoint.connect_timeout_s,
            read_timeout_s=endpoint.read_timeout_s, max_connections=endpoint.max_connections)
        return HttpProviderClient(transport, self.transformers, StaticHeaders(
            lambda account: {"Authorization": account.basic_header}))


PROVIDER = RazorpayProvider()
