"""Tests of the Cashfree Cashgram simulator (in-process aiohttp test server, latency 0).

The simulated clock is pinned to noon India time (``clock_offset_s``), so date rules are
deterministic and token/link expiry is tested by moving the clock, never by sleeping.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams.devkit.sims.cashfree import (
    IST,
    CashfreeSimConfig,
    CashfreeSimulator,
    CashfreeSimulatorProcess,
    fetch_ledger,
    load_credentials,
    parse_amount,
    sign_webhook,
)

CLIENT, SECRET = "CF_CLIENT_A", "secret_a"
OTHER, OTHER_SECRET = "CF_CLIENT_B", "secret_b"
CREDENTIALS = {CLIENT: {"client_secret": SECRET}, OTHER: {"client_secret": OTHER_SECRET}}
API = "/payout/v1"
SIM = "/_sim/cashfree"


def noon_ist_offset() -> float:
    """Clock offset that makes the simulator's 'now' today's 12:00 in India."""
    today = datetime.now(IST).date()
    noon = datetime(today.year, today.month, today.day, 12, tzinfo=IST).timestamp()
    return noon - time.time()


def ymd(day: date) -> str:
    return day.strftime("%Y/%m/%d")


def today() -> date:
    return datetime.now(IST).date()


def body(**overrides: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "cashgramId": "m1-p1_req42",
        "amount": "100.50",
        "name": "Gaurav Kumar",
        "phone": "9123456789",
        "email": "gaurav@example.com",
        "linkExpiry": ymd(today() + timedelta(days=7)),
        "remarks": "Refund for order 42",
        "notifyCustomer": 1,
    }
    for key, value in overrides.items():
        if value is ...:
            b.pop(key, None)
        else:
            b[key] = value
    return b


class Sim:
    """An in-process simulator plus a client that holds a bearer token for CLIENT."""

    def __init__(self, sim: CashfreeSimulator, client: TestClient[Any, Any]) -> None:
        self.sim, self.client = sim, client
        self.token = ""

    async def authorize(self, client_id: str = CLIENT, secret: str = SECRET) -> aiohttp.ClientResponse:
        return await self.client.post(f"{API}/authorize", headers={"X-Client-Id": client_id, "X-Client-Secret": secret})

    async def new_token(self, client_id: str = CLIENT, secret: str = SECRET) -> str:
        resp = await self.authorize(client_id, secret)
        assert resp.status == 200, await resp.text()
        token: str = (await resp.json())["data"]["token"]
        return token

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    async def create(self, payload: dict[str, Any] | None = None, token: str | None = None) -> aiohttp.ClientResponse:
        return await self.client.post(f"{API}/createCashgram", json=body() if payload is None else payload,
                                      headers=self.auth(token))

    async def status(self, cashgram_id: str, token: str | None = None) -> aiohttp.ClientResponse:
        return await self.client.get(f"{API}/getCashgramStatus", params={"cashgramId": cashgram_id},
                                     headers=self.auth(token))

    async def deactivate(self, cashgram_id: str, token: str | None = None) -> aiohttp.ClientResponse:
        return await self.client.post(f"{API}/deactivateCashgram", json={"cashgramId": cashgram_id},
                                      headers=self.auth(token))

    async def control(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        resp = await self.client.request(method, SIM + path, json=payload)
        return resp.status, await resp.json()

    async def configure(self, **patch: Any) -> dict[str, Any]:
        status, config = await self.control("POST", "/config", patch)
        assert status == 200, config
        return dict(config)

    async def set_status(self, cashgram_id: str, status: str, **extra: Any) -> tuple[int, Any]:
        return await self.control("POST", f"/links/{cashgram_id}/status", {"status": status, **extra})

    async def ledger(self, detail: bool = False) -> dict[str, Any]:
        return dict((await self.control("GET", "/ledger" + ("?detail=1" if detail else "")))[1])

    async def stats(self) -> dict[str, Any]:
        return dict((await self.control("GET", "/stats"))[1])


MakeSim = Callable[..., Awaitable[Sim]]


@pytest_asyncio.fixture
async def make_sim() -> AsyncIterator[MakeSim]:
    started: list[TestClient[Any, Any]] = []

    async def factory(**config: Any) -> Sim:
        cfg = CashfreeSimConfig(latency_ms=0, jitter_ms=0, clock_offset_s=noon_ist_offset())
        cfg.apply(config)
        simulator = CashfreeSimulator(cfg, CREDENTIALS)
        client: TestClient[Any, Any] = TestClient(TestServer(simulator.make_app()))
        await client.start_server()
        started.append(client)
        s = Sim(simulator, client)
        s.token = await s.new_token()
        return s

    yield factory
    for client in started:
        await client.close()


@pytest_asyncio.fixture
async def sim(make_sim: MakeSim) -> Sim:
    return await make_sim()


async def assert_error(
    resp: aiohttp.ClientResponse, status: int, code: str, sub_code: int | None = None
) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    err = await resp.json()
    assert err["status"] == "ERROR"
    assert err["subCode"] == str(sub_code or status)
    assert err["code"] == code
    assert isinstance(err["message"], str) and err["message"]
    return dict(err)


# ------------------------------------------------------------------------------ auth


async def test_authorize_issues_jwt_shaped_token_with_expiry(sim: Sim) -> None:
    resp = await sim.authorize()
    assert resp.status == 200
    payload = await resp.json()
    assert (payload["status"], payload["subCode"], payload["message"]) == ("SUCCESS", "200", "Token generated")
    token, expiry = payload["data"]["token"], payload["data"]["expiry"]
    assert re.fullmatch(r"eyJ[\w-]+\.[\w-]+\.[\w-]+", token)
    assert isinstance(expiry, int) and abs(expiry - (sim.sim.now() + 360)) < 5
    ok = await sim.client.post(f"{API}/verifyToken", headers=sim.auth(token))
    assert (await ok.json()) == {"status": "SUCCESS", "subCode": "200", "message": "Token is valid"}


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Client-Id": CLIENT}, {"X-Client-Id": CLIENT, "X-Client-Secret": "wrong"},
     {"X-Client-Id": "nobody", "X-Client-Secret": SECRET}, {"X-Client-Id": CLIENT, "X-Client-Secret": OTHER_SECRET}],
)
async def test_bad_credentials_get_401(sim: Sim, headers: dict[str, str]) -> None:
    resp = await sim.client.post(f"{API}/authorize", headers=headers)
    err = await assert_error(resp, 401, "authentication_failed")
    assert err["message"] == "Invalid clientId and clientSecret combination"
    assert SECRET not in await resp.text()
    assert (await sim.stats())["events"]["auth_failed"] == 1


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer nonsense", "Basic Q0ZfQ0xJRU5UX0E6c2VjcmV0X2E=", "Token {token}", "{token}"],
)
async def test_bad_token_rejected_on_every_call(sim: Sim, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization.format(token=sim.token)}
    for resp in (
        await sim.client.post(f"{API}/createCashgram", json=body(), headers=headers),
        await sim.client.get(f"{API}/getCashgramStatus", params={"cashgramId": "x"}, headers=headers),
        await sim.client.post(f"{API}/deactivateCashgram", json={"cashgramId": "x"}, headers=headers),
        await sim.client.post(f"{API}/verifyToken", headers=headers),
    ):
        err = await assert_error(resp, 403, "token_invalid")
        assert err["message"] == "Token is not valid"
    assert (await sim.ledger())["links"] == 0


async def test_bearer_scheme_is_case_insensitive(sim: Sim) -> None:
    resp = await sim.client.post(f"{API}/verifyToken", headers={"Authorization": f"bearer {sim.token}"})
    assert resp.status == 200


async def test_token_expires_after_ttl_and_a_new_one_works(make_sim: MakeSim) -> None:
    s = await make_sim(token_ttl_s=60)
    assert (await s.create()).status == 200
    older = s.token
    newer = await s.new_token()
    assert (await s.status("m1-p1_req42", older)).status == 200  # a new token does not void the old
    await s.configure(clock_offset_s=s.sim.config.clock_offset_s + 61)
    await assert_error(await s.status("m1-p1_req42", older), 403, "token_invalid")
    await assert_error(await s.status("m1-p1_req42", newer), 403, "token_invalid")
    assert (await s.stats())["events"]["token_expired"] == 2
    fresh = await s.new_token()
    assert (await s.status("m1-p1_req42", fresh)).status == 200


async def test_token_ttl_configurable_at_runtime(sim: Sim) -> None:
    await sim.configure(token_ttl_s=0)
    token = await sim.new_token()
    await assert_error(await sim.create(token=token), 403, "token_invalid")
    assert (await sim.create()).status == 200  # tokens issued before keep their lifetime


async def test_revoke_all_tokens_or_one_clients(sim: Sim) -> None:
    other = await sim.new_token(OTHER, OTHER_SECRET)
    status, out = await sim.control("POST", "/tokens/revoke", {"client_id": CLIENT})
    assert (status, out) == (200, {"revoked": 1})
    await assert_error(await sim.create(), 403, "token_invalid")
    assert (await sim.create(token=other)).status == 200
    assert (await sim.control("POST", "/tokens/revoke"))[1] == {"revoked": 1}
    await assert_error(await sim.create(body(cashgramId="again"), token=other), 403, "token_invalid")
    assert (await sim.stats())["tokens_live"] == 0
    sim.token = await sim.new_token()
    assert (await sim.create(body(cashgramId="after-revoke"))).status == 200


async def test_token_error_status_401_and_legacy_http_200(sim: Sim) -> None:
    await sim.configure(token_error_status=401)
    await assert_error(await sim.create(token="eyJ.nope.nope"), 401, "token_invalid")
    await sim.configure(errors_as_http_200=True)
    await assert_error(await sim.create(token="eyJ.nope.nope"), 200, "token_invalid", sub_code=401)


# ---------------------------------------------------------------------------- create


async def test_create_then_status(sim: Sim) -> None:
    resp = await sim.create()
    assert resp.status == 200
    created = await resp.json()
    assert (created["status"], created["subCode"], created["message"]) == ("SUCCESS", "200", "Cashgram Created")
    ref, link = created["data"]["referenceId"], created["data"]["cashgramLink"]
    assert isinstance(ref, int)
    assert re.fullmatch(r"http://csgr\.am/[A-Za-z0-9]{7}", link)
    resp = await sim.status("m1-p1_req42")
    assert resp.status == 200
    fetched = await resp.json()
    assert fetched["message"] == "Cashgram details retrieved"
    assert fetched["data"] == {"cashgramStatus": "ACTIVE", "referenceId": ref, "cashgramId": "m1-p1_req42",
                               "cashgramLink": link}
    page = await sim.client.get(f"{SIM}/csgr/{link.rsplit('/', 1)[1]}")
    assert "m1-p1_req42: ACTIVE, INR 100.50" in await page.text()
    detail = (await sim.ledger(detail=True))["cashgrams"]["m1-p1_req42"][0]
    assert (detail["amount"], detail["clientId"], detail["cashgramStatus"]) == ("100.50", CLIENT, "ACTIVE")


async def test_minimal_body(sim: Sim) -> None:
    resp = await sim.create(body(email=..., remarks=..., notifyCustomer=...))
    assert resp.status == 200, await resp.text()


@pytest.mark.parametrize(
    ("amount", "stored"),
    [(1, "1.00"), (1.0, "1.00"), ("1.00", "1.00"), (100.5, "100.50"), ("100.5", "100.50"), (99999.99, "99999.99"),
     ("250", "250.00")],
)
async def test_amount_accepted(sim: Sim, amount: Any, stored: str) -> None:
    assert (await sim.create(body(amount=amount))).status == 200
    assert (await sim.ledger(detail=True))["cashgrams"]["m1-p1_req42"][0]["amount"] == stored


def test_parse_amount_rules() -> None:
    assert parse_amount("0.99", accept_string=True) is None
    assert parse_amount(1.005, accept_string=True) is None
    assert parse_amount("1e3", accept_string=True) is None
    assert parse_amount(float("inf"), accept_string=True) is None
    assert parse_amount(10**12, accept_string=True) is None
    assert parse_amount("10", accept_string=False) is None
    assert str(parse_amount(10**12 - 1, accept_string=False)) == "999999999999.00"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"cashgramId": ...}, "cashgram_id_missing"),
        ({"cashgramId": ""}, "cashgram_id_missing"),
        ({"cashgramId": "has space"}, "cashgram_id_invalid"),
        ({"cashgramId": "a/b"}, "cashgram_id_invalid"),
        ({"cashgramId": "ref:1"}, "cashgram_id_invalid"),
        ({"cashgramId": 12}, "cashgram_id_invalid"),
        ({"cashgramId": "x" * 36}, "cashgram_id_length_exceeded"),
        ({"amount": ...}, "amount_missing"),
        ({"amount": 0.99}, "amount_invalid"),
        ({"amount": "0.99"}, "amount_invalid"),
        ({"amount": 0}, "amount_invalid"),
        ({"amount": -5}, "amount_invalid"),
        ({"amount": 1.005}, "amount_invalid"),
        ({"amount": "1.005"}, "amount_invalid"),
        ({"amount": "abc"}, "amount_invalid"),
        ({"amount": "1e3"}, "amount_invalid"),
        ({"amount": True}, "amount_invalid"),
        ({"amount": [100]}, "amount_invalid"),
        ({"name": ...}, "name_missing"),
        ({"name": "  "}, "name_invalid"),
        ({"name": "R2D2"}, "name_invalid"),
        ({"name": "x" * 101}, "name_invalid"),
        ({"name": 42}, "name_invalid"),
        ({"phone": ...}, "phone_missing"),
        ({"phone": 9123456789}, "phone_invalid"),
        ({"phone": "12345"}, "phone_invalid"),
        ({"phone": "5123456789"}, "phone_invalid"),
        ({"phone": "91234 56789"}, "phone_invalid"),
        ({"phone": "+12025550123"}, "phone_invalid"),
        ({"linkExpiry": ...}, "expiry_date_missing"),
        ({"linkExpiry": "2030-01-01"}, "expiry_date_invalid"),
        ({"linkExpiry": "2030/1/1"}, "expiry_date_invalid"),
        ({"linkExpiry": "2031/02/30"}, "expiry_date_invalid"),
        ({"linkExpiry": 20300101}, "expiry_date_invalid"),
        ({"email": "not-an-email"}, "email_invalid"),
        ({"email": 5}, "email_invalid"),
        ({"remarks": "r" * 71}, "remarks_invalid"),
        ({"remarks": 7}, "remarks_invalid"),
        ({"notifyCustomer": 2}, "notifyCustomer_invalid"),
        ({"notifyCustomer": "1"}, "notifyCustomer_invalid"),
        ({"notifyCustomer": 1.0}, "notifyCustomer_invalid"),
    ],
)
async def test_validation_errors_are_422_with_code(sim: Sim, overrides: dict[str, Any], code: str) -> None:
    await assert_error(await sim.create(body(**overrides)), 422, code)
    assert (await sim.ledger())["links"] == 0


@pytest.mark.parametrize(
    "overrides",
    [{"cashgramId": "x" * 35}, {"cashgramId": "A-z_09"}, {"phone": "+919123456789"}, {"phone": "919123456789"},
     {"phone": "09123456789"}, {"name": "D'Souza-Rao Jr."}, {"name": "गौरव"}, {"email": ""},
     {"notifyCustomer": True}, {"notifyCustomer": 0}, {"remarks": "r" * 70}, {"unknownField": "ignored"}],
)
async def test_validation_accepts(sim: Sim, overrides: dict[str, Any]) -> None:
    assert (await sim.create(body(**overrides))).status == 200


async def test_link_expiry_window_in_india_time(sim: Sim) -> None:
    now_day = today()
    await assert_error(await sim.create(body(cashgramId="past", linkExpiry=ymd(now_day - timedelta(days=1)))),
                       422, "expiry_date_invalid")
    await assert_error(await sim.create(body(cashgramId="far", linkExpiry=ymd(now_day + timedelta(days=31)))),
                       422, "expiry_date_invalid")
    assert (await sim.create(body(cashgramId="today", linkExpiry=ymd(now_day)))).status == 200
    assert (await sim.create(body(cashgramId="max", linkExpiry=ymd(now_day + timedelta(days=30))))).status == 200
    await sim.configure(max_link_expiry_days=3)
    await assert_error(await sim.create(body(cashgramId="four", linkExpiry=ymd(now_day + timedelta(days=4)))),
                       422, "expiry_date_invalid")


async def test_amount_knobs(sim: Sim) -> None:
    await sim.configure(max_amount="500.00")
    await assert_error(await sim.create(body(amount="500.01")), 422, "amount_above_maximum")
    assert (await sim.create(body(amount=500))).status == 200
    await sim.configure(accept_string_amount=False)
    await assert_error(await sim.create(body(cashgramId="s", amount="10")), 422, "amount_invalid")


async def test_cashgram_id_length_knob(sim: Sim) -> None:
    await sim.configure(cashgram_id_max_len=36)
    assert (await sim.create(body(cashgramId="y" * 36))).status == 200


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b""])
async def test_body_not_a_json_object_is_400(sim: Sim, raw: bytes) -> None:
    resp = await sim.client.post(f"{API}/createCashgram", data=raw,
                                 headers={**sim.auth(), "Content-Type": "application/json"})
    await assert_error(resp, 400, "bad_request")


async def test_legacy_mode_answers_errors_with_http_200(sim: Sim) -> None:
    await sim.configure(errors_as_http_200=True)
    await assert_error(await sim.create(body(amount=0)), 200, "amount_invalid", sub_code=422)
    await assert_error(await sim.status("nope"), 200, "cashgram_not_found", sub_code=404)
    await sim.configure(throttle_429=1.0)
    await assert_error(await sim.create(), 429, "rate_limit_exceeded")  # the limiter keeps its status


# ------------------------------------------------------------------------- duplicates


async def test_duplicate_cashgram_id_is_409_and_never_a_second_link(sim: Sim) -> None:
    first = await (await sim.create()).json()
    err = await assert_error(await sim.create(body(amount=999)), 409, "cashgram_id_already_exists")
    assert err["message"] == "Cashgram with id m1-p1_req42 already exists"
    assert (await sim.deactivate("m1-p1_req42")).status == 200
    await assert_error(await sim.create(), 409, "cashgram_id_already_exists")  # ids are never reusable
    ledger = await sim.ledger()
    assert ledger["links"] == 1
    assert ledger["by_reference"] == {"m1-p1_req42": [first["data"]["referenceId"]]}
    assert ledger["duplicate_references"] == {}
    assert ledger["conflicts"] == {"m1-p1_req42": 2}
    assert (await sim.stats())["events"]["conflicts_409"] == 2


async def test_ids_are_case_sensitive_unless_configured(sim: Sim) -> None:
    assert (await sim.create(body(cashgramId="Ref-1"))).status == 200
    assert (await sim.create(body(cashgramId="ref-1"))).status == 200
    await sim.configure(cashgram_id_case_insensitive=True)
    assert (await sim.create(body(cashgramId="Ref-2"))).status == 200
    await assert_error(await sim.create(body(cashgramId="REF-2")), 409, "cashgram_id_already_exists")
    assert (await (await sim.status("ref-2")).json())["data"]["cashgramId"] == "Ref-2"


async def test_cashgrams_are_scoped_per_client_and_cross_client_reuse_shows_in_ledger(sim: Sim) -> None:
    assert (await sim.create()).status == 200
    other = await sim.new_token(OTHER, OTHER_SECRET)
    await assert_error(await sim.status("m1-p1_req42", other), 404, "cashgram_not_found")
    await assert_error(await sim.deactivate("m1-p1_req42", other), 404, "cashgram_not_found")
    assert (await sim.create(token=other)).status == 200  # another merchant account
    ledger = await sim.ledger()
    assert ledger["links"] == 2
    assert ledger["duplicate_references"] == {"m1-p1_req42": 2}  # one reference, two links: a re-route
    status, err = await sim.set_status("m1-p1_req42", "REDEEMED")
    assert status == 409 and "client_id" in err["error"]
    status, moved = await sim.set_status("m1-p1_req42", "REDEEMED", client_id=OTHER)
    assert status == 200 and moved["clientId"] == OTHER


async def test_validation_runs_before_the_duplicate_check_unless_configured(sim: Sim) -> None:
    assert (await sim.create()).status == 200
    stale = body(linkExpiry=ymd(today() - timedelta(days=1)))  # a retry whose date went stale
    await assert_error(await sim.create(stale), 422, "expiry_date_invalid")
    await sim.configure(duplicate_check_first=True)
    await assert_error(await sim.create(stale), 409, "cashgram_id_already_exists")


# --------------------------------------------------------------------- status / deactivate


async def test_status_unknown_and_missing_id(sim: Sim) -> None:
    err = await assert_error(await sim.status("nope"), 404, "cashgram_not_found")
    assert err["message"] == "Cashgram with id nope does not exists"
    resp = await sim.client.get(f"{API}/getCashgramStatus", headers=sim.auth())
    await assert_error(resp, 422, "cashgram_id_missing")


async def test_deactivate_active_only(sim: Sim) -> None:
    assert (await sim.create()).status == 200
    resp = await sim.deactivate("m1-p1_req42")
    assert resp.status == 200
    assert await resp.json() == {"status": "SUCCESS", "subCode": "200",
                                 "message": "Cashgram with id - m1-p1_req42 successfully deactivated!"}
    assert (await (await sim.status("m1-p1_req42")).json())["data"]["cashgramStatus"] == "DEACTIVATED"
    err = await assert_error(await sim.deactivate("m1-p1_req42"), 422, "cashgram_not_active")
    assert "DEACTIVATED" in err["message"]
    await assert_error(await sim.deactivate("nope"), 404, "cashgram_not_found")
    resp = await sim.client.post(f"{API}/deactivateCashgram", json={}, headers=sim.auth())
    await assert_error(resp, 422, "cashgram_id_missing")
    assert (await sim.ledger())["by_status"] == {"DEACTIVATED": 1}


async def test_deactivated_status_knob(sim: Sim) -> None:
    await sim.configure(deactivated_status="EXPIRED")
    assert (await sim.create()).status == 200
    assert (await sim.deactivate("m1-p1_req42")).status == 200
    assert (await (await sim.status("m1-p1_req42")).json())["data"]["cashgramStatus"] == "EXPIRED"


# --------------------------------------------------------------------------- lifecycle


async def _status_of(sim: Sim, cashgram_id: str) -> str:
    status: str = (await (await sim.status(cashgram_id)).json())["data"]["cashgramStatus"]
    return status


async def test_lifecycle_legal_moves_only(sim: Sim) -> None:
    for cid in ("a", "b", "c"):
        assert (await sim.create(body(cashgramId=cid))).status == 200
    for status in ("PENDING", "REDEEMED", "REVERSED"):
        code, view = await sim.set_status("a", status)
        assert code == 200 and view["cashgramStatus"] == status
    assert await _status_of(sim, "a") == "REVERSED"
    code, err = await sim.set_status("a", "ACTIVE")
    assert code == 409 and "REVERSED -> ACTIVE" in err["error"]
    assert (await sim.set_status("b", "PENDING"))[0] == 200
    assert (await sim.set_status("b", "FAILED"))[0] == 200
    assert (await sim.set_status("b", "REDEEMED"))[0] == 409  # FAILED is final
    assert (await sim.set_status("c", "FAILED"))[0] == 409  # ACTIVE cannot fail
    code, view = await sim.set_status("c", "FAILED", force=True)
    assert code == 200 and view["history"][-1][2] == "forced"
    assert (await sim.set_status("c", "HAPPY"))[0] == 400
    assert (await sim.set_status("zzz", "REDEEMED"))[0] == 404
    await assert_error(await sim.deactivate("a"), 422, "cashgram_not_active")
    assert (await sim.ledger())["by_status"] == {"REVERSED": 1, "FAILED": 2}


async def test_lazy_expiry_after_the_link_expiry_day_ends_in_india(sim: Sim) -> None:
    assert (await sim.create(body(cashgramId="exp", linkExpiry=ymd(today())))).status == 200
    assert (await sim.create(body(cashgramId="pend", linkExpiry=ymd(today())))).status == 200
    assert (await sim.set_status("pend", "PENDING"))[0] == 200
    await sim.configure(clock_offset_s=sim.sim.config.clock_offset_s + 11.9 * 3600)  # 23:54 IST
    sim.token = await sim.new_token()  # hours later: the old token has long expired
    assert await _status_of(sim, "exp") == "ACTIVE"
    await sim.configure(clock_offset_s=sim.sim.config.clock_offset_s + 0.2 * 3600)  # 00:06 next day
    sim.token = await sim.new_token()
    assert await _status_of(sim, "exp") == "EXPIRED"
    assert await _status_of(sim, "pend") == "PENDING"  # only ACTIVE links expire
    await assert_error(await sim.deactivate("exp"), 422, "cashgram_not_active")
    assert (await sim.set_status("exp", "REDEEMED"))[0] == 409


async def test_ledger_and_expire_due_sweep(sim: Sim) -> None:
    assert (await sim.create(body(cashgramId="e1", linkExpiry=ymd(today())))).status == 200
    await sim.configure(clock_offset_s=sim.sim.config.clock_offset_s + 13 * 3600)
    assert (await sim.control("POST", "/expire-due"))[1] == {"expired": 1}
    assert (await sim.ledger())["by_status"] == {"EXPIRED": 1}
    hooks = (await sim.control("GET", "/webhooks"))[1]["webhooks"]
    assert [h["event"] for h in hooks] == ["CASHGRAM_EXPIRED"]


# ---------------------------------------------------------------------------- webhooks


class Receiver:
    """A webhook endpoint that records form posts and fails the first ``fail_first``."""

    def __init__(self, fail_first: int = 0) -> None:
        self.posts: list[tuple[str, dict[str, str]]] = []
        self.fail_first = fail_first

    async def handle(self, request: web.Request) -> web.Response:
        raw = (await request.read()).decode()
        self.posts.append((request.content_type, dict(parse_qsl(raw))))
        if len(self.posts) <= self.fail_first:
            return web.Response(status=500)
        return web.Response(text="ok")


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    server = TestServer(app)
    await server.start_server()
    yield rec, str(server.make_url("/hook"))
    await server.close()


async def test_webhooks_signed_form_posts(sim: Sim, receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    await sim.configure(webhook_url=url)
    for cid in ("w1", "w2", "w3"):
        assert (await sim.create(body(cashgramId=cid))).status == 200
    await sim.set_status("w1", "PENDING")  # no webhook for PENDING
    await sim.set_status("w1", "REDEEMED")
    await sim.set_status("w1", "REVERSED")
    await sim.set_status("w2", "EXPIRED")
    await sim.deactivate("w3")
    await sim.sim.drain_webhooks()
    assert {ct for ct, _ in rec.posts} == {"application/x-www-form-urlencoded"}
    forms = [form for _, form in rec.posts]
    assert [(f["event"], f["cashgramid"]) for f in forms] == [
        ("CASHGRAM_REDEEMED", "w1"), ("CASHGRAM_TRANSFER_REVERSAL", "w1"),
        ("CASHGRAM_EXPIRED", "w2"), ("CASHGRAM_EXPIRED", "w3"),
    ]
    redeemed, reversed_, expired, deactivated = forms
    assert set(redeemed) == {"event", "cashgramid", "referenceId", "eventTime", "utr", "signature"}
    assert set(reversed_) == {"event", "cashgramid", "referenceId", "eventTime", "signature"}
    assert set(expired) == {"event", "cashgramid", "reason", "signature"}
    assert redeemed["referenceId"] == reversed_["referenceId"]  # the transfer's id, not the Cashgram's
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", redeemed["eventTime"])
    assert deactivated["reason"] == "Cashgram deactivated"
    for form in forms:
        assert form["signature"] == sign_webhook(form, SECRET)
        assert form["signature"] != sign_webhook(form, OTHER_SECRET)
    log = (await sim.control("GET", "/webhooks"))[1]["webhooks"]
    assert [entry["delivered"] for entry in log] == [True] * 4


async def test_webhook_retried_on_failure_and_duplicates(sim: Sim, receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    rec.fail_first = 1
    await sim.configure(webhook_url=url, webhook_retry_ms=1, webhook_retries=1)
    assert (await sim.create()).status == 200
    await sim.set_status("m1-p1_req42", "REDEEMED")
    await sim.sim.drain_webhooks()
    assert len(rec.posts) == 2 and rec.posts[0][1] == rec.posts[1][1]
    entry = (await sim.control("GET", "/webhooks"))[1]["webhooks"][0]
    assert (entry["attempts"], entry["delivered"], entry["last_status"]) == (2, True, 200)
    await sim.configure(webhook_duplicate_ratio=1.0)
    await sim.set_status("m1-p1_req42", "REVERSED")
    await sim.sim.drain_webhooks()
    assert [form["event"] for _, form in rec.posts[2:]] == ["CASHGRAM_TRANSFER_REVERSAL"] * 2


async def test_webhook_gives_up_after_retries(sim: Sim, receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    rec.fail_first = 10
    await sim.configure(webhook_url=url, webhook_retry_ms=1, webhook_retries=2)
    assert (await sim.create()).status == 200
    await sim.set_status("m1-p1_req42", "EXPIRED")
    await sim.sim.drain_webhooks()
    entry = (await sim.control("GET", "/webhooks"))[1]["webhooks"][0]
    assert (entry["attempts"], entry["delivered"], entry["last_status"]) == (3, False, 500)
    assert (await sim.stats())["events"]["webhooks_undelivered"] == 1  # the counter all simulators share


# ----------------------------------------------------------------------------- faults


async def test_error_5xx_creates_nothing(sim: Sim) -> None:
    await sim.configure(error_5xx=1.0)
    statuses: set[int] = set()
    for i in range(24):
        resp = await sim.create(body(cashgramId=f"e{i}"))
        statuses.add(resp.status)
        if resp.status == 502:
            assert resp.content_type == "text/html"  # a gateway page, not Cashfree's envelope
        else:
            err = await resp.json()
            assert err["status"] == "ERROR" and err["subCode"] == str(resp.status)
            assert err["code"] == {500: "internal_error", 503: "service_unavailable", 520: "unknown_error"}[resp.status]
    assert statuses == {500, 502, 503, 520}
    assert (await sim.ledger())["links"] == 0
    assert (await sim.stats())["faults"]["error_5xx"] == 24


async def test_error_5xx_after_create_then_retry_meets_409(sim: Sim) -> None:
    await sim.configure(error_5xx=1.0, error_5xx_after_create_ratio=1.0)
    assert (await sim.create()).status in (500, 502, 503, 520)
    assert (await sim.ledger())["links"] == 1
    await sim.configure(error_5xx=0.0)
    await assert_error(await sim.create(), 409, "cashgram_id_already_exists")
    assert (await sim.status("m1-p1_req42")).status == 200
    assert (await sim.stats())["events"]["error_5xx_after_create"] == 1


async def test_throttle_429_with_and_without_retry_after(sim: Sim) -> None:
    await sim.configure(throttle_429=1.0, retry_after_ratio=1.0)
    resp = await sim.create()
    await assert_error(resp, 429, "rate_limit_exceeded")
    assert resp.headers["Retry-After"] == "1"
    await sim.configure(retry_after_ratio=0.0)
    resp = await sim.create()
    assert resp.status == 429 and "Retry-After" not in resp.headers
    await sim.configure(retry_after_ratio=0.5, seed=7)
    with_header = 0
    for _ in range(40):
        with_header += "Retry-After" in (await sim.create()).headers
    assert 5 < with_header < 35
    assert (await sim.ledger())["links"] == 0


async def test_slow_adds_latency_then_succeeds(sim: Sim) -> None:
    await sim.configure(slow=1.0, slow_ms=50)
    t0 = time.monotonic()
    resp = await sim.create()
    assert time.monotonic() - t0 >= 0.05
    assert resp.status == 200
    assert (await sim.stats())["faults"]["slow"] == 1


async def test_timeout_before_create_creates_nothing_when_client_gives_up(sim: Sim) -> None:
    await sim.configure(timeout_before_create=1.0, hang_ms=5000)
    with pytest.raises(asyncio.TimeoutError):
        await sim.client.post(f"{API}/createCashgram", json=body(), headers=sim.auth(),
                              timeout=aiohttp.ClientTimeout(total=0.1))
    await asyncio.wait_for(sim.sim.wait_idle(), 5)
    assert (await sim.ledger())["links"] == 0
    stats = await sim.stats()
    assert stats["faults"]["timeout_before_create"] == 1
    assert stats["events"]["client_gone"] == 1


async def test_timeout_before_create_answers_gateway_504_to_a_patient_client(sim: Sim) -> None:
    await sim.configure(timeout_before_create=1.0, hang_ms=20)
    resp = await sim.create()
    assert resp.status == 504 and resp.content_type == "text/html"
    assert (await sim.ledger())["links"] == 0


async def test_lost_after_create_then_retry_gets_409_and_status_finds_it(sim: Sim) -> None:
    await sim.configure(lost_after_create=1.0)
    with pytest.raises(aiohttp.ClientConnectionError):
        resp = await sim.create()
        await resp.read()
    await sim.configure(lost_after_create=0.0)
    await assert_error(await sim.create(), 409, "cashgram_id_already_exists")
    found = await (await sim.status("m1-p1_req42")).json()
    assert found["data"]["cashgramStatus"] == "ACTIVE"
    ledger = await sim.ledger()
    assert ledger["links"] == 1 and ledger["duplicate_references"] == {}
    stats = await sim.stats()
    assert stats["statuses"]["dropped"] == 1 and stats["faults"]["lost_after_create"] == 1


async def test_lost_after_create_spares_validation_failures(sim: Sim) -> None:
    await sim.configure(lost_after_create=1.0)
    await assert_error(await sim.create(body(amount=0)), 422, "amount_invalid")


async def test_faults_on_reads_auth_and_deactivate_only_when_enabled(sim: Sim) -> None:
    assert (await sim.create()).status == 200
    await sim.configure(error_5xx=1.0)
    assert (await sim.status("m1-p1_req42")).status == 200
    assert (await sim.authorize()).status == 200
    await sim.configure(faults_on_reads=True, faults_on_auth=True)
    assert (await sim.status("m1-p1_req42")).status >= 500
    assert (await sim.client.post(f"{API}/verifyToken", headers=sim.auth())).status >= 500
    assert (await sim.authorize()).status >= 500
    await sim.configure(error_5xx=0.0, lost_after_create=1.0, faults_on_deactivate=True)
    with pytest.raises(aiohttp.ClientConnectionError):
        resp = await sim.deactivate("m1-p1_req42")
        await resp.read()
    await sim.configure(lost_after_create=0.0)
    assert await _status_of(sim, "m1-p1_req42") == "DEACTIVATED"  # the work happened, the answer was lost


async def test_seed_makes_fault_decisions_reproducible(make_sim: MakeSim) -> None:
    async def run(s: Sim) -> list[int]:
        return [(await s.create(body(cashgramId=f"s{i}"))).status for i in range(30)]

    a = await make_sim(error_5xx=0.3, throttle_429=0.3, seed=42)
    b = await make_sim(error_5xx=0.3, throttle_429=0.3, seed=42)
    first = await run(a)
    assert first == await run(b)
    assert len(set(first)) > 2
    await a.control("POST", "/reset")  # reset re-seeds
    assert await run(a) == first


# ------------------------------------------------------------------- control plane


async def test_config_endpoint_validates(sim: Sim) -> None:
    for bad in ({"error_5xx": 0.7, "throttle_429": 0.7}, {"nonsense": 1}, {"error_5xx": 2},
                {"token_error_status": 400}, {"deactivated_status": "GONE"}, {"max_amount": "0.5"},
                {"webhook_url": "ftp://x"}, {"cashgram_id_max_len": 0}, {"token_ttl_s": -1}, {"faults": 3}):
        status, err = await sim.control("POST", "/config", bad)
        assert status == 400 and err["error"], bad
    cfg = await sim.configure(faults={"slow": 0.25}, latency_ms=5, max_amount=250)
    assert cfg["faults"]["slow"] == 0.25 and cfg["latency_ms"] == 5 and cfg["max_amount"] == "250.00"
    assert (await sim.control("GET", "/config"))[1] == cfg


async def test_stats_and_reset(sim: Sim) -> None:
    assert (await sim.create()).status == 200
    await sim.create(body(amount=0))
    await sim.status("m1-p1_req42")
    stats = await sim.stats()
    assert stats["requests"] == {"authorize": 1, "createCashgram": 2, "getCashgramStatus": 1}
    assert stats["statuses"] == {"200": 3, "422": 1}
    assert stats["events"]["cashgrams_created"] == 1 and stats["tokens_live"] == 1
    await sim.configure(error_5xx=0.5)
    assert (await sim.control("POST", "/reset", {"config": True}))[0] == 200
    assert await sim.ledger() == {"provider": "cashfree", "links": 0, "by_reference": {}, "duplicate_references": {},
                                  "conflicts": {}, "by_status": {}}
    assert (await sim.stats())["requests"] == {}
    assert (await sim.control("GET", "/config"))[1]["faults"]["error_5xx"] == 0.0
    assert (await sim.create()).status == 200  # tokens survive a plain reset
    await sim.control("POST", "/reset", {"tokens": True})
    await assert_error(await sim.create(), 403, "token_invalid")


async def test_health_unknown_routes_and_no_collision_with_razorpay(sim: Sim) -> None:
    assert (await sim.control("GET", "/health"))[1] == {"ok": True, "provider": "cashfree"}
    await assert_error(await sim.client.get(f"{API}/nowhere"), 404, "not_found")
    resp = await sim.client.get(f"{API}/createCashgram")
    await assert_error(resp, 405, "method_not_allowed")
    assert resp.headers["Allow"] == "POST"
    assert (await sim.client.get("/v1/payout-links")).status == 404
    paths = {r.resource.canonical for r in sim.sim.make_app().router.routes() if r.resource is not None}
    assert all(p.startswith(("/payout/", "/_sim/cashfree/")) for p in paths), paths


# ----------------------------------------------------------------- as a subprocess


async def test_simulator_process_cli() -> None:
    creds = {"CF_PROC": {"client_secret": "proc_secret"}}
    proc = CashfreeSimulatorProcess(credentials=creds, config={"lost_after_create": 0.0, "token_ttl_s": 120})
    with proc:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", proc.url)
        async with aiohttp.ClientSession(base_url=proc.url) as session:
            async with session.post(f"{API}/authorize",
                                    headers={"X-Client-Id": "CF_PROC", "X-Client-Secret": "proc_secret"}) as resp:
                token = (await resp.json())["data"]["token"]
            async with session.post(f"{API}/authorize",
                                    headers={"X-Client-Id": CLIENT, "X-Client-Secret": SECRET}) as resp:
                assert resp.status == 401  # default credentials replaced
            async with session.post(f"{API}/createCashgram", json=body(),
                                    headers={"Authorization": f"Bearer {token}"}) as resp:
                assert resp.status == 200, await resp.text()
        assert (await fetch_ledger(proc.url))["links"] == 1
        assert proc.set_status("m1-p1_req42", "REDEEMED")["cashgramStatus"] == "REDEEMED"
        assert proc.configure(error_5xx=1.0)["faults"]["error_5xx"] == 1.0
        assert proc.stats()["events"]["cashgrams_created"] == 1
        assert proc.revoke_tokens() == 1
        with pytest.raises(ValueError, match="unknown config key"):
            proc.configure(bogus=1)
        proc.reset()
        assert proc.ledger()["links"] == 0
        popen = proc._proc
    assert popen is not None and popen.returncode == 0  # clean SIGTERM shutdown


def test_load_credentials_never_echoes_a_secret(tmp_path: Any) -> None:
    path = tmp_path / "creds.json"
    path.write_text('{"cf_file": {"client_secret": "s"}}')
    assert load_credentials(str(path), env={}) == {"cf_file": {"client_secret": "s"}}
    assert set(load_credentials(None, env={"SIM_CREDENTIALS": '{"cf_env": {"client_secret": "s"}}'})) == {"cf_env"}
    assert "CF_TEST_CLIENT_ID" in load_credentials(None, env={})
    with pytest.raises(ValueError) as exc:
        load_credentials(None, env={"SIM_CREDENTIALS": '{"k": {"key_secret": "topsecret"}}'})
    assert "topsecret" not in str(exc.value)


def test_fault_rates_given_as_config_json_are_not_overwritten_by_the_flags() -> None:
    """The fleet starts this simulator with its faults in --config-json; the flags' zero
    defaults used to win, and chaos ran Cashgram without faults."""
    from streams.devkit.sims.cashfree import build_arg_parser, config_from_args

    args = build_arg_parser().parse_args(
        ["--config-json", '{"error_5xx": 0.05, "faults": {"throttle_429": 0.02}}'])
    faults = config_from_args(args).faults
    assert faults["error_5xx"] == 0.05 and faults["throttle_429"] == 0.02
