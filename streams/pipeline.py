"""Everything the request agent needs for a worker's lifetime, as one Faust service.

The agent itself is a thin loop (:mod:`streams.agents.requests`). What it reads
through — provider clients with their connection pools and token caches, the
processor, the delivery guard and its broker probe, the watchdog timer, the ack
guard — is built here once per worker, started after table recovery with the app's
other services, and closed when the app stops. It used to be built inside the agent
body, which tied its life to one agent run and its watchdog to a task nobody owned.

Stop order (mode stops a service's own ``on_stop`` before its children): the app
first drains or abandons in-flight work (:mod:`streams.shutdown`), then this service
closes the connection pools those calls used.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from faust.types import TP
from mode import Service

from streams import awaits, health, metrics, ownership
from streams.app import (
    app,
    cancel_failed_topic,
    created_topic,
    dead_letter_topic,
    failed_topic,
    links,
    reports_topic,
    routed_topic,
    settings,
    status_changed_topic,
    unresolved,
)
from streams.connectors.guard import ProviderGuard
from streams.connectors.provider import Endpoint, ProviderClient
from streams.connectors.registry import PROVIDERS
from streams.delivery import BrokerGapProbe, DeliveryGuard, InjectedLoss, every
from streams.faults import Faults
from streams.faust_internals import (
    agent_running,
    on_coordinator_round_trip,
    release_unacked,
    set_changelog_buffer_limit,
)
from streams.inflight import guard_acks
from streams.link_creation import LinkCreator, RetryPolicy
from streams.link_tracking import LinkTracker
from streams.ownership import Fenced, LeaseTerms, OwnershipLease, pause_counting_clock
from streams.poison import CrashMarker
from streams.polling import PollPolicy
from streams.processor import RequestProcessor

log = logging.getLogger(__name__)

# Every topic the request agent reads, co-partitioned with the link table: requests,
# their re-keyed copies, provider reports / polls / expiries, and cancel commands.
REQUEST_TOPICS = (settings.topics.requested, settings.topics.routed, settings.topics.reports,
                  settings.topics.cancel_requested)
WATCHDOG_INTERVAL_S = 1.0


def build_clients() -> dict[str, ProviderClient]:
    """One client (one connection pool, one token cache) per provider per worker."""
    return {name: provider.client(Endpoint(
        settings.base_urls[name], connect_timeout_s=settings.connect_timeout_s,
        read_timeout_s=settings.read_timeout_s, max_connections=settings.max_in_flight))
        for name, provider in PROVIDERS.items()}


def build_processor(clients: dict[str, ProviderClient],
                    on_fenced: Callable[[TP, Fenced], None] | None = None) -> RequestProcessor:
    faults = Faults(settings.faults)
    policy = RetryPolicy(max_attempts=settings.retry_max_attempts,
                         max_seconds=settings.retry_max_s)
    creators = {name: LinkCreator(
        PROVIDERS[name], client, policy,
        ProviderGuard(name, rate_per_s=settings.provider_rate_per_s,
                      failure_threshold=settings.breaker_failure_threshold,
                      open_seconds=settings.breaker_open_s),
        faults=faults) for name, client in clients.items()}
    tracker = LinkTracker(
        settings=settings, links=links, status_changed=status_changed_topic,
        cancel_failed=cancel_failed_topic, creators=creators, send=RequestProcessor.send,
        policy=PollPolicy(min_s=settings.poll_min_s, max_s=settings.poll_max_s,
                          reversal_watch_s=settings.reversal_watch_s,
                          reversal_poll_s=settings.reversal_poll_s))
    return RequestProcessor(
        settings=settings, links=links, unresolved=unresolved, routed=routed_topic,
        created=created_topic, failed=failed_topic, dead_letter=dead_letter_topic,
        creators=creators,
        on_fatal=app.crash,
        marker=CrashMarker(settings.data_dir / "crash-marker"),
        faults=faults,
        release=partial(release_unacked, app.consumer),
        on_fenced=on_fenced,
        tracker=tracker,
        reports=reports_topic,
    )


def build_lease() -> OwnershipLease | None:
    if not settings.fencing:
        log.warning("PAYOUT_FENCING=off: provider calls are NOT fenced by partition "
                    "ownership (a test setting: a paused worker can create second links)")
        return None
    return OwnershipLease(LeaseTerms.derive(
        session_timeout_s=settings.session_timeout_s,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        connect_timeout_s=settings.connect_timeout_s, read_timeout_s=settings.read_timeout_s))


def tune_runtime() -> None:
    """Measured on the bench (docs/benchmarks.md): both pauses cost throughput.

    Faust stops feeding streams whenever more than 100 changelog writes wait in its
    producer buffer (130-190 times per 20k links at full load); and full garbage
    collections over the startup heap paused the loop 44-64 ms every ~2 s.
    """
    set_changelog_buffer_limit(app, settings.changelog_buffer_max)
    gc.freeze()  # what exists after startup lives for the whole process
    gc.set_threshold(50_000, 20, 20)


class RequestPipeline(Service):
    """Provider clients, processor and delivery guard of one worker."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ready = asyncio.Event()
        self.clients: dict[str, ProviderClient] = {}
        self.processor: RequestProcessor | None = None
        self.delivery: DeliveryGuard | None = None
        self._probe: BrokerGapProbe | None = None
        self.lease: OwnershipLease | None = None
        self._fenced_partitions: set[TP] = set()
        self.last_loop_tick = time.monotonic()

    async def on_start(self) -> None:
        awaits.install(asyncio.get_running_loop())
        self.lease = build_lease()
        if self.lease is not None:
            ownership.install(self.lease)
            # Renewed from now on by every heartbeat the coordinator accepts; until the
            # first (within one heartbeat interval), no provider call starts.
            on_coordinator_round_trip(app.consumer, self.lease.renew, pause_counting_clock)
            self.lease.assigned(self._request_partitions(app.consumer.assignment()),
                                app.consumer_generation_id)
            app.on_partitions_assigned.connect(self._assigned)  # type: ignore[arg-type]
            await self._first_renewal()
        self.clients = build_clients()
        self.processor = build_processor(self.clients, on_fenced=self._fenced)
        tune_runtime()
        guard_acks(app.consumer, REQUEST_TOPICS)
        self._probe = BrokerGapProbe(settings.bootstrap_servers)
        self.delivery = DeliveryGuard(app.consumer, REQUEST_TOPICS, self._probe,
                                      injected_loss=InjectedLoss(settings.fault_lose_deliveries),
                                      settled=lambda: not app.rebalancing)
        awaits.add_reporter(self.delivery.describe)
        metrics.WORKER.add(self._gauges)
        self.add_future(self._tick_loop())
        # Faust calls it as (app, revoked, signal=...); the stub wants a *args receiver.
        app.on_partitions_revoked.connect(self._ownership_changed)  # type: ignore[arg-type]
        app.track_in_flight(self.processor.in_flight)  # a stop drains or abandons it
        # The watchdog: partitions owned but silent while the broker holds records are
        # re-fetched. Its owner for crash purposes is the app (a worker that can no
        # longer consume must exit); this service cancels it when it stops.
        self.add_future(every(WATCHDOG_INTERVAL_S, self._watch, owner=app))
        self._ready.set()

    async def _first_renewal(self) -> None:
        """Read nothing before the lease holds: records taken before the first renewal
        would only be fenced and fetched again. Bounded: a worker the coordinator does
        not answer goes on, and its work is fenced until it does."""
        assert self.lease is not None
        deadline = pause_counting_clock() + 2 * settings.heartbeat_interval_s + 1
        while not self.lease.valid() and pause_counting_clock() < deadline:
            await asyncio.sleep(0.05)

    async def _ownership_changed(self, app_: object, revoked: object, **_: object) -> None:
        self._fenced_partitions.clear()
        if self.delivery is not None:
            self.delivery.reset()

    async def _assigned(self, app_: object, assigned: Iterable[TP], **_: object) -> None:
        if self.lease is not None:
            self.lease.assigned(self._request_partitions(assigned), app.consumer_generation_id)

    @staticmethod
    def _request_partitions(tps: Iterable[TP]) -> set[TP]:
        return {tp for tp in tps if tp.topic in REQUEST_TOPICS}

    def _fenced(self, tp: TP, why: Fenced) -> None:
        """A piece of work of ``tp`` was fenced: its partition's work is abandoned
        (streams.inflight); admit nothing more of it until it can be rewound."""
        if tp not in self._fenced_partitions:
            log.warning("fenced: %s; work of %s/%s abandoned, left for its owner", why,
                        tp.topic, tp.partition)
        self._fenced_partitions.add(tp)
        if self.delivery is not None:
            self.delivery.hold(tp)

    async def _watch(self) -> None:
        """Each tick: rewind fenced partitions that are provably ours again, then the
        delivery guard's own watch."""
        assert self.delivery is not None
        if not self.delivery.settled():  # paused until the tables are recovered: wait
            return
        for tp in sorted(self._fenced_partitions):
            if tp not in app.consumer.assignment():
                self._fenced_partitions.discard(tp)  # not ours: the next owner reads it
            elif self.lease is None or self.lease.holds(tp):
                await self.delivery.rewind(tp)
                self._fenced_partitions.discard(tp)
        await self.delivery.watch()

    async def on_stop(self) -> None:
        app.on_partitions_revoked.disconnect(self._ownership_changed)  # type: ignore[arg-type]
        if self.lease is not None:
            app.on_partitions_assigned.disconnect(self._assigned)  # type: ignore[arg-type]
            ownership.install(None)
        if self.processor is not None:
            app.untrack_in_flight(self.processor.in_flight)
        # Shielded: at shutdown the stopping task may be cancelled, and unclosed
        # connection pools are reported as errors by aiohttp.
        closing = [c.aclose() for c in self.clients.values()]
        if self._probe is not None:
            closing.append(self._probe.close())
        await asyncio.shield(asyncio.gather(*closing, return_exceptions=True))

    async def _tick_loop(self) -> None:
        """Notes when the event loop last ran (``/health/live``: a loop blocked past
        the bound is not serving its partitions)."""
        while not self.should_stop:
            self.last_loop_tick = time.monotonic()
            await asyncio.sleep(health.LOOP_TICK_S)

    def facts(self) -> health.Facts:
        agent = app.agents.get("payout-link-requests")
        return health.Facts(
            now=time.monotonic(), last_loop_tick=self.last_loop_tick,
            agent_running=agent is not None and agent_running(agent),
            pipeline_crashed=self.crashed, pipeline_started=self._ready.is_set(),
            rebalancing=bool(app.rebalancing), recovering=bool(app.in_recovery),
            owned_request_partitions=len(self._request_partitions(app.consumer.assignment())))

    def _gauges(self) -> list[tuple[str, str, dict[str, str], float]]:
        """What /metrics reads at scrape time (streams.metrics.WorkerCollector)."""
        out: list[tuple[str, str, dict[str, str], float]] = []
        if self.processor is not None:
            out.append(("payout_in_flight", "Pieces of work (provider calls and their "
                        "writes) in flight.", {}, float(self.processor.in_flight.running)))
            out.append(("payout_links_unresolved", "Links in doubt awaiting re-drive in "
                        "this worker's partitions (unknown outcomes pending).", {},
                        float(len(self.processor.unresolved))))
            for creator in self.processor.creators.values():
                if creator.guard is not None:
                    out.extend(creator.guard.gauges())
            out.append(("payout_contained_errors_total", "Unexpected exceptions contained "
                        "(routed, parked or logged) instead of stopping a partition.", {},
                        float(self.processor.contained)))
            tracker = self.processor.tracker
            for result, count in sorted((tracker.counts if tracker is not None else {}).items()):
                out.append(("payout_link_tracking_total", "Webhook reports, polls and expiries "
                            "of created links by what they did (changed, stale, duplicate, "
                            "not_due, unknown_link, poll_transient, ...).", {"result": result},
                            float(count)))
        if self.delivery is not None:
            out.append(("payout_delivery_seeks_total", "Seeks the delivery guard made to "
                        "fetch offsets that never reached the agent.", {},
                        float(self.delivery.seeks)))
        reads = app.monitor.tp_read_offsets
        for tp in sorted(self._request_partitions(app.consumer.assignment())):
            highwater = app.consumer.highwater(tp)
            if highwater is None:
                continue
            read = reads.get(tp)
            # Nothing read from it since this worker started: reading resumes at the
            # guard's cursor (the committed offset), not at 0 (that counted the whole
            # history as lag after every restart on a quiet partition).
            resume = read + 1 if read is not None else (
                self.delivery.next_offset(tp) if self.delivery is not None else None)
            if resume is None:
                continue  # not known yet: no sample rather than a false one
            lag = highwater - resume
            out.append(("payout_consumer_lag", "Records not yet read, per owned request "
                        "partition (highwater minus the next offset to read).",
                        {"topic": tp.topic, "partition": str(tp.partition)},
                        float(max(lag, 0))))
        return out

    async def ready(self) -> tuple[RequestProcessor, DeliveryGuard]:
        """Wait until started; the agent reads nothing before that."""
        await self._ready.wait()
        assert self.processor is not None and self.delivery is not None
        return self.processor, self.delivery


pipeline = RequestPipeline()


@app.task  # type: ignore[untyped-decorator]
async def start_pipeline() -> None:
    """Started with the app's tasks, after table recovery; stopped with the app."""
    if app.should_stop:
        return  # Faust runs the app's tasks even when a stop came during startup
    await app.add_runtime_dependency(pipeline)
