"""Run the real pipeline locally: topics, a worker process, traffic in, outcomes out.

Shared by ``make demo``, the integration tests and the benchmarks, so all three drive
the product the same way. Every process started here is stopped by its pid.
"""
from __future__ import annotations

import asyncio
import atexit
import base64
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.config import Topics
from streams.connectors.registry import PROVIDERS
from streams.devkit.broker import free_port
from streams.preflight import require_codecs

require_codecs("payout devkit")  # its readers consume Kafka: refuse early, not mid-run

REPO_ROOT = Path(__file__).resolve().parents[2]
TOPICS = Topics()
OUTCOME_TOPICS = (TOPICS.created, TOPICS.failed, TOPICS.dead_letter)


async def create_topics(bootstrap: str, partitions: int,
                        names: Iterable[str] = TOPICS.all()) -> None:
    """Create the pipeline's topics up front, so partition counts are what we chose."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(n, partitions, 1) for n in names if n not in existing]
        if new:
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


def run_worker_expecting_exit(env: Mapping[str, str],
                              timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
    """``python -m streams worker`` that should refuse to start; stopped by its process
    group if it does not exit on its own within ``timeout``."""
    proc = subprocess.Popen([sys.executable, "-m", "streams", "worker"], cwd=REPO_ROOT,
                            env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


class WorkerProcess:
    """One ``python -m streams worker`` in its own session, logging to a file."""

    def __init__(self, *, bootstrap: str, provider_url: str, data_dir: Path, log_path: Path,
                 app_id: str = "payout-links", partitions: int = 8,
                 extra_env: Mapping[str, str] | None = None) -> None:
        self.data_dir, self.log_path = data_dir, log_path
        self.env = dict(os.environ)
        self.env.update({
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "PAYOUT_DATA_DIR": str(data_dir),
            "PAYOUT_APP_ID": app_id,
            "PAYOUT_TOPIC_PARTITIONS": str(partitions),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                        os.environ.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1",
        })
        # The devkit's broker is a single node: topics get one replica (with a warning).
        self.env.setdefault("PAYOUT_ALLOW_FEWER_BROKERS", "on")
        # Local processes: the web server on loopback, reached (and advertised) there.
        self.env.setdefault("PAYOUT_WEB_HOST", "127.0.0.1")
        if provider_url:  # the default provider's simulator: the registry's first provider
            self.env[next(iter(PROVIDERS.values())).base_url_env] = provider_url
        self.env.update(extra_env or {})
        self._proc: subprocess.Popen[bytes] | None = None
        self._launched_pid: int | None = None
        self._log_offset = 0
        atexit.register(self.stop)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout: float = 120.0) -> None:
        """Start and wait until the worker has joined its group and recovered its table."""
        self.launch()
        self.wait_for_log("[^Worker]: Ready", timeout)

    def launch(self) -> None:
        """Start the process and return at once (tests that act during startup)."""
        self.env["PAYOUT_WEB_PORT"] = str(free_port())
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "streams", "worker", "--loglevel", "info"],
            cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self._launched_pid = self._proc.pid

    def wait_for_log(self, needle: str, timeout: float, poll_s: float = 0.2) -> None:
        """Poll this run's log for ``needle``; fail fast if the process exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise RuntimeError(f"worker exited while waiting for {needle!r}:\n"
                                   f"{self.log_tail()}")
            if needle in self.run_log():
                return
            time.sleep(poll_s)
        raise TimeoutError(f"no {needle!r} in the worker log after {timeout}s:\n"
                           f"{self.log_tail()}")

    def run_log(self) -> str:
        """What this run (since the last launch) wrote to the log."""
        with open(self.log_path, "rb") as f:
            f.seek(self._log_offset)
            return f.read().decode("utf-8", "replace")

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code once the process has ended, or None if it still runs after ``timeout``."""
        if self._proc is None:
            raise RuntimeError("worker was never launched")
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def terminate(self, timeout: float) -> tuple[int, float]:
        """SIGTERM, then wait up to ``timeout``: (exit code, seconds from signal to exit).

        A process still running after ``timeout`` is SIGKILLed (so nothing outlives the
        test) and reported with SIGKILL's code, which no clean stop ever has.
        """
        proc = self._proc
        if proc is None:
            raise RuntimeError("worker was never launched")
        sent = time.monotonic()
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        code = self.wait_exit(timeout)
        taken = time.monotonic() - sent
        if code is None:
            self.kill()
            return -signal.SIGKILL, taken
        return code, taken

    def group_alive(self) -> bool:
        """Whether any process of the last launch's session (its process group) still exists."""
        if self._launched_pid is None:
            return False
        try:
            os.killpg(self._launched_pid, 0)
        except ProcessLookupError:
            return False
        return True

    def exited_unexpectedly(self) -> bool:
        return self._proc is not None and self._proc.poll() is not None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        """SIGKILL: the crash a test wants, no clean shutdown."""
        self._signal(signal.SIGKILL, timeout=10)

    def stop(self, timeout: float = 30.0) -> None:
        self._signal(signal.SIGTERM, timeout)

    def _signal(self, sig: int, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


async def produce(bootstrap: str, records: Iterable[tuple[bytes | None, bytes]],
                  topic: str = TOPICS.requested, partition_of: Any = None) -> dict[bytes, float]:
    """Send records (acks=all); returns each key's send time for latency measurement."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    sent: dict[bytes, float] = {}
    try:
        batch = []
        for key, value in records:
            partition = partition_of(key) if partition_of else None
            batch.append(await producer.send(topic, value, key=key, partition=partition))
            if key is not None:
                sent.setdefault(key, time.monotonic())
        await asyncio.gather(*batch)
    finally:
        await producer.stop()
    return sent


@dataclass
class Outcomes:
    """Every outcome event read back, indexed the ways a checker needs."""

    by_topic: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {
        t: [] for t in OUTCOME_TOPICS})
    arrival: dict[str, float] = field(default_factory=dict)  # link key -> first arrival

    def add(self, topic: str, event: dict[str, Any]) -> None:
        self.by_topic.setdefault(topic, []).append(event)
        key = outcome_key(event)
        self.arrival.setdefault(key, time.monotonic())

    def for_key(self, key: str) -> list[dict[str, Any]]:
        return [e for t in OUTCOME_TOPICS for e in self.by_topic[t] if outcome_key(e) == key]

def outcome_key(event: Mapping[str, Any]) -> str:
    """Which request an outcome answers: its link key, or for a dead letter its raw key."""
    if event["event_type"] == TOPICS.dead_letter:
        if event.get("raw_key_truncated"):
            return "#sha256=" + cast(str, event["raw_key_sha256"])  # as streams.events.outcome_record_key
        raw = event.get("raw_key_b64")
        return base64.b64decode(raw).decode("utf-8", "replace") if raw else ""
    if event.get("link_key") is None:  # a request failure without a valid link key
        source = event.get("source") or {}
        return f"#source={source.get('topic')}/{source.get('partition')}/{source.get('offset')}"
    return cast(str, event["link_key"])


async def stop_consuming(task: asyncio.Task[None] | None,
                         consumer: AIOKafkaConsumer | None) -> None:
    """Cancel a background consume loop, then close its consumer."""
    if task:
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
    if consumer:
        await consumer.stop()


class OutcomeReader:
    """Consumes the outcome topics from the beginning, in the background."""

    def __init__(self, bootstrap: str, topics: Iterable[str] = OUTCOME_TOPICS) -> None:
        self.bootstrap = bootstrap
        self.topics = tuple(topics)
        self.outcomes = Outcomes()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.changed = asyncio.Event()

    async def __aenter__(self) -> OutcomeReader:
        self._consumer = AIOKafkaConsumer(
            *self.topics, bootstrap_servers=self.bootstrap, auto_offset_reset="earliest",
            enable_auto_commit=False, group_id=None, metadata_max_age_ms=2000)
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        assert self._consumer is not None
        async for record in self._consumer:
            self.outcomes.add(record.topic, orjson.loads(record.value))
            self.changed.set()

    async def wait_for(self, keys: Iterable[str], timeout: float) -> set[str]:
        """Wait until every key has an outcome or the deadline passes; returns the missing."""
        missing = set(keys)

        async def answered() -> bool:
            missing.difference_update([k for k in missing if k in self.outcomes.arrival])
            return not missing

        await self.wait_until(answered, timeout)
        return missing

    async def wait_until(self, condition: Any, timeout: float) -> bool:
        """Wait until ``await condition()`` is true, re-checking on every new outcome."""
        deadline = time.monotonic() + timeout
        while not await condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(remaining, 1.0))
            except TimeoutError:
                pass
        return True

    async def __aexit__(self, *exc: object) -> None:
        await stop_consuming(self._task, self._consumer)
