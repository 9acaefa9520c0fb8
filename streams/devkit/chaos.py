"""``make chaos``: the pipeline under crashes, provider faults, duplicates and bad input.

Requests for merchants on every registered provider are produced over a while;
meanwhile workers are SIGKILLed and restarted, Kafka itself is stopped and started once,
every provider's simulator injects 5xx, 429, timeouts and responses lost after the link
was created (Cashgram's duplicate-id 409 follows those), Cashgram tokens expire all the
time and are revoked once mid-run, and Revolut's simulator does not honour request_id
idempotency (we must never depend on it). Afterwards :func:`check` reads every outcome
and every provider's ledger and accounts for each input.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from streams import events
from streams.connectors.base import link_reference
from streams.connectors.registry import PROVIDERS
from streams.devkit.broker import Broker, broker_from_environment
from streams.devkit.harness import (
    TOPICS,
    OutcomeReader,
    Outcomes,
    WorkerProcess,
    create_topics,
    outcome_key,
)
from streams.devkit.sims.cashfree import CashfreeSimulatorProcess
from streams.devkit.sims.fleet import SimulatorFleet
from streams.devkit.traffic import (
    DEMO_MERCHANTS,
    GARBAGE,
    NO_LOOKUP_MERCHANTS,
    demo_worker_env,
    invalid_request,
    key_of,
    valid_request,
)
from streams.partitioning import home_partition
from streams.preflight import require_codecs


@dataclass(frozen=True)
class ChaosConfig:
    requests: int = 5000
    kills: int = 5
    kafka_restarts: int = 1
    workers: int = 1
    restart_killed: bool = True
    standby_replicas: int = 0
    partitions: int = 8
    duplicate_ratio: float = 0.02
    conflict_ratio: float = 0.01
    malformed_ratio: float = 0.01
    faults: Mapping[str, float] = field(default_factory=lambda: {
        "error_5xx": 0.05, "throttle_429": 0.05, "lost_after_create": 0.03,
        "timeout_before_create": 0.02})  # at every provider's simulator
    cashfree_token_ttl_s: float = 20.0
    latency_ms: float = 40.0
    jitter_ms: float = 20.0
    produce_seconds: float = 30.0
    deadline_s: float = 300.0
    seed: int = 7
    # Poison records made through the test-only PAYOUT_FAULTS knob (never by weakening
    # validation): one that kills the worker in intake, one whose transform raises, one
    # whose provider answer and one whose publish raise once (after a call: unresolved,
    # then re-driven). ``poison`` of each kind.
    poison: int = 1
    # Batches rotate through every codec Kafka supports.
    codecs: tuple[str, ...] = ("none", "gzip", "snappy", "lz4", "zstd")


POISON_FAULTS = ",".join([
    "crash:validate:chaos-poison-crash", "raise:transform:chaos-poison-raise",
    "raise_once:provider_answer:chaos-poison-answer", "raise_once:publish:chaos-poison-publish",
])
# What each poison kind must end in: a request failure, or the link created once.
POISON_KINDS = {"poison-crash": "processing_error", "poison-raise": "processing_error",
                "poison-answer": "created", "poison-publish": "created"}


@dataclass(frozen=True)
class Input:
    """One record produced to payout-link-requested, and what must answer it."""

    kind: str  # valid | duplicate | conflict | invalid | garbage | poison-*
    key: bytes
    value: bytes
    answer_key: str  # the outcome key that answers it (link key, or raw key)


def merchant_request(n: int, run: str) -> dict[str, Any]:
    """Request ``n`` for one of the demo's merchants whose currency some provider serves."""
    served = {c for p in PROVIDERS.values() for c in p.currencies}
    merchants = [m for m in DEMO_MERCHANTS if m[1] in served and m[0] not in NO_LOOKUP_MERCHANTS]
    merchant, currency = merchants[n % len(merchants)]
    request = valid_request(n, merchant_id=merchant, run=run, rng=random.Random(n))
    if currency != "INR":
        request["amount"] = {"minor_amount": 500 + n % 200_000, "currency": currency}
        request.pop("purpose", None)
        request["notify"] = {"sms": False, "email": False}  # the link goes out by us
    return request


def plan_inputs(cfg: ChaosConfig, run: str) -> list[Input]:
    """Mostly valid requests; re-sends and conflicts placed after their original."""
    rng = random.Random(cfg.seed)
    n_dup = int(cfg.requests * cfg.duplicate_ratio)
    n_conflict = int(cfg.requests * cfg.conflict_ratio)
    n_bad = int(cfg.requests * cfg.malformed_ratio)
    n_valid = cfg.requests - n_dup - n_conflict - n_bad
    valid = [merchant_request(n, run) for n in range(n_valid)]
    placed: list[tuple[float, Input]] = [
        (i, Input("valid", key_of(r), orjson.dumps(r), key_of(r).decode()))
        for i, r in enumerate(valid)]
    for j in rng.sample(range(n_valid), n_dup):
        again = dict(valid[j], event_id=str(uuid.uuid4()))  # a re-send: new envelope
        placed.append((rng.uniform(j, n_valid), Input(
            "duplicate", key_of(again), orjson.dumps(again), key_of(again).decode())))
    for j in rng.sample(range(n_valid), n_conflict):
        other = orjson.loads(orjson.dumps(valid[j]))
        other["amount"]["minor_amount"] += 1
        other["event_id"] = str(uuid.uuid4())
        placed.append((rng.uniform(j, n_valid), Input(
            "conflict", key_of(other), orjson.dumps(other), key_of(other).decode())))
    for i in range(n_bad):
        if i % 2:
            bad, _ = invalid_request(n_valid + i, run=run)
            item = Input("invalid", key_of(bad), orjson.dumps(bad), key_of(bad).decode())
        else:
            key = f"{run}-garbage-{i}".encode()
            item = Input("garbage", key, GARBAGE[i % len(GARBAGE)], key.decode())
        placed.append((rng.uniform(0, n_valid), item))
    for kind in POISON_KINDS:
        for i in range(cfg.poison):
            bad = valid_request(10_000_000 + len(placed), run=run, rng=random.Random(i))
            bad["merchant_payout_id"] = f"{run}-chaos-{kind}-{i}"
            placed.append((rng.uniform(0.1 * n_valid, 0.6 * n_valid), Input(
                kind, key_of(bad), orjson.dumps(bad), key_of(bad).decode())))
    placed.sort(key=lambda p: p[0])
    return [item for _, item in placed]


# --- the checker ---------------------------------------------------------------------


@dataclass
class Report:
    inputs: Counter[str] = field(default_factory=Counter)
    one_outcome: int = 0
    lost: list[str] = field(default_factory=list)
    unaccounted: list[str] = field(default_factory=list)
    duplicate_links: list[str] = field(default_factory=list)
    outcome_events: Counter[str] = field(default_factory=Counter)
    republished: int = 0
    answered_at_kills: list[int] = field(default_factory=list)
    false_failures: list[str] = field(default_factory=list)
    poison_injected: int = 0
    poison_accounted: int = 0
    stalls: list[str] = field(default_factory=list)
    # Outcome events sharing one event_id but differing in content: a consumer that
    # de-duplicates by event_id would keep one and never see the other (issue 10).
    clashing_ids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        total = sum(self.inputs.values())
        return (not self.lost and not self.duplicate_links and not self.unaccounted
                and not self.false_failures and not self.clashing_ids
                and self.one_outcome == total and not self.stalls
                and self.poison_accounted == self.poison_injected)

    def final_line(self) -> str:
        return (f"chaos: {sum(self.inputs.values())} requests, {self.one_outcome} with one outcome, "
                f"{len(self.lost)} lost, {len(self.duplicate_links)} duplicate links, "
                f"{len(self.clashing_ids)} same-id different-content, "
                f"{len(self.false_failures)} false failures, "
                f"{len(self.unaccounted)} unaccounted inputs; "
                f"poison: {self.poison_injected} injected, {self.poison_accounted} accounted, "
                f"{len(self.stalls)} stalls")


def _distinct(evs: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {e["event_id"]: e for e in evs}


def stalled_partitions(inputs: list[Input], answered: set[str], partitions: int) -> list[str]:
    """Poison records whose partition did not move past them: a later input unanswered."""
    stalls = []
    for n, item in enumerate(inputs):
        if item.kind not in POISON_KINDS:
            continue
        home = home_partition(item.answer_key, partitions)
        later = [i for i in inputs[n + 1:] if home_partition(i.key.decode("utf-8", "replace"),
                                                             partitions) == home]
        if any(i.answer_key not in answered for i in later):
            stalls.append(f"{item.kind}:{item.answer_key}")
    return stalls


def clashing_event_ids(outcomes: Outcomes) -> list[str]:
    """Event ids published more than once with different content, each with the fields
    that differ: ``"<event_id> (field, ...)"``."""
    versions: dict[str, dict[bytes, Mapping[str, Any]]] = {}
    for published in outcomes.by_topic.values():
        for e in published:
            versions.setdefault(e["event_id"], {})[
                orjson.dumps(e, option=orjson.OPT_SORT_KEYS)] = e
    clashes = []
    for eid, bodies in sorted(versions.items()):
        if len(bodies) > 1:
            first, *others = bodies.values()
            fields = sorted({k for o in others for k in {*first, *o} if o.get(k) != first.get(k)})
            clashes.append(f"{eid} ({', '.join(fields)})")
    return clashes


def check(inputs: list[Input], outcomes: Outcomes,
          ledger_by_receipt: Mapping[str, list[str]], partitions: int = 8) -> Report:
    """Account for every input: exactly one outcome each, one link per key at most."""
    report = Report()
    by_key: dict[str, list[Mapping[str, Any]]] = {}
    for topic, published in outcomes.by_topic.items():
        for e in published:
            by_key.setdefault(outcome_key(e), []).append(e)
            report.outcome_events[topic] += 1
    report.republished = sum(len(v) for v in by_key.values()) - sum(
        len(_distinct(v)) for v in by_key.values())
    report.clashing_ids = clashing_event_ids(outcomes)

    for item in inputs:
        report.inputs[item.kind] += 1
        evs = by_key.get(item.answer_key, [])
        if item.kind in ("valid", "duplicate"):
            mine = _distinct(e for e in evs if e["event_type"] == TOPICS.created or (
                e["event_type"] == TOPICS.failed and e["scope"] == "link"))
        elif item.kind == "conflict":
            fingerprint = events.request_fingerprint(orjson.loads(item.value))
            expected = events.deterministic_event_id(item.answer_key, events.FAILED,
                                                     f"conflict:{fingerprint}")
            mine = _distinct(e for e in evs if e["event_id"] == expected)
        elif item.kind in POISON_KINDS:
            report.poison_injected += 1
            if POISON_KINDS[item.kind] == "created":
                mine = _distinct(e for e in evs if e["event_type"] == TOPICS.created or (
                    e["event_type"] == TOPICS.failed and e["scope"] == "link"))
                right = all(e["event_type"] == TOPICS.created for e in mine.values())
            else:
                mine = _distinct(e for e in evs if e["event_type"] == TOPICS.failed)
                right = all(e["error"]["code"] == "processing_error" and e["scope"] == "request"
                            for e in mine.values())
            if len(mine) == 1 and right:
                report.poison_accounted += 1
        elif item.kind == "invalid":
            mine = _distinct(e for e in evs if e["event_type"] == TOPICS.failed
                             and e["error"]["code"] == "invalid_request")
        else:
            mine = _distinct(e for e in evs if e["event_type"] == TOPICS.dead_letter)
        if not mine:
            report.lost.append(f"{item.kind}:{item.answer_key}")
        elif len(mine) > 1:
            report.unaccounted.append(f"{item.kind}:{item.answer_key} has {len(mine)} outcomes")
        else:
            report.one_outcome += 1

    answered = {i.answer_key for i in inputs} - {x.split(":", 1)[1] for x in report.lost}
    report.stalls = stalled_partitions(inputs, answered, partitions)

    link_keys = {i.answer_key for i in inputs
                 if i.kind == "valid" or POISON_KINDS.get(i.kind) == "created"}
    for key in sorted(link_keys):
        links = ledger_by_receipt.get(link_reference(key), [])
        if len(links) > 1:
            report.duplicate_links.append(key)
        created = [e for e in by_key.get(key, []) if e["event_type"] == TOPICS.created]
        if created and any(e["connector_payout_id"] not in links for e in created):
            report.unaccounted.append(f"{key}: created event names a link the provider lacks")
        if not created and links:
            report.unaccounted.append(f"{key}: provider holds a link but no created outcome")
        if links and any(e["event_type"] == TOPICS.failed and e["scope"] == "link"
                         for e in by_key.get(key, [])):
            report.false_failures.append(key)  # payout-link-failed for a link that exists
    return report


def print_report(report: Report, extra: Mapping[str, Any]) -> None:
    print()
    print("chaos run")
    print("---------")
    for kind in ("valid", "duplicate", "conflict", "invalid", "garbage", *POISON_KINDS):
        print(f"inputs {kind:<24} {report.inputs[kind]:>7}")
    for topic, n in sorted(report.outcome_events.items()):
        print(f"events on {topic:<21} {n:>7}")
    print(f"re-published outcome events       {report.republished:>7}  (same event_id, after restarts)")
    for name, value in extra.items():
        print(f"{name:<34} {value}")
    for label, items in (("lost", report.lost), ("duplicate links", report.duplicate_links),
                         ("unaccounted", report.unaccounted), ("stalled", report.stalls),
                         ("same id, different content", report.clashing_ids),
                         ("false failure", report.false_failures)):
        for item in items[:10]:
            print(f"  {label}: {item}")
    print(report.final_line(), flush=True)


# --- the run ---------------------------------------------------------------------------


def _producer(bootstrap: str, codec: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                            enable_idempotence=True, request_timeout_ms=15_000,
                            metadata_max_age_ms=2_000,
                            compression_type=None if codec == "none" else codec)


async def _send_batch(producer: AIOKafkaProducer, batch: list[Input]) -> None:
    sent = [await producer.send(TOPICS.requested, x.value, key=x.key) for x in batch]
    await asyncio.gather(*sent)


async def _paced_produce(bootstrap: str, inputs: list[Input], seconds: float,
                         codecs: tuple[str, ...] = ("none",)) -> None:
    """Idempotent producers, one per codec, batches rotating through them.

    A batch that fails (the Kafka outage outlasted a request) is sent again by a fresh
    producer for that codec: one that sat idle through the restart can take minutes to
    recover its connection and producer id. A record that did land is then sent twice,
    which is a duplicate request, handled and accounted like any other.
    """
    producers = [_producer(bootstrap, codec) for codec in codecs]
    for producer in producers:
        await producer.start()
    try:
        batches = max(1, int(seconds * 4))
        size = max(1, -(-len(inputs) // batches))
        started = time.monotonic()
        for n, i in enumerate(range(0, len(inputs), size)):
            slot = n % len(producers)
            for attempt in range(1, 31):
                producer = producers[slot]
                try:
                    # Bounded: after a long Kafka outage a producer can leave its
                    # deliveries pending for ever (seen with a 2-minute outage).
                    await asyncio.wait_for(_send_batch(producer, inputs[i:i + size]), 30)
                    break
                except (KafkaError, TimeoutError):
                    try:
                        await asyncio.wait_for(producer.stop(), 5)
                    except (TimeoutError, KafkaError):
                        pass
                    await asyncio.sleep(min(5.0, 0.5 * attempt))
                    producers[slot] = _producer(bootstrap, codecs[slot])
                    try:
                        await asyncio.wait_for(producers[slot].start(), 30)
                    except (KafkaError, TimeoutError):
                        pass  # Kafka still down: the next attempt finds out
            lag = started + (i // size + 1) * seconds / batches - time.monotonic()
            if lag > 0:
                await asyncio.sleep(lag)  # pacing the offered load, not synchronising
    finally:
        for producer in producers:
            try:
                await asyncio.wait_for(producer.stop(), 10)
            except (TimeoutError, KafkaError):
                pass


class RunLog(list[str]):
    """Chaos events, kept for the report and printed as they happen."""

    def __init__(self) -> None:
        super().__init__()
        self.started = time.monotonic()

    def append(self, line: str) -> None:
        super().append(line)
        print(f"  [{time.monotonic() - self.started:6.1f}s] {line}", flush=True)


async def _start(worker: WorkerProcess, log: list[str]) -> bool:
    """Start a worker; a start cut short (killed, or a poison record crashing it during
    startup) is reported and left to the supervisor's next round."""
    try:
        await asyncio.to_thread(worker.start)
        return True
    except (RuntimeError, TimeoutError) as exc:
        log.append(f"worker start failed; the supervisor retries: {str(exc).splitlines()[0]}")
        return False


async def _monkey(cfg: ChaosConfig, broker: Broker, workers: list[WorkerProcess],
                  locks: dict[int, asyncio.Lock], reader: OutcomeReader, rng: random.Random,
                  log: list[str], kills_at: list[int], fleet: SimulatorFleet,
                  answer_keys: int) -> None:
    """SIGKILL workers at random moments while outcomes are flowing; restart Kafka once."""
    kafka_after = {max(1, cfg.kills // 2)} if cfg.kafka_restarts else set()
    for n in range(1, cfg.kills + 1):
        seen = len(reader.outcomes.arrival)

        async def progressed(seen: int = seen) -> bool:
            # More answers since the last kill, or none left to wait for (then the
            # remaining kills land on an idle worker, which must survive them too).
            arrived = len(reader.outcomes.arrival)
            return arrived > seen + 10 or arrived >= answer_keys

        await reader.wait_until(progressed, 60)
        await asyncio.sleep(rng.uniform(0.2, 2.0))  # a random moment mid-flow
        index = rng.randrange(len(workers)) if cfg.restart_killed else len(workers) - 1
        victim = workers[index]
        async with locks[index]:  # never while the supervisor is (re)starting it
            pid = victim.pid
            victim.kill()
            answered = len(reader.outcomes.arrival)
            kills_at.append(answered)
            log.append(f"kill {n}: worker pid {pid} SIGKILLed with {answered} inputs answered")
            if n == 1:  # every Cashgram token dies at once: the next calls must refresh
                cashfree = fleet["cashfree"]
                assert isinstance(cashfree, CashfreeSimulatorProcess)
                await asyncio.to_thread(cashfree.revoke_tokens)
                log.append("cashgram tokens revoked")
            if n in kafka_after:
                await asyncio.to_thread(broker.stop)
                log.append("kafka stopped")
                await asyncio.sleep(rng.uniform(1.0, 3.0))  # the outage itself
                await asyncio.to_thread(broker.start)
                log.append("kafka started")
            if cfg.restart_killed and await _start(victim, log):
                log.append("worker restarted")


async def _supervise(workers: list[WorkerProcess], locks: dict[int, asyncio.Lock],
                     stop: asyncio.Event, log: list[str]) -> None:
    """A worker that exits on its own (a poison record that kills it, Kafka down) is
    restarted, like k8s would."""
    while not stop.is_set():
        for index, w in enumerate(workers):
            if w.exited_unexpectedly() and not locks[index].locked():
                async with locks[index]:
                    if w.exited_unexpectedly():
                        log.append(f"worker exited by itself; restarting:\n{w.log_tail(3)}")
                        await _start(w, log)
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            pass




def worker_env(fleet: SimulatorFleet, *, standby_replicas: int = 0,
               faults: str = "") -> dict[str, str]:
    """Every chaos worker's settings: a 6 s session (take-overs within a run), short
    read timeouts and re-drive cadence, the simulators, the demo's routing."""
    env = {"PAYOUT_SESSION_TIMEOUT_S": "6", "PAYOUT_READ_TIMEOUT_S": "1.5",
           "PAYOUT_STANDBY_REPLICAS": str(standby_replicas), "PAYOUT_FAULTS": faults,
           "PAYOUT_UNRESOLVED_RETRY_S": "2", "PAYOUT_UNRESOLVED_RETRY_MAX_S": "10"}
    env.update(fleet.worker_env())
    env.update(demo_worker_env())
    return env


async def await_outcomes(reader: OutcomeReader, inputs: list[Input], deadline_s: float) -> None:
    """Until every input is answered, then until re-publications and conflicts (same
    keys, later events) have landed too; each with the deadline."""
    missing = await reader.wait_for({i.answer_key for i in inputs}, deadline_s)
    expected_events = len({i.answer_key for i in inputs if i.kind != "duplicate"}) + sum(
        1 for i in inputs if i.kind == "conflict")

    async def settled() -> bool:
        return sum(len(_distinct(v)) for v in _group(reader.outcomes).values()) >= \
            expected_events

    await reader.wait_until(settled, 0 if missing else deadline_s)


def provider_ledger(fleet: SimulatorFleet) -> dict[str, list[str]]:
    """Our reference -> link ids at every provider (a key with links at two providers is
    a duplicate too)."""
    ledger: dict[str, list[str]] = {}
    for refs in fleet.links_by_reference().values():
        for ref, ids in refs.items():
            ledger.setdefault(ref, []).extend(ids)
    return ledger


async def run(cfg: ChaosConfig, broker: Broker, fleet: SimulatorFleet,
              workdir: Path) -> Report:
    run_id = uuid.uuid4().hex[:8]
    rng = random.Random(cfg.seed)
    inputs = plan_inputs(cfg, run_id)
    await create_topics(broker.bootstrap_servers, cfg.partitions)
    env = worker_env(fleet, standby_replicas=cfg.standby_replicas,
                     faults=POISON_FAULTS if cfg.poison else "")
    workers = [WorkerProcess(bootstrap=broker.bootstrap_servers, provider_url="",
                             data_dir=workdir / f"worker-{i}", log_path=workdir / f"worker-{i}.log",
                             app_id=f"chaos-{run_id}", partitions=cfg.partitions, extra_env=env)
               for i in range(cfg.workers)]
    log = RunLog()
    kills_at: list[int] = []
    stop = asyncio.Event()
    started = time.monotonic()
    try:
        for w in workers:
            await asyncio.to_thread(w.start)
        async with OutcomeReader(broker.bootstrap_servers) as reader:
            locks = {i: asyncio.Lock() for i in range(len(workers))}
            supervisor = asyncio.create_task(_supervise(workers, locks, stop, log))
            producing = asyncio.create_task(
                _paced_produce(broker.bootstrap_servers, inputs, cfg.produce_seconds, cfg.codecs))
            await _monkey(cfg, broker, workers, locks, reader, rng, log, kills_at, fleet,
                          len({i.answer_key for i in inputs}))
            await producing
            log.append("all inputs produced; waiting for outcomes")
            await await_outcomes(reader, inputs, cfg.deadline_s)
            stop.set()
            await supervisor
            outcomes = reader.outcomes
    finally:
        stop.set()
        for w in workers:
            w.stop()
    by_provider = fleet.links_by_reference()
    report = check(inputs, outcomes, provider_ledger(fleet), cfg.partitions)
    report.answered_at_kills = kills_at
    mine = {link_reference(i.answer_key) for i in inputs}
    extra = {"workers SIGKILLed": sum(1 for line in log if line.startswith("kill")),
             "kafka restarts": sum(1 for line in log if line == "kafka started"),
             "self-exited workers restarted": sum(1 for line in log if "by itself" in line),
             "provider faults injected": {name: dict(sim.stats().get("faults", {}))
                                          for name, sim in fleet.by_provider.items()},
             "links at each provider": {name: sum(len(ids) for ref, ids in refs.items()
                                                  if ref in mine)
                                        for name, refs in by_provider.items()},
             "link failures by connector and code": dict(sorted(Counter(
                 f"{e.get('connector')}:{e['error']['code']}"
                 for e in {e["event_id"]: e for e in outcomes.by_topic.get(TOPICS.failed, [])
                           if e.get("scope") == "link"}.values()).items())),
             "wall time": f"{time.monotonic() - started:.0f}s"}
    print_report(report, extra)
    return report


def _group(outcomes: Outcomes) -> dict[str, list[Mapping[str, Any]]]:
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for evs in outcomes.by_topic.values():
        for e in evs:
            grouped.setdefault(outcome_key(e), []).append(e)
    return grouped


PHASES = ("kills", "fencing", "outages", "lifecycle")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--produce-seconds", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--phases", default=",".join(PHASES),
                        help="comma-separated, of: kills (crashes, faults, poison; the "
                             "requests/kills/workers options), fencing (two workers paused and "
                             "cut off from Kafka), outages (Kafka 2 min, providers 5 min), "
                             "lifecycle (every link walked to an end at its provider, faulted "
                             "webhooks, cancels racing claims, worker kills)")
    parser.add_argument("--keep-workdir", action="store_true",
                        help="keep the worker logs and data for a post-mortem")
    args = parser.parse_args(argv)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = sorted(set(phases) - set(PHASES))
    if unknown or not phases:
        parser.error(f"--phases: unknown phase {', '.join(unknown) or '(none given)'}; "
                     f"choose from {', '.join(PHASES)}")
    require_codecs("payout chaos")
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the Kafka outage is on purpose
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    cfg = ChaosConfig(requests=args.requests, kills=args.kills, workers=args.workers, seed=seed,
                      produce_seconds=args.produce_seconds or max(20.0, args.requests / 150))
    print(f"starting chaos run: phases {', '.join(phases)}; {cfg.requests} requests, "
          f"{cfg.kills} kills, seed {seed}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="payout-chaos-"))
    verdicts: list[tuple[str, bool, str]] = []
    try:
        with SimulatorFleet(
                latency_ms=cfg.latency_ms, jitter_ms=cfg.jitter_ms,
                faults={name: cfg.faults for name in PROVIDERS},
                hang_ms=3000, seed=seed,
                options={"cashfree": {"token_ttl_s": cfg.cashfree_token_ttl_s},
                         "revolut": {"honour_request_id": False}}) as fleet:
            verdicts = asyncio.run(_run_phases(phases, cfg, fleet, workdir, seed))
    finally:
        if args.keep_workdir:
            print(f"chaos workdir kept: {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    for name, ok, line in verdicts:
        print(f"{'PASS' if ok else 'FAIL'} {name}: {line}", flush=True)
    return 0 if verdicts and all(ok for _, ok, _ in verdicts) else 1


async def _run_phases(phases: list[str], cfg: ChaosConfig, fleet: SimulatorFleet,
                      workdir: Path, seed: int) -> list[tuple[str, bool, str]]:
    """Each phase on a broker of its own: the request topic's names are fixed, and a new
    group reads it from the start, so a shared broker would feed one phase's requests
    to the next. The simulators are shared: their ledgers are keyed by run."""
    from streams.devkit.chaos_fencing import FencingChaos, run_fencing_phase
    from streams.devkit.chaos_lifecycle import LifecycleChaos, run_lifecycle_phase
    from streams.devkit.chaos_outages import OutageChaos, run_outage_phase

    verdicts = []
    if "kills" in phases:
        print("\n== phase: kills, Kafka restart, provider faults, poison ==", flush=True)
        with broker_from_environment(workdir / "kafka-kills") as broker:
            report = await run(cfg, broker, fleet, workdir)
        verdicts.append(("kills", report.ok, report.final_line()))
    if "fencing" in phases:
        print("\n== phase: two workers paused and cut off from Kafka ==", flush=True)
        with broker_from_environment(workdir / "kafka-fencing", cuttable=True) as broker:
            report, handovers = await run_fencing_phase(FencingChaos(seed=seed), broker, fleet,
                                                        workdir)
        verdicts.append(("fencing", report.ok, f"{report.final_line()}; {handovers.line()}"))
    if "outages" in phases:
        print("\n== phase: Kafka down 2 min, a provider refusing and one answering 503 "
              "for 5 min ==", flush=True)
        with broker_from_environment(workdir / "kafka-outages") as broker:
            report, outage = await run_outage_phase(OutageChaos(seed=seed), broker, fleet,
                                                    workdir)
        verdicts.append(("outages", report.ok and not outage.broken_promises,
                         f"{report.final_line()}; {outage.line()}"))
    if "lifecycle" in phases:
        print("\n== phase: links walked to an end at their providers, faulted webhooks, cancels, "
              "kills ==", flush=True)
        with broker_from_environment(workdir / "kafka-lifecycle") as broker:
            life = await run_lifecycle_phase(LifecycleChaos(seed=seed), broker, fleet, workdir)
        verdicts.append(("lifecycle", life.ok,
                         f"{life.creation.final_line()}; {life.line()}"))
    return verdicts


if __name__ == "__main__":
    sys.exit(main())
