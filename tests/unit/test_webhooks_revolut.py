"""Revolut Business webhooks (v2): the timestamped signature over the raw body (rotation,
several signatures, tampering, staleness, odd headers), every payout-link event parsed,
and the simulator's own deliveries verified end to end."""
from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import pytest_asyncio
from aiohttp import web
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
from streams.connectors.provider import Endpoint
from streams.connectors.revolut import DEV_ACCOUNT, PROVIDER, RevolutWebhooks
from streams.connectors.revolut.account import parse_account
from streams.connectors.revolut.webhooks import WEBHOOKS
from streams.devkit.sims.revolut import RevolutSimConfig, RevolutSimulator, start_server
from streams.devkit.traffic import valid_request

SECRET = b"wsk_new_7bd1"
OLD_SECRET = b"wsk_old_0c4e"
REF = "pl2_1a2b3c4d0123456789abcdef0123456"
LINK_ID = "1f5320b3-a365-433f-93ce-37d7a1668655"
NOW = 1_900_000_000.0
TS = str(int(NOW * 1000))


def state_changed(new_state: str = "processing", **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"id": LINK_ID, "request_id": REF, "old_state": "active",
                            "new_state": new_state}
    data.update(changes)
    return {"event": "PayoutLinkStateChanged", "timestamp": "2030-03-17T17:46:40.123456Z",
            "data": {k: v for k, v in data.items() if v is not None}}


def v1(body: bytes, secret: bytes = SECRET, timestamp: str = TS) -> str:
    return "v1=" + hmac.new(secret, f"v1.{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def headers(body: bytes, *secrets: bytes, timestamp: str = TS) -> dict[str, str]:
    return {"revolut-request-timestamp": timestamp,
            "revolut-signature": ",".join(v1(body, s, timestamp) for s in secrets or (SECRET,))}


BODY = orjson.dumps(state_changed())


# --- verify ---------------------------------------------------------------------------


def test_a_signature_made_with_the_secret_verifies() -> None:
    assert WEBHOOKS.verify(headers(BODY), BODY, [SECRET], NOW) is None


def test_during_a_rotation_either_secret_and_several_signatures_verify() -> None:
    both = [SECRET, OLD_SECRET]
    assert WEBHOOKS.verify(headers(BODY, OLD_SECRET), BODY, both, NOW) is None
    assert WEBHOOKS.verify(headers(BODY, SECRET, OLD_SECRET), BODY, [SECRET], NOW) is None
    assert WEBHOOKS.verify(headers(BODY, OLD_SECRET, SECRET), BODY, [SECRET], NOW) is None
    spaced = {"revolut-request-timestamp": TS,
              "revolut-signature": f"{v1(BODY, OLD_SECRET)}, {v1(BODY, SECRET)}"}
    assert WEBHOOKS.verify(spaced, BODY, [SECRET], NOW) is None
    out = WEBHOOKS.verify(headers(BODY, OLD_SECRET), BODY, [SECRET], NOW)
    assert isinstance(out, WebhookRejected) and out.code == "signature_invalid"


def test_a_wrong_secret_is_refused_naming_the_header_only() -> None:
    sent = headers(BODY, b"someone-else")
    out = WEBHOOKS.verify(sent, BODY, [SECRET], NOW)
    assert out == WebhookRejected(401, "signature_invalid",
                                  "revolut-signature matches no signing secret of this merchant")
    assert sent["revolut-signature"][3:] not in out.message


def test_a_body_reserialised_after_signing_fails() -> None:
    payload = state_changed()
    body = orjson.dumps(payload)
    sent = headers(body)
    for changed in (orjson.dumps(payload, option=orjson.OPT_INDENT_2),
                    orjson.dumps(payload, option=orjson.OPT_SORT_KEYS), body + b" ",
                    body.replace(b"processing", b"processed")):
        assert changed != body
        out = WEBHOOKS.verify(sent, changed, [SECRET], NOW)
        assert isinstance(out, WebhookRejected) and out.code == "signature_invalid"


def test_the_timestamp_is_signed_too() -> None:
    sent = headers(BODY)
    sent["revolut-request-timestamp"] = str(int(TS) + 1)
    out = WEBHOOKS.verify(sent, BODY, [SECRET], NOW)
    assert isinstance(out, WebhookRejected) and out.code == "signature_invalid"


@pytest.mark.parametrize("skew_s, fresh", [(0, True), (299, True), (-299, True), (301, False),
                                           (-301, False), (86_400, False)])
def test_a_stale_or_future_timestamp_is_refused(skew_s: float, fresh: bool) -> None:
    timestamp = str(int((NOW - skew_s) * 1000))
    out = WEBHOOKS.verify(headers(BODY, timestamp=timestamp), BODY, [SECRET], NOW)
    if fresh:
        assert out is None
    else:
        assert out == WebhookRejected(401, "stale_timestamp",
                                      "revolut-request-timestamp is more than 300 s from now")


@pytest.mark.parametrize("sent, code, names", [
    ({}, "signature_missing", "revolut-signature"),
    ({"revolut-request-timestamp": TS}, "signature_missing", "revolut-signature"),
    ({"revolut-signature": v1(BODY)}, "signature_missing", "revolut-request-timestamp"),
    ({"revolut-signature": " ", "revolut-request-timestamp": TS}, "signature_missing",
     "revolut-signature"),
    ({"revolut-signature": v1(BODY), "revolut-request-timestamp": "1.9e12"},
     "signature_invalid", "revolut-request-timestamp"),
    ({"revolut-signature": v1(BODY), "revolut-request-timestamp": "١٩٠٠"},  # non-ASCII digits
     "signature_invalid", "revolut-request-timestamp"),
    ({"revolut-signature": v1(BODY)[3:], "revolut-request-timestamp": TS},  # no v1= prefix
     "signature_invalid", "v1="),
    ({"revolut-signature": "v0=" + v1(BODY)[3:], "revolut-request-timestamp": TS},
     "signature_invalid", "v1="),
    ({"revolut-signature": "v1=" + "é" * 64, "revolut-request-timestamp": TS},
     "signature_invalid", "v1="),
    ({"revolut-signature": "v1=zz", "revolut-request-timestamp": TS}, "signature_invalid", "v1="),
])
def test_missing_and_odd_headers_are_refused(sent: dict[str, str], code: str, names: str) -> None:
    out = WEBHOOKS.verify(sent, BODY, [SECRET], NOW)
    assert isinstance(out, WebhookRejected) and (out.http_status, out.code) == (401, code)
    assert names in out.message


def test_headers_are_found_in_any_case_and_no_secret_refuses_all() -> None:
    sent = {"Revolut-Request-Timestamp": TS, "Revolut-Signature": v1(BODY)}
    assert WEBHOOKS.verify(sent, BODY, [SECRET], NOW) is None
    out = WEBHOOKS.verify(sent, BODY, [], NOW)
    assert isinstance(out, WebhookRejected) and out.code == "signature_invalid"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.text(max_size=30), st.binary(max_size=200))
def test_odd_input_is_refused_and_never_raises(signature: str, timestamp: str,
                                               body: bytes) -> None:
    out = WEBHOOKS.verify({"revolut-signature": signature,
                           "revolut-request-timestamp": timestamp}, body, [SECRET], NOW)
    assert isinstance(out, WebhookRejected) and out.http_status == 401
    assert isinstance(WEBHOOKS.parse({}, body), (WebhookReport, WebhookRejected))


# --- parse ----------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["active", "processing", "processed", "failed", "expired",
                                   "cancelled", "awaiting", "created"])
def test_a_state_change_reports_its_new_state(state: str) -> None:
    out = WEBHOOKS.parse({}, orjson.dumps(state_changed(state)))
    assert out == WebhookReport(StatusReport(
        connector_status=state, reference=REF, connector_payout_id=LINK_ID,
        occurred_at="2030-03-17T17:46:40.123456Z", event_name="PayoutLinkStateChanged"), REF)
    assert out.report.event_id is None


def test_a_created_event_reports_the_links_state() -> None:
    link = {"id": LINK_ID, "state": "active", "request_id": REF, "amount": 12.5,
            "currency": "GBP", "url": "https://business.revolut.com/p/x"}
    body = orjson.dumps({"event": "PayoutLinkCreated", "timestamp": "2030-03-17T17:46:40Z",
                         "data": link})
    out = WEBHOOKS.parse({}, body)
    assert out == WebhookReport(StatusReport(
        connector_status="active", reference=REF, connector_payout_id=LINK_ID,
        occurred_at="2030-03-17T17:46:40.000000Z", event_name="PayoutLinkCreated"), REF)


def test_unreadable_details_do_not_refuse_the_event() -> None:
    body = orjson.dumps({**state_changed(id="../x"), "timestamp": "yesterday"})
    out = WEBHOOKS.parse({}, body)
    assert isinstance(out, WebhookReport)
    assert (out.report.connector_payout_id, out.report.occurred_at) == (None, None)


@pytest.mark.parametrize("event", ["TransactionCreated", "TransactionStateChanged",
                                   "PayoutLinkDeleted", "payoutlinkstatechanged"])
def test_another_event_is_unknown(event: str) -> None:
    out = WEBHOOKS.parse({}, orjson.dumps({**state_changed(), "event": event}))
    assert isinstance(out, WebhookRejected) and (out.http_status, out.code) == (400, "unknown_event")
    assert event in out.message


@pytest.mark.parametrize("request_id", [None, ""])
def test_a_missing_reference_is_refused(request_id: Any) -> None:
    payload = state_changed(request_id=request_id)
    if request_id is None:
        payload["data"].pop("request_id", None)
    out = WEBHOOKS.parse({}, orjson.dumps(payload))
    assert out == WebhookRejected(400, "reference_missing", "data.request_id is missing")


@pytest.mark.parametrize("body, names", [
    (b"", "JSON"), (b"{", "JSON"), (b"[1]", "object"), (b'{"data": {}}', "event"),
    (orjson.dumps({**state_changed(), "data": "x"}), "data"),
    (orjson.dumps(state_changed(new_state=None)), "data.new_state"),
    (orjson.dumps(state_changed(new_state="PROCESSED!")), "data.new_state"),
    (orjson.dumps({"event": "PayoutLinkCreated", "data": {"id": LINK_ID, "request_id": REF}}),
     "data.state"),
    (orjson.dumps(state_changed(request_id=7)), "data.request_id"),
])
def test_a_malformed_body_is_refused(body: bytes, names: str) -> None:
    out = WEBHOOKS.parse({}, body)
    assert isinstance(out, WebhookRejected) and (out.http_status, out.code) == (400, "malformed_body")
    assert names in out.message


def test_the_provider_exposes_the_receiver() -> None:
    assert isinstance(PROVIDER.webhooks, RevolutWebhooks)


# --- the simulator's deliveries, end to end --------------------------------------------


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """Where the simulator posts: every delivery's lower-cased headers and raw body."""
    got: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: web.Request) -> web.Response:
        got.append(({k.lower(): v for k, v in request.headers.items()}, await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/hook", got
    finally:
        await runner.cleanup()


async def test_the_simulators_webhooks_verify_and_parse(receiver) -> None:
    url, got = receiver
    sim = RevolutSimulator(RevolutSimConfig(latency_ms=0, jitter_ms=0, seed=3, webhook_url=url))
    runner, port = await start_server(sim)
    account = parse_account(DEV_ACCOUNT)
    client = PROVIDER.client(Endpoint(f"http://127.0.0.1:{port}", connect_timeout_s=1,
                                      read_timeout_s=5, max_connections=4))
    ref = link_reference("m_demo:webhook-1")
    r = valid_request(1)
    r["amount"] = {"minor_amount": 12_345, "currency": "GBP"}
    r["notify"] = {"sms": False, "email": False}
    try:
        created = await client.create(PROVIDER.prepare(r, ref, account), account)
        assert isinstance(created, LinkCreated)
        link_id = created.connector_payout_id
        assert await client.cancel(LinkRef(ref, link_id), account) == Cancelled(None)
        await sim.drain_webhooks()
    finally:
        await client.aclose()
        await sim.aclose()
        await runner.cleanup()
    secrets = PROVIDER.webhook_secrets(account)  # the dev account's: the simulator's default
    reports = []
    for sent, body in got:
        assert WEBHOOKS.verify(sent, body, secrets, time.time()) is None
        assert WEBHOOKS.verify(sent, body, [b"wsk_another_merchant"], time.time()) is not None
        assert WEBHOOKS.verify(sent, body, secrets, time.time() + 600) == WebhookRejected(
            401, "stale_timestamp", "revolut-request-timestamp is more than 300 s from now")
        parsed = WEBHOOKS.parse(sent, body)
        assert isinstance(parsed, WebhookReport) and parsed.reference == ref
        reports.append((parsed.report.event_name, parsed.report.connector_status,
                        parsed.report.connector_payout_id))
    assert reports == [("PayoutLinkCreated", "active", link_id),
                       ("PayoutLinkStateChanged", "cancelled", link_id)]
