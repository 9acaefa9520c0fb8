"""``make chaos``, phase 2: two workers, paused and cut off from Kafka, slow creates.

What this phase is for (issue 10): a worker that is frozen (SIGSTOP: a long GC or VM
pause) or loses Kafka while it has creates queued or in flight must never make a second
link once another worker has taken its partitions over, and the new owner must never
stall. Two workers share the group; worker 1 reaches Kafka only through the launcher's
cuttable listener (:mod:`streams.devkit.netcut`), so it can be cut off from Kafka while
it still reaches the providers. Creates are slow and queue behind each worker's rate
limit, responses are lost after the link was made, and no simulator honours an
idempotency key except Cashgram (whose cashgramId is one by nature). Pauses and
cut-offs last longer than the 6 s session, so every one hands partitions over.

The checker is the phase-1 checker (one outcome per input, one link per key at the
providers, no false failures) plus the count of outcome events that share an event_id
but differ in content; hand-overs of in-doubt links and their waits are read from the
workers' logs (``streams.processor._wait_out_previous_owner``).
"""
from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.devkit.broker import Broker
from streams.devkit.chaos import (
    ChaosConfig,
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
from streams.devkit.harness import OutcomeReader, WorkerProcess, create_topics
from streams.devkit.sims.fleet import SimulatorFleet

HANDOVER = re.compile(r"link (\S+) is in doubt on \S+, taken over [\d.]+ s ago: "
                      r"waiting ([\d.]+) s")


@dataclass(frozen=True)
class FencingChaos:
    requests: int = 1200
    produce_seconds: float = 90.0
    pauses: int = 3
    cutoffs: int = 3
    # Each longer than the 6 s session (worker_env): the group gives the partitions away.
    outage_s: tuple[float, float] = (8.0, 14.0)
    latency_ms: float = 400.0
    jitter_ms: float = 400.0
    faults: Mapping[str, float] = field(default_factory=lambda: {
        "lost_after_create": 0.05, "error_5xx": 0.02, "throttle_429": 0.02,
        "timeout_before_create": 0.01})
    # Per worker and provider: creates queue behind it while the worker is frozen.
    rate_per_s: float = 12.0
    partitions: int = 8
    deadline_s: float = 300.0
    seed: int = 7


@dataclass
class HandOvers:
    links: int = 0  # distinct links whose lookup waited out a previous owner
    waits_s: list[float] = field(default_factory=list)  # every such wait
    fenced: int = 0  # "fenced:" lines: a worker stopped work it no longer provably owned
    abandoned_at_rebalance: int = 0

    @classmethod
    def from_logs(cls, logs: list[str]) -> HandOvers:
        found = cls()
        keys: set[str] = set()
        for text in logs:
            for key, wait in HANDOVER.findall(text):
                keys.add(key)
                found.waits_s.append(float(wait))
            found.fenced += text.count("fenced: ")
            found.abandoned_at_rebalance += text.count("rebalance: abandoned")
        found.links = len(keys)
        return found

    def line(self) -> str:
        waits = (f"max {max(self.waits_s):.1f} s, mean {sum(self.waits_s) / len(self.waits_s):.1f} s"
                 if self.waits_s else "none")
        return (f"{self.links} in-doubt links handed over, {len(self.waits_s)} hand-over "
                f"waits ({waits}); "
                f"{self.fenced} fencings, {self.abandoned_at_rebalance} abandons at a rebalance")


def _configure(fleet: SimulatorFleet, **patch: Any) -> None:
    for sim in fleet.by_provider.values():
        sim.configure(**patch)


async def _disrupt(pc: FencingChaos, broker: Broker, workers: list[WorkerProcess],
                   locks: dict[int, asyncio.Lock], reader: OutcomeReader, rng: random.Random,
                   log: RunLog, answer_keys: int) -> None:
    """Pauses of either worker and cut-offs of worker 1, alternating, mid-flow."""
    proxy = getattr(broker, "proxy", None)
    assert proxy is not None, "phase 2 needs the launcher's cuttable listener"
    plan = ["pause"] * pc.pauses + ["cut"] * pc.cutoffs
    rng.shuffle(plan)
    for n, what in enumerate(plan, 1):
        seen = len(reader.outcomes.arrival)

        async def progressed(seen: int = seen) -> bool:
            arrived = len(reader.outcomes.arrival)
            return arrived > seen + 20 or arrived >= answer_keys

        await reader.wait_until(progressed, 90)
        await asyncio.sleep(rng.uniform(0.5, 3.0))  # a random moment mid-flow
        length = rng.uniform(*pc.outage_s)
        if what == "pause":
            index = rng.randrange(len(workers))
            async with locks[index]:
                pid = workers[index].pid
                if pid is None:
                    continue
                os.kill(pid, signal.SIGSTOP)
                log.append(f"disruption {n}: worker {index} (pid {pid}) frozen for {length:.1f} s "
                           f"with {len(reader.outcomes.arrival)} inputs answered")
                try:
                    await asyncio.sleep(length)  # the pause itself
                finally:
                    os.kill(pid, signal.SIGCONT)
                log.append(f"disruption {n}: worker {index} resumed")
        else:
            proxy.cut("blackhole")
            log.append(f"disruption {n}: worker 1 cut off from Kafka for {length:.1f} s "
                       f"with {len(reader.outcomes.arrival)} inputs answered")
            try:
                await asyncio.sleep(length)  # the partition itself
            finally:
                proxy.restore()
            log.append(f"disruption {n}: worker 1 reconnected")


async def run_fencing_phase(pc: FencingChaos, broker: Broker, fleet: SimulatorFleet,
                            workdir: Path) -> tuple[Report, HandOvers]:
    run_id = uuid.uuid4().hex[:8]
    rng = random.Random(pc.seed)
    inputs = plan_inputs(ChaosConfig(requests=pc.requests, poison=0, seed=pc.seed), run_id)
    await create_topics(broker.bootstrap_servers, pc.partitions)
    env = worker_env(fleet) | {"PAYOUT_PROVIDER_RATE_PER_S": str(pc.rate_per_s)}
    cuttable = getattr(broker, "cuttable_bootstrap", None)
    assert cuttable, "phase 2 needs the launcher's cuttable listener"
    workers = [WorkerProcess(bootstrap=bootstrap, provider_url="",
                             data_dir=workdir / f"fencing-{i}", log_path=workdir / f"fencing-{i}.log",
                             app_id=f"chaos-fencing-{run_id}", partitions=pc.partitions,
                             extra_env=env)
               for i, bootstrap in enumerate((broker.bootstrap_servers, cuttable))]
    log = RunLog()
    stop = asyncio.Event()
    started = time.monotonic()
    _configure(fleet, latency_ms=pc.latency_ms, jitter_ms=pc.jitter_ms, **pc.faults)
    try:
        for w in workers:
            await asyncio.to_thread(w.start)
        async with OutcomeReader(broker.bootstrap_servers) as reader:
            locks = {i: asyncio.Lock() for i in range(len(workers))}
            supervisor = asyncio.create_task(_supervise(workers, locks, stop, log))
            producing = asyncio.create_task(
                _paced_produce(broker.bootstrap_servers, inputs, pc.produce_seconds))
            await _disrupt(pc, broker, workers, locks, reader, rng, log,
                           len({i.answer_key for i in inputs}))
            await producing
            log.append("all inputs produced; waiting for outcomes")
            await await_outcomes(reader, inputs, pc.deadline_s)
            stop.set()
            await supervisor
            outcomes = reader.outcomes
    finally:
        stop.set()
        for w in workers:
            if w.pid is not None:
                try:
                    os.kill(w.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            w.stop()
    handovers = HandOvers.from_logs([w.log_path.read_text(errors="replace")
                                     for w in workers if w.log_path.exists()])
    report = check(inputs, outcomes, provider_ledger(fleet), pc.partitions)
    print_report(report, {
        "disruptions": sum(1 for line in log if " frozen " in line or " cut off " in line),
        "self-exited workers restarted": sum(1 for line in log if "by itself" in line),
        "hand-overs": handovers.line(),
        "wall time": f"{time.monotonic() - started:.0f}s"})
    print(f"fencing phase: {handovers.line()}", flush=True)
    return report, handovers


__all__ = ["FencingChaos", "HandOvers", "run_fencing_phase"]
