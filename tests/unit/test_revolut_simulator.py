"""Tests of the Revolut Business payout-links simulator (in-process aiohttp server, latency 0)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import os
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams.devkit.sims.common import URL_LINE_PREFIX
from streams.devkit.sims.razorpay import PayoutLinkSimulator
from streams.devkit.sims.revolut import (
    _CONFIG_CHECKS,
    ASSERTION_TYPE,
    RevolutSimConfig,
    RevolutSimulator,
    build_arg_parser,
    config_from_args,
    load_credentials,
    parse_expiry_period,
    start_server,
)

CLIENT, REFRESH = "client_main", "oa_sand_refresh_main"
ACCOUNT = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
SECOND_ACCOUNT = "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e"
OTHER_CLIENT, OTHER_REFRESH = "client_other", "oa_sand_refresh_other"
OTHER_ACCOUNT = "2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f"
CREDENTIALS = {
    CLIENT: {"refresh_token": REFRESH, "account_ids": [ACCOUNT, SECOND_ACCOUNT]},
    OTHER_CLIENT: {"refresh_token": OTHER_REFRESH, "account_ids": [OTHER_ACCOUNT]},
}
API = "/api/1.0"
LINKS = f"{API}/payout-links"
SIM = "/_sim/revolut"
ISO_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
SECRET = "wsk_test_secret"


def body(**overrides: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "counterparty_name": "John Smith",
        "request_id": "m1:p1",
        "account_id": ACCOUNT,
        "amount": 105.6,
        "currency": "GBP",
        "reference": "Rent",
    }
    for key, value in overrides.items():
        if value is ...:
            b.pop(key, None)
        else:
            b[key] = value
    return b


def token_form(**overrides: str | None) -> dict[str, str]:
    form: dict[str, str | None] = {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH,
        "client_id": CLIENT,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def jwt(header: dict[str, Any], claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}.c2lnbmF0dXJl"


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Answer:
    """A response read whole: status, headers, raw body and (if JSON) the parsed body."""

    def __init__(self, status: int, headers: Any, raw: bytes) -> None:
        self.status, self.headers, self.raw = status, headers, raw
        self.json: Any = orjson.loads(raw) if raw and headers.get("Content-Type", "").startswith("application/json") else None


class Sim:
    """An in-process simulator, a test client for it, and a live access token."""

    def __init__(self, sim: RevolutSimulator, client: TestClient[Any, Any]) -> None:
        self.sim, self.client = sim, client
        self.auth: dict[str, str] = {}

    async def call(self, method: str, path: str, *, headers: dict[str, str] | None = None, **kw: Any) -> Answer:
        async with self.client.request(method, path, headers=self.auth if headers is None else headers, **kw) as resp:
            return Answer(resp.status, resp.headers, await resp.read())

    async def login(self, form: dict[str, str] | None = None) -> Answer:
        answer = await self.call("POST", f"{API}/auth/token", headers={}, data=form or token_form())
        if answer.status == 200:
            self.auth = {"Authorization": "Bearer " + answer.json["access_token"]}
        return answer

    async def create(self, payload: Any = None, **kw: Any) -> Answer:
        return await self.call("POST", LINKS, json=body() if payload is None else payload, **kw)

    async def fetch(self, link_id: str) -> Answer:
        return await self.call("GET", f"{LINKS}/{link_id}")

    async def control(self, method: str, path: str, payload: Any = None) -> Any:
        answer = await self.call(method, SIM + path, headers={}, json=payload)
        assert answer.status == 200, answer.raw
        return answer.json

    async def configure(self, **patch: Any) -> dict[str, Any]:
        config: dict[str, Any] = await self.control("POST", "/config", patch)
        return config

    async def ledger(self) -> dict[str, Any]:
        ledger: dict[str, Any] = await self.control("GET", "/ledger")
        return ledger

    async def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = await self.control("GET", "/stats")
        return stats

    async def advance(self, seconds: float) -> None:
        await self.control("POST", "/clock", {"advance_s": seconds})

    async def force(self, link_id: str, state: str) -> dict[str, Any]:
        entity: dict[str, Any] = await self.control("POST", f"/links/{link_id}/status", {"state": state})
        return entity


MakeSim = Callable[..., Awaitable[Sim]]


@pytest_asyncio.fixture
async def make_sim() -> AsyncIterator[MakeSim]:
    started: list[Sim] = []

    async def factory(*, login: bool = True, **config: Any) -> Sim:
        cfg = RevolutSimConfig(latency_ms=0, jitter_ms=0)
        cfg.apply(config)
        simulator = RevolutSimulator(cfg, CREDENTIALS)
        client: TestClient[Any, Any] = TestClient(TestServer(simulator.make_app()))
        await client.start_server()
        s = Sim(simulator, client)
        started.append(s)
        if login:
            assert (await s.login()).status == 200
        return s

    yield factory
    for s in started:
        await s.client.close()


@pytest_asyncio.fixture
async def sim(make_sim: MakeSim) -> Sim:
    return await make_sim()


def assert_error(answer: Answer, status: int, code: int, field: str | None = None) -> str:
    assert answer.status == status, answer.raw
    assert set(answer.json) == {"code", "message"}, answer.json
    assert answer.json["code"] == code
    message: str = answer.json["message"]
    if field is not None:
        assert f"'{field}'" in message, message
    return message


# ------------------------------------------------------------------------------ auth


async def test_refresh_flow_issues_a_bearer_token(make_sim: MakeSim) -> None:
    s = await make_sim(login=False)
    assert (await s.call("GET", LINKS)).status == 401
    answer = await s.login()
    assert answer.status == 200
    assert set(answer.json) == {"access_token", "token_type", "expires_in"}
    assert answer.json["token_type"] == "bearer" and answer.json["expires_in"] == 2399
    assert answer.json["access_token"].startswith("oa_sand_")
    listed = await s.call("GET", LINKS)
    assert listed.status == 200 and listed.json == []
    # the scheme is case-insensitive, as in HTTP
    lower = {"Authorization": s.auth["Authorization"].replace("Bearer", "bearer")}
    assert (await s.call("GET", LINKS, headers=lower)).status == 200


@pytest.mark.parametrize(
    ("overrides", "status", "error"),
    [
        ({"grant_type": None}, 400, "invalid_request"),
        ({"grant_type": "authorization_code"}, 400, "unsupported_grant_type"),
        ({"client_id": None}, 400, "invalid_request"),
        ({"client_id": "nobody"}, 401, "invalid_client"),
        ({"client_assertion_type": "urn:other"}, 400, "invalid_request"),
        ({"client_assertion": ""}, 401, "invalid_client"),
        ({"refresh_token": None}, 400, "invalid_request"),
        ({"refresh_token": "oa_sand_wrong"}, 400, "invalid_grant"),
        ({"refresh_token": OTHER_REFRESH}, 400, "invalid_grant"),
    ],
)
async def test_token_endpoint_errors(make_sim: MakeSim, overrides: dict[str, str | None], status: int, error: str) -> None:
    s = await make_sim(login=False)
    answer = await s.login(token_form(**overrides))
    assert answer.status == status, answer.raw
    assert set(answer.json) == {"error", "error_description"} and answer.json["error"] == error
    assert REFRESH.encode() not in answer.raw and OTHER_REFRESH.encode() not in answer.raw
    assert (await s.stats())["events"]["tokens_refused"] == 1


@pytest.mark.parametrize(
    "header", [None, "Bearer nope", "Basic Y2xpZW50OnNlY3JldA==", "Bearer", "oa_sand_token"],
)
async def test_calls_without_a_live_token_get_401_code_message(sim: Sim, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    for method, path in (("POST", LINKS), ("GET", LINKS), ("GET", f"{LINKS}/{uuid.uuid4()}")):
        answer = await sim.call(method, path, headers=headers, json=body())
        assert answer.status == 401
        assert answer.json == {"code": 9001, "message": "The request should be authorized."}
    assert (await sim.ledger())["links"] == 0


async def test_access_token_expires_after_its_lifetime(make_sim: MakeSim) -> None:
    s = await make_sim(login=False, token_ttl_s=60)
    answer = await s.login()
    assert answer.json["expires_in"] == 60
    await s.advance(59)
    assert (await s.call("GET", LINKS)).status == 200
    await s.advance(1.5)
    assert (await s.create()).status == 401
    assert (await s.login()).status == 200  # a refresh brings it back
    assert (await s.create()).status == 201


async def test_revoked_access_tokens_force_a_refresh(sim: Sim) -> None:
    assert (await sim.control("POST", "/tokens/revoke", {}))["revoked_access_tokens"] == 1
    assert (await sim.call("GET", LINKS)).status == 401
    assert (await sim.login()).status == 200
    assert (await sim.call("GET", LINKS)).status == 200


async def test_revoked_refresh_token_refuses_refresh_until_restored(sim: Sim) -> None:
    out = await sim.control("POST", "/tokens/revoke", {"client_id": CLIENT, "refresh_token": True})
    assert out["revoked_refresh_tokens"] == [CLIENT]
    answer = await sim.login()
    assert answer.status == 400 and answer.json["error"] == "invalid_grant"
    await sim.control("POST", "/tokens/revoke", {"client_id": CLIENT, "access_tokens": False, "refresh_token": False})
    assert (await sim.login()).status == 200


async def test_revoke_one_client_leaves_the_other(sim: Sim) -> None:
    mine = dict(sim.auth)
    await sim.login(token_form(client_id=OTHER_CLIENT, refresh_token=OTHER_REFRESH))
    others = dict(sim.auth)
    await sim.control("POST", "/tokens/revoke", {"client_id": OTHER_CLIENT})
    assert (await sim.call("GET", LINKS, headers=mine)).status == 200
    assert (await sim.call("GET", LINKS, headers=others)).status == 401
    bad = await sim.call("POST", f"{SIM}/tokens/revoke", headers={}, json={"client_id": "nobody"})
    assert bad.status == 400


async def test_refresh_keeps_or_revokes_earlier_tokens(sim: Sim) -> None:
    first = dict(sim.auth)
    await sim.login()
    assert (await sim.call("GET", LINKS, headers=first)).status == 200  # default: both live
    await sim.configure(refresh_revokes_previous=True)
    second = dict(sim.auth)
    await sim.login()
    assert (await sim.call("GET", LINKS, headers=second)).status == 401
    assert (await sim.call("GET", LINKS)).status == 200


async def test_strict_assertion_checks_the_jwt_claims(make_sim: MakeSim) -> None:
    s = await make_sim(login=False, strict_assertion=True)
    header = {"alg": "RS256", "typ": "JWT"}
    good = {"iss": "example.com", "sub": CLIENT, "aud": "https://revolut.com", "exp": int(time.time()) + 300}
    assert (await s.login(token_form(client_assertion=jwt(header, good)))).status == 200
    for bad in (
        "not-a-jwt",
        jwt({"alg": "HS256"}, good),
        jwt(header, {**good, "sub": OTHER_CLIENT}),
        jwt(header, {**good, "aud": "https://example.com"}),
        jwt(header, {**good, "iss": ""}),
        jwt(header, {**good, "exp": int(time.time()) - 1}),
    ):
        answer = await s.login(token_form(client_assertion=bad))
        assert answer.status == 401 and answer.json["error"] == "invalid_client", bad


async def test_token_endpoint_faults_only_when_enabled(make_sim: MakeSim) -> None:
    s = await make_sim(login=False, error_5xx=1.0)
    assert (await s.login()).status == 200
    await s.configure(faults_on_auth=True)
    assert (await s.login()).status >= 500


# ---------------------------------------------------------------------------- create


async def test_create_returns_an_active_link(sim: Sim) -> None:
    answer = await sim.create(body(transfer_reason_code="property_rental"))
    assert answer.status == 201, answer.raw
    link = answer.json
    assert set(link) == {
        "id", "state", "created_at", "updated_at", "counterparty_name", "save_counterparty", "request_id",
        "expiry_date", "payout_methods", "account_id", "amount", "currency", "url", "reference",
        "transfer_reason_code",
    }
    assert uuid.UUID(link["id"]).version == 4
    assert link["state"] == "active"
    assert re.fullmatch(r"https://business\.revolut\.com/p/[A-Za-z0-9]{11}", link["url"])
    assert link["amount"] == 105.6 and link["currency"] == "GBP" and link["account_id"] == ACCOUNT
    assert link["request_id"] == "m1:p1" and link["reference"] == "Rent"
    assert link["payout_methods"] == ["revolut", "bank_account"] and link["save_counterparty"] is False
    for key in ("created_at", "updated_at", "expiry_date"):
        assert ISO_RE.fullmatch(link[key]), link[key]
    assert parse_iso(link["expiry_date"]) - parse_iso(link["created_at"]) == timedelta(days=7)
    assert (await sim.fetch(link["id"])).json == link


async def test_create_minimal_body_has_no_transfer_reason(sim: Sim) -> None:
    link = (await sim.create(body(amount=10, payout_methods=["card"], expiry_period="P2D",
                                  save_counterparty=True))).json
    assert "transfer_reason_code" not in link
    assert link["amount"] == 10.0 and link["payout_methods"] == ["card"] and link["save_counterparty"] is True
    assert parse_iso(link["expiry_date"]) - parse_iso(link["created_at"]) == timedelta(days=2)


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"counterparty_name": ...}, 3009, "counterparty_name"),
        ({"counterparty_name": None}, 3009, "counterparty_name"),
        ({"counterparty_name": ""}, 3000, "counterparty_name"),
        ({"counterparty_name": "x" * 101}, 3000, "counterparty_name"),
        ({"request_id": ...}, 3009, "request_id"),
        ({"request_id": "r" * 41}, 3000, "request_id"),
        ({"request_id": 42}, 3000, "request_id"),
        ({"account_id": ...}, 3009, "account_id"),
        ({"account_id": "123"}, 3000, "account_id"),
        ({"account_id": OTHER_ACCOUNT}, 3000, "account_id"),
        ({"amount": ...}, 3009, "amount"),
        ({"amount": "105.6"}, 3000, "amount"),
        ({"amount": True}, 3000, "amount"),
        ({"amount": 0}, 3000, "amount"),
        ({"amount": -5}, 3000, "amount"),
        ({"amount": 10.123}, 3000, "amount"),
        ({"amount": 0.99}, 3000, "amount"),
        ({"amount": 2500.01}, 3000, "amount"),
        ({"amount": 1000.5, "currency": "JPY"}, 3000, "amount"),
        ({"amount": 100, "currency": "JPY"}, 3000, "amount"),  # below the £1 equivalent
        ({"amount": 10.1234, "currency": "KWD"}, 3000, "amount"),
        ({"currency": ...}, 3009, "currency"),
        ({"currency": "gbp"}, 3000, "currency"),
        ({"currency": "XXX"}, 3000, "currency"),
        ({"reference": ...}, 3009, "reference"),
        ({"reference": ""}, 3000, "reference"),
        ({"reference": "r" * 101}, 3000, "reference"),
        ({"payout_methods": []}, 3000, "payout_methods"),
        ({"payout_methods": ["cash"]}, 3000, "payout_methods"),
        ({"payout_methods": ["revolut", "revolut"]}, 3000, "payout_methods"),
        ({"payout_methods": "revolut"}, 3000, "payout_methods"),
        ({"expiry_period": "PT23H59M59S"}, 3000, "expiry_period"),
        ({"expiry_period": "P0D"}, 3000, "expiry_period"),
        ({"expiry_period": "P8D"}, 3000, "expiry_period"),
        ({"expiry_period": "P7DT1S"}, 3000, "expiry_period"),
        ({"expiry_period": "P1M"}, 3000, "expiry_period"),
        ({"expiry_period": "3 days"}, 3000, "expiry_period"),
        ({"expiry_period": 3}, 3000, "expiry_period"),
        ({"save_counterparty": "yes"}, 3000, "save_counterparty"),
        ({"transfer_reason_code": "bogus"}, 3000, "transfer_reason_code"),
        ({"unexpected": 1}, 3000, "unexpected"),
    ],
)
async def test_validation_errors_name_the_field(sim: Sim, overrides: dict[str, Any], code: int, field: str) -> None:
    assert_error(await sim.create(body(**overrides)), 400, code, field)
    assert (await sim.ledger())["links"] == 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"amount": 10.12},
        {"amount": 1},
        {"amount": 2500},
        {"amount": 2500.0},
        {"amount": 1000, "currency": "JPY"},
        {"amount": 1000.0, "currency": "JPY"},  # an integral double has no decimals
        {"amount": 10.123, "currency": "KWD"},
        {"amount": 10.5, "currency": "BHD"},
        {"amount": 99.99, "currency": "EUR"},
        {"amount": 12.34, "currency": "USD"},
        {"expiry_period": "P1D"},
        {"expiry_period": "PT24H"},
        {"expiry_period": "PT36H"},
        {"expiry_period": "P1W"},
        {"expiry_period": "P7D"},
        {"reference": "r" * 100},
        {"counterparty_name": "n" * 100},
        {"request_id": "r" * 40},
        {"account_id": SECOND_ACCOUNT.upper()},
        {"payout_methods": ["card", "revolut", "bank_account"]},
    ],
)
async def test_valid_edge_values_are_accepted(sim: Sim, overrides: dict[str, Any]) -> None:
    answer = await sim.create(body(**overrides))
    assert answer.status == 201, answer.raw


async def test_unknown_fields_can_be_tolerated(sim: Sim) -> None:
    await sim.configure(reject_unknown_fields=False)
    assert (await sim.create(body(unexpected=1))).status == 201


@pytest.mark.parametrize(
    ("raw", "message"),
    [(b"{not json", "Cannot parse request: invalid JSON"), (b"[1, 2]", "Cannot parse request: expected a JSON object")],
)
async def test_unparseable_bodies(sim: Sim, raw: bytes, message: str) -> None:
    answer = await sim.call("POST", LINKS, data=raw, headers={**sim.auth, "Content-Type": "application/json"})
    assert answer.status == 400 and answer.json == {"code": 3000, "message": message}


def test_expiry_period_parser() -> None:
    assert parse_expiry_period("P1D") == 86400
    assert parse_expiry_period("P1W") == 7 * 86400
    assert parse_expiry_period("P1DT2H3M4S") == 86400 + 7384
    for bad in ("P", "PT", "P1DT", "1D", "P1Y", "P1.5D", "p1d"):
        assert parse_expiry_period(bad) is None, bad


async def test_error_messages_never_echo_huge_values(sim: Sim) -> None:
    message = assert_error(await sim.create(body(reference="x" * 5000)), 400, 3000, "reference")
    assert len(message) < 300


# ----------------------------------------------------------------------- idempotency


async def test_repeat_with_same_request_id_and_body_returns_the_same_link(sim: Sim) -> None:
    first = await sim.create()
    # same parameters, spelt differently: key order, integral float, method order
    again = await sim.create(dict(reversed(list(body(payout_methods=["bank_account", "revolut"]).items()))))
    assert first.status == again.status == 201
    assert again.json["id"] == first.json["id"]
    await sim.configure(replay_status=200)
    third = await sim.create(body(expiry_period="P7D", save_counterparty=False))  # the defaults, explicit
    assert third.status == 200 and third.json["id"] == first.json["id"]
    ledger = await sim.ledger()
    assert ledger["links"] == 1 and ledger["duplicate_request_ids"] == {}
    assert (await sim.stats())["events"]["idempotent_replays"] == 2


async def test_repeat_returns_the_link_in_its_current_state(sim: Sim) -> None:
    link = (await sim.create()).json
    await sim.force(link["id"], "processed")
    again = await sim.create()
    assert again.json["id"] == link["id"] and again.json["state"] == "processed"


async def test_repeat_with_different_body_is_a_conflict(sim: Sim) -> None:
    first = await sim.create()
    for change in ({"amount": 105.7}, {"reference": "Other"}, {"account_id": SECOND_ACCOUNT}, {"expiry_period": "P3D"}):
        message = assert_error(await sim.create(body(**change)), 409, 3010, "request_id")
        assert "m1:p1" in message
    ledger = await sim.ledger()
    assert ledger["by_request_id"] == {"m1:p1": [first.json["id"]]}
    assert (await sim.stats())["events"]["request_id_conflicts"] == 4


async def test_failed_validation_reserves_no_request_id(sim: Sim) -> None:
    assert (await sim.create(body(amount=0))).status == 400
    assert (await sim.create()).status == 201


async def test_request_id_is_scoped_per_client(sim: Sim) -> None:
    mine = (await sim.create()).json
    await sim.login(token_form(client_id=OTHER_CLIENT, refresh_token=OTHER_REFRESH))
    theirs = (await sim.create(body(account_id=OTHER_ACCOUNT))).json
    assert theirs["id"] != mine["id"]
    assert (await sim.ledger())["duplicate_request_ids"] == {"m1:p1": 2}


async def test_without_request_id_honoured_every_create_is_a_new_link(make_sim: MakeSim) -> None:
    s = await make_sim(honour_request_id=False)
    ids = {(await s.create()).json["id"] for _ in range(3)}
    assert len(ids) == 3
    ledger = await s.ledger()
    assert ledger["duplicate_request_ids"] == {"m1:p1": 3} and sorted(ledger["by_request_id"]["m1:p1"]) == sorted(ids)


async def test_request_id_forgotten_after_its_ttl(make_sim: MakeSim) -> None:
    s = await make_sim(request_id_ttl_s=60)
    first = (await s.create()).json["id"]
    await s.advance(30)
    assert (await s.create()).json["id"] == first
    await s.advance(31)
    assert (await s.create()).json["id"] != first
    assert (await s.ledger())["duplicate_request_ids"] == {"m1:p1": 2}


# ------------------------------------------------------------------ fetch/list/cancel


async def test_fetch_unknown_malformed_and_foreign_ids(sim: Sim) -> None:
    link = (await sim.create()).json
    assert_error(await sim.fetch(str(uuid.uuid4())), 404, 3006)
    assert_error(await sim.fetch("not-a-uuid"), 400, 3000, "payout_link_id")
    assert (await sim.fetch(link["id"].upper())).json["id"] == link["id"]
    await sim.login(token_form(client_id=OTHER_CLIENT, refresh_token=OTHER_REFRESH))
    assert_error(await sim.fetch(link["id"]), 404, 3006)
    assert (await sim.call("GET", LINKS)).json == []


async def test_list_is_newest_first_and_pages_by_created_before(sim: Sim) -> None:
    created = [(await sim.create(body(request_id=f"r{i}"))).json for i in range(7)]
    newest_first = [link["id"] for link in reversed(created)]
    assert [x["id"] for x in (await sim.call("GET", LINKS)).json] == newest_first
    seen: list[str] = []
    params: dict[str, str] = {"limit": "3"}
    while True:
        page = (await sim.call("GET", LINKS, params=params)).json
        if not page:
            break
        assert len(page) <= 3
        seen += [x["id"] for x in page]
        params["created_before"] = page[-1]["created_at"]
    assert seen == newest_first


async def test_list_parameter_validation(sim: Sim) -> None:
    for params, field in (
        ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"), ({"limit": "ten"}, "limit"),
        ({"created_before": "yesterday"}, "created_before"), ({"state": "open"}, "state"),
    ):
        assert_error(await sim.call("GET", LINKS, params=params), 400, 3000, field)
    assert (await sim.call("GET", LINKS, params={"limit": "1000", "request_id": "ignored"})).status == 200
    assert (await sim.call("GET", LINKS, params={"created_before": "2020-01-01"})).json == []


async def test_list_filters_by_states(sim: Sim) -> None:
    a, b, c = [(await sim.create(body(request_id=r))).json for r in ("a", "b", "c")]
    await sim.force(b["id"], "processed")
    await sim.force(c["id"], "cancelled")

    async def ids(query: str) -> list[str]:
        return [x["id"] for x in (await sim.call("GET", f"{LINKS}?{query}")).json]

    assert await ids("state=active") == [a["id"]]
    assert await ids("state=processed&state=cancelled") == [c["id"], b["id"]]
    assert await ids("state=active,processed") == [b["id"], a["id"]]


async def test_cancel_only_unclaimed_links(sim: Sim) -> None:
    link = (await sim.create()).json
    await sim.advance(1)
    answer = await sim.call("POST", f"{LINKS}/{link['id']}/cancel")
    assert answer.status == 204 and answer.raw == b""
    cancelled = (await sim.fetch(link["id"])).json
    assert cancelled["state"] == "cancelled" and "url" not in cancelled
    assert parse_iso(cancelled["updated_at"]) > parse_iso(link["updated_at"])
    message = assert_error(await sim.call("POST", f"{LINKS}/{link['id']}/cancel"), 400, 3020)
    assert "cancelled" in message

    awaiting = (await sim.create(body(request_id="w"))).json
    await sim.force(awaiting["id"], "awaiting")
    assert (await sim.call("POST", f"{LINKS}/{awaiting['id']}/cancel")).status == 204
    for state in ("created", "processing", "processed", "failed", "expired"):
        other = (await sim.create(body(request_id=state))).json
        await sim.force(other["id"], state)
        assert_error(await sim.call("POST", f"{LINKS}/{other['id']}/cancel"), 400, 3020)
    assert_error(await sim.call("POST", f"{LINKS}/{uuid.uuid4()}/cancel"), 404, 3006)
    assert (await sim.ledger())["by_state"]["cancelled"] == 2


# ------------------------------------------------------------------------- lifecycle


async def test_forced_states_shape_the_entity(sim: Sim) -> None:
    link = (await sim.create()).json
    processing = await sim.force(link["id"], "processing")
    assert "url" not in processing
    uuid.UUID(processing["counterparty_id"])
    uuid.UUID(processing["transaction_id"])
    processed = await sim.force(link["id"], "processed")
    assert processed["transaction_id"] == processing["transaction_id"]
    assert (await sim.fetch(link["id"])).json["state"] == "processed"
    bad = await sim.call("POST", f"{SIM}/links/{link['id']}/status", headers={}, json={"state": "paid"})
    assert bad.status == 400
    missing = await sim.call("POST", f"{SIM}/links/{uuid.uuid4()}/status", headers={}, json={"state": "active"})
    assert missing.status == 404


async def test_awaiting_links_have_no_url_until_approved(make_sim: MakeSim) -> None:
    s = await make_sim(initial_state="awaiting")
    link = (await s.create()).json
    assert link["state"] == "awaiting" and "url" not in link
    approved = await s.force(link["id"], "active")
    assert approved["url"].startswith("https://")


async def test_lazy_expiry(sim: Sim) -> None:
    link = (await sim.create(body(expiry_period="P1D"))).json
    keep = (await sim.create(body(request_id="keep"))).json
    await sim.advance(86399)
    await sim.login()  # a day outlives any access token
    assert (await sim.fetch(link["id"])).json["state"] == "active"
    await sim.advance(2)
    expired = (await sim.fetch(link["id"])).json
    assert expired["state"] == "expired" and "url" not in expired
    assert expired["updated_at"] == expired["expiry_date"]
    assert [x["id"] for x in (await sim.call("GET", LINKS, params={"state": "expired"})).json] == [link["id"]]
    assert (await sim.ledger())["by_state"] == {"expired": 1, "active": 1}
    assert_error(await sim.call("POST", f"{LINKS}/{link['id']}/cancel"), 400, 3020)
    assert (await sim.fetch(keep["id"])).json["state"] == "active"


async def test_claimed_links_do_not_expire(sim: Sim) -> None:
    link = (await sim.create(body(expiry_period="P1D"))).json
    await sim.force(link["id"], "processed")
    await sim.advance(8 * 86400)
    await sim.login()
    assert (await sim.fetch(link["id"])).json["state"] == "processed"


async def test_insufficient_funds_as_failed_link_or_error(make_sim: MakeSim) -> None:
    s = await make_sim(insufficient_funds_above=100)
    assert (await s.create(body(request_id="ok", amount=100))).json["state"] == "active"
    failed = await s.create(body(request_id="poor", amount=100.01))
    assert failed.status == 201 and failed.json["state"] == "failed" and "url" not in failed.json
    await s.configure(insufficient_funds_as="error")
    assert_error(await s.create(body(request_id="poor2", amount=150)), 400, 3000)
    assert (await s.ledger())["by_state"] == {"active": 1, "failed": 1}
    assert (await s.stats())["events"]["insufficient_funds"] == 2


# ---------------------------------------------------------------------------- faults


async def test_error_5xx_creates_nothing_and_gateways_answer_html(sim: Sim) -> None:
    await sim.configure(error_5xx=1.0, seed=3)
    seen: dict[int, Answer] = {}
    for _ in range(30):
        answer = await sim.create()
        seen.setdefault(answer.status, answer)
    assert set(seen) == {500, 502, 503, 504}
    for status in (500, 503):
        assert seen[status].json == {"code": status, "message": seen[status].json["message"]}
    for status in (502, 504):
        assert seen[status].headers["Content-Type"].startswith("text/html") and b"<html>" in seen[status].raw
    assert (await sim.ledger())["links"] == 0
    assert (await sim.stats())["faults"]["error_5xx"] == 30


async def test_throttle_429_with_and_without_retry_after(sim: Sim) -> None:
    await sim.configure(throttle_429=1.0, retry_after_ratio=1.0)
    answer = await sim.create()
    assert answer.status == 429 and answer.headers["Retry-After"] == "1"
    assert answer.json == {"code": 429, "message": "Too many requests"}
    await sim.configure(retry_after_ratio=0.0)
    answer = await sim.create()
    assert answer.status == 429 and "Retry-After" not in answer.headers
    assert (await sim.ledger())["links"] == 0


async def test_slow_adds_latency_then_succeeds(sim: Sim) -> None:
    await sim.configure(slow=1.0, slow_ms=150)
    t0 = time.monotonic()
    answer = await sim.create()
    assert time.monotonic() - t0 >= 0.15
    assert answer.status == 201 and (await sim.ledger())["links"] == 1


async def test_timeout_before_create_creates_nothing_when_client_gives_up(sim: Sim) -> None:
    await sim.configure(timeout_before_create=1.0, hang_ms=30_000)
    with pytest.raises(asyncio.TimeoutError):
        await sim.create(timeout=aiohttp.ClientTimeout(total=0.1))
    await asyncio.wait_for(sim.sim.wait_idle(), 5)  # the test server cancels the abandoned handler
    assert (await sim.ledger())["links"] == 0
    stats = await sim.stats()
    assert stats["faults"]["timeout_before_create"] == 1 and stats["events"]["client_gone"] == 1


async def test_timeout_before_create_without_handler_cancellation() -> None:
    """The real process never cancels handlers: the create notices the client left after the hang."""
    cfg = RevolutSimConfig(latency_ms=0, jitter_ms=0)
    cfg.apply({"timeout_before_create": 1.0, "hang_ms": 300})
    simulator = RevolutSimulator(cfg, CREDENTIALS)
    runner, port = await start_server(simulator)
    try:
        token, _ = simulator.issue_token(CLIENT)
        async with aiohttp.ClientSession() as session:
            with pytest.raises(asyncio.TimeoutError):
                await session.post(f"http://127.0.0.1:{port}{LINKS}", json=body(),
                                   headers={"Authorization": f"Bearer {token}"},
                                   timeout=aiohttp.ClientTimeout(total=0.05))
        await asyncio.wait_for(simulator.wait_idle(), 5)
        assert simulator.ledger()["links"] == 0
        assert simulator.stats.events["client_gone"] == 1 and simulator.stats.statuses["abandoned"] == 1
    finally:
        await runner.cleanup()


async def test_timeout_before_create_answers_504_to_a_patient_client(sim: Sim) -> None:
    await sim.configure(timeout_before_create=1.0, hang_ms=50)
    answer = await sim.create()
    assert answer.status == 504 and answer.headers["Content-Type"].startswith("text/html")
    assert (await sim.ledger())["links"] == 0


async def test_lost_after_create_the_link_exists_and_a_repeat_finds_it(sim: Sim) -> None:
    await sim.configure(lost_after_create=1.0)
    with pytest.raises(aiohttp.ClientConnectionError):
        await sim.create()
    await sim.configure(lost_after_create=0.0)
    ledger = await sim.ledger()
    assert ledger["links"] == 1
    [link_id] = ledger["by_request_id"]["m1:p1"]
    again = await sim.create()  # the documented recovery: repeat with the same request_id
    assert again.status == 201 and again.json["id"] == link_id
    assert (await sim.stats())["statuses"]["dropped"] == 1


async def test_lost_after_create_without_request_id_makes_duplicates_a_scan_can_find(make_sim: MakeSim) -> None:
    s = await make_sim(honour_request_id=False, lost_after_create=1.0)
    with pytest.raises(aiohttp.ClientConnectionError):
        await s.create()
    await s.configure(lost_after_create=0.0)
    listed = (await s.call("GET", LINKS)).json
    assert [x["request_id"] for x in listed] == ["m1:p1"]  # what a lookup-before-create must find
    await s.create()  # a connector that trusts request_id alone
    assert (await s.ledger())["duplicate_request_ids"] == {"m1:p1": 2}


async def test_lost_after_create_on_a_repeat_drops_too(sim: Sim) -> None:
    first = (await sim.create()).json
    await sim.configure(lost_after_create=1.0)
    with pytest.raises(aiohttp.ClientConnectionError):
        await sim.create()
    assert (await sim.ledger())["by_request_id"] == {"m1:p1": [first["id"]]}


async def test_faults_apply_to_reads_only_when_enabled(sim: Sim) -> None:
    link = (await sim.create()).json
    await sim.configure(error_5xx=1.0)
    assert (await sim.fetch(link["id"])).status == 200
    assert (await sim.call("GET", LINKS)).status == 200
    await sim.configure(faults_on_reads=True)
    assert (await sim.fetch(link["id"])).status >= 500
    assert (await sim.call("GET", LINKS)).status >= 500
    assert (await sim.call("POST", f"{LINKS}/{link['id']}/cancel")).status == 204  # never on cancel
    await sim.configure(error_5xx=0.0, lost_after_create=1.0)
    with pytest.raises(aiohttp.ClientConnectionError):
        await sim.fetch(link["id"])


async def test_seed_makes_fault_decisions_reproducible(make_sim: MakeSim) -> None:
    async def run(s: Sim) -> list[int]:
        return [(await s.create(body(request_id=f"r{i}"))).status for i in range(30)]

    a = await make_sim(error_5xx=0.3, throttle_429=0.3, seed=42)
    b = await make_sim(error_5xx=0.3, throttle_429=0.3, seed=42)
    first = await run(a)
    assert first == await run(b) and len(set(first)) > 2
    await a.control("POST", "/reset", {})  # reset re-seeds
    assert await run(a) == first


# ------------------------------------------------------------------ control surface


async def test_config_endpoint_validates_and_masks_the_secret(sim: Sim) -> None:
    for patch in (
        {"error_5xx": 0.7, "throttle_429": 0.7}, {"nonsense": 1}, {"error_5xx": 2}, {"replay_status": 202},
        {"initial_state": "processed"}, {"link_base_url": "http://x/"}, {"token_ttl_s": 0},
        {"min_amount_gbp": 10, "max_amount_gbp": 5}, {"webhook_retries": 11}, {"faults": 1}, [1],
    ):
        answer = await sim.call("POST", f"{SIM}/config", headers={}, json=patch)
        assert answer.status == 400 and answer.json["error"], patch
    cfg = await sim.configure(faults={"slow": 0.25}, latency_ms=5, webhook_signing_secret="wsk_x")
    assert cfg["faults"]["slow"] == 0.25 and cfg["latency_ms"] == 5
    assert cfg["webhook_signing_secret"] == "***"
    await sim.configure(**{k: v for k, v in cfg.items() if k != "faults"})  # read-modify-write keeps it
    assert sim.sim.config.webhook_signing_secret == "wsk_x"
    assert (await sim.control("GET", "/config")) == cfg


def test_every_config_field_is_settable() -> None:
    fields = {f.name for f in dataclasses.fields(RevolutSimConfig)} - {"faults"}
    assert fields == set(_CONFIG_CHECKS)


async def test_stats_and_reset(sim: Sim) -> None:
    await sim.create()
    await sim.create(body(amount=0))
    await sim.call("GET", LINKS)
    await sim.advance(100)
    stats = await sim.stats()
    assert stats["requests"] == {"token": 1, "create": 2, "list": 1}
    assert stats["statuses"] == {"200": 2, "201": 1, "400": 1}
    assert stats["events"]["links_created"] == 1 and stats["links"] == 1 and stats["live_tokens"] == 1
    await sim.configure(error_5xx=0.5)
    await sim.control("POST", "/reset", {"config": True})
    assert await sim.ledger() == {"links": 0, "by_request_id": {}, "duplicate_request_ids": {}, "by_state": {}}
    assert (await sim.stats())["requests"] == {}
    assert (await sim.control("GET", "/config"))["faults"]["error_5xx"] == 0.0
    assert (await sim.control("GET", "/clock"))["offset_s"] == 0
    assert (await sim.call("GET", LINKS)).status == 200  # tokens survive a plain reset
    await sim.control("POST", "/reset", {"tokens": True})
    assert (await sim.call("GET", LINKS)).status == 401


async def test_control_endpoints_reject_bad_bodies(sim: Sim) -> None:
    for path, payload in (("/reset", [1]), ("/clock", {"advance_s": -1}), ("/clock", {"advance_s": "1"}),
                          ("/tokens/revoke", "x")):
        answer = await sim.call("POST", SIM + path, headers={}, json=payload)
        assert answer.status == 400, path


async def test_health_unknown_route_and_no_collision_with_razorpay(sim: Sim) -> None:
    assert await sim.control("GET", "/health") == {"ok": True}
    assert_error(await sim.call("GET", f"{API}/nowhere"), 404, 3006)
    assert (await sim.call("GET", "/v1/payout-links")).status == 404  # not ours: aiohttp's plain 404
    ours = {r.canonical for r in sim.sim.make_app().router.resources()}
    razorpay = {r.canonical for r in PayoutLinkSimulator().make_app().router.resources()}
    assert all(p.startswith((API + "/", SIM + "/")) for p in ours)
    assert not ours & razorpay


# ---------------------------------------------------------------------------- webhooks


class Receiver:
    """A webhook endpoint that records every delivery and answers the statuses it is told to."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.deliveries: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()
        self.statuses = list(statuses or [])

    async def handle(self, request: web.Request) -> web.Response:
        await self.deliveries.put((dict(request.headers), await request.read()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    async def next(self) -> tuple[dict[str, str], dict[str, Any]]:
        headers, raw = await asyncio.wait_for(self.deliveries.get(), 5)
        ts = headers["Revolut-Request-Timestamp"]
        expected = "v1=" + hmac.new(SECRET.encode(), f"v1.{ts}.".encode() + raw, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["Revolut-Signature"], expected)
        assert abs(int(ts) / 1000 - time.time()) < 60
        event: dict[str, Any] = orjson.loads(raw)
        return headers, event


ReceiverFactory = Callable[..., Awaitable[tuple[Receiver, str]]]


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[ReceiverFactory]:
    servers: list[TestServer] = []

    async def factory(statuses: list[int] | None = None) -> tuple[Receiver, str]:
        rec = Receiver(statuses)
        app = web.Application()
        app.router.add_post("/hook", rec.handle)
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        return rec, str(server.make_url("/hook"))

    yield factory
    for server in servers:
        await server.close()


async def test_webhooks_are_signed_and_follow_the_lifecycle(sim: Sim, receiver: ReceiverFactory) -> None:
    rec, url = await receiver()
    await sim.configure(webhook_url=url, webhook_signing_secret=SECRET)
    link = (await sim.create()).json
    _, created = await rec.next()
    assert created["event"] == "PayoutLinkCreated" and created["data"] == link
    assert ISO_RE.fullmatch(created["timestamp"])
    await sim.call("POST", f"{LINKS}/{link['id']}/cancel")
    _, changed = await rec.next()
    assert changed["event"] == "PayoutLinkStateChanged"
    assert changed["data"] == {"id": link["id"], "request_id": "m1:p1", "old_state": "active", "new_state": "cancelled"}
    await sim.sim.drain_webhooks()
    log = (await sim.control("GET", "/webhooks"))["events"]
    assert [(e["event"], e["delivered"], e["attempts"]) for e in log] == [
        ("PayoutLinkCreated", True, 1), ("PayoutLinkStateChanged", True, 1),
    ]


async def test_webhook_retried_until_accepted(sim: Sim, receiver: ReceiverFactory) -> None:
    rec, url = await receiver([500, 503])
    await sim.configure(webhook_url=url, webhook_signing_secret=SECRET, webhook_retry_interval_s=0)
    await sim.create()
    bodies = [(await rec.next())[1] for _ in range(3)]
    assert bodies[0] == bodies[1] == bodies[2]
    await sim.sim.drain_webhooks()
    [entry] = (await sim.control("GET", "/webhooks"))["events"]
    assert entry["statuses"] == [500, 503, 200] and entry["delivered"] is True


async def test_webhook_given_up_after_its_retries(sim: Sim, receiver: ReceiverFactory) -> None:
    rec, url = await receiver([500] * 10)
    await sim.configure(webhook_url=url, webhook_signing_secret=SECRET, webhook_retry_interval_s=0, webhook_retries=1)
    await sim.create()
    await sim.sim.drain_webhooks()
    [entry] = (await sim.control("GET", "/webhooks"))["events"]
    assert entry["attempts"] == 2 and entry["delivered"] is False
    assert (await sim.stats())["events"]["webhooks_undelivered"] == 1


async def test_webhook_duplicates_and_drops(sim: Sim, receiver: ReceiverFactory) -> None:
    rec, url = await receiver()
    await sim.configure(webhook_url=url, webhook_signing_secret=SECRET, webhook_duplicate=1.0)
    await sim.create()
    (_, one), (_, two) = await rec.next(), await rec.next()
    assert one == two
    await sim.configure(webhook_duplicate=0.0, webhook_drop=1.0)
    await sim.create(body(request_id="dropped"))
    await sim.sim.drain_webhooks()
    assert rec.deliveries.empty()
    log = (await sim.control("GET", "/webhooks"))["events"]
    assert [(e["deliveries"], e["dropped"]) for e in log] == [(2, False), (1, True)]


async def test_webhook_sent_even_when_the_create_response_is_lost(sim: Sim, receiver: ReceiverFactory) -> None:
    rec, url = await receiver()
    await sim.configure(webhook_url=url, webhook_signing_secret=SECRET, lost_after_create=1.0)
    with pytest.raises(aiohttp.ClientConnectionError):
        await sim.create()
    _, event = await rec.next()
    assert event["event"] == "PayoutLinkCreated" and event["data"]["request_id"] == "m1:p1"


async def test_webhook_for_an_observed_expiry(sim: Sim, receiver: ReceiverFactory) -> None:
    rec, url = await receiver()
    link = (await sim.create(body(expiry_period="P1D"))).json
    await sim.configure(webhook_url=url, webhook_signing_secret=SECRET)
    await sim.advance(2 * 86400)
    await sim.ledger()  # any read notices the expiry
    _, event = await rec.next()
    assert event["data"] == {"id": link["id"], "request_id": "m1:p1", "old_state": "active", "new_state": "expired"}
    assert event["timestamp"] == link["expiry_date"]


# ------------------------------------------------------------------------- CLI/process


def test_cli_arguments_and_credentials(tmp_path: Path) -> None:
    args = build_arg_parser().parse_args(["--no-request-id", "--error-5xx", "0.1", "--token-ttl-s", "30",
                                          "--replay-status", "200", "--initial-state", "awaiting"])
    cfg = config_from_args(args, env={"SIM_REVOLUT_WEBHOOK_SECRET": "wsk_env"})
    assert cfg.honour_request_id is False and cfg.faults["error_5xx"] == 0.1 and cfg.token_ttl_s == 30
    assert cfg.replay_status == 200 and cfg.initial_state == "awaiting" and cfg.webhook_signing_secret == "wsk_env"
    assert config_from_args(build_arg_parser().parse_args([]), env={}).honour_request_id is True

    path = tmp_path / "creds.json"
    path.write_text(json.dumps(CREDENTIALS))
    assert load_credentials(str(path))[CLIENT]["account_ids"] == [ACCOUNT, SECOND_ACCOUNT]
    assert CLIENT in load_credentials(env={"SIM_REVOLUT_CREDENTIALS": json.dumps(CREDENTIALS)})
    assert "sim_revolut_client" in load_credentials(env={})
    with pytest.raises(ValueError) as exc:
        load_credentials(env={"SIM_REVOLUT_CREDENTIALS": json.dumps({"c": {"refresh_token": "oa_secret", "account_ids": ["x"]}})})
    assert "oa_secret" not in str(exc.value) and "'c'" in str(exc.value)


async def test_cli_prints_its_url_and_serves() -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "SIM_REVOLUT_CREDENTIALS": json.dumps(CREDENTIALS), "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streams.devkit.sims.revolut", "--port", "0", "--latency-ms", "0",
        "--log-level", "WARNING", cwd=str(root), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
        assert line.startswith(URL_LINE_PREFIX)
        url = line[len(URL_LINE_PREFIX):]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}{SIM}/health") as resp:
                assert resp.status == 200
            async with session.post(f"{url}{API}/auth/token", data=token_form()) as resp:
                token = (await resp.json())["access_token"]
            async with session.post(f"{url}{LINKS}", json=body(), headers={"Authorization": f"Bearer {token}"}) as resp:
                assert resp.status == 201
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) == 0
