"""Many provider calls in flight per worker, with per-link order and safe commits.

Faust handles one event at a time per agent, and ``concurrency>1`` can commit offsets
past events still being processed (faust-streaming #606); its consumer also commits
the first run of consecutive acked offsets without checking that the run starts at
the committed offset. So the agent reads with acks disabled and this module acks:

* work for one link key runs strictly after the previous work for that key;
* at most ``max_in_flight`` pieces of work exist; the agent waits when full;
* an event is acked only when it *and every earlier event of its partition* are done,
  so the committed offset never passes an event whose outcome is not published;
* no other ack reaches the consumer for the request topics (:func:`guard_acks`);
* a stopping worker waits for the work (:meth:`KeyedInFlight.drained`) or abandons it
  (:meth:`KeyedInFlight.abandon`): abandoned work is never acked, so the next owner
  gets its records again, as after a crash;
* work for a partition this worker can no longer prove it owns is abandoned the same
  way, for that partition only (:meth:`KeyedInFlight.abandon_partitions`, fencing in
  :mod:`streams.ownership`): at a rebalance, and when a piece of work is
  :class:`~streams.ownership.Fenced`. Each piece of work runs with its partition in
  context, so every ownership check below it knows which partition to check.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakSet

from faust.types import TP, ConsumerT, EventT, Message

from streams import logs, ownership
from streams.faust_internals import Ack, release_unacked, replace_consumer_ack
from streams.ownership import Fenced

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Slot:
    event: EventT[Any]  # held strongly: Faust's current_event is a weak reference
    done: bool = False
    abandoned: bool = False  # its partition's work was given up: never acked


# Messages whose outcome is published: the only ones guard_acks lets through.
_settled: WeakSet[Message] = WeakSet()
# The consumer attribute holding the topics guard_acks already guards.
_GUARDED_TOPICS = "_payout_guarded_topics"


def guard_acks(consumer: ConsumerT, topics: Iterable[str]) -> None:
    """Let only settled records of ``topics`` count as acked by Faust's consumer.

    Faust acks records it never hands to the agent: those it skips while flow control
    is suspended during a rebalance, or because they were fetched in an older
    generation. If the partition stays with this worker, that ack is committed and the
    seek after the rebalance starts *past* records no one processed. Measured: the
    two-worker chaos test lost 4 of 800 requests this way. A refused ack leaves the
    record uncommitted, so it is fetched again.

    Idempotent: the agent calls this on every (re)start with the same consumer, and
    wrapping the wrapper again would add a layer per restart.
    """
    already = getattr(consumer, _GUARDED_TOPICS, None)
    if already is not None:
        already.update(topics)
        return
    guarded: set[str] = set(topics)

    def settled_only(ack: Ack) -> Ack:
        def ack_if_settled(message: Message) -> bool:
            if message.topic in guarded and message not in _settled:
                release_unacked(consumer, message)
                return False
            return ack(message)
        return ack_if_settled

    replace_consumer_ack(consumer, settled_only)
    setattr(consumer, _GUARDED_TOPICS, guarded)


@dataclass
class OrderedAcks:
    """Acks each partition's events in offset order as their work completes."""

    _pending: dict[TP, deque[_Slot]] = field(default_factory=dict)

    def track(self, event: EventT[Any]) -> _Slot:
        slot = _Slot(event)
        self._pending.setdefault(event.message.tp, deque()).append(slot)
        return slot

    def complete(self, slot: _Slot) -> None:
        if slot.abandoned:
            return  # finished after its partition was given up: the next owner redoes it
        slot.done = True
        queue = self._pending[slot.event.message.tp]
        while queue and queue[0].done:
            event = queue.popleft().event
            _settled.add(event.message)
            event.ack()

    def drop(self, tp: TP) -> list[_Slot]:
        """Forget the partition's pending events: none of them will be acked."""
        slots = list(self._pending.pop(tp, ()))
        for slot in slots:
            slot.abandoned = True
        return slots

    def partitions(self) -> list[TP]:
        return list(self._pending)

    def in_flight(self) -> int:
        return sum(len(q) for q in self._pending.values())


class KeyedInFlight:
    """Runs work concurrently across link keys, sequentially within one key."""

    def __init__(self, max_in_flight: int,
                 on_failure: Callable[[BaseException], Awaitable[Any]], *,
                 release: Callable[[Message], None] | None = None,
                 on_fenced: Callable[[TP, Fenced], None] | None = None) -> None:
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tails: dict[str, asyncio.Task[None]] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._by_partition: dict[TP, set[asyncio.Task[None]]] = {}
        self._abandonments: dict[TP, int] = {}  # per partition: how often given up
        # Hands an abandoned event back to the consumer as not acked (so a rebalance
        # does not wait for it); and what to do when a piece of work is fenced.
        self._release = release
        self._on_fenced = on_fenced
        self._acks = OrderedAcks()
        self._on_failure = on_failure
        # The loop keeps only weak references to tasks: a failure report nobody holds
        # could be collected before it runs, and the worker would never learn of it.
        self._failure_reports: set[asyncio.Future[Any]] = set()
        self._closed = False
        self.max_in_flight = max_in_flight

    async def submit(self, event: EventT[Any], key: str,
                     work: Callable[[], Awaitable[None]]) -> None:
        """Start ``work`` for ``event``; returns once it is scheduled (backpressure).

        Once closed, nothing starts: the event stays unacked for the next owner.
        """
        tp = event.message.tp
        abandoned_before = self._abandonments.get(tp, 0)
        await self._slots.acquire()
        if self._closed:
            self._slots.release()
            return
        if self._abandonments.get(tp, 0) != abandoned_before:
            # Its partition's work was given up while this waited for a slot: it goes
            # with the rest (acking it would commit past the abandoned records).
            self._slots.release()
            if self._release is not None:
                self._release(event.message)
            return
        slot = self._acks.track(event)
        previous = self._tails.get(key)
        # The task copies this context, so Faust's current event (which table writes
        # use to pick the changelog partition) is this event inside ``work``, and every
        # ownership check inside it checks this partition.
        token = ownership.working_on(tp)
        # Every line logged about this work carries its key (streams.logs).
        correlation = logs.CORRELATION.set(key)
        try:
            task = asyncio.create_task(self._run(previous, work))
        finally:
            logs.CORRELATION.reset(correlation)
            ownership.reset(token)
        self._tails[key] = task
        self._running.add(task)
        self._by_partition.setdefault(tp, set()).add(task)
        task.add_done_callback(lambda t: self._finished(t, key, slot))

    @property
    def running(self) -> int:
        """Pieces of work started and not yet finished (for /metrics)."""
        return len(self._running)

    def close(self) -> None:
        """Stopping: start no new work (what runs may finish, see :meth:`drained`)."""
        self._closed = True

    def abandon(self) -> int:
        """Stop: cancel all work in flight and start no more; none of it is ever acked.

        Safe for money because a crash is: a link whose call may have been sent is
        ``creating`` in the table, and its redelivered request looks it up first.
        Returns how many pieces of work were cancelled.
        """
        self._closed = True
        cancelled = [task for task in self._running if task.cancel()]
        return len(cancelled)

    def abandon_partitions(self, tps: Iterable[TP] | None = None) -> int:
        """Give up all work of ``tps`` (all partitions when None), and keep running.

        Queued, waiting and running work is cancelled; its events are never acked and
        are handed back to the consumer as not acked, so a rebalance need not wait for
        them. Their records stay as they are (``creating`` at worst) for whoever owns
        the partition next -- this worker again, after a rewind, or another.
        Returns how many pieces of work were cancelled.
        """
        chosen = set(self._acks.partitions()) | set(self._by_partition) if tps is None \
            else set(tps)
        cancelled = 0
        for tp in chosen:
            self._abandonments[tp] = self._abandonments.get(tp, 0) + 1
            for task in self._by_partition.pop(tp, set()):
                cancelled += task.cancel()
            for slot in self._acks.drop(tp):
                if self._release is not None:
                    self._release(slot.event.message)
        return cancelled

    async def drained(self, timeout: float) -> bool:
        """Wait until no work is in flight; False if some still is after ``timeout``."""
        if self._running:
            await asyncio.wait(set(self._running), timeout=timeout)
        return not self._running

    def complete_now(self, event: EventT[Any]) -> None:
        """For events handled inline: ack in order with the ones in flight."""
        self._acks.complete(self._acks.track(event))

    async def _run(self, previous: asyncio.Task[None] | None,
                   work: Callable[[], Awaitable[None]]) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        await work()

    def _finished(self, task: asyncio.Task[None], key: str, slot: _Slot) -> None:
        self._running.discard(task)
        tasks = self._by_partition.get(slot.event.message.tp)
        if tasks is not None:
            tasks.discard(task)
        try:
            self._settle_slot(task, key, slot)
        except Exception as exc:  # a bug here would stall the partition silently
            log.critical("ack bookkeeping failed for %s", key, exc_info=exc)
            self._report_failure(exc)

    def _report_failure(self, exc: BaseException) -> None:
        """The fatal path (the worker exits); held until it has run."""
        report = asyncio.ensure_future(self._on_failure(exc))
        self._failure_reports.add(report)
        report.add_done_callback(self._failure_reports.discard)

    def _settle_slot(self, task: asyncio.Task[None], key: str, slot: _Slot) -> None:
        self._slots.release()
        if self._tails.get(key) is task:
            del self._tails[key]
        if task.cancelled():
            return  # abandoned: leave it unacked, it will be redelivered
        exc = task.exception()
        if isinstance(exc, Fenced):
            # Not ours any more (or not provably): nothing of this partition may go on.
            tp = slot.event.message.tp
            self.abandon_partitions([tp])
            if self._on_fenced is not None:
                self._on_fenced(tp, exc)
            return
        if exc is not None:
            # Not acked: the event is redelivered after the worker restarts.
            log.critical("unexpected failure settling %s", key, exc_info=exc)
            self._report_failure(exc)
            return
        self._acks.complete(slot)

    def in_flight(self) -> int:
        return self._acks.in_flight()
