"""When a created link is next polled: the safety net for webhooks that never arrive.

Pure: the record's state and the clock in, a wall-clock time (or None: stop) out. A
young link is polled often (claims happen soon after a link is sent), an old one
rarely; the interval grows with the link's age up to ``max_s``, which with one sweep
of the table bounds how late a missed webhook is noticed. Every interval is spread by
random jitter, so links created together, or a worker restarting with many links
due, do not poll in a burst. A link in a final state is never polled again; a
paid-out link that a reversal could undo is polled every ``reversal_poll_s`` for
``reversal_watch_s``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from streams.lifecycle import LinkState


@dataclass(frozen=True)
class PollPolicy:
    min_s: float = 30.0
    max_s: float = 900.0
    age_factor: float = 0.1  # interval = age x this, within [min_s, max_s]
    reversal_watch_s: float = 7 * 86400.0
    # A paid-out link is polled this rarely while a reversal could still undo it: the
    # provider's webhook tells a reversal; the poll is for one that got lost.
    reversal_poll_s: float = 6 * 3600.0
    jitter: float = 0.2  # each interval is shortened by up to this share, at random


def epoch_s(rfc3339: str | None) -> float | None:
    """An RFC 3339 time as epoch seconds; None when absent or unreadable."""
    if not rfc3339:
        return None
    try:
        return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def next_poll_at(now: float, created_at: float | None, state: LinkState | None,
                 policy: PollPolicy, rand: Callable[[], float]) -> float | None:
    """When to poll the link next (epoch seconds), or None: nothing more can change."""
    if state is not None and state.final:
        return None
    spread = 1.0 - policy.jitter * rand()
    if state is not None and state.reversible:
        since = epoch_s(state.changed_at)
        if since is not None and now - since > policy.reversal_watch_s:
            return None
        return now + max(policy.max_s, policy.reversal_poll_s) * spread
    age = max(0.0, now - created_at) if created_at is not None else 0.0
    interval = min(policy.max_s, max(policy.min_s, age * policy.age_factor))
    return now + interval * spread
