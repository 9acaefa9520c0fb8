"""Fatal means exit, and SIGTERM always stops a worker, within the shutdown bound.

One real worker per state: starting, recovering its table, idle, busy with provider
calls, with Kafka down, and after a fatal error. A SIGTERM stop must end with code 0
(the hard-exit deadline, code 124, means the clean stop overran); a fatal error must
end the process with code 70 by itself, and leave nothing of it running.

The bound under test: PAYOUT_SHUTDOWN_TIMEOUT_S. Faust's stop is bounded well inside
it (in-flight work gets PAYOUT_SHUTDOWN_DRAIN_S), and the deadline ends the process
at the latest then; EXIT_SLACK_S is signal delivery and process teardown.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams.devkit.broker import Broker, ExternalBroker, broker_from_environment
from streams.devkit.harness import WorkerProcess, create_topics, produce
from streams.devkit.sims.razorpay import RazorpaySimulatorProcess
from streams.devkit.traffic import key_of, valid_request
from streams.shutdown import EXIT_FATAL

pytestmark = pytest.mark.integration

PARTITIONS = 4
SHUTDOWN_TIMEOUT_S = 12.0
DRAIN_S = 1.0
EXIT_SLACK_S = 2.0
BOUND_S = SHUTDOWN_TIMEOUT_S + EXIT_SLACK_S


@pytest.fixture(scope="module")
def quiet_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A broker of this module's own: "idle" means no other test's backlog to read."""
    with broker_from_environment(tmp_path_factory.mktemp("kafka")) as broker:
        asyncio.run(create_topics(broker.bootstrap_servers, PARTITIONS))
        yield broker


@pytest.fixture()
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    """For the test that stops Kafka."""
    with broker_from_environment(tmp_path / "kafka") as broker:
        if isinstance(broker, ExternalBroker):
            pytest.skip("cannot stop an external broker")
        asyncio.run(create_topics(broker.bootstrap_servers, PARTITIONS))
        yield broker


@pytest.fixture()
def slow_provider() -> Iterator[RazorpaySimulatorProcess]:
    with RazorpaySimulatorProcess(latency_ms=3000) as sim:
        yield sim


def worker_for(broker: Broker, provider: RazorpaySimulatorProcess, workdir: Path, run_id: str,
               **env: str) -> WorkerProcess:
    return WorkerProcess(
        bootstrap=broker.bootstrap_servers, provider_url=provider.url,
        data_dir=workdir / "data", log_path=workdir / "worker.log",
        app_id=f"shutdown-{run_id}", partitions=PARTITIONS, extra_env={
            "PAYOUT_SESSION_TIMEOUT_S": "6",
            "PAYOUT_SHUTDOWN_TIMEOUT_S": str(SHUTDOWN_TIMEOUT_S),
            "PAYOUT_SHUTDOWN_DRAIN_S": str(DRAIN_S),
            **env})


def poll(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout}s: {what}")
        time.sleep(0.05)


def assert_stopped_cleanly(worker: WorkerProcess) -> None:
    code, seconds = worker.terminate(BOUND_S + 30)
    assert code == 0, f"exit code {code} after SIGTERM:\n{worker.log_tail()}"
    assert seconds <= BOUND_S, f"{seconds:.1f}s to stop:\n{worker.log_tail()}"
    assert not worker.group_alive()


def requests(run_id: str, n: int) -> list[tuple[bytes, bytes]]:
    return [(key_of(r), orjson.dumps(r)) for r in (valid_request(i, run=run_id) for i in range(n))]


def test_sigterm_while_starting(quiet_broker, simulator, tmp_path, run_id) -> None:
    worker = worker_for(quiet_broker, simulator, tmp_path, run_id)
    try:
        worker.launch()
        # Signal handlers are installed before any service starts; the group is
        # joined about a second later (Faust waits for the tables to register).
        worker.wait_for_log("[^--Producer]: Starting", 60, poll_s=0.01)
        assert_stopped_cleanly(worker)
        assert "Joined group" not in worker.run_log()
    finally:
        worker.stop()


async def fill_changelog(bootstrap: str, topic: str, records: int) -> None:
    """Table state to recover: what ``records`` settled links leave in the changelog."""
    await create_topics(bootstrap, PARTITIONS, [topic])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50,
                                max_batch_size=1 << 20, acks=1)
    await producer.start()
    try:
        value = orjson.dumps({"status": "created", "padding": "x" * 300})
        sends = [await producer.send(topic, value, key=orjson.dumps(f"m_fill:{n}"),
                                     partition=n % PARTITIONS) for n in range(records)]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


def test_sigterm_while_recovering_tables(quiet_broker, simulator, tmp_path, run_id) -> None:
    worker = worker_for(quiet_broker, simulator, tmp_path, run_id)
    # Measured: ~8k changelog records/s recovered here, so several seconds of recovery.
    asyncio.run(fill_changelog(quiet_broker.bootstrap_servers,
                               f"shutdown-{run_id}-payout-links-changelog", 60_000))
    try:
        worker.launch()
        worker.wait_for_log("Restoring state from changelog topics", 60, poll_s=0.01)
        assert_stopped_cleanly(worker)
        assert "Recovery complete" not in worker.run_log()
    finally:
        worker.stop()


def test_sigterm_when_idle(quiet_broker, simulator, tmp_path, run_id) -> None:
    worker = worker_for(quiet_broker, simulator, tmp_path, run_id)
    try:
        worker.start()
        assert_stopped_cleanly(worker)
    finally:
        worker.stop()


def test_sigterm_with_provider_calls_in_flight(quiet_broker, slow_provider, tmp_path,
                                               run_id) -> None:
    worker = worker_for(quiet_broker, slow_provider, tmp_path, run_id)
    try:
        worker.start()
        asyncio.run(produce(quiet_broker.bootstrap_servers, requests(run_id, 20)))

        def calls_in_flight() -> bool:
            stats = slow_provider.stats()
            return stats["requests"].get("create", 0) > stats["events"].get("links_created", 0)

        poll(calls_in_flight, 60, "provider calls in flight")
        assert_stopped_cleanly(worker)
        # 3 s calls against a 1 s drain: they were cut short, not awaited.
        assert "pieces of work in flight (left uncommitted" in worker.run_log()
    finally:
        worker.stop()


def test_sigterm_while_kafka_is_down(own_broker, simulator, tmp_path, run_id) -> None:
    worker = worker_for(own_broker, simulator, tmp_path, run_id)
    try:
        worker.start()
        own_broker.stop()
        poll(lambda: "Connection refused" in worker.run_log(), 60,
             "the worker noticing that Kafka is gone")
        assert_stopped_cleanly(worker)
    finally:
        worker.stop()


def fatal_record(run_id: str) -> tuple[bytes, bytes]:
    request = valid_request(0, run=run_id)
    request["description"] = f"fatal-{run_id}"
    return key_of(request), orjson.dumps(request)


def test_fatal_error_ends_the_process(quiet_broker, simulator, tmp_path, run_id) -> None:
    worker = worker_for(quiet_broker, simulator, tmp_path, run_id,
                        PAYOUT_FAULTS=f"fatal:agent:fatal-{run_id}")
    try:
        worker.start()
        asyncio.run(produce(quiet_broker.bootstrap_servers, requests(run_id, 5)))
        sent = time.monotonic()
        asyncio.run(produce(quiet_broker.bootstrap_servers, [fatal_record(run_id)]))
        code = worker.wait_exit(BOUND_S + 30)
        taken = time.monotonic() - sent
        log = worker.run_log()
        assert code == EXIT_FATAL, f"exit code {code}:\n{worker.log_tail()}"
        assert taken <= BOUND_S, f"{taken:.1f}s from the fatal record to exit"
        assert not worker.group_alive()
        assert "fatal error, the worker exits: InjectedFault" in log
        assert "delivery watchdog" not in log  # nothing ticked on after the crash
    finally:
        worker.stop()


def test_sigterm_after_a_fatal_error(quiet_broker, simulator, tmp_path, run_id) -> None:
    worker = worker_for(quiet_broker, simulator, tmp_path, run_id,
                        PAYOUT_FAULTS=f"fatal:agent:fatal-{run_id}")
    try:
        worker.start()
        asyncio.run(produce(quiet_broker.bootstrap_servers, [fatal_record(run_id)]))
        poll(lambda: "fatal error, the worker exits" in worker.run_log()
             or worker.exited_unexpectedly(), 60, "the fatal error")
        code, seconds = worker.terminate(BOUND_S + 30)
        assert code == EXIT_FATAL, f"exit code {code}:\n{worker.log_tail()}"
        assert seconds <= BOUND_S
        assert not worker.group_alive()
    finally:
        worker.stop()
