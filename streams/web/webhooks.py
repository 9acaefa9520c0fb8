"""``POST /webhooks/{provider}/{merchant_id}``: provider webhooks on the worker's web server.

Thin: the raw body and headers go to :func:`streams.webhooks.receive`, which verifies,
writes to Kafka and says what to answer. ``GET /webhooks/stats`` shows the answers
counted so far (by provider and result).
"""
from __future__ import annotations

import logging
from typing import Any

from aiohttp.web import HTTPRequestEntityTooLarge
from faust import web

from streams.app import app, reports_topic, settings
from streams.connectors.registry import PROVIDERS
from streams.webhooks import MAX_BODY_BYTES, SHARED, WebhookCounts, receive

log = logging.getLogger(__name__)

counts = WebhookCounts()


async def _send(key: bytes, value: bytes, partition: int | None) -> None:
    delivery = await reports_topic.send(key=key, value=value, partition=partition)
    await delivery


@app.page("/webhooks/stats")
class WebhookStats(web.View):
    async def get(self, request: web.Request) -> Any:
        return self.json(counts.as_json())


@app.page("/webhooks/{provider}")
class SharedAccountWebhook(web.View):
    """The shared (``"*"``) account's webhooks: see :mod:`streams.webhooks`."""

    async def post(self, request: web.Request, provider: str) -> Any:
        return await _handle(self, request, provider, SHARED)


@app.page("/webhooks/{provider}/{merchant_id}")
class ProviderWebhook(web.View):
    async def post(self, request: web.Request, provider: str, merchant_id: str) -> Any:
        return await _handle(self, request, provider, merchant_id)


async def _handle(view: web.View, request: web.Request, provider: str, merchant_id: str) -> Any:
    raw: Any = request  # aiohttp's request: its body is read as raw bytes
    if (raw.content_length or 0) > MAX_BODY_BYTES:
        return view.json({"error": {"code": "body_too_large", "field": "body",
                                    "message": f"the body is over {MAX_BODY_BYTES} bytes"}},
                         status=413)
    try:
        try:
            body = await raw.read()
        except HTTPRequestEntityTooLarge:
            body = b" " * (MAX_BODY_BYTES + 1)  # refused below as too large, and counted
        answer = await receive(provider, merchant_id, dict(raw.headers), bytes(body),
                               settings=settings, providers=PROVIDERS, send=_send,
                               counts=counts)
    except Exception as exc:  # never a traceback to the provider; it retries a 503
        log.error("webhook from %s: %s", provider[:40], type(exc).__name__, exc_info=exc)
        return view.json({"error": {"code": "internal_error", "field": None,
                                    "message": "the webhook could not be handled"}},
                         status=503)
    return view.json(dict(answer.body), status=answer.status)
