"""Issue 13 on a real broker: lookup API (any worker answers), health, /metrics counted
against the outcomes produced, CloudEvents headers on the wire, JSON errors at the edge."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from streams.devkit.harness import REPO_ROOT, TOPICS, OutcomeReader, WorkerProcess, produce
from streams.devkit.traffic import invalid_request, key_of, valid_request
from tests.integration.conftest import PARTITIONS, new_worker, running_from_topics_end

DEADLINE_S = 90


@pytest.fixture(scope="module")
def worker(broker: Any, simulator: Any, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[WorkerProcess]:
    """This module's own group, from the topics' end (see running_from_topics_end)."""
    with running_from_topics_end(new_worker(
            broker, simulator, tmp_path_factory.mktemp("ops-worker"),
            app_id=f"payout-links-ops-{uuid.uuid4().hex[:10]}")) as w:
        yield w


def web(worker: WorkerProcess) -> str:
    return f"http://127.0.0.1:{worker.env['PAYOUT_WEB_PORT']}"


def scrape(worker: WorkerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{web(worker)}/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def until_ok(url: str, timeout: float) -> httpx.Response:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while True:
            answer = await client.get(url, timeout=5)
            if answer.status_code == 200 or time.monotonic() > deadline:
                return answer
            await asyncio.sleep(0.2)


async def quiet(worker: WorkerProcess, timeout: float) -> dict:
    """A scrape taken once the worker has no lag and nothing in flight (polled)."""
    deadline = time.monotonic() + timeout
    previous: dict | None = None
    while True:
        samples = scrape(worker)
        lag = sum(v for (name, _), v in samples.items() if name == "payout_consumer_lag")
        busy = value(samples, "payout_in_flight")
        outcomes = {k: v for k, v in samples.items()
                    if k[0] == "payout_outcomes_published_total"
                    and dict(k[1]).get("event_type") in (TOPICS.created, TOPICS.failed)}
        settled = lag == 0 and busy == 0 and previous == outcomes
        if settled or time.monotonic() > deadline:
            assert settled, f"the worker never went quiet: lag {lag}, in flight {busy}"
            return samples
        previous = outcomes if lag == 0 and busy == 0 else None
        await asyncio.sleep(1.0)


async def headers_of(bootstrap: str, topic: str, keys: set[bytes]) -> dict[bytes, dict]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    found: dict[bytes, dict] = {}
    try:
        deadline = time.monotonic() + 30
        while set(found) != keys and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    if r.key in keys:
                        found[r.key] = {"headers": dict(r.headers), "value": orjson.loads(r.value)}
    finally:
        await consumer.stop()
    return found


async def test_lookup_health_metrics_and_cloudevents(broker, simulator, worker, run_id) -> None:
    assert (await until_ok(f"{web(worker)}/health/ready", 60)).status_code == 200
    live = httpx.get(f"{web(worker)}/health/live", timeout=5)
    assert live.status_code == 200 and live.json()["checks"]["agent"] == "running"

    requests = [valid_request(n, merchant_id="m_ops", run=run_id) for n in range(30)]
    bad, _field = invalid_request(0, run=f"{run_id}-bad")
    keys = [key_of(r).decode() for r in requests]
    # Count from a moment the worker has read everything and has nothing in flight
    # (its lag: highwater minus where reading resumes, the committed offset at start).
    before = await quiet(worker, 120)
    async with OutcomeReader(broker.bootstrap_servers) as reader:
        records = [(key_of(r), orjson.dumps(r)) for r in requests]
        records.append(records[0])  # a duplicate: its outcome is published again
        records.append((key_of(bad), orjson.dumps(bad)))
        await produce(broker.bootstrap_servers, records)
        assert await reader.wait_for([*keys, key_of(bad).decode()], DEADLINE_S) == set()
        async def republished() -> bool:
            return len(reader.outcomes.for_key(keys[0])) == 2

        assert await reader.wait_until(republished, 30)
        created = {k: reader.outcomes.for_key(k)[0] for k in keys}
    after = scrape(worker)

    # /metrics against what was produced: 31 created outcomes (one re-published), one
    # failed invalid_request, one provider create per link.
    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("payout_outcomes_published_total", event_type=TOPICS.created, code="") == 31
    assert delta("payout_outcomes_published_total", event_type=TOPICS.failed,
                 code="invalid_request") == 1
    # Records read: at least ours (a re-drive of a parked link reads its request again).
    assert delta("payout_requests_total", result="valid") >= 31
    assert delta("payout_requests_total", result="invalid") >= 1
    assert delta("payout_provider_calls_total", provider="razorpay", result="linkcreated",
                 status="") + delta("payout_provider_calls_total", provider="razorpay",
                                    result="linkcreated", status="200") == 30
    assert delta("payout_provider_call_seconds_count", provider="razorpay") >= 30
    assert any(name == "payout_consumer_lag" for name, _ in after)
    assert any(name == "payout_poll_sweep_scanned_total" for name, _ in after)
    assert after[("payout_contained_errors_total", ())] == 0  # any would be a bug
    assert not any("m_ops" in str(labels) for _, labels in after)  # no link keys as labels

    # The lookup API and its CLI.
    key = keys[3]
    merchant_id, payout_id = key.split(":")
    found = httpx.get(f"{web(worker)}/v1/links/{merchant_id}/{payout_id}", timeout=10)
    assert found.status_code == 200, found.text
    link = found.json()
    assert (link["status"], link["connector"]) == ("created", "razorpay")
    assert link["connector_payout_id"] == created[key]["connector_payout_id"]
    assert link["url"] == created[key]["url"]
    assert link["outcome"]["event_id"] == created[key]["event_id"] and link["attempts"] >= 1
    assert "customer" not in found.text and "@" not in found.text  # no PII kept or shown
    missing = httpx.get(f"{web(worker)}/v1/links/m_ops/{run_id}-nope", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "link_not_found"
    malformed = httpx.get(f"{web(worker)}/v1/links/m_ops/bad%20id", timeout=10)
    assert malformed.status_code == 400
    assert malformed.json()["error"] == {"code": "invalid_link_key", "field": "merchant_payout_id",
                                         "message": malformed.json()["error"]["message"]}
    unknown = httpx.post(f"{web(worker)}/no/such/path", timeout=10)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    cli = subprocess.run([sys.executable, "-m", "streams", "link", merchant_id, payout_id,
                          "--url", web(worker)], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=60)
    assert cli.returncode == 0 and orjson.loads(cli.stdout)["reference"] == link["reference"]

    # CloudEvents binary mode on the wire.
    wire = await headers_of(broker.bootstrap_servers, TOPICS.created, {key.encode()})
    headers, event = wire[key.encode()]["headers"], wire[key.encode()]["value"]
    assert headers["ce_specversion"] == b"1.0" and headers["ce_id"] == event["event_id"].encode()
    assert headers["ce_type"] == b"payout-link-created"
    assert headers["ce_time"] == event["occurred_at"].encode()
    assert headers["content-type"] == b"application/json" and headers["ce_source"]

    # The whole run's log: no configured secret, no customer contact in clear.
    log = worker.log_path.read_text(errors="replace")
    assert "--- Logging error ---" not in log  # every line formats (masking included)
    for secret in configured_secrets():
        assert secret not in log
    for request in requests:
        customer = request["customer"]
        for contact in (customer.get("email"), customer.get("phone_number")):
            assert not contact or contact not in log, "unmasked PII in the worker log"


def configured_secrets() -> set[str]:
    """Every secret value of the accounts the workers run with (the dev accounts)."""
    from streams.connectors.registry import PROVIDERS

    found: set[str] = set()

    def walk(name: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(k, v)
        elif isinstance(value, list):
            for v in value:
                walk(name, v)
        elif isinstance(value, str) and any(w in name for w in ("secret", "token",
                                                                 "assertion", "key")) \
                and name != "key_id" and len(value) >= 8:
            found.add(value)

    for provider in PROVIDERS.values():
        walk("", provider.dev_account or {})
    assert "demo_secret" in found and "prism_sim_adyen_key" in found
    return found


async def test_any_worker_answers_a_lookup_from_the_owner(broker, simulator, tmp_path: Path,
                                                          run_id: str) -> None:
    """Two workers share the partitions; each link is asked of both: one answers from its
    table, the other forwards to it. Both answers are the owner's."""
    app_id = f"ops-{run_id}"
    workers = [WorkerProcess(bootstrap=broker.bootstrap_servers, provider_url=simulator.url,
                             data_dir=tmp_path / n / "data", log_path=tmp_path / n / "w.log",
                             app_id=app_id, partitions=PARTITIONS,
                             extra_env={"PAYOUT_LOG_FORMAT": "json"} if n == "a" else None)
               for n in ("a", "b")]
    try:
        for w in workers:
            w.start()
        requests = [valid_request(n, merchant_id="m_fwd", run=run_id) for n in range(16)]
        keys = [key_of(r).decode() for r in requests]
        # Each key again with another amount: an idempotency conflict, logged in the
        # link's own work (so with its correlation id) by whichever worker owns it.
        conflicts = [{**r, "event_id": f"{r['event_id'][:-4]}beef",
                      "amount": {**r["amount"], "minor_amount": r["amount"]["minor_amount"] + 1}}
                     for r in requests]
        async with OutcomeReader(broker.bootstrap_servers) as reader:
            await produce(broker.bootstrap_servers, [(key_of(r), orjson.dumps(r))
                                                     for r in [*requests, *conflicts]])
            assert await reader.wait_for(keys, DEADLINE_S) == set()

            async def conflicts_answered() -> bool:
                return all(len(reader.outcomes.for_key(k)) >= 2 for k in keys)

            assert await reader.wait_until(conflicts_answered, 60)
        for w in workers:  # both own partitions once the group has settled
            assert (await until_ok(f"{web(w)}/health/ready", 60)).status_code == 200
        served_by: set[str] = set()
        for key in keys:
            merchant_id, payout_id = key.split(":")
            answers: list[Any] = []
            # A partition moved while its links settled: the new owner's record says
            # `creating` until it has read the link's request again (looked the link up
            # after the old owner's call window), then `created`. Asked until settled.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                answers = []
                for w in workers:
                    answer = await until_ok(f"{web(w)}/v1/links/{merchant_id}/{payout_id}", 30)
                    assert answer.status_code == 200, answer.text
                    answers.append(answer.json())
                if all(a["status"] == "created" for a in answers):
                    break
                await asyncio.sleep(0.5)
            assert answers[0] == answers[1], (key, answers)  # the same record, from its owner
            assert answers[0]["status"] == "created", (key, answers)
            served_by.add(answers[0]["served_by"])
        assert len(served_by) == 2  # 16 links over 4 partitions: both workers own some
        # Worker a logs JSON lines; those about a link carry its reference.
        lines = [orjson.loads(line) for line in workers[0].log_path.read_text().splitlines()
                 if line.startswith("{")]
        assert lines and all({"ts", "level", "logger", "message"} <= set(x) for x in lines)
        assert any((x.get("correlation_id") or "").startswith("pl2_") for x in lines)
    finally:
        for w in workers:
            w.stop()
