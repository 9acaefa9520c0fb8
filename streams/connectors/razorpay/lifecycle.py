"""A RazorpayX payout link's life after creation, as pure rules (a ``LinkLifecycle``).

Statuses (shared/reference/providers.md): ``pending`` (approval workflow) → ``issued`` |
``rejected``; ``issued`` → ``processing`` | ``cancelled`` | ``expired``; ``processing`` →
``processed`` | ``issued`` (the payout failed; the recipient may try again). Razorpay
calls processed/cancelled/expired/rejected final, but moves ``processed`` back to
``issued`` when a payout is reversed (event ``payout_link.attempted``).

Those two back-edges are told apart from a stale ``issued`` by ``attempt_count``, which
Razorpay increments when the recipient submits their details: a report's position is
``(attempt, step)``, so an ``issued`` after attempt *n* (failed or reversed) sorts above
attempt *n*'s ``processing`` and ``processed``, and attempt *n + 1* sorts above it all.
"""
from __future__ import annotations

from streams.connectors.base import StatusReport
from streams.connectors.razorpay.transformers import PAYOUT_STATUS

FINAL = frozenset({"cancelled", "expired", "rejected"})
REVERSIBLE = frozenset({"processed"})


class RazorpayLifecycle:
    def position(self, report: StatusReport) -> tuple[int, int] | None:
        status = report.connector_status
        attempt = report.attempt if type(report.attempt) is int and report.attempt > 0 else 0
        if status == "pending":
            return (0, 0)
        if status == "rejected":
            return (0, 9)
        if status == "issued":
            # attempt 0: fresh, waiting for the recipient; n ≥ 1: attempt n failed or was
            # reversed, and the link is open again.
            return (0, 1) if attempt == 0 else (attempt, 4)
        if status == "processing":
            return (max(attempt, 1), 2)
        if status == "processed":
            return (max(attempt, 1), 3)
        if status in ("cancelled", "expired"):
            return (attempt, 9)
        return None

    def payout_status(self, connector_status: str) -> str:
        return PAYOUT_STATUS.get(connector_status, "PENDING")

    def final(self, connector_status: str) -> bool:
        return connector_status in FINAL

    def reversible(self, connector_status: str) -> bool:
        return connector_status in REVERSIBLE


LIFECYCLE = RazorpayLifecycle()
