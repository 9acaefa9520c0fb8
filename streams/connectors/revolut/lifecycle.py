"""A Revolut payout link's life after creation, as pure rules (a ``LinkLifecycle``).

States (shared/reference/providers.md): created (amount not yet blocked), awaiting
(approval), active (the recipient may claim), processing, processed; failed, expired,
cancelled. No back-edge and no attempt counter: a state's position is its step alone.
Nothing undoes ``processed`` that Revolut reports on the link, so no state is reversible.
"""
from __future__ import annotations

from collections.abc import Mapping

from streams.connectors.base import StepLifecycle
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


LIFECYCLE = StepLifecycle(POSITIONS, PAYOUT_STATUS, FINAL, frozenset())
