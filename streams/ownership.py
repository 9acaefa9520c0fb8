"""Fencing: a provider call for a link starts only while this worker can prove it owns
the link's partition.

Why: a worker that is paused (SIGSTOP, a long GC, a frozen VM) or cut off from Kafka
loses its partitions once its group session expires, and another worker takes them
over. When the old owner wakes up it would send the creates it had queued, and a
provider without an idempotency key (one of ours has none on its link API) makes a
second link for each. See docs/architecture.md, "Fencing", for the argument.

The proof is a **lease**, renewed only by a round trip the group coordinator accepted
(a heartbeat or a SyncGroup answered without error: :func:`streams.faust_internals.
on_group_round_trip`), dated from when that request was *sent*, and shorter than the
group session. While the lease holds, the coordinator has heard from this worker less
than a session ago, so it has not given the partitions to anyone. The clock is
``CLOCK_BOOTTIME``: it counts time the process was stopped and time the whole machine
was suspended, so a pause between the check and the send shows up as an expired lease.
A rebalance revokes the lease at once (in the consumer thread, before the main loop
hears of it); heartbeats answered "rebalancing" do not renew it.

The check runs immediately before each provider send, table write and outcome publish
of a link (:func:`require_ownership`). A failed check raises :class:`Fenced`: the work
is abandoned where it stands, unacked, and its record stays as it is (``creating``)
for the next owner, which waits out the old owner's longest possible call
(:attr:`LeaseTerms.handover_wait_s`) before its first lookup of such a link.
"""
from __future__ import annotations

import contextvars
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from faust.types import TP

log = logging.getLogger(__name__)


def pause_counting_clock() -> float:
    """Seconds on a clock that keeps counting while the process or machine is stopped."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class Fenced(Exception):
    """This worker can no longer prove it owns the link's partition: stop, touch nothing."""

    def __init__(self, tp: TP | None, why: str) -> None:
        where = f"{tp.topic}[{tp.partition}]" if tp is not None else "(no partition)"
        super().__init__(f"not the owner of {where}: {why}")
        self.tp = tp


@dataclass(frozen=True)
class LeaseTerms:
    """How long a coordinator round trip proves ownership, and what a new owner waits.

    ``lease_s`` must be shorter than the group session (the coordinator keeps a silent
    member that long) and longer than the heartbeat interval (or a healthy worker
    would lapse between two heartbeats). ``call_window_s`` is the longest a provider
    call may run once sent: the transport's connect plus read timeouts.
    """

    lease_s: float
    call_window_s: float

    @property
    def handover_wait_s(self) -> float:
        """A new owner's wait before it looks up a link the old owner may be creating."""
        return self.lease_s + self.call_window_s

    @classmethod
    def derive(cls, *, session_timeout_s: float, heartbeat_interval_s: float,
               connect_timeout_s: float, read_timeout_s: float) -> LeaseTerms:
        # Two heartbeats may be lost in a row without the lease lapsing, and it still
        # ends a clear margin before the coordinator would expire the session.
        lease_s = min(session_timeout_s * 0.8, max(heartbeat_interval_s * 2.5,
                                                   session_timeout_s * 0.6))
        if not heartbeat_interval_s < lease_s < session_timeout_s:
            raise ValueError(
                f"no safe ownership lease: heartbeat interval {heartbeat_interval_s:g} s "
                f"must be shorter than the lease {lease_s:g} s, itself shorter than the "
                f"group session {session_timeout_s:g} s (PAYOUT_SESSION_TIMEOUT_S)")
        return cls(lease_s=lease_s, call_window_s=connect_timeout_s + read_timeout_s)


class OwnershipLease:
    """The worker's proof of ownership; renewed from the consumer thread, read in the loop.

    Plain float and set assignments: atomic under the GIL, so the consumer thread can
    renew or revoke while the loop reads without a lock.
    """

    def __init__(self, terms: LeaseTerms, *,
                 clock: Callable[[], float] = pause_counting_clock) -> None:
        self.terms = terms
        self._clock = clock
        self._expires_at = -math.inf
        self._owned: frozenset[TP] = frozenset()
        self._assigned_at: dict[TP, float] = {}
        self.fenced = 0  # pieces of work stopped by a failed check
        # The group generation of the latest assignment: the owner epoch stamped on
        # every table record this worker writes (see :func:`current_epoch`).
        self.epoch = 0

    # --- the consumer thread --------------------------------------------------------

    def renew(self, sent_at: float) -> None:
        """The coordinator answered a request sent at ``sent_at`` without error."""
        expires_at = sent_at + self.terms.lease_s
        if expires_at > self._expires_at:
            self._expires_at = expires_at

    def revoke(self) -> None:
        """A rebalance began: nothing is provably ours until the next assignment."""
        self._expires_at = -math.inf
        self._owned = frozenset()

    # --- the worker's loop ------------------------------------------------------------

    def assigned(self, tps: Iterable[TP], epoch: int | None = None) -> None:
        if epoch is not None:
            self.epoch = epoch
        now = self._clock()
        tps = frozenset(tps)
        for tp in tps - self._owned:
            self._assigned_at[tp] = now
        self._owned = tps
        for tp in set(self._assigned_at) - tps:
            del self._assigned_at[tp]

    def valid(self) -> bool:
        return self._clock() < self._expires_at

    def holds(self, tp: TP) -> bool:
        return tp in self._owned and self._clock() < self._expires_at

    def require(self, tp: TP, epoch: int | None = None) -> None:
        """``epoch``: the assignment the work began under; work that began under an
        earlier one is stale even when the partition is ours again (it was abandoned at
        the rebalance between, and the next owner may have settled its link since)."""
        if epoch is not None and epoch != self.epoch:
            self.fenced += 1
            raise Fenced(tp, f"the work began under generation {epoch}; the partitions "
                             f"were reassigned since (generation {self.epoch})")
        if tp not in self._owned:
            self.fenced += 1
            raise Fenced(tp, "the partition is not assigned to this worker")
        left = self._expires_at - self._clock()
        if left <= 0:
            self.fenced += 1
            raise Fenced(tp, "the ownership lease lapsed "
                         f"{-left:.1f} s ago (no coordinator round trip since)"
                         if math.isfinite(left) else "the ownership lease was revoked")

    def handover_left(self, tp: TP) -> float:
        """Seconds until a link the previous owner may be creating can be looked up."""
        assigned_at = self._assigned_at.get(tp)
        if assigned_at is None:
            return 0.0
        return max(0.0, assigned_at + self.terms.handover_wait_s - self._clock())


# The partition of the link the current task works on and the owner epoch it began
# under, set by KeyedInFlight for each piece of work (a task copies the context it was
# created in); checked against the installed lease. Contextual, so the provider
# transport can check right before its send without knowing partitions; unset (None)
# outside a worker: nothing to check.
_current_work: contextvars.ContextVar[tuple[TP, int] | None] = contextvars.ContextVar(
    "payout_link_work", default=None)
_lease: OwnershipLease | None = None


def install(lease: OwnershipLease | None) -> None:
    """Make ``lease`` the one every check in this process is made against."""
    global _lease
    _lease = lease


def installed() -> OwnershipLease | None:
    return _lease


def working_on(tp: TP | None) -> contextvars.Token[tuple[TP, int] | None]:
    """Work on ``tp`` begins: under the epoch of the assignment that gave us ``tp``."""
    lease = _lease
    return _current_work.set(None if tp is None else (tp, lease.epoch if lease else 0))


def require_ownership() -> None:
    """Raise :class:`Fenced` unless the current link's partition is provably ours."""
    lease = _lease
    if lease is None:
        return
    work = _current_work.get()
    if work is not None:
        lease.require(*work)


def reset(token: contextvars.Token[tuple[TP, int] | None]) -> None:
    _current_work.reset(token)


def current_partition() -> TP | None:
    work = _current_work.get()
    return work[0] if work is not None else None


def current_epoch() -> int:
    """The owner epoch of the current work: the group generation of the assignment under
    which it began (0 outside a worker, or without fencing).

    Every record a worker writes carries the highest of this and the epoch of the record
    it read, so a record only ever moves to the same or a later epoch; a write from an
    owner that lost the partition carries an older epoch than its successor's and
    loses to it whatever order the changelog holds them in (:func:`supersedes`).
    """
    work = _current_work.get()
    return work[1] if work is not None else 0


def supersedes(incoming_epoch: int, stored_epoch: int) -> bool:
    """Whether a changelog record of ``incoming_epoch`` may replace one of
    ``stored_epoch``: the same owner (later writes win, in log order) or a later one."""
    return incoming_epoch >= stored_epoch
