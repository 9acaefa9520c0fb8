"""RazorpayX webhooks for payout links: verified over the raw body, then parsed (pure).

``X-Razorpay-Signature`` is the hex HMAC-SHA256 of the **raw body** keyed with the
merchant's webhook secret, so verification runs on the bytes as received, before any
parsing: a body re-serialised on its way here fails. ``x-razorpay-event-id`` is unique
per event (deliveries are at least once and unordered). The event *name* decides the
status, not the entity's ``status`` (Razorpay documents an expiry event whose entity
says ``cancelled``): ``payout_link.attempted`` (a payout failed or was reversed) is
public status ``issued``, every other event its suffix.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from typing import Any

from streams.connectors.base import StatusReport, WebhookRejected, WebhookReport
from streams.connectors.razorpay.transformers import (
    attempt_count,
    event_time,
    link_id,
    reference_of,
)
from streams.connectors.signing import header, json_event, matches_any, shown_event

SIGNATURE_HEADER = "x-razorpay-signature"
EVENT_ID_HEADER = "x-razorpay-event-id"
EVENT_PREFIX = "payout_link."
# payout_link.<x> → the status it reports
EVENTS: Mapping[str, str] = {
    "pending": "pending",
    "issued": "issued",
    "processing": "processing",
    "processed": "processed",
    "attempted": "issued",
    "cancelled": "cancelled",
    "rejected": "rejected",
    "expired": "expired",
}
_EVENT_ID = re.compile(r"[\x21-\x7e]{1,128}", re.ASCII)
_MAX_SIGNATURE_CHARS = 256
ENTITY_PATH = "payload.payout_link.entity"


def signature(secret: bytes, body: bytes) -> str:
    """What Razorpay sends in ``X-Razorpay-Signature`` for ``body``."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def _reject(code: str, message: str) -> WebhookRejected:
    return WebhookRejected(401 if code in ("signature_missing", "signature_invalid",
                                           "stale_timestamp") else 400, code, message)


class RazorpayWebhooks:
    """A ``WebhookReceiver`` for RazorpayX payout-link events."""

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Sequence[bytes],
               now: float) -> WebhookRejected | None:
        given = header(headers, SIGNATURE_HEADER)
        if given is None or not given.strip():
            return _reject("signature_missing", f"no {SIGNATURE_HEADER} header")
        if not secrets:
            return _reject("signature_invalid", "no webhook secret is configured for this "
                                                f"merchant: {SIGNATURE_HEADER} cannot be checked")
        candidate = given.strip().lower()
        if not candidate.isascii() or len(candidate) > _MAX_SIGNATURE_CHARS:
            return _reject("signature_invalid", f"{SIGNATURE_HEADER} is not a hex HMAC-SHA256")
        expected = (signature(secret, body).encode("ascii") for secret in secrets)
        if not matches_any(expected, [candidate.encode("ascii")]):
            return _reject("signature_invalid",
                           f"{SIGNATURE_HEADER} matches no webhook secret of this merchant")
        return None

    def parse(self, headers: Mapping[str, str], body: bytes) -> WebhookReport | WebhookRejected:
        read = json_event(body)
        if isinstance(read, WebhookRejected):
            return read
        event, name = read
        suffix = name[len(EVENT_PREFIX):] if name.startswith(EVENT_PREFIX) else None
        status = EVENTS.get(suffix) if suffix is not None else None
        if status is None:
            return _reject("unknown_event",
                           f"event {shown_event(name)} is not a payout link event")
        entity = _dig(event, "payload", "payout_link", "entity")
        if not isinstance(entity, dict):
            return _reject("malformed_body", f"{ENTITY_PATH} is missing or not an object")
        receipt = entity.get("receipt")
        if receipt is None or receipt == "":
            return _reject("reference_missing", f"{ENTITY_PATH}.receipt is missing")
        reference = reference_of(receipt)
        if reference is None:
            return _reject("malformed_body", f"{ENTITY_PATH}.receipt is not a reference")
        event_id = header(headers, EVENT_ID_HEADER)
        return WebhookReport(StatusReport(
            connector_status=status,
            attempt=attempt_count(entity.get("attempt_count")),
            reference=reference,
            connector_payout_id=link_id(entity.get("id")),
            occurred_at=event_time(event.get("created_at")),
            event_id=event_id if event_id is not None and _EVENT_ID.fullmatch(event_id) else None,
            event_name=name,
        ), reference)


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


WEBHOOKS = RazorpayWebhooks()
