"""Razorpay transformers against recorded payloads, one per answer shape."""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from streams.connectors.base import (
    HttpAnswer,
    LinkCreated,
    NotFound,
    Rejected,
    Transient,
    Unknown,
    Unsupported,
    link_reference,
)
from streams.connectors.razorpay import (
    MAX_EXPIRY_LEAD_S,
    MIN_EXPIRY_LEAD_S,
    RazorpayAccount,
    RazorpayConnector,
)
from streams.devkit.sims.razorpay import _error_body, validate_create
from streams.devkit.traffic import valid_request

RECORDED = Path(__file__).parent / "recorded" / "razorpay"
ACCOUNT = RazorpayAccount("rzp_test_x", "secret-never-logged", "2323230041626905")
connector = RazorpayConnector()
DAY = 86400


def answer(name: str) -> HttpAnswer:
    rec = orjson.loads((RECORDED / f"{name}.json").read_bytes())
    body = rec["raw_body"].encode() if "raw_body" in rec else orjson.dumps(rec["body"])
    return HttpAnswer(rec["status"], rec["headers"], body)


def test_create_call_maps_the_unified_request() -> None:
    request = valid_request(7)
    request["expires_at"] = "2030-01-01T00:00:00Z"
    ref = link_reference("m_demo:run-0000007")
    call = connector.create_call(request, ref, ACCOUNT)
    assert call.method == "POST" and call.path == "/v1/payout-links"
    body = call.json
    assert body["account_number"] == ACCOUNT.account_number
    assert body["amount"] == request["amount"]["minor_amount"]
    assert body["currency"] == "INR"
    assert body["contact"] == {"name": request["customer"]["name"], "type": "customer",
                               "contact": request["customer"]["phone_number"],
                               "email": request["customer"]["email"]}
    assert body["receipt"] == ref and len(ref) <= 40
    assert call.headers["X-Payout-Idempotency"] == ref and 4 <= len(ref) <= 36
    assert body["send_sms"] is True and body["send_email"] is True
    assert body["notes"] == request["metadata"]
    assert body["expire_by"] == 1893456000
    assert body["purpose"] == "refund" and body["description"] == request["description"]
    assert "secret-never-logged" not in orjson.dumps(body).decode()
    assert "secret" not in repr(ACCOUNT)


def test_create_call_defaults_description_and_omits_absent_contact_fields() -> None:
    request = valid_request(1)
    del request["description"], request["customer"]["phone_number"], request["metadata"]
    body = connector.create_call(request, "pl_x", ACCOUNT).json
    assert body["description"] == "Payout run-0000001"
    assert "contact" not in body["contact"] and "notes" not in body


def test_reference_is_deterministic_and_fits_every_provider_limit() -> None:
    a = link_reference("m1:payout-1")
    assert a == link_reference("m1:payout-1") != link_reference("m1:payout-2")
    assert len(a) == 35 and a.replace("_", "").isalnum()


def test_created_entity() -> None:
    out = connector.read_create(answer("created"))
    assert out == LinkCreated("poutlk_00000000000001", "https://rzp.io/i/3b1Bw6D", "issued",
                              "REQUIRES_PAYOUT_METHOD_DATA", "2030-01-27T10:33:34Z")


def test_created_pending_approval_keeps_raw_status() -> None:
    out = connector.read_create(answer("created_pending_approval"))
    assert isinstance(out, LinkCreated)
    assert (out.connector_status, out.payout_status, out.expires_at) == ("pending", "PENDING", None)


@pytest.mark.parametrize("name, code, field, provider_field", [
    ("error_validation_amount", "provider_rejected", "amount.minor_amount", "amount"),
    ("error_validation_contact_email", "provider_rejected", "customer.email", "contact.email"),
    ("error_insufficient_funds", "insufficient_funds", None, None),
    ("error_not_found", "provider_rejected", None, None),
])
def test_definite_rejections(name: str, code: str, field: str | None,
                             provider_field: str | None) -> None:
    out = connector.read_create(answer(name))
    assert isinstance(out, Rejected)
    assert (out.code, out.field) == (code, field)
    assert out.connector_details["code"] == "BAD_REQUEST_ERROR"
    assert out.connector_details["field"] == provider_field
    assert out.message == orjson.loads((RECORDED / f"{name}.json").read_bytes())[
        "body"]["error"]["description"]


def test_unauthorized_is_definite_and_names_no_secret() -> None:
    out = connector.read_create(answer("error_unauthorized"))
    assert isinstance(out, Rejected) and out.code == "provider_authentication_failed"
    assert out.status_code == 401


def test_throttling_is_transient_and_honours_retry_after() -> None:
    assert connector.read_create(answer("error_throttled")) == Transient("throttled", 429, None)
    assert connector.read_create(answer("error_throttled_retry_after")) == Transient(
        "throttled", 429, 3.0)


@pytest.mark.parametrize("name", ["error_server_500", "error_server_502", "error_server_503",
                                  "error_server_504", "error_html_gateway"])
def test_server_errors_are_unknown_outcomes(name: str) -> None:
    out = connector.read_create(answer(name))
    assert isinstance(out, Unknown) and out.status_code == answer(name).status


def test_unreadable_success_is_unknown_not_failure() -> None:
    assert isinstance(connector.read_create(answer("success_unreadable")), Unknown)


def test_lookup_finds_the_link_by_receipt() -> None:
    ref = "pl_ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    call = connector.lookup_call(ref)
    assert (call.method, call.path, call.params["receipt"]) == ("GET", "/v1/payout-links", ref)
    out = connector.read_lookup(answer("list_one"), ref)
    assert isinstance(out, LinkCreated) and out.connector_payout_id == "poutlk_00000000000001"


def test_lookup_empty_is_not_found() -> None:
    assert connector.read_lookup(answer("list_empty"), "pl_nothing") == NotFound()


def test_lookup_ignores_items_with_another_receipt() -> None:
    assert connector.read_lookup(answer("list_one"), "pl_other") == NotFound()


def test_lookup_with_duplicates_picks_the_oldest() -> None:
    out = connector.read_lookup(answer("list_two"), "pl_ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    assert isinstance(out, LinkCreated) and out.url == "https://rzp.io/i/first"


@pytest.mark.parametrize("name", ["error_server_503", "error_throttled", "error_html_gateway"])
def test_failed_lookup_is_transient_never_not_found(name: str) -> None:
    assert isinstance(connector.read_lookup(answer(name), "pl_x"), Transient)


# --- what RazorpayX can't honour: refused before anything is written ----------------

NOW = 1_900_000_000.0  # 2030-03-17T17:46:40Z


def at(seconds_from_now: float) -> str:
    return datetime.fromtimestamp(NOW + seconds_from_now, UTC).isoformat()


def test_a_request_razorpay_can_honour_is_supported() -> None:
    request = dict(valid_request(3), expires_at=at(7 * DAY), destination_currency="INR")
    assert connector.unsupported(request, NOW) is None


@pytest.mark.parametrize("change, field", [
    (lambda r: r.update(destination_currency="USD"), "destination_currency"),
    (lambda r: r["amount"].update(currency="USD"), "amount.currency"),
    (lambda r: r["amount"].update(minor_amount=99), "amount.minor_amount"),
    (lambda r: r["customer"].update(phone_number="9123456"), "customer.phone_number"),
    (lambda r: r["customer"].pop("phone_number"), "notify.sms"),
    (lambda r: r["customer"].pop("email"), "notify.email"),
    (lambda r: r.update(expires_at=at(-60)), "expires_at"),
    (lambda r: r.update(expires_at=at(MIN_EXPIRY_LEAD_S - 1)), "expires_at"),
    (lambda r: r.update(expires_at=at(MAX_EXPIRY_LEAD_S + 1)), "expires_at"),
    (lambda r: r.update(expires_at="2099-12-31T23:59:59Z"), "expires_at"),
])
def test_a_field_razorpay_cannot_honour_is_named(change, field: str) -> None:
    request = valid_request(3)
    change(request)
    gap = connector.unsupported(request, NOW)
    assert isinstance(gap, Unsupported) and gap.field == field and gap.message


@pytest.mark.parametrize("lead", [MIN_EXPIRY_LEAD_S, MIN_EXPIRY_LEAD_S + 0.5, MAX_EXPIRY_LEAD_S])
def test_the_expiry_window_includes_its_edges(lead: float) -> None:
    request = dict(valid_request(3), expires_at=at(lead))
    assert connector.unsupported(request, NOW) is None


@pytest.mark.parametrize("lead, provider_accepts", [
    (MIN_EXPIRY_LEAD_S - 1, False), (MIN_EXPIRY_LEAD_S, True), (MAX_EXPIRY_LEAD_S, True),
    (MAX_EXPIRY_LEAD_S + 1, False)])
def test_the_simulator_draws_the_expiry_window_where_the_connector_does(
        lead: int, provider_accepts: bool) -> None:
    request = dict(valid_request(3), expires_at=at(lead))
    body = connector.create_call(request, "pl_x", ACCOUNT).json
    failure = validate_create(dict(body), NOW)
    assert (failure is None) == provider_accepts == (connector.unsupported(request, NOW) is None)
    if failure is not None:  # should the two ever drift, the refusal names our field
        refused = connector.read_create(HttpAnswer(400, {}, orjson.dumps(
            _error_body(failure[1], field=failure[0]))))
        assert isinstance(refused, Rejected) and refused.field == "expires_at"


@pytest.mark.parametrize("expires_at, expire_by", [
    ("2030-06-30T23:59:60Z", 1909094400),            # a leap second: the next midnight
    ("2030-01-01t05:29:59.5+05:30", 1893455999),
    ("2030-01-01T00:00:00-23:59", 1893542340),
    ("2030-01-01T00:00:00." + "1" * 10_000 + "z", 1893456000),
])
def test_every_rfc3339_spelling_becomes_its_unix_second(expires_at: str, expire_by: int) -> None:
    request = dict(valid_request(3), expires_at=expires_at)
    assert connector.create_call(request, "pl_x", ACCOUNT).json["expire_by"] == expire_by


def created(expire_by: bytes | None) -> HttpAnswer:
    body = b'{"id":"poutlk_1","short_url":"https://rzp.io/i/x","status":"issued"'
    return HttpAnswer(200, {}, body + (b',"expire_by":' + expire_by if expire_by else b"") + b"}")


@pytest.mark.parametrize("expire_by", [None, b'"2030-01-01"', b"99999999999999", b"1.5e9"])
def test_an_unreadable_expiry_in_the_answer_keeps_the_one_sent(expire_by: bytes | None) -> None:
    sent = connector.create_call(dict(valid_request(3), expires_at="2030-01-01T00:00:00Z"),
                                 "pl_x", ACCOUNT)
    for out in (connector.read_create(created(expire_by), sent),
                connector.read_lookup(HttpAnswer(200, {}, b'{"items":[' + created(
                    expire_by).body.replace(b"{", b'{"receipt":"pl_x",', 1) + b"]}"),
                    "pl_x", sent)):
        assert isinstance(out, LinkCreated) and out.expires_at == "2030-01-01T00:00:00Z"


def test_the_answers_own_expiry_wins_and_null_means_none() -> None:
    sent = connector.create_call(dict(valid_request(3), expires_at="2030-01-01T00:00:00Z"),
                                 "pl_x", ACCOUNT)
    assert connector.read_create(created(b"1893456060"), sent).expires_at == "2030-01-01T00:01:00Z"
    # The provider saying "no expiry" is told as it is: the link really has none.
    assert connector.read_create(created(b"null"), sent).expires_at is None
