"""Prism PayoutService: pure transformers (see shared/reference/prism-payouts.md).

Our request → ``PayoutServiceCreateLinkRequest`` and its metadata; Prism's answers (an
OK response, or a gRPC status with a raw ``ConnectorError`` / ``IntegrationError`` in
``grpc-status-details-bin``) → exactly one outcome. No I/O.

The money rule behind every mapping: Prism keeps no state and detects no duplicates,
so *a CreateLink whose answer we did not read may have made a payout*, and only a Get
that finds it or answers NOT_FOUND may end that doubt. A gRPC status proves nothing was
created only where Prism answers it before (or instead of) the connector's create:
INVALID_ARGUMENT, FAILED_PRECONDITION, UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND,
UNIMPLEMENTED (the connector's 4xx/501, or a flow it lacks) and RESOURCE_EXHAUSTED (429).
Everything else -- UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, UNKNOWN (Prism's answer for
a connector's 402/409/422/502), CANCELLED, a broken stream -- is an unknown outcome.

Pinned to the May 2026 wire (``proto/prism/payout_service.proto``): ``Customer.phone_number``
is a plain string, and CreateLink has no ``description`` field.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from streams.connectors.base import (
    Cancelled,
    CancelOutcome,
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
)
from streams.connectors.prism.account import PRISM_CURRENCIES, PrismAccount
from streams.connectors.prism.gen import payout_service_pb2 as pb

NAME = "prism"
SERVICE = "types.PayoutService"
CREATE_LINK = f"/{SERVICE}/CreateLink"
GET = f"/{SERVICE}/Get"
VOID = f"/{SERVICE}/Void"
DETAILS_KEY = "grpc-status-details-bin"
MAX_MESSAGE = 500  # Prism's and its connector's messages are kept, bounded
_ID = re.compile(r"[\x21-\x7e]{1,128}")  # a connector payout id we will put in an event
# x-request-id: deterministic per reference, flow and attempt, so Prism's and the
# connector's logs line up with ours for every call of a link.
REQUEST_ID_NAMESPACE = uuid.UUID("6f1d8c2e-6b1a-5c4e-9a51-7d0e2f3b4c5d")

# Statuses that prove the CreateLink made nothing, and the failure code each ends in.
_DEFINITE: Mapping[grpc.StatusCode, str] = {
    grpc.StatusCode.INVALID_ARGUMENT: "provider_rejected",
    grpc.StatusCode.NOT_FOUND: "provider_rejected",
    grpc.StatusCode.FAILED_PRECONDITION: "connector_flow_not_supported",
    grpc.StatusCode.UNIMPLEMENTED: "connector_flow_not_supported",
    grpc.StatusCode.UNAUTHENTICATED: "provider_authentication_failed",
    grpc.StatusCode.PERMISSION_DENIED: "provider_authentication_failed",
}
# Prism's own field names in an INVALID_ARGUMENT message → our request's fields.
_REQUEST_FIELD = {
    "amount": "amount.minor_amount",
    "destination_currency": "destination_currency",
    "currency": "amount.currency",
    "customer": "customer",
    "webhook_url": "webhook_url",
    "connector_payout_method_id": "connector_payout_method_id",
    "priority": "priority",
}
_FIELD_IN_MESSAGE = re.compile(r"(?:field|Field)[: ]+([a-z_][a-z0-9_.]{0,63})")
# A Void refused because of the payout's state: the connector's 400 (INVALID_ARGUMENT)
# saying so. Prism documents no such code; ``invalid_state`` and the words are the
# Prism-compatible server's ("Payout cannot be cancelled in status SUCCESS").
_NOT_CANCELLABLE_CODES = frozenset({"invalid_state", "invalid_status", "not_cancellable"})
_NOT_CANCELLABLE = re.compile(r"can ?not be (?:cancell?ed|voided)|can't be (?:cancell?ed|voided)"
                              r"|not (?:cancell?able|voidable)", re.IGNORECASE)
_STATUS_NAMED = re.compile(r"\b([A-Z][A-Z_]{2,40})\b")
_ADDRESS_FIELDS = (("line1", "line1"), ("line2", "line2"), ("city", "city"),
                   ("state", "state"), ("zip", "zip_code"), ("first_name", "first_name"),
                   ("last_name", "last_name"))


@dataclass(frozen=True)
class PrismCreate:
    """The CreateLink call for one request: built once, re-sent unchanged on every attempt.

    Holds no credentials: the metadata is made from the account at send time.
    """

    message: pb.PayoutServiceCreateLinkRequest = field(repr=False)  # holds PII
    reference: str
    merchant_id: str  # x-merchant-id when the account names none


@dataclass(frozen=True)
class RpcError:
    """A gRPC error answer as the transport read it (code, message, raw details)."""

    code: grpc.StatusCode
    message: str
    details: bytes | None = None


def _text(value: str | None, limit: int = MAX_MESSAGE) -> str | None:
    if not value:
        return None
    cleaned = " ".join(value.split())
    return cleaned[:limit] or None


def unsupported(request: Mapping[str, Any]) -> Unsupported | None:
    """The first field of a schema-valid request Prism's CreateLink can't carry, or None."""
    currency = request["amount"]["currency"]
    if currency not in PRISM_CURRENCIES:
        return Unsupported("amount.currency", f"prism has no currency {currency}")
    destination = request.get("destination_currency")
    if destination is not None and destination not in PRISM_CURRENCIES:
        return Unsupported("destination_currency", f"prism has no currency {destination}")
    if request.get("expires_at") is not None:
        # A link must never outlive what the merchant asked for: not created without it.
        return Unsupported("expires_at", "prism's CreateLink has no expiry: the link would "
                                         "stay claimable for as long as the connector keeps it")
    notify = request.get("notify") or {}
    for channel in ("sms", "email"):
        if notify.get(channel):
            return Unsupported(f"notify.{channel}", "prism's CreateLink has no notification "
                                                    "option; deliver the link from "
                                                    "payout-link-created")
    for kind in ("shipping_address", "billing_address"):
        if ((request.get("address") or {}).get(kind) or {}).get("country") is not None:
            # Field 9 (Prism's CountryAlpha2 enum) is not in our pinned proto: an address
            # without its country could send money to the wrong place.
            return Unsupported(f"address.{kind}.country", "this processor does not send an "
                                                          "address country to prism yet")
    return None


def _address(raw: Mapping[str, Any]) -> pb.Address:
    address = pb.Address()
    for ours, theirs in _ADDRESS_FIELDS:
        value = raw.get(ours)
        if value is not None:
            getattr(address, theirs).value = value
    return address


def create_request(request: Mapping[str, Any], reference: str) -> PrismCreate:
    """The CreateLink message; never raises on a request :func:`unsupported` accepts.

    ``merchant_payout_id`` is our deterministic reference: the only key a later Get can
    find the payout by.
    """
    amount = request["amount"]
    priority = request.get("priority")
    message = pb.PayoutServiceCreateLinkRequest(
        merchant_payout_id=reference,
        amount=pb.Money(minor_amount=amount["minor_amount"], currency=amount["currency"]),
        destination_currency=request.get("destination_currency") or amount["currency"],
        # Prism's priority names are ours (the request schema's enum).
        priority=priority,
    )
    customer = request.get("customer") or {}
    for name in ("name", "id", "phone_number", "phone_country_code"):
        if customer.get(name) is not None:
            setattr(message.customer, name, customer[name])
    if customer.get("email") is not None:
        message.customer.email.value = customer["email"]
    for name in ("webhook_url", "connector_payout_method_id"):
        if request.get(name) is not None:
            setattr(message, name, request[name])
    address = request.get("address") or {}
    if address.get("shipping_address"):
        message.address.shipping_address.CopyFrom(_address(address["shipping_address"]))
    if address.get("billing_address"):
        message.address.billing_address.CopyFrom(_address(address["billing_address"]))
    return PrismCreate(message=message, reference=reference, merchant_id=request["merchant_id"])


def get_request(reference: str) -> pb.PayoutServiceGetRequest:
    return pb.PayoutServiceGetRequest(merchant_payout_id=reference)


def status_request(link: LinkRef) -> pb.PayoutServiceGetRequest:
    """Get by our reference and the connector's id (a connector looks up by either)."""
    return pb.PayoutServiceGetRequest(merchant_payout_id=link.reference,
                                      connector_payout_id=link.connector_payout_id)


def void_request(link: LinkRef) -> pb.PayoutServiceVoidRequest:
    return pb.PayoutServiceVoidRequest(merchant_payout_id=link.reference,
                                       connector_payout_id=link.connector_payout_id)


def request_id(reference: str, flow: str, attempt: int) -> str:
    return str(uuid.uuid5(REQUEST_ID_NAMESPACE, f"{reference}/{flow}/{attempt}"))


def metadata(account: PrismAccount, merchant_id: str, request_id_: str
             ) -> tuple[tuple[str, str], ...]:
    """The call's metadata: the connector and its credentials in ``x-connector-config``."""
    pairs = [("x-connector-config", account.config_header), ("x-request-id", request_id_)]
    if account.merchant_id or merchant_id:
        pairs.append(("x-merchant-id", account.merchant_id or merchant_id))
    if account.tenant_id:
        pairs.append(("x-tenant-id", account.tenant_id))
    return tuple(pairs)


# --- answers -----------------------------------------------------------------------


def _status_name(value: int) -> str | None:
    """A PayoutStatus name, or None for UNSPECIFIED or a number our proto doesn't know
    (a later Prism's NOT_PERMITTED = 14 is one)."""
    if value == pb.PayoutEnums.PAYOUT_STATUS_UNSPECIFIED:
        return None
    try:
        return pb.PayoutEnums.PayoutStatus.Name(value)
    except ValueError:
        return None


def _error_details(info: pb.ErrorInfo) -> dict[str, Any]:
    connector = info.connector_details if info.HasField("connector_details") else None
    unified = info.unified_details if info.HasField("unified_details") else None
    code = (connector.code if connector is not None and connector.HasField("code") else None) or (
        unified.code if unified is not None and unified.HasField("code") else None)
    message = (connector.message if connector is not None and connector.HasField("message")
               else None) or (unified.message if unified is not None
                              and unified.HasField("message") else None)
    reason = connector.reason if connector is not None and connector.HasField("reason") else None
    return {"code": _text(code, 100), "message": _text(message), "reason": _text(reason, 200),
            "field": None}


def _found(response: pb.PayoutServiceCreateLinkResponse | pb.PayoutServiceGetResponse
           ) -> LinkCreated | None:
    """The payout an OK answer names, or None when the answer doesn't name one whole."""
    payout_id = response.connector_payout_id if response.HasField("connector_payout_id") else ""
    status = _status_name(response.payout_status) if response.HasField("payout_status") else None
    if not _ID.fullmatch(payout_id) or status is None:
        return None
    # Prism's answer has no URL field: the link exists, and its URL (if the connector
    # makes one) reaches the merchant another way. The created event says so (url null).
    return LinkCreated(connector_payout_id=payout_id, url=None, connector_status=status,
                       payout_status=status, expires_at=None,
                       status_code=response.status_code or None)


def read_create(response: pb.PayoutServiceCreateLinkResponse, sent: PrismCreate
                ) -> ProviderOutcome:
    """An OK CreateLink answer."""
    if response.HasField("error"):
        # The connector answered 200 with a failure body: nothing was made.
        details = _error_details(response.error)
        return Rejected("provider_rejected",
                        details["message"] or "the connector refused the payout link",
                        None, response.status_code or 200, details)
    echoed = response.merchant_payout_id if response.HasField("merchant_payout_id") else None
    if echoed is not None and echoed != sent.reference:
        return Unknown("create_answer_names_another_payout")
    found = _found(response)
    if found is None:
        # Something was answered OK, but we can't tell what exists: look it up.
        return Unknown("create_answer_unreadable", response.status_code or None)
    return found


def read_get(response: pb.PayoutServiceGetResponse, reference: str) -> ProviderOutcome:
    """An OK Get answer: a found payout, or (a failure body, an unreadable answer, an
    answer about another payout) nothing proven either way."""
    if response.HasField("error"):
        return Transient("lookup_failure_body", response.status_code or None)
    echoed = response.merchant_payout_id if response.HasField("merchant_payout_id") else None
    if echoed is not None and echoed != reference:
        return Transient("lookup_answered_another_payout")
    found = _found(response)
    if found is None:
        return Transient("lookup_answer_unreadable", response.status_code or None)
    return found


def decode_details(raw: bytes | None) -> tuple[int | None, str | None, dict[str, Any] | None]:
    """``grpc-status-details-bin``: (connector HTTP status, Prism's error code,
    connector details). Prism sends a raw ConnectorError or IntegrationError; a detail
    that is neither (a ``google.rpc.Status`` from a proxy) is ignored."""
    if not raw:
        return None, None, None
    try:
        connector = pb.ConnectorError.FromString(raw)
    except DecodeError:
        connector = None
    if connector is not None and connector.HasField("http_status_code"):
        details = (_error_details(connector.error_info)
                   if connector.HasField("error_info") else None)
        return connector.http_status_code, _text(connector.error_code, 64), details
    try:
        integration = pb.IntegrationError.FromString(raw)
    except DecodeError:
        return None, None, None
    return None, _text(integration.error_code, 64), None


def _field(code: grpc.StatusCode, message: str) -> str | None:
    if code is not grpc.StatusCode.INVALID_ARGUMENT:
        return None
    match = _FIELD_IN_MESSAGE.search(message)
    return _REQUEST_FIELD.get(match.group(1)) if match else None


def read_create_error(error: RpcError) -> ProviderOutcome:
    """A gRPC error answer to CreateLink."""
    http_status, _, _ = decode_details(error.details)
    if error.code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        # "throttled", as every provider says it: the circuit breaker does not count it.
        return Transient("throttled", http_status or 429)
    code = _DEFINITE.get(error.code)
    if code is None:
        return Unknown(f"grpc_{error.code.name.lower()}", http_status)
    return _refusal(code, "prism", error, _field(error.code, error.message))


def read_get_error(error: RpcError) -> ProviderOutcome:
    """A gRPC error answer to Get: only NOT_FOUND proves the payout doesn't exist.

    A refusal (INVALID_ARGUMENT, FAILED_PRECONDITION -- the connector has no Get flow --,
    UNIMPLEMENTED, UNAUTHENTICATED, PERMISSION_DENIED) is :class:`Rejected`, as every
    provider's refused lookup is: the link stays in doubt
    (:meth:`streams.link_creation.LinkCreator._attempt` turns it into an unknown outcome),
    and the circuit breaker does not count Prism's answer as Prism being down. Anything
    else is :class:`Transient`: nothing proven, ask again.
    """
    if error.code is grpc.StatusCode.NOT_FOUND:
        return NotFound()
    code = _DEFINITE.get(error.code)
    if code is not None:
        return _refusal(code, "prism Get", error, None)
    http_status, _, _ = decode_details(error.details)
    return Transient(f"lookup_grpc_{error.code.name.lower()}", http_status)


def _refusal(code: str, said_by: str, error: RpcError, field: str | None) -> Rejected:
    """A gRPC refusal as one Rejected: Prism's message, the connector's details when the
    trailer carries them, the gRPC status as the reason."""
    http_status, prism_code, details = decode_details(error.details)
    message = _text(error.message) or error.code.name
    return Rejected(code, f"{said_by}: {message}", field, http_status, {
        "code": (details or {}).get("code") or prism_code,
        "message": (details or {}).get("message") or message,
        "reason": error.code.name,
        "field": None,
    })


def trailer(trailing: Sequence[tuple[str, str | bytes]] | None, key: str = DETAILS_KEY
            ) -> bytes | None:
    for name, value in trailing or ():
        if name == key and isinstance(value, bytes):
            return value
    return None


# --- after creation: status (Get) and cancel (Void) ----------------------------------


def _report(response: pb.PayoutServiceGetResponse | pb.PayoutServiceVoidResponse,
            link: LinkRef) -> StatusReport | None:
    """The report an OK answer about ``link`` makes, or None when it is unreadable or
    names another payout."""
    echoed = response.merchant_payout_id if response.HasField("merchant_payout_id") else None
    stated = response.connector_payout_id if response.HasField("connector_payout_id") else None
    if echoed not in (None, link.reference) or stated not in (None, "", link.connector_payout_id):
        return None
    status = _status_name(response.payout_status) if response.HasField("payout_status") else None
    if status is None:
        return None
    return StatusReport(connector_status=status, reference=link.reference,
                        connector_payout_id=link.connector_payout_id)


def read_status(response: pb.PayoutServiceGetResponse, link: LinkRef) -> StatusOutcome:
    """An OK Get answer as a poll reads it: the payout's status, or nothing proven."""
    if response.HasField("error"):
        return Transient("status_failure_body", response.status_code or None)
    report = _report(response, link)
    if report is None:
        return Transient("status_answer_unreadable", response.status_code or None)
    return report


def read_status_error(error: RpcError) -> StatusOutcome:
    """A gRPC error answer to a poll's Get: the lookup's mapping (:func:`read_get_error`:
    NOT_FOUND proves absence, a refusal is Rejected), with the connector's 429 read as
    throttling, which the circuit breaker does not count."""
    if error.code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        http_status, _, _ = decode_details(error.details)
        return Transient("throttled", http_status or 429)
    outcome = read_get_error(error)
    assert not isinstance(outcome, LinkCreated)  # an error answer names no payout
    return outcome


def read_void(response: pb.PayoutServiceVoidResponse, link: LinkRef) -> CancelOutcome:
    """An OK Void answer: cancelled (with the status it states, when readable), or the
    connector's 200 with a failure body (nothing was cancelled)."""
    if response.HasField("error"):
        details = _error_details(response.error)
        return Rejected("provider_rejected",
                        details["message"] or "the connector refused to void the payout",
                        None, response.status_code or 200, details)
    echoed = response.merchant_payout_id if response.HasField("merchant_payout_id") else None
    stated = response.connector_payout_id if response.HasField("connector_payout_id") else None
    if echoed not in (None, link.reference) or stated not in (None, "", link.connector_payout_id):
        return Unknown("void_answer_names_another_payout", response.status_code or None)
    return Cancelled(_report(response, link))


def read_void_error(error: RpcError) -> CancelOutcome:
    """A gRPC error answer to Void.

    Refusals made before anything was cancelled: FAILED_PRECONDITION / UNIMPLEMENTED (the
    connector has no Void flow: ``connector_flow_not_supported``), UNAUTHENTICATED /
    PERMISSION_DENIED, NOT_FOUND (``link_not_found``), INVALID_ARGUMENT (the connector's
    400: :class:`NotCancellable` when it says the payout's state forbids it).
    RESOURCE_EXHAUSTED is throttling. Anything else (UNAVAILABLE, DEADLINE_EXCEEDED,
    INTERNAL, UNKNOWN, ...) may have followed the connector's cancel: Unknown.
    """
    http_status, _, details = decode_details(error.details)
    if error.code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        return Transient("throttled", http_status or 429)
    if error.code is grpc.StatusCode.NOT_FOUND:
        return _refusal("link_not_found", "prism Void", error, None)
    if error.code is grpc.StatusCode.INVALID_ARGUMENT:
        message = _text(error.message) or ""
        connector_code = (details or {}).get("code")
        if connector_code in _NOT_CANCELLABLE_CODES or _NOT_CANCELLABLE.search(message):
            named = [w for w in _STATUS_NAMED.findall(message)
                     if w in pb.PayoutEnums.PayoutStatus.keys()]
            return NotCancellable(message or "the payout cannot be cancelled in its state",
                                  named[-1] if named else None)
    code = _DEFINITE.get(error.code)
    if code is None:
        return Unknown(f"grpc_{error.code.name.lower()}", http_status)
    return _refusal(code, "prism Void", error, None)
