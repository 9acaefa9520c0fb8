"""The poll sweep: which created links are due a status poll (or an expiry), and asking.

Webhooks get lost (dropped by the provider, refused while a worker was down past the
provider's retries). Polling is the safety net: every created link that can still
change carries ``next_poll_at`` in its record (:mod:`streams.polling`), which survives
restarts with the record. Each worker walks the link-table partitions it owns a slice
per tick, resuming where it stopped, and for each link that is due it writes a poll
(or, for a link past its ``expires_at`` at a provider that does not expire links, an
expiry) to the provider-reports topic on the link's home partition; the request agent
then asks the provider in order with everything else about that link
(:mod:`streams.link_tracking`).

Bounded on every side: at most ``scan_per_tick`` records read a tick, at most
``rate_per_s`` polls a second per provider (the rest wait for the next pass), and a
link already asked about is not asked again until its record shows the poll, or
:func:`resend_after` has passed (then its poll is taken as lost). A restart finds
the records as they were and resumes; links due at once are spread over the ticks by
the rate bound, never sent in one burst.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from streams import events, lifecycle
from streams.connectors.base import link_reference
from streams.connectors.provider import Provider
from streams.link_tracking import EXPIRE, POLL, TrackingMessage
from streams.polling import epoch_s

log = logging.getLogger(__name__)

Items = Callable[[int, bytes | None, int], list[tuple[bytes, bytes]]]
# The partitions of the link table this worker owns now; None while a rebalance and its
# recovery are under way (read nothing then, and keep the cursors).
Send = Callable[[bytes, bytes, int], Awaitable[None]]


RESEND_AFTER_MIN_S, RESEND_AFTER_MAX_S = 10.0, 120.0


def resend_after(poll_min_s: float) -> float:
    """How long a link asked about whose record shows no poll since is left unasked.

    Its poll may be late or lost: a fenced partition's work waits for its rewind, and a
    poll whose handling raised leaves the record as it was. Four of the shortest
    poll intervals, within 10-120 s: long enough that an agent merely lagging behind
    its partition is not asked twice, short enough that a lost poll is not the longest
    wait a link has (a fixed 120 s was 40 intervals with 3 s polls, and as long as the
    lifecycle integration test waits for every link to reach its final status).
    """
    return min(RESEND_AFTER_MAX_S, max(RESEND_AFTER_MIN_S, 4.0 * poll_min_s))


@dataclass
class SweepLimits:
    scan_per_tick: int = 2000
    rate_per_s: float = 20.0  # polls a second per provider, per worker
    resend_after_s: float = RESEND_AFTER_MAX_S  # see resend_after()


def due_kind(record: lifecycle.LinkRecord, provider: Provider | None, now: float) -> str | None:
    """``poll``, ``expire`` or None: what a link needs now (pure)."""
    if record.status is not lifecycle.LinkStatus.CREATED:
        return None
    if record.status_event is not None and not record.status_event_published:
        return POLL  # a change stored but not told (a crash in between): tell it now
    state = record.state
    if state is not None and state.final:
        return None
    expires = epoch_s((record.outcome or {}).get("expires_at"))
    if (provider is not None and not provider.expires_links and expires is not None
            and expires <= now and (state is None or not state.reversible)
            and (state is None or state.payout_status not in ("INITIATED", "PENDING"))):
        return EXPIRE
    if record.next_poll_at is None and state is None:
        return POLL  # created before statuses were followed, or in a status we did not know
    if record.next_poll_at is not None and record.next_poll_at <= now:
        return POLL
    return None


@dataclass
class PollSweep:
    """One per worker; ``run_once`` is called by a timer (streams.agents.polls)."""

    items: Items
    owned_partitions: Callable[[], Iterable[int] | None]
    send: Send
    providers: Mapping[str, Provider]
    limits: SweepLimits = field(default_factory=SweepLimits)
    clock: Callable[[], float] = time.time
    _cursors: dict[int, bytes | None] = field(default_factory=dict)
    # key -> (when asked, the link's next_poll_at then): not asked again until its record
    # shows the poll was done (a new next_poll_at) or resend_after_s has passed.
    _asked: dict[bytes, tuple[float, float | None]] = field(default_factory=dict)
    _tokens: dict[str, float] = field(default_factory=dict)
    _last_tick: float | None = None
    asked_total: int = 0
    scanned_total: int = 0

    def _refill(self, now: float) -> None:
        elapsed = 1.0 if self._last_tick is None else max(0.0, now - self._last_tick)
        self._last_tick = now
        cap = max(1.0, self.limits.rate_per_s)
        for name in self.providers:
            self._tokens[name] = min(cap, self._tokens.get(name, cap) +
                                     elapsed * self.limits.rate_per_s)

    async def run_once(self) -> int:
        """One tick: read a slice of each owned partition; ask about the due links."""
        now = self.clock()
        self._refill(now)
        current = self.owned_partitions()
        if current is None:
            return 0
        owned = sorted(current)
        for partition in list(self._cursors):
            if partition not in owned:
                del self._cursors[partition]  # not ours any more: start over if it returns
        for key, (at, _) in list(self._asked.items()):
            if now - at > self.limits.resend_after_s:
                del self._asked[key]
        if not owned:
            return 0
        budget = max(1, self.limits.scan_per_tick // len(owned))
        due: list[tuple[float, int, bytes, lifecycle.LinkRecord, str]] = []
        for partition in owned:
            due.extend(self._scan(partition, budget, now))
        # The most overdue first: when a provider's rate cannot serve every due link
        # this tick, the ones that waited longest are asked and the rest wait their
        # turn. (Serving them in scan order starved the links late in the scan, measured
        # in the demo: 6 of 281 Prism links still showed their creation status at the
        # 300 s deadline while the first partitions' links, due every 2-10 s, took the
        # 20 tokens a second.)
        due.sort(key=lambda d: d[0])
        sends: list[Awaitable[None]] = []
        for _, partition, key, record, kind in due:
            if self._tokens.get(record.connector, 0.0) < 1.0:
                continue  # this provider's rate is spent: its turn comes next tick
            self._tokens[record.connector] -= 1.0
            message = TrackingMessage(kind=kind, connector=record.connector,
                                      reference=record.reference, link_key=record.link_key,
                                      received_at=events.now_iso())
            sends.append(self.send(link_reference(record.link_key).encode(),
                                   message.to_bytes(), partition))
            self._asked[key] = (now, record.next_poll_at)
        if sends:
            await asyncio.gather(*sends)  # the writes of one tick, awaited once
        self.asked_total += len(sends)
        return len(sends)

    def _scan(self, partition: int, budget: int, now: float,
              ) -> list[tuple[float, int, bytes, lifecycle.LinkRecord, str]]:
        """The next slice of the partition: its links due now, with when each fell due.

        The cursor always moves on, so every link is read in its turn on a large
        partition; a link not asked this tick is met again on the next pass.
        """
        rows = self.items(partition, self._cursors.get(partition), budget)
        self.scanned_total += len(rows)
        due = []
        for key, raw in rows:
            try:
                record = lifecycle.LinkRecord.from_bytes(raw)
                provider = self.providers.get(record.connector)
                kind = due_kind(record, provider, now) if provider is not None else None
            except Exception as exc:  # one odd record must not stop the sweep
                log.error("link record %r on partition %d not polled: %s", key[:80], partition,
                          type(exc).__name__)
                continue
            asked_before = self._asked.get(key)
            if kind is None or (asked_before is not None
                                and asked_before[1] == record.next_poll_at):
                continue  # not due, or asked and not yet done: the agent is on it
            # Never polled (None) counts as due the longest.
            due.append((record.next_poll_at or 0.0, partition, key, record, kind))
        self._cursors[partition] = rows[-1][0] if len(rows) >= budget else None
        return due
