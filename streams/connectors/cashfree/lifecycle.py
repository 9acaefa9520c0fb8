"""A Cashgram's life after creation, as pure rules (a ``LinkLifecycle``).

ACTIVE → PENDING | REDEEMED | EXPIRED | DEACTIVATED; PENDING → REDEEMED | FAILED;
REDEEMED → REVERSED (shared/reference/providers.md; statuses other than ACTIVE are
unconfirmed by Cashfree's docs, and are the simulator's). There is no back-edge and no
attempt counter: a status's position is its step alone.
"""
from __future__ import annotations

from collections.abc import Mapping

from streams.connectors.base import StepLifecycle
from streams.connectors.cashfree.transformers import PAYOUT_STATUS

POSITIONS: Mapping[str, tuple[int, int]] = {
    "ACTIVE": (0, 1),
    "PENDING": (0, 2),
    "REDEEMED": (0, 3),
    "REVERSED": (0, 4),
    "EXPIRED": (0, 9),
    "DEACTIVATED": (0, 9),
    "FAILED": (0, 9),
}
FINAL = frozenset({"EXPIRED", "DEACTIVATED", "FAILED", "REVERSED"})
REVERSIBLE = frozenset({"REDEEMED"})


LIFECYCLE = StepLifecycle(POSITIONS, PAYOUT_STATUS, FINAL, REVERSIBLE)
