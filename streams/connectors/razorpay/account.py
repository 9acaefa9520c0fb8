"""A merchant's RazorpayX credentials: HTTP Basic key id and secret, its account number,
and the secrets its webhooks are signed with."""
from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from streams.connectors.provider import CredentialError

_ACCOUNT_NUMBER = re.compile(r"[A-Za-z0-9]{5,40}")
REQUIRED = ("key_id", "key_secret", "account_number")
OPTIONAL = ("webhook_secrets", "webhook_secret")
MAX_WEBHOOK_SECRETS = 8  # the current one and a few old ones during a rotation
MAX_WEBHOOK_SECRET_CHARS = 1024


@dataclass(frozen=True)
class RazorpayAccount:
    key_id: str
    key_secret: str = field(repr=False)
    account_number: str = field(repr=False)
    # Every secret a webhook for this merchant may be signed with (several during a
    # rotation: the new one and the old). Empty: webhooks are refused.
    webhook_secrets: tuple[str, ...] = field(default=(), repr=False)

    @cached_property
    def basic_header(self) -> str:
        token = base64.b64encode(f"{self.key_id}:{self.key_secret}".encode()).decode("ascii")
        return f"Basic {token}"


def _webhook_secret(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CredentialError(name, "must be a non-empty string")
    if len(value) > MAX_WEBHOOK_SECRET_CHARS:
        raise CredentialError(name, f"is longer than {MAX_WEBHOOK_SECRET_CHARS} characters")
    return value


def _webhook_secrets(raw: Mapping[str, Any]) -> tuple[str, ...]:
    """``webhook_secrets`` (a list) and/or ``webhook_secret`` (one), in that order."""
    secrets: list[str] = []
    if "webhook_secrets" in raw:
        listed = raw["webhook_secrets"]
        if not isinstance(listed, list):
            raise CredentialError("webhook_secrets", "must be a list of non-empty strings")
        if len(listed) > MAX_WEBHOOK_SECRETS:
            raise CredentialError("webhook_secrets", f"holds more than {MAX_WEBHOOK_SECRETS}")
        secrets.extend(_webhook_secret(f"webhook_secrets[{i}]", value)
                       for i, value in enumerate(listed))
    if "webhook_secret" in raw:
        secrets.append(_webhook_secret("webhook_secret", raw["webhook_secret"]))
    return tuple(dict.fromkeys(secrets))  # each once, in the order given


def parse_account(raw: Mapping[str, Any]) -> RazorpayAccount:
    """``{key_id, key_secret, account_number, webhook_secrets?, webhook_secret?}``; errors
    name the field, never its value."""
    if not isinstance(raw, Mapping):
        raise CredentialError("(entry)", "must be an object with key_id, key_secret, account_number")
    values = {}
    for name in REQUIRED:
        value = raw.get(name)
        if not isinstance(value, str) or not value.strip():
            raise CredentialError(name, "missing or not a non-empty string")
        values[name] = value
    unknown = sorted(str(k) for k in set(raw) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise CredentialError(unknown[0], "is not a RazorpayX credential field")
    if not _ACCOUNT_NUMBER.fullmatch(values["account_number"]):
        raise CredentialError("account_number", "must be 5 to 40 letters or digits")
    return RazorpayAccount(**values, webhook_secrets=_webhook_secrets(raw))
