"""``kill -USR2 <worker pid>``: log what every task of the worker is waiting for.

mode's own SIGUSR1 dump shows each task's outermost frame only; a stuck worker (a
partition that stops moving) needs the whole chain of awaits down to the future it
waits on. Read-only and cheap: it walks each task's coroutine ``cr_await`` chain.
"""
from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def await_chain(task: asyncio.Task[Any] | Any) -> list[str]:
    """``file:line in function`` for each coroutine the task (or coroutine) is inside,
    outermost first."""
    chain: list[str] = []
    awaited: Any = task.get_coro() if isinstance(task, asyncio.Task) else task
    seen = 0
    while awaited is not None and seen < 64:
        seen += 1
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None) \
            or getattr(awaited, "gi_frame", None)
        if frame is None:
            chain.append(repr(awaited)[:160])
            break
        chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "ag_await", None) \
            or getattr(awaited, "gi_yieldfrom", None)
    return chain


_reporters: list[Callable[[], list[str]]] = []


def add_reporter(reporter: Callable[[], list[str]]) -> None:
    """Also log ``reporter()``'s lines on SIGUSR2 (e.g. the delivery guard's cursors)."""
    _reporters.append(reporter)


def log_awaits() -> None:
    for reporter in _reporters:
        try:
            log.warning("state:\n  %s", "\n  ".join(reporter()))
        except Exception as exc:  # a diagnostic must never hurt the worker
            log.warning("state reporter %r failed: %r", reporter, exc)
    for task in asyncio.all_tasks():
        log.warning("task %s awaits:\n  %s", task.get_name(), "\n  ".join(await_chain(task)))
    # Faust's agents run as actors wrapping the agent's coroutine (``Actor.it``), which
    # a task's chain does not reach through.
    from streams.app import app
    for agent in app.agents.values():
        for actor in getattr(agent, "_actors", ()):
            log.warning("agent %s awaits:\n  %s", agent.name,
                        "\n  ".join(await_chain(getattr(actor, "it", None))))


def install(loop: asyncio.AbstractEventLoop) -> None:
    try:
        loop.add_signal_handler(signal.SIGUSR2, log_awaits)
    except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
        pass
