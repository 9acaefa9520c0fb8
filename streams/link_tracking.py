"""A created link's life at its provider: reports, polls and cancels, one link at a time.

Everything that can change a created link reaches its owner as a record keyed to the
link's home partition, and runs as work of the request agent, in order with the link's
settlement (:class:`~streams.inflight.KeyedInFlight`, keyed by the link's reference):

* ``payout-link-provider-reports`` (internal): a verified provider webhook (written by
  the worker's web server before it answers the provider, :mod:`streams.web.webhooks`),
  a poll due (written by the poll sweep, :mod:`streams.agents.polls`), or an expiry to
  enforce (a link past its ``expires_at`` at a provider that does not expire links);
* ``payout-link-cancel-requested`` (public): a command to cancel a link.

What a report changes is decided by :func:`streams.lifecycle.apply_report` (pure, the
provider's own order). A real change is stored in the record with its event *before*
the event is published, then marked published, as outcomes are: a crash in between
re-publishes the same bytes. A report that changes nothing publishes nothing.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from faust.types import TopicT

from streams import events, lifecycle, metrics
from streams.config import Settings
from streams.connectors.base import (
    Cancelled,
    LinkRef,
    NotCancellable,
    NotFound,
    Rejected,
    StatusReport,
    Transient,
    Unknown,
    link_reference,
)
from streams.link_creation import LinkCreator
from streams.ownership import Fenced, current_epoch, current_partition, require_ownership
from streams.polling import PollPolicy, epoch_s, next_poll_at

log = logging.getLogger(__name__)

REPORT, POLL, EXPIRE, CANCEL = "report", "poll", "expire", "cancel"
KINDS = (REPORT, POLL, EXPIRE, CANCEL)
MAX_WEBHOOK_BODY_KEPT = 16 * 1024  # the raw webhook kept with its report, for audit


@dataclass(frozen=True)
class TrackingMessage:
    """One record of ``payout-link-provider-reports`` (written only by this service)."""

    kind: str  # report | poll | expire | cancel (a command re-keyed to its link's home)
    connector: str
    reference: str
    link_key: str | None  # known for polls and expiries; a webhook names only the reference
    received_at: str
    report: StatusReport | None = None  # kind report
    merchant_id: str | None = None  # the merchant whose webhook secret verified it
    webhook_body: bytes | None = None  # the verified raw body (bounded), for audit
    # kind cancel: the command as it came, and where it came from (its answer is dated
    # from that record, whichever partition first read it).
    command: Mapping[str, Any] | None = None
    source: lifecycle.SourceOffset | None = None

    def to_bytes(self) -> bytes:
        report = None if self.report is None else {
            "connector_status": self.report.connector_status, "attempt": self.report.attempt,
            "reference": self.report.reference,
            "connector_payout_id": self.report.connector_payout_id,
            "occurred_at": self.report.occurred_at, "event_id": self.report.event_id,
            "event_name": self.report.event_name}
        body = self.webhook_body
        source = self.source
        return orjson.dumps({
            "kind": self.kind, "connector": self.connector, "reference": self.reference,
            "link_key": self.link_key, "received_at": self.received_at, "report": report,
            "merchant_id": self.merchant_id,
            "webhook_body_b64": None if body is None else base64.b64encode(
                body[:MAX_WEBHOOK_BODY_KEPT]).decode("ascii"),
            "webhook_body_size": None if body is None else len(body),
            "command": self.command,
            "source": None if source is None else [source.topic, source.partition,
                                                   source.offset, source.timestamp],
        })

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> TrackingMessage:
        """Raises ValueError (or KeyError/TypeError) on a record this code did not write."""
        if raw is None:
            raise ValueError("a tombstone")
        d = orjson.loads(raw)
        if not isinstance(d, dict) or d.get("kind") not in KINDS:
            raise ValueError("not a provider-reports record")
        r = d.get("report")
        report = None if r is None else StatusReport(
            connector_status=str(r["connector_status"]), attempt=int(r.get("attempt") or 0),
            reference=r.get("reference"), connector_payout_id=r.get("connector_payout_id"),
            occurred_at=r.get("occurred_at"), event_id=r.get("event_id"),
            event_name=r.get("event_name"))
        if d["kind"] == REPORT and report is None:
            raise ValueError("a report record without its report")
        link_key = d.get("link_key")
        if link_key is not None and not isinstance(link_key, str):
            raise ValueError("link_key is not a string")
        command, source = d.get("command"), d.get("source")
        if d["kind"] == CANCEL and (not isinstance(command, dict) or link_key is None
                                     or not isinstance(source, list)):
            raise ValueError("a cancel record without its command, link key or source")
        return cls(kind=d["kind"], connector=str(d["connector"]), reference=str(d["reference"]),
                   link_key=link_key, received_at=str(d["received_at"]),
                   report=report, merchant_id=d.get("merchant_id"), command=command,
                   source=None if source is None else lifecycle.SourceOffset(
                       str(source[0]), int(source[1]), int(source[2]),
                       None if source[3] is None else float(source[3])))


@dataclass(frozen=True)
class CancelRetry:
    attempts: int = 4
    backoff_s: float = 0.5


class LinkTracker:
    """Applies reports, polls, expiries and cancels to the created links this worker owns."""

    def __init__(self, *, settings: Settings, links: Any, status_changed: TopicT,
                 cancel_failed: TopicT, creators: Mapping[str, LinkCreator],
                 send: Callable[..., Awaitable[None]],
                 policy: PollPolicy | None = None, clock: Callable[[], float] = time.time,
                 rand: Callable[[], float] = random.random,
                 cancel_retry: CancelRetry = CancelRetry()) -> None:
        self.settings = settings
        self.links = links
        self.status_changed = status_changed
        self.cancel_failed = cancel_failed
        self.creators = creators
        self._send = send
        self.policy = policy or PollPolicy()
        self._clock = clock
        self._rand = rand
        self._cancel_retry = cancel_retry
        # What happened to reports, by outcome (changed, stale, duplicate, …): counted
        # for operators and checkers; a mismatch or an unknown link is also logged.
        self.counts: dict[str, int] = {}

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    # --- finding the record ----------------------------------------------------------

    def _find(self, link_key: str | None, reference: str) -> tuple[str, lifecycle.LinkRecord | None]:
        """The table key and record of a link, by link key or (webhooks) by reference."""
        if link_key is not None:
            key, raw = self.links.find(link_key)
        else:
            key, raw = reference, self.links.get(reference)
        return key, (lifecycle.LinkRecord.from_bytes(raw) if raw is not None else None)

    def _write(self, table_key: str, record: lifecycle.LinkRecord) -> None:
        require_ownership()
        self.links[table_key] = record.to_bytes(current_epoch())

    async def _store(self, table_key: str, record: lifecycle.LinkRecord) -> None:
        """A write that must be in the changelog before what it stores is told."""
        require_ownership()
        await self.links.put_durably(table_key, record.to_bytes(current_epoch()))

    def _check_table(self) -> None:
        unrecovered = getattr(self.links, "unrecovered", None)
        if unrecovered is not None:  # the worker is crashing: touch nothing
            raise Fenced(current_partition(), "the link table could not be recovered "
                         f"({unrecovered!r})")

    # --- provider reports, polls and expiries ----------------------------------------

    async def on_message(self, message: TrackingMessage) -> None:
        require_ownership()
        self._check_table()
        table_key, record = self._find(message.link_key, message.reference)
        if record is None:
            self._count("unknown_link")
            log.warning("%s for reference %s at %s: no link of ours has it", message.kind,
                        message.reference, message.connector)
            return
        if record.connector != message.connector:
            self._count("connector_mismatch")
            log.error("%s from %s names %s, a link at %s: ignored", message.kind,
                      message.connector, record.link_key, record.connector)
            return
        if message.merchant_id is not None and not self._vouches(message, record):
            # One merchant's webhook secret never vouches for another merchant's link.
            self._count("merchant_mismatch")
            log.error("webhook verified for merchant %s names a link of another merchant "
                      "(%s): ignored", message.merchant_id, record.link_key)
            return
        record = await self._publish_pending(table_key, record)
        if record.status is not lifecycle.LinkStatus.CREATED:
            # In doubt, or failed: nothing to follow yet. The poll that starts once the
            # link is created reads its status then.
            self._count("not_created")
            log.info("%s for %s while it is %s: left to the first poll after creation",
                     message.kind, record.link_key, record.status.value)
            return
        if message.kind == REPORT:
            assert message.report is not None
            stated = message.report.connector_payout_id
            known = (record.outcome or {}).get("connector_payout_id")
            if stated and known and stated != known:
                # Our reference on another of the provider's links (made outside this
                # system): it says nothing about ours.
                self._count("payout_id_mismatch")
                log.error("webhook from %s names %s with another payout id: ignored",
                          message.connector, record.link_key)
                return
            await self._apply(table_key, record, message.report, lifecycle.WEBHOOK,
                              message.received_at)
        elif message.kind == POLL:
            due = record.next_poll_at
            if (record.status_event is None or record.status_event_published) and \
                    due is not None and due > self._clock():
                self._count("not_due")  # polled since the sweep asked (a lagging agent)
                return
            await self._poll(table_key, record, lifecycle.POLL)
        else:
            await self._expire(table_key, record)

    def _vouches(self, message: TrackingMessage, record: lifecycle.LinkRecord) -> bool:
        """Whether the account whose secret verified the webhook is the link's account."""
        merchant = events.split_link_key(record.link_key)[0]
        if message.merchant_id != "*":
            return merchant == message.merchant_id
        shared = (self.settings.credentials.get("*") or {}).get(record.connector)
        own = (self.settings.credentials.get(merchant) or {}).get(record.connector)
        return shared is not None and own is None

    async def _publish_pending(self, table_key: str,
                               record: lifecycle.LinkRecord) -> lifecycle.LinkRecord:
        """A change stored but not yet told (a crash in between): tell it now."""
        if record.status_event is None or record.status_event_published:
            return record
        await self._publish(record.link_key, record.status_event)
        record = lifecycle.status_event_published(record)
        self._write(table_key, record)
        return record

    async def _apply(self, table_key: str, record: lifecycle.LinkRecord, report: StatusReport,
                     source: str, received_at: str,
                     command_id: str | None = None) -> lifecycle.LinkRecord:
        """Apply one report; a change is stored, told, marked told. ``command_id``: the
        cancel command whose execution found the link cancelled (the change answers it)."""
        provider = self.creators[record.connector].provider
        if source in (lifecycle.COMMAND, lifecycle.EXPIRY) and \
                provider.lifecycle.payout_status(report.connector_status) != "CANCELLED":
            command_id, source = None, lifecycle.POLL  # seen while cancelling, not caused by it
        decision = lifecycle.apply_report(record, report, provider.lifecycle, source=source,
                                          received_at=received_at)
        if isinstance(decision, lifecycle.StatusIgnored):
            self._count(decision.reason)
            if decision.reason == "unknown_status":
                log.warning("%s reported status %r for %s: not a status this version knows; "
                            "ignored", record.connector, report.connector_status,
                            record.link_key)
            if source == lifecycle.POLL:
                return self._reschedule(table_key, record)
            return record
        previous, state = decision.previous, decision.state
        outcome = record.outcome or {}
        event = events.status_changed_event(
            link_key_=record.link_key, request_event_id=record.request_event_id,
            connector=record.connector,
            connector_payout_id=str(outcome.get("connector_payout_id") or
                                    report.connector_payout_id or ""),
            reference=record.reference, payout_status=state.payout_status,
            connector_status=state.connector_status, position=state.position,
            occurred_at=state.changed_at,
            previous_payout_status=previous.payout_status if previous else None,
            previous_connector_status=previous.connector_status if previous else None,
            source=source, final=state.final, provider_event_id=report.event_id,
            command_event_id=command_id)
        changed = lifecycle.with_status_event(decision.record, event, command_id)
        changed = lifecycle.polled(changed, self._next_poll(changed))
        await self._store(table_key, changed)  # stored before it is told
        self._count("changed")
        log.info("link %s: %s -> %s (%s)", record.link_key,
                 previous.connector_status if previous else "?", state.connector_status, source)
        await self._publish(record.link_key, event)
        changed = lifecycle.status_event_published(changed)
        self._write(table_key, changed)
        return changed

    def _next_poll(self, record: lifecycle.LinkRecord) -> float | None:
        return next_poll_at(self._clock(), epoch_s(record.started_at), record.state,
                            self.policy, self._rand)

    def _reschedule(self, table_key: str, record: lifecycle.LinkRecord) -> lifecycle.LinkRecord:
        record = lifecycle.polled(record, self._next_poll(record))
        self._write(table_key, record)
        return record

    def _link_ref(self, record: lifecycle.LinkRecord) -> LinkRef:
        outcome = record.outcome or {}
        return LinkRef(record.reference, str(outcome.get("connector_payout_id") or ""),
                       events.split_link_key(record.link_key)[0])

    def _account(self, record: lifecycle.LinkRecord) -> Any:
        return self.settings.account(events.split_link_key(record.link_key)[0], record.connector)

    async def _poll(self, table_key: str, record: lifecycle.LinkRecord, source: str,
                    command_id: str | None = None) -> lifecycle.LinkRecord:
        account = self._account(record)
        if account is None:
            self._count("poll_no_account")
            log.error("link %s: no %s credentials for its merchant any more; not polled",
                      record.link_key, record.connector)
            return self._reschedule(table_key, record)
        creator = self.creators[record.connector]
        link = self._link_ref(record)
        answer = await creator.guarded(lambda: creator.client.status(link, account), account)
        if isinstance(answer, StatusReport):
            self._count("polled")
            return await self._apply(table_key, record, answer, source, events.now_iso(),
                                     command_id)
        # A refused or failed read proves nothing about the link: ask again later.
        self._count(f"poll_{type(answer).__name__.lower()}")
        log.info("polling %s at %s: %s", record.link_key, record.connector, _describe(answer))
        return self._reschedule(table_key, record)

    async def _expire(self, table_key: str, record: lifecycle.LinkRecord) -> None:
        """A link past its ``expires_at`` at a provider that does not expire links."""
        if record.state is not None and record.state.final:
            return
        result = await self._cancel_at_provider(table_key, record, lifecycle.EXPIRY)
        if not isinstance(result, lifecycle.LinkRecord):
            log.warning("link %s is past its expiry but could not be cancelled (%s); "
                        "retried at its next poll", record.link_key, result[1])

    # --- cancel commands -------------------------------------------------------------

    async def on_cancel(self, command: Mapping[str, Any], source: lifecycle.SourceOffset) -> None:
        """Carry out a cancel command once: its answer (a change or a refusal) is stored
        with the link before it is told, and a redelivered command is answered with it."""
        require_ownership()
        self._check_table()
        link_key = events.link_key(command["merchant_id"], command["merchant_payout_id"])
        command_id = command.get("event_id") if isinstance(command.get("event_id"), str) \
            else None
        table_key, record = self._find(link_key, link_reference(link_key))

        async def refuse(code: str, message: str, current: lifecycle.LinkRecord | None,
                         field: str | None = None) -> None:
            state = current.state if current is not None else None
            status: str | None = None
            payout: str | None = None
            if state is not None:
                status, payout = state.connector_status, state.payout_status
            elif current is not None and current.status is lifecycle.LinkStatus.FAILED:
                payout = "FAILED"
            self._count(f"cancel_{code}")
            failure = events.cancel_failed_event(
                link_key_=link_key,
                request_event_id=current.request_event_id if current else None,
                command_event_id=command_id,
                connector=current.connector if current else None, payout_status=payout,
                connector_status=status, code=code, message=message, field=field,
                source=source)
            if current is not None and command_id is not None:
                await self._store(table_key, lifecycle.answered(current, command_id, failure))
            await self._emit(self.cancel_failed, link_key, failure)

        if record is None:
            await refuse("link_not_found", f"no link exists for {link_key}", None)
            return
        record = await self._publish_pending(table_key, record)
        answer = lifecycle.answer_to(record, command_id)
        if answer is not None:  # redelivered: the same answer again
            self._count("cancel_answered_again")
            topic = self.status_changed if answer.get("event_type") == events.STATUS_CHANGED \
                else self.cancel_failed
            await self._emit(topic, link_key, answer)
            return
        if record.status is not lifecycle.LinkStatus.CREATED:
            await refuse("not_cancellable", f"the link is {record.status.value}: only a "
                                            "created link can be cancelled", record)
            return
        if record.state is not None and record.state.final:
            await refuse("not_cancellable", f"the link is already {record.state.connector_status} "
                                            "at the provider", record)
            return
        result = await self._cancel_at_provider(table_key, record, lifecycle.COMMAND,
                                                command_id)
        if not isinstance(result, lifecycle.LinkRecord):
            code, message, current = result
            await refuse(code, message, current)

    async def _cancel_at_provider(
            self, table_key: str, record: lifecycle.LinkRecord, source: str,
            command_id: str | None = None,
    ) -> lifecycle.LinkRecord | tuple[str, str, lifecycle.LinkRecord]:
        """Cancel at the provider; the record after it (its change published), or (code,
        message, record) when the link was not cancelled. A cancel in doubt, or one the
        provider accepted without saying the status, is settled by reading the status."""
        account = self._account(record)
        if account is None:
            return ("connector_not_configured",
                    f"the merchant has no {record.connector} credentials configured", record)
        creator = self.creators[record.connector]
        link = self._link_ref(record)
        answer: Any = None
        for attempt in range(self._cancel_retry.attempts):
            answer = await creator.guarded(lambda: creator.client.cancel(link, account), account)
            if not isinstance(answer, (Transient, Unknown)):
                break
            await asyncio.sleep(self._cancel_retry.backoff_s * 2 ** attempt * self._rand())
        if isinstance(answer, Cancelled):
            self._count("cancelled")
            if answer.report is not None:
                record = await self._apply(table_key, record, answer.report, source,
                                           events.now_iso(), command_id)
                if record.state is not None and record.state.payout_status == "CANCELLED":
                    return record
            for attempt in range(self._cancel_retry.attempts):  # what does it say now?
                after = await self._poll(table_key, record, source, command_id)
                if after.state is not None and after.state.payout_status == "CANCELLED":
                    return after
                record = after
                await asyncio.sleep(self._cancel_retry.backoff_s * 2 ** attempt)
            return ("provider_unavailable", "the provider accepted the cancel but its status "
                    "could not be read; a payout-link-status-changed follows when a poll can",
                    record)
        if isinstance(answer, Rejected):
            code = {"connector_flow_not_supported": "cancel_not_supported",
                    "provider_authentication_failed": "provider_authentication_failed",
                    }.get(answer.code, "provider_rejected")
            return code, answer.message, record
        # Not cancellable, or the provider would not say: what is the link's state now?
        # (A cancel racing a claim ends in whichever the provider applied first.)
        after = await self._poll(table_key, record, source, command_id)
        if after.state is not None and after.state.payout_status == "CANCELLED":
            return after
        if isinstance(answer, NotCancellable):
            return "not_cancellable", answer.message, after
        return "provider_unavailable", f"the provider did not answer the cancel: " \
                                       f"{_describe(answer)}", after

    async def _publish(self, link_key: str, event: Mapping[str, Any]) -> None:
        await self._emit(self.status_changed, link_key, event)

    async def _emit(self, topic: Any, link_key: str, event: Mapping[str, Any]) -> None:
        """As every emitted event: JSON value, CloudEvents headers, counted."""
        await self._send(topic, link_key.encode(), events.encode(event), None,
                         headers=events.cloudevent_headers(event))
        metrics.outcome_published(event)


def _describe(answer: Any) -> str:
    if isinstance(answer, (Transient, Unknown)):
        return f"{type(answer).__name__.lower()} ({answer.reason})"
    if isinstance(answer, Rejected):
        return f"refused ({answer.code}: {answer.message[:200]})"
    if isinstance(answer, NotFound):
        return "not found"
    return type(answer).__name__
