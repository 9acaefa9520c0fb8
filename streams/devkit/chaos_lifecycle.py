"""``make chaos``, phase 4: the links' life after creation, under faults and kills.

Requests for every provider are created first (with the kills phase's provider faults).
Then every simulator walks each of those links along a random path of its real
lifecycle — claimed, paid out, failed and reopened, reversed, expired, cancelled —
sending signed webhooks through an ingress (a round-robin proxy in front of the
workers, as a load balancer would be) with faults: duplicated, delayed so that a
link's webhooks arrive out of order, dropped (only a poll can catch those), forged
(a wrong secret or a tampered body), re-serialized. Meanwhile workers are SIGKILLed and
restarted, and a share of the links get a ``payout-link-cancel-requested`` command that
races the walk. Prism sends no webhooks: its links are followed by polls alone.

The checker requires: every request still one outcome and one link (phase 1's
checker); every link's last status event equal to its provider's final status (the
providers' truth, read from the simulators); no duplicate change and no event id with
two contents; every cancel command answered exactly once (a change or a refusal); and
no forged webhook accepted (each answered 401, or 503 while no worker was up).
"""
from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from streams import events
from streams.devkit.broker import Broker
from streams.devkit.chaos import (
    Input,
    Report,
    RunLog,
    _start,
    _supervise,
    await_outcomes,
    check,
    merchant_request,
    provider_ledger,
    worker_env,
)
from streams.devkit.harness import TOPICS, OutcomeReader, WorkerProcess, create_topics, produce
from streams.devkit.lifecycle_check import LifeVerdict, check_lifecycle
from streams.devkit.sims.fleet import SimulatorFleet
from streams.devkit.traffic import key_of

LIFE_TOPICS = (TOPICS.created, TOPICS.failed, TOPICS.dead_letter, TOPICS.status_changed,
               TOPICS.cancel_failed)


@dataclass(frozen=True)
class LifecycleChaos:
    seed: int = 7
    requests: int = 600
    workers: int = 2
    kills: int = 3
    cancel_ratio: float = 0.06
    partitions: int = 8
    deadline_s: float = 300.0
    step_delay_ms: float = 60.0
    walk_batches: int = 12  # the walk is spread over time: a batch every second
    webhook: Mapping[str, Any] = field(default_factory=lambda: {
        "webhook_duplicate": 0.1, "webhook_drop": 0.05, "webhook_delay_ms": 800,
        "webhook_forge": 0.1, "webhook_reserialize": 0.2, "webhook_retries": 2,
        "webhook_retry_ms": 300})


class Ingress:
    """A round-robin HTTP proxy in front of the workers' web servers (a load balancer):
    a provider's webhook reaches whichever worker is up; none up → 503 (it retries)."""

    def __init__(self, workers: Sequence[WorkerProcess]) -> None:
        self.workers = workers
        self._next = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0
        self.forwarded = 0
        self.unavailable = 0

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=6))
        return f"http://127.0.0.1:{self.port}"

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in ("host", "content-length", "transfer-encoding")}
        assert self._session is not None
        for _ in range(len(self.workers)):
            worker = self.workers[self._next % len(self.workers)]
            self._next += 1
            if worker.pid is None or worker.exited_unexpectedly():
                continue
            url = f"http://127.0.0.1:{worker.env['PAYOUT_WEB_PORT']}{request.path_qs}"
            try:
                async with self._session.post(url, data=body, headers=headers) as resp:
                    answer = await resp.read()
                    self.forwarded += 1
                    return web.Response(status=resp.status, body=answer,
                                        content_type=resp.content_type)
            except (aiohttp.ClientError, TimeoutError):
                continue
        self.unavailable += 1
        return web.Response(status=503, text="no worker is up")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()


def _cancel_command(key: str, run_id: str, n: int) -> tuple[bytes, bytes]:
    merchant, payout = events.split_link_key(key)
    return key.encode(), orjson.dumps({
        "event_id": f"chaos-cancel-{run_id}-{n}", "event_type": events.CANCEL_REQUESTED,
        "schema_version": 1, "merchant_id": merchant, "merchant_payout_id": payout,
        "reason": "chaos: cancel racing the recipient"})


@dataclass
class LifecycleReport:
    creation: Report
    life: LifeVerdict
    cancels_sent: int = 0
    cancels_answered_once: int = 0
    cancel_answers: dict[str, int] = field(default_factory=dict)
    forged_sent: int = 0
    forged_refused: int = 0
    forged_unavailable: int = 0
    forged_accepted: int = 0
    webhooks_delivered: int = 0
    kills: int = 0

    @property
    def ok(self) -> bool:
        return (self.creation.ok and self.life.ok and self.forged_accepted == 0
                and self.cancels_answered_once == self.cancels_sent)

    def line(self) -> str:
        answers = ", ".join(f"{k} {v}" for k, v in sorted(self.cancel_answers.items()))
        return (f"{self.life.line()}; cancels: {self.cancels_sent} sent, "
                f"{self.cancels_answered_once} answered once ({answers}); forged webhooks: "
                f"{self.forged_sent} sent, {self.forged_refused} refused 401, "
                f"{self.forged_unavailable} met no worker, {self.forged_accepted} accepted; "
                f"{self.kills} workers killed")


async def _kill_during(workers: list[WorkerProcess], locks: dict[int, asyncio.Lock],
                       kills: int, rng: random.Random, log: list[str]) -> int:
    """SIGKILL ``kills`` workers a few seconds apart, each restarted at once: while the
    providers walk the links and while their webhooks and polls are still arriving."""
    done = 0
    while done < kills:
        await asyncio.sleep(rng.uniform(1.0, 4.0))
        index = rng.randrange(len(workers))
        async with locks[index]:
            victim = workers[index]
            pid = victim.pid
            victim.kill()
            done += 1
            log.append(f"kill {done}: worker pid {pid} SIGKILLed")
            if await _start(victim, log):
                log.append("worker restarted")
    return done


async def run_lifecycle_phase(cfg: LifecycleChaos, broker: Broker, fleet: SimulatorFleet,
                              workdir: Path) -> LifecycleReport:
    run_id = uuid.uuid4().hex[:8]
    rng = random.Random(cfg.seed)
    await create_topics(broker.bootstrap_servers, cfg.partitions)
    env = {**worker_env(fleet), "PAYOUT_POLL_MIN_S": "2", "PAYOUT_POLL_MAX_S": "8",
           "PAYOUT_REVERSAL_POLL_S": "8", "PAYOUT_POLL_RATE_PER_S": "200"}
    workers = [WorkerProcess(bootstrap=broker.bootstrap_servers, provider_url="",
                             data_dir=workdir / f"life-worker-{i}",
                             log_path=workdir / f"life-worker-{i}.log",
                             app_id=f"chaos-life-{run_id}", partitions=cfg.partitions,
                             extra_env=env) for i in range(cfg.workers)]
    requests = [merchant_request(n, f"life-{run_id}") for n in range(cfg.requests)]
    inputs = [Input("valid", key_of(r), orjson.dumps(r), key_of(r).decode()) for r in requests]
    log = RunLog()
    ingress = Ingress(workers)
    stop = asyncio.Event()
    kills = 0
    try:
        for w in workers:
            await asyncio.to_thread(w.start)
        url = await ingress.start()
        await asyncio.to_thread(fleet.send_webhooks_to, url + "/webhooks/{provider}",
                                **cfg.webhook)
        async with OutcomeReader(broker.bootstrap_servers, LIFE_TOPICS) as reader:
            locks = {i: asyncio.Lock() for i in range(len(workers))}
            supervisor = asyncio.create_task(_supervise(workers, locks, stop, log))
            await produce(broker.bootstrap_servers, [(i.key, i.value) for i in inputs])
            await await_outcomes(reader, inputs, cfg.deadline_s)
            created = [e for e in reader.outcomes.by_topic.get(TOPICS.created, [])
                       if e["link_key"] in {i.answer_key for i in inputs}]
            created = list({e["event_id"]: e for e in created}.values())
            log.append(f"{len(created)} links created; walking them at their providers")
            references = sorted({e["reference"] for e in created})
            walking = asyncio.ensure_future(_walk_spread(fleet, cfg, references))
            killer = asyncio.create_task(_kill_during(workers, locks, cfg.kills, rng, log))
            chosen = rng.sample([e["link_key"] for e in created],
                                int(len(created) * cfg.cancel_ratio))
            commands = [_cancel_command(key, run_id, n) for n, key in enumerate(chosen)]
            await produce(broker.bootstrap_servers, commands, topic=TOPICS.cancel_requested)
            log.append(f"{len(commands)} cancel commands sent, racing the walk")
            await walking
            log.append("walk done")
            kills = await killer
            log.append("waiting until every link's status is its provider's")

            def verdict() -> LifeVerdict:
                truth = {ref: info["status"] for by_ref in fleet.statuses().values()
                         for ref, info in by_ref.items() if ref in set(references)}
                return check_lifecycle(created, reader.outcomes.by_topic.get(
                    TOPICS.status_changed, []), truth)

            async def settled() -> bool:
                return not (await asyncio.to_thread(verdict)).drift

            await reader.wait_until(settled, cfg.deadline_s)
            await asyncio.to_thread(fleet.drain_webhooks, 120)
            command_ids = {orjson.loads(v)["event_id"] for _, v in commands}

            async def cancels_answered() -> bool:
                return len(_answers(reader, command_ids)) >= len(command_ids)

            await reader.wait_until(cancels_answered, 60)
            await reader.wait_until(settled, 60)
            life = await asyncio.to_thread(verdict)
            answers = _answers(reader, command_ids)
            stop.set()
            await supervisor
            outcomes = reader.outcomes
    finally:
        stop.set()
        await asyncio.to_thread(fleet.send_webhooks_to, None)
        await ingress.close()
        for w in workers:
            w.stop()
    creation = check(inputs, outcomes, provider_ledger(fleet), cfg.partitions)
    report = LifecycleReport(creation=creation, life=life, cancels_sent=len(command_ids),
                             kills=kills)
    for command_id in command_ids:
        mine = answers.get(command_id, {})
        if len(mine) == 1:
            report.cancels_answered_once += 1
            (answer,) = mine.values()
            kind = answer.get("payout_status") if answer["event_type"] == TOPICS.status_changed \
                else answer["error"]["code"]
            report.cancel_answers[str(kind)] = report.cancel_answers.get(str(kind), 0) + 1
    for hooks in (await asyncio.to_thread(fleet.webhooks)).values():
        counts = hooks.get("counts", {})
        report.forged_sent += int(counts.get("forged_sent", 0))
        report.forged_refused += int(counts.get("forged_answered_401", 0))
        report.forged_accepted += int(counts.get("forged_accepted", 0))
        report.webhooks_delivered += int(counts.get("delivered", 0))
        for record in hooks.get("webhooks", []):
            if record.get("forged") and record.get("last_status") == 503:
                report.forged_unavailable += 1
    print(f"\nlifecycle phase: {life.line()}")
    print(f"provider final statuses: {dict(sorted(life.finals.items()))}")
    print(f"webhooks delivered {report.webhooks_delivered}, ingress forwarded "
          f"{ingress.forwarded}, met no worker {ingress.unavailable}")
    for key, ours, theirs in life.drift[:10]:
        print(f"  drift: {key}: ours {ours}, provider {theirs}")
    print(creation.final_line(), flush=True)
    return report


async def _walk_spread(fleet: SimulatorFleet, cfg: LifecycleChaos,
                       references: list[str]) -> None:
    """Walk the links in batches a second apart (in a shuffled order), so that cancel
    commands sent at the start race recipients who claim during the walk."""
    shuffled = list(references)
    random.Random(cfg.seed).shuffle(shuffled)
    size = max(1, -(-len(shuffled) // cfg.walk_batches))
    for start in range(0, len(shuffled), size):
        await asyncio.to_thread(fleet.walk, seed=cfg.seed, references=shuffled[start:start + size],
                                step_delay_ms=cfg.step_delay_ms, timeout=cfg.deadline_s)
        await asyncio.sleep(1.0)


def _answers(reader: OutcomeReader, command_ids: set[str]) -> dict[str, dict[str, Any]]:
    """command id -> its distinct answers (by event id): changes and refusals."""
    out: dict[str, dict[str, Any]] = {}
    for topic in (TOPICS.status_changed, TOPICS.cancel_failed):
        for event in reader.outcomes.by_topic.get(topic, []):
            command_id = event.get("command_event_id")
            if command_id in command_ids:
                out.setdefault(command_id, {})[event["event_id"]] = event
    return out


__all__ = ["LifecycleChaos", "LifecycleReport", "run_lifecycle_phase"]
