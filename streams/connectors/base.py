"""The connector contract: pure transformers between our request and a provider's HTTP.

A connector never does I/O. It builds :class:`HttpCall` values and reads
:class:`HttpAnswer` values; :mod:`streams.connectors.transport` moves them. Every
provider answer maps to exactly one :data:`ProviderOutcome`, and the distinction
that matters most for money is kept explicit: :class:`Transient` means the provider
provably created nothing, :class:`Unknown` means it may have.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Union


@dataclass(frozen=True)
class HttpCall:
    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    json: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class LinkCreated:
    connector_payout_id: str
    url: str
    connector_status: str
    payout_status: str
    expires_at: str | None


@dataclass(frozen=True)
class Rejected:
    """A definite answer: nothing was created and retrying the same call won't help."""

    code: str
    message: str
    field: str | None
    status_code: int
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


ProviderOutcome = Union[LinkCreated, Rejected, Transient, Unknown, NotFound]


@dataclass(frozen=True)
class Unsupported:
    """The provider cannot honour a request field as given: the request fails, naming it."""

    field: str
    message: str


class Connector(Protocol):
    name: str

    def unsupported(self, request: Mapping[str, Any], now: float) -> Unsupported | None:
        """The first field of a schema-valid request this provider can't honour, or None.

        Pure (``now`` is unix seconds): called before anything is written for a new
        link, so a field the provider would ignore or refuse fails the request up front
        instead of yielding a link that differs from what was asked.
        """
        ...

    def create_call(self, request: Mapping[str, Any], reference: str,
                    account: Any) -> HttpCall: ...

    def read_create(self, answer: HttpAnswer, sent: HttpCall | None = None) -> ProviderOutcome:
        """``sent`` is the create call answered, to keep what was asked where the
        answer can't be read (an unreadable expiry is not "no expiry")."""
        ...

    def lookup_call(self, reference: str) -> HttpCall: ...

    def read_lookup(self, answer: HttpAnswer, reference: str,
                    sent: HttpCall | None = None) -> ProviderOutcome: ...


def link_reference(link_key: str, *, prefix: str = "pl_") -> str:
    """A deterministic provider reference for a link key.

    Providers cap reference length (Razorpay ``receipt`` ≤ 40, idempotency key ≤ 36)
    and alphabet, while link keys are merchant-chosen; a hash fits every provider
    and is the same on every worker and every retry.
    """
    return prefix + hashlib.sha256(link_key.encode("utf-8")).hexdigest()[:32]  # 128 bits
