"""Issue 13 on a real broker: lookup API (any worker answers), health, /metrics counted
against the outcomes produced, CloudEvents headers on the wire, JSON errors at the edge."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from streams.devkit.harness import REPO_ROOT, TOPICS, OutcomeReader, WorkerProcess, produce
from streams.devkit.traffic import invalid_request, key_of, valid_request
from tests.integration.conftest import PARTITIONS

DEADLINE_S = 90


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
    before = scrape(worker)
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
    assert delta("payout_requests_total", result="valid") == 31
    assert delta("payout_requests_total", result="invalid") == 1
    assert delta("payout_provider_calls_total", provider="razorpay", result="linkcreated",
                 status="") + delta("payout_provider_calls_total", provider="razorpay",
                                    result="linkcreated", status="200") == 30
    assert delta("payout_provider_call_seconds_count", provider="razorpay") >= 30
    assert any(name == "payout_consumer_lag" for name, _ in after)
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


async def test_any_worker_answers_a_lookup_from_the_owner(broker, simulator, tmp_path: Path,
                                                          run_id: str) -> None:
    """Two workers share the partitions; each link is asked of both: one answers from its
    table, the other forwards to it. Both answers are the owner's."""
    app_id = f"ops-{run_id}"
    workers = [WorkerProcess(bootstrap=broker.bootstrap_servers, provider_url=simulator.url,
                             data_dir=tmp_path / n / "data", log_path=tmp_path / n / "w.log",
                             app_id=app_id, partitions=PARTITIONS) for n in ("a", "b")]
    try:
        for w in workers:
            w.start()
        requests = [valid_request(n, merchant_id="m_fwd", run=run_id) for n in range(16)]
        keys = [key_of(r).decode() for r in requests]
        async with OutcomeReader(broker.bootstrap_servers) as reader:
            await produce(broker.bootstrap_servers, [(key_of(r), orjson.dumps(r))
                                                     for r in requests])
            assert await reader.wait_for(keys, DEADLINE_S) == set()
        for w in workers:  # both own partitions once the group has settled
            assert (await until_ok(f"{web(w)}/health/ready", 60)).status_code == 200
        served_by: set[str] = set()
        for key in keys:
            merchant_id, payout_id = key.split(":")
            answers: list[Any] = []
            for w in workers:
                answer = await until_ok(f"{web(w)}/v1/links/{merchant_id}/{payout_id}", 30)
                assert answer.status_code == 200, answer.text
                answers.append(answer.json())
            assert answers[0] == answers[1]  # the same record, from its owner
            served_by.add(answers[0]["served_by"])
        assert len(served_by) == 2  # 16 links over 4 partitions: both workers own some
    finally:
        for w in workers:
            w.stop()
