"""Every offset of an owned request partition reaches the processor, or is fetched again.

Faust can lose records between its fetcher and the agent around a rebalance, and
then commit past them. Measured in the two-worker chaos test (session 2): a record
fetched just before a revoke never reached the agent, the partition came back three
seconds later with the consumer positioned *after* it, and Faust's commit (which
commits the first run of consecutive acked offsets without checking where the run
starts) moved past it: one request without an outcome, forever. Other runs stalled
with the tail of a partition fetched but never delivered.

So the agent does not trust delivery. Per partition, :class:`PartitionCursor` knows
the next offset the processor must see, starting from the group's committed offset
(or the log start when nothing is committed). An offset below it is a re-delivery of
something already handed over (skipped); an offset above it is a gap. A gap is
checked against the broker with a separate group-less consumer: if the broker has
deliverable records in it, the partition is sought back to the first one and
everything else on that partition is skipped until it arrives; if not (transaction
markers, compaction), the gap is real and accepted. A watchdog catches a lost tail
(nothing arriving while the fetch position is past the cursor) and seeks lost in a
busy fetch buffer. Acks stay in offset order (:class:`streams.inflight.OrderedAcks`),
so with no holes in what is handed over, commits never pass an unprocessed record.
"""
from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP, ConsumerT, EventT
from mode import Service

from streams.faust_internals import (
    committed_offset,
    forget_gap_at,
    release_unacked,
    seek_without_wait,
)

log = logging.getLogger(__name__)


class Verdict(enum.Enum):
    PROCESS = "process"
    REDELIVERED = "redelivered"  # below the cursor: already handed to the processor
    AWAITING_SEEK = "awaiting-seek"  # a seek back is pending; this one comes again
    GAP = "gap"


@dataclass
class PartitionCursor:
    """The pure bookkeeping for one partition; the clock is passed in.

    While ``seeking``, the sought offset is ``next_offset`` and ``since`` is when the
    seek was sent; otherwise ``since`` is when the partition last handed a record over.
    """

    next_offset: int
    seeking: bool = False
    since: float = field(default=0.0)

    def classify(self, offset: int) -> Verdict:
        if self.seeking:
            if offset != self.next_offset:
                return Verdict.AWAITING_SEEK
            self.seeking = False
        if offset == self.next_offset:
            return Verdict.PROCESS
        if offset < self.next_offset:
            return Verdict.REDELIVERED
        return Verdict.GAP

    def handed_over(self, offset: int, now: float) -> None:
        self.next_offset = offset + 1
        self.since = now

    def seek_back(self, offset: int, now: float) -> None:
        self.next_offset = offset
        self.seeking = True
        self.since = now


class GapProbe(Protocol):
    async def first_offset(self, tp: TP, start: int, end: int) -> int | None:
        """First deliverable offset in ``[start, end)``, ``end`` if none, None if unknown."""


class BrokerGapProbe:
    """Asks the broker directly, with a consumer outside the group, what a gap holds."""

    def __init__(self, bootstrap_servers: str, timeout_s: float = 5.0) -> None:
        self._bootstrap = bootstrap_servers
        self._timeout_ms = int(timeout_s * 1000)
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def first_offset(self, tp: TP, start: int, end: int) -> int | None:
        async with self._lock:
            try:
                consumer = await self._started()
                ktp = TopicPartition(tp.topic, tp.partition)
                consumer.assign([ktp])
                consumer.seek(ktp, start)
                batch = await consumer.getmany(ktp, timeout_ms=self._timeout_ms, max_records=1)
            except Exception as exc:  # the check itself failing must not stop the worker
                log.warning("gap probe on %s/%s failed: %r", tp.topic, tp.partition, exc)
                return None
        records = batch.get(ktp, [])
        if not records:
            # Nothing at or after `start` within the timeout: only trust that if the
            # gap is the whole remaining log, i.e. never; report unknown.
            return None
        return min(cast(int, records[0].offset), end)

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None,
                                        enable_auto_commit=False, auto_offset_reset="none")
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None


class InjectedLoss:
    """A test fault: lose listed records once, the way Faust's rebalance paths did.

    ``PAYOUT_FAULT_LOSE_DELIVERIES="topic/partition/offset,..."``; empty in production.
    """

    def __init__(self, spec: str = "") -> None:
        self._pending: set[tuple[str, int, int]] = set()
        for item in filter(None, (part.strip() for part in spec.split(","))):
            topic, partition, offset = item.rsplit("/", 2)
            self._pending.add((topic, int(partition), int(offset)))

    def take(self, topic: str, partition: int, offset: int) -> bool:
        if not self._pending:  # production: one falsy check per record
            return False
        key = (topic, partition, offset)
        if key in self._pending:
            self._pending.discard(key)
            log.warning("fault injection: losing %s/%d/%d before the agent", *key)
            return True
        return False


class DeliveryGuard:
    """Admits each request record exactly once per ownership, in offset order."""

    def __init__(self, consumer: ConsumerT, topics: Iterable[str], probe: GapProbe,
                 *, stall_after_s: float = 5.0, lost_after_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 injected_loss: InjectedLoss | None = None,
                 settled: Callable[[], bool] = lambda: True) -> None:
        self._consumer = consumer
        # False while a rebalance and its table recovery are under way: Faust keeps the
        # request partitions paused until the link table is recovered, and a record
        # handled before then finds no record of a link the previous owner created.
        self._settled = settled
        self._topics = frozenset(topics)
        self._probe = probe
        self._cursors: dict[TP, PartitionCursor] = {}
        self._stall_after_s = stall_after_s
        # A partition whose fetch position is past its cursor but that handed nothing
        # over for this long is suspected even while other partitions keep the agent
        # busy: fetched records wait behind other partitions' for seconds, not this.
        self._lost_after_s = 4 * stall_after_s if lost_after_s is None else lost_after_s
        self._clock = clock
        self._last_admitted_at = clock()
        self._injected_loss = injected_loss or InjectedLoss()
        self._held: set[TP] = set()
        self.seeks = 0

    async def admit(self, event: EventT[Any]) -> bool:
        """True if the processor must handle ``event``; False if it is skipped."""
        message = event.message
        if message.topic not in self._topics:
            return True
        tp, offset = message.tp, message.offset
        if tp in self._held or self._injected_loss.take(message.topic, message.partition,
                                                         offset):
            release_unacked(self._consumer, message)
            return False
        cursor = self._cursors.get(tp)
        if cursor is None:
            cursor = self._cursors[tp] = PartitionCursor(await self._start_offset(tp),
                                                         since=self._clock())
        verdict = cursor.classify(offset)
        if verdict is Verdict.GAP:
            verdict = await self._resolve_gap(tp, cursor, offset)
        if verdict is Verdict.PROCESS:
            self._last_admitted_at = now = self._clock()
            cursor.handed_over(offset, now)
            forget_gap_at(self._consumer, tp, offset)  # acked by us, not by Faust's gap
            return True
        release_unacked(self._consumer, message)
        return False

    def next_offset(self, tp: TP) -> int | None:
        """Where delivery of ``tp`` resumes (its cursor; from the committed offset at the
        start), or None before the guard has a cursor for it."""
        cursor = self._cursors.get(tp)
        return cursor.next_offset if cursor is not None else None

    def settled(self) -> bool:
        """Whether no rebalance or table recovery is under way: only then may a
        partition be resumed, sought or rewound."""
        return self._settled()

    def reset(self) -> None:
        """Ownership changed: every partition starts again from its committed offset."""
        self._cursors.clear()
        self._held.clear()

    def hold(self, tp: TP) -> None:
        """Admit nothing of ``tp`` until :meth:`rewind`: its work was abandoned (fenced)."""
        self._held.add(tp)
        self._cursors.pop(tp, None)

    def held(self) -> set[TP]:
        return set(self._held)

    async def rewind(self, tp: TP) -> None:
        """Start ``tp`` again from its committed offset: what was abandoned comes back."""
        start = await self._start_offset(tp)
        cursor = self._cursors[tp] = PartitionCursor(start, since=self._clock())
        self._held.discard(tp)
        log.warning("%s/%s: fetching again from the committed offset %d after abandoned work",
                    tp.topic, tp.partition, start)
        await self._seek(tp, cursor, start)

    async def watch(self) -> None:
        """Re-seek what a busy fetch buffer swallowed; find tails that never arrived.

        A partition whose records were fetched but never handed over is only suspected
        while the agent as a whole is starving: when it is busy, they may simply be
        queued behind other partitions'. One not even fetched is suspected either way.
        """
        if not self.settled():
            # Faust paused the partitions until their tables are recovered: resuming or
            # seeking one now would hand records over before the table knows them. The
            # timers start once the rebalance has ended (reset() cleared them).
            return
        now = self._clock()
        starving = now - self._last_admitted_at >= self._stall_after_s
        # A partition this worker took over but that never handed a record over is
        # watched too: a new owner whose fetcher never serves a taken-over partition
        # would otherwise wait for ever (measured: survivors idle with requests waiting).
        for tp in sorted(self._owned() - self._cursors.keys() - self._held):
            start = await self._start_offset(tp)
            self._cursors.setdefault(tp, PartitionCursor(start, since=now))
        for tp, cursor in list(self._cursors.items()):
            if self._cursors.get(tp) is not cursor or tp not in self._consumer.assignment():
                continue
            if cursor.seeking:
                if now - cursor.since >= self._stall_after_s:
                    log.warning("seek of %s/%s to %d not yet served; seeking again",
                                tp.topic, tp.partition, cursor.next_offset)
                    await self._seek(tp, cursor, cursor.next_offset)
                continue
            if now - cursor.since < self._stall_after_s:
                continue
            position = await asyncio.wait_for(self._consumer.position(tp), self._stall_after_s)
            if position is None or position <= cursor.next_offset:
                # Not even fetched: does the broker hold records the agent never saw?
                # Checked busy or not: the fetcher serves every partition it fetches at
                # all within a few polls, so a partition not fetched for the stall bound
                # while the broker holds records is stuck (a take-over under load).
                await self._restart_unfetched(tp, cursor, now)
                continue
            # Fetched but not yet handed over: maybe queued behind other partitions'
            # records while the agent is busy, so suspected only once the agent starves
            # or this partition alone has been silent for far longer (measured: the
            # two-worker chaos test's survivor handled a steady flow of provider
            # reports while four taken-over request partitions never moved).
            if not starving and now - cursor.since < self._lost_after_s:
                continue
            if self._cursors.get(tp) is not cursor:
                continue
            first = await self._probe.first_offset(tp, cursor.next_offset, position)
            if self._cursors.get(tp) is not cursor:
                continue
            if first is not None and first >= position:
                cursor.since = now  # only markers between the cursor and the position
                continue
            # The probe could not say (None): fetching again from the cursor is safe.
            target = cursor.next_offset if first is None else first
            log.warning("%s/%s: fetched up to %d but offsets from %d never reached the "
                        "agent; fetching them again", tp.topic, tp.partition, position,
                        target)
            await self._seek(tp, cursor, target)

    def describe(self) -> list[str]:
        """Each watched partition's cursor, for a stuck worker's SIGUSR2 dump."""
        now, assigned = self._clock(), self._consumer.assignment()
        lines = [f"agent last admitted {now - self._last_admitted_at:.1f}s ago; "
                 f"settled={self.settled()}; held={sorted(map(tuple, self._held))}"]
        for tp, cursor in sorted(self._cursors.items()):
            lines.append(f"{tp.topic}/{tp.partition}: next {cursor.next_offset}, "
                         f"{'seeking' if cursor.seeking else 'handing over'} since "
                         f"{now - cursor.since:.1f}s, assigned={tp in assigned}")
        for tp in sorted(self._owned() - self._cursors.keys()):
            lines.append(f"{tp.topic}/{tp.partition}: owned, no cursor yet")
        return lines

    def _owned(self) -> set[TP]:
        return {tp for tp in self._consumer.assignment() if tp.topic in self._topics}

    async def _restart_unfetched(self, tp: TP, cursor: PartitionCursor, now: float) -> None:
        """Records past the cursor that were never fetched: resume the partition (in case
        it was left paused around a rebalance) and fetch again from the cursor."""
        ends = await asyncio.wait_for(self._consumer.highwaters(tp), self._stall_after_s)
        end = ends.get(tp)
        if end is None or end <= cursor.next_offset or self._cursors.get(tp) is not cursor:
            cursor.since = now
            return
        first = await self._probe.first_offset(tp, cursor.next_offset, end)
        if self._cursors.get(tp) is not cursor:
            return
        if first is not None and first >= end:
            cursor.since = now  # only markers past the cursor: nothing to fetch
            return
        if first is None:
            # The probe could not say within its timeout (a busy broker, or the probe's
            # fetch not yet served). Waiting for a better answer left a taken-over
            # partition unfetched for good in the two-worker chaos test; fetching again
            # from the cursor is always safe: nothing past it was handed over.
            first = cursor.next_offset
        log.warning("%s/%s: offsets from %d up to %d were never fetched for this owner; "
                    "resuming the partition and fetching them", tp.topic, tp.partition,
                    first, end)
        self._consumer.resume_partitions({tp})
        await self._seek(tp, cursor, first)

    async def _resolve_gap(self, tp: TP, cursor: PartitionCursor, offset: int) -> Verdict:
        first = await self._probe.first_offset(tp, cursor.next_offset, offset)
        if self._cursors.get(tp) is not cursor:  # a rebalance happened meanwhile
            return Verdict.AWAITING_SEEK
        if first is not None and first >= offset:
            log.info("%s/%s: offsets %d..%d hold no records (markers or compaction)",
                     tp.topic, tp.partition, cursor.next_offset, offset - 1)
            return Verdict.PROCESS
        target = cursor.next_offset if first is None else first
        log.warning("%s/%s: got offset %d but %d was never delivered; fetching again from %d",
                    tp.topic, tp.partition, offset, cursor.next_offset, target)
        await self._seek(tp, cursor, target)
        return Verdict.AWAITING_SEEK

    async def _seek(self, tp: TP, cursor: PartitionCursor, offset: int) -> None:
        cursor.seek_back(offset, self._clock())
        self.seeks += 1
        # In the consumer's thread, without Faust's wait for the new position.
        await seek_without_wait(self._consumer, tp, offset)

    async def _start_offset(self, tp: TP) -> int:
        """The group's committed offset, asked of the broker; else the log start.

        Not Faust's cached copy: it can lag a rebalance, and starting below the real
        committed offset would replay a partition from its beginning.
        """
        committed = await committed_offset(self._consumer, tp)
        if committed is not None and committed > 0:
            return committed
        earliest = await self._consumer.earliest_offsets(tp)
        return earliest.get(tp) or 0

async def every(interval_s: float, job: Callable[[], Awaitable[None]], owner: Service) -> None:
    """Run ``job`` every ``interval_s`` for as long as ``owner`` runs.

    Start it with ``owner.add_future`` so the owner also cancels it when it stops. It
    ends by itself once the owner is stopping or crashed: the watchdog talks to the
    consumer, which is gone by then. A closed event loop means exactly that (the
    consumer thread has ended); if the owner does not know yet, that is fatal: a
    worker that can no longer consume must exit, not tick on.
    """
    while not owner.should_stop:
        await owner.sleep(interval_s)
        if owner.should_stop:
            return
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except RuntimeError as exc:
            if "Event loop is closed" not in str(exc):
                log.exception("delivery watchdog failed")
                continue
            if not owner.should_stop:
                log.critical("delivery watchdog: the consumer's event loop is closed")
                await owner.crash(exc)
            return
        except Exception:  # a failed check is retried at the next tick
            log.exception("delivery watchdog failed")
