"""RazorpayX Payout Links simulator: a local, fault-injecting stand-in for the provider.

Why it exists: the processor's one promise is "exactly one link per request", and that
can only be tested against a provider that (a) behaves like RazorpayX on the wire
(paths, Basic auth, bodies, error envelope), (b) fails in the nasty ways real networks
do (5xx, 429, hangs, and -- worst -- a link created but the response lost), and
(c) lets a checker count what really exists (``/_sim/ledger``: links per ``receipt``;
receipts are *not* unique, exactly like the real API, so duplicates are visible).

Run it as its own process: ``python -m streams.devkit.sims.razorpay --port 0``; it prints
one line ``SIMULATOR_URL=http://127.0.0.1:<port>`` on stdout once listening.
:class:`RazorpaySimulatorProcess` does that from Python (tests, benchmarks), and
:func:`fleet_process` is how :class:`~streams.devkit.sims.fleet.SimulatorFleet` starts it.

The hot path (create) is kept lean on purpose -- it is driven at thousands of creates
per second on a 2-core machine: precomputed auth headers, one RNG draw per fault
decision, orjson, dict indexes, no middleware, no access log, and no webhook work at
all unless a ``webhook_url`` is set.

Lifecycle (providers.md): ``pending`` (only with ``approval_workflow``) -> ``issued`` |
``rejected``; ``issued`` -> ``processing`` | ``cancelled`` | ``expired``; ``processing`` ->
``processed`` | ``issued`` (the payout failed: the recipient may retry); ``processed`` ->
``issued`` (a reversal). There is no recipient here, so the control endpoint
``POST /_sim/links/{id}/lifecycle {"action", "force"?}`` makes the moves:
``claim`` (issued -> processing: ``attempt_count`` + 1, a new ``fund_account_id``),
``process`` (processing -> processed, ``payout_id`` set), ``fail`` (processing -> issued),
``reverse`` (processed -> issued), ``expire`` (issued -> expired, ``expired_at``),
``cancel`` (issued -> cancelled, ``cancelled_at``; the same as the API's cancel),
``reject`` (pending -> rejected), ``approve`` (pending -> issued). An illegal move answers
409 unless ``force``. ``POST /_sim/links/{id}/status {"status"}`` still forces a status
(the move it amounts to, from wherever the link is). An issued link past ``expire_by``
reads as ``expired`` on the next read of it (lazy expiry).

Webhooks (only with ``webhook_url``): every status change -- creation
(``payout_link.issued``, or ``payout_link.pending``), each move, the API's cancel, an
observed expiry -- POSTs ``{"entity": "event", "account_id": "acc_…", "event":
"payout_link.<event>", "contains": ["payout_link"], "payload": {"payout_link": {"entity":
{the whole link after the change}}}, "created_at": <unix s>}`` with ``Content-Type:
application/json``, ``X-Razorpay-Signature`` (hex HMAC-SHA256 of the exact body bytes,
keyed with the account's ``webhook_secret``; default ``demo_webhook_secret``) and
``x-razorpay-event-id`` (``evt_…``, one per event, kept by duplicates and retries). The
event is named after the new status, except that a failed payout and a reversal (both
back to ``issued``) are ``payout_link.attempted``; an expiry is ``payout_link.expired``
with status ``expired``. Non-2xx or no answer: ``webhook_retries`` re-sends,
``webhook_retry_ms`` doubling (Razorpay retries for 24 h; the default here is small).
Delivery faults and records are common.py's :class:`WebhookDispatcher`
(``GET /_sim/webhooks``, ``POST /_sim/webhooks/drain``); walks
(``POST /_sim/lifecycle/walk``) and the provider's truth (``GET /_sim/lifecycle/statuses``)
its :class:`LinkWalker`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import bisect
import hashlib
import hmac
import json
import logging
import os
import random
import re
import signal
import string
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from streams.devkit.sims.common import (
    _JSON_HEADERS,
    FAULT_KINDS,
    URL_LINE_PREFIX,
    WEBHOOK_CHECKS,
    WEBHOOK_KNOBS,
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
    json_object,
    json_response,
    parse_move,
    tamper_json,
)

log = logging.getLogger("streams.devkit.sims.razorpay")

WEBHOOKS = True  # this simulator sends webhooks (the fleet passes it webhook_url)
DEFAULT_CREDENTIALS: dict[str, dict[str, str]] = {
    "rzp_test_demo": {"key_secret": "demo_secret", "account_number": "2323230041626905"},
}
# an account's webhook secret when its credentials name none (the dev account's)
DEFAULT_WEBHOOK_SECRET = "demo_webhook_secret"
WEBHOOK_SIGNATURE_HEADER = "X-Razorpay-Signature"
WEBHOOK_EVENT_ID_HEADER = "x-razorpay-event-id"
# what the list filter accepts ("attempted" is an event, not a stored status)
STATUSES = frozenset(
    {"pending", "issued", "processing", "processed", "attempted", "cancelled", "rejected", "expired"}
)
# docs call these final (processed may still be reversed, but counts as final for checkers)
FINAL_STATUSES = frozenset({"processed", "cancelled", "expired", "rejected"})
# lifecycle action -> (the statuses it is legal from, the status it moves to)
LIFECYCLE_ACTIONS: dict[str, tuple[frozenset[str], str]] = {
    "claim": (frozenset({"issued"}), "processing"),
    "process": (frozenset({"processing"}), "processed"),
    "fail": (frozenset({"processing"}), "issued"),
    "reverse": (frozenset({"processed"}), "issued"),
    "expire": (frozenset({"issued"}), "expired"),
    "cancel": (frozenset({"issued"}), "cancelled"),
    "reject": (frozenset({"pending"}), "rejected"),
    "approve": (frozenset({"pending"}), "issued"),
}
_ATTEMPTED_ACTIONS = frozenset({"fail", "reverse"})  # event payout_link.attempted
# a forced status -> the move it amounts to
_FORCED_ACTION = {"processing": "claim", "processed": "process", "expired": "expire",
                  "cancelled": "cancel", "rejected": "reject"}
CONTACT_TYPES = frozenset({"customer", "employee", "vendor", "self"})
CREATE_FIELDS = frozenset(
    {
        "account_number",
        "contact",
        "amount",
        "currency",
        "purpose",
        "description",
        "receipt",
        "send_sms",
        "send_email",
        "notes",
        "expire_by",
    }
)
CONTACT_FIELDS = frozenset({"id", "name", "contact", "email", "type"})
LIST_FILTERS = frozenset(
    {
        "from",
        "to",
        "count",
        "skip",
        "id",
        "contact_id",
        "contact_phone_number",
        "contact_email",
        "fund_account_id",
        "purpose",
        "status",
        "receipt",
        "short_url",
        "account_number",
    }
)
# list filter -> entity key it compares with (plain equality)
_EQ_FILTERS: dict[str, str] = {
    "id": "id",
    "contact_id": "contact_id",
    "fund_account_id": "fund_account_id",
    "purpose": "purpose",
    "status": "status",
    "receipt": "receipt",
    "short_url": "short_url",
}
IDEMPOTENCY_HEADER = "X-Payout-Idempotency"
MIN_EXPIRY_LEAD_S = 15 * 60
# Razorpay documents no upper bound for expire_by; the simulator assumes one year, the
# same as the connector (streams/connectors/razorpay/transformers.py), so the two agree.
MAX_EXPIRY_LEAD_S = 365 * 24 * 3600

_ALNUM = string.ascii_letters + string.digits
_ACCOUNT_RE = re.compile(r"[A-Za-z0-9]{5,40}")
_CONTACT_ID_RE = re.compile(r"cont_[A-Za-z0-9]{14}")
_PHONE_RE = re.compile(r"\+?[0-9]{8,15}")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_IDEM_RE = re.compile(r"[A-Za-z0-9 _-]{4,36}")
_5XX_DESCRIPTIONS = {
    500: "The server encountered an error. The incident has been reported to admins.",
    502: "Bad gateway. Please try again after some time.",
    503: "Service temporarily unavailable. Please try again after some time.",
    504: "Gateway timeout. Please try again after some time.",
}

FieldError = tuple[str | None, str]  # (field or None, description)


# --------------------------------------------------------------------------- config


@dataclass
class SimConfig:
    """Behaviour knobs; every one is also settable at runtime via ``POST /_sim/config``."""

    latency_ms: float = 100.0
    jitter_ms: float = 20.0
    honour_idempotency_header: bool = False
    insufficient_funds_above: int = 10**12
    faults: dict[str, float] = field(default_factory=lambda: dict.fromkeys(FAULT_KINDS, 0.0))
    slow_ms: float = 2000.0
    hang_ms: float = 30000.0
    retry_after_ratio: float = 0.5
    faults_on_reads: bool = False
    seed: int | None = None
    # An outage: every API call (create and reads) answers this 5xx from the gateway,
    # before any work; 0 = none. Set and cleared at runtime (chaos's long outages).
    outage_status: int = 0
    # new links start "pending" (an approval workflow) instead of "issued"
    approval_workflow: bool = False
    # webhooks (common.WEBHOOK_KNOBS); none are sent without a URL
    webhook_url: str | None = None
    webhook_retries: int = 3
    webhook_retry_ms: float = 1000.0  # doubling per re-send
    webhook_timeout_s: float = 5.0
    webhook_delay_ms: float = 0.0
    webhook_duplicate: float = 0.0
    webhook_drop: float = 0.0
    webhook_forge: float = 0.0
    webhook_reserialize: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "jitter_ms": self.jitter_ms,
            "honour_idempotency_header": self.honour_idempotency_header,
            "insufficient_funds_above": self.insufficient_funds_above,
            "faults": dict(self.faults),
            "slow_ms": self.slow_ms,
            "hang_ms": self.hang_ms,
            "retry_after_ratio": self.retry_after_ratio,
            "faults_on_reads": self.faults_on_reads,
            "seed": self.seed,
            "outage_status": self.outage_status,
            "approval_workflow": self.approval_workflow,
            **{key: getattr(self, key) for key in WEBHOOK_KNOBS},
        }

    def copy(self) -> SimConfig:
        return SimConfig(**{**self.__dict__, "faults": dict(self.faults)})

    def apply(self, patch: Mapping[str, Any]) -> None:
        """Validate and apply a partial update; raises ValueError and changes nothing on error.

        Fault probabilities may be given flat (``{"error_5xx": 0.1}``) or nested
        (``{"faults": {"error_5xx": 0.1}}``); they are mutually exclusive per request, so
        their sum must be <= 1.
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
            elif key in ("latency_ms", "jitter_ms", "slow_ms", "hang_ms"):
                setattr(new, key, _non_negative(key, value))
            elif key == "retry_after_ratio":
                new.retry_after_ratio = _probability(key, value)
            elif key in WEBHOOK_CHECKS:
                setattr(new, key, WEBHOOK_CHECKS[key](key, value))
            elif key in ("honour_idempotency_header", "faults_on_reads", "approval_workflow"):
                if not isinstance(value, bool):
                    raise ValueError(f"{key} must be a boolean")
                setattr(new, key, value)
            elif key == "insufficient_funds_above":
                if type(value) is not int or value < 0:
                    raise ValueError(f"{key} must be a non-negative integer (paise)")
                new.insufficient_funds_above = value
            elif key == "seed":
                if value is not None and type(value) is not int:
                    raise ValueError("seed must be an integer or null")
                new.seed = value
            elif key == "outage_status":
                if type(value) is not int or not (value == 0 or 500 <= value <= 599):
                    raise ValueError("outage_status must be 0 (none) or a 5xx status")
                new.outage_status = value
            else:
                raise ValueError(f"unknown config key {key!r}")
        if sum(new.faults.values()) > 1.0 + 1e-9:
            raise ValueError("fault probabilities must add up to at most 1")
        self.__dict__.update(new.__dict__)


def load_credentials(path: str | None = None, env: Mapping[str, str] | None = None) -> dict[str, dict[str, str]]:
    """Credentials from ``--credentials`` file, else ``SIM_CREDENTIALS`` env JSON, else the dev default."""
    env = os.environ if env is None else env
    if path:
        raw: Any = orjson.loads(Path(path).read_bytes())
    elif env.get("SIM_CREDENTIALS"):
        raw = orjson.loads(env["SIM_CREDENTIALS"])
    else:
        return {k: dict(v) for k, v in DEFAULT_CREDENTIALS.items()}
    if not isinstance(raw, dict) or not raw:
        raise ValueError("credentials must be a non-empty JSON object {key_id: {...}}")
    out: dict[str, dict[str, str]] = {}
    for key_id, cred in raw.items():
        if (
            not isinstance(cred, dict)
            or not isinstance(cred.get("key_secret"), str)
            or not isinstance(cred.get("account_number"), str)
        ):
            # name the key id only: never echo a secret
            raise ValueError(f"credential {key_id!r} needs string key_secret and account_number")
        out[str(key_id)] = {"key_secret": cred["key_secret"], "account_number": cred["account_number"]}
        for optional in ("webhook_secret", "account_id"):
            value = cred.get(optional)
            if value is None:
                continue
            if not isinstance(value, str) or not value:
                raise ValueError(f"credential {key_id!r}: {optional} must be a non-empty string")
            out[str(key_id)][optional] = value
    return out


def account_id_for(account_number: str) -> str:
    """The ``acc_…`` id webhooks name an account by, when its credentials give none."""
    digest = int.from_bytes(hashlib.sha256(account_number.encode()).digest()[:12], "big")
    chars = []
    for _ in range(14):
        digest, i = divmod(digest, len(_ALNUM))
        chars.append(_ALNUM[i])
    return "acc_" + "".join(chars)


def sign_webhook(body: bytes, secret: str | bytes) -> str:
    """``X-Razorpay-Signature``: hex HMAC-SHA256 of the raw body, keyed with the webhook secret."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def render_webhook(payload: Any, spec: RenderSpec) -> tuple[bytes, dict[str, str]]:
    """One delivery of a webhook event: the body bytes and Razorpay's headers."""
    body = json_body(payload, spec.variant)
    signature = sign_webhook(body, spec.secret)
    if spec.tamper:  # changed after signing: the signature no longer matches
        body = json_body(tamper_json(payload), spec.variant)
    headers = {"Content-Type": "application/json", WEBHOOK_SIGNATURE_HEADER: signature}
    if spec.event_id is not None:
        headers[WEBHOOK_EVENT_ID_HEADER] = spec.event_id
    return body, headers


def walk_path(path: str, rng: random.Random) -> list[str]:
    """A walk path (common.WALK_PATHS) as Razorpay moves, from ``issued``."""
    if path == "processed":
        return ["claim", "process"]
    if path == "expired":
        return ["expire"]
    if path == "cancelled":
        return ["cancel"]
    if path == "reversed":  # reversed: attempted again and paid, or left to expire
        return ["claim", "process", "reverse", *(["claim", "process"] if rng.random() < 0.5 else ["expire"])]
    if path == "failed_then_processed":
        return ["claim", "fail", "claim", "process"]
    return ["claim", "fail", "expire"]  # failed: the recipient never retried


# ----------------------------------------------------------------------- validation


def _error_body(
    description: str,
    *,
    field: str | None = None,
    code: str = "BAD_REQUEST_ERROR",
    source: str = "business",
    step: str = "payout_link_creation",
    reason: str = "input_validation_failed",
) -> dict[str, Any]:
    err: dict[str, Any] = {
        "code": code,
        "description": description,
        "source": source,
        "step": step,
        "reason": reason,
        "metadata": {},
    }
    if field is not None:
        err["field"] = field
    return {"error": err}


def _blank(value: Any) -> bool:
    return value is None or value == ""


def validate_contact(contact: Any) -> FieldError | None:
    """Contact rules from the reference: either ``{id}`` or ``{name, contact/email, type}``."""
    if contact is None:
        return "contact", "The contact field is required."
    if not isinstance(contact, dict):
        return "contact", "The contact must be an object."
    for key in sorted(contact.keys() - CONTACT_FIELDS):
        return f"contact.{key}", f"{key} is/are not required and should not be sent"
    phone, email = contact.get("contact"), contact.get("email")
    if contact.get("id") is not None:
        if not _blank(phone) or not _blank(email):
            return "contact", "contact.id should not be sent along with contact.contact or contact.email"
        if not isinstance(contact["id"], str) or not _CONTACT_ID_RE.fullmatch(contact["id"]):
            return "contact.id", "The contact.id is invalid."
        return None
    if _blank(phone) and _blank(email):
        return "contact", "Either contact.id, contact.contact or contact.email is required."
    name = contact.get("name")
    if not isinstance(name, str) or not 3 <= len(name) <= 50:
        return "contact.name", "The contact.name must be between 3 and 50 characters."
    if not _blank(phone) and (not isinstance(phone, str) or not _PHONE_RE.fullmatch(phone)):
        return "contact.contact", "The contact.contact format is invalid."
    if not _blank(email) and (not isinstance(email, str) or len(email) > 255 or not _EMAIL_RE.fullmatch(email)):
        return "contact.email", "The contact.email must be a valid email address."
    ctype = contact.get("type")
    if ctype is not None and ctype not in CONTACT_TYPES:
        return "contact.type", "Invalid type: " + str(ctype)
    return None


def validate_create(body: Any, now: float) -> FieldError | None:
    """Input validation of a create body (no credential/account/contact-store checks).

    Returns the first ``(field, description)`` failure in a fixed order, or None.
    """
    if not isinstance(body, dict):
        return None, "The request body must be a JSON object."
    for key in sorted(body.keys() - CREATE_FIELDS):
        return key, f"{key} is/are not required and should not be sent"
    account = body.get("account_number")
    if account is None:
        return "account_number", "The account number field is required."
    if not isinstance(account, str) or not _ACCOUNT_RE.fullmatch(account):
        return "account_number", "The account number must be 5 to 40 alphanumeric characters."
    failure = validate_contact(body.get("contact"))
    if failure is not None:
        return failure
    amount = body.get("amount")
    if amount is None:
        return "amount", "The amount field is required."
    if type(amount) is not int:
        return "amount", "The amount must be an integer."
    if amount < 100:
        return "amount", "The amount must be atleast INR 1.00."
    currency = body.get("currency")
    if currency is None:
        return "currency", "The currency field is required."
    if currency != "INR":
        return "currency", "Currency is not supported."
    purpose = body.get("purpose")
    if _blank(purpose):
        return "purpose", "The purpose field is required."
    if not isinstance(purpose, str) or len(purpose) > 30:
        return "purpose", "The purpose may not be greater than 30 characters."
    description = body.get("description")
    if _blank(description):
        return "description", "The description field is required."
    if not isinstance(description, str) or len(description) > 255:
        return "description", "The description may not be greater than 255 characters."
    receipt = body.get("receipt")
    if receipt is not None and (not isinstance(receipt, str) or len(receipt) > 40):
        return "receipt", "The receipt may not be greater than 40 characters."
    for flag in ("send_sms", "send_email"):
        if body.get(flag) is not None and not isinstance(body[flag], bool):
            return flag, f"The {flag} field must be true or false."
    notes = body.get("notes")
    if notes is not None and notes != []:
        if not isinstance(notes, dict):
            return "notes", "The notes must be an object."
        if len(notes) > 15:
            return "notes", "Number of fields in notes should be less than or equal to 15"
        for key, value in notes.items():
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                return "notes", f"notes.{key} must be a string"
            if len(key) > 256 or len(str(value)) > 256:
                return "notes", f"notes.{key} may not be greater than 256 characters"
    expire_by = body.get("expire_by")
    if expire_by is not None:
        if type(expire_by) is not int:
            return "expire_by", "The expire_by must be an integer (unix seconds)."
        if expire_by < now + MIN_EXPIRY_LEAD_S:
            return "expire_by", "expire_by should be at least 15 minutes after the current time"
        if expire_by > now + MAX_EXPIRY_LEAD_S:
            return "expire_by", "expire_by should be at most 365 days after the current time"
    return None


# ----------------------------------------------------------------------- simulator


class _Link:
    """One stored link: the public entity plus what only the simulator needs."""

    __slots__ = ("entity", "account")

    def __init__(self, entity: dict[str, Any], account: str) -> None:
        self.entity = entity
        self.account = account


class PayoutLinkSimulator:
    """State + handlers. One instance per process; build the app with :meth:`make_app`."""

    def __init__(
        self,
        config: SimConfig | None = None,
        credentials: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.config = config or SimConfig()
        self._initial_config = self.config.copy()
        creds = credentials if credentials is not None else DEFAULT_CREDENTIALS
        self._creds: dict[str, tuple[str, str]] = {
            k: (v["key_secret"], v["account_number"]) for k, v in creds.items()
        }
        # account number -> (acc_ id, webhook secret): the first credential naming it wins
        self._webhook_accounts: dict[str, tuple[str, bytes]] = {}
        for v in creds.values():
            acct = v["account_number"]
            if acct not in self._webhook_accounts:
                self._webhook_accounts[acct] = (
                    v.get("account_id") or account_id_for(acct),
                    (v.get("webhook_secret") or DEFAULT_WEBHOOK_SECRET).encode(),
                )
        # exact "Basic …" header -> account number: the hot-path auth is one dict lookup
        self._auth_headers: dict[str, str] = {
            "Basic " + base64.b64encode(f"{k}:{s}".encode()).decode(): acct
            for k, (s, acct) in self._creds.items()
        }
        self._rand = random.Random()  # ids, jitter: need not be reproducible
        self._fault_rng = random.Random(self.config.seed)
        self.webhooks = WebhookDispatcher(self.config.seed)
        self.walker = LinkWalker(self)
        self._reset_state()

    # -- state ------------------------------------------------------------------
    def _reset_state(self) -> None:
        self.links: dict[str, _Link] = {}
        self.by_receipt: dict[str, list[str]] = {}
        # account -> (created_at, id) of its links in creation order: list pages by time
        # window and skip in O(log n + count), as an indexed API would, not by a scan.
        self._order: dict[str, tuple[list[int], list[str]]] = {}
        self.idempotency: dict[tuple[str, str], tuple[Any, str]] = {}
        self.contacts: dict[str, dict[str, Any]] = {}
        self._contact_by_details: dict[tuple[Any, ...], str] = {}
        self.stats = _Stats()
        self._fault_rng.seed(self.config.seed)
        self.webhooks.reset(self.config.seed)

    def _index(self, account: str, created_at: int, link_id: str) -> None:
        created, ids = self._order.setdefault(account, ([], []))
        if created and created_at < created[-1]:
            created_at = created[-1]  # the clock stepped back: keep the order (a second)
        created.append(created_at)
        ids.append(link_id)

    def reset(self, *, config: bool = False) -> None:
        """Forget all links, counters and webhook records (and optionally runtime config changes)."""
        if config:
            self.config = self._initial_config.copy()
        self._reset_state()

    def ledger(self) -> dict[str, Any]:
        by_status: dict[str, int] = {}
        for link in self.links.values():
            _bump(by_status, link.entity["status"])
        return {
            "links": len(self.links),
            "by_receipt": {r: list(ids) for r, ids in self.by_receipt.items()},
            "duplicate_receipts": {r: len(ids) for r, ids in self.by_receipt.items() if len(ids) > 1},
            "by_status": by_status,
        }

    # -- helpers ------------------------------------------------------------------
    def _new_id(self, prefix: str, taken: Mapping[str, Any]) -> str:
        while True:
            candidate = prefix + "".join(self._rand.choices(_ALNUM, k=14))
            if candidate not in taken:
                return candidate

    def _account_for(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization")
        if header is None:
            return None
        account = self._auth_headers.get(header)
        if account is not None:
            return account
        # slow path: tolerate scheme case / padding variants the fast table lacks
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            key_id, _, secret = base64.b64decode(token.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        cred = self._creds.get(key_id)
        return cred[1] if cred is not None and cred[0] == secret else None

    def _respond(
        self, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        _bump(self.stats.statuses, str(status))
        return web.Response(
            body=orjson.dumps(payload),
            status=status,
            headers={**_JSON_HEADERS, **headers} if headers else _JSON_HEADERS,
        )

    def _fail(self, status: int, description: str, **kw: Any) -> web.Response:
        return self._respond(status, _error_body(description, **kw))

    def _unauthorized(self) -> web.Response:
        return self._fail(401, "Authentication failed", source="NA", step="NA", reason="NA")

    async def _latency(self) -> None:
        cfg = self.config
        delay = cfg.latency_ms + (self._rand.random() * cfg.jitter_ms if cfg.jitter_ms else 0.0)
        if delay > 0:
            await asyncio.sleep(delay / 1000.0)

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

    def _gone(self, request: web.Request) -> web.Response:
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
        # aiohttp swallows the ConnectionError when it tries to write this
        return web.Response(status=499)

    def _outage(self, step: str) -> web.Response:
        _bump(self.stats.events, "outage_answers")
        status = self.config.outage_status
        return self._fail(status, _5XX_DESCRIPTIONS.get(status, _5XX_DESCRIPTIONS[503]),
                          code="SERVER_ERROR", source="internal", step=step,
                          reason="server_error")

    async def _pre_fault(self, request: web.Request, step: str) -> tuple[str | None, web.Response | None]:
        """Draw and apply the faults that happen before any work. Returns (fault, early answer)."""
        fault = self._draw_fault()
        if fault is None or fault == "lost_after_create":
            return fault, None
        cfg = self.config
        if fault == "slow":
            await asyncio.sleep(cfg.slow_ms / 1000.0)
            return fault, None
        if fault == "error_5xx":
            status = self._fault_rng.choice((500, 502, 503, 504))
            return fault, self._fail(
                status, _5XX_DESCRIPTIONS[status], code="SERVER_ERROR", source="internal",
                step=step, reason="server_error",
            )
        if fault == "throttle_429":
            headers = {"Retry-After": "1"} if self._fault_rng.random() < cfg.retry_after_ratio else None
            return fault, self._respond(
                429,
                _error_body("Too many requests", source="internal", step=step, reason="too_many_requests"),
                headers,
            )
        # timeout_before_create: hang so the client gives up; never do the work
        try:
            await asyncio.sleep(cfg.hang_ms / 1000.0)
        except asyncio.CancelledError:  # a runner with handler_cancellation=True
            _bump(self.stats.events, "client_gone")
            raise
        if self._client_gone(request):
            return fault, self._gone(request)
        return fault, self._fail(
            504, _5XX_DESCRIPTIONS[504], code="SERVER_ERROR", source="internal", step=step, reason="server_error"
        )

    def _refresh(self, link: _Link, now: float) -> dict[str, Any]:
        """Lazy expiry: an issued link past ``expire_by`` reads as expired (and says so)."""
        entity = link.entity
        expire_by = entity["expire_by"]
        if expire_by is not None and entity["status"] == "issued" and now >= expire_by:
            entity["status"] = "expired"
            entity["expired_at"] = expire_by
            if self.config.webhook_url:
                self._notify(link, "payout_link.expired")
        return entity

    # -- lifecycle and webhooks ------------------------------------------------------
    def _move(self, link: _Link, action: str, *, force: bool = False, now: float | None = None) -> str | None:
        """One lifecycle move (:data:`LIFECYCLE_ACTIONS`) with its webhook; returns why it
        is refused (an illegal move without ``force``), else None."""
        sources, target = LIFECYCLE_ACTIONS[action]
        now = time.time() if now is None else now
        entity = self._refresh(link, now)
        before = entity["status"]
        if before not in sources and not force:
            return f"illegal move {action!r}: {before} -> {target} (legal from {', '.join(sorted(sources))})"
        entity["status"] = target
        if action == "claim" or (action == "process" and before != "processing"):
            entity["attempt_count"] += 1  # the recipient submitted details: a payout attempt
            entity["fund_account_id"] = self._new_id("fa_", {})
            entity["payout_id"] = None
        if action == "process":
            entity["payout_id"] = self._new_id("pout_", {})
        elif action == "expire":
            entity["expired_at"] = int(now)
        elif action == "cancel":
            entity["cancelled_at"] = int(now)
        _bump(self.stats.events, "lifecycle_moves")
        if self.config.webhook_url:
            self._notify(link, "payout_link.attempted" if action in _ATTEMPTED_ACTIONS else "payout_link." + target)
        return None

    def _notify(self, link: _Link, event: str) -> None:
        """Send ``event`` for the link as it is now (callers check ``webhook_url`` first)."""
        account_id, secret = self._webhook_accounts.get(link.account) or (
            account_id_for(link.account), DEFAULT_WEBHOOK_SECRET.encode())
        entity = dict(link.entity)  # as it is now: later moves must not change this event
        payload = {
            "entity": "event", "account_id": account_id, "event": event, "contains": ["payout_link"],
            "payload": {"payout_link": {"entity": entity}}, "created_at": int(time.time()),
        }
        self.webhooks.emit(
            WebhookSettings.of(self.config), event=event, link_id=entity["id"], reference=entity["receipt"],
            payload=payload, secret=secret, render=render_webhook, counters=self.stats.events,
            event_id=self._new_id("evt_", {}), extra={"status": entity["status"]},
        )

    async def drain_webhooks(self, timeout: float | None = None) -> bool:
        """Wait until no webhook delivery is in flight (tests; the end of a chaos run)."""
        return await self.webhooks.drain(timeout)

    async def aclose(self) -> None:
        """Stop webhook deliveries and close their HTTP session."""
        await self.webhooks.aclose()

    # LifecycleSubject (common.LinkWalker): our reference is the receipt (else the id)
    def walk_candidates(self, references: Sequence[str] | None) -> list[tuple[str, str]]:
        now = time.time()
        if references is None:
            return [(link.entity["receipt"] or lid, lid) for lid, link in self.links.items()
                    if self._refresh(link, now)["status"] not in FINAL_STATUSES]
        out: list[tuple[str, str]] = []
        for ref in dict.fromkeys(references):
            ids = self.by_receipt.get(ref)
            if ids is None and ref in self.links and self.links[ref].entity["receipt"] is None:
                ids = [ref]
            out.extend((ref, lid) for lid in ids or ())
        return out

    def walk_steps(self, link_id: str, path: str, rng: random.Random) -> list[str]:
        pending = self.links[link_id].entity["status"] == "pending"
        return (["approve"] if pending else []) + walk_path(path, rng)

    def walk_legal(self, link_id: str, action: str) -> bool:
        return self._refresh(self.links[link_id], time.time())["status"] in LIFECYCLE_ACTIONS[action][0]

    def walk_apply(self, link_id: str, action: str) -> bool:
        return self._move(self.links[link_id], action) is None

    def walk_status(self, link_id: str) -> str:
        status: str = self._refresh(self.links[link_id], time.time())["status"]
        return status

    def lifecycle_links(self) -> list[tuple[str, str, str, bool]]:
        now = time.time()
        out: list[tuple[str, str, str, bool]] = []
        for lid, link in self.links.items():
            status = self._refresh(link, now)["status"]
            out.append((link.entity["receipt"] or lid, lid, status, status in FINAL_STATUSES))
        return out

    # -- API handlers ------------------------------------------------------------
    async def create(self, request: web.Request) -> web.Response:
        stats = self.stats
        _bump(stats.requests, "create")
        raw = await request.read()
        account = self._account_for(request)
        await self._latency()
        if self.config.outage_status:
            return self._outage("payout_link_creation")
        if account is None:
            return self._unauthorized()
        fault = None
        if self._any_fault():
            fault, early = await self._pre_fault(request, "payout_link_creation")
            if early is not None:
                return early
        if self._client_gone(request):
            return self._gone(request)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self._fail(400, "The request body is not valid JSON.")
        now = time.time()
        failure = validate_create(body, now)
        if failure is not None:
            return self._fail(400, failure[1], field=failure[0])
        if body["account_number"] != account:
            return self._fail(400, "The account number is invalid.", field="account_number")

        cfg = self.config
        idem_key = None
        if cfg.honour_idempotency_header:
            key = request.headers.get(IDEMPOTENCY_HEADER)
            if key is not None:
                if not _IDEM_RE.fullmatch(key):
                    return self._fail(
                        400, "X-Payout-Idempotency must be 4 to 36 characters of [A-Za-z0-9 _-].",
                        field=IDEMPOTENCY_HEADER,
                    )
                idem_key = (account, key)
                seen = self.idempotency.get(idem_key)
                if seen is not None:
                    if seen[0] != body:
                        return self._fail(
                            400, "Different request body sent for the same Idempotency Header",
                            field=IDEMPOTENCY_HEADER,
                        )
                    _bump(stats.events, "idempotent_replays")
                    entity = self._refresh(self.links[seen[1]], now)
                    if fault == "lost_after_create":
                        return self._drop(request)
                    return self._respond(200, entity)

        contact = body["contact"]
        if contact.get("id") is not None:
            stored = self.contacts.get(contact["id"])
            if stored is None:
                return self._fail(400, "The id provided does not exist", field="contact.id")
        else:
            stored = self._contact(contact)
        if body.get("send_sms") and _blank(stored["contact"]):
            return self._fail(400, "send_sms cannot be true when contact.contact is not given.", field="send_sms")
        if body.get("send_email") and _blank(stored["email"]):
            return self._fail(400, "send_email cannot be true when contact.email is not given.", field="send_email")
        if body["amount"] > cfg.insufficient_funds_above:
            _bump(stats.events, "insufficient_funds")
            return self._fail(
                400,
                "Your account does not have enough balance to carry out the payout operation.",
                reason="insufficient_funds",
            )

        link_id = self._new_id("poutlk_", self.links)
        receipt = body.get("receipt")
        entity = {
            "id": link_id,
            "entity": "payout_link",
            "contact": dict(stored),
            "contact_id": stored["id"],
            "fund_account_id": None,
            "payout_id": None,
            "purpose": body["purpose"],
            "status": "pending" if cfg.approval_workflow else "issued",
            "amount": body["amount"],
            "currency": "INR",
            "description": body["description"],
            "short_url": f"http://{request.host}/l/{link_id[7:]}",
            "send_sms": bool(body.get("send_sms")),
            "send_email": bool(body.get("send_email")),
            "created_at": int(now),
            "cancelled_at": None,
            "attempt_count": 0,
            "receipt": receipt,
            # real Razorpay (PHP) serialises empty notes as [] -- clients must cope
            "notes": body.get("notes") or [],
            "expire_by": body.get("expire_by"),
            "expired_at": None,
        }
        link = _Link(entity, account)
        self.links[link_id] = link
        self._index(account, entity["created_at"], link_id)
        if receipt is not None:
            ids = self.by_receipt.get(receipt)
            if ids is None:
                self.by_receipt[receipt] = [link_id]
            else:
                ids.append(link_id)
        if idem_key is not None:
            self.idempotency[idem_key] = (body, link_id)
        _bump(stats.events, "links_created")
        if cfg.webhook_url:
            self._notify(link, "payout_link." + entity["status"])
        if fault == "lost_after_create":
            return self._drop(request)
        return self._respond(200, entity)

    def _contact(self, contact: dict[str, Any]) -> dict[str, Any]:
        """Find-or-create a contact by its details (Razorpay de-duplicates identical contacts)."""
        details = (contact.get("name"), contact.get("contact") or None, contact.get("email") or None, contact.get("type"))
        cid = self._contact_by_details.get(details)
        if cid is None:
            cid = self._new_id("cont_", self.contacts)
            self._contact_by_details[details] = cid
            self.contacts[cid] = {
                "id": cid, "name": details[0], "contact": details[1], "email": details[2], "type": details[3],
            }
        return self.contacts[cid]

    async def _read_prologue(self, request: web.Request, endpoint: str) -> tuple[str | None, web.Response | None]:
        """Shared start of non-create API calls: count, auth, latency, optional faults."""
        _bump(self.stats.requests, endpoint)
        account = self._account_for(request)
        await self._latency()
        if self.config.outage_status:
            return None, self._outage("NA")
        if account is None:
            return None, self._unauthorized()
        if self.config.faults_on_reads and self._any_fault() and endpoint != "cancel":
            fault, early = await self._pre_fault(request, "NA")
            if early is not None:
                return None, early
            if fault == "lost_after_create":
                return None, self._drop(request)
        return account, None

    def _lookup(self, request: web.Request, account: str) -> _Link | None:
        link = self.links.get(request.match_info["link_id"])
        return link if link is not None and link.account == account else None

    def _no_such_id(self) -> web.Response:
        return self._fail(400, "The id provided does not exist", field="id", step="NA")

    async def fetch(self, request: web.Request) -> web.Response:
        account, early = await self._read_prologue(request, "fetch")
        if early is not None:
            return early
        link = self._lookup(request, account)  # type: ignore[arg-type]
        if link is None:
            return self._no_such_id()
        return self._respond(200, self._refresh(link, time.time()))

    async def cancel(self, request: web.Request) -> web.Response:
        account, early = await self._read_prologue(request, "cancel")
        if early is not None:
            return early
        link = self._lookup(request, account)  # type: ignore[arg-type]
        if link is None:
            return self._no_such_id()
        now = time.time()
        entity = self._refresh(link, now)
        if entity["status"] != "issued":
            return self._fail(
                400, f"Payout link cannot be cancelled in {entity['status']} status.",
                step="payout_link_cancellation",
            )
        self._move(link, "cancel", now=now)
        return self._respond(200, entity)

    async def list_links(self, request: web.Request) -> web.Response:
        account, early = await self._read_prologue(request, "list")
        if early is not None:
            return early
        query = request.query
        for key in query:
            if key not in LIST_FILTERS:
                return self._fail(400, f"{key} is/are not required and should not be sent", field=key, step="NA")
        ints: dict[str, int] = {}
        for key, lo, hi in (("count", 1, 100), ("skip", 0, None), ("from", 0, None), ("to", 0, None)):
            if key in query:
                try:
                    ints[key] = int(query[key])
                except ValueError:
                    return self._fail(400, f"The {key} must be an integer.", field=key, step="NA")
                if ints[key] < lo or (hi is not None and ints[key] > hi):
                    bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
                    return self._fail(400, f"The {key} must be {bound}.", field=key, step="NA")
        if "status" in query and query["status"] not in STATUSES:
            return self._fail(400, "Invalid status: " + query["status"], field="status", step="NA")
        if query.get("account_number", account) != account:
            return self._fail(400, "The account number is invalid.", field="account_number", step="NA")
        count, skip = ints.get("count", 10), ints.get("skip", 0)
        t_from, t_to = ints.get("from"), ints.get("to")
        eq = [(_EQ_FILTERS[k], v) for k, v in query.items() if k in _EQ_FILTERS]
        phone, email = query.get("contact_phone_number"), query.get("contact_email")

        if account is not None and not eq and phone is None and email is None \
                and "id" not in query and "receipt" not in query:
            return self._respond(200, self._list_page(account, t_from, t_to, skip, count))
        if "id" in query:
            candidates: Any = [query["id"]]
        elif "receipt" in query:
            candidates = reversed(self.by_receipt.get(query["receipt"], ()))
        else:
            candidates = reversed(self.links)  # dicts keep insertion order: newest last
        now = time.time()
        items: list[dict[str, Any]] = []
        for link_id in candidates:
            link = self.links.get(link_id)
            if link is None or link.account != account:
                continue
            entity = self._refresh(link, now)
            if t_from is not None and entity["created_at"] < t_from:
                continue
            if t_to is not None and entity["created_at"] > t_to:
                continue
            if any(entity[k] != v for k, v in eq):
                continue
            if phone is not None and entity["contact"]["contact"] != phone:
                continue
            if email is not None and entity["contact"]["email"] != email:
                continue
            if skip:
                skip -= 1
                continue
            items.append(entity)
            if len(items) >= count:
                break
        return self._respond(200, {"entity": "collection", "count": len(items), "items": items})

    def _list_page(self, account: str, t_from: int | None, t_to: int | None, skip: int,
                   count: int) -> dict[str, Any]:
        """A page of the account's links in a ``from``/``to`` window, newest first."""
        created, ids = self._order.get(account, ([], []))
        hi = bisect.bisect_right(created, t_to) if t_to is not None else len(created)
        lo = bisect.bisect_left(created, t_from) if t_from is not None else 0
        now = time.time()
        first = hi - 1 - skip
        items = [self._refresh(self.links[ids[i]], now)
                 for i in range(first, max(lo, first - count + 1) - 1, -1)]
        return {"entity": "collection", "count": len(items), "items": items}

    async def sim_seed(self, request: web.Request) -> web.Response:
        """``{"links": [[receipt, amount_paise, created_at], ...]}``: links made as if
        created at those times (non-decreasing), for reconciliation at scale; answers
        their ids. The first account's unless ``account_number`` names another."""
        body = orjson.loads(await request.read())
        account = body.get("account_number") or next(iter(self._creds.values()))[1]
        made = []
        for receipt, amount, created_at in body["links"]:
            link_id = self._new_id("poutlk_", self.links)
            entity = {
                "id": link_id, "entity": "payout_link",
                "contact": {"id": "cont_seeded", "entity": "contact", "name": "Seeded Payee",
                            "contact": None, "email": "payee@example.com", "type": None},
                "contact_id": "cont_seeded", "fund_account_id": None, "payout_id": None,
                "purpose": "refund", "status": "issued", "amount": int(amount),
                "currency": "INR", "description": "seeded",
                "short_url": f"http://{request.host}/l/{link_id[7:]}",
                "send_sms": False, "send_email": False, "created_at": int(created_at),
                "cancelled_at": None, "attempt_count": 0, "receipt": receipt, "notes": [],
                "expire_by": None, "expired_at": None,
            }
            self.links[link_id] = _Link(entity, account)
            self._index(account, int(created_at), link_id)
            self.by_receipt.setdefault(receipt, []).append(link_id)
            made.append(link_id)
        return web.Response(body=orjson.dumps({"ids": made}), headers=_JSON_HEADERS)

    async def short_url(self, request: web.Request) -> web.Response:
        """The page a recipient would open; plain text so a human can see the state."""
        _bump(self.stats.requests, "short_url")
        link = self.links.get("poutlk_" + request.match_info["suffix"])
        if link is None:
            _bump(self.stats.statuses, "404")
            return web.Response(status=404, text="no such payout link\n")
        e = link.entity
        _bump(self.stats.statuses, "200")
        return web.Response(text=f"payout link {e['id']}: {e['status']}, INR {e['amount'] / 100:.2f} for {e['contact']['name']}\n")

    async def not_found(self, request: web.Request) -> web.Response:
        _bump(self.stats.requests, "unknown")
        return self._fail(404, "The requested URL was not found on the server.", source="NA", step="NA", reason="NA")

    def _any_fault(self) -> bool:
        return any(self.config.faults.values())

    # -- /_sim/ inspection ----------------------------------------------------------
    async def sim_health(self, request: web.Request) -> web.Response:
        return web.Response(body=b'{"ok":true}', headers=_JSON_HEADERS)

    async def sim_ledger(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.ledger()), headers=_JSON_HEADERS)

    async def sim_stats(self, request: web.Request) -> web.Response:
        payload = {**self.stats.to_json(), "links": len(self.links)}
        return web.Response(body=orjson.dumps(payload), headers=_JSON_HEADERS)

    async def sim_reset(self, request: web.Request) -> web.Response:
        raw = await request.read()
        opts = orjson.loads(raw) if raw.strip() else {}
        self.reset(config=bool(isinstance(opts, dict) and opts.get("config")))
        return web.Response(body=b'{"ok":true}', headers=_JSON_HEADERS)

    async def sim_config(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                patch = orjson.loads(await request.read())
                if not isinstance(patch, dict):
                    raise ValueError("config must be a JSON object")
                reseed = "seed" in patch
                self.config.apply(patch)
            except (ValueError, orjson.JSONDecodeError) as exc:
                return web.Response(status=400, body=orjson.dumps({"error": str(exc)}), headers=_JSON_HEADERS)
            if reseed:
                self._fault_rng.seed(self.config.seed)
                self.webhooks.reseed(self.config.seed)
        return web.Response(body=orjson.dumps(self.config.to_json()), headers=_JSON_HEADERS)

    async def sim_set_status(self, request: web.Request) -> web.Response:
        """Force a link's status from wherever it is: the move it amounts to, forced
        (``attempted`` is ``issued`` reached by a failure or reversal)."""
        link = self.links.get(request.match_info["link_id"])
        if link is None:
            return web.Response(status=404, body=b'{"error":"no such link"}', headers=_JSON_HEADERS)
        body = await json_object(request)
        status = body.get("status") if body is not None else None
        if status not in STATUSES:
            return web.Response(status=400, body=b'{"error":"unknown status"}', headers=_JSON_HEADERS)
        entity = link.entity
        before = entity["status"]
        if status in ("issued", "attempted"):
            default = "fail" if status == "attempted" else "approve"
            self._move(link, {"processing": "fail", "processed": "reverse", "pending": "approve"}.get(before, default),
                       force=True)
        elif status == "pending":
            entity["status"] = "pending"
            if self.config.webhook_url:
                self._notify(link, "payout_link.pending")
        else:
            self._move(link, _FORCED_ACTION[status], force=True)
        return web.Response(body=orjson.dumps(entity), headers=_JSON_HEADERS)

    async def sim_lifecycle(self, request: web.Request) -> web.Response:
        """``POST /_sim/links/{id}/lifecycle {"action", "force"?}``: one move; 409 if illegal."""
        link = self.links.get(request.match_info["link_id"])
        if link is None:
            return json_response({"error": "no such link"}, 404)
        try:
            action, force = parse_move(await json_object(request))
            if action not in LIFECYCLE_ACTIONS:
                raise ValueError(f"action must be one of {', '.join(LIFECYCLE_ACTIONS)}")
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)
        refused = self._move(link, action, force=force)
        if refused is not None:
            return json_response({"error": refused, "link": link.entity}, 409)
        return json_response(link.entity)

    async def _on_cleanup(self, app: web.Application) -> None:
        await self.aclose()

    def make_app(self) -> web.Application:
        app = web.Application()
        app[SIMULATOR_KEY] = self
        app.on_cleanup.append(self._on_cleanup)
        r = app.router
        r.add_post("/v1/payout-links", self.create)
        r.add_get("/v1/payout-links", self.list_links, allow_head=False)
        r.add_get("/v1/payout-links/{link_id}", self.fetch, allow_head=False)
        r.add_post("/v1/payout-links/{link_id}/cancel", self.cancel)
        r.add_get("/l/{suffix}", self.short_url, allow_head=False)
        r.add_get("/_sim/health", self.sim_health, allow_head=False)
        r.add_get("/_sim/ledger", self.sim_ledger, allow_head=False)
        r.add_get("/_sim/stats", self.sim_stats, allow_head=False)
        r.add_post("/_sim/reset", self.sim_reset)
        r.add_route("GET", "/_sim/config", self.sim_config)
        r.add_route("POST", "/_sim/config", self.sim_config)
        r.add_post("/_sim/links/seed", self.sim_seed)
        r.add_post("/_sim/links/{link_id}/status", self.sim_set_status)
        r.add_post("/_sim/links/{link_id}/lifecycle", self.sim_lifecycle)
        add_lifecycle_routes(r, "/_sim", self.walker, self.webhooks)
        r.add_route("*", "/{tail:.*}", self.not_found)
        return app


SIMULATOR_KEY = web.AppKey("simulator", PayoutLinkSimulator)


# ----------------------------------------------------------------------------- CLI


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m streams.devkit.sims.razorpay",
        description="RazorpayX Payout Links simulator with fault injection and a ledger.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--latency-ms", type=float, default=100.0)
    p.add_argument("--jitter-ms", type=float, default=20.0, help="uniform extra 0..jitter per call")
    p.add_argument("--credentials", help="JSON file {key_id: {key_secret, account_number}}; else env SIM_CREDENTIALS")
    idem = p.add_mutually_exclusive_group()
    idem.add_argument("--honour-idempotency-header", dest="honour_idempotency_header", action="store_true",
                      help="de-duplicate creates on X-Payout-Idempotency")
    idem.add_argument("--no-idempotency-header", dest="honour_idempotency_header", action="store_false",
                      help="ignore X-Payout-Idempotency (default: its support for links is unconfirmed)")
    p.set_defaults(honour_idempotency_header=False)
    p.add_argument("--insufficient-funds-above", type=int, default=10**12,
                   help="creates with amount (paise) above this fail with reason insufficient_funds")
    for kind in FAULT_KINDS:
        p.add_argument("--" + kind.replace("_", "-"), dest=kind, type=float, default=0.0,
                       metavar="P", help=f"probability of fault {kind} per create call")
    p.add_argument("--slow-ms", type=float, default=2000.0, help="extra latency of the 'slow' fault")
    p.add_argument("--hang-ms", type=float, default=30000.0, help="hang of the 'timeout_before_create' fault")
    p.add_argument("--retry-after-ratio", type=float, default=0.5, help="share of 429s carrying Retry-After: 1")
    p.add_argument("--faults-on-reads", action="store_true", help="also inject faults into fetch and list")
    p.add_argument("--seed", type=int, default=None, help="makes fault decisions reproducible")
    p.add_argument("--approval-workflow", action="store_true", help="new links start pending (approval)")
    p.add_argument("--webhook-url", default=None, help="POST signed payout_link.* webhooks here")
    p.add_argument("--config-json", default=None,
                   help='any other SimConfig keys as JSON, e.g. \'{"webhook_drop": 0.1}\'')
    p.add_argument("--log-level", default="INFO")
    return p


def config_from_args(args: argparse.Namespace) -> SimConfig:
    cfg = SimConfig()
    patch: dict[str, Any] = {
        "latency_ms": args.latency_ms,
        "jitter_ms": args.jitter_ms,
        "honour_idempotency_header": args.honour_idempotency_header,
        "insufficient_funds_above": args.insufficient_funds_above,
        "faults": {kind: getattr(args, kind) for kind in FAULT_KINDS},
        "slow_ms": args.slow_ms,
        "hang_ms": args.hang_ms,
        "retry_after_ratio": args.retry_after_ratio,
        "faults_on_reads": args.faults_on_reads,
        "seed": args.seed,
        "approval_workflow": args.approval_workflow,
        "webhook_url": args.webhook_url,
    }
    if args.config_json:
        extra = json.loads(args.config_json)
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


async def start_server(
    sim: PayoutLinkSimulator, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, int]:
    """Start listening; returns the runner (``await runner.cleanup()`` to stop) and the port.

    Handler cancellation stays off (aiohttp's default, unlike its TestServer), so a
    client that leaves mid-request never interrupts a create half-way: the handlers
    check for a departed client themselves, at the points where that matters.
    """
    runner = web.AppRunner(sim.make_app(), access_log=None, shutdown_timeout=1.0, handler_cancellation=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True)
    await site.start()
    return runner, runner.addresses[0][1]


async def serve(sim: PayoutLinkSimulator, host: str, port: int) -> None:
    """Serve until SIGTERM/SIGINT; print the URL line once listening."""
    runner, bound_port = await start_server(sim, host, port)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    if ":" in shown_host:
        shown_host = f"[{shown_host}]"
    sys.stdout.write(f"{URL_LINE_PREFIX}http://{shown_host}:{bound_port}\n")
    sys.stdout.flush()
    log.info(
        "listening on %s:%s; accounts for key ids %s; config %s",
        host, bound_port, sorted(sim._creds), orjson.dumps(sim.config.to_json()).decode(),
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
                        format="%(asctime)s simulator %(levelname)s %(message)s")
    try:
        config = config_from_args(args)
        credentials = load_credentials(args.credentials)
    except (ValueError, OSError) as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(PayoutLinkSimulator(config, credentials), args.host, args.port))
    return 0


# ------------------------------------------------------------------ process control


class RazorpaySimulatorProcess(SimulatorProcess):
    """This simulator as a child process (start/stop/URL handling is :class:`SimulatorProcess`'s).

    Credentials ``{key_id: {"key_secret": …, "account_number": …, "webhook_secret"?: …,
    "account_id"?: "acc_…"}}`` travel via ``SIM_CREDENTIALS`` (never argv); every other
    knob becomes a command-line flag. ``webhook`` holds webhook knobs
    (common.WEBHOOK_KNOBS, e.g. ``{"webhook_drop": 0.1, "webhook_retry_ms": 50}``).
    """

    health_path = "/_sim/health"

    def __init__(
        self,
        *,
        latency_ms: float = 0.0,
        jitter_ms: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: Mapping[str, Mapping[str, str]] | None = None,
        honour_idempotency_header: bool = False,
        insufficient_funds_above: int | None = None,
        faults: Mapping[str, float] | None = None,
        slow_ms: float | None = None,
        hang_ms: float | None = None,
        retry_after_ratio: float | None = None,
        faults_on_reads: bool = False,
        seed: int | None = None,
        approval_workflow: bool = False,
        webhook_url: str | None = None,
        webhook: Mapping[str, Any] | None = None,
        extra_args: Sequence[str] = (),
        python: str = sys.executable,
        startup_timeout: float = 15.0,
        stop_timeout: float = 5.0,
        stderr: Any = None,
    ) -> None:
        argv = [python, "-m", "streams.devkit.sims.razorpay", "--host", host, "--port", str(port),
                "--latency-ms", str(latency_ms), "--jitter-ms", str(jitter_ms)]
        argv.append("--honour-idempotency-header" if honour_idempotency_header else "--no-idempotency-header")
        for flag, value in (("--insufficient-funds-above", insufficient_funds_above), ("--slow-ms", slow_ms),
                            ("--hang-ms", hang_ms), ("--retry-after-ratio", retry_after_ratio), ("--seed", seed)):
            if value is not None:
                argv += [flag, str(value)]
        for kind, p in (faults or {}).items():
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind!r}")
            argv += ["--" + kind.replace("_", "-"), str(p)]
        if faults_on_reads:
            argv.append("--faults-on-reads")
        if approval_workflow:
            argv.append("--approval-workflow")
        knobs = {**(webhook or {}), **({"webhook_url": webhook_url} if webhook_url is not None else {})}
        if knobs:
            SimConfig().apply(knobs)  # fail here, not in the child
            argv += ["--config-json", json.dumps(knobs)]
        super().__init__(argv=argv + list(extra_args), credentials=credentials,
                         startup_timeout=startup_timeout, stop_timeout=stop_timeout, stderr=stderr)

    def ledger(self) -> dict[str, Any]:
        return self._call("GET", "/_sim/ledger")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_sim/stats")

    def reset(self, *, config: bool = False) -> None:
        self._call("POST", "/_sim/reset", {"config": config})

    def links_by_reference(self) -> dict[str, list[str]]:
        """Our reference (the link's ``receipt``) -> payout link ids."""
        by_receipt: dict[str, list[str]] = self.ledger().get("by_receipt", {})
        return {ref: [str(i) for i in ids] for ref, ids in by_receipt.items()}


def fleet_process(*, latency_ms: float, jitter_ms: float, faults: Mapping[str, float] | None,
                  hang_ms: float | None, seed: int | None, **options: Any) -> RazorpaySimulatorProcess:
    """This simulator as one of the fleet's; ``options`` are :class:`RazorpaySimulatorProcess` keywords."""
    return RazorpaySimulatorProcess(latency_ms=latency_ms, jitter_ms=jitter_ms, faults=faults,
                                    hang_ms=hang_ms, seed=seed, **options)


async def fetch_ledger(url: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """Ledger of a running simulator (``url`` = its base URL), from async code."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async with session.get(url.rstrip("/") + "/_sim/ledger") as resp:
            resp.raise_for_status()
            ledger: dict[str, Any] = orjson.loads(await resp.read())
            return ledger


if __name__ == "__main__":
    sys.exit(main())
