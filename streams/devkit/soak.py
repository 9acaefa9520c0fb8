"""``make soak``: the pipeline at half its measured max rate for a long time, with kills.

What runs (everything on this machine, every process stopped by the code that started
it, also on failure and Ctrl-C): one real Kafka (``broker_from_environment``), every
provider's simulator (``SimulatorFleet``) at 100 ± 20 ms with 1 % of calls faulted
(5xx 0.3 %, 429 0.3 %, link created but response lost 0.2 %, timeout before create
0.2 %), and **one worker**.

1. **Max-rate probe.** ``--probe-requests`` requests (the demo's merchants, so every
   provider gets traffic) are produced as fast as possible; max = requests ÷ (last
   outcome − first send), what ``make bench`` reports for its max step. The rate between
   the 10th and 90th percentile outcome is printed beside it (``probe_rates``): it leaves
   out the ramp-up and the fault tail and was ~25 % higher, but half of *that* (450/s in
   a 3-minute trial with a kill every minute) left little headroom: after the second
   kill the backlog took 72 s to come back under the bound and the answered rate fell to
   281/s in that minute. The soak takes the conservative one.
2. **Soak.** Half the measured max (``--rate`` overrides), paced, for ``SOAK_MINUTES``
   (default 20; ``--minutes`` overrides), plus 1 % re-sends of recent requests (new
   event id, same link key). The probe's worker is SIGKILLed as the soak's traffic
   starts (0:00) and restarted at once, then again every ``--kill-every`` minutes
   (default 5): every worker life of the soak starts the same way, from a crash with a
   backlog to catch up on, so their RSS compares like with like (a worker started
   cleanly, with no backlog, was ~10 % smaller at the same age in two trial runs). A
   worker that exits by itself is restarted too, and fails the run.
3. **Drain and check.** After producing stops, every request must be answered within
   ``DRAIN_DEADLINE_S``; then ``streams.devkit.chaos.check`` accounts for every input
   (exactly one outcome each, no two links for one key at any provider, no failure for
   a link that exists).

Why one worker and not two killed alternately: the probe measures the max of the same
topology the soak then runs at half of, and this 2-core machine has no second core for a
second worker anyway (docs/benchmarks.md, "Scaling out"). A kill is then a full outage:
the backlog spikes for the session timeout plus a restart, and must drain with the half
of the capacity the offered load leaves free. Each worker life also lasts one kill
interval, which gives RSS checkpoints that can be compared like with like.

A line per minute: offered and answered rate (distinct requests produced / first
answered in that minute), p99 of send → outcome for the requests answered in that
minute, the worker's RSS (``/proc/<pid>/status`` VmRSS) and CPU, **lag** (the worker's
consumer group: records on the request topics not yet committed, from Kafka) and **in
flight** (requests produced and not yet answered, at the minute's end and its maximum in
the minute).

The rules (pure functions below, unit-tested in tests/unit/test_soak.py):

* **RSS**: a restarted worker's RSS starts low again, so RSS is compared at equal worker
  age. Checkpoints are the worker's RSS at every minute's end and just before every kill,
  each with the worker's age (since its launch). The reference is the first checkpoint
  at or after minute 5 of the soak (with the default kills: the worker started at 0:00,
  5 minutes old, just before it is killed). Every later checkpoint of a worker at least
  0.9 × as old as the reference's must be within +15 % of it. With no such later checkpoint (a
  run under ~10 minutes) the check says "n/a", not pass.
* **Lag**: the bound is ``LAG_BOUND_S`` seconds of offered traffic (at least
  ``LAG_BOUND_MIN`` requests) in flight, checked on the end-to-end backlog (produced,
  not answered). The consumer-group lag is reported, not judged: it sums both request
  topics and trails the worker's commits (a record held by a slow call or a re-drive
  keeps its partition's committed offset back), so after a kill it reads higher than
  the backlog (25,000 against 15,000 in a trial run). It is judged once: within
  ``COMMIT_CATCHUP_S`` of the drain the committed offsets must reach the log end. After each kill the backlog must be back under the
  bound within ``RECOVERY_S`` and stay there until the next kill; at every minute's end
  after the first minute and outside those recovery windows it must be under the bound;
  and after producing stops it must drain to zero within ``DRAIN_DEADLINE_S``.
* **Nothing lost or duplicated**: ``chaos.check`` must be clean.

Ends with one line, ``soak: <minutes> min at <rate>/s (half of max <max>/s): <answered>/
<requests> answered, <lost> lost, <dup> duplicate links, RSS <ref>→<end> MB (+x %), max
lag <n> (in flight <m>); PASS|FAIL (reasons)``, exit code 0 or 1, and (unless
``--no-doc``) a row in the "Soak" section of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, fields
from itertools import islice
from pathlib import Path
from typing import Any, NoReturn

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from streams.connectors.registry import PROVIDERS
from streams.devkit.broker import broker_from_environment
from streams.devkit.chaos import Input, Report, check, merchant_request
from streams.devkit.harness import (
    OUTCOME_TOPICS,
    REPO_ROOT,
    TOPICS,
    Outcomes,
    WorkerProcess,
    create_topics,
    outcome_key,
    stop_consuming,
)
from streams.devkit.runinfo import CLK_TCK, add_table_row, git_commit, proc_cpu_seconds
from streams.devkit.sims.fleet import SimulatorFleet
from streams.devkit.traffic import demo_worker_env, key_of
from streams.preflight import require_codecs

DOC = REPO_ROOT / "docs" / "benchmarks.md"
DEFAULT_MINUTES = 20
FAULTS = {"error_5xx": 0.003, "throttle_429": 0.003, "lost_after_create": 0.002,
          "timeout_before_create": 0.002}  # 1 % of provider calls, at every simulator
LATENCY_MS, JITTER_MS = 100.0, 20.0
PARTITIONS = 8
RESEND_EVERY = 100          # one re-send of a recent request per 100 new ones
RSS_AFTER_S = 300.0         # the RSS reference: the first checkpoint from minute 5 on
RSS_LIMIT = 0.15            # +15 %
RSS_AGE_TOLERANCE = 0.9     # a checkpoint compares if its worker is ≥ 0.9 × the reference's age
LAG_BOUND_S = 5.0           # backlog bound: seconds of offered traffic
LAG_BOUND_MIN = 100
WARMUP_S = 60.0             # the first minute's end is not held to the bound
RECOVERY_S = 120.0          # after a kill, the backlog is back under the bound within this
DRAIN_DEADLINE_S = 180.0
PROBE_DEADLINE_S = 180.0
SAMPLE_S = 1.0
GROUP_LAG_EVERY_S = 5.0
# Once the backlog is answered, the group's committed offsets must reach the log end
# within this (a commit every 2.8 s): commits that fall behind go unseen by the backlog
# and make every restart replay what they left behind (measured: a creeping commit
# after a seek back, streams.faust_internals.forget_gaps_from).
COMMIT_CATCHUP_S = 30.0
BUCKETS = 64                # outcomes are kept raw, by bucket of their key, and checked a bucket at a time
# The worker's settings: a 6 s session (a killed worker's partitions move on quickly),
# short read timeouts and re-drive cadence, as make chaos runs it.
WORKER_ENV = {"PAYOUT_SESSION_TIMEOUT_S": "6", "PAYOUT_READ_TIMEOUT_S": "1.5",
              "PAYOUT_UNRESOLVED_RETRY_S": "2", "PAYOUT_UNRESOLVED_RETRY_MAX_S": "10"}


class SoakAborted(Exception):
    """The soak could not go on (a worker that will not start): one line, exit 1."""


# --- pure parts (tests/unit/test_soak.py) -------------------------------------------------


MAX_MINUTES = 120  # the driver keeps ~1.3 KB per request to check them all at the end


def parse_minutes(text: str | None) -> int:
    """``SOAK_MINUTES`` / ``--minutes``: a whole number of minutes, 1 to ``MAX_MINUTES``."""
    raw = (text or "").strip()
    if not raw:
        return DEFAULT_MINUTES
    try:
        minutes = int(raw)
    except ValueError:
        raise ValueError(f"SOAK_MINUTES must be a whole number of minutes (1-{MAX_MINUTES}), "
                         f"got {raw!r}") from None
    if minutes < 1:
        raise ValueError(f"SOAK_MINUTES must be at least 1, got {minutes}")
    if minutes > MAX_MINUTES:
        raise ValueError(f"SOAK_MINUTES must be between 1 and {MAX_MINUTES} (the driver keeps "
                         f"~1.3 KB per request until the end), got {minutes}")
    return minutes


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0-100): a value that was measured; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[rank - 1])


def kill_times(minutes: int, every_min: float) -> list[float]:
    """Soak seconds of each kill: every ``every_min`` minutes, none at or after the end."""
    if every_min <= 0:
        return []
    every, end = every_min * 60, minutes * 60
    return [k * every for k in range(1, int(end // every) + 1) if k * every < end - 1e-6]


def probe_rates(began: float, arrivals: Sequence[float]) -> tuple[float, float | None]:
    """(drain rate, steady rate) of a burst sent from ``began``: all outcomes ÷ (last
    outcome − first send), as make bench's max step; and outcomes per second between the
    10th and the 90th percentile arrival, which leaves out the worker's ramp-up and the
    tail of faulted calls (1 % of them wait seconds for a retry or a re-drive by design)."""
    ordered = sorted(arrivals)
    n = len(ordered)
    if not n or ordered[-1] <= began:
        return 0.0, None
    drain = n / (ordered[-1] - began)
    lo, hi = n // 10, (n * 9) // 10
    steady = (hi - lo) / (ordered[hi] - ordered[lo]) if n >= 20 and ordered[hi] > ordered[lo] \
        else None
    return drain, steady


def lag_bound(rate: float) -> int:
    return max(LAG_BOUND_MIN, math.ceil(rate * LAG_BOUND_S))


@dataclass
class Minute:
    """One minute of the soak, as its line shows it."""

    minute: int
    offered: int = 0            # distinct new requests produced in the minute
    answered: int = 0           # requests first answered in the minute
    latencies_ms: list[float] = field(default_factory=list)
    rss_mb: float | None = None
    cpu_pct: float | None = None
    lag: int | None = None      # consumer-group lag at the minute's end
    in_flight: int = 0          # at the minute's end
    max_in_flight: int = 0      # within the minute
    events: list[str] = field(default_factory=list)

    @property
    def p99_ms(self) -> float | None:
        return percentile(self.latencies_ms, 99)

    def line(self, of: int, seconds: float = 60.0) -> str:
        p99 = self.p99_ms
        text = (f"minute {self.minute:>2}/{of}: offered {self.offered / seconds:5.0f}/s, "
                f"answered {self.answered / seconds:5.0f}/s, "
                f"p99 {'–' if p99 is None else f'{p99:.0f}'} ms, "
                f"RSS {'–' if self.rss_mb is None else f'{self.rss_mb:.0f}'} MB, "
                f"CPU {'–' if self.cpu_pct is None else f'{self.cpu_pct:.0f}'} %, "
                f"lag {'–' if self.lag is None else self.lag}, "
                f"in flight {self.in_flight} (max {self.max_in_flight})")
        return text + (f"  [{'; '.join(self.events)}]" if self.events else "")


@dataclass(frozen=True)
class RssCheckpoint:
    t: float       # soak seconds
    age: float     # seconds since this worker was launched
    rss_kb: int


@dataclass(frozen=True)
class Verdict:
    status: str                 # pass | fail | n/a
    text: str                   # what the verdict line shows
    reasons: tuple[str, ...] = ()


def _mb(kb: int) -> float:
    return kb / 1024


def rss_verdict(checkpoints: Sequence[RssCheckpoint], *, after_s: float = RSS_AFTER_S,
                limit: float = RSS_LIMIT, age_tolerance: float = RSS_AGE_TOLERANCE) -> Verdict:
    """RSS growth at equal worker age (the rule in the module docstring)."""
    ordered = sorted(checkpoints, key=lambda c: c.t)
    ref = next((c for c in ordered if c.t >= after_s - 0.5), None)
    later = [c for c in ordered if ref is not None and c.t > ref.t
             and c.age >= age_tolerance * ref.age]
    if ref is None or not later:
        first, last = (ordered[0], ordered[-1]) if ordered else (None, None)
        span = (f"RSS {_mb(first.rss_kb):.0f}→{_mb(last.rss_kb):.0f} MB"
                if first and last else "RSS –")
        why = ("no checkpoint after minute 5" if ref is None else
               "no later checkpoint of a worker as old as at minute 5")
        return Verdict("n/a", f"{span} (growth check n/a: {why}; needs ≥ 10 min)")
    end, worst = later[-1], max(later, key=lambda c: c.rss_kb)
    growth = end.rss_kb / ref.rss_kb - 1
    worst_growth = worst.rss_kb / ref.rss_kb - 1
    text = f"RSS {_mb(ref.rss_kb):.0f}→{_mb(end.rss_kb):.0f} MB ({growth * 100:+.1f} %"
    text += f", worst {worst_growth * 100:+.1f} %)" if worst is not end else ")"
    if worst_growth > limit:
        return Verdict("fail", text, (
            f"RSS grew {worst_growth * 100:+.1f} % (> {limit * 100:.0f} %) from "
            f"{_mb(ref.rss_kb):.0f} MB at {ref.t / 60:.0f} min to {_mb(worst.rss_kb):.0f} MB "
            f"at {worst.t / 60:.0f} min",))
    return Verdict("pass", text)


def kill_recoveries(samples: Sequence[tuple[float, int]], kills: Sequence[float], *,
                    bound: int) -> list[float]:
    """Seconds from each kill until the backlog is under ``bound`` for good (until the
    next kill or the last sample); ``inf`` if it never is."""
    out = []
    for n, tk in enumerate(kills):
        until = kills[n + 1] if n + 1 < len(kills) else math.inf
        window = [(t, v) for t, v in samples if tk <= t < until]
        above = [t for t, v in window if v > bound]
        if not above:
            out.append(0.0)
        elif window[-1][1] > bound:
            out.append(math.inf)
        else:
            out.append(above[-1] - tk)
    return out


def lag_verdict(samples: Sequence[tuple[float, int]], minute_ends: Sequence[tuple[float, int]],
                kills: Sequence[float], *, bound: int, drained_s: float | None,
                warmup_s: float = WARMUP_S, recovery_s: float = RECOVERY_S,
                drain_deadline_s: float = DRAIN_DEADLINE_S) -> Verdict:
    """Whether the backlog stayed bounded (the rule in the module docstring).

    ``samples``: (soak seconds, in flight) through the soak and the drain; ``minute_ends``
    the same at each minute's end; ``drained_s`` how long the final backlog took to reach
    zero after producing stopped (None: it did not within the deadline).
    """
    reasons = []
    recoveries = kill_recoveries(samples, kills, bound=bound)
    for n, took in enumerate(recoveries, 1):
        if took > recovery_s:
            reasons.append(f"kill {n}: backlog above {bound} for "
                           + ("the rest of the run" if math.isinf(took) else f"{took:.0f} s")
                           + f" (limit {recovery_s:.0f} s)")
    for t, value in minute_ends:
        if t <= warmup_s or value <= bound:
            continue
        if any(tk <= t < tk + recovery_s for tk in kills):
            continue  # a kill's window: judged by its recovery
        reasons.append(f"{value} in flight at minute {t / 60:.0f} (bound {bound})")
    if drained_s is None:
        reasons.append(f"backlog not drained {drain_deadline_s:.0f} s after producing stopped")
    elif drained_s > drain_deadline_s:
        reasons.append(f"backlog drained in {drained_s:.0f} s (limit {drain_deadline_s:.0f} s)")
    peak = max((v for _, v in samples), default=0)
    shown = ", ".join("–" if math.isinf(r) else f"{r:.0f} s" for r in recoveries)
    text = f"max in flight {peak} (bound {bound})" + (
        f", back under it {shown} after the kills" if kills else "")
    return Verdict("fail" if reasons else "pass", text, tuple(reasons))


def verdict_line(*, minutes: int, rate: float, max_rate: float, rate_is_half: bool,
                 answered: int, requests: int, lost: int, duplicate_links: int,
                 rss: Verdict, max_lag: int | None, max_in_flight: int,
                 reasons: Sequence[str]) -> str:
    how = f"half of max {max_rate:.0f}/s" if rate_is_half else f"set; max {max_rate:.0f}/s"
    return (f"soak: {minutes} min at {rate:.0f}/s ({how}): {answered}/{requests} answered, "
            f"{lost} lost, {duplicate_links} duplicate links, {rss.text}, "
            f"max lag {'–' if max_lag is None else max_lag} (in flight {max_in_flight}); "
            + (f"FAIL ({'; '.join(reasons)})" if reasons else "PASS"))


def bucket_of(key: str, buckets: int = BUCKETS) -> int:
    return zlib.crc32(key.encode("utf-8", "replace")) % buckets


def merge_reports(total: Report, part: Report) -> None:
    """Add ``part`` (the checker's report on some keys) into ``total``: counters and
    counts are summed, lists joined, whatever fields the report has."""
    for f in fields(Report):
        mine, theirs = getattr(total, f.name), getattr(part, f.name)
        if isinstance(mine, Counter):
            mine.update(theirs)
        elif isinstance(mine, list):
            mine.extend(theirs)
        elif isinstance(mine, int) and not isinstance(mine, bool):
            setattr(total, f.name, mine + theirs)


def check_in_buckets(inputs: Sequence[Input], raw: Sequence[Sequence[tuple[str, bytes]]],
                     ledger: Mapping[str, list[str]], partitions: int = PARTITIONS) -> Report:
    """``chaos.check`` a bucket of keys at a time: ``raw[b]`` holds the outcome records
    (topic, value) of the keys in bucket ``b``. Everything the checker looks at is per
    key (outcomes, links, event ids, which derive from the key), so the merged report is
    the one a single call would give; only one bucket's events are parsed at a time."""
    by_bucket: list[list[Input]] = [[] for _ in raw]
    for item in inputs:
        by_bucket[bucket_of(item.answer_key, len(raw))].append(item)
    total = Report()
    for mine, records in zip(by_bucket, raw):
        outcomes = Outcomes()
        for topic, value in records:
            outcomes.add(topic, orjson.loads(value))
        merge_reports(total, check(mine, outcomes, ledger, partitions))
    return total


SECTION_HEADING = "## Soak (`make soak`)"
TABLE_START = "| soak run (UTC) |"
SECTION = f"""\
{SECTION_HEADING}

`python -m streams.devkit.soak` (`streams/devkit/soak.py`; `SOAK_MINUTES`, default 20):
one real Kafka, every provider's simulator at 100 ± 20 ms with 1 % of calls faulted (5xx
0.3 %, 429 0.3 %, link created but response lost 0.2 %, timeout before create 0.2 %),
one worker. It first measures the worker's max rate in the same run (a burst of 15,000
requests drained as fast as possible: requests ÷ (last outcome − first send), as `make
bench` measures its max step), then offers half of that rate (the demo's merchants, so
every provider, plus 1 % re-sends) for the whole run, SIGKILLing the worker as the
traffic starts and then every 5 minutes, and restarting it at once (every worker life
starts alike: from a crash, with a backlog). It fails if RSS grows more than 15 %
(compared at equal worker age from minute 5 on; "n/a" in runs under ~10 minutes), if the
backlog is not back under 5 s of offered traffic within 2 minutes of a kill or at a
minute's end, or does not drain within 3 minutes after producing stops, or if make
chaos's checker finds anything lost, duplicated or unaccounted.

Columns: **max** the probe's links/s; **offered** the soak's rate (half of max);
**answered** requests with exactly one outcome / requests produced (probe, soak and
re-sends); **p99** send → outcome over the soak, and of its worst minute; **RSS** the
worker's RSS at the reference checkpoint → at the last comparable one (growth; the worst
if larger); **max lag / in flight** the consumer-group lag and the
produced-but-unanswered backlog at their highest (kill spikes included); **kills**
SIGKILLs (+ self-exits); **other jobs %** CPU (% of one core) of processes the run did
not start, over the soak (above ~20 the machine was shared and the row is not
comparable); **wall** the whole run, setup, probe and drain included. p99 sits in the
fault tail: 1 % of calls are faulted, and a timeout costs the worker's 1.5 s read
timeout before its retry, so a p99 of ~1.5–2 s in a minute without a kill is the faults,
not a backlog.

| soak run (UTC) | commit | machine | other jobs % | minutes | max links/s | offered/s | answered | p99 ms (all / worst min) | RSS MB | max lag / in flight | kills | wall s | verdict |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
"""


def add_doc_row(path: Path, row: str) -> None:
    """``row`` as the last row of the Soak table; the section is appended if missing."""
    add_table_row(path, row, TABLE_START, SECTION)


# --- measuring -------------------------------------------------------------------------


def proc_rss_kb(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def proc_hwm_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None




def tree_cpu_s(root: int) -> float:
    """CPU seconds of ``root`` and every live descendant, with the children each has
    reaped (a killed worker's CPU moves to the driver's cutime/cstime when reaped)."""
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        pid = int(entry)
        parent[pid] = int(fields[1])
        cpu[pid] = sum(int(x) for x in fields[11:15]) / CLK_TCK
    total, todo = 0.0, [root]
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo.extend(children.get(pid, ()))
    return total


def host_busy_s() -> float | None:
    """CPU seconds all cores spent busy since boot (/proc/stat, idle and iowait excluded)."""
    try:
        with open("/proc/stat", "rb") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLK_TCK


def other_jobs_pct(host: tuple[float | None, float | None], ours: tuple[float, float],
                   seconds: float) -> float | None:
    """CPU (% of one core) that processes this run did not start used in the window."""
    if host[0] is None or host[1] is None or seconds <= 0:
        return None
    return round(max(0.0, (host[1] - host[0]) - (ours[1] - ours[0])) / seconds * 100, 1)


class GroupLag:
    """The worker group's lag on the request topics: end offsets − committed offsets."""

    def __init__(self, bootstrap: str, group: str,
                 topics: Sequence[str] = (TOPICS.requested, TOPICS.routed)) -> None:
        self.bootstrap, self.group, self.topics = bootstrap, group, tuple(topics)
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> GroupLag:
        self._admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await self._admin.start()
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                          enable_auto_commit=False)
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._consumer:
            await self._consumer.stop()
        if self._admin:
            await self._admin.close()

    async def measure(self) -> int | None:
        assert self._admin is not None and self._consumer is not None
        try:
            tps = [TopicPartition(t, p) for t in self.topics
                   for p in sorted(self._consumer.partitions_for_topic(t) or ())]
            if not tps:
                await self._consumer._client.force_metadata_update()  # noqa: SLF001
                return None
            ends = await asyncio.wait_for(self._consumer.end_offsets(tps), 5)
            committed = await asyncio.wait_for(
                self._admin.list_consumer_group_offsets(self.group), 5)
        except (KafkaError, TimeoutError):
            return None
        lag = 0
        for tp, end in ends.items():
            done = committed.get(tp)
            offset = done.offset if done is not None and done.offset >= 0 else 0
            lag += max(0, int(end) - int(offset))
        return lag


class OutcomeLog:
    """Every outcome event from the start of the outcome topics: each key's first arrival,
    and the records themselves as bytes, by bucket of their key (a 20-minute soak reads
    ~500,000; parsed and kept as dicts they took ~6 KB each with the checker's copies)."""

    def __init__(self, bootstrap: str, buckets: int = BUCKETS) -> None:
        self.bootstrap = bootstrap
        self.arrival: dict[str, float] = {}
        self.raw: list[list[tuple[str, bytes]]] = [[] for _ in range(buckets)]
        self.changed = asyncio.Event()
        self.unreadable = 0  # records that are not an outcome event (fail the run)
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> OutcomeLog:
        self._consumer = AIOKafkaConsumer(
            *OUTCOME_TOPICS, bootstrap_servers=self.bootstrap, auto_offset_reset="earliest",
            enable_auto_commit=False, group_id=None, metadata_max_age_ms=2000)
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await stop_consuming(self._task, self._consumer)

    async def _run(self) -> None:
        assert self._consumer is not None
        buckets = len(self.raw)
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=5_000)
            now = time.monotonic()
            for tp, records in batches.items():
                for r in records:
                    try:
                        key = outcome_key(orjson.loads(r.value))
                    except (ValueError, KeyError, TypeError, AttributeError):
                        self.unreadable += 1
                        continue
                    self.arrival.setdefault(key, now)
                    self.raw[bucket_of(key, buckets)].append((tp.topic, r.value))
            if batches:
                self.changed.set()

    async def wait_for(self, keys: set[str], timeout: float) -> set[str]:
        """Wait until every key has an outcome or ``timeout`` passes; returns the missing."""
        deadline = time.monotonic() + timeout
        missing = {k for k in keys if k not in self.arrival}
        while missing and time.monotonic() < deadline:
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(),
                                       min(1.0, max(0.0, deadline - time.monotonic())))
            except TimeoutError:
                pass
            missing = {k for k in missing if k not in self.arrival}
        return missing


@dataclass
class Tally:
    """What was produced and answered; fed by the producer and by ``absorb``."""

    inputs: list[Input] = field(default_factory=list)
    pending: dict[str, float] = field(default_factory=dict)  # link key -> first send
    seen: int = 0                    # outcome keys absorbed so far
    answered: int = 0
    soak_from: float = math.inf      # monotonic start of the soak (latencies from then)
    soak_latencies_ms: list[float] = field(default_factory=list)


class Soak:
    def __init__(self, args: argparse.Namespace, bootstrap: str, fleet: SimulatorFleet,
                 workdir: Path, began: float) -> None:
        self.args, self.bootstrap, self.fleet = args, bootstrap, fleet
        self.began = began  # when the run started (Kafka and the simulators included)
        self.run_id = uuid.uuid4().hex[:8]
        self.app_id = f"soak-{self.run_id}"
        env = dict(WORKER_ENV)
        env.update(fleet.worker_env())
        env.update(demo_worker_env())
        self.worker = WorkerProcess(bootstrap=bootstrap, provider_url="",
                                    data_dir=workdir / "worker", log_path=workdir / "worker.log",
                                    app_id=self.app_id, partitions=PARTITIONS, extra_env=env)
        self.tally = Tally()
        self.rng = random.Random(args.seed)
        self.recent: deque[dict[str, Any]] = deque(maxlen=200)
        self.next_n = 0
        self.new_since_resend = 0
        self.life_start = time.monotonic()
        self.restarting: asyncio.Task[None] | None = None
        self.starting: asyncio.Future[None] | None = None  # the thread running worker.start
        self.closing = False
        self.self_exits = 0
        self.lag_now: int | None = None
        self.max_lag: int | None = None
        self.timings: dict[str, float] = {}
        self.faults: dict[str, tuple[int, int]] = {}
        self.other_jobs: float | None = None  # % of a core used by processes not ours

    # -- the worker

    async def start_worker(self, why: str) -> float:
        """Start (or restart) the worker; a few attempts, then the soak is aborted."""
        began = time.monotonic()
        for attempt in range(1, 4):
            if self.closing:
                raise SoakAborted("stopping")
            self.life_start = time.monotonic()
            # Shielded: a cancelled soak still knows the thread, waits for it and stops
            # whatever it launched (see run()).
            self.starting = asyncio.get_running_loop().run_in_executor(None, self.worker.start)
            try:
                await asyncio.shield(self.starting)
                return time.monotonic() - began
            except (RuntimeError, TimeoutError) as exc:
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                say(f"worker start ({why}) failed, attempt {attempt}: {first}\n"
                    f"{self.worker.log_tail(15)}")
                await asyncio.to_thread(self.worker.stop)
        raise SoakAborted(f"the worker did not start ({why}) in 3 attempts (its log's "
                          "tail is above; --keep-workdir keeps the whole log)")

    @property
    def restart_pending(self) -> bool:
        return self.restarting is not None and not self.restarting.done()

    def _restart_in_background(self, why: str, t: float) -> None:
        async def restart() -> None:
            took = await self.start_worker(why)
            say(f"[{clock(t)}] worker restarted after {why} in {took:.1f} s "
                f"(pid {self.worker.pid})")

        self.restarting = asyncio.create_task(restart())

    # -- traffic

    def _request(self) -> tuple[Input, bool]:
        """The next request: a new one, or after ``RESEND_EVERY`` new ones a re-send of a
        recent one (a new envelope, the same link key)."""
        if self.new_since_resend >= RESEND_EVERY and self.recent:
            self.new_since_resend = 0
            again = dict(self.rng.choice(self.recent), event_id=str(uuid.uuid4()))
            key = key_of(again)
            return Input("duplicate", key, orjson.dumps(again), key.decode()), False
        self.new_since_resend += 1
        n = self.next_n
        self.next_n += 1
        request = merchant_request(n, self.run_id)
        self.recent.append(request)
        key = key_of(request)
        return Input("valid", key, orjson.dumps(request), key.decode()), True

    async def _send(self, producer: AIOKafkaProducer, item: Input, new: bool,
                    pending: list[asyncio.Future[Any]]) -> None:
        if new:
            self.tally.pending[item.answer_key] = time.monotonic()
        # Kept without its body: the checker reads a body only for a conflict (its
        # fingerprint), which the soak never sends; ~0.7 KB a request over ~500,000.
        self.tally.inputs.append(Input(item.kind, item.key, b"", item.answer_key))
        pending.append(await producer.send(TOPICS.requested, item.value, key=item.key))

    @staticmethod
    def _settle(pending: list[asyncio.Future[Any]]) -> list[asyncio.Future[Any]]:
        """Raise a failed delivery; keep the undelivered."""
        for fut in pending:
            if fut.done():
                fut.result()
        return [f for f in pending if not f.done()]

    def _producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5,
                                enable_idempotence=True, request_timeout_ms=30_000)

    async def produce_paced(self, producer: AIOKafkaProducer, rate: float, seconds: float,
                            minutes: list[Minute], t0: float) -> None:
        pending: list[asyncio.Future[Any]] = []
        sent_new = 0
        while True:
            elapsed = time.monotonic() - t0
            if elapsed >= seconds:
                break
            due = int(elapsed * rate) + 1
            while sent_new < due:
                item, new = self._request()
                await self._send(producer, item, new, pending)
                if new:
                    sent_new += 1
                    index = min(int((time.monotonic() - t0) // 60), len(minutes) - 1)
                    minutes[index].offered += 1
            pending = self._settle(pending)
            await asyncio.sleep(0.02)
        await asyncio.gather(*pending)

    def absorb(self, reader: OutcomeLog, minutes: list[Minute] | None, t0: float) -> None:
        """Account for outcomes that arrived since the last call."""
        tally, arrival = self.tally, reader.arrival
        if len(arrival) == tally.seen:
            return
        for key, t in islice(arrival.items(), tally.seen, None):
            sent = tally.pending.pop(key, None)
            if sent is None:
                continue
            tally.answered += 1
            if sent >= tally.soak_from and minutes is not None:
                ms = (t - sent) * 1000
                tally.soak_latencies_ms.append(ms)
                index = int((t - t0) // 60)
                if 0 <= index < len(minutes):  # answers of the drain: overall p99 only
                    minutes[index].answered += 1
                    minutes[index].latencies_ms.append(ms)
        tally.seen = len(arrival)

    # -- phases

    async def probe(self, reader: OutcomeLog, producer: AIOKafkaProducer) -> float:
        count = self.args.probe_requests
        items = []
        for _ in range(count):
            n = self.next_n
            self.next_n += 1
            request = merchant_request(n, self.run_id)
            key = key_of(request)
            items.append(Input("valid", key, orjson.dumps(request), key.decode()))
        say(f"probe: {count} requests as fast as possible")
        cpu0, began = proc_cpu_seconds(self.worker.pid), time.monotonic()
        pending: list[asyncio.Future[Any]] = []
        for item in items:
            await self._send(producer, item, True, pending)
        await asyncio.gather(*pending)
        missing = await reader.wait_for({i.answer_key for i in items}, PROBE_DEADLINE_S)
        self.absorb(reader, None, began)
        arrivals = [reader.arrival[i.answer_key] for i in items
                    if i.answer_key in reader.arrival]
        if not arrivals:
            raise SoakAborted("the probe got no outcome at all (its log's tail:\n"
                              f"{self.worker.log_tail(15)})")
        span = max(arrivals) - began
        drain, steady = probe_rates(began, arrivals)
        cpu1 = proc_cpu_seconds(self.worker.pid)
        cpu = 100 * (cpu1 - cpu0) / span if cpu0 is not None and cpu1 is not None else None
        say(f"probe: {len(arrivals)}/{count} answered in {span:.1f} s: max {drain:.0f} links/s "
            f"(first send to last outcome; {steady or 0:.0f}/s between the 10th and 90th "
            f"percentile outcome)"
            + (f"; worker CPU {cpu:.0f} % of a core" if cpu is not None else "")
            + (f"; {len(missing)} unanswered after {PROBE_DEADLINE_S:.0f} s" if missing else ""))
        return drain

    async def run(self) -> dict[str, Any]:
        began = self.began
        await create_topics(self.bootstrap, PARTITIONS)
        try:
            async with OutcomeLog(self.bootstrap) as reader, \
                    GroupLag(self.bootstrap, self.app_id) as group:
                producer = self._producer()
                await producer.start()
                try:
                    return await self._run(reader, group, producer, began)
                finally:
                    try:
                        await asyncio.wait_for(producer.stop(), 10)
                    except (TimeoutError, KafkaError):
                        pass
        finally:
            self.closing = True
            if self.restart_pending:
                assert self.restarting is not None
                self.restarting.cancel()
            await asyncio.to_thread(self.worker.stop)
            if self.starting is not None and not self.starting.done():
                # A start still running in its thread: it fails fast now that the process
                # is gone, or (launched after the stop) comes up; stop that one too.
                try:
                    await asyncio.wait_for(self.starting, 150)
                except Exception:  # noqa: BLE001 -- any end of it will do
                    pass
                await asyncio.to_thread(self.worker.stop)

    async def _run(self, reader: OutcomeLog, group: GroupLag, producer: AIOKafkaProducer,
                   began: float) -> dict[str, Any]:
        args = self.args
        await self.start_worker("start")
        self.timings["setup"] = time.monotonic() - began
        mark = time.monotonic()
        max_rate = await self.probe(reader, producer)
        self.timings["probe"] = time.monotonic() - mark
        rate = args.rate or round(max_rate / 2, 1)

        minutes_n, seconds = args.minutes, args.minutes * 60.0
        # The probe's worker is killed as the traffic starts: every life begins alike.
        kills = [0.0, *kill_times(minutes_n, args.kill_every)]
        bound = lag_bound(rate)
        say(f"soak: {minutes_n} min at {rate:.0f}/s"
            + (f" (half of max {max_rate:.0f}/s)" if not args.rate else f" (max {max_rate:.0f}/s)")
            + f" + 1 % re-sends; provider {LATENCY_MS:g}±{JITTER_MS:g} ms with 1 % faults; "
            + f"worker SIGKILLed at {', '.join(clock(k) for k in kills)}"
            + f"; backlog bound {bound}")
        minutes = [Minute(m) for m in range(1, minutes_n + 1)]
        t0 = time.monotonic()
        self.tally.soak_from = t0
        host0, ours0 = host_busy_s(), tree_cpu_s(os.getpid())
        lag_task = asyncio.create_task(self._watch_group(group))
        produce = asyncio.create_task(self.produce_paced(producer, rate, seconds, minutes, t0))
        samples: list[tuple[float, int]] = []
        minute_ends: list[tuple[float, int]] = []
        checkpoints: list[RssCheckpoint] = []
        done_kills: list[float] = []
        disruptions: list[float] = []
        cpu_mark: tuple[int | None, float | None] = (self.worker.pid, proc_cpu_seconds(self.worker.pid))
        cpu_used = 0.0
        next_minute, next_kill = 1, 0
        drained_s: float | None = None
        produced_end: float | None = None
        try:
            while True:
                now = time.monotonic()
                t = now - t0
                self.absorb(reader, minutes, t0)
                in_flight = len(self.tally.pending)
                samples.append((t, in_flight))
                if next_minute <= minutes_n:
                    m = minutes[next_minute - 1]
                    m.max_in_flight = max(m.max_in_flight, in_flight)
                # the worker's CPU, across restarts (per pid)
                pid, cpu = self.worker.pid, proc_cpu_seconds(self.worker.pid)
                if pid == cpu_mark[0] and cpu is not None and cpu_mark[1] is not None:
                    cpu_used += cpu - cpu_mark[1]
                cpu_mark = (pid, cpu)
                if next_minute <= minutes_n and t >= next_minute * 60 - 1e-3:
                    m = minutes[next_minute - 1]
                    rss = proc_rss_kb(self.worker.pid)
                    m.rss_mb = None if rss is None else round(rss / 1024, 1)
                    m.cpu_pct = round(100 * cpu_used / 60, 1)
                    cpu_used = 0.0
                    m.lag, m.in_flight = self.lag_now, in_flight
                    minute_ends.append((next_minute * 60.0, in_flight))
                    if rss is not None and not self.restart_pending:
                        checkpoints.append(RssCheckpoint(t, now - self.life_start, rss))
                    say(m.line(minutes_n))
                    next_minute += 1
                if next_kill < len(kills) and t >= kills[next_kill] and not self.restart_pending:
                    await self._reap()
                    pid, rss = self.worker.pid, proc_rss_kb(self.worker.pid)
                    if rss is not None:
                        checkpoints.append(RssCheckpoint(t, now - self.life_start, rss))
                    self.worker.kill()
                    next_kill += 1
                    done_kills.append(t)
                    disruptions.append(t)
                    say(f"[{clock(t)}] kill {next_kill}: worker pid {pid} SIGKILLed "
                        f"(RSS {'–' if rss is None else f'{rss / 1024:.0f}'} MB, "
                        f"{in_flight} in flight)")
                    self._note(minutes, t, f"kill {next_kill} at {clock(t)}")
                    self._restart_in_background(f"kill {next_kill}", t)
                elif not self.restart_pending and self.worker.exited_unexpectedly():
                    await self._reap()
                    self.self_exits += 1
                    disruptions.append(t)
                    say(f"[{clock(t)}] the worker exited by itself; restarting:\n"
                        f"{self.worker.log_tail(5)}")
                    self._note(minutes, t, f"self-exit at {clock(t)}")
                    self._restart_in_background("a self-exit", t)
                if produce.done():
                    if produced_end is None:
                        produce.result()  # a failed delivery ends the soak here
                        produced_end = t
                        say(f"[{clock(t)}] producing stopped; draining {in_flight} in flight")
                    if in_flight == 0:
                        drained_s = t - produced_end
                        break
                    if t - produced_end > DRAIN_DEADLINE_S:
                        break
                await asyncio.sleep(max(0.0, SAMPLE_S - (time.monotonic() - now)))
        finally:
            produce.cancel()
            lag_task.cancel()
            for task in (produce, lag_task):
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        self.timings["soak"] = (produced_end or 0.0)
        self.other_jobs = other_jobs_pct((host0, host_busy_s()), (ours0, tree_cpu_s(os.getpid())),
                                         time.monotonic() - t0)
        self.timings["drain"] = (samples[-1][0] - produced_end) if produced_end else 0.0
        say("drain: " + (f"backlog answered {drained_s:.1f} s after producing stopped"
                          if drained_s is not None else
                          f"{len(self.tally.pending)} requests still unanswered after "
                          f"{DRAIN_DEADLINE_S:.0f} s"))
        await self._reap()
        committed_behind = (await self._commits_behind_after(group, COMMIT_CATCHUP_S)
                            if drained_s is not None else None)
        if committed_behind is not None:
            say(f"commits: {committed_behind} offsets short of the log end "
                f"{COMMIT_CATCHUP_S:.0f} s after the drain" if committed_behind else
                "commits: the group's committed offsets reached the log end")

        mark = time.monotonic()
        self.faults = await asyncio.to_thread(faults_injected, self.fleet)
        ledger = await asyncio.to_thread(provider_ledger, self.fleet)
        report = check_in_buckets(self.tally.inputs, reader.raw, ledger, PARTITIONS)
        self.timings["check"] = time.monotonic() - mark
        backlog = lag_verdict(samples, minute_ends, disruptions, bound=bound, drained_s=drained_s)
        memory = rss_verdict(checkpoints)
        return {
            "max_rate": max_rate, "rate": rate, "minutes": minutes, "report": report,
            "lag": backlog, "rss": memory, "kills": len(done_kills), "samples": samples,
            "max_in_flight": max((v for _, v in samples), default=0),
            "max_lag": self.max_lag, "bound": bound, "committed_behind": committed_behind,
            "p99_all": percentile(self.tally.soak_latencies_ms, 99),
            "unreadable": reader.unreadable,
        }

    async def _reap(self) -> None:
        """Wait for a restart in progress (it raises SoakAborted if it gave up)."""
        if self.restarting is not None:
            task, self.restarting = self.restarting, None
            await task

    @staticmethod
    def _note(minutes: list[Minute], t: float, text: str) -> None:
        if minutes:
            minutes[min(int(t // 60), len(minutes) - 1)].events.append(text)

    @staticmethod
    async def _commits_behind_after(group: GroupLag, seconds: float) -> int | None:
        """The group lag once it reached 0, or after ``seconds``; None if never measured."""
        deadline = time.monotonic() + seconds
        lag: int | None = None
        while True:
            measured = await group.measure()
            lag = measured if measured is not None else lag
            if lag == 0 or time.monotonic() >= deadline:
                return lag
            await asyncio.sleep(1.0)

    async def _watch_group(self, group: GroupLag) -> None:
        while True:
            lag = await group.measure()
            if lag is not None:
                self.lag_now = lag
                self.max_lag = lag if self.max_lag is None else max(self.max_lag, lag)
            await asyncio.sleep(GROUP_LAG_EVERY_S)


def provider_ledger(fleet: SimulatorFleet) -> dict[str, list[str]]:
    """Our reference -> link ids at every provider (links at two providers count twice)."""
    ledger: dict[str, list[str]] = {}
    for refs in fleet.links_by_reference().values():
        for ref, ids in refs.items():
            ledger.setdefault(ref, []).extend(ids)
    return ledger


def faults_injected(fleet: SimulatorFleet) -> dict[str, tuple[int, int]]:
    """Provider -> (faults injected, API calls), from each simulator's counters."""
    out = {}
    for name, sim in fleet.by_provider.items():
        stats = sim.stats()
        calls = stats.get("requests", {})
        out[name] = (sum(int(n) for n in stats.get("faults", {}).values()),
                     sum(int(n) for n in calls.values()) if isinstance(calls, dict) else 0)
    return out


def clock(t: float) -> str:
    return f"{int(t // 60)}:{int(t % 60):02d}"


def say(*parts: Any) -> None:
    print(time.strftime("%H:%M:%S"), *parts, flush=True)


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()[:20]
                break
    except OSError:
        pass
    return f"{os.cpu_count()}× {model}, load {os.getloadavg()[0]:.2f}"


def failure_reasons(result: Mapping[str, Any], self_exits: int) -> list[str]:
    report: Report = result["report"]
    reasons = []
    if report.lost:
        reasons.append(f"{len(report.lost)} lost")
    if report.duplicate_links:
        reasons.append(f"{len(report.duplicate_links)} duplicate links")
    others = [report.unaccounted, report.false_failures, report.stalls,
              getattr(report, "clashing_ids", [])]
    if any(others) or (not report.ok and not report.lost and not report.duplicate_links):
        reasons.append(f"checker: {report.final_line()}")
    reasons += list(result["rss"].reasons) + list(result["lag"].reasons)
    if result.get("committed_behind"):
        reasons.append(f"committed offsets {result['committed_behind']} short of the log end "
                       f"{COMMIT_CATCHUP_S:.0f} s after the drain")
    if self_exits:
        reasons.append(f"the worker exited by itself {self_exits}×")
    if result.get("unreadable"):
        reasons.append(f"{result['unreadable']} outcome records that are no outcome event")
    return reasons


def rss_cell(rss: Verdict) -> str:
    """The verdict's RSS text for the table: "n/a" without its long explanation."""
    text = rss.text.removeprefix("RSS ")
    return text.split(" (growth check n/a")[0] + " (n/a)" if rss.status == "n/a" else text


def doc_row(result: Mapping[str, Any], *, started: dt.datetime, commit: str, minutes: int,
            kill_every: float, wall_s: float, self_exits: int, verdict: str,
            other_jobs: float | None = None) -> str:
    report: Report = result["report"]
    worst = max((m.p99_ms for m in result["minutes"] if m.p99_ms is not None), default=None)
    p99 = result["p99_all"]
    cells = [
        started.strftime("%Y-%m-%d %H:%M"), f"`{commit}`", machine(),
        "–" if other_jobs is None else f"{other_jobs:.0f}", str(minutes),
        f"{result['max_rate']:.0f}", f"{result['rate']:.0f}",
        f"{report.one_outcome}/{sum(report.inputs.values())}",
        f"{'–' if p99 is None else f'{p99:.0f}'} / {'–' if worst is None else f'{worst:.0f}'}",
        rss_cell(result["rss"]),
        f"{'–' if result['max_lag'] is None else result['max_lag']} / {result['max_in_flight']}",
        str(result["kills"]) + (f" (0:00, then every {kill_every:g} min)" if kill_every
                                else " (0:00)")
        + (f" + {self_exits} self-exits" if self_exits else ""),
        f"{wall_s:.0f}", verdict.replace("|", "/"),
    ]
    return "| " + " | ".join(cells) + " |"


# --- main ----------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + traceback
        print(f"soak: {message} (python -m streams.devkit.soak --help)", file=sys.stderr)
        raise SystemExit(2)


def _positive(kind: type[float] | type[int], what: str) -> Any:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
        if value <= 0 or (isinstance(value, float) and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{what} must be above 0, got {text!r}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m streams.devkit.soak", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", default=None,
                   help=f"soak length (default: $SOAK_MINUTES, else {DEFAULT_MINUTES})")
    p.add_argument("--rate", type=_positive(float, "--rate"), default=None,
                   help="offered links/s (default: half the probe's max)")
    p.add_argument("--kill-every", type=float, default=5.0,
                   help="minutes between worker SIGKILLs (0: none; default 5)")
    p.add_argument("--probe-requests", type=_positive(int, "--probe-requests"), default=15_000,
                   help="the max-rate probe's burst (default 15000, ~20 s here)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--no-doc", action="store_true", help="do not add a row to docs/benchmarks.md")
    p.add_argument("--keep-workdir", action="store_true",
                   help="keep Kafka's and the worker's data and logs for a post-mortem")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.minutes = parse_minutes(args.minutes if args.minutes is not None
                                     else os.environ.get("SOAK_MINUTES"))
    except ValueError as exc:
        parser.error(str(exc))
    if not (math.isfinite(args.kill_every) and args.kill_every >= 0):
        parser.error(f"--kill-every must be 0 or more minutes, got {args.kill_every}")
    require_codecs("payout soak")
    signal.signal(signal.SIGTERM, _terminate)  # stop what was started, as on Ctrl-C
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the kills are on purpose
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    started_at = dt.datetime.now(dt.UTC)
    commit = git_commit()  # the tree measured
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="payout-soak-"))
    say(f"soak: {args.minutes} min; starting Kafka, the simulators and a worker "
        f"(seed {args.seed}, workdir {workdir})")
    result: dict[str, Any] | None = None
    soak: Soak | None = None
    try:
        with ExitStack() as stack:
            if not args.keep_workdir:
                stack.callback(shutil.rmtree, workdir, True)
            broker = stack.enter_context(broker_from_environment(workdir / "kafka"))
            fleet = SimulatorFleet(latency_ms=LATENCY_MS, jitter_ms=JITTER_MS, hang_ms=3000,
                                   seed=args.seed, faults={name: FAULTS for name in PROVIDERS})
            for sim in fleet.by_provider.values():  # their start-up banners, as make bench
                sim._stderr = subprocess.DEVNULL  # noqa: SLF001
            stack.enter_context(fleet)
            for sim in fleet.by_provider.values():
                # Set the faults again at run time: Cashgram's simulator drops the
                # fault probabilities it is started with (its --config-json's flat keys
                # are overwritten by the all-zero ``faults`` of its command line).
                configure = getattr(sim, "configure", None)
                if callable(configure):
                    configure(**FAULTS)
            soak = Soak(args, broker.bootstrap_servers, fleet, workdir, began)
            result = _run_loop(soak)
    except KeyboardInterrupt:
        print("soak: interrupted; everything it started is stopped", file=sys.stderr, flush=True)
        return 130
    except SoakAborted as exc:
        print(f"soak: aborted: {exc}; FAIL", flush=True)
        return 1
    finally:
        if args.keep_workdir:
            print(f"soak workdir kept: {workdir}", flush=True)
    assert soak is not None and result is not None
    return conclude(args, result, self_exits=soak.self_exits, other_jobs=soak.other_jobs,
                    faults=soak.faults, timings=soak.timings, wall=time.monotonic() - began,
                    started_at=started_at, commit=commit, doc=None if args.no_doc else DOC)


def conclude(args: argparse.Namespace, result: Mapping[str, Any], *, self_exits: int,
             other_jobs: float | None, faults: Mapping[str, tuple[int, int]],
             timings: Mapping[str, float], wall: float, started_at: dt.datetime, commit: str,
             doc: Path | None) -> int:
    """Print the summary and the verdict line, add the docs row; the exit code."""
    reasons = failure_reasons(result, self_exits)
    report: Report = result["report"]
    print()
    for line in [*(f"  lost: {x}" for x in report.lost[:10]),
                 *(f"  duplicate link: {x}" for x in report.duplicate_links[:10]),
                 *(f"  unaccounted: {x}" for x in report.unaccounted[:10]),
                 *(f"  false failure: {x}" for x in report.false_failures[:10])]:
        print(line)
    print(f"checker (as make chaos): {report.final_line()}")
    print(f"lag: {result['lag'].text}")
    worst = max(result["minutes"], key=lambda m: m.p99_ms or 0.0)
    p99 = result["p99_all"]
    print(f"latency: p99 {'–' if p99 is None else f'{p99:.0f}'} ms over the soak, worst minute "
          f"{worst.minute} at {'–' if worst.p99_ms is None else f'{worst.p99_ms:.0f}'} ms")
    answered_soak = sum(m.answered for m in result["minutes"])
    offered_soak = sum(m.offered for m in result["minutes"])
    if offered_soak:
        print(f"throughput: {answered_soak / (60 * args.minutes):.0f}/s answered over the soak = "
              f"{answered_soak / offered_soak:.2f}× offered, "
              f"{answered_soak / (60 * args.minutes) / result['max_rate']:.2f}× the probe's max")
    print(f"other jobs on this machine: "
          f"{'–' if other_jobs is None else f'{other_jobs:.0f}'} % of a core during "
          "the soak (CPU of processes this run did not start; above ~20 the numbers are "
          "not comparable with a quiet run's)")
    print("provider faults injected (faults / API calls): " + ", ".join(
        f"{name} {n}/{calls}" + (f" ({100 * n / calls:.1f} %)" if calls else "")
        for name, (n, calls) in faults.items()))
    hwm = proc_hwm_kb(os.getpid())
    t = timings
    print(f"wall time {wall:.0f} s: setup {t.get('setup', 0):.0f}, probe {t.get('probe', 0):.0f}, "
          f"soak {t.get('soak', 0):.0f}, "
          f"drain {t.get('drain', 0):.0f}, check {t.get('check', 0):.0f}, "
          f"teardown {max(0.0, wall - sum(t.values())):.0f} s"
          + (f"; this driver's peak RSS {hwm / 1024:.0f} MB" if hwm else ""))
    line = verdict_line(minutes=args.minutes, rate=result["rate"], max_rate=result["max_rate"],
                        rate_is_half=not args.rate, answered=report.one_outcome,
                        requests=sum(report.inputs.values()), lost=len(report.lost),
                        duplicate_links=len(report.duplicate_links), rss=result["rss"],
                        max_lag=result["max_lag"], max_in_flight=result["max_in_flight"],
                        reasons=reasons)
    if doc is not None:
        verdict = ("FAIL: " + "; ".join(reasons)) if reasons else "PASS" + (
            " (RSS n/a)" if result["rss"].status == "n/a" else "")
        add_doc_row(doc, doc_row(result, started=started_at, commit=commit,
                                 minutes=args.minutes, kill_every=args.kill_every, wall_s=wall,
                                 self_exits=self_exits, verdict=verdict, other_jobs=other_jobs))
        print(f"added a row to {doc}")
    print(line, flush=True)
    return 1 if reasons else 0


def _run_loop(soak: Soak) -> dict[str, Any]:
    """The soak on uvloop (the driver shares 2 cores with the worker); SIGTERM as Ctrl-C."""
    async def guarded() -> dict[str, Any]:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await soak.run()

    try:
        import uvloop
        factory: Any = uvloop.new_event_loop
    except ImportError:
        factory = None
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(guarded())
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None
    finally:
        signal.signal(signal.SIGTERM, _terminate)  # the loop's handler is gone with it


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    sys.exit(main())
