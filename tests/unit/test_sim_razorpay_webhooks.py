"""The RazorpayX simulator's link lifecycle and its signed webhooks (in-process, real HTTP)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from streams.devkit.sims.razorpay import (
    DEFAULT_WEBHOOK_SECRET,
    PayoutLinkSimulator,
    SimConfig,
    account_id_for,
    load_credentials,
    sign_webhook,
    start_server,
)

pytestmark = pytest.mark.asyncio

KEY, SECRET, ACCOUNT = "rzp_test_demo", "demo_secret", "2323230041626905"
OTHER_KEY, OTHER_ACCOUNT = "rzp_test_other", "7878780080316316"
OTHER_WEBHOOK_SECRET, OTHER_ACCOUNT_ID = "other_webhook_secret", "acc_Other000000001"
CREDENTIALS = {
    KEY: {"key_secret": SECRET, "account_number": ACCOUNT},
    OTHER_KEY: {"key_secret": "other_secret", "account_number": OTHER_ACCOUNT,
                "webhook_secret": OTHER_WEBHOOK_SECRET, "account_id": OTHER_ACCOUNT_ID},
}
LINKS = "/v1/payout-links"
EVENT_ID_RE = re.compile(r"evt_[A-Za-z0-9]{14}")


def body(receipt: str = "m1:p1", account: str = ACCOUNT, **extra: Any) -> dict[str, Any]:
    return {
        "account_number": account,
        "contact": {"name": "Gaurav Kumar", "contact": "9123456789", "email": "gaurav@example.com", "type": "customer"},
        "amount": 1000, "currency": "INR", "purpose": "refund", "description": "Refund for order 42",
        "receipt": receipt, "notes": {"order": "42"}, **extra,
    }


def verified(headers: dict[str, str], raw: bytes, secret: str = DEFAULT_WEBHOOK_SECRET) -> bool:
    expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers.get("X-Razorpay-Signature", ""), expected)


class Receiver:
    """A webhook endpoint: records (arrival time, headers, raw body); answers ``statuses``
    in turn, then 401 to what fails verification and 200 to the rest."""

    def __init__(self) -> None:
        self.got: list[tuple[float, dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.secrets = [DEFAULT_WEBHOOK_SECRET, OTHER_WEBHOOK_SECRET]  # every account's

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        headers = dict(request.headers)
        self.got.append((time.monotonic(), headers, raw))
        if self.statuses:
            return web.Response(status=self.statuses.pop(0))
        return web.Response(status=200 if any(verified(headers, raw, s) for s in self.secrets) else 401)

    def events(self) -> list[dict[str, Any]]:
        return [orjson.loads(raw) for _, _, raw in self.got]


class Rzp:
    def __init__(self, sim: PayoutLinkSimulator, url: str, http: aiohttp.ClientSession) -> None:
        self.sim, self.url, self.http = sim, url, http

    async def call(self, method: str, path: str, payload: Any = None,
                   auth: tuple[str, str] | None = (KEY, SECRET)) -> tuple[int, Any]:
        headers = {"Authorization": "Basic " + base64.b64encode(":".join(auth).encode()).decode()} if auth else {}
        async with self.http.request(method, self.url + path, json=payload, headers=headers) as resp:
            return resp.status, await resp.json()

    async def create(self, receipt: str = "m1:p1", **kw: Any) -> dict[str, Any]:
        status, link = await self.call("POST", LINKS, body(receipt, **kw))
        assert status == 200, link
        return dict(link)

    async def configure(self, **patch: Any) -> dict[str, Any]:
        status, cfg = await self.call("POST", "/_sim/config", patch, auth=None)
        assert status == 200, cfg
        return dict(cfg)

    async def move(self, link_id: str, action: str, force: bool = False) -> tuple[int, Any]:
        return await self.call("POST", f"/_sim/links/{link_id}/lifecycle", {"action": action, "force": force}, auth=None)

    async def records(self) -> dict[str, Any]:
        await self.sim.drain_webhooks(10)
        status, snapshot = await self.call("GET", "/_sim/webhooks", auth=None)
        assert status == 200
        return dict(snapshot)


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    server = TestServer(app)
    await server.start_server()
    yield rec, str(server.make_url("/hook"))
    await server.close()


MakeSim = Callable[..., Awaitable[Rzp]]


@pytest_asyncio.fixture
async def make_sim() -> AsyncIterator[MakeSim]:
    started: list[tuple[web.AppRunner, aiohttp.ClientSession]] = []

    async def factory(**config: Any) -> Rzp:
        cfg = SimConfig(latency_ms=0, jitter_ms=0)
        cfg.apply(config)
        sim = PayoutLinkSimulator(cfg, CREDENTIALS)
        runner, port = await start_server(sim, "127.0.0.1", 0)
        http = aiohttp.ClientSession()
        started.append((runner, http))
        return Rzp(sim, f"http://127.0.0.1:{port}", http)

    yield factory
    for runner, http in started:
        await http.close()
        await runner.cleanup()


@pytest_asyncio.fixture
async def hooked(make_sim: MakeSim, receiver: tuple[Receiver, str]) -> tuple[Rzp, Receiver]:
    rec, url = receiver
    return await make_sim(webhook_url=url, webhook_retry_ms=10), rec


# --------------------------------------------------------------------- the webhook itself


async def test_a_create_sends_payout_link_issued_signed_over_the_raw_body(hooked: tuple[Rzp, Receiver]) -> None:
    sim, rec = hooked
    before = int(time.time())
    link = await sim.create()
    await sim.sim.drain_webhooks(10)
    [(_, headers, raw)] = rec.got
    assert headers["Content-Type"] == "application/json"
    assert verified(headers, raw)
    assert headers["X-Razorpay-Signature"] == sign_webhook(raw, DEFAULT_WEBHOOK_SECRET)
    assert EVENT_ID_RE.fullmatch(headers["x-razorpay-event-id"])
    event = orjson.loads(raw)
    assert list(event) == ["entity", "account_id", "event", "contains", "payload", "created_at"]
    assert event["entity"] == "event" and event["event"] == "payout_link.issued"
    assert event["contains"] == ["payout_link"]
    assert event["account_id"] == account_id_for(ACCOUNT) and re.fullmatch(r"acc_[A-Za-z0-9]{14}", event["account_id"])
    assert event["payload"] == {"payout_link": {"entity": link}}  # the whole entity, as the API answered it
    assert before <= event["created_at"] <= int(time.time())
    [record] = (await sim.records())["webhooks"]
    assert record | {"delay_ms": 0} == record  # no delay configured
    assert (record["event"], record["reference"], record["link_id"], record["event_id"]) == (
        "payout_link.issued", "m1:p1", link["id"], headers["x-razorpay-event-id"])
    assert (record["kind"], record["forged"], record["duplicate"], record["attempts"], record["last_status"],
            record["delivered"]) == ("original", False, False, 1, 200, True)


async def test_no_webhook_work_without_a_url(make_sim: MakeSim) -> None:
    sim = await make_sim()
    link = await sim.create()
    assert (await sim.move(link["id"], "claim"))[0] == 200
    snapshot = await sim.records()
    assert snapshot["webhooks"] == [] and snapshot["events"] == [] and snapshot["counts"]["events"] == 0
    assert not any(key.startswith("webhook") for key in sim.sim.stats.events)
    assert sim.sim.webhooks._session is None


async def test_the_account_s_own_secret_and_id(hooked: tuple[Rzp, Receiver]) -> None:
    sim, rec = hooked
    status, _ = await sim.call("POST", LINKS, body(account=OTHER_ACCOUNT), auth=(OTHER_KEY, "other_secret"))
    assert status == 200
    await sim.sim.drain_webhooks(10)
    [(_, headers, raw)] = rec.got
    assert verified(headers, raw, OTHER_WEBHOOK_SECRET) and not verified(headers, raw)
    assert orjson.loads(raw)["account_id"] == OTHER_ACCOUNT_ID


async def test_credentials_carry_the_webhook_secret() -> None:
    env = {"SIM_CREDENTIALS": orjson.dumps(CREDENTIALS).decode()}
    creds = load_credentials(None, env=env)
    assert creds[OTHER_KEY]["webhook_secret"] == OTHER_WEBHOOK_SECRET
    assert "webhook_secret" not in creds[KEY]  # the default then: demo_webhook_secret
    with pytest.raises(ValueError) as exc:
        load_credentials(None, env={"SIM_CREDENTIALS": '{"k": {"key_secret": "s", "account_number": "ACC12345", "webhook_secret": 7}}'})
    assert "webhook_secret" in str(exc.value)


# ------------------------------------------------------------------------ the lifecycle


async def test_every_move_is_a_real_transition_with_its_event(hooked: tuple[Rzp, Receiver]) -> None:
    sim, rec = hooked
    link = await sim.create()
    seen: list[dict[str, Any]] = []
    for action in ("claim", "fail", "claim", "process", "reverse", "expire"):
        status, entity = await sim.move(link["id"], action)
        assert status == 200, entity
        seen.append(entity)
    await sim.sim.drain_webhooks(10)
    events = rec.events()
    assert [e["event"] for e in events] == [
        "payout_link.issued", "payout_link.processing", "payout_link.attempted", "payout_link.processing",
        "payout_link.processed", "payout_link.attempted", "payout_link.expired",
    ]
    entities = [e["payload"]["payout_link"]["entity"] for e in events]
    assert [e["status"] for e in entities] == ["issued", "processing", "issued", "processing", "processed", "issued", "expired"]
    assert [e["attempt_count"] for e in entities] == [0, 1, 1, 2, 2, 2, 2]
    assert entities[0]["fund_account_id"] is None and entities[1]["fund_account_id"].startswith("fa_")
    assert entities[3]["fund_account_id"] != entities[1]["fund_account_id"]  # details submitted again
    assert entities[3]["payout_id"] is None and entities[4]["payout_id"].startswith("pout_")
    assert entities[5]["payout_id"] == entities[4]["payout_id"]  # the reversed payout
    assert entities[6]["expired_at"] is not None and entities[6]["cancelled_at"] is None
    assert entities[1:] == seen  # each event carries the link as the move left it
    ids = [headers["x-razorpay-event-id"] for _, headers, _ in rec.got]
    assert len(set(ids)) == len(ids)  # one id per event
    _, fetched = await sim.call("GET", f"{LINKS}/{link['id']}")
    assert fetched == seen[-1]


@pytest.mark.parametrize(("setup", "action", "status_before"), [
    ([], "process", "issued"),
    ([], "fail", "issued"),
    ([], "reverse", "issued"),
    ([], "approve", "issued"),
    ([], "reject", "issued"),
    (["claim"], "claim", "processing"),
    (["claim"], "cancel", "processing"),
    (["claim"], "expire", "processing"),
    (["claim", "process"], "cancel", "processed"),
    (["cancel"], "claim", "cancelled"),
    (["expire"], "cancel", "expired"),
])
async def test_illegal_moves_are_refused_with_409(make_sim: MakeSim, setup: list[str], action: str,
                                                 status_before: str) -> None:
    sim = await make_sim()
    link = await sim.create()
    for step in setup:
        assert (await sim.move(link["id"], step))[0] == 200
    status, answer = await sim.move(link["id"], action)
    assert status == 409 and "illegal" in answer["error"]
    assert answer["link"]["status"] == status_before
    assert sim.sim.links[link["id"]].entity["status"] == status_before


async def test_force_makes_an_illegal_move(hooked: tuple[Rzp, Receiver]) -> None:
    sim, rec = hooked
    link = await sim.create()
    status, entity = await sim.move(link["id"], "process", force=True)
    assert status == 200 and entity["status"] == "processed" and entity["attempt_count"] == 1
    assert entity["payout_id"].startswith("pout_") and entity["fund_account_id"].startswith("fa_")
    await sim.sim.drain_webhooks(10)
    assert [e["event"] for e in rec.events()] == ["payout_link.issued", "payout_link.processed"]


async def test_bad_lifecycle_requests(make_sim: MakeSim) -> None:
    sim = await make_sim()
    link = await sim.create()
    assert (await sim.move("poutlk_00000000000000", "claim"))[0] == 404
    assert (await sim.move(link["id"], "teleport"))[0] == 400
    status, _ = await sim.call("POST", f"/_sim/links/{link['id']}/lifecycle", {"action": "claim", "force": "yes"}, auth=None)
    assert status == 400


async def test_the_api_cancel_sends_payout_link_cancelled(hooked: tuple[Rzp, Receiver]) -> None:
    sim, rec = hooked
    link = await sim.create()
    status, cancelled = await sim.call("POST", f"{LINKS}/{link['id']}/cancel")
    assert status == 200 and cancelled["status"] == "cancelled"
    await sim.sim.drain_webhooks(10)
    last = rec.events()[-1]
    assert last["event"] == "payout_link.cancelled"
    assert last["payload"]["payout_link"]["entity"] == cancelled


async def test_an_observed_expiry_is_sent_once(hooked: tuple[Rzp, Receiver]) -> None:
    sim, rec = hooked
    link = await sim.create(expire_by=int(time.time()) + 16 * 60)
    sim.sim.links[link["id"]].entity["expire_by"] = int(time.time()) - 5  # as if 16 minutes passed
    _, fetched = await sim.call("GET", f"{LINKS}/{link['id']}")
    _, again = await sim.call("GET", LINKS, None)
    assert fetched["status"] == "expired" and again["items"][0]["status"] == "expired"
    await sim.sim.drain_webhooks(10)
    events = rec.events()
    assert [e["event"] for e in events] == ["payout_link.issued", "payout_link.expired"]
    expired = events[1]["payload"]["payout_link"]["entity"]
    assert expired["status"] == "expired" and expired["expired_at"] == expired["expire_by"]


async def test_an_approval_workflow(hooked: tuple[Rzp, Receiver]) -> None:
    sim, rec = hooked
    await sim.configure(approval_workflow=True)
    approved, rejected = await sim.create("a"), await sim.create("r")
    assert approved["status"] == rejected["status"] == "pending"
    assert (await sim.move(approved["id"], "claim"))[0] == 409
    assert (await sim.move(approved["id"], "approve"))[1]["status"] == "issued"
    assert (await sim.move(rejected["id"], "reject"))[1]["status"] == "rejected"
    assert (await sim.move(rejected["id"], "approve"))[0] == 409
    await sim.sim.drain_webhooks(10)
    assert sorted((e["payload"]["payout_link"]["entity"]["receipt"], e["event"]) for e in rec.events()) == [
        ("a", "payout_link.issued"), ("a", "payout_link.pending"),
        ("r", "payout_link.pending"), ("r", "payout_link.rejected"),
    ]


async def test_the_forced_status_endpoint_still_forces_and_now_tells(hooked: tuple[Rzp, Receiver]) -> None:
    sim, rec = hooked
    link = await sim.create()
    status, forced = await sim.call("POST", f"/_sim/links/{link['id']}/status", {"status": "processed"}, auth=None)
    assert status == 200 and forced["status"] == "processed" and forced["attempt_count"] == 1
    _, attempted = await sim.call("POST", f"/_sim/links/{link['id']}/status", {"status": "attempted"}, auth=None)
    assert attempted["status"] == "issued"  # a reversal: "attempted" is the event, not a status
    await sim.sim.drain_webhooks(10)
    assert [e["event"] for e in rec.events()] == ["payout_link.issued", "payout_link.processed", "payout_link.attempted"]


# ------------------------------------------------------------------------------ retries


async def test_retries_keep_the_event_id_and_the_bytes_and_back_off(hooked: tuple[Rzp, Receiver]) -> None:
    sim, rec = hooked
    rec.statuses = [500, 503]
    await sim.configure(webhook_retries=3, webhook_retry_ms=40)
    await sim.create()
    records = await sim.records()
    assert len(rec.got) == 3
    (t0, h0, b0), (t1, h1, b1), (t2, h2, b2) = rec.got
    assert b0 == b1 == b2 and verified(h2, b2)
    assert h0["x-razorpay-event-id"] == h1["x-razorpay-event-id"] == h2["x-razorpay-event-id"]
    assert t1 - t0 >= 0.035 and t2 - t1 >= 0.075  # 40 ms, then doubled
    [record] = records["webhooks"]
    assert (record["attempts"], record["statuses"], record["delivered"]) == (3, [500, 503, 200], True)
    assert records["counts"]["attempts"] == 3 and records["counts"]["delivered"] == 1


async def test_a_delivery_is_given_up_after_its_retries(hooked: tuple[Rzp, Receiver]) -> None:
    sim, rec = hooked
    rec.statuses = [500] * 5
    await sim.configure(webhook_retries=1)
    await sim.create()
    records = await sim.records()
    [record] = records["webhooks"]
    assert (record["attempts"], record["last_status"], record["delivered"], record["done"]) == (2, 500, False, True)
    assert records["counts"]["undelivered"] == 1
    assert sim.sim.stats.events["webhooks_undelivered"] == 1


async def test_no_answer_is_retried_too(make_sim: MakeSim) -> None:
    sock_server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = sock_server.sockets[0].getsockname()[1]
    sock_server.close()
    await sock_server.wait_closed()  # nothing listens there now
    sim = await make_sim(webhook_url=f"http://127.0.0.1:{port}/hook", webhook_retries=2, webhook_retry_ms=1)
    await sim.create()
    [record] = (await sim.records())["webhooks"]
    assert record["statuses"] == [None, None, None] and record["delivered"] is False
    assert record["last_error"]
