"""No offset of a request partition may be skipped on its way to the processor."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree

from streams.delivery import DeliveryGuard, PartitionCursor, Verdict

REQ = TP("payout-link-requested", 2)


def test_cursor_processes_in_order_and_skips_redeliveries() -> None:
    cursor = PartitionCursor(next_offset=10)
    assert cursor.classify(10) is Verdict.PROCESS
    cursor.handed_over(10, now=1.0)
    assert cursor.classify(9) is Verdict.REDELIVERED
    assert cursor.classify(10) is Verdict.REDELIVERED
    assert cursor.classify(12) is Verdict.GAP
    assert cursor.classify(11) is Verdict.PROCESS


def test_cursor_after_seek_back_waits_for_the_sought_offset() -> None:
    cursor = PartitionCursor(next_offset=22)
    cursor.seek_back(21, now=2.0)
    assert cursor.classify(23) is Verdict.AWAITING_SEEK  # still in the old fetch buffer
    assert cursor.classify(22) is Verdict.AWAITING_SEEK
    assert cursor.classify(21) is Verdict.PROCESS
    cursor.handed_over(21, now=3.0)
    assert cursor.classify(22) is Verdict.PROCESS


@dataclass
class FakeConsumer:
    committed: dict = field(default_factory=dict)
    earliest: int = 0
    positions: dict = field(default_factory=dict)
    sought: list = field(default_factory=list)
    _unacked_messages: set = field(default_factory=set)
    _gap: dict = field(default_factory=lambda: defaultdict(IntervalTree))
    extra_assigned: set = field(default_factory=set)
    ends: dict = field(default_factory=dict)
    resumed: set = field(default_factory=set)

    @property
    def _committed_offset(self) -> dict:
        return self.committed

    async def earliest_offsets(self, *tps):
        return {tp: self.earliest for tp in tps}

    async def seek(self, tp, offset) -> None:
        self.sought.append((tp, offset))

    async def position(self, tp):
        return self.positions.get(tp)

    def assignment(self):
        return {REQ, *self.extra_assigned}

    async def highwaters(self, *tps):
        return {tp: self.ends.get(tp, 0) for tp in tps}

    def resume_partitions(self, tps) -> None:
        self.resumed.update(tps)


@dataclass
class FakeProbe:
    """The broker's view: which offsets hold deliverable records."""
    deliverable: set[int]
    calls: list = field(default_factory=list)

    async def first_offset(self, tp, start, end):
        self.calls.append((start, end))
        return min((o for o in self.deliverable if start <= o < end), default=end)


@dataclass(eq=False)
class Msg:
    topic: str
    partition: int
    tp: TP
    offset: int


def event(offset: int, tp: TP = REQ):
    return SimpleNamespace(message=Msg(tp.topic, tp.partition, tp, offset))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def guard(consumer, probe, clock=None) -> DeliveryGuard:
    return DeliveryGuard(consumer, ["payout-link-requested"], probe, stall_after_s=5,
                         clock=clock or Clock())


async def test_starts_at_the_committed_offset_and_skips_what_is_below() -> None:
    consumer = FakeConsumer(committed={REQ: 5})
    g = guard(consumer, FakeProbe(set(range(100))))
    assert not await g.admit(event(3))  # redelivered after a seek to committed
    assert await g.admit(event(5))
    assert await g.admit(event(6))


async def test_a_record_lost_before_the_agent_is_fetched_again() -> None:
    # Measured: offset 21 never reached the agent, 22 did (session 2 chaos run).
    consumer = FakeConsumer(committed={REQ: 20})
    probe = FakeProbe(set(range(100)))
    g = guard(consumer, probe)
    assert await g.admit(event(20))
    assert not await g.admit(event(22))
    assert consumer.sought == [(REQ, 21)]
    assert not await g.admit(event(23))  # old fetch buffer, skipped: it comes again
    assert await g.admit(event(21))
    assert await g.admit(event(22))


async def test_no_committed_offset_means_the_log_start() -> None:
    consumer = FakeConsumer(earliest=0)
    g = guard(consumer, FakeProbe(set(range(100))))
    assert not await g.admit(event(22))
    assert consumer.sought == [(REQ, 0)]


async def test_a_gap_without_records_is_accepted() -> None:
    # Transaction markers occupy offsets that are never delivered.
    consumer = FakeConsumer(committed={REQ: 7})
    g = guard(consumer, FakeProbe({7, 9, 10}))
    assert await g.admit(event(7))
    assert await g.admit(event(9))
    assert consumer.sought == []


async def test_an_unanswered_probe_errs_on_fetching_again() -> None:
    class Silent(FakeProbe):
        async def first_offset(self, tp, start, end):
            return None

    consumer = FakeConsumer(committed={REQ: 7})
    g = guard(consumer, Silent(set()))
    assert await g.admit(event(7))
    assert not await g.admit(event(9))
    assert consumer.sought == [(REQ, 8)]


async def test_skipped_records_do_not_hold_up_a_rebalance() -> None:
    consumer = FakeConsumer(committed={REQ: 5})
    g = guard(consumer, FakeProbe(set(range(100))))
    e = event(3)
    consumer._unacked_messages.add(e.message)
    assert not await g.admit(e)
    assert e.message not in consumer._unacked_messages


async def test_other_topics_pass_untouched() -> None:
    g = guard(FakeConsumer(), FakeProbe(set()))
    assert await g.admit(event(99, TP("something-else", 0)))


async def handed_over_10(position: int) -> tuple[Clock, FakeConsumer, DeliveryGuard]:
    """Offset 10 reached the agent; the consumer has fetched up to ``position``."""
    clock = Clock()
    consumer = FakeConsumer(committed={REQ: 10}, positions={REQ: position})
    g = guard(consumer, FakeProbe(set(range(100))), clock)
    assert await g.admit(event(10))
    return clock, consumer, g


async def test_a_lost_tail_is_found_when_the_agent_starves() -> None:
    clock, consumer, g = await handed_over_10(position=15)
    clock.now = 4.0
    await g.watch()
    assert consumer.sought == []  # not yet starving
    clock.now = 6.0
    await g.watch()
    assert consumer.sought == [(REQ, 11)]
    clock.now = 12.0  # the seek was swallowed by an old fetch buffer: seek again
    await g.watch()
    assert consumer.sought == [(REQ, 11), (REQ, 11)]


async def test_a_fetched_partition_silent_for_long_is_fetched_again_while_others_keep_the_agent_busy(
) -> None:
    """Measured in the two-worker chaos test: the survivor handled a steady flow of
    provider reports, so it never starved, while four taken-over request partitions,
    fetched past their cursors, never handed a record over."""
    clock, consumer, g = await handed_over_10(position=15)
    busy = TP("payout-link-requested", 6)
    consumer.committed[busy] = 0
    for second in range(1, 30):
        clock.now = float(second)
        assert await g.admit(event(second - 1, busy))  # the agent is never starving
        await g.watch()
        if second < 20:
            assert consumer.sought == [], second  # maybe queued behind the busy one
        elif second == 20:
            assert consumer.sought == [(REQ, 11)]
    assert set(consumer.sought) == {(REQ, 11)}  # sought again while the seek is not served


class Unsure:
    """A probe whose fetch never answers within its timeout."""

    async def first_offset(self, tp, start, end):
        return None


async def test_a_fetched_partition_is_fetched_again_when_the_probe_cannot_say() -> None:
    clock = Clock()
    consumer = FakeConsumer(committed={REQ: 10}, positions={REQ: 15})
    g = guard(consumer, Unsure(), clock)
    assert await g.admit(event(10))
    clock.now = 6.0  # starving
    await g.watch()
    assert consumer.sought == [(REQ, 11)]


def test_the_sigusr2_dump_describes_every_cursor() -> None:
    consumer = FakeConsumer(committed={REQ: 10})
    g = guard(consumer, FakeProbe(set()))
    g._cursors[REQ] = PartitionCursor(12, seeking=True)
    lines = g.describe()
    assert any("payout-link-requested/2: next 12, seeking" in line for line in lines), lines


async def test_a_caught_up_partition_is_not_sought() -> None:
    clock, consumer, g = await handed_over_10(position=11)
    clock.now = 60.0
    await g.watch()
    assert consumer.sought == []


async def test_reset_starts_again_from_the_committed_offset() -> None:
    consumer = FakeConsumer(committed={REQ: 10})
    g = guard(consumer, FakeProbe(set(range(100))))
    assert await g.admit(event(10))
    consumer.committed[REQ] = 11
    g.reset()
    assert not await g.admit(event(10))
    assert await g.admit(event(11))


@pytest.mark.parametrize("lost", [{3}, {3, 4, 5}, {0}, {0, 8}])
async def test_any_lost_offsets_are_all_processed_exactly_once(lost: set[int]) -> None:
    """Deliver 0..9 with some offsets dropped; after a seek the broker serves from there.

    (A lost tail, with nothing after it to reveal the gap, is the watchdog's case.)
    """
    consumer = FakeConsumer(committed={})
    g = guard(consumer, FakeProbe(set(range(10))))
    processed: list[int] = []
    stream = [o for o in range(10) if o not in lost]
    while stream:
        offset = stream.pop(0)
        sought = len(consumer.sought)
        if await g.admit(event(offset)):
            processed.append(offset)
        if len(consumer.sought) > sought:  # the broker serves the seek
            stream = list(range(consumer.sought[-1][1], 10))
    assert processed == list(range(10))


async def test_a_taken_over_partition_that_never_delivers_is_fetched_again() -> None:
    """Issue 10: a new owner idle on an empty queue while a partition it took over holds
    records. The watchdog covers partitions that never delivered a record too."""
    other = TP("payout-link-requested", 5)
    consumer = FakeConsumer(committed={other: 40}, positions={other: 40},
                            extra_assigned={other}, ends={other: 52})
    now = [100.0]
    guard = DeliveryGuard(consumer, ["payout-link-requested"],  # type: ignore[arg-type]
                          FakeProbe(deliverable=set(range(40, 52))), stall_after_s=5.0,
                          clock=lambda: now[0])
    await guard.watch()  # first sight: a cursor from the committed offset, a timer
    assert consumer.sought == []
    now[0] += 6.0  # nothing handed over for longer than the stall bound
    await guard.watch()
    assert (other, 40) in consumer.sought and other in consumer.resumed


async def test_a_partition_never_fetched_is_fetched_again_when_the_probe_cannot_say() -> None:
    """Found by the two-worker chaos test: after a take-over and a restart the new
    owner's fetcher never served four partitions, the gap probe answered nothing within
    its timeout, and the watchdog took that as "nothing to fetch": 391 requests without
    an outcome. Fetching again from the cursor is safe whatever lies past it."""
    other = TP("payout-link-requested", 5)

    class Silent(FakeProbe):
        async def first_offset(self, tp, start, end):  # type: ignore[no-untyped-def]
            return None

    consumer = FakeConsumer(committed={other: 40}, positions={other: 40},
                            extra_assigned={other}, ends={other: 52})
    now = [100.0]
    guard = DeliveryGuard(consumer, ["payout-link-requested"],  # type: ignore[arg-type]
                          Silent(set()), stall_after_s=5.0, clock=lambda: now[0])
    await guard.watch()
    now[0] += 6.0
    await guard.watch()
    assert (other, 40) in consumer.sought and other in consumer.resumed


async def test_an_idle_partition_with_nothing_past_its_cursor_is_left_alone() -> None:
    other = TP("payout-link-requested", 5)
    consumer = FakeConsumer(committed={other: 40}, positions={other: 40},
                            extra_assigned={other}, ends={other: 41})
    now = [100.0]
    guard = DeliveryGuard(consumer, ["payout-link-requested"],  # type: ignore[arg-type]
                          FakeProbe(deliverable=set()), stall_after_s=5.0,
                          clock=lambda: now[0])  # offset 40 is a transaction marker
    await guard.watch()
    now[0] += 6.0
    await guard.watch()
    assert consumer.sought == [] and consumer.resumed == set()


async def test_a_taken_over_partition_is_fetched_again_while_others_keep_the_agent_busy() -> None:
    """Issue 10: no stall on take-over under load. The busy agent is not starving, yet a
    partition that has not even been fetched since its assignment is restarted."""
    other = TP("payout-link-requested", 5)
    consumer = FakeConsumer(committed={REQ: 0, other: 40}, positions={other: 40},
                            extra_assigned={other}, ends={other: 52})
    now = [100.0]
    guard = DeliveryGuard(consumer, ["payout-link-requested"],  # type: ignore[arg-type]
                          FakeProbe(deliverable=set(range(40, 52))), stall_after_s=5.0,
                          clock=lambda: now[0])
    await guard.watch()
    for offset in range(6):  # REQ hands a record over every second: the agent is busy
        now[0] += 1.0
        assert await guard.admit(event(offset))
    consumer.positions[REQ] = 6
    await guard.watch()
    assert (other, 40) in consumer.sought and other in consumer.resumed
    assert all(tp == other for tp, _ in consumer.sought)  # the busy one is left alone


async def test_nothing_is_resumed_or_sought_while_the_tables_are_recovering() -> None:
    """Faust keeps a taken-over partition paused until its link table is recovered; a
    record handled before then finds no record of a link the previous owner created.
    The watchdog waits for the rebalance to end, and its stall timer starts then."""
    other = TP("payout-link-requested", 5)
    consumer = FakeConsumer(committed={other: 40}, positions={other: 40},
                            extra_assigned={other}, ends={other: 52})
    now = [100.0]
    recovering = [True]
    guard = DeliveryGuard(consumer, ["payout-link-requested"],  # type: ignore[arg-type]
                          FakeProbe(deliverable=set(range(40, 52))), stall_after_s=5.0,
                          clock=lambda: now[0], settled=lambda: not recovering[0])
    for _ in range(5):  # a long recovery: far past the stall bound
        await guard.watch()
        now[0] += 6.0
    assert consumer.sought == [] and consumer.resumed == set()
    recovering[0] = False
    await guard.watch()  # the timer starts now, not at the assignment
    assert consumer.sought == []
    now[0] += 6.0
    await guard.watch()
    assert (other, 40) in consumer.sought and other in consumer.resumed


def _faust_commit_point(consumer: FakeConsumer, acked: list[int]) -> int | None:
    """Where Faust's own commit logic (``Consumer._new_offset``) would commit ``REQ``,
    given the offsets acked one by one and the gaps Faust recorded."""
    book = SimpleNamespace(_acked={REQ: list(acked)}, _acked_index={REQ: set(acked)},
                           _gap=consumer._gap, _committed_offset=consumer.committed)
    return Consumer._new_offset(book, REQ)  # type: ignore[arg-type]


async def test_after_a_seek_back_faust_commits_past_the_records_read_again() -> None:
    """Faust saw offsets jump 100 -> 150 (it lost 101..149 before the agent) and took
    101..150 for a hole, acked by itself. The guard seeks back and hands 101..150 over,
    each acked. Measured in the soak: with the jump still counted, every offset was
    acked twice, and the commit crept forward one offset per commit for good."""
    control = FakeConsumer(committed={REQ: 101})
    control._gap[REQ].addi(101, 151)  # as Faust's _add_gap(tp, 101, 150) records it
    assert _faust_commit_point(control, list(range(101, 151))) == 102  # the creep

    consumer = FakeConsumer(committed={REQ: 101})
    consumer._gap[REQ].addi(101, 151)
    g = guard(consumer, FakeProbe(set(range(200))))
    assert await g.admit(event(101))
    assert not await g.admit(event(150))  # the jump as the agent sees it: seek back
    assert consumer.sought == [(REQ, 102)]
    for offset in range(102, 151):
        assert await g.admit(event(offset))
    assert not consumer._gap[REQ]
    assert _faust_commit_point(consumer, list(range(101, 151))) == 151


async def test_a_hole_without_records_stays_faust_s_to_count() -> None:
    """Offsets that hold no record (markers) stay in Faust's gap: they are acked by
    no one else, and the commit must pass them."""
    consumer = FakeConsumer(committed={REQ: 7})
    consumer._gap[REQ].addi(8, 11)  # 8..10 hold markers; 11 is Faust's inclusive end
    g = guard(consumer, FakeProbe({7, 11, 12}))
    assert await g.admit(event(7))
    assert await g.admit(event(11))
    assert await g.admit(event(12))
    assert sorted((i.begin, i.end) for i in consumer._gap[REQ]) == [(8, 11)]
    assert _faust_commit_point(consumer, [7, 11, 12]) == 13
