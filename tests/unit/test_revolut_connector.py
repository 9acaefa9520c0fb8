"""The Revolut Business provider: transformers over recorded payloads, the token and lookup
wiring over scripted answers, and the whole provider through ``LinkCreator`` against the
in-process simulator (real HTTP on loopback, latency 0).

The recorded payloads below were captured from ``streams/devkit/sims/revolut.py`` (the
access token replaced); they are the simulator's wire format, which follows Revolut's
published one where that is documented.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio

from streams import money
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
from streams.connectors.http import AuthUnavailable
from streams.connectors.provider import CredentialError, Endpoint
from streams.connectors.revolut import (
    DEV_ACCOUNT,
    PROVIDER,
    RevolutAccount,
    RevolutAuth,
    RevolutClient,
    RevolutConnector,
)
from streams.connectors.revolut.account import parse_account
from streams.connectors.revolut.client import usable_lifetime
from streams.connectors.revolut.transformers import (
    LINKS_PATH,
    TOKEN_PATH,
    CredentialsRefused,
    NextPage,
    format_timestamp_us,
    parse_timestamp_us,
)
from streams.connectors.transport import ProviderTransport
from streams.devkit.sims.revolut import (
    DEFAULT_CREDENTIALS,
    RevolutSimConfig,
    RevolutSimulator,
    assertion_problem,
    parse_amount,
    start_server,
)
from streams.devkit.traffic import valid_request
from streams.link_creation import InDoubt, LinkCreator, RetriesExhausted, RetryPolicy

ACCOUNT = parse_account(DEV_ACCOUNT)
REF = link_reference("m_demo:run-0000001")
RECORDED_REF = "pl_0123456789abcdef0123456789abcdef"
NOW = parse_timestamp_us("2030-01-01T00:00:00Z") / 1_000_000
DAY = 86_400
FAST = RetryPolicy(max_attempts=3, max_seconds=30, backoff_base_s=0.001, backoff_max_s=0.005,
                   in_doubt_max_s=0.3)
connector = RevolutConnector(clock=lambda: NOW)


def request(currency: str = "GBP", minor: int = 12_345, n: int = 1, **fields: Any) -> dict[str, Any]:
    r = valid_request(n)
    r["amount"] = {"minor_amount": minor, "currency": currency}
    r["notify"] = {"sms": False, "email": False}  # Revolut does not notify recipients
    for key, value in fields.items():
        if value is None:
            r.pop(key, None)
        else:
            r[key] = value
    return r


def at(seconds_from_now: float) -> str:
    return format_timestamp_us(int((NOW + seconds_from_now) * 1_000_000))


def answer(name: str) -> HttpAnswer:
    status, headers, body = RECORDED[name]
    return HttpAnswer(status, headers, body)


def with_entity(name: str, **changes: Any) -> HttpAnswer:
    """A recorded create answer with some fields changed (None: removed)."""
    status, headers, body = RECORDED[name]
    entity = orjson.loads(body)
    for key, value in changes.items():
        if value is None:
            entity.pop(key, None)
        else:
            entity[key] = value
    return HttpAnswer(status, headers, orjson.dumps(entity))


def sent(reference: str = RECORDED_REF, **extra: Any) -> HttpCall:
    return HttpCall("POST", LINKS_PATH, json={"request_id": reference, **extra})


RECORDED: dict[str, tuple[int, dict[str, str], bytes]] = {
    'create_active': (201, {'Content-Type': 'application/json'},
        b'{"id":"1f5320b3-a365-433f-93ce-37d7a1668655","state":"active","created_at":"2026'
        b'-11-22T06:51:12.895174Z","updated_at":"2026-11-22T06:51:12.895174Z","counterpart'
        b'y_name":"Meera Iyer","save_counterparty":false,"request_id":"pl_0123456789abcdef'
        b'0123456789abcdef","expiry_date":"2026-11-25T06:51:12.895174Z","payout_methods":['
        b'"revolut","bank_account"],"account_id":"8f2d3a4b-6c1e-4f7a-9b0d-2e5c7a9f1b3d","a'
        b'mount":123.45,"currency":"GBP","url":"https://business.revolut.com/p/HUwxIjloBi5'
        b'","reference":"Refund for order 1"}'),
    'create_awaiting': (201, {'Content-Type': 'application/json'},
        b'{"id":"4b458827-c3ca-45bb-8b1c-497deefe8d0e","state":"awaiting","created_at":"20'
        b'26-11-22T06:51:12.896195Z","updated_at":"2026-11-22T06:51:12.896195Z","counterpa'
        b'rty_name":"Meera Iyer","save_counterparty":false,"request_id":"pl_awaiting","exp'
        b'iry_date":"2026-11-25T06:51:12.896195Z","payout_methods":["revolut","bank_accoun'
        b't"],"account_id":"8f2d3a4b-6c1e-4f7a-9b0d-2e5c7a9f1b3d","amount":123.45,"currenc'
        b'y":"GBP","reference":"Refund for order 1"}'),
    'create_failed_state': (201, {'Content-Type': 'application/json'},
        b'{"id":"e523d889-223c-473f-810b-53653cc597bf","state":"failed","created_at":"2026'
        b'-11-22T06:51:12.896542Z","updated_at":"2026-11-22T06:51:12.896542Z","counterpart'
        b'y_name":"Meera Iyer","save_counterparty":false,"request_id":"pl_failed","expiry_'
        b'date":"2026-11-25T06:51:12.896542Z","payout_methods":["revolut","bank_account"],'
        b'"account_id":"8f2d3a4b-6c1e-4f7a-9b0d-2e5c7a9f1b3d","amount":2000.0,"currency":"'
        b'GBP","reference":"Refund for order 1"}'),
    'create_replay_200': (200, {'Content-Type': 'application/json'},
        b'{"id":"1f5320b3-a365-433f-93ce-37d7a1668655","state":"active","created_at":"2026'
        b'-11-22T06:51:12.895174Z","updated_at":"2026-11-22T06:51:12.895174Z","counterpart'
        b'y_name":"Meera Iyer","save_counterparty":false,"request_id":"pl_0123456789abcdef'
        b'0123456789abcdef","expiry_date":"2026-11-25T06:51:12.895174Z","payout_methods":['
        b'"revolut","bank_account"],"account_id":"8f2d3a4b-6c1e-4f7a-9b0d-2e5c7a9f1b3d","a'
        b'mount":123.45,"currency":"GBP","url":"https://business.revolut.com/p/HUwxIjloBi5'
        b'","reference":"Refund for order 1"}'),
    'error_account_unknown': (400, {'Content-Type': 'application/json'},
        b'{"code":3000,"message":"Account \'00000000-0000-4000-8000-000000000000\' not found'
        b' for field \'account_id\'"}'),
    'error_amount_decimals': (400, {'Content-Type': 'application/json'},
        b'{"code":3000,"message":"Value \'1000.5\' is not in correct format for field \'amoun'
        b't\': JPY allows at most 0 decimal places"}'),
    'error_amount_too_small': (400, {'Content-Type': 'application/json'},
        b'{"code":3000,"message":"Value \'0.5\' is not in correct format for field \'amount\':'
        b' must be between 1 and 2500 GBP or the equivalent in GBP"}'),
    'error_counterparty_name': (400, {'Content-Type': 'application/json'},
        b'{"code":3000,"message":"Value \'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'
        b"xxxxxxxxxxxx...' is not in correct format for field 'counterparty_name': must be"
        b' a string of 1 to 100 characters"}'),
    'error_currency': (400, {'Content-Type': 'application/json'},
        b'{"code":3000,"message":"Value \'INR\' is not in correct format for field \'currency'
        b'\': currency is not supported for payout links"}'),
    'error_expiry_period': (400, {'Content-Type': 'application/json'},
        b'{"code":3000,"message":"Value \'P8D\' is not in correct format for field \'expiry_p'
        b'eriod\': must be between P1D and P7D"}'),
    'error_hostile_value': (400, {'Content-Type': 'application/json'},
        b'{"code":3000,"message":"Value \'for field \'amount\'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy'
        b"yyyyyyyyyyyy...' is not in correct format for field 'counterparty_name': must be"
        b' a string of 1 to 100 characters"}'),
    'error_insufficient_balance': (400, {'Content-Type': 'application/json'},
        b'{"code":3000,"message":"Insufficient balance on account \'8f2d3a4b-6c1e-4f7a-9b0d'
        b'-2e5c7a9f1b3d\'"}'),
    'error_reference': (400, {'Content-Type': 'application/json'},
        b'{"code":3000,"message":"Value \'rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr'
        b"rrrrrrrrrrrr...' is not in correct format for field 'reference': must be a strin"
        b'g of 1 to 100 characters"}'),
    'error_request_id_conflict': (409, {'Content-Type': 'application/json'},
        b'{"code":3010,"message":"A payout link with this \'request_id\' (pl_0123456789abcde'
        b'f0123456789abcdef) already exists with different parameters"}'),
    'error_required_currency': (400, {'Content-Type': 'application/json'},
        b'{"code":3009,"message":"Required \'currency\' is missing"}'),
    'error_server_500': (500, {'Content-Type': 'application/json'},
        b'{"code":500,"message":"Internal server error"}'),
    'error_server_502': (502, {'Content-Type': 'text/html; charset=utf-8'},
        b'<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gatew'
        b'ay</h1></center></body></html>\n'),
    'error_server_503': (503, {'Content-Type': 'application/json'},
        b'{"code":503,"message":"Service temporarily unavailable"}'),
    'error_server_504': (504, {'Content-Type': 'text/html; charset=utf-8'},
        b'<html><head><title>504 Gateway Time-out</title></head><body><center><h1>504 Gate'
        b'way Time-out</h1></center></body></html>\n'),
    'error_throttled': (429, {'Content-Type': 'application/json'},
        b'{"code":429,"message":"Too many requests"}'),
    'error_throttled_retry_after': (429, {'Content-Type': 'application/json', 'Retry-After': '1'},
        b'{"code":429,"message":"Too many requests"}'),
    'error_unauthorized': (401, {'Content-Type': 'application/json'},
        b'{"code":9001,"message":"The request should be authorized."}'),
    'list_bad_limit': (400, {'Content-Type': 'application/json'},
        b'{"code":3000,"message":"Value \'5000\' is not in correct format for field \'limit\':'
        b' must be between 1 and 1000"}'),
    'list_empty': (200, {'Content-Type': 'application/json'},
        b'[]'),
    'list_page': (200, {'Content-Type': 'application/json'},
        b'[{"id":"e523d889-223c-473f-810b-53653cc597bf","state":"failed","created_at":"202'
        b'6-11-22T06:51:12.896542Z","updated_at":"2026-11-22T06:51:12.896542Z","counterpar'
        b'ty_name":"Meera Iyer","save_counterparty":false,"request_id":"pl_failed","expiry'
        b'_date":"2026-11-25T06:51:12.896542Z","payout_methods":["revolut","bank_account"]'
        b',"account_id":"8f2d3a4b-6c1e-4f7a-9b0d-2e5c7a9f1b3d","amount":2000.0,"currency":'
        b'"GBP","reference":"Refund for order 1"},{"id":"4b458827-c3ca-45bb-8b1c-497deefe8'
        b'd0e","state":"awaiting","created_at":"2026-11-22T06:51:12.896195Z","updated_at":'
        b'"2026-11-22T06:51:12.896195Z","counterparty_name":"Meera Iyer","save_counterpart'
        b'y":false,"request_id":"pl_awaiting","expiry_date":"2026-11-25T06:51:12.896195Z",'
        b'"payout_methods":["revolut","bank_account"],"account_id":"8f2d3a4b-6c1e-4f7a-9b0'
        b'd-2e5c7a9f1b3d","amount":123.45,"currency":"GBP","reference":"Refund for order 1'
        b'"}]'),
    'token_invalid_client': (401, {'Content-Type': 'application/json'},
        b'{"error":"invalid_client","error_description":"unknown client_id"}'),
    'token_invalid_grant': (400, {'Content-Type': 'application/json'},
        b'{"error":"invalid_grant","error_description":"refresh_token is invalid, expired '
        b'or revoked"}'),
    'token_ok': (200, {'Content-Type': 'application/json'},
        b'{"access_token":"oa_sand_recorded_access_token","token_type":"bearer","expires_i'
        b'n":2399}'),
}


# --- credentials ----------------------------------------------------------------------


def test_account_parses_and_hides_its_secrets() -> None:
    assert ACCOUNT.client_id == "sim_revolut_client"
    shown = repr(ACCOUNT) + ACCOUNT.token_key
    for secret in (ACCOUNT.refresh_token, ACCOUNT.client_assertion, ACCOUNT.account_id):
        assert secret not in shown
    upper = parse_account({**DEV_ACCOUNT, "account_id": DEV_ACCOUNT["account_id"].upper()})
    assert upper.account_id == DEV_ACCOUNT["account_id"]


@pytest.mark.parametrize("raw, field", [
    ({k: v for k, v in DEV_ACCOUNT.items() if k != "client_id"}, "client_id"),
    ({**DEV_ACCOUNT, "refresh_token": ""}, "refresh_token"),
    ({**DEV_ACCOUNT, "refresh_token": "has space"}, "refresh_token"),
    ({**DEV_ACCOUNT, "client_assertion": 7}, "client_assertion"),
    ({**DEV_ACCOUNT, "client_assertion": "not-a-jwt"}, "client_assertion"),
    ({**DEV_ACCOUNT, "account_id": "acc_123"}, "account_id"),
    ({**DEV_ACCOUNT, "private_key": "-----BEGIN"}, "private_key"),
    (["not", "an", "object"], "(entry)"),
])
def test_bad_credentials_name_the_field_never_the_value(raw: Any, field: str) -> None:
    with pytest.raises(CredentialError) as caught:
        parse_account(raw)
    assert caught.value.field == field
    assert "oa_sand_sim_refresh_demo" not in str(caught.value)


def test_an_expired_client_assertion_is_refused_at_startup() -> None:
    import base64

    claims = base64.urlsafe_b64encode(b'{"sub":"c","exp":1700000000}').rstrip(b"=").decode()
    assertion = f"eyJhbGciOiJSUzI1NiJ9.{claims}.c2ln"
    with pytest.raises(CredentialError) as caught:
        parse_account({**DEV_ACCOUNT, "client_assertion": assertion}, now=1800000000)
    assert caught.value.field == "client_assertion" and "expired" in caught.value.problem
    assert parse_account({**DEV_ACCOUNT, "client_assertion": assertion}, now=1600000000)


def test_the_dev_account_is_the_simulators() -> None:
    sim_account = DEFAULT_CREDENTIALS[ACCOUNT.client_id]
    assert sim_account["refresh_token"] == ACCOUNT.refresh_token
    assert ACCOUNT.account_id in sim_account["account_ids"]
    # it passes even the simulator's strict assertion checks
    assert assertion_problem(ACCOUNT.client_assertion, ACCOUNT.client_id, NOW) is None


def test_the_provider_object() -> None:
    assert PROVIDER.name == "revolut" and PROVIDER.base_url_env == "REVOLUT_BASE_URL"
    assert PROVIDER.default_base_url == "http://127.0.0.1:8083"
    assert {"GBP", "EUR"} <= PROVIDER.currencies and "INR" not in PROVIDER.currencies
    assert isinstance(PROVIDER.parse_account(PROVIDER.dev_account), RevolutAccount)


# --- the create call --------------------------------------------------------------------


def test_create_call_maps_the_unified_request() -> None:
    r = request("GBP", 12_345, expires_at=at(3 * DAY))
    call = connector.create_call(r, REF, ACCOUNT)
    assert (call.method, call.path, call.headers, call.params) == ("POST", LINKS_PATH, {}, {})
    raw = orjson.dumps(call.json)
    assert orjson.loads(raw) == {
        "request_id": REF,
        "counterparty_name": r["customer"]["name"],
        "account_id": ACCOUNT.account_id,
        "amount": 123.45,
        "currency": "GBP",
        "reference": r["description"],
        "expiry_period": "P3D",
    }
    assert b'"amount":123.45,' in raw  # an exact JSON number, written from text
    assert len(REF) == 35 <= 40  # Revolut's request_id limit
    for secret in (ACCOUNT.refresh_token, ACCOUNT.client_assertion):
        assert secret.encode() not in raw


@pytest.mark.parametrize("currency, minor, text", [
    ("GBP", 12_345, "123.45"),
    ("EUR", 250, "2.50"),
    ("GBP", 10, "0.10"),
    ("JPY", 100_000, "100000"),  # no decimals
    ("KWD", 12_345, "12.345"),  # three decimals
    ("HUF", 10**14, "1000000000000.00"),  # the schema's largest amount, still exact
])
def test_amounts_are_exact_major_units_by_iso_exponent(currency: str, minor: int,
                                                       text: str) -> None:
    raw = orjson.dumps(connector.create_call(request(currency, minor), REF, ACCOUNT).json)
    assert f'"amount":{text},'.encode() in raw
    # what the provider reads back (the shortest round-trip of the JSON number) is exact
    assert parse_amount(orjson.loads(raw)["amount"]) == Decimal(text)
    assert money.to_minor(Decimal(text), currency) == minor


def test_reference_defaults_and_is_cut_to_revolut_limit() -> None:
    assert connector.create_call(request(description=None), REF, ACCOUNT).json[
        "reference"] == "Payout run-0000001"
    long = "d" * 255
    assert connector.create_call(request(description=long), REF, ACCOUNT).json[
        "reference"] == "d" * 100


@pytest.mark.parametrize("ahead_s, period", [
    (DAY, "P1D"), (DAY + 1, "P2D"), (3 * DAY, "P3D"), (2 * DAY + 0.5, "P3D"), (7 * DAY, "P7D"),
    (7 * DAY + 5, "P7D"),  # only if time passed since the check: never more than P7D
    (DAY - 60, "P1D"),  # ditto: never less than P1D
])
def test_expiry_period_is_whole_days_rounded_up(ahead_s: float, period: str) -> None:
    call = connector.create_call(request(expires_at=at(ahead_s)), REF, ACCOUNT)
    assert call.json["expiry_period"] == period


def test_without_expires_at_no_expiry_period_is_sent() -> None:
    assert "expiry_period" not in connector.create_call(request(), REF, ACCOUNT).json


# --- what Revolut can't honour ------------------------------------------------------------


@pytest.mark.parametrize("fields, field", [
    ({"amount": {"minor_amount": 100, "currency": "INR"}}, "amount.currency"),
    ({"amount": {"minor_amount": 100, "currency": "JPY"}}, "amount.currency"),
    ({"destination_currency": "USD"}, "destination_currency"),
    ({"expires_at": at(DAY - 1)}, "expires_at"),
    ({"expires_at": at(-DAY)}, "expires_at"),
    ({"expires_at": at(7 * DAY + 1)}, "expires_at"),
    ({"expires_at": "2030-01-01 00:00:00"}, "expires_at"),
])
def test_unsupported_names_the_field(fields: dict[str, Any], field: str) -> None:
    r = request(**fields)
    if "amount" in fields:
        r["amount"] = fields["amount"]
    out = connector.unsupported(r, NOW)
    assert isinstance(out, Unsupported) and out.field == field


@pytest.mark.parametrize("fields", [
    {}, {"destination_currency": "GBP"}, {"expires_at": at(DAY)}, {"expires_at": at(7 * DAY)},
    {"expires_at": "2030-01-04T05:30:00+05:30"},
])
def test_supported_requests_pass(fields: dict[str, Any]) -> None:
    assert connector.unsupported(request(**fields), NOW) is None


def test_timestamps_parse_every_rfc3339_spelling() -> None:
    base = parse_timestamp_us("2030-01-01T00:00:00Z")
    assert parse_timestamp_us("2030-01-01t00:00:00z") == base
    assert parse_timestamp_us("2030-01-01T05:30:00+05:30") == base
    assert parse_timestamp_us("2030-01-01T00:00:00." + "9" * 10_000 + "Z") == base + 999_999
    assert format_timestamp_us(base + 1) == "2030-01-01T00:00:00.000001Z"
    for bad in ("2030-02-30T00:00:00Z", "2030-01-01T24:00:00Z", "2030-01-01", "x"):
        with pytest.raises(ValueError):
            parse_timestamp_us(bad)


# --- reading a create's answer -------------------------------------------------------------


def test_created_active_link() -> None:
    assert connector.read_create(answer("create_active"), sent()) == LinkCreated(
        "1f5320b3-a365-433f-93ce-37d7a1668655", "https://business.revolut.com/p/HUwxIjloBi5",
        "active", "REQUIRES_PAYOUT_METHOD_DATA", "2026-11-25T06:51:12.895174Z")


def test_an_idempotent_replay_answered_200_is_the_same_link() -> None:
    assert connector.read_create(answer("create_replay_200"), sent()) == connector.read_create(
        answer("create_active"), sent())


def test_a_link_awaiting_approval_exists_without_a_url() -> None:
    out = connector.read_create(answer("create_awaiting"))
    assert out == LinkCreated("4b458827-c3ca-45bb-8b1c-497deefe8d0e", None, "awaiting",
                              "PENDING", "2026-11-25T06:51:12.896195Z")


@pytest.mark.parametrize("state, payout_status", [
    ("created", "PENDING"), ("awaiting", "PENDING"), ("active", "REQUIRES_PAYOUT_METHOD_DATA"),
    ("processing", "INITIATED"), ("processed", "SUCCESS"), ("expired", "EXPIRED"),
    ("cancelled", "CANCELLED"), ("failed", "FAILED"), ("some_new_state", "PENDING"),
])
def test_every_state_maps_to_a_payout_status(state: str, payout_status: str) -> None:
    out = connector.read_create(with_entity("create_active", state=state))
    assert isinstance(out, LinkCreated)
    assert (out.connector_status, out.payout_status) == (state, payout_status)


def test_a_link_born_failed_is_still_a_link() -> None:
    out = connector.read_create(answer("create_failed_state"))
    assert isinstance(out, LinkCreated) and out.payout_status == "FAILED" and out.url is None


@pytest.mark.parametrize("bad_url", [
    "javascript:alert(1)", "https://x.example/a b", "https://x.example/<script>", 42, "",
])
def test_an_unusable_url_is_never_handed_on(bad_url: Any) -> None:
    out = connector.read_create(with_entity("create_active", url=bad_url))
    assert isinstance(out, LinkCreated) and out.url is None


def test_expiry_falls_back_to_created_at_plus_the_period_asked() -> None:
    no_expiry = with_entity("create_active", expiry_date="soon")
    assert connector.read_create(no_expiry, sent(expiry_period="P3D")).expires_at == (
        "2026-11-25T06:51:12.895174Z")
    assert connector.read_create(no_expiry, sent()).expires_at == "2026-11-29T06:51:12.895174Z"
    assert connector.read_create(no_expiry).expires_at is None  # we don't know what was asked
    offset = with_entity("create_active", expiry_date="2026-11-25T07:51:12+01:00")
    assert connector.read_create(offset).expires_at == "2026-11-25T06:51:12.000000Z"


@pytest.mark.parametrize("status, body", [
    (201, b"not json"), (201, b"[]"), (201, b'{"state":"active"}'), (201, b'{"id":7}'),
    (201, b'{"id":"has space"}'), (200, b""), (202, b'{"id":"x"}'), (204, b""),
])
def test_an_unreadable_success_is_unknown_never_a_failure(status: int, body: bytes) -> None:
    out = connector.read_create(HttpAnswer(status, {}, body), sent())
    assert isinstance(out, Unknown) and out.status_code == status


def test_an_answer_about_another_request_id_is_no_answer() -> None:
    assert isinstance(connector.read_create(answer("create_active"), sent("pl_other")), Unknown)


@pytest.mark.parametrize("name, code, field, provider_field", [
    ("error_amount_too_small", "provider_rejected", "amount.minor_amount", "amount"),
    ("error_amount_decimals", "provider_rejected", "amount.minor_amount", "amount"),
    ("error_currency", "provider_rejected", "amount.currency", "currency"),
    ("error_required_currency", "provider_rejected", "amount.currency", "currency"),
    ("error_counterparty_name", "provider_rejected", "customer.name", "counterparty_name"),
    ("error_reference", "provider_rejected", "description", "reference"),
    ("error_expiry_period", "provider_rejected", "expires_at", "expiry_period"),
    ("error_account_unknown", "provider_rejected", None, "account_id"),
    ("error_hostile_value", "provider_rejected", "customer.name", "counterparty_name"),
    ("error_insufficient_balance", "insufficient_funds", None, None),
])
def test_validation_errors_are_definite_and_name_our_field(
        name: str, code: str, field: str | None, provider_field: str | None) -> None:
    out = connector.read_create(answer(name))
    assert isinstance(out, Rejected) and out.status_code == 400
    assert (out.code, out.field) == (code, field)
    recorded = orjson.loads(RECORDED[name][2])
    assert out.message == recorded["message"]
    assert out.connector_details == {"code": str(recorded["code"]), "message": recorded["message"],
                                     "reason": None, "field": provider_field}


def test_an_error_body_we_cannot_read_is_still_a_definite_400() -> None:
    out = connector.read_create(HttpAnswer(400, {}, b"<html>bad request</html>"))
    assert isinstance(out, Rejected) and (out.code, out.field) == ("provider_rejected", None)
    assert out.message == "HTTP 400 from revolut"
    huge = orjson.dumps({"code": "x" * 10, "message": "m" * 100_000})
    out = connector.read_create(HttpAnswer(422, {}, huge))
    assert isinstance(out, Rejected) and len(out.message) <= 501
    assert out.connector_details["code"] is None


def test_a_reused_request_id_means_a_link_exists_so_look_it_up() -> None:
    assert connector.read_create(answer("error_request_id_conflict")) == Unknown(
        "request_id_conflict", 409)


@pytest.mark.parametrize("status", [401, 403])
def test_authentication_refusals_are_definite(status: int) -> None:
    status_, headers, body = RECORDED["error_unauthorized"]
    out = connector.read_create(HttpAnswer(status, headers, body))
    assert isinstance(out, Rejected) and out.code == "provider_authentication_failed"
    assert out.field is None and out.status_code == status


@pytest.mark.parametrize("headers, wait", [
    ({}, None), ({"Retry-After": "1"}, 1.0), ({"retry-after": "100000"}, 300.0),
    ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, None), ({"Retry-After": "nan"}, None),
    ({"Retry-After": "-5"}, 0.0),
])
def test_throttling_is_transient_with_a_capped_retry_after(headers: dict[str, str],
                                                          wait: float | None) -> None:
    assert connector.read_create(HttpAnswer(429, headers, RECORDED["error_throttled"][2])) == (
        Transient("throttled", 429, wait))
    assert connector.read_create(answer("error_throttled_retry_after")) == Transient(
        "throttled", 429, 1.0)


@pytest.mark.parametrize("name", ["error_server_500", "error_server_502", "error_server_503",
                                  "error_server_504"])
def test_server_errors_on_a_create_are_unknown(name: str) -> None:
    out = connector.read_create(answer(name))
    assert out == Unknown("provider_unavailable", RECORDED[name][0])


@pytest.mark.parametrize("status", [100, 302, 307])
def test_answers_we_do_not_understand_are_unknown(status: int) -> None:
    assert isinstance(connector.read_create(HttpAnswer(status, {}, b"")), Unknown)


# --- reading list pages -------------------------------------------------------------------


def page(*items: dict[str, Any]) -> HttpAnswer:
    return HttpAnswer(200, {"Content-Type": "application/json"}, orjson.dumps(list(items)))


def item(n: int, request_id: str | None = None, **extra: Any) -> dict[str, Any]:
    entity = {"id": f"00000000-0000-4000-8000-{n:012d}", "state": "active",
              "created_at": format_timestamp_us(n * 1_000_000),
              "expiry_date": format_timestamp_us((n + 7 * DAY) * 1_000_000),
              "url": f"https://business.revolut.com/p/{n:011d}", **extra}
    if request_id is not None:
        entity["request_id"] = request_id
    return entity


T0 = int(NOW)  # item(n) was created at n seconds since the epoch


def read_page(ans: HttpAnswer, *, not_before_s: int = 0, cursor_s: int | None = None) -> Any:
    return connector.read_lookup_page(
        ans, REF, not_before_us=not_before_s * 1_000_000,
        created_before_us=None if cursor_s is None else cursor_s * 1_000_000)


def test_lookup_call_pages_the_list() -> None:
    first = connector.lookup_call(REF, ACCOUNT)
    assert (first.method, first.path, dict(first.params)) == ("GET", LINKS_PATH,
                                                              {"limit": "1000"})
    later = connector.lookup_call(REF, ACCOUNT, T0 * 1_000_000 + 5)
    assert later.params["created_before"] == "2030-01-01T00:00:00.000005Z"


def test_the_recorded_list_is_read() -> None:
    listed = orjson.loads(RECORDED["list_page"][2])
    ref = listed[-1]["request_id"]
    out = connector.read_lookup_page(answer("list_page"), ref, not_before_us=0)
    assert isinstance(out, LinkCreated) and out.connector_payout_id == listed[-1]["id"]
    assert connector.read_lookup_page(answer("list_empty"), ref, not_before_us=0) == NotFound()


def test_lookup_finds_our_request_id_only() -> None:
    ours = item(T0 - 5, REF)
    out = read_page(page(item(T0, "pl_other"), item(T0 - 1), ours, item(T0 - 9, "pl_x")))
    assert isinstance(out, LinkCreated) and out.connector_payout_id == ours["id"]
    assert out.url == ours["url"] and out.expires_at == ours["expiry_date"]


def test_should_there_be_two_links_the_oldest_is_reported() -> None:
    out = read_page(page(item(T0, REF), item(T0 - 3, REF), item(T0 - 9)))
    assert isinstance(out, LinkCreated) and out.connector_payout_id == item(T0 - 3)["id"]


def test_a_page_within_the_window_leads_to_the_next() -> None:
    ans = page(item(T0), item(T0 - 2), item(T0 - 1))
    assert read_page(ans, not_before_s=T0 - 100) == NextPage((T0 - 2) * 1_000_000)
    assert read_page(ans, not_before_s=T0 - 100, cursor_s=T0 + 1) == NextPage(
        (T0 - 2) * 1_000_000)


def test_absence_is_proved_by_the_window_or_the_list_end_only() -> None:
    assert read_page(page(), not_before_s=T0) == NotFound()
    assert read_page(page(item(T0), item(T0 - 101)), not_before_s=T0 - 100) == NotFound()
    # a short page is not taken as the end: the provider may cap pages below our limit
    assert isinstance(read_page(page(item(T0)), not_before_s=T0 - 100), NextPage)


def test_a_provider_ignoring_created_before_cannot_loop_the_lookup() -> None:
    out = read_page(page(item(T0), item(T0 - 1)), not_before_s=T0 - 100, cursor_s=T0 - 1)
    assert out == Transient("lookup_not_progressing", 200)


@pytest.mark.parametrize("ans", [
    HttpAnswer(200, {}, b"not json"), HttpAnswer(200, {}, b'{"items":[]}'),
    HttpAnswer(200, {}, b"[1,2]"), page({"id": "x"}),  # no timestamp: can't page on
    page(item(T0, REF, id="bad id")),  # ours, but unreadable
])
def test_an_unreadable_page_proves_nothing(ans: HttpAnswer) -> None:
    out = read_page(ans, not_before_s=T0 - 100)
    assert isinstance(out, Transient)


@pytest.mark.parametrize("ans, reason", [
    (answer("error_unauthorized"), "lookup_refused:provider_authentication_failed"),
    (HttpAnswer(403, {}, b"{}"), "lookup_refused:provider_authentication_failed"),
    (answer("list_bad_limit"), "lookup_refused:provider_rejected"),
    (HttpAnswer(404, {}, b"{}"), "lookup_refused:provider_rejected"),
    (answer("error_throttled_retry_after"), "throttled"),
    (answer("error_server_502"), "lookup_failed"),
    (answer("error_server_500"), "lookup_failed"),
    (HttpAnswer(409, {}, b"{}"), "lookup_refused:provider_rejected"),
])
def test_any_error_on_a_lookup_is_transient_never_rejected(ans: HttpAnswer, reason: str) -> None:
    out = read_page(ans)
    assert isinstance(out, Transient) and out.reason == reason and out.status_code == ans.status


# --- the token ----------------------------------------------------------------------------


def test_token_call_is_the_refresh_flow_and_hides_its_secrets() -> None:
    call = connector.token_call(ACCOUNT)
    assert (call.method, call.path, call.json) == ("POST", TOKEN_PATH, None)
    assert dict(call.form) == {
        "grant_type": "refresh_token", "refresh_token": ACCOUNT.refresh_token,
        "client_id": ACCOUNT.client_id,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": ACCOUNT.client_assertion}
    assert ACCOUNT.refresh_token not in repr(call)
    assert ACCOUNT.client_assertion not in repr(call)


def test_token_answers() -> None:
    assert connector.read_token(answer("token_ok")) == ("oa_sand_recorded_access_token", 2399.0)
    for body, lifetime in ((b'{"access_token":"t"}', 300.0),
                           (b'{"access_token":"t","expires_in":"2399"}', 300.0),
                           (b'{"access_token":"t","expires_in":true}', 300.0),
                           (b'{"access_token":"t","expires_in":1e12}', 86400.0)):
        assert connector.read_token(HttpAnswer(200, {}, body)) == ("t", lifetime)


@pytest.mark.parametrize("name, status, error", [
    ("token_invalid_grant", 400, "invalid_grant"), ("token_invalid_client", 401, "invalid_client"),
])
def test_refused_credentials_are_definite(name: str, status: int, error: str) -> None:
    with pytest.raises(CredentialsRefused) as caught:
        connector.read_token(answer(name))
    assert (caught.value.status, caught.value.error) == (status, error)


@pytest.mark.parametrize("ans", [
    answer("error_server_503"), answer("error_server_502"), answer("error_throttled"),
    HttpAnswer(200, {}, b"nope"), HttpAnswer(200, {}, b'{"access_token":"a\\r\\nX-Evil: 1"}'),
    HttpAnswer(200, {}, b'{"access_token":""}'),
])
def test_an_unavailable_token_endpoint_is_not_a_refusal(ans: HttpAnswer) -> None:
    with pytest.raises(AuthUnavailable):
        connector.read_token(ans)


def test_tokens_are_renewed_ahead_of_expiry() -> None:
    assert usable_lifetime(2399) == 2099
    assert usable_lifetime(40) == 30


# --- the client over scripted answers ---------------------------------------------------


Reply = HttpAnswer | Transient | Unknown | Callable[[HttpCall, str | None], Any]


class Script:
    """A transport answering by call kind from queues, recording every call."""

    def __init__(self, **queues: list[Reply]) -> None:
        self.queues = {kind: list(replies) for kind, replies in queues.items()}
        self.calls: list[tuple[str, str | None, HttpCall]] = []

    async def send(self, call: HttpCall, headers: Any) -> HttpAnswer | Transient | Unknown:
        kind = ("token" if call.path == TOKEN_PATH
                else "create" if call.method == "POST" else "list")
        auth = dict(headers).get("Authorization")
        self.calls.append((kind, auth, call))
        await asyncio.sleep(0)  # let concurrent callers interleave, as on a socket
        reply = self.queues[kind].pop(0)
        if not callable(reply):
            return reply
        result = reply(call, auth)
        return await result if inspect.isawaitable(result) else result

    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.calls]

    async def aclose(self) -> None:
        return None


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def token(value: str, expires_in: int = 2399) -> HttpAnswer:
    return HttpAnswer(200, {}, orjson.dumps({"access_token": value, "token_type": "bearer",
                                             "expires_in": expires_in}))


def scripted(script: Script, *, clock: Clock | None = None, wall: Callable[[], float] = lambda: NOW,
             **kw: Any) -> RevolutClient:
    auth = RevolutAuth(script, connector, clock=clock or Clock())  # type: ignore[arg-type]
    return RevolutClient(script, connector, auth, clock=wall, **kw)  # type: ignore[arg-type]


CREATE = connector.create_call(request(), RECORDED_REF, ACCOUNT)
UNAUTHORIZED = answer("error_unauthorized")


async def test_an_expired_token_is_renewed_and_the_call_sent_once_more() -> None:
    script = Script(token=[token("A"), token("B")],
                    create=[UNAUTHORIZED, answer("create_active")])
    client = scripted(script)
    out = await client.create(CREATE, ACCOUNT)
    assert isinstance(out, LinkCreated)
    assert [(k, a) for k, a, _ in script.calls] == [
        ("token", None), ("create", "Bearer A"), ("token", None), ("create", "Bearer B")]


async def test_a_fresh_token_refused_too_is_a_definite_authentication_failure() -> None:
    script = Script(token=[token("A"), token("B")], create=[UNAUTHORIZED, UNAUTHORIZED])
    out = await scripted(script).create(CREATE, ACCOUNT)
    assert isinstance(out, Rejected) and out.code == "provider_authentication_failed"
    assert script.kinds() == ["token", "create", "token", "create"]  # no hammering


async def test_a_burst_on_an_empty_cache_fetches_one_token() -> None:
    script = Script(token=[token("A")], create=[answer("create_active")] * 20)
    client = scripted(script)
    outs = await asyncio.gather(*(client.create(CREATE, ACCOUNT) for _ in range(20)))
    assert all(isinstance(o, LinkCreated) for o in outs)
    assert script.kinds().count("token") == 1 and client.auth.cache.fetches == 1


async def test_calls_refused_on_one_expired_token_renew_it_once() -> None:
    """A 401 forgets the token that call was sent with, not the one renewed meanwhile."""
    def by_token(call: HttpCall, auth: str | None) -> HttpAnswer:
        return UNAUTHORIZED if auth == "Bearer A" else answer("create_active")

    script = Script(token=[token("A"), token("B")], create=[by_token] * 20)
    client = scripted(script)
    outs = await asyncio.gather(*(client.create(CREATE, ACCOUNT) for _ in range(10)))
    assert all(isinstance(o, LinkCreated) for o in outs)
    assert script.kinds().count("token") == 2

    # a call still in flight on the old token is refused after the renewal
    release = asyncio.Event()

    async def late(call: HttpCall, auth: str | None) -> HttpAnswer:
        await release.wait()
        return UNAUTHORIZED

    script = Script(token=[token("A"), token("B")],
                    create=[answer("create_active"), late, UNAUTHORIZED, by_token, by_token])
    client = scripted(script)
    await client.create(CREATE, ACCOUNT)  # the cache holds A
    in_flight = asyncio.create_task(client.create(CREATE, ACCOUNT))
    while len(script.calls) < 3:  # token A, the first create, the one now in flight
        await asyncio.sleep(0)
    assert isinstance(await client.create(CREATE, ACCOUNT), LinkCreated)  # 401 → B → 201
    release.set()
    assert isinstance(await in_flight, LinkCreated)  # 401 on A → re-sent with B, kept
    assert script.kinds().count("token") == 2


async def test_a_token_is_renewed_before_it_expires() -> None:
    clock = Clock()
    script = Script(token=[token("A"), token("B")], create=[answer("create_active")] * 3)
    client = scripted(script, clock=clock)
    await client.create(CREATE, ACCOUNT)
    clock.now += usable_lifetime(2399) - 1
    await client.create(CREATE, ACCOUNT)
    clock.now += 2  # five minutes before Revolut would expire it
    await client.create(CREATE, ACCOUNT)
    assert [a for k, a, _ in script.calls if k == "create"] == ["Bearer A", "Bearer A",
                                                                 "Bearer B"]


@pytest.mark.parametrize("failure", [
    answer("error_server_503"), answer("error_server_504"), Unknown("no_answer:ReadTimeout"),
    Transient("not_sent:ConnectError"), answer("error_throttled"),
])
async def test_a_failing_token_endpoint_is_transient_and_nothing_is_sent(failure: Any) -> None:
    script = Script(token=[failure])
    out = await scripted(script).create(CREATE, ACCOUNT)
    assert isinstance(out, Transient) and out.reason.startswith("auth_unavailable:")
    assert script.kinds() == ["token"]


async def test_callers_behind_a_failed_token_fetch_do_not_wait_their_own_timeout() -> None:
    clock = Clock()
    script = Script(token=[answer("error_server_503"), token("A")],
                    create=[answer("create_active")])
    client = scripted(script, clock=clock)
    outs = await asyncio.gather(*(client.create(CREATE, ACCOUNT) for _ in range(5)))
    assert all(isinstance(o, Transient) for o in outs) and script.kinds() == ["token"]
    clock.now += 1.5  # after the hold, the endpoint is asked again
    assert isinstance(await client.create(CREATE, ACCOUNT), LinkCreated)


async def test_refused_credentials_fail_a_create_and_never_a_lookup(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    script = Script(token=[answer("token_invalid_grant")])
    client = scripted(script)
    out = await client.create(CREATE, ACCOUNT)
    assert isinstance(out, Rejected) and out.code == "provider_authentication_failed"
    assert out.status_code == 400 and out.connector_details["code"] == "invalid_grant"
    looked = await client.lookup(RECORDED_REF, ACCOUNT)
    assert looked == Transient("lookup_refused:provider_authentication_failed", 400)
    assert script.kinds() == ["token"]  # the lookup came within the hold: no second ask
    for secret in (ACCOUNT.refresh_token, ACCOUNT.client_assertion):
        assert secret not in caplog.text and secret not in repr(out)


async def test_a_lookup_that_gets_no_answer_is_transient() -> None:
    script = Script(token=[token("A")], list=[Unknown("no_answer:ReadTimeout")])
    assert await scripted(script).lookup(REF, ACCOUNT) == Transient(
        "lookup_no_answer:ReadTimeout", None)


async def test_a_lookup_after_our_own_send_looks_back_to_it_only() -> None:
    """Without a filter by request_id, the window bounds the scan: since this worker sent
    the create, the link can't be older than that send (less clock skew)."""
    wall = Clock(NOW)
    old_page = page(item(T0 - 200), item(T0 - 300))
    script = Script(token=[token("A")], create=[Unknown("no_answer:ReadTimeout")],
                    list=[old_page, old_page, page()])
    client = scripted(script, wall=wall)
    ref = CREATE.json["request_id"]
    assert isinstance(await client.create(CREATE, ACCOUNT), Unknown)
    assert await client.lookup(ref, ACCOUNT) == NotFound()
    assert client.list_calls == 1  # the first page already reached back past the send
    other = scripted(Script(token=[token("A")], list=[old_page, page()]), wall=wall)
    assert await other.lookup(ref, ACCOUNT) == NotFound()  # no memory: the 8-day window
    assert other.list_calls == 2


async def test_the_lookup_pages_with_the_oldest_timestamp_seen() -> None:
    script = Script(token=[token("A")], list=[
        page(item(T0 - 1), item(T0 - 2)), page(item(T0 - 3), item(T0 - 4, REF))])
    out = await scripted(script).lookup(REF, ACCOUNT)
    assert isinstance(out, LinkCreated) and out.connector_payout_id == item(T0 - 4)["id"]
    cursors = [c.params.get("created_before") for k, _, c in script.calls if k == "list"]
    assert cursors == [None, format_timestamp_us((T0 - 2) * 1_000_000)]


async def test_a_runaway_list_ends_in_doubt_not_in_absence() -> None:
    pages = [page(item(T0 - n)) for n in range(1, 6)]
    out = await scripted(Script(token=[token("A")], list=pages), max_pages=5).lookup(REF, ACCOUNT)
    assert out == Transient("lookup_window_too_large")


# --- the whole provider through LinkCreator, against the simulator -----------------------


class RecordingTransport(ProviderTransport):
    """The real transport, remembering the bytes of every JSON body it sent."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.bodies: list[bytes] = []

    async def send(self, call: HttpCall, auth_headers: Any) -> Any:
        if call.json is not None:
            self.bodies.append(orjson.dumps(call.json))
        return await super().send(call, auth_headers)


class Live:
    """An in-process simulator and the clients a test made against it (closed at the end)."""

    def __init__(self, sim: RevolutSimulator, url: str) -> None:
        self.sim, self.url = sim, url
        self.clients: list[RevolutClient] = []

    def client(self, *, read_timeout_s: float = 5.0, **kw: Any) -> RevolutClient:
        transport = RecordingTransport(self.url, connect_timeout_s=1, read_timeout_s=read_timeout_s,
                                       max_connections=16)
        client = RevolutClient(transport, PROVIDER.transformers,
                               RevolutAuth(transport, PROVIDER.transformers), **kw)
        self.clients.append(client)
        return client

    def creator(self, client: RevolutClient | None = None, policy: RetryPolicy = FAST) -> LinkCreator:
        return LinkCreator(PROVIDER, client or self.client(), policy)

    async def control(self, path: str, payload: dict[str, Any]) -> Any:
        """The simulator's control API (``/_sim/revolut/...``)."""
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{self.url}/_sim/revolut{path}", json=payload) as resp:
                assert resp.status == 200, await resp.text()
                return await resp.json()

    def links_for(self, reference: str) -> list[str]:
        return self.sim.ledger()["by_request_id"].get(reference, [])


@pytest_asyncio.fixture
async def live() -> AsyncIterator[Live]:
    sim = RevolutSimulator(RevolutSimConfig(latency_ms=0, jitter_ms=0, seed=7))
    runner, port = await start_server(sim)
    env = Live(sim, f"http://127.0.0.1:{port}")
    try:
        yield env
    finally:
        for client in env.clients:
            await client.aclose()
        await runner.cleanup()


@pytest.mark.parametrize("currency, minor, major", [
    ("GBP", 12_345, "123.45"), ("EUR", 250, "2.50"), ("JPY", 100_000, "100000"),
    ("KWD", 12_345, "12.345"),
])
async def test_plain_create_with_exact_amounts(live: Live, currency: str, minor: int,
                                               major: str) -> None:
    creator = live.creator()
    result, calls = await creator.create_link(request(currency, minor), REF, ACCOUNT,
                                              lookup_first=False)
    assert isinstance(result, LinkCreated) and calls == 1
    assert result.url is not None and result.url.startswith("https://business.revolut.com/p/")
    assert (result.connector_status, result.payout_status) == ("active",
                                                               "REQUIRES_PAYOUT_METHOD_DATA")
    assert live.links_for(REF) == [result.connector_payout_id]
    entity = live.sim.links[result.connector_payout_id].entity
    assert (entity["currency"], parse_amount(entity["amount"])) == (currency, Decimal(major))
    assert f'"amount":{major},'.encode() in creator.client.transport.bodies[0]
    assert result.expires_at == entity["expiry_date"]  # P7D: Revolut's default, as reported


async def test_expires_at_becomes_the_expiry_period(live: Live) -> None:
    r = request(expires_at=format_timestamp_us(int((time.time() + 2 * DAY + 60) * 1_000_000)))
    result, _ = await live.creator().create_link(r, REF, ACCOUNT, lookup_first=False)
    assert isinstance(result, LinkCreated)
    entity = live.sim.links[result.connector_payout_id].entity
    lifetime = (parse_timestamp_us(entity["expiry_date"]) - parse_timestamp_us(
        entity["created_at"])) / 1_000_000
    assert lifetime == 3 * DAY  # rounded up: never gone before the time asked


async def test_a_token_expired_or_revoked_mid_run_is_renewed(live: Live) -> None:
    client = live.client()
    creator = live.creator(client)
    for n in (1, 2, 3):
        ref = link_reference(f"m_demo:run-{n}")
        if n == 2:  # Revolut dropped our access token
            await live.control("/tokens/revoke", {"access_tokens": True})
        if n == 3:  # Revolut's clock says the token's 40 minutes are up; ours doesn't yet
            await live.control("/clock", {"advance_s": 2400})
        result, calls = await creator.create_link(request(n=n), ref, ACCOUNT,
                                                  lookup_first=False)
        assert isinstance(result, LinkCreated) and calls == 1
        assert live.links_for(ref) == [result.connector_payout_id]
    assert client.auth.cache.fetches == 3
    assert live.sim.stats.events["auth_rejected"] == 2


async def test_lost_response_without_provider_idempotency_makes_exactly_one_link(
        live: Live) -> None:
    """The case that proves we never depend on Revolut's request_id alone: it is off, the
    link is created, the response is lost; the lookup by scan finds the link."""
    creator = live.creator()
    for n in range(2, 6):  # other links around ours
        await creator.create_link(request(n=n), link_reference(f"m_demo:other-{n}"), ACCOUNT,
                                  lookup_first=False)
    live.sim.config.apply({"honour_request_id": False, "lost_after_create": 1.0})
    result, calls = await creator.create_link(request(), REF, ACCOUNT, lookup_first=False)
    assert isinstance(result, LinkCreated) and calls == 2  # create (lost) + lookup
    assert live.links_for(REF) == [result.connector_payout_id]
    assert live.sim.ledger()["duplicate_request_ids"] == {}
    # another worker, knowing nothing of the send (a crash, a rebalance), finds it too
    again, calls = await live.creator().create_link(request(), REF, ACCOUNT, lookup_first=True)
    assert again == result and calls == 1
    assert live.links_for(REF) == [result.connector_payout_id]


async def test_timeout_before_create_is_looked_up_and_created_once(live: Live) -> None:
    live.sim.config.apply({"honour_request_id": False, "timeout_before_create": 1.0,
                           "hang_ms": 300})
    client = live.client(read_timeout_s=0.05)
    prepared = PROVIDER.prepare(request(), REF, ACCOUNT)
    assert isinstance(await client.create(prepared, ACCOUNT), Unknown)
    live.sim.config.apply({"timeout_before_create": 0.0})
    result, calls = await live.creator(client).create_link(request(), REF, ACCOUNT,
                                                           lookup_first=True)
    assert isinstance(result, LinkCreated) and calls == 2  # lookup (absent) + create
    await live.sim.wait_idle()  # the abandoned create has ended, having made nothing
    assert live.links_for(REF) == [result.connector_payout_id]


async def test_a_reused_request_id_with_other_content_resolves_to_the_existing_link(
        live: Live) -> None:
    """The same link prepared again later (a re-drive) may ask a shorter expiry_period:
    Revolut answers 409 for the reused request_id, which proves a link exists."""
    sim_now_s = time.time()
    r = request(expires_at=format_timestamp_us(int((sim_now_s + 2 * DAY + 3600) * 1e6)))
    creator = live.creator()
    first, _ = await creator.create_link(r, REF, ACCOUNT, lookup_first=False)
    two_hours_on = RevolutConnector(clock=lambda: sim_now_s + 7200).create_call(r, REF, ACCOUNT)
    assert two_hours_on.json["expiry_period"] == "P2D"
    result, calls = await creator.create_link(r, REF, ACCOUNT, lookup_first=False,
                                              prepared=two_hours_on)
    assert result == first and calls == 2  # 409 → Unknown → the lookup finds it
    assert live.sim.stats.events["request_id_conflicts"] == 1
    assert live.links_for(REF) == [first.connector_payout_id]


async def test_an_idempotent_replay_is_the_same_link(live: Live) -> None:
    live.sim.config.apply({"replay_status": 200})
    creator = live.creator()
    first, _ = await creator.create_link(request(), REF, ACCOUNT, lookup_first=False)
    second, _ = await creator.create_link(request(), REF, ACCOUNT, lookup_first=False)
    assert isinstance(first, LinkCreated) and second == first
    assert live.links_for(REF) == [first.connector_payout_id]


async def test_a_link_awaiting_approval_is_created_without_a_url(live: Live) -> None:
    live.sim.config.apply({"initial_state": "awaiting"})
    result, _ = await live.creator().create_link(request(), REF, ACCOUNT, lookup_first=False)
    assert isinstance(result, LinkCreated) and result.url is None
    assert (result.connector_status, result.payout_status) == ("awaiting", "PENDING")
    found = await live.client().lookup(REF, ACCOUNT)
    assert found == result  # and a lookup says the same: it exists, without a URL


async def test_a_validation_error_is_rejected_naming_our_field(live: Live) -> None:
    creator = live.creator()
    result, calls = await creator.create_link(request("GBP", 50), REF, ACCOUNT,
                                              lookup_first=False)
    assert isinstance(result, Rejected) and calls == 1
    assert (result.code, result.field, result.status_code) == ("provider_rejected",
                                                               "amount.minor_amount", 400)
    other_account = parse_account({**DEV_ACCOUNT,
                                   "account_id": "00000000-0000-4000-8000-000000000000"})
    result, _ = await creator.create_link(request(), REF, other_account, lookup_first=False)
    assert isinstance(result, Rejected) and (result.code, result.field) == ("provider_rejected",
                                                                            None)
    assert live.sim.ledger()["links"] == 0


async def test_revoked_consent_fails_a_new_link_but_never_one_in_doubt(live: Live) -> None:
    # the business withdrew our consent: the refresh token is revoked
    await live.control("/tokens/revoke", {"access_tokens": True, "refresh_token": True})
    result, calls = await live.creator().create_link(request(), REF, ACCOUNT, lookup_first=False)
    assert isinstance(result, Rejected) and result.code == "provider_authentication_failed"
    assert calls == 1
    # a link that may exist: the refused lookups prove nothing, so it stays in doubt
    result, _ = await live.creator().create_link(request(), REF, ACCOUNT, lookup_first=True)
    assert isinstance(result, InDoubt)
    assert live.sim.ledger()["links"] == 0


async def test_a_refused_lookup_after_an_unknown_create_is_never_a_failure(live: Live) -> None:
    live.sim.config.apply({"error_5xx": 1.0})  # creates only: nothing made, but unknown
    client = live.client()
    creator = live.creator(client, RetryPolicy(max_attempts=3, backoff_base_s=0.001,
                                               backoff_max_s=0.002, in_doubt_max_s=0.2))
    original = client.lookup

    async def refused_lookup(reference: str, account: Any, sent: Any = None) -> Any:
        await live.control("/tokens/revoke", {"access_tokens": True, "refresh_token": True})
        try:
            return await original(reference, account)
        finally:
            await live.control("/tokens/revoke", {"access_tokens": False, "refresh_token": False})

    client.lookup = refused_lookup  # type: ignore[method-assign]
    result, _ = await creator.create_link(request(), REF, ACCOUNT, lookup_first=False)
    assert isinstance(result, InDoubt)


async def test_a_down_token_endpoint_creates_nothing_and_exhausts(live: Live) -> None:
    live.sim.config.apply({"faults_on_auth": True, "error_5xx": 1.0})
    result, calls = await live.creator().create_link(request(), REF, ACCOUNT, lookup_first=False)
    assert isinstance(result, RetriesExhausted)
    assert result.last.reason.startswith("auth_unavailable:")
    assert live.sim.stats.requests.get("create", 0) == 0 and live.sim.ledger()["links"] == 0


async def test_paging_across_more_than_a_thousand_links_finds_an_older_one(live: Live) -> None:
    creator = live.creator()
    ours, _ = await creator.create_link(request(), REF, ACCOUNT, lookup_first=False)
    filler = live.client()
    for batch in range(15):
        await asyncio.gather(*(
            filler.create(PROVIDER.prepare(request(n=n), link_reference(f"m_demo:fill-{n}"),
                                           ACCOUNT), ACCOUNT)
            for n in range(batch * 100, batch * 100 + 100)))
    assert live.sim.ledger()["links"] == 1501
    fresh = live.client()  # no memory of the send: the 8-day window
    assert await fresh.lookup(REF, ACCOUNT) == ours
    assert fresh.list_calls == 2
    assert await fresh.lookup(link_reference("m_demo:never"), ACCOUNT) == NotFound()
    assert fresh.list_calls == 2 + 3  # 1000, 501, then the empty end of the list


async def test_the_lookup_stops_at_the_first_page_older_than_the_window(live: Live) -> None:
    creator = live.creator()
    for n in range(3):
        await creator.create_link(request(n=n), link_reference(f"m_demo:w-{n}"), ACCOUNT,
                                  lookup_first=False)
    nine_days_on = live.client(clock=lambda: time.time() + 9 * DAY)
    assert await nine_days_on.lookup(REF, ACCOUNT) == NotFound()
    assert nine_days_on.list_calls == 1
    today = live.client()
    assert await today.lookup(REF, ACCOUNT) == NotFound()
    assert today.list_calls == 2


async def test_the_provider_builds_a_working_client(live: Live) -> None:
    client = PROVIDER.client(Endpoint(live.url, connect_timeout_s=1, read_timeout_s=5,
                                      max_connections=4))
    live.clients.append(client)
    prepared = PROVIDER.prepare(request(), REF, ACCOUNT)
    created = await client.create(prepared, ACCOUNT)
    assert isinstance(created, LinkCreated)
    assert await client.lookup(REF, ACCOUNT) == created


@pytest.mark.parametrize("channel", ["sms", "email"])
def test_asking_revolut_to_notify_the_recipient_is_refused_naming_the_field(channel: str) -> None:
    asked = request(notify={"sms": channel == "sms", "email": channel == "email"})
    refused = PROVIDER.unsupported(asked, NOW)
    assert refused is not None and refused.field == f"notify.{channel}"


# --- account: webhook signing secrets ---------------------------------------------------


def test_webhook_signing_secrets_are_optional_and_hidden() -> None:
    base = {k: v for k, v in DEV_ACCOUNT.items() if k != "webhook_signing_secrets"}
    assert parse_account(base).webhook_signing_secrets == ()
    rotated = parse_account({**base, "webhook_signing_secrets": ["wsk_new_71", "wsk_old_03"]})
    assert rotated.webhook_signing_secrets == ("wsk_new_71", "wsk_old_03")
    assert "wsk_" not in repr(rotated)
    assert PROVIDER.webhook_secrets(rotated) == (b"wsk_new_71", b"wsk_old_03")
    assert PROVIDER.webhook_secrets(parse_account(base)) == ()


@pytest.mark.parametrize("value, field", [
    ("wsk_leak_9", "webhook_signing_secrets"),
    (["wsk_leak_9", ""], "webhook_signing_secrets[1]"),
    (["wsk leak 9"], "webhook_signing_secrets[0]"),
    ([None], "webhook_signing_secrets[0]"),
    (["wsk_leak_9"] * 9, "webhook_signing_secrets"),
])
def test_a_bad_signing_secret_names_the_field_never_the_value(value: Any, field: str) -> None:
    with pytest.raises(CredentialError) as caught:
        parse_account({**DEV_ACCOUNT, "webhook_signing_secrets": value})
    assert caught.value.field == field and "wsk_leak_9" not in str(caught.value)


def test_the_dev_account_signs_with_the_simulators_default_secret() -> None:
    assert PROVIDER.webhook_secrets(ACCOUNT) == (
        RevolutSimConfig().webhook_signing_secret.encode(),)
    assert PROVIDER.expires_links is True


# --- after creation: poll and cancel (pure) ---------------------------------------------

LINK_ID = "1f5320b3-a365-433f-93ce-37d7a1668655"
LINK = LinkRef(RECORDED_REF, LINK_ID)


def fetched(**changes: Any) -> HttpAnswer:
    """The recorded link as ``GET /payout-links/{id}`` answers it (200)."""
    reply = with_entity("create_active", **changes)
    return HttpAnswer(200, reply.headers, reply.body)


def revolut_error(status: int, code: int, message: str, **headers: str) -> HttpAnswer:
    return HttpAnswer(status, headers, orjson.dumps({"code": code, "message": message}))


def test_status_and_cancel_calls_name_the_link_in_the_path() -> None:
    call = connector.status_call(LINK)
    assert isinstance(call, HttpCall)
    assert (call.method, call.path, call.json) == ("GET", f"{LINKS_PATH}/{LINK_ID}", None)
    call = connector.cancel_call(LINK)
    assert isinstance(call, HttpCall)
    assert (call.method, call.path, call.json) == ("POST", f"{LINKS_PATH}/{LINK_ID}/cancel", None)


@pytest.mark.parametrize("bad_id", ["", "..", "../../auth/token", "a/b", "a.b", "id?x=1", "é"])
def test_an_id_that_could_not_be_revoluts_is_never_sent(bad_id: str) -> None:
    for build in (connector.status_call, connector.cancel_call):
        out = build(LinkRef(RECORDED_REF, bad_id))
        assert isinstance(out, Rejected) and out.connector_details["reason"] == "invalid_link_id"


@pytest.mark.parametrize("state", ["created", "awaiting", "active", "processing", "processed",
                                   "failed", "expired", "cancelled", "something_new"])
def test_a_polled_link_reports_its_state(state: str) -> None:
    assert connector.read_status(fetched(state=state), LINK) == StatusReport(
        state, reference=RECORDED_REF, connector_payout_id=LINK_ID)


def test_a_polled_link_is_matched_whatever_the_case_of_its_id() -> None:
    out = connector.read_status(fetched(id=LINK_ID.upper()), LINK)
    assert isinstance(out, StatusReport) and out.connector_payout_id == LINK_ID


@pytest.mark.parametrize("reply", [
    fetched(id="00000000-0000-4000-8000-000000000000"), fetched(request_id="pl_other"),
    fetched(state=None), fetched(state="Active!"), fetched(state=3),
    HttpAnswer(200, {}, b"<html>"), HttpAnswer(200, {}, b"[]"),
])
def test_a_poll_answer_we_cannot_read_proves_nothing(reply: HttpAnswer) -> None:
    assert connector.read_status(reply, LINK) == Transient("status_unreadable", 200)


def test_poll_errors_by_status_code_class() -> None:
    assert connector.read_status(revolut_error(404, 3006, "Resource not found"), LINK) == NotFound()
    for reply in (HttpAnswer(404, {}, b"<html>Not Found</html>"),  # not Revolut's own 404
                  revolut_error(400, 3000, "Value 'x' is not in correct format for field "
                                           "'payout_link_id'")):
        out = connector.read_status(reply, LINK)
        assert isinstance(out, Rejected) and out.code == "provider_rejected"
    for status in (401, 403):
        out = connector.read_status(revolut_error(status, 9001, "The request should be "
                                                                "authorized."), LINK)
        assert isinstance(out, Rejected) and out.code == "provider_authentication_failed"
    assert connector.read_status(revolut_error(429, 429, "Too many requests", **{
        "Retry-After": "1"}), LINK) == Transient("throttled", 429, 1.0)
    for status in (500, 502, 503, 504):
        assert connector.read_status(HttpAnswer(status, {}, b"<html>"), LINK) == Unknown(
            "provider_unavailable", status)
    assert connector.read_status(HttpAnswer(301, {}, b""), LINK) == Unknown("unexpected_status",
                                                                             301)


def test_a_cancel_answered_204_is_cancelled() -> None:
    assert connector.read_cancel(HttpAnswer(204, {}, b""), LINK) == Cancelled(None)


@pytest.mark.parametrize("reply, state", [
    (revolut_error(400, 3020, "Payout link in state 'processed' cannot be cancelled"),
     "processed"),  # the simulator's
    (revolut_error(400, 3020, "Payout link in state 'cancelled' cannot be cancelled"),
     "cancelled"),
    (revolut_error(400, 3020, "Not now"), None),
    (revolut_error(422, 3999, "This payout link cannot be cancelled"), None),
])
def test_a_cancel_refused_for_the_links_state_is_not_cancellable(reply: HttpAnswer,
                                                                 state: str | None) -> None:
    out = connector.read_cancel(reply, LINK)
    assert out == NotCancellable(orjson.loads(reply.body)["message"], state)


def test_cancel_errors_by_status_code_class() -> None:
    absent = connector.read_cancel(revolut_error(404, 3006, "Resource not found"), LINK)
    assert isinstance(absent, Rejected) and absent.code == "link_not_found"
    other = connector.read_cancel(revolut_error(400, 3000, "Value 'x' is not in correct format "
                                                           "for field 'payout_link_id'"), LINK)
    assert isinstance(other, Rejected) and other.code == "provider_rejected"
    refused = connector.read_cancel(UNAUTHORIZED, LINK)
    assert isinstance(refused, Rejected) and refused.code == "provider_authentication_failed"
    assert connector.read_cancel(revolut_error(429, 429, "Too many requests"), LINK) == Transient(
        "throttled", 429, None)
    for status in (500, 502, 503, 504):  # the cancel may have happened
        assert connector.read_cancel(HttpAnswer(status, {}, b""), LINK) == Unknown(
            "provider_unavailable", status)


async def test_an_expired_token_is_renewed_for_a_poll_and_a_cancel() -> None:
    script = Script(token=[token("A"), token("B"), token("C")],
                    list=[UNAUTHORIZED, fetched()],
                    create=[UNAUTHORIZED, HttpAnswer(204, {}, b"")])
    client = scripted(script)
    assert await client.status(LINK, ACCOUNT) == StatusReport("active", reference=RECORDED_REF,
                                                              connector_payout_id=LINK_ID)
    assert await client.cancel(LINK, ACCOUNT) == Cancelled(None)
    assert [(k, a) for k, a, _ in script.calls] == [
        ("token", None), ("list", "Bearer A"), ("token", None), ("list", "Bearer B"),
        ("create", "Bearer B"), ("token", None), ("create", "Bearer C")]


async def test_refused_credentials_refuse_the_poll_and_the_cancel_sending_nothing() -> None:
    refused = HttpAnswer(400, {}, orjson.dumps({"error": "invalid_grant",
                                                "error_description": "refresh token revoked"}))
    script = Script(token=[refused, refused])
    client = scripted(script)
    for out in (await client.status(LINK, ACCOUNT), await client.cancel(LINK, ACCOUNT)):
        assert isinstance(out, Rejected) and out.code == "provider_authentication_failed"
    assert set(script.kinds()) == {"token"}


async def test_the_client_polls_and_cancels_at_the_simulator(live: Live) -> None:
    client = live.client()
    created, _ = await live.creator(client).create_link(request(), REF, ACCOUNT,
                                                        lookup_first=False)
    assert isinstance(created, LinkCreated)
    link = LinkRef(REF, created.connector_payout_id)
    assert await client.status(link, ACCOUNT) == StatusReport(
        "active", reference=REF, connector_payout_id=created.connector_payout_id)
    assert await client.cancel(link, ACCOUNT) == Cancelled(None)
    polled = await client.status(link, ACCOUNT)
    assert isinstance(polled, StatusReport) and polled.connector_status == "cancelled"
    again = await client.cancel(link, ACCOUNT)
    assert again == NotCancellable("Payout link in state 'cancelled' cannot be cancelled",
                                   "cancelled")
    absent = LinkRef(REF, "00000000-0000-4000-8000-000000000000")
    assert await client.status(absent, ACCOUNT) == NotFound()
    gone = await client.cancel(absent, ACCOUNT)
    assert isinstance(gone, Rejected) and gone.code == "link_not_found"


async def test_a_claimed_link_polls_processing_and_cannot_be_cancelled(live: Live) -> None:
    client = live.client()
    created, _ = await live.creator(client).create_link(request(), REF, ACCOUNT,
                                                        lookup_first=False)
    assert isinstance(created, LinkCreated)
    link = LinkRef(REF, created.connector_payout_id)
    await live.control(f"/links/{link.connector_payout_id}/status", {"state": "processing"})
    polled = await client.status(link, ACCOUNT)
    assert isinstance(polled, StatusReport) and polled.connector_status == "processing"
    refused = await client.cancel(link, ACCOUNT)
    assert isinstance(refused, NotCancellable) and refused.connector_status == "processing"


async def test_a_revoked_token_and_faults_on_a_poll(live: Live) -> None:
    client = live.client()
    created, _ = await live.creator(client).create_link(request(), REF, ACCOUNT,
                                                        lookup_first=False)
    assert isinstance(created, LinkCreated)
    link = LinkRef(REF, created.connector_payout_id)
    await live.control("/tokens/revoke", {"access_tokens": True})
    polled = await client.status(link, ACCOUNT)  # renewed once, then answered
    assert isinstance(polled, StatusReport) and polled.connector_status == "active"
    await live.control("/config", {"faults_on_reads": True, "throttle_429": 1.0})
    throttled = await client.status(link, ACCOUNT)
    assert isinstance(throttled, Transient) and throttled.reason == "throttled"
    await live.control("/config", {"throttle_429": 0.0, "lost_after_create": 1.0})
    lost = await client.status(link, ACCOUNT)
    assert isinstance(lost, Unknown) and lost.reason.startswith("no_answer")
