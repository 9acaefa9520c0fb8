"""The Prism provider: pure transformers over every status and gRPC code, and the client
over real gRPC against the Prism-compatible server (in-process, latency 0)."""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import orjson
import pytest
import pytest_asyncio

from streams.config import ConfigError, load_settings
from streams.connectors.base import (
    Cancelled,
    LinkCreated,
    LinkRef,
    NotCancellable,
    NotFound,
    Rejected,
    StatusReport,
    Transient,
    Unknown,
)
from streams.connectors.guard import unhealthy
from streams.connectors.prism import PROVIDER, PrismClient, transformers as tf
from streams.connectors.prism.account import PrismAccount, parse_account
from streams.connectors.prism.gen import payout_service_pb2 as pb
from streams.connectors.provider import CredentialError
from streams.connectors.routing import Route, Unroutable, route
from streams.devkit.sims.prism import (
    PrismSimConfig,
    PrismSimulator,
    connector_failure,
    invalid_argument,
    start_grpc_server,
)
from streams.link_creation import InDoubt, LinkCreator, RetryPolicy

SECRET = "prism-adyen-secret-91c7e2"
CREDENTIALS = {"adyen": {"api_key": SECRET}, "wise": {"api_key": "wise-secret-3b8d"}}
ACCOUNT_RAW: dict[str, Any] = {"connector": "Adyen", "connector_config": {"api_key": SECRET},
                               "currencies": ["USD", "EUR"]}
ACCOUNT = parse_account(ACCOUNT_RAW)
PAYOUT_STATUSES = [n for n in pb.PayoutEnums.PayoutStatus.keys()
                   if n != "PAYOUT_STATUS_UNSPECIFIED"]
ERROR_CODES = [c for c in grpc.StatusCode if c is not grpc.StatusCode.OK]


def request(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": "e1", "event_type": "payout-link-requested", "schema_version": 1,
        "occurred_at": "2026-11-22T10:00:00Z", "merchant_id": "m_us", "merchant_payout_id": "p1",
        "amount": {"minor_amount": 12_345, "currency": "USD"},
        "customer": {"name": "Ada Lovelace", "email": "ada@example.com", "id": "cust_1",
                     "phone_number": "4155550100", "phone_country_code": "+1"},
    }
    body.update(overrides)
    return body


# --- account -------------------------------------------------------------------------


def test_an_account_hides_its_credentials_and_serialises_the_config_header() -> None:
    assert SECRET not in repr(ACCOUNT)
    assert orjson.loads(ACCOUNT.config_header) == {"config": {"Adyen": {"api_key": SECRET}}}
    assert ACCOUNT.currencies == frozenset({"USD", "EUR"})


@pytest.mark.parametrize(("patch", "field"), [
    ({"connector": "adyen"}, "connector"),
    ({"connector": None}, "connector"),
    ({"connector_config": {}}, "connector_config"),
    ({"connector_config": {"api_key": ""}}, "connector_config.api_key"),
    ({"connector_config": {"api_key": {"nested": SECRET}}}, "connector_config.api_key"),
    ({"currencies": []}, "currencies"),
    ({"currencies": ["USD", "XXQ"]}, "currencies"),
    ({"merchant_id": "has space"}, "merchant_id"),
    ({"api_key": SECRET}, "api_key"),
])
def test_a_bad_account_names_the_field_never_a_secret(patch: dict[str, Any], field: str) -> None:
    with pytest.raises(CredentialError) as info:
        parse_account({**ACCOUNT_RAW, **patch})
    assert info.value.field == field
    assert SECRET not in str(info.value)


def test_a_bad_prism_route_is_one_configuration_line() -> None:
    raw = orjson.dumps({"m1": {"prism": {**ACCOUNT_RAW, "currencies": "USD"}}}).decode()
    with pytest.raises(ConfigError, match="merchant 'm1', provider 'prism', field 'currencies'"):
        load_settings({"PAYOUT_CREDENTIALS": raw})


# --- routing -------------------------------------------------------------------------


def _settings(routing: dict[str, list[str]] | None = None) -> Any:
    credentials = {"m_us": {"prism": ACCOUNT_RAW},
                   "m_stripe": {"prism": {**ACCOUNT_RAW, "connector": "Stripe",
                                          "currencies": ["USD"]}},
                   "*": {"revolut": PROVIDER_DEV("revolut")}}
    env = {"PAYOUT_CREDENTIALS": orjson.dumps(credentials).decode()}
    if routing is not None:
        env["PAYOUT_ROUTING"] = orjson.dumps(routing).decode()
    return load_settings(env)


def PROVIDER_DEV(name: str) -> Any:  # noqa: N802 -- reads like the constant it returns
    from streams.connectors.registry import PROVIDERS
    return PROVIDERS[name].dev_account


def test_a_merchant_routes_through_its_prism_connector_only_in_its_currencies() -> None:
    settings = _settings({"m_us": ["prism"]})
    usd = route(request(), settings)
    assert isinstance(usd, Route) and usd.connector == "prism"
    assert usd.account.connector == "Adyen"
    # GBP isn't in the merchant's Prism route: the next provider paying GBP serves it.
    gbp = route(request(amount={"minor_amount": 100, "currency": "GBP"}), settings)
    assert isinstance(gbp, Route) and gbp.connector == "revolut"
    named = route(request(connector="prism", amount={"minor_amount": 100, "currency": "GBP"}),
                  settings)
    assert isinstance(named, Unroutable) and named.field == "amount.currency"
    assert named.code == "unsupported_connector"


# --- request -------------------------------------------------------------------------


def test_the_create_link_request_carries_every_field_we_send() -> None:
    body = request(destination_currency="EUR", priority="INSTANT",
                   webhook_url="https://merchant.example/hooks", connector_payout_method_id="pm_1",
                   address={"billing_address": {"line1": "1 Main St", "zip": "94105",
                                                "first_name": "Ada"}})
    prepared = tf.create_request(body, "pl_ref")
    m = prepared.message
    assert m.merchant_payout_id == "pl_ref"
    assert (m.amount.minor_amount, m.amount.currency) == (12_345, pb.USD)
    assert m.destination_currency == pb.EUR
    assert m.priority == pb.PayoutEnums.INSTANT
    assert (m.customer.name, m.customer.email.value, m.customer.id) == (
        "Ada Lovelace", "ada@example.com", "cust_1")
    assert (m.customer.phone_number, m.customer.phone_country_code) == ("4155550100", "+1")
    assert (m.webhook_url, m.connector_payout_method_id) == ("https://merchant.example/hooks",
                                                              "pm_1")
    assert m.address.billing_address.zip_code.value == "94105"
    assert m.address.billing_address.first_name.value == "Ada"
    assert not m.address.HasField("shipping_address")
    assert prepared.merchant_id == "m_us"
    assert "Ada" not in repr(prepared) and "ada@example.com" not in repr(prepared)  # PII


def test_destination_currency_defaults_to_the_amounts_and_priority_is_left_out() -> None:
    m = tf.create_request(request(), "pl_ref").message
    assert m.destination_currency == pb.USD
    assert not m.HasField("priority")


@pytest.mark.parametrize(("patch", "field"), [
    ({"expires_at": "2026-11-30T00:00:00Z"}, "expires_at"),
    ({"notify": {"email": True}}, "notify.email"),
    ({"notify": {"sms": True}}, "notify.sms"),
    ({"address": {"shipping_address": {"country": "US"}}}, "address.shipping_address.country"),
    ({"amount": {"minor_amount": 1, "currency": "XTS"}}, "amount.currency"),
])
def test_what_createlink_cannot_carry_fails_the_request_naming_the_field(
        patch: dict[str, Any], field: str) -> None:
    found = PROVIDER.unsupported(request(**patch), 0.0)
    assert found is not None and found.field == field


def test_notify_false_and_a_plain_request_are_supported() -> None:
    assert PROVIDER.unsupported(request(notify={"sms": False, "email": False}), 0.0) is None


def test_metadata_selects_the_connector_and_names_the_merchant() -> None:
    md = dict(tf.metadata(ACCOUNT, "m_us", "rid"))
    assert md == {"x-connector-config": ACCOUNT.config_header, "x-merchant-id": "m_us",
                  "x-request-id": "rid"}
    own = parse_account({**ACCOUNT_RAW, "merchant_id": "acme-prism", "tenant_id": "eu"})
    md = dict(tf.metadata(own, "m_us", "rid"))
    assert (md["x-merchant-id"], md["x-tenant-id"]) == ("acme-prism", "eu")


def test_request_ids_are_deterministic_per_reference_flow_and_attempt() -> None:
    assert tf.request_id("pl_a", "create_link", 1) == tf.request_id("pl_a", "create_link", 1)
    ids = {tf.request_id("pl_a", "create_link", 1), tf.request_id("pl_a", "create_link", 2),
           tf.request_id("pl_a", "get", 1), tf.request_id("pl_b", "create_link", 1)}
    assert len(ids) == 4


# --- answers: every status and every code --------------------------------------------

SENT = tf.create_request(request(), "pl_ref")


def ok(status: str | None = "REQUIRES_FULFILLMENT", payout_id: str | None = "po_1",
       **fields: Any) -> pb.PayoutServiceCreateLinkResponse:
    response = pb.PayoutServiceCreateLinkResponse(status_code=200, **fields)
    if status is not None:
        response.payout_status = pb.PayoutEnums.PayoutStatus.Value(status)
    if payout_id is not None:
        response.connector_payout_id = payout_id
    return response


@pytest.mark.parametrize("status", PAYOUT_STATUSES)
def test_every_payout_status_is_a_created_link_with_that_status_and_no_url(status: str) -> None:
    outcome = tf.read_create(ok(status), SENT)
    assert outcome == LinkCreated("po_1", None, status, status, None, 200)
    get = pb.PayoutServiceGetResponse(payout_status=pb.PayoutEnums.PayoutStatus.Value(status),
                                      connector_payout_id="po_1", status_code=200)
    assert tf.read_get(get, "pl_ref") == outcome  # a new owner reports what the creator did


def test_an_ok_answer_with_an_error_is_a_definite_failure_with_connector_details() -> None:
    error = pb.ErrorInfo(connector_details=pb.ConnectorErrorDetails(
        code="invalid_iban", message="IBAN is not valid", reason="format"))
    outcome = tf.read_create(ok("PENDING", None, error=error), SENT)
    assert isinstance(outcome, Rejected)
    assert (outcome.code, outcome.status_code) == ("provider_rejected", 200)
    assert outcome.connector_details == {"code": "invalid_iban", "message": "IBAN is not valid",
                                         "reason": "format", "field": None}
    # On a Get the same failure body proves nothing either way.
    get = pb.PayoutServiceGetResponse(payout_status=pb.PayoutEnums.PENDING, error=error)
    assert isinstance(tf.read_get(get, "pl_ref"), Transient)


@pytest.mark.parametrize("response", [
    ok(status=None), ok(payout_id=None), ok(payout_id=""), ok(payout_id="po 1"),
    ok(merchant_payout_id="pl_other"),
], ids=["no status", "no payout id", "empty payout id", "unprintable id", "another payout"])
def test_an_ok_answer_that_names_no_payout_whole_is_an_unknown_outcome(
        response: pb.PayoutServiceCreateLinkResponse) -> None:
    assert isinstance(tf.read_create(response, SENT), Unknown)
    get = pb.PayoutServiceGetResponse.FromString(response.SerializeToString())
    assert isinstance(tf.read_get(get, "pl_ref"), Transient)


def test_a_payout_status_our_proto_does_not_know_is_not_published() -> None:
    raw = ok().SerializeToString()
    response = pb.PayoutServiceCreateLinkResponse.FromString(raw)
    response.payout_status = 14  # a later Prism's NOT_PERMITTED  # type: ignore[assignment]
    assert isinstance(tf.read_create(response, SENT), Unknown)


DEFINITE = {
    grpc.StatusCode.INVALID_ARGUMENT: "provider_rejected",
    grpc.StatusCode.NOT_FOUND: "provider_rejected",
    grpc.StatusCode.FAILED_PRECONDITION: "connector_flow_not_supported",
    grpc.StatusCode.UNIMPLEMENTED: "connector_flow_not_supported",
    grpc.StatusCode.UNAUTHENTICATED: "provider_authentication_failed",
    grpc.StatusCode.PERMISSION_DENIED: "provider_authentication_failed",
}


@pytest.mark.parametrize("code", ERROR_CODES, ids=lambda c: c.name)
def test_every_grpc_code_on_createlink(code: grpc.StatusCode) -> None:
    outcome = tf.read_create_error(tf.RpcError(code, "said Prism"))
    if code in DEFINITE:
        assert isinstance(outcome, Rejected) and outcome.code == DEFINITE[code]
        assert outcome.connector_details["reason"] == code.name
    elif code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        assert isinstance(outcome, Transient)  # nothing made: retried with backoff
        assert not unhealthy(outcome)  # throttling is not Prism being down
    else:  # UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, UNKNOWN, CANCELLED, ABORTED, ...
        assert isinstance(outcome, Unknown), outcome


@pytest.mark.parametrize("code", ERROR_CODES, ids=lambda c: c.name)
def test_every_grpc_code_on_get_only_not_found_proves_absence(code: grpc.StatusCode) -> None:
    """DESIGN.md rule 2: after an unknown outcome only a found payout or NOT_FOUND ends
    the link; a refused Get (a rotated key: UNAUTHENTICATED) leaves it in doubt."""
    outcome = tf.read_get_error(tf.RpcError(code, "said Prism"))
    if code is grpc.StatusCode.NOT_FOUND:
        assert outcome == NotFound()
    elif code in DEFINITE and code is not grpc.StatusCode.NOT_FOUND:
        # A refused lookup: the link creator keeps the link in doubt (the end-to-end
        # test below), and the breaker does not count it as Prism being down.
        assert isinstance(outcome, Rejected), outcome
        assert not unhealthy(outcome)
    else:
        assert isinstance(outcome, Transient), outcome


def _trailer(failure: Any) -> bytes:
    return tf.trailer(failure.trailers()) or b""


def test_error_details_from_the_trailer() -> None:
    failure = connector_failure(402, "insufficient_balance", "Balance too low")
    outcome = tf.read_create_error(tf.RpcError(failure.code, failure.message, _trailer(failure)))
    assert isinstance(outcome, Unknown) and outcome.status_code == 402  # UNKNOWN: in doubt
    failure = connector_failure(400, "invalid_amount", "amount must be positive")
    outcome = tf.read_create_error(tf.RpcError(failure.code, failure.message, _trailer(failure)))
    assert isinstance(outcome, Rejected)
    assert (outcome.status_code, outcome.connector_details["code"]) == (400, "invalid_amount")
    failure = invalid_argument("Missing required field: destination_currency")
    outcome = tf.read_create_error(tf.RpcError(failure.code, failure.message, _trailer(failure)))
    assert isinstance(outcome, Rejected)
    assert (outcome.field, outcome.status_code) == ("destination_currency", None)
    assert outcome.connector_details["code"] == "MISSING_REQUIRED_FIELD"
    assert tf.decode_details(b"\xff\xff not a message") == (None, None, None)


# --- the client, over real gRPC ------------------------------------------------------


class Prism:
    def __init__(self, sim: PrismSimulator, server: grpc.aio.Server, client: PrismClient) -> None:
        self.sim, self.server, self.client = sim, server, client

    def configure(self, **patch: Any) -> None:
        self.sim.config.apply(patch)
        if "seed" in patch:
            self.sim.reseed()

    def payouts(self, reference: str) -> list[str]:
        return list(self.sim.by_reference.get(reference, []))


MakePrism = Callable[..., Awaitable[Prism]]


@pytest_asyncio.fixture
async def make_prism() -> AsyncIterator[MakePrism]:
    started: list[Prism] = []

    async def factory(read_timeout_s: float = 2.0, **config: Any) -> Prism:
        cfg = PrismSimConfig(latency_ms=0, jitter_ms=0)
        cfg.apply(config)
        sim = PrismSimulator(cfg, CREDENTIALS)
        server, _ = await start_grpc_server(sim, "127.0.0.1", 0)
        client = PROVIDER.client(_endpoint(f"http://{sim.grpc_target}", read_timeout_s))
        started.append(Prism(sim, server, client))
        return started[-1]

    yield factory
    for p in started:
        await p.client.aclose()
        await p.server.stop(None)


def _endpoint(url: str, read_timeout_s: float = 2.0) -> Any:
    from streams.connectors.provider import Endpoint
    return Endpoint(url, connect_timeout_s=0.5, read_timeout_s=read_timeout_s, max_connections=8)


async def test_create_then_lookup_report_one_link_the_same_way(make_prism: MakePrism) -> None:
    prism = await make_prism()
    created = await prism.client.create(SENT, ACCOUNT)
    assert isinstance(created, LinkCreated) and created.url is None
    assert created.payout_status == "REQUIRES_PAYOUT_METHOD_DATA"
    assert await prism.client.lookup("pl_ref", ACCOUNT, sent=SENT) == created
    assert await prism.client.lookup("pl_none", ACCOUNT, sent=SENT) == NotFound()
    (payout_id,) = prism.payouts("pl_ref")
    payout = prism.sim.payouts[payout_id]
    assert (payout.merchant_id, payout.minor_amount, payout.currency) == ("m_us", 12_345, "USD")
    assert payout.request_id == tf.request_id("pl_ref", "create_link", 1)


async def test_an_unsupported_connector_is_a_clear_definite_failure(make_prism: MakePrism) -> None:
    prism = await make_prism(unsupported_connectors=["wise"])
    wise = parse_account({**ACCOUNT_RAW, "connector": "Wise",
                          "connector_config": {"api_key": "wise-secret-3b8d"}})
    outcome = await prism.client.create(SENT, wise)
    assert isinstance(outcome, Rejected) and outcome.code == "connector_flow_not_supported"
    assert "payout_create_link flow for wise" in outcome.message
    assert prism.payouts("pl_ref") == []


async def test_a_wrong_key_is_an_authentication_failure_and_never_logged(
        make_prism: MakePrism, caplog: pytest.LogCaptureFixture) -> None:
    prism = await make_prism()
    wrong = parse_account({**ACCOUNT_RAW, "connector_config": {"api_key": "rotated-key-0000"}})
    with caplog.at_level(logging.DEBUG):
        outcome = await prism.client.create(SENT, wrong)
        await prism.client.create(SENT, ACCOUNT)
    assert isinstance(outcome, Rejected) and outcome.code == "provider_authentication_failed"
    assert outcome.status_code == 401
    assert "rotated-key-0000" not in caplog.text and SECRET not in caplog.text
    assert "rotated-key-0000" not in repr(outcome)


async def test_a_lost_answer_is_an_unknown_outcome_and_the_lookup_finds_the_one_payout(
        make_prism: MakePrism) -> None:
    prism = await make_prism(deadline_after_create=1.0)
    outcome = await prism.client.create(SENT, ACCOUNT)
    assert isinstance(outcome, Unknown) and outcome.reason == "grpc_deadline_exceeded"
    (payout_id,) = prism.payouts("pl_ref")
    found = await prism.client.lookup("pl_ref", ACCOUNT, sent=SENT)
    assert isinstance(found, LinkCreated) and found.connector_payout_id == payout_id


async def test_our_own_deadline_is_an_unknown_outcome(make_prism: MakePrism) -> None:
    prism = await make_prism(read_timeout_s=0.2, slow=1.0, slow_ms=2000)
    outcome = await prism.client.create(SENT, ACCOUNT)
    assert isinstance(outcome, Unknown) and outcome.reason == "grpc_deadline_exceeded"


async def test_throttling_and_unavailable(make_prism: MakePrism) -> None:
    prism = await make_prism(resource_exhausted=1.0)
    throttled = await prism.client.create(SENT, ACCOUNT)
    assert isinstance(throttled, Transient) and throttled.status_code == 429
    prism.configure(resource_exhausted=0.0, unavailable=1.0)
    assert isinstance(await prism.client.create(SENT, ACCOUNT), Unknown)
    assert prism.payouts("pl_ref") == []


async def test_an_unreachable_prism_is_provably_not_sent() -> None:
    client = PROVIDER.client(_endpoint("http://127.0.0.1:9"))  # nothing listens on discard
    try:
        outcome = await client.create(SENT, ACCOUNT)
        assert outcome == Transient("not_sent:prism_unreachable")
        assert await client.lookup("pl_ref", ACCOUNT) == Transient(
            "lookup_not_sent:prism_unreachable")
    finally:
        await client.aclose()


async def test_a_refused_get_after_an_unknown_outcome_keeps_the_link_in_doubt(
        make_prism: MakePrism) -> None:
    """Rule 2 end to end: CreateLink's answer is lost, then Prism's Get answers
    UNAUTHENTICATED (a rotated key): in doubt, never a failure, never a second payout."""
    prism = await make_prism(deadline_after_create=1.0)
    creator = LinkCreator(PROVIDER, prism.client,
                          RetryPolicy(backoff_base_s=0.01, backoff_max_s=0.02, in_doubt_max_s=0.3))
    assert isinstance(await prism.client.create(SENT, ACCOUNT), Unknown)
    prism.configure(deadline_after_create=0.0, connector_status=401)
    result, calls = await creator.create_link(request(), "pl_ref", ACCOUNT, lookup_first=True,
                                              prepared=SENT)
    assert isinstance(result, InDoubt) and calls >= 2
    assert len(prism.payouts("pl_ref")) == 1
    prism.configure(connector_status=0)
    result, _ = await creator.create_link(request(), "pl_ref", ACCOUNT, lookup_first=True,
                                          prepared=SENT)
    assert isinstance(result, LinkCreated) and len(prism.payouts("pl_ref")) == 1


def test_the_provider_is_registered_and_its_dev_route_is_the_simulators() -> None:
    from streams.connectors.registry import PROVIDERS
    from streams.devkit.sims.prism import DEFAULT_CREDENTIALS
    assert PROVIDERS["prism"] is PROVIDER
    dev = parse_account(PROVIDER.dev_account or {})
    assert isinstance(dev, PrismAccount)
    assert dict(dev.connector_config) == DEFAULT_CREDENTIALS[dev.connector.lower()]


def test_the_demo_routes_two_merchants_through_prism_and_one_to_a_connector_without_the_flow(
        ) -> None:
    from streams.devkit.traffic import DEMO_MERCHANTS, demo_worker_env
    settings = load_settings(demo_worker_env())
    routes = {}
    for merchant, currency in DEMO_MERCHANTS:
        found = route(request(merchant_id=merchant,
                              amount={"minor_amount": 1_000, "currency": currency}), settings)
        assert isinstance(found, Route), (merchant, found)
        routes[merchant] = (found.connector, getattr(found.account, "connector", None))
    assert routes["m_us_prism"] == routes["m_eu_prism"] == ("prism", "Adyen")
    assert routes["m_us_stripe"] == ("prism", "Stripe")
    assert routes["m_eu_eur"][0] == "revolut" and routes["m_in_cashgram"][0] == "cashfree"


async def test_a_link_in_doubt_at_a_connector_without_get_stays_in_doubt_and_trips_no_breaker(
        make_prism: MakePrism) -> None:
    """Measured in chaos: a worker killed between Stripe's FAILED_PRECONDITION and the
    failure's write leaves the link `creating`; its Get is FAILED_PRECONDITION too. Only
    a found payout or NOT_FOUND may end it (rule 2), so it stays in doubt; and those
    refusals once opened the breaker for every merchant routed through Prism."""
    from streams.connectors.guard import ProviderGuard

    prism = await make_prism(unsupported_connectors=["wise"])
    wise = parse_account({**ACCOUNT_RAW, "connector": "Wise",
                          "connector_config": {"api_key": "wise-secret-3b8d"}})
    guard = ProviderGuard("prism", rate_per_s=0, failure_threshold=3, open_seconds=60)
    creator = LinkCreator(PROVIDER, prism.client,
                          RetryPolicy(backoff_base_s=0.001, backoff_max_s=0.002,
                                      in_doubt_max_s=0.3), guard)
    result, calls = await creator.create_link(request(), "pl_ref", wise, lookup_first=True,
                                              prepared=SENT)
    assert isinstance(result, InDoubt) and calls > 3
    assert "circuit_open" not in result.reason
    assert await guard.call(lambda: prism.client.create(SENT, ACCOUNT)) == await \
        prism.client.lookup("pl_ref", ACCOUNT, sent=SENT)  # Adyen merchants unaffected


async def test_one_failing_prism_connector_opens_only_its_own_circuit() -> None:
    """Prism fronts many connectors: one answering with no outcome (a 5xx, a dropped
    stream) must not open the breaker for merchants routed through the others."""
    from streams.connectors.base import LinkCreated, Unknown
    from streams.connectors.guard import ProviderGuard

    wise = parse_account({**ACCOUNT_RAW, "connector": "Wise",
                          "connector_config": {"api_key": "wise-secret-3b8d"}})

    class Client:
        async def create(self, prepared: Any, account: Any) -> Any:
            if account.connector == "Wise":
                return Unknown("no_answer:UNAVAILABLE")
            return LinkCreated("po_1", None, "requires_payout_method_data",
                               "REQUIRES_PAYOUT_METHOD_DATA", None)

        async def lookup(self, reference: str, account: Any, sent: Any = None) -> Any:
            return await self.create(sent, account)

        async def aclose(self) -> None:
            return None

    guard = ProviderGuard("prism", rate_per_s=0, failure_threshold=2, open_seconds=60)
    creator = LinkCreator(PROVIDER, Client(), RetryPolicy(
        backoff_base_s=0.001, backoff_max_s=0.002, in_doubt_max_s=0.2), guard)
    result, _ = await creator.create_link(request(), "pl_wise", wise, lookup_first=False,
                                          prepared=SENT)
    assert isinstance(result, InDoubt) and "circuit_open:prism:Wise" in result.reason
    adyen, calls = await creator.create_link(request(), "pl_adyen", ACCOUNT,
                                             lookup_first=False, prepared=SENT)
    assert isinstance(adyen, LinkCreated) and calls == 1


# --- after creation: status (Get) and cancel (Void) -----------------------------------

LINK = LinkRef("pl_ref", "po_1")


def get_ok(status: str | None = "SUCCESS", payout_id: str | None = "po_1",
           **fields: Any) -> pb.PayoutServiceGetResponse:
    return pb.PayoutServiceGetResponse.FromString(
        ok(status, payout_id, **fields).SerializeToString())


def void_ok(status: str | None = "CANCELLED", payout_id: str | None = "po_1",
            **fields: Any) -> pb.PayoutServiceVoidResponse:
    return pb.PayoutServiceVoidResponse.FromString(
        ok(status, payout_id, **fields).SerializeToString())


def test_status_and_void_requests_name_our_reference_and_the_connectors_id() -> None:
    get = tf.status_request(LINK)
    assert (get.merchant_payout_id, get.connector_payout_id) == ("pl_ref", "po_1")
    void = tf.void_request(LINK)
    assert (void.merchant_payout_id, void.connector_payout_id) == ("pl_ref", "po_1")
    assert tf.VOID == "/types.PayoutService/Void"


@pytest.mark.parametrize("status", PAYOUT_STATUSES)
def test_every_payout_status_is_a_report_of_it(status: str) -> None:
    assert tf.read_status(get_ok(status), LINK) == StatusReport(status, reference="pl_ref",
                                                                connector_payout_id="po_1")
    assert tf.read_status(get_ok(status, merchant_payout_id="pl_ref"), LINK) == StatusReport(
        status, reference="pl_ref", connector_payout_id="po_1")


@pytest.mark.parametrize("response", [
    get_ok(status=None), get_ok(payout_id="po_other"), get_ok(merchant_payout_id="pl_other"),
    get_ok("PENDING", error=pb.ErrorInfo(connector_details=pb.ConnectorErrorDetails(
        code="x", message="failure body"))),
], ids=["unspecified", "another payout id", "another reference", "failure body"])
def test_a_get_answer_we_cannot_read_proves_nothing(response: pb.PayoutServiceGetResponse) -> None:
    assert isinstance(tf.read_status(response, LINK), Transient)


def test_a_status_our_proto_does_not_know_proves_nothing() -> None:
    response = get_ok()
    response.payout_status = 14  # a later Prism's NOT_PERMITTED  # type: ignore[assignment]
    assert isinstance(tf.read_status(response, LINK), Transient)


@pytest.mark.parametrize("code", ERROR_CODES, ids=lambda c: c.name)
def test_every_grpc_code_on_a_polls_get(code: grpc.StatusCode) -> None:
    outcome = tf.read_status_error(tf.RpcError(code, "said Prism"))
    if code is grpc.StatusCode.NOT_FOUND:
        assert outcome == NotFound()
    elif code in DEFINITE:
        assert isinstance(outcome, Rejected) and outcome.code == DEFINITE[code]
    elif code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        assert outcome == Transient("throttled", 429) and not unhealthy(outcome)
    else:
        assert isinstance(outcome, Transient) and unhealthy(outcome), outcome


def test_a_void_answered_ok_is_cancelled_with_its_status() -> None:
    assert tf.read_void(void_ok(), LINK) == Cancelled(StatusReport(
        "CANCELLED", reference="pl_ref", connector_payout_id="po_1"))
    assert tf.read_void(void_ok(status=None), LINK) == Cancelled(None)  # unreadable: still void
    assert isinstance(tf.read_void(void_ok(merchant_payout_id="pl_other"), LINK), Unknown)
    assert isinstance(tf.read_void(void_ok(payout_id="po_other"), LINK), Unknown)


def test_a_void_answered_ok_with_a_failure_body_cancelled_nothing() -> None:
    error = pb.ErrorInfo(connector_details=pb.ConnectorErrorDetails(code="failure_body",
                                                                    message="nope"))
    outcome = tf.read_void(void_ok("PENDING", None, error=error), LINK)
    assert isinstance(outcome, Rejected) and (outcome.code, outcome.message) == (
        "provider_rejected", "nope")


VOID_DEFINITE = {
    grpc.StatusCode.INVALID_ARGUMENT: "provider_rejected",
    grpc.StatusCode.NOT_FOUND: "link_not_found",
    grpc.StatusCode.FAILED_PRECONDITION: "connector_flow_not_supported",
    grpc.StatusCode.UNIMPLEMENTED: "connector_flow_not_supported",
    grpc.StatusCode.UNAUTHENTICATED: "provider_authentication_failed",
    grpc.StatusCode.PERMISSION_DENIED: "provider_authentication_failed",
}


@pytest.mark.parametrize("code", ERROR_CODES, ids=lambda c: c.name)
def test_every_grpc_code_on_void(code: grpc.StatusCode) -> None:
    outcome = tf.read_void_error(tf.RpcError(code, "said Prism"))
    if code in VOID_DEFINITE:
        assert isinstance(outcome, Rejected) and outcome.code == VOID_DEFINITE[code]
        assert outcome.connector_details["reason"] == code.name
    elif code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        assert outcome == Transient("throttled", 429)
    else:  # the connector may have voided it: UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, ...
        assert isinstance(outcome, Unknown), outcome


def test_a_void_refused_for_the_payouts_state_is_not_cancellable() -> None:
    failure = connector_failure(400, "invalid_state", "Payout cannot be cancelled in status SUCCESS")
    outcome = tf.read_void_error(tf.RpcError(failure.code, failure.message, _trailer(failure)))
    assert outcome == NotCancellable("Payout cannot be cancelled in status SUCCESS", "SUCCESS")
    plain = tf.read_void_error(tf.RpcError(grpc.StatusCode.INVALID_ARGUMENT,
                                           "payout is not cancellable"))
    assert plain == NotCancellable("payout is not cancellable", None)


def test_prism_sends_no_webhooks_and_its_links_are_polled() -> None:
    assert PROVIDER.webhooks is None
    assert PROVIDER.webhook_secrets(ACCOUNT) == ()
    assert PROVIDER.expires_links is False


async def test_the_client_polls_and_voids_a_payout(make_prism: MakePrism) -> None:
    prism = await make_prism()
    created = await prism.client.create(SENT, ACCOUNT)
    assert isinstance(created, LinkCreated)
    link = LinkRef("pl_ref", created.connector_payout_id)
    assert await prism.client.status(link, ACCOUNT) == StatusReport(
        "REQUIRES_PAYOUT_METHOD_DATA", reference="pl_ref",
        connector_payout_id=created.connector_payout_id)
    cancelled = StatusReport("CANCELLED", reference="pl_ref",
                             connector_payout_id=created.connector_payout_id)
    assert await prism.client.cancel(link, ACCOUNT) == Cancelled(cancelled)
    assert await prism.client.status(link, ACCOUNT) == cancelled
    assert await prism.client.cancel(link, ACCOUNT) == Cancelled(cancelled)  # answered as is
    payout = prism.sim.payouts[created.connector_payout_id]
    assert payout.status == "CANCELLED"
    assert payout.request_id == tf.request_id("pl_ref", "create_link", 1)
    absent = LinkRef("pl_none", "po_absent")
    assert await prism.client.status(absent, ACCOUNT) == NotFound()
    gone = await prism.client.cancel(absent, ACCOUNT)
    assert isinstance(gone, Rejected) and gone.code == "link_not_found"


async def test_a_paid_payout_cannot_be_voided(make_prism: MakePrism) -> None:
    prism = await make_prism()
    created = await prism.client.create(SENT, ACCOUNT)
    assert isinstance(created, LinkCreated)
    prism.sim.payouts[created.connector_payout_id].status = "SUCCESS"
    link = LinkRef("pl_ref", created.connector_payout_id)
    polled = await prism.client.status(link, ACCOUNT)
    assert isinstance(polled, StatusReport) and polled.connector_status == "SUCCESS"
    assert await prism.client.cancel(link, ACCOUNT) == NotCancellable(
        "Payout cannot be cancelled in status SUCCESS", "SUCCESS")


async def test_a_connector_without_void_is_a_clear_refusal(make_prism: MakePrism) -> None:
    prism = await make_prism(unsupported_connectors=["wise"])
    wise = parse_account({**ACCOUNT_RAW, "connector": "Wise",
                          "connector_config": {"api_key": "wise-secret-3b8d"}})
    outcome = await prism.client.cancel(LinkRef("pl_ref", "po_1"), wise)
    assert isinstance(outcome, Rejected) and outcome.code == "connector_flow_not_supported"
    assert "payout_void flow for wise" in outcome.message
    polled = await prism.client.status(LinkRef("pl_ref", "po_1"), wise)
    assert isinstance(polled, Rejected) and polled.code == "connector_flow_not_supported"


async def test_faults_on_poll_and_void(make_prism: MakePrism) -> None:
    prism = await make_prism()
    created = await prism.client.create(SENT, ACCOUNT)
    assert isinstance(created, LinkCreated)
    link = LinkRef("pl_ref", created.connector_payout_id)
    prism.configure(faults_on_reads=True, faults={"resource_exhausted": 1.0})
    assert await prism.client.status(link, ACCOUNT) == Transient("throttled", 429)
    assert await prism.client.cancel(link, ACCOUNT) == Transient("throttled", 429)
    prism.configure(faults={"resource_exhausted": 0.0, "unavailable": 1.0})
    assert isinstance(await prism.client.status(link, ACCOUNT), Transient)
    assert isinstance(await prism.client.cancel(link, ACCOUNT), Unknown)
    prism.configure(faults={"unavailable": 0.0, "deadline_after_create": 1.0}, hang_ms=0)
    lost = await prism.client.cancel(link, ACCOUNT)  # voided, answer lost
    assert isinstance(lost, Unknown) and prism.sim.payouts[link.connector_payout_id].status == (
        "CANCELLED")
