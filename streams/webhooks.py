"""Receiving a provider webhook: verify over the raw bytes, write it to Kafka, answer.

The worker's web server (:mod:`streams.web.webhooks`) hands every
``POST /webhooks/{provider}/{merchant_id}`` here. The merchant's own URL tells whose
secrets verify it (a provider account belongs to one merchant), and the link the
webhook names must be that merchant's (checked where the link's record is,
:mod:`streams.link_tracking`). ``POST /webhooks/{provider}`` (merchant ``*``) is for
the shared account of ``PAYOUT_CREDENTIALS``'s ``"*"`` entry: verified with its
secrets, it may name only links of merchants that have no account of their own there. Nothing is applied here: a verified webhook is written
to the provider-reports topic on its link's home partition -- found from our
reference, which carries the link key's partition hash
(:func:`~streams.connectors.base.reference_partition`) -- and only once Kafka has it
(acks=all) is the provider answered 2xx. A provider retries anything else, so a worker
that cannot write answers 503, never a 2xx for a webhook it may lose.

Answers: 200 accepted; 401 not proven to be the provider's (a missing or wrong
signature, a stale timestamp, no secret configured for the merchant); 400 a verified
body we cannot read or an event we do not know; 404 an unknown provider or merchant;
413 a body over 64 KiB; 503 not written to Kafka in time. Every answer is counted by
provider and result; a refusal is logged with its code, never with a secret, a
signature or the body.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streams import events, metrics
from streams.config import Settings
from streams.connectors.base import WebhookRejected, reference_partition
from streams.connectors.provider import Provider
from streams.connectors.registry import PROVIDERS
from streams.link_tracking import REPORT, TrackingMessage
from streams.web.errors import error_body

log = logging.getLogger(__name__)

SHARED = "*"  # the shared account's route: /webhooks/{provider}
MAX_BODY_BYTES = 64 * 1024
WRITE_TIMEOUT_S = 4.0  # the strictest provider expects an answer within 5 s

Send = Callable[[bytes, bytes, int | None], Awaitable[None]]


@dataclass(frozen=True)
class Answer:
    status: int
    body: Mapping[str, Any]


@dataclass
class WebhookCounts:
    """Answers by provider and result (``accepted``, a refusal code, …)."""

    by: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, provider: str, result: str) -> None:
        # The path names the provider: an unknown one is one entry, not one per name.
        provider = provider if provider in PROVIDERS else "unknown"
        self.by[(provider, result)] = self.by.get((provider, result), 0) + 1
        metrics.WEBHOOKS.labels(provider, result[:40]).inc()

    def as_json(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (provider, result), n in sorted(self.by.items()):
            out.setdefault(provider, {})[result] = n
        return out


def _refused(code: str, message: str, status: int, field: str | None = None) -> Answer:
    return Answer(status, error_body(code, message, field))


async def receive(provider_name: str, merchant_id: str, headers: Mapping[str, str],
                  body: bytes, *, settings: Settings, providers: Mapping[str, Provider],
                  send: Send, counts: WebhookCounts,
                  clock: Callable[[], float] = time.time) -> Answer:
    """Verify, parse, write to Kafka; the answer to give the provider."""
    answer = await _receive(provider_name, merchant_id, headers, body, settings=settings,
                            providers=providers, send=send, clock=clock)
    result = "accepted" if answer.status == 200 else str(answer.body["error"]["code"])
    counts.add(provider_name if provider_name in providers else "unknown", result)
    if answer.status != 200:
        log.warning("webhook refused: provider %s, merchant %s: %s %s",
                    provider_name[:40], merchant_id[:64], answer.status, result)
    return answer


async def _receive(provider_name: str, merchant_id: str, headers: Mapping[str, str],
                   body: bytes, *, settings: Settings, providers: Mapping[str, Provider],
                   send: Send, clock: Callable[[], float]) -> Answer:
    provider = providers.get(provider_name)
    if provider is None or provider.webhooks is None:
        return _refused("unknown_provider", "no webhooks are received for this provider", 404,
                        "provider")
    if merchant_id == SHARED:
        account = (settings.credentials.get(SHARED) or {}).get(provider_name)
    elif not events.is_identifier(merchant_id):
        return _refused("unknown_merchant", "the merchant id in the path is not valid", 404,
                        "merchant_id")
    else:
        account = settings.account(merchant_id, provider_name)
    if account is None:
        return _refused("unknown_merchant",
                        f"no {provider_name} account is configured for this merchant", 404)
    if len(body) > MAX_BODY_BYTES:
        return _refused("body_too_large", f"the body is over {MAX_BODY_BYTES} bytes", 413,
                        "body")
    secrets = provider.webhook_secrets(account)
    if not secrets:
        return _refused("webhook_secret_missing",
                        f"no {provider_name} webhook secret is configured for this merchant",
                        401)
    lowered = {k.lower(): v for k, v in headers.items()}
    rejected = provider.webhooks.verify(lowered, body, secrets, clock())
    if rejected is not None:
        return _refused(rejected.code, rejected.message, rejected.http_status)
    parsed = provider.webhooks.parse(lowered, body)
    if isinstance(parsed, WebhookRejected):
        return _refused(parsed.code, parsed.message, parsed.http_status)
    message = TrackingMessage(kind=REPORT, connector=provider_name, reference=parsed.reference,
                              link_key=None, received_at=events.now_iso(), report=parsed.report,
                              merchant_id=merchant_id, webhook_body=body)
    # A reference without the link key's hash (a link created before it had one, or
    # not ours) goes to whatever partition Kafka's partitioner picks: its owner finds
    # no record under it and counts it; polling follows such a link.
    partition = reference_partition(parsed.reference, settings.partitions)
    try:
        await asyncio.wait_for(send(parsed.reference.encode(), message.to_bytes(), partition),
                               WRITE_TIMEOUT_S)
    except (TimeoutError, Exception) as exc:  # the provider retries a non-2xx
        log.error("webhook from %s for %s not written to Kafka: %s", provider_name,
                  parsed.reference, type(exc).__name__)
        return _refused("not_stored", "the webhook could not be stored; retry later", 503)
    return Answer(200, {"status": "accepted", "reference": parsed.reference})
