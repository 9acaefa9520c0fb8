"""What happens to one record of ``payout-link-requested``.

``accept`` runs the serialized intake step (:mod:`streams.intake`: parse, validate,
dry-run transform) under the crash marker, routes what is not a valid request, and
hands the work for a valid one to :class:`KeyedInFlight`. That work is ``handle``:
decide with the lifecycle, act through the link's provider, emit the outcome.

Nothing a record holds may stop its partition. Every exception is caught where it
happens and the record ends in a definite, published place: before any provider call
may have been made, a ``processing_error`` failure (or a dead letter when the request
can't even be identified); after, the link stays unresolved (:mod:`streams.unresolved`)
and its record is acked so the partition moves on.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any, cast

import orjson
from faust.types import TP, EventT, Message, TopicT

from streams import events, intake, lifecycle, metrics, ownership
from streams.app import LinkTable
from streams.config import Settings
from streams.connectors.base import LinkCreated, Rejected, StatusReport, link_reference
from streams.connectors.registry import PROVIDERS
from streams.connectors.routing import Route, Unroutable, route_existing
from streams.faults import NO_FAULTS, Faults
from streams.inflight import KeyedInFlight
from streams.link_creation import CallCount, CreationResult, InDoubt, LinkCreator, RetriesExhausted
from streams.link_tracking import CANCEL, LinkTracker, TrackingMessage
from streams.ownership import Fenced, current_epoch, require_ownership
from streams.partitioning import home_partition
from streams.poison import CrashMarker, Stage, Verdict, isolate
from streams.polling import PollPolicy, next_poll_at
from streams.unresolved import UnresolvedEntry, parked

log = logging.getLogger(__name__)


POISON_DETAIL = "it stopped the worker, and an isolated run of it did too"


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:300] + "…"


class RequestProcessor:
    def __init__(self, *, settings: Settings, links: LinkTable, routed: TopicT, created: TopicT,
                 failed: TopicT, dead_letter: TopicT, creators: Mapping[str, LinkCreator],
                 on_fatal: Callable[[BaseException], Awaitable[Any]],
                 unresolved: Any = None, marker: CrashMarker | None = None,
                 faults: Faults = NO_FAULTS, clock: Callable[[], float] = time.time,
                 release: Callable[[Message], None] | None = None,
                 on_fenced: Callable[[TP, Fenced], None] | None = None,
                 tracker: LinkTracker | None = None, reports: TopicT | None = None) -> None:
        self.settings = settings
        self.reports = reports  # payout-link-provider-reports: commands re-keyed home
        self.tracker = tracker  # a created link's life (None: requests only, in unit tests)
        self.poll_policy = PollPolicy(min_s=settings.poll_min_s, max_s=settings.poll_max_s,
                                      reversal_watch_s=settings.reversal_watch_s,
                          reversal_poll_s=settings.reversal_poll_s)
        self.links = links
        self.unresolved = unresolved if unresolved is not None else {}
        self.routed, self.created, self.failed, self.dead_letter = routed, created, failed, dead_letter
        self.creators = creators
        self.in_flight = KeyedInFlight(settings.max_in_flight, on_fatal, release=release,
                                       on_fenced=on_fenced)
        self.handovers_waited = 0  # in-doubt links whose lookup waited out an old owner
        self.handover_wait_s = 0.0
        self.marker = marker
        self.faults = faults
        self._clock = clock
        self.parked = 0  # links parked as unresolved by this worker (an alert each)
        self.contained = 0  # unexpected exceptions turned into a definite place

    # --- intake, in the agent's loop ------------------------------------------------

    async def accept(self, event: EventT[Any]) -> None:
        message = event.message
        if message.topic == self.settings.topics.reports:
            await self._accept_report(event)
            return
        kind = intake.COMMAND if message.topic == self.settings.topics.cancel_requested \
            else intake.REQUEST
        source = events.SourceRecord(
            topic=message.topic, partition=message.partition, offset=message.offset,
            # aiokafka delivers headers as a list of pairs (the Mapping form is for sends).
            key=message.key, value=message.value,
            headers=list(cast("Sequence[tuple[str, bytes | None]]", message.headers or ())),
            timestamp=message.timestamp,
        )
        once = f"{source.topic}/{source.partition}/{source.offset}"  # a key nobody shares
        marker = self.marker
        suspect = None if marker is None else marker.is_suspect(
            source.topic, source.partition, source.offset)
        if marker is not None and suspect is not None:
            if suspect.confirmed:  # judged before, but its offset was not committed then
                verdict = Verdict(True, suspect.stage, "judged poison before")
            else:
                verdict = await isolate(source.value, env=dict(os.environ), kind=kind)
            marker.judged(suspect, poison=verdict.poison, stage=verdict.stage)
            if verdict.poison:
                log.error("%s crashed this worker before, and an isolated run of it died too "
                          "(%s, stage %s): routing it without handling it", once, verdict.detail,
                          verdict.stage.name.lower() if verdict.stage else "?")
                # The published detail is the same whichever run judged it (the first
                # isolated run, or a restart that finds it judged before): a redelivered
                # record's failure is re-published with one content under its id.
                await self._submit_poison(event, source, once, verdict.stage, POISON_DETAIL,
                                          kind)
                return
            log.warning("%s was in the risky step when this worker last died, but an isolated "
                        "run survived it (%s): handling it as usual", once, verdict.detail)
        reached = [Stage.PARSE]

        def report(stage: Stage) -> None:
            reached[0] = stage
            if marker is not None:
                marker.stage(stage)

        result: intake.Intake | intake.CommandIntake
        try:
            if marker is not None:
                marker.enter(source.topic, source.partition, source.offset)
            if kind == intake.COMMAND:
                result = intake.classify_cancel(source.value, report)
            else:
                result = intake.classify(source.value, self.settings, self.faults, report)
        except Exception as exc:  # a bug (or a fault) in the intake step: route, never crash
            self.contained += 1
            log.error("intake of %s raised %s in stage %s", once, _describe(exc),
                      reached[0].name.lower())
            await self._submit_poison(event, source, once, reached[0], _describe(exc), kind)
            return
        finally:
            if marker is not None:
                marker.clear()
        await self._dispatch(event, source, once, result)

    async def _accept_report(self, event: EventT[Any]) -> None:
        """A record of the provider-reports topic: written by the workers themselves
        (verified webhooks, polls due, expiries), so parsing it is not risky input."""
        message = event.message
        once = f"{message.topic}/{message.partition}/{message.offset}"
        try:
            tracking = TrackingMessage.from_bytes(message.value)
            if tracking.link_key is not None:
                link_reference(tracking.link_key)  # a link key we can work with
        except Exception as exc:
            source = events.SourceRecord(
                topic=message.topic, partition=message.partition, offset=message.offset,
                key=message.key, value=message.value,
                headers=list(cast("Sequence[tuple[str, bytes | None]]", message.headers or ())),
                timestamp=message.timestamp)
            log.error("dead-lettering %s: not a provider-reports record (%s)", once,
                      _describe(exc))
            await self.in_flight.submit(event, once, partial(
                self._publish, self.dead_letter, events.outcome_record_key(source.key),
                events.dead_letter_event(source, events.Unparseable(
                    "unparseable", f"not a provider-reports record: {_describe(exc)}"))))
            return
        if tracking.kind == CANCEL:
            assert tracking.link_key is not None and tracking.command is not None \
                and tracking.source is not None
            valid = intake.ValidCancel(dict(tracking.command), tracking.link_key,
                                       tracking.reference)
            await self.in_flight.submit(event, valid.reference,
                                        partial(self._track_cancel, valid, tracking.source))
            return
        key = tracking.reference if tracking.link_key is None \
            else link_reference(tracking.link_key)
        await self.in_flight.submit(event, key, partial(self._track, tracking, once))

    async def _track(self, tracking: TrackingMessage, once: str) -> None:
        """Apply a report, poll or expiry; contained: it never stops the partition."""
        if self.tracker is None:
            return
        try:
            await self.tracker.on_message(tracking)
        except Fenced:
            raise
        except Exception as exc:
            # Nothing here creates a link: at worst a status change is stored but not yet
            # told, which the next report or poll of the link publishes.
            self.contained += 1
            log.error("applying %s %s (%s) raised %s; the link's next poll reads it again",
                      tracking.kind, once, tracking.reference, _describe(exc), exc_info=exc)

    async def _track_cancel(self, valid: intake.ValidCancel,
                            source: lifecycle.SourceOffset) -> None:
        if self.tracker is None:
            return
        try:
            await self.tracker.on_cancel(valid.command, source)
        except Fenced:
            raise
        except Exception as exc:
            self.contained += 1
            log.error("cancelling %s raised %s", valid.key, _describe(exc), exc_info=exc)
            await self._publish(self.tracker.cancel_failed, valid.key.encode(), (
                events.cancel_failed_event(
                    link_key_=valid.key, request_event_id=None,
                    command_event_id=valid.command.get("event_id"), connector=None,
                    payout_status=None, connector_status=None, code="processing_error",
                    message="cancelling failed unexpectedly; whether the provider cancelled "
                            "the link is told by its payout-link-status-changed events",
                    field=None, source=source)))

    async def _dispatch(self, event: EventT[Any], source: events.SourceRecord, once: str,
                        result: intake.Intake | intake.CommandIntake) -> None:
        if not isinstance(result, intake.Valid):
            metrics.child(metrics.REQUESTS, _intake_result(result)).inc()
        if isinstance(result, intake.ValidCancel):
            offset = lifecycle.SourceOffset(source.topic, source.partition, source.offset,
                                            source.timestamp)
            home = home_partition(result.key, self.settings.partitions)
            if self.reports is not None and (source.key != result.key.encode()
                                             or source.partition != home):
                # Wrong or missing key: the command is carried to its link's home
                # partition (as a request is re-keyed), else it would meet no record there.
                forward = TrackingMessage(kind=CANCEL, connector="", reference=result.reference,
                                          link_key=result.key, received_at=events.now_iso(),
                                          command=result.command, source=offset)
                await self.in_flight.submit(event, once, partial(
                    self._send, self.reports, result.reference.encode(), forward.to_bytes(),
                    home))
                return
            await self.in_flight.submit(event, result.reference,
                                        partial(self._track_cancel, result, offset))
            return
        if isinstance(result, intake.InvalidCommand):
            log.info("invalid cancel command %s: %s (%s)", once, result.problem.field,
                     result.problem.message)
            key = events.request_link_key(result.command)
            if key is None or self.tracker is None:
                dead = events.dead_letter_event(source, events.Unparseable(
                    "invalid_command", f"{result.problem.field}: {result.problem.message}"))
                await self.in_flight.submit(event, once, partial(
                    self._publish, self.dead_letter, events.outcome_record_key(source.key),
                    dead))
                return
            failure = events.cancel_failed_event(
                link_key_=key, request_event_id=None,
                command_event_id=result.command.get("event_id")
                if isinstance(result.command.get("event_id"), str) else None,
                connector=None, payout_status=None, connector_status=None,
                code="invalid_command", message=result.problem.message,
                field=result.problem.field, source=source)
            await self.in_flight.submit(event, once, partial(
                self._publish, self.tracker.cancel_failed, key.encode(), failure))
            return
        if isinstance(result, events.Unparseable):
            log.warning("dead-lettering %s: %s", once, result.message)
            await self.in_flight.submit(event, once, partial(
                self._publish, self.dead_letter, events.outcome_record_key(source.key),
                events.dead_letter_event(source, result)))
            return
        if isinstance(result, intake.Invalid):
            field = result.problem.field or ""
            # A customer field's message quotes its value: PII, so not logged.
            log.info("invalid request %s: %s (%s)", once, field,
                     "value not logged: customer data" if field.startswith("customer")
                     else result.problem.message)
            failure = events.invalid_request_event(result.request, result.problem, source)
            await self.in_flight.submit(event, once, partial(
                self._publish, self.failed, self._failure_key(failure, source), failure))
            return
        key = result.key
        home = home_partition(key, self.settings.partitions)
        rekeyed = source.key != key.encode() or source.partition != home
        metrics.child(metrics.REQUESTS, "rekeyed" if rekeyed else "valid").inc()
        lookup_first = events.lookup_first_requested(source.headers)
        if rekeyed:
            # Wrong or missing key: re-key so every record of this link meets one owner.
            # The parsed request is re-encoded: bounded by the schema, it always fits
            # the producer's limit, whatever the source record's size.
            await self.in_flight.submit(event, once, partial(
                self._forward, key, home, orjson.dumps(result.request), lookup_first))
            return
        if lookup_first:
            result = dataclasses.replace(result, lookup_first=True)
        offset = lifecycle.SourceOffset(source.topic, source.partition, source.offset,
                                        source.timestamp)
        # Keyed by the link's reference: its webhooks, polls and cancels (which name the
        # reference) run in order with its settlement.
        await self.in_flight.submit(event, result.reference, partial(self.handle, result, offset))

    async def _submit_poison(self, event: EventT[Any], source: events.SourceRecord, once: str,
                             stage: Stage | None, detail: str, kind: str = intake.REQUEST,
                             ) -> None:
        """A record whose intake raised or crashed: a request failure, else a dead letter.

        Nothing was written and no provider was called for it, so it can only be a
        failure of this request, never of a link. A command is dead-lettered.
        """
        metrics.child(metrics.REQUESTS, "poison").inc()
        request = None
        if kind == intake.REQUEST and stage is not None and stage > Stage.PARSE:
            # it parsed once: parsing is safe
            try:
                parsed = events.parse_request(source.value)
                request = parsed if isinstance(parsed, dict) else None
            except Exception:
                request = None
        where = f" in stage {stage.name.lower()}" if stage is not None else ""
        if request is not None and events.request_link_key(request) is not None:
            failure = events.failed_event(
                request, code="processing_error", scope=events.REQUEST, field=None,
                message=f"handling this request failed{where}: {detail}",
                discriminator=f"processing_error:{once}", source=source)
            await self.in_flight.submit(event, once, partial(
                self._publish, self.failed, self._failure_key(failure, source), failure))
            return
        dead = events.dead_letter_event(source, events.Unparseable(
            "processing_error", f"handling this record failed{where}: {detail}"))
        await self.in_flight.submit(event, once, partial(
            self._publish, self.dead_letter, events.outcome_record_key(source.key), dead))

    @staticmethod
    def _failure_key(failure: Mapping[str, Any], source: events.SourceRecord) -> bytes | None:
        key = failure["link_key"]
        return key.encode() if key is not None else events.outcome_record_key(source.key)

    # --- the work for one valid request -----------------------------------------------

    async def handle(self, valid: intake.Valid, source: lifecycle.SourceOffset) -> None:
        """Handle a valid request, and contain anything unexpected so the partition keeps moving."""
        progress = CallCount()
        record: lifecycle.LinkRecord | None = None
        try:
            require_ownership()
            if self.links.unrecovered is not None:  # the worker is crashing: touch nothing
                raise Fenced(ownership.current_partition(), "the link table could not be "
                             f"recovered ({self.links.unrecovered!r})")
            table_key, raw = self.links.find(valid.key)
            record = lifecycle.LinkRecord.from_bytes(raw) if raw is not None else None
            await self._handle(valid, source, table_key, record, progress)
        except Fenced:
            raise  # not ours (provably): touch nothing more; the next owner redoes it
        except Exception as exc:
            await self._contain(exc, valid, source, record, progress)

    async def _handle(self, valid: intake.Valid, source: lifecycle.SourceOffset, table_key: str,
                      record: lifecycle.LinkRecord | None, progress: CallCount) -> None:
        request, key = valid.request, valid.key
        fingerprint = events.request_fingerprint(request)
        routing: Route | Unroutable | None = None
        if record is None:
            # A new link: the request's route decides. Once a record exists, its
            # connector and account are authoritative (DESIGN.md rule 3).
            if self.faults:
                self.faults.hit("route", key)
            routing = valid.routing
            if isinstance(routing, Unroutable):
                await self._publish_outcome(key, events.failed_event(
                    request, code=routing.code, message=routing.message, field=routing.field,
                    scope=events.REQUEST, discriminator=f"unroutable:{fingerprint}",
                    source=source))
                return
            unsupported = PROVIDERS[routing.connector].unsupported(request, self._clock())
            if unsupported is not None:
                await self._publish_outcome(key, events.failed_event(
                    request, code="unsupported_field", message=unsupported.message,
                    field=unsupported.field, scope=events.REQUEST, connector=routing.connector,
                    discriminator=f"unsupported:{fingerprint}", source=source))
                return
        connector = routing.connector if isinstance(routing, Route) else (
            record.connector if record is not None else "")
        decision = lifecycle.decide(record, link_key=key, fingerprint=fingerprint,
                                    connector=connector,
                                    reference=valid.reference or link_reference(key),
                                    source=source, started_at=events.now_iso(),
                                    request_event_id=request.get("event_id"),
                                    lookup_first=valid.lookup_first)
        if isinstance(decision, lifecycle.Republish):
            await self._publish_outcome(key, decision.outcome)
            if record is not None and not record.outcome_published:
                self.links[table_key] = lifecycle.published(record).to_bytes(current_epoch())
            self._resolved(key)
            return
        if isinstance(decision, lifecycle.Conflict):
            log.warning("idempotency conflict on %s", key)
            await self._publish_outcome(key, events.failed_event(
                request, code="idempotency_conflict",
                message=f"link key {key} was already used for a request with different content",
                field=None, scope=events.REQUEST, discriminator=f"conflict:{fingerprint}",
                source=source))
            return
        if decision.lookup_first and not decision.fresh:
            await self._wait_out_previous_owner(key)
            existing = route_existing(decision.record.connector, request, self.settings)
            if isinstance(existing, Unroutable):
                # In doubt at a provider we can no longer reach: never a failure.
                self._park(key, request, f"{existing.code}: {existing.message}",
                           kind="connector_unreachable")
                return
            routing = existing
        assert isinstance(routing, Route)
        # The dry run built the call for a new link's reference; a record from before
        # references carried the key's hash keeps its own, and every call about that
        # link uses it (a create under another reference could be a second link).
        call = valid.call if valid.reference == decision.record.reference else None
        await self._create(request, key, table_key, decision, routing, call, progress)

    async def _create(self, request: Mapping[str, Any], key: str, table_key: str,
                      decision: lifecycle.StartCreation, routing: Route,
                      call: Any, progress: CallCount) -> None:
        record = decision.record
        if decision.fresh:
            require_ownership()
            await self.links.put_durably(  # before any provider call
                table_key, record.to_bytes(current_epoch()))
        creator = self.creators[record.connector]
        result, calls = await creator.create_link(
            request, record.reference, routing.account, lookup_first=decision.lookup_first,
            prepared=call if routing.connector == record.connector else None, progress=progress)
        if isinstance(result, InDoubt):
            # The record stays `creating`; the request is acked; the re-drive asks again.
            self._park(key, request, f"in doubt after {result.attempts} attempts "
                                     f"({result.reason})", kind="in_doubt")
            return
        outcome = self._outcome_event(request, record, record.connector, result)
        created = isinstance(result, LinkCreated)
        state = self._initial_state(record, outcome, result) if created else None
        record = lifecycle.settled(
            record, outcome, created=created, provider_calls=record.provider_calls + calls,
            state=state, next_poll_at=None if state is None else next_poll_at(
                self._clock(), self._clock(), state, self.poll_policy, random.random))
        require_ownership()
        if not created:
            # A failure must be remembered before it is told: on a redelivery the
            # provider might now accept what it rejected, and two outcomes would exist.
            self.links[table_key] = record.to_bytes(current_epoch())
        # A created link needs no such write: until the one below lands, a redelivery
        # finds `creating`, looks the link up, and publishes the same event again.
        await self._publish_outcome(key, outcome)
        require_ownership()
        self.links[table_key] = lifecycle.published(record).to_bytes(current_epoch())
        self._resolved(key)

    def _initial_state(self, record: lifecycle.LinkRecord, outcome: Mapping[str, Any],
                       result: CreationResult) -> lifecycle.LinkState | None:
        """The link's status as the create (or the lookup) answered: where its life
        after creation starts, and what later reports are compared with."""
        assert isinstance(result, LinkCreated)
        provider = PROVIDERS.get(record.connector)
        if provider is None:
            return None
        report = StatusReport(result.connector_status, reference=record.reference,
                              connector_payout_id=result.connector_payout_id)
        return lifecycle.link_state(provider.lifecycle, report, source=lifecycle.CREATE,
                                    received_at=outcome["occurred_at"])

    @classmethod
    def _outcome_event(cls, request: Mapping[str, Any], record: lifecycle.LinkRecord,
                       connector: str, result: CreationResult) -> dict[str, Any]:
        event = cls._fresh_outcome_event(request, record, connector, result)
        # Whoever publishes this link's outcome (this owner, or the next after a crash
        # or a take-over) derives the time and the request from the record, not from
        # now and the request at hand: one event_id, one content.
        if record.started_at is not None:
            event["occurred_at"] = record.started_at
            event["request_event_id"] = record.request_event_id
        return event

    @staticmethod
    def _fresh_outcome_event(request: Mapping[str, Any], record: lifecycle.LinkRecord,
                             connector: str, result: CreationResult) -> dict[str, Any]:
        if isinstance(result, LinkCreated):
            return events.created_event(
                request, connector=connector, connector_payout_id=result.connector_payout_id,
                url=result.url, payout_status=result.payout_status,
                connector_status=result.connector_status, reference=record.reference,
                expires_at=result.expires_at, status_code=result.status_code)
        if isinstance(result, Rejected):
            return events.failed_event(
                request, code=result.code, message=result.message, field=result.field,
                status_code=result.status_code, connector=connector,
                connector_details=result.connector_details)
        assert isinstance(result, RetriesExhausted)
        return events.failed_event(
            request, code="retries_exhausted",
            message=f"gave up after {result.attempts} attempts that created nothing; "
                    f"last: {result.last.reason}",
            field=None, status_code=result.last.status_code, connector=connector)

    # --- containment: an unexpected exception ends in a definite place ---------------

    async def _contain(self, exc: Exception, valid: intake.Valid,
                       source: lifecycle.SourceOffset, before: lifecycle.LinkRecord | None,
                       progress: CallCount) -> None:
        request, key = valid.request, valid.key
        require_ownership()  # containment writes too: only the owner may
        self.contained += 1
        reason = _describe(exc)
        in_doubt = progress.started > 0 or (
            before is not None and before.status is lifecycle.LinkStatus.CREATING)
        if in_doubt:
            # A provider call may have created a link: only a lookup may end it.
            log.error("handling %s raised %s after a provider call may have been made",
                      key, reason, exc_info=exc)
            self._park(key, request, reason)
            return
        table_key, raw = self.links.find(key)
        now = lifecycle.LinkRecord.from_bytes(raw) if raw is not None else None
        if now is not None and now.status in lifecycle.TERMINAL and not now.outcome_published:
            # The link's outcome is decided but not told: re-driving publishes it.
            log.error("handling %s raised %s before its outcome was published", key, reason,
                      exc_info=exc)
            self._park(key, request, reason)
            return
        log.error("handling %s raised %s before any provider call", key, reason, exc_info=exc)
        message = f"handling this request failed before any provider call: {reason}"
        if before is None and now is not None and now.status is lifecycle.LinkStatus.CREATING:
            # This attempt wrote `creating` and called nothing: the link fails, for good,
            # and the failure is remembered before it is told (as any link failure).
            failure = events.failed_event(request, code="processing_error", message=message,
                                          field=None, connector=now.connector)
            settled = lifecycle.settled(now, failure, created=False,
                                        provider_calls=now.provider_calls)
            self.links[table_key] = settled.to_bytes(current_epoch())
            await self._publish(self.failed, key.encode(), failure)
            self.links[table_key] = lifecycle.published(settled).to_bytes(current_epoch())
            return
        # Nothing was written for this request (or its link is settled already): it
        # fails on its own and says nothing about the link.
        failure = events.failed_event(
            request, code="processing_error", message=message, field=None,
            scope=events.REQUEST,
            discriminator=f"processing_error:{source.topic}/{source.partition}/{source.offset}",
            source=source)
        await self._publish(self.failed, key.encode(), failure)

    async def _wait_out_previous_owner(self, key: str) -> None:
        """A link in doubt on a partition just taken over: the previous owner may still
        have a create on the wire. Look it up only once that call has surely ended."""
        lease = ownership.installed()
        tp = ownership.current_partition()
        if lease is None or tp is None:
            return
        left = lease.handover_left(tp)
        if left <= 0:
            return
        log.info("link %s is in doubt on %s/%s, taken over %.1f s ago: waiting %.1f s for "
                 "the previous owner's last possible call to end before looking it up", key,
                 tp.topic, tp.partition, lease.terms.handover_wait_s - left, left)
        self.handovers_waited += 1
        self.handover_wait_s += left
        await asyncio.sleep(left)
        require_ownership()

    def _park(self, key: str, request: Mapping[str, Any], reason: str,
              kind: str = "unexpected_error") -> None:
        """Leave the link unresolved; ``kind`` is the metric's bounded label."""
        require_ownership()
        raw = self.unresolved.get(key)
        previous = UnresolvedEntry.from_bytes(raw) if raw is not None else None
        entry = parked(previous, request, reason, self._clock(),
                       self.settings.unresolved_retry_s, self.settings.unresolved_retry_max_s)
        self.unresolved[key] = entry.to_bytes()
        self.parked += 1
        metrics.child(metrics.UNRESOLVED, kind).inc()
        log.error("ALERT link %s is unresolved (attempt %d: %s); its request is acked, the "
                  "link is re-driven in %.0fs", key, entry.attempts, reason,
                  entry.retry_at - self._clock())

    def _resolved(self, key: str) -> None:
        if self.unresolved.get(key) is not None:
            del self.unresolved[key]
            log.warning("unresolved link %s is resolved", key)

    # --- emitting -----------------------------------------------------------------------

    async def _publish_outcome(self, key: str, outcome: Mapping[str, Any]) -> None:
        if self.faults:
            self.faults.hit("publish", key)
        topic = self.created if outcome["event_type"] == events.CREATED else self.failed
        await self._publish(topic, key.encode(), outcome)

    async def _forward(self, key: str, partition: int, value: bytes,
                       lookup_first: bool = False) -> None:
        await self._send(self.routed, key.encode(), value, partition,
                         headers=[(events.LOOKUP_FIRST_HEADER, b"1")] if lookup_first else None)

    async def _publish(self, topic: TopicT, key: bytes | None, event: Mapping[str, Any]) -> None:
        """Every event this worker emits: JSON value, CloudEvents headers, counted."""
        await self._send(topic, key, events.encode(event), None,
                         headers=events.cloudevent_headers(event))
        metrics.outcome_published(event)

    @staticmethod
    async def send(topic: TopicT, key: bytes | None, value: bytes | None,
                   partition: int | None,
                   headers: list[tuple[str, bytes]] | None = None) -> None:
        """Returns only once the broker has the record (acks=all)."""
        delivery = await topic.send(key=key, value=value, partition=partition,
                                    headers=headers)
        await delivery

    _send = send


_INTAKE_LABELS: dict[type, str] = {
    intake.ValidCancel: "cancel", intake.InvalidCommand: "invalid_command",
    events.Unparseable: "unparseable", intake.Invalid: "invalid"}


def _intake_result(result: object) -> str:
    """The bounded label of an intake result."""
    return _INTAKE_LABELS.get(type(result), "other")
