"""Walking links to a final state (``POST <prefix>/lifecycle/walk``), the providers' truth
(``GET <prefix>/lifecycle/statuses``), the lifecycle endpoints of Cashfree, Revolut and
Prism, and the Python helpers of SimulatorProcess / SimulatorFleet."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from streams.devkit.sims import cashfree, prism, razorpay, revolut
from streams.devkit.sims.common import WalkRequest
from streams.devkit.sims.fleet import SimulatorFleet

pytestmark = pytest.mark.asyncio

RZP_AUTH = {"Authorization": "Basic " + base64.b64encode(b"rzp_test_demo:demo_secret").decode()}
CF_ID = "CF_TEST_CLIENT_ID"
CF_SECRET = cashfree.DEFAULT_CREDENTIALS[CF_ID]["client_secret"]
RV_CLIENT = "sim_revolut_client"
RV_ACCOUNT = revolut.DEFAULT_CREDENTIALS[RV_CLIENT]["account_ids"][0]
N = 40


class Receiver:
    def __init__(self) -> None:
        self.got: list[tuple[str, dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((request.path, dict(request.headers), await request.read()))
        return web.Response(status=200)


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hooks/{provider}", rec.handle)
    server = TestServer(app)
    await server.start_server()
    yield rec, str(server.make_url("/hooks"))
    await server.close()


class Control:
    """HTTP to one simulator: its API (with ``headers``) and its control prefix."""

    def __init__(self, base: str, prefix: str, http: aiohttp.ClientSession) -> None:
        self.base, self.prefix, self.http = base, prefix, http

    async def call(self, method: str, path: str, payload: Any = None, headers: dict[str, str] | None = None,
                   expect: int | None = 200) -> Any:
        async with self.http.request(method, self.base + path, json=payload, headers=headers) as resp:
            text = await resp.read()
            if expect is not None:
                assert resp.status == expect, text
            return orjson.loads(text) if text else None

    async def ctl(self, method: str, path: str, payload: Any = None, expect: int | None = 200) -> Any:
        return await self.call(method, self.prefix + path, payload, expect=expect)

    async def walk(self, **body: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.ctl("POST", "/lifecycle/walk", body)
        return result

    async def statuses(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.ctl("GET", "/lifecycle/statuses")
        return result


@asynccontextmanager
async def serving(sim: Any, start: Callable[..., Awaitable[tuple[web.AppRunner, int]]],
                  prefix: str) -> AsyncIterator[Control]:
    runner, port = await start(sim, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http:
            yield Control(f"http://127.0.0.1:{port}", prefix, http)
    finally:
        await runner.cleanup()


# ----------------------------------------------------------------------------- Razorpay


def rzp_sim(**config: Any) -> razorpay.PayoutLinkSimulator:
    cfg = razorpay.SimConfig(latency_ms=0, jitter_ms=0)
    cfg.apply(config)
    return razorpay.PayoutLinkSimulator(cfg)


async def rzp_create(c: Control, receipt: str) -> dict[str, Any]:
    body = {"account_number": "2323230041626905", "contact": {"name": "Asha Rao", "contact": "9123456789"},
            "amount": 1000, "currency": "INR", "purpose": "refund", "description": "d", "receipt": receipt}
    link: dict[str, Any] = await c.call("POST", "/v1/payout-links", body, RZP_AUTH)
    return link


RZP_EVENTS = {
    "processed": [["issued", "processing", "processed"]],
    "expired": [["issued", "expired"]],
    "cancelled": [["issued", "cancelled"]],
    "reversed": [["issued", "processing", "processed", "attempted", "processing", "processed"],
                 ["issued", "processing", "processed", "attempted", "expired"]],
    "failed_then_processed": [["issued", "processing", "attempted", "processing", "processed"]],
    "failed": [["issued", "processing", "attempted", "expired"]],
}


async def test_razorpay_walk_is_deterministic_and_matches_statuses(receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    results = []
    for _ in range(2):
        sim = rzp_sim(webhook_url=url + "/razorpay")
        async with serving(sim, razorpay.start_server, "/_sim") as c:
            for i in range(N):
                await rzp_create(c, f"m1:{i}")
            walked = await c.walk(seed=42)
            statuses = await c.statuses()
            await sim.drain_webhooks(10)
            events = list(sim.webhooks.events)
        assert set(walked["links"]) == {f"m1:{i}" for i in range(N)} and walked["unknown"] == []
        assert {ref: s["status"] for ref, s in statuses.items()} == walked["links"]
        assert all(s["final"] for s in statuses.values())
        assert set(walked["links"].values()) <= razorpay.FINAL_STATUSES
        by_ref: dict[str, list[str]] = {}
        for e in events:
            by_ref.setdefault(e["reference"], []).append(e["event"].removeprefix("payout_link."))
        for ref, path in walked["paths"].items():
            assert by_ref[ref] in RZP_EVENTS[path], (ref, path, by_ref[ref])
        results.append((walked["links"], walked["paths"]))
    assert results[0] == results[1]  # same seed, same paths, same finals
    paths = set(results[0][1].values())
    assert paths == {"processed", "expired", "cancelled", "reversed", "failed_then_processed"}  # the default plan
    finals = set(results[0][0].values())
    assert finals == {"processed", "expired", "cancelled"}


async def test_another_seed_another_walk_and_the_plan_is_honoured() -> None:
    outcomes = []
    for seed, plan in ((1, None), (2, None), (1, {"failed": 1.0})):
        async with serving(rzp_sim(), razorpay.start_server, "/_sim") as c:
            for i in range(N):
                await rzp_create(c, f"m1:{i}")
            body: dict[str, Any] = {"seed": seed} | ({"plan": plan} if plan else {})
            outcomes.append((await c.walk(**body))["paths"])
    assert outcomes[0] != outcomes[1]
    assert set(outcomes[2].values()) == {"failed"}


async def test_a_walk_with_step_delays_ends_the_same() -> None:
    finals = []
    for delay in (0, 20):
        async with serving(rzp_sim(), razorpay.start_server, "/_sim") as c:
            for i in range(12):
                await rzp_create(c, f"m1:{i}")
            started = time.monotonic()
            finals.append((await c.walk(seed=9, step_delay_ms=delay))["links"])
            if delay:
                assert time.monotonic() - started >= 0.02  # steps waited (links walked side by side)
    assert finals[0] == finals[1]


async def test_final_links_are_left_alone_and_references_pick_links() -> None:
    sim = rzp_sim()
    async with serving(sim, razorpay.start_server, "/_sim") as c:
        for i in range(6):
            await rzp_create(c, f"m1:{i}")
        first = await c.walk(seed=5, references=["m1:0", "m1:1", "nope"], plan={"processed": 1})
        assert first["links"] == {"m1:0": "processed", "m1:1": "processed"} and first["unknown"] == ["nope"]
        statuses = await c.statuses()
        assert [statuses[f"m1:{i}"]["final"] for i in range(6)] == [True, True, False, False, False, False]
        rest = await c.walk(seed=5, plan={"cancelled": 1})
        assert set(rest["links"]) == {f"m1:{i}" for i in range(2, 6)}  # only the links not final
        assert set(rest["links"].values()) == {"cancelled"}
        again = await c.walk(seed=5, references=["m1:0"], plan={"cancelled": 1})
        assert again["links"] == {"m1:0": "processed"}  # nothing legal from there: unchanged
        assert (await c.walk(seed=5))["links"] == {}


async def test_duplicate_links_of_one_reference_all_walk_and_all_show() -> None:
    async with serving(rzp_sim(), razorpay.start_server, "/_sim") as c:
        older, newer = await rzp_create(c, "dup"), await rzp_create(c, "dup")
        walked = await c.walk(seed=3, plan={"expired": 1})
        statuses = await c.statuses()
    assert walked["links"] == {"dup": "expired"}
    assert statuses["dup"]["id"] == newer["id"]
    assert [(x["id"], x["status"]) for x in statuses["dup"]["links"]] == [(older["id"], "expired"), (newer["id"], "expired")]


async def test_a_cancel_by_the_processor_mid_walk_ends_that_walk() -> None:
    sim = rzp_sim()
    async with serving(sim, razorpay.start_server, "/_sim") as c:
        link = await rzp_create(c, "m1:x")
        walk = asyncio.create_task(c.walk(seed=1, plan={"reversed": 1}, step_delay_ms=300))
        entity = sim.links[link["id"]].entity
        deadline = time.monotonic() + 10
        while not (entity["status"] == "issued" and entity["payout_id"]):  # reversed, not yet moved on
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)
        assert (await c.call("POST", f"/v1/payout-links/{link['id']}/cancel", headers=RZP_AUTH))["status"] == "cancelled"
        assert (await walk)["links"] == {"m1:x": "cancelled"}
        assert (await c.statuses())["m1:x"] == {"status": "cancelled", "final": True, "id": link["id"]}


async def test_a_reset_during_a_walk_ends_it_without_an_error() -> None:
    sim = rzp_sim()
    async with serving(sim, razorpay.start_server, "/_sim") as c:
        link = await rzp_create(c, "m1:x")
        walk = asyncio.create_task(c.walk(seed=1, plan={"processed": 1}, step_delay_ms=200))
        while sim.links[link["id"]].entity["status"] != "processing":
            await asyncio.sleep(0.005)
        await c.ctl("POST", "/reset")
        assert (await walk)["links"] == {"m1:x": "gone"}
        assert await c.statuses() == {}


async def test_walk_requests_are_validated() -> None:
    async with serving(rzp_sim(), razorpay.start_server, "/_sim") as c:
        for body in ({}, {"seed": "1"}, {"seed": 1, "plan": {"teleported": 1}}, {"seed": 1, "plan": {"processed": 0}},
                     {"seed": 1, "references": "m1"}, {"seed": 1, "step_delay_ms": -1}, {"seed": 1, "extra": 1}):
            assert "error" in await c.ctl("POST", "/lifecycle/walk", body, expect=400)
    request = WalkRequest.parse({"seed": 1, "plan": {"expired": 2, "cancelled": 0}})
    assert request.plan == (("expired", 2.0), ("cancelled", 0.0))


# ----------------------------------------------------------------------------- Cashfree


async def cf_setup(c: Control, n: int) -> dict[str, str]:
    auth = await c.call("POST", "/payout/v1/authorize", headers={"X-Client-Id": CF_ID, "X-Client-Secret": CF_SECRET})
    headers = {"Authorization": "Bearer " + auth["data"]["token"]}
    expiry = cashfree.datetime.now(cashfree.IST).strftime("%Y/%m/%d")
    for i in range(n):
        await c.call("POST", "/payout/v1/createCashgram", {"cashgramId": f"cg{i}", "amount": 10, "name": "Asha Rao",
                                                          "phone": "9123456789", "linkExpiry": expiry}, headers)
    return headers


CF_EVENTS = {
    "processed": [["CASHGRAM_REDEEMED"]], "expired": [["CASHGRAM_EXPIRED"]], "cancelled": [["CASHGRAM_EXPIRED"]],
    "reversed": [["CASHGRAM_REDEEMED", "CASHGRAM_TRANSFER_REVERSAL"]], "failed_then_processed": [[]], "failed": [[]],
}


async def test_cashfree_walk(receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    results = []
    for _ in range(2):
        sim = cashfree.CashfreeSimulator(cashfree.CashfreeSimConfig(latency_ms=0, jitter_ms=0, webhook_url=url + "/cashfree"))
        async with serving(sim, cashfree.start_server, cashfree.SIM_PREFIX) as c:
            await cf_setup(c, N)
            walked = await c.walk(seed=42, plan={p: 1 for p in CF_EVENTS})
            statuses = await c.statuses()
            await sim.drain_webhooks(10)
            events = list(sim.webhooks.events)
        assert {ref: s["status"] for ref, s in statuses.items()} == walked["links"]
        assert all(s["final"] for s in statuses.values())
        assert set(walked["links"].values()) == {"REDEEMED", "EXPIRED", "DEACTIVATED", "REVERSED", "FAILED"}
        by_ref: dict[str, list[str]] = {}
        for e in events:
            by_ref.setdefault(e["reference"], []).append(e["event"])
        for ref, path in walked["paths"].items():
            assert by_ref.get(ref, []) in CF_EVENTS[path]
        assert {statuses[ref]["id"] for ref in statuses} == {str(cg.reference_id) for cg in sim.cashgrams.values()}
        results.append(walked)
    assert results[0]["links"] == results[1]["links"] and results[0]["paths"] == results[1]["paths"]
    pending_redeemed = [cg for cg in sim.cashgrams.values() if [h[0] for h in cg.history][:3] == ["ACTIVE", "PENDING", "REDEEMED"]]
    direct_redeemed = [cg for cg in sim.cashgrams.values() if [h[0] for h in cg.history][:2] == ["ACTIVE", "REDEEMED"]]
    assert pending_redeemed and direct_redeemed  # redeemed both ways


async def test_cashfree_lifecycle_moves_and_refusals() -> None:
    sim = cashfree.CashfreeSimulator(cashfree.CashfreeSimConfig(latency_ms=0, jitter_ms=0))
    async with serving(sim, cashfree.start_server, cashfree.SIM_PREFIX) as c:
        await cf_setup(c, 3)

        async def move(cid: str, action: str, expect: int = 200, **extra: Any) -> Any:
            return await c.ctl("POST", f"/links/{cid}/lifecycle", {"action": action, **extra}, expect=expect)

        assert (await move("cg0", "fail", 409))["cashgram"]["cashgramStatus"] == "ACTIVE"
        assert (await move("cg0", "pend"))["cashgramStatus"] == "PENDING"
        assert (await move("cg0", "redeem"))["cashgramStatus"] == "REDEEMED"
        assert (await move("cg0", "reverse"))["cashgramStatus"] == "REVERSED"
        await move("cg0", "redeem", 409)
        assert (await move("cg1", "deactivate"))["cashgramStatus"] == "DEACTIVATED"
        await move("cg1", "expire", 409)
        assert (await move("cg1", "redeem", force=True))["cashgramStatus"] == "REDEEMED"
        assert (await move("cg2", "expire"))["cashgramStatus"] == "EXPIRED"
        await move("cg2", "vanish", 400)
        await move("nope", "redeem", 404)
    assert sim.stats.events["cashgrams_deactivated"] == 1


# ------------------------------------------------------------------------------ Revolut


async def rv_setup(sim: revolut.RevolutSimulator, c: Control, n: int) -> None:
    token, _ = sim.issue_token(RV_CLIENT)
    for i in range(n):
        await c.call("POST", "/api/1.0/payout-links",
                     {"counterparty_name": "Jane Doe", "request_id": f"r{i}", "account_id": RV_ACCOUNT,
                      "amount": 10, "currency": "GBP", "reference": "refund"},
                     {"Authorization": f"Bearer {token}"}, expect=201)


async def test_revolut_walk_from_awaiting_approval() -> None:
    results = []
    for _ in range(2):
        sim = revolut.RevolutSimulator(revolut.RevolutSimConfig(latency_ms=0, jitter_ms=0, initial_state="awaiting"))
        async with serving(sim, revolut.start_server, revolut.SIM_PREFIX) as c:
            await rv_setup(sim, c, N)
            walked = await c.walk(seed=8)
            statuses = await c.statuses()
        assert {ref: s["status"] for ref, s in statuses.items()} == walked["links"]
        assert all(s["final"] for s in statuses.values())
        assert set(walked["links"].values()) == {"processed", "expired", "cancelled", "failed"}
        for ref, state in walked["links"].items():  # a claimed link was approved first
            link = sim.links[statuses[ref]["id"]].entity
            assert link["state"] == state
            if state in ("processed", "failed"):
                assert "transaction_id" in link
        results.append(walked)
    assert results[0]["links"] == results[1]["links"]


async def test_revolut_lifecycle_moves_and_refusals() -> None:
    sim = revolut.RevolutSimulator(revolut.RevolutSimConfig(latency_ms=0, jitter_ms=0))
    async with serving(sim, revolut.start_server, revolut.SIM_PREFIX) as c:
        await rv_setup(sim, c, 3)
        a, b, d = (sim.by_request_id[f"r{i}"][0] for i in range(3))

        async def move(lid: str, action: str, expect: int = 200, force: bool = False) -> Any:
            return await c.ctl("POST", f"/links/{lid}/lifecycle", {"action": action, "force": force}, expect=expect)

        assert (await move(a, "process", 409))["link"]["state"] == "active"
        claimed = await move(a, "claim")
        assert claimed["state"] == "processing" and "url" not in claimed
        await move(a, "cancel", 409)
        assert (await move(a, "process"))["state"] == "processed"
        await move(a, "expire", 409)
        assert (await move(b, "claim"))["state"] == "processing"
        assert (await move(b, "fail"))["state"] == "failed"
        assert (await move(d, "cancel"))["state"] == "cancelled"
        await move(d, "approve", 409)
        assert (await move(d, "process", force=True))["state"] == "processed"
        await move(d, "fly", 400)


# -------------------------------------------------------------------------------- Prism


def prism_payout(sim: prism.PrismSimulator, ref: str, status: str = "REQUIRES_PAYOUT_METHOD_DATA") -> str:
    pid = f"po_{ref}"
    sim.payouts[pid] = prism.Payout(pid, "adyen", ref, status, 1000, "EUR", "EUR", "m", "public", "req", None, None,
                                    time.time())
    sim.by_reference.setdefault(ref, []).append(pid)
    return pid


async def test_prism_walk() -> None:
    results = []
    for _ in range(2):
        sim = prism.PrismSimulator(prism.PrismSimConfig(latency_ms=0, jitter_ms=0))
        for i in range(N):
            prism_payout(sim, f"p{i}")
        async with serving(sim, prism.start_control_server, prism.SIM_PREFIX) as c:
            walked = await c.walk(seed=4, plan={"processed": 2, "expired": 1, "cancelled": 1, "reversed": 1, "failed": 1})
            statuses = await c.statuses()
            hooks = await c.ctl("GET", "/webhooks")
        assert {ref: s["status"] for ref, s in statuses.items()} == walked["links"]
        assert all(s["final"] for s in statuses.values())
        assert set(walked["links"].values()) == {"SUCCESS", "EXPIRED", "CANCELLED", "REVERSED", "FAILED"}
        assert hooks["webhooks"] == [] and hooks["counts"]["events"] == 0  # Prism sends none
        results.append(walked)
    assert results[0] == results[1]


async def test_prism_status_goes_through_legal_moves() -> None:
    sim = prism.PrismSimulator(prism.PrismSimConfig(latency_ms=0, jitter_ms=0))
    a, b, d = prism_payout(sim, "a"), prism_payout(sim, "b"), prism_payout(sim, "d")
    async with serving(sim, prism.start_control_server, prism.SIM_PREFIX) as c:
        reversed_ = await c.ctl("POST", f"/payouts/{a}/status", {"status": "REVERSED"})
        assert reversed_["status"] == "REVERSED" and reversed_["path"] == ["INITIATED", "SUCCESS", "REVERSED"]
        assert (await c.ctl("POST", f"/payouts/{a}/status", {"status": "SUCCESS"}, expect=409))["payout"]["status"] == "REVERSED"
        assert (await c.ctl("POST", f"/payouts/{a}/status", {"status": "SUCCESS", "force": True}))["path"] == ["SUCCESS"]
        assert (await c.ctl("POST", f"/payouts/{b}/status", {"status": "PENDING"}))["path"] == ["PENDING"]
        assert (await c.ctl("POST", f"/payouts/{b}/lifecycle", {"action": "succeed"}))["status"] == "SUCCESS"
        await c.ctl("POST", f"/payouts/{b}/lifecycle", {"action": "cancel"}, expect=409)
        assert (await c.ctl("POST", f"/payouts/{d}/lifecycle", {"action": "expire"}))["status"] == "EXPIRED"
        await c.ctl("POST", f"/payouts/{d}/lifecycle", {"action": "nope"}, expect=400)
        await c.ctl("POST", "/payouts/po_missing/lifecycle", {"action": "fail"}, expect=404)
    assert prism.legal_path("REQUIRES_PAYOUT_METHOD_DATA", "SUCCESS") == ["INITIATED", "SUCCESS"]
    assert prism.legal_path("FAILED", "SUCCESS") is None and prism.legal_path("SUCCESS", "SUCCESS") == []


# ------------------------------------------------------------- process and fleet helpers


async def test_simulator_process_helpers(receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    proc = razorpay.RazorpaySimulatorProcess(webhook_url=url + "/razorpay",
                                             webhook={"webhook_retry_ms": 10, "webhook_duplicate": 1.0})
    with proc:
        async with aiohttp.ClientSession() as http:
            c = Control(proc.url, "/_sim", http)
            links = [await rzp_create(c, f"m1:{i}") for i in range(5)]
        # the helpers block (urllib): off the loop that serves the receiver
        with pytest.raises(ValueError, match="illegal"):
            await asyncio.to_thread(proc.lifecycle, links[0]["id"], "process")
        assert (await asyncio.to_thread(proc.lifecycle, links[0]["id"], "claim"))["status"] == "processing"
        finals = await asyncio.to_thread(proc.walk, seed=3, plan={"processed": 1})
        assert finals == {f"m1:{i}": "processed" for i in range(5)}
        statuses = await asyncio.to_thread(proc.statuses)
        assert statuses["m1:0"] == {"status": "processed", "final": True, "id": links[0]["id"]}
        drained = await asyncio.to_thread(proc.drain_webhooks, 10.0)
        assert drained["drained"] is True
        hooks = await asyncio.to_thread(proc.webhooks, reference="m1:0")
        assert [e["event"] for e in hooks["events"]] == ["payout_link.issued", "payout_link.processing", "payout_link.processed"]
        counts = (await asyncio.to_thread(proc.webhooks))["counts"]
        assert counts["events"] == 15 and counts["duplicates"] == 15 and counts["delivered"] == 30
        assert (await asyncio.to_thread(proc.configure, webhook_url=None))["webhook_url"] is None
    assert len(rec.got) == 30 and {path for path, _, _ in rec.got} == {"/hooks/razorpay"}


async def test_fleet_passes_webhooks_to_the_simulators_that_send_them(receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    fleet = SimulatorFleet(webhook_url=url + "/{provider}", webhook={"webhook_drop": 0.0, "webhook_retry_ms": 20},
                           options={"cashfree": {"webhook": {"webhook_retries": 1}}})
    with fleet:
        configs = {name: await asyncio.to_thread(fleet[name].configure) for name in ("razorpay", "cashfree", "revolut")}
        assert {name: cfg["webhook_url"] for name, cfg in configs.items()} == {
            name: f"{url}/{name}" for name in ("razorpay", "cashfree", "revolut")}
        assert configs["cashfree"]["webhook_retries"] == 1 and configs["razorpay"]["webhook_retry_ms"] == 20
        assert configs["revolut"]["webhook_retry_interval_s"] == 0.02
        assert "webhook_url" not in await asyncio.to_thread(fleet["prism"].configure)
        async with aiohttp.ClientSession() as http:
            await rzp_create(Control(fleet["razorpay"].url, "/_sim", http), "m1:fleet")
        walked = await asyncio.to_thread(fleet.walk, seed=1, plan={"cancelled": 1})
        assert walked == {"razorpay": {"m1:fleet": "cancelled"}, "cashfree": {}, "revolut": {}, "prism": {}}
        drained = await asyncio.to_thread(fleet.drain_webhooks, 10.0)
        assert all(d["drained"] for d in drained.values())
        statuses = await asyncio.to_thread(fleet.statuses)
        assert statuses["razorpay"]["m1:fleet"]["status"] == "cancelled" and statuses["prism"] == {}
        counts = {name: w["counts"]["delivered"] for name, w in (await asyncio.to_thread(fleet.webhooks)).items()}
        assert counts == {"razorpay": 2, "cashfree": 0, "revolut": 0, "prism": 0}
    assert [path for path, _, _ in rec.got] == ["/hooks/razorpay"] * 2
