"""RazorpayX webhooks: the signature over the raw body (rotation, tampering, odd
headers) and every payout-link event parsed by its name."""
from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from streams.connectors.base import StatusReport, WebhookRejected, WebhookReport
from streams.connectors.razorpay import PROVIDER
from streams.connectors.razorpay.webhooks import WEBHOOKS, RazorpayWebhooks

SECRET = b"whsec_new_5f1c"
OLD_SECRET = b"whsec_old_09aa"
REF = "pl2_1a2b3c4d0123456789abcdef0123456"
NOW = 1_900_000_000.0


def event(name: str = "payout_link.processed", **entity_changes: Any) -> dict[str, Any]:
    """Razorpay's documented envelope around a payout link entity."""
    entity: dict[str, Any] = {
        "id": "poutlk_Fq8aUZBcz8WbR6", "entity": "payout_link", "status": "processed",
        "receipt": REF, "attempt_count": 1, "amount": 1000, "currency": "INR",
        "short_url": "https://rzp.io/i/3b1Bw6D", "created_at": 1_899_990_000,
    }
    for key, value in entity_changes.items():
        if value is None:
            entity.pop(key, None)
        else:
            entity[key] = value
    return {"entity": "event", "account_id": "acc_BFQ7uQEaa7j2z7", "event": name,
            "contains": ["payout_link"], "payload": {"payout_link": {"entity": entity}},
            "created_at": 1_900_000_000}


def body_of(payload: Any) -> bytes:
    return orjson.dumps(payload)


def signed(body: bytes, secret: bytes = SECRET, event_id: str | None = "evt_Fq8b1") -> dict[str, str]:
    headers = {"x-razorpay-signature": hmac.new(secret, body, hashlib.sha256).hexdigest(),
               "content-type": "application/json"}
    if event_id is not None:
        headers["x-razorpay-event-id"] = event_id
    return headers


BODY = body_of(event())


# --- verify ---------------------------------------------------------------------------


def test_a_signature_made_with_the_secret_verifies() -> None:
    assert WEBHOOKS.verify(signed(BODY), BODY, [SECRET], NOW) is None


def test_during_a_rotation_the_old_and_the_new_secret_both_verify() -> None:
    assert WEBHOOKS.verify(signed(BODY, OLD_SECRET), BODY, [SECRET, OLD_SECRET], NOW) is None
    assert WEBHOOKS.verify(signed(BODY, SECRET), BODY, [SECRET, OLD_SECRET], NOW) is None
    # once the old one is gone, its signatures are refused
    gone = WEBHOOKS.verify(signed(BODY, OLD_SECRET), BODY, [SECRET], NOW)
    assert isinstance(gone, WebhookRejected) and gone.code == "signature_invalid"


def test_a_wrong_secret_is_refused_naming_the_header_never_a_value() -> None:
    headers = signed(BODY, b"someone-elses")
    out = WEBHOOKS.verify(headers, BODY, [SECRET], NOW)
    assert out == WebhookRejected(401, "signature_invalid",
                                  "x-razorpay-signature matches no webhook secret of this merchant")
    assert headers["x-razorpay-signature"] not in out.message and "whsec" not in out.message


def test_a_body_reserialised_after_signing_fails() -> None:
    payload = event()
    body = orjson.dumps(payload)
    headers = signed(body)
    for changed in (orjson.dumps(payload, option=orjson.OPT_INDENT_2),
                    orjson.dumps(payload, option=orjson.OPT_SORT_KEYS),
                    body + b"\n", body.replace(b'"amount":1000', b'"amount":100000')):
        assert changed != body
        out = WEBHOOKS.verify(headers, changed, [SECRET], NOW)
        assert isinstance(out, WebhookRejected) and out.code == "signature_invalid"


def test_a_missing_signature_or_secret_is_refused() -> None:
    assert WEBHOOKS.verify({}, BODY, [SECRET], NOW) == WebhookRejected(
        401, "signature_missing", "no x-razorpay-signature header")
    assert WEBHOOKS.verify({"x-razorpay-signature": "  "}, BODY, [SECRET], NOW).code == (
        "signature_missing")
    none = WEBHOOKS.verify(signed(BODY), BODY, [], NOW)
    assert isinstance(none, WebhookRejected) and (none.http_status, none.code) == (
        401, "signature_invalid")


def test_the_header_is_found_in_any_case_and_an_upper_case_digest_verifies() -> None:
    digest = hmac.new(SECRET, BODY, hashlib.sha256).hexdigest()
    assert WEBHOOKS.verify({"X-Razorpay-Signature": digest}, BODY, [SECRET], NOW) is None
    assert WEBHOOKS.verify({"x-razorpay-signature": digest.upper()}, BODY, [SECRET], NOW) is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.binary(max_size=200))
def test_odd_signatures_are_refused_and_never_raise(given_signature: str, body: bytes) -> None:
    out = WEBHOOKS.verify({"x-razorpay-signature": given_signature}, body, [SECRET, OLD_SECRET],
                          NOW)
    assert isinstance(out, WebhookRejected) and out.http_status == 401


@pytest.mark.parametrize("odd", ["zz" * 32, "é" * 64, "\u0000" * 64, "0" * 10_000,
                                 "\udcff" * 64, "😀"])
def test_non_hex_non_ascii_and_huge_signatures_are_refused(odd: str) -> None:
    out = WEBHOOKS.verify({"x-razorpay-signature": odd}, BODY, [SECRET], NOW)
    assert isinstance(out, WebhookRejected) and out.code == "signature_invalid"


# --- parse ----------------------------------------------------------------------------


@pytest.mark.parametrize("name, entity_status, status", [
    ("payout_link.pending", "pending", "pending"),
    ("payout_link.issued", "issued", "issued"),
    ("payout_link.processing", "processing", "processing"),
    ("payout_link.processed", "processed", "processed"),
    ("payout_link.attempted", "issued", "issued"),  # a failed or reversed payout
    ("payout_link.cancelled", "cancelled", "cancelled"),
    ("payout_link.rejected", "rejected", "rejected"),
    ("payout_link.expired", "cancelled", "expired"),  # the documented sample: the name wins
])
def test_each_event_reports_the_status_its_name_says(name: str, entity_status: str,
                                                     status: str) -> None:
    body = body_of(event(name, status=entity_status, attempt_count=2))
    out = WEBHOOKS.parse(signed(body), body)
    assert out == WebhookReport(StatusReport(
        connector_status=status, attempt=2, reference=REF,
        connector_payout_id="poutlk_Fq8aUZBcz8WbR6", occurred_at="2030-03-17T17:46:40Z",
        event_id="evt_Fq8b1", event_name=name), REF)


def test_the_event_id_header_is_optional_and_an_odd_one_is_dropped() -> None:
    out = WEBHOOKS.parse(signed(BODY, event_id=None), BODY)
    assert isinstance(out, WebhookReport) and out.report.event_id is None
    out = WEBHOOKS.parse({**signed(BODY), "x-razorpay-event-id": "evt 1\n"}, BODY)
    assert isinstance(out, WebhookReport) and out.report.event_id is None


def test_unreadable_details_do_not_refuse_the_event() -> None:
    body = body_of({**event(attempt_count="x", id="../etc"), "created_at": "yesterday"})
    out = WEBHOOKS.parse({}, body)
    assert isinstance(out, WebhookReport)
    assert (out.report.attempt, out.report.connector_payout_id, out.report.occurred_at) == (
        0, None, None)


@pytest.mark.parametrize("name", ["payout.processed", "payout_link.claimed", "payment.captured",
                                  "payout_link.", "PAYOUT_LINK.PROCESSED"])
def test_an_unknown_event_is_refused(name: str) -> None:
    out = WEBHOOKS.parse({}, body_of(event(name)))
    assert isinstance(out, WebhookRejected) and (out.http_status, out.code) == (400, "unknown_event")
    assert name in out.message


def test_an_unprintable_event_name_is_not_echoed() -> None:
    out = WEBHOOKS.parse({}, body_of(event("payout_link.x\n<script>")))
    assert isinstance(out, WebhookRejected) and "<script>" not in out.message


@pytest.mark.parametrize("receipt", [None, ""])
def test_a_missing_reference_is_refused(receipt: Any) -> None:
    out = WEBHOOKS.parse({}, body_of(event(receipt=receipt if receipt is not None else None)))
    assert out == WebhookRejected(400, "reference_missing",
                                  "payload.payout_link.entity.receipt is missing")


@pytest.mark.parametrize("body, field", [
    (b"", "JSON"), (b"{not json", "JSON"), (b"[]", "object"), (b'"x"', "object"),
    (b'{"event": 7}', "event"), (b'{"payload": {}}', "event"),
    (body_of({**event(), "payload": {"payout_link": {}}}), "payload.payout_link.entity"),
    (body_of({**event(), "payload": []}), "payload.payout_link.entity"),
    (body_of(event(receipt=["pl2_x"])), "receipt"),
    (body_of(event(receipt="has space")), "receipt"),
    ("{\"event\": \"payout_link.issued\"}".encode("utf-16"), "JSON"),
])
def test_a_malformed_body_is_refused_naming_what_is_wrong(body: bytes, field: str) -> None:
    out = WEBHOOKS.parse({}, body)
    assert isinstance(out, WebhookRejected) and (out.http_status, out.code) == (400, "malformed_body")
    assert field in out.message


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=500))
def test_parse_never_raises(body: bytes) -> None:
    assert isinstance(WEBHOOKS.parse({}, body), (WebhookReport, WebhookRejected))


def test_the_provider_exposes_the_receiver() -> None:
    assert isinstance(PROVIDER.webhooks, RazorpayWebhooks)
