"""Revolut Business payout links: everything about the provider lives in this package.

``account`` (credentials for the refresh-token flow), ``transformers`` (pure request /
answer mapping, errors, the list page reader), ``client`` (bearer tokens, create, the
paged lookup by ``request_id``) and the :class:`RevolutProvider` below. Amounts go out
in major units with the currency's ISO-4217 decimals, as exact JSON numbers.

The base URL is the API host without ``/api/1.0`` (production ``https://b2b.revolut.com``,
sandbox ``https://sandbox-b2b.revolut.com``), set in ``REVOLUT_BASE_URL``; the default is
the local simulator (``python -m streams.devkit.sims.revolut --port 8083``), which the
demo starts and points this at.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.connectors.base import HttpCall, Unsupported
from streams.connectors.provider import Endpoint
from streams.connectors.revolut.account import RevolutAccount, parse_account
from streams.connectors.revolut.client import RevolutAuth, RevolutClient
from streams.connectors.revolut.transformers import CURRENCIES, NAME, RevolutConnector
from streams.connectors.transport import ProviderTransport

__all__ = ["PROVIDER", "RevolutAccount", "RevolutAuth", "RevolutClient", "RevolutConnector",
           "RevolutProvider"]

# The simulator's development credentials (streams/devkit/sims/revolut.py,
# DEFAULT_CREDENTIALS). The assertion is an unsigned JWT with the claims Revolut checks
# (RS256 header, sub = client id, aud https://revolut.com, no exp): the simulator never
# verifies signatures, and accepts it even with strict_assertion on.
DEV_ACCOUNT: Mapping[str, str] = {
    "client_id": "sim_revolut_client",
    "refresh_token": "oa_sand_sim_refresh_demo",
    "client_assertion": (
        "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9"
        ".eyJpc3MiOiJwYXlvdXQtc3RyZWFtcy5sb2NhbCIsInN1YiI6InNpbV9yZXZvbHV0X2NsaWVudCIsImF1ZCI6"
        "Imh0dHBzOi8vcmV2b2x1dC5jb20ifQ"
        ".dW5zaWduZWQtZGV2LWFzc2VydGlvbg"),
    "account_id": "8f2d3a4b-6c1e-4f7a-9b0d-2e5c7a9f1b3d",
}


class RevolutProvider:
    name = NAME
    currencies = CURRENCIES
    base_url_env = "REVOLUT_BASE_URL"
    default_base_url = "http://127.0.0.1:8083"  # the simulator; production sets the real API
    dev_account: Mapping[str, Any] | None = DEV_ACCOUNT

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


PROVIDER = RevolutProvider()
