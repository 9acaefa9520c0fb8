"""The outcome algebra every provider answers in, and the HTTP values transformers use.

Every provider answer maps to exactly one :data:`ProviderOutcome`, and the distinction
that matters most for money is kept explicit: :class:`Transient` means the provider
provably created nothing, :class:`Unknown` means it may have. The provider contract
itself is :mod:`streams.connectors.provider`.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class HttpCall:
    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    json: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    form: Mapping[str, str] | None = None  # a form-encoded body (token endpoints)


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class LinkCreated:
    connector_payout_id: str
    url: str | None  # None: the link exists but the provider gave no URL (yet)
    connector_status: str
    payout_status: str
    expires_at: str | None
    status_code: int | None = None  # the provider's HTTP status, where it is reported (Prism)


@dataclass(frozen=True)
class Rejected:
    """A definite answer: nothing was created and retrying the same call won't help."""

    code: str
    message: str
    field: str | None
    status_code: int | None  # None: no HTTP status (Prism refused before any connector call)
    connector_details: Mapping[str, Any]


@dataclass(frozen=True)
class Transient:
    """Nothing was created (the provider said so, or the request never left)."""

    reason: str
    status_code: int | None = None
    retry_after_s: float | None = None


@dataclass(frozen=True)
class Unknown:
    """The call may have created a link: look it up by reference before creating."""

    reason: str
    status_code: int | None = None


@dataclass(frozen=True)
class NotFound:
    """A lookup by reference found no link: a create is safe."""


ProviderOutcome = LinkCreated | Rejected | Transient | Unknown | NotFound


@dataclass(frozen=True)
class Unsupported:
    """The provider cannot honour a request field as given: the request fails, naming it."""

    field: str
    message: str


MAX_RETRY_AFTER_S = 300.0  # a provider's Retry-After must not stall a link for ever


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """A provider's ``Retry-After`` in seconds, capped; None when absent or unreadable
    (an HTTP-date is rare from APIs: our own backoff applies then)."""
    value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S)


def link_reference(link_key: str, *, prefix: str = "pl_") -> str:
    """A deterministic provider reference for a link key.

    Providers cap reference length (≤ 35 to 40 characters) and alphabet
    and alphabet, while link keys are merchant-chosen; a hash fits every provider
    and is the same on every worker and every retry.
    """
    return prefix + hashlib.sha256(link_key.encode("utf-8")).hexdigest()[:32]  # 128 bits
