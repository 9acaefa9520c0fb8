"""Fatal means exit and every stop is bounded: the parts that need no broker.

The worker-level proof (a real worker in each state, SIGTERM or a fatal record) is
tests/integration/test_shutdown.py.
"""
from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from dataclasses import dataclass, field

import pytest

from streams.delivery import every
from streams.inflight import KeyedInFlight, guard_acks
from streams.shutdown import (
    EXIT_FATAL,
    EXIT_FORCED,
    BoundedShutdownApp,
    HardExit,
    ShutdownBounds,
)
from tests.unit.test_processor import FakeEvent, FakeMessage


async def _never(exc: BaseException) -> None:
    raise AssertionError(f"unexpected fatal error: {exc!r}")


# --- the hard-exit deadline ---------------------------------------------------------


class RecordedExit:
    def __init__(self) -> None:
        self.codes: list[int] = []
        self.called = threading.Event()

    def __call__(self, code: int) -> None:
        self.codes.append(code)
        self.called.set()


def test_deadline_ends_the_process_with_its_code() -> None:
    exit_ = RecordedExit()
    HardExit(exit=exit_).arm(0.05, EXIT_FORCED, "SIGTERM")
    assert exit_.called.wait(10)
    assert exit_.codes == [EXIT_FORCED]


def test_arming_again_never_postpones_and_a_fatal_code_wins() -> None:
    exit_ = RecordedExit()
    deadline = HardExit(exit=exit_)
    deadline.arm(0.05, EXIT_FORCED, "SIGTERM")
    deadline.arm(3600, EXIT_FATAL, "fatal error")  # later: must not move the deadline
    assert exit_.called.wait(10)
    assert exit_.codes == [EXIT_FATAL]


def test_a_finished_stop_ends_soon_with_its_own_code_despite_a_lingering_thread() -> None:
    exit_ = RecordedExit()
    deadline = HardExit(exit=exit_)
    deadline.finish(0.05, 0)  # not armed: nothing to shorten
    assert not exit_.called.wait(0.2)
    deadline.arm(3600, EXIT_FORCED, "SIGTERM")
    deadline.finish(0.05, 0)  # the worker stopped cleanly; a thread still runs
    assert exit_.called.wait(10)
    assert exit_.codes == [0]


def test_a_stuck_process_is_ended_by_the_deadline(tmp_path) -> None:
    """A non-daemon thread that never ends keeps Python alive after main returns."""
    script = textwrap.dedent(f"""
        import threading
        from streams.shutdown import HardExit
        threading.Thread(target=threading.Event().wait).start()  # never ends, not a daemon
        HardExit().arm(0.5, {EXIT_FATAL}, "fatal error RuntimeError('boom')")
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    try:
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == EXIT_FATAL
    assert b"exiting hard with code 70" in stderr


def test_bounds_leave_room_for_the_kafka_clients_to_stop() -> None:
    assert ShutdownBounds.from_env({}) == ShutdownBounds(drain_s=10.0, timeout_s=30.0)
    assert ShutdownBounds.from_env({"PAYOUT_SHUTDOWN_DRAIN_S": "1",
                                    "PAYOUT_SHUTDOWN_TIMEOUT_S": "12"}).timeout_s == 12.0
    with pytest.raises(ValueError):
        ShutdownBounds(drain_s=10.0, timeout_s=12.0)
    with pytest.raises(ValueError):
        ShutdownBounds(drain_s=-1.0, timeout_s=30.0)


# --- in-flight work on a stop ---------------------------------------------------------


async def test_abandoned_work_is_cancelled_and_never_acked() -> None:
    in_flight = KeyedInFlight(8, _never)
    acked: list[int] = []
    release = asyncio.Event()
    started: list[int] = []

    async def call(n: int) -> None:
        started.append(n)
        await release.wait()

    for n in range(3):  # two in flight for one key, one for another
        await in_flight.submit(FakeEvent(FakeMessage("t", 0, n, None, None), acked),
                               "k" if n < 2 else "j", lambda n=n: call(n))
    while len(started) < 2:
        await asyncio.sleep(0)
    assert in_flight.abandon() == 3
    assert await in_flight.drained(5.0)
    release.set()
    await in_flight.submit(FakeEvent(FakeMessage("t", 0, 3, None, None), acked), "i",
                           lambda: call(3))
    assert await in_flight.drained(5.0)
    assert acked == [] and started == [0, 2]  # nothing after the abandon started


async def test_a_closed_pool_lets_running_work_finish_and_starts_nothing() -> None:
    in_flight = KeyedInFlight(8, _never)
    acked: list[int] = []
    release = asyncio.Event()
    ran: list[int] = []

    async def call(n: int) -> None:
        await release.wait()
        ran.append(n)

    await in_flight.submit(FakeEvent(FakeMessage("t", 0, 0, None, None), acked), "k",
                           lambda: call(0))
    in_flight.close()
    await in_flight.submit(FakeEvent(FakeMessage("t", 0, 1, None, None), acked), "j",
                           lambda: call(1))
    assert not await in_flight.drained(0.01)  # the running call is not done yet
    release.set()
    assert await in_flight.drained(5.0)
    assert ran == [0] and acked == [0]


async def test_the_fatal_report_is_held_until_it_has_run() -> None:
    reported = asyncio.Event()

    async def on_fatal(exc: BaseException) -> None:
        await asyncio.sleep(0)
        reported.set()

    in_flight = KeyedInFlight(4, on_fatal)

    async def boom() -> None:
        raise RuntimeError("bug")

    await in_flight.submit(FakeEvent(FakeMessage("t", 0, 0, None, None), []), "k", boom)
    while not in_flight._failure_reports and not reported.is_set():
        await asyncio.sleep(0)
    assert len(in_flight._failure_reports) == 1  # the loop itself holds tasks weakly
    await asyncio.wait_for(reported.wait(), 5)
    await asyncio.sleep(0)
    assert not in_flight._failure_reports


def test_guarding_acks_again_does_not_wrap_the_guard() -> None:
    forwarded: list[int] = []

    class FakeConsumer:
        def __init__(self) -> None:
            self._unacked_messages: set = set()

        def ack(self, message: FakeMessage) -> bool:
            forwarded.append(message.offset)
            return True

    consumer = FakeConsumer()
    guard_acks(consumer, {"payout-link-requested"})  # type: ignore[arg-type]
    guard = consumer.ack
    guard_acks(consumer, {"payout-link-requested"})  # the agent restarted
    guard_acks(consumer, {"payout-link-requested-routed"})
    assert consumer.ack is guard
    assert consumer.ack(FakeMessage("payout-link-requested-routed", 0, 1, None, None)) is False
    assert consumer.ack(FakeMessage("other", 0, 2, None, None)) is True
    assert forwarded == [2]


# --- the delivery watchdog ------------------------------------------------------------


@dataclass
class FakeOwner:
    """The app as ``every`` sees it."""

    stop_after: int = 1_000
    ticks: int = 0
    crashed_with: list[BaseException] = field(default_factory=list)

    @property
    def should_stop(self) -> bool:
        return bool(self.crashed_with) or self.ticks >= self.stop_after

    async def sleep(self, seconds: float) -> None:
        self.ticks += 1
        await asyncio.sleep(0)

    async def crash(self, reason: BaseException) -> None:
        self.crashed_with.append(reason)


async def test_watchdog_stops_with_its_owner() -> None:
    owner, calls = FakeOwner(stop_after=3), []

    async def job() -> None:
        calls.append(1)

    await asyncio.wait_for(every(1.0, job, owner), 5)  # type: ignore[arg-type]
    assert len(calls) == 2  # the tick on which the owner stopped runs nothing


async def test_watchdog_on_a_closed_consumer_loop_ends_and_crashes_the_worker() -> None:
    owner, calls = FakeOwner(), []
    closed = RuntimeError("Event loop is closed")

    async def job() -> None:
        calls.append(1)
        raise closed

    await asyncio.wait_for(every(1.0, job, owner), 5)  # type: ignore[arg-type]
    assert calls == [1] and owner.crashed_with == [closed]


async def test_watchdog_retries_other_failures() -> None:
    owner, calls = FakeOwner(stop_after=4), []

    async def job() -> None:
        calls.append(1)
        raise RuntimeError("broker hiccup")

    await asyncio.wait_for(every(1.0, job, owner), 5)  # type: ignore[arg-type]
    assert len(calls) == 3 and owner.crashed_with == []


# --- the app's bounded drain ----------------------------------------------------------


@dataclass(eq=False)
class StuckPool:
    """In-flight work that never finishes by itself (a provider call hanging)."""

    closed: bool = False
    abandoned: bool = False

    def close(self) -> None:
        self.closed = True

    async def drained(self, timeout: float) -> bool:
        if not self.abandoned:
            await asyncio.sleep(timeout)
        return self.abandoned

    def abandon(self) -> int:
        self.abandoned = True
        return 1


async def test_a_stopping_app_drains_for_at_most_drain_s_then_abandons() -> None:
    app = BoundedShutdownApp("test-shutdown-drain", shutdown=ShutdownBounds(0.2, 10.0))
    pool = StuckPool()
    app.track_in_flight(pool)
    await asyncio.wait_for(app._drain_in_flight(), 5)
    assert pool.closed and pool.abandoned


async def test_after_a_fatal_error_work_is_abandoned_without_waiting() -> None:
    app = BoundedShutdownApp("test-shutdown-fatal", shutdown=ShutdownBounds(1000.0, 2000.0))
    pool = StuckPool()
    app.track_in_flight(pool)
    app._crashed.set()
    await asyncio.wait_for(app._drain_in_flight(), 5)  # not 1000 s
    assert pool.abandoned
