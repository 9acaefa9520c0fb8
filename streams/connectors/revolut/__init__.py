"""Revolut Business payout links: everything about the provider lives in this package.

``account`` (credentials for the refresh-token flow, webhook signing secrets),
``transformers`` (pure request / answer mapping, errors, the list page reader, the poll
and the cancel), ``client`` (bearer tokens, create, the paged lookup by ``request_id``,
status, cancel), ``lifecycle`` (a link's states after creation), ``webhooks`` (API v2
signatures; the ``PayoutLinkStateChanged`` fields are our simulator's assumption: see
that module) and the :class:`RevolutProvider` below. Amounts go out in major units with
the currency's ISO-4217 decimals, as exact JSON numbers. Revolut expires a link itself
at its ``expiry_date`` (``expires_links`` is True).

The base URL is the API host without ``/api/1.0`` (production ``https://b2b.revolut.com``,
sandbox ``https://sandbox-b2b.revolut.com``), set in ``REVOLUT_BASE_URL``; the default is
the local simulator (``python -m streams.devkit.sims.revolut --port 8083``), which the
demo starts and points this at.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.connectors.base import HttpCall, LinkLifecycle, Unsupported, WebhookReceiver
from streams.connectors.provider import Endpoint
from streams.connectors.revolut.account import RevolutAccount, parse_account
from streams.connectors.revolut.client import RevolutAuth, RevolutClient
from streams.connectors.revolut.lifecycle import LIFECYCLE
from streams.connectors.revolut.transformers import CURRENCIES, NAME, RevolutConnector
from streams.connectors.revolut.webhooks import WEBHOOKS, RevolutWebhooks
from streams.connectors.transport import ProviderTransport

__all__ = ["PROVIDER", "RevolutAccount", "RevolutAuth", "RevolutClient", "RevolutConnector",
           "RevolutProvider", "RevolutWebhooks"]

# The simulator's development credentials (streams/devkit/sims/revolut.py,
# DEFAULT_CREDENTIALS). The assertion is an unsigned JWT with the claims Revolut checks
# (RS256 header, sub = client id, aud https://revolut.com, no exp): the simulator never
# verifies signatures, and accepts it even with strict_assertion on. The webhook signing
# secret is the simulator's default (RevolutSimConfig.webhook_signing_secret).
DEV_ACCOUNT: Mapping[str, Any] = {
    "client_id": "sim_revolut_client",
    "refresh_token": "oa_sand_sim_refresh_demo",
    "client_assertion": (
        "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9"
        ".eyJpc3MiOiJwYXlvdXQtc3RyZWFtcy5sb2NhbCIsInN1YiI6InNpbV9yZXZvbHV0X2NsaWVudCIsImF1ZCI6"
        "Imh0dHBzOi8vcmV2b2x1dC5jb20ifQ"
        ".dW5zaWduZWQtZGV2LWFzc2VydGlvbg"),
    "account_id": "8f2d3a4b-6c1e-4f7a-9b0d-2e5c7a9f1b3d",
    "webhook_signing_secrets": ["wsk_sim_revolut_demo"],
}


class RevolutProvider:
    name = NAME
    currencies = CURRENCIES
    base_url_env = "REVOLUT_BASE_URL"
    default_base_url = "http://127.0.0.1:8083"  # the simulator; production sets the real API
    base_url_doc = ("Revolut Business API host (`https://b2b.revolut.com`, sandbox "
                    "`https://sandbox-b2b.revolut.com`)")
    credentials_doc = ("`revolut: {client_id, refresh_token, client_assertion, account_id, "
                       "webhook_signing_secrets?}`")
    dev_account: Mapping[str, Any] | None = DEV_ACCOUNT
    lifecycle: LinkLifecycle = LIFECYCLE
    webhooks: WebhookReceiver | None = WEBHOOKS
    expires_links: bool = True  # at the link's expiry_date (expiry_period, default P7D)

    def __init__(self) -> None:
        self.transformers = RevolutConnector()

    def parse_account(self, raw: Mapping[str, Any]) -> RevolutAccount:
        return parse_account(raw)

    def pays_out(self, account: Any, currency: str) -> bool:
        return currency in self.currencies

    def circuit(self, account: Any) -> str:
        return self.name

    def unsupported(self, request: Mapping[str, Any], now: float) -> Unsupported | None:
        return self.transformers.unsupported(request, now)

    def prepare(self, request: Mapping[str, Any], reference: str,
                account: RevolutAccount) -> HttpCall:
        return self.transformers.create_call(request, reference, account)

    def client(self, endpoint: Endpoint) -> RevolutClient:
        """One per worker: one connection pool and one token cache for every account."""
        transport = ProviderTransport(
            endpoint.base_url, connect_timeout_s=endpoint.connect_timeout_s,
            read_timeout_s=endpoint.read_timeout_s, max_connections=endpoint.max_connections)
        return RevolutClient(transport, self.transformers, RevolutAuth(transport, self.transformers))

    def webhook_secrets(self, account: RevolutAccount) -> tuple[bytes, ...]:
        return tuple(secret.encode("ascii") for secret in account.webhook_signing_secrets)


PROVIDER = RevolutProvider()
