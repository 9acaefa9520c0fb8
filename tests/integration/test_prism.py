"""Links through Prism on a real broker: a worker, the Prism-compatible gRPC server
(with lost answers after create), exactly one payout and one outcome per request."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams import events
from streams.connectors.base import link_reference
from streams.devkit.broker import Broker
from streams.devkit.harness import TOPICS, OutcomeReader, WorkerProcess, produce
from streams.devkit.sims.prism import PrismServerProcess
from streams.devkit.traffic import key_of, valid_request
from tests.integration.conftest import PARTITIONS

pytestmark = pytest.mark.integration
DEADLINE_S = 120
ADYEN = {"api_key": "prism-it-adyen-key-5e1f"}
CREDENTIALS = {
    "m_prism": {"prism": {"connector": "Adyen", "connector_config": ADYEN,
                          "currencies": ["USD", "EUR"]}},
    "m_stripe": {"prism": {"connector": "Stripe", "connector_config": {"api_key": "sk_x"},
                           "currencies": ["USD"]}},
}


@pytest.fixture(scope="module")
def prism() -> Iterator[PrismServerProcess]:
    # One CreateLink in five makes the payout and then answers DEADLINE_EXCEEDED: only a
    # Get by merchant_payout_id before any new CreateLink keeps it to one payout.
    with PrismServerProcess(latency_ms=5, jitter_ms=5, faults={"deadline_after_create": 0.2},
                            hang_ms=50, seed=5, credentials={"adyen": ADYEN}) as sim:
        yield sim


@pytest.fixture(scope="module")
def prism_worker(broker: Broker, prism: PrismServerProcess,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    workdir: Path = tmp_path_factory.mktemp("prism-worker")
    worker = WorkerProcess(
        bootstrap=broker.bootstrap_servers, provider_url="", data_dir=workdir / "data",
        log_path=workdir / "worker.log", app_id="payout-links-prism", partitions=PARTITIONS,
        extra_env={"PRISM_URL": prism.worker_url,
                   "PAYOUT_CREDENTIALS": orjson.dumps(CREDENTIALS).decode(),
                   "PAYOUT_ROUTING": orjson.dumps({"m_prism": ["prism"],
                                                   "m_stripe": ["prism"]}).decode()})
    try:
        worker.start()
        yield worker
    finally:
        worker.stop()


def prism_request(n: int, run_id: str, merchant: str, currency: str, **extra: Any
                  ) -> dict[str, Any]:
    request = valid_request(n, merchant_id=merchant, run=run_id)
    request["amount"] = {"minor_amount": 1_000 + n, "currency": currency}
    request.pop("purpose", None)
    request["notify"] = {"sms": False, "email": False}
    request.update(extra)
    return request


def assert_schema_valid(event: dict[str, Any]) -> None:
    errors = [e.message for e in events.validator_for(event["event_type"]).iter_errors(event)]
    assert errors == [], errors


async def _outcomes(broker: Broker, requests: list[dict[str, Any]]
                    ) -> dict[str, list[dict[str, Any]]]:
    keys = [key_of(r).decode() for r in requests]
    async with OutcomeReader(broker.bootstrap_servers) as reader:
        await produce(broker.bootstrap_servers, [(key_of(r), orjson.dumps(r)) for r in requests])
        assert await reader.wait_for(keys, DEADLINE_S) == set()
        return {k: reader.outcomes.for_key(k) for k in keys}


async def test_links_through_prism_are_created_once_without_a_url(
        broker: Broker, prism: PrismServerProcess, prism_worker: WorkerProcess,
        run_id: str) -> None:
    requests = [prism_request(n, run_id, "m_prism", ("USD", "EUR")[n % 2]) for n in range(80)]
    outcomes = await _outcomes(broker, requests)
    ledger = prism.links_by_reference()
    for request in requests:
        key = key_of(request).decode()
        [created] = outcomes[key]
        assert created["event_type"] == TOPICS.created, created
        assert (created["connector"], created["url"]) == ("prism", None)
        assert created["payout_status"] == "REQUIRES_PAYOUT_METHOD_DATA"
        assert created["status_code"] == 200
        assert_schema_valid(created)
        assert ledger[link_reference(key)] == [created["connector_payout_id"]]
    assert prism.stats()["faults"]["deadline_after_create"] > 0  # the lost answers happened


async def test_a_connector_without_the_flow_fails_each_link_clearly(
        broker: Broker, prism: PrismServerProcess, prism_worker: WorkerProcess,
        run_id: str) -> None:
    requests = [prism_request(n, run_id, "m_stripe", "USD") for n in range(10)]
    outcomes = await _outcomes(broker, requests)
    ledger = prism.links_by_reference()
    for request in requests:
        key = key_of(request).decode()
        [failed] = outcomes[key]
        assert failed["event_type"] == TOPICS.failed and failed["scope"] == "link"
        assert failed["error"]["code"] == "connector_flow_not_supported"
        assert "payout_create_link flow for stripe" in failed["error"]["message"]
        assert failed["connector"] == "prism" and failed["status_code"] is None
        assert_schema_valid(failed)
        assert link_reference(key) not in ledger


async def test_a_field_createlink_cannot_carry_fails_the_request_before_any_call(
        broker: Broker, prism: PrismServerProcess, prism_worker: WorkerProcess,
        run_id: str) -> None:
    request = prism_request(0, run_id, "m_prism", "USD", expires_at="2030-01-01T00:00:00Z")
    key = key_of(request).decode()
    [failed] = (await _outcomes(broker, [request]))[key]
    assert failed["error"]["code"] == "unsupported_field"
    assert failed["error"]["field"] == "expires_at"
    assert link_reference(key) not in prism.links_by_reference()
