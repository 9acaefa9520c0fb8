"""The link state machine: pure functions from (record, input) to a decision.

One record per link key lives in the ``payout-links`` table. Its status moves

    (absent) --request--> creating --provider answer--> created | failed

``creating`` is written (and made durable) *before* every provider call, so a
record found in ``creating`` by a later request means a call's outcome is unknown:
the next attempt must look the link up by its reference before creating.
Nothing here does I/O; the agent acts on the decisions.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

import orjson


class LinkStatus(str, Enum):
    CREATING = "creating"
    CREATED = "created"
    FAILED = "failed"


TERMINAL = frozenset({LinkStatus.CREATED, LinkStatus.FAILED})


@dataclass(frozen=True)
class SourceOffset:
    topic: str
    partition: int
    offset: int
    # The record's Kafka timestamp: the time of an outcome about this one record (a
    # request failure), fixed in the log, so a re-publication carries the same time.
    # Not stored, not compared: the record's identity is its offset.
    timestamp: float | None = field(default=None, compare=False)


@dataclass(frozen=True)
class LinkRecord:
    link_key: str
    status: LinkStatus
    fingerprint: str
    connector: str
    reference: str
    source: SourceOffset
    provider_calls: int = 0
    outcome: Mapping[str, Any] | None = None
    outcome_published: bool = False
    # When creation began and which request began it: the link's outcome carries these
    # as its occurred_at / request_event_id, so whichever owner publishes it (after a
    # crash or a take-over, from a lookup) publishes the same content under its id.
    started_at: str | None = None
    request_event_id: str | None = None
    # The owner epoch (group generation) of the latest write: a stale owner's write
    # never replaces a later owner's (streams.ownership.supersedes).
    owner_epoch: int = 0

    def to_bytes(self, owner_epoch: int = 0) -> bytes:
        """Serialised by an owner of ``owner_epoch``: the record's epoch never goes back."""
        return orjson.dumps({
            "link_key": self.link_key,
            "status": self.status.value,
            "fingerprint": self.fingerprint,
            "connector": self.connector,
            "reference": self.reference,
            "source": [self.source.topic, self.source.partition, self.source.offset],
            "provider_calls": self.provider_calls,
            "outcome": self.outcome,
            "outcome_published": self.outcome_published,
            "started_at": self.started_at,
            "request_event_id": self.request_event_id,
            "owner_epoch": max(self.owner_epoch, owner_epoch),
        })

    @classmethod
    def from_bytes(cls, raw: bytes) -> LinkRecord:
        d = orjson.loads(raw)
        topic, partition, offset = d["source"]
        return cls(
            link_key=d["link_key"], status=LinkStatus(d["status"]), fingerprint=d["fingerprint"],
            connector=d["connector"], reference=d["reference"],
            source=SourceOffset(topic, partition, offset), provider_calls=d["provider_calls"],
            outcome=d["outcome"], outcome_published=d["outcome_published"],
            started_at=d.get("started_at"), request_event_id=d.get("request_event_id"),
            owner_epoch=d.get("owner_epoch", 0),
        )


def stored_epoch(raw: bytes | None) -> int:
    """The owner epoch of a serialised record (0 for none, or one written before epochs)."""
    if raw is None:
        return 0
    epoch = orjson.loads(raw).get("owner_epoch", 0)
    return epoch if isinstance(epoch, int) else 0


# --- decisions for an incoming, valid request ---------------------------------------


@dataclass(frozen=True)
class StartCreation:
    """Write ``record`` durably, then settle the link with the provider."""

    record: LinkRecord
    lookup_first: bool


@dataclass(frozen=True)
class Republish:
    """A duplicate of a settled request: send the stored outcome again, unchanged."""

    outcome: Mapping[str, Any]


@dataclass(frozen=True)
class AlreadySettled:
    """The very record that produced a published outcome, redelivered after a restart."""


@dataclass(frozen=True)
class Conflict:
    """Same link key, different content: fail this request, leave the link alone."""

    existing: LinkRecord


Decision = StartCreation | Republish | AlreadySettled | Conflict


def decide(record: LinkRecord | None, *, link_key: str, fingerprint: str, connector: str,
           reference: str, source: SourceOffset, started_at: str | None = None,
           request_event_id: str | None = None) -> Decision:
    if record is None:
        return StartCreation(
            LinkRecord(link_key=link_key, status=LinkStatus.CREATING, fingerprint=fingerprint,
                       connector=connector, reference=reference, source=source,
                       started_at=started_at, request_event_id=request_event_id),
            lookup_first=False,
        )
    if record.fingerprint != fingerprint:
        return Conflict(record)
    if record.status in TERMINAL:
        assert record.outcome is not None
        if record.outcome_published and record.source == source:
            return AlreadySettled()
        return Republish(record.outcome)
    # creating: an earlier attempt (this worker before a crash, or another worker
    # before a rebalance) may have reached the provider. Find out before creating.
    return StartCreation(record, lookup_first=True)


# --- transitions once the provider has answered ------------------------------------


def settled(record: LinkRecord, outcome: Mapping[str, Any], *, created: bool,
            provider_calls: int) -> LinkRecord:
    """The outcome is stored before it is published, so a crash in between re-publishes it."""
    return replace(record, status=LinkStatus.CREATED if created else LinkStatus.FAILED,
                   outcome=dict(outcome), outcome_published=False, provider_calls=provider_calls)


def published(record: LinkRecord) -> LinkRecord:
    return replace(record, outcome_published=True)
