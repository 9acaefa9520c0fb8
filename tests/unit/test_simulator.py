"""Tests of the RazorpayX Payout Links simulator (in-process server, real HTTP, latency 0)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import httpx
import pytest
import pytest_asyncio
from aiohttp import web

from streams.devkit.sims.razorpay import (
    PayoutLinkSimulator,
    RazorpaySimulatorProcess,
    SimConfig,
    fetch_ledger,
    load_credentials,
    start_server,
)

pytestmark = pytest.mark.asyncio

KEY, SECRET, ACCOUNT = "rzp_test_demo", "demo_secret", "2323230041626905"
OTHER = {"key_secret": "other_secret", "account_number": "7878780080316316"}
CREDENTIALS = {KEY: {"key_secret": SECRET, "account_number": ACCOUNT}, "rzp_test_other": OTHER}
LINKS = "/v1/payout-links"


def body(**overrides: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "account_number": ACCOUNT,
        "contact": {"name": "Gaurav Kumar", "contact": "9123456789", "email": "gaurav@example.com", "type": "customer"},
        "amount": 1000,
        "currency": "INR",
        "purpose": "refund",
        "description": "Refund for order 42",
        "receipt": "m1:p1",
        "send_sms": True,
        "send_email": True,
        "notes": {"order": "42"},
    }
    for key, value in overrides.items():
        if value is ...:
            b.pop(key, None)
        else:
            b[key] = value
    return b


class Sim:
    """A running in-process simulator plus an authenticated client for it."""

    def __init__(self, sim: PayoutLinkSimulator, runner: web.AppRunner, url: str, client: httpx.AsyncClient) -> None:
        self.sim, self.runner, self.url, self.client = sim, runner, url, client

    async def create(self, payload: dict[str, Any] | None = None, **kw: Any) -> httpx.Response:
        return await self.client.post(LINKS, json=body() if payload is None else payload, **kw)

    async def configure(self, **patch: Any) -> dict[str, Any]:
        resp = await self.client.post("/_sim/config", json=patch)
        assert resp.status_code == 200, resp.text
        config: dict[str, Any] = resp.json()
        return config

    async def ledger(self) -> dict[str, Any]:
        ledger: dict[str, Any] = (await self.client.get("/_sim/ledger")).json()
        return ledger

    async def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = (await self.client.get("/_sim/stats")).json()
        return stats


MakeSim = Callable[..., Awaitable[Sim]]


@pytest_asyncio.fixture
async def make_sim() -> AsyncIterator[MakeSim]:
    started: list[Sim] = []

    async def factory(**config: Any) -> Sim:
        cfg = SimConfig(latency_ms=0, jitter_ms=0)
        cfg.apply(config)
        simulator = PayoutLinkSimulator(cfg, CREDENTIALS)
        # the same server setup as the real process (not aiohttp's TestServer, which
        # cancels handlers on disconnect and so would hide the simulator's own checks)
        runner, port = await start_server(simulator, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{port}"
        client = httpx.AsyncClient(base_url=url, auth=(KEY, SECRET), timeout=10)
        s = Sim(simulator, runner, url, client)
        started.append(s)
        return s

    yield factory
    for s in started:
        await s.client.aclose()
        await s.runner.cleanup()


@pytest_asyncio.fixture
async def sim(make_sim: MakeSim) -> Sim:
    return await make_sim()


def assert_error(resp: httpx.Response, status: int, field: str | None, reason: str = "input_validation_failed") -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) >= {"code", "description", "source", "step", "reason", "metadata"}
    assert err["code"] == "BAD_REQUEST_ERROR"
    assert err["reason"] == reason
    assert err["metadata"] == {}
    assert err.get("field") == field
    assert err["description"]
    return dict(err)


# ---------------------------------------------------------------------------- create


async def test_create_returns_issued_link_entity(sim: Sim) -> None:
    resp = await sim.create()
    assert resp.status_code == 200, resp.text
    link = resp.json()
    assert re.fullmatch(r"poutlk_[A-Za-z0-9]{14}", link["id"])
    assert link["entity"] == "payout_link"
    assert link["status"] == "issued"
    assert re.fullmatch(r"cont_[A-Za-z0-9]{14}", link["contact_id"])
    assert link["contact"]["id"] == link["contact_id"]
    assert link["contact"]["name"] == "Gaurav Kumar"
    assert (link["amount"], link["currency"], link["purpose"]) == (1000, "INR", "refund")
    assert link["receipt"] == "m1:p1"
    assert link["notes"] == {"order": "42"}
    assert link["fund_account_id"] is None and link["payout_id"] is None
    assert link["cancelled_at"] is None and link["expired_at"] is None and link["expire_by"] is None
    assert link["attempt_count"] == 0
    assert link["send_sms"] is True and link["send_email"] is True
    assert abs(link["created_at"] - time.time()) < 5
    assert link["short_url"] == f"{sim.url}/l/{link['id'][len('poutlk_'):]}"
    page = await sim.client.get(link["short_url"])
    assert page.status_code == 200 and link["id"] in page.text
    fetched = await sim.client.get(f"{LINKS}/{link['id']}")
    assert fetched.json() == link


async def test_contact_by_id_and_minimal_body(sim: Sim) -> None:
    first = (await sim.create()).json()
    payload = body(contact={"id": first["contact_id"]}, receipt=..., notes=..., send_sms=..., send_email=...)
    resp = await sim.create(payload)
    assert resp.status_code == 200, resp.text
    link = resp.json()
    assert link["contact_id"] == first["contact_id"]
    assert link["receipt"] is None
    assert link["notes"] == []  # Razorpay's empty-notes quirk
    assert link["send_sms"] is False
    ok_expiry = await sim.create(body(expire_by=int(time.time()) + 16 * 60, amount=100))
    assert ok_expiry.status_code == 200, ok_expiry.text


LONG = "x" * 300


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"surprise": 1}, "surprise"),
        ({"account_number": ...}, "account_number"),
        ({"account_number": "ab1"}, "account_number"),
        ({"account_number": "acct-with-dash"}, "account_number"),
        ({"account_number": "1234567890123"}, "account_number"),  # valid shape, not ours
        ({"contact": ...}, "contact"),
        ({"contact": "Gaurav"}, "contact"),
        ({"contact": {"name": "Gaurav Kumar", "type": "customer"}}, "contact"),
        ({"contact": {"id": "cont_00000000000000", "contact": "9123456789"}}, "contact"),
        ({"contact": {"id": "cont_00000000000000", "email": "a@example.com"}}, "contact"),
        ({"contact": {"id": "cont_00000000000000"}}, "contact.id"),  # unknown contact
        ({"contact": {"id": "bogus"}}, "contact.id"),
        ({"contact": {"name": "Al", "contact": "9123456789"}}, "contact.name"),
        ({"contact": {"name": "A" * 51, "contact": "9123456789"}}, "contact.name"),
        ({"contact": {"contact": "9123456789"}}, "contact.name"),
        ({"contact": {"name": "Gaurav", "contact": "12ab"}}, "contact.contact"),
        ({"contact": {"name": "Gaurav", "email": "not-an-email"}}, "contact.email"),
        ({"contact": {"name": "Gaurav", "email": "a@example.com", "type": "alien"}}, "contact.type"),
        ({"contact": {"name": "Gaurav", "email": "a@example.com", "nick": "g"}}, "contact.nick"),
        ({"amount": ...}, "amount"),
        ({"amount": 99}, "amount"),
        ({"amount": 100.5}, "amount"),
        ({"amount": "1000"}, "amount"),
        ({"amount": True}, "amount"),
        ({"currency": ...}, "currency"),
        ({"currency": "USD"}, "currency"),
        ({"purpose": ...}, "purpose"),
        ({"purpose": "p" * 31}, "purpose"),
        ({"description": ...}, "description"),
        ({"description": ""}, "description"),
        ({"description": "d" * 256}, "description"),
        ({"receipt": "r" * 41}, "receipt"),
        ({"receipt": 12}, "receipt"),
        ({"send_sms": "yes"}, "send_sms"),
        ({"contact": {"name": "Gaurav", "email": "a@example.com"}, "send_sms": True, "send_email": False}, "send_sms"),
        ({"contact": {"name": "Gaurav", "contact": "9123456789"}, "send_sms": False, "send_email": True}, "send_email"),
        ({"notes": {f"k{i}": "v" for i in range(16)}}, "notes"),
        ({"notes": {"k": LONG}}, "notes"),
        ({"notes": "text"}, "notes"),
        ({"expire_by": 1}, "expire_by"),
        ({"expire_by": "tomorrow"}, "expire_by"),
    ],
)
async def test_validation_error_names_field(sim: Sim, overrides: dict[str, Any], field: str) -> None:
    resp = await sim.create(body(**overrides))
    err = assert_error(resp, 400, field)
    assert err["source"] == "business" and err["step"] == "payout_link_creation"
    assert (await sim.ledger())["links"] == 0


async def test_expire_by_must_be_15_minutes_ahead(sim: Sim) -> None:
    now = int(time.time())
    assert_error(await sim.create(body(expire_by=now + 14 * 60)), 400, "expire_by")
    assert (await sim.create(body(expire_by=now + 15 * 60 + 5))).status_code == 200


async def test_non_json_body_is_400(sim: Sim) -> None:
    resp = await sim.client.post(LINKS, content=b"{not json", headers={"Content-Type": "application/json"})
    assert_error(resp, 400, None)


async def test_insufficient_funds(make_sim: MakeSim) -> None:
    s = await make_sim(insufficient_funds_above=10_000)
    assert (await s.create(body(amount=10_000))).status_code == 200
    err = assert_error(await s.create(body(amount=10_001)), 400, None, reason="insufficient_funds")
    assert "field" not in err
    assert (await s.ledger())["links"] == 1


# ------------------------------------------------------------------------------ auth


@pytest.mark.parametrize("auth", [None, (KEY, "wrong"), ("rzp_test_nobody", SECRET)])
async def test_bad_credentials_get_401(sim: Sim, auth: tuple[str, str] | None) -> None:
    kwargs: dict[str, Any] = {"auth": auth} if auth else {"headers": {"Authorization": ""}}
    async with httpx.AsyncClient(base_url=sim.url, **kwargs) as anon:
        for resp in (
            await anon.post(LINKS, json=body()),
            await anon.get(LINKS),
            await anon.get(f"{LINKS}/poutlk_00000000000000"),
            await anon.post(f"{LINKS}/poutlk_00000000000000/cancel"),
        ):
            err = assert_error(resp, 401, None, reason="NA")
            assert err["description"] == "Authentication failed"
    assert (await sim.ledger())["links"] == 0


async def test_links_are_scoped_to_the_credentials_account(sim: Sim) -> None:
    link = (await sim.create()).json()
    async with httpx.AsyncClient(base_url=sim.url, auth=("rzp_test_other", OTHER["key_secret"])) as other:
        assert_error(await other.get(f"{LINKS}/{link['id']}"), 400, "id")
        assert (await other.get(LINKS, params={"receipt": "m1:p1"})).json()["count"] == 0
        resp = await other.post(LINKS, json=body(account_number=OTHER["account_number"]))
        assert resp.status_code == 200, resp.text


# -------------------------------------------------------------------- list / fetch


async def test_list_by_receipt_newest_first_and_duplicates_visible(sim: Sim) -> None:
    ids = []
    for receipt in ("dup", "other", "dup"):
        ids.append((await sim.create(body(receipt=receipt))).json()["id"])
        await asyncio.sleep(0)
    resp = await sim.client.get(LINKS, params={"receipt": "dup"})
    page = resp.json()
    assert page["entity"] == "collection"
    assert page["count"] == 2
    assert [i["id"] for i in page["items"]] == [ids[2], ids[0]]
    ledger = await sim.ledger()
    assert ledger["links"] == 3
    assert ledger["by_receipt"] == {"dup": [ids[0], ids[2]], "other": [ids[1]]}
    assert ledger["duplicate_receipts"] == {"dup": 2}
    assert (await sim.client.get(LINKS, params={"receipt": "none"})).json() == {
        "entity": "collection", "count": 0, "items": []
    }


async def test_list_filters_count_skip(sim: Sim) -> None:
    made = [(await sim.create(body(receipt=f"r{i}", purpose="refund" if i % 2 else "cashback"))).json() for i in range(13)]
    default = (await sim.client.get(LINKS)).json()
    assert default["count"] == 10
    assert [i["id"] for i in default["items"]] == [m["id"] for m in reversed(made)][:10]
    page2 = (await sim.client.get(LINKS, params={"count": 5, "skip": 10})).json()
    assert [i["id"] for i in page2["items"]] == [m["id"] for m in reversed(made)][10:]
    refunds = (await sim.client.get(LINKS, params={"purpose": "refund", "count": 100})).json()
    assert refunds["count"] == 6
    by_id = (await sim.client.get(LINKS, params={"id": made[3]["id"]})).json()
    assert [i["id"] for i in by_id["items"]] == [made[3]["id"]]
    by_email = (await sim.client.get(LINKS, params={"contact_email": "gaurav@example.com", "count": 100})).json()
    assert by_email["count"] == 13
    by_phone = (await sim.client.get(LINKS, params={"contact_phone_number": "000000000"})).json()
    assert by_phone["count"] == 0
    now = int(time.time())
    assert (await sim.client.get(LINKS, params={"from": now + 100})).json()["count"] == 0
    assert (await sim.client.get(LINKS, params={"to": now + 100, "from": now - 100})).json()["count"] == 10
    assert_error(await sim.client.get(LINKS, params={"count": 101}), 400, "count")
    assert_error(await sim.client.get(LINKS, params={"skip": "x"}), 400, "skip")
    assert_error(await sim.client.get(LINKS, params={"colour": "red"}), 400, "colour")
    assert_error(await sim.client.get(LINKS, params={"status": "happy"}), 400, "status")


async def test_fetch_unknown_id(sim: Sim) -> None:
    assert_error(await sim.client.get(f"{LINKS}/poutlk_00000000000000"), 400, "id")


# --------------------------------------------------------------------------- cancel


async def test_cancel_only_from_issued(sim: Sim) -> None:
    link = (await sim.create()).json()
    resp = await sim.client.post(f"{LINKS}/{link['id']}/cancel")
    assert resp.status_code == 200, resp.text
    cancelled = resp.json()
    assert cancelled["status"] == "cancelled"
    assert isinstance(cancelled["cancelled_at"], int)
    assert (await sim.client.get(f"{LINKS}/{link['id']}")).json()["status"] == "cancelled"
    again = await sim.client.post(f"{LINKS}/{link['id']}/cancel")
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "BAD_REQUEST_ERROR"
    listed = (await sim.client.get(LINKS, params={"status": "cancelled"})).json()
    assert [i["id"] for i in listed["items"]] == [link["id"]]
    assert_error(await sim.client.post(f"{LINKS}/poutlk_00000000000000/cancel"), 400, "id")


async def test_forced_status_blocks_cancel(sim: Sim) -> None:
    link = (await sim.create()).json()
    forced = await sim.client.post(f"/_sim/links/{link['id']}/status", json={"status": "processed"})
    assert forced.json()["status"] == "processed"
    assert (await sim.client.post(f"{LINKS}/{link['id']}/cancel")).status_code == 400


# ---------------------------------------------------------------------- idempotency


async def test_idempotency_header_ignored_by_default(sim: Sim) -> None:
    headers = {"X-Payout-Idempotency": "m1-p1"}
    a = await sim.create(headers=headers)
    b = await sim.create(headers=headers)
    c = await sim.create(body(amount=2000), headers=headers)
    bad = await sim.create(headers={"X-Payout-Idempotency": "ab"})  # invalid, but ignored
    assert [r.status_code for r in (a, b, c, bad)] == [200] * 4
    assert len({r.json()["id"] for r in (a, b, c, bad)}) == 4
    assert (await sim.ledger())["duplicate_receipts"] == {"m1:p1": 4}


async def test_idempotency_header_honoured(make_sim: MakeSim) -> None:
    s = await make_sim(honour_idempotency_header=True)
    headers = {"X-Payout-Idempotency": "m1 p1_x-1"}
    a = await s.create(headers=headers)
    b = await s.create(headers=headers)
    assert a.status_code == b.status_code == 200
    assert a.json()["id"] == b.json()["id"]
    conflict = await s.create(body(amount=2000), headers=headers)
    assert_error(conflict, 400, "X-Payout-Idempotency")
    for bad_key in ("abc", "k" * 37, "no/slash"):
        assert_error(await s.create(headers={"X-Payout-Idempotency": bad_key}), 400, "X-Payout-Idempotency")
    other_key = await s.create(headers={"X-Payout-Idempotency": "m1-p1-second"})
    no_key = await s.create()
    assert other_key.status_code == no_key.status_code == 200
    ledger = await s.ledger()
    assert ledger["links"] == 3
    assert (await s.stats())["events"]["idempotent_replays"] == 1


async def test_idempotency_mode_switchable_at_runtime(sim: Sim) -> None:
    await sim.configure(honour_idempotency_header=True)
    headers = {"X-Payout-Idempotency": "key-1"}
    assert (await sim.create(headers=headers)).json()["id"] == (await sim.create(headers=headers)).json()["id"]


# --------------------------------------------------------------------------- faults


async def test_error_5xx_creates_nothing(sim: Sim) -> None:
    await sim.configure(error_5xx=1.0)
    statuses = set()
    for _ in range(20):
        resp = await sim.create()
        statuses.add(resp.status_code)
        err = resp.json()["error"]
        assert err["reason"] == "server_error" and err["source"] == "internal"
    assert statuses <= {500, 502, 503, 504} and len(statuses) > 1
    assert (await sim.ledger())["links"] == 0
    assert (await sim.stats())["faults"]["error_5xx"] == 20


async def test_throttle_429_with_and_without_retry_after(sim: Sim) -> None:
    await sim.configure(throttle_429=1.0, retry_after_ratio=1.0)
    resp = await sim.create()
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "1"
    assert resp.json()["error"]["code"] == "BAD_REQUEST_ERROR"
    await sim.configure(retry_after_ratio=0.0)
    resp = await sim.create()
    assert resp.status_code == 429 and "Retry-After" not in resp.headers
    await sim.configure(retry_after_ratio=0.5, seed=7)
    with_header = 0
    for _ in range(40):
        with_header += "Retry-After" in (await sim.create()).headers
    assert 5 < with_header < 35
    assert (await sim.ledger())["links"] == 0


async def test_slow_adds_latency_then_succeeds(sim: Sim) -> None:
    await sim.configure(slow=1.0, slow_ms=300)
    t0 = time.monotonic()
    resp = await sim.create()
    assert time.monotonic() - t0 >= 0.3
    assert resp.status_code == 200
    assert (await sim.ledger())["links"] == 1


async def _wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_timeout_before_create_creates_nothing_when_client_gives_up(sim: Sim) -> None:
    await sim.configure(timeout_before_create=1.0, hang_ms=600)
    with pytest.raises(httpx.TimeoutException):
        await sim.create(timeout=0.15)

    async def handler_finished() -> bool:
        return bool((await sim.stats())["events"].get("client_gone", 0) == 1)

    await _wait_for(handler_finished)
    assert (await sim.ledger())["links"] == 0
    assert (await sim.stats())["faults"]["timeout_before_create"] == 1


async def test_timeout_before_create_answers_504_to_a_patient_client(sim: Sim) -> None:
    await sim.configure(timeout_before_create=1.0, hang_ms=100)
    resp = await sim.create()
    assert resp.status_code == 504 and resp.json()["error"]["reason"] == "server_error"
    assert (await sim.ledger())["links"] == 0


async def test_lost_after_create_client_sees_disconnect_but_link_exists(sim: Sim) -> None:
    await sim.configure(lost_after_create=1.0)
    with pytest.raises(httpx.TransportError):
        await sim.create(body(receipt="lost-1"))
    auth = {"Authorization": aiohttp.encode_basic_auth(KEY, SECRET)}
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.post(sim.url + LINKS, json=body(receipt="lost-2"), headers=auth) as resp:
                await resp.read()
    await sim.configure(lost_after_create=0.0)
    ledger = await sim.ledger()
    assert ledger["links"] == 2
    assert set(ledger["by_receipt"]) == {"lost-1", "lost-2"}
    found = (await sim.client.get(LINKS, params={"receipt": "lost-1"})).json()
    assert found["count"] == 1  # the lookup-before-create a connector must do finds it
    assert (await sim.stats())["statuses"]["dropped"] == 2


async def test_lost_after_create_replay_with_honoured_idempotency_returns_same_link(make_sim: MakeSim) -> None:
    s = await make_sim(honour_idempotency_header=True, lost_after_create=1.0)
    headers = {"X-Payout-Idempotency": "lost-key"}
    with pytest.raises(httpx.TransportError):
        await s.create(headers=headers)
    await s.configure(lost_after_create=0.0)
    resp = await s.create(headers=headers)
    assert resp.status_code == 200
    assert (await s.ledger())["links"] == 1


async def test_faults_apply_to_reads_only_when_enabled(sim: Sim) -> None:
    link = (await sim.create()).json()
    await sim.configure(error_5xx=1.0)
    assert (await sim.client.get(f"{LINKS}/{link['id']}")).status_code == 200
    assert (await sim.client.get(LINKS)).status_code == 200
    await sim.configure(faults_on_reads=True)
    assert (await sim.client.get(f"{LINKS}/{link['id']}")).status_code >= 500
    assert (await sim.client.get(LINKS)).status_code >= 500


async def test_seed_makes_fault_decisions_reproducible(make_sim: MakeSim) -> None:
    async def run(s: Sim) -> list[int]:
        return [(await s.create()).status_code for _ in range(30)]

    a = await make_sim(error_5xx=0.3, throttle_429=0.3, seed=42)
    b = await make_sim(error_5xx=0.3, throttle_429=0.3, seed=42)
    first = await run(a)
    assert first == await run(b)
    assert len(set(first)) > 2
    await a.client.post("/_sim/reset")  # reset re-seeds
    assert await run(a) == first


async def test_config_endpoint_validates(sim: Sim) -> None:
    bad = await sim.client.post("/_sim/config", json={"error_5xx": 0.7, "throttle_429": 0.7})
    assert bad.status_code == 400
    assert (await sim.client.post("/_sim/config", json={"nonsense": 1})).status_code == 400
    assert (await sim.client.post("/_sim/config", json={"error_5xx": 2})).status_code == 400
    cfg = await sim.configure(faults={"slow": 0.25}, latency_ms=5)
    assert cfg["faults"]["slow"] == 0.25 and cfg["latency_ms"] == 5
    assert (await sim.client.get("/_sim/config")).json() == cfg


async def test_stats_and_reset(sim: Sim) -> None:
    await sim.create()
    await sim.create(body(amount=1))
    await sim.client.get(LINKS)
    stats = await sim.stats()
    assert stats["requests"] == {"create": 2, "list": 1}
    assert stats["statuses"] == {"200": 2, "400": 1}
    assert stats["events"]["links_created"] == 1
    await sim.configure(error_5xx=0.5)
    assert (await sim.client.post("/_sim/reset", json={"config": True})).status_code == 200
    assert (await sim.ledger()) == {"links": 0, "by_receipt": {}, "duplicate_receipts": {}, "by_status": {}}
    assert (await sim.stats())["requests"] == {}
    assert (await sim.client.get("/_sim/config")).json()["faults"]["error_5xx"] == 0.0


async def test_health_and_unknown_route(sim: Sim) -> None:
    assert (await sim.client.get("/_sim/health")).json() == {"ok": True}
    assert (await sim.client.get("/v1/nowhere")).status_code == 404


# ----------------------------------------------------------------- as a subprocess


async def test_simulator_process_lifecycle(tmp_path: Any) -> None:
    creds = {"rzp_test_proc": {"key_secret": "proc_secret", "account_number": "ACC12345"}}
    proc = RazorpaySimulatorProcess(latency_ms=0, honour_idempotency_header=True, credentials=creds)
    with proc:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", proc.url)
        assert proc.pid is not None
        async with httpx.AsyncClient(base_url=proc.url, auth=("rzp_test_proc", "proc_secret")) as client:
            headers = {"X-Payout-Idempotency": "proc-key"}
            payload = body(account_number="ACC12345")
            first = await client.post(LINKS, json=payload, headers=headers)
            second = await client.post(LINKS, json=payload, headers=headers)
            assert first.status_code == 200, first.text
            assert first.json()["id"] == second.json()["id"]
            assert (await client.post(LINKS, json=body())).status_code == 400  # wrong account
        async with httpx.AsyncClient(base_url=proc.url, auth=(KEY, SECRET)) as default_creds:
            assert (await default_creds.get(LINKS)).status_code == 401  # default creds replaced
        ledger = await fetch_ledger(proc.url)
        assert ledger["links"] == 1
        assert proc.configure(error_5xx=1.0)["faults"]["error_5xx"] == 1.0
        assert proc.stats()["events"]["idempotent_replays"] == 1
        with pytest.raises(ValueError, match="unknown config key"):
            proc.configure(bogus=1)
        proc.reset()
        assert proc.ledger()["links"] == 0
        pid = proc.pid
        popen = proc._proc
    assert proc.pid is None
    assert popen is not None and popen.returncode == 0  # clean SIGTERM shutdown
    proc.stop()  # idempotent
    assert pid is not None


async def test_load_credentials_sources(tmp_path: Any) -> None:
    path = tmp_path / "creds.json"
    path.write_text('{"k_file": {"key_secret": "s", "account_number": "ACCT00001"}}')
    assert set(load_credentials(str(path), env={})) == {"k_file"}
    env = {"SIM_CREDENTIALS": '{"k_env": {"key_secret": "s", "account_number": "ACCT00002"}}'}
    assert set(load_credentials(None, env=env)) == {"k_env"}
    assert load_credentials(None, env={})[KEY] == {"key_secret": SECRET, "account_number": ACCOUNT}
    with pytest.raises(ValueError) as exc:
        load_credentials(None, env={"SIM_CREDENTIALS": '{"k": {"key_secret": "topsecret"}}'})
    assert "topsecret" not in str(exc.value)


async def test_an_outage_answers_every_api_call_with_its_5xx_until_cleared(sim: Sim) -> None:
    assert (await sim.client.post("/_sim/config", json={"outage_status": 404})).status_code == 400
    await sim.configure(outage_status=503)
    down = await sim.client.post(LINKS, json=body())
    assert down.status_code == 503 and down.json()["error"]["code"] == "SERVER_ERROR"
    assert (await sim.client.get(LINKS)).status_code == 503
    assert (await sim.client.get("/_sim/ledger")).json()["by_receipt"] == {}  # nothing created
    await sim.configure(outage_status=0)
    assert (await sim.client.post(LINKS, json=body())).status_code == 200


async def test_seeded_links_page_by_window_and_skip_newest_first(sim: Sim) -> None:
    """The list pages a time window by skip from an index (reconciliation at scale)."""
    base = 1_800_000_000
    seeded = [[f"r{i}", 100 + i, base + i] for i in range(250)]
    answer = await sim.client.post("/_sim/links/seed", json={"links": seeded})
    assert len(answer.json()["ids"]) == 250
    page = (await sim.client.get(LINKS, params={"from": base + 50, "to": base + 199,
                                                "count": 100, "skip": 100})).json()
    assert [i["receipt"] for i in page["items"]] == [f"r{i}" for i in range(99, 49, -1)]
    assert page["items"][0]["amount"] == 199
    first = (await sim.client.get(LINKS, params={"from": base + 50, "to": base + 199,
                                                 "count": 100})).json()
    assert [i["receipt"] for i in first["items"]] == [f"r{i}" for i in range(199, 99, -1)]
