"""The link state machine: pure functions from (record, input) to a decision.

One record per link lives in the ``payout-links`` table (keyed by the link's provider
reference, :func:`streams.connectors.base.link_reference`). Its status moves

    (absent) --request--> creating --provider answer--> created | failed

``creating`` is written (and made durable) *before* every provider call, so a
record found in ``creating`` by a later request means a call's outcome is unknown:
the next attempt must look the link up by its reference before creating.

A created link then lives on at its provider (claimed, paid, expired, cancelled,
reversed). Its last known provider status is the record's :class:`LinkState`;
:func:`apply_report` decides what a provider report (webhook, poll, command answer)
changes, by the provider's own order (:class:`~streams.connectors.base.LinkLifecycle`).
Nothing here does I/O; the agent acts on the decisions.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

import orjson

from streams.connectors.base import LinkLifecycle, StatusReport, link_reference


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


# Who told us a link's status: the create answer, a webhook, a poll, a command's answer
# (a cancel), or the processor cancelling a link whose expiry passed.
CREATE, WEBHOOK, POLL, COMMAND, EXPIRY = "create", "webhook", "poll", "command", "expiry"
SOURCES = (CREATE, WEBHOOK, POLL, COMMAND, EXPIRY)
RECENT_PROVIDER_EVENTS = 16  # provider event ids kept per link for webhook dedup


@dataclass(frozen=True)
class LinkState:
    """A created link's last known status at its provider."""

    connector_status: str  # the provider's raw status
    payout_status: str  # its Prism name
    position: tuple[int, int]  # the provider's order (LinkLifecycle.position)
    changed_at: str  # RFC 3339: when the provider says it changed, else when we learnt it
    source: str  # one of SOURCES
    final: bool  # nothing can follow
    reversible: bool  # paid out, but a reversal can still undo it

    def to_json(self) -> list[Any]:
        return [self.connector_status, self.payout_status, list(self.position),
                self.changed_at, self.source, self.final, self.reversible]

    @classmethod
    def from_json(cls, raw: list[Any]) -> LinkState:
        status, payout, (major, minor), at, source, final, reversible = raw
        return cls(status, payout, (int(major), int(minor)), at, source, bool(final),
                   bool(reversible))


def link_state(lifecycle: LinkLifecycle, report: StatusReport, *, source: str,
               received_at: str) -> LinkState | None:
    """The state a report describes, or None when its status is not one we know."""
    position = lifecycle.position(report)
    if position is None:
        return None
    status = report.connector_status
    return LinkState(status, lifecycle.payout_status(status), position,
                     report.occurred_at or received_at, source, lifecycle.final(status),
                     lifecycle.reversible(status))


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
    # After creation: the link's last known status at the provider; the last
    # status-changed event (stored before it is published, like the outcome); recent
    # provider event ids (webhook dedup); when the link is next polled (wall clock).
    state: LinkState | None = None
    status_event: Mapping[str, Any] | None = None
    status_event_published: bool = True
    provider_events: tuple[str, ...] = ()
    next_poll_at: float | None = None
    # The last commands carried out on the link and the events that answered them
    # (command id -> answer): a command redelivered after a crash is answered again
    # with the same event, whatever came after it.
    command_answers: Mapping[str, Any] | None = None

    def to_bytes(self, owner_epoch: int = 0) -> bytes:
        """Serialised by an owner of ``owner_epoch``: the record's epoch never goes back."""
        after: dict[str, Any] = {}
        if self.state is not None or self.next_poll_at is not None or self.command_answers \
                or self.status_event is not None or self.provider_events:
            after = {"state": None if self.state is None else self.state.to_json(),
                     "status_event": self.status_event,
                     "status_event_published": self.status_event_published,
                     "provider_events": list(self.provider_events),
                     "next_poll_at": self.next_poll_at, "command_answers": self.command_answers}
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
            **after,
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
            state=LinkState.from_json(d["state"]) if d.get("state") is not None else None,
            status_event=d.get("status_event"),
            status_event_published=d.get("status_event_published", True),
            provider_events=tuple(d.get("provider_events", ())),
            next_poll_at=d.get("next_poll_at"),
            command_answers=d.get("command_answers"),
        )


def find_record(get: Callable[[str], bytes | None], link_key: str) -> tuple[str, bytes | None]:
    """The table key and the stored record of a link.

    Records are keyed by the link's reference (a function of its link key, which a
    provider webhook names: :func:`~streams.connectors.base.link_reference`). A link
    created before references carried the key's hash is stored under its link key: it
    is read there when nothing is stored under the reference, and kept there, so no
    request ever misses a link it created (which would make a second link).
    """
    key = link_reference(link_key)
    raw = get(key)
    if raw is None:
        legacy = get(link_key)
        if legacy is not None:
            return link_key, legacy
    return key, raw


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
    # The record is new: it is written (durably) before any provider call. A new record
    # may still look up first: a reconciliation re-drive of a link the provider may hold.
    fresh: bool = False


@dataclass(frozen=True)
class Republish:
    """A duplicate of a settled request: send the stored outcome again, unchanged."""

    outcome: Mapping[str, Any]


@dataclass(frozen=True)
class Conflict:
    """Same link key, different content: fail this request, leave the link alone."""

    existing: LinkRecord


Decision = StartCreation | Republish | Conflict


def decide(record: LinkRecord | None, *, link_key: str, fingerprint: str, connector: str,
           reference: str, source: SourceOffset, started_at: str | None = None,
           request_event_id: str | None = None, lookup_first: bool = False) -> Decision:
    """``lookup_first``: the request says a link may already exist for its key though no
    record remembers one (``reconcile --repair`` re-drives a link the provider holds):
    a new record then looks up by reference before any create, and adopts what it finds."""
    if record is None:
        return StartCreation(
            LinkRecord(link_key=link_key, status=LinkStatus.CREATING, fingerprint=fingerprint,
                       connector=connector, reference=reference, source=source,
                       started_at=started_at, request_event_id=request_event_id),
            lookup_first=lookup_first, fresh=True,
        )
    if record.fingerprint != fingerprint:
        return Conflict(record)
    if record.status in TERMINAL:
        # Every record of a settled link, the one that settled it included (a
        # redelivery after a crash, a replay of the topic), gets the stored outcome
        # again: the same event id and bytes (DESIGN.md rule 5), never a provider call.
        assert record.outcome is not None
        return Republish(record.outcome)
    # creating: an earlier attempt (this worker before a crash, or another worker
    # before a rebalance) may have reached the provider. Find out before creating.
    return StartCreation(record, lookup_first=True)


# --- transitions once the provider has answered ------------------------------------


def settled(record: LinkRecord, outcome: Mapping[str, Any], *, created: bool,
            provider_calls: int, state: LinkState | None = None,
            next_poll_at: float | None = None) -> LinkRecord:
    """The outcome is stored before it is published, so a crash in between re-publishes it.

    A created link starts its life after creation here: ``state`` is what the create
    answer said, and ``next_poll_at`` when it is first polled.
    """
    return replace(record, status=LinkStatus.CREATED if created else LinkStatus.FAILED,
                   outcome=dict(outcome), outcome_published=False, provider_calls=provider_calls,
                   state=state if created else None,
                   next_poll_at=next_poll_at if created else None)


def published(record: LinkRecord) -> LinkRecord:
    return replace(record, outcome_published=True)


# --- after creation: provider reports -----------------------------------------------


@dataclass(frozen=True)
class StatusIgnored:
    """The report changes nothing: ``reason`` says why (never an error)."""

    reason: str  # not_created | unknown_status | duplicate | stale


@dataclass(frozen=True)
class StatusChanged:
    """The link moved: store ``record`` (its new state), then publish one event."""

    record: LinkRecord
    previous: LinkState | None
    state: LinkState


StatusDecision = StatusIgnored | StatusChanged


def apply_report(record: LinkRecord, report: StatusReport, lifecycle: LinkLifecycle, *,
                 source: str, received_at: str) -> StatusDecision:
    """What a provider report changes about a link: monotonic in the provider's order.

    Only a created link has a life to follow. A report whose provider event id was seen
    is a duplicate; one whose position is not past the stored one is stale (late, or
    out of order): neither changes anything, so any order of the same reports ends in
    the state of the latest, and re-delivered reports are no-ops. The new record keeps
    the stored status event as it is; the caller stores the event of this change.
    """
    if record.status is not LinkStatus.CREATED:
        return StatusIgnored("not_created")
    if report.event_id is not None and report.event_id in record.provider_events:
        return StatusIgnored("duplicate")
    state = link_state(lifecycle, report, source=source, received_at=received_at)
    if state is None:
        return StatusIgnored("unknown_status")
    previous = record.state
    if previous is not None and state.position <= previous.position:
        return StatusIgnored("stale")
    seen = record.provider_events
    if report.event_id is not None:
        seen = (seen + (report.event_id,))[-RECENT_PROVIDER_EVENTS:]
    return StatusChanged(replace(record, state=state, provider_events=seen), previous, state)


def with_status_event(record: LinkRecord, event: Mapping[str, Any],
                      command_id: str | None = None) -> LinkRecord:
    """The change's event, stored before it is published (a crash re-publishes it); when
    it answers a command, remembered as that command's answer."""
    changed = replace(record, status_event=dict(event), status_event_published=False)
    return answered(changed, command_id, event) if command_id is not None else changed


RECENT_COMMANDS = 8  # answers kept per link: a redelivery comes within one commit interval


def answered(record: LinkRecord, command_id: str, event: Mapping[str, Any]) -> LinkRecord:
    """``command_id`` was answered with ``event``: a redelivery is answered the same."""
    kept = [(k, v) for k, v in (record.command_answers or {}).items() if k != command_id]
    kept = kept[-(RECENT_COMMANDS - 1):] + [(command_id, dict(event))]
    return replace(record, command_answers=dict(kept))


def answer_to(record: LinkRecord, command_id: str | None) -> Mapping[str, Any] | None:
    """The stored answer to ``command_id``, if this record answered it already."""
    if command_id is None or not record.command_answers:
        return None
    answer = record.command_answers.get(command_id)
    return answer if isinstance(answer, Mapping) else None


def status_event_published(record: LinkRecord) -> LinkRecord:
    return replace(record, status_event_published=True)


def polled(record: LinkRecord, next_poll_at: float | None) -> LinkRecord:
    return replace(record, next_poll_at=next_poll_at)
