"""The request agent: read each record, hand it to the processor, never crash on input.

Acks are disabled on the stream: :class:`streams.inflight.KeyedInFlight` acks each
record once its outcome is published, in offset order per partition.
"""
from __future__ import annotations

from faust.types import StreamT

from streams.app import (
    app, created_topic, dead_letter_topic, failed_topic, links, request_channel, routed_topic,
    settings,
)
from streams.connectors.guard import ProviderGuard
from streams.connectors.razorpay import RazorpayConnector
from streams.connectors.transport import ProviderTransport
from streams.inflight import guard_acks
from streams.processor import RequestProcessor
from streams.settlement import LinkSettler, RetryPolicy


def build_processor() -> RequestProcessor:
    """One transport (one connection pool) per worker, shared by every call."""
    transport = ProviderTransport(
        settings.razorpay_base_url, connect_timeout_s=settings.connect_timeout_s,
        read_timeout_s=settings.read_timeout_s, max_connections=settings.max_in_flight)
    return RequestProcessor(
        settings=settings, links=links, routed=routed_topic, created=created_topic,
        failed=failed_topic, dead_letter=dead_letter_topic,
        settlers={"razorpay": LinkSettler(
            RazorpayConnector(), transport,
            RetryPolicy(max_attempts=settings.retry_max_attempts, max_seconds=settings.retry_max_s),
            ProviderGuard("razorpay", rate_per_s=settings.provider_rate_per_s,
                          failure_threshold=settings.breaker_failure_threshold,
                          open_seconds=settings.breaker_open_s))},
        on_fatal=app.crash,
    )


@app.agent(request_channel, name="payout-link-requests")
async def handle_requests(stream: StreamT) -> None:
    processor = build_processor()
    guard_acks(app.consumer, (settings.topics.requested, settings.topics.routed))
    async for event in stream.noack().events():
        await processor.accept(event)
