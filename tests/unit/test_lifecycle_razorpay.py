"""RazorpayX's link lifecycle: every status's position, and that any order of one link's
reports settles on its latest (positions rise along every legal life)."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings, strategies as st

from streams.connectors.base import StatusReport
from streams.connectors.razorpay import PROVIDER
from streams.connectors.razorpay.lifecycle import LIFECYCLE, RazorpayLifecycle
from streams.connectors.razorpay.transformers import PAYOUT_STATUS


@pytest.mark.parametrize("status, attempt, position", [
    ("pending", 0, (0, 0)),
    ("issued", 0, (0, 1)),
    ("rejected", 0, (0, 9)),
    ("processing", 0, (1, 2)),  # a processing link has made attempt 1 at least
    ("processing", 1, (1, 2)),
    ("processing", 3, (3, 2)),
    ("processed", 1, (1, 3)),
    ("processed", 2, (2, 3)),
    ("issued", 1, (1, 4)),  # attempt 1 failed, or its payout was reversed
    ("issued", 5, (5, 4)),
    ("cancelled", 0, (0, 9)),
    ("cancelled", 2, (2, 9)),
    ("expired", 0, (0, 9)),
    ("expired", 1, (1, 9)),
])
def test_positions(status: str, attempt: int, position: tuple[int, int]) -> None:
    assert LIFECYCLE.position(StatusReport(status, attempt)) == position


@pytest.mark.parametrize("status", ["attempted", "ISSUED", "unknown", "", "paid"])
def test_a_status_we_do_not_know_has_no_position(status: str) -> None:
    assert LIFECYCLE.position(StatusReport(status, 1)) is None


def test_a_negative_attempt_reads_as_none_made() -> None:
    assert LIFECYCLE.position(StatusReport("issued", -3)) == (0, 1)


@pytest.mark.parametrize("status, payout_status, final, reversible", [
    ("pending", "PENDING", False, False),
    ("issued", "REQUIRES_PAYOUT_METHOD_DATA", False, False),
    ("processing", "INITIATED", False, False),
    ("processed", "SUCCESS", False, True),
    ("cancelled", "CANCELLED", True, False),
    ("expired", "EXPIRED", True, False),
    ("rejected", "FAILED", True, False),
])
def test_payout_status_final_and_reversible(status: str, payout_status: str, final: bool,
                                            reversible: bool) -> None:
    assert LIFECYCLE.payout_status(status) == payout_status == PAYOUT_STATUS[status]
    assert (LIFECYCLE.final(status), LIFECYCLE.reversible(status)) == (final, reversible)


def test_the_provider_exposes_it() -> None:
    assert isinstance(PROVIDER.lifecycle, RazorpayLifecycle)
    assert LIFECYCLE.payout_status("something_new") == "PENDING"


def _life(rng: random.Random) -> list[StatusReport]:
    """One legal life of a link, as Razorpay would report it, in real order."""
    life = []
    if rng.random() < 0.3:
        life.append(StatusReport("pending", 0))
        if rng.random() < 0.3:
            return [*life, StatusReport("rejected", 0)]
    attempt = 0
    life.append(StatusReport("issued", attempt))
    while True:
        choice = rng.random()
        if choice < 0.15:
            return [*life, StatusReport(rng.choice(["cancelled", "expired"]), attempt)]
        attempt += 1  # the recipient submits details: Razorpay counts an attempt
        life.append(StatusReport("processing", attempt))
        if rng.random() < 0.5:
            life.append(StatusReport("issued", attempt))  # the payout failed
            continue
        life.append(StatusReport("processed", attempt))
        if rng.random() < 0.6:
            return life
        life.append(StatusReport("issued", attempt))  # reversed (payout_link.attempted)


@settings(max_examples=300, deadline=None)
@given(st.randoms(use_true_random=False), st.randoms(use_true_random=False))
def test_any_order_of_one_links_reports_settles_on_its_latest(life_rng: random.Random,
                                                              order_rng: random.Random) -> None:
    life = _life(life_rng)
    positions = [LIFECYCLE.position(r) for r in life]
    assert all(p is not None for p in positions)
    assert all(a < b for a, b in zip(positions, positions[1:], strict=False))
    # Delivered in any order, with duplicates: keeping only a greater position ends on
    # the latest report, whatever the order.
    arrived = life + order_rng.sample(life, k=min(len(life), 3))
    order_rng.shuffle(arrived)
    kept = None
    for report in arrived:
        position = LIFECYCLE.position(report)
        if kept is None or position > LIFECYCLE.position(kept):
            kept = report
    assert kept == life[-1]
