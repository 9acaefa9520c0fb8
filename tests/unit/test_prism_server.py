"""Tests of the Prism-compatible server: real gRPC over localhost, latency 0.

Most tests run the server in-process on the test's event loop and call it through a
grpc.aio channel with our generated stub; the reflection tests call it with message
classes built from what the server reflects (a client that has never seen our code), and
one test runs it as a child process and talks to it with grpcio-reflection's stock client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from aiohttp import ClientSession
from google.protobuf import descriptor_database, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor_pb2 import FileDescriptorProto
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from streams.connectors.prism.gen import (
    payout_service_pb2 as pb,
    payout_service_pb2_grpc as pb_grpc,
)
from streams.devkit.sims.prism import (
    FAULT_KINDS,
    HTTP_TO_GRPC,
    PrismServerProcess,
    PrismSimConfig,
    PrismSimulator,
    grpc_code_for_http_status,
    load_credentials,
    start_control_server,
    start_grpc_server,
)

ADYEN_KEY = "adyen-secret-key-7f3a9c"
WISE_KEY = "wise-secret-key-51d0e2"
CREDENTIALS = {"adyen": {"api_key": ADYEN_KEY}, "wise": {"api_key": WISE_KEY, "key1": "wise-profile-1"}}
SECRETS = (ADYEN_KEY, WISE_KEY, "wise-profile-1")
Metadata = Sequence[tuple[str, str]]


def config_md(connector: str = "Adyen", **creds: str) -> list[tuple[str, str]]:
    creds = creds or {"api_key": ADYEN_KEY}
    return [("x-connector-config", json.dumps({"config": {connector: creds}})),
            ("x-merchant-id", "merchant_1"), ("x-request-id", "req-1")]


def legacy_md(connector: str = "adyen", auth: str = "header-key", **headers: str) -> list[tuple[str, str]]:
    headers = headers or {"x_api_key": ADYEN_KEY}
    return [("x-connector", connector), ("x-auth", auth)] + [(k.replace("_", "-"), v) for k, v in headers.items()]


def link_request(ref: str | None = "m1:p1", minor_amount: int = 1000, **overrides: Any) -> pb.PayoutServiceCreateLinkRequest:
    fields: dict[str, Any] = {
        "amount": pb.Money(minor_amount=minor_amount, currency=pb.EUR),
        "destination_currency": pb.EUR,
        "customer": pb.Customer(name="Ada Lovelace", email=pb.SecretString(value="ada@example.com"), id="cust_1"),
        "priority": pb.PayoutEnums.INSTANT,
        "webhook_url": "https://example.com/hooks/prism",
    }
    if ref is not None:
        fields["merchant_payout_id"] = ref
    fields.update(overrides)
    return pb.PayoutServiceCreateLinkRequest(**{k: v for k, v in fields.items() if v is not None})


def details(error: grpc.aio.AioRpcError, cls: type) -> Any:
    """The raw Prism error detail in ``grpc-status-details-bin``, or None."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return cls.FromString(value)
    return None


class Server:
    """A running in-process server, a channel to it and our generated stub."""

    def __init__(self, sim: PrismSimulator, server: grpc.aio.Server, channel: grpc.aio.Channel) -> None:
        self.sim, self.server, self.channel = sim, server, channel
        self.stub = pb_grpc.PayoutServiceStub(channel)

    async def create(self, request: pb.PayoutServiceCreateLinkRequest | None = None,
                     metadata: Metadata | None = None, **kw: Any) -> pb.PayoutServiceCreateLinkResponse:
        return await self.stub.CreateLink(request or link_request(), metadata=config_md() if metadata is None else metadata, **kw)

    async def get(self, metadata: Metadata | None = None, **fields: str) -> pb.PayoutServiceGetResponse:
        return await self.stub.Get(pb.PayoutServiceGetRequest(**fields), metadata=config_md() if metadata is None else metadata)

    async def void(self, connector_payout_id: str, metadata: Metadata | None = None) -> pb.PayoutServiceVoidResponse:
        return await self.stub.Void(pb.PayoutServiceVoidRequest(connector_payout_id=connector_payout_id),
                                    metadata=config_md() if metadata is None else metadata)

    async def fails(self, call: Awaitable[Any], code: grpc.StatusCode) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == code, (info.value.code(), info.value.details())
        return info.value

    def configure(self, **patch: Any) -> None:
        self.sim.config.apply(patch)
        if "seed" in patch:
            self.sim.reseed()


MakeServer = Callable[..., Awaitable[Server]]


@pytest_asyncio.fixture
async def make_server() -> AsyncIterator[MakeServer]:
    started: list[Server] = []

    async def factory(*, reflection_v1alpha: bool = False, **config: Any) -> Server:
        cfg = PrismSimConfig(latency_ms=0, jitter_ms=0)
        cfg.apply(config)
        sim = PrismSimulator(cfg, CREDENTIALS)
        server, _ = await start_grpc_server(sim, "127.0.0.1", 0, reflection_v1alpha=reflection_v1alpha)
        s = Server(sim, server, grpc.aio.insecure_channel(sim.grpc_target))
        started.append(s)
        return s

    yield factory
    for s in started:
        await s.channel.close()
        await s.server.stop(None)


@pytest_asyncio.fixture
async def srv(make_server: MakeServer) -> Server:
    return await make_server()


# ------------------------------------------------------------------------ the three RPCs


async def test_create_get_void_round_trip(srv: Server) -> None:
    created = await srv.create()
    assert created.payout_status == pb.PayoutEnums.REQUIRES_PAYOUT_METHOD_DATA
    assert re.fullmatch(r"po_[A-Za-z0-9]{24}", created.connector_payout_id)
    assert created.merchant_payout_id == "m1:p1" and created.status_code == 200
    assert not created.HasField("error")

    by_id = await srv.get(connector_payout_id=created.connector_payout_id)
    by_ref = await srv.get(merchant_payout_id="m1:p1")
    assert by_id == by_ref == pb.PayoutServiceGetResponse(
        merchant_payout_id="m1:p1", payout_status=pb.PayoutEnums.REQUIRES_PAYOUT_METHOD_DATA,
        connector_payout_id=created.connector_payout_id, status_code=200)

    voided = await srv.void(created.connector_payout_id)
    assert voided.payout_status == pb.PayoutEnums.CANCELLED
    again = await srv.void(created.connector_payout_id)  # a repeated Void answers the same
    assert again == voided
    assert (await srv.get(merchant_payout_id="m1:p1")).payout_status == pb.PayoutEnums.CANCELLED

    record = srv.sim.ledger()["records"][created.connector_payout_id]
    assert record | {"created_at": 0} == {
        "payout_id": created.connector_payout_id, "connector": "adyen", "merchant_payout_id": "m1:p1",
        "status": "CANCELLED", "minor_amount": 1000, "currency": "EUR", "destination_currency": "EUR",
        "merchant_id": "merchant_1", "tenant_id": "public", "request_id": "req-1", "customer_id": "cust_1",
        "webhook_url": "https://example.com/hooks/prism", "created_at": 0}


async def test_a_paid_out_payout_cannot_be_voided(srv: Server) -> None:
    created = await srv.create()
    srv.sim.payouts[created.connector_payout_id].status = "SUCCESS"
    err = await srv.fails(srv.void(created.connector_payout_id), grpc.StatusCode.INVALID_ARGUMENT)
    assert details(err, pb.ConnectorError).http_status_code == 400
    assert srv.sim.payouts[created.connector_payout_id].status == "SUCCESS"


async def test_get_of_an_unknown_payout_is_not_found(srv: Server) -> None:
    err = await srv.fails(srv.get(merchant_payout_id="never"), grpc.StatusCode.NOT_FOUND)
    assert details(err, pb.ConnectorError).http_status_code == 404
    await srv.fails(srv.get(connector_payout_id="po_missing"), grpc.StatusCode.NOT_FOUND)
    await srv.fails(srv.void("po_missing"), grpc.StatusCode.NOT_FOUND)


async def test_a_connector_sees_only_its_own_payouts(srv: Server) -> None:
    created = await srv.create()
    wise = config_md("Wise", api_key=WISE_KEY, key1="wise-profile-1")
    await srv.fails(srv.get(wise, connector_payout_id=created.connector_payout_id), grpc.StatusCode.NOT_FOUND)
    await srv.fails(srv.get(wise, merchant_payout_id="m1:p1"), grpc.StatusCode.NOT_FOUND)


async def test_the_connector_decides_whether_merchant_payout_id_is_echoed(srv: Server) -> None:
    srv.configure(echo_merchant_payout_id=False, initial_status="REQUIRES_FULFILLMENT")
    created = await srv.create()
    assert not created.HasField("merchant_payout_id")
    assert created.payout_status == pb.PayoutEnums.REQUIRES_FULFILLMENT


async def test_request_validation(srv: Server) -> None:
    err = await srv.fails(srv.create(link_request(amount=None)), grpc.StatusCode.INVALID_ARGUMENT)
    assert err.details() == "Missing required field: amount"
    assert details(err, pb.IntegrationError).error_code == "MISSING_REQUIRED_FIELD"
    err = await srv.fails(srv.create(link_request(destination_currency=pb.CURRENCY_UNSPECIFIED)),
                          grpc.StatusCode.INVALID_ARGUMENT)
    assert err.details() == "Currency Unspecified is not supported"
    # the connector refuses a non-positive amount: its 400, with its error in the trailer
    err = await srv.fails(srv.create(link_request(minor_amount=0)), grpc.StatusCode.INVALID_ARGUMENT)
    detail = details(err, pb.ConnectorError)
    assert detail.http_status_code == 400 and detail.error_info.connector_details.code == "invalid_amount"
    err = await srv.fails(srv.stub.Void(pb.PayoutServiceVoidRequest(), metadata=config_md()),
                          grpc.StatusCode.INVALID_ARGUMENT)
    assert err.details() == "Missing required field: connector_payout_id"
    await srv.fails(srv.get(), grpc.StatusCode.INVALID_ARGUMENT)
    assert srv.sim.ledger()["payouts"] == 0


async def test_rpcs_we_do_not_serve_are_unimplemented(srv: Server) -> None:
    create = srv.channel.unary_unary("/types.PayoutService/Create")
    await srv.fails(create(b"", metadata=config_md()), grpc.StatusCode.UNIMPLEMENTED)


async def test_grpc_health_reports_serving(srv: Server) -> None:
    stub = health_pb2_grpc.HealthStub(srv.channel)
    for service in ("", "types.PayoutService"):
        answer = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


# --------------------------------------------------------------------------- metadata


async def test_x_request_id_is_echoed_or_generated(srv: Server) -> None:
    call = srv.stub.CreateLink(link_request(), metadata=config_md())
    await call
    assert ("x-request-id", "req-1") in tuple(await call.initial_metadata())
    md = [kv for kv in config_md() if kv[0] != "x-request-id"]
    call = srv.stub.CreateLink(link_request("m1:p2"), metadata=md)
    await call
    generated = dict(await call.initial_metadata())["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", generated)
    assert srv.sim.ledger()["records"][(await srv.get(merchant_payout_id="m1:p2")).connector_payout_id][
        "request_id"] == generated
    # echoed on errors too
    call = srv.stub.CreateLink(link_request(), metadata=[("x-request-id", "req-9")])
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert ("x-request-id", "req-9") in tuple(info.value.initial_metadata())


async def test_legacy_headers_and_the_deprecated_connector_auth_header(srv: Server) -> None:
    assert (await srv.create(metadata=legacy_md())).connector_payout_id
    wise = legacy_md("wise", "body-key", x_api_key=WISE_KEY, x_key1="wise-profile-1")
    assert (await srv.create(link_request("m1:p2"), metadata=wise)).connector_payout_id
    auth = [("x-connector-auth", json.dumps({"Adyen": {"api_key": ADYEN_KEY}}))]
    assert (await srv.create(link_request("m1:p3"), metadata=auth)).connector_payout_id
    records = srv.sim.ledger()["records"].values()
    assert sorted((r["connector"], r["merchant_id"], r["tenant_id"]) for r in records) == [
        ("adyen", "DefaultMerchantId", "public"), ("adyen", "DefaultMerchantId", "public"),
        ("wise", "DefaultMerchantId", "public")]


async def test_the_config_header_wins_over_legacy_headers(srv: Server) -> None:
    # x-connector names an unsupported connector and x-api-key is wrong: both ignored
    md = config_md() + [("x-connector", "stripe"), ("x-auth", "header-key"), ("x-api-key", "wrong"),
                        ("x-tenant-id", "tenant_7")]
    created = await srv.create(metadata=md)
    record = srv.sim.ledger()["records"][created.connector_payout_id]
    assert (record["connector"], record["tenant_id"]) == ("adyen", "tenant_7")
    # ... and its wrong credentials are not rescued by correct legacy ones
    md = config_md(api_key="wrong") + legacy_md()
    err = await srv.fails(srv.create(link_request("m1:p2"), metadata=md), grpc.StatusCode.UNAUTHENTICATED)
    assert details(err, pb.ConnectorError).http_status_code == 401
    # the config header wins over the deprecated x-connector-auth as well
    md = config_md() + [("x-connector-auth", json.dumps({"Stripe": {"api_key": "sk"}}))]
    assert (await srv.create(link_request("m1:p3"), metadata=md)).connector_payout_id


@pytest.mark.parametrize(("metadata", "message"), [
    ([], "Missing required field: x-connector"),
    ([("x-connector", "adyen")], "Missing required field: x-auth"),
    ([("x-connector", "adyen"), ("x-auth", "header-key")], "Missing required field: x-api-key"),
    ([("x-connector", "wise"), ("x-auth", "body-key"), ("x-api-key", WISE_KEY)], "Missing required field: x-key1"),
    ([("x-connector", "adyen"), ("x-auth", "certificate-auth"), ("x-api-key", ADYEN_KEY)],
     "Invalid auth type: certificate-auth"),
    ([("x-connector", "Adyen"), ("x-auth", "header-key"), ("x-api-key", ADYEN_KEY)], "Invalid connector: Adyen"),
    ([("x-connector", "paypal"), ("x-auth", "header-key"), ("x-api-key", ADYEN_KEY)], "Invalid connector: paypal"),
    ([("x-connector-config", "{not json " + ADYEN_KEY)], "Failed to parse X-Connector-Config"),
    ([("x-connector-config", json.dumps({"Adyen": {"api_key": ADYEN_KEY}}))], "Failed to parse X-Connector-Config"),
    ([("x-connector-config", json.dumps({"config": {"adyen": {"api_key": ADYEN_KEY}}}))],
     "Failed to parse X-Connector-Config"),
    ([("x-connector-config", json.dumps({"config": {"Adyen": {"api_key": ADYEN_KEY}, "Wise": {}}}))],
     "Failed to parse X-Connector-Config"),
    ([("x-connector-config", json.dumps({"config": {"Paypal": {"api_key": ADYEN_KEY}}}))], "Invalid connector: paypal"),
    ([("x-connector-auth", "[]")], "Failed to parse X-Connector-Auth"),
])
async def test_missing_or_invalid_metadata_is_invalid_argument(srv: Server, metadata: Metadata,
                                                               message: str) -> None:
    err = await srv.fails(srv.create(metadata=metadata), grpc.StatusCode.INVALID_ARGUMENT)
    assert err.details() == message
    assert ADYEN_KEY not in err.details()
    assert srv.sim.ledger()["payouts"] == 0


@pytest.mark.parametrize("metadata", [
    config_md(api_key="wrong-key"),
    config_md(apikey=ADYEN_KEY),  # the right key under a field name the connector does not use
    legacy_md(x_api_key="wrong-key"),
    legacy_md("wise", "header-key", x_api_key=WISE_KEY),  # wise also needs key1
])
async def test_wrong_credentials_are_the_connectors_401(srv: Server, metadata: list[tuple[str, str]]) -> None:
    err = await srv.fails(srv.create(metadata=metadata), grpc.StatusCode.UNAUTHENTICATED)
    detail = details(err, pb.ConnectorError)
    assert detail.http_status_code == 401 and detail.error_code == "CONNECTOR_ERROR_RESPONSE"
    assert all(secret not in err.details() and secret.encode() not in detail.SerializeToString()
               for secret in SECRETS + ("wrong-key",))
    assert srv.sim.ledger()["payouts"] == 0


async def test_an_unsupported_connector_is_failed_precondition(srv: Server) -> None:
    stripe = config_md("Stripe", api_key="sk_test_1")
    err = await srv.fails(srv.create(metadata=stripe), grpc.StatusCode.FAILED_PRECONDITION)
    assert err.details() == "This feature is not implemented: payout_create_link flow for stripe"
    assert details(err, pb.IntegrationError).error_code == "NOT_IMPLEMENTED"
    err = await srv.fails(srv.get(legacy_md("stripe", x_api_key="sk"), merchant_payout_id="m1:p1"),
                          grpc.StatusCode.FAILED_PRECONDITION)
    assert err.details() == "This feature is not implemented: payout_get flow for stripe"
    # a simulated connector made unsupported at runtime, credentials and all
    srv.configure(unsupported_connectors=["adyen"])
    err = await srv.fails(srv.void("po_x"), grpc.StatusCode.FAILED_PRECONDITION)
    assert err.details() == "This feature is not implemented: payout_void flow for adyen"
    srv.configure(unsupported_connectors=[])
    await srv.fails(srv.create(metadata=stripe), grpc.StatusCode.INVALID_ARGUMENT)  # unknown now
    assert srv.sim.ledger()["payouts"] == 0


# ------------------------------------------------------------------- HTTP status mapping


@pytest.mark.parametrize(("http_status", "code"), [
    (400, grpc.StatusCode.INVALID_ARGUMENT), (401, grpc.StatusCode.UNAUTHENTICATED),
    (403, grpc.StatusCode.PERMISSION_DENIED), (404, grpc.StatusCode.NOT_FOUND),
    (429, grpc.StatusCode.RESOURCE_EXHAUSTED), (500, grpc.StatusCode.INTERNAL),
    (501, grpc.StatusCode.UNIMPLEMENTED), (503, grpc.StatusCode.UNAVAILABLE),
    (504, grpc.StatusCode.DEADLINE_EXCEEDED),
    # every other status is UNKNOWN: only the trailer tells them apart
    (402, grpc.StatusCode.UNKNOWN), (409, grpc.StatusCode.UNKNOWN), (422, grpc.StatusCode.UNKNOWN),
    (502, grpc.StatusCode.UNKNOWN), (418, grpc.StatusCode.UNKNOWN),
])
async def test_a_connector_http_status_becomes_prisms_grpc_status(srv: Server, http_status: int,
                                                                  code: grpc.StatusCode) -> None:
    assert grpc_code_for_http_status(http_status) == code
    srv.configure(connector_status=http_status)
    for call in (srv.create(), srv.get(merchant_payout_id="m1:p1"), srv.void("po_x")):
        err = await srv.fails(call, code)
        detail = details(err, pb.ConnectorError)
        assert detail.http_status_code == http_status
        assert detail.error_info.connector_details.code == f"http_{http_status}"
    assert srv.sim.ledger()["payouts"] == 0


def test_the_mapping_table_is_the_references() -> None:
    assert {s: c.name for s, c in HTTP_TO_GRPC.items()} == {
        400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE",
        504: "DEADLINE_EXCEEDED"}


async def test_a_200_with_a_failure_body_is_ok_pending_with_error(srv: Server) -> None:
    srv.configure(connector_status=200)
    answer = await srv.create()
    assert answer.payout_status == pb.PayoutEnums.PENDING and answer.status_code == 200
    assert answer.error.connector_details.message and not answer.connector_payout_id
    assert srv.sim.ledger()["payouts"] == 0


# ------------------------------------------------------------------------------ faults


async def test_unavailable_creates_nothing(srv: Server) -> None:
    srv.configure(unavailable=1.0)
    await srv.fails(srv.create(), grpc.StatusCode.UNAVAILABLE)
    assert srv.sim.ledger()["payouts"] == 0 and srv.sim.stats.faults["unavailable"] == 1


async def test_resource_exhausted_is_the_connectors_429_and_creates_nothing(srv: Server) -> None:
    srv.configure(resource_exhausted=1.0)
    err = await srv.fails(srv.create(), grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert details(err, pb.ConnectorError).http_status_code == 429
    assert srv.sim.ledger()["payouts"] == 0


async def test_deadline_before_create_creates_nothing(srv: Server) -> None:
    srv.configure(deadline_before_create=1.0)
    await srv.fails(srv.create(), grpc.StatusCode.DEADLINE_EXCEEDED)
    assert srv.sim.ledger()["payouts"] == 0


async def test_deadline_after_create_leaves_a_payout_the_caller_never_heard_of(srv: Server) -> None:
    srv.configure(deadline_after_create=1.0)
    await srv.fails(srv.create(), grpc.StatusCode.DEADLINE_EXCEEDED)
    assert srv.sim.ledger()["by_reference"] == {"m1:p1": [pid := next(iter(srv.sim.payouts))]}
    # lookup-before-create finds it (faults stay off reads by default)
    assert (await srv.get(merchant_payout_id="m1:p1")).connector_payout_id == pid


async def test_slow_answers_late_but_answers(srv: Server) -> None:
    srv.configure(slow=1.0, slow_ms=1)
    assert (await srv.create()).connector_payout_id
    assert srv.sim.stats.faults["slow"] == 1


async def test_a_caller_that_gives_up_on_a_slow_call_leaves_nothing(srv: Server) -> None:
    srv.configure(slow=1.0, slow_ms=60_000)
    await srv.fails(srv.create(timeout=0.2), grpc.StatusCode.DEADLINE_EXCEEDED)
    deadline = time.monotonic() + 10
    while srv.sim.stats.events.get("client_gone") != 1:  # the server sees the cancellation
        assert time.monotonic() < deadline, srv.sim.stats.to_json()
        await asyncio.sleep(0.01)
    assert srv.sim.ledger()["payouts"] == 0


async def test_faults_reach_get_and_void_only_when_asked(srv: Server) -> None:
    created = await srv.create()
    srv.configure(unavailable=1.0)
    assert (await srv.get(connector_payout_id=created.connector_payout_id)).connector_payout_id
    srv.configure(faults_on_reads=True)
    await srv.fails(srv.get(connector_payout_id=created.connector_payout_id), grpc.StatusCode.UNAVAILABLE)
    await srv.fails(srv.void(created.connector_payout_id), grpc.StatusCode.UNAVAILABLE)
    assert srv.sim.payouts[created.connector_payout_id].status == "REQUIRES_PAYOUT_METHOD_DATA"


async def test_fault_rates_are_seedable(srv: Server) -> None:
    async def outcomes() -> list[str]:
        seen = []
        for i in range(24):
            try:
                await srv.create(link_request(f"m1:s{i}"))
                seen.append("OK")
            except grpc.aio.AioRpcError as exc:
                seen.append(exc.code().name)
        return seen

    srv.configure(seed=7, unavailable=0.25, resource_exhausted=0.25, deadline_after_create=0.25)
    first = await outcomes()
    assert set(first) == {"OK", "UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"}
    srv.configure(seed=7)  # re-seeding replays the same decisions
    assert await outcomes() == first
    faults = srv.sim.stats.faults
    assert faults["unavailable"] + faults["resource_exhausted"] + faults["deadline_after_create"] == 2 * (
        24 - first.count("OK"))


def test_config_validation() -> None:
    cfg = PrismSimConfig()
    for bad in ({"unavailable": 0.7, "slow": 0.4}, {"unavailable": 1.5}, {"nope": 1},
                {"connector_status": 302}, {"initial_status": "DONE"}, {"lookup_duplicates": "any"},
                {"unsupported_connectors": ["Stripe"]}, {"faults": {"slow": True}}, {"seed": "7"}):
        with pytest.raises(ValueError):
            cfg.apply(bad)
    assert cfg == PrismSimConfig()  # a refused patch changes nothing
    cfg.apply({"faults": {"slow": 0.5}, "deadline_after_create": 0.5, "hang_ms": 5})
    assert cfg.faults == dict.fromkeys(FAULT_KINDS, 0.0) | {"slow": 0.5, "deadline_after_create": 0.5}


def test_credentials_file_errors_name_no_secret() -> None:
    assert load_credentials(env={}) == {"adyen": {"api_key": "prism_sim_adyen_key"}}
    assert load_credentials(env={"SIM_CREDENTIALS": json.dumps(CREDENTIALS)}) == CREDENTIALS
    for bad in ({"Adyen": {"api_key": ADYEN_KEY}}, {"adyen": {"api_key": 7}}, {}):
        with pytest.raises(ValueError) as info:
            load_credentials(env={"SIM_CREDENTIALS": json.dumps(bad)})
        assert ADYEN_KEY not in str(info.value)


# ------------------------------------------------------------------------------ ledger


async def test_prism_detects_no_duplicates_and_the_ledger_shows_them(srv: Server) -> None:
    first = await srv.create()
    second = await srv.create()
    assert first.connector_payout_id != second.connector_payout_id
    ledger = srv.sim.ledger()
    assert ledger["by_reference"] == {"m1:p1": [first.connector_payout_id, second.connector_payout_id]}
    assert ledger["duplicate_references"] == {"m1:p1": 2} and ledger["payouts"] == 2
    # Get by merchant_payout_id answers what the connector has, per its duplicate policy
    assert (await srv.get(merchant_payout_id="m1:p1")).connector_payout_id == first.connector_payout_id
    srv.configure(lookup_duplicates="latest")
    assert (await srv.get(merchant_payout_id="m1:p1")).connector_payout_id == second.connector_payout_id
    srv.configure(lookup_duplicates="conflict")
    err = await srv.fails(srv.get(merchant_payout_id="m1:p1"), grpc.StatusCode.UNKNOWN)
    assert details(err, pb.ConnectorError).http_status_code == 409
    assert srv.sim.stats.events["duplicate_lookups"] == 3


async def test_the_control_surface(srv: Server) -> None:
    runner, port = await start_control_server(srv.sim)
    base = f"http://127.0.0.1:{port}/_sim/prism"
    try:
        async with ClientSession() as http:
            async with http.get(base + "/health") as resp:
                assert await resp.json() == {"ok": True, "grpc_target": srv.sim.grpc_target,
                                             "connectors": ["adyen", "wise"]}
            async with http.post(base + "/config", json={"unavailable": 2}) as resp:
                assert resp.status == 400 and "unavailable" in (await resp.json())["error"]
            async with http.post(base + "/config", json={"deadline_after_create": 1.0}) as resp:
                assert (await resp.json())["faults"]["deadline_after_create"] == 1.0
            await srv.fails(srv.create(), grpc.StatusCode.DEADLINE_EXCEEDED)
            async with http.get(base + "/ledger") as resp:
                ledger = await resp.json()
            (pid,) = ledger["by_reference"]["m1:p1"]
            async with http.post(f"{base}/payouts/{pid}/status", json={"status": "SUCCESS"}) as resp:
                assert resp.status == 200
            assert (await srv.get(merchant_payout_id="m1:p1")).payout_status == pb.PayoutEnums.SUCCESS
            async with http.get(base + "/stats") as resp:
                stats = await resp.json()
            assert stats["requests"] == {"create_link": 1, "get": 1}
            assert stats["statuses"] == {"DEADLINE_EXCEEDED": 1, "OK": 1} and stats["payouts"] == 1
            async with http.post(base + "/reset", json={"config": True}) as resp:
                assert resp.status == 200
            assert srv.sim.ledger()["payouts"] == 0 and srv.sim.config.faults["deadline_after_create"] == 0
            text = json.dumps(ledger) + json.dumps(stats)
            assert all(secret not in text for secret in SECRETS)
    finally:
        await runner.cleanup()


async def test_credentials_are_never_logged(srv: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    srv.configure(deadline_after_create=0.5, seed=3)
    for i in range(6):
        for md in (config_md(), config_md(api_key="wrong-key"), legacy_md(), [("x-connector-config", ADYEN_KEY)]):
            try:
                await srv.create(link_request(f"m1:l{i}"), metadata=md)
            except grpc.aio.AioRpcError:
                pass
    assert caplog.records and srv.sim.ledger()["payouts"] > 0
    assert all(secret not in caplog.text for secret in SECRETS + ("wrong-key",))


# -------------------------------------------------------------------- generic clients


async def reflected_pool(channel: grpc.aio.Channel, symbol: str) -> tuple[descriptor_pool.DescriptorPool, list[str]]:
    """Server reflection v1 (Prism's only version): the services, and a fresh descriptor
    pool holding the files that define ``symbol``. v1 and v1alpha messages are
    wire-identical, so grpcio-reflection's v1alpha classes serve for the v1 method."""
    info = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
    answers = [a async for a in info(iter([
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol),
    ]))]
    services = [s.name for s in answers[0].list_services_response.service]
    database = descriptor_database.DescriptorDatabase()
    for raw in answers[1].file_descriptor_response.file_descriptor_proto:
        database.Add(FileDescriptorProto.FromString(raw))
    return descriptor_pool.DescriptorPool(database), services


async def test_a_generic_client_built_from_reflection_v1(make_server: MakeServer) -> None:
    srv = await make_server()
    pool, services = await reflected_pool(srv.channel, "types.PayoutService")
    assert set(services) == {"types.PayoutService", "grpc.reflection.v1.ServerReflection", "grpc.health.v1.Health"}
    service = pool.FindServiceByName("types.PayoutService")
    assert [m.name for m in service.methods] == ["CreateLink", "Get", "Void"]

    async def call(method_name: str, body: dict[str, Any], metadata: Metadata) -> dict[str, Any]:
        method = service.FindMethodByName(method_name)
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        assert request_cls is not getattr(pb, method.input_type.name)  # not our generated class
        rpc = srv.channel.unary_unary(f"/{service.full_name}/{method_name}",
                                      request_serializer=request_cls.SerializeToString,
                                      response_deserializer=response_cls.FromString)
        answer = await rpc(json_format.ParseDict(body, request_cls()), metadata=metadata)
        return json_format.MessageToDict(answer, preserving_proto_field_name=True)

    # the docs' grpcurl example, plus our reference
    created = await call("CreateLink", {"merchant_payout_id": "m1:g1", "amount": {"minor_amount": 1000, "currency": "USD"},
                                        "destination_currency": "USD", "priority": "INSTANT",
                                        "customer": {"name": "Ada", "email": {"value": "ada@example.com"}}},
                         config_md())
    assert created == {"merchant_payout_id": "m1:g1", "payout_status": "REQUIRES_PAYOUT_METHOD_DATA",
                       "connector_payout_id": created["connector_payout_id"], "status_code": 200}
    got = await call("Get", {"merchant_payout_id": "m1:g1"}, legacy_md())
    assert got == created
    voided = await call("Void", {"connector_payout_id": created["connector_payout_id"]}, config_md())
    assert voided["payout_status"] == "CANCELLED"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call("CreateLink", {"destination_currency": "USD"}, config_md())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert srv.sim.ledger()["by_reference"] == {"m1:g1": [created["connector_payout_id"]]}


async def test_reflection_v1alpha_is_unimplemented_as_in_prism_unless_enabled(make_server: MakeServer) -> None:
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    for enabled in (False, True):
        srv = await make_server(reflection_v1alpha=enabled)
        info = srv.channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
        if not enabled:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                _ = [a async for a in info(iter([request]))]
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
        else:
            (answer,) = [a async for a in info(iter([request]))]
            assert "types.PayoutService" in {s.name for s in answer.list_services_response.service}


def test_the_server_process_with_the_stock_reflection_client(tmp_path: Path) -> None:
    """``python -m streams.devkit.sims.prism`` as a child process, called by grpcio-reflection's
    own (v1alpha, blocking) client; its log, at DEBUG, holds no credential."""
    log_path = tmp_path / "prism.log"
    with log_path.open("wb") as log_file, PrismServerProcess(
            credentials=CREDENTIALS, reflection_v1alpha=True, stderr=log_file,
            extra_args=["--log-level", "DEBUG"]) as proc:
        assert proc.pid is not None and re.fullmatch(r"127\.0\.0\.1:\d+", proc.grpc_target)
        with grpc.insecure_channel(proc.grpc_target) as channel:
            pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
            method = pool.FindServiceByName("types.PayoutService").FindMethodByName("CreateLink")
            request_cls = message_factory.GetMessageClass(method.input_type)
            response_cls = message_factory.GetMessageClass(method.output_type)
            rpc = channel.unary_unary("/types.PayoutService/CreateLink",
                                      request_serializer=request_cls.SerializeToString,
                                      response_deserializer=response_cls.FromString)
            body = {"merchant_payout_id": "m9:p9", "amount": {"minor_amount": 500, "currency": "GBP"},
                    "destination_currency": "GBP"}
            ids = [rpc(json_format.ParseDict(body, request_cls()), metadata=config_md(), timeout=10).connector_payout_id
                   for _ in range(2)]
            proc.configure(unavailable=1.0)
            with pytest.raises(grpc.RpcError) as err:
                rpc(json_format.ParseDict(body, request_cls()), metadata=config_md(api_key="wrong-key"), timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            proc.configure(unavailable=0.0)
            with pytest.raises(grpc.RpcError) as err:
                rpc(json_format.ParseDict(body, request_cls()), metadata=config_md(api_key="wrong-key"), timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
        assert proc.links_by_reference() == {"m9:p9": ids}
        assert proc.stats()["faults"]["unavailable"] == 1
        with pytest.raises(ValueError, match="unknown config key"):
            proc.configure(nope=1)
        pid = proc.pid
    assert proc.pid is None
    with pytest.raises(ProcessLookupError):  # stopped and reaped
        os.kill(pid, 0)
    text = log_path.read_text()
    assert "gRPC on 127.0.0.1:" in text
    assert all(secret not in text for secret in SECRETS + ("wrong-key",))
