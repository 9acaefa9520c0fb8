"""A merchant's RazorpayX credentials: HTTP Basic key id and secret, and its account number."""
from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from streams.connectors.provider import CredentialError

_ACCOUNT_NUMBER = re.compile(r"[A-Za-z0-9]{5,40}")


@dataclass(frozen=True)
class RazorpayAccount:
    key_id: str
    key_secret: str = field(repr=False)
    account_number: str = field(repr=False)

    @cached_property
    def basic_header(self) -> str:
        token = base64.b64encode(f"{self.key_id}:{self.key_secret}".encode()).decode("ascii")
        return f"Basic {token}"


def parse_account(raw: Mapping[str, Any]) -> RazorpayAccount:
    """``{key_id, key_secret, account_number}``; errors name the field, never its value."""
    if not isinstance(raw, Mapping):
        raise CredentialError("(entry)", "must be an object with key_id, key_secret, account_number")
    values = {}
    for name in ("key_id", "key_secret", "account_number"):
        value = raw.get(name)
        if not isinstance(value, str) or not value.strip():
            raise CredentialError(name, "missing or not a non-empty string")
        values[name] = value
    unknown = sorted(set(raw) - set(values))
    if unknown:
        raise CredentialError(unknown[0], "is not a RazorpayX credential field")
    if not _ACCOUNT_NUMBER.fullmatch(values["account_number"]):
        raise CredentialError("account_number", "must be 5 to 40 letters or digits")
    return RazorpayAccount(**values)
