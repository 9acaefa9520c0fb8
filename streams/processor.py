"""What happens to one record of ``payout-link-requested``.

``accept`` classifies the record (dead letter, invalid, misrouted, valid) and hands
the work to :class:`KeyedInFlight`; the work for a valid request is ``settle``:
decide with the lifecycle, act through a connector, emit the outcome.
"""
from __future__ import annotations

import logging
from functools import partial
from typing import Any, Awaitable, Callable, Mapping

from aiokafka.partitioner import murmur2
from faust.types import EventT, TopicT

from streams import events, lifecycle
from streams.app import LinkTable
from streams.config import Settings
from streams.connectors.base import LinkCreated, Rejected, link_reference
from streams.connectors.routing import Route, Unroutable, route
from streams.inflight import KeyedInFlight
from streams.settlement import LinkSettler, RetriesExhausted, Settled

log = logging.getLogger(__name__)


def home_partition(link_key: str, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives the link key."""
    return (murmur2(link_key.encode("utf-8")) & 0x7FFFFFFF) % partitions


class RequestProcessor:
    def __init__(self, *, settings: Settings, links: LinkTable, routed: TopicT, created: TopicT,
                 failed: TopicT, dead_letter: TopicT, settlers: Mapping[str, LinkSettler],
                 on_fatal: Callable[[BaseException], Awaitable[Any]]) -> None:
        self.settings = settings
        self.links = links
        self.routed, self.created, self.failed, self.dead_letter = routed, created, failed, dead_letter
        self.settlers = settlers
        self.in_flight = KeyedInFlight(settings.max_in_flight, on_fatal)

    # --- classification, in the agent's loop ----------------------------------------

    async def accept(self, event: EventT) -> None:
        message = event.message
        source = events.SourceRecord(
            topic=message.topic, partition=message.partition, offset=message.offset,
            key=message.key, value=message.value, headers=list(message.headers or ()),
            timestamp=message.timestamp,
        )
        once = f"{source.topic}/{source.partition}/{source.offset}"  # a key nobody shares
        try:
            await self._classify(event, source, once)
        except Exception as exc:  # a bug must neither crash the worker nor drop the record
            log.exception("could not process %s; dead-lettering it", once)
            dead = events.dead_letter_event(source, events.Unparseable(
                "processing_error", f"{type(exc).__name__}: {exc}"[:300]))
            await self.in_flight.submit(event, once, partial(
                self._publish, self.dead_letter, source.key, dead))

    async def _classify(self, event: EventT, source: events.SourceRecord, once: str) -> None:
        request = events.parse_request(source.value)
        if isinstance(request, events.Unparseable):
            log.warning("dead-lettering %s: %s", once, request.message)
            dead = events.dead_letter_event(source, request)
            await self.in_flight.submit(event, once, partial(
                self._publish, self.dead_letter, source.key, dead))
            return
        invalid = events.validate_request(request)
        if invalid is not None:
            log.info("invalid request %s: %s (%s)", once, invalid.field, invalid.message)
            failure = events.invalid_request_event(request, invalid)
            identified = invalid.field not in ("merchant_id", "merchant_payout_id")
            out_key = failure["link_key"].encode() if identified else source.key
            await self.in_flight.submit(event, once, partial(
                self._publish, self.failed, out_key, failure))
            return
        key = events.link_key(request["merchant_id"], request["merchant_payout_id"])
        home = home_partition(key, self.settings.partitions)
        if source.key != key.encode() or source.partition != home:
            # Wrong or missing key: re-key so every record of this link meets one owner.
            await self.in_flight.submit(event, once, partial(
                self._forward, key, home, source.value))
            return
        offset = lifecycle.SourceOffset(source.topic, source.partition, source.offset)
        await self.in_flight.submit(event, key, partial(self.settle, request, key, offset))

    # --- the work for one valid request -----------------------------------------------

    async def settle(self, request: Mapping[str, Any], key: str,
                     source: lifecycle.SourceOffset) -> None:
        fingerprint = events.request_fingerprint(request)
        routing = route(request, self.settings)
        if isinstance(routing, Unroutable):
            await self._publish_outcome(key, events.failed_event(
                request, code=routing.code, message=routing.message, field=routing.field,
                discriminator=f"unroutable:{fingerprint}"))
            return
        raw = self.links.get(key)
        record = lifecycle.LinkRecord.from_bytes(raw) if raw is not None else None
        decision = lifecycle.decide(record, link_key=key, fingerprint=fingerprint,
                                    connector=routing.connector, reference=link_reference(key),
                                    source=source)
        if isinstance(decision, lifecycle.AlreadySettled):
            return
        if isinstance(decision, lifecycle.Republish):
            await self._publish_outcome(key, decision.outcome)
            return
        if isinstance(decision, lifecycle.Conflict):
            log.warning("idempotency conflict on %s", key)
            await self._publish_outcome(key, events.failed_event(
                request, code="idempotency_conflict",
                message=f"link key {key} was already used for a request with different content",
                field=None, discriminator=f"conflict:{fingerprint}"))
            return
        await self._create(request, key, decision, routing)

    async def _create(self, request: Mapping[str, Any], key: str,
                      decision: lifecycle.StartCreation, routing: Route) -> None:
        record = decision.record
        if not decision.lookup_first:
            await self.links.put_durably(key, record.to_bytes())  # before any provider call
        settler = self.settlers[routing.connector]
        result, calls = await settler.settle(request, record.reference, routing.account,
                                             routing.auth, lookup_first=decision.lookup_first)
        outcome = self._outcome_event(request, record, routing.connector, result)
        created = isinstance(result, LinkCreated)
        record = lifecycle.settled(record, outcome, created=created,
                                   provider_calls=record.provider_calls + calls)
        if not created:
            # A failure must be remembered before it is told: on a redelivery the
            # provider might now accept what it rejected, and two outcomes would exist.
            self.links[key] = record.to_bytes()
        # A created link needs no such write: until the one below lands, a redelivery
        # finds `creating`, looks the link up, and publishes the same event again.
        await self._publish_outcome(key, outcome)
        self.links[key] = lifecycle.published(record).to_bytes()

    @staticmethod
    def _outcome_event(request: Mapping[str, Any], record: lifecycle.LinkRecord, connector: str,
                       result: Settled) -> dict[str, Any]:
        if isinstance(result, LinkCreated):
            return events.created_event(
                request, connector=connector, connector_payout_id=result.connector_payout_id,
                url=result.url, payout_status=result.payout_status,
                connector_status=result.connector_status, reference=record.reference,
                expires_at=result.expires_at)
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

    # --- emitting -----------------------------------------------------------------------

    async def _publish_outcome(self, key: str, outcome: Mapping[str, Any]) -> None:
        topic = self.created if outcome["event_type"] == events.CREATED else self.failed
        await self._publish(topic, key.encode(), outcome)

    async def _forward(self, key: str, partition: int, value: bytes | None) -> None:
        await self._send(self.routed, key.encode(), value, partition)

    async def _publish(self, topic: TopicT, key: bytes | None, event: Mapping[str, Any]) -> None:
        await self._send(topic, key, events.encode(event), None)

    @staticmethod
    async def _send(topic: TopicT, key: bytes | None, value: bytes | None,
                    partition: int | None) -> None:
        """Returns only once the broker has the record (acks=all)."""
        delivery = await topic.send(key=key, value=value, partition=partition)
        await delivery
