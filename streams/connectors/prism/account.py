"""A merchant's route through Prism: which connector, its credentials, and what it pays in.

Prism keeps no configuration of its own per merchant: every call carries the connector
and its credentials in ``x-connector-config``. So the account here is the whole of a
merchant's Prism setup::

    {"connector": "Adyen",                      # Prism's connector, PascalCase
     "connector_config": {"api_key": "..."},    # that connector's credentials (secret)
     "currencies": ["USD", "EUR"],              # what this merchant routes through it
     "merchant_id": "acme",                     # x-merchant-id (default: our merchant id)
     "tenant_id": "public"}                     # x-tenant-id (optional)

The credentials travel only in the call's metadata: never in a prepared call, an
event, a log line or a ``repr``.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import orjson

from streams.connectors.prism.gen import payout_service_pb2 as pb
from streams.connectors.provider import CredentialError

FIELDS = ("connector", "connector_config", "currencies", "merchant_id", "tenant_id")
REQUIRED = ("connector", "connector_config", "currencies")
_CONNECTOR = re.compile(r"[A-Z][A-Za-z0-9]{0,63}")  # as Prism's config header spells it
# Goes into gRPC metadata: visible ASCII, no spaces.
_HEADER_VALUE = re.compile(r"[\x21-\x7e]{1,128}")
# Every ISO-4217 code Prism's Currency enum numbers (USD, EUR, ...).
PRISM_CURRENCIES = frozenset(name for name in pb.Currency.keys() if name != "CURRENCY_UNSPECIFIED")


@dataclass(frozen=True)
class PrismAccount:
    """Typed route; ``repr`` names the connector and currencies only."""

    connector: str
    connector_config: Mapping[str, Any] = field(repr=False)
    currencies: frozenset[str]
    merchant_id: str | None = None
    tenant_id: str | None = None

    @cached_property
    def config_header(self) -> str:
        """``x-connector-config``, serialised once per account (a secret: never logged)."""
        return orjson.dumps({"config": {self.connector: self.connector_config}}).decode()


def parse_account(raw: Mapping[str, Any]) -> PrismAccount:
    """Errors name the field, never its value."""
    if not isinstance(raw, Mapping):
        raise CredentialError("(entry)", "must be an object with " + ", ".join(REQUIRED))
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise CredentialError(unknown[0], "is not a Prism route field")
    for name in REQUIRED:
        if name not in raw:
            raise CredentialError(name, "missing")
    connector = raw["connector"]
    if not isinstance(connector, str) or not _CONNECTOR.fullmatch(connector):
        raise CredentialError("connector", "must be Prism's connector name in PascalCase "
                                           "(e.g. Adyen, WorldpayXml)")
    config = raw["connector_config"]
    if not isinstance(config, Mapping) or not config:
        raise CredentialError("connector_config", "must be a non-empty object of the "
                                                  "connector's credentials")
    for key, value in config.items():
        if not isinstance(value, str | int | bool) or (isinstance(value, str) and not value):
            raise CredentialError(f"connector_config.{key}", "must be a non-empty string, "
                                                             "a number or a boolean")
    currencies = raw["currencies"]
    if (not isinstance(currencies, list) or not currencies
            or not all(isinstance(c, str) for c in currencies)):
        raise CredentialError("currencies", "must be a non-empty list of ISO-4217 codes")
    strange = [c for c in currencies if c not in PRISM_CURRENCIES]
    if strange:
        raise CredentialError("currencies", f"{strange[0][:8]!r} is not a currency Prism knows")
    optional: dict[str, str | None] = {}
    for name in ("merchant_id", "tenant_id"):
        value = raw.get(name)
        if value is not None and (not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value)):
            raise CredentialError(name, "must be 1 to 128 printable ASCII characters, no spaces")
        optional[name] = value
    account = PrismAccount(connector=connector, connector_config=dict(config),
                           currencies=frozenset(currencies), **optional)
    account.config_header  # noqa: B018 -- serialisable now, or a configuration error now
    return account
