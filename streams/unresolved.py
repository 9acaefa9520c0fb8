"""Links whose handling broke after a provider call may have been made.

Such a link can be neither failed (a link may exist: DESIGN.md rule 2) nor left to
hold its partition (the records behind it must keep moving). So its record stays as
it is in ``payout-links`` (``creating``: in doubt), its request is acked, and an entry
here -- table ``payout-links-unresolved``, co-partitioned with the links -- keeps the
request and when to try again. A timer on each worker re-drives the due entries of
the partitions it owns by producing the stored request to the routed topic, where it
meets the link's record like any re-sent request: lookup by reference before any
create, then exactly one outcome. The entry is removed when that outcome is published.

Every park is logged at ERROR and counted: an unresolved link is an alert.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UnresolvedEntry:
    request: Mapping[str, Any]
    reason: str
    attempts: int
    since: float  # wall clock of the first park
    retry_at: float  # wall clock of the next re-drive

    def to_bytes(self) -> bytes:
        return orjson.dumps({"request": self.request, "reason": self.reason,
                             "attempts": self.attempts, "since": self.since,
                             "retry_at": self.retry_at})

    @classmethod
    def from_bytes(cls, raw: bytes) -> UnresolvedEntry:
        d = orjson.loads(raw)
        return cls(d["request"], d["reason"], d["attempts"], d["since"], d["retry_at"])


def parked(previous: UnresolvedEntry | None, request: Mapping[str, Any], reason: str,
           now: float, base_s: float, max_s: float) -> UnresolvedEntry:
    """The entry after one more failed attempt: the wait doubles, up to ``max_s``."""
    if previous is None:
        return UnresolvedEntry(dict(request), reason, 1, now, now + base_s)
    attempts = previous.attempts + 1
    wait = min(max_s, base_s * 2 ** (attempts - 1))
    return replace(previous, reason=reason, attempts=attempts, retry_at=now + wait)


def due(entries: Iterable[tuple[str, UnresolvedEntry]], now: float,
        sent: Mapping[str, float]) -> list[tuple[str, UnresolvedEntry]]:
    """Entries to re-drive now: due, and not already re-driven for this retry time."""
    return [(key, e) for key, e in entries
            if e.retry_at <= now and sent.get(key) != e.retry_at]


class Redriver:
    """Re-drives due unresolved links of the partitions this worker owns."""

    def __init__(self, entries: Callable[[], Iterable[tuple[Any, Any]]],
                 send: Callable[[str, bytes], Any], clock: Callable[[], float] = time.time,
                 batch: int = 100) -> None:
        self._entries = entries
        self._send = send
        self._clock = clock
        self._sent: dict[str, float] = {}
        self._batch = batch
        self.redriven = 0

    async def run_once(self) -> int:
        now = self._clock()
        current: list[tuple[str, UnresolvedEntry]] = []
        for key, raw in self._entries():
            try:
                current.append((key, UnresolvedEntry.from_bytes(raw)))
            except (orjson.JSONDecodeError, KeyError, TypeError):
                log.error("unreadable unresolved entry for %s; left in place", key)
        live = {key for key, _ in current}
        for key in list(self._sent):
            if key not in live:
                del self._sent[key]
        sent = 0
        for key, entry in due(current, now, self._sent)[:self._batch]:
            log.warning("re-driving unresolved link %s (attempt %d, unresolved for %.0fs: %s)",
                        key, entry.attempts + 1, now - entry.since, entry.reason)
            await self._send(key, orjson.dumps(entry.request))
            self._sent[key] = entry.retry_at
            sent += 1
        self.redriven += sent
        return sent
