"""Measuring one system under load: a paced producer, an outcome tracker, /proc sampling.

Every measurement is done the same way, for the real worker and for the baselines:
requests are produced to the input topic (each stamped with its send time), an
in-process consumer records when the outcome for each request key arrives, and the
worker's CPU time and memory are read from /proc while that happens.
"""
from __future__ import annotations

import asyncio
import os
import re
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.devkit.harness import stop_consuming
from streams.devkit.runinfo import proc_cpu_seconds

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


# ------------------------------------------------------------------------ /proc sampling


def proc_memory_kb(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) in kB: the current and the peak resident set size."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            text = f.read()
    except OSError:
        return None
    rss = hwm = 0
    for line in text.splitlines():
        if line.startswith(b"VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith(b"VmHWM:"):
            hwm = int(line.split()[1])
    return rss, hwm


def host_cpu_ticks() -> tuple[int, int, int] | None:
    """(total, idle incl. iowait, steal) jiffies of all cores, from /proc/stat."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return total, fields[3] + fields[4], fields[7] if len(fields) > 7 else 0


@dataclass
class Sample:
    t: float
    cpu_s: float
    rss_kb: int
    hwm_kb: int


class ProcSampler:
    """Samples named pids every ``interval`` seconds in the background."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.pids: dict[str, int] = {}
        self.samples: dict[str, list[Sample]] = {}
        self.host: list[tuple[float, tuple[int, int, int]]] = []
        self._task: asyncio.Task[None] | None = None

    def watch(self, name: str, pid: int | None) -> None:
        if pid is not None:
            self.pids[name] = pid
            self.samples[name] = []
            self.sample_now(name)

    def unwatch(self, name: str) -> None:
        self.pids.pop(name, None)

    def sample_now(self, name: str) -> Sample | None:
        pid = self.pids.get(name)
        if pid is None:
            return None
        cpu, mem = proc_cpu_seconds(pid), proc_memory_kb(pid)
        if cpu is None or mem is None:
            return None
        sample = Sample(time.monotonic(), cpu, *mem)
        self.samples[name].append(sample)
        return sample

    async def __aenter__(self) -> ProcSampler:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            for name in list(self.pids):
                self.sample_now(name)
            ticks = host_cpu_ticks()
            if ticks is not None:
                self.host.append((time.monotonic(), ticks))
            await asyncio.sleep(self.interval)

    def host_window(self, t0: float, t1: float) -> dict[str, float | None]:
        """Whole-machine CPU busy and steal, in % of all cores, between t0 and t1."""
        inside = [h for t, h in self.host if t0 - self.interval <= t <= t1 + 1e-3]
        if len(inside) < 2 or inside[-1][0] == inside[0][0]:
            return {"busy_pct": None, "steal_pct": None}
        total = inside[-1][0] - inside[0][0]
        idle = inside[-1][1] - inside[0][1]
        steal = inside[-1][2] - inside[0][2]
        return {"busy_pct": round(100 * (total - idle) / total, 1),
                "steal_pct": round(100 * steal / total, 1)}

    def window(self, name: str, t0: float, t1: float) -> dict[str, float | None]:
        """CPU (% of one core) and max RSS of ``name`` between t0 and t1."""
        inside = [s for s in self.samples.get(name, []) if t0 - self.interval <= s.t <= t1 + 1e-3]
        if len(inside) < 2:
            return {"cpu_pct": None, "rss_mb": None, "hwm_mb": None}
        first, last = inside[0], inside[-1]
        dt = last.t - first.t
        return {
            "cpu_pct": round(100 * (last.cpu_s - first.cpu_s) / dt, 1) if dt > 0 else None,
            "rss_mb": round(max(s.rss_kb for s in inside) / 1024, 1),
            "hwm_mb": round(last.hwm_kb / 1024, 1),
        }


# ----------------------------------------------------------------------------- outcomes


class OutcomeTracker:
    """Records when each outcome key first arrives on the outcome topics.

    Like the harness's ``OutcomeReader``, but starts at the topics' current end (so old
    data is never read) and does not parse values: outcomes are keyed by the request's
    key, so the key alone says which request is answered.
    """

    def __init__(self, bootstrap: str, topics: Iterable[str]) -> None:
        self.bootstrap = bootstrap
        self.topics = tuple(topics)
        self.arrival: dict[bytes, float] = {}         # key -> monotonic arrival
        self.created_ms: dict[bytes, int] = {}        # key -> outcome record CreateTime
        self.by_topic: dict[str, int] = {t: 0 for t in self.topics}
        self.records = 0
        self.changed = asyncio.Event()
        self._waiting: set[bytes] | None = None  # keys ``wait_all`` still waits for
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> OutcomeTracker:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
            fetch_max_wait_ms=50, max_partition_fetch_bytes=4 * 1024 * 1024,
            metadata_max_age_ms=2000)
        await self._consumer.start()
        tps = []
        for topic in self.topics:
            parts = self._consumer.partitions_for_topic(topic)
            while not parts:
                await self._consumer._client.force_metadata_update()  # noqa: SLF001
                parts = self._consumer.partitions_for_topic(topic)
                if not parts:
                    await asyncio.sleep(0.2)
            tps += [TopicPartition(topic, p) for p in sorted(parts)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the end offsets now, before anything is produced
            await self._consumer.position(tp)
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=10_000)
            now = time.monotonic()
            waiting = self._waiting
            for tp, records in batches.items():
                self.by_topic[tp.topic] += len(records)
                self.records += len(records)
                for r in records:
                    if r.key not in self.arrival:
                        self.arrival[r.key] = now
                        self.created_ms[r.key] = r.timestamp
                        if waiting is not None:
                            waiting.discard(r.key)
            if batches:
                self.changed.set()

    async def wait_all(self, keys: Sequence[bytes], timeout: float) -> int:
        """Wait until every key has an outcome or the timeout passes; returns how many lack one."""
        deadline = time.monotonic() + timeout
        # The reader removes arriving keys from this set: no rescans of a long key list.
        pending = self._waiting = {k for k in keys if k not in self.arrival}
        try:
            while pending and time.monotonic() < deadline:
                self.changed.clear()
                try:
                    await asyncio.wait_for(self.changed.wait(),
                                           min(1.0, deadline - time.monotonic()))
                except TimeoutError:
                    pass
            return len(pending)
        finally:
            self._waiting = None

    async def __aexit__(self, *exc: object) -> None:
        await stop_consuming(self._task, self._consumer)


# ------------------------------------------------------------------------------- load


@dataclass
class StepResult:
    """One measurement: offered load in, outcomes out."""

    name: str
    offered_per_s: float | None      # None: as fast as possible
    requests: int
    completed: int
    produce_s: float                 # how long producing took
    sustained_per_s: float           # paced: completions per second in the window; max: drain rate
    steady_per_s: float | None       # completions/s between the 10th and 90th percentile arrival
    backlog_at_end: int              # requests without an outcome when producing stopped
    drain_s: float | None            # from the end of producing until the last outcome
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    p99_ms_kafka_ts: float | None    # cross-check: outcome CreateTime - request CreateTime
    worker: dict[str, float | None] = field(default_factory=dict)  # cpu_pct, rss_mb, hwm_mb
    others: dict[str, dict[str, float | None]] = field(default_factory=dict)
    host: dict[str, float | None] = field(default_factory=dict)  # busy_pct, steal_pct (all cores)
    checks: dict[str, int] = field(default_factory=dict)  # outcome records per topic, provider links
    written_bytes: int | None = None  # what the worker's producer stored at the broker (local only)
    # ``run(groups=...)`` only: per group (provider) requests, completed, links_per_s, p50/p99
    by_provider: dict[str, dict[str, Any]] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class LoadDriver:
    """Produces requests (paced or as fast as possible) and measures their outcomes."""

    def __init__(self, bootstrap: str, in_topic: str, tracker: OutcomeTracker,
                 sampler: ProcSampler, worker_name: str = "worker") -> None:
        self.bootstrap, self.in_topic = bootstrap, in_topic
        self.tracker, self.sampler, self.worker_name = tracker, sampler, worker_name
        self._producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> LoadDriver:
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                          linger_ms=5, max_batch_size=256 * 1024)
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._producer:
            await self._producer.stop()

    async def run(self, name: str, records: Sequence[tuple[bytes, bytes]], *,
                  rate: float | None, drain_timeout: float,
                  warmup_s: float = 1.0,
                  groups: Mapping[bytes, str] | None = None) -> StepResult:
        """Produce ``records`` at ``rate``/s (None: as fast as possible) and wait for outcomes.

        ``groups`` (request key -> provider) adds the same rate and latency per group.
        """
        assert self._producer is not None
        producer, tracker = self._producer, self.tracker
        sent: dict[bytes, float] = {}
        sent_ms: dict[bytes, int] = {}
        deliveries = []
        t0 = time.monotonic()
        if rate is None:
            for key, value in records:
                now = time.monotonic()
                ms = int(time.time() * 1000)
                deliveries.append(await producer.send(self.in_topic, value, key=key,
                                                      timestamp_ms=ms))
                sent[key], sent_ms[key] = now, ms
        else:
            i, n = 0, len(records)
            while i < n:
                due = min(n, int((time.monotonic() - t0) * rate) + 1)
                while i < due:
                    key, value = records[i]
                    now = time.monotonic()
                    ms = int(time.time() * 1000)
                    deliveries.append(await producer.send(self.in_topic, value, key=key,
                                                          timestamp_ms=ms))
                    sent[key], sent_ms[key] = now, ms
                    i += 1
                await asyncio.sleep(0.004)
        t1 = time.monotonic()
        keys = [k for k, _ in records]
        backlog = sum(1 for k in keys if k not in tracker.arrival)
        await asyncio.gather(*deliveries)
        missing = await tracker.wait_all(keys, drain_timeout)
        t_done = time.monotonic()

        arrivals = sorted(tracker.arrival[k] for k in keys if k in tracker.arrival)
        completed = len(arrivals)
        if rate is None:
            span = (arrivals[-1] - t0) if arrivals else float("nan")
            sustained = completed / span if arrivals else 0.0
        else:
            w0, w1 = t0 + warmup_s, t1
            in_window = sum(1 for a in arrivals if w0 <= a <= w1)
            sustained = in_window / (w1 - w0) if w1 > w0 else 0.0
        steady = None
        if completed >= 20:
            lo, hi = arrivals[completed // 10], arrivals[(completed * 9) // 10]
            if hi > lo:
                steady = (completed * 9 // 10 - completed // 10) / (hi - lo)
        lat = [(tracker.arrival[k] - sent[k]) * 1000 for k in keys if k in tracker.arrival]
        lat_ts = [tracker.created_ms[k] - sent_ms[k] for k in keys if k in tracker.created_ms]
        end = arrivals[-1] if arrivals else t_done
        by_provider = None if groups is None else group_stats(
            keys, groups, tracker.arrival, sent, t0=t0, t1=t1, rate=rate, warmup_s=warmup_s)
        worker = self.sampler.window(self.worker_name, t0, max(end, t1))
        others = {n: self.sampler.window(n, t0, max(end, t1))
                  for n in self.sampler.pids if n != self.worker_name}
        return StepResult(
            name=name, offered_per_s=rate, requests=len(records), completed=completed,
            produce_s=round(t1 - t0, 2), sustained_per_s=round(sustained, 1),
            steady_per_s=round(steady, 1) if steady else None,
            backlog_at_end=backlog,
            drain_s=round(max(0.0, end - t1), 2) if arrivals and not missing else None,
            p50_ms=_r(percentile(lat, 50)), p95_ms=_r(percentile(lat, 95)),
            p99_ms=_r(percentile(lat, 99)), max_ms=_r(max(lat) if lat else None),
            p99_ms_kafka_ts=_r(percentile(lat_ts, 99)), worker=worker, others=others,
            host=self._host(t0, max(end, t1), [worker, *others.values()]),
            by_provider=by_provider)

    def _host(self, t0: float, t1: float,
              ours: list[dict[str, float | None]]) -> dict[str, float | None]:
        """Machine busy/steal, and how much CPU went to processes this bench did not start."""
        host = self.sampler.host_window(t0, t1)
        busy = host.get("busy_pct")
        if busy is not None:
            mine = sum(p.get("cpu_pct") or 0.0 for p in ours)
            host["foreign_cpu_pct"] = round(max(0.0, busy * (os.cpu_count() or 1) - mine), 1)
        return host


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def group_stats(keys: Sequence[bytes], groups: Mapping[bytes, str], arrival: Mapping[bytes, float],
                sent: Mapping[bytes, float], *, t0: float, t1: float, rate: float | None,
                warmup_s: float = 1.0) -> dict[str, dict[str, Any]]:
    """A step's rate and latency per group (provider), defined as for the whole step.

    Paced (``rate``): the group's outcomes per second inside the step's window (after
    ``warmup_s``), so the groups add up to the step's rate. As fast as possible (None):
    the group's outcomes / (its last outcome − the step's first send): how fast that
    provider's share drained while the others drained beside it.
    """
    by_group: dict[str, list[bytes]] = {}
    for k in keys:
        by_group.setdefault(groups.get(k, "?"), []).append(k)
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(by_group):
        mine = by_group[name]
        done = sorted(arrival[k] for k in mine if k in arrival)
        if rate is None:
            per_s = len(done) / (done[-1] - t0) if done and done[-1] > t0 else 0.0
        else:
            w0 = t0 + warmup_s
            per_s = sum(1 for a in done if w0 <= a <= t1) / (t1 - w0) if t1 > w0 else 0.0
        lat = [(arrival[k] - sent[k]) * 1000 for k in mine if k in arrival and k in sent]
        out[name] = {"requests": len(mine), "completed": len(done), "links_per_s": round(per_s, 1),
                     "p50_ms": _r(percentile(lat, 50)), "p99_ms": _r(percentile(lat, 99))}
    return out


# ------------------------------------------------------------------------- broker storage

_PARTITION_DIR = re.compile(r"(?P<topic>.+)-\d+")


def stored_bytes(log_dir: Path | None, topics: Iterable[str], prefixes: Iterable[str] = ()) -> int | None:
    """Bytes of record batches the broker holds for ``topics`` and topics named ``prefix…``.

    The sum of the partitions' segment (``*.log``) files: batches are stored as the
    producer compressed them, so this is what compression saves on disk and on the wire.
    None when the broker's log directory is not on this machine.
    """
    if log_dir is None or not log_dir.is_dir():
        return None
    names, starts = set(topics), tuple(prefixes)
    total = 0
    for directory in log_dir.iterdir():
        match = _PARTITION_DIR.fullmatch(directory.name)
        if match and (match["topic"] in names or match["topic"].startswith(starts)):
            total += sum(segment.stat().st_size for segment in directory.glob("*.log"))
    return total


async def settled_stored_bytes(log_dir: Path | None, topics: Iterable[str],
                               prefixes: Iterable[str] = (), timeout: float = 10.0) -> int | None:
    """``stored_bytes`` once it stops growing: table writes may follow the last outcome."""
    topics, prefixes = tuple(topics), tuple(prefixes)
    deadline = time.monotonic() + timeout
    last = stored_bytes(log_dir, topics, prefixes)
    while last is not None and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = stored_bytes(log_dir, topics, prefixes)
        if now == last:
            break
        last = now
    return last


# ------------------------------------------------------------------------- group offsets


async def start_group_at_end(bootstrap: str, group_id: str, topics: Iterable[str]) -> None:
    """Commit ``group_id``'s offsets at the topics' current ends.

    A worker with a new app id (a new consumer group) would otherwise start from the
    earliest offset and re-process every request an earlier measurement produced.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = []
        for topic in topics:
            parts = consumer.partitions_for_topic(topic)
            if not parts:
                await consumer._client.force_metadata_update()  # noqa: SLF001
                parts = consumer.partitions_for_topic(topic) or set()
            tps += [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return
        ends = await consumer.end_offsets(tps)
        if not any(ends.values()):
            return  # empty topics: nothing to skip (and a fresh broker may lack a coordinator)
        consumer.assign(tps)
        await consumer.commit({tp: off for tp, off in ends.items()})
    finally:
        await consumer.stop()
