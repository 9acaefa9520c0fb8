"""The outcome algebra every provider answers in, and the HTTP values transformers use.

Every provider answer maps to exactly one :data:`ProviderOutcome`, and the distinction
that matters most for money is kept explicit: :class:`Transient` means the provider
provably created nothing, :class:`Unknown` means it may have. The provider contract
itself is :mod:`streams.connectors.provider`.
"""
from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


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


# --- after creation: what a provider says about a link it holds -------------------


@dataclass(frozen=True)
class StatusReport:
    """What a provider says about one of its links at one moment (webhook, poll, command).

    Pure data, parsed from a provider answer by the provider's package. Which report is
    *later* in the link's life is the provider's :class:`LinkLifecycle` to say
    (``position``); a report is never ordered by when it arrived.
    """

    connector_status: str  # the provider's raw status
    attempt: int = 0  # the provider's payout-attempt counter, where it keeps one
    reference: str | None = None  # our reference, where the provider states it
    connector_payout_id: str | None = None
    occurred_at: str | None = None  # RFC 3339, when the provider says the change happened
    event_id: str | None = None  # the provider's id of this notification (webhook dedup)
    event_name: str | None = None  # the provider's event name (``payout_link.attempted``)


class LinkLifecycle(Protocol):
    """One provider's link states as pure rules (each provider package has one).

    ``position`` orders reports: a report changes a link only when its position is
    greater than the stored one. A provider's legal back-edges (a link that goes back to
    ``issued`` when a payout fails or is reversed) are positions that are *greater*,
    because the provider's own data tells them apart (an attempt counter). So any order
    of the same reports ends in the same state, and a duplicate or stale report changes
    nothing. ``None``: a status this code does not know; the report is ignored (and
    logged), never guessed into an order.
    """

    def position(self, report: StatusReport) -> tuple[int, int] | None: ...

    def payout_status(self, connector_status: str) -> str:
        """The Prism ``PayoutStatus`` name of a raw status."""

    def final(self, connector_status: str) -> bool:
        """Nothing can follow this status (no report will ever move the link again)."""

    def reversible(self, connector_status: str) -> bool:
        """A paid-out status that a reversal can still undo (kept under watch a while)."""


@dataclass(frozen=True)
class StepLifecycle:
    """A :class:`LinkLifecycle` given as a table: a provider without back-edges or an
    attempt counter, where a status's position is its step alone. Each provider package
    owns its table; a provider whose order needs an attempt counter has its own class."""

    positions: Mapping[str, tuple[int, int]]
    payout_statuses: Mapping[str, str]  # raw status -> Prism PayoutStatus name
    finals: frozenset[str]
    reversibles: frozenset[str] = frozenset()

    def position(self, report: StatusReport) -> tuple[int, int] | None:
        return self.positions.get(report.connector_status)

    def payout_status(self, connector_status: str) -> str:
        return self.payout_statuses.get(connector_status, "PENDING")

    def final(self, connector_status: str) -> bool:
        return connector_status in self.finals

    def reversible(self, connector_status: str) -> bool:
        return connector_status in self.reversibles


@dataclass(frozen=True)
class LinkRef:
    """How a provider call names one existing link: our reference and the provider's id."""

    reference: str
    connector_payout_id: str
    merchant_id: str = ""  # our merchant id (Prism's x-merchant-id when the account names none)


@dataclass(frozen=True)
class Cancelled:
    """The provider cancelled the link (``report``: its status after, when it said)."""

    report: StatusReport | None = None


@dataclass(frozen=True)
class NotCancellable:
    """The provider refused to cancel because of the link's state (claimed, paid, gone)."""

    message: str
    connector_status: str | None = None  # the status the provider named, if any


StatusOutcome = StatusReport | Rejected | Transient | Unknown | NotFound
CancelOutcome = Cancelled | NotCancellable | Rejected | Transient | Unknown


@dataclass(frozen=True)
class WebhookRejected:
    """A webhook we refuse: never forwarded, answered ``http_status`` with ``code``."""

    http_status: int  # 401: not proven to come from the provider; 400: unreadable/unknown
    code: str  # signature_missing | signature_invalid | stale_timestamp | malformed_body |
    #            unknown_event | reference_missing
    message: str


@dataclass(frozen=True)
class WebhookReport:
    """A verified, parsed webhook: the report it carries and the link it names."""

    report: StatusReport
    reference: str  # our reference: how the webhook reaches its link (streams.references)


class WebhookReceiver(Protocol):
    """A provider's webhook rules (pure): verify over the raw bytes, then parse.

    ``secrets``: every secret currently valid for the merchant at this provider (during
    a rotation, the new and the old); a signature made with any of them is accepted.
    Comparisons are constant-time (``hmac.compare_digest``).
    """

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Sequence[bytes],
               now: float) -> WebhookRejected | None: ...

    def parse(self, headers: Mapping[str, str], body: bytes) -> WebhookReport | WebhookRejected: ...


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


REFERENCE_PREFIX = "pl2_"
_LEGACY_PREFIX = "pl_"
_HOME_HASH_DIGITS = 8  # Kafka's positive murmur2 of the link key, 31 bits, as hex


def link_reference(link_key: str) -> str:
    """The deterministic provider reference of a link key: ``pl2_`` + 8 + 23 hex digits.

    Providers cap reference length (35 to 40 characters) and alphabet while link keys
    are merchant-chosen, so the reference is a hash: the same on every worker and every
    retry. Its first 8 hex digits are Kafka's positive murmur2 hash of the link key, the
    one the default partitioner uses: a webhook that names only our reference reaches
    the link's home partition (:func:`reference_partition`) without an index; the other
    23 digits (92 bits of SHA-256) tell links apart. 35 characters, ``[0-9a-z_]``: every
    provider's reference field takes it (receipts, idempotency keys, link ids, request
    ids; each package's transformers say which). The link table is keyed by it.
    """
    from streams.partitioning import key_hash

    raw = link_key.encode("utf-8")
    return (f"{REFERENCE_PREFIX}{key_hash(raw):08x}"
            f"{hashlib.sha256(raw).hexdigest()[:23]}")


_OURS = re.compile(r"pl2_[0-9a-f]{31}|pl_[0-9a-f]{32}", re.ASCII)


def is_our_reference(value: object) -> bool:
    """Whether a provider-side reference is one this processor makes (either form):
    how a reconciliation tells our links from others in a provider's list."""
    return isinstance(value, str) and _OURS.fullmatch(value) is not None


def legacy_link_reference(link_key: str) -> str:
    """The reference links created before ``pl2_`` carry (``pl_`` + 32 hex of SHA-256):
    their records keep it, and every call about such a link uses the stored one."""
    return _LEGACY_PREFIX + hashlib.sha256(link_key.encode("utf-8")).hexdigest()[:32]


def reference_partition(reference: str, partitions: int) -> int | None:
    """The home partition of the link a reference names, or None for a reference that
    does not carry its link key's hash (a legacy one, or not ours)."""
    if len(reference) != 35 or not reference.startswith(REFERENCE_PREFIX):
        return None
    digits = reference[len(REFERENCE_PREFIX):len(REFERENCE_PREFIX) + _HOME_HASH_DIGITS]
    try:
        home = int(digits, 16)
    except ValueError:
        return None
    if home > 0x7FFFFFFF or partitions <= 0:
        return None
    return home % partitions
