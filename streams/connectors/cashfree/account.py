"""A merchant's Cashfree Payouts credentials: the client id and secret that buy bearer tokens."""
from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from streams.connectors.provider import CredentialError

# Both travel as HTTP header values: visible ASCII only, so a stray newline or space in
# configuration can never split or smuggle a header.
_HEADER_VALUE = re.compile(r"[\x21-\x7e]{1,256}")
FIELDS = ("client_id", "client_secret")


@dataclass(frozen=True)
class CashfreeAccount:
    client_id: str
    client_secret: str = field(repr=False)

    @cached_property
    def cache_key(self) -> str:
        """Keys this account's bearer token: the id plus a digest of the secret, so a
        rotated secret never reuses a token bought with the old one (and the secret
        itself is never a dict key someone might print)."""
        digest = hashlib.sha256(self.client_secret.encode()).hexdigest()[:16]
        return f"{self.client_id}:{digest}"

    def authorize_headers(self) -> dict[str, str]:
        """Headers of ``POST /payout/v1/authorize``; handed straight to the transport,
        never kept in an :class:`~streams.connectors.base.HttpCall` (whose repr shows headers)."""
        return {"X-Client-Id": self.client_id, "X-Client-Secret": self.client_secret}


def parse_account(raw: Mapping[str, Any]) -> CashfreeAccount:
    """``{client_id, client_secret}``; errors name the field, never its value."""
    if not isinstance(raw, Mapping):
        raise CredentialError("(entry)", "must be an object with client_id, client_secret")
    values: dict[str, str] = {}
    for name in FIELDS:
        value = raw.get(name)
        if not isinstance(value, str) or not value.strip():
            raise CredentialError(name, "missing or not a non-empty string")
        if not _HEADER_VALUE.fullmatch(value):
            raise CredentialError(name, "must be 1 to 256 visible ASCII characters (no spaces)")
        values[name] = value
    unknown = sorted(str(k) for k in set(raw) - set(values))
    if unknown:
        raise CredentialError(unknown[0], "is not a Cashfree credential field")
    return CashfreeAccount(**values)
