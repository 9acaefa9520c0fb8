"""RazorpayX Payout Links: pure transformers (see shared/reference/providers.md)."""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Mapping

import orjson

from streams.config import RazorpayCredentials
from streams.connectors.base import (
    HttpAnswer, HttpCall, LinkCreated, NotFound, ProviderOutcome, Rejected, Transient, Unknown,
)

NAME = "razorpay"
CREATE_PATH = "/v1/payout-links"
LIST_PATH = "/v1/payout-links"

# Razorpay status → Prism PayoutStatus. A fresh `issued` link waits for the recipient
# to enter payout method details, which is Prism's REQUIRES_PAYOUT_METHOD_DATA.
PAYOUT_STATUS = {
    "pending": "PENDING",
    "issued": "REQUIRES_PAYOUT_METHOD_DATA",
    "processing": "INITIATED",
    "processed": "SUCCESS",
    "cancelled": "CANCELLED",
    "expired": "EXPIRED",
    "rejected": "FAILED",
}

# Razorpay body fields → the request fields a merchant must fix.
REQUEST_FIELD = {
    "amount": "amount.minor_amount",
    "currency": "amount.currency",
    "contact": "customer",
    "contact.name": "customer.name",
    "name": "customer.name",
    "contact.contact": "customer.phone_number",
    "contact.email": "customer.email",
    "email": "customer.email",
    "purpose": "purpose",
    "description": "description",
    "notes": "metadata",
    "expire_by": "expires_at",
    "send_sms": "notify.sms",
    "send_email": "notify.email",
}


MAX_RETRY_AFTER_S = 300.0  # a provider's Retry-After must not stall a link for ever


def _unix_seconds(rfc3339: str) -> int:
    """RFC 3339 allows a lowercase 'z'; datetime.fromisoformat does not."""
    text = rfc3339[:-1] + "+00:00" if rfc3339[-1:] in ("z", "Z") else rfc3339
    return int(datetime.fromisoformat(text).timestamp())


def _iso(unix_seconds: Any) -> str | None:
    """Provider timestamps are untrusted: anything but a plausible epoch second is None."""
    if type(unix_seconds) is not int or not 0 < unix_seconds < 32503680000:  # year 3000
        return None
    return datetime.fromtimestamp(unix_seconds, timezone.utc).isoformat().replace("+00:00", "Z")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class RazorpayConnector:
    name = NAME

    def create_call(self, request: Mapping[str, Any], reference: str,
                    account: RazorpayCredentials) -> HttpCall:
        customer = request["customer"]
        contact: dict[str, Any] = {"name": customer["name"], "type": "customer"}
        if "phone_number" in customer:
            contact["contact"] = customer["phone_number"]
        if "email" in customer:
            contact["email"] = customer["email"]
        notify = request.get("notify", {})
        body: dict[str, Any] = {
            "account_number": account.account_number,
            "contact": contact,
            "amount": request["amount"]["minor_amount"],
            "currency": request["amount"]["currency"],
            "purpose": request.get("purpose", "payout"),
            "description": request.get("description")
            or f"Payout {request['merchant_payout_id']}"[:255],
            "receipt": reference,
            "send_sms": bool(notify.get("sms", False)),
            "send_email": bool(notify.get("email", False)),
        }
        if request.get("metadata"):
            body["notes"] = dict(request["metadata"])
        if request.get("expires_at"):
            body["expire_by"] = _unix_seconds(request["expires_at"])
        return HttpCall("POST", CREATE_PATH, json=body,
                        headers={"X-Payout-Idempotency": reference})

    def lookup_call(self, reference: str) -> HttpCall:
        return HttpCall("GET", LIST_PATH, params={"receipt": reference, "count": "100"})

    def read_create(self, answer: HttpAnswer) -> ProviderOutcome:
        if answer.status == 200:
            return _link_from_entity(_json(answer.body))
        return _error_outcome(answer)

    def read_lookup(self, answer: HttpAnswer, reference: str) -> ProviderOutcome:
        if answer.status != 200:
            outcome = _error_outcome(answer)
            # A failed lookup created nothing; a rejected one means we can't find out.
            return outcome if isinstance(outcome, (Transient, Rejected)) else Transient(
                "lookup_unanswered", answer.status)
        body = _json(answer.body)
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            return Transient("lookup_unreadable", answer.status)  # can't tell: ask again
        mine = [i for i in items if i.get("receipt") == reference]
        if not mine:
            return NotFound()
        # Should there ever be two, the oldest is the one the recipient was told about.
        oldest = min(mine, key=lambda i: (i.get("created_at") if type(i.get("created_at")) is int
                                          else 0, str(i.get("id", ""))))
        return _link_from_entity(oldest)


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _link_from_entity(entity: Any) -> ProviderOutcome:
    link_id = _text(entity.get("id")) if isinstance(entity, dict) else None
    url = _text(entity.get("short_url")) if isinstance(entity, dict) else None
    if not link_id or not url or not url.startswith(("https://", "http://")):
        # A 200 we can't read may still mean a link exists.
        return Unknown("unreadable_success_body", 200)
    status = _text(entity.get("status")) or "unknown"
    return LinkCreated(
        connector_payout_id=link_id,
        url=url,
        connector_status=status,
        payout_status=PAYOUT_STATUS.get(status, "PENDING"),
        expires_at=_iso(entity.get("expire_by")),
    )


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP-date: rare from APIs; our own backoff applies
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S)


def _error_outcome(answer: HttpAnswer) -> ProviderOutcome:
    status = answer.status
    if status in (408, 429):  # the provider did not process the request
        return Transient("throttled" if status == 429 else "request_timeout", status,
                         _retry_after(answer.headers))
    if status >= 500:
        # A 5xx may come from a gateway after the API committed the link (502/504),
        # so it is not proof that nothing was created: look up before creating again.
        return Unknown("provider_unavailable", status)
    body = _json(answer.body)
    error = (body or {}).get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {}
    details = {
        "code": _text(error.get("code")),
        "message": _text(error.get("description")),
        "reason": _text(error.get("reason")),
        "field": _text(error.get("field")),
    }
    message = details["message"] or f"HTTP {status} from razorpay"
    field = REQUEST_FIELD.get(details["field"]) if details["field"] else None
    if status == 401 or status == 403:
        return Rejected("provider_authentication_failed", message, None, status, details)
    if details["reason"] == "insufficient_funds":
        return Rejected("insufficient_funds", message, field, status, details)
    return Rejected("provider_rejected", message, field, status, details)
