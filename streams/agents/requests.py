"""The request agent: read each record, hand it to the processor, never crash on input.

Thin on purpose: what it reads through is built and owned by
:class:`streams.pipeline.RequestPipeline`. Acks are disabled on the stream:
:class:`streams.inflight.KeyedInFlight` acks each record once its outcome is published,
in offset order per partition, and :class:`streams.delivery.DeliveryGuard` makes sure
no offset is skipped on the way in.
"""
from __future__ import annotations

import os

from faust.types import StreamT

from streams.app import app, request_channel
from streams.faults import Faults, InjectedFault
from streams.pipeline import pipeline

# Test-only (streams.faults): "fatal:agent:<marker>" makes a record whose raw value
# contains the marker take the fatal path a real internal bug takes.
FAULTS = Faults(os.environ.get("PAYOUT_FAULTS", ""))


@app.agent(request_channel, name="payout-link-requests")
async def handle_requests(stream: StreamT[bytes]) -> None:
    if app.should_stop:
        return  # Faust's supervisor restarts an agent cancelled while the worker stops
    processor, delivery = await pipeline.ready()
    # noack() is Stream's, not declared on StreamT.
    async for event in stream.noack().events():  # type: ignore[attr-defined]
        if FAULTS.hit("agent", event.message.value) == "fatal":
            await app.crash(InjectedFault("injected fatal error in stage agent"))
            return  # nothing more is read after a fatal error; the record stays unacked
        if await delivery.admit(event):
            await processor.accept(event)
