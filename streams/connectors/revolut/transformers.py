"""Revolut Business payout links: pure transformers (see shared/reference/providers.md).

Our request → the create / list / token calls, and Revolut's answers → exactly one
outcome. No I/O here; the only impure input is the wall clock (injectable), which the
create needs to turn ``expires_at`` into Revolut's ``expiry_period`` and the lookup needs
for its look-back window. Every provider value is untrusted: types, URL characters,
timestamps, ``Retry-After`` and token lifetimes are checked before use.
"""
from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
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
from streams.connectors.http import AuthUnavailable
from streams.connectors.revolut.account import RevolutAccount

NAME = "revolut"
TOKEN_PATH = "/api/1.0/auth/token"
LINKS_PATH = "/api/1.0/payout-links"
LINK_PATH = "/api/1.0/payout-links/{}"
CANCEL_PATH = "/api/1.0/payout-links/{}/cancel"
# Revolut's error codes: 3006 "resource not found" is documented; 3020 (a payout link
# that cannot be cancelled in its state) is the simulator's choice, as Revolut documents
# only that cancel works on unclaimed links.
CODE_NOT_FOUND = 3006
CODE_NOT_CANCELLABLE = 3020
STATES = frozenset({"created", "failed", "awaiting", "active", "expired", "cancelled",
                    "processing", "processed"})
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

# What we let requests route to Revolut in. Revolut Business holds and pays out in more
# currencies (and the simulator accepts JPY, KWD, ...), but its payout-link docs name
# none explicitly; this is the set of European currencies Revolut Business accounts are
# widely held in. Widening it is one line: amounts are converted by ISO-4217 exponent
# for any currency (tests cover JPY and KWD).
CURRENCIES = frozenset({"GBP", "EUR", "USD", "CHF", "PLN", "SEK", "NOK", "DKK", "CZK", "HUF",
                        "RON"})

DAY_S = 86_400
MIN_EXPIRY_DAYS, MAX_EXPIRY_DAYS = 1, 7  # expiry_period P1D..P7D (default P7D)
DEFAULT_EXPIRY_DAYS = 7
REFERENCE_MAX = 100  # `reference`: 1-100 characters
LIST_LIMIT = 1000  # the list's largest page
MAX_MESSAGE = 500  # provider messages are kept, bounded
DEFAULT_TOKEN_LIFETIME_S = 300.0  # when a token answer states no usable expires_in
MAX_TOKEN_LIFETIME_S = 24 * 3600.0  # Revolut's last 40 minutes; a day is implausible already

# Revolut state → Prism PayoutStatus. An `active` link waits for the recipient to choose
# how to be paid; `awaiting` (approval) and `created` (amount not yet blocked) exist but
# have no URL yet.
PAYOUT_STATUS = {
    "created": "PENDING",
    "awaiting": "PENDING",
    "active": "REQUIRES_PAYOUT_METHOD_DATA",
    "processing": "INITIATED",
    "processed": "SUCCESS",
    "expired": "EXPIRED",
    "cancelled": "CANCELLED",
    "failed": "FAILED",
}

# Revolut body fields → the request fields a merchant must fix. `account_id` and
# `request_id` are ours (configuration, our reference): no request field to name.
REQUEST_FIELD = {
    "amount": "amount.minor_amount",
    "currency": "amount.currency",
    "counterparty_name": "customer.name",
    "reference": "description",
    "expiry_period": "expires_at",
}

_US = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = date(1970, 1, 1).toordinal()
# RFC 3339 section 5.6 in every spelling it allows (lowercase t/z, any fraction digits).
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))", re.ASCII)
_FIELD_IN_MESSAGE = re.compile(r"(?:field|Required) '([A-Za-z_][A-Za-z0-9_.]{0,63})'")
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_STATE = re.compile(r"[a-z_]{1,40}")
_URL = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]{1,2040}")
_TOKEN = re.compile(r"[\x21-\x7e]{1,4096}")  # goes into a header: visible ASCII only
_OAUTH_ERROR = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_LINK_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")  # a UUID: safe in a URL path (no dots)
_REFERENCE = re.compile(r"[\x21-\x7e]{1,64}")
_NOT_CANCELLABLE = re.compile(r"can ?not be cancell?ed|can't be cancell?ed|not cancell?able",
                              re.IGNORECASE)
_STATE_NAMED = re.compile(r"\bstate '?([a-z_]+)'?", re.IGNORECASE)


class CredentialsRefused(Exception):
    """The token endpoint refused our credentials (400/401): no token, and retrying the
    same refresh token and assertion won't help. Carries no secret."""

    def __init__(self, status: int, error: str | None, description: str | None) -> None:
        super().__init__(f"token endpoint refused the credentials: HTTP {status} {error or ''}")
        self.status, self.error, self.description = status, error, description


@dataclass(frozen=True)
class NextPage:
    """The page proved nothing either way: ask for links created before ``created_before_us``."""

    created_before_us: int


class _SecretForm(dict[str, str]):
    """A token-request form whose repr names its fields only (an HttpCall may be shown)."""

    def __repr__(self) -> str:
        return f"<form {', '.join(self)}>"


def parse_timestamp_us(text: str) -> int:
    """An RFC 3339 date-time as microseconds since the epoch (integer arithmetic).

    Fraction digits beyond microseconds are dropped unread (a 10,000-digit fraction must
    not reach ``int``); a leap second counts as the next second, as POSIX time does.
    Raises ValueError on anything else.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError("not an RFC 3339 date-time")
    year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
    if hour > 23 or minute > 59 or second > 60:
        raise ValueError("not an RFC 3339 time of day")
    fraction = match.group(7)
    micros = int((fraction[1:7]).ljust(6, "0")) if fraction else 0
    offset = 0
    if match.group(8):
        offset_hours, offset_minutes = int(match.group(9)), int(match.group(10))
        if offset_hours > 23 or offset_minutes > 59:
            raise ValueError("not an RFC 3339 offset")
        offset = (offset_hours * 3600 + offset_minutes * 60) * (1 if match.group(8) == "+" else -1)
    days = date(year, month, day).toordinal() - _EPOCH_DAY  # ValueError for a day that isn't
    return (days * DAY_S + hour * 3600 + minute * 60 + second - offset) * _US + micros


def format_timestamp_us(us: int) -> str:
    """Microseconds since the epoch as Revolut writes timestamps: ``…T13:55:54.834963Z``."""
    return (_EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def provider_timestamp_us(value: Any) -> int | None:
    """A provider timestamp in microseconds, or None when it is not a plausible one."""
    return _provider_timestamp_us(value)


def parse_json(body: bytes) -> Any:
    """A body's JSON, or None when it is not JSON."""
    return _json(body)


def lookup_error(answer: HttpAnswer) -> Transient:
    """A read's error answer: it proves nothing (the ledger's lists use it too)."""
    return _lookup_error(answer)


def _provider_timestamp_us(value: Any) -> int | None:
    """A provider timestamp, or None when it is not a plausible one (years 2000-2999)."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        us = parse_timestamp_us(value)
    except ValueError:
        return None
    return us if 946_684_800 * _US <= us < 32_503_680_000 * _US else None


def expiry_days(expires_at: str, now_s: float) -> int:
    """Whole days from now to ``expires_at``, rounded *up*, within P1D..P7D.

    Rounded up so a link is never gone before the time asked; :meth:`unsupported` refuses
    an ``expires_at`` that would need less than one day or more than seven, so the clamp
    only matters for time that passed between that check and this call.
    """
    remaining_us = parse_timestamp_us(expires_at) - int(now_s * _US)
    days = -(-remaining_us // (DAY_S * _US))  # ceiling
    return min(max(days, MIN_EXPIRY_DAYS), MAX_EXPIRY_DAYS)


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _text(value: Any, limit: int = MAX_MESSAGE) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return value if len(value) <= limit else value[:limit] + "…"


def _url(value: Any) -> str | None:
    """A URL we would hand a recipient: http(s), RFC 3986 characters only, or None."""
    return value if isinstance(value, str) and _URL.fullmatch(value) else None



class RevolutConnector:
    """The pure half of the Revolut provider: requests built, answers read."""

    name = NAME

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock  # wall-clock seconds: expiry_period and the look-back window

    # --- capability --------------------------------------------------------------

    def unsupported(self, request: Mapping[str, Any], now: float) -> Unsupported | None:
        """The first field of a schema-valid request Revolut can't honour as asked, or None."""
        currency = request["amount"]["currency"]
        if currency not in CURRENCIES:
            return Unsupported("amount.currency",
                               f"revolut pays out links in {', '.join(sorted(CURRENCIES))}")
        destination = request.get("destination_currency")
        if destination is not None and destination != currency:
            return Unsupported("destination_currency",
                               f"revolut pays out in the amount's currency ({currency})"
                               f" and cannot convert to {destination}")
        notify = request.get("notify") or {}
        for channel in ("sms", "email"):
            if notify.get(channel):
                # Revolut sends nothing to the recipient: the link goes out through our
                # own notification services, so a request asking the provider to notify
                # would silently not be honoured.
                return Unsupported(f"notify.{channel}", "revolut does not notify the recipient "
                                   "of a payout link; deliver the URL from payout-link-created")
        expires_at = request.get("expires_at")
        if expires_at is not None:
            try:
                remaining_us = parse_timestamp_us(expires_at) - int(now * _US)
            except ValueError:
                return Unsupported("expires_at", "not an RFC 3339 date-time")
            if remaining_us < MIN_EXPIRY_DAYS * DAY_S * _US:
                return Unsupported("expires_at", "revolut keeps a link at least 1 day "
                                                 "(expiry_period P1D to P7D)")
            if remaining_us > MAX_EXPIRY_DAYS * DAY_S * _US:
                return Unsupported("expires_at", "revolut keeps a link at most 7 days "
                                                 "(expiry_period P1D to P7D)")
        return None

    # --- create ------------------------------------------------------------------

    def create_call(self, request: Mapping[str, Any], reference: str,
                    account: RevolutAccount) -> HttpCall:
        """The create request; never raises on a schema-valid request.

        ``request_id`` is our reference, Revolut's idempotency key. The amount is an exact
        JSON number in major units with the currency's ISO-4217 decimals, written as text
        (never through a float). Without ``expires_at`` no ``expiry_period`` is sent and
        Revolut's default (P7D) applies; the answer's ``expiry_date`` is reported.
        """
        amount = request["amount"]
        currency = amount["currency"]
        description = request.get("description") or f"Payout {request['merchant_payout_id']}"
        body: dict[str, Any] = {
            "request_id": reference,
            "counterparty_name": request["customer"]["name"],
            "account_id": account.account_id,
            "amount": orjson.Fragment(money.major_text(amount["minor_amount"], currency).encode()),
            "currency": currency,
            "reference": description[:REFERENCE_MAX],
        }
        expires_at = request.get("expires_at")
        if expires_at:
            try:
                days = expiry_days(expires_at, self._clock())
            except ValueError:  # unreachable for a schema-valid request; the shortest is safest
                days = MIN_EXPIRY_DAYS
            body["expiry_period"] = f"P{days}D"
        return HttpCall("POST", LINKS_PATH, json=body)

    def read_create(self, answer: HttpAnswer, sent: HttpCall | None = None) -> ProviderOutcome:
        status = answer.status
        if 200 <= status < 300:
            link = _link_from_entity(_json(answer.body), sent) if status in (200, 201) else None
            # A 2xx we can't read may still mean a link exists: look it up.
            return link if link is not None else Unknown("unreadable_success_body", status)
        return _error_outcome(answer)

    # --- lookup (Revolut has no filter by request_id: page through the list) ----------

    def lookup_call(self, reference: str, account: Any = None,
                    created_before_us: int | None = None) -> HttpCall:
        params = {"limit": str(LIST_LIMIT)}
        if created_before_us is not None:
            params["created_before"] = format_timestamp_us(created_before_us)
        return HttpCall("GET", LINKS_PATH, params=params)

    def read_lookup_page(self, answer: HttpAnswer, reference: str, *, not_before_us: int,
                         created_before_us: int | None = None
                         ) -> LinkCreated | NotFound | NextPage | Transient:
        """One page of the newest-first list: the link, proof of absence, or where to go on.

        Absence is proved by an empty page (the list's end) or by a page reaching back
        past ``not_before_us``, the look-back window's start; a short page is not taken
        as the end, in case the provider caps pages below our ``limit``. Any error proves
        nothing, so it is :class:`Transient` (DESIGN.md rule 2), never a rejection.
        """
        if answer.status != 200:
            return _lookup_error(answer)
        items = _json(answer.body)
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            return Transient("lookup_unreadable", answer.status)
        if not items:
            return NotFound()
        mine = [i for i in items if i.get("request_id") == reference]
        if mine:
            # There should be one; should there be more, the oldest is the one a
            # recipient may have been told about.
            oldest = min(mine, key=lambda i: _provider_timestamp_us(i.get("created_at")) or 0)
            link = _link_from_entity(oldest, None)
            return link if link is not None else Transient("lookup_unreadable_link", 200)
        stamps = [s for s in (_provider_timestamp_us(i.get("created_at")) for i in items)
                  if s is not None]
        if not stamps:
            return Transient("lookup_unreadable", 200)
        oldest_us = min(stamps)
        if oldest_us < not_before_us:
            return NotFound()
        if created_before_us is not None and oldest_us >= created_before_us:
            # The provider ignored created_before: paging would never end.
            return Transient("lookup_not_progressing", 200)
        return NextPage(oldest_us)

    # --- after creation: poll and cancel ----------------------------------------------

    def status_call(self, link: LinkRef) -> HttpCall | Rejected:
        """``GET /payout-links/{id}``, or a refusal to send an id that could not be
        Revolut's (it goes into the URL path)."""
        if not _LINK_ID.fullmatch(link.connector_payout_id):
            return _bad_link_id()
        return HttpCall("GET", LINK_PATH.format(link.connector_payout_id))

    def cancel_call(self, link: LinkRef) -> HttpCall | Rejected:
        """``POST /payout-links/{id}/cancel`` (204; unclaimed links only)."""
        if not _LINK_ID.fullmatch(link.connector_payout_id):
            return _bad_link_id()
        return HttpCall("POST", CANCEL_PATH.format(link.connector_payout_id))

    def read_status(self, answer: HttpAnswer, link: LinkRef) -> StatusOutcome:
        """A poll's answer: the link's ``state``, Revolut's own 404 (code 3006), or an
        error outcome (a refusal proves nothing: the caller polls again)."""
        status = answer.status
        if status == 200:
            entity = _json(answer.body)
            report = _report(entity, link)
            return report if report is not None else Transient("status_unreadable", 200)
        details = _details(answer)
        if status == 404 and details["code"] == str(CODE_NOT_FOUND):
            return NotFound()
        return _command_error(answer, details)

    def read_cancel(self, answer: HttpAnswer, link: LinkRef) -> CancelOutcome:
        """A cancel's answer: 204 (Revolut states no status), a refusal because of the
        link's state (code 3020), or an error outcome (a 5xx or a lost answer may have
        cancelled it: Unknown)."""
        status = answer.status
        if 200 <= status < 300:
            return Cancelled()
        details = _details(answer)
        message = details["message"] or f"HTTP {status} from revolut"
        if status == 404:
            return Rejected("link_not_found", message, None, status, details)
        if status in (400, 409, 422) and (details["code"] == str(CODE_NOT_CANCELLABLE)
                                          or _NOT_CANCELLABLE.search(message)):
            return NotCancellable(message, _state_named(message))
        return _command_error(answer, details)

    # --- auth: the refresh-token flow ----------------------------------------------------

    def token_call(self, account: RevolutAccount) -> HttpCall:
        return HttpCall("POST", TOKEN_PATH, form=_SecretForm(
            grant_type="refresh_token",
            refresh_token=account.refresh_token,
            client_id=account.client_id,
            client_assertion_type=ASSERTION_TYPE,
            client_assertion=account.client_assertion,
        ))

    def read_token(self, answer: HttpAnswer) -> tuple[str, float]:
        """``(access token, lifetime in seconds)``.

        Raises :class:`CredentialsRefused` for 400/401/403 (a bad refresh token, client id
        or assertion: definite) and :class:`AuthUnavailable` for anything else that is not
        a readable token (5xx, 429, an unreadable body: try again later).
        """
        status = answer.status
        if status in (400, 401, 403):
            body = _json(answer.body)
            body = body if isinstance(body, dict) else {}
            error = body.get("error")
            raise CredentialsRefused(
                status, error if isinstance(error, str) and _OAUTH_ERROR.fullmatch(error) else None,
                _text(body.get("error_description")))
        if status != 200:
            raise AuthUnavailable(f"token_http_{status}")
        body = _json(answer.body)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise AuthUnavailable("token_unreadable")
        expires_in = body.get("expires_in")
        if (isinstance(expires_in, bool) or not isinstance(expires_in, (int, float))
                or not math.isfinite(expires_in) or expires_in <= 0):
            return token, DEFAULT_TOKEN_LIFETIME_S  # unstated: assume short, renew soon
        return token, float(min(expires_in, MAX_TOKEN_LIFETIME_S))



def _link_from_entity(entity: Any, sent: HttpCall | None) -> LinkCreated | None:
    """The link an entity describes, or None when it is not readably one of ours."""
    if not isinstance(entity, dict):
        return None
    link_id = entity.get("id")
    if not isinstance(link_id, str) or not _ID.fullmatch(link_id):
        return None
    asked = sent.json.get("request_id") if sent is not None and sent.json is not None else None
    echoed = entity.get("request_id")
    if asked is not None and echoed is not None and echoed != asked:
        return None  # an answer about some other link is no answer about ours
    state = entity.get("state")
    state = state if isinstance(state, str) and _STATE.fullmatch(state) else "unknown"
    return LinkCreated(
        connector_payout_id=link_id,
        # Only active links carry a URL: an `awaiting` link exists without one (url None).
        url=_url(entity.get("url")),
        connector_status=state,
        payout_status=PAYOUT_STATUS.get(state, "PENDING"),
        expires_at=_expiry(entity, sent),
    )


def _expiry(entity: Mapping[str, Any], sent: HttpCall | None) -> str | None:
    """The link's expiry as Revolut states it (``expiry_date``).

    Unreadable: ``created_at`` plus the period we asked for (P7D when we asked none), if
    we know what we asked; otherwise None (unknown, never "no expiry" at Revolut).
    """
    stated = _provider_timestamp_us(entity.get("expiry_date"))
    if stated is not None:
        return format_timestamp_us(stated)
    created = _provider_timestamp_us(entity.get("created_at"))
    if created is None or sent is None or sent.json is None:
        return None
    period = sent.json.get("expiry_period")
    days = int(period[1:-1]) if isinstance(period, str) else DEFAULT_EXPIRY_DAYS
    return format_timestamp_us(created + days * DAY_S * _US)


def _details(answer: HttpAnswer) -> dict[str, str | None]:
    body = _json(answer.body)
    body = body if isinstance(body, dict) else {}
    code = body.get("code")
    message = _text(body.get("message"))
    named = _FIELD_IN_MESSAGE.findall(message) if message else []
    return {
        "code": str(code) if type(code) is int or isinstance(code, str) and code.isdigit() else None,
        "message": message,
        "reason": None,
        # The value a message quotes comes first and may contain anything; the field
        # Revolut names is the last one.
        "field": named[-1] if named else None,
    }


def _error_outcome(answer: HttpAnswer) -> ProviderOutcome:
    """A create's non-2xx answer."""
    status = answer.status
    if status in (408, 429):  # refused before anything was done
        return Transient("throttled" if status == 429 else "request_timeout", status,
                         retry_after_s(answer.headers))
    if status == 409:
        # 409/3010: our request_id is taken by a link with other parameters -- so a link
        # exists under our reference (an earlier attempt, e.g. with an expiry_period that
        # moved across a day boundary). Not a failure: look it up and report it.
        return Unknown("request_id_conflict", status)
    if status >= 500 or status < 400:
        # A 5xx may come from a gateway after Revolut committed the link (502/504 answer
        # HTML), and a 1xx/3xx is no answer we understand: look up before creating again.
        return Unknown("provider_unavailable" if status >= 500 else "unexpected_status", status)
    details = _details(answer)
    message = details["message"] or f"HTTP {status} from revolut"
    if status in (401, 403):
        # Reached only after a refreshed token was refused too (the client re-sends a 401
        # once): the credentials or their scopes are wrong. No hammering.
        return Rejected("provider_authentication_failed", message, None, status, details)
    if "insufficient" in message.lower():
        return Rejected("insufficient_funds", message, None, status, details)
    field = REQUEST_FIELD.get(details["field"] or "")
    return Rejected("provider_rejected", message, field, status, details)


def _bad_link_id() -> Rejected:
    return Rejected("provider_rejected", "connector_payout_id is not a Revolut payout link id",
                    None, None, {"code": None, "message": None, "reason": "invalid_link_id",
                                 "field": "connector_payout_id"})


def link_state(value: Any) -> str | None:
    """A ``state`` word (kept raw: the lifecycle places the states it knows)."""
    return value if isinstance(value, str) and _STATE.fullmatch(value) else None


def link_id(value: Any) -> str | None:
    return value if isinstance(value, str) and _ID.fullmatch(value) else None


def reference_of(value: Any) -> str | None:
    return value if isinstance(value, str) and _REFERENCE.fullmatch(value) else None


def event_time(value: Any) -> str | None:
    """A provider timestamp as RFC 3339 UTC, or None when it is not a plausible one."""
    us = _provider_timestamp_us(value)
    return format_timestamp_us(us) if us is not None else None


def _report(entity: Any, link: LinkRef) -> StatusReport | None:
    """The report a fetched link makes, or None when unreadable or about another link."""
    if not isinstance(entity, dict):
        return None
    state = link_state(entity.get("state"))
    request_id = entity.get("request_id")
    stated_id = entity.get("id")
    if (state is None or not isinstance(stated_id, str)
            or stated_id.lower() != link.connector_payout_id.lower()):  # UUIDs: any case
        return None
    if request_id is not None and request_id != link.reference:
        return None
    return StatusReport(connector_status=state, reference=reference_of(request_id),
                        connector_payout_id=link.connector_payout_id)


def _state_named(message: str) -> str | None:
    match = _STATE_NAMED.search(message)
    word = match.group(1).lower() if match is not None else None
    return word if word in STATES else None


def _command_error(answer: HttpAnswer, details: dict[str, str | None]
                   ) -> Rejected | Transient | Unknown:
    """A poll's or a cancel's error answer. Neither creates anything; a cancel answered
    5xx may have cancelled the link: Unknown."""
    status = answer.status
    if status in (408, 429):  # refused before anything was done
        return Transient("throttled" if status == 429 else "request_timeout", status,
                         retry_after_s(answer.headers))
    if status >= 500 or status < 400:
        return Unknown("provider_unavailable" if status >= 500 else "unexpected_status", status)
    message = details["message"] or f"HTTP {status} from revolut"
    if status in (401, 403):
        # Reached only after a refreshed token was refused too.
        return Rejected("provider_authentication_failed", message, None, status, details)
    return Rejected("provider_rejected", message, None, status, details)


def _lookup_error(answer: HttpAnswer) -> Transient:
    """A lookup creates nothing and a refused one proves nothing: ask again, never fail."""
    status = answer.status
    if status == 429:
        return Transient("throttled", status, retry_after_s(answer.headers))
    if 400 <= status < 500:
        code = "provider_authentication_failed" if status in (401, 403) else "provider_rejected"
        return Transient(f"lookup_refused:{code}", status)
    return Transient("lookup_failed", status)
