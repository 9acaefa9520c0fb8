"""A merchant's Revolut Business API credentials: what the refresh-token flow needs, and
the account that pays out.

Revolut authenticates a token refresh with a JWT *client assertion* signed by the
client's private key (RS256, ``iss`` = the redirect domain, ``sub`` = client id, ``aud``
= ``https://revolut.com``, ``exp``). We take that assertion pre-signed from
configuration: signing in-process (holding the private key) is future work. So the
assertion must be rotated before its ``exp`` -- an expired one makes every token refresh
fail, and new links then fail with ``provider_authentication_failed``. :func:`parse_account`
refuses one that has already expired, so a worker never starts on it.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import orjson

from streams.connectors.provider import CredentialError

FIELDS = ("client_id", "refresh_token", "client_assertion", "account_id")
OPTIONAL = ("webhook_signing_secrets",)
MAX_WEBHOOK_SECRETS = 8  # the current one and a few old ones during a rotation
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# What may travel in a form field or a header without escaping surprises.
_PRINTABLE = re.compile(r"[\x21-\x7e]{1,4096}")


@dataclass(frozen=True)
class RevolutAccount:
    """Typed credentials; ``repr`` shows the client id only (secrets never reach a log)."""

    client_id: str
    refresh_token: str = field(repr=False)
    client_assertion: str = field(repr=False)
    account_id: str = field(repr=False)  # the Revolut Business account links are paid from
    # The signing secrets of the merchant's webhook (several during a rotation: the new
    # and the old). Empty: webhooks are refused.
    webhook_signing_secrets: tuple[str, ...] = field(default=(), repr=False)

    @cached_property
    def token_key(self) -> str:
        """The access-token cache key: one token per client and refresh token (consent).

        A digest, so the key itself is no secret wherever it might be shown.
        """
        digest = hashlib.sha256(f"{self.client_id}\0{self.refresh_token}".encode()).hexdigest()
        return f"{self.client_id}:{digest[:16]}"


def assertion_expiry(assertion: str) -> float | None:
    """The unverified ``exp`` claim of a JWT, or None when absent or unreadable."""
    parts = assertion.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1]
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        return None
    return float(exp)


def _signing_secrets(raw: Mapping[str, Any]) -> tuple[str, ...]:
    if "webhook_signing_secrets" not in raw:
        return ()
    listed = raw["webhook_signing_secrets"]
    if not isinstance(listed, list):
        raise CredentialError("webhook_signing_secrets", "must be a list of non-empty strings")
    if len(listed) > MAX_WEBHOOK_SECRETS:
        raise CredentialError("webhook_signing_secrets", f"holds more than {MAX_WEBHOOK_SECRETS}")
    for i, value in enumerate(listed):
        if not isinstance(value, str) or not _PRINTABLE.fullmatch(value):
            raise CredentialError(f"webhook_signing_secrets[{i}]",
                                  "must be 1 to 4096 printable ASCII characters, no spaces")
    return tuple(dict.fromkeys(listed))


def parse_account(raw: Mapping[str, Any], *, now: float | None = None) -> RevolutAccount:
    """``{client_id, refresh_token, client_assertion, account_id, webhook_signing_secrets?}``;
    errors name the field, never its value."""
    if not isinstance(raw, Mapping):
        raise CredentialError("(entry)", "must be an object with " + ", ".join(FIELDS))
    values: dict[str, str] = {}
    for name in FIELDS:
        value = raw.get(name)
        if not isinstance(value, str) or not value.strip():
            raise CredentialError(name, "missing or not a non-empty string")
        if not _PRINTABLE.fullmatch(value):
            raise CredentialError(name, "must be 1 to 4096 printable ASCII characters, no spaces")
        values[name] = value
    unknown = sorted(str(k) for k in set(raw) - set(values) - set(OPTIONAL))
    if unknown:
        raise CredentialError(unknown[0], "is not a Revolut credential field")
    if not _UUID.fullmatch(values["account_id"]):
        raise CredentialError("account_id", "must be the Revolut account's UUID")
    if not _JWT.fullmatch(values["client_assertion"]):
        raise CredentialError("client_assertion", "must be a JWT (header.claims.signature)")
    exp = assertion_expiry(values["client_assertion"])
    if exp is not None and exp <= (time.time() if now is None else now):
        raise CredentialError("client_assertion", "has expired: sign and configure a new one")
    values["account_id"] = values["account_id"].lower()
    return RevolutAccount(**values, webhook_signing_secrets=_signing_secrets(raw))
