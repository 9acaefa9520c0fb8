"""Revolut Business webhooks (API v2) for payout links: verified over the raw body, then
parsed (pure).

Headers: ``Revolut-Request-Timestamp`` (unix milliseconds) and ``Revolut-Signature``:
one or more comma-separated ``v1=<hex>`` (several during a signing-secret rotation),
each the hex HMAC-SHA256 of ``v1.{timestamp}.{raw body}`` keyed with a signing secret.
A signature made with any of the merchant's secrets is accepted; a timestamp more than
five minutes from our clock is refused (a replay), after the signature is checked.

Body ``{"event", "timestamp", "data"}``. ``PayoutLinkCreated`` carries the link
(``id``, ``request_id``, ``state``, ...); ``PayoutLinkStateChanged`` carries ``{id,
request_id, old_state, new_state}``. **Those field names are our simulator's
assumption** (streams/devkit/sims/revolut.py): Revolut's reference lists the event, not
its fields. ``request_id`` is our reference. Revolut gives no event id.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence

from streams.connectors.base import StatusReport, WebhookRejected, WebhookReport
from streams.connectors.revolut.transformers import event_time, link_id, link_state, reference_of
from streams.connectors.signing import header, json_event, matches_any, shown_event

SIGNATURE_HEADER = "revolut-signature"
TIMESTAMP_HEADER = "revolut-request-timestamp"
TOLERANCE_S = 300.0
STATE_CHANGED = "PayoutLinkStateChanged"
CREATED = "PayoutLinkCreated"
MAX_SIGNATURES = 16
_TIMESTAMP = re.compile(r"[0-9]{1,16}", re.ASCII)
_HEX = re.compile(r"[0-9a-fA-F]{1,128}", re.ASCII)


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """One ``v1=`` value of ``Revolut-Signature`` (without the prefix)."""
    return hmac.new(secret, b"v1." + timestamp.encode("ascii") + b"." + body,
                    hashlib.sha256).hexdigest()


def _unauthorised(code: str, message: str) -> WebhookRejected:
    return WebhookRejected(401, code, message)


def _bad(code: str, message: str) -> WebhookRejected:
    return WebhookRejected(400, code, message)


class RevolutWebhooks:
    """A ``WebhookReceiver`` for Revolut payout-link events."""

    def __init__(self, tolerance_s: float = TOLERANCE_S) -> None:
        self.tolerance_s = tolerance_s

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Sequence[bytes],
               now: float) -> WebhookRejected | None:
        given = header(headers, SIGNATURE_HEADER)
        if given is None or not given.strip():
            return _unauthorised("signature_missing", f"no {SIGNATURE_HEADER} header")
        timestamp = header(headers, TIMESTAMP_HEADER)
        if timestamp is None or not timestamp.strip():
            return _unauthorised("signature_missing", f"no {TIMESTAMP_HEADER} header")
        if not secrets:
            return _unauthorised("signature_invalid", "no webhook signing secret is configured "
                                 f"for this merchant: {SIGNATURE_HEADER} cannot be checked")
        timestamp = timestamp.strip()
        if not _TIMESTAMP.fullmatch(timestamp):
            return _unauthorised("signature_invalid",
                                 f"{TIMESTAMP_HEADER} is not a unix time in milliseconds")
        sent = [part.strip()[3:] for part in given.split(",")[:MAX_SIGNATURES]
                if part.strip().startswith("v1=")]
        sent = [value.lower() for value in sent if _HEX.fullmatch(value)]
        if not sent:
            return _unauthorised("signature_invalid", f"{SIGNATURE_HEADER} has no v1= signature")
        expected = (signature(secret, timestamp, body).encode("ascii") for secret in secrets)
        if not matches_any(expected, [value.encode("ascii") for value in sent]):
            return _unauthorised("signature_invalid",
                                 f"{SIGNATURE_HEADER} matches no signing secret of this merchant")
        if abs(now - int(timestamp) / 1000.0) > self.tolerance_s:
            return _unauthorised("stale_timestamp", f"{TIMESTAMP_HEADER} is more than "
                                 f"{self.tolerance_s:.0f} s from now")
        return None

    def parse(self, headers: Mapping[str, str], body: bytes) -> WebhookReport | WebhookRejected:
        read = json_event(body)
        if isinstance(read, WebhookRejected):
            return read
        event, name = read
        if name not in (STATE_CHANGED, CREATED):
            return _bad("unknown_event", f"event {shown_event(name)} is not a payout link event")
        data = event.get("data")
        if not isinstance(data, dict):
            return _bad("malformed_body", "data is missing or not an object")
        state_field = "new_state" if name == STATE_CHANGED else "state"
        state = link_state(data.get(state_field))
        if state is None:
            return _bad("malformed_body", f"data.{state_field} is missing or not a state")
        request_id = data.get("request_id")
        if request_id is None or request_id == "":
            return _bad("reference_missing", "data.request_id is missing")
        reference = reference_of(request_id)
        if reference is None:
            return _bad("malformed_body", "data.request_id is not a reference")
        return WebhookReport(StatusReport(
            connector_status=state,
            reference=reference,
            connector_payout_id=link_id(data.get("id")),
            occurred_at=event_time(event.get("timestamp")),
            event_name=name,
        ), reference)


WEBHOOKS = RevolutWebhooks()
