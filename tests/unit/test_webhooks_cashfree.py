"""Cashfree Cashgram webhooks: the form signature (the simulator's own signing, rotation,
tampering, odd input) and every event parsed."""
from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings, strategies as st

from streams.connectors.base import (
    Cancelled,
    LinkCreated,
    LinkRef,
    StatusReport,
    WebhookRejected,
    WebhookReport,
    link_reference,
)
from streams.connectors.cashfree import PROVIDER, CashfreeWebhooks
from streams.connectors.cashfree.account import CashfreeAccount
from streams.connectors.cashfree.webhooks import WEBHOOKS, read_form
from streams.connectors.provider import Endpoint
from streams.devkit.sims.cashfree import (
    CashfreeSimConfig,
    CashfreeSimulator,
    sign_webhook,
    start_server,
)
from streams.devkit.traffic import valid_request

SECRET = "cf_client_secret_new"
OLD_SECRET = "cf_client_secret_old"
REF = "pl2_1a2b3c4d0123456789abcdef0123456"
NOW = 1_900_000_000.0
HEADERS = {"content-type": "application/x-www-form-urlencoded"}


def fields(event: str = "CASHGRAM_REDEEMED", **changes: str | None) -> dict[str, str]:
    """What Cashfree (and the simulator) send for an event, unsigned."""
    base: dict[str, str] = {"event": event, "cashgramid": REF}
    if event == "CASHGRAM_REDEEMED":
        base.update(referenceId="1000001", eventTime="2030-03-17 23:16:40", utr="123456789012")
    elif event == "CASHGRAM_TRANSFER_REVERSAL":
        base.update(referenceId="1000001", eventTime="2030-03-18 09:00:00")
    else:
        base["reason"] = "Cashgram expired"
    for key, value in changes.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def signed_body(form: dict[str, str], secret: str = SECRET) -> bytes:
    return urlencode({**form, "signature": sign_webhook(form, secret)}).encode()


BODY = signed_body(fields())


# --- verify ---------------------------------------------------------------------------


def test_the_simulators_signature_verifies() -> None:
    assert WEBHOOKS.verify(HEADERS, BODY, [SECRET.encode()], NOW) is None


def test_our_signature_is_cashfrees_recipe() -> None:
    form = fields()
    message = "".join(form[k] for k in sorted(form))
    expected = base64.b64encode(hmac.new(SECRET.encode(), message.encode(),
                                         hashlib.sha256).digest()).decode()
    assert sign_webhook(form, SECRET) == expected


def test_during_a_rotation_either_secret_verifies() -> None:
    secrets = [SECRET.encode(), OLD_SECRET.encode()]
    assert WEBHOOKS.verify(HEADERS, signed_body(fields(), OLD_SECRET), secrets, NOW) is None
    assert WEBHOOKS.verify(HEADERS, BODY, secrets, NOW) is None
    out = WEBHOOKS.verify(HEADERS, signed_body(fields(), OLD_SECRET), [SECRET.encode()], NOW)
    assert isinstance(out, WebhookRejected) and out.code == "signature_invalid"


def test_a_wrong_secret_is_refused_without_echoing_anything_secret() -> None:
    body = signed_body(fields(), "someone-else")
    out = WEBHOOKS.verify(HEADERS, body, [SECRET.encode()], NOW)
    assert out == WebhookRejected(401, "signature_invalid",
                                  "signature matches no secret of this merchant")
    assert sign_webhook(fields(), "someone-else") not in out.message


def test_a_changed_added_or_removed_value_fails() -> None:
    signature = sign_webhook(fields(), SECRET)
    for form in (fields(cashgramid="pl2_someone_else"), fields(utr="999"),
                 fields(eventTime=None), {**fields(), "extra": "x"},
                 fields(event="CASHGRAM_TRANSFER_REVERSAL")):
        body = urlencode({**form, "signature": signature}).encode()
        out = WEBHOOKS.verify(HEADERS, body, [SECRET.encode()], NOW)
        assert isinstance(out, WebhookRejected) and out.code == "signature_invalid"


def test_the_form_re_encoded_with_the_same_values_still_verifies() -> None:
    """Cashfree signs the values, not the bytes: field order and percent-encoding don't
    matter (unlike Razorpay and Revolut, whose signatures cover the raw body)."""
    form = {**fields(), "signature": sign_webhook(fields(), SECRET)}
    reordered = urlencode(dict(reversed(list(form.items())))).encode()
    assert reordered != BODY
    assert WEBHOOKS.verify(HEADERS, reordered, [SECRET.encode()], NOW) is None


@pytest.mark.parametrize("body, code", [
    (urlencode(fields()).encode(), "signature_missing"),
    (urlencode({**fields(), "signature": ""}).encode(), "signature_missing"),
    (b"", "signature_missing"),
    (b"\xff\xfe=\x00", "signature_missing"),
    (b"event=CASHGRAM_REDEEMED&signature=a&signature=b", "signature_missing"),  # ambiguous
    (urlencode({**fields(), "signature": "é" * 44}).encode(), "signature_invalid"),
    (urlencode({**fields(), "signature": "not base64 !"}).encode(), "signature_invalid"),
])
def test_missing_or_odd_signatures_are_refused(body: bytes, code: str) -> None:
    out = WEBHOOKS.verify(HEADERS, body, [SECRET.encode()], NOW)
    assert isinstance(out, WebhookRejected) and (out.http_status, out.code) == (401, code)


def test_no_configured_secret_refuses_every_webhook() -> None:
    out = WEBHOOKS.verify(HEADERS, BODY, [], NOW)
    assert isinstance(out, WebhookRejected) and out.code == "signature_invalid"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_verify_and_parse_never_raise(body: bytes) -> None:
    verified = WEBHOOKS.verify(HEADERS, body, [SECRET.encode()], NOW)
    assert isinstance(verified, WebhookRejected) and verified.http_status == 401
    assert isinstance(WEBHOOKS.parse(HEADERS, body), (WebhookReport, WebhookRejected))


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=10).filter(lambda k: k != "signature"),
                       st.text(max_size=20), min_size=1, max_size=6))
def test_any_form_signed_by_the_simulators_recipe_verifies(form: dict[str, str]) -> None:
    body = urlencode({**form, "signature": sign_webhook(form, SECRET)}).encode()
    assert WEBHOOKS.verify(HEADERS, body, [b"x", SECRET.encode()], NOW) is None


# --- parse ----------------------------------------------------------------------------


@pytest.mark.parametrize("form, status, occurred_at", [
    (fields("CASHGRAM_REDEEMED"), "REDEEMED", "2030-03-17T17:46:40Z"),  # IST → UTC
    (fields("CASHGRAM_TRANSFER_REVERSAL"), "REVERSED", "2030-03-18T03:30:00Z"),
    (fields("CASHGRAM_EXPIRED"), "EXPIRED", None),
    (fields("CASHGRAM_EXPIRED", reason="Cashgram deactivated"), "DEACTIVATED", None),
])
def test_each_event_reports_its_status(form: dict[str, str], status: str,
                                       occurred_at: str | None) -> None:
    out = WEBHOOKS.parse(HEADERS, signed_body(form))
    assert out == WebhookReport(StatusReport(connector_status=status, reference=REF,
                                             occurred_at=occurred_at, event_name=form["event"]),
                                REF)
    assert out.report.connector_payout_id is None  # referenceId is the transfer's, not ours
    assert out.report.event_id is None  # Cashfree sends none


def test_an_unreadable_event_time_is_no_time() -> None:
    for when in ("2030-02-30 10:00:00", "17/03/2030", "2030-03-17T23:16:40+05:30"):
        out = WEBHOOKS.parse(HEADERS, signed_body(fields(eventTime=when)))
        assert isinstance(out, WebhookReport) and out.report.occurred_at is None


@pytest.mark.parametrize("event", ["CASHGRAM_CREATED", "TRANSFER_SUCCESS", "cashgram_redeemed",
                                   "LOW_BALANCE_ALERT"])
def test_an_unknown_event_is_refused(event: str) -> None:
    out = WEBHOOKS.parse(HEADERS, signed_body(fields(event)))
    assert isinstance(out, WebhookRejected) and (out.http_status, out.code) == (400, "unknown_event")
    assert event in out.message


@pytest.mark.parametrize("form", [fields(cashgramid=None), fields(cashgramid="")])
def test_a_missing_reference_is_refused(form: dict[str, str]) -> None:
    out = WEBHOOKS.parse(HEADERS, signed_body(form))
    assert out == WebhookRejected(400, "reference_missing", "form field cashgramid is missing")


def test_the_id_spelled_cashgramId_is_read_too() -> None:
    form = {**fields(cashgramid=None), "cashgramId": REF}
    out = WEBHOOKS.parse(HEADERS, signed_body(form))
    assert isinstance(out, WebhookReport) and out.reference == REF


@pytest.mark.parametrize("body, words", [
    (b"", "empty"), (b"\xff\xfe", "UTF-8"), (b"%ff=1", "UTF-8"), (b"just-text", "form"),
    (b'{"event": "CASHGRAM_REDEEMED"}', "form"), (b"a=1&a=2", "more than once"),
    (urlencode({"cashgramid": REF}).encode(), "event"),
    (urlencode({**fields(), "cashgramid": "has space"}).encode(), "cashgramid"),
    (b"&".join([b"f%d=1" % i for i in range(100)]), "form"),
])
def test_a_malformed_body_is_refused(body: bytes, words: str) -> None:
    out = WEBHOOKS.parse(HEADERS, body)
    assert isinstance(out, WebhookRejected) and (out.http_status, out.code) == (400, "malformed_body")
    assert words in out.message


def test_read_form_keeps_blank_values_and_decodes_plus_as_space() -> None:
    assert read_form(b"a=&b=x+y&c=%C3%A9") == {"a": "", "b": "x y", "c": "é"}


# --- what the simulator sends, end to end ---------------------------------------------


async def test_the_simulators_webhooks_verify_and_parse() -> None:
    """Cashgrams made, redeemed, reversed, deactivated (our cancel) and expired at the
    simulator: every webhook it sends verifies with the merchant's secrets and parses."""
    sim = CashfreeSimulator(CashfreeSimConfig(latency_ms=0, jitter_ms=0),
                            {"CF_A": {"client_secret": SECRET}})
    runner, port = await start_server(sim)
    client = PROVIDER.client(Endpoint(f"http://127.0.0.1:{port}", connect_timeout_s=1,
                                      read_timeout_s=5, max_connections=4))
    account = CashfreeAccount("CF_A", SECRET)
    try:
        links = []
        for n in (1, 2, 3):
            ref = link_reference(f"m_demo:webhook-{n}")
            r = valid_request(n)
            r["customer"]["phone_number"] = "9123456789"
            created = await client.create(PROVIDER.prepare(r, ref, account), account)
            assert isinstance(created, LinkCreated)
            links.append(LinkRef(ref, created.connector_payout_id))
        first, second, third = (sim.by_reference[link.reference][0] for link in links)
        sim._transition(first, "REDEEMED", sim.now(), "claimed")
        sim._transition(first, "REVERSED", sim.now(), "reversed")
        assert await client.cancel(links[1], account) == Cancelled(None)
        sim._transition(third, "EXPIRED", sim.now(), "link expiry passed")
    finally:
        await client.aclose()
        await runner.cleanup()
    secrets = PROVIDER.webhook_secrets(account)
    seen = []
    for entry in sim.webhook_log:
        body = urlencode(entry["fields"]).encode()  # exactly as the simulator posts it
        assert WEBHOOKS.verify(HEADERS, body, secrets, NOW) is None
        parsed = WEBHOOKS.parse(HEADERS, body)
        assert isinstance(parsed, WebhookReport)
        seen.append((parsed.reference, parsed.report.connector_status))
    assert seen == [(links[0].reference, "REDEEMED"), (links[0].reference, "REVERSED"),
                    (links[1].reference, "DEACTIVATED"), (links[2].reference, "EXPIRED")]
    for entry in sim.webhook_log:  # another merchant's secret proves nothing
        body = urlencode(entry["fields"]).encode()
        assert WEBHOOKS.verify(HEADERS, body, [b"cf_test_client_secret"], NOW) is not None


def test_the_provider_exposes_the_receiver_and_signs_with_the_client_secret() -> None:
    assert isinstance(PROVIDER.webhooks, CashfreeWebhooks)
    assert PROVIDER.webhook_secrets(CashfreeAccount("CF_A", SECRET)) == (SECRET.encode(),)
