"""``python -m streams redrive``: list dead letters, and send chosen ones back to where
they came from.

A dead letter names its record's source topic, partition and offset, and keeps the
first 64 KiB of its value (``events.dead_letter_event``). Re-driving reads the original
record again at those coordinates -- its whole value, its key and its headers -- and
produces it to its source topic unchanged, plus a ``payout-redrive-of`` header naming
the dead letter. Only when the original is gone (retention) and the dead letter holds
the whole value is the dead letter's copy used; a record known only in part is never
re-driven (it would be a different record).

Selection by time (the dead letter's), error code and source topic; a dry run by
default, and ``--execute`` also needs ``--confirm N`` equal to the number selected, so
a filter that selects more than the operator saw sends nothing.
"""
from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams import events
from streams.config import Settings
from streams.logs import mask_pii
from streams.reconcile import window

PREVIEW_CHARS = 160


@dataclass(frozen=True)
class DeadLetter:
    event_id: str
    at: str  # occurred_at of the dead letter: the source record's time
    code: str
    message: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    value: bytes | None  # None: only part of it is in the dead letter
    headers: list[tuple[str, bytes]]
    value_size: int
    whole: bool  # the dead letter holds the record's whole key, value and headers

    def preview(self) -> str:
        """One line for an operator: where it came from, why, and its start (PII masked)."""
        raw = self.value if self.value is not None else b""
        text = raw[:PREVIEW_CHARS * 2].decode("utf-8", "replace")
        text = mask_pii(" ".join(text.split()))[:PREVIEW_CHARS]
        key = (self.key or b"").decode("utf-8", "replace")[:60]
        return (f"{self.at} {self.source_topic}/{self.source_partition}@{self.source_offset} "
                f"{self.code}: {mask_pii(self.message)[:120]} | key={key!r} "
                f"value[{self.value_size} B]={text!r}")


def parse(value: bytes | None) -> DeadLetter | None:
    """A dead letter as written by the processor, or None for anything else."""
    try:
        letter: Any = orjson.loads(value or b"")
        source, error = letter["source"], letter["error"]
        whole = not letter["raw_value_truncated"]
        return DeadLetter(
            event_id=str(letter["event_id"]), at=str(letter["occurred_at"]),
            code=str(error["code"]), message=str(error["message"]),
            source_topic=str(source["topic"]), source_partition=int(source["partition"]),
            source_offset=int(source["offset"]),
            key=_b64(letter.get("raw_key_b64")) if not letter.get("raw_key_truncated") else None,
            value=_b64(letter.get("raw_value_b64")) if whole else None,
            headers=[(str(h["key"]), _b64(h.get("value_b64")) or b"")
                     for h in letter.get("headers") or []],
            value_size=int(letter.get("raw_value_size") or 0),
            whole=whole and not letter.get("raw_key_truncated")
            and not letter.get("headers_truncated"))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def _b64(text: Any) -> bytes | None:
    return base64.b64decode(text) if isinstance(text, str) else None


async def letters(settings: Settings, since_ms: int, until_ms: int, *,
                  codes: frozenset[str] = frozenset(), sources: frozenset[str] = frozenset(),
                  ) -> AsyncIterator[DeadLetter]:
    """Each dead letter once: a re-published one (a replay, a redelivery) carries the
    same event id, and its record is re-driven once."""
    seen: set[str] = set()
    async for record in window.read(settings.bootstrap_servers, settings.topics.dead_letter,
                                    since_ms, until_ms):
        letter = parse(record.value)
        if letter is None or letter.event_id in seen:
            continue
        seen.add(letter.event_id)
        if (codes and letter.code not in codes) or (sources and letter.source_topic
                                                     not in sources):
            continue
        yield letter


@dataclass(frozen=True)
class Original:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


async def _original(consumer: AIOKafkaConsumer, letter: DeadLetter) -> Original | None:
    """The source record, read again at its coordinates; None when it is gone."""
    tp = TopicPartition(letter.source_topic, letter.source_partition)
    consumer.assign([tp])
    begins = await consumer.beginning_offsets([tp])
    ends = await consumer.end_offsets([tp])
    if not begins[tp] <= letter.source_offset < ends[tp]:
        return None
    consumer.seek(tp, letter.source_offset)
    for _ in range(10):
        batches = await consumer.getmany(tp, timeout_ms=1000, max_records=1)
        for record in batches.get(tp, []):
            if record.offset != letter.source_offset:
                return None  # compacted away
            return Original(record.key, record.value, [(k, v) for k, v in record.headers])
    return None


@dataclass
class Sent:
    redriven: list[str]
    from_dead_letter: list[str]  # the original was gone: the dead letter's whole copy sent
    refused: list[str]  # gone, and the dead letter holds only part of it


async def redrive(settings: Settings, chosen: list[DeadLetter]) -> Sent:
    sent = Sent([], [], [])
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="none")
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all",
                                enable_idempotence=True,
                                max_request_size=settings.producer_max_request_bytes)
    await consumer.start()
    await producer.start()
    try:
        for letter in chosen:
            original = await _original(consumer, letter)
            if original is None:
                if not letter.whole:
                    sent.refused.append(letter.event_id)
                    continue
                original = Original(letter.key, letter.value, letter.headers)
                sent.from_dead_letter.append(letter.event_id)
            headers = [(k, v) for k, v in original.headers if k != events.REDRIVE_HEADER]
            headers.append((events.REDRIVE_HEADER, letter.event_id.encode()))
            # Its own partition: a record without a key (or produced to a chosen
            # partition) would otherwise land elsewhere than it first did.
            await producer.send_and_wait(letter.source_topic, value=original.value,
                                         key=original.key, headers=headers,
                                         partition=letter.source_partition)
            sent.redriven.append(letter.event_id)
    finally:
        await producer.stop()
        await consumer.stop()
    return sent
