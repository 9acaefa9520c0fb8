"""Presenting a bench run: the printed table, the PNG, the docs row, the profile summary."""
from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from streams.devkit.harness import REPO_ROOT
from streams.devkit.runinfo import git_commit  # noqa: F401  (bench.run: report.git_commit)


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "ram_gb": ram_gb,
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2)}


def _f(x: Any, fmt: str = "{:.0f}") -> str:
    return "–" if x is None else fmt.format(x)


# ------------------------------------------------------------------------------ table


def _sim_cpu(others: dict[str, dict[str, Any]]) -> float | None:
    """CPU of the simulator(s): one, or with --mix one per provider."""
    values = [v.get("cpu_pct") for n, v in others.items() if n.startswith("simulator")]
    present = [float(v) for v in values if v is not None]
    return round(sum(present), 1) if present else None


def table(r: dict[str, Any]) -> str:
    mix = r.get("traffic") == "mix"
    default = r.get("default")
    lines = [
        ("mixed traffic (razorpay / cashfree / revolut, a third each) — " if mix else "")
        + f"payout-link benchmark — provider {r['provider_latency_ms']:g}±{r['provider_jitter_ms']:g} ms, "
        f"{r['partitions']} partitions, PAYOUT_MAX_IN_FLIGHT={r['max_in_flight']}, "
        f"{r['machine']['nproc']} cores ({r['machine']['cpu']})",
        "",
        f"{'run':<14}{'offered/s':>10}{'links/s':>9}{'done':>15}{'backlog':>9}{'drain s':>8}"
        f"{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'wkr CPU%':>9}{'wkr RSS':>8}"
        f"{'sim CPU%':>9}{'kafka%':>8}{'drv CPU%':>9}{'host%':>7}{'steal%':>7}{'other%':>7}",
    ]

    def row(label: str, s: dict[str, Any]) -> str:
        o = s.get("others", {})
        return (f"{label:<14}{_f(s['offered_per_s']) if s['offered_per_s'] else 'max':>10}"
                f"{s['sustained_per_s']:>9.1f}{str(s['completed']) + '/' + str(s['requests']):>15}"
                f"{s['backlog_at_end']:>9}{_f(s['drain_s'], '{:.1f}'):>8}"
                f"{_f(s['p50_ms']):>8}{_f(s['p95_ms']):>8}{_f(s['p99_ms']):>8}"
                f"{_f(s['worker'].get('cpu_pct')):>9}{_f(s['worker'].get('rss_mb')):>8}"
                f"{_f(_sim_cpu(o)):>9}"
                f"{_f(o.get('broker', {}).get('cpu_pct')):>8}"
                f"{_f(o.get('driver', {}).get('cpu_pct')):>9}"
                f"{_f(s.get('host', {}).get('busy_pct')):>7}"
                f"{_f(s.get('host', {}).get('steal_pct'), '{:.1f}'):>7}"
                f"{_f(s.get('host', {}).get('foreign_cpu_pct')):>7}")

    for s in (default or {}).get("steps", []):
        lines.append(row(f"razorpay {s['name']}", s))
    for s in r["steps"]:
        lines.append(row(f"{'mix' if mix else 'worker'} {s['name']}", s))
    lines.append(row("bare ceiling", r["baselines"]["bare"]))
    if "records" in r["baselines"]:
        lines.append(row("records floor", r["baselines"]["records"]))
    lines.append(row("naive agent", r["baselines"]["naive"]))
    for s in r.get("max_in_flight_sweep", []):
        lines.append(row(f"in-flight {s['max_in_flight']}", s))
    lines += [
        "",
        "links/s: paced steps = outcomes per second inside the step (after a 1 s warm-up);",
        "max/baselines = requests / (last outcome − first send). RSS in MB; process CPU in % of one",
        "core; host% = whole machine busy, steal% = CPU stolen by the hypervisor (% of all cores);",
        "other% = CPU of processes this run did not start (% of one core): other jobs."
        + (" sim CPU% = all three simulators." if mix else ""),
        "",
    ]
    if mix:
        lines += _mix_lines(r)
    floor = r.get("ratio_floor")
    lines += [
        f"links/s (max)          {r['links_per_s']:.0f}" + (" (mix)" if mix else ""),
        f"bare ceiling           {r['bare_ceiling_per_s']:.0f} links/s "
        f"(worker = {_f(r['ratio_to_bare'], '{:.2f}')} × bare)"
        + (f"; floor {floor['floor']:g} × bare (issue 9): {'met' if floor['met'] else 'MISSED'}"
           if floor and not mix else ""),
        *([f"records floor          {r['records_floor_per_s']:.0f} links/s "
           f"(= {r['records_ratio_to_bare']:.2f} × bare: a link's three Kafka records, no work "
           f"between; worker = {r['ratio_to_records']:.2f} × records floor"
           + (f"; issue 9's floor = {floor['floor'] / r['records_ratio_to_bare']:.2f} × it)"
              if floor and not mix and r['records_ratio_to_bare'] else ")")]
          if r.get("records_floor_per_s") else []),
        f"naive agent            {r['naive_per_s']:.1f} links/s "
        f"(worker = {_f(r['times_naive'], '{:.0f}')} × naive)",
        f"p99 at 500/s offered   {_f(r['p99_ms_at_500'])} ms",
        f"worker CPU per link    {_f(r.get('worker_cpu_ms_per_link_at_max'), '{:.2f}')} ms at max",
        f"other jobs' CPU        {_f(r.get('foreign_cpu_pct'))} % of one core on average"
        + ("  — BUSY MACHINE: not comparable with quiet runs"
           if (r.get("foreign_cpu_pct") or 0) > 20 else ""),
        f"peak RSS               {_f(r['peak_rss_mb'])} MB over {r['links_through_worker']} links "
        f"(RSS after n links: "
        + ", ".join(f"{n}: {_f(m)}" for n, m in r.get("rss_mb_by_links") or []) + ")",
        "",
        "targets:",
    ]
    for t in r["targets"].values():
        lines.append(f"  [{'x' if t['met'] else ' '}] {t['target']}")
    if mix:
        lines.append("  (the targets are the Razorpay-only default's; checked here on the mix)")
    return "\n".join(lines)


def _mix_lines(r: dict[str, Any]) -> list[str]:
    """--mix: per provider at max, and both passes' links/s ÷ the one bare ceiling."""
    bare = r["bare_ceiling_per_s"]
    lines = ["per provider, max step (links/s = that provider's outcomes ÷ (its last outcome − "
             "the step's first send)):"]
    for name, g in (r.get("by_provider_at_max") or {}).items():
        lines.append(f"  {name:<10}{g['completed']:>8}/{g['requests']:<8} {g['links_per_s']:>7.0f} links/s"
                     f"   p50 {_f(g['p50_ms']):>6} ms   p99 {_f(g['p99_ms']):>6} ms")
    lines += ["", f"links/s ÷ bare ceiling ({bare:.0f} links/s, same run):"]
    default, floor = r.get("default"), r.get("ratio_floor")
    if default:
        lines.append(f"  razorpay only     {default['links_per_s']:>6.0f} links/s   "
                     f"{_f(default['ratio_to_bare'], '{:.2f}')} × bare   "
                     f"{_f(default.get('worker_cpu_ms_per_link_at_max'), '{:.2f}')} ms CPU/link   "
                     f"peak RSS {_f(default['peak_rss_mb'])} MB"
                     + (f"   (floor {floor['floor']:g} × bare, issue 9: "
                        f"{'met' if floor['met'] else 'MISSED'})" if floor else ""))
    lines.append(f"  mix (3 providers) {r['links_per_s']:>6.0f} links/s   "
                 f"{_f(r['ratio_to_bare'], '{:.2f}')} × bare   "
                 f"{_f(r.get('worker_cpu_ms_per_link_at_max'), '{:.2f}')} ms CPU/link   "
                 f"peak RSS {_f(r['peak_rss_mb'])} MB")
    if default:
        lines.append(f"  mix ÷ razorpay only {_f(r.get('mix_over_default'), '{:.2f}')}")
    return lines + [""]


# ------------------------------------------------------------------------------- plot


def plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = r["steps"]
    mix = r.get("traffic") == "mix"
    default_steps = (r.get("default") or {}).get("steps") or []
    labels = [f"{s['offered_per_s']:g}" if s["offered_per_s"] else "max" for s in steps]
    xs: list[float] = list(range(len(steps)))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8), dpi=110)
    fig.suptitle(("mixed traffic (razorpay/cashfree/revolut): " if mix else "")
                 + f"payout-link worker, provider {r['provider_latency_ms']:g}±"
                 f"{r['provider_jitter_ms']:g} ms, {r['machine']['nproc']} cores, "
                 f"max in flight {r['max_in_flight']} — {r['started_at'][:16].replace('T', ' ')} UTC",
                 fontsize=11)

    achieved = [s["sustained_per_s"] for s in steps]
    offered = [s["offered_per_s"] for s in steps]
    if default_steps:  # --mix: the Razorpay-only pass of the same run beside each mix bar
        ax1.bar([x - 0.2 for x in xs[:len(default_steps)]],
                [s["sustained_per_s"] for s in default_steps], color="#AAAAAA", width=0.4,
                label="razorpay only: achieved links/s")
        xs = [x + 0.2 for x in xs]
    ax1.bar(xs, achieved, color="#4C72B0", width=0.4 if default_steps else 0.6,
            label=f"{'mix' if mix else 'worker'}: achieved links/s")
    ox = [round(x) for x, o in zip(xs, offered) if o]
    ax1.plot(ox, [o for o in offered if o], "k_", markersize=28, mew=2, label="offered")
    ax1.axhline(r["bare_ceiling_per_s"], color="#C44E52", ls="--",
                label=f"bare Faust ceiling {r['bare_ceiling_per_s']:.0f}/s")
    ax1.axhline(1500, color="#55A868", ls=":", label="target 1,500/s")
    ax1.axhline(r["naive_per_s"], color="#8172B2", ls="-.",
                label=f"naive agent {r['naive_per_s']:.1f}/s")
    for x, a in zip(xs, achieved):
        ax1.annotate(f"{a:.0f}", (x, a), ha="center", va="bottom", fontsize=9,
                     xytext=(0, 2), textcoords="offset points")
    ax1.set_xticks([round(x) for x in xs], labels)
    ax1.set_xlabel("offered load (links/s)")
    ax1.set_ylabel("throughput (links/s)")
    ax1.set_ylim(0, max(achieved + [s["sustained_per_s"] for s in default_steps]
                        + [r["bare_ceiling_per_s"], 1500]) * 1.2)
    ax1.legend(fontsize=8, loc="upper left")
    ax1.grid(axis="y", alpha=0.3)
    ax1.set_title("throughput", fontsize=10)

    xs = list(range(len(steps)))
    for key, style, name in (("p50_ms", "o-", "p50"), ("p95_ms", "s--", "p95"),
                             ("p99_ms", "^-", "p99")):
        vals = [s[key] for s in steps]
        ax2.plot([x for x, v in zip(xs, vals) if v], [v for v in vals if v], style, label=name)
    if default_steps:
        vals = [s["p99_ms"] for s in default_steps]
        ax2.plot([x for x, v in zip(xs, vals) if v], [v for v in vals if v], "x:",
                 color="#888888", label="p99 razorpay only")
    for x, v in zip(xs, [s["p99_ms"] for s in steps]):
        if v:
            ax2.annotate(f"{v:.0f}", (x, v), ha="center", va="bottom", fontsize=9,
                         xytext=(0, 4), textcoords="offset points")
    ax2.axhline(1000, color="#55A868", ls=":", label="target p99 ≤ 1 s at 500/s")
    ax2.axhline(r["provider_latency_ms"], color="grey", ls=":", lw=1, label="provider latency")
    ax2.set_yscale("log")
    lat = [s[k] for s in [*steps, *default_steps] for k in ("p50_ms", "p99_ms") if s[k]]
    ax2.set_ylim(min(lat + [r["provider_latency_ms"]]) * 0.6, max(lat + [1000]) * 3)
    ax2.set_xticks(xs, labels)
    ax2.set_xlabel("offered load (links/s)  —  'max': all requests at once")
    ax2.set_ylabel("request → outcome latency (ms)")
    ax2.legend(fontsize=8, loc="upper left")
    ax2.grid(alpha=0.3, which="both")
    ax2.set_title("latency", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# -------------------------------------------------------------------------------- doc

DOC_HEADER = """\
# Benchmarks

`make bench` (`python -m bench.run`, see `bench/run.py`) drives the real pipeline on one
machine: a real Kafka broker, the RazorpayX simulator with a fixed latency plus uniform
jitter, and **one worker** (`python -m streams worker`). It offers stepped load (paced
producer at each rate for a fixed time), then as many requests as fast as possible
("max"); in the same run it measures two baselines the same way (requests produced,
time until every outcome is back):

* **bare** — Faust's ceiling on this machine: one agent over a raw-bytes topic doing a
  RocksDB table write and one send per event, no parsing, no HTTP (`bench/baselines.py`);
* **records** — the records floor: the same agent, but per event the three Kafka records
  a link needs under the money-safety rules (the `creating` table write, the outcome, the
  settled table write, ~770 bytes each) and no work between them;
* **naive** — a first-try agent: one event at a time, one awaited httpx call to the
  simulator, then a send.

Latency is request send → outcome arrival, both clocks in the driver process. Peak RSS
is the worker's VmHWM after every step (warm-up + paced steps + max). CPU is the
worker's user+system time over the step, in % of one core. Numbers from a shared
2-core machine are noisy (other jobs may run at the same time); compare rows from the
same machine only. Each run also writes `bench/results/latest.json` and
`bench/results/latest.png`; a missed target triggers a py-spy profile
(`bench/results/profile.txt`).

Targets (2 cores, 100 ms provider): ≥ 1,500 links/s sustained by one worker and ≥ ½ of
the bare ceiling; p99 ≤ 1 s at 500 links/s offered; peak RSS ≤ 400 MB over 100,000
links; ≥ 100× the naive agent.

Machine of the first run: {machine}.
Settings of the first run: {settings}.

Columns: **links/s** the worker's drain rate in the max step; **bare** / **naive** the
baselines' rates; **×bare** links/s ÷ bare; **×naive** links/s ÷ naive; **records
(×bare)** the records floor's rate and its share of bare ("–": runs before it existed); **p50/p99@500**
latency at 500 links/s offered; **p99@1k/2k** at 1,000 and 2,000 links/s; **RSS** peak
RSS (MB) over **links** requests; **CPU** the worker's CPU at max; **met** targets met;
**other jobs %** CPU (% of one core, mean over the steps and baselines) used by
processes the run did not start — above ~20 the machine was shared and the row is not
comparable.

| date (UTC) | commit | machine | other jobs % | provider ms | in-flight | links/s | bare | naive | ×bare | ×naive | p50/p99@500 ms | p99@1k/2k ms | RSS MB / links | CPU % | wall s | met | records (×bare) |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
"""


def _machine_text(m: dict[str, Any]) -> str:
    return f"{m['nproc']} cores, {m['cpu']}, {m['ram_gb']} GB RAM"


def _settings_text(r: dict[str, Any]) -> str:
    steps = ", ".join(f"{s['offered_per_s']:g}" if s["offered_per_s"] else "max"
                      for s in r["steps"])
    return (f"provider {r['provider_latency_ms']:g} ms + 0–{r['provider_jitter_ms']:g} ms jitter, "
            f"steps {steps} links/s × {r['step_seconds']:g} s, max = "
            f"{next((s['requests'] for s in r['steps'] if not s['offered_per_s']), 0)} requests, "
            f"{r['partitions']} partitions, PAYOUT_MAX_IN_FLIGHT={r['max_in_flight']}, "
            f"bare {r['baselines']['bare']['requests']} / naive "
            f"{r['baselines']['naive']['requests']} requests")


def append_doc(r: dict[str, Any], path: Path) -> None:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(DOC_HEADER.format(machine=_machine_text(r["machine"]),
                                          settings=_settings_text(r)))
    by = {s["name"]: s for s in r["steps"]}
    at500, at1k, at2k = by.get("500", {}), by.get("1000", {}), by.get("2000", {})
    met = [k for k, t in r["targets"].items() if t["met"]]
    missed = [k for k, t in r["targets"].items() if not t["met"]]
    m = r["machine"]
    row = [
        r["started_at"][:16].replace("T", " "), f"`{r['commit']}`",
        f"{m['nproc']}× {m['cpu'][:20]}, load {m['load_avg_1m_at_end']}",
        _f(r.get("foreign_cpu_pct")),
        f"{r['provider_latency_ms']:g}±{r['provider_jitter_ms']:g}" + (" (quick)" if r["quick"] else ""),
        str(r["max_in_flight"]), f"{r['links_per_s']:.0f}", f"{r['bare_ceiling_per_s']:.0f}",
        f"{r['naive_per_s']:.1f}", _f(r["ratio_to_bare"], "{:.2f}"), _f(r["times_naive"]),
        f"{_f(at500.get('p50_ms'))}/{_f(at500.get('p99_ms'))}",
        f"{_f(at1k.get('p99_ms'))}/{_f(at2k.get('p99_ms'))}",
        f"{_f(r['peak_rss_mb'])} / {r['links_through_worker']}",
        _f(r["worker_cpu_pct_at_max"]), _f(r.get("wall_s")),
        f"{len(met)}/{len(r['targets'])}" + (f" (missed: {', '.join(missed)})" if missed else ""),
        f"{r['records_floor_per_s']:.0f} ({r['records_ratio_to_bare']:.2f})"
        if r.get("records_floor_per_s") else "–",
    ]
    insert_row(path, "| " + " | ".join(row) + " |")


def insert_row(path: Path, line: str, header_start: str = "| date (UTC) |",
               new_table: list[str] | None = None) -> None:
    """Add ``line`` as the last row of the results table, wherever the table is.

    Other sections may follow the table (notes, measurements), so the row goes right
    after the table's last row rather than at the end of the file. The table is the one
    whose header line starts with ``header_start``; without one, ``new_table`` (text
    ending in the header and separator lines; the runs table's by default) is appended.
    """
    lines = path.read_text().splitlines()
    header = next((i for i, ln in enumerate(lines) if ln.startswith(header_start)), None)
    if header is None:  # no table (edited away): start one at the end
        lines += ["", *(new_table or DOC_HEADER.strip().splitlines()[-2:])]
        header = len(lines) - 2
    end = header + 1
    while end + 1 < len(lines) and lines[end + 1].startswith("|"):
        end += 1
    lines.insert(end + 1, line)
    path.write_text("\n".join(lines) + "\n")


MIX_HEADER_START = "| mix run (UTC) |"
MIX_SECTION = """\
## Mixed providers (`make bench BENCH_ARGS=--mix`)

`python -m bench.run --mix`: the same steps, but every provider behind its own simulator
(`SimulatorFleet`, each at the same latency) and the traffic spread over them, a quarter
each (from the 2026-11-22 Prism rows; a third each over three providers before): the
demo's merchants `m_in_default` (INR → razorpay, the registry's order), `m_in_cashgram`
(INR → cashfree by the demo's `PAYOUT_ROUTING`), `m_eu_gbp` / `m_eu_eur` (→ revolut,
notifications off), `m_us_prism` / `m_eu_prism` (USD / EUR → prism over gRPC, the
Prism-compatible server's simulated Adyen); default dev credentials for every provider.
In the same run, before the mixed worker, a fresh worker runs the default Razorpay-only
traffic through the same steps, then another Prism-alone traffic (`m_us_prism`), and the
bare and naive baselines are measured once after all three: **×bare** of every pass
shares one bare ceiling. A run also
writes `bench/results/mix.json` and `mix.png`, and checks at each step that every
simulator created as many links as its share got outcomes.

Columns: **mix** / **razorpay only** links/s at max and ÷ bare; **mix ÷ rzp** the ratio of
the two; **by provider** links/s at max of razorpay / cashfree / revolut / prism (each: its
outcomes ÷ (its last outcome − the step's first send)) and their p99 (ms); **CPU ms/link**
the worker's CPU per link at max, mix / razorpay only; **RSS** the mixed worker's peak
over **links**; **floor** Razorpay-only ≥ 0.45 × bare (issue 9); **other jobs %** as in
the runs table, mix pass / Razorpay-only pass (each with the baselines); **prism alone**
links/s at max through Prism only, **prism ÷ rzp** that over the Razorpay-only pass (issue
11's target: ≥ 0.80), **CPU ms/link prism** the Prism-alone worker's CPU per link at max.

| mix run (UTC) | commit | machine | other jobs % | provider ms | mix links/s | ×bare | razorpay only links/s | ×bare | mix ÷ rzp | bare | ×naive (mix) | by provider links/s | by provider p99 ms | p50/p99@500 ms (mix) | CPU ms/link | RSS MB / links | wall s | floor | prism alone links/s | prism ÷ rzp | CPU ms/link prism |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
"""


def append_mix_doc(r: dict[str, Any], path: Path) -> None:
    """One row in the "Mixed providers" table (the section is added at the end if missing)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(DOC_HEADER.format(machine=_machine_text(r["machine"]),
                                          settings=_settings_text(r)))
    default = r.get("default") or {}
    by = r.get("by_provider_at_max") or {}
    names = ("razorpay", "cashfree", "revolut", "prism")
    prism = r.get("prism") or {}
    at500: dict[str, Any] = next((s for s in r["steps"] if s["name"] == "500"), {})
    floor = r.get("ratio_floor")
    m = r["machine"]
    row = [
        r["started_at"][:16].replace("T", " "), f"`{r['commit']}`",
        f"{m['nproc']}× {m['cpu'][:20]}, load {m['load_avg_1m_at_end']}",
        _f(r.get("foreign_cpu_pct")) + (f" / {_f(default.get('foreign_cpu_pct'))}" if default else ""),
        f"{r['provider_latency_ms']:g}±{r['provider_jitter_ms']:g}" + (" (quick)" if r["quick"] else ""),
        f"{r['links_per_s']:.0f}", _f(r["ratio_to_bare"], "{:.2f}"),
        _f(default.get("links_per_s")), _f(default.get("ratio_to_bare"), "{:.2f}"),
        _f(r.get("mix_over_default"), "{:.2f}"), f"{r['bare_ceiling_per_s']:.0f}",
        _f(r["times_naive"]),
        " / ".join(_f(by.get(n, {}).get("links_per_s")) for n in names),
        " / ".join(_f(by.get(n, {}).get("p99_ms")) for n in names),
        f"{_f(at500.get('p50_ms'))}/{_f(at500.get('p99_ms'))}",
        f"{_f(r.get('worker_cpu_ms_per_link_at_max'), '{:.2f}')} / "
        f"{_f(default.get('worker_cpu_ms_per_link_at_max'), '{:.2f}')}",
        f"{_f(r['peak_rss_mb'])} / {r['links_through_worker']}", _f(r.get("wall_s")),
        "–" if not floor else ("met" if floor["met"] else "MISSED"),
        _f(prism.get("links_per_s")), _f(r.get("prism_over_default"), "{:.2f}"),
        _f(prism.get("worker_cpu_ms_per_link_at_max"), "{:.2f}"),
    ]
    insert_row(path, "| " + " | ".join(row) + " |", MIX_HEADER_START,
               MIX_SECTION.rstrip("\n").splitlines())


# ---------------------------------------------------------------------------- profile

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# What a sampled stack is doing, first match wins (so the shares add up to 100 %).
# Each rule: (label, function names any of which on the stack selects it, file fragments).
CATEGORIES: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("logging (formatting + writing log lines)", (), ("logging/__init__.py", "logging/handlers.py", "colorlog/")),
    ("provider HTTP call: aiohttp (ProviderTransport)", ("ProviderTransport.send",), ()),
    ("provider gRPC call: grpc.aio + protobuf (PrismClient)", ("PrismClient._call",), ()),
    ("grpc.aio's own tasks and callbacks: completion queue, channel polling", (),
     ("grpc/", "grpc._cython", "cygrpc")),
    ("link creation wrappers: tenacity retry loop, circuit breaker, rate limiter",
     ("LinkCreator.create_link",), ()),
    ("table writes: RocksDB put + changelog send_soon",
     ("ManagedUserDict.__setitem__", "LinkTable.put_durably", "Store._set"), ()),
    ("outcome publish (topic.send + await delivery)", ("RequestProcessor._publish_outcome",), ()),
    ("settle logic: decide, fingerprint, route, build events",
     ("RequestProcessor.settle", "KeyedInFlight._run"), ()),
    ("agent: parse + validate + route + submit (RequestProcessor.accept)",
     ("RequestProcessor.accept", "handle_requests", "Agent._execute_actor"), ()),
    ("Faust producer buffer (changelog send_soon queue, wait_until_ebb)",
     ("ProducerBuffer._handle_pending", "ProducerBuffer.wait_until_ebb"), ()),
    ("Faust consumer: fetch + deliver to the stream",
     ("Consumer._drain_messages", "Fetcher._fetcher", "on_message"), ()),
    ("Faust commit + changelog-ack bookkeeping",
     ("Consumer._commit_handler", "Consumer.commit", "Collection._on_changelog_sent",
      "Topic._on_published"), ()),
    ("aiokafka producer: sender, accumulator, produce requests",
     ("Sender._sender_routine", "Sender._send_produce_req"), ("aiokafka/producer/",)),
    ("Kafka connections: reading/parsing responses", ("AIOKafkaConnection._read",), ("aiokafka/",)),
    ("aiohttp's own tasks and callbacks: request body writes, response parsing", (),
     ("aiohttp/",)),
]
# Leaf frames that mean "the event loop itself": asyncio's selector and scheduler, or,
# under uvloop, the frame that called into uvloop's C loop.
LOOP_LEAVES = {"BaseEventLoop._run_once", "EpollSelector.select", "BaseEventLoop.run_forever",
               "BaseEventLoop.run_until_complete", "Worker.execute_from_commandline",
               "Handle._run"}


def _split_frame(frame: str) -> tuple[str, str]:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip(), ""
    return m.group("func"), m.group("file")


def _area(file: str) -> str:
    """Which library a source file belongs to: the package after site-packages, etc."""
    if "site-packages/" in file:
        return file.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/streams/" in file or file.startswith("streams/"):
        return "streams (ours)"
    m = re.search(r"lib/python3\.\d+/([^/]+)", file)
    if m:
        return "stdlib " + m.group(1).removesuffix(".py")
    return file or "?"


def _category(frames: list[tuple[str, str]]) -> str:
    if frames[-1][0] in LOOP_LEAVES:
        return "event loop itself (select, scheduling; under uvloop its C code)"
    funcs = {f for f, _ in frames}
    files = [file for _, file in frames]
    for label, names, fragments in CATEGORIES:
        if any(n in funcs for n in names) or any(fr in file for fr in fragments for file in files):
            return label
    return "other"


def summarise_folded(text: str, header: str, top: int = 25) -> str:
    """Where the time goes, from py-spy's raw (folded) output: by activity, library, function."""
    total = 0
    threads: Counter[str] = Counter()
    cats: Counter[str] = Counter()
    self_c: Counter[str] = Counter()
    incl_c: Counter[str] = Counter()
    area_c: Counter[str] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        parts = [f for f in stack.split(";") if f]
        if parts and parts[0].startswith("thread ("):
            threads[parts[0].split(":", 1)[-1].strip()] += n
            parts = parts[1:]
        frames = [_split_frame(fr) for fr in parts]
        if not frames:
            continue
        cats[_category(frames)] += n
        names = []
        for func, file in frames:
            short = file.split("site-packages/", 1)[-1] if file else ""
            short = re.sub(r".*/lib/python3\.\d+/", "", short)
            short = short.replace(str(REPO_ROOT) + "/", "")
            names.append(f"{func} ({short})")
        self_c[names[-1]] += n
        area_c[_area(frames[-1][1])] += n
        for name in set(names):
            incl_c[name] += n
    if not total:
        return header + "\n(no samples)\n"

    def pct(n: int) -> str:
        return f"{100 * n / total:5.1f}%"

    out = [header, f"{total} samples while a thread held the GIL (idle time is not sampled)", ""]
    if threads:
        out.append("by thread:")
        out += [f"  {pct(n)}  {t}" for t, n in threads.most_common()]
        out.append("")
    out.append("by activity (each sample counted once, first matching rule in bench/report.py):")
    out += [f"  {pct(n)}  {c}" for c, n in cats.most_common()]
    out += ["", "self time by library (leaf frame):"]
    out += [f"  {pct(n)}  {a}" for a, n in area_c.most_common(15)]
    out += ["", f"top {top} functions by self time:"]
    out += [f"  {pct(n)}  {name}" for name, n in self_c.most_common(top)]
    out += ["", f"top {top} functions by inclusive time (on the stack; frames on nearly every "
                "stack, like the event loop and the CLI, left out):"]
    out += [f"  {pct(n)}  {name}" for name, n in incl_c.most_common()
            if n < 0.95 * total][:top]
    return "\n".join(out) + "\n"
