"""A Prism payout's life after creation, as pure rules (a ``LinkLifecycle``).

Prism's raw status *is* a ``PayoutStatus`` name, so ``payout_status`` is the identity.
The order follows Hyperswitch's payout flow: REQUIRES_CREATION; REQUIRES_CONFIRMATION
or REQUIRES_VENDOR_ACCOUNT_CREATION; REQUIRES_PAYOUT_METHOD_DATA (a link waiting for
the recipient); REQUIRES_FULFILLMENT; INITIATED; PENDING; SUCCESS; then the ends
(FAILED, CANCELLED, EXPIRED, INELIGIBLE), and REVERSED after SUCCESS. Hyperswitch's
terminal states are final here, INELIGIBLE too; SUCCESS is watched for a reversal.
``PAYOUT_STATUS_UNSPECIFIED`` (and any name our pinned proto lacks) has no position.
"""
from __future__ import annotations

from collections.abc import Mapping

from streams.connectors.base import StepLifecycle

POSITIONS: Mapping[str, tuple[int, int]] = {
    "REQUIRES_CREATION": (0, 0),
    "REQUIRES_CONFIRMATION": (0, 1),
    "REQUIRES_VENDOR_ACCOUNT_CREATION": (0, 1),
    "REQUIRES_PAYOUT_METHOD_DATA": (0, 2),
    "REQUIRES_FULFILLMENT": (0, 3),
    "INITIATED": (0, 4),
    "PENDING": (0, 5),
    "SUCCESS": (0, 6),
    "FAILED": (0, 9),
    "CANCELLED": (0, 9),
    "EXPIRED": (0, 9),
    "INELIGIBLE": (0, 9),
    "REVERSED": (0, 10),
}
FINAL = frozenset({"FAILED", "CANCELLED", "EXPIRED", "INELIGIBLE", "REVERSED"})
REVERSIBLE = frozenset({"SUCCESS"})


LIFECYCLE = StepLifecycle(POSITIONS, {name: name for name in POSITIONS}, FINAL, REVERSIBLE)
