"""Hyperswitch Prism: the payout API of Juspay's unified connector service, over gRPC.

Everything about Prism lives in this package: ``account`` (a merchant's route: Prism
connector, its credentials, the currencies routed through it), ``transformers`` (pure
request / answer mapping, the gRPC status table), ``client`` (one ``grpc.aio`` channel
per worker), ``gen/`` (code generated from ``proto/prism/payout_service.proto`` by
``make proto``) and the :class:`PrismProvider` below. Amounts go out in minor units,
as Prism's ``Money`` takes them.

After creation: ``status`` is a Get by our reference and the connector's payout id,
``cancel`` a Void (Prism has it for few connectors: the others answer
FAILED_PRECONDITION, ``connector_flow_not_supported``); ``lifecycle`` orders Prism's
``PayoutStatus`` names. **Webhooks: none.** Prism's reference documents no webhook of
its own (a connector's webhooks reach the merchant, not us), so ``webhooks`` is None
and a Prism link is followed by polling only. Prism's CreateLink carries no expiry
(``expires_at`` is refused), so ``expires_links`` is False and never matters.

``PRISM_URL`` says where Prism listens: ``http://host:port`` (plaintext) or
``https://host:port`` (TLS). Prism authenticates no caller and lets any caller patch its
configuration (``x-config-override``): it must run where only trusted callers reach it.
The default is the local Prism-compatible server
(``python -m streams.devkit.sims.prism --port 8000``).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.connectors.base import LinkLifecycle, Unsupported, WebhookReceiver
from streams.connectors.prism import transformers
from streams.connectors.prism.account import PRISM_CURRENCIES, PrismAccount, parse_account
from streams.connectors.prism.client import PrismClient
from streams.connectors.prism.lifecycle import LIFECYCLE
from streams.connectors.prism.transformers import NAME, PrismCreate
from streams.connectors.provider import Endpoint

__all__ = ["PROVIDER", "PrismAccount", "PrismClient", "PrismCreate",
           "PrismProvider"]

# The Prism-compatible server's development route (streams/devkit/sims/prism.py,
# DEFAULT_CREDENTIALS): its simulated Adyen, for USD and EUR.
DEV_ACCOUNT: Mapping[str, Any] = {
    "connector": "Adyen",
    "connector_config": {"api_key": "prism_sim_adyen_key"},
    "currencies": ["USD", "EUR"],
}


class PrismProvider:
    name = NAME
    currencies = PRISM_CURRENCIES  # each merchant's route narrows it (pays_out)
    base_url_env = "PRISM_URL"
    default_base_url = "http://127.0.0.1:8000"  # the Prism-compatible server
    base_url_doc = ("where Prism's gRPC server listens: `http://host:port` (plaintext) or "
                    "`https://host:port` (TLS). Prism authenticates no caller and takes per-call "
                    "config overrides: reach it only on a trusted network")
    credentials_doc = ("`prism: {connector, connector_config, currencies, merchant_id?, "
                       "tenant_id?}` (Prism's connector in PascalCase, e.g. `Adyen`; its "
                       "credentials, sent per call in `x-connector-config`; the currencies "
                       "this merchant routes through it; `x-merchant-id`, default our merchant "
                       "id; `x-tenant-id`)")
    dev_account: Mapping[str, Any] | None = DEV_ACCOUNT
    lifecycle: LinkLifecycle = LIFECYCLE
    webhooks: WebhookReceiver | None = None  # Prism documents no webhook: polled only
    expires_links: bool = False

    def parse_account(self, raw: Mapping[str, Any]) -> PrismAccount:
        return parse_account(raw)

    def pays_out(self, account: PrismAccount, currency: str) -> bool:
        """Only in the currencies the merchant routes through its Prism connector."""
        return currency in account.currencies

    def circuit(self, account: PrismAccount) -> str:
        """Per Prism connector: Prism itself stays up when one connector behind it fails
        (its 5xx answers are that connector's), so each connector has its own breaker."""
        return f"{self.name}:{account.connector}"

    def unsupported(self, request: Mapping[str, Any], now: float) -> Unsupported | None:
        return transformers.unsupported(request)

    def prepare(self, request: Mapping[str, Any], reference: str,
                account: PrismAccount) -> PrismCreate:
        return transformers.create_request(request, reference)

    def client(self, endpoint: Endpoint) -> PrismClient:
        """One per worker: one channel for every merchant (credentials travel per call)."""
        return PrismClient(endpoint.base_url, connect_timeout_s=endpoint.connect_timeout_s,
                           read_timeout_s=endpoint.read_timeout_s)

    def webhook_secrets(self, account: PrismAccount) -> tuple[bytes, ...]:
        return ()  # no webhooks (see the module docstring)


PROVIDER = PrismProvider()
