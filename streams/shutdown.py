"""Fatal means exit; a stop signal always ends the process, within a bound.

What Faust does on its own (faust-streaming 0.15.3, mode 0.x), and why a worker could
outlive its usefulness:

* ``app.crash(exc)`` stops nothing by itself. It marks every service of the worker as
  crashed; the consumer thread sees that first and shuts down (the worker leaves its
  group, and that thread's event loop is closed), then the worker's ``start()``
  returns and ``Worker.stop()`` walks the services. Only at the very end does Faust
  re-raise the crash reason and exit with code 1.
* Nothing bounds that walk: ``stream_wait_empty`` waits for every record in flight
  (provider calls included) as long as they take; a consumer thread that dies while
  stopping (measured: Kafka down) is awaited for mode's ``shutdown_timeout`` of 60 s;
  joining it blocks the main thread without a timeout; a non-daemon thread that never
  ends keeps the interpreter alive after ``main`` returns.
* While ``Worker.stop()`` runs, a second SIGTERM is ignored (the stop is already
  under way), and any loop task nobody owns keeps running: the delivery watchdog
  kept calling into the consumer thread's closed loop, logging ``Event loop is
  closed`` every second, in a process that had left its group.

So the worker here (:class:`PayoutWorker`) arms a :class:`HardExit` deadline the
moment a stop begins (SIGTERM/SIGINT, or a crash reaching the worker, which every
unsupervised crash does), and the app (:class:`BoundedShutdownApp`) bounds the slow
parts of Faust's stop: in-flight work gets ``drain_s`` to finish, then it is abandoned
(left uncommitted, so the next owner redelivers it and looks the link up before
creating anything, as after a SIGKILL); on a fatal error it is abandoned at once.
If the process is still alive ``timeout_s`` after the stop began, it ends itself with
``os._exit``: nothing can leave a zombie.

Exit codes: 0 after a stop signal, :data:`EXIT_FATAL` after a fatal error (whether
Faust's stop finished or the deadline cut it short), :data:`EXIT_FORCED` when a
signalled stop overran ``timeout_s``.

The Faust and mode hooks this needs are private in both; they are reached only through
:mod:`streams.faust_internals` (``HookableApp``, ``HookableWorker``).
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from weakref import WeakSet

from faust.types import ConsumerT

from streams import logs, ownership
from streams.faust_internals import HookableApp, HookableWorker, limit_consumer_thread_stop

log = logging.getLogger(__name__)

EXIT_FATAL = 70  # sysexits EX_SOFTWARE: an internal error ended the worker
EXIT_FORCED = 124  # as timeout(1): a stop overran its bound and was cut short

# A Kafka client's own stop (commit, leave the group, close) takes milliseconds when
# the broker answers; when it does not, the stop must not eat the whole bound.
KAFKA_CLIENT_STOP_S = 5.0
# Once the worker's stop is complete, how long a leftover thread may keep the process.
LINGER_AFTER_STOP_S = 2.0


@dataclass(frozen=True)
class ShutdownBounds:
    """How long a stopping worker may take.

    ``drain_s``: how long in-flight provider calls may run on after a stop signal
    before they are abandoned. ``timeout_s``: from a stop signal or a fatal error to
    the end of the process, whatever happens.
    """

    drain_s: float = 10.0
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.drain_s < 0 or self.drain_s + KAFKA_CLIENT_STOP_S >= self.timeout_s:
            raise ValueError(
                f"shutdown bounds: need 0 <= PAYOUT_SHUTDOWN_DRAIN_S ({self.drain_s}) and "
                f"drain + {KAFKA_CLIENT_STOP_S:.0f} s < PAYOUT_SHUTDOWN_TIMEOUT_S "
                f"({self.timeout_s})")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ShutdownBounds:
        return cls(drain_s=float(env.get("PAYOUT_SHUTDOWN_DRAIN_S", cls.drain_s)),
                   timeout_s=float(env.get("PAYOUT_SHUTDOWN_TIMEOUT_S", cls.timeout_s)))


class HardExit:
    """A deadline, kept by its own thread, after which the process ends with ``os._exit``.

    A thread, not a loop task: the loop may be blocked (a join without timeout), closed,
    or done while a non-daemon thread keeps the interpreter alive. Arming again never
    moves the deadline later; a fatal code replaces a forced one, so a supervisor sees
    the cause, not the symptom.
    """

    def __init__(self, *, exit: Callable[[int], Any] = os._exit,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._exit = exit
        self._clock = clock
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._code = EXIT_FORCED
        self._reason = ""
        self._bound_s = 0.0

    @property
    def armed(self) -> bool:
        return self._deadline is not None

    def arm(self, seconds: float, code: int, reason: str) -> None:
        with self._cond:
            deadline = self._clock() + seconds
            first = self._deadline is None
            if first or deadline < self._deadline:  # type: ignore[operator]
                self._deadline, self._bound_s = deadline, seconds
            if first or code == EXIT_FATAL:
                self._code, self._reason = code, reason
            self._cond.notify_all()
        if first:
            log.warning("stopping (%s): the process ends within %.0f s", reason, seconds)
            threading.Thread(target=self._run, name="hard-exit-deadline", daemon=True).start()

    def finish(self, grace_s: float, code: int) -> None:
        """The worker's own stop is complete: whatever still runs (a thread Faust
        started while stopping) gets ``grace_s``, then the process ends with ``code``,
        the stop's real result, not the overrun's."""
        with self._cond:
            if self._deadline is None:
                return
            deadline = self._clock() + grace_s
            if deadline < self._deadline:
                self._deadline, self._bound_s = deadline, grace_s
                self._code = code
                self._reason = f"{self._reason}; the worker had stopped, a thread lingered"
            self._cond.notify_all()

    def _run(self) -> None:
        with self._cond:
            while True:
                assert self._deadline is not None
                remaining = self._deadline - self._clock()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            code, reason, bound_s = self._code, self._reason, self._bound_s
        # Straight to the file descriptor: a logging handler lock may be held by the
        # very thread that is stuck.
        line = (f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] [{os.getpid()}] [CRITICAL] "
                f"shutdown overran its bound: still running {bound_s:.0f} s after "
                f"{reason} (PAYOUT_SHUTDOWN_TIMEOUT_S); exiting hard with code {code}\n")
        try:
            os.write(2, line.encode())
        except OSError:
            pass
        self._exit(code)


class Abandonable(Protocol):
    """Work in flight that a stopping worker can wait for, or give up."""

    def close(self) -> None:
        """Start no new work; what runs may finish."""

    async def drained(self, timeout: float) -> bool:
        """True once nothing is in flight; False if ``timeout`` passed first."""

    def abandon(self) -> int:
        """Cancel what is in flight, start nothing more, ack nothing past it; how many."""

    def abandon_partitions(self) -> int:
        """Cancel what is in flight, ack none of it, and keep accepting new work."""


class BoundedShutdownApp(HookableApp):
    """A ``faust.App`` whose stop waits for in-flight work at most ``drain_s``."""

    def __init__(self, id: str, *, shutdown: ShutdownBounds, log_format: str = "text",
                 **options: Any) -> None:
        super().__init__(id, **options)
        self.shutdown_bounds = shutdown
        self.log_format = log_format
        self.hard_exit = HardExit()
        self._in_flight: WeakSet[Abandonable] = WeakSet()

    def track_in_flight(self, work: Abandonable) -> None:
        """Register work a stop must drain or abandon (the agent's in-flight pool)."""
        self._in_flight.add(work)

    def untrack_in_flight(self, work: Abandonable) -> None:
        self._in_flight.discard(work)

    @property
    def shortlabel(self) -> str:
        return "App"  # Faust's own label in log lines

    def abandon_in_flight(self, why: str) -> None:
        """Give up all in-flight work: it stays uncommitted, the next owner redoes it."""
        cancelled = sum(work.abandon() for work in list(self._in_flight))
        if cancelled:
            log.warning("%s: abandoned %d pieces of work in flight (left uncommitted, "
                        "redelivered to the partitions' next owner)", why, cancelled)

    async def consumer_wait_empty(self, consumer: ConsumerT, logger: Any) -> None:
        """Faust's wait for in-flight records, replaced by a bounded one when stopping.

        During a rebalance (not stopping) Faust's own wait applies. When stopping,
        Faust has already paused intake; work in flight gets ``drain_s`` (none after a
        fatal error), then is abandoned, before the tables close under it. Faust's
        own wait cannot be bounded from outside: measured with Kafka down, its loop
        survives cancellation and kept waiting until the hard exit.
        """
        if not self.should_stop:
            if ownership.installed() is not None:
                # A rebalance revokes every partition (eager protocol). Work in flight
                # is not provably ours any more: give it up now rather than wait for it
                # (streams.ownership); its records are redelivered to the next owner.
                cancelled = sum(work.abandon_partitions() for work in list(self._in_flight))
                if cancelled:
                    log.warning("rebalance: abandoned %d pieces of work in flight (left "
                                "uncommitted for the partitions' next owner)", cancelled)
            await super().consumer_wait_empty(consumer, logger)
            return
        await self._drain_in_flight()

    def on_rebalance_start(self) -> None:
        # Faust calls this in its consumer thread the moment a rebalance revokes the
        # partitions, before the worker's loop hears of it: the lease ends here.
        lease = ownership.installed()
        if lease is not None:
            lease.revoke()
        super().on_rebalance_start()

    async def _drain_in_flight(self) -> None:
        pools = list(self._in_flight)
        for work in pools:
            work.close()
        if pools and not self.crashed:
            drain_s = self.shutdown_bounds.drain_s
            log.info("stopping: waiting at most %.1f s for work in flight", drain_s)
            if not all(await asyncio.gather(*(w.drained(drain_s) for w in pools))):
                log.warning("stopping: work still in flight after %.1f s "
                            "(PAYOUT_SHUTDOWN_DRAIN_S)", drain_s)
        self.abandon_in_flight("stopping")
        await asyncio.gather(*(w.drained(1.0) for w in pools))

    async def on_stop(self) -> None:
        await super().on_stop()
        # Without an assignment Faust skips the wait above; nothing may outlive the stop.
        self.abandon_in_flight("stopping")

    def new_consumer(self) -> ConsumerT:
        consumer = super().new_consumer()
        # mode waits 60 s for a consumer thread that died while stopping (measured
        # with Kafka down), and such a thread never signals it is done.
        limit_consumer_thread_stop(consumer, KAFKA_CLIENT_STOP_S)
        return consumer


class PayoutWorker(HookableWorker):
    """Faust's worker, whose every stop ends the process within ``timeout_s``."""

    app: BoundedShutdownApp

    @property
    def shortlabel(self) -> str:
        return "Worker"  # log lines keep Faust's labels ("[^Worker]: Ready" is awaited)

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        """Faust's public hook once it has set up logging: our filter and format."""
        super().on_setup_root_logger(logger, level)
        logs.install(logger, self.app.log_format)

    def _arm(self, code: int, reason: str) -> None:
        self.app.hard_exit.arm(self.app.shutdown_bounds.timeout_s, code, reason)

    def on_sigterm(self) -> None:
        self._arm(EXIT_FORCED, "SIGTERM")
        super().on_sigterm()

    def on_sigint(self) -> None:
        self._arm(EXIT_FORCED, "SIGINT")
        super().on_sigint()

    def on_crash(self, reason: BaseException) -> None:
        # Every crash without a supervisor walks up to the root service: this worker.
        first = not self.crashed
        super().on_crash(reason)
        if first:
            log.critical("fatal error, the worker exits: %r", reason)
        self._arm(EXIT_FATAL, f"fatal error {reason!r}")
        self._in_loop(self.app.abandon_in_flight, "fatal error")

    def _in_loop(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn`` on the worker's loop: crashes also arrive from the consumer thread."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            fn(*args)
        elif not self.loop.is_closed():
            self.loop.call_soon_threadsafe(fn, *args)

    def on_worker_shutdown(self) -> None:
        # However start() ended (a crash, a signal, an error while starting).
        self._arm(EXIT_FATAL if self.crash_reason else EXIT_FORCED, "worker stopping")
        super().on_worker_shutdown()

    def shutdown_loop(self) -> None:
        try:
            super().shutdown_loop()
        except BaseException as exc:
            if self.crash_reason is None:
                raise
            # Faust re-raises the crash reason for an exit code of 1; one code for
            # "fatal" whether or not the deadline had to end the process.
            raise SystemExit(EXIT_FATAL) from exc
        # Every service has stopped and the loop is closed. A consumer thread Faust
        # started while the stop was under way (SIGTERM during startup) can outlive
        # it as a non-daemon thread; measured: the process then waited for the whole
        # bound and exited 124 although the stop was clean.
        self.app.hard_exit.finish(LINGER_AFTER_STOP_S,
                                  EXIT_FATAL if self.crash_reason is not None else 0)
