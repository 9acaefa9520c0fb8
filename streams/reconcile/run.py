"""One reconciliation, end to end: read the window, ask the providers, classify, report.

1. **Our side.** ``payout-link-requested`` and its re-keyed copies in ``[since, until]``;
   created, failed, status-changed and dead-letter records in ``[since, until + grace]``
   (an outcome published just after the window's end still answers a request inside
   it). Offsets come from timestamps: nothing before the window is read.
2. **The providers' side** (:mod:`streams.reconcile.holdings`): each listing provider's
   links created in the window, then a lookup per link nobody listed.
3. **The join** (:mod:`streams.reconcile.join`) hands every link's facts to
   :func:`~streams.reconcile.classify.classify` one link at a time; findings are
   counted and written as they pass, so memory does not grow with the window.
"""
from __future__ import annotations

import asyncio
import logging
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any

import orjson
from tqdm import tqdm

from streams import events
from streams.config import Settings
from streams.connectors.provider import ProviderClient
from streams.reconcile import facts as f, report, window as topic_window
from streams.reconcile.classify import LOST, ORPHAN, Finding, classify
from streams.reconcile.holdings import Holdings
from streams.reconcile.join import FactStore

log = logging.getLogger(__name__)

# A provider's clock and ours differ a little, and a link is created after its request:
# the providers' lists are read from a minute before the window.
PROVIDER_SKEW_S = 60.0


@dataclass(frozen=True)
class Options:
    since_ms: int
    until_ms: int
    grace_ms: int = 300_000
    merchants: frozenset[str] = frozenset()
    providers: frozenset[str] = frozenset()
    ask_providers: bool = True
    rate_per_s: float = 20.0
    concurrency: int = 8
    out_dir: Path = Path("reconcile-report")
    progress: bool | None = None  # None: a bar on a terminal, plain lines otherwise


@dataclass
class Result:
    tally: report.Tally
    files: dict[str, Path] = field(default_factory=dict)
    repairable: int = 0  # lost and orphans a re-drive can settle: files["repairs"], a line each


class Progress:
    """A bar per phase on a terminal; elsewhere one plain line per phase and every 10 s."""

    def __init__(self, enabled: bool | None, stream: IO[str] = sys.stderr) -> None:
        self.bar_mode = stream.isatty() if enabled is None else enabled
        self.stream = stream
        self._bar: tqdm[Any] | None = None
        self._phase = ""
        self._done = 0
        self._total: int | None = None
        self._last_line = 0.0
        self._started = 0.0
        self.seconds: dict[str, float] = {}  # phase -> wall seconds (the bench reads them)
        self.peak_mb: dict[str, float] = {}  # phase -> the process's peak RSS at its end

    def phase(self, name: str, total: int | None = None) -> None:
        resumed = name == self._phase  # its size became known: the same phase goes on
        started = self._started
        self.close()
        self._phase, self._done, self._total = name, 0, total
        self._started = started if resumed else time.monotonic()
        self._last_line = time.monotonic()
        if self.bar_mode:
            self._bar = tqdm(total=total, desc=name, unit="rec", file=self.stream,
                             dynamic_ncols=True, leave=True)

    def total(self, name: str, total: int) -> None:
        """The current phase's size, once known (before its first tick)."""
        self.phase(name, total)

    def tick(self, n: int = 1) -> None:
        self._done += n
        if self._bar is not None:
            self._bar.update(n)
        else:
            self._line()

    def _line(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_line >= 10.0:
            self._last_line = now
            of = f"/{self._total}" if self._total is not None else ""
            print(f"reconcile: {self._phase}: {self._done}{of}", file=self.stream, flush=True)

    def close(self) -> None:
        if self._phase:
            self.seconds[self._phase] = time.monotonic() - self._started
            self.peak_mb[self._phase] = round(peak_rss_mb(), 1)
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._phase:
            self._line(force=True)
        self._phase = ""


def peak_rss_mb() -> float:
    """This process's peak RSS. ``VmHWM``, not ``ru_maxrss``: on Linux a process started
    by another inherits its parent's ``ru_maxrss`` through exec (measured: a benchmark
    holding 466 MB made its reconcile child report 466 MB that the child never used)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def reconcile(settings: Settings, opts: Options, *,
                    clients: dict[str, ProviderClient] | None = None,
                    repairable: Callable[[Finding], bool] | None = None) -> Result:
    started = time.monotonic()
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    progress = Progress(opts.progress)
    tally = report.Tally(opts.since_ms, opts.until_ms, scope={
        "merchants": sorted(opts.merchants), "providers": sorted(opts.providers)})
    store = FactStore(opts.out_dir / ".facts.sqlite")
    holdings = Holdings(store, settings, rate_per_s=opts.rate_per_s,
                        concurrency=opts.concurrency, clients=clients, tick=progress.tick)
    result = Result(tally)
    try:
        await _read_topics(settings, opts, store, tally, progress)
        progress.phase("planning provider checks")
        merchants = holdings.plan_asks(opts.providers)
        if opts.ask_providers:
            progress.phase("listing provider windows")
            await holdings.list_window(opts.since_ms / 1000 - PROVIDER_SKEW_S,
                                       (opts.until_ms + opts.grace_ms) / 1000, merchants,
                                       providers=opts.providers,
                                       every_account=not opts.merchants)
            progress.phase("asking providers per link")  # those no list showed
            await holdings.ask_unlisted()
        tally.coverage = [c for c in holdings.coverage.values()
                          if not opts.providers or c.provider in opts.providers]
        progress.phase("classifying", store.added)
        result.files = await _classify(store, opts, tally, result, progress,
                                       repairable or _repairable)
    finally:
        progress.close()
        await holdings.aclose()
        store.close()
    tally.seconds = time.monotonic() - started
    tally.phases = {name: {"seconds": round(s, 3), "peak_rss_mb": progress.peak_mb.get(name)}
                    for name, s in progress.seconds.items()}
    tally.peak_rss_mb = peak_rss_mb()
    report.write_json(tally, result.files["json"])
    report.write_html(tally, result.files["html"])
    return result


def _repairable(finding: Finding) -> bool:
    """Lost and orphaned links whose request we read: a re-drive can settle them."""
    return finding.link_key is not None and (LOST in finding.classes or ORPHAN in
                                             finding.classes) and "request_at" in finding.detail


async def _read_topics(settings: Settings, opts: Options, store: FactStore,
                       tally: report.Tally, progress: Progress) -> None:
    topics = settings.topics
    end_ms = min(opts.until_ms + opts.grace_ms, int(time.time() * 1000))
    plan: list[tuple[str, int, Callable[[bytes | None, f.Coordinates], f.Fact | None] | None]] = [
        (topics.requested, opts.until_ms, f.from_request),
        (topics.routed, opts.until_ms, f.from_request),
        (topics.created, end_ms, f.from_outcome),
        (topics.failed, end_ms, f.from_outcome),
        (topics.status_changed, end_ms, f.from_outcome),
        (topics.dead_letter, end_ms, None),
    ]
    for topic, until_ms, to_fact in plan:
        progress.phase(f"reading {topic}")
        async for record in topic_window.read(
                settings.bootstrap_servers, topic, opts.since_ms, until_ms,
                on_span=partial(progress.total, f"reading {topic}")):
            progress.tick()
            tally.records[topic] += 1
            if to_fact is None:
                tally.dead_letters[_dead_letter_class(record.value)] += 1
                continue
            fact = to_fact(record.value, f.Coordinates(record.topic, record.partition,
                                                       record.offset, record.timestamp))
            if fact is not None and _wanted(fact, opts):
                store.add(fact)
    store.flush()


def _wanted(fact: f.Fact, opts: Options) -> bool:
    if opts.merchants and fact.data.get("m") not in opts.merchants:
        return False
    connector = fact.data.get("cn") or fact.data.get("n")
    return not (opts.providers and connector is not None and connector not in opts.providers)


def _dead_letter_class(value: bytes | None) -> str:
    try:
        letter = orjson.loads(value or b"")
        return f"{letter['source']['topic']}: {letter['error']['code']}"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return f"{events.DEAD_LETTER}: unreadable"


async def _classify(store: FactStore, opts: Options, tally: report.Tally, result: Result,
                    progress: Progress, repairable: Callable[[Finding], bool],
                    ) -> dict[str, Path]:
    files = {"json": opts.out_dir / "reconcile.json", "csv": opts.out_dir / "exceptions.csv",
             "html": opts.out_dir / "reconcile.html",
             "repairs": opts.out_dir / "repairs.jsonl"}
    handle, writer = report.open_csv(files["csv"])
    # Written as found, not kept: a window of a million lost links costs a file.
    repairs = files["repairs"].open("wb")
    in_scope = _scope(opts)
    try:
        for n, (reference, facts_) in enumerate(store.links()):
            progress.tick(len(facts_))
            finding = classify(reference, facts_, in_scope)
            if finding is None or (opts.providers and finding.connector is not None
                                   and finding.connector not in opts.providers) or (
                    opts.merchants and finding.merchant_id not in opts.merchants):
                continue
            tally.add(finding, writer)
            if repairable(finding):
                result.repairable += 1
                repairs.write(orjson.dumps({"link_key": finding.link_key,
                                            "request_at": finding.detail["request_at"]}) + b"\n")
            if n % 50_000 == 0:
                await asyncio.sleep(0)
    finally:
        handle.close()
        repairs.close()
    return files


def _scope(opts: Options) -> Callable[[int], bool]:
    def in_scope(at_ms: int) -> bool:
        # A provider link states no time when found by lookup (0): in scope, since
        # something of ours in the window led to it.
        return at_ms == 0 or opts.since_ms <= at_ms <= opts.until_ms
    return in_scope
