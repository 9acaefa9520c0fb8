"""A Revolut payout link's life after creation, as pure rules (a ``LinkLifecycle``).

States (shared/reference/providers.md): created (amount not yet blocked), awaiting
(approval), active (the recipient may claim), processing, processed; failed, expired,
cancelled. No back-edge and no attempt counter: a state's position is its step alone.
Nothing undoes ``processed`` that Revolut reports on the link, so no state is reversible.
"""
from __future__ import annotations

from collections.abc import Mapping

from streams.connectors.base import StatusReport
from streams.connectors.revolut.transformers import PAYOUT_STATUS

POSITIONS: Mapping[str, tuple[int, int]] = {
    "created": (0, 0),
    "awaiting": (0, 1),
    "active": (0, 2),
    "processing": (0, 3),
    "processed": (0, 4),
    "failed": (0, 9),
    "expired": (0, 9),
    "cancelled": (0, 9),
}
FINAL = frozenset({"processed", "failed", "expired", "cancelled"})


class RevolutLifecycle:
    def position(self, report: StatusReport) -> tuple[int, int] | None:
        return POSITIONS.get(report.connector_status)

    def payout_status(self, connector_status: str) -> str:
        return PAYOUT_STATUS.get(connector_status, "PENDING")

    def final(self, connector_status: str) -> bool:
        return connector_status in FINAL

    def reversible(self, connector_status: str) -> bool:
        return False


LIFECYCLE = RevolutLifecycle()
