"""Replay and dead-letter redrive on a real broker, with every provider's simulator.

A whole run replayed from its first offset (``python -m streams replay``; offset 0 on a
broker of its own, the run's start time on this shared one) makes
no new link at any provider, and every outcome it re-publishes -- created, failed,
dead letter -- is byte-identical to the first. The move is refused while a worker is
in the group. ``python -m streams redrive`` lists a dead letter, refuses a wrong
count, and sends the original record back to its topic, partition and key, with its
headers and a header naming the dead letter.
"""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from streams import events
from streams.devkit.broker import Broker
from streams.devkit.harness import REPO_ROOT, TOPICS, WorkerProcess, produce
from streams.devkit.sims.fleet import SimulatorFleet
from streams.devkit.traffic import mixed_records
from tests.integration.conftest import every_provider_worker, running_from_topics_end, utc_stamp

pytestmark = pytest.mark.timeout(600)
OUTCOMES = (TOPICS.created, TOPICS.failed, TOPICS.dead_letter)


@dataclass
class Run:
    run: str
    started: str
    env: dict[str, str]
    worker: WorkerProcess
    fleet: SimulatorFleet
    garbage: tuple[bytes, bytes, list[tuple[str, bytes]]]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)


async def records(bootstrap: str, topics: tuple[str, ...], wanted: Callable[[Any], bool]
                  ) -> list[Any]:
    """Every record of ``topics`` so far that ``wanted`` keeps."""
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    found: list[Any] = []
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=1500)
            if not batches:
                return found
            for batch in batches.values():
                found.extend(r for r in batch if wanted(r))
    finally:
        await consumer.stop()


async def outcome_records(bootstrap: str, run: str) -> list[tuple[str, bytes]]:
    """Every outcome record of this run so far: (event id, value bytes)."""
    found = await records(bootstrap, OUTCOMES,
                          lambda r: r.key is not None and run.encode() in r.key)
    return [(orjson.loads(r.value)["event_id"], r.value) for r in found]


async def wait_for(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():  # type: ignore[operator]
            return True
        await asyncio.sleep(1.0)
    return False


@pytest.fixture(scope="module")
def settled_run(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    workdir: Path = tmp_path_factory.mktemp("replay")
    run = f"rp{int(time.time() * 1000) % 10**9}"
    started = utc_stamp(-1)
    with SimulatorFleet(latency_ms=2, jitter_ms=1) as fleet:
        worker = every_provider_worker(broker, fleet, workdir, f"payout-links-replay-{run}")
        with running_from_topics_end(worker):
            records = [(k, v) for k, v, _ in mixed_records(40, run=run, invalid_every=13,
                                                           garbage_at=())]
            headers = [("traceparent", b"00-abc-def-01")]
            garbage = (f"garbage-{run}".encode(), b"\xff\xfe not json " + run.encode(), headers)
            asyncio.run(produce(broker.bootstrap_servers, records))
            asyncio.run(_produce_with_headers(broker.bootstrap_servers, *garbage))

            async def all_answered() -> bool:
                found = await outcome_records(broker.bootstrap_servers, run)
                return len({event_id for event_id, _ in found}) >= len(records) + 1

            assert asyncio.run(wait_for(all_answered, 120)), worker.log_tail()
            yield Run(run, started, dict(worker.env), worker, fleet, garbage)


async def _produce_with_headers(bootstrap: str, key: bytes, value: bytes,
                                headers: list[tuple[str, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(TOPICS.requested, value, key=key, headers=headers)
    finally:
        await producer.stop()


def test_a_whole_run_replayed_from_its_start_makes_no_link_and_republishes_identical_bytes(
        settled_run: Run, broker: Broker) -> None:
    bootstrap = broker.bootstrap_servers
    links_before = settled_run.fleet.links_by_reference()
    first = asyncio.run(outcome_records(bootstrap, settled_run.run))
    # The run's first offsets: offset 0 on a broker of its own; this broker is shared
    # by the other test modules, whose records a replay from 0 would hand this worker.
    refused = cli(settled_run.env, "replay", "--to-datetime", settled_run.started, "--execute")
    assert refused.returncode == 5 and "workers are running" in refused.stderr, refused
    settled_run.worker.stop()
    dry = cli(settled_run.env, "replay", "--to-earliest")
    assert dry.returncode == 0 and "dry run" in dry.stdout and "-> 0" in dry.stdout, dry
    moved = cli(settled_run.env, "replay", "--to-datetime", settled_run.started, "--execute")
    assert moved.returncode == 0 and "moved" in moved.stdout, moved.stdout + moved.stderr
    settled_run.worker.start()
    first_ids = {event_id for event_id, _ in first}

    async def republished() -> bool:
        seen: dict[str, int] = {}
        for event_id, _ in await outcome_records(bootstrap, settled_run.run):
            seen[event_id] = seen.get(event_id, 0) + 1
        return all(seen.get(event_id, 0) >= 2 for event_id in first_ids)

    assert asyncio.run(wait_for(republished, 180)), settled_run.worker.log_tail()
    after = asyncio.run(outcome_records(bootstrap, settled_run.run))
    contents: dict[str, set[bytes]] = {}
    for event_id, value in after:
        contents.setdefault(event_id, set()).add(value)
    assert {event_id for event_id, _ in after} == first_ids  # no new outcome
    assert all(len(values) == 1 for values in contents.values())  # byte-identical
    assert settled_run.fleet.links_by_reference() == links_before  # no new provider link


def test_a_dead_letter_is_listed_and_its_original_record_re_driven_whole(
        settled_run: Run, broker: Broker) -> None:
    env = settled_run.env
    key, value, headers = settled_run.garbage
    listed = cli(env, "redrive", "--since", settled_run.started, "--code", "unparseable",
                 "--source-topic", TOPICS.requested)
    assert listed.returncode == 0, listed.stderr
    ours = [line for line in listed.stdout.splitlines() if key.decode() in line]
    assert ours and "unparseable" in ours[0]
    count = int(listed.stdout.split()[0])
    wrong = cli(env, "redrive", "--since", settled_run.started, "--code", "unparseable",
                "--source-topic", TOPICS.requested, "--execute", "--confirm", str(count + 1))
    assert wrong.returncode == 2 and "nothing re-driven" in wrong.stderr
    done = cli(env, "redrive", "--since", settled_run.started, "--code", "unparseable",
               "--source-topic", TOPICS.requested, "--execute", "--confirm", str(count))
    assert done.returncode == 0 and f"re-driven {count}" in done.stdout, done.stdout + done.stderr
    again = asyncio.run(records(broker.bootstrap_servers, (TOPICS.requested,),
                                lambda r: r.key == key))
    assert len(again) >= 2  # the original, and its re-drive (one per earlier dead letter)
    original, redriven = again[0], again[-1]
    assert redriven.value == value and redriven.partition == original.partition
    names = [k for k, _ in redriven.headers]
    assert ("traceparent", b"00-abc-def-01") in list(redriven.headers)
    assert events.REDRIVE_HEADER in names


