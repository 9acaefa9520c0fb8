"""Razorpay transformers against recorded payloads, one per answer shape; the account's
webhook secrets; and the client's poll and cancel against the in-process simulator."""
from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio

from streams.connectors.base import (
    Cancelled,
    HttpAnswer,
    HttpCall,
    LinkCreated,
    LinkRef,
    NotCancellable,
    NotFound,
    Rejected,
    StatusReport,
    Transient,
    Unknown,
    Unsupported,
    link_reference,
)
from streams.connectors.provider import CredentialError, Endpoint
from streams.connectors.razorpay import (
    MAX_EXPIRY_LEAD_S,
    MIN_EXPIRY_LEAD_S,
    PROVIDER,
    RazorpayAccount,
    RazorpayClient,
    RazorpayConnector,
    transformers as tf,
)
from streams.connectors.razorpay.account import parse_account
from streams.connectors.razorpay.lifecycle import LIFECYCLE
from streams.devkit.sims.razorpay import (
    PayoutLinkSimulator,
    SimConfig,
    _error_body,
    start_server,
    validate_create,
)
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


# --- account: webhook secrets -------------------------------------------------------

KEYS = {"key_id": "rzp_test_x", "key_secret": "secret-never-logged",
        "account_number": "2323230041626905"}


def test_webhook_secrets_are_optional_listed_or_single_and_hidden() -> None:
    assert parse_account(KEYS).webhook_secrets == ()
    listed = parse_account({**KEYS, "webhook_secrets": ["whsec-new-91", "whsec-old-17"]})
    assert listed.webhook_secrets == ("whsec-new-91", "whsec-old-17")
    single = parse_account({**KEYS, "webhook_secret": "whsec-one-55"})
    assert single.webhook_secrets == ("whsec-one-55",)
    both = parse_account({**KEYS, "webhook_secrets": ["a-1", "b-2"], "webhook_secret": "a-1"})
    assert both.webhook_secrets == ("a-1", "b-2")  # each once
    assert "whsec" not in repr(listed) and "secret-never-logged" not in repr(listed)
    assert PROVIDER.webhook_secrets(listed) == (b"whsec-new-91", b"whsec-old-17")
    assert PROVIDER.webhook_secrets(parse_account(KEYS)) == ()


@pytest.mark.parametrize("extra, field", [
    ({"webhook_secrets": "whsec-leak-1"}, "webhook_secrets"),
    ({"webhook_secrets": ["whsec-leak-1", ""]}, "webhook_secrets[1]"),
    ({"webhook_secrets": ["whsec-leak-1", 7]}, "webhook_secrets[1]"),
    ({"webhook_secrets": ["   "]}, "webhook_secrets[0]"),
    ({"webhook_secrets": ["whsec-leak-1"] * 9}, "webhook_secrets"),
    ({"webhook_secret": ""}, "webhook_secret"),
    ({"webhook_secret": ["whsec-leak-1"]}, "webhook_secret"),
    ({"webhook_secret": "x" * 1025}, "webhook_secret"),
    ({"webhook_key": "whsec-leak-1"}, "webhook_key"),
])
def test_a_bad_webhook_secret_names_the_field_never_the_value(extra: dict[str, Any],
                                                              field: str) -> None:
    with pytest.raises(CredentialError) as caught:
        parse_account({**KEYS, **extra})
    assert caught.value.field == field
    assert "whsec-leak-1" not in str(caught.value) and "secret-never-logged" not in str(caught.value)


def test_the_dev_account_carries_the_demo_webhook_secret() -> None:
    dev = PROVIDER.parse_account(PROVIDER.dev_account or {})
    assert PROVIDER.webhook_secrets(dev) == (b"demo_webhook_secret",)
    assert PROVIDER.expires_links is False and PROVIDER.webhooks is not None


# --- after creation: the poll and the cancel (pure) ---------------------------------

LINK_ID = "poutlk_00000000000001"
RECORDED_REF = "pl_ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
LINK = LinkRef(RECORDED_REF, LINK_ID)


def entity(**changes: Any) -> HttpAnswer:
    """The recorded created entity, some fields changed (None: removed)."""
    body = orjson.loads((RECORDED / "created.json").read_bytes())["body"]
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return HttpAnswer(200, {}, orjson.dumps(body))


def error(status: int, description: str, **kw: Any) -> HttpAnswer:
    return HttpAnswer(status, {}, orjson.dumps(_error_body(description, **kw)))


def test_status_and_cancel_calls_name_the_link_in_the_path() -> None:
    call = tf.status_call(LINK)
    assert isinstance(call, HttpCall)
    assert (call.method, call.path, call.json) == ("GET", f"/v1/payout-links/{LINK_ID}", None)
    call = tf.cancel_call(LINK)
    assert isinstance(call, HttpCall)
    assert (call.method, call.path, call.json) == ("POST", f"/v1/payout-links/{LINK_ID}/cancel",
                                                   None)


@pytest.mark.parametrize("bad_id", ["", "../v1/payouts", "poutlk_1/cancel", "poutlk 1",
                                    "poutlk_1?x=1", "ü", "a" * 65])
def test_an_id_that_could_not_be_razorpays_is_never_sent(bad_id: str) -> None:
    for build in (tf.status_call, tf.cancel_call):
        refused = build(LinkRef(RECORDED_REF, bad_id))
        assert isinstance(refused, Rejected) and refused.field is None
        assert refused.connector_details["reason"] == "invalid_link_id"


@pytest.mark.parametrize("status, attempt", [
    ("issued", 0), ("processing", 1), ("processed", 1), ("cancelled", 0), ("expired", 2),
    ("rejected", 0), ("pending", 0),
])
def test_a_polled_entity_is_a_report_of_its_status_and_attempt(status: str, attempt: int) -> None:
    out = tf.read_status(entity(status=status, attempt_count=attempt), LINK)
    assert out == StatusReport(status, attempt, RECORDED_REF, LINK_ID)


def test_an_attempted_entity_reads_as_issued_after_that_attempt() -> None:
    out = tf.read_status(entity(status="attempted", attempt_count=2), LINK)
    assert out == StatusReport("issued", 2, RECORDED_REF, LINK_ID)
    assert LIFECYCLE.position(out) == (2, 4)


@pytest.mark.parametrize("answer_", [
    entity(id="poutlk_someone_else"),  # another link: never adopted
    entity(receipt="pl_another_reference"),
    entity(status=None), entity(status=7), entity(status="Issued!"),
    HttpAnswer(200, {}, b"<html>"), HttpAnswer(200, {}, b"[]"),
])
def test_a_poll_answer_we_cannot_read_proves_nothing(answer_: HttpAnswer) -> None:
    assert tf.read_status(answer_, LINK) == Transient("status_unreadable", 200)


@pytest.mark.parametrize("attempt_count", [None, -1, "2", 2.0, True, 2**40])
def test_an_unreadable_attempt_count_is_attempt_zero(attempt_count: Any) -> None:
    out = tf.read_status(entity(status="processing", attempt_count=attempt_count), LINK)
    assert isinstance(out, StatusReport) and out.attempt == 0


def test_poll_errors_by_status_code_class() -> None:
    assert tf.read_status(answer("error_not_found"), LINK) == NotFound()
    no_such = tf.read_status(error(400, "The id provided does not exist", field="id"), LINK)
    assert isinstance(no_such, Rejected) and no_such.code == "link_not_found"
    bad = tf.read_status(error(400, "Something else is wrong"), LINK)
    assert isinstance(bad, Rejected) and (bad.code, bad.status_code) == ("provider_rejected", 400)
    for status in (401, 403):
        refused = tf.read_status(error(status, "The api key provided is invalid"), LINK)
        assert isinstance(refused, Rejected)
        assert (refused.code, refused.status_code) == ("provider_authentication_failed", status)
    assert tf.read_status(answer("error_throttled_retry_after"), LINK) == Transient(
        "throttled", 429, 3.0)
    assert tf.read_status(HttpAnswer(408, {}, b""), LINK) == Transient("request_timeout", 408)
    for name in ("error_server_500", "error_server_502", "error_server_503", "error_server_504",
                 "error_html_gateway"):
        assert tf.read_status(answer(name), LINK) == Unknown("provider_unavailable",
                                                             answer(name).status)
    assert tf.read_status(HttpAnswer(302, {}, b""), LINK) == Unknown("unexpected_status", 302)


def test_a_cancelled_entity_is_cancelled_with_its_report() -> None:
    out = tf.read_cancel(entity(status="cancelled", cancelled_at=1592560000), LINK)
    assert out == Cancelled(StatusReport("cancelled", 0, RECORDED_REF, LINK_ID))


def test_a_cancel_answered_200_unreadably_still_cancelled() -> None:
    assert tf.read_cancel(HttpAnswer(200, {}, b"not json"), LINK) == Cancelled(None)
    assert tf.read_cancel(entity(status=None), LINK) == Cancelled(None)
    assert tf.read_cancel(entity(id="poutlk_other"), LINK) == Unknown(
        "cancel_answer_names_another_link", 200)


@pytest.mark.parametrize("description, status", [
    ("Payout link cannot be cancelled in processed status.", "processed"),  # the simulator's
    ("Payout link cannot be cancelled in processing status.", "processing"),
    ("Payout link cannot be cancelled in attempted status.", "issued"),
    ("Payout link is not in a cancellable state", None),
    ("Payout Link can't be cancelled. Current status is expired", "expired"),
])
def test_a_cancel_refused_for_the_links_state_is_not_cancellable(description: str,
                                                                 status: str | None) -> None:
    out = tf.read_cancel(error(400, description, step="payout_link_cancellation"), LINK)
    assert out == NotCancellable(description, status)


def test_cancel_errors_by_status_code_class() -> None:
    for reply in (answer("error_not_found"),
                  error(400, "The id provided does not exist", field="id")):
        out = tf.read_cancel(reply, LINK)
        assert isinstance(out, Rejected) and out.code == "link_not_found"
    other = tf.read_cancel(error(400, "The account number is invalid."), LINK)
    assert isinstance(other, Rejected) and other.code == "provider_rejected"
    for status in (401, 403):
        refused = tf.read_cancel(error(status, "The api key provided is invalid"), LINK)
        assert isinstance(refused, Rejected) and refused.code == "provider_authentication_failed"
    assert tf.read_cancel(answer("error_throttled"), LINK) == Transient("throttled", 429, None)
    for name in ("error_server_500", "error_server_503", "error_html_gateway"):
        # a gateway's 5xx may follow a cancel that happened
        assert tf.read_cancel(answer(name), LINK) == Unknown("provider_unavailable",
                                                             answer(name).status)


# --- the client's poll and cancel against the simulator (real HTTP) ---------------------


@pytest_asyncio.fixture
async def razorpay() -> AsyncIterator[tuple[PayoutLinkSimulator, RazorpayClient]]:
    sim = PayoutLinkSimulator(SimConfig(latency_ms=0, jitter_ms=0))
    runner, port = await start_server(sim)
    client = PROVIDER.client(Endpoint(f"http://127.0.0.1:{port}", connect_timeout_s=1,
                                      read_timeout_s=2, max_connections=4))
    try:
        yield sim, client
    finally:
        await client.aclose()
        await runner.cleanup()


DEV = parse_account(PROVIDER.dev_account or {})
SIM_REF = link_reference("m_demo:run-0000001")


async def _created(client: RazorpayClient) -> LinkRef:
    created = await client.create(PROVIDER.prepare(valid_request(1), SIM_REF, DEV), DEV)
    assert isinstance(created, LinkCreated)
    return LinkRef(SIM_REF, created.connector_payout_id)


async def test_the_client_polls_and_cancels_a_link_at_the_simulator(razorpay) -> None:
    sim, client = razorpay
    link = await _created(client)
    assert await client.status(link, DEV) == StatusReport("issued", 0, SIM_REF,
                                                          link.connector_payout_id)
    cancelled = await client.cancel(link, DEV)
    assert cancelled == Cancelled(StatusReport("cancelled", 0, SIM_REF, link.connector_payout_id))
    assert sim.links[link.connector_payout_id].entity["status"] == "cancelled"
    polled = await client.status(link, DEV)
    assert isinstance(polled, StatusReport) and polled.connector_status == "cancelled"
    again = await client.cancel(link, DEV)  # Razorpay cancels from issued only
    assert again == NotCancellable("Payout link cannot be cancelled in cancelled status.",
                                   "cancelled")


async def test_a_claimed_link_is_not_cancellable_and_polls_as_its_attempt(razorpay) -> None:
    sim, client = razorpay
    link = await _created(client)
    found = sim.links[link.connector_payout_id].entity
    found.update(status="processing", attempt_count=1)
    polled = await client.status(link, DEV)
    assert polled == StatusReport("processing", 1, SIM_REF, link.connector_payout_id)
    assert LIFECYCLE.position(polled) == (1, 2)
    refused = await client.cancel(link, DEV)
    assert isinstance(refused, NotCancellable) and refused.connector_status == "processing"
    found.update(status="attempted", attempt_count=2)  # the simulator's forced reversal
    polled = await client.status(link, DEV)
    assert isinstance(polled, StatusReport) and (polled.connector_status, polled.attempt) == (
        "issued", 2)


async def test_the_simulators_refusals_reach_the_caller_as_values(razorpay) -> None:
    sim, client = razorpay
    link = await _created(client)
    unknown = LinkRef(SIM_REF, "poutlk_AAAAAAAAAAAAAA")
    for outcome in (await client.status(unknown, DEV), await client.cancel(unknown, DEV)):
        assert isinstance(outcome, Rejected) and outcome.code == "link_not_found"
    wrong = RazorpayAccount("rzp_test_demo", "wrong", DEV.account_number)
    for outcome in (await client.status(link, wrong), await client.cancel(link, wrong)):
        assert isinstance(outcome, Rejected) and outcome.code == "provider_authentication_failed"
    sim.config.apply({"outage_status": 503})
    for outcome in (await client.status(link, DEV), await client.cancel(link, DEV)):
        assert outcome == Unknown("provider_unavailable", 503)
    sim.config.apply({"outage_status": 0, "faults_on_reads": True, "lost_after_create": 1.0})
    lost = await client.status(link, DEV)
    assert isinstance(lost, Unknown) and lost.reason.startswith("no_answer")
    assert sim.links[link.connector_payout_id].entity["status"] == "issued"


async def test_a_poll_that_never_left_is_transient() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens once the block ends
    client = PROVIDER.client(Endpoint(f"http://127.0.0.1:{port}", connect_timeout_s=1,
                                      read_timeout_s=1, max_connections=2))
    try:
        for outcome in (await client.status(LINK, DEV), await client.cancel(LINK, DEV)):
            assert isinstance(outcome, Transient) and outcome.reason.startswith("not_sent")
    finally:
        await client.aclose()
