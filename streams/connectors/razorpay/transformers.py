"""RazorpayX Payout Links: pure transformers (see shared/reference/providers.md)."""
from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import orjson

from streams.connectors.base import (
    HttpAnswer,
    HttpCall,
    LinkCreated,
    NotFound,
    ProviderOutcome,
    Rejected,
    Transient,
    Unknown,
    Unsupported,
    retry_after_s,
)
from streams.connectors.razorpay.account import RazorpayAccount

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



CURRENCY = "INR"  # RazorpayX pays out in rupees only
MIN_AMOUNT_PAISE = 100  # "The amount must be atleast INR 1.00."
PHONE_DIGITS = (8, 15)  # Razorpay's contact.contact: 8-15 digits (our schema allows 6)
# `expire_by` must be at least 15 minutes ahead (documented). Razorpay documents no
# maximum (shared/reference/providers.md); we assume one year, so an expiry that the
# provider might refuse or silently drop fails the request instead, and the simulator
# (streams/devkit/sims/razorpay.py, MAX_EXPIRY_LEAD_S) enforces the same year.
MIN_EXPIRY_LEAD_S = 15 * 60
MAX_EXPIRY_LEAD_S = 365 * 24 * 3600

# RFC 3339 section 5.6, every spelling it allows: lowercase t/z, a leap second,
# offsets up to ±23:59, any number of fraction digits.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))", re.ASCII)
_EPOCH_DAY = date(1970, 1, 1).toordinal()


def _unix_seconds(rfc3339: str) -> int:
    """The whole unix second an RFC 3339 date-time falls in.

    Integer arithmetic, not ``datetime``, which holds neither a leap second
    (``23:59:60`` is the instant of the next ``00:00:00``, as POSIX time counts it)
    nor year 0000. The fraction only ever adds less than a second, so it is never
    read (a 10,000-digit one must not reach ``int``). Raises ValueError on text that
    is not an RFC 3339 date-time.
    """
    match = _RFC3339.fullmatch(rfc3339)
    if match is None:
        raise ValueError("not an RFC 3339 date-time")
    year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
    if hour > 23 or minute > 59 or second > 60:
        raise ValueError("not an RFC 3339 time of day")
    offset = 0
    if match.group(7):
        offset_hours, offset_minutes = int(match.group(8)), int(match.group(9))
        if offset_hours > 23 or offset_minutes > 59:
            raise ValueError("not an RFC 3339 offset")
        offset = (offset_hours * 3600 + offset_minutes * 60) * (1 if match.group(7) == "+" else -1)
    days = date(year, month, day).toordinal() - _EPOCH_DAY  # ValueError for a day that isn't
    return days * 86400 + hour * 3600 + minute * 60 + second - offset


def _iso(unix_seconds: Any) -> str | None:
    """Provider timestamps are untrusted: anything but a plausible epoch second is None."""
    if type(unix_seconds) is not int or not 0 < unix_seconds < 32503680000:  # year 3000
        return None
    return datetime.fromtimestamp(unix_seconds, UTC).isoformat().replace("+00:00", "Z")


def _expiry(entity: Mapping[str, Any], sent: HttpCall | None) -> str | None:
    """The link's expiry as the provider states it.

    ``expire_by: null`` is the provider saying the link never expires, and is told as
    such. A missing or unreadable value says nothing: the link then expires when we
    asked it to, so an expiry we sent is never turned into "no expiry" by a bad answer.
    """
    stated = entity.get("expire_by")
    if stated is None and "expire_by" in entity:
        return None
    readable = _iso(stated)
    if readable is not None:
        return readable
    asked = sent.json.get("expire_by") if sent is not None and sent.json is not None else None
    return _iso(asked)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class RazorpayConnector:
    name = NAME

    def unsupported(self, request: Mapping[str, Any], now: float) -> Unsupported | None:
        """The first field of a schema-valid request RazorpayX can't honour, or None.

        Each rule is one the provider enforces with a 400 or would silently ignore
        (a currency conversion, an expiry beyond what it keeps), checked before any
        call so the request fails naming the field it must change.
        """
        amount = request["amount"]
        if amount["currency"] != CURRENCY:
            return Unsupported("amount.currency", f"razorpay pays out in {CURRENCY} only")
        if amount["minor_amount"] < MIN_AMOUNT_PAISE:
            return Unsupported("amount.minor_amount",
                               f"razorpay's smallest payout link is {MIN_AMOUNT_PAISE} paise")
        destination = request.get("destination_currency")
        if destination is not None and destination != amount["currency"]:
            return Unsupported("destination_currency",
                               f"razorpay pays out in the amount's currency ({amount['currency']})"
                               f" and cannot convert to {destination}")
        customer = request["customer"]
        phone = customer.get("phone_number")
        if phone is not None and not PHONE_DIGITS[0] <= len(phone) <= PHONE_DIGITS[1]:
            return Unsupported("customer.phone_number",
                               "razorpay needs a phone number of {} to {} digits".format(
                                   *PHONE_DIGITS))
        notify = request.get("notify", {})
        if notify.get("sms") and phone is None:
            return Unsupported("notify.sms", "an SMS needs customer.phone_number")
        if notify.get("email") and customer.get("email") is None:
            return Unsupported("notify.email", "an email needs customer.email")
        expires_at = request.get("expires_at")
        if expires_at is not None:
            try:
                expire_by = _unix_seconds(expires_at)
            except ValueError:
                return Unsupported("expires_at", "not an RFC 3339 date-time")
            if expire_by < now + MIN_EXPIRY_LEAD_S:
                return Unsupported("expires_at", "razorpay needs an expiry at least "
                                                 f"{MIN_EXPIRY_LEAD_S // 60} minutes ahead")
            if expire_by > now + MAX_EXPIRY_LEAD_S:
                return Unsupported("expires_at", "razorpay keeps a link at most "
                                                 f"{MAX_EXPIRY_LEAD_S // 86400} days")
        return None

    def create_call(self, request: Mapping[str, Any], reference: str,
                    account: RazorpayAccount) -> HttpCall:
        """The create request. Never raises on a schema-valid request, and always sends
        an expiry that was asked for (:meth:`unsupported` turns away one the provider
        would refuse or not keep)."""
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

    def lookup_call(self, reference: str, account: Any = None) -> HttpCall:
        return HttpCall("GET", LIST_PATH, params={"receipt": reference, "count": "100"})

    def read_create(self, answer: HttpAnswer, sent: HttpCall | None = None) -> ProviderOutcome:
        if answer.status == 200:
            return _link_from_entity(_json(answer.body), sent)
        return _error_outcome(answer)

    def read_lookup(self, answer: HttpAnswer, reference: str,
                    sent: HttpCall | None = None) -> ProviderOutcome:
        if answer.status != 200:
            outcome = _error_outcome(answer)
            # A lookup creates nothing, and a refused one (400/401/403/404) proves nothing
            # about whether a link exists (DESIGN.md rule 2): ask again, never fail.
            if isinstance(outcome, Transient):
                return outcome
            reason = outcome.code if isinstance(outcome, Rejected) else "unanswered"
            return Transient(f"lookup_refused:{reason}", answer.status)
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
        return _link_from_entity(oldest, sent)


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _link_from_entity(entity: Any, sent: HttpCall | None) -> ProviderOutcome:
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
        expires_at=_expiry(entity, sent),
    )




def _error_outcome(answer: HttpAnswer) -> ProviderOutcome:
    status = answer.status
    if status in (408, 429):  # the provider did not process the request
        return Transient("throttled" if status == 429 else "request_timeout", status,
                         retry_after_s(answer.headers))
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
