"""Revolut Business payout-links simulator: a local, fault-injecting stand-in for the provider.

Why it exists: the processor promises exactly one link per request, and the Revolut
connector can only be shown to keep that promise against something that (a) behaves like
the Business API on the wire (``/api/1.0`` paths, the refresh-token flow and 40-minute
bearer tokens, ``request_id`` idempotency, ``{"code", "message"}`` errors, lazy expiry,
webhooks), (b) fails the way networks and gateways do (5xx, 429, hangs, and -- worst -- a
link created but the response lost) and (c) lets a checker count what really exists
(``/_sim/revolut/ledger``: links per ``request_id``, duplicates visible).

Run it as its own process: ``python -m streams.devkit.sims.revolut --port 0`` prints one
line ``SIMULATOR_URL=http://127.0.0.1:<port>`` once listening (:class:`RevolutSimulatorProcess`
does that from Python, and :func:`fleet_process` for the fleet). In-process (tests):
``RevolutSimulator(config, credentials).make_app()``, or :func:`start_server`. Every
control endpoint lives under ``/_sim/revolut/`` and every API route under ``/api/1.0/``,
so :meth:`RevolutSimulator.add_routes` can put this provider beside the others in one
server (add it before any catch-all route).

The hot path (create) stays lean -- it is driven at ~1,000 creates/s on 2 cores: access
tokens are looked up by the exact ``Authorization`` header in one dict, one RNG draw per
fault decision, orjson, dict indexes, no middleware, no access log, webhooks only when a
``webhook_url`` is configured.

Control (JSON): ``GET health``, ``GET ledger``, ``GET stats``, ``POST reset`` (``{"config":
bool, "tokens": bool}``), ``GET|POST config``, ``POST links/{id}/status`` (``{"state":
...}``: forced, from any state), ``POST links/{id}/lifecycle`` (``{"action", "force"?}``:
a legal move, 409 otherwise), ``POST tokens/revoke`` (``{"client_id"?, "access_tokens":
true, "refresh_token": true|false}``), ``GET|POST clock`` (``{"advance_s": n}``), ``GET
webhooks``, ``POST webhooks/drain``, ``POST lifecycle/walk``, ``GET lifecycle/statuses``
-- all under ``/_sim/revolut/``.

Lifecycle moves (``links/{id}/lifecycle``; the recipient's claim flow has no API, so
these stand for it): ``activate`` (created -> active), ``approve`` (awaiting -> active),
``reject`` (awaiting -> cancelled), ``claim`` (active -> processing), ``process``
(processing -> processed), ``fail`` (processing or created -> failed), ``expire``
(created/awaiting/active -> expired), ``cancel`` (active/awaiting -> cancelled, as the
API's cancel). Walk paths: processed = claim, process; expired; cancelled; reversed,
failed and failed_then_processed = claim, fail (Revolut has no reversal and documents no
way back from ``failed``).

What providers.md or Revolut's published API reference states is implemented as stated:
the create/list/fetch/cancel paths and fields, ``P1D``..``P7D`` expiry (default
``P7D``), ``reference`` 1-100 chars, ``limit`` <= 1000 (default 100), newest-first lists
paged by ``created_before``, the eight states, 201 on create, 204 on cancel, error codes
3000 (bad format / invalid JSON), 3009 (required field missing), 3006 (404 resource not
found), ``url`` present only on active links, £1-£2,500 (or equivalent) per link, webhook v2 event names
``PayoutLinkCreated`` / ``PayoutLinkStateChanged`` and the ``Revolut-Signature``
(``v1=`` hex HMAC-SHA256 of ``v1.{timestamp}.{raw body}``) and
``Revolut-Request-Timestamp`` headers, 3 webhook retries 10 minutes apart.

Assumptions where the reference is silent (each one a choice; the money-relevant ones are
knobs in :class:`RevolutSimConfig`, settable at runtime via ``POST /_sim/revolut/config``):

* Auth. ``POST /api/1.0/auth/token`` takes only ``grant_type=refresh_token`` (the
  one-off ``authorization_code`` consent step is not simulated). ``client_id`` is
  required in the form. The ``client_assertion`` is a JWT signed with the client's key in
  reality; the simulator accepts any non-empty assertion for a known
  ``client_id``/``refresh_token`` pair, and with ``strict_assertion`` it decodes (never
  verifies) the JWT and checks ``alg`` RS256, ``sub`` == client_id, ``aud`` ==
  ``https://revolut.com``, a non-empty ``iss`` and an unexpired ``exp``. Token-endpoint
  errors follow RFC 6749 section 5.2 (``{"error": "invalid_grant", "error_description":
  ...}``; 400 ``invalid_request`` / ``unsupported_grant_type`` / ``invalid_grant``, 401
  ``invalid_client``). ``expires_in`` is ``token_ttl_s`` (default 2399, as Revolut
  answers). A refresh leaves earlier access tokens valid until they expire
  (``refresh_revokes_previous`` flips that); the refresh token itself does not rotate.
* Every other call without a live token: 401 ``{"code": 9001, "message": "The request
  should be authorized."}`` (message seen from the real API; the code is ours).
* Infrastructure errors: 429 ``{"code": 429, "message": "Too many requests"}`` with
  ``Retry-After: 1`` on a share of them; 500 and 503 answer JSON ``{"code": <status>,
  ...}``, while 502 and 504 answer an HTML page as a gateway would -- a connector must
  not need a JSON error body.
* Create validation is strict: unknown fields are rejected (``reject_unknown_fields``),
  ``amount`` must be a JSON number (a string is a 3000), fields are checked in a fixed
  order and the first failure is reported as ``Value '<v>' is not in correct format for
  field '<field>'`` (plus a reason) or ``Required '<field>' is missing``. ``null`` counts
  as missing. ``counterparty_name`` is 1-100 chars and ``request_id`` 1-40 chars (the
  Transfers API's limit). ``account_id`` must be a UUID (3000) and one of the
  credentials' accounts (else 400 code 3000 naming ``account_id``); the account's
  currency is not modelled. ``transfer_reason_code`` must be one of the documented codes.
* Amount: decimals are counted on the shortest round-trip form of the number (``10.50``
  and ``10.5`` are the same JSON double) against the ISO-4217 exponent of the currency
  table below (JPY 0, KWD/BHD/OMR 3, others 2; other currencies are rejected); the
  £1-£2,500 bounds (``min_amount_gbp``/``max_amount_gbp``) are converted with the rough,
  fixed rates of that table. The response echoes ``amount`` as a JSON float.
* ``expiry_period``: ``PnW``, ``PnD`` and ``T`` hours/minutes/seconds are understood
  (``PT36H`` is fine); years/months are rejected; bounds P1D..P7D inclusive.
* Response fields: those of the documented example (``id`` UUID, ``state``,
  ``created_at``, ``updated_at``, ``counterparty_name``, ``save_counterparty`` (required in
  the schema, absent from the examples: we send it), ``request_id``, ``expiry_date``,
  ``payout_methods`` (default ``["revolut", "bank_account"]``), ``account_id``,
  ``amount``, ``currency``, ``url`` (active links only, ``link_base_url`` + 11 chars),
  ``reference``, ``transfer_reason_code`` when given); ``counterparty_id`` and
  ``transaction_id`` appear once a link is processing/processed. Timestamps are
  ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, strictly increasing per simulator.
* Initial state: ``initial_state`` (default ``active``; ``awaiting`` models an approval
  workflow -- such a 201 carries no ``url`` -- and ``created`` a link whose amount is not
  yet blocked). Insufficient funds (``insufficient_funds_above``, in the link's currency)
  either creates the link in state ``failed`` (``insufficient_funds_as="failed_state"``,
  the default: the docs describe ``failed`` as "couldn't be generated due to a failure
  during transaction booking") or answers 400 code 3000 (``"error"``).
* Idempotency (``honour_request_id``, default on): scoped per ``client_id``. A repeat with
  the same ``request_id`` and the same parameters (compared after defaults are applied,
  amounts as decimals, ``payout_methods`` as a set) returns the same link in its current
  state with status ``replay_status`` (default 201: a Spring handler annotated 201 answers
  201 whatever it returns; set 200 to check the connector accepts both). A repeat with
  different parameters: 409 ``{"code": 3010, ...}`` naming ``request_id``. Failed
  validations reserve nothing. ``request_id_ttl_s`` (default: forever) makes the
  provider forget a key. With ``honour_request_id`` off every create makes a new link.
* Lists: unknown query parameters are ignored (there is no ``request_id`` filter -- a
  connector must match it client-side); ``state`` may repeat or be comma-separated;
  ``created_before`` is ISO 8601 (naive means UTC), exclusive.
* Fetch/cancel: a non-UUID id is 400 code 3000, an unknown id (or another client's) 404
  code 3006. Cancel answers 204 from ``active``/``awaiting`` only; any other state
  (including an already cancelled link) is 400 ``{"code": 3020, ...}``.
* Expiry is lazy: ``created``/``awaiting``/``active`` links past ``expiry_date`` read as
  ``expired`` (``updated_at`` = ``expiry_date``) on the next read of them (fetch, list,
  cancel, ledger), which is also when their webhook is sent. The simulator's clock can be
  moved forward (``/_sim/revolut/clock``) to reach expiry and token lifetimes in tests.
* Webhooks (only with ``webhook_url``): body ``{"event", "timestamp", "data"}``;
  ``PayoutLinkCreated`` carries the whole link, ``PayoutLinkStateChanged`` ``{id,
  request_id, old_state, new_state}``. Sent for creates (also when the create's response
  is then lost), cancels, forced states and observed expiries; retried ``webhook_retries``
  times ``webhook_retry_interval_s`` apart (alias ``webhook_retry_ms``) on a non-2xx or no
  answer; the delivery faults (``webhook_duplicate``, ``webhook_drop``,
  ``webhook_delay_ms``, ``webhook_forge``, ``webhook_reserialize``) and records are
  common.py's :class:`WebhookDispatcher`; Revolut's webhooks carry no event id. The
  signature timestamp is wall-clock milliseconds (not the simulator's clock), so a
  receiver's tolerance check works after the clock was advanced. The v2 registration
  API (``/api/2.0/webhooks``) is not simulated: the URL is simulator config.
* Faults apply to creates; to fetch and list only with ``faults_on_reads``; to the token
  endpoint only with ``faults_on_auth``; never to cancel.
* Not modelled: token scopes (so the documented 403 ``{"code": 9002}`` never happens),
  account balances and currencies (see ``insufficient_funds_above``), sandbox-only rules
  (``card`` unavailable), the recipient's claim flow (use the force-state endpoint).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import bisect
import hashlib
import hmac
import logging
import math
import os
import random
import re
import secrets
import signal
import string
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from aiohttp import web

from streams.devkit.sims.common import (
    _JSON_HEADERS,
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
    json_body,
    json_response,
    parse_move,
    tamper_json,
)

log = logging.getLogger("streams.devkit.sims.revolut")

PROVIDER = "revolut"
WEBHOOKS = True  # this simulator sends webhooks (the fleet passes it webhook_url)
API_PREFIX = "/api/1.0"
SIM_PREFIX = "/_sim/revolut"
CREDENTIALS_ENV = "SIM_REVOLUT_CREDENTIALS"
WEBHOOK_SECRET_ENV = "SIM_REVOLUT_WEBHOOK_SECRET"
DEFAULT_CREDENTIALS: dict[str, dict[str, Any]] = {
    "sim_revolut_client": {
        "refresh_token": "oa_sand_sim_refresh_demo",
        "account_ids": ["8f2d3a4b-6c1e-4f7a-9b0d-2e5c7a9f1b3d"],
    },
}
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_AUDIENCE = "https://revolut.com"

STATES: tuple[str, ...] = (
    "created", "failed", "awaiting", "active", "expired", "cancelled", "processing", "processed",
)
_STATE_SET = frozenset(STATES)
CANCELLABLE_STATES = frozenset({"active", "awaiting"})
EXPIRING_STATES = frozenset({"created", "awaiting", "active"})
INITIAL_STATES: tuple[str, ...] = ("active", "awaiting", "created")
FINAL_STATES = frozenset({"processed", "expired", "cancelled", "failed"})
# lifecycle action -> (the states it is legal from, the state it moves to)
LIFECYCLE_ACTIONS: dict[str, tuple[frozenset[str], str]] = {
    "activate": (frozenset({"created"}), "active"),
    "approve": (frozenset({"awaiting"}), "active"),
    "reject": (frozenset({"awaiting"}), "cancelled"),
    "claim": (frozenset({"active"}), "processing"),
    "process": (frozenset({"processing"}), "processed"),
    "fail": (frozenset({"created", "processing"}), "failed"),
    "expire": (EXPIRING_STATES, "expired"),
    "cancel": (CANCELLABLE_STATES, "cancelled"),
}
PAYOUT_METHODS = frozenset({"revolut", "bank_account", "card"})
DEFAULT_PAYOUT_METHODS: tuple[str, ...] = ("revolut", "bank_account")
TRANSFER_REASON_CODES = frozenset({
    "advertising", "advisor_fees", "business_insurance", "construction", "delivery", "education",
    "family", "fund_investment", "goods", "homesend", "hotel", "exports", "insurance_claims",
    "insurance_premium", "loan_repayment", "medical", "office", "other_fees", "personal_transfer",
    "property_purchase", "property_rental", "royalties", "services", "share_investment", "tax",
    "transfer", "transportation", "travel", "utilities",
})
CREATE_FIELDS = frozenset({
    "counterparty_name", "save_counterparty", "request_id", "account_id", "amount", "currency",
    "reference", "payout_methods", "expiry_period", "transfer_reason_code",
})
# currency -> (ISO-4217 exponent, rough units per GBP for the £1-£2,500 bounds). Kept apart
# from streams.money on purpose: the simulator is an independent oracle for the connector's
# conversion, so a wrong exponent there must not be mirrored here.
CURRENCIES: dict[str, tuple[int, Decimal]] = {
    "GBP": (2, Decimal(1)), "EUR": (2, Decimal("1.17")), "USD": (2, Decimal("1.30")),
    "CHF": (2, Decimal("1.10")), "PLN": (2, Decimal("5.00")), "SEK": (2, Decimal("13.5")),
    "NOK": (2, Decimal("13.5")), "DKK": (2, Decimal("8.70")), "CZK": (2, Decimal("29")),
    "HUF": (2, Decimal("470")), "RON": (2, Decimal("5.80")), "BGN": (2, Decimal("2.28")),
    "AUD": (2, Decimal("2.00")), "NZD": (2, Decimal("2.20")), "CAD": (2, Decimal("1.80")),
    "SGD": (2, Decimal("1.75")), "HKD": (2, Decimal("10.2")), "JPY": (0, Decimal("195")),
    "KWD": (3, Decimal("0.40")), "BHD": (3, Decimal("0.49")), "OMR": (3, Decimal("0.50")),
}
MIN_EXPIRY_S = 24 * 3600
MAX_EXPIRY_S = 7 * 24 * 3600
COUNTERPARTY_NAME_MAX = 100
REQUEST_ID_MAX = 40
REFERENCE_MAX = 100
LIST_LIMIT_MAX = 1000
LIST_LIMIT_DEFAULT = 100

# error codes: 3000/3006/3009 are Revolut's documented ones; the rest are ours
E_FORMAT = 3000
E_NOT_FOUND = 3006
E_REQUIRED = 3009
E_REQUEST_ID_CONFLICT = 3010
E_STATE = 3020
E_UNAUTHORIZED = 9001

_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_DURATION_RE = re.compile(r"P(?:(\d+)W)?(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")
_ALNUM = string.ascii_letters + string.digits
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNAUTHORIZED_BODY = orjson.dumps({"code": E_UNAUTHORIZED, "message": "The request should be authorized."})
_HTML_HEADERS = {"Content-Type": "text/html; charset=utf-8"}
_GATEWAY_PAGES = {
    502: b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>\n",
    504: b"<html><head><title>504 Gateway Time-out</title></head><body><center><h1>504 Gateway Time-out</h1></center></body></html>\n",
}
_JSON_5XX = {500: "Internal server error", 503: "Service temporarily unavailable"}


# --------------------------------------------------------------------------- config


@dataclass
class RevolutSimConfig:
    """Behaviour knobs; every one is also settable at runtime via ``POST /_sim/revolut/config``."""

    latency_ms: float = 100.0
    jitter_ms: float = 20.0
    faults: dict[str, float] = field(default_factory=lambda: dict.fromkeys(FAULT_KINDS, 0.0))
    slow_ms: float = 2000.0
    hang_ms: float = 30000.0
    retry_after_ratio: float = 0.5
    faults_on_reads: bool = False
    faults_on_auth: bool = False
    seed: int | None = None
    # auth
    token_ttl_s: float = 2399.0
    refresh_revokes_previous: bool = False
    strict_assertion: bool = False
    # creates
    honour_request_id: bool = True
    request_id_ttl_s: float | None = None
    replay_status: int = 201
    reject_unknown_fields: bool = True
    initial_state: str = "active"
    insufficient_funds_above: float | None = None
    insufficient_funds_as: str = "failed_state"
    min_amount_gbp: float = 1.0
    max_amount_gbp: float = 2500.0
    link_base_url: str = "https://business.revolut.com/p/"
    # webhooks
    webhook_url: str | None = None
    webhook_signing_secret: str = "wsk_sim_revolut_demo"
    webhook_retries: int = 3
    webhook_retry_interval_s: float = 600.0
    webhook_timeout_s: float = 5.0
    webhook_delay_ms: float = 0.0
    webhook_duplicate: float = 0.0
    webhook_drop: float = 0.0
    webhook_forge: float = 0.0
    webhook_reserialize: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """Current knobs; the webhook signing secret is masked (this is served and logged)."""
        out = {k: v for k, v in self.__dict__.items() if k != "faults"}
        out["faults"] = dict(self.faults)
        out["webhook_signing_secret"] = "***"
        out["webhook_retry_ms"] = self.webhook_retry_interval_s * 1000.0  # the common name
        return out

    def copy(self) -> RevolutSimConfig:
        return RevolutSimConfig(**{**self.__dict__, "faults": dict(self.faults)})

    def apply(self, patch: Mapping[str, Any]) -> None:
        """Validate and apply a partial update; raises ValueError and changes nothing on error.

        Fault probabilities may be flat (``{"error_5xx": 0.1}``) or nested (``{"faults":
        {...}}``); they are mutually exclusive per request, so they must add up to <= 1.
        """
        new = self.copy()
        flat = dict(patch)
        nested = flat.pop("faults", None)
        if nested is not None:
            if not isinstance(nested, Mapping):
                raise ValueError("faults must be an object")
            flat.update(nested)
        for key, value in flat.items():
            if key in FAULT_KINDS:
                new.faults[key] = _probability(key, value)
                continue
            if key == "webhook_retry_ms":  # the common knob: the interval in milliseconds
                new.webhook_retry_interval_s = _non_negative(key, value) / 1000.0
                continue
            check = _CONFIG_CHECKS.get(key)
            if check is None:
                raise ValueError(f"unknown config key {key!r}")
            if key == "webhook_signing_secret" and value == "***":
                continue  # the masked value read back from GET: keep the secret
            setattr(new, key, check(key, value))
        if sum(new.faults.values()) > 1.0 + 1e-9:
            raise ValueError("fault probabilities must add up to at most 1")
        if new.min_amount_gbp > new.max_amount_gbp:
            raise ValueError("min_amount_gbp must not exceed max_amount_gbp")
        self.__dict__.update(new.__dict__)


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be a boolean")
    return value


def _positive(key: str, value: Any) -> float:
    number = _non_negative(key, value)
    if number <= 0:
        raise ValueError(f"{key} must be a positive number")
    return number


def _optional_non_negative(key: str, value: Any) -> float | None:
    return None if value is None else _non_negative(key, value)


def _one_of(*choices: Any) -> Any:
    def check(key: str, value: Any) -> Any:
        if isinstance(value, bool) or value not in choices:
            raise ValueError(f"{key} must be one of {', '.join(map(str, choices))}")
        return value
    return check


def _optional_int(key: str, value: Any) -> int | None:
    if value is not None and type(value) is not int:
        raise ValueError(f"{key} must be an integer or null")
    return value



def _https_url(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("https://") or len(value) <= len("https://"):
        raise ValueError(f"{key} must be an https:// URL")
    return value



def _secret(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a non-empty string")
    return value


_CONFIG_CHECKS: dict[str, Any] = {
    "latency_ms": _non_negative, "jitter_ms": _non_negative, "slow_ms": _non_negative,
    "hang_ms": _non_negative, "retry_after_ratio": _probability, "faults_on_reads": _bool,
    "faults_on_auth": _bool, "seed": _optional_int, "token_ttl_s": _positive,
    "refresh_revokes_previous": _bool, "strict_assertion": _bool, "honour_request_id": _bool,
    "request_id_ttl_s": _optional_non_negative, "replay_status": _one_of(200, 201),
    "reject_unknown_fields": _bool, "initial_state": _one_of(*INITIAL_STATES),
    "insufficient_funds_above": _optional_non_negative,
    "insufficient_funds_as": _one_of("failed_state", "error"),
    "min_amount_gbp": _non_negative, "max_amount_gbp": _non_negative, "link_base_url": _https_url,
    "webhook_signing_secret": _secret, "webhook_retry_interval_s": _non_negative,
    # the common knobs; webhook_retry_ms is accepted too, as the interval in milliseconds
    **{key: check for key, check in WEBHOOK_CHECKS.items() if key != "webhook_retry_ms"},
}


def sign_webhook(body: bytes, timestamp: str, secret: str | bytes) -> str:
    """``Revolut-Signature``: ``v1=`` + hex HMAC-SHA256 of ``v1.{timestamp}.{raw body}``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "v1=" + hmac.new(key, b"v1." + timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def render_webhook(payload: Any, spec: RenderSpec) -> tuple[bytes, dict[str, str]]:
    """One attempt of a webhook delivery: the body and Revolut's headers, signed now."""
    body = json_body(payload, spec.variant)
    timestamp = str(time.time_ns() // 1_000_000)
    signature = sign_webhook(body, timestamp, spec.secret)
    if spec.tamper:  # changed after signing: the signature no longer matches
        body = json_body(tamper_json(payload), spec.variant)
    return body, {"Content-Type": "application/json", "Revolut-Request-Timestamp": timestamp,
                  "Revolut-Signature": signature}


def walk_path(state: str, path: str) -> list[str]:
    """A walk path (common.WALK_PATHS) as Revolut moves, from ``state``."""
    pre = {"created": ["activate"], "awaiting": ["approve"]}.get(state, [])
    if path == "processed":
        return [*pre, "claim", "process"]
    if path == "expired":
        return [*pre, "expire"]
    if path == "cancelled":
        return [*pre, "cancel"]
    return [*pre, "claim", "fail"]  # reversed, failed, failed_then_processed


def load_credentials(path: str | None = None, env: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Credentials from ``--credentials`` file, else ``SIM_REVOLUT_CREDENTIALS`` env JSON, else the dev default.

    Shape: ``{client_id: {"refresh_token": str, "account_ids": [uuid, ...]}}``.
    """
    env = os.environ if env is None else env
    if path:
        raw: Any = orjson.loads(Path(path).read_bytes())
    elif env.get(CREDENTIALS_ENV):
        raw = orjson.loads(env[CREDENTIALS_ENV])
    else:
        raw = DEFAULT_CREDENTIALS
    return normalise_credentials(raw)


def normalise_credentials(raw: Any) -> dict[str, dict[str, Any]]:
    """Validate a credentials mapping; errors name the client id only, never a token."""
    if not isinstance(raw, Mapping) or not raw:
        raise ValueError("credentials must be a non-empty JSON object {client_id: {...}}")
    out: dict[str, dict[str, Any]] = {}
    for client_id, cred in raw.items():
        accounts = cred.get("account_ids") if isinstance(cred, Mapping) else None
        if (
            not isinstance(cred, Mapping)
            or not isinstance(cred.get("refresh_token"), str)
            or not cred["refresh_token"]
            or not isinstance(accounts, Sequence)
            or isinstance(accounts, str)
            or not accounts
            or not all(isinstance(a, str) and _UUID_RE.fullmatch(a) for a in accounts)
        ):
            raise ValueError(f"credential {client_id!r} needs a refresh_token and a non-empty list of UUID account_ids")
        out[str(client_id)] = {"refresh_token": cred["refresh_token"], "account_ids": [a.lower() for a in accounts]}
    return out


# ----------------------------------------------------------------------- validation


class ApiError(Exception):
    """A Revolut-style error answer: HTTP status plus the ``{"code", "message"}`` body."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class CreateParams(NamedTuple):
    """A validated create request with defaults applied."""

    request_id: str
    counterparty_name: str
    account_id: str
    amount: Decimal
    currency: str
    reference: str
    payout_methods: tuple[str, ...]
    expiry_s: int
    save_counterparty: bool
    transfer_reason_code: str | None

    def fingerprint(self) -> tuple[Any, ...]:
        """What a repeat with the same request_id must match (order of methods irrelevant)."""
        return (*self[1:6], frozenset(self.payout_methods), *self[7:])


def _show(value: Any) -> str:
    """A client value for an error message: JSON-ish, and short (never a whole body)."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = orjson.dumps(value).decode()
        except TypeError:
            text = str(value)
    return text if len(text) <= 64 else text[:61] + "..."


def _bad(field_name: str, value: Any, why: str = "") -> ApiError:
    message = f"Value '{_show(value)}' is not in correct format for field '{field_name}'"
    return ApiError(400, E_FORMAT, f"{message}: {why}" if why else message)


def _missing(field_name: str) -> ApiError:
    return ApiError(400, E_REQUIRED, f"Required '{field_name}' is missing")


def _text(body: Mapping[str, Any], name: str, max_len: int) -> str:
    value = body.get(name)
    if value is None:
        raise _missing(name)
    if not isinstance(value, str) or not 1 <= len(value) <= max_len:
        raise _bad(name, value, f"must be a string of 1 to {max_len} characters")
    return value


def parse_amount(value: Any) -> Decimal | None:
    """A JSON number as a Decimal of its shortest round-trip form, or None if not a number."""
    if type(value) is int:
        return Decimal(value)
    if type(value) is float and math.isfinite(value):
        return Decimal(repr(value))
    return None


def decimal_places(amount: Decimal) -> int:
    exponent = amount.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def parse_expiry_period(value: str) -> int | None:
    """Seconds of an ISO-8601 duration made of weeks/days/hours/minutes/seconds, else None."""
    m = _DURATION_RE.fullmatch(value)
    if m is None or not any(m.groups()):
        return None
    weeks, days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return (((weeks * 7 + days) * 24 + hours) * 60 + minutes) * 60 + seconds


def validate_create(body: Any, cfg: RevolutSimConfig) -> CreateParams:
    """Input validation of a create body (no credential/account checks); raises :class:`ApiError`."""
    if not isinstance(body, dict):
        raise ApiError(400, E_FORMAT, "Cannot parse request: expected a JSON object")
    if cfg.reject_unknown_fields:
        for key in sorted(body.keys() - CREATE_FIELDS):
            raise ApiError(400, E_FORMAT, f"Unrecognized field '{_show(key)}'")
    counterparty_name = _text(body, "counterparty_name", COUNTERPARTY_NAME_MAX)
    request_id = _text(body, "request_id", REQUEST_ID_MAX)
    account_id = body.get("account_id")
    if account_id is None:
        raise _missing("account_id")
    if not isinstance(account_id, str) or not _UUID_RE.fullmatch(account_id):
        raise _bad("account_id", account_id)
    raw_amount = body.get("amount")
    if raw_amount is None:
        raise _missing("amount")
    amount = parse_amount(raw_amount)
    if amount is None:
        raise _bad("amount", raw_amount, "must be a number")
    if amount <= 0:
        raise _bad("amount", raw_amount, "must be greater than 0")
    currency = body.get("currency")
    if currency is None:
        raise _missing("currency")
    if not isinstance(currency, str) or not _CURRENCY_RE.fullmatch(currency):
        raise _bad("currency", currency)
    spec = CURRENCIES.get(currency)
    if spec is None:
        raise _bad("currency", currency, "currency is not supported for payout links")
    exponent, per_gbp = spec
    if decimal_places(amount) > exponent:
        raise _bad("amount", raw_amount, f"{currency} allows at most {exponent} decimal places")
    in_gbp = amount / per_gbp
    if not Decimal(repr(cfg.min_amount_gbp)) <= in_gbp <= Decimal(repr(cfg.max_amount_gbp)):
        raise _bad(
            "amount", raw_amount,
            f"must be between {cfg.min_amount_gbp:g} and {cfg.max_amount_gbp:g} GBP or the equivalent in {currency}",
        )
    reference = _text(body, "reference", REFERENCE_MAX)
    methods = body.get("payout_methods")
    if methods is None:
        payout_methods = DEFAULT_PAYOUT_METHODS
    else:
        if (
            not isinstance(methods, list) or not methods
            or not all(isinstance(m, str) and m in PAYOUT_METHODS for m in methods)
            or len(set(methods)) != len(methods)
        ):
            raise _bad("payout_methods", methods, "must be a non-empty list of distinct revolut, bank_account, card")
        payout_methods = tuple(methods)
    period = body.get("expiry_period")
    if period is None:
        expiry_s = MAX_EXPIRY_S
    else:
        seconds = parse_expiry_period(period) if isinstance(period, str) else None
        if seconds is None:
            raise _bad("expiry_period", period, "must be an ISO-8601 duration such as P3D")
        if not MIN_EXPIRY_S <= seconds <= MAX_EXPIRY_S:
            raise _bad("expiry_period", period, "must be between P1D and P7D")
        expiry_s = seconds
    save = body.get("save_counterparty")
    if save is not None and not isinstance(save, bool):
        raise _bad("save_counterparty", save, "must be true or false")
    reason = body.get("transfer_reason_code")
    if reason is not None and (not isinstance(reason, str) or reason not in TRANSFER_REASON_CODES):
        raise _bad("transfer_reason_code", reason, "unknown transfer reason code")
    return CreateParams(
        request_id, counterparty_name, account_id.lower(), amount, currency, reference,
        payout_methods, expiry_s, bool(save), reason,
    )


def iso_us(us: int) -> str:
    """Microseconds since the epoch as Revolut prints timestamps (``...T13:55:54.834963Z``)."""
    return (_EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso_us(text: str) -> int | None:
    """An ISO-8601 date(-time) as microseconds since the epoch (naive = UTC), or None."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1)


def assertion_problem(assertion: str, client_id: str, now_s: float) -> str | None:
    """Why a client-assertion JWT's (unverified) header/claims are wrong, or None if they look right."""
    parts = assertion.split(".")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        return "client_assertion is not a JWT"
    try:
        header, claims = (orjson.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in parts[:2])
    except (binascii.Error, ValueError):
        return "client_assertion is not a JWT"
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return "client_assertion is not a JWT"
    if header.get("alg") != "RS256":
        return "client_assertion must be signed with RS256"
    if claims.get("sub") != client_id:
        return "client_assertion sub does not match client_id"
    if claims.get("aud") != ASSERTION_AUDIENCE:
        return f"client_assertion aud must be {ASSERTION_AUDIENCE}"
    if not isinstance(claims.get("iss"), str) or not claims["iss"]:
        return "client_assertion needs an iss"
    exp = claims.get("exp")
    if exp is not None and (isinstance(exp, bool) or not isinstance(exp, (int, float)) or exp <= now_s):
        return "client_assertion has expired"
    return None


# ----------------------------------------------------------------------- simulator


class _Link:
    """One stored link: the public entity plus what only the simulator needs."""

    __slots__ = ("entity", "client", "fingerprint", "expiry_us", "url")

    def __init__(self, entity: dict[str, Any], client: str, fingerprint: tuple[Any, ...], expiry_us: int, url: str) -> None:
        self.entity = entity
        self.client = client
        self.fingerprint = fingerprint
        self.expiry_us = expiry_us
        self.url = url


class RevolutSimulator:
    """State + handlers. Build the app with :meth:`make_app` (or :meth:`add_routes` into another)."""

    def __init__(
        self,
        config: RevolutSimConfig | None = None,
        credentials: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.config = config or RevolutSimConfig()
        self._initial_config = self.config.copy()
        creds = normalise_credentials(credentials if credentials is not None else DEFAULT_CREDENTIALS)
        self._refresh_tokens: dict[str, str] = {c: v["refresh_token"] for c, v in creds.items()}
        self._accounts: dict[str, frozenset[str]] = {c: frozenset(v["account_ids"]) for c, v in creds.items()}
        self._revoked_refresh: set[str] = set()
        # exact "Bearer <token>" header -> (client_id, expiry in simulator-clock microseconds)
        self._tokens: dict[str, tuple[str, int]] = {}
        self._rand = random.Random()  # ids, jitter, url codes: need not be reproducible
        self._fault_rng = random.Random(self.config.seed)
        self.webhooks = WebhookDispatcher(self.config.seed)
        self.walker = LinkWalker(self)
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._reset_state()

    # -- state ------------------------------------------------------------------
    def _reset_state(self) -> None:
        self.links: dict[str, _Link] = {}
        self.by_request_id: dict[str, list[str]] = {}
        self._idem: dict[tuple[str, str], tuple[tuple[Any, ...], str, int]] = {}
        self._order_ids: list[str] = []
        self._order_us: list[int] = []
        self._last_us = 0
        self._clock_offset_us = 0
        self.stats = _Stats()
        self._fault_rng.seed(self.config.seed)
        self.webhooks.reset(self.config.seed)

    @property
    def webhook_log(self) -> list[dict[str, Any]]:
        """One record per webhook event (common.WebhookDispatcher)."""
        return list(self.webhooks.events)

    def reset(self, *, config: bool = False, tokens: bool = False) -> None:
        """Forget links, counters and the clock offset; optionally config changes and tokens/revocations."""
        if config:
            self.config = self._initial_config.copy()
        if tokens:
            self._tokens.clear()
            self._revoked_refresh.clear()
        self._reset_state()

    def ledger(self) -> dict[str, Any]:
        """What exists, for checkers: links per request_id (duplicates visible) and per state."""
        now = self._now_us()
        by_state: dict[str, int] = {}
        for link in self.links.values():
            _bump(by_state, self._refresh(link, now)["state"])
        return {
            "links": len(self.links),
            "by_request_id": {r: list(ids) for r, ids in self.by_request_id.items()},
            "duplicate_request_ids": {r: len(ids) for r, ids in self.by_request_id.items() if len(ids) > 1},
            "by_state": by_state,
        }

    def issue_token(self, client_id: str) -> tuple[str, int]:
        """Mint an access token for a client (also used by tests); returns (token, expires_in)."""
        cfg = self.config
        now = self._now_us()
        if cfg.refresh_revokes_previous:
            self.revoke_tokens(client_id)
        elif len(self._tokens) > 10_000:  # a client that refreshes per call must not grow us forever
            self._tokens = {h: e for h, e in self._tokens.items() if e[1] > now}
        token = "oa_sand_" + secrets.token_urlsafe(32)
        self._tokens["Bearer " + token] = (client_id, now + int(cfg.token_ttl_s * 1_000_000))
        _bump(self.stats.events, "tokens_issued")
        return token, int(cfg.token_ttl_s)

    def revoke_tokens(self, client_id: str | None = None) -> int:
        """Invalidate live access tokens (all, or one client's): the next call gets 401."""
        before = len(self._tokens)
        if client_id is None:
            self._tokens.clear()
        else:
            self._tokens = {h: e for h, e in self._tokens.items() if e[0] != client_id}
        return before - len(self._tokens)

    async def wait_idle(self) -> None:
        """Return once no API handler is running (lets tests await an abandoned call's end)."""
        while self._inflight:
            await self._idle.wait()

    async def drain_webhooks(self, timeout: float | None = None) -> bool:
        """Wait until every pending webhook delivery has finished (tests; the end of a chaos run)."""
        return await self.webhooks.drain(timeout)

    async def aclose(self) -> None:
        """Stop webhook deliveries and close their HTTP session."""
        await self.webhooks.aclose()

    # -- lifecycle moves ------------------------------------------------------------
    def move(self, link: _Link, action: str, *, force: bool = False) -> str | None:
        """One lifecycle move (:data:`LIFECYCLE_ACTIONS`) with its webhook; returns why it
        is refused (an illegal move without ``force``), else None."""
        sources, target = LIFECYCLE_ACTIONS[action]
        now = self._now_us()
        state = self._refresh(link, now)["state"]
        if state not in sources and not force:
            return f"illegal move {action!r}: {state} -> {target} (legal from {', '.join(sorted(sources))})"
        self._set_state(link, target, now)
        _bump(self.stats.events, "lifecycle_moves")
        return None

    # LifecycleSubject (common.LinkWalker): our reference is the request_id
    def walk_candidates(self, references: Sequence[str] | None) -> list[tuple[str, str]]:
        now = self._now_us()
        if references is None:
            return [(link.entity["request_id"], lid) for lid, link in self.links.items()
                    if self._refresh(link, now)["state"] not in FINAL_STATES]
        return [(ref, lid) for ref in dict.fromkeys(references) for lid in self.by_request_id.get(ref, ())]

    def walk_steps(self, link_id: str, path: str, rng: random.Random) -> list[str]:
        return walk_path(self.links[link_id].entity["state"], path)

    def walk_legal(self, link_id: str, action: str) -> bool:
        return self._refresh(self.links[link_id], self._now_us())["state"] in LIFECYCLE_ACTIONS[action][0]

    def walk_apply(self, link_id: str, action: str) -> bool:
        return self.move(self.links[link_id], action) is None

    def walk_status(self, link_id: str) -> str:
        state: str = self._refresh(self.links[link_id], self._now_us())["state"]
        return state

    def lifecycle_links(self) -> list[tuple[str, str, str, bool]]:
        now = self._now_us()
        out: list[tuple[str, str, str, bool]] = []
        for lid, link in self.links.items():
            state = self._refresh(link, now)["state"]
            out.append((link.entity["request_id"], lid, state, state in FINAL_STATES))
        return out

    # -- helpers ------------------------------------------------------------------
    def _now_us(self) -> int:
        return time.time_ns() // 1000 + self._clock_offset_us

    def _client_for(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization")
        if header is None:
            return None
        entry = self._tokens.get(header)
        if entry is None:
            # slow path: tolerate scheme case / stray spaces the exact-match table lacks
            scheme, _, token = header.strip().partition(" ")
            if scheme.lower() != "bearer":
                return None
            entry = self._tokens.get("Bearer " + token.strip())
            if entry is None:
                return None
        return entry[0] if self._now_us() < entry[1] else None

    def _respond(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> web.Response:
        _bump(self.stats.statuses, str(status))
        return web.Response(
            body=orjson.dumps(payload), status=status,
            headers={**_JSON_HEADERS, **headers} if headers else _JSON_HEADERS,
        )

    def _error(self, status: int, code: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
        return self._respond(status, {"code": code, "message": message}, headers)

    def _api_error(self, exc: ApiError) -> web.Response:
        return self._error(exc.status, exc.code, exc.message)

    def _unauthorized(self) -> web.Response:
        _bump(self.stats.statuses, "401")
        _bump(self.stats.events, "auth_rejected")
        return web.Response(status=401, body=_UNAUTHORIZED_BODY, headers=_JSON_HEADERS)

    def _oauth_error(self, status: int, error: str, description: str) -> web.Response:
        _bump(self.stats.events, "tokens_refused")
        return self._respond(status, {"error": error, "error_description": description})

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

    def _server_error(self, status: int) -> web.Response:
        _bump(self.stats.statuses, str(status))
        page = _GATEWAY_PAGES.get(status)
        if page is not None:  # what a load balancer in front of the API would answer
            return web.Response(status=status, body=page, headers=_HTML_HEADERS)
        return web.Response(
            status=status, body=orjson.dumps({"code": status, "message": _JSON_5XX[status]}), headers=_JSON_HEADERS,
        )

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
        """Close the connection without answering (the response is 'lost')."""
        _bump(self.stats.statuses, "dropped")
        _bump(self.stats.faults, "lost_after_create")
        transport = request.transport
        if transport is not None:
            transport.abort()
        return web.Response(status=499)  # aiohttp swallows the failed write

    async def _pre_fault(self, request: web.Request) -> tuple[str | None, web.Response | None]:
        """Draw and apply the faults that happen before any work. Returns (fault, early answer)."""
        fault = self._draw_fault()
        if fault is None or fault == "lost_after_create":
            return fault, None
        cfg = self.config
        if fault == "slow":
            await asyncio.sleep(cfg.slow_ms / 1000.0)
            return fault, None
        if fault == "error_5xx":
            return fault, self._server_error(self._fault_rng.choice((500, 502, 503, 504)))
        if fault == "throttle_429":
            headers = {"Retry-After": "1"} if self._fault_rng.random() < cfg.retry_after_ratio else None
            return fault, self._error(429, 429, "Too many requests", headers)
        # timeout_before_create: hang so the client gives up; never do the work
        try:
            await asyncio.sleep(cfg.hang_ms / 1000.0)
        except asyncio.CancelledError:  # a runner with handler_cancellation=True (aiohttp's TestServer)
            _bump(self.stats.events, "client_gone")
            raise
        if self._client_gone(request):
            return fault, self._gone()
        return fault, self._server_error(504)

    def _enter(self) -> None:
        self._inflight += 1
        self._idle.clear()

    def _leave(self) -> None:
        self._inflight -= 1
        if not self._inflight:
            self._idle.set()

    # -- lifecycle ----------------------------------------------------------------
    def _set_state(self, link: _Link, state: str, at_us: int) -> None:
        entity = link.entity
        old = entity["state"]
        if old == state:
            return
        entity["state"] = state
        entity["updated_at"] = iso_us(at_us)
        if state == "active":
            entity["url"] = link.url
        else:
            entity.pop("url", None)
        if state in ("processing", "processed"):
            entity.setdefault("counterparty_id", str(uuid.uuid4()))
            entity.setdefault("transaction_id", str(uuid.uuid4()))
        if self.config.webhook_url:
            self._emit("PayoutLinkStateChanged", {
                "id": entity["id"], "request_id": entity["request_id"], "old_state": old, "new_state": state,
            }, at_us)

    def _refresh(self, link: _Link, now_us: int) -> dict[str, Any]:
        """Lazy expiry: an unclaimed link past ``expiry_date`` reads as expired."""
        if now_us >= link.expiry_us and link.entity["state"] in EXPIRING_STATES:
            self._set_state(link, "expired", link.expiry_us)
        return link.entity

    # -- webhooks -------------------------------------------------------------------
    def _emit(self, event: str, data: dict[str, Any], at_us: int) -> None:
        cfg = self.config
        if not cfg.webhook_url:
            return
        link = self.links.get(data["id"])
        self.webhooks.emit(
            WebhookSettings.of(cfg, retry_interval_s=cfg.webhook_retry_interval_s, backoff=1.0),
            event=event, link_id=data["id"], reference=data.get("request_id"),
            payload={"event": event, "timestamp": iso_us(at_us), "data": data},
            secret=cfg.webhook_signing_secret.encode(), render=render_webhook, counters=self.stats.events,
            extra={"state": data.get("new_state", data.get("state")),
                   "client": link.client if link is not None else None},
        )

    # -- API handlers ------------------------------------------------------------
    async def token(self, request: web.Request) -> web.Response:
        """``POST /auth/token`` (refresh flow). Tokens and assertions are never echoed or logged."""
        self._enter()
        try:
            _bump(self.stats.requests, "token")
            form = await request.post()
            await self._latency()
            fault = None
            if self.config.faults_on_auth and self._any_fault():
                fault, early = await self._pre_fault(request)
                if early is not None:
                    return early
            values: dict[str, str] = {}
            for name in ("grant_type", "client_id", "refresh_token", "client_assertion_type", "client_assertion"):
                value = form.get(name)
                if isinstance(value, str):
                    values[name] = value
            grant_type = values.get("grant_type")
            if not grant_type:
                return self._oauth_error(400, "invalid_request", "grant_type is missing")
            if grant_type != "refresh_token":
                return self._oauth_error(400, "unsupported_grant_type", "only grant_type=refresh_token is supported")
            client_id = values.get("client_id")
            if not client_id:
                return self._oauth_error(400, "invalid_request", "client_id is missing")
            expected_refresh = self._refresh_tokens.get(client_id)
            if expected_refresh is None:
                return self._oauth_error(401, "invalid_client", "unknown client_id")
            if values.get("client_assertion_type") != ASSERTION_TYPE:
                return self._oauth_error(400, "invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
            assertion = values.get("client_assertion")
            if not assertion:
                return self._oauth_error(401, "invalid_client", "client_assertion is missing")
            if self.config.strict_assertion:
                problem = assertion_problem(assertion, client_id, time.time())
                if problem is not None:
                    return self._oauth_error(401, "invalid_client", problem)
            refresh = values.get("refresh_token")
            if not refresh:
                return self._oauth_error(400, "invalid_request", "refresh_token is missing")
            if not hmac.compare_digest(refresh.encode(), expected_refresh.encode()) or client_id in self._revoked_refresh:
                return self._oauth_error(400, "invalid_grant", "refresh_token is invalid, expired or revoked")
            if self._client_gone(request):
                return self._gone()
            token, expires_in = self.issue_token(client_id)
            if fault == "lost_after_create":
                return self._drop(request)
            return self._respond(200, {"access_token": token, "token_type": "bearer", "expires_in": expires_in})
        finally:
            self._leave()

    async def create(self, request: web.Request) -> web.Response:
        self._enter()
        try:
            return await self._create(request)
        finally:
            self._leave()

    async def _create(self, request: web.Request) -> web.Response:
        stats = self.stats
        _bump(stats.requests, "create")
        raw = await request.read()
        client = self._client_for(request)
        await self._latency()
        if client is None:
            return self._unauthorized()
        fault = None
        if self._any_fault():
            fault, early = await self._pre_fault(request)
            if early is not None:
                return early
        if self._client_gone(request):
            return self._gone()
        cfg = self.config
        try:
            params = validate_create(orjson.loads(raw), cfg)
        except orjson.JSONDecodeError:
            return self._error(400, E_FORMAT, "Cannot parse request: invalid JSON")
        except ApiError as exc:
            return self._api_error(exc)
        if params.account_id not in self._accounts[client]:
            return self._error(400, E_FORMAT, f"Account '{params.account_id}' not found for field 'account_id'")

        now = max(self._now_us(), self._last_us + 1)
        key = (client, params.request_id) if cfg.honour_request_id else None
        if key is not None:
            seen = self._idem.get(key)
            if seen is not None and (cfg.request_id_ttl_s is None or now - seen[2] < cfg.request_id_ttl_s * 1e6):
                if seen[0] != params.fingerprint():
                    _bump(stats.events, "request_id_conflicts")
                    return self._error(
                        409, E_REQUEST_ID_CONFLICT,
                        f"A payout link with this 'request_id' ({_show(params.request_id)}) "
                        "already exists with different parameters",
                    )
                _bump(stats.events, "idempotent_replays")
                entity = self._refresh(self.links[seen[1]], now)
                if fault == "lost_after_create":
                    return self._drop(request)
                return self._respond(cfg.replay_status, entity)

        state = cfg.initial_state
        limit = cfg.insufficient_funds_above
        if limit is not None and params.amount > Decimal(repr(limit)):
            _bump(stats.events, "insufficient_funds")
            if cfg.insufficient_funds_as == "error":
                return self._error(400, E_FORMAT, f"Insufficient balance on account '{params.account_id}'")
            state = "failed"
        entity = self._store(client, params, state, now)
        if key is not None:
            self._idem[key] = (params.fingerprint(), entity["id"], now)
        _bump(stats.events, "links_created")
        if cfg.webhook_url:
            self._emit("PayoutLinkCreated", dict(entity), now)
        if fault == "lost_after_create":
            return self._drop(request)
        return self._respond(201, entity)

    def _store(self, client: str, p: CreateParams, state: str, now: int) -> dict[str, Any]:
        link_id = str(uuid.uuid4())
        url = self.config.link_base_url + "".join(self._rand.choices(_ALNUM, k=11))
        stamp = iso_us(now)
        expiry_us = now + p.expiry_s * 1_000_000
        entity: dict[str, Any] = {
            "id": link_id,
            "state": state,
            "created_at": stamp,
            "updated_at": stamp,
            "counterparty_name": p.counterparty_name,
            "save_counterparty": p.save_counterparty,
            "request_id": p.request_id,
            "expiry_date": iso_us(expiry_us),
            "payout_methods": list(p.payout_methods),
            "account_id": p.account_id,
            "amount": float(p.amount),
            "currency": p.currency,
        }
        if state == "active":
            entity["url"] = url
        entity["reference"] = p.reference
        if p.transfer_reason_code is not None:
            entity["transfer_reason_code"] = p.transfer_reason_code
        self.links[link_id] = _Link(entity, client, p.fingerprint(), expiry_us, url)
        ids = self.by_request_id.get(p.request_id)
        if ids is None:
            self.by_request_id[p.request_id] = [link_id]
        else:
            ids.append(link_id)
        self._order_ids.append(link_id)
        self._order_us.append(now)
        self._last_us = now
        return entity

    async def _read_prologue(self, request: web.Request, endpoint: str) -> tuple[str | None, web.Response | None]:
        """Shared start of non-create API calls: count, auth, latency, optional faults."""
        _bump(self.stats.requests, endpoint)
        client = self._client_for(request)
        await self._latency()
        if client is None:
            return None, self._unauthorized()
        if self.config.faults_on_reads and endpoint != "cancel" and self._any_fault():
            fault, early = await self._pre_fault(request)
            if early is not None:
                return None, early
            if fault == "lost_after_create":
                return None, self._drop(request)
        return client, None

    def _lookup(self, request: web.Request, client: str) -> _Link:
        link_id = request.match_info["link_id"]
        if not _UUID_RE.fullmatch(link_id):
            raise _bad("payout_link_id", link_id)
        link = self.links.get(link_id.lower())
        if link is None or link.client != client:
            raise ApiError(404, E_NOT_FOUND, "Resource not found")
        return link

    async def fetch(self, request: web.Request) -> web.Response:
        self._enter()
        try:
            client, early = await self._read_prologue(request, "fetch")
            if early is not None:
                return early
            assert client is not None
            try:
                link = self._lookup(request, client)
            except ApiError as exc:
                return self._api_error(exc)
            return self._respond(200, self._refresh(link, self._now_us()))
        finally:
            self._leave()

    async def cancel(self, request: web.Request) -> web.Response:
        self._enter()
        try:
            client, early = await self._read_prologue(request, "cancel")
            if early is not None:
                return early
            assert client is not None
            try:
                link = self._lookup(request, client)
            except ApiError as exc:
                return self._api_error(exc)
            now = self._now_us()
            state = self._refresh(link, now)["state"]
            if state not in CANCELLABLE_STATES:
                return self._error(400, E_STATE, f"Payout link in state '{state}' cannot be cancelled")
            self._set_state(link, "cancelled", now)
            _bump(self.stats.events, "links_cancelled")
            _bump(self.stats.statuses, "204")
            return web.Response(status=204)
        finally:
            self._leave()

    async def list_links(self, request: web.Request) -> web.Response:
        self._enter()
        try:
            client, early = await self._read_prologue(request, "list")
            if early is not None:
                return early
            query = request.query
            states: set[str] = set()
            for value in query.getall("state", ()):
                for state in value.split(","):
                    if state not in _STATE_SET:
                        return self._api_error(_bad("state", state, "unknown state"))
                    states.add(state)
            limit = LIST_LIMIT_DEFAULT
            if "limit" in query:
                try:
                    limit = int(query["limit"])
                except ValueError:
                    return self._api_error(_bad("limit", query["limit"], "must be an integer"))
                if not 1 <= limit <= LIST_LIMIT_MAX:
                    return self._api_error(_bad("limit", query["limit"], f"must be between 1 and {LIST_LIMIT_MAX}"))
            now = self._now_us()
            before = now
            if "created_before" in query:
                parsed = parse_iso_us(query["created_before"])
                if parsed is None:
                    return self._api_error(_bad("created_before", query["created_before"], "must be an ISO-8601 date-time"))
                before = parsed
            items: list[dict[str, Any]] = []
            links, ids = self.links, self._order_ids
            # creation timestamps are strictly increasing: bisect, then walk back (newest first)
            for i in range(bisect.bisect_left(self._order_us, before) - 1, -1, -1):
                link = links[ids[i]]
                if link.client != client:
                    continue
                entity = self._refresh(link, now)
                if states and entity["state"] not in states:
                    continue
                items.append(entity)
                if len(items) >= limit:
                    break
            return self._respond(200, items)
        finally:
            self._leave()

    async def not_found(self, request: web.Request) -> web.Response:
        _bump(self.stats.requests, "unknown")
        return self._error(404, E_NOT_FOUND, "Resource not found")

    # -- /_sim/revolut/ control -------------------------------------------------------
    async def sim_health(self, request: web.Request) -> web.Response:
        return web.Response(body=b'{"ok":true}', headers=_JSON_HEADERS)

    async def sim_ledger(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.ledger()), headers=_JSON_HEADERS)

    async def sim_stats(self, request: web.Request) -> web.Response:
        payload = {**self.stats.to_json(), "links": len(self.links), "live_tokens": len(self._tokens)}
        return web.Response(body=orjson.dumps(payload), headers=_JSON_HEADERS)

    async def sim_reset(self, request: web.Request) -> web.Response:
        opts = await _json_object(request)
        if opts is None:
            return _control_error("reset options must be a JSON object")
        self.reset(config=bool(opts.get("config")), tokens=bool(opts.get("tokens")))
        return web.Response(body=b'{"ok":true}', headers=_JSON_HEADERS)

    async def sim_config(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            patch = await _json_object(request)
            if patch is None:
                return _control_error("config must be a JSON object")
            try:
                self.config.apply(patch)
            except ValueError as exc:
                return _control_error(str(exc))
            if "seed" in patch:
                self._fault_rng.seed(self.config.seed)
                self.webhooks.reseed(self.config.seed)
        return web.Response(body=orjson.dumps(self.config.to_json()), headers=_JSON_HEADERS)

    async def sim_set_state(self, request: web.Request) -> web.Response:
        """Force a link's state (approve, claim, process, fail, expire...) for lifecycle tests."""
        link = self.links.get(request.match_info["link_id"].lower())
        if link is None:
            return web.Response(status=404, body=b'{"error":"no such link"}', headers=_JSON_HEADERS)
        body = await _json_object(request)
        state = (body.get("state") or body.get("status")) if body is not None else None
        if state not in _STATE_SET:
            return _control_error(f"state must be one of {', '.join(STATES)}")
        self._set_state(link, state, self._now_us())
        return web.Response(body=orjson.dumps(link.entity), headers=_JSON_HEADERS)

    async def sim_lifecycle(self, request: web.Request) -> web.Response:
        """``POST links/{id}/lifecycle {"action", "force"?}``: one move; 409 when illegal."""
        link = self.links.get(request.match_info["link_id"].lower())
        if link is None:
            return json_response({"error": "no such link"}, 404)
        try:
            action, force = parse_move(await _json_object(request))
            if action not in LIFECYCLE_ACTIONS:
                raise ValueError(f"action must be one of {', '.join(LIFECYCLE_ACTIONS)}")
        except ValueError as exc:
            return _control_error(str(exc))
        refused = self.move(link, action, force=force)
        if refused is not None:
            return json_response({"error": refused, "link": link.entity}, 409)
        return json_response(link.entity)

    async def sim_revoke(self, request: web.Request) -> web.Response:
        """Revoke access tokens (forces a refresh) and optionally a refresh token (consent withdrawn)."""
        body = await _json_object(request)
        if body is None:
            return _control_error("revoke options must be a JSON object")
        client_id = body.get("client_id")
        if client_id is not None and client_id not in self._refresh_tokens:
            return _control_error("unknown client_id")
        revoked = self.revoke_tokens(client_id) if body.get("access_tokens", True) else 0
        refresh = body.get("refresh_token")
        if refresh is not None:
            targets = [client_id] if client_id is not None else list(self._refresh_tokens)
            if refresh:
                self._revoked_refresh.update(targets)
            else:
                self._revoked_refresh.difference_update(targets)
        payload = {"revoked_access_tokens": revoked, "revoked_refresh_tokens": sorted(self._revoked_refresh)}
        return web.Response(body=orjson.dumps(payload), headers=_JSON_HEADERS)

    async def sim_clock(self, request: web.Request) -> web.Response:
        """Read or move the simulator's clock forward (expiry and token lifetime tests)."""
        if request.method == "POST":
            body = await _json_object(request)
            advance = body.get("advance_s") if body is not None else None
            if isinstance(advance, bool) or not isinstance(advance, (int, float)) or advance < 0:
                return _control_error("advance_s must be a non-negative number")
            self._clock_offset_us += int(advance * 1_000_000)
        payload = {"now": iso_us(self._now_us()), "offset_s": self._clock_offset_us / 1e6}
        return web.Response(body=orjson.dumps(payload), headers=_JSON_HEADERS)

    # -- wiring ---------------------------------------------------------------------
    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register the API under /api/1.0 and the control endpoints under /_sim/revolut."""
        r = router
        r.add_post(f"{API_PREFIX}/auth/token", self.token)
        r.add_post(f"{API_PREFIX}/payout-links", self.create)
        r.add_get(f"{API_PREFIX}/payout-links", self.list_links, allow_head=False)
        r.add_get(f"{API_PREFIX}/payout-links/{{link_id}}", self.fetch, allow_head=False)
        r.add_post(f"{API_PREFIX}/payout-links/{{link_id}}/cancel", self.cancel)
        r.add_get(f"{SIM_PREFIX}/health", self.sim_health, allow_head=False)
        r.add_get(f"{SIM_PREFIX}/ledger", self.sim_ledger, allow_head=False)
        r.add_get(f"{SIM_PREFIX}/stats", self.sim_stats, allow_head=False)
        r.add_post(f"{SIM_PREFIX}/reset", self.sim_reset)
        r.add_route("GET", f"{SIM_PREFIX}/config", self.sim_config)
        r.add_route("POST", f"{SIM_PREFIX}/config", self.sim_config)
        r.add_post(f"{SIM_PREFIX}/links/{{link_id}}/status", self.sim_set_state)
        r.add_post(f"{SIM_PREFIX}/links/{{link_id}}/lifecycle", self.sim_lifecycle)
        r.add_post(f"{SIM_PREFIX}/tokens/revoke", self.sim_revoke)
        r.add_route("GET", f"{SIM_PREFIX}/clock", self.sim_clock)
        r.add_route("POST", f"{SIM_PREFIX}/clock", self.sim_clock)
        add_lifecycle_routes(r, SIM_PREFIX, self.walker, self.webhooks)
        r.add_route("*", f"{API_PREFIX}/{{tail:.*}}", self.not_found)

    def make_app(self) -> web.Application:
        app = web.Application()
        app[REVOLUT_SIMULATOR_KEY] = self
        self.add_routes(app.router)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_cleanup(self, app: web.Application) -> None:
        await self.aclose()


REVOLUT_SIMULATOR_KEY = web.AppKey("revolut_simulator", RevolutSimulator)


async def _json_object(request: web.Request) -> dict[str, Any] | None:
    """A control request's JSON object body ({} when empty), or None when it is not one."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


def _control_error(message: str) -> web.Response:
    return web.Response(status=400, body=orjson.dumps({"error": message}), headers=_JSON_HEADERS)


# ----------------------------------------------------------------------------- CLI


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m streams.devkit.sims.revolut",
        description="Revolut Business payout-links simulator with fault injection and a ledger. "
                    "Every knob is also settable at runtime: POST /_sim/revolut/config.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--latency-ms", type=float, default=100.0)
    p.add_argument("--jitter-ms", type=float, default=20.0, help="uniform extra 0..jitter per call")
    p.add_argument("--credentials",
                   help=f"JSON file {{client_id: {{refresh_token, account_ids}}}}; else env {CREDENTIALS_ENV}")
    for kind in FAULT_KINDS:
        p.add_argument("--" + kind.replace("_", "-"), dest=kind, type=float, default=0.0,
                       metavar="P", help=f"probability of fault {kind} per create call")
    p.add_argument("--slow-ms", type=float, default=2000.0, help="extra latency of the 'slow' fault")
    p.add_argument("--hang-ms", type=float, default=30000.0, help="hang of the 'timeout_before_create' fault")
    p.add_argument("--retry-after-ratio", type=float, default=0.5, help="share of 429s carrying Retry-After: 1")
    p.add_argument("--faults-on-reads", action="store_true", help="also inject faults into fetch and list")
    p.add_argument("--faults-on-auth", action="store_true", help="also inject faults into /auth/token")
    p.add_argument("--seed", type=int, default=None, help="makes fault decisions reproducible")
    p.add_argument("--token-ttl-s", type=float, default=2399.0, help="access-token lifetime (expires_in)")
    idem = p.add_mutually_exclusive_group()
    idem.add_argument("--honour-request-id", dest="honour_request_id", action="store_true",
                      help="de-duplicate creates on request_id (default, as Revolut documents)")
    idem.add_argument("--no-request-id", dest="honour_request_id", action="store_false",
                      help="ignore request_id: every create makes a new link (chaos)")
    p.set_defaults(honour_request_id=True)
    p.add_argument("--replay-status", type=int, choices=(200, 201), default=201,
                   help="status of an idempotent repeat")
    p.add_argument("--initial-state", choices=INITIAL_STATES, default="active")
    p.add_argument("--webhook-url", default=None,
                   help=f"POST signed webhooks here (signing secret from env {WEBHOOK_SECRET_ENV})")
    p.add_argument("--config-json", default=None,
                   help='any other RevolutSimConfig keys as JSON, e.g. \'{"webhook_drop": 0.1}\'')
    p.add_argument("--log-level", default="INFO")
    return p


def config_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> RevolutSimConfig:
    env = os.environ if env is None else env
    cfg = RevolutSimConfig()
    patch: dict[str, Any] = {
        "latency_ms": args.latency_ms,
        "jitter_ms": args.jitter_ms,
        "faults": {kind: getattr(args, kind) for kind in FAULT_KINDS},
        "slow_ms": args.slow_ms,
        "hang_ms": args.hang_ms,
        "retry_after_ratio": args.retry_after_ratio,
        "faults_on_reads": args.faults_on_reads,
        "faults_on_auth": args.faults_on_auth,
        "seed": args.seed,
        "token_ttl_s": args.token_ttl_s,
        "honour_request_id": args.honour_request_id,
        "replay_status": args.replay_status,
        "initial_state": args.initial_state,
        "webhook_url": args.webhook_url,
    }
    if env.get(WEBHOOK_SECRET_ENV):
        patch["webhook_signing_secret"] = env[WEBHOOK_SECRET_ENV]
    if getattr(args, "config_json", None):
        extra = orjson.loads(args.config_json)
        if not isinstance(extra, dict):
            raise ValueError("--config-json must be a JSON object")
        faults = dict(patch["faults"])
        faults.update({kind: extra.pop(kind) for kind in FAULT_KINDS if kind in extra})
        nested = extra.pop("faults", None)
        if isinstance(nested, dict):
            faults.update(nested)
        patch.update(extra)
        patch["faults"] = faults
    cfg.apply(patch)
    return cfg


async def start_server(sim: RevolutSimulator, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, int]:
    """Start listening; returns the runner (``await runner.cleanup()`` to stop) and the port.

    Handler cancellation stays off (aiohttp's default, unlike its TestServer), so a client
    that leaves mid-request never interrupts a create half-way; the handlers check for a
    departed client themselves where that matters.
    """
    runner = web.AppRunner(sim.make_app(), access_log=None, shutdown_timeout=1.0, handler_cancellation=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True)
    await site.start()
    return runner, runner.addresses[0][1]


async def serve(sim: RevolutSimulator, host: str, port: int) -> None:
    """Serve until SIGTERM/SIGINT; print the URL line once listening."""
    runner, bound_port = await start_server(sim, host, port)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    if ":" in shown_host:
        shown_host = f"[{shown_host}]"
    sys.stdout.write(f"{URL_LINE_PREFIX}http://{shown_host}:{bound_port}\n")
    sys.stdout.flush()
    log.info(
        "listening on %s:%s; client ids %s; config %s",
        host, bound_port, sorted(sim._refresh_tokens), orjson.dumps(sim.config.to_json()).decode(),
    )
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
                        format="%(asctime)s revolut-sim %(levelname)s %(message)s")
    try:
        config = config_from_args(args)
        credentials = load_credentials(args.credentials)
    except (ValueError, OSError) as exc:
        print(f"revolut simulator: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(RevolutSimulator(config, credentials), args.host, args.port))
    return 0


# ------------------------------------------------------------------ process control


class RevolutSimulatorProcess(SimulatorProcess):
    """The Revolut simulator as a child process; start/stop/URL handling is :class:`SimulatorProcess`'s.

    ``webhook`` holds webhook knobs (common.WEBHOOK_KNOBS and Revolut's own
    ``webhook_retry_interval_s``); ``config`` any other :class:`RevolutSimConfig` keys.
    The signing secret travels in the environment, never argv.
    """

    control_prefix = SIM_PREFIX
    health_path = SIM_PREFIX + "/health"

    def __init__(self, *, latency_ms: float = 0.0, jitter_ms: float = 0.0,
                 faults: Mapping[str, float] | None = None, hang_ms: float | None = None,
                 seed: int | None = None, honour_request_id: bool = True,
                 token_ttl_s: float | None = None, webhook_url: str | None = None,
                 webhook: Mapping[str, Any] | None = None, webhook_signing_secret: str | None = None,
                 config: Mapping[str, Any] | None = None, python: str = sys.executable,
                 startup_timeout: float = 15.0, stderr: Any = None) -> None:
        argv = [python, "-m", "streams.devkit.sims.revolut", "--host", "127.0.0.1", "--port", "0",
                "--latency-ms", str(latency_ms), "--jitter-ms", str(jitter_ms),
                "--honour-request-id" if honour_request_id else "--no-request-id"]
        for flag, value in (("--hang-ms", hang_ms), ("--seed", seed), ("--token-ttl-s", token_ttl_s)):
            if value is not None:
                argv += [flag, str(value)]
        for kind, p in (faults or {}).items():
            argv += ["--" + kind.replace("_", "-"), str(p)]
        knobs = {**(config or {}), **(webhook or {})}
        if webhook_url is not None:
            knobs["webhook_url"] = webhook_url
        if knobs:
            RevolutSimConfig().apply(knobs)  # fail here, not in the child
            argv += ["--config-json", orjson.dumps(knobs).decode()]
        env = {WEBHOOK_SECRET_ENV: webhook_signing_secret} if webhook_signing_secret else None
        super().__init__(argv=argv, startup_timeout=startup_timeout, stderr=stderr, env=env)

    def ledger(self) -> dict[str, Any]:
        return self._call("GET", SIM_PREFIX + "/ledger")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", SIM_PREFIX + "/stats")

    def revoke_tokens(self) -> dict[str, Any]:
        return self._call("POST", SIM_PREFIX + "/tokens/revoke", {"access_tokens": True})

    def links_by_reference(self) -> dict[str, list[str]]:
        """Our reference (the link's ``request_id``) -> payout link ids."""
        by_request_id: dict[str, list[str]] = self.ledger().get("by_request_id", {})
        return {ref: [str(i) for i in ids] for ref, ids in by_request_id.items()}


def fleet_process(*, latency_ms: float, jitter_ms: float, faults: Mapping[str, float] | None,
                  hang_ms: float | None, seed: int | None, **options: Any) -> RevolutSimulatorProcess:
    """This simulator as one of the fleet's; ``options`` are :class:`RevolutSimulatorProcess` keywords."""
    return RevolutSimulatorProcess(latency_ms=latency_ms, jitter_ms=jitter_ms, faults=faults,
                                   hang_ms=hang_ms, seed=seed, **options)


if __name__ == "__main__":
    sys.exit(main())
