"""Cashfree Payouts **Cashgram** simulator: a local, fault-injecting stand-in for the provider.

Why it exists: the connector must turn each request into exactly one Cashgram, and that
can only be shown against a server that (a) speaks Cashfree's v1 wire format (bearer
tokens from ``/payout/v1/authorize``, the ``{status, subCode, message}`` envelope, 409 on
a reused ``cashgramId``), (b) fails the way networks and gateways do -- above all a
Cashgram created while its response is lost, so the retry meets a 409 -- and (c) lets a
checker count what really exists (``/_sim/cashfree/ledger``).

Run it as its own process: ``python -m streams.devkit.sims.cashfree --port 0`` prints one
line ``SIMULATOR_URL=http://127.0.0.1:<port>`` once listening;
:class:`CashfreeSimulatorProcess` does that from Python. In-process (tests):
``CashfreeSimulator(config, credentials).make_app()``, or :meth:`CashfreeSimulator.add_routes`
to mount it beside other providers in one app. Provider routes live under ``/payout/``,
control routes under ``/_sim/cashfree/``; nothing touches another simulator's ``/v1/...`` or ``/_sim/...``.

Provider API (all JSON; ``Authorization: Bearer <token>`` on everything but authorize):

- ``POST /payout/v1/authorize`` -- headers ``X-Client-Id``/``X-Client-Secret`` →
  ``data{token, expiry}``; bad/missing credentials → 401 ``authentication_failed``.
- ``POST /payout/v1/verifyToken`` -- "Token is valid" or the token error.
- ``POST /payout/v1/createCashgram`` -- 200 ``data{referenceId, cashgramLink}``;
  409 ``cashgram_id_already_exists``; 422 validation codes (below).
- ``GET /payout/v1/getCashgramStatus?cashgramId=`` -- ``data{cashgramStatus, referenceId,
  cashgramId, cashgramLink}``; 404 ``cashgram_not_found``.
- ``POST /payout/v1/deactivateCashgram`` ``{"cashgramId"}`` -- ACTIVE only.

Error envelope: ``{"status":"ERROR","subCode":"<http code>","message":"…","code":"<code>"}``.
``code`` is *our* addition (Cashfree v1 bodies carry only subCode + message; the codes are
the ones its response-code table names) so a connector can branch on a stable string;
a connector must still work from subCode + HTTP status alone. Codes: ``bad_request`` (400,
body not a JSON object), ``authentication_failed`` (401), ``token_invalid`` (token error),
``cashgram_not_found`` (404), ``cashgram_id_already_exists`` (409), 422:
``cashgram_id_missing``, ``cashgram_id_invalid``, ``cashgram_id_length_exceeded``,
``amount_missing``, ``amount_invalid``, ``amount_above_maximum``, ``name_missing``,
``name_invalid``, ``phone_missing``, ``phone_invalid``, ``expiry_date_missing``,
``expiry_date_invalid``, ``email_invalid``, ``remarks_invalid``, ``notifyCustomer_invalid``,
``cashgram_not_active`` (deactivate); faults: ``rate_limit_exceeded`` (429),
``internal_error`` (500), ``service_unavailable`` (503), ``unknown_error`` (520).

Assumptions where Cashfree's docs are silent (each a knob in :class:`CashfreeSimConfig`
when money could depend on it):

1. Token errors (missing, malformed, unknown, expired, revoked -- all alike, as the docs
   say) answer HTTP 403, subCode "403", message "Token is not valid", code
   ``token_invalid`` (one field report shows 403; ``token_error_status=401`` switches).
   Tokens are JWT-shaped but opaque; many may be live at once (a new one does not
   invalidate older ones); lifetime ``token_ttl_s`` (360 s); ``expiry`` is Unix seconds.
2. Errors use the HTTP status named in subCode. Older Cashfree docs say every processed
   request returns HTTP 200 with the outcome in status/subCode:
   ``errors_as_http_200=True`` does that for 4xx envelopes (429/5xx keep their status).
3. ``cashgramId``: ``[A-Za-z0-9_-]``, at most 35 chars (docs also say 36:
   ``cashgram_id_max_len``); case-sensitive (``cashgram_id_case_insensitive``); unique per
   client for ever, even after expiry/deactivation. Validation runs before the duplicate
   check (``duplicate_check_first`` flips it), so a retry whose body turned invalid
   (e.g. ``linkExpiry`` now in the past) gets 422 although the Cashgram exists.
4. ``amount``: a JSON number or a decimal string ("100.50"; ``accept_string_amount``),
   at least 1.00, at most two decimals (a float is judged by its shortest repr, so
   100.5 is fine and 1.005 is not), below 10^12; ``max_amount`` adds
   ``amount_above_maximum``. Booleans are rejected.
5. ``phone``: a string, Indian mobile ``[6-9]`` + 9 digits, optionally prefixed ``+91``,
   ``91`` or ``0``; JSON numbers are rejected.
6. ``name``: 1-100 chars of letters (any script, with its combining marks), spaces, ``.``,
   ``'``, ``-``, at least one letter. ``email``: optional, ``x@y.z``, ≤ 200 chars; ""
   counts as absent. ``remarks``: optional string ≤ 70 chars. ``notifyCustomer``: 0, 1,
   true or false. Unknown fields are ignored.
7. ``linkExpiry``: exactly ``YYYY/MM/DD``, a real date, today..today+30 (``max_link_expiry_days``)
   in India time; the link stays ACTIVE through the end of that day (IST) and reads
   EXPIRED afterwards -- evaluated lazily, on reads, deactivate, ledger, or
   ``POST /_sim/cashfree/expire-due``.
8. Deactivate moves ACTIVE → ``DEACTIVATED`` (``deactivated_status="EXPIRED"`` is the other
   reading); any other status → 422 ``cashgram_not_active`` (not idempotent). The
   success body has no ``data``.
9. getCashgramStatus returns only the four documented data fields.
10. Lifecycle: ACTIVE → PENDING | REDEEMED | EXPIRED | DEACTIVATED; PENDING → REDEEMED |
    FAILED; REDEEMED → REVERSED; the rest are final. Only the control endpoint moves a
    Cashgram (there is no recipient), refusing illegal moves unless ``force``.
11. Webhooks (form-encoded POST to ``webhook_url``): REDEEMED → ``CASHGRAM_REDEEMED``
    {event, cashgramid, referenceId, eventTime, utr}; REVERSED →
    ``CASHGRAM_TRANSFER_REVERSAL`` {event, cashgramid, referenceId, eventTime}; EXPIRED and
    DEACTIVATED → ``CASHGRAM_EXPIRED`` {event, cashgramid, reason}; plus ``signature`` =
    Base64(HMAC-SHA256(values sorted by key, concatenated; key = client secret)).
    ``referenceId`` there is the *transfer's* id (made at redemption), not the Cashgram's;
    ``eventTime`` is ``YYYY-MM-DD HH:MM:SS`` IST. PENDING/FAILED send nothing. Non-2xx
    answers are retried ``webhook_retries`` times (``webhook_retry_ms``, doubling). The
    delivery faults (``webhook_duplicate`` -- alias ``webhook_duplicate_ratio`` --,
    ``webhook_drop``, ``webhook_delay_ms``, ``webhook_forge``: an extra delivery signed
    with another secret or with a field changed after signing, ``webhook_reserialize``:
    the fields in another order and percent-encoding, still validly signed) and the
    records are common.py's :class:`WebhookDispatcher`. Cashfree names no event id.
13. Lifecycle moves for tests and walks: ``POST …/links/{cashgramId}/lifecycle
    {"action", "force"?, "client_id"?}`` with ``pend`` (ACTIVE → PENDING), ``redeem``
    (ACTIVE or PENDING → REDEEMED), ``fail`` (PENDING → FAILED), ``reverse`` (REDEEMED →
    REVERSED), ``expire`` (ACTIVE → EXPIRED), ``deactivate`` (ACTIVE → DEACTIVATED, as the
    API's deactivate); illegal moves answer 409 unless ``force``. ``POST
    …/lifecycle/walk`` and ``GET …/lifecycle/statuses``: common.py's :class:`LinkWalker`
    (paths: processed = REDEEMED, directly or via PENDING; expired; cancelled =
    DEACTIVATED; reversed = REDEEMED → REVERSED; failed and failed_then_processed =
    PENDING → FAILED, as a Cashgram whose transfer failed is not reopened).
12. Credentials scope Cashgrams: another client neither sees nor conflicts with them.
    The ledger is keyed by cashgramId across clients, so one id created in two
    accounts shows as a duplicate (a routing bug for us).

Faults (per create; on other calls only with ``faults_on_reads`` (status, verifyToken),
``faults_on_deactivate``, ``faults_on_auth``): ``error_5xx`` (500/503/520 in the envelope,
502 with a gateway's HTML body; ``error_5xx_after_create_ratio`` of them come *after*
the Cashgram was stored), ``throttle_429`` (``Retry-After: 1`` on ``retry_after_ratio``
of them), ``slow`` (+``slow_ms``), ``timeout_before_create`` (hang ``hang_ms``, create
nothing, then a gateway 504), ``lost_after_create`` (store, then drop the connection).
The lost/after-create faults strike any create that passed validation (a 409 included)
and spare validation failures, like the other simulators.

Control API (plain JSON, no auth): ``GET /_sim/cashfree/health``, ``GET …/ledger[?detail=1]``,
``GET …/stats``, ``POST …/reset {config?, tokens?}``, ``GET|POST …/config``,
``POST …/links/{cashgramId}/status {status, force?, client_id?}``,
``POST …/links/{cashgramId}/lifecycle {action, force?, client_id?}``,
``POST …/tokens/revoke {client_id?}``, ``GET …/webhooks``, ``POST …/webhooks/drain``,
``POST …/lifecycle/walk``, ``GET …/lifecycle/statuses``, ``POST …/expire-due``,
``GET …/csgr/{code}`` (the page behind a cashgramLink). The ledger holds ``links``,
``by_reference`` {cashgramId: [referenceId, …]} (every create, all clients),
``duplicate_references`` (ids created more than once: must stay empty), ``conflicts``
(409s per id), ``by_status``; ``?detail=1`` adds each Cashgram's amount, client and
history. ``clock_offset_s`` moves the simulated clock (token and link expiry, dates).

The hot path (create) stays lean, as it is driven at ~1,000 creates/s on 2 cores: token
auth is one dict lookup, one RNG draw per fault decision, orjson, integer date maths,
dict indexes, no middleware, no access log.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import logging
import math
import os
import random
import re
import signal
import string
import sys
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode

import aiohttp
import orjson
from aiohttp import web

from streams.devkit.sims.common import (
    FAULT_KINDS,
    URL_LINE_PREFIX,
    WEBHOOK_CHECKS,
    LinkWalker,
    RenderSpec,
    SimulatorProcess,
    WebhookDispatcher,
    WebhookSettings,
    _bump,
    _non_negative,
    _probability,
    _Stats,
    add_lifecycle_routes,
    parse_move,
)

log = logging.getLogger("streams.devkit.sims.cashfree")

PROVIDER = "cashfree"
WEBHOOKS = True  # this simulator sends webhooks (the fleet passes it webhook_url)
SIM_PREFIX = "/_sim/cashfree"
API_PREFIX = "/payout/v1"
DEFAULT_CREDENTIALS: dict[str, dict[str, str]] = {
    "CF_TEST_CLIENT_ID": {"client_secret": "cf_test_client_secret"},
}

ACTIVE, PENDING, REDEEMED, FAILED = "ACTIVE", "PENDING", "REDEEMED", "FAILED"
EXPIRED, REVERSED, DEACTIVATED = "EXPIRED", "REVERSED", "DEACTIVATED"
STATUSES = frozenset({ACTIVE, PENDING, REDEEMED, FAILED, EXPIRED, REVERSED, DEACTIVATED})
# legal moves; DEACTIVATED is reachable from ACTIVE through the API (or the control endpoint)
_TRANSITIONS: dict[str, frozenset[str]] = {
    ACTIVE: frozenset({PENDING, REDEEMED, EXPIRED, DEACTIVATED}),
    PENDING: frozenset({REDEEMED, FAILED}),
    REDEEMED: frozenset({REVERSED}),
}
FINAL_STATUSES = frozenset({REDEEMED, FAILED, EXPIRED, REVERSED, DEACTIVATED})  # REDEEMED: reversible
# lifecycle action -> (the statuses it is legal from, the status it moves to; None: the
# configured deactivated_status)
LIFECYCLE_ACTIONS: dict[str, tuple[frozenset[str], str | None]] = {
    "pend": (frozenset({ACTIVE}), PENDING),
    "redeem": (frozenset({ACTIVE, PENDING}), REDEEMED),
    "fail": (frozenset({PENDING}), FAILED),
    "reverse": (frozenset({REDEEMED}), REVERSED),
    "expire": (frozenset({ACTIVE}), EXPIRED),
    "deactivate": (frozenset({ACTIVE}), None),
}
_WEBHOOK_EVENTS = {
    REDEEMED: "CASHGRAM_REDEEMED",
    REVERSED: "CASHGRAM_TRANSFER_REVERSAL",
    EXPIRED: "CASHGRAM_EXPIRED",
    DEACTIVATED: "CASHGRAM_EXPIRED",
}

TOKEN_INVALID_MESSAGE = "Token is not valid"
BAD_CREDENTIALS_MESSAGE = "Invalid clientId and clientSecret combination"
LINK_BASE = "http://csgr.am/"
IST = timezone(timedelta(hours=5, minutes=30))
IST_OFFSET_S = 5 * 3600 + 30 * 60
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAY_S = 86400

MAX_NAME_LEN = 100
MAX_EMAIL_LEN = 200
MAX_REMARKS_LEN = 70
_AMOUNT_CEILING = Decimal(10) ** 12
_ONE_RUPEE = Decimal(1)
_CENT = Decimal("0.01")

_ALNUM = string.ascii_letters + string.digits
_CASHGRAM_ID_RE = re.compile(r"[A-Za-z0-9_-]+")
_PHONE_RE = re.compile(r"(?:\+91|91|0)?[6-9][0-9]{9}")
_DATE_RE = re.compile(r"([0-9]{4})/([0-9]{2})/([0-9]{2})")
_AMOUNT_STR_RE = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,2})?")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_NAME_PUNCT = frozenset(" .'-")
_JSON_HEADERS = {"Content-Type": "application/json"}
_HTML_HEADERS = {"Content-Type": "text/html"}
_JWT_HEADER = base64.urlsafe_b64encode(b'{"typ":"JWT","alg":"HS256"}').rstrip(b"=").decode()
_5XX: dict[int, tuple[str, str]] = {
    500: ("internal_error", "Internal error occurred. Please try again later."),
    503: ("service_unavailable", "Service Unavailable. Please try again later."),
    520: ("unknown_error", "Unknown error occurred. Please try again later."),
}
# what an nginx/ALB in front of the API answers: not Cashfree's envelope, not even JSON
_GATEWAY_HTML = {
    502: b"<html><head><title>502 Bad Gateway</title></head>"
         b"<body><center><h1>502 Bad Gateway</h1></center></body></html>",
    504: b"<html><head><title>504 Gateway Time-out</title></head>"
         b"<body><center><h1>504 Gateway Time-out</h1></center></body></html>",
}
_ENDPOINT_METHODS = {
    f"{API_PREFIX}/authorize": "POST",
    f"{API_PREFIX}/verifyToken": "POST",
    f"{API_PREFIX}/createCashgram": "POST",
    f"{API_PREFIX}/getCashgramStatus": "GET",
    f"{API_PREFIX}/deactivateCashgram": "POST",
}


# --------------------------------------------------------------------------- config


def _flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be a boolean")
    return value


def _int_in(lo: int, hi: int) -> Callable[[str, Any], int]:
    def check(key: str, value: Any) -> int:
        if type(value) is not int or not lo <= value <= hi:
            raise ValueError(f"{key} must be an integer in [{lo}, {hi}]")
        return value

    return check


def _finite(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number")
    return float(value)


def _one_of(*choices: Any) -> Callable[[str, Any], Any]:
    def check(key: str, value: Any) -> Any:
        if value not in choices or isinstance(value, bool):
            raise ValueError(f"{key} must be one of {', '.join(map(str, choices))}")
        return value

    return check


def _optional_amount(key: str, value: Any) -> str | None:
    if value is None:
        return None
    amount = parse_amount(value, accept_string=True)
    if amount is None:
        raise ValueError(f"{key} must be null or an amount in rupees >= 1.00 with at most two decimals")
    return str(amount)


def _optional_seed(key: str, value: Any) -> int | None:
    if value is None:
        return None
    if type(value) is not int:
        raise ValueError(f"{key} must be an integer or null")
    return int(value)


_CONFIG_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "latency_ms": _non_negative,
    "jitter_ms": _non_negative,
    "slow_ms": _non_negative,
    "hang_ms": _non_negative,
    "retry_after_ratio": _probability,
    "error_5xx_after_create_ratio": _probability,
    "faults_on_reads": _flag,
    "faults_on_deactivate": _flag,
    "faults_on_auth": _flag,
    "seed": _optional_seed,
    "token_ttl_s": _non_negative,
    "token_error_status": _one_of(401, 403),
    "errors_as_http_200": _flag,
    "cashgram_id_max_len": _int_in(1, 100),
    "cashgram_id_case_insensitive": _flag,
    "duplicate_check_first": _flag,
    "accept_string_amount": _flag,
    "max_amount": _optional_amount,
    "max_link_expiry_days": _int_in(0, 3650),
    "deactivated_status": _one_of(DEACTIVATED, EXPIRED),
    "clock_offset_s": _finite,
    **WEBHOOK_CHECKS,
}
_CONFIG_ALIASES = {"webhook_duplicate_ratio": "webhook_duplicate"}  # older names still accepted


@dataclass
class CashfreeSimConfig:
    """Behaviour knobs; each is settable at runtime via ``POST /_sim/cashfree/config``."""

    latency_ms: float = 100.0
    jitter_ms: float = 20.0
    faults: dict[str, float] = field(default_factory=lambda: dict.fromkeys(FAULT_KINDS, 0.0))
    slow_ms: float = 2000.0
    hang_ms: float = 30000.0
    retry_after_ratio: float = 0.5
    # share of error_5xx faults on a create that strike after the Cashgram was stored
    error_5xx_after_create_ratio: float = 0.0
    faults_on_reads: bool = False
    faults_on_deactivate: bool = False
    faults_on_auth: bool = False
    seed: int | None = None
    token_ttl_s: float = 360.0
    token_error_status: int = 403
    errors_as_http_200: bool = False
    cashgram_id_max_len: int = 35
    cashgram_id_case_insensitive: bool = False
    duplicate_check_first: bool = False
    accept_string_amount: bool = True
    max_amount: str | None = None  # rupees, decimal string; None = no merchant maximum
    max_link_expiry_days: int = 30
    deactivated_status: str = DEACTIVATED
    # simulated clock = wall clock + offset: lets tests expire tokens and links without sleeping
    clock_offset_s: float = 0.0
    webhook_url: str | None = None
    webhook_retries: int = 2
    webhook_retry_ms: float = 1000.0  # doubling per re-send
    webhook_timeout_s: float = 5.0
    webhook_delay_ms: float = 0.0
    webhook_duplicate: float = 0.0
    webhook_drop: float = 0.0
    webhook_forge: float = 0.0
    webhook_reserialize: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["faults"] = dict(self.faults)
        out["webhook_duplicate_ratio"] = self.webhook_duplicate  # its older name
        return out

    def copy(self) -> CashfreeSimConfig:
        return CashfreeSimConfig(**{**self.__dict__, "faults": dict(self.faults)})

    def apply(self, patch: Mapping[str, Any]) -> None:
        """Validate and apply a partial update; raises ValueError and changes nothing on error.

        Fault probabilities may be flat (``{"error_5xx": 0.1}``) or nested under
        ``faults``; they are mutually exclusive per call, so they must add up to <= 1.
        """
        new = self.copy()
        flat = dict(patch)
        nested = flat.pop("faults", None)
        if nested is not None:
            if not isinstance(nested, Mapping):
                raise ValueError("faults must be an object")
            flat.update(nested)
        for key, value in flat.items():
            key = _CONFIG_ALIASES.get(key, key)
            if key in FAULT_KINDS:
                new.faults[key] = _probability(key, value)
            elif key in _CONFIG_CHECKS:
                setattr(new, key, _CONFIG_CHECKS[key](key, value))
            else:
                raise ValueError(f"unknown config key {key!r}")
        if sum(new.faults.values()) > 1.0 + 1e-9:
            raise ValueError("fault probabilities must add up to at most 1")
        self.__dict__.update(new.__dict__)


def load_credentials(path: str | None = None, env: Mapping[str, str] | None = None) -> dict[str, dict[str, str]]:
    """Credentials ``{client_id: {"client_secret": …}}`` from ``--credentials`` file, else the
    ``SIM_CREDENTIALS`` env JSON (so argv never shows a secret), else the dev default."""
    env = os.environ if env is None else env
    if path:
        raw: Any = orjson.loads(Path(path).read_bytes())
    elif env.get("SIM_CREDENTIALS"):
        raw = orjson.loads(env["SIM_CREDENTIALS"])
    else:
        return {k: dict(v) for k, v in DEFAULT_CREDENTIALS.items()}
    if not isinstance(raw, dict) or not raw:
        raise ValueError("credentials must be a non-empty JSON object {client_id: {client_secret}}")
    out: dict[str, dict[str, str]] = {}
    for client_id, cred in raw.items():
        if not isinstance(cred, dict) or not isinstance(cred.get("client_secret"), str) or not cred["client_secret"]:
            raise ValueError(f"credential {client_id!r} needs a non-empty string client_secret")  # never echo it
        out[str(client_id)] = {"client_secret": cred["client_secret"]}
    return out


# ----------------------------------------------------------------------- validation


class Invalid(NamedTuple):
    """A 422 answer: Cashfree's error code and message."""

    code: str
    message: str


@dataclass(slots=True)
class CashgramRequest:
    """A create body that passed validation, in the simulator's terms."""

    cashgram_id: str
    amount: Decimal
    name: str
    phone: str
    email: str | None
    remarks: str | None
    notify_customer: bool
    link_expiry: str
    expires_at: float  # end of the linkExpiry day in IST, Unix seconds


def ist_day(ts: float) -> int:
    """Days since 1970-01-01 of the India calendar date at Unix time ``ts``."""
    return int((ts + IST_OFFSET_S) // _DAY_S)


def parse_amount(value: Any, *, accept_string: bool) -> Decimal | None:
    """Rupees as Decimal if ``value`` is a valid Cashgram amount, else None."""
    if type(value) is int:
        amount = Decimal(value)
    elif type(value) is float:
        if not math.isfinite(value):
            return None
        amount = Decimal(repr(value))  # shortest repr: 100.5 -> 100.5, 1.005 -> 1.005
    elif isinstance(value, str) and accept_string:
        if not _AMOUNT_STR_RE.fullmatch(value):
            return None
        amount = Decimal(value)
    else:
        return None
    try:
        if amount < _ONE_RUPEE or amount >= _AMOUNT_CEILING or amount != amount.quantize(_CENT):
            return None
    except InvalidOperation:
        return None
    return amount.quantize(_CENT)


def _blank(value: Any) -> bool:
    return value is None or value == ""


def _valid_name(name: Any) -> bool:
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_LEN:
        return False
    has_letter = False
    for ch in name:
        if ch.isalpha():
            has_letter = True
        elif ch not in _NAME_PUNCT and unicodedata.category(ch)[0] != "M":  # M: Indic vowel signs
            return False
    return has_letter


def validate_create(body: Any, now: float, cfg: CashfreeSimConfig) -> CashgramRequest | Invalid:
    """Field checks of a createCashgram body, first failure wins, in a fixed order.

    ``body`` is known to be a dict. Pure: the duplicate check lives in the simulator.
    """
    cid = body.get("cashgramId")
    if _blank(cid):
        return Invalid("cashgram_id_missing", "cashgramId is missing")
    if not isinstance(cid, str) or not _CASHGRAM_ID_RE.fullmatch(cid):
        return Invalid(
            "cashgram_id_invalid", "cashgramId can only contain alphanumeric characters, underscore and hyphen"
        )
    if len(cid) > cfg.cashgram_id_max_len:
        return Invalid(
            "cashgram_id_length_exceeded", f"cashgramId cannot exceed {cfg.cashgram_id_max_len} characters"
        )
    raw_amount = body.get("amount")
    if _blank(raw_amount):
        return Invalid("amount_missing", "amount is missing")
    amount = parse_amount(raw_amount, accept_string=cfg.accept_string_amount)
    if amount is None:
        return Invalid("amount_invalid", "amount should be a number >= 1.00 with at most two decimals")
    if cfg.max_amount is not None and amount > Decimal(cfg.max_amount):
        return Invalid("amount_above_maximum", f"amount exceeds the maximum allowed amount of Rs {cfg.max_amount}")
    name = body.get("name")
    if _blank(name):
        return Invalid("name_missing", "name is missing")
    if not _valid_name(name):
        return Invalid("name_invalid", "name can only contain alphabets, spaces, dots, apostrophes and hyphens")
    phone = body.get("phone")
    if _blank(phone):
        return Invalid("phone_missing", "phone is missing")
    if not isinstance(phone, str) or not _PHONE_RE.fullmatch(phone):
        return Invalid("phone_invalid", "phone should be a valid 10 digit Indian mobile number")
    expiry = body.get("linkExpiry")
    if _blank(expiry):
        return Invalid("expiry_date_missing", "linkExpiry is missing")
    expires_at = _expiry_end(expiry, now, cfg.max_link_expiry_days)
    if expires_at is None:
        return Invalid(
            "expiry_date_invalid",
            f"linkExpiry should be a date in the format YYYY/MM/DD, not in the past "
            f"and within {cfg.max_link_expiry_days} days",
        )
    email = body.get("email")
    if not _blank(email) and (
        not isinstance(email, str) or len(email) > MAX_EMAIL_LEN or not _EMAIL_RE.fullmatch(email)
    ):
        return Invalid("email_invalid", "email should be a valid email address")
    remarks = body.get("remarks")
    if remarks is not None and (not isinstance(remarks, str) or len(remarks) > MAX_REMARKS_LEN):
        return Invalid("remarks_invalid", f"remarks should be a string of at most {MAX_REMARKS_LEN} characters")
    notify = body.get("notifyCustomer", 0)
    if notify not in (0, 1) or (type(notify) is not int and type(notify) is not bool):
        return Invalid("notifyCustomer_invalid", "notifyCustomer can only be 0 or 1")
    return CashgramRequest(
        cashgram_id=cid,
        amount=amount,
        name=name,
        phone=phone,
        email=email or None,
        remarks=remarks,
        notify_customer=bool(notify),
        link_expiry=expiry,
        expires_at=expires_at,
    )


def _expiry_end(value: Any, now: float, max_days: int) -> float | None:
    """End of the ``YYYY/MM/DD`` day in IST as Unix seconds, if the date is allowed."""
    if not isinstance(value, str):
        return None
    m = _DATE_RE.fullmatch(value)
    if m is None:
        return None
    try:
        day = date(int(m[1]), int(m[2]), int(m[3])).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    today = ist_day(now)
    if not today <= day <= today + max_days:
        return None
    return float((day + 1) * _DAY_S - IST_OFFSET_S)


def sign_webhook(fields: Mapping[str, str], secret: str) -> str:
    """Cashfree v1 (Cashgram) webhook signature: Base64(HMAC-SHA256) over the values of all
    fields but ``signature``, sorted by key and concatenated, keyed with the client secret."""
    message = "".join(str(fields[k]) for k in sorted(fields) if k != "signature")
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


_FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}
_FORM_VARIANTS = 3


def _percent_all(text: str) -> str:
    """Every byte but ASCII letters and digits as a lower-case %xx escape."""
    return "".join(chr(b) if chr(b).isalnum() and b < 128 else f"%{b:02x}" for b in text.encode())


def form_body(fields: Mapping[str, str], variant: int = 0) -> bytes:
    """The fields form-encoded: variant 0 in their order with ``+`` for spaces (what
    Cashfree sends); every other variant the same fields in another order (sorted,
    reversed, signature first) and percent-encoding (``%20``, every byte escaped in lower
    case), never equal to variant 0."""
    canonical = urlencode(fields).encode()
    if variant <= 0:
        return canonical
    first = (variant - 1) % _FORM_VARIANTS
    for kind in (first, *(k for k in range(_FORM_VARIANTS) if k != first)):  # the first that differs
        if kind == 0:
            text = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in sorted(fields.items()))
        elif kind == 1:
            text = urlencode(list(reversed(list(fields.items()))))
        else:
            ordered = sorted(fields.items(), key=lambda kv: kv[0] != "signature")
            text = "&".join(f"{_percent_all(k)}={_percent_all(v)}" for k, v in ordered)
        if text.encode() != canonical:
            return text.encode()
    return canonical  # one field of letters and digits: no other way to write it


def render_webhook(fields: Mapping[str, str], spec: RenderSpec) -> tuple[bytes, Mapping[str, str]]:
    """One delivery of a Cashgram webhook: the form with its ``signature`` field."""
    signature = sign_webhook(fields, spec.secret.decode()) if spec.secret else ""
    sent = dict(fields)
    if spec.tamper:  # changed after signing: the signature no longer matches
        sent["event"] = "CASHGRAM_REDEEMED" if sent.get("event") != "CASHGRAM_REDEEMED" else "CASHGRAM_EXPIRED"
    sent["signature"] = signature
    return form_body(sent, spec.variant), _FORM_HEADERS


def walk_path(path: str, rng: random.Random) -> list[str]:
    """A walk path (common.WALK_PATHS) as Cashgram moves, from ACTIVE."""
    via_pending = ["pend"] if rng.random() < 0.5 else []
    if path == "processed":
        return [*via_pending, "redeem"]
    if path == "expired":
        return ["expire"]
    if path == "cancelled":
        return ["deactivate"]
    if path == "reversed":
        return [*via_pending, "redeem", "reverse"]
    return ["pend", "fail"]  # failed, failed_then_processed: a failed Cashgram is not reopened


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _ist_text(ts: float) -> str:
    return datetime.fromtimestamp(ts, IST).strftime("%Y-%m-%d %H:%M:%S")


# ----------------------------------------------------------------------- simulator


class _Cashgram:
    """One stored Cashgram: what the API exposes plus what only the simulator needs."""

    __slots__ = (
        "cashgram_id", "client_id", "reference_id", "link", "status", "amount", "name", "phone",
        "email", "remarks", "notify_customer", "link_expiry", "expires_at", "created_at",
        "transfer_reference_id", "history",
    )

    def __init__(self, req: CashgramRequest, client_id: str, reference_id: int, link: str, now: float) -> None:
        self.cashgram_id = req.cashgram_id
        self.client_id = client_id
        self.reference_id = reference_id
        self.link = link
        self.status = ACTIVE
        self.amount = req.amount
        self.name = req.name
        self.phone = req.phone
        self.email = req.email
        self.remarks = req.remarks
        self.notify_customer = req.notify_customer
        self.link_expiry = req.link_expiry
        self.expires_at = req.expires_at
        self.created_at = now
        self.transfer_reference_id: int | None = None
        self.history: list[tuple[str, float, str]] = [(ACTIVE, now, "created")]

    def status_data(self) -> dict[str, Any]:
        return {
            "cashgramStatus": self.status,
            "referenceId": self.reference_id,
            "cashgramId": self.cashgram_id,
            "cashgramLink": self.link,
        }

    def to_json(self) -> dict[str, Any]:
        """Full simulator view (control endpoints, ledger detail)."""
        return {
            "cashgramId": self.cashgram_id,
            "clientId": self.client_id,
            "referenceId": self.reference_id,
            "cashgramLink": self.link,
            "cashgramStatus": self.status,
            "amount": str(self.amount),
            "name": self.name,
            "linkExpiry": self.link_expiry,
            "notifyCustomer": self.notify_customer,
            "createdAt": int(self.created_at),
            "expiresAt": int(self.expires_at),
            "transferReferenceId": self.transfer_reference_id,
            "history": [[status, int(at), why] for status, at, why in self.history],
        }


class CashfreeSimulator:
    """State + handlers. Build the app with :meth:`make_app` (or mount via :meth:`add_routes`)."""

    def __init__(
        self,
        config: CashfreeSimConfig | None = None,
        credentials: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.config = config or CashfreeSimConfig()
        self._initial_config = self.config.copy()
        creds = credentials if credentials is not None else DEFAULT_CREDENTIALS
        self._secrets: dict[str, bytes] = {cid: c["client_secret"].encode() for cid, c in creds.items()}
        self._rand = random.Random()  # ids, jitter, token nonces: need not be reproducible
        self._fault_rng = random.Random(self.config.seed)
        self._token_key = os.urandom(32)
        # token -> (client_id, expires_at); survives reset unless asked, like a real token
        self.tokens: dict[str, tuple[str, float]] = {}
        self._hanging = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.webhooks = WebhookDispatcher(self.config.seed)
        self.walker = LinkWalker(self)
        self._by_link_id: dict[str, _Cashgram] = {}  # referenceId -> Cashgram, built when asked
        self._reset_state()

    # -- state ------------------------------------------------------------------
    def _reset_state(self) -> None:
        # (client_id, id key) -> cashgram; the key is lower-cased in case-insensitive mode
        self.cashgrams: dict[tuple[str, str], _Cashgram] = {}
        self.by_reference: dict[str, list[_Cashgram]] = {}  # raw cashgramId -> every create, all clients
        self.by_code: dict[str, _Cashgram] = {}
        self.conflicts: dict[str, int] = {}
        self.stats = _Stats()
        self._next_reference_id = 1_000_000 + self._rand.randrange(1_000_000)
        self._fault_rng.seed(self.config.seed)
        self._by_link_id = {}
        self.webhooks.reset(self.config.seed)

    @property
    def webhook_log(self) -> list[dict[str, Any]]:
        """Every webhook delivery record (common.WebhookDispatcher)."""
        return list(self.webhooks.deliveries)

    def reset(self, *, config: bool = False, tokens: bool = False) -> None:
        """Forget all Cashgrams, counters and webhook records (optionally config and tokens)."""
        if config:
            self.config = self._initial_config.copy()
        if tokens:
            self.tokens.clear()
        self._reset_state()

    def now(self) -> float:
        """The simulated clock (wall clock + ``clock_offset_s``)."""
        return time.time() + self.config.clock_offset_s

    def revoke_tokens(self, client_id: str | None = None) -> int:
        """Invalidate every live token (or one client's); returns how many were dropped."""
        if client_id is None:
            count = len(self.tokens)
            self.tokens.clear()
        else:
            doomed = [t for t, (c, _) in self.tokens.items() if c == client_id]
            for t in doomed:
                del self.tokens[t]
            count = len(doomed)
        if count:
            _bump(self.stats.events, "tokens_revoked")
        return count

    def sweep_expired(self) -> int:
        """Apply lazy expiry to every Cashgram now (sends the expiry webhooks); returns how many."""
        now, count = self.now(), 0
        for cg in self.cashgrams.values():
            if cg.status == ACTIVE and now >= cg.expires_at:
                self._transition(cg, EXPIRED, cg.expires_at, "link expiry passed")
                count += 1
        return count

    def ledger(self, *, detail: bool = False) -> dict[str, Any]:
        """What exists at the "provider": creates per cashgramId (our reference) and by status."""
        self.sweep_expired()
        by_status: dict[str, int] = {}
        for cg in self.cashgrams.values():
            _bump(by_status, cg.status)
        out: dict[str, Any] = {
            "provider": PROVIDER,
            "links": len(self.cashgrams),
            "by_reference": {cid: [cg.reference_id for cg in cgs] for cid, cgs in self.by_reference.items()},
            # must stay empty: Cashfree refuses a reused id, so >1 means a sim bug or a re-route
            "duplicate_references": {cid: len(cgs) for cid, cgs in self.by_reference.items() if len(cgs) > 1},
            "conflicts": dict(self.conflicts),
            "by_status": by_status,
        }
        if detail:
            out["cashgrams"] = {
                cid: [cg.to_json() for cg in cgs] for cid, cgs in self.by_reference.items()
            }
        return out

    async def wait_idle(self) -> None:
        """Return once no handler is inside a ``timeout_before_create`` hang (test sync point)."""
        await self._idle.wait()

    async def drain_webhooks(self, timeout: float | None = None) -> bool:
        """Wait until every scheduled webhook delivery (with its retries) has finished."""
        return await self.webhooks.drain(timeout)

    async def aclose(self) -> None:
        """Stop webhook deliveries and close their HTTP session."""
        await self.webhooks.aclose()

    # -- lifecycle -------------------------------------------------------------------
    def move(self, cg: _Cashgram, action: str, *, force: bool = False, why: str = "sim") -> str | None:
        """One lifecycle move (:data:`LIFECYCLE_ACTIONS`) with its webhook; returns why it
        is refused (an illegal move without ``force``), else None."""
        sources, target = LIFECYCLE_ACTIONS[action]
        now = self.now()
        self._refresh(cg, now)
        if target is None:
            target, why = self.config.deactivated_status, "deactivated"
        if cg.status not in sources and not force:
            return f"illegal move {action!r}: {cg.status} -> {target} (legal from {', '.join(sorted(sources))})"
        self._transition(cg, target, now, "forced" if force and cg.status not in sources else why)
        if action == "deactivate":
            _bump(self.stats.events, "cashgrams_deactivated")
        return None

    def _link(self, link_id: str) -> _Cashgram:
        cg = self._by_link_id.get(link_id)
        if cg is None:
            self._by_link_id = {str(c.reference_id): c for c in self.cashgrams.values()}
            cg = self._by_link_id[link_id]
        return cg

    # LifecycleSubject (common.LinkWalker): our reference is the cashgramId, the link id
    # Cashfree's referenceId
    def walk_candidates(self, references: Sequence[str] | None) -> list[tuple[str, str]]:
        now = self.now()
        if references is None:
            return [(cg.cashgram_id, str(cg.reference_id)) for cg in self.cashgrams.values()
                    if self._refresh(cg, now).status not in FINAL_STATUSES]
        return [(ref, str(cg.reference_id)) for ref in dict.fromkeys(references)
                for cg in self.by_reference.get(ref, ())]

    def walk_steps(self, link_id: str, path: str, rng: random.Random) -> list[str]:
        return walk_path(path, rng)

    def walk_legal(self, link_id: str, action: str) -> bool:
        cg = self._link(link_id)
        return self._refresh(cg, self.now()).status in LIFECYCLE_ACTIONS[action][0]

    def walk_apply(self, link_id: str, action: str) -> bool:
        return self.move(self._link(link_id), action, why="walk") is None

    def walk_status(self, link_id: str) -> str:
        return self._refresh(self._link(link_id), self.now()).status

    def lifecycle_links(self) -> list[tuple[str, str, str, bool]]:
        now = self.now()
        return [(cg.cashgram_id, str(cg.reference_id), self._refresh(cg, now).status,
                 cg.status in FINAL_STATUSES) for cg in self.cashgrams.values()]

    # -- helpers ------------------------------------------------------------------
    def _key(self, client_id: str, cashgram_id: str) -> tuple[str, str]:
        return (client_id, cashgram_id.lower() if self.config.cashgram_id_case_insensitive else cashgram_id)

    def _new_code(self) -> str:
        while True:
            code = "".join(self._rand.choices(_ALNUM, k=7))
            if code not in self.by_code:
                return code

    def _respond(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> web.Response:
        _bump(self.stats.statuses, str(status))
        return web.Response(
            body=orjson.dumps(payload), status=status,
            headers={**_JSON_HEADERS, **headers} if headers else _JSON_HEADERS,
        )

    def _error(self, sub_code: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
        """Cashfree's error envelope; 4xx ride on HTTP 200 in ``errors_as_http_200`` mode."""
        http = 200 if self.config.errors_as_http_200 and sub_code < 429 else sub_code
        payload = {"status": "ERROR", "subCode": str(sub_code), "message": message, "code": code}
        return self._respond(http, payload, headers)

    def _token_error(self) -> web.Response:
        return self._error(self.config.token_error_status, "token_invalid", TOKEN_INVALID_MESSAGE)

    def _not_found(self, cashgram_id: str) -> web.Response:
        return self._error(404, "cashgram_not_found", f"Cashgram with id {cashgram_id} does not exists")

    def _authenticate(self, request: web.Request) -> str | None:
        """Client id of a live bearer token, else None (reason counted in stats.events)."""
        header = request.headers.get("Authorization")
        if header is None:
            _bump(self.stats.events, "token_missing")
            return None
        if header.startswith("Bearer "):
            token = header[7:].strip()
        else:
            scheme, _, token = header.strip().partition(" ")
            if scheme.lower() != "bearer":
                token = ""
            token = token.strip()
        entry = self.tokens.get(token) if token else None
        if entry is None:
            _bump(self.stats.events, "token_unknown")
            return None
        if self.now() >= entry[1]:
            _bump(self.stats.events, "token_expired")
            return None
        return entry[0]

    def _issue_token(self, client_id: str, now: float) -> tuple[str, float]:
        expires_at = now + self.config.token_ttl_s
        if len(self.tokens) > 4096:  # keep the table small under token churn
            for t in [t for t, (_, exp) in self.tokens.items() if exp <= now]:
                del self.tokens[t]
        claims = {"subject": "payout", "clientId": client_id, "iat": int(now), "exp": int(expires_at),
                  "jti": f"{self._rand.getrandbits(64):016x}"}
        signing = _JWT_HEADER + "." + _b64url(orjson.dumps(claims))
        token = signing + "." + _b64url(hmac.new(self._token_key, signing.encode(), hashlib.sha256).digest())
        self.tokens[token] = (client_id, expires_at)
        _bump(self.stats.events, "tokens_issued")
        return token, expires_at

    async def _latency(self) -> None:
        cfg = self.config
        delay = cfg.latency_ms + (self._rand.random() * cfg.jitter_ms if cfg.jitter_ms else 0.0)
        if delay > 0:
            await asyncio.sleep(delay / 1000.0)

    def _any_fault(self) -> bool:
        return any(self.config.faults.values())

    def _draw_fault(self) -> str | None:
        faults = self.config.faults
        r = self._fault_rng.random()
        acc = 0.0
        for kind in FAULT_KINDS:
            p = faults[kind]
            if p:
                acc += p
                if r < acc:
                    if kind != "lost_after_create":  # counted when actually dropped
                        _bump(self.stats.faults, kind)
                    return kind
        return None

    @staticmethod
    def _client_gone(request: web.Request) -> bool:
        transport = request.transport
        return transport is None or transport.is_closing()

    def _gone(self) -> web.Response:
        """Answer for a request whose client already left: nothing done, nothing delivered."""
        _bump(self.stats.events, "client_gone")
        _bump(self.stats.statuses, "abandoned")
        return web.Response(status=499)

    def _drop(self, request: web.Request) -> web.Response:
        """Close the connection without answering: the work is done, the response is lost."""
        _bump(self.stats.statuses, "dropped")
        _bump(self.stats.faults, "lost_after_create")
        transport = request.transport
        if transport is not None:
            transport.abort()
        return web.Response(status=499)  # aiohttp swallows the failed write

    def _server_error(self) -> web.Response:
        status = self._fault_rng.choice((500, 502, 503, 520))
        if status in _GATEWAY_HTML:
            _bump(self.stats.statuses, str(status))
            return web.Response(status=status, body=_GATEWAY_HTML[status], headers=_HTML_HEADERS)
        code, message = _5XX[status]
        return self._error(status, code, message)

    async def _apply_fault(self, request: web.Request, fault: str) -> web.Response | None:
        """Carry out a fault that strikes before any work; None means "go on" (slow)."""
        cfg = self.config
        if fault == "slow":
            await asyncio.sleep(cfg.slow_ms / 1000.0)
            return None
        if fault == "error_5xx":
            return self._server_error()
        if fault == "throttle_429":
            headers = {"Retry-After": "1"} if self._fault_rng.random() < cfg.retry_after_ratio else None
            return self._error(429, "rate_limit_exceeded", "Too many requests", headers)
        # timeout_before_create: hang so the client gives up; never do the work
        self._hanging += 1
        self._idle.clear()
        try:
            await asyncio.sleep(cfg.hang_ms / 1000.0)
        except asyncio.CancelledError:  # a runner with handler_cancellation=True
            _bump(self.stats.events, "client_gone")
            raise
        finally:
            self._hanging -= 1
            if not self._hanging:
                self._idle.set()
        if self._client_gone(request):
            return self._gone()
        _bump(self.stats.statuses, "504")
        return web.Response(status=504, body=_GATEWAY_HTML[504], headers=_HTML_HEADERS)

    async def _prologue(
        self, request: web.Request, endpoint: str, faults: bool
    ) -> tuple[str | None, str | None, web.Response | None]:
        """Shared start of token-authenticated calls: count, latency, auth, pre-work faults.

        Returns (client_id, fault drawn, early answer).
        """
        _bump(self.stats.requests, endpoint)
        await self._latency()
        client_id = self._authenticate(request)
        if client_id is None:
            return None, None, self._token_error()
        fault = None
        if faults and self._any_fault():
            fault = self._draw_fault()
            if fault is not None and fault != "lost_after_create":
                early = await self._apply_fault(request, fault)
                if early is not None:
                    return None, fault, early
        return client_id, fault, None

    async def _json_object(self, request: web.Request) -> dict[str, Any] | None:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return None
        return body if isinstance(body, dict) else None

    def _transition(self, cg: _Cashgram, status: str, at: float, why: str) -> None:
        """Move a Cashgram and send the webhook Cashfree sends for that move (if any)."""
        cg.status = status
        cg.history.append((status, at, why))
        if status in (PENDING, REDEEMED) and cg.transfer_reference_id is None:
            cg.transfer_reference_id = self._next_reference_id
            self._next_reference_id += 1
        event = _WEBHOOK_EVENTS.get(status)
        if event is None:
            return
        fields: dict[str, str] = {"event": event, "cashgramid": cg.cashgram_id}
        if status == REDEEMED:
            fields.update(referenceId=str(cg.transfer_reference_id), eventTime=_ist_text(at),
                          utr=str(self._rand.randrange(10**11, 10**12)))
        elif status == REVERSED:
            fields.update(referenceId=str(cg.transfer_reference_id), eventTime=_ist_text(at))
        else:
            fields["reason"] = "Cashgram deactivated" if why == "deactivated" else "Cashgram expired"
        secret = self._secrets.get(cg.client_id) or b""
        signed = {**fields, "signature": sign_webhook(fields, secret.decode()) if secret else ""}
        self.webhooks.emit(
            WebhookSettings.of(self.config), event=event, link_id=str(cg.reference_id),
            reference=cg.cashgram_id, payload=fields, secret=secret, render=render_webhook,
            counters=self.stats.events, extra={"cashgramid": cg.cashgram_id, "status": status, "fields": signed},
        )

    async def _close(self, app: web.Application) -> None:
        await self.aclose()

    def _refresh(self, cg: _Cashgram, now: float) -> _Cashgram:
        """Lazy expiry: an ACTIVE Cashgram past the end of its linkExpiry day reads EXPIRED."""
        if cg.status == ACTIVE and now >= cg.expires_at:
            self._transition(cg, EXPIRED, cg.expires_at, "link expiry passed")
        return cg

    # -- provider API ---------------------------------------------------------------
    async def authorize(self, request: web.Request) -> web.Response:
        _bump(self.stats.requests, "authorize")
        await self._latency()
        fault = None
        if self.config.faults_on_auth and self._any_fault():
            fault = self._draw_fault()
            if fault is not None and fault != "lost_after_create":
                early = await self._apply_fault(request, fault)
                if early is not None:
                    return early
        client_id = request.headers.get("X-Client-Id")
        secret = request.headers.get("X-Client-Secret")
        expected = self._secrets.get(client_id) if client_id else None
        if (client_id is None or expected is None or secret is None
                or not hmac.compare_digest(expected, secret.encode())):
            _bump(self.stats.events, "auth_failed")
            return self._error(401, "authentication_failed", BAD_CREDENTIALS_MESSAGE)
        token, expires_at = self._issue_token(client_id, self.now())
        if fault == "lost_after_create":
            return self._drop(request)
        return self._respond(200, {
            "status": "SUCCESS", "subCode": "200", "message": "Token generated",
            "data": {"token": token, "expiry": int(expires_at)},
        })

    async def verify_token(self, request: web.Request) -> web.Response:
        client_id, fault, early = await self._prologue(request, "verifyToken", self.config.faults_on_reads)
        if early is not None:
            return early
        if fault == "lost_after_create":
            return self._drop(request)
        return self._respond(200, {"status": "SUCCESS", "subCode": "200", "message": "Token is valid"})

    async def create_cashgram(self, request: web.Request) -> web.Response:
        stats, cfg = self.stats, self.config
        _bump(stats.requests, "createCashgram")
        raw = await request.read()
        await self._latency()
        client_id = self._authenticate(request)
        if client_id is None:
            return self._token_error()
        fault = None
        deferred: web.Response | None = None
        if self._any_fault():
            fault = self._draw_fault()
            if fault is not None and fault != "lost_after_create":
                if fault == "error_5xx" and self._fault_rng.random() < cfg.error_5xx_after_create_ratio:
                    fault = "error_5xx_after_create"  # answer 5xx only after the work is done
                else:
                    early = await self._apply_fault(request, fault)
                    if early is not None:
                        return early
        if self._client_gone(request):
            return self._gone()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            return self._error(400, "bad_request", "Request body should be a JSON object")

        existing = None
        cid = body.get("cashgramId")
        if cfg.duplicate_check_first and isinstance(cid, str):
            existing = self.cashgrams.get(self._key(client_id, cid))
        if existing is None:
            parsed = validate_create(body, self.now(), cfg)
            if isinstance(parsed, Invalid):
                return self._error(422, parsed.code, parsed.message)
            cid = parsed.cashgram_id
            key = self._key(client_id, cid)
            existing = self.cashgrams.get(key)
        if fault == "error_5xx_after_create":
            deferred = self._server_error()
            _bump(stats.events, "error_5xx_after_create")

        if existing is not None:
            assert isinstance(cid, str)  # checked first, or the validated cashgramId
            _bump(self.conflicts, cid)
            _bump(stats.events, "conflicts_409")
            if fault == "lost_after_create":
                return self._drop(request)
            if deferred is not None:
                return deferred
            return self._error(409, "cashgram_id_already_exists", f"Cashgram with id {cid} already exists")

        assert isinstance(parsed, CashgramRequest) and isinstance(cid, str)  # validated above
        code = self._new_code()
        cg = _Cashgram(parsed, client_id, self._next_reference_id, LINK_BASE + code, self.now())
        self._next_reference_id += 1
        self.cashgrams[key] = cg
        self.by_code[code] = cg
        created = self.by_reference.get(cid)
        if created is None:
            self.by_reference[cid] = [cg]
        else:
            created.append(cg)
        _bump(stats.events, "cashgrams_created")
        if fault == "lost_after_create":
            return self._drop(request)
        if deferred is not None:
            return deferred
        return self._respond(200, {
            "status": "SUCCESS", "subCode": "200", "message": "Cashgram Created",
            "data": {"referenceId": cg.reference_id, "cashgramLink": cg.link},
        })

    async def get_status(self, request: web.Request) -> web.Response:
        client_id, fault, early = await self._prologue(request, "getCashgramStatus", self.config.faults_on_reads)
        if early is not None:
            return early
        assert client_id is not None  # no early answer means authenticated
        if fault == "lost_after_create":
            return self._drop(request)
        cid = request.query.get("cashgramId")
        if not cid:
            return self._error(422, "cashgram_id_missing", "cashgramId is missing")
        cg = self.cashgrams.get(self._key(client_id, cid))
        if cg is None:
            return self._not_found(cid)
        self._refresh(cg, self.now())
        return self._respond(200, {
            "status": "SUCCESS", "subCode": "200", "message": "Cashgram details retrieved",
            "data": cg.status_data(),
        })

    async def deactivate(self, request: web.Request) -> web.Response:
        client_id, fault, early = await self._prologue(request, "deactivateCashgram", self.config.faults_on_deactivate)
        if early is not None:
            return early
        assert client_id is not None  # no early answer means authenticated
        body = await self._json_object(request)
        if body is None:
            return self._error(400, "bad_request", "Request body should be a JSON object")
        cid = body.get("cashgramId")
        if _blank(cid) or not isinstance(cid, str):
            return self._error(422, "cashgram_id_missing", "cashgramId is missing")
        cg = self.cashgrams.get(self._key(client_id, cid))
        if cg is None:
            return self._not_found(cid)
        now = self.now()
        self._refresh(cg, now)
        if cg.status != ACTIVE:
            return self._error(
                422, "cashgram_not_active", f"Cashgram with id {cid} is not active, current status {cg.status}"
            )
        self._transition(cg, self.config.deactivated_status, now, "deactivated")
        _bump(self.stats.events, "cashgrams_deactivated")
        if fault == "lost_after_create":
            return self._drop(request)
        return self._respond(200, {
            "status": "SUCCESS", "subCode": "200",
            "message": f"Cashgram with id - {cg.cashgram_id} successfully deactivated!",
        })

    async def not_found(self, request: web.Request) -> web.Response:
        _bump(self.stats.requests, "unknown")
        allowed = _ENDPOINT_METHODS.get(request.path)
        if allowed is not None:
            return self._error(405, "method_not_allowed", f"Method {request.method} does not exist for this URL",
                               {"Allow": allowed})
        return self._error(404, "not_found", "Requested URL not found")

    # -- /_sim/cashfree/ control -----------------------------------------------------
    @staticmethod
    def _plain(payload: Any, status: int = 200) -> web.Response:
        return web.Response(status=status, body=orjson.dumps(payload), headers=_JSON_HEADERS)

    async def _control_body(self, request: web.Request) -> dict[str, Any] | None:
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        return body if isinstance(body, dict) else None

    async def sim_health(self, request: web.Request) -> web.Response:
        return self._plain({"ok": True, "provider": PROVIDER})

    async def sim_ledger(self, request: web.Request) -> web.Response:
        return self._plain(self.ledger(detail=request.query.get("detail") in ("1", "true")))

    async def sim_stats(self, request: web.Request) -> web.Response:
        now = self.now()
        live = sum(1 for _, exp in self.tokens.values() if exp > now)
        return self._plain({**self.stats.to_json(), "links": len(self.cashgrams), "tokens_live": live})

    async def sim_reset(self, request: web.Request) -> web.Response:
        opts = await self._control_body(request)
        if opts is None:
            return self._plain({"error": "body must be a JSON object"}, 400)
        self.reset(config=bool(opts.get("config")), tokens=bool(opts.get("tokens")))
        return self._plain({"ok": True})

    async def sim_config(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            patch = await self._control_body(request)
            try:
                if patch is None:
                    raise ValueError("config must be a JSON object")
                self.config.apply(patch)
            except ValueError as exc:
                return self._plain({"error": str(exc)}, 400)
            if "seed" in patch:
                self._fault_rng.seed(self.config.seed)
                self.webhooks.reseed(self.config.seed)
        return self._plain(self.config.to_json())

    def _control_cashgram(self, request: web.Request, body: Mapping[str, Any]) -> _Cashgram | web.Response:
        """The Cashgram a control call names (``cashgram_id`` in the path, ``client_id``
        in the body when the id exists for several clients), or the error answer."""
        cid = request.match_info["cashgram_id"]
        client_id = body.get("client_id")
        matches = [cg for cg in self.by_reference.get(cid, ()) if client_id is None or cg.client_id == client_id]
        if not matches:
            return self._plain({"error": "no such cashgram"}, 404)
        if len(matches) > 1:
            return self._plain({"error": "cashgramId exists for several clients: give client_id"}, 409)
        return matches[0]

    async def sim_lifecycle(self, request: web.Request) -> web.Response:
        """``POST …/links/{cashgramId}/lifecycle {"action", "force"?, "client_id"?}``: one move."""
        body = await self._control_body(request)
        if body is None:
            return self._plain({"error": "body must be a JSON object"}, 400)
        found = self._control_cashgram(request, body)
        if isinstance(found, web.Response):
            return found
        try:
            action, force = parse_move(body)
            if action not in LIFECYCLE_ACTIONS:
                raise ValueError(f"action must be one of {', '.join(LIFECYCLE_ACTIONS)}")
        except ValueError as exc:
            return self._plain({"error": str(exc)}, 400)
        refused = self.move(found, action, force=force)
        if refused is not None:
            return self._plain({"error": refused, "cashgram": found.to_json()}, 409)
        return self._plain(found.to_json())

    async def sim_set_status(self, request: web.Request) -> web.Response:
        """Move a Cashgram through its lifecycle (there is no recipient to do it)."""
        body = await self._control_body(request)
        if body is None:
            return self._plain({"error": "body must be a JSON object"}, 400)
        found = self._control_cashgram(request, body)
        if isinstance(found, web.Response):
            return found
        matches = [found]
        status = body.get("status")
        if status not in STATUSES:
            return self._plain({"error": f"status must be one of {sorted(STATUSES)}"}, 400)
        cg, now = matches[0], self.now()
        self._refresh(cg, now)
        if not body.get("force") and status not in _TRANSITIONS.get(cg.status, ()):
            return self._plain({"error": f"illegal transition {cg.status} -> {status}", "cashgram": cg.to_json()}, 409)
        self._transition(cg, status, now, "forced" if body.get("force") else "sim")
        return self._plain(cg.to_json())

    async def sim_revoke_tokens(self, request: web.Request) -> web.Response:
        body = await self._control_body(request)
        if body is None:
            return self._plain({"error": "body must be a JSON object"}, 400)
        return self._plain({"revoked": self.revoke_tokens(body.get("client_id"))})

    async def sim_expire_due(self, request: web.Request) -> web.Response:
        return self._plain({"expired": self.sweep_expired()})

    async def sim_link_page(self, request: web.Request) -> web.Response:
        """What a recipient opening the cashgramLink would see, as plain text."""
        cg = self.by_code.get(request.match_info["code"])
        if cg is None:
            return web.Response(status=404, text="no such cashgram\n")
        self._refresh(cg, self.now())
        return web.Response(text=f"cashgram {cg.cashgram_id}: {cg.status}, INR {cg.amount} for {cg.name}\n")

    # -- wiring -------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        """Mount provider + control routes on ``app`` (so one process can serve several sims).

        Registers a catch-all only under ``/payout/``; nothing under ``/v1/`` or bare ``/_sim/``.
        """
        app[CASHFREE_SIMULATOR_KEY] = self
        app.on_cleanup.append(self._close)
        r = app.router
        r.add_post(f"{API_PREFIX}/authorize", self.authorize)
        r.add_post(f"{API_PREFIX}/verifyToken", self.verify_token)
        r.add_post(f"{API_PREFIX}/createCashgram", self.create_cashgram)
        r.add_get(f"{API_PREFIX}/getCashgramStatus", self.get_status, allow_head=False)
        r.add_post(f"{API_PREFIX}/deactivateCashgram", self.deactivate)
        r.add_route("*", "/payout/{tail:.*}", self.not_found)
        r.add_get(f"{SIM_PREFIX}/health", self.sim_health, allow_head=False)
        r.add_get(f"{SIM_PREFIX}/ledger", self.sim_ledger, allow_head=False)
        r.add_get(f"{SIM_PREFIX}/stats", self.sim_stats, allow_head=False)
        r.add_post(f"{SIM_PREFIX}/reset", self.sim_reset)
        r.add_route("GET", f"{SIM_PREFIX}/config", self.sim_config)
        r.add_route("POST", f"{SIM_PREFIX}/config", self.sim_config)
        r.add_post(SIM_PREFIX + "/links/{cashgram_id}/status", self.sim_set_status)
        r.add_post(SIM_PREFIX + "/links/{cashgram_id}/lifecycle", self.sim_lifecycle)
        r.add_post(f"{SIM_PREFIX}/tokens/revoke", self.sim_revoke_tokens)
        add_lifecycle_routes(r, SIM_PREFIX, self.walker, self.webhooks)
        r.add_post(f"{SIM_PREFIX}/expire-due", self.sim_expire_due)
        r.add_get(SIM_PREFIX + "/csgr/{code}", self.sim_link_page, allow_head=False)

    def make_app(self) -> web.Application:
        app = web.Application()
        self.add_routes(app)
        return app


CASHFREE_SIMULATOR_KEY = web.AppKey("cashfree_simulator", CashfreeSimulator)


# ----------------------------------------------------------------------------- CLI


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m streams.devkit.sims.cashfree",
        description="Cashfree Payouts Cashgram simulator with fault injection and a ledger.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--latency-ms", type=float, default=100.0)
    p.add_argument("--jitter-ms", type=float, default=20.0, help="uniform extra 0..jitter per call")
    p.add_argument("--credentials", help="JSON file {client_id: {client_secret}}; else env SIM_CREDENTIALS")
    p.add_argument("--token-ttl-s", type=float, default=360.0, help="bearer token lifetime")
    for kind in FAULT_KINDS:
        p.add_argument("--" + kind.replace("_", "-"), dest=kind, type=float, default=0.0,
                       metavar="P", help=f"probability of fault {kind} per create call")
    p.add_argument("--slow-ms", type=float, default=2000.0, help="extra latency of the 'slow' fault")
    p.add_argument("--hang-ms", type=float, default=30000.0, help="hang of the 'timeout_before_create' fault")
    p.add_argument("--retry-after-ratio", type=float, default=0.5, help="share of 429s carrying Retry-After: 1")
    p.add_argument("--faults-on-reads", action="store_true", help="also inject faults into status/verifyToken")
    p.add_argument("--webhook-url", default=None, help="where to POST Cashgram webhooks")
    p.add_argument("--seed", type=int, default=None, help="makes fault decisions reproducible")
    p.add_argument("--config-json", default=None,
                   help='any other CashfreeSimConfig keys as JSON, e.g. \'{"errors_as_http_200": true}\'')
    p.add_argument("--log-level", default="INFO")
    return p


def config_from_args(args: argparse.Namespace) -> CashfreeSimConfig:
    cfg = CashfreeSimConfig()
    patch: dict[str, Any] = {
        "latency_ms": args.latency_ms,
        "jitter_ms": args.jitter_ms,
        "token_ttl_s": args.token_ttl_s,
        "faults": {kind: getattr(args, kind) for kind in FAULT_KINDS},
        "slow_ms": args.slow_ms,
        "hang_ms": args.hang_ms,
        "retry_after_ratio": args.retry_after_ratio,
        "faults_on_reads": args.faults_on_reads,
        "webhook_url": args.webhook_url,
        "seed": args.seed,
    }
    if args.config_json:
        extra = json.loads(args.config_json)
        if not isinstance(extra, dict):
            raise ValueError("--config-json must be a JSON object")
        # Fault kinds given flat in the JSON override the flags' (zero) defaults; merged
        # nested, the flags' zeros won and the fleet's faults were silently dropped.
        faults = dict(patch["faults"])
        faults.update({kind: extra.pop(kind) for kind in FAULT_KINDS if kind in extra})
        nested = extra.pop("faults", None)
        if isinstance(nested, dict):
            faults.update(nested)
        patch.update(extra)
        patch["faults"] = faults
    cfg.apply(patch)
    return cfg


async def start_server(sim: CashfreeSimulator, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, int]:
    """Start listening; returns the runner (``await runner.cleanup()`` to stop) and the port.

    Handler cancellation stays off, as in every simulator's server, so a client
    leaving mid-request never interrupts a create half-way.
    """
    runner = web.AppRunner(sim.make_app(), access_log=None, shutdown_timeout=1.0, handler_cancellation=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True)
    await site.start()
    return runner, runner.addresses[0][1]


async def serve(sim: CashfreeSimulator, host: str, port: int) -> None:
    """Serve until SIGTERM/SIGINT; print the URL line once listening."""
    runner, bound_port = await start_server(sim, host, port)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    if ":" in shown_host:
        shown_host = f"[{shown_host}]"
    sys.stdout.write(f"{URL_LINE_PREFIX}http://{shown_host}:{bound_port}\n")
    sys.stdout.flush()
    log.info("listening on %s:%s; client ids %s; config %s",  # ids only: secrets are never logged
             host, bound_port, sorted(sim._secrets), orjson.dumps(sim.config.to_json()).decode())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s cashfree-sim %(levelname)s %(message)s")
    try:
        config = config_from_args(args)
        credentials = load_credentials(args.credentials)
    except (ValueError, OSError) as exc:
        print(f"cashfree simulator: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(CashfreeSimulator(config, credentials), args.host, args.port))
    return 0


# ------------------------------------------------------------------ process control


class CashfreeSimulatorProcess(SimulatorProcess):
    """The Cashfree simulator as a child process; start/stop/URL handling is :class:`SimulatorProcess`'s.

    Credentials ``{client_id: {"client_secret": …}}`` travel via ``SIM_CREDENTIALS``
    (never argv); any :class:`CashfreeSimConfig` key can be given in ``config``, the
    webhook knobs also as ``webhook_url`` and ``webhook`` (common.WEBHOOK_KNOBS).
    """

    control_prefix = SIM_PREFIX
    health_path = SIM_PREFIX + "/health"

    def __init__(
        self,
        *,
        config: Mapping[str, Any] | None = None,
        credentials: Mapping[str, Mapping[str, str]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        python: str = sys.executable,
        startup_timeout: float = 15.0,
        stop_timeout: float = 5.0,
        stderr: Any = None,
        webhook_url: str | None = None,
        webhook: Mapping[str, Any] | None = None,
    ) -> None:
        patch = {"latency_ms": 0.0, "jitter_ms": 0.0, **(config or {}), **(webhook or {})}
        if webhook_url is not None:
            patch["webhook_url"] = webhook_url
        CashfreeSimConfig().apply(patch)  # fail here, not in the child
        argv = [python, "-m", "streams.devkit.sims.cashfree", "--host", host, "--port", str(port),
                "--latency-ms", "0", "--jitter-ms", "0", "--config-json", json.dumps(patch)]
        super().__init__(argv=argv, credentials=credentials, startup_timeout=startup_timeout,
                         stop_timeout=stop_timeout, stderr=stderr)

    def ledger(self, *, detail: bool = False) -> dict[str, Any]:
        return self._call("GET", SIM_PREFIX + "/ledger" + ("?detail=1" if detail else ""))

    def stats(self) -> dict[str, Any]:
        return self._call("GET", SIM_PREFIX + "/stats")

    def reset(self, *, config: bool = False, tokens: bool = False) -> None:
        self._call("POST", SIM_PREFIX + "/reset", {"config": config, "tokens": tokens})

    def revoke_tokens(self, client_id: str | None = None) -> int:
        revoked: int = self._call("POST", SIM_PREFIX + "/tokens/revoke", {"client_id": client_id})["revoked"]
        return revoked

    def set_status(self, cashgram_id: str, status: str, *, force: bool = False) -> dict[str, Any]:
        return self._call("POST", f"{SIM_PREFIX}/links/{cashgram_id}/status", {"status": status, "force": force})

    def links_by_reference(self) -> dict[str, list[str]]:
        """Our reference (the cashgramId we choose) -> Cashfree's referenceIds, as strings."""
        by_reference: dict[str, list[Any]] = self.ledger().get("by_reference", {})
        return {ref: [str(i) for i in ids] for ref, ids in by_reference.items()}


def fleet_process(*, latency_ms: float, jitter_ms: float, faults: Mapping[str, float] | None,
                  hang_ms: float | None, seed: int | None, **options: Any) -> CashfreeSimulatorProcess:
    """This simulator as one of the fleet's; ``options`` are :class:`CashfreeSimConfig` keys
    (and ``webhook``: a dict of webhook knobs)."""
    config: dict[str, Any] = {"latency_ms": latency_ms, "jitter_ms": jitter_ms, **(faults or {})}
    if hang_ms is not None:
        config["hang_ms"] = hang_ms
    if seed is not None:
        config["seed"] = seed
    options = dict(options)
    webhook = options.pop("webhook", None) or {}
    return CashfreeSimulatorProcess(config={**config, **options, **webhook})


async def fetch_ledger(url: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """Ledger of a running Cashfree simulator (``url`` = its base URL), from async code."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async with session.get(url.rstrip("/") + SIM_PREFIX + "/ledger") as resp:
            resp.raise_for_status()
            ledger: dict[str, Any] = orjson.loads(await resp.read())
            return ledger


if __name__ == "__main__":
    sys.exit(main())
