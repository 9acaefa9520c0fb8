"""Fencing (streams.ownership): the lease, the checks, and abandoning a partition's work.

The two-worker pause test on a real broker is tests/integration/test_fencing.py; these
pin the rules it relies on.
"""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.types import TP

from streams import ownership
from streams.connectors.base import LinkCreated, Transient
from streams.connectors.guard import ProviderGuard
from streams.inflight import KeyedInFlight
from streams.ownership import Fenced, LeaseTerms, OwnershipLease
from tests.unit.test_processor import FakeEvent, FakeMessage as _FakeMessage

P0, P1 = TP("payout-link-requested", 0), TP("payout-link-requested", 1)


class FakeMessage(_FakeMessage):
    @property
    def tp(self) -> TP:  # type: ignore[override]
        return TP(self.topic, self.partition)


async def settled(in_flight: KeyedInFlight) -> None:
    """Until nothing is in flight, with a deadline: a stuck slot fails, never hangs."""
    async def empty() -> None:
        while in_flight.in_flight():
            await asyncio.sleep(0.001)
    await asyncio.wait_for(empty(), 5)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lease(clock: Clock, lease_s: float = 6.0, window_s: float = 12.0) -> OwnershipLease:
    return OwnershipLease(LeaseTerms(lease_s=lease_s, call_window_s=window_s), clock=clock)


@pytest.fixture(autouse=True)
def no_lease_left_installed() -> Any:
    yield
    ownership.install(None)


def test_a_lease_holds_from_the_round_trip_send_time_and_lapses_after_lease_s() -> None:
    clock = Clock()
    owned = lease(clock)
    owned.assigned([P0])
    assert not owned.holds(P0)  # no round trip yet: nothing is provably ours
    owned.renew(sent_at=clock.now - 1.0)
    assert owned.holds(P0)
    clock.now += 4.9
    assert owned.holds(P0)
    clock.now += 0.2  # 6.1 s after the heartbeat was sent
    assert not owned.holds(P0)
    with pytest.raises(Fenced, match="lapsed"):
        owned.require(P0)


def test_an_older_round_trip_never_shortens_the_lease() -> None:
    clock = Clock()
    owned = lease(clock)
    owned.assigned([P0])
    owned.renew(sent_at=clock.now)
    owned.renew(sent_at=clock.now - 5.0)  # a slow answer to an earlier heartbeat
    clock.now += 5.5
    assert owned.holds(P0)


def test_revocation_ends_the_lease_at_once_and_unassigned_partitions_never_hold() -> None:
    clock = Clock()
    owned = lease(clock)
    owned.assigned([P0])
    owned.renew(sent_at=clock.now)
    assert not owned.holds(P1)
    with pytest.raises(Fenced, match="not assigned"):
        owned.require(P1)
    owned.revoke()
    assert not owned.holds(P0)
    with pytest.raises(Fenced):
        owned.require(P0)


def test_a_taken_over_partition_waits_out_the_previous_owners_lease_and_call() -> None:
    clock = Clock()
    owned = lease(clock, lease_s=6.0, window_s=12.0)
    owned.assigned([P0])
    assert owned.handover_left(P0) == pytest.approx(18.0)
    clock.now += 10
    owned.assigned([P0, P1])  # P0 kept: its clock does not restart
    assert owned.handover_left(P0) == pytest.approx(8.0)
    assert owned.handover_left(P1) == pytest.approx(18.0)
    clock.now += 20
    assert owned.handover_left(P0) == owned.handover_left(P1) == 0.0


def test_derived_terms_fit_between_the_heartbeat_and_the_session() -> None:
    for session in (3.0, 6.0, 10.0, 30.0, 45.0):
        hb = min(3.0, session / 3)
        terms = LeaseTerms.derive(session_timeout_s=session, heartbeat_interval_s=hb,
                                  connect_timeout_s=2, read_timeout_s=10)
        assert hb < terms.lease_s < session
        assert terms.handover_wait_s == terms.lease_s + 12
    with pytest.raises(ValueError, match="PAYOUT_SESSION_TIMEOUT_S"):
        LeaseTerms.derive(session_timeout_s=10, heartbeat_interval_s=9,
                          connect_timeout_s=2, read_timeout_s=10)


def test_a_check_outside_any_link_work_or_without_a_lease_passes() -> None:
    ownership.require_ownership()  # nothing installed
    clock = Clock()
    ownership.install(lease(clock))
    ownership.require_ownership()  # installed, but no link's work is current
    token = ownership.working_on(P0)
    try:
        with pytest.raises(Fenced):
            ownership.require_ownership()
    finally:
        ownership.reset(token)


async def test_a_fenced_piece_of_work_abandons_its_partition_and_acks_nothing_of_it() -> None:
    clock = Clock()
    owned = lease(clock)
    owned.assigned([P0, P1])
    owned.renew(sent_at=clock.now)
    ownership.install(owned)
    released: list[int] = []
    fenced: list[TP] = []
    in_flight = KeyedInFlight(16, _never, release=lambda m: released.append(m.offset),
                              on_fenced=lambda tp, exc: fenced.append(tp))
    gate = asyncio.Event()
    ran_after: list[int] = []

    def msg(partition: int, offset: int) -> FakeMessage:
        m = FakeMessage("payout-link-requested", partition, offset, None, None)
        return m

    async def checked(offset: int) -> None:
        await gate.wait()
        ownership.require_ownership()  # what the processor does before each step
        ran_after.append(offset)

    acked: list[int] = []
    for offset in range(3):
        await in_flight.submit(FakeEvent(msg(0, offset), acked), f"k{offset}",
                               lambda o=offset: checked(o))
    other: list[int] = []
    await in_flight.submit(FakeEvent(msg(1, 0), other), "p1", lambda: checked(100))
    owned.assigned([P1])  # P0 taken away
    gate.set()
    await settled(in_flight)
    assert set(fenced) == {P0}  # reported by each piece that hit the check
    assert acked == [] and sorted(released) == [0, 1, 2]  # all of P0 given back unacked
    assert other == [0] and ran_after == [100]  # P1's work went on


async def test_work_waiting_for_a_slot_goes_with_its_abandoned_partition() -> None:
    released: list[int] = []
    in_flight = KeyedInFlight(1, _never, release=lambda m: released.append(m.offset))
    gate = asyncio.Event()
    acked: list[int] = []

    async def hold() -> None:
        await gate.wait()

    async def quick() -> None:
        return None

    m0 = FakeMessage("t", 0, 0, None, None)
    m1 = FakeMessage("t", 0, 1, None, None)
    await in_flight.submit(FakeEvent(m0, acked), "a", hold)
    waiting = asyncio.ensure_future(in_flight.submit(FakeEvent(m1, acked), "b", quick))
    await asyncio.sleep(0)
    assert not waiting.done()
    assert in_flight.abandon_partitions([m0.tp]) == 1  # type: ignore[list-item]
    await asyncio.wait_for(waiting, 5)
    await settled(in_flight)
    await asyncio.sleep(0)
    # Acking offset 1 would have committed past offset 0, which nobody settled.
    assert acked == [] and sorted(released) == [0, 1]


async def test_the_guard_lets_fencing_through_without_counting_it_against_the_provider() -> None:
    guard = ProviderGuard("p", rate_per_s=0, failure_threshold=2, open_seconds=60)

    async def fenced() -> Any:
        raise Fenced(P0, "test")

    for _ in range(3):
        with pytest.raises(Fenced):
            await guard.call(fenced)

    async def ok() -> Any:
        return LinkCreated("id", "url", "issued", "issued", None)

    answer = await guard.call(ok)  # the breaker did not open: fencing is not a failure
    assert not isinstance(answer, Transient) and isinstance(answer, LinkCreated)


async def _never(exc: BaseException) -> None:
    raise AssertionError(f"on_fatal called: {exc!r}")


def test_work_begun_under_an_earlier_assignment_is_fenced_though_the_partition_is_ours() -> None:
    """Work abandoned at a rebalance that somehow still runs (a swallowed cancellation)
    must not act once its worker owns the partition again: the next owner may have
    settled the link in between."""
    clock = Clock()
    owned = lease(clock)
    owned.assigned([P0], epoch=5)
    owned.renew(clock.now)
    ownership.install(owned)
    token = ownership.working_on(P0)
    try:
        ownership.require_ownership()  # same assignment: fine
        owned.revoke()
        owned.assigned([P0], epoch=7)  # ours again, later
        owned.renew(clock.now)
        assert owned.holds(P0)
        with pytest.raises(Fenced, match="generation 5"):
            ownership.require_ownership()
    finally:
        ownership.reset(token)
    fresh = ownership.working_on(P0)  # work begun now runs
    try:
        ownership.require_ownership()
    finally:
        ownership.reset(fresh)
