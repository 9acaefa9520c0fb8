"""Reconciliation on a real broker with every provider's simulator: one of each class.

A worker settles ordinary traffic over all four providers; then, with the worker
stopped, each discrepancy is planted the way it happens in production:

* **lost** -- a request nobody answered;
* **orphan** -- a request whose link exists at RazorpayX (an attempt whose answer and
  record were lost) and no outcome;
* **false failure** -- a link-scope failure published for a link RazorpayX holds;
* **mismatch** -- a created event whose link RazorpayX holds for another amount;
* **duplicate** -- a second terminal outcome (a link failure) for a created link;
* **drift** -- a created link RazorpayX paid out without telling us;
* **unknown at provider** -- a created event for a link RazorpayX never had.

``python -m streams reconcile`` must find each exactly once, everything else matched,
and exit 1 (money danger). Then ``--repair`` with the worker running settles the lost
request and adopts the orphan without a second link; a second repair re-drives nothing.
"""
from __future__ import annotations

import asyncio
import csv
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from streams import events
from streams.connectors.base import link_reference
from streams.connectors.registry import PROVIDERS
from streams.devkit.broker import Broker
from streams.devkit.harness import REPO_ROOT, TOPICS, OutcomeReader, WorkerProcess, produce
from streams.devkit.sims.fleet import SimulatorFleet
from streams.devkit.traffic import DEMO_MERCHANTS, key_of, mixed_records, valid_request
from tests.integration.conftest import (
    every_provider_worker,
    running_from_topics_end,
    skip_history,
    utc_stamp,
)

pytestmark = pytest.mark.timeout(600)

PLANTED = ("lost", "orphan", "false_failure", "mismatch", "duplicate", "drift",
           "unknown_at_provider")


@dataclass
class Scene:
    env: dict[str, str]
    since: str
    fleet: SimulatorFleet
    worker: WorkerProcess
    planted: dict[str, str]  # class -> link key
    traffic: list[str]  # the ordinary links' keys
    out: Path


def _reconcile(scene: Scene, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # This test's merchants only: the broker is shared, and the module before this one
    # may publish its last outcomes within this window's first second.
    merchants = [arg for m, _ in DEMO_MERCHANTS for arg in ("--merchant", m)]
    return subprocess.run(
        [sys.executable, "-m", "streams", "reconcile", "--since", scene.since, "--grace", "5",
         "--out", str(out), "--no-progress", *merchants, *extra],
        cwd=REPO_ROOT, env=scene.env, capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL)


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "exceptions.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _razorpay_link(fleet: SimulatorFleet, request: Mapping[str, Any], *,
                   amount: int | None = None) -> str:
    """A link made at the RazorpayX simulator under the request's reference, the way
    the processor's own create call makes it (an attempt whose answer was lost)."""
    provider = PROVIDERS["razorpay"]
    assert provider.dev_account is not None
    account = provider.parse_account(provider.dev_account)
    call = provider.prepare(request, link_reference(key_of(dict(request)).decode()), account)
    body = dict(call.json)
    if amount is not None:
        body["amount"] = amount
    answer = httpx.post(fleet["razorpay"].url + call.path, json=body,
                        headers={"Authorization": account.basic_header}, timeout=10)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def _created(request: Mapping[str, Any], link_id: str) -> dict[str, Any]:
    return events.created_event(
        request, connector="razorpay", connector_payout_id=link_id,
        url=f"https://rzp.io/i/{link_id}", payout_status="REQUIRES_PAYOUT_METHOD_DATA",
        connector_status="issued", reference=link_reference(key_of(dict(request)).decode()),
        expires_at=None)


def _link_failed(request: Mapping[str, Any]) -> dict[str, Any]:
    return events.failed_event(request, code="provider_rejected", message="planted",
                               field=None, status_code=400, connector="razorpay")


@pytest.fixture(scope="module")
def scene(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    workdir = tmp_path_factory.mktemp("reconcile")
    run = f"rc{os.getpid() % 1000}{int(time.time()) % 100000}"
    since = utc_stamp(-1)
    with SimulatorFleet(latency_ms=2, jitter_ms=1) as fleet:
        worker = every_provider_worker(broker, fleet, workdir, f"payout-links-reconcile-{run}")
        with running_from_topics_end(worker):
            records = [(k, v) for k, v, kind in mixed_records(60, run=run, invalid_every=29,
                                                             garbage_at=(45,))]
            traffic = [k.decode() for k, _, kind in mixed_records(60, run=run, invalid_every=29,
                                                                  garbage_at=(45,))
                       if kind == "valid"]
            asyncio.run(_settle(broker.bootstrap_servers, records, traffic))
            worker.stop()
            planted = asyncio.run(_plant(broker.bootstrap_servers, fleet, run, traffic))
            env = {**worker.env}
            # The planted requests are skipped, as an operator's offset move skips them:
            # the restarted worker will not read them (they are lost, or orphaned).
            skip_history(env, topics=("requested",))
            yield Scene(env, since, fleet, worker, planted, traffic, workdir / "report")


async def _settle(bootstrap: str, records: list[tuple[bytes, bytes]], keys: list[str]) -> None:
    async with OutcomeReader(bootstrap) as reader:
        await produce(bootstrap, records)
        missing = await reader.wait_for(keys, 120)
    assert not missing, f"traffic not settled: {sorted(missing)[:5]}"


async def _plant(bootstrap: str, fleet: SimulatorFleet, run: str,
                 traffic: list[str]) -> dict[str, str]:
    lost, orphan, false_failure, mismatch, unknown = (
        valid_request(n, merchant_id="m_in_default", run=f"{run}-{name}")
        for n, name in enumerate(("lost", "orphan", "false", "mismatch", "unknown")))
    _razorpay_link(fleet, orphan)
    _razorpay_link(fleet, false_failure)
    mismatch_id = _razorpay_link(fleet, mismatch, amount=mismatch["amount"]["minor_amount"] + 100)
    requests = [lost, orphan, false_failure, mismatch, unknown]
    await produce(bootstrap, [(key_of(r), orjson.dumps(r)) for r in requests])
    # Two created Razorpay links of the ordinary traffic: one gets a second terminal
    # outcome, one is paid out at the provider without a word to us.
    async with OutcomeReader(bootstrap, (TOPICS.created,)) as reader:
        await reader.wait_for(traffic, 30)
        razorpay = sorted(k for k in traffic if any(
            e.get("connector") == "razorpay" for e in reader.outcomes.for_key(k)))
        duplicate_event = reader.outcomes.for_key(razorpay[0])[0]
    duplicate, drift = razorpay[0], razorpay[1]
    duplicate_request = {"merchant_id": duplicate_event["merchant_id"],
                         "merchant_payout_id": duplicate_event["merchant_payout_id"]}
    outcomes = [
        (TOPICS.failed, key_of(false_failure), _link_failed(false_failure)),
        (TOPICS.created, key_of(mismatch), _created(mismatch, mismatch_id)),
        (TOPICS.created, key_of(unknown), _created(unknown, "poutlk_NeverMadeHere1")),
        (TOPICS.failed, duplicate.encode(), _link_failed(duplicate_request)),
    ]
    for topic, key, event in outcomes:
        await produce(bootstrap, [(key, events.encode(event))], topic=topic)
    walked = await asyncio.to_thread(fleet["razorpay"].walk, seed=3,
                                     references=[link_reference(drift)],
                                     plan={"processed": 1.0})
    assert walked, "the drifted link was not walked"
    return {"lost": key_of(lost).decode(), "orphan": key_of(orphan).decode(),
            "false_failure": key_of(false_failure).decode(),
            "mismatch": key_of(mismatch).decode(), "duplicate": duplicate, "drift": drift,
            "unknown_at_provider": key_of(unknown).decode()}


@pytest.fixture(scope="module")
def first(scene: Scene) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    done = _reconcile(scene, scene.out)
    report = orjson.loads((scene.out / "reconcile.json").read_bytes()) \
        if (scene.out / "reconcile.json").exists() else {}
    return done, report


def test_each_planted_discrepancy_is_found_exactly_once(scene: Scene, first: Any) -> None:
    done, report = first
    assert done.returncode == 1, done.stdout + done.stderr  # money danger
    rows = _rows(scene.out)
    found = Counter((row["class"], row["link_key"]) for row in rows)
    for name, key in scene.planted.items():
        assert found[(name, key)] == 1, (name, key, rows)
    # Stripe behind Prism has no payout Get: its links (failed: no payout-link flow) can
    # only be unverified, never matched or lost.
    stripe = {k for k in scene.traffic if k.startswith("m_us_stripe:")}
    assert stripe and {row["link_key"] for row in rows if row["class"] == "unverified"} == stripe
    unexpected = [row for row in rows if (row["class"], row["link_key"])
                  not in {(n, k) for n, k in scene.planted.items()}
                  and row["class"] != "unverified"]
    assert unexpected == []
    assert {name: report["classes"][name] for name in PLANTED} == {name: 1 for name in PLANTED}


def test_the_ordinary_traffic_matches_at_every_provider(scene: Scene, first: Any) -> None:
    _, report = first
    stripe = sum(1 for k in scene.traffic if k.startswith("m_us_stripe:"))
    # Every valid ordinary link but the duplicate, the drift and Stripe's (unverified).
    assert report["classes"]["matched"] == len(scene.traffic) - 2 - stripe
    # The invalid requests are m_demo's, outside this run's merchants (others use m_demo).
    assert report["classes"]["request_failed"] == 0
    asked = {c["provider"]: c for c in report["providers"]}
    assert asked["razorpay"]["lists"] and asked["razorpay"]["listed"] > 0
    assert asked["revolut"]["lists"] and asked["revolut"]["listed"] > 0
    assert asked["cashfree"]["found"] > 0 and asked["prism"]["found"] > 0
    assert sum(c["unverified"] for c in report["providers"]) == \
        sum(1 for k in scene.traffic if k.startswith("m_us_stripe:"))
    assert report["dead_letters"]  # the garbage record


def test_the_verdict_line_names_the_money_danger(first: Any) -> None:
    done, _ = first
    line = done.stdout.splitlines()[0]
    assert "MONEY DANGER" in line and "1 orphan" in line and "1 false_failure" in line


def test_repair_settles_the_lost_and_adopts_the_orphan_without_a_second_link(
        scene: Scene, first: Any) -> None:
    scene.worker.start()
    repaired = _reconcile(scene, scene.out.with_name("repair"), "--repair", "--wait", "90")
    assert "repair: 2 re-driven with lookup-first (2 payout-link-created)" in repaired.stdout, \
        repaired.stdout + repaired.stderr
    held = scene.fleet.links_by_reference()["razorpay"]
    assert len(held[link_reference(scene.planted["orphan"])]) == 1  # adopted, not re-created
    assert len(held[link_reference(scene.planted["lost"])]) == 1
    again = _reconcile(scene, scene.out.with_name("again"), "--repair", "--wait", "5")
    assert "repair: 0 re-driven" in again.stdout, again.stdout
    rows = Counter(row["class"] for row in _rows(scene.out.with_name("again")))
    assert rows["lost"] == 0 and rows["orphan"] == 0
    assert rows["false_failure"] == 1 and rows["mismatch"] == 1  # not a re-drive's to mend
