"""Cashfree Cashgram webhooks: verified, then parsed (pure).

Cashfree POSTs them form-encoded (``application/x-www-form-urlencoded``). ``signature``
is Base64(HMAC-SHA256) of the values of every other field, sorted by key and
concatenated, keyed with the merchant's **client secret**. So the signature covers the
decoded values, not the raw bytes: a body re-encoded with the same fields and values
still verifies, and any changed, added or removed value does not.

Events (shared/reference/providers.md, and what streams/devkit/sims/cashfree.py sends):
``CASHGRAM_REDEEMED`` {cashgramid, referenceId, eventTime, utr} → REDEEMED,
``CASHGRAM_TRANSFER_REVERSAL`` {cashgramid, referenceId, eventTime} → REVERSED,
``CASHGRAM_EXPIRED`` {cashgramid, reason} → EXPIRED, or DEACTIVATED when ``reason``
says the Cashgram was deactivated. ``referenceId`` there is the *transfer's* id, not
the Cashgram's, so a report names no ``connector_payout_id``; ``eventTime`` is India
time (``YYYY-MM-DD HH:MM:SS``, +05:30). Cashfree gives no event id.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qsl

from streams.connectors.base import StatusReport, WebhookRejected, WebhookReport
from streams.connectors.signing import matches_any, shown_event

SIGNATURE_FIELD = "signature"
REFERENCE_FIELD = "cashgramid"
EVENTS: Mapping[str, str] = {
    "CASHGRAM_REDEEMED": "REDEEMED",
    "CASHGRAM_TRANSFER_REVERSAL": "REVERSED",
    "CASHGRAM_EXPIRED": "EXPIRED",
}
MAX_FIELDS = 64
MAX_BODY_BYTES = 64 * 1024
IST = timezone(timedelta(hours=5, minutes=30))
_REFERENCE = re.compile(r"[\x21-\x7e]{1,64}", re.ASCII)
_EVENT_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})",
                         re.ASCII)
_DEACTIVATED = re.compile(r"deactivat", re.IGNORECASE)


def read_form(body: bytes) -> dict[str, str] | str:
    """The form's fields, or why it is not a form we can read (a field named twice is
    refused: which of its values was signed could not be told)."""
    if len(body) > MAX_BODY_BYTES:
        return "the form body is too large"
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True,
                          encoding="utf-8", errors="strict", max_num_fields=MAX_FIELDS)
    except ValueError:  # UnicodeDecodeError included
        return "the body is not a UTF-8 form (application/x-www-form-urlencoded)"
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key in fields:
            return f"form field {shown_event(key)} appears more than once"
        fields[key] = value
    if not fields:
        return "the form body is empty"
    return fields


def signature(secret: bytes, fields: Mapping[str, str]) -> str:
    """What Cashfree sends in ``signature`` for these fields."""
    message = "".join(fields[key] for key in sorted(fields) if key != SIGNATURE_FIELD)
    return base64.b64encode(hmac.new(secret, message.encode("utf-8"), hashlib.sha256).digest()
                            ).decode("ascii")


def _ist_to_utc(value: str | None) -> str | None:
    match = _EVENT_TIME.fullmatch(value) if value is not None else None
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups())
    try:
        at = datetime(year, month, day, hour, minute, second, tzinfo=IST)
    except ValueError:  # a day or time that isn't
        return None
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


class CashfreeWebhooks:
    """A ``WebhookReceiver`` for Cashgram events."""

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Sequence[bytes],
               now: float) -> WebhookRejected | None:
        fields = read_form(body)
        if isinstance(fields, str):
            return WebhookRejected(401, "signature_missing",
                                   f"no readable {SIGNATURE_FIELD} field: {fields}")
        given = fields.get(SIGNATURE_FIELD, "").strip()
        if not given:
            return WebhookRejected(401, "signature_missing", f"no {SIGNATURE_FIELD} field")
        if not secrets:
            return WebhookRejected(401, "signature_invalid", "no client secret is configured "
                                   f"for this merchant: {SIGNATURE_FIELD} cannot be checked")
        if not given.isascii():
            return WebhookRejected(401, "signature_invalid",
                                   f"{SIGNATURE_FIELD} is not a Base64 HMAC-SHA256")
        expected = (signature(secret, fields).encode("ascii") for secret in secrets)
        if not matches_any(expected, [given.encode("ascii")]):
            return WebhookRejected(401, "signature_invalid",
                                   f"{SIGNATURE_FIELD} matches no secret of this merchant")
        return None

    def parse(self, headers: Mapping[str, str], body: bytes) -> WebhookReport | WebhookRejected:
        fields = read_form(body)
        if isinstance(fields, str):
            return WebhookRejected(400, "malformed_body", fields)
        event = fields.get("event")
        if not event:
            return WebhookRejected(400, "malformed_body", "form field event is missing")
        status = EVENTS.get(event)
        if status is None:
            return WebhookRejected(400, "unknown_event",
                                   f"event {shown_event(event)} is not a Cashgram event")
        reference = fields.get(REFERENCE_FIELD) or fields.get("cashgramId")
        if not reference:
            return WebhookRejected(400, "reference_missing",
                                   f"form field {REFERENCE_FIELD} is missing")
        if not _REFERENCE.fullmatch(reference):
            return WebhookRejected(400, "malformed_body",
                                   f"form field {REFERENCE_FIELD} is not a cashgram id")
        if status == "EXPIRED" and _DEACTIVATED.search(fields.get("reason", "")):
            status = "DEACTIVATED"
        return WebhookReport(StatusReport(
            connector_status=status,
            reference=reference,
            occurred_at=_ist_to_utc(fields.get("eventTime")),
            event_name=event,
        ), reference)


WEBHOOKS = CashfreeWebhooks()
