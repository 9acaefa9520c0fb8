"""A created link's life on a real broker, through the worker's real web server.

Every provider's simulator walks its links to a final state and sends signed webhooks
to the worker (duplicated, delayed so they arrive out of order, dropped so that only a
poll can catch them, forged, re-serialized); Prism sends none and is polled. Every link
must end with its last status equal to its provider's, with no duplicate change, no
event id carrying two contents, and every forged webhook refused with 401. Cancels
answer with a change or a clear refusal.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from streams import events
from streams.devkit.broker import Broker
from streams.devkit.harness import TOPICS, OutcomeReader, WorkerProcess, produce
from streams.devkit.lifecycle_check import check_lifecycle
from streams.devkit.sims.fleet import SimulatorFleet
from streams.devkit.traffic import demo_worker_env, key_of, valid_request
from tests.integration.conftest import PARTITIONS, running_from_topics_end

pytestmark = pytest.mark.integration
DEADLINE_S = 120
MERCHANTS = (("m_in_default", "INR", "razorpay"), ("m_in_cashgram", "INR", "cashfree"),
             ("m_eu_gbp", "GBP", "revolut"), ("m_us_prism", "USD", "prism"))
WEBHOOK_FAULTS = {"webhook_duplicate": 0.2, "webhook_drop": 0.15, "webhook_delay_ms": 400,
                  "webhook_forge": 0.2, "webhook_reserialize": 0.3, "webhook_retries": 2,
                  "webhook_retry_ms": 200}
LIFE_TOPICS = (TOPICS.created, TOPICS.failed, TOPICS.status_changed, TOPICS.cancel_failed)


@pytest.fixture(scope="module")
def fleet() -> Iterator[SimulatorFleet]:
    with SimulatorFleet(latency_ms=5, jitter_ms=5, seed=11) as f:
        yield f


@pytest.fixture(scope="module")
def life_worker(broker: Broker, fleet: SimulatorFleet,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    workdir: Path = tmp_path_factory.mktemp("life-worker")
    worker = WorkerProcess(
        bootstrap=broker.bootstrap_servers, provider_url="", data_dir=workdir / "data",
        log_path=workdir / "worker.log", app_id="payout-links-life", partitions=PARTITIONS,
        extra_env={**fleet.worker_env(), **demo_worker_env(),
                   # Dropped webhooks are caught by polls: short cadences for the test.
                   "PAYOUT_POLL_MIN_S": "1", "PAYOUT_POLL_MAX_S": "3",
                   "PAYOUT_REVERSAL_POLL_S": "3",
                   "PAYOUT_POLL_RATE_PER_S": "200"})
    with running_from_topics_end(worker):
        fleet.send_webhooks_to(
            f"http://127.0.0.1:{worker.env['PAYOUT_WEB_PORT']}/webhooks/{{provider}}",
            **WEBHOOK_FAULTS)
        yield worker


def life_request(n: int, run_id: str) -> dict[str, Any]:
    merchant, currency, _ = MERCHANTS[n % len(MERCHANTS)]
    request = valid_request(n, merchant_id=merchant, run=run_id)
    if currency != "INR":
        request["amount"] = {"minor_amount": 1_000 + n, "currency": currency}
        request.pop("purpose", None)
        request["notify"] = {"sms": False, "email": False}
    if currency == "USD":
        request.pop("expires_at", None)
    return request


def provider_truth(fleet: SimulatorFleet) -> dict[str, str]:
    return {ref: info["status"] for by_ref in fleet.statuses().values()
            for ref, info in by_ref.items()}


def drift_report(drift: list[tuple[str, str | None, str]], created: list[dict[str, Any]],
                 fleet: SimulatorFleet, worker: WorkerProcess) -> str:
    """What a failed run needs to be understood (pytest shows it as the test's captured
    output, where a long assertion message would be cut): each drifted link's lines in
    the worker's log, its provider's record, and the worker's tracking counters."""
    lines = ["drifted links (link key, our last status, the provider's):"]
    log = worker.run_log().splitlines()
    truth = fleet.statuses()
    for key, ours, final in drift:
        reference = next(e["reference"] for e in created if e["link_key"] == key)
        lines.append(f"== {key} ({reference}): ours {ours}, provider {final}")
        lines += [f"  provider: {name} {by_ref[reference]}"
                  for name, by_ref in truth.items() if reference in by_ref]
        lines += [f"  {line}" for line in log if key in line or reference in line]
    lines.append("== the worker's warnings and errors (forged webhooks left out):")
    lines += [f"  {line}" for line in log
              if ("WARNING" in line or "ERROR" in line or "CRITICAL" in line)
              and "signature_invalid" not in line]
    try:
        text = httpx.get(f"http://127.0.0.1:{worker.env['PAYOUT_WEB_PORT']}/metrics",
                         timeout=10).text
        lines.append("== the worker's tracking and sweep counters:")
        lines += [f"  {line}" for line in text.splitlines()
                  if line.startswith(("payout_link_tracking", "payout_polls_asked",
                                      "payout_poll_sweep", "payout_contained",
                                      "payout_delivery_seeks", "payout_breaker"))]
    except httpx.HTTPError as exc:
        lines.append(f"== /metrics unreadable: {exc!r}")
    return "\n".join(lines)


async def test_every_link_ends_at_its_providers_final_status(
        broker: Broker, fleet: SimulatorFleet, life_worker: WorkerProcess, run_id: str) -> None:
    requests = [life_request(n, run_id) for n in range(48)]
    keys = [key_of(r).decode() for r in requests]
    async with OutcomeReader(broker.bootstrap_servers, LIFE_TOPICS) as reader:
        await produce(broker.bootstrap_servers, [(key_of(r), orjson.dumps(r)) for r in requests])
        assert await reader.wait_for(keys, DEADLINE_S) == set(), life_worker.log_tail()
        created = [e for e in reader.outcomes.by_topic[TOPICS.created] if e["link_key"] in keys]
        assert len(created) == len(keys)
        references = {e["reference"] for e in created}
        walked = fleet.walk(seed=23, references=sorted(references))
        finals = {ref: status for by_ref in walked.values() for ref, status in by_ref.items()}
        assert set(finals) == references

        def verdict() -> Any:
            truth = {ref: s for ref, s in provider_truth(fleet).items() if ref in references}
            return check_lifecycle(created, reader.outcomes.by_topic.get(TOPICS.status_changed, []),
                                   truth)

        async def settled() -> bool:
            return not verdict().drift

        await reader.wait_until(settled, DEADLINE_S)
        fleet.drain_webhooks(timeout=60)
        result = verdict()
        if result.drift:
            print(drift_report(result.drift, created, fleet, life_worker))
        assert result.drift == [], result.line()
        assert result.same_id_different_content == 0 and result.duplicate_changes == 0, \
            (result.duplicates, [e for e in reader.outcomes.by_topic[TOPICS.status_changed]
                                 if e["link_key"] in {k for k, _ in result.duplicates}])
        assert result.links == len(keys)
        # Webhooks told most changes; polls caught the dropped ones (and Prism's).
        assert result.by_source.get("webhook", 0) > 0 and result.by_source.get("poll", 0) > 0
        for event in reader.outcomes.by_topic[TOPICS.status_changed]:
            assert not list(events.validator_for(events.STATUS_CHANGED).iter_errors(event))
    # Webhook secrets (and the providers' API secrets) never reach the worker's log.
    log = life_worker.run_log()
    for secret in ("demo_webhook_secret", "wsk_sim_revolut_demo", "demo_secret",
                   "cf_test_client_secret"):
        assert secret not in log
    counts = {name: hooks["counts"] for name, hooks in fleet.webhooks().items()}
    forged = sum(c.get("forged_sent", 0) for c in counts.values())
    assert forged > 0
    assert sum(c.get("forged_answered_401", 0) for c in counts.values()) == forged, counts
    assert all(c.get("forged_accepted", 0) == 0 for c in counts.values())


async def test_cancel_answers_with_a_change_or_a_clear_refusal(
        broker: Broker, fleet: SimulatorFleet, life_worker: WorkerProcess, run_id: str) -> None:
    requests = [life_request(n * len(MERCHANTS), f"{run_id}c") for n in range(4)]  # razorpay
    keys = [key_of(r).decode() for r in requests]
    async with OutcomeReader(broker.bootstrap_servers, LIFE_TOPICS) as reader:
        await produce(broker.bootstrap_servers, [(key_of(r), orjson.dumps(r)) for r in requests])
        assert await reader.wait_for(keys, DEADLINE_S) == set(), life_worker.log_tail()
        created = {e["link_key"]: e for e in reader.outcomes.by_topic[TOPICS.created]
                   if e["link_key"] in keys}
        # The last link is paid out before anyone cancels it.
        paid = created[keys[-1]]
        fleet["razorpay"].walk(seed=1, references=[paid["reference"]], plan={"processed": 1.0})

        def cancel(key: str, n: int) -> tuple[bytes, bytes]:
            merchant, payout = events.split_link_key(key)
            return key.encode(), orjson.dumps({
                "event_id": f"cancel-{run_id}-{n}", "event_type": events.CANCEL_REQUESTED,
                "merchant_id": merchant, "merchant_payout_id": payout})

        async def paid_out() -> bool:
            return any(e["link_key"] == keys[-1] and e["payout_status"] == "SUCCESS"
                       for e in reader.outcomes.by_topic.get(TOPICS.status_changed, []))

        assert await reader.wait_until(paid_out, DEADLINE_S), life_worker.log_tail()
        commands = [cancel(keys[0], 0), cancel(keys[-1], 1),
                    (keys[1].encode(), orjson.dumps({
                        "event_id": "x", "event_type": events.CANCEL_REQUESTED,
                        "merchant_id": "m_in_default",
                        "merchant_payout_id": events.split_link_key(keys[1])[1],
                        "reason": 42})),
                    cancel(f"m_in_default:{run_id}-nope", 3)]
        await produce(broker.bootstrap_servers, commands, topic=TOPICS.cancel_requested)

        def answers() -> list[dict[str, Any]]:
            return [e for t in (TOPICS.status_changed, TOPICS.cancel_failed)
                    for e in reader.outcomes.by_topic.get(t, [])
                    if e.get("source") == "command" or e["event_type"] == events.CANCEL_FAILED]

        async def all_answered() -> bool:
            return len(answers()) >= 4

        assert await reader.wait_until(all_answered, DEADLINE_S), (answers(),
                                                                    life_worker.log_tail())
        by_key = {e["link_key"]: e for e in answers()}
        assert by_key[keys[0]]["payout_status"] == "CANCELLED"
        assert by_key[keys[0]]["event_type"] == events.STATUS_CHANGED
        assert by_key[keys[-1]]["error"]["code"] == "not_cancellable"
        assert by_key[keys[-1]]["payout_status"] == "SUCCESS"
        assert by_key[keys[1]]["error"]["code"] == "invalid_command"
        assert by_key[keys[1]]["error"]["field"] == "reason"
        assert by_key[f"m_in_default:{run_id}-nope"]["error"]["code"] == "link_not_found"
        for event in answers():
            assert not list(events.validator_for(event["event_type"]).iter_errors(event))
    truth = fleet["razorpay"].statuses()
    assert truth[created[keys[0]]["reference"]]["status"] == "cancelled"
