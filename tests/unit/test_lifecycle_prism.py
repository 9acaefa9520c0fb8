"""Prism's payout lifecycle: every PayoutStatus's position (Prism's raw status is its own
Prism name), and that positions rise along Hyperswitch's payout flow."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings, strategies as st

from streams.connectors.base import StatusReport, StepLifecycle
from streams.connectors.prism import PROVIDER
from streams.connectors.prism.gen import payout_service_pb2 as pb
from streams.connectors.prism.lifecycle import LIFECYCLE

TABLE = [
    # status, position, final, reversible
    ("REQUIRES_CREATION", (0, 0), False, False),
    ("REQUIRES_CONFIRMATION", (0, 1), False, False),
    ("REQUIRES_VENDOR_ACCOUNT_CREATION", (0, 1), False, False),
    ("REQUIRES_PAYOUT_METHOD_DATA", (0, 2), False, False),
    ("REQUIRES_FULFILLMENT", (0, 3), False, False),
    ("INITIATED", (0, 4), False, False),
    ("PENDING", (0, 5), False, False),
    ("SUCCESS", (0, 6), False, True),
    ("FAILED", (0, 9), True, False),
    ("CANCELLED", (0, 9), True, False),
    ("EXPIRED", (0, 9), True, False),
    ("INELIGIBLE", (0, 9), True, False),
    ("REVERSED", (0, 10), True, False),
]
# Hyperswitch's payout flow, as moves between statuses.
MOVES = {
    "REQUIRES_CREATION": ["REQUIRES_CONFIRMATION", "REQUIRES_VENDOR_ACCOUNT_CREATION",
                          "REQUIRES_PAYOUT_METHOD_DATA", "FAILED", "INELIGIBLE"],
    "REQUIRES_CONFIRMATION": ["REQUIRES_PAYOUT_METHOD_DATA", "CANCELLED", "EXPIRED"],
    "REQUIRES_VENDOR_ACCOUNT_CREATION": ["REQUIRES_PAYOUT_METHOD_DATA", "FAILED"],
    "REQUIRES_PAYOUT_METHOD_DATA": ["REQUIRES_FULFILLMENT", "CANCELLED", "EXPIRED"],
    "REQUIRES_FULFILLMENT": ["INITIATED", "CANCELLED", "FAILED"],
    "INITIATED": ["PENDING", "SUCCESS", "FAILED"],
    "PENDING": ["SUCCESS", "FAILED"],
    "SUCCESS": ["REVERSED"],
}


@pytest.mark.parametrize("status, position, final, reversible", TABLE)
def test_every_payout_status(status: str, position: tuple[int, int], final: bool,
                             reversible: bool) -> None:
    assert LIFECYCLE.position(StatusReport(status)) == position
    assert LIFECYCLE.payout_status(status) == status  # Prism's own names
    assert (LIFECYCLE.final(status), LIFECYCLE.reversible(status)) == (final, reversible)


def test_every_status_of_the_pinned_proto_is_placed() -> None:
    names = set(pb.PayoutEnums.PayoutStatus.keys()) - {"PAYOUT_STATUS_UNSPECIFIED"}
    assert names == {row[0] for row in TABLE}


@pytest.mark.parametrize("status", ["PAYOUT_STATUS_UNSPECIFIED", "UNSPECIFIED", "NOT_PERMITTED",
                                    "success", ""])
def test_unspecified_and_unknown_statuses_have_no_position(status: str) -> None:
    assert LIFECYCLE.position(StatusReport(status)) is None
    assert LIFECYCLE.payout_status(status) == "PENDING"


def test_the_provider_exposes_it() -> None:
    assert isinstance(PROVIDER.lifecycle, StepLifecycle)


@settings(max_examples=200, deadline=None)
@given(st.randoms(use_true_random=False))
def test_positions_rise_along_every_legal_life(rng: random.Random) -> None:
    life = ["REQUIRES_CREATION"]
    while life[-1] in MOVES and not (life[-1] == "SUCCESS" and rng.random() < 0.5):
        life.append(rng.choice(MOVES[life[-1]]))
    positions = [LIFECYCLE.position(StatusReport(s)) for s in life]
    assert all(a < b for a, b in zip(positions, positions[1:], strict=False)), life
    assert LIFECYCLE.final(life[-1]) or LIFECYCLE.reversible(life[-1])
