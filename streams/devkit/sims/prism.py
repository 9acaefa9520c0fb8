"""A Prism-compatible payout server: a local, fault-injecting stand-in for Hyperswitch Prism.

Why it exists: no Prism connector implements ``PayoutService/CreateLink`` (reference:
shared/reference/prism-payouts.md), so a Prism client can only be shown to keep "exactly
one link per request" against a server of our own that (a) speaks Prism on the wire --
``types.PayoutService`` over gRPC with server reflection v1 and ``grpc.health.v1``, the
same metadata, the same gRPC status for each connector HTTP status, error details as a
raw ``types.ConnectorError`` / ``types.IntegrationError`` in ``grpc-status-details-bin``
-- (b) fails the way Prism and its connectors do (UNAVAILABLE, RESOURCE_EXHAUSTED, slow
answers, DEADLINE_EXCEEDED before and -- worst -- *after* a payout was created) and (c)
lets a checker count what really exists: the ledger lists payouts per
``merchant_payout_id``. Prism keeps no state and detects no duplicates, so two
CreateLink calls with one merchant_payout_id make two payouts here too, and Get by
merchant_payout_id answers what the simulated connector holds.

One process serves two ports: gRPC (``--port``; real Prism uses 8000) and an HTTP control
port (``--control-port``) with the other simulators' control surface under
``/_sim/prism/``: ``GET health`` (also names the gRPC target), ``GET ledger``, ``GET
stats``, ``GET|POST config``, ``POST reset`` (``{"config": bool}``), ``POST
payouts/{id}/status`` (``{"status": "SUCCESS", "force"?: false}``), ``POST
payouts/{id}/lifecycle`` (``{"action", "force"?}``), ``POST lifecycle/walk``, ``GET
lifecycle/statuses``, ``GET webhooks`` and ``POST webhooks/drain`` (always empty: Prism's
reference documents no webhooks, so none is sent). ``python -m streams.devkit.sims.prism``
prints ``SIMULATOR_URL=http://127.0.0.1:<control port>`` once both listen;
:class:`PrismServerProcess` runs it as a child process and reads the gRPC target from
the health answer.

Connectors. Each simulated connector is a name (snake_case, as ``x-connector`` spells it)
with the credentials it accepts, from ``--credentials`` / ``SIM_CREDENTIALS`` (``{"adyen":
{"api_key": "..."}}``): a call whose credentials differ gets the connector's 401
(UNAUTHENTICATED). ``unsupported_connectors`` are names Prism knows whose connector lacks
the payout flows: FAILED_PRECONDITION "This feature is not implemented: payout_<flow> flow
for <name>". Any other name is INVALID_ARGUMENT "Invalid connector: <name>".

Metadata, as Prism reads it. ``x-connector-config`` (``{"config": {"<PascalCase
connector>": {...credentials}}}``) wins; then the deprecated ``x-connector-auth``
(``{"<PascalCase connector>": {...}}``); then legacy ``x-connector`` + ``x-auth``
(``header-key``: ``x-api-key``; ``body-key``: + ``x-key1``; ``signature-key``: + ``x-api-secret``;
``multi-auth-key``: + ``x-key2``; ``no-key``). With a config header ``x-connector`` is
ignored. Optional: ``x-merchant-id`` (default ``DefaultMerchantId``), ``x-tenant-id``
(default ``public``), ``x-request-id`` (a UUID4 when absent; echoed in the response's
initial metadata), ``x-reference-id``. Missing or unreadable metadata is INVALID_ARGUMENT
naming the header, never echoing its value. Credentials are never logged, never put in an
error message, and the ledger does not hold them.

Faults (one seeded draw per call; CreateLink only unless ``faults_on_reads``, which adds
Get and Void): ``unavailable`` (UNAVAILABLE, nothing created), ``resource_exhausted``
(the connector's 429, nothing created), ``slow`` (``slow_ms`` more latency, then normal),
``deadline_before_create`` (after ``hang_ms``, DEADLINE_EXCEEDED, nothing created) and
``deadline_after_create`` (the payout is created, then after ``hang_ms`` the caller gets
DEADLINE_EXCEEDED). ``connector_status`` forces the connector's HTTP answer for every
call that reaches it: a 4xx/5xx becomes its gRPC status (the table is
:data:`HTTP_TO_GRPC`; any other status is UNKNOWN), 200 is Prism's "200 with a failure
body": an OK response carrying ``error`` and PENDING, nothing created.

Lifecycle. A payout moves only along :data:`TRANSITIONS` (Hyperswitch's payout states:
the ``REQUIRES_*`` states before the recipient's data is in, then INITIATED -> PENDING ->
SUCCESS, SUCCESS -> REVERSED; FAILED, CANCELLED, EXPIRED and REVERSED end it).
``payouts/{id}/status`` sets any status through the shortest chain of legal moves (e.g.
REQUIRES_PAYOUT_METHOD_DATA -> INITIATED -> SUCCESS), 409 when none leads there, or
directly with ``force``. ``payouts/{id}/lifecycle`` makes one move: ``initiate``
(INITIATED), ``pend`` (PENDING), ``succeed`` (SUCCESS), ``fail`` (FAILED), ``reverse``
(REVERSED), ``cancel`` (CANCELLED), ``expire`` (EXPIRED). Walk paths: processed =
INITIATED or PENDING, then SUCCESS; expired; cancelled; reversed = INITIATED, SUCCESS,
REVERSED; failed and failed_then_processed = INITIATED, FAILED (FAILED is terminal).
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
import os
import random
import re
import signal
import string
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import grpc
import orjson
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from streams.connectors.prism.gen import payout_service_pb2 as pb
from streams.devkit.sims.common import (
    _JSON_HEADERS,
    URL_LINE_PREFIX,
    LinkWalker,
    SimulatorProcess,
    WebhookDispatcher,
    _bump,
    _non_negative,
    _probability,
    _Stats,
    add_lifecycle_routes,
    json_object,
    parse_move,
)

log = logging.getLogger("streams.devkit.sims.prism")

SERVICE_NAME = "types.PayoutService"
# Prism serves reflection v1 only. grpcio-reflection implements v1alpha; the two protocols
# are wire-identical but for the service name, so v1 is the v1alpha servicer under the v1
# name (v1alpha itself only with ``reflection_v1alpha``, for Python's stock client).
REFLECTION_V1_SERVICE = "grpc.reflection.v1.ServerReflection"
SIM_PREFIX = "/_sim/prism"
CREDENTIALS_ENV = "SIM_CREDENTIALS"

FAULT_KINDS: tuple[str, ...] = (
    "unavailable",
    "resource_exhausted",
    "slow",
    "deadline_before_create",
    "deadline_after_create",
)
# The fleet's shared fault names (streams.devkit.sims.common.FAULT_KINDS), as the same
# failure looks at Prism: a 5xx that made nothing is UNAVAILABLE, a 429 is
# RESOURCE_EXHAUSTED, a timeout before the create or a lost answer after it is
# DEADLINE_EXCEEDED. So chaos, soak and bench set one set of faults for every simulator.
FLEET_FAULTS: Mapping[str, str] = {
    "error_5xx": "unavailable",
    "throttle_429": "resource_exhausted",
    "slow": "slow",
    "timeout_before_create": "deadline_before_create",
    "lost_after_create": "deadline_after_create",
}
FLOWS = ("create_link", "get", "void")
PAYOUT_STATUSES: tuple[str, ...] = tuple(
    name for name in pb.PayoutEnums.PayoutStatus.keys() if name != "PAYOUT_STATUS_UNSPECIFIED"
)
# Hyperswitch's terminal payout states: Void refuses them (CANCELLED is answered as is).
TERMINAL_STATUSES = frozenset({"SUCCESS", "FAILED", "CANCELLED", "EXPIRED", "REVERSED"})
WEBHOOKS = False  # Prism's reference documents none
_BEFORE_DATA = ("REQUIRES_VENDOR_ACCOUNT_CREATION", "REQUIRES_CONFIRMATION", "REQUIRES_FULFILLMENT")
_ENDINGS = ("FAILED", "CANCELLED", "EXPIRED")
# the legal moves of a payout (status -> the statuses it may move to); others end it
TRANSITIONS: Mapping[str, frozenset[str]] = {
    "REQUIRES_CREATION": frozenset({"REQUIRES_PAYOUT_METHOD_DATA", *_BEFORE_DATA, "INELIGIBLE", "INITIATED",
                                    "PENDING", *_ENDINGS}),
    "REQUIRES_PAYOUT_METHOD_DATA": frozenset({*_BEFORE_DATA, "INELIGIBLE", "INITIATED", "PENDING", *_ENDINGS}),
    "REQUIRES_VENDOR_ACCOUNT_CREATION": frozenset({"REQUIRES_PAYOUT_METHOD_DATA", "REQUIRES_CONFIRMATION",
                                                   "REQUIRES_FULFILLMENT", "INITIATED", "PENDING", *_ENDINGS}),
    "REQUIRES_CONFIRMATION": frozenset({"REQUIRES_FULFILLMENT", "INITIATED", "PENDING", *_ENDINGS}),
    "REQUIRES_FULFILLMENT": frozenset({"INITIATED", "PENDING", *_ENDINGS}),
    "INELIGIBLE": frozenset({"REQUIRES_PAYOUT_METHOD_DATA", "FAILED", "CANCELLED"}),
    "INITIATED": frozenset({"PENDING", "SUCCESS", "FAILED", "CANCELLED"}),
    "PENDING": frozenset({"SUCCESS", "FAILED", "CANCELLED"}),
    "SUCCESS": frozenset({"REVERSED"}),
}
FINAL_STATUSES = TERMINAL_STATUSES  # SUCCESS may still be reversed, but counts as final
# lifecycle action -> the status it moves to
LIFECYCLE_ACTIONS: Mapping[str, str] = {
    "initiate": "INITIATED", "pend": "PENDING", "succeed": "SUCCESS", "fail": "FAILED",
    "reverse": "REVERSED", "cancel": "CANCELLED", "expire": "EXPIRED",
}


def legal_path(source: str, target: str) -> list[str] | None:
    """The shortest chain of legal moves from ``source`` to ``target`` (the statuses after
    ``source``, in order; [] when they are equal), or None when none leads there. Ties
    go to the status listed first in the enum (INITIATED before PENDING)."""
    if source == target:
        return []
    previous: dict[str, str] = {source: source}
    frontier = [source]
    while frontier:
        following: list[str] = []
        for status in frontier:
            for nxt in PAYOUT_STATUSES:
                if nxt in TRANSITIONS.get(status, ()) and nxt not in previous:
                    previous[nxt] = status
                    if nxt == target:
                        path = [nxt]
                        while previous[path[-1]] != source:
                            path.append(previous[path[-1]])
                        return path[::-1]
                    following.append(nxt)
        frontier = following
    return None


def walk_path(path: str, rng: random.Random) -> list[str]:
    """A walk path (common.WALK_PATHS) as payout moves, from before the payout."""
    via = "pend" if rng.random() < 0.5 else "initiate"
    if path == "processed":
        return [via, "succeed"]
    if path == "expired":
        return ["expire"]
    if path == "cancelled":
        return ["cancel"]
    if path == "reversed":
        return ["initiate", "succeed", "reverse"]
    return ["initiate", "fail"]  # failed, failed_then_processed: FAILED is terminal
LOOKUP_DUPLICATES = ("first", "latest", "conflict")

DEFAULT_CREDENTIALS: dict[str, dict[str, str]] = {"adyen": {"api_key": "prism_sim_adyen_key"}}
# Known to Prism, payout flows not implemented (the reference's observed Stripe answer).
DEFAULT_UNSUPPORTED: tuple[str, ...] = ("stripe",)
DEFAULT_MERCHANT_ID = "DefaultMerchantId"
DEFAULT_TENANT_ID = "public"

# A connector's HTTP status -> the gRPC status Prism answers with (reference: Errors).
HTTP_TO_GRPC: Mapping[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
_STATUS_DETAILS_KEY = "grpc-status-details-bin"
_LEGACY_AUTH_FIELDS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "header-key": (("x-api-key", "api_key"),),
    "body-key": (("x-api-key", "api_key"), ("x-key1", "key1")),
    "signature-key": (("x-api-key", "api_key"), ("x-key1", "key1"), ("x-api-secret", "api_secret")),
    "multi-auth-key": (("x-api-key", "api_key"), ("x-key1", "key1"), ("x-key2", "key2"),
                       ("x-api-secret", "api_secret")),
    "no-key": (),
}
_PASCAL_RE = re.compile(r"[A-Z][A-Za-z0-9]*")
_SNAKE_RE = re.compile(r"[a-z][a-z0-9_]*")
_ALNUM = string.ascii_letters + string.digits


def grpc_code_for_http_status(status: int) -> grpc.StatusCode:
    """The gRPC status Prism answers when its connector answers HTTP ``status`` (4xx/5xx)."""
    return HTTP_TO_GRPC.get(status, grpc.StatusCode.UNKNOWN)


def snake_case(connector: str) -> str:
    """``WorldpayXml`` -> ``worldpay_xml``: a config header's connector as x-connector spells it."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", connector).lower()


# ------------------------------------------------------------------------- failures


class RpcFailure(Exception):
    """A gRPC error answer: status, message and the raw error detail Prism would attach."""

    def __init__(self, code: grpc.StatusCode, message: str,
                 detail: pb.ConnectorError | pb.IntegrationError | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail

    def trailers(self) -> tuple[tuple[str, str | bytes], ...]:
        if self.detail is None:
            return ()
        return ((_STATUS_DETAILS_KEY, self.detail.SerializeToString()),)


def invalid_argument(message: str, error_code: str = "MISSING_REQUIRED_FIELD") -> RpcFailure:
    return RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, message,
                      pb.IntegrationError(error_message=message, error_code=error_code))


def connector_failure(http_status: int, code: str, message: str) -> RpcFailure:
    """The simulated connector answered ``http_status``: Prism's gRPC error for it."""
    detail = pb.ConnectorError(
        error_message=message,
        error_code="CONNECTOR_ERROR_RESPONSE",
        http_status_code=http_status,
        error_info=pb.ErrorInfo(connector_details=pb.ConnectorErrorDetails(code=code, message=message)),
    )
    return RpcFailure(grpc_code_for_http_status(http_status), message, detail)


# ------------------------------------------------------------------------- metadata


@dataclass(frozen=True)
class CallMetadata:
    """What one call's metadata says; ``credentials`` never appears in a repr."""

    connector: str  # snake_case, as x-connector spells it
    credentials: Mapping[str, Any] = field(repr=False)
    merchant_id: str
    tenant_id: str
    request_id: str
    reference_id: str | None
    source: str  # x-connector-config | x-connector-auth | legacy


def _connector_from_json(raw: str, header: str, *, wrapped: bool) -> tuple[str, Mapping[str, Any]]:
    """``{"config": {"Adyen": {...}}}`` (or unwrapped) -> ("adyen", {...}); never echoes ``raw``."""
    failure = invalid_argument(f"Failed to parse {header.title()}", "INVALID_DATA_FORMAT")
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise failure from None
    if wrapped:
        parsed = parsed.get("config") if isinstance(parsed, dict) else None
    if not isinstance(parsed, dict) or len(parsed) != 1:
        raise failure
    ((name, creds),) = parsed.items()
    if not isinstance(name, str) or not _PASCAL_RE.fullmatch(name) or not isinstance(creds, dict):
        raise failure
    return snake_case(name), creds


def parse_metadata(metadata: Mapping[str, str]) -> CallMetadata:
    """Prism's reading of a call's metadata; raises :class:`RpcFailure` INVALID_ARGUMENT."""

    def required(key: str) -> str:
        value = metadata.get(key)
        if value is None or value == "":
            raise invalid_argument(f"Missing required field: {key}")
        return value

    if "x-connector-config" in metadata:
        connector, creds = _connector_from_json(metadata["x-connector-config"], "x-connector-config",
                                                wrapped=True)
        source = "x-connector-config"
    elif "x-connector-auth" in metadata:
        connector, creds = _connector_from_json(metadata["x-connector-auth"], "x-connector-auth",
                                                wrapped=False)
        source = "x-connector-auth"
    else:
        connector = required("x-connector")
        if not _SNAKE_RE.fullmatch(connector):
            raise invalid_argument(f"Invalid connector: {connector[:64]}", "INVALID_CONNECTOR")
        auth = required("x-auth")
        fields = _LEGACY_AUTH_FIELDS.get(auth)
        if fields is None:
            raise invalid_argument(f"Invalid auth type: {auth[:32]}", "INVALID_AUTH_TYPE")
        creds = {name: required(header) for header, name in fields}
        source = "legacy"
    return CallMetadata(
        connector=connector,
        credentials=creds,
        merchant_id=metadata.get("x-merchant-id") or DEFAULT_MERCHANT_ID,
        tenant_id=metadata.get("x-tenant-id") or DEFAULT_TENANT_ID,
        request_id=metadata.get("x-request-id") or str(uuid.uuid4()),
        reference_id=metadata.get("x-reference-id"),
        source=source,
    )


def metadata_dict(context: grpc.aio.ServicerContext[Any, Any]) -> dict[str, str]:
    """A call's text metadata, first value per key (as Prism's tonic ``get`` reads it)."""
    out: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if isinstance(value, str) and key not in out:
            out[key] = value
    return out


# --------------------------------------------------------------------------- config


@dataclass
class PrismSimConfig:
    """Behaviour knobs; every one is also settable at runtime via ``POST /_sim/prism/config``."""

    latency_ms: float = 100.0
    jitter_ms: float = 20.0
    faults: dict[str, float] = field(default_factory=lambda: dict.fromkeys(FAULT_KINDS, 0.0))
    slow_ms: float = 2000.0
    # how long the deadline faults wait before answering (Prism's own connector timeout)
    hang_ms: float = 0.0
    faults_on_reads: bool = False
    seed: int | None = None
    # 0: the connector answers normally; 200: "200 with a failure body"; 4xx/5xx: that error
    connector_status: int = 0
    unsupported_connectors: list[str] = field(default_factory=lambda: list(DEFAULT_UNSUPPORTED))
    initial_status: str = "REQUIRES_PAYOUT_METHOD_DATA"
    echo_merchant_payout_id: bool = True
    # Get by merchant_payout_id with duplicates: the oldest, the newest, or the connector's 409
    lookup_duplicates: str = "first"

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "faults": dict(self.faults),
                "unsupported_connectors": list(self.unsupported_connectors)}

    def copy(self) -> PrismSimConfig:
        return PrismSimConfig(**{**self.__dict__, "faults": dict(self.faults),
                                 "unsupported_connectors": list(self.unsupported_connectors)})

    def apply(self, patch: Mapping[str, Any]) -> None:
        """Validate and apply a partial update; raises ValueError and changes nothing on error.

        Fault probabilities may be flat (``{"unavailable": 0.1}``) or nested (``{"faults":
        {...}}``); one draw picks at most one fault per call, so they add up to at most 1.
        """
        new = self.copy()
        flat = dict(patch)
        nested = flat.pop("faults", None)
        if nested is not None:
            if not isinstance(nested, Mapping):
                raise ValueError("faults must be an object")
            flat.update(nested)
        for key, value in flat.items():
            key = FLEET_FAULTS.get(key, key)
            if key in FAULT_KINDS:
                new.faults[key] = _probability(key, value)
            elif key in ("latency_ms", "jitter_ms", "slow_ms", "hang_ms"):
                setattr(new, key, _non_negative(key, value))
            elif key in ("faults_on_reads", "echo_merchant_payout_id"):
                if not isinstance(value, bool):
                    raise ValueError(f"{key} must be a boolean")
                setattr(new, key, value)
            elif key == "seed":
                if value is not None and type(value) is not int:
                    raise ValueError("seed must be an integer or null")
                new.seed = value
            elif key == "connector_status":
                if type(value) is not int or not (value in (0, 200) or 400 <= value <= 599):
                    raise ValueError("connector_status must be 0 (none), 200 or a 4xx/5xx status")
                new.connector_status = value
            elif key == "unsupported_connectors":
                if not isinstance(value, list) or not all(
                        isinstance(v, str) and _SNAKE_RE.fullmatch(v) for v in value):
                    raise ValueError("unsupported_connectors must be a list of snake_case names")
                new.unsupported_connectors = list(value)
            elif key == "initial_status":
                if value not in PAYOUT_STATUSES:
                    raise ValueError(f"initial_status must be one of {', '.join(PAYOUT_STATUSES)}")
                new.initial_status = value
            elif key == "lookup_duplicates":
                if value not in LOOKUP_DUPLICATES:
                    raise ValueError(f"lookup_duplicates must be one of {', '.join(LOOKUP_DUPLICATES)}")
                new.lookup_duplicates = value
            else:
                raise ValueError(f"unknown config key {key!r}")
        if sum(new.faults.values()) > 1.0 + 1e-9:
            raise ValueError("fault probabilities must add up to at most 1")
        self.__dict__.update(new.__dict__)


def load_credentials(path: str | None = None, env: Mapping[str, str] | None = None) -> dict[str, dict[str, str]]:
    """``{connector: {field: value}}`` from ``--credentials``, else ``SIM_CREDENTIALS``, else the
    dev default. An error names the connector or field, never a value."""
    env = os.environ if env is None else env
    if path:
        raw: Any = orjson.loads(Path(path).read_bytes())
    elif env.get(CREDENTIALS_ENV):
        raw = orjson.loads(env[CREDENTIALS_ENV])
    else:
        return {k: dict(v) for k, v in DEFAULT_CREDENTIALS.items()}
    if not isinstance(raw, dict) or not raw:
        raise ValueError("credentials must be a non-empty JSON object {connector: {field: value}}")
    out: dict[str, dict[str, str]] = {}
    for connector, creds in raw.items():
        if not isinstance(connector, str) or not _SNAKE_RE.fullmatch(connector):
            raise ValueError("credential keys must be snake_case connector names")
        if not isinstance(creds, dict) or not all(isinstance(v, str) for v in creds.values()):
            raise ValueError(f"credentials of {connector!r} must be an object of strings")
        out[connector] = dict(creds)
    return out


# ------------------------------------------------------------------------ simulator


@dataclass
class Payout:
    """One payout at the simulated connector (no credentials, no PII beyond the customer id)."""

    payout_id: str
    connector: str
    merchant_payout_id: str | None
    status: str
    minor_amount: int
    currency: str
    destination_currency: str
    merchant_id: str
    tenant_id: str
    request_id: str
    customer_id: str | None
    webhook_url: str | None
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


Context = grpc.aio.ServicerContext[Any, Any]
ProtoResponse = pb.PayoutServiceCreateLinkResponse | pb.PayoutServiceGetResponse | pb.PayoutServiceVoidResponse


class PrismSimulator:
    """State and RPC handlers; :func:`start_grpc_server` serves them, :meth:`make_control_app`
    exposes the control surface. One instance per process (or per test)."""

    def __init__(self, config: PrismSimConfig | None = None,
                 credentials: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.config = config or PrismSimConfig()
        self._initial_config = self.config.copy()
        creds = credentials if credentials is not None else DEFAULT_CREDENTIALS
        self._credentials: dict[str, dict[str, str]] = {k: dict(v) for k, v in creds.items()}
        self._rand = random.Random()  # ids and jitter: need not be reproducible
        self._fault_rng = random.Random(self.config.seed)
        self.grpc_target = ""  # host:port, set once serving
        self.webhooks = WebhookDispatcher(self.config.seed)  # stays empty: no webhooks
        self.walker = LinkWalker(self)
        self._reset_state()

    @property
    def connectors(self) -> list[str]:
        """The simulated connectors' names (credentials stay private)."""
        return sorted(self._credentials)

    def _reset_state(self) -> None:
        self.payouts: dict[str, Payout] = {}
        self.by_reference: dict[str, list[str]] = {}
        self.stats = _Stats()
        self.stats.faults = dict.fromkeys(FAULT_KINDS, 0)
        self._fault_rng.seed(self.config.seed)

    def reset(self, *, config: bool = False) -> None:
        """Forget every payout and counter (and optionally runtime config changes)."""
        if config:
            self.config = self._initial_config.copy()
        self._reset_state()

    def reseed(self) -> None:
        self._fault_rng.seed(self.config.seed)

    # -- lifecycle ------------------------------------------------------------------
    def move(self, payout: Payout, target: str, *, force: bool = False) -> str | None:
        """One move to ``target``; returns why it is refused (not legal, no ``force``)."""
        if target not in TRANSITIONS.get(payout.status, ()) and not force:
            return f"illegal move {payout.status} -> {target}"
        payout.status = target
        _bump(self.stats.events, "lifecycle_moves")
        return None

    # LifecycleSubject (common.LinkWalker): our reference is the merchant_payout_id
    def walk_candidates(self, references: Sequence[str] | None) -> list[tuple[str, str]]:
        if references is None:
            return [(p.merchant_payout_id or pid, pid) for pid, p in self.payouts.items()
                    if p.status not in FINAL_STATUSES]
        return [(ref, pid) for ref in dict.fromkeys(references) for pid in self.by_reference.get(ref, ())]

    def walk_steps(self, link_id: str, path: str, rng: random.Random) -> list[str]:
        return walk_path(path, rng)

    def walk_legal(self, link_id: str, action: str) -> bool:
        return LIFECYCLE_ACTIONS[action] in TRANSITIONS.get(self.payouts[link_id].status, ())

    def walk_apply(self, link_id: str, action: str) -> bool:
        return self.move(self.payouts[link_id], LIFECYCLE_ACTIONS[action]) is None

    def walk_status(self, link_id: str) -> str:
        return self.payouts[link_id].status

    def lifecycle_links(self) -> list[tuple[str, str, str, bool]]:
        return [(p.merchant_payout_id or pid, pid, p.status, p.status in FINAL_STATUSES)
                for pid, p in self.payouts.items()]

    def ledger(self) -> dict[str, Any]:
        by_status: dict[str, int] = {}
        for payout in self.payouts.values():
            _bump(by_status, payout.status)
        return {
            "payouts": len(self.payouts),
            "by_reference": {ref: list(ids) for ref, ids in self.by_reference.items()},
            "duplicate_references": {ref: len(ids) for ref, ids in self.by_reference.items() if len(ids) > 1},
            "by_status": by_status,
            "records": {pid: p.to_json() for pid, p in self.payouts.items()},
        }

    # -- the shell every RPC runs in ----------------------------------------------
    def handler(self, flow: str, body: Callable[[Any, CallMetadata, Context], Awaitable[ProtoResponse]]
                ) -> Callable[[Any, Context], Awaitable[ProtoResponse]]:
        """Wrap one flow: count it, read metadata, echo x-request-id, refuse unknown or
        unsupported connectors, and turn an :class:`RpcFailure` into Prism's gRPC error."""

        async def rpc(request: Any, context: Context) -> ProtoResponse:
            stats = self.stats
            _bump(stats.requests, flow)
            raw = metadata_dict(context)
            request_id = raw.get("x-request-id") or str(uuid.uuid4())
            await context.send_initial_metadata((("x-request-id", request_id),))
            try:
                call = parse_metadata({**raw, "x-request-id": request_id})
                self._check_connector(flow, call.connector)
                response = await body(request, call, context)
            except RpcFailure as failure:
                _bump(stats.statuses, failure.code.name)
                log.debug("%s failed: %s %s", flow, failure.code.name, failure.message)
                await context.abort(failure.code, failure.message, trailing_metadata=failure.trailers())
            except asyncio.CancelledError:  # the caller left (deadline or cancel)
                _bump(stats.events, "client_gone")
                raise
            _bump(stats.statuses, "OK")
            return response

        return rpc

    def _check_connector(self, flow: str, connector: str) -> None:
        if connector in self.config.unsupported_connectors:
            message = f"This feature is not implemented: payout_{flow} flow for {connector}"
            raise RpcFailure(grpc.StatusCode.FAILED_PRECONDITION, message,
                             pb.IntegrationError(error_message=message, error_code="NOT_IMPLEMENTED"))
        if connector not in self._credentials:
            raise invalid_argument(f"Invalid connector: {connector[:64]}", "INVALID_CONNECTOR")

    # -- the simulated connector ------------------------------------------------------
    def _draw_fault(self) -> str | None:
        faults = self.config.faults
        if not any(faults.values()):
            return None
        r = self._fault_rng.random()
        acc = 0.0
        for kind in FAULT_KINDS:
            p = faults[kind]
            if p:
                acc += p
                if r < acc:
                    _bump(self.stats.faults, kind)
                    return kind
        return None

    async def _connector_call(self, flow: str, call: CallMetadata) -> tuple[str | None, str | None]:
        """What happens before the connector does any work: latency, faults, a forced HTTP
        status, authentication. Returns (the fault still to apply after the work, the
        failure body of a forced 200)."""
        cfg = self.config
        delay = cfg.latency_ms + (self._rand.random() * cfg.jitter_ms if cfg.jitter_ms else 0.0)
        if delay > 0:
            await asyncio.sleep(delay / 1000.0)
        fault = self._draw_fault() if flow == "create_link" or cfg.faults_on_reads else None
        if fault == "unavailable":
            raise RpcFailure(grpc.StatusCode.UNAVAILABLE, "Failed to connect to the connector")
        if fault == "resource_exhausted":
            raise connector_failure(429, "rate_limited", "Too many requests")
        if fault == "slow":
            await asyncio.sleep(cfg.slow_ms / 1000.0)
        if fault == "deadline_before_create":
            await self._hang()
            raise RpcFailure(grpc.StatusCode.DEADLINE_EXCEEDED, "Connector request timed out")
        status = cfg.connector_status
        if status == 200:
            _bump(self.stats.events, "failure_bodies")
            return fault, "The connector answered 200 with a failure body"
        if status:
            _bump(self.stats.events, "forced_statuses")
            raise connector_failure(status, f"http_{status}", f"The connector answered HTTP {status}")
        if not self._authenticated(call):
            raise connector_failure(401, "unauthorized", "Invalid API key provided")
        return fault, None

    def _authenticated(self, call: CallMetadata) -> bool:
        expected = self._credentials[call.connector]
        given = call.credentials
        return all(isinstance(given.get(k), str) and hmac.compare_digest(given[k].encode(), v.encode())
                   for k, v in expected.items())

    async def _hang(self) -> None:
        if self.config.hang_ms > 0:
            await asyncio.sleep(self.config.hang_ms / 1000.0)

    async def _after_work(self, fault: str | None) -> None:
        if fault == "deadline_after_create":
            await self._hang()
            raise RpcFailure(grpc.StatusCode.DEADLINE_EXCEEDED, "Connector request timed out")

    def _new_id(self) -> str:
        while True:
            candidate = "po_" + "".join(self._rand.choices(_ALNUM, k=24))
            if candidate not in self.payouts:
                return candidate

    @staticmethod
    def _failure_body_error(message: str) -> pb.ErrorInfo:
        return pb.ErrorInfo(connector_details=pb.ConnectorErrorDetails(code="failure_body", message=message))

    def _answer(self, cls: type[Any], payout: Payout) -> Any:
        response = cls(payout_status=pb.PayoutEnums.PayoutStatus.Value(payout.status),
                       connector_payout_id=payout.payout_id, status_code=200)
        if self.config.echo_merchant_payout_id and payout.merchant_payout_id is not None:
            response.merchant_payout_id = payout.merchant_payout_id
        return response

    # -- RPCs ---------------------------------------------------------------------------
    async def create_link(self, request: pb.PayoutServiceCreateLinkRequest, call: CallMetadata,
                          context: Context) -> pb.PayoutServiceCreateLinkResponse:
        if not request.HasField("amount"):
            raise invalid_argument("Missing required field: amount")
        if request.destination_currency == pb.CURRENCY_UNSPECIFIED:
            raise invalid_argument("Currency Unspecified is not supported", "NOT_SUPPORTED")
        if request.amount.currency == pb.CURRENCY_UNSPECIFIED:
            raise invalid_argument("Currency Unspecified is not supported", "NOT_SUPPORTED")
        fault, failure_body = await self._connector_call("create_link", call)
        if failure_body is not None:
            return pb.PayoutServiceCreateLinkResponse(
                payout_status=pb.PayoutEnums.PENDING, error=self._failure_body_error(failure_body),
                status_code=200)
        if request.amount.minor_amount <= 0:
            raise connector_failure(400, "invalid_amount", "amount must be a positive integer")
        ref = request.merchant_payout_id if request.HasField("merchant_payout_id") else None
        payout = Payout(
            payout_id=self._new_id(), connector=call.connector, merchant_payout_id=ref,
            status=self.config.initial_status, minor_amount=request.amount.minor_amount,
            currency=pb.Currency.Name(request.amount.currency),
            destination_currency=pb.Currency.Name(request.destination_currency),
            merchant_id=call.merchant_id, tenant_id=call.tenant_id, request_id=call.request_id,
            customer_id=request.customer.id if request.customer.HasField("id") else None,
            webhook_url=request.webhook_url if request.HasField("webhook_url") else None,
            created_at=time.time(),
        )
        self.payouts[payout.payout_id] = payout
        if ref is not None:
            self.by_reference.setdefault(ref, []).append(payout.payout_id)
        _bump(self.stats.events, "payouts_created")
        log.debug("created %s for merchant %s", payout.payout_id, call.merchant_id)
        await self._after_work(fault)
        answer: pb.PayoutServiceCreateLinkResponse = self._answer(pb.PayoutServiceCreateLinkResponse, payout)
        return answer

    def _find(self, call: CallMetadata, connector_payout_id: str | None,
              merchant_payout_id: str | None) -> Payout:
        """The connector's lookup: by its own id, else by our reference (duplicates per policy)."""
        if connector_payout_id is not None:
            payout = self.payouts.get(connector_payout_id)
            if payout is None or payout.connector != call.connector:
                raise connector_failure(404, "not_found", "No such payout")
            return payout
        ids = [pid for pid in self.by_reference.get(merchant_payout_id or "", ())
               if self.payouts[pid].connector == call.connector]
        if not ids:
            raise connector_failure(404, "not_found", "No payout with this merchant_payout_id")
        if len(ids) > 1:
            _bump(self.stats.events, "duplicate_lookups")
            policy = self.config.lookup_duplicates
            if policy == "conflict":
                raise connector_failure(409, "duplicate_reference",
                                        f"{len(ids)} payouts have this merchant_payout_id")
            return self.payouts[ids[-1] if policy == "latest" else ids[0]]
        return self.payouts[ids[0]]

    async def get(self, request: pb.PayoutServiceGetRequest, call: CallMetadata,
                  context: Context) -> pb.PayoutServiceGetResponse:
        connector_id = request.connector_payout_id if request.HasField("connector_payout_id") else None
        reference = request.merchant_payout_id if request.HasField("merchant_payout_id") else None
        if not connector_id and not reference:
            raise invalid_argument("Missing required field: connector_payout_id")
        fault, failure_body = await self._connector_call("get", call)
        if failure_body is not None:
            return pb.PayoutServiceGetResponse(payout_status=pb.PayoutEnums.PENDING,
                                               error=self._failure_body_error(failure_body), status_code=200)
        payout = self._find(call, connector_id or None, reference)
        await self._after_work(fault)
        answer: pb.PayoutServiceGetResponse = self._answer(pb.PayoutServiceGetResponse, payout)
        return answer

    async def void(self, request: pb.PayoutServiceVoidRequest, call: CallMetadata,
                   context: Context) -> pb.PayoutServiceVoidResponse:
        if not request.connector_payout_id:
            raise invalid_argument("Missing required field: connector_payout_id")
        fault, failure_body = await self._connector_call("void", call)
        if failure_body is not None:
            return pb.PayoutServiceVoidResponse(payout_status=pb.PayoutEnums.PENDING,
                                                error=self._failure_body_error(failure_body), status_code=200)
        payout = self._find(call, request.connector_payout_id, None)
        if payout.status in TERMINAL_STATUSES and payout.status != "CANCELLED":
            raise connector_failure(400, "invalid_state", f"Payout cannot be cancelled in status {payout.status}")
        if payout.status != "CANCELLED":
            payout.status = "CANCELLED"
            _bump(self.stats.events, "payouts_cancelled")
        await self._after_work(fault)
        answer: pb.PayoutServiceVoidResponse = self._answer(pb.PayoutServiceVoidResponse, payout)
        return answer

    def generic_handler(self) -> grpc.GenericRpcHandler:
        """``types.PayoutService`` with our three RPCs; any other method is UNIMPLEMENTED."""
        methods: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
            "CreateLink": grpc.unary_unary_rpc_method_handler(
                self.handler("create_link", self.create_link),
                request_deserializer=pb.PayoutServiceCreateLinkRequest.FromString,
                response_serializer=pb.PayoutServiceCreateLinkResponse.SerializeToString),
            "Get": grpc.unary_unary_rpc_method_handler(
                self.handler("get", self.get),
                request_deserializer=pb.PayoutServiceGetRequest.FromString,
                response_serializer=pb.PayoutServiceGetResponse.SerializeToString),
            "Void": grpc.unary_unary_rpc_method_handler(
                self.handler("void", self.void),
                request_deserializer=pb.PayoutServiceVoidRequest.FromString,
                response_serializer=pb.PayoutServiceVoidResponse.SerializeToString),
        }
        return grpc.method_handlers_generic_handler(SERVICE_NAME, methods)

    # -- control (HTTP) -------------------------------------------------------------
    def make_control_app(self) -> web.Application:
        app = web.Application()
        r = app.router
        r.add_get(SIM_PREFIX + "/health", self._sim_health, allow_head=False)
        r.add_get(SIM_PREFIX + "/ledger", self._sim_ledger, allow_head=False)
        r.add_get(SIM_PREFIX + "/stats", self._sim_stats, allow_head=False)
        r.add_post(SIM_PREFIX + "/reset", self._sim_reset)
        r.add_route("GET", SIM_PREFIX + "/config", self._sim_config)
        r.add_route("POST", SIM_PREFIX + "/config", self._sim_config)
        r.add_post(SIM_PREFIX + "/payouts/{payout_id}/status", self._sim_set_status)
        r.add_post(SIM_PREFIX + "/payouts/{payout_id}/lifecycle", self._sim_lifecycle)
        add_lifecycle_routes(r, SIM_PREFIX, self.walker, self.webhooks)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_cleanup(self, app: web.Application) -> None:
        await self.webhooks.aclose()

    @staticmethod
    def _json(payload: Any, status: int = 200) -> web.Response:
        return web.Response(status=status, body=orjson.dumps(payload), headers=_JSON_HEADERS)

    async def _sim_health(self, request: web.Request) -> web.Response:
        return self._json({"ok": True, "grpc_target": self.grpc_target, "connectors": self.connectors})

    async def _sim_ledger(self, request: web.Request) -> web.Response:
        return self._json(self.ledger())

    async def _sim_stats(self, request: web.Request) -> web.Response:
        return self._json({**self.stats.to_json(), "payouts": len(self.payouts)})

    async def _sim_reset(self, request: web.Request) -> web.Response:
        raw = await request.read()
        opts = orjson.loads(raw) if raw.strip() else {}
        self.reset(config=bool(isinstance(opts, dict) and opts.get("config")))
        return self._json({"ok": True})

    async def _sim_config(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                patch = orjson.loads(await request.read())
                if not isinstance(patch, dict):
                    raise ValueError("config must be a JSON object")
                self.config.apply(patch)
            except (ValueError, orjson.JSONDecodeError) as exc:
                return self._json({"error": str(exc)}, status=400)
            if "seed" in patch:
                self.reseed()
        return self._json(self.config.to_json())

    async def _sim_set_status(self, request: web.Request) -> web.Response:
        """Set a payout's status (e.g. SUCCESS, EXPIRED) through legal moves (``path``:
        the statuses it went through), or directly with ``force``; 409 when no legal
        chain of moves leads there."""
        payout = self.payouts.get(request.match_info["payout_id"])
        if payout is None:
            return self._json({"error": "no such payout"}, status=404)
        body = await json_object(request)
        status = body.get("status") if body is not None else None
        force = body.get("force", False) if body is not None else False
        if status not in PAYOUT_STATUSES or not isinstance(force, bool):
            return self._json({"error": "unknown status (or force not a boolean)"}, status=400)
        path = [status] if force else legal_path(payout.status, status)
        if path is None:
            return self._json({"error": f"no legal moves lead from {payout.status} to {status}",
                               "payout": payout.to_json()}, status=409)
        for step in path:
            self.move(payout, step, force=force)
        return self._json({**payout.to_json(), "path": path})

    async def _sim_lifecycle(self, request: web.Request) -> web.Response:
        """``POST payouts/{id}/lifecycle {"action", "force"?}``: one move; 409 when illegal."""
        payout = self.payouts.get(request.match_info["payout_id"])
        if payout is None:
            return self._json({"error": "no such payout"}, status=404)
        try:
            action, force = parse_move(await json_object(request))
            if action not in LIFECYCLE_ACTIONS:
                raise ValueError(f"action must be one of {', '.join(LIFECYCLE_ACTIONS)}")
        except ValueError as exc:
            return self._json({"error": str(exc)}, status=400)
        refused = self.move(payout, LIFECYCLE_ACTIONS[action], force=force)
        if refused is not None:
            return self._json({"error": refused, "payout": payout.to_json()}, status=409)
        return self._json(payout.to_json())


# --------------------------------------------------------------------------- serving


def _reflection_handler(service: str, servicer: reflection.aio.ReflectionServicer) -> grpc.GenericRpcHandler:
    method = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    return grpc.method_handlers_generic_handler(service, {"ServerReflectionInfo": method})


async def start_grpc_server(sim: PrismSimulator, host: str = "127.0.0.1", port: int = 0, *,
                            reflection_v1alpha: bool = False) -> tuple[grpc.aio.Server, int]:
    """Serve ``types.PayoutService``, reflection v1 (and v1alpha if asked) and
    ``grpc.health.v1.Health``; returns the started server (``await server.stop(grace)``)
    and its port."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((sim.generic_handler(),))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [SERVICE_NAME, REFLECTION_V1_SERVICE, health.SERVICE_NAME]
    if reflection_v1alpha:
        names.append(reflection.SERVICE_NAME)
    servicer = reflection.aio.ReflectionServicer(names)
    server.add_generic_rpc_handlers((_reflection_handler(REFLECTION_V1_SERVICE, servicer),))
    if reflection_v1alpha:
        server.add_generic_rpc_handlers((_reflection_handler(reflection.SERVICE_NAME, servicer),))
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port}")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    sim.grpc_target = f"[{shown}]:{bound}" if ":" in shown else f"{shown}:{bound}"
    return server, bound


async def start_control_server(sim: PrismSimulator, host: str = "127.0.0.1", port: int = 0
                               ) -> tuple[web.AppRunner, int]:
    """The HTTP control surface; returns the runner (``await runner.cleanup()``) and its port."""
    runner = web.AppRunner(sim.make_control_app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    return runner, runner.addresses[0][1]


async def serve(sim: PrismSimulator, host: str, port: int, control_port: int, *,
                reflection_v1alpha: bool = False) -> None:
    """Serve until SIGTERM/SIGINT; print the URL line once both ports listen."""
    server, grpc_port = await start_grpc_server(sim, host, port, reflection_v1alpha=reflection_v1alpha)
    runner, bound_control = await start_control_server(sim, host, control_port)
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    if ":" in shown:
        shown = f"[{shown}]"
    sys.stdout.write(f"{URL_LINE_PREFIX}http://{shown}:{bound_control}\n")
    sys.stdout.flush()
    log.info("gRPC on %s, control on port %s; connectors %s; config %s", sim.grpc_target, bound_control,
             sim.connectors, orjson.dumps(sim.config.to_json()).decode())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    await runner.cleanup()
    await server.stop(1.0)


# ----------------------------------------------------------------------------- CLI


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m streams.devkit.sims.prism",
                                description="Prism-compatible PayoutService (gRPC) with fault injection and a ledger.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="gRPC port (Prism's is 8000); 0 picks a free one")
    p.add_argument("--control-port", type=int, default=0, help="HTTP control port; 0 picks a free one")
    p.add_argument("--latency-ms", type=float, default=100.0)
    p.add_argument("--jitter-ms", type=float, default=20.0, help="uniform extra 0..jitter per call")
    p.add_argument("--credentials",
                   help=f"JSON file {{connector: {{field: value}}}}; else env {CREDENTIALS_ENV}")
    for kind in FAULT_KINDS:
        p.add_argument("--" + kind.replace("_", "-"), dest=kind, type=float, default=0.0,
                       metavar="P", help=f"probability of fault {kind} per CreateLink call")
    p.add_argument("--slow-ms", type=float, default=2000.0, help="extra latency of the 'slow' fault")
    p.add_argument("--hang-ms", type=float, default=0.0, help="wait before a DEADLINE_EXCEEDED fault answers")
    p.add_argument("--faults-on-reads", action="store_true", help="also inject faults into Get and Void")
    p.add_argument("--seed", type=int, default=None, help="makes fault decisions reproducible")
    p.add_argument("--connector-status", type=int, default=0, help="force the connector's HTTP answer")
    p.add_argument("--unsupported", default=",".join(DEFAULT_UNSUPPORTED),
                   help="comma-separated connectors answering FAILED_PRECONDITION")
    p.add_argument("--initial-status", default="REQUIRES_PAYOUT_METHOD_DATA", choices=PAYOUT_STATUSES)
    p.add_argument("--no-echo-merchant-payout-id", dest="echo_merchant_payout_id", action="store_false",
                   help="leave merchant_payout_id out of answers, as some connectors do")
    p.add_argument("--lookup-duplicates", default="first", choices=LOOKUP_DUPLICATES)
    p.add_argument("--reflection-v1alpha", action="store_true",
                   help="also serve reflection v1alpha (real Prism answers it UNIMPLEMENTED)")
    p.add_argument("--log-level", default="INFO")
    return p


def config_from_args(args: argparse.Namespace) -> PrismSimConfig:
    cfg = PrismSimConfig()
    cfg.apply({
        "latency_ms": args.latency_ms,
        "jitter_ms": args.jitter_ms,
        "faults": {kind: getattr(args, kind) for kind in FAULT_KINDS},
        "slow_ms": args.slow_ms,
        "hang_ms": args.hang_ms,
        "faults_on_reads": args.faults_on_reads,
        "seed": args.seed,
        "connector_status": args.connector_status,
        "unsupported_connectors": [c for c in args.unsupported.split(",") if c],
        "initial_status": args.initial_status,
        "echo_merchant_payout_id": args.echo_merchant_payout_id,
        "lookup_duplicates": args.lookup_duplicates,
    })
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s prism-sim %(levelname)s %(message)s")
    try:
        config = config_from_args(args)
        credentials = load_credentials(args.credentials)
    except (ValueError, OSError) as exc:
        print(f"prism simulator: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(PrismSimulator(config, credentials), args.host, args.port, args.control_port,
                      reflection_v1alpha=args.reflection_v1alpha))
    return 0


# ------------------------------------------------------------------ process control


class PrismServerProcess(SimulatorProcess):
    """The Prism-compatible server as a child process (start/stop by pid is
    :class:`SimulatorProcess`'s). ``url`` is the HTTP control URL; ``grpc_target``
    (``host:port``) is where a gRPC channel connects."""

    control_prefix = SIM_PREFIX
    health_path = SIM_PREFIX + "/health"
    links_path = "/payouts"

    def __init__(self, *, latency_ms: float = 0.0, jitter_ms: float = 0.0,
                 faults: Mapping[str, float] | None = None, hang_ms: float | None = None,
                 seed: int | None = None, credentials: Mapping[str, Mapping[str, str]] | None = None,
                 unsupported_connectors: Sequence[str] | None = None, reflection_v1alpha: bool = False,
                 extra_args: Sequence[str] = (), python: str = sys.executable,
                 startup_timeout: float = 15.0, stderr: Any = None) -> None:
        argv = [python, "-m", "streams.devkit.sims.prism", "--host", "127.0.0.1", "--port", "0",
                "--control-port", "0", "--latency-ms", str(latency_ms), "--jitter-ms", str(jitter_ms)]
        for flag, value in (("--hang-ms", hang_ms), ("--seed", seed)):
            if value is not None:
                argv += [flag, str(value)]
        for kind, p in (faults or {}).items():
            kind = FLEET_FAULTS.get(kind, kind)
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind!r}")
            argv += ["--" + kind.replace("_", "-"), str(p)]
        if unsupported_connectors is not None:
            argv += ["--unsupported", ",".join(unsupported_connectors)]
        if reflection_v1alpha:
            argv.append("--reflection-v1alpha")
        super().__init__(argv=argv + list(extra_args), credentials=credentials,
                         startup_timeout=startup_timeout, stderr=stderr)
        self.grpc_target = ""

    def start(self) -> Self:
        super().start()
        try:
            self.grpc_target = str(self._call("GET", self.health_path)["grpc_target"])
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def worker_url(self) -> str:
        """``PRISM_URL`` for a worker: the gRPC target, plaintext."""
        return f"http://{self.grpc_target}"

    def ledger(self) -> dict[str, Any]:
        return self._call("GET", SIM_PREFIX + "/ledger")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", SIM_PREFIX + "/stats")

    def reset(self, *, config: bool = False) -> None:
        self._call("POST", SIM_PREFIX + "/reset", {"config": config})

    def set_status(self, payout_id: str, status: str, *, force: bool = False) -> dict[str, Any]:
        """Move a payout to ``status`` through legal moves (or directly with ``force``);
        ValueError when no legal chain leads there."""
        return self._call("POST", f"{SIM_PREFIX}/payouts/{payout_id}/status", {"status": status, "force": force})

    def links_by_reference(self) -> dict[str, list[str]]:
        """Our reference (the payout's ``merchant_payout_id``) -> connector payout ids."""
        by_reference: dict[str, list[str]] = self.ledger().get("by_reference", {})
        return {ref: [str(i) for i in ids] for ref, ids in by_reference.items()}


def fleet_process(*, latency_ms: float, jitter_ms: float, faults: Mapping[str, float] | None,
                  hang_ms: float | None, seed: int | None, **options: Any) -> PrismServerProcess:
    """This server as one of the fleet's; ``options`` are :class:`PrismServerProcess` keywords."""
    return PrismServerProcess(latency_ms=latency_ms, jitter_ms=jitter_ms, faults=faults,
                              hang_ms=hang_ms, seed=seed, **options)


if __name__ == "__main__":
    sys.exit(main())
