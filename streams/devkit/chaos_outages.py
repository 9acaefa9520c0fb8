"""``make chaos``, phase 3: long outages, and what a request gets in each.

Three outages overlap in one run of about seven minutes (issue 10):

* **the default provider answers 503 to every call for 5 minutes** (its simulator's
  ``outage_status``). A 5xx on a create may come from a gateway after the provider
  committed the link, so a create that got one is in doubt: looked up, parked as
  unresolved after the settlement budget (60 s), re-driven on the unresolved cadence
  until the provider answers. Once 50 answers in a row were unhealthy the circuit
  breaker opens, and the creates it refuses provably never left the worker.
  **Promise: a request whose create reached the provider ends ``payout-link-created``,
  once, after the outage; one that never got past the open breaker ends
  ``payout-link-failed`` with ``retries_exhausted`` after 60 s (nothing exists at the
  provider: safe to send again under a new payout id); no other failure, and never a
  failure for a link that exists.** (Measured: 59 created, 157 ``retries_exhausted``.)
* **another provider refuses connections for 5 minutes** (a proxy in front of its
  simulator in refuse mode, :mod:`streams.devkit.netcut`). A refused connection
  provably sent nothing. **Promise: a request ends ``payout-link-failed`` with
  ``retries_exhausted`` once 8 attempts or 60 s have all been refused (nothing exists
  at the provider: safe to send again under a new payout id), or
  ``payout-link-created`` if an attempt got through; never any other failure, never a
  link behind a failure.** A link already in doubt when the refusals begin stays
  unresolved and is re-driven until the provider answers.
* **Kafka is down for 2 minutes** inside both. Workers may exit (the supervisor restarts
  them, as Kubernetes would); producers retry. **Promise: every request still gets
  exactly one outcome, late.**

The other providers (Cashgram, Prism) stay healthy throughout. The checker is the phase-1 checker plus
the promises above, counted per provider from the outcome events' ``connector``.
"""
from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from streams.connectors.registry import PROVIDERS
from streams.devkit.broker import Broker
from streams.devkit.chaos import (
    ChaosConfig,
    Input,
    Report,
    RunLog,
    _paced_produce,
    _supervise,
    await_outcomes,
    check,
    plan_inputs,
    print_report,
    provider_ledger,
    worker_env,
)
from streams.devkit.harness import TOPICS, OutcomeReader, Outcomes, WorkerProcess, create_topics
from streams.devkit.netcut import TcpProxy
from streams.devkit.sims.fleet import SimulatorFleet


@dataclass(frozen=True)
class OutageChaos:
    requests: int = 900
    produce_seconds: float = 330.0
    provider_outage_s: float = 300.0
    kafka_outage_s: float = 120.0
    provider_outage_at_s: float = 15.0  # after producing began
    kafka_outage_at_s: float = 90.0
    # The default provider answers 503; Revolut (the last HTTP provider) refuses
    # connections. Not Prism: one demo merchant's Prism connector refuses every link by
    # design (connector_flow_not_supported), which this phase's promises don't describe.
    answering_503: str = field(default_factory=lambda: next(iter(PROVIDERS)))
    refusing: str = field(default_factory=lambda: "revolut" if "revolut" in PROVIDERS
                          else list(PROVIDERS)[-1])
    partitions: int = 8
    deadline_s: float = 400.0
    seed: int = 11


@dataclass
class OutageVerdict:
    by_provider: dict[str, Counter[str]] = field(default_factory=dict)
    broken_promises: list[str] = field(default_factory=list)

    def line(self) -> str:
        shares = "; ".join(f"{name}: " + ", ".join(f"{n} {what}" for what, n in sorted(c.items()))
                           for name, c in sorted(self.by_provider.items()))
        return f"{shares}; {len(self.broken_promises)} broken promises"


def judge(oc: OutageChaos, inputs: list[Input], outcomes: Outcomes) -> OutageVerdict:
    """Each link outcome against the promise of its provider's outage (module docstring)."""
    verdict = OutageVerdict()
    keys = {i.answer_key for i in inputs if i.kind == "valid"}
    seen: set[str] = set()
    for topic in (TOPICS.created, TOPICS.failed):
        for e in outcomes.by_topic.get(topic, []):
            if (e.get("link_key") not in keys or e.get("scope", "link") != "link"
                    or e["event_id"] in seen):
                continue
            seen.add(e["event_id"])
            connector = e.get("connector") or "?"
            what = "created" if topic == TOPICS.created else f"failed:{e['error']['code']}"
            verdict.by_provider.setdefault(connector, Counter())[what] += 1
            # A failure for a link that exists is caught by chaos.check (false failures).
            if connector in (oc.answering_503, oc.refusing) and what not in (
                    "created", "failed:retries_exhausted"):
                verdict.broken_promises.append(f"{e['link_key']}: {what} during an outage")
    return verdict


def _refusing_proxy(fleet: SimulatorFleet, name: str) -> tuple[TcpProxy, str]:
    """A proxy in front of ``name``'s simulator, and the base URL that goes through it."""
    url = urlsplit(fleet[name].worker_url)
    assert url.hostname is not None and url.port is not None
    proxy = TcpProxy(url.hostname, url.port)
    proxy.start()
    return proxy, url._replace(netloc=proxy.address).geturl()


async def run_outage_phase(oc: OutageChaos, broker: Broker, fleet: SimulatorFleet,
                           workdir: Path) -> tuple[Report, OutageVerdict]:
    run_id = uuid.uuid4().hex[:8]
    rng = random.Random(oc.seed)
    inputs = plan_inputs(ChaosConfig(requests=oc.requests, poison=0, seed=oc.seed), run_id)
    await create_topics(broker.bootstrap_servers, oc.partitions)
    for sim in fleet.by_provider.values():  # only the outages below: nothing else fails
        sim.configure(latency_ms=40.0, jitter_ms=20.0, error_5xx=0.0,
                      throttle_429=0.0, lost_after_create=0.0, timeout_before_create=0.0)
    proxy, refusing_url = _refusing_proxy(fleet, oc.refusing)
    env = worker_env(fleet) | {PROVIDERS[oc.refusing].base_url_env: refusing_url}
    worker = WorkerProcess(bootstrap=broker.bootstrap_servers, provider_url="",
                           data_dir=workdir / "outages-0", log_path=workdir / "outages-0.log",
                           app_id=f"chaos-outages-{run_id}", partitions=oc.partitions,
                           extra_env=env)
    log = RunLog()
    stop = asyncio.Event()
    started = time.monotonic()
    answering = fleet[oc.answering_503]
    try:
        await asyncio.to_thread(worker.start)
        async with OutcomeReader(broker.bootstrap_servers) as reader:
            locks = {0: asyncio.Lock()}
            supervisor = asyncio.create_task(_supervise([worker], locks, stop, log))
            producing = asyncio.create_task(
                _paced_produce(broker.bootstrap_servers, inputs, oc.produce_seconds))
            t0 = time.monotonic()

            async def at(offset_s: float) -> None:
                await asyncio.sleep(max(0.0, t0 + offset_s - time.monotonic()))  # the schedule

            await at(oc.provider_outage_at_s)
            await asyncio.to_thread(answering.configure, outage_status=503)
            proxy.cut("refuse")
            log.append(f"{oc.answering_503} answers 503 and {oc.refusing} refuses connections "
                       f"for {oc.provider_outage_s:.0f} s")
            await at(oc.kafka_outage_at_s)
            async with locks[0]:
                await asyncio.to_thread(broker.stop)
            log.append(f"kafka stopped for {oc.kafka_outage_s:.0f} s")
            await at(oc.kafka_outage_at_s + oc.kafka_outage_s + rng.uniform(0, 1))
            await asyncio.to_thread(broker.start)
            log.append("kafka started")
            await at(oc.provider_outage_at_s + oc.provider_outage_s)
            await asyncio.to_thread(answering.configure, outage_status=0)
            proxy.restore()
            log.append("both providers answer again")
            await producing
            log.append("all inputs produced; waiting for outcomes")
            await await_outcomes(reader, inputs, oc.deadline_s)
            stop.set()
            await supervisor
            outcomes = reader.outcomes
    finally:
        stop.set()
        worker.stop()
        proxy.stop()
        try:
            answering.configure(outage_status=0)
        except Exception:  # the simulator may be gone already; it is stopped by its owner
            pass
    report = check(inputs, outcomes, provider_ledger(fleet), oc.partitions)
    verdict = judge(oc, inputs, outcomes)
    extra: Mapping[str, Any] = {
        "worker restarts (exited by itself)": sum(1 for line in log if "by itself" in line),
        "link outcomes by provider": verdict.line(),
        "wall time": f"{time.monotonic() - started:.0f}s"}
    print_report(report, extra)
    for item in verdict.broken_promises[:10]:
        print(f"  broken promise: {item}")
    print(f"outage phase: {verdict.line()}", flush=True)
    return report, verdict
