"""Cashfree Payouts **Cashgram**: everything about the provider lives in this package.

``account`` (client id and secret), ``transformers`` (pure request/answer mapping,
errors, dates in India time, the token answer), ``auth`` (bearer tokens per account,
renewed ahead of expiry and when refused), ``client`` (409 means "fetch it", never
"failed"; the poll and the deactivate), ``lifecycle`` (a Cashgram's statuses after
creation), ``webhooks`` (form-encoded, signed with the client secret) and the
:class:`CashfreeProvider` below. Amounts go out as rupees with two decimals, an exact
JSON number made from our integer paise.

Cashfree expires a Cashgram itself at the end of its ``linkExpiry`` day (India time):
``expires_links`` is True.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from streams.connectors.base import HttpCall, LinkLifecycle, Unsupported, WebhookReceiver
from streams.connectors.cashfree.account import CashfreeAccount, parse_account
from streams.connectors.cashfree.auth import CashfreeAuth, CredentialsRefused
from streams.connectors.cashfree.client import CashfreeClient
from streams.connectors.cashfree.lifecycle import LIFECYCLE
from streams.connectors.cashfree.transformers import (
    MAX_LINK_EXPIRY_DAYS,
    NAME,
    CashfreeConnector,
)
from streams.connectors.cashfree.webhooks import WEBHOOKS, CashfreeWebhooks
from streams.connectors.provider import Endpoint
from streams.connectors.transport import ProviderTransport

__all__ = ["PROVIDER", "CashfreeAccount", "CashfreeAuth", "CashfreeClient", "CashfreeConnector",
           "CashfreeProvider", "CashfreeWebhooks", "CredentialsRefused",
           "MAX_LINK_EXPIRY_DAYS"]


class CashfreeProvider:
    name = NAME
    currencies = frozenset({"INR"})
    base_url_env = "CASHFREE_BASE_URL"
    # The simulator has no fixed port: the demo starts it and sets CASHFREE_BASE_URL.
    # Production sets https://payout-api.cashfree.com (test: https://payout-gamma.cashfree.com).
    default_base_url = "http://127.0.0.1:8082"
    base_url_doc = ("Cashfree Payouts API base (`https://payout-api.cashfree.com`, test "
                    "`https://payout-gamma.cashfree.com`)")
    credentials_doc = ("`cashfree: {client_id, client_secret}` (Cashfree signs webhooks with "
                       "the client secret)")
    # The simulator's development client (streams/devkit/sims/cashfree.py).
    dev_account: Mapping[str, Any] | None = {"client_id": "CF_TEST_CLIENT_ID", "client_secret": "cf_test_client_secret"}
    lifecycle: LinkLifecycle = LIFECYCLE
    webhooks: WebhookReceiver | None = WEBHOOKS
    expires_links: bool = True  # at the end of the linkExpiry day, India time

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.transformers = CashfreeConnector()
        # prepare() needs today's date in India: the default linkExpiry is today + 30 days.
        self._clock = clock

    def parse_account(self, raw: Mapping[str, Any]) -> CashfreeAccount:
        return parse_account(raw)

    def pays_out(self, account: Any, currency: str) -> bool:
        return currency in self.currencies

    def circuit(self, account: Any) -> str:
        return self.name

    def unsupported(self, request: Mapping[str, Any], now: float) -> Unsupported | None:
        return self.transformers.unsupported(request, now)

    def prepare(self, request: Mapping[str, Any], reference: str,
                account: CashfreeAccount) -> HttpCall:
        return self.transformers.create_call(request, reference, self._clock())

    def client(self, endpoint: Endpoint) -> CashfreeClient:
        transport = ProviderTransport(
            endpoint.base_url, connect_timeout_s=endpoint.connect_timeout_s,
            read_timeout_s=endpoint.read_timeout_s, max_connections=endpoint.max_connections)
        return CashfreeClient(transport, self.transformers,
                              CashfreeAuth(transport, self.transformers))

    def webhook_secrets(self, account: CashfreeAccount) -> tuple[bytes, ...]:
        """Cashfree signs Cashgram webhooks with the client secret."""
        return (account.client_secret.encode("utf-8"),)


PROVIDER = CashfreeProvider()
