"""Every reach into Faust, mode and aiokafka internals, in one place, each with its reason.

The exactly-one-outcome promise needs a few things Faust's public API does not give:
acks it cannot make behind our back, every offset delivered, a table write that can be
awaited, a stop that is bounded. Each is a small function or class here whose
docstring says what it does, why the public API is not enough (the measured problem),
and what breaks if an upgrade changes it. Nothing else in ``streams/`` touches a
private attribute of a Faust, mode or aiokafka object.

They were written against, and only tested with, :data:`TESTED_VERSIONS`.
:func:`check_versions` runs at worker startup (``streams/__main__.py``): an untested
version stops the worker (exit 2, one line) unless ``PAYOUT_ALLOW_UNTESTED_FAUST=1``
makes it a warning; a private attribute this module uses that no longer exists stops
it always, naming the attribute. An upgrade means: bump the pins, re-read each
docstring against the new source, run the unit, integration and chaos tests.
"""
from __future__ import annotations

import asyncio
import contextvars
import dis
import importlib
import importlib.metadata
import inspect
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import faust
from aiokafka import TopicPartition
from faust.types import TP, AppT, ConsumerT, Message
from faust.types.tuples import FutureMessage

from streams.preflight import refuse

log = logging.getLogger(__name__)

#: The distributions these reaches were written against (pyproject.toml pins the first
#: and the last; mode-streaming comes with faust-streaming and is checked all the same).
TESTED_VERSIONS: Mapping[str, str] = {
    "faust-streaming": "0.15.3",
    "mode-streaming": "0.7.1",
    "aiokafka": "0.14.0",
}
ALLOW_UNTESTED_ENV = "PAYOUT_ALLOW_UNTESTED_FAUST"

Ack = Callable[[Message], bool]


# --- acks ------------------------------------------------------------------------------


def release_unacked(consumer: ConsumerT, message: Message) -> None:
    """Tell Faust a record it handed out will not be acked here.

    Faust waits for every record it delivered to be acked before finishing a rebalance
    (``stream_wait_empty``), and a record we skip (below the delivery cursor, refused by
    the ack guard, or lost on purpose by a test fault) never will be. There is no public
    "forget this record": ``Consumer.unacked`` hands out the same set, read-only by type.

    Reaches: ``Consumer._unacked_messages`` (a WeakSet). If it is renamed this raises
    AttributeError in the agent and in the ack guard; if Faust stops tracking records
    that way, a rebalance could wait for skipped records until its timeout.
    """
    consumer._unacked_messages.discard(message)  # type: ignore[attr-defined]


def replace_consumer_ack(consumer: ConsumerT, wrap: Callable[[Ack], Ack]) -> None:
    """Replace this consumer's ``ack`` with ``wrap(its current ack)``.

    Faust acks records it never hands to the agent: those it skips while flow control
    is suspended during a rebalance, or because they were fetched in an older
    generation. If the partition stays with this worker, that ack is committed and the
    seek after the rebalance starts past records no one processed. Measured: the
    two-worker chaos test lost 4 of 800 requests this way. Streams with acks disabled
    (``noack()``) do not stop it, and no setting does, so :func:`streams.inflight.guard_acks`
    filters the consumer's own ``ack``.

    Relies on every ack path ending in ``consumer.ack(message)`` looked up on the
    consumer instance (``ConsumerMessage.on_final_ack``). If Faust called the class's
    method or a reference bound earlier, the guard would silently stop guarding and
    skipped records could be committed again: :func:`check_versions` checks that
    ``on_final_ack`` still calls ``ack``.
    """
    consumer.ack = wrap(consumer.ack)  # type: ignore[method-assign,assignment]


# --- where the consumer reads from -----------------------------------------------------


def _consumer_thread(consumer: ConsumerT) -> Any:
    """Faust's consumer thread (``ThreadDelegateConsumer._thread``); None for a fake."""
    return getattr(consumer, "_thread", None)


async def seek_without_wait(consumer: ConsumerT, tp: TP, offset: int) -> None:
    """Move the consumer's fetch position of ``tp`` to ``offset``, without waiting.

    Faust drops records between its fetcher and the stream around a rebalance and can
    leave the consumer positioned after them (streams/delivery.py; measured in the
    two-worker chaos test: one request without an outcome for good, partitions taken
    back 34-60 offsets past the committed offset). The delivery guard seeks back.
    Faust's public ``Consumer.seek`` goes through ``seek_wait``, which holds the
    consumer thread until the new position is known, while the fetch that would answer
    it queues behind it in the same thread. So the seek runs in the consumer thread
    with aiokafka's own ``seek`` (which wakes that thread's fetcher), and Faust's read
    offset for the partition is set as its own seek would set it, so the records from
    ``offset`` on are not dropped as already read.

    Reaches: ``Consumer._thread``, ``AIOKafkaConsumerThread._ensure_consumer()`` and
    ``call_thread``, ``Consumer._read_offset``. If they change, a seek raises (the
    watchdog logs it and tries again each second; a gap found on delivery makes the
    agent fail); if ``_read_offset`` stops being the filter, a seek back could be
    followed by the sought records being skipped, which the cursor sees as a new gap.
    """
    thread = _consumer_thread(consumer)
    if thread is None:
        await consumer.seek(tp, offset)
        forget_gaps_from(consumer, tp, offset)
        return

    # In the consumer's own thread (aiokafka's seek wakes that thread's loop), and
    # without waiting for the new position as Faust's seek_wait does: that wait
    # holds the thread, and the fetch that would answer it queues behind it.
    async def seek_in_consumer_thread() -> None:
        thread._ensure_consumer().seek(TopicPartition(tp.topic, tp.partition), offset)

    await thread.call_thread(seek_in_consumer_thread)
    consumer._read_offset[tp] = offset or None  # type: ignore[attr-defined]
    forget_gaps_from(consumer, tp, offset)


def forget_gaps_from(consumer: ConsumerT, tp: TP, offset: int) -> None:
    """Forget what Faust took for holes in ``tp`` at or after ``offset``: we read it again.

    When Faust's fetcher sees offsets jump (the records it lost around a rebalance, or
    the ones before a seek back), it records the jump as a *gap* and later counts every
    offset in it as acked, on the belief that a jump means no records (compaction,
    transaction markers). After the delivery guard seeks back, those offsets are
    delivered and acked one by one as well, so each is in Faust's acked list twice, and
    its commit (the first run of consecutive acked offsets) ends at the first
    duplicate: the committed offset crept forward by one per commit. Measured in the
    soak: after a worker restart 7 of 8 partitions committed ~1 offset per 3 s while
    traffic went on at 45/s each, so the group lag grew without bound and every later
    restart replayed everything since. And were an offset in such a gap acked nowhere
    else, the commit could pass a record not yet handled.

    Reaches: ``Consumer._gap`` (tp → IntervalTree of [from, to) ranges, read by
    ``_new_offset``). If it is renamed, ``missing_internals`` names it at startup.
    """
    gaps = consumer._gap.get(tp)  # type: ignore[attr-defined]
    if gaps:
        gaps.chop(offset, sys.maxsize)


def forget_gap_at(consumer: ConsumerT, tp: TP, offset: int) -> None:
    """``offset`` holds a record handed to the agent: it is no hole, whatever Faust
    recorded (see :func:`forget_gaps_from`). This also covers a jump Faust records
    after a seek back, from records it had fetched before the seek. One dict lookup per
    record while Faust knows no gap in the partition."""
    gaps = consumer._gap.get(tp)  # type: ignore[attr-defined]
    if gaps and gaps.overlaps(offset):
        gaps.chop(offset, offset + 1)


async def committed_offset(consumer: ConsumerT, tp: TP) -> int | None:
    """The group's committed offset of ``tp``, asked of the broker (None if none).

    The delivery guard starts each partition's cursor here. Faust's only view of it,
    ``Consumer._committed_offset``, is a cache that can lag a rebalance, and starting
    below the real committed offset would replay a partition from its beginning; Faust
    has no public call for it. So aiokafka's ``committed`` runs in Faust's consumer
    thread, which owns the aiokafka consumer (a consumer without a thread — the unit
    tests' fakes — is read from ``_committed_offset``).

    Reaches: ``Consumer._thread``, ``AIOKafkaConsumerThread._ensure_consumer()`` and
    ``call_thread``; ``Consumer._committed_offset`` only without a thread. If they
    change, finding a partition's start raises and the agent fails at its first record.
    """
    thread = _consumer_thread(consumer)
    if thread is None:
        return consumer._committed_offset.get(tp)  # type: ignore[attr-defined,no-any-return]
    aiokafka_consumer = thread._ensure_consumer()
    return cast("int | None", await thread.call_thread(
        aiokafka_consumer.committed, TopicPartition(tp.topic, tp.partition)))


# --- proof of group membership ----------------------------------------------------------

# Kafka API keys of the two requests whose error-free answer proves the group
# coordinator still counts this worker as a member of the current generation.
_SYNC_GROUP_API_KEY = 14
_HEARTBEAT_API_KEY = 12


def on_coordinator_round_trip(consumer: ConsumerT, accepted: Callable[[float], None],
                              clock: Callable[[], float]) -> bool:
    """Call ``accepted(sent_at)`` after each heartbeat or SyncGroup answered without error.

    The ownership lease (streams/ownership.py) is renewed by exactly these: a member
    whose heartbeat the coordinator accepted less than a session ago still owns its
    partitions. aiokafka says nothing public about a heartbeat's answer (its
    ``_do_heartbeat`` returns True even for "rebalancing", which must *not* renew),
    so the coordinator's one request path, ``GroupCoordinator._send_req``, is wrapped
    on the instance: it sees the request and the answer's error code. Runs in Faust's
    consumer thread, where aiokafka lives; ``accepted`` must be thread-safe.

    Reaches: ``Consumer._thread``, ``AIOKafkaConsumerThread._ensure_consumer()``,
    ``AIOKafkaConsumer._coordinator``, ``GroupCoordinator._send_req``. If they change,
    the lease is never renewed and the worker calls no provider (safe, and loud: every
    link waits); the startup check names the missing attribute first. Returns False
    for a consumer without a thread (unit tests' fakes).
    """
    thread = _consumer_thread(consumer)
    if thread is None:
        return False
    coordinator = thread._ensure_consumer()._coordinator
    if getattr(coordinator, "_payout_round_trips", None) is not None:
        coordinator._payout_round_trips = accepted
        return True
    send = coordinator._send_req

    async def send_and_report(request: Any) -> Any:
        sent_at = clock()
        response = await send(request)
        if (getattr(request, "API_KEY", None) in (_HEARTBEAT_API_KEY, _SYNC_GROUP_API_KEY)
                and getattr(response, "error_code", None) == 0):
            coordinator._payout_round_trips(sent_at)
        return response

    coordinator._payout_round_trips = accepted
    coordinator._send_req = send_and_report
    return True


# --- the table and the producer --------------------------------------------------------


class RecoverableTable(faust.Table[Any, Any]):
    """A table whose recovery never starts past, or stops short of, a changelog record.

    Two Faust behaviours would let a recovered table miss records, and a link the table
    does not know is created again:

    * Faust moves a partition's *persisted offset* (where its next recovery starts) to
      each of this worker's own acknowledged writes, as if it knew everything below.
      That holds only while it is the one writer. A worker paused past its lease can
      still flush a write *after* the new owner's; its ack moved its persisted offset
      past records it never read, and when the partition came back to it, recovery
      skipped them (measured: chaos seed 190594487, 11 second links). Here the
      persisted offset moves only from ``n`` to ``n + 1``: a non-transactional
      changelog's offsets are consecutive, so that write proves nothing lies between;
      any other leaves it, and the next recovery reads what came between.
    * Faust's recovery logs a batch it cannot apply as a warning and declares the
      table recovered all the same, without the records after it. Here the table
      records why (:attr:`unrecovered`) and crashes the worker; until it has, nothing
      may be decided from it (the processor checks before every read).

    Reaches: ``Table._on_changelog_sent`` (overridden; Faust's own moves the persisted
    offset to every ack), ``Store.persisted_offset`` / ``set_persisted_offset``, and
    ``Collection.apply_changelog_batch`` (overridden, calling Faust's). If Faust stops
    calling ``_on_changelog_sent`` for an ack, its own update comes back and a recovery
    may skip another owner's records; a missing name stops the worker at start
    (:func:`check_versions`).
    """

    unrecovered: BaseException | None = None
    interleaved_writes = 0  # own writes that landed after records this worker never read
    _crashing: asyncio.Task[None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Partitions whose persisted offset stays behind this worker's own writes
        # until a recovery reads them again: the warning is said once for each.
        self._behind: set[TP] = set()

    def apply_changelog_batch(self, batch: Any) -> None:
        try:
            self._apply(batch)
        except Exception as exc:
            self._unrecoverable(exc)
            raise
        for tp in {event.message.tp for event in batch}:
            self._behind.discard(tp)

    def _apply(self, batch: Any) -> None:
        super().apply_changelog_batch(batch)

    def _unrecoverable(self, exc: Exception) -> None:
        if self.unrecovered is not None:
            return
        self.unrecovered = exc
        log.critical("the changelog of table %s could not be applied (%r): the table "
                     "would miss records, and links could be created twice; the worker "
                     "stops", self.name, exc)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not in a worker: the caller's raise is all there is
            return
        # Kept: an unreferenced task may be garbage-collected before it runs.
        self._crashing = loop.create_task(self.app.crash(exc))

    def _on_changelog_sent(self, fut: Any) -> None:
        metadata = fut.result()
        tp, offset = metadata.topic_partition, metadata.offset
        store: Any = self.data
        persisted = store.persisted_offset(tp)
        if offset == (-1 if persisted is None else persisted) + 1:
            store.set_persisted_offset(tp, offset)
        elif persisted is None or offset > persisted:
            self.interleaved_writes += 1
            if tp in self._behind:
                return  # said once per partition until a recovery reads it again
            self._behind.add(tp)
            log.warning("%s[%d]: this worker's write landed at offset %d, but it has read "
                        "the changelog only up to %s: another writer came between; the "
                        "next recovery reads from there", tp.topic, tp.partition, offset,
                        "its start" if persisted is None else persisted)


class AwaitableWritesTable(RecoverableTable):
    """A table whose last write can be awaited until the changelog holds it.

    The ``creating`` record must be durable *before* a provider call, or a crash could
    leave a link at the provider that no record remembers. Faust's ``table[key] = v``
    sends the changelog record with ``send_soon`` and drops the future; there is no
    public way to wait for it. So ``on_key_set`` (the hook ``__setitem__`` calls) keeps
    that future in :attr:`last_write`, which the caller awaits after the write.

    Reaches: the ``on_key_set`` hook, replacing Faust's (``send_changelog`` to
    ``partition_for_key``, then the table-set sensor). Faust's version also sets key
    TTLs, which this table does not use (no ``expires``). If an upgrade moves the
    changelog send out of ``on_key_set``, writes would go to the changelog twice or
    not at all through this path; if it adds duties to ``on_key_set``, this override
    skips them: re-read ``faust/tables/table.py`` on every upgrade.
    """

    last_write: FutureMessage

    def on_key_set(self, key: Any, value: Any) -> None:
        self.last_write = self.send_changelog(self.partition_for_key(key), key, value)
        self.app.sensors.on_table_set(self, key, value)


class GuardedChangelogTable(AwaitableWritesTable):
    """A table that refuses a changelog record a newer one supersedes, on recovery too.

    A worker that lost a partition while paused can still have a table write in its
    producer buffer; it lands in the changelog *after* the new owner's write for the
    same key. Faust applies a changelog in log order (recovery, standby replicas), so
    the stale write would win the next recovery. :meth:`keeps` (a subclass's rule,
    here the owner epoch) decides per record whether it may replace the stored value;
    refused records are skipped, but their offsets still count as applied.

    Reaches: ``Store.apply_changelog_batch`` (called instead of Faust's
    ``Collection.apply_changelog_batch``, what recovery and standby replicas call per
    batch) and ``Store._db_for_partition`` (the RocksDB of one partition, to read a
    stored value by raw key while no event is current). If recovery stops calling
    ``apply_changelog_batch``, stale writes apply again in log order (the fencing
    around every write still stands); a missing name stops the worker at start
    (:func:`check_versions`).
    """

    def keeps(self, stored: bytes | None, incoming: bytes) -> bool:
        return True

    def _apply(self, batch: Any) -> None:
        store: Any = self.data
        accepted: dict[tuple[int, bytes], bytes | None] = {}
        offsets: dict[TP, int] = {}
        kept = []
        for event in batch:
            message = event.message
            tp, key, value = message.tp, message.key, message.value
            offsets[tp] = max(message.offset, offsets.get(tp, -1))
            slot = (message.partition, key)
            if value is not None:
                stored = (accepted[slot] if slot in accepted
                          else store._db_for_partition(message.partition).get(key))
                if not self.keeps(stored, value):
                    continue
            accepted[slot] = value
            kept.append(event)
        store.apply_changelog_batch(kept, to_key=self._to_key, to_value=self._to_value)
        for tp, offset in offsets.items():  # what was refused was read all the same
            store.set_persisted_offset(tp, offset)


def set_changelog_buffer_limit(app: AppT, max_messages: int) -> None:
    """Let ``max_messages`` changelog writes queue in Faust's producer buffer.

    Faust pauses every stream whenever more than ``ProducerBuffer.max_messages`` (100,
    not a setting) table writes wait in the producer buffer; measured on the bench, that
    pause hit 130-190 times per 20k links at full load and cost throughput
    (docs/benchmarks.md).

    Reaches: ``ProducerBuffer.max_messages``, a class attribute Faust reads at each
    check. If it is renamed, setting it does nothing (throughput drops to the old
    pauses, nothing is lost); check_versions names it if it disappears.
    """
    app.producer.buffer.max_messages = max_messages


# --- the stop --------------------------------------------------------------------------


def limit_consumer_thread_stop(consumer: ConsumerT, seconds: float) -> None:
    """Wait at most ``seconds`` for Faust's consumer thread to stop.

    mode waits its ``shutdown_timeout`` (60 s) for a service thread to signal it is done;
    a consumer thread that dies while stopping (measured with Kafka down) never does,
    and the worker's bounded stop would spend most of its bound there. No setting
    reaches the thread's timeout.

    Reaches: ``Consumer._thread`` and mode's ``Service.shutdown_timeout`` on it. If
    they change, the stop is slower but still ends: the hard-exit deadline
    (streams/shutdown.py) does not depend on this.
    """
    thread = _consumer_thread(consumer)
    if thread is not None:
        thread.shutdown_timeout = seconds


class HookableApp(faust.App):
    """``faust.App`` with the two private hooks a bounded stop needs, under public names.

    Override :meth:`consumer_wait_empty` / :meth:`new_consumer` and call ``super()``
    for Faust's own behaviour. Reaches: ``App._consumer_wait_empty`` and
    ``App._new_consumer``, which Faust calls during a stop/rebalance and when it first
    needs a consumer. If an upgrade renames them, nothing is overridden any more:
    stops are unbounded again (the hard-exit deadline still ends the process).
    """

    async def _consumer_wait_empty(self, consumer: ConsumerT, logger: Any) -> None:
        await self.consumer_wait_empty(consumer, logger)

    async def consumer_wait_empty(self, consumer: ConsumerT, logger: Any) -> None:
        """Faust's wait for every record in flight to be acked (a rebalance, a stop).

        Faust's wait has no bound and cannot be bounded from outside: measured with
        Kafka down, its loop survived cancellation and kept waiting until the hard exit.
        """
        await super()._consumer_wait_empty(consumer, logger)

    def _new_consumer(self) -> ConsumerT:
        return self.new_consumer()

    def new_consumer(self) -> ConsumerT:
        """Faust's consumer, created once; the only place to adjust it before it runs."""
        return super()._new_consumer()


class HookableWorker(faust.Worker):
    """``faust.Worker`` with the private hooks a bounded stop needs, under public names.

    A stop must arm the hard-exit deadline the moment it begins, and mode offers no
    public signal for "SIGTERM/SIGINT received" or "the worker crashed", nor a way to
    give its loop shutdown an exit code. Override :meth:`on_sigterm`, :meth:`on_sigint`,
    :meth:`on_crash`, :meth:`shutdown_loop` and call ``super()``. Reaches: mode's
    ``Worker._on_sigterm``/``_on_sigint`` (the signal handlers), ``Service._crash``
    (which every unsupervised crash reaches on the root service, the worker) and
    ``Worker._shutdown_loop``. If an upgrade renames them, the deadline is not armed
    on that path: a stuck stop could outlive its bound, and a fatal error could exit 1
    instead of 70.
    """

    def _on_sigterm(self) -> None:
        self.on_sigterm()

    def on_sigterm(self) -> None:
        """SIGTERM arrived (mode's handler; a second one is ignored while stopping)."""
        super()._on_sigterm()

    def _on_sigint(self) -> None:
        self.on_sigint()

    def on_sigint(self) -> None:
        """SIGINT arrived (mode's handler)."""
        super()._on_sigint()

    def _crash(self, reason: BaseException) -> None:
        self.on_crash(reason)

    def on_crash(self, reason: BaseException) -> None:
        """Mark the worker crashed; may run on the consumer thread, not the loop."""
        super()._crash(reason)

    def _shutdown_loop(self) -> None:
        self.shutdown_loop()

    def shutdown_loop(self) -> None:
        """The end of the worker's life; re-raises a crash reason for exit code 1."""
        super()._shutdown_loop()


# --- the startup check -----------------------------------------------------------------


def agent_running(agent: Any) -> bool:
    """Whether the agent has actors and each one's task still runs (``/health/live``).

    Faust keeps an agent's actors only in the private ``Agent._actors``; the public
    ``actor_tracebacks()`` says where they are, not whether they died. An agent whose
    actor crashed past its supervisor's restarts reads nothing again: a worker in that
    state must not report itself live. Breaks if the attribute is renamed
    (``missing_internals`` names it at startup).
    """
    actors = list(getattr(agent, "_actors", ()))
    if not actors:
        return False
    for actor in actors:
        task = getattr(actor, "actor_task", None)
        if task is None or task.done() or getattr(actor, "crashed", False):
            return False
    return True


def active_partition_items(table: Any, partition: int, after: bytes | None,
                           limit: int) -> list[tuple[bytes, bytes]]:
    """Up to ``limit`` records of one table partition in key order, after key ``after``.

    Why: the poll sweep (:mod:`streams.agents.polls`) walks each owned partition of
    the link table a bounded slice per tick, resuming where it stopped, so a table of a
    million links is swept at a steady rate with bounded memory. Faust's own iteration
    (``table.items()``) walks every active partition from its start each time. The
    sweep reads the partition's RocksDB (``Store._dbs``, keyed by partition) through
    rocksdict's ``items(from_key=…)``; a partition this worker does not hold is empty.
    Faust's own bookkeeping keys (``__faust…``) are skipped.
    """
    db = table.data._dbs.get(partition)
    if db is None:
        return []
    out: list[tuple[bytes, bytes]] = []
    for key, value in db.items(from_key=after) if after is not None else db.items():
        if after is not None and key == after:
            continue
        if key.startswith(b"__faust"):
            continue
        out.append((key, value))
        if len(out) >= limit:
            break
    return out


@dataclass(frozen=True)
class Reach:
    """One private attribute used above: where it lives and who needs it.

    ``kind``: ``class`` (an attribute of the class or a base), ``instance`` (assigned
    by the ``__init__`` of the class or a base: it exists only on instances),
    ``calls`` (a method whose code still reads ``calls``, written
    ``"variable.attribute"``), ``contextvar`` (a module attribute that is a
    ``ContextVar``).
    """

    owner: str  # "module:Qualname", or "module:" for a module attribute
    attribute: str
    used_by: str
    kind: str = "class"
    calls: str = ""

    @property
    def name(self) -> str:
        module, _, qualname = self.owner.partition(":")
        return ".".join(filter(None, (module, qualname, self.attribute)))


_CONSUMER = "faust.transport.drivers.aiokafka:Consumer"
_THREAD = "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread"

REACHES: tuple[Reach, ...] = (
    Reach(_CONSUMER, "_unacked_messages", "release_unacked", "instance"),
    Reach(_CONSUMER, "ack", "replace_consumer_ack"),
    Reach("faust.types.tuples:ConsumerMessage", "on_final_ack", "replace_consumer_ack",
          "calls", calls="consumer.ack"),
    Reach(_CONSUMER, "_thread", "seek_without_wait, committed_offset", "instance"),
    Reach(_CONSUMER, "_read_offset", "seek_without_wait", "instance"),
    Reach(_CONSUMER, "_gap", "forget_gaps_from, forget_gap_at", "instance"),
    Reach(_CONSUMER, "_committed_offset", "committed_offset", "instance"),
    Reach(_THREAD, "_ensure_consumer", "seek_without_wait, committed_offset"),
    Reach(_THREAD, "call_thread", "seek_without_wait, committed_offset"),
    Reach(_THREAD, "shutdown_timeout", "limit_consumer_thread_stop"),
    Reach("aiokafka.consumer.consumer:AIOKafkaConsumer", "_coordinator",
          "on_coordinator_round_trip", "instance"),
    Reach("aiokafka.consumer.group_coordinator:GroupCoordinator", "_send_req",
          "on_coordinator_round_trip"),
    Reach("faust:Table", "on_key_set", "AwaitableWritesTable"),
    Reach("faust:Table", "send_changelog", "AwaitableWritesTable"),
    Reach("faust:Table", "partition_for_key", "AwaitableWritesTable"),
    Reach("faust:Table", "apply_changelog_batch", "RecoverableTable"),
    Reach("faust:Table", "_on_changelog_sent", "RecoverableTable"),
    Reach("faust.stores.rocksdb:Store", "persisted_offset", "RecoverableTable"),
    Reach("faust.stores.rocksdb:Store", "set_persisted_offset",
          "RecoverableTable, GuardedChangelogTable"),
    Reach("faust.stores.rocksdb:Store", "apply_changelog_batch", "GuardedChangelogTable"),
    Reach("faust.stores.rocksdb:Store", "_db_for_partition", "GuardedChangelogTable"),
    Reach("faust.stores.rocksdb:Store", "_dbs", "active_partition_items", "instance"),
    Reach("faust.transport.drivers.aiokafka:Producer", "buffer",
          "set_changelog_buffer_limit", "instance"),
    Reach("faust.transport.producer:ProducerBuffer", "max_messages",
          "set_changelog_buffer_limit"),
    Reach("faust.agents.agent:Agent", "_actors", "agent_running", "instance"),
    Reach("faust:App", "_consumer_wait_empty", "HookableApp"),
    Reach("faust:App", "_new_consumer", "HookableApp"),
    Reach("faust:Worker", "_on_sigterm", "HookableWorker"),
    Reach("faust:Worker", "_on_sigint", "HookableWorker"),
    Reach("faust:Worker", "_crash", "HookableWorker"),
    Reach("faust:Worker", "_shutdown_loop", "HookableWorker"),
    Reach("faust:Worker", "on_worker_shutdown", "streams.shutdown.PayoutWorker"),
    # Not touched by name, relied on all the same: settlement runs in a task created
    # while its event is current, and Faust keeps the current event (whose partition
    # every table write uses) in a ContextVar, which the task copies
    # (streams.inflight.KeyedInFlight.submit). Anything else and every table write
    # made during settlement fails.
    Reach("faust.streams:", "_current_event", "streams.inflight.KeyedInFlight",
          "contextvar"),
)


def _resolve(owner: str) -> Any:
    module_name, _, qualname = owner.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in filter(None, qualname.split(".")):
        obj = getattr(obj, part)
    return obj


def _assigned_by_init(cls: type, attribute: str) -> bool:
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        code = getattr(inspect.unwrap(init), "__code__", None) if init is not None else None
        if code is not None and attribute in code.co_names:
            return True
    return False


def _present(reach: Reach) -> bool:
    try:
        owner = _resolve(reach.owner)
    except (ImportError, AttributeError):
        return False
    if reach.kind == "instance":
        return isinstance(owner, type) and _assigned_by_init(owner, reach.attribute)
    if not hasattr(owner, reach.attribute):
        return False
    value = getattr(owner, reach.attribute)
    if reach.kind == "contextvar":
        return isinstance(value, contextvars.ContextVar)
    if reach.kind == "calls":
        return _looks_up(value, *reach.calls.split("."))
    return True


def _looks_up(function: Any, variable: str, attribute: str) -> bool:
    """Whether ``function``'s code reads ``variable.attribute`` (e.g. ``consumer.ack``)."""
    try:
        instructions = list(dis.get_instructions(inspect.unwrap(function)))
    except TypeError:
        return False
    return any(
        first.opname in ("LOAD_FAST", "LOAD_DEREF") and first.argval == variable
        and second.opname in ("LOAD_ATTR", "LOAD_METHOD") and second.argval == attribute
        for first, second in zip(instructions, instructions[1:]))


def missing_internals() -> list[str]:
    """The private attributes this module relies on that the installed packages lack."""
    missing = []
    for reach in REACHES:
        if not _present(reach):
            what = f"{reach.name} (calling {reach.calls})" if reach.kind == "calls" else reach.name
            missing.append(f"{what}, used by {reach.used_by}")
    return missing


def version_mismatches() -> list[str]:
    """``"name installed (tested: x)"`` for each distribution not at its tested version."""
    mismatches = []
    for dist, tested in TESTED_VERSIONS.items():
        try:
            installed = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            installed = "not installed"
        if installed != tested:
            mismatches.append(f"{dist} {installed} (tested: {tested})")
    return mismatches


def check_versions(program: str = "payout worker",
                   env: Mapping[str, str] | None = None) -> None:
    """Refuse to start (one line on stderr, exit 2) on Faust internals that may differ.

    A missing private attribute always refuses: the code above would fail at its first
    use, possibly half-way through a rebalance. An untested version of faust-streaming,
    mode-streaming or aiokafka refuses unless ``PAYOUT_ALLOW_UNTESTED_FAUST=1``, which
    turns it into one warning line: every attribute may exist and still mean
    something else.
    """
    env = os.environ if env is None else env
    tested = ", ".join(f"{dist} {version}" for dist, version in TESTED_VERSIONS.items())
    missing = missing_internals()
    if missing:
        refuse(f"{program}: cannot start: Faust internals it relies on are missing: "
               f"{'; '.join(missing)} (written against {tested}; see "
               f"streams/faust_internals.py)")
    mismatches = version_mismatches()
    if not mismatches:
        return
    found = ", ".join(mismatches)
    if env.get(ALLOW_UNTESTED_ENV) == "1":
        print(f"{program}: warning: untested {found}; the Faust internals in "
              f"streams/faust_internals.py were written against {tested}; starting "
              f"anyway ({ALLOW_UNTESTED_ENV}=1)", file=sys.stderr, flush=True)
        return
    refuse(f"{program}: cannot start: untested {found}; the Faust internals in "
           f"streams/faust_internals.py were written against {tested}; install those, "
           f"or set {ALLOW_UNTESTED_ENV}=1 to start anyway")


__all__ = [
    "ALLOW_UNTESTED_ENV", "AwaitableWritesTable", "active_partition_items", "GuardedChangelogTable", "HookableApp", "HookableWorker", "REACHES",
    "TESTED_VERSIONS", "check_versions", "committed_offset", "limit_consumer_thread_stop",
    "missing_internals", "release_unacked", "replace_consumer_ack", "seek_without_wait",
    "set_changelog_buffer_limit", "version_mismatches",
]
