"""The provider contract: what one provider package gives the processor.

A provider package (``streams/connectors/<name>/``) owns everything about its provider,
as a connector does in Prism's connector-service: its account type and how credentials
are parsed, auth, base URL, amount units, the pure transformers between our request
and its API, error mapping into the outcome algebra, and lookup by our reference. The
processor sees only this protocol -- *prepare a create, create, look up → outcome* --
so a provider that does not speak HTTP (Prism, over gRPC) fits the same way.

Adding a provider: its package, one line in :mod:`streams.connectors.registry`, the
schema's ``connector`` enum, and docs.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from streams.connectors.base import (
    CancelOutcome,
    LinkLifecycle,
    LinkRef,
    ProviderOutcome,
    StatusOutcome,
    Unsupported,
    WebhookReceiver,
)


class CredentialError(ValueError):
    """A provider's credentials for a merchant are unusable; names the field, never a value."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class Endpoint:
    """Where and how a worker reaches one provider (per worker, not per merchant)."""

    base_url: str
    connect_timeout_s: float
    read_timeout_s: float
    max_connections: int


class ProviderClient(Protocol):
    """One per provider per worker: owns the connection pool and any token cache.

    Every method answers with exactly one outcome and never raises for anything the
    provider or the network does: :class:`~streams.connectors.base.Transient` when the
    call provably created nothing, :class:`~streams.connectors.base.Unknown` when it may
    have.
    """

    async def create(self, prepared: Any, account: Any) -> ProviderOutcome: ...

    async def lookup(self, reference: str, account: Any, sent: Any = None) -> ProviderOutcome:
        """``sent``: the create call made (or that would be made) for ``reference``, for
        what a provider's lookup answer does not state (an expiry, for one), so a new
        owner's lookup reports the link as the owner that created it did; or, where no
        call exists (reconciliation), a :class:`LinkRef` naming the link's merchant."""
        ...

    async def status(self, link: LinkRef, account: Any) -> StatusOutcome:
        """The link's current status at the provider (a poll). A refusal or an error
        proves nothing about the link: the caller polls again later."""
        ...

    async def cancel(self, link: LinkRef, account: Any) -> CancelOutcome:
        """Ask the provider to cancel (deactivate, void) the link. ``NotCancellable``
        when its state forbids it; ``Unknown`` when the call may have cancelled it."""
        ...

    async def aclose(self) -> None: ...


class Provider(Protocol):
    name: str
    currencies: frozenset[str]  # what it pays out in, for requests that name no connector
    base_url_env: str  # the variable that overrides default_base_url
    default_base_url: str
    base_url_doc: str  # its row in the README's settings table
    # Its entry's shape in PAYOUT_CREDENTIALS (the README's settings table): `name: {…}`.
    credentials_doc: str
    dev_account: Mapping[str, Any] | None  # the simulator's account, when none is configured
    lifecycle: LinkLifecycle  # the link's states after creation, as pure rules
    webhooks: WebhookReceiver | None  # None: the provider sends none we can verify (polled)
    # Whether the provider itself expires a link at the expiry we sent; if not, the
    # processor cancels it once ``expires_at`` has passed.
    expires_links: bool

    def parse_account(self, raw: Mapping[str, Any]) -> Any:
        """Typed credentials from configuration; raises :class:`CredentialError`."""

    def pays_out(self, account: Any, currency: str) -> bool:
        """Whether this merchant's account here pays out in ``currency``: a subset of
        ``currencies`` (Prism: the currencies the merchant routes through its connector)."""

    def circuit(self, account: Any) -> str:
        """Which circuit breaker a merchant's calls count against: what fails together.

        One per provider for a provider that is one service; Prism fronts many
        connectors, and one connector answering 5xx must not open the circuit for
        merchants routed through the others.
        """

    def unsupported(self, request: Mapping[str, Any], now: float) -> Unsupported | None:
        """The first request field this provider can't honour, or None (pure)."""

    def prepare(self, request: Mapping[str, Any], reference: str, account: Any) -> Any:
        """The create call for this request (pure): built once, in the intake dry run."""

    def client(self, endpoint: Endpoint) -> ProviderClient:
        """The worker's client for this provider."""

    def webhook_secrets(self, account: Any) -> tuple[bytes, ...]:
        """Every secret a webhook for this merchant may be signed with (new and old
        during a rotation); empty when none is configured (webhooks are refused)."""
