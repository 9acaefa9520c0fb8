"""RazorpayX Payout Links: everything about the provider lives in this package.

``account`` (credentials and webhook secrets), ``transformers`` (pure request/answer
mapping, errors, lookup by ``receipt``, the poll and the cancel), ``lifecycle`` (the
link's statuses after creation, ordered by ``attempt_count``), ``webhooks`` (signature
over the raw body, events by name), ``client`` and the :class:`RazorpayProvider` below
(auth: HTTP Basic per merchant; base URL). Amounts are paise, our minor units, as they
are.

Razorpay expires a link at ``expire_by`` only when the merchant's account has the
expiry feature enabled, which we cannot see: ``expires_links`` is False, so the
processor cancels a link once its ``expires_at`` has passed.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.connectors.base import HttpCall, LinkLifecycle, Unsupported, WebhookReceiver
from streams.connectors.http import StaticHeaders
from streams.connectors.provider import Endpoint
from streams.connectors.razorpay.account import RazorpayAccount, parse_account
from streams.connectors.razorpay.client import RazorpayClient
from streams.connectors.razorpay.lifecycle import LIFECYCLE, RazorpayLifecycle
from streams.connectors.razorpay.transformers import (
    MAX_EXPIRY_LEAD_S,
    MIN_EXPIRY_LEAD_S,
    NAME,
    RazorpayConnector,
)
from streams.connectors.razorpay.webhooks import WEBHOOKS, RazorpayWebhooks
from streams.connectors.transport import ProviderTransport

__all__ = ["PROVIDER", "RazorpayAccount", "RazorpayClient", "RazorpayConnector",
           "RazorpayLifecycle", "RazorpayProvider", "RazorpayWebhooks",
           "MAX_EXPIRY_LEAD_S", "MIN_EXPIRY_LEAD_S"]


class RazorpayProvider:
    name = NAME
    currencies = frozenset({"INR"})
    base_url_env = "RAZORPAY_BASE_URL"
    default_base_url = "http://127.0.0.1:8081"  # the simulator; production sets the real API
    base_url_doc = "RazorpayX API base (`https://api.razorpay.com`)"
    credentials_doc = ("`razorpay: {key_id, key_secret, account_number, webhook_secrets?}` "
                       "(`webhook_secrets`: the webhook secret(s) — new and old during a "
                       "rotation)")
    # The simulator's development account (streams/devkit/sims/razorpay.py).
    dev_account: Mapping[str, Any] | None = {"key_id": "rzp_test_demo", "key_secret": "demo_secret",
                   "account_number": "2323230041626905",
                   "webhook_secrets": ["demo_webhook_secret"]}
    lifecycle: LinkLifecycle = LIFECYCLE
    webhooks: WebhookReceiver | None = WEBHOOKS
    # expire_by works only where the account has Razorpay's expiry feature: not relied on.
    expires_links: bool = False

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

    def client(self, endpoint: Endpoint) -> RazorpayClient:
        transport = ProviderTransport(
            endpoint.base_url, connect_timeout_s=endpoint.connect_timeout_s,
            read_timeout_s=endpoint.read_timeout_s, max_connections=endpoint.max_connections)
        return RazorpayClient(transport, self.transformers, StaticHeaders(
            lambda account: {"Authorization": account.basic_header}))

    def webhook_secrets(self, account: RazorpayAccount) -> tuple[bytes, ...]:
        return tuple(secret.encode("utf-8") for secret in account.webhook_secrets)


PROVIDER = RazorpayProvider()
