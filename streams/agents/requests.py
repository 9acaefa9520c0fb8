"""The request agent: read each record, hand it to the processor, never crash on input.

Acks are disabled on the stream: :class:`streams.inflight.KeyedInFlight` acks each
record once its outcome is published, in offset order per partition, and
:class:`streams.delivery.DeliveryGuard` makes sure no offset is skipped on the way in.
"""
from __future__ import annotations

import asyncio
import gc
import os

from faust.types import StreamT

from streams.app import (
    app,
    created_topic,
    dead_letter_topic,
    failed_topic,
    links,
    request_channel,
    routed_topic,
    settings,
    unresolved,
)
from streams.connectors.guard import ProviderGuard
from streams.connectors.provider import Endpoint, ProviderClient
from streams.connectors.registry import PROVIDERS
from streams.delivery import BrokerGapProbe, DeliveryGuard, InjectedLoss, every
from streams.faults import Faults, InjectedFault
from streams.faust_internals import set_changelog_buffer_limit
from streams.inflight import guard_acks
from streams.link_creation import LinkCreator, RetryPolicy
from streams.poison import CrashMarker
from streams.processor import RequestProcessor


def build_clients() -> dict[str, ProviderClient]:
    """One client (one connection pool, one token cache) per provider per worker."""
    return {name: provider.client(Endpoint(
        settings.base_urls[name], connect_timeout_s=settings.connect_timeout_s,
        read_timeout_s=settings.read_timeout_s, max_connections=settings.max_in_flight))
        for name, provider in PROVIDERS.items()}


def build_processor(clients: dict[str, ProviderClient]) -> RequestProcessor:
    faults = Faults(settings.faults)
    policy = RetryPolicy(max_attempts=settings.retry_max_attempts,
                         max_seconds=settings.retry_max_s)
    return RequestProcessor(
        settings=settings, links=links, unresolved=unresolved, routed=routed_topic,
        created=created_topic, failed=failed_topic, dead_letter=dead_letter_topic,
        creators={name: LinkCreator(
            PROVIDERS[name], client, policy,
            ProviderGuard(name, rate_per_s=settings.provider_rate_per_s,
                          failure_threshold=settings.breaker_failure_threshold,
                          open_seconds=settings.breaker_open_s),
            faults=faults) for name, client in clients.items()},
        on_fatal=app.crash,
        marker=CrashMarker(settings.data_dir / "crash-marker"),
        faults=faults,
    )


REQUEST_TOPICS = (settings.topics.requested, settings.topics.routed)
# Test-only (streams.faults): "fatal:agent:<marker>" makes a record whose raw value
# contains the marker take the fatal path a real internal bug takes.
FAULTS = Faults(os.environ.get("PAYOUT_FAULTS", ""))


def tune_runtime() -> None:
    """Measured on the bench (docs/benchmarks.md): both pauses cost throughput.

    Faust stops feeding streams whenever more than 100 changelog writes wait in its
    producer buffer (130-190 times per 20k links at full load); and full garbage
    collections over the startup heap paused the loop 44-64 ms every ~2 s.
    """
    set_changelog_buffer_limit(app, settings.changelog_buffer_max)
    gc.freeze()  # what exists after startup lives for the whole process
    gc.set_threshold(50_000, 20, 20)


@app.agent(request_channel, name="payout-link-requests")
async def handle_requests(stream: StreamT[bytes]) -> None:
    if app.should_stop:
        return  # Faust's supervisor restarts an agent cancelled while the worker stops
    clients = build_clients()
    processor = build_processor(clients)
    tune_runtime()
    guard_acks(app.consumer, REQUEST_TOPICS)
    probe = BrokerGapProbe(settings.bootstrap_servers)
    delivery = DeliveryGuard(app.consumer, REQUEST_TOPICS, probe,
                             injected_loss=InjectedLoss(settings.fault_lose_deliveries))

    # Faust calls it as (app, revoked, signal=...); the stub wants a *args receiver.
    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _ownership_changed(app_: object, revoked: object, **_: object) -> None:
        delivery.reset()

    # Owned by the app: it stops when the app stops or crashes, not only with this agent.
    watchdog = app.add_future(every(1.0, delivery.watch, owner=app))
    app.track_in_flight(processor.in_flight)  # a stop drains or abandons it
    try:
        # noack() is Stream's, not declared on StreamT.
        async for event in stream.noack().events():  # type: ignore[attr-defined]
            if FAULTS.hit("agent", event.message.value) == "fatal":
                await app.crash(InjectedFault("injected fatal error in stage agent"))
                return  # nothing more is read after a fatal error; the record stays unacked
            if await delivery.admit(event):
                await processor.accept(event)
    finally:
        watchdog.cancel()
        app.untrack_in_flight(processor.in_flight)
        app.on_partitions_revoked.disconnect(_ownership_changed)
        # Shielded: at shutdown this agent is being cancelled, and unclosed connection
        # pools are reported as errors by aiohttp.
        await asyncio.shield(asyncio.gather(*(c.aclose() for c in clients.values()),
                                            probe.close(), return_exceptions=True))
