"""Cashfree Payouts Cashgram: pure transformers (see shared/reference/providers.md).

Request → :class:`HttpCall` and :class:`HttpAnswer` → outcome, with no I/O and no clock
(``now`` is passed in). Every provider value is untrusted: ids, links, statuses and
messages are type- and shape-checked before they reach an event.

Two Cashfree habits shape the reading of answers:

* Errors come in the envelope ``{"status": "ERROR", "subCode": "422", "message": …}``;
  older Cashfree APIs send it with HTTP 200, so the *effective* status of a 200 whose
  body says ``ERROR`` is its ``subCode``. A 200 saying ``ERROR`` with no readable
  ``subCode`` is unreadable (``Unknown`` on a create).
* ``code`` (``amount_invalid``, ``token_invalid``, …) is the simulator's addition; real
  v1 bodies carry only ``subCode`` and ``message``, so every decision also works from
  the status and the message alone.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field as dataclass_field
from datetime import UTC, date, datetime
from typing import Any

import orjson

from streams import money
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

NAME = "cashfree"
AUTHORIZE_PATH = "/payout/v1/authorize"
CREATE_PATH = "/payout/v1/createCashgram"
STATUS_PATH = "/payout/v1/getCashgramStatus"
DEACTIVATE_PATH = "/payout/v1/deactivateCashgram"

CURRENCY = "INR"  # Cashgrams pay out rupees only
MIN_AMOUNT_PAISE = 100  # `amount` ≥ 1.00 rupee
MAX_LINK_EXPIRY_DAYS = 30  # `linkExpiry` at most 30 days ahead (India calendar days)
MAX_REMARKS_CHARS = 70  # `remarks` longer than this is refused (422 remarks_invalid)
DEFAULT_TOKEN_LIFETIME_S = 360.0  # "token valid 6 minutes"
MAX_TOKEN_LIFETIME_S = 3600.0  # an `expiry` further out than this is not believed
_MAX_TEXT = 500  # provider messages are echoed into events; keep them bounded

IST_OFFSET_S = 5 * 3600 + 30 * 60  # India has one zone and no daylight saving
_DAY_S = 86400
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

# Cashgram status → Prism PayoutStatus. A fresh ACTIVE Cashgram waits for the recipient
# to enter payout details: Prism's REQUIRES_PAYOUT_METHOD_DATA.
PAYOUT_STATUS = {
    "ACTIVE": "REQUIRES_PAYOUT_METHOD_DATA",
    "REDEEMED": "SUCCESS",
    "EXPIRED": "EXPIRED",
    "DEACTIVATED": "CANCELLED",
    "PENDING": "PENDING",
    "FAILED": "FAILED",
    "REVERSED": "REVERSED",
}

# Cashfree error code → (its body field, the request field a merchant must fix).
# cashgramId is our reference, not a request field: its errors name none.
ERROR_FIELD: dict[str, tuple[str, str | None]] = {
    "cashgram_id_missing": ("cashgramId", None),
    "cashgram_id_invalid": ("cashgramId", None),
    "cashgram_id_length_exceeded": ("cashgramId", None),
    "amount_missing": ("amount", "amount.minor_amount"),
    "amount_invalid": ("amount", "amount.minor_amount"),
    "amount_above_maximum": ("amount", "amount.minor_amount"),
    "name_missing": ("name", "customer.name"),
    "name_invalid": ("name", "customer.name"),
    "phone_missing": ("phone", "customer.phone_number"),
    "phone_invalid": ("phone", "customer.phone_number"),
    "expiry_date_missing": ("linkExpiry", "expires_at"),
    "expiry_date_invalid": ("linkExpiry", "expires_at"),
    "email_invalid": ("email", "customer.email"),
    "remarks_invalid": ("remarks", "description"),
    "notifyCustomer_invalid": ("notifyCustomer", "notify"),
}
# Without a code (real v1 bodies), the first body field the message names; "name" last,
# as other fields' messages may contain the word.
_MESSAGE_FIELD: tuple[tuple[str, str, str | None], ...] = (
    ("cashgramid", "cashgramId", None),
    ("amount", "amount", "amount.minor_amount"),
    ("phone", "phone", "customer.phone_number"),
    ("email", "email", "customer.email"),
    ("expiry", "linkExpiry", "expires_at"),
    ("remarks", "remarks", "description"),
    ("notifycustomer", "notifyCustomer", "notify"),
    ("name", "name", "customer.name"),
)

# An Indian mobile number as the request schema spells it (digits only, the country
# code apart): 10 digits starting 6-9, optionally after a 91 or 0 prefix.
_INDIAN_MOBILE = re.compile(r"(?:91|0)?[6-9][0-9]{9}", re.ASCII)
INDIA_COUNTRY_CODE = "+91"
# The request schema's date-time (RFC 3339, years 2000-2099, no leap second).
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))", re.ASCII)
_LINK_EXPIRY = re.compile(r"([0-9]{4})/([0-9]{2})/([0-9]{2})", re.ASCII)
_URL = re.compile(r"https?://[\x21-\x7e]{1,2040}", re.ASCII)  # no spaces or controls
_REFERENCE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
_STATUS_WORD = re.compile(r"[A-Z_]{1,64}", re.ASCII)
_CODE_WORD = re.compile(r"[A-Za-z_]{1,64}", re.ASCII)
_TOKEN = re.compile(r"[\x21-\x7e]{1,8192}", re.ASCII)  # goes into a header: visible ASCII
# A deactivate refused because of the Cashgram's state. ``cashgram_not_active`` is the
# simulator's code (real v1 bodies carry subCode and message only: then the message).
_NOT_ACTIVE_CODES = frozenset({"cashgram_not_active", "cashgram_already_redeemed",
                               "cashgram_already_deactivated", "cashgram_expired",
                               "cashgram_redeemed", "cashgram_deactivated"})
_NOT_ACTIVE_MESSAGE = re.compile(
    r"not active|no longer active|inactive|already (?:redeemed|deactivated|expired|reversed)"
    r"|has (?:been )?(?:redeemed|expired|deactivated|reversed)|cannot be deactivated",
    re.IGNORECASE)
_STATUS_NAMED = re.compile(r"\b(ACTIVE|PENDING|REDEEMED|EXPIRED|DEACTIVATED|FAILED|REVERSED)\b")


# --------------------------------------------------------------------------- dates


def unix_seconds(rfc3339: str) -> int | None:
    """The whole unix second of an RFC 3339 date-time, or None for text that isn't one."""
    match = _RFC3339.fullmatch(rfc3339) if isinstance(rfc3339, str) else None
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
    if hour > 23 or minute > 59 or second > 59:
        return None
    offset = 0
    if match.group(7):
        offset_hours, offset_minutes = int(match.group(8)), int(match.group(9))
        if offset_hours > 23 or offset_minutes > 59:
            return None
        offset = (offset_hours * 3600 + offset_minutes * 60) * (1 if match.group(7) == "+" else -1)
    try:
        days = date(year, month, day).toordinal() - _EPOCH_ORDINAL
    except ValueError:  # a day that isn't (02-31)
        return None
    return days * _DAY_S + hour * 3600 + minute * 60 + second - offset


def ist_day(unix: float) -> int:
    """Days since 1970-01-01 of the India calendar date at a unix time."""
    return int((unix + IST_OFFSET_S) // _DAY_S)


def link_expiry_text(day: int) -> str:
    """An India calendar day as Cashfree's ``linkExpiry``: ``YYYY/MM/DD``."""
    d = date.fromordinal(day + _EPOCH_ORDINAL)
    return f"{d.year:04d}/{d.month:02d}/{d.day:02d}"


def link_expiry_day(text: Any) -> int | None:
    match = _LINK_EXPIRY.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3])).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None


def link_expires_at(link_expiry: Any) -> str | None:
    """When a Cashgram with this ``linkExpiry`` stops being claimable, RFC 3339 UTC.

    The link stays ACTIVE through the end of that day in India, so it expires at the
    next midnight IST (``…T18:30:00Z``).
    """
    day = link_expiry_day(link_expiry)
    if day is None:
        return None
    instant = (day + 1) * _DAY_S - IST_OFFSET_S
    return datetime.fromtimestamp(instant, UTC).isoformat().replace("+00:00", "Z")


# ------------------------------------------------------------------ answer reading


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return value if len(value) <= _MAX_TEXT else value[:_MAX_TEXT] + "…"


def _sub_code(body: Any) -> int | None:
    """``subCode`` as an HTTP status ("422" or 422), or None when unreadable."""
    raw = body.get("subCode") if isinstance(body, dict) else None
    if type(raw) is int:
        code = raw
    elif isinstance(raw, str) and len(raw) == 3 and raw.isascii() and raw.isdigit():
        code = int(raw)
    else:
        return None
    return code if 100 <= code <= 599 else None


@dataclass(frozen=True)
class _Read:
    """An answer as Cashfree means it: the effective status and the parsed body."""

    status: int  # -1: a 200 saying ERROR without a readable subCode
    body: Any  # dict, or None when not a JSON object

    @property
    def code(self) -> str | None:
        return _text(self.body.get("code")) if self.body is not None else None

    @property
    def message(self) -> str | None:
        return _text(self.body.get("message")) if self.body is not None else None

    def details(self, provider_field: str | None = None) -> dict[str, Any]:
        sub = self.body.get("subCode") if self.body is not None else None
        return {"code": self.code, "message": self.message,
                "reason": str(sub) if type(sub) is int else _text(sub),  # the subCode
                "field": provider_field}


def _read(answer: HttpAnswer) -> _Read:
    body = _json(answer.body)
    if not isinstance(body, dict):
        body = None
    status = answer.status
    if status == 200 and body is not None and body.get("status") == "ERROR":
        sub = _sub_code(body)
        status = sub if sub is not None and sub >= 400 else -1
    return _Read(status, body)




def _reference_id(value: Any) -> str | None:
    if type(value) is int:
        return str(value) if 0 < value < 10**18 else None
    if isinstance(value, str) and _REFERENCE_ID.fullmatch(value):
        return value
    return None


def _url(value: Any) -> str | None:
    return value if isinstance(value, str) and _URL.fullmatch(value) else None


def _says_token_refused(read: _Read) -> bool:
    """A 401/403 about the bearer token (missing, expired, revoked), not the credentials."""
    if read.status not in (401, 403) or read.body is None:
        return False
    if read.code is not None:
        return read.code == "token_invalid"
    return "token" in (read.message or "").lower()


def _says_cashgram_absent(read: _Read) -> bool:
    """Cashfree's own 404 for an unknown cashgramId: proof of absence.

    A 404 from anything else (a proxy, a wrong path) proves nothing, so without the
    simulator's code the envelope must say ERROR with subCode 404 and speak of a
    Cashgram.
    """
    if read.status != 404 or read.body is None:
        return False
    if read.code is not None:
        return read.code == "cashgram_not_found"
    return (read.body.get("status") == "ERROR" and _sub_code(read.body) == 404
            and "cashgram" in (read.message or "").lower())


def _says_not_active(read: _Read) -> bool:
    """A deactivate refused because the Cashgram is not ACTIVE (redeemed, expired, ...)."""
    if read.status not in (400, 409, 422) or read.body is None:
        return False
    if read.code is not None:
        return read.code in _NOT_ACTIVE_CODES
    return bool(_NOT_ACTIVE_MESSAGE.search(read.message or ""))


def _command_error(read: _Read, answer: HttpAnswer) -> Rejected | Transient | Unknown:
    """A poll's or a deactivate's error answer. Neither creates anything; a deactivate
    answered 5xx (or unreadably) may have deactivated the Cashgram: Unknown."""
    status = read.status
    if status in (408, 429):  # refused before any work
        return Transient("throttled" if status == 429 else "request_timeout", status,
                         retry_after_s(answer.headers))
    if status >= 500 or status < 400:
        return Unknown("provider_unavailable" if status >= 500 else "unreadable_answer",
                       answer.status)
    message = read.message or f"HTTP {status} from cashfree"
    if status in (401, 403):
        return Rejected("provider_authentication_failed", message, None, status, read.details())
    return Rejected("provider_rejected", message, None, status, read.details())


def _field_of(read: _Read) -> tuple[str | None, str | None]:
    """(Cashfree's field, our request field) an error is about."""
    code = read.code
    if code is not None and code in ERROR_FIELD:
        return ERROR_FIELD[code]
    if code is None:
        message = (read.message or "").lower()
        for word, provider_field, field in _MESSAGE_FIELD:
            if word in message:
                return provider_field, field
    return None, None


@dataclass(frozen=True)
class Token:
    """A bearer token from authorize and its stated expiry (unix seconds, when readable)."""

    value: str = dataclass_field(repr=False)  # a credential: never in a log line
    expiry: float | None


# ------------------------------------------------------------------------ connector


class CashfreeConnector:
    name = NAME

    # -- before any call ------------------------------------------------------------
    def unsupported(self, request: Mapping[str, Any], now: float) -> Unsupported | None:
        """The first field of a schema-valid request a Cashgram can't honour, or None.

        Each rule is one Cashfree enforces with a 422 (or a link that would differ from
        the request), checked before any call so the request fails naming our field.
        """
        amount = request["amount"]
        if amount["currency"] != CURRENCY:
            return Unsupported("amount.currency", f"cashfree pays out in {CURRENCY} only")
        if amount["minor_amount"] < MIN_AMOUNT_PAISE:
            return Unsupported("amount.minor_amount",
                               f"cashfree's smallest cashgram is {MIN_AMOUNT_PAISE} paise (1.00 INR)")
        destination = request.get("destination_currency")
        if destination is not None and destination != CURRENCY:
            return Unsupported("destination_currency",
                               f"cashfree pays out in {CURRENCY} and cannot convert to {destination}")
        customer = request["customer"]
        phone = customer.get("phone_number")
        if phone is None:
            return Unsupported("customer.phone_number",
                               "a cashgram is claimed by phone: cashfree needs customer.phone_number")
        country = customer.get("phone_country_code")
        if country is not None and country != INDIA_COUNTRY_CODE:
            return Unsupported("customer.phone_country_code",
                               f"cashfree needs an Indian ({INDIA_COUNTRY_CODE}) mobile number")
        if not _INDIAN_MOBILE.fullmatch(phone):
            return Unsupported("customer.phone_number",
                               "cashfree needs a 10-digit Indian mobile number starting 6-9")
        if request.get("notify", {}).get("email") and customer.get("email") is None:
            return Unsupported("notify.email", "an email needs customer.email")
        expires_at = request.get("expires_at")
        if expires_at is not None:
            expiry = unix_seconds(expires_at)
            if expiry is None:
                return Unsupported("expires_at", "not an RFC 3339 date-time")
            if expiry < now:
                return Unsupported("expires_at", "is in the past")
            if ist_day(expiry) > ist_day(now) + MAX_LINK_EXPIRY_DAYS:
                return Unsupported("expires_at", "cashfree keeps a cashgram at most "
                                                 f"{MAX_LINK_EXPIRY_DAYS} days (India time)")
        return None

    def create_call(self, request: Mapping[str, Any], reference: str, now: float) -> HttpCall:
        """The createCashgram call. Never raises on a schema-valid request (it is built
        in the intake dry run, before :meth:`unsupported` has spoken).

        * ``amount``: rupees with two decimals, an exact JSON number (never a float).
        * ``linkExpiry``: the India calendar day of ``expires_at``: the Cashgram is then
          claimable until that day ends in India, up to a day past ``expires_at``.
          Without ``expires_at``, the longest Cashfree allows: ``now`` + 30 days.
        * ``remarks``: the description, cut to Cashfree's 70 characters.
        * ``phone``: the 10-digit national number (a 91 or 0 prefix dropped).
        * ``notifyCustomer``: Cashfree has one switch for SMS and email; either asked
          for turns it on.
        """
        customer = request.get("customer") or {}
        notify = request.get("notify") or {}
        expiry = unix_seconds(request["expires_at"]) if request.get("expires_at") else None
        day = ist_day(expiry) if expiry is not None else ist_day(now) + MAX_LINK_EXPIRY_DAYS
        body: dict[str, Any] = {
            "cashgramId": reference,
            "amount": orjson.Fragment(
                money.major_text(request["amount"]["minor_amount"], CURRENCY).encode()),
            "name": customer.get("name", ""),
            "phone": _national_mobile(customer.get("phone_number", "")),
            "linkExpiry": link_expiry_text(day),
            "notifyCustomer": 1 if notify.get("sms") or notify.get("email") else 0,
        }
        if customer.get("email"):
            body["email"] = customer["email"]
        description = request.get("description")
        if description:
            body["remarks"] = description[:MAX_REMARKS_CHARS]
        return HttpCall("POST", CREATE_PATH, json=body)

    def lookup_call(self, reference: str, account: Any = None) -> HttpCall:
        return HttpCall("GET", STATUS_PATH, params={"cashgramId": reference})

    # -- after creation: poll and deactivate ------------------------------------------
    def status_call(self, link: LinkRef) -> HttpCall:
        """``getCashgramStatus`` by our reference, the Cashgram's id."""
        return self.lookup_call(link.reference)

    def cancel_call(self, link: LinkRef) -> HttpCall:
        """``deactivateCashgram``: Cashfree deactivates an ACTIVE Cashgram only."""
        return HttpCall("POST", DEACTIVATE_PATH, json={"cashgramId": link.reference})

    def read_status(self, answer: HttpAnswer, link: LinkRef) -> StatusOutcome:
        """A poll's answer: the Cashgram's status, Cashfree's proof that it does not
        exist, or an error outcome (a refusal proves nothing: the caller polls again)."""
        read = _read(answer)
        if read.status == 200:
            data = read.body.get("data") if read.body is not None else None
            if read.body is None or read.body.get("status") != "SUCCESS" or not isinstance(
                    data, dict):
                return Transient("status_unreadable", 200)
            stated_id = _reference_id(data.get("referenceId"))
            if (data.get("cashgramId", link.reference) != link.reference
                    or stated_id not in (None, link.connector_payout_id)):
                return Transient("status_answered_another_link", 200)  # never adopt it
            status = data.get("cashgramStatus")
            if not isinstance(status, str) or not _STATUS_WORD.fullmatch(status):
                return Transient("status_unreadable", 200)
            return StatusReport(connector_status=status, reference=link.reference,
                                connector_payout_id=link.connector_payout_id)
        if _says_cashgram_absent(read):
            return NotFound()
        return _command_error(read, answer)

    def read_cancel(self, answer: HttpAnswer, link: LinkRef) -> CancelOutcome:
        """A deactivate's answer. SUCCESS states no status (the Cashgram reads
        DEACTIVATED after it): :class:`Cancelled` without a report."""
        read = _read(answer)
        if read.status == 200:
            if read.body is not None and read.body.get("status") == "SUCCESS":
                return Cancelled()
            return Unknown("unreadable_success_body", 200)  # it may have been deactivated
        if _says_cashgram_absent(read):
            return Rejected("link_not_found", read.message or "cashgram not found", None, 404,
                            read.details("cashgramId"))
        if _says_not_active(read):
            message = read.message or f"HTTP {read.status}: the cashgram is not active"
            named = _STATUS_NAMED.findall(message)
            return NotCancellable(message, named[-1] if named else None)
        return _command_error(read, answer)

    # -- auth -------------------------------------------------------------------------
    def authorize_call(self) -> HttpCall:
        """No body; the client id and secret go as the transport's headers, not here."""
        return HttpCall("POST", AUTHORIZE_PATH)

    def read_authorize(self, answer: HttpAnswer) -> Token | Rejected | Transient:
        """A token, a refusal of the credentials (definite), or "no token right now"."""
        read = _read(answer)
        if read.status == 200 and read.body is not None and read.body.get("status") == "SUCCESS":
            data = read.body.get("data")
            token = data.get("token") if isinstance(data, dict) else None
            if isinstance(token, str) and _TOKEN.fullmatch(token):
                expiry = data.get("expiry")
                readable = (not isinstance(expiry, bool) and isinstance(expiry, (int, float))
                            and math.isfinite(expiry))
                return Token(token, float(expiry) if readable else None)
        if read.status in (401, 403):
            return Rejected("provider_authentication_failed",
                            read.message or f"HTTP {read.status} from cashfree authorize",
                            None, read.status, read.details())
        if read.status == 429:
            return Transient("authorize_throttled", 429, retry_after_s(answer.headers))
        return Transient(f"authorize_unavailable:{answer.status}", answer.status)

    def refused_token(self, answer: HttpAnswer) -> bool:
        """The answer refuses our bearer token: nothing was done, renew it and send again."""
        return _says_token_refused(_read(answer))

    # -- answers ---------------------------------------------------------------------
    def already_exists(self, answer: HttpAnswer) -> bool:
        """409: the cashgramId is taken, so an earlier attempt created the Cashgram."""
        return _read(answer).status == 409

    def read_create(self, answer: HttpAnswer, sent: HttpCall | None = None) -> ProviderOutcome:
        read = _read(answer)
        status = read.status
        if status == 200:
            if read.body is not None and read.body.get("status") == "SUCCESS":
                created = _link(read.body.get("data"), "ACTIVE", _sent_expiry(sent))
                if created is not None:
                    return created
            return Unknown("unreadable_success_body", 200)  # a Cashgram may exist
        if status == 409:
            # Exists from an earlier attempt: only a lookup can say what it is
            # (:class:`CashfreeClient` does that at once).
            return Unknown("cashgram_id_already_exists", 409)
        if status in (408, 429):  # refused before any work
            return Transient("throttled" if status == 429 else "request_timeout", status,
                             retry_after_s(answer.headers))
        if status >= 500 or status < 400:
            # 5xx: a gateway may answer after the API stored the Cashgram; anything
            # else unexpected (a 2xx that isn't 200, an ERROR without subCode) may too.
            return Unknown("provider_unavailable" if status >= 500 else "unreadable_answer",
                           answer.status)
        provider_field, field = _field_of(read)
        details = read.details(provider_field)
        message = read.message or f"HTTP {status} from cashfree"
        if status in (401, 403):
            return Rejected("provider_authentication_failed", message, None, status, details)
        return Rejected("provider_rejected", message, field, status, details)

    def read_lookup(self, answer: HttpAnswer, reference: str,
                    sent_expiry: str | None = None) -> ProviderOutcome:
        """A found Cashgram, Cashfree's proof of absence, or Transient: a lookup creates
        nothing, and a refused or unreadable one proves nothing (DESIGN.md rule 2)."""
        read = _read(answer)
        if read.status == 200:
            if read.body is not None and read.body.get("status") == "SUCCESS":
                data = read.body.get("data")
                if isinstance(data, dict) and data.get("cashgramId", reference) != reference:
                    return Transient("lookup_mismatch", 200)  # never adopt another link
                status = data.get("cashgramStatus") if isinstance(data, dict) else None
                found = _link(data, _status_word(status), sent_expiry)
                if found is not None:
                    return found
            return Transient("lookup_unreadable", 200)
        if _says_cashgram_absent(read):
            return NotFound()
        if read.status == 429:
            return Transient("throttled", 429, retry_after_s(answer.headers))
        code = read.code if read.code is not None and _CODE_WORD.fullmatch(read.code) else None
        return Transient(f"lookup_refused:{code or read.status}", answer.status)


def _national_mobile(phone: str) -> str:
    """The 10-digit number without a 91 or 0 prefix (as Cashfree's examples show it);
    a number that isn't an Indian mobile is sent as given (unsupported refuses it)."""
    return phone[-10:] if _INDIAN_MOBILE.fullmatch(phone) else phone


def _sent_expiry(sent: HttpCall | None) -> str | None:
    return sent.json.get("linkExpiry") if sent is not None and sent.json is not None else None


def _status_word(status: Any) -> str:
    """A stated Cashgram status, kept raw when it is a plain word."""
    return status if isinstance(status, str) and _STATUS_WORD.fullmatch(status) else "UNKNOWN"


def _link(data: Any, status: str, link_expiry: str | None) -> LinkCreated | None:
    """A Cashgram from ``data``, or None when its id or link is unreadable.

    Unknown statuses keep their raw value and read PENDING. Neither answer states an
    expiry: it is the end of the ``linkExpiry`` day we sent, when we know it.
    """
    if not isinstance(data, dict):
        return None
    reference_id = _reference_id(data.get("referenceId"))
    url = _url(data.get("cashgramLink"))
    if reference_id is None or url is None:
        return None
    return LinkCreated(
        connector_payout_id=reference_id,
        url=url,
        connector_status=status,
        payout_status=PAYOUT_STATUS.get(status, "PENDING"),
        expires_at=link_expires_at(link_expiry),
    )
