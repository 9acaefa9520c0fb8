"""RazorpayX Payout Links: pure transformers (see shared/reference/providers.md).

Create, lookup by ``receipt``, and after creation the poll (``GET
/v1/payout-links/{id}``) and the cancel (``POST /v1/payout-links/{id}/cancel``): each a
request built and an answer read into exactly one outcome, with no I/O.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import orjson

from streams.connectors.base import (
    Cancelled,
    CancelOutcome,
    HttpAnswer,
    HttpCall,
    LinkCreated,
    LinkRef,
    NotCancellable,
    NotFound,
    ProviderOutcome,
    Rejected,
    StatusOutcome,
    StatusReport,
    Transient,
    Unknown,
    Unsupported,
    retry_after_s,
)
from streams.connectors.razorpay.account import RazorpayAccount

NAME = "razorpay"
CREATE_PATH = "/v1/payout-links"
LIST_PATH = "/v1/payout-links"
LINK_PATH = "/v1/payout-links/{}"
CANCEL_PATH = "/v1/payout-links/{}/cancel"

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


# Every status a payout link entity can be in. ``attempted`` is an event
# (``payout_link.attempted``: a payout failed or was reversed), whose public status is
# ``issued``; should an entity ever state it, it is read as ``issued``.
STATUSES = frozenset(PAYOUT_STATUS)
_ATTEMPTED = "attempted"

_LINK_ID = re.compile(r"[A-Za-z0-9_]{1,64}", re.ASCII)  # ``poutlk_…``: safe in a URL path
_STATUS_WORD = re.compile(r"[a-z_]{1,40}", re.ASCII)
_REFERENCE = re.compile(r"[\x21-\x7e]{1,64}", re.ASCII)
# Razorpay's 400 for an id it does not hold (on fetch and cancel alike).
_NO_SUCH_ID = re.compile(r"\bid\b.*\bdoes not exist", re.IGNORECASE)
# A 400 refusing a cancel because of the link's state. Razorpay documents the rule (only
# from ``issued``), not the words: these are the simulator's ("Payout link cannot be
# cancelled in processed status.") and their usual variants.
_NOT_CANCELLABLE = re.compile(
    r"can ?not be cancell?ed|can't be cancell?ed|not (?:in )?(?:a )?cancell?able", re.IGNORECASE)
_STATUS_NAMED = re.compile(
    r"\bin (?:the )?['\"]?([a-z_]+)['\"]? (?:status|state)\b"
    r"|\b(?:status|state)(?: is)?[:= ]+['\"]?([a-z_]+)", re.IGNORECASE)
_MAX_TEXT = 500

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


def parse_json(body: bytes) -> Any:
    """A body's JSON, or None when it is not JSON."""
    return _json(body)


def error_outcome(answer: HttpAnswer) -> ProviderOutcome:
    """An error answer in the outcome algebra (the ledger reads lists with it too)."""
    return _error_outcome(answer)


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




def _details(answer: HttpAnswer) -> dict[str, str | None]:
    """Razorpay's error envelope, every value type-checked (and bounded)."""
    body = _json(answer.body)
    error = (body or {}).get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {}
    description = _text(error.get("description"))
    return {
        "code": _text(error.get("code")),
        "message": description[:_MAX_TEXT] if description is not None else None,
        "reason": _text(error.get("reason")),
        "field": _text(error.get("field")),
    }


def _error_outcome(answer: HttpAnswer) -> ProviderOutcome:
    status = answer.status
    if status in (408, 429):  # the provider did not process the request
        return Transient("throttled" if status == 429 else "request_timeout", status,
                         retry_after_s(answer.headers))
    if status >= 500:
        # A 5xx may come from a gateway after the API committed the link (502/504),
        # so it is not proof that nothing was created: look up before creating again.
        return Unknown("provider_unavailable", status)
    details = _details(answer)
    message = details["message"] or f"HTTP {status} from razorpay"
    field = REQUEST_FIELD.get(details["field"]) if details["field"] else None
    if status == 401 or status == 403:
        return Rejected("provider_authentication_failed", message, None, status, details)
    if details["reason"] == "insufficient_funds":
        return Rejected("insufficient_funds", message, field, status, details)
    return Rejected("provider_rejected", message, field, status, details)


# --- after creation: poll and cancel --------------------------------------------------


def status_call(link: LinkRef) -> HttpCall | Rejected:
    """``GET /v1/payout-links/{id}``, or a refusal to send when the id could not be one
    of Razorpay's (it goes into the URL path)."""
    if not _LINK_ID.fullmatch(link.connector_payout_id):
        return _bad_link_id()
    return HttpCall("GET", LINK_PATH.format(link.connector_payout_id))


def cancel_call(link: LinkRef) -> HttpCall | Rejected:
    """``POST /v1/payout-links/{id}/cancel`` (no body): Razorpay cancels only from ``issued``."""
    if not _LINK_ID.fullmatch(link.connector_payout_id):
        return _bad_link_id()
    return HttpCall("POST", CANCEL_PATH.format(link.connector_payout_id))


def _bad_link_id() -> Rejected:
    return Rejected("provider_rejected", "connector_payout_id is not a RazorpayX payout link id",
                    None, None, {"code": None, "message": None, "reason": "invalid_link_id",
                                 "field": "connector_payout_id"})


def entity_status(value: Any) -> str | None:
    """An entity's ``status`` as the lifecycle reads it (``attempted`` is ``issued``)."""
    if not isinstance(value, str) or not _STATUS_WORD.fullmatch(value):
        return None
    return "issued" if value == _ATTEMPTED else value


def attempt_count(value: Any) -> int:
    """``attempt_count``: a non-negative integer, else 0 (the lowest position: a report
    that cannot be placed above what we know changes nothing)."""
    return value if type(value) is int and 0 <= value < 2**31 else 0


def link_id(value: Any) -> str | None:
    return value if isinstance(value, str) and _LINK_ID.fullmatch(value) else None


def reference_of(value: Any) -> str | None:
    return value if isinstance(value, str) and _REFERENCE.fullmatch(value) else None


def event_time(unix_seconds: Any) -> str | None:
    """A provider's unix time as RFC 3339 UTC (``…Z``), or None when implausible."""
    return _iso(unix_seconds)


def _report(entity: Any, link: LinkRef) -> StatusReport | None:
    """The report an entity about ``link`` makes, or None when it is unreadable or about
    another link (its ``id`` or ``receipt`` differ from ours)."""
    if not isinstance(entity, dict):
        return None
    status = entity_status(entity.get("status"))
    stated_id = entity.get("id")
    receipt = entity.get("receipt")
    if status is None or stated_id != link.connector_payout_id:
        return None
    if receipt is not None and receipt != link.reference:
        return None
    return StatusReport(connector_status=status, attempt=attempt_count(entity.get("attempt_count")),
                        reference=reference_of(receipt), connector_payout_id=link.connector_payout_id)


def read_status(answer: HttpAnswer, link: LinkRef) -> StatusOutcome:
    """A poll's answer. Only the entity (200) and a 404 say anything about the link; a
    refusal (400/401/403) proves nothing, and the caller polls again."""
    status = answer.status
    if status == 200:
        report = _report(_json(answer.body), link)
        return report if report is not None else Transient("status_unreadable", 200)
    if status == 404:
        return NotFound()
    return _command_error(answer)


def read_cancel(answer: HttpAnswer, link: LinkRef) -> CancelOutcome:
    """A cancel's answer: the cancelled entity, a refusal because of the link's state,
    or the error outcome (a 5xx or a lost answer may have cancelled it: Unknown)."""
    status = answer.status
    if status == 200:
        entity = _json(answer.body)
        if isinstance(entity, dict) and entity.get("id") not in (None, link.connector_payout_id):
            return Unknown("cancel_answer_names_another_link", 200)
        return Cancelled(_report(entity, link))
    if status == 404:
        details = _details(answer)
        return Rejected("link_not_found", details["message"] or "HTTP 404 from razorpay",
                        None, status, details)
    if status == 400:
        details = _details(answer)
        message = details["message"] or ""
        if _NOT_CANCELLABLE.search(message):
            return NotCancellable(message, _status_named(message))
    return _command_error(answer)


def _status_named(message: str) -> str | None:
    match = _STATUS_NAMED.search(message)
    if match is None:
        return None
    word = entity_status((match.group(1) or match.group(2)).lower())
    return word if word in STATUSES else None


def _command_error(answer: HttpAnswer) -> Rejected | Transient | Unknown:
    """A poll's or a cancel's error answer (neither creates anything; a cancel whose
    answer is a 5xx may have cancelled the link, so that is Unknown)."""
    status = answer.status
    if status in (408, 429):  # the provider did not process the request
        return Transient("throttled" if status == 429 else "request_timeout", status,
                         retry_after_s(answer.headers))
    if status >= 500 or status < 400:
        return Unknown("provider_unavailable" if status >= 500 else "unexpected_status", status)
    details = _details(answer)
    message = details["message"] or f"HTTP {status} from razorpay"
    if status in (401, 403):
        return Rejected("provider_authentication_failed", message, None, status, details)
    if _NO_SUCH_ID.search(message):
        # Razorpay's answer for an id it does not hold (400): our id came from its own
        # create answer, so this is a wrong account or a mix-up, never proof of absence.
        return Rejected("link_not_found", message, None, status, details)
    return Rejected("provider_rejected", message, None, status, details)
