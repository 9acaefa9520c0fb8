"""Integration fixtures: a real Kafka broker, the provider simulator, worker processes.

The broker lives for the whole session (starting a JVM is the slow part); everything
else is per module or per test, and each test uses its own run id in link keys so
outcomes of one test never count for another.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from streams.devkit.broker import Broker, broker_from_environment
from streams.devkit.harness import REPO_ROOT, WorkerProcess, create_topics
from streams.devkit.sims.fleet import SimulatorFleet
from streams.devkit.sims.razorpay import RazorpaySimulatorProcess
from streams.devkit.traffic import demo_worker_env

PARTITIONS = 4


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    # With the local launcher, a listener one client can be cut off from as well
    # (test_netcut_kafka.py); a broker someone else runs has none.
    b = broker_from_environment(tmp_path_factory.mktemp("kafka"),
                                cuttable=not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    b.start()
    try:
        asyncio.run(create_topics(b.bootstrap_servers, PARTITIONS))
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def simulator() -> Iterator[RazorpaySimulatorProcess]:
    with RazorpaySimulatorProcess(latency_ms=5, jitter_ms=5) as sim:
        yield sim


@pytest.fixture()
def run_id() -> str:
    return uuid.uuid4().hex[:10]


def new_worker(broker: Broker, simulator: RazorpaySimulatorProcess, workdir: Path,
               app_id: str = "payout-links") -> WorkerProcess:
    return WorkerProcess(bootstrap=broker.bootstrap_servers, provider_url=simulator.url,
                         data_dir=workdir / "data", log_path=workdir / "worker.log",
                         app_id=app_id, partitions=PARTITIONS)


@pytest.fixture(scope="module")
def worker(broker: Broker, simulator: RazorpaySimulatorProcess,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    w = new_worker(broker, simulator, tmp_path_factory.mktemp("worker"))
    try:
        w.start()
        yield w
    finally:
        w.stop()


def every_provider_worker(broker: Broker, fleet: SimulatorFleet, workdir: Path,
                          app_id: str) -> WorkerProcess:
    """A worker for the demo's merchants, every provider at its simulator in ``fleet``."""
    return WorkerProcess(bootstrap=broker.bootstrap_servers, provider_url="",
                         data_dir=workdir / "data", log_path=workdir / "worker.log",
                         partitions=PARTITIONS, app_id=app_id,
                         extra_env={**fleet.worker_env(), **demo_worker_env()})


def utc_stamp(seconds_from_now: float = 0.0) -> str:
    """An RFC 3339 UTC time, to the second, as the operator commands take it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds_from_now))


WORKER_TOPICS = ("requested", "routed", "reports", "cancel-requested")


def skip_history(env: dict[str, str], topics: tuple[str, ...] = WORKER_TOPICS) -> None:
    """Move the group of ``env`` to the end of ``topics`` (through ``python -m streams
    replay``, as an operator would): by default every topic a worker reads, so a new
    group's worker handles this test's records only, not every earlier module's on the
    shared broker."""
    done = subprocess.run(
        [sys.executable, "-m", "streams", "replay", "--to-datetime", utc_stamp(1),
         *(arg for topic in topics for arg in ("--topic", topic)), "--execute"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr


@contextmanager
def running_from_topics_end(worker: WorkerProcess) -> Iterator[WorkerProcess]:
    """``worker`` on its own new group from the end of every topic it reads
    (:func:`skip_history`), stopped however the test ends.

    For a module that tests something other than catching up: on the shared broker a
    new group otherwise first reads every earlier module's records, and in CI
    (2026-12-07) two such catch-ups stalled a request partition past a test's deadline
    (the delivery guard's resume and seek; late, never lost). Catching up is tested
    where it is the subject (test_recovery, test_delivery_holes, make chaos).
    """
    skip_history(worker.env)
    try:
        worker.start()
        yield worker
    finally:
        worker.stop()
