"""The shared webhook delivery layer (streams/devkit/sims/common.py) and its faults:
duplicates keep the event id, drops send nothing, forged deliveries fail verification,
reserialized bodies verify over their raw bytes only, delays reorder. Exercised through
the Razorpay, Cashfree and Revolut simulators in-process over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
import orjson
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from streams.devkit.sims import cashfree, revolut
from streams.devkit.sims.common import WebhookSettings, json_body, tamper_json
from streams.devkit.sims.razorpay import (
    DEFAULT_WEBHOOK_SECRET,
    PayoutLinkSimulator,
    SimConfig,
    start_server,
)

pytestmark = pytest.mark.asyncio

KEY, SECRET, ACCOUNT = "rzp_test_demo", "demo_secret", "2323230041626905"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()}
Verify = Callable[[dict[str, str], bytes], bool]


def rzp_verified(headers: dict[str, str], raw: bytes) -> bool:
    expected = hmac.new(DEFAULT_WEBHOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers.get("X-Razorpay-Signature", ""), expected)


class Receiver:
    """Records every delivery; answers 200 when ``verify`` accepts it, else 401."""

    def __init__(self, verify: Verify) -> None:
        self.verify = verify
        self.got: list[tuple[dict[str, str], bytes, bool]] = []

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        ok = self.verify(dict(request.headers), raw)
        self.got.append((dict(request.headers), raw, ok))
        return web.Response(status=200 if ok else 401)


@pytest_asyncio.fixture
async def serve_receiver() -> AsyncIterator[Callable[[Verify], Any]]:
    servers: list[TestServer] = []

    async def start(verify: Verify) -> tuple[Receiver, str]:
        rec = Receiver(verify)
        app = web.Application()
        app.router.add_post("/hook", rec.handle)
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        return rec, str(server.make_url("/hook"))

    yield start
    for server in servers:
        await server.close()


class Rzp:
    def __init__(self, sim: PayoutLinkSimulator, url: str, http: aiohttp.ClientSession) -> None:
        self.sim, self.url, self.http = sim, url, http

    async def create(self, receipt: str) -> dict[str, Any]:
        payload = {"account_number": ACCOUNT, "contact": {"name": "Zoë Ünal", "email": "zoe@example.com"},
                   "amount": 1000, "currency": "INR", "purpose": "refund", "description": "Refund / order 42",
                   "receipt": receipt}
        async with self.http.post(self.url + "/v1/payout-links", json=payload, headers=AUTH) as resp:
            assert resp.status == 200
            link: dict[str, Any] = await resp.json()
            return link

    async def control(self, method: str, path: str, payload: Any = None) -> Any:
        async with self.http.request(method, self.url + "/_sim" + path, json=payload) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def records(self) -> dict[str, Any]:
        drained = await self.control("POST", "/webhooks/drain", {"timeout_s": 10})
        assert drained["drained"] is True and drained["counts"]["in_flight"] == 0
        snapshot: dict[str, Any] = await self.control("GET", "/webhooks")
        return snapshot


@pytest_asyncio.fixture
async def rzp(serve_receiver: Callable[[Verify], Any]) -> AsyncIterator[tuple[Rzp, Receiver]]:
    rec, url = await serve_receiver(rzp_verified)
    cfg = SimConfig(latency_ms=0, jitter_ms=0, webhook_url=url, webhook_retry_ms=10, seed=7)
    sim = PayoutLinkSimulator(cfg)
    runner, port = await start_server(sim, "127.0.0.1", 0)
    async with aiohttp.ClientSession() as http:
        yield Rzp(sim, f"http://127.0.0.1:{port}", http), rec
    await runner.cleanup()


# ----------------------------------------------------------------- serialization helpers


PAYLOAD = {"event": "x", "payload": {"entity": {"id": "poutlk_1", "amount": 100, "url": "http://h/l/1",
                                                "name": "Zoë", "flag": True, "none": None, "ratio": 1.5e-7}}}


async def test_every_json_variant_is_the_same_data_in_other_bytes() -> None:
    canonical = json_body(PAYLOAD)
    assert canonical == orjson.dumps(PAYLOAD)
    bodies = {json_body(PAYLOAD, v) for v in range(1, 9)}
    assert canonical not in bodies and len(bodies) == 4  # four styles, repeating
    for raw in bodies:
        assert orjson.loads(raw) == PAYLOAD
    joined = b"".join(bodies)
    assert b"\\u00eb" in joined and b"\\/" in joined and b"\\u006f" in joined and b"\n  " in joined
    ascii_only = {"a": "b"}  # a payload the styles could write as variant 0 still differs
    assert all(json_body(ascii_only, v) != json_body(ascii_only) for v in range(1, 5))


async def test_tampering_changes_what_matters() -> None:
    tampered = tamper_json(PAYLOAD)
    assert tampered["payload"]["entity"]["amount"] == 100 * 100 + 1 and PAYLOAD["payload"]["entity"]["amount"] == 100  # type: ignore[index]
    assert tamper_json({"data": {"new_state": "cancelled"}}) == {"data": {"new_state": "processed"}}
    assert tamper_json({"a": 1}) == {"a": 1, "tampered": True}


async def test_settings_backoff() -> None:
    settings = WebhookSettings(url="http://x", retries=3, retry_interval_s=0.5, backoff=2.0)
    assert [settings.retry_delay_s(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]


# ------------------------------------------------------------------------------- faults


async def test_a_duplicate_is_the_same_event_with_the_same_id(rzp: tuple[Rzp, Receiver]) -> None:
    sim, rec = rzp
    await sim.control("POST", "/config", {"webhook_duplicate": 1.0})
    await sim.create("m1:p1")
    snapshot = await sim.records()
    (h1, b1, ok1), (h2, b2, ok2) = rec.got
    assert ok1 and ok2 and b1 == b2
    assert h1["x-razorpay-event-id"] == h2["x-razorpay-event-id"]
    assert sorted(r["kind"] for r in snapshot["webhooks"]) == ["duplicate", "original"]
    assert {r["event_id"] for r in snapshot["webhooks"]} == {h1["x-razorpay-event-id"]}
    [event] = snapshot["events"]
    assert (event["deliveries"], event["delivered"], event["attempts"]) == (2, True, 2)
    assert snapshot["counts"]["duplicates"] == 1 and snapshot["counts"]["delivered"] == 2
    assert sim.sim.stats.events["webhooks_duplicated"] == 1


async def test_a_dropped_event_is_never_sent_only_polling_sees_it(rzp: tuple[Rzp, Receiver]) -> None:
    sim, rec = rzp
    await sim.control("POST", "/config", {"webhook_drop": 1.0})
    link = await sim.create("m1:p1")
    await sim.control("POST", f"/links/{link['id']}/lifecycle", {"action": "claim"})
    snapshot = await sim.records()
    assert rec.got == []
    assert [(r["event"], r["dropped"], r["attempts"], r["delivered"], r["done"]) for r in snapshot["webhooks"]] == [
        ("payout_link.issued", True, 0, False, True), ("payout_link.processing", True, 0, False, True)]
    assert [e["dropped"] for e in snapshot["events"]] == [True, True]
    assert snapshot["counts"]["dropped"] == 2 and snapshot["counts"]["deliveries"] == 0
    async with sim.http.get(f"{sim.url}/v1/payout-links/{link['id']}", headers=AUTH) as resp:
        assert (await resp.json())["status"] == "processing"  # what a poll learns


async def test_forged_deliveries_fail_verification_and_are_counted(rzp: tuple[Rzp, Receiver]) -> None:
    sim, rec = rzp
    await sim.control("POST", "/config", {"webhook_forge": 1.0, "seed": 3})
    for i in range(8):
        await sim.create(f"m1:p{i}")
    snapshot = await sim.records()
    genuine = [(h, raw) for h, raw, ok in rec.got if ok]
    forged = [(h, raw) for h, raw, ok in rec.got if not ok]
    assert len(genuine) == len(forged) == 8
    counts = snapshot["counts"]
    assert (counts["forged_sent"], counts["forged_answered_401"], counts["forged_answered_other"],
            counts["forged_accepted"], counts["delivered"]) == (8, 8, 0, 0, 8)
    by_id = {h["x-razorpay-event-id"]: (h, raw) for h, raw in genuine}
    kinds = set()
    for record in snapshot["webhooks"]:
        if not record["forged"]:
            continue
        assert (record["kind"], record["attempts"], record["last_status"], record["delivered"]) == ("forged", 1, 401, False)
        kinds.add(record["forgery"])
    assert kinds == {"wrong_secret", "tampered"}
    for h, raw in forged:
        real_h, real_raw = by_id[h["x-razorpay-event-id"]]  # a forgery carries the event's id
        if raw == real_raw:  # signed with another secret
            assert h["X-Razorpay-Signature"] != real_h["X-Razorpay-Signature"]
        else:  # the body changed after signing: the signature is the genuine one
            assert h["X-Razorpay-Signature"] == real_h["X-Razorpay-Signature"]
            changed = orjson.loads(raw)["payload"]["payout_link"]["entity"]
            assert changed["amount"] != orjson.loads(real_raw)["payload"]["payout_link"]["entity"]["amount"]


async def test_reserialized_bodies_verify_over_their_raw_bytes_only(rzp: tuple[Rzp, Receiver]) -> None:
    sim, rec = rzp
    await sim.control("POST", "/config", {"webhook_reserialize": 1.0, "seed": 5})
    links = {(await sim.create(f"m1:p{i}"))["id"]: i for i in range(8)}
    snapshot = await sim.records()
    assert len(rec.got) == 8 and all(ok for _, _, ok in rec.got)  # all accepted by a raw-bytes verifier
    styles = set()
    for headers, raw, _ in rec.got:
        event = orjson.loads(raw)
        entity = event["payload"]["payout_link"]["entity"]
        assert entity["id"] in links and entity["contact"]["name"] == "Zoë Ünal"
        reserialized = orjson.dumps(event)
        assert raw != reserialized  # not the canonical bytes ...
        assert not rzp_verified(headers, reserialized)  # ... so a re-serializing verifier fails
        styles.add((b"\n  " in raw, b" : " in raw, b"\\/" in raw, b"\\u006f" in raw))
    assert len(styles) >= 3
    assert all(r["reserialized"] for r in snapshot["webhooks"]) and snapshot["counts"]["reserialized"] == 8


async def test_delays_deliver_events_out_of_order(rzp: tuple[Rzp, Receiver]) -> None:
    sim, rec = rzp
    await sim.control("POST", "/config", {"webhook_delay_ms": 150, "seed": 11})
    link = await sim.create("m1:one")
    for action in ("claim", "fail", "claim", "process", "reverse", "expire"):
        await sim.control("POST", f"/links/{link['id']}/lifecycle", {"action": action})
    snapshot = await sim.records()
    emitted = [r["event_id"] for r in snapshot["webhooks"]]
    arrived = [h["x-razorpay-event-id"] for h, _, _ in rec.got]
    assert sorted(arrived) == sorted(emitted) and arrived != emitted  # one link's events, reordered
    assert all(0 <= r["delay_ms"] < 150 for r in snapshot["webhooks"])
    assert len({r["delay_ms"] for r in snapshot["webhooks"]}) == 7


async def test_records_filters_and_reset(rzp: tuple[Rzp, Receiver]) -> None:
    sim, rec = rzp
    await sim.create("a")
    await sim.create("b")
    await sim.records()
    only_b = await sim.control("GET", "/webhooks?reference=b")
    assert [r["reference"] for r in only_b["webhooks"]] == ["b"] and [e["reference"] for e in only_b["events"]] == ["b"]
    later = await sim.control("GET", "/webhooks?since=1")
    assert [r["reference"] for r in later["webhooks"]] == ["b"]
    await sim.control("POST", "/reset")
    empty = await sim.control("GET", "/webhooks")
    assert empty["webhooks"] == [] and empty["counts"]["events"] == 0


async def test_same_seed_same_fault_decisions(serve_receiver: Callable[[Verify], Any]) -> None:
    outcomes = []
    for _ in range(2):
        rec, url = await serve_receiver(rzp_verified)
        sim = PayoutLinkSimulator(SimConfig(latency_ms=0, jitter_ms=0, webhook_url=url, seed=21, webhook_drop=0.3,
                                            webhook_duplicate=0.3, webhook_forge=0.3, webhook_reserialize=0.5))
        runner, port = await start_server(sim, "127.0.0.1", 0)
        async with aiohttp.ClientSession() as http:
            r = Rzp(sim, f"http://127.0.0.1:{port}", http)
            for i in range(12):
                await r.create(f"m1:{i}")
            snapshot = await r.records()
        await runner.cleanup()
        outcomes.append([(w["reference"], w["kind"], w["dropped"], w["forgery"], w["reserialized"])
                         for w in snapshot["webhooks"]])
    assert outcomes[0] == outcomes[1]
    assert {kind for _, kind, _, _, _ in outcomes[0]} == {"original", "duplicate", "forged"}


# ------------------------------------------------------------ Cashfree and Revolut too


CF_SECRET = cashfree.DEFAULT_CREDENTIALS["CF_TEST_CLIENT_ID"]["client_secret"]


def cf_verified(headers: dict[str, str], raw: bytes) -> bool:
    fields = dict(parse_qsl(raw.decode(), keep_blank_values=True))
    return hmac.compare_digest(fields.get("signature", ""), cashfree.sign_webhook(fields, CF_SECRET))


async def test_cashfree_forged_and_reserialized_forms(serve_receiver: Callable[[Verify], Any]) -> None:
    rec, url = await serve_receiver(cf_verified)
    cfg = cashfree.CashfreeSimConfig(latency_ms=0, jitter_ms=0, webhook_url=url, seed=2)
    cfg.apply({"webhook_forge": 1.0, "webhook_reserialize": 1.0, "webhook_duplicate_ratio": 0.0})
    sim = cashfree.CashfreeSimulator(cfg)
    runner, port = await cashfree.start_server(sim, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/payout/v1/authorize", headers={
                    "X-Client-Id": "CF_TEST_CLIENT_ID", "X-Client-Secret": CF_SECRET}) as resp:
                token = (await resp.json())["data"]["token"]
            for i in range(4):
                form = {"cashgramId": f"cg{i}", "amount": 10, "name": "Asha Rao", "phone": "9123456789",
                        "linkExpiry": cashfree.datetime.now(cashfree.IST).strftime("%Y/%m/%d")}
                async with http.post(f"{base}/payout/v1/createCashgram", json=form,
                                     headers={"Authorization": f"Bearer {token}"}) as resp:
                    assert resp.status == 200, await resp.text()
                async with http.post(f"{base}/_sim/cashfree/links/cg{i}/lifecycle", json={"action": "redeem"}) as resp:
                    assert resp.status == 200
            async with http.post(f"{base}/_sim/cashfree/webhooks/drain", json={}) as resp:
                assert (await resp.json())["drained"] is True
            async with http.get(f"{base}/_sim/cashfree/webhooks") as resp:
                snapshot = await resp.json()
    finally:
        await runner.cleanup()
    genuine = [raw for _, raw, ok in rec.got if ok]
    assert len(genuine) == 4 and len(rec.got) == 8
    assert snapshot["counts"]["forged_answered_401"] == 4 and snapshot["counts"]["delivered"] == 4
    canonical = {urlencode(r["fields"]).encode(): r["fields"] for r in snapshot["webhooks"] if not r["forged"]}
    for raw in genuine:
        assert raw not in canonical  # reserialized: other order / encoding ...
        assert dict(parse_qsl(raw.decode())) in list(canonical.values())  # ... same fields


def rv_verifier(secret: str) -> Verify:
    def verify(headers: dict[str, str], raw: bytes) -> bool:
        ts = headers.get("Revolut-Request-Timestamp", "")
        expected = "v1=" + hmac.new(secret.encode(), f"v1.{ts}.".encode() + raw, hashlib.sha256).hexdigest()
        return hmac.compare_digest(headers.get("Revolut-Signature", ""), expected)
    return verify


async def test_revolut_forged_and_reserialized_events(serve_receiver: Callable[[Verify], Any]) -> None:
    secret = "wsk_test_faults"
    rec, url = await serve_receiver(rv_verifier(secret))
    cfg = revolut.RevolutSimConfig(latency_ms=0, jitter_ms=0, seed=4)
    cfg.apply({"webhook_url": url, "webhook_signing_secret": secret, "webhook_forge": 1.0,
               "webhook_reserialize": 1.0, "webhook_retry_ms": 10})
    assert cfg.webhook_retry_interval_s == 0.01  # the common knob, Revolut's interval
    sim = revolut.RevolutSimulator(cfg)
    runner, port = await revolut.start_server(sim, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{port}"
    token, _ = sim.issue_token("sim_revolut_client")
    try:
        async with aiohttp.ClientSession() as http:
            for i in range(3):
                payload = {"counterparty_name": "Jane Doe", "request_id": f"r{i}", "account_id":
                           revolut.DEFAULT_CREDENTIALS["sim_revolut_client"]["account_ids"][0],
                           "amount": 10.5, "currency": "GBP", "reference": "Refund / ünïcode"}
                async with http.post(f"{base}/api/1.0/payout-links", json=payload,
                                     headers={"Authorization": f"Bearer {token}"}) as resp:
                    assert resp.status == 201, await resp.text()
            await sim.drain_webhooks(10)
            async with http.get(f"{base}/_sim/revolut/webhooks") as resp:
                snapshot = await resp.json()
    finally:
        await runner.cleanup()
    genuine = [raw for _, raw, ok in rec.got if ok]
    assert len(genuine) == 3 and len(rec.got) == 6
    assert snapshot["counts"]["forged_answered_401"] == 3
    for raw in genuine:
        event = orjson.loads(raw)
        assert event["event"] == "PayoutLinkCreated" and event["data"]["reference"] == "Refund / ünïcode"
        assert raw != orjson.dumps(event)
    assert [e["reference"] for e in snapshot["events"]] == ["r0", "r1", "r2"]
