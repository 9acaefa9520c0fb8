"""Revolut's payout-link lifecycle: every state's position, and that positions rise
along every legal life (any order of one link's reports settles on its latest)."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings, strategies as st

from streams.connectors.base import StatusReport, StepLifecycle
from streams.connectors.revolut import PROVIDER
from streams.connectors.revolut.lifecycle import LIFECYCLE
from streams.connectors.revolut.transformers import PAYOUT_STATUS
from streams.devkit.sims.revolut import STATES

TABLE = [
    # state, position, payout_status, final
    ("created", (0, 0), "PENDING", False),
    ("awaiting", (0, 1), "PENDING", False),
    ("active", (0, 2), "REQUIRES_PAYOUT_METHOD_DATA", False),
    ("processing", (0, 3), "INITIATED", False),
    ("processed", (0, 4), "SUCCESS", True),
    ("failed", (0, 9), "FAILED", True),
    ("expired", (0, 9), "EXPIRED", True),
    ("cancelled", (0, 9), "CANCELLED", True),
]
# Revolut's documented states, as legal moves (shared/reference/providers.md).
MOVES = {
    "created": ["awaiting", "active", "failed", "expired"],
    "awaiting": ["active", "cancelled", "expired", "failed"],
    "active": ["processing", "cancelled", "expired"],
    "processing": ["processed", "failed"],
}


@pytest.mark.parametrize("state, position, payout_status, final", TABLE)
def test_every_state(state: str, position: tuple[int, int], payout_status: str,
                     final: bool) -> None:
    assert LIFECYCLE.position(StatusReport(state)) == position
    assert LIFECYCLE.payout_status(state) == payout_status == PAYOUT_STATUS[state]
    assert LIFECYCLE.final(state) is final
    assert LIFECYCLE.reversible(state) is False  # nothing Revolut reports undoes a payout


def test_the_simulators_states_are_all_placed() -> None:
    assert set(STATES) == {row[0] for row in TABLE}


@pytest.mark.parametrize("state", ["ACTIVE", "claimed", "", "unknown"])
def test_a_state_we_do_not_know_has_no_position(state: str) -> None:
    assert LIFECYCLE.position(StatusReport(state)) is None


def test_the_provider_exposes_it() -> None:
    assert isinstance(PROVIDER.lifecycle, StepLifecycle)


@settings(max_examples=200, deadline=None)
@given(st.randoms(use_true_random=False), st.sampled_from(["created", "awaiting", "active"]))
def test_positions_rise_along_every_legal_life(rng: random.Random, first: str) -> None:
    life = [first]
    while life[-1] in MOVES:
        life.append(rng.choice(MOVES[life[-1]]))
    positions = [LIFECYCLE.position(StatusReport(s)) for s in life]
    assert all(a < b for a, b in zip(positions, positions[1:], strict=False)), life
    assert LIFECYCLE.final(life[-1])
