"""Cashgram's link lifecycle: every status's position, and that positions rise along
every legal life (so any order of one Cashgram's reports settles on its latest)."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings, strategies as st

from streams.connectors.base import StatusReport, StepLifecycle
from streams.connectors.cashfree import PROVIDER
from streams.connectors.cashfree.lifecycle import LIFECYCLE
from streams.connectors.cashfree.transformers import PAYOUT_STATUS
from streams.devkit.sims.cashfree import _TRANSITIONS as TRANSITIONS, ACTIVE

TABLE = [
    # status, position, payout_status, final, reversible
    ("ACTIVE", (0, 1), "REQUIRES_PAYOUT_METHOD_DATA", False, False),
    ("PENDING", (0, 2), "PENDING", False, False),
    ("REDEEMED", (0, 3), "SUCCESS", False, True),
    ("REVERSED", (0, 4), "REVERSED", True, False),
    ("EXPIRED", (0, 9), "EXPIRED", True, False),
    ("DEACTIVATED", (0, 9), "CANCELLED", True, False),
    ("FAILED", (0, 9), "FAILED", True, False),
]


@pytest.mark.parametrize("status, position, payout_status, final, reversible", TABLE)
def test_every_status(status: str, position: tuple[int, int], payout_status: str, final: bool,
                      reversible: bool) -> None:
    assert LIFECYCLE.position(StatusReport(status)) == position
    assert LIFECYCLE.position(StatusReport(status, attempt=7)) == position  # no attempts here
    assert LIFECYCLE.payout_status(status) == payout_status == PAYOUT_STATUS[status]
    assert (LIFECYCLE.final(status), LIFECYCLE.reversible(status)) == (final, reversible)


@pytest.mark.parametrize("status", ["active", "ON_HOLD", "", "UNKNOWN"])
def test_a_status_we_do_not_know_has_no_position(status: str) -> None:
    assert LIFECYCLE.position(StatusReport(status)) is None
    assert LIFECYCLE.payout_status(status) == "PENDING"


def test_the_provider_exposes_it_and_expires_its_links() -> None:
    assert isinstance(PROVIDER.lifecycle, StepLifecycle) and PROVIDER.expires_links is True


def test_the_simulators_statuses_are_all_placed() -> None:
    statuses = set(TRANSITIONS) | {s for targets in TRANSITIONS.values() for s in targets}
    assert statuses == {row[0] for row in TABLE}


@settings(max_examples=200, deadline=None)
@given(st.randoms(use_true_random=False))
def test_positions_rise_along_every_legal_life(rng: random.Random) -> None:
    """Lives drawn from the simulator's own transition table."""
    life = [ACTIVE]
    while TRANSITIONS.get(life[-1]):
        life.append(rng.choice(sorted(TRANSITIONS[life[-1]])))
    positions = [LIFECYCLE.position(StatusReport(s)) for s in life]
    assert all(a < b for a, b in zip(positions, positions[1:], strict=False)), life
    assert LIFECYCLE.final(life[-1]) or LIFECYCLE.reversible(life[-1])  # an end, or watched
