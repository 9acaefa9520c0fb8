"""``reconcile --repair``: settle lost and orphaned links through the pipeline itself.

A lost request (no outcome, nothing at the provider) and an orphan (the provider holds
a link under our reference, we never said created) are both mended the same way: the
original request record is produced again to ``payout-link-requested`` -- its key, its
value and its headers, byte for byte -- with ``payout-lookup-first: 1``. The owner of
the link's partition then looks the link up by reference *before* any create: it
adopts an orphan (its table records the provider's link, and it publishes
``payout-link-created`` under the event id it would always have used), and creates a
lost link only on the provider's proof that none exists.

The repair never calls a provider's create itself, and never publishes an outcome
itself: an outcome published beside the link table would leave the table without the
link, and the next re-send of the request would then create a second one (DESIGN.md,
money rules 1-3). Running it twice changes nothing more: a settled link is re-published
unchanged (the same event id and bytes), and the provider is asked, never told.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams import events
from streams.config import Settings
from streams.reconcile.window import partitions

REPAIR_HEADER = "payout-reconcile-repair"  # the reconciliation run that re-drove it


@dataclass
class Repaired:
    redriven: list[str] = field(default_factory=list)  # link keys
    missing: list[str] = field(default_factory=list)  # request record no longer readable
    settled: dict[str, str] = field(default_factory=dict)  # link key -> outcome event type

    def line(self) -> str:
        pending = [k for k in self.redriven if k not in self.settled]
        kinds = ", ".join(f"{sum(1 for v in self.settled.values() if v == t)} {t}"
                          for t in sorted(set(self.settled.values())))
        return (f"repair: {len(self.redriven)} re-driven with lookup-first"
                + (f" ({kinds})" if kinds else "") + f", {len(pending)} not settled yet, "
                f"{len(self.missing)} whose request could not be read again")


async def _read_one(consumer: AIOKafkaConsumer, topic: str, partition: int,
                    offset: int) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]] | None:
    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    consumer.seek(tp, offset)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        batches = await consumer.getmany(tp, timeout_ms=1000, max_records=1)
        for record in batches.get(tp, []):
            if record.offset != offset:
                return None  # compacted away or deleted by retention
            return record.key, record.value, [(k, v) for k, v in record.headers]
    return None


@dataclass(frozen=True)
class Repairable:
    link_key: str
    request_at: dict[str, Any]  # topic, partition, offset of its first request


def repairables(path: Path) -> Iterator[Repairable]:
    """The lost and orphaned links a reconciliation wrote (``repairs.jsonl``)."""
    with path.open("rb") as handle:
        for line in handle:
            item = orjson.loads(line)
            yield Repairable(item["link_key"], item["request_at"])


async def redrive(settings: Settings, findings: Iterable[Repairable], run_id: str) -> Repaired:
    """Produce each link's request again with lookup-first; returns what was sent."""
    done = Repaired()
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="none")
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all",
                                enable_idempotence=True)
    await consumer.start()
    await producer.start()
    try:
        for finding in findings:
            at = finding.request_at
            record = await _read_one(consumer, at["topic"], at["partition"], at["offset"])
            if record is None:
                done.missing.append(finding.link_key)
                continue
            _, value, headers = record
            headers = [(k, v) for k, v in headers
                       if k not in (events.LOOKUP_FIRST_HEADER, REPAIR_HEADER)]
            headers += [(events.LOOKUP_FIRST_HEADER, b"1"), (REPAIR_HEADER, run_id.encode())]
            # Keyed by the link key whatever the original's key: the request lands on its
            # link's home partition (a routed copy's value is the request itself).
            await producer.send_and_wait(settings.topics.requested, value=value,
                                         key=finding.link_key.encode(), headers=headers)
            done.redriven.append(finding.link_key)
    finally:
        await producer.stop()
        await consumer.stop()
    return done


async def wait_settled(settings: Settings, done: Repaired, since_ms: int,
                       timeout_s: float) -> None:
    """Wait (up to ``timeout_s``) until each re-driven link has an outcome published
    after ``since_ms``: created, or failed."""
    want = set(done.redriven)
    if not want or timeout_s <= 0:
        return
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="latest")
    await consumer.start()
    try:
        outcome_topics = [settings.topics.created, settings.topics.failed]
        parts = [TopicPartition(t, p) for t, ps in
                 (await partitions(settings.bootstrap_servers, outcome_topics)).items()
                 for p in ps]
        consumer.assign(parts)
        starts = await consumer.offsets_for_times({tp: since_ms for tp in parts})
        ends = await consumer.end_offsets(parts)
        for tp in parts:
            found = starts.get(tp)
            consumer.seek(tp, found.offset if found is not None else ends[tp])
        deadline = time.monotonic() + timeout_s
        while want - set(done.settled) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    _note(done, want, record.value)
            await asyncio.sleep(0)
    finally:
        await consumer.stop()


def _note(done: Repaired, want: set[str], value: bytes | None) -> None:
    try:
        event = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return
    key = event.get("link_key") if isinstance(event, dict) else None
    if isinstance(key, str) and key in want and (event.get("event_type") == events.CREATED
                        or event.get("scope") == events.LINK):
        done.settled[key] = str(event["event_type"])
