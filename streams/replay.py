"""``python -m streams replay``: move the processor's consumer group on the request topics.

Moving the group back makes the workers read requests again: every request whose link
is settled meets its table record and gets its stored outcome re-published -- the
same event id, byte for byte (DESIGN.md rule 5) -- with no provider call; a request
whose link is in doubt is looked up before anything is created; a request never
handled before is handled as new. Moving it forward skips requests (they become
``lost`` to ``reconcile``, which can re-drive them).

Offsets can only be moved while no worker is in the group: a running worker commits
its own position over the move (and Kafka refuses a commit from outside an active
group's generation), so the command refuses and names the members.
"""
from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata

from streams.config import Settings
from streams.reconcile.window import partitions


@dataclass(frozen=True)
class Move:
    topic: str
    partition: int
    committed: int | None  # None: the group never committed this partition
    target: int

    def line(self) -> str:
        before = "-" if self.committed is None else str(self.committed)
        return f"  {self.topic}/{self.partition}: {before} -> {self.target}"


class GroupActive(Exception):
    """Workers are in the group: their commits would undo the move."""


async def members(settings: Settings) -> list[str]:
    """The group's current members' ids, empty when no worker runs."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([settings.app_id])
    finally:
        await admin.close()
    found: list[str] = []
    for response in described:
        for group in getattr(response, "groups", ()):
            # (error_code, group_id, state, protocol_type, protocol, members[, ...]);
            # a member's first field is its id in every version of the response.
            found.extend(str(member[0]) for member in group[5])
    return found


async def plan(settings: Settings, topics: list[str], *, to_ms: int | None = None,
               to_offset: int | None = None) -> list[Move]:
    """Where each partition of ``topics`` would move: the first offset at or after
    ``to_ms`` (the end when none), or ``to_offset`` clamped to what the partition holds,
    or (neither) its earliest offset."""
    found = await partitions(settings.bootstrap_servers, topics)
    tps = [TopicPartition(t, p) for t in topics for p in found.get(t, [])]
    if not tps:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                group_id=settings.app_id, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        begins = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        at = await consumer.offsets_for_times({tp: to_ms for tp in tps}) \
            if to_ms is not None else {}
        moves = []
        for tp in tps:
            if to_ms is not None:
                stamp = at.get(tp)
                target = stamp.offset if stamp is not None else ends[tp]
            elif to_offset is not None:
                target = min(max(to_offset, begins[tp]), ends[tp])
            else:
                target = begins[tp]
            committed = await consumer.committed(tp)
            moves.append(Move(tp.topic, tp.partition, committed, target))
        return moves
    finally:
        await consumer.stop()


async def apply(settings: Settings, moves: list[Move]) -> None:
    """Commit the moves for the group; refuses (:class:`GroupActive`) while it has members."""
    running = await members(settings)
    if running:
        raise GroupActive(", ".join(running))
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                group_id=settings.app_id, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(m.topic, m.partition) for m in moves]
        consumer.assign(tps)
        await consumer.commit({TopicPartition(m.topic, m.partition):
                               OffsetAndMetadata(m.target, "python -m streams replay")
                               for m in moves})
    finally:
        await consumer.stop()
