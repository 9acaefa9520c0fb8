"""Reconciliation at scale: ``python -m streams reconcile`` over 100k and 1M link keys.

For each size, on one real Kafka and the RazorpayX simulator (a listing provider, no
latency): N requests and N ``payout-link-created`` events are produced into the
window, the simulator is seeded with the N links they name (``/_sim/links/seed``, at
their creation times), and the real command runs over the window as an operator
would (``--rate 10000``: the simulator has no rate limit to honour). It must find
every link matched; the row gives the wall time, the phases, the peak RSS of the
reconcile process and the size of its on-disk join. Nothing of the worker runs: this
measures the reconciliation, not the pipeline.

``python -m bench.reconcile_scale [--keys 100000 1000000] [--no-doc]``; a row per size
in the "Reconciliation at scale" section of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from bench.report import machine
from streams import events
from streams.connectors.base import link_reference
from streams.connectors.registry import PROVIDERS
from streams.devkit.broker import broker_from_environment
from streams.devkit.harness import REPO_ROOT, TOPICS, create_topics
from streams.devkit.runinfo import add_table_row, git_commit
from streams.devkit.sims.razorpay import RazorpaySimulatorProcess
from streams.devkit.traffic import valid_request

DOC = REPO_ROOT / "docs" / "benchmarks.md"
SECTION_HEADING = "## Reconciliation at scale (`python -m bench.reconcile_scale`)"
TABLE_START = "| run (UTC) | commit | machine | link keys |"
SECTION = f"""\
{SECTION_HEADING}

`bench/reconcile_scale.py`: one real Kafka (8 partitions) and the RazorpayX simulator (a
listing provider, no latency). For N link keys it produces N requests and N
`payout-link-created` events into a window, seeds the simulator with the N links they
name, and runs `python -m streams reconcile` over the window (`--rate 10000`), which must
find all N matched. **wall** the command's own time; **read** the six topics read by
timestamp into the on-disk join; **list** the provider's window (100 links a page);
**classify** the ordered pass over the join; **RSS** the reconcile process's peak
(`VmHWM`); **join MB** the SQLite file at its largest. The worker does not run: this is
the tool, not the pipeline.

| run (UTC) | commit | machine | link keys | records read | wall s | read s | list s (pages) | classify s | peak RSS MB | join MB | verdict |
|---|---|---|---|---|---|---|---|---|---|---|---|
"""


def _links(keys: int, run: str) -> list[tuple[str, str, int]]:
    """(link key, reference, amount) of each link."""
    return [(f"m_scale:{run}-{n:08d}", link_reference(f"m_scale:{run}-{n:08d}"),
             100 + n % 1_000_000) for n in range(keys)]


async def _produce(bootstrap: str, links: list[tuple[str, str, int]], ids: list[str],
                   run: str) -> None:
    """Each link's request and its created event, naming the simulator's link."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20,
                                max_batch_size=512 * 1024, compression_type="lz4")
    await producer.start()
    template = valid_request(0, merchant_id="m_scale", run=run)
    try:
        pending = []
        for (key, reference, amount), link_id in zip(links, ids, strict=True):
            request = {**template, "merchant_payout_id": key.split(":", 1)[1],
                       "amount": {"minor_amount": amount, "currency": "INR"}}
            created = events.created_event(
                request, connector="razorpay", connector_payout_id=link_id,
                url=f"https://rzp.io/i/{link_id[7:]}",
                payout_status="REQUIRES_PAYOUT_METHOD_DATA", connector_status="issued",
                reference=reference, expires_at=None)
            pending.append(await producer.send(TOPICS.requested, orjson.dumps(request),
                                               key=key.encode()))
            pending.append(await producer.send(TOPICS.created, events.encode(created),
                                               key=key.encode()))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def _seed(sim: RazorpaySimulatorProcess, links: list[tuple[str, str, int]],
          at: int) -> list[str]:
    ids: list[str] = []
    with httpx.Client(base_url=sim.url, timeout=120) as client:
        for start in range(0, len(links), 10_000):  # under aiohttp's 1 MB body limit
            chunk = [[ref, amount, at] for _, ref, amount in links[start:start + 10_000]]
            ids += client.post("/_sim/links/seed", content=orjson.dumps({"links": chunk})).json()["ids"]
    return ids


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_size(keys: int, workdir: Path) -> dict[str, Any]:
    run = f"sc{keys}"
    with broker_from_environment(workdir / f"kafka-{keys}") as broker, \
            RazorpaySimulatorProcess(latency_ms=0, jitter_ms=0) as sim:
        bootstrap = broker.bootstrap_servers
        asyncio.run(create_topics(bootstrap, 8))
        since = datetime.now(UTC)
        links = _links(keys, run)
        t = time.monotonic()
        ids = _seed(sim, links, int(since.timestamp()) + 1)
        seeded_s = time.monotonic() - t
        t = time.monotonic()
        asyncio.run(_produce(bootstrap, links, ids, run))
        produced_s = time.monotonic() - t
        until = datetime.now(UTC)
        print(f"{keys} keys: produced {2 * keys} records in {produced_s:.0f}s, seeded the "
              f"simulator in {seeded_s:.0f}s; reconciling…", flush=True)
        provider = PROVIDERS["razorpay"]
        env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, provider.base_url_env: sim.url,
               "PAYOUT_CREDENTIALS": orjson.dumps({"*": {"razorpay": provider.dev_account}}
                                                  ).decode(),
               "PAYOUT_TOPIC_PARTITIONS": "8", "PATH": "/usr/bin:/bin"}
        out = workdir / f"report-{keys}"
        join = out / ".facts.sqlite"
        largest = [0]
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams", "reconcile",
             "--since", since.isoformat(), "--until", until.isoformat(), "--grace", "0",
             "--rate", "10000", "--no-progress", "--out", str(out)],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        samples: list[tuple[float, float]] = []  # (seconds in, RSS MB) of the process
        began = time.monotonic()
        while proc.poll() is None:
            if join.exists():
                largest[0] = max(largest[0], join.stat().st_size)
            rss = _rss_mb(proc.pid)
            if rss is not None:
                samples.append((time.monotonic() - began, rss))
            time.sleep(0.5)
        stdout, stderr = proc.communicate()
        report = orjson.loads((out / "reconcile.json").read_bytes())
        phases = report["phases"]
        provider_row = next(c for c in report["providers"] if c["provider"] == "razorpay")
        ok = report["classes"]["matched"] == keys and report["links"] == keys
        print(stdout.strip(), flush=True)
        if proc.returncode not in (0,) or not ok:
            print(stderr[-3000:], file=sys.stderr)
        return {
            "keys": keys, "records": sum(report["records_read"].values()),
            "wall_s": report["seconds"],
            "read_s": sum(v["seconds"] for k, v in phases.items() if k.startswith("reading")),
            "list_s": phases.get("listing provider windows", {}).get("seconds", 0.0),
            "pages": provider_row["pages"],
            "classify_s": phases.get("classifying", {}).get("seconds", 0.0),
            "phases": phases,
            "rss_mb": report["peak_rss_mb"],
            "join_mb": largest[0] / 1e6, "verdict": "PASS" if ok else "FAIL",
            "rss_samples": samples,
            "line": stdout.strip().splitlines()[0] if stdout.strip() else "",
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args(argv)
    m = machine()
    rows = []
    with tempfile.TemporaryDirectory(prefix="reconcile-scale-") as tmp:
        for keys in args.keys:
            result = run_size(keys, Path(tmp))
            rows.append(result)
            print(f"reconcile at {keys} keys: {result['verdict']}: {result['wall_s']:.1f}s "
                  f"(read {result['read_s']:.1f}s, list {result['list_s']:.1f}s in "
                  f"{result['pages']} pages, classify {result['classify_s']:.1f}s), peak RSS "
                  f"{result['rss_mb']:.0f} MB, join {result['join_mb']:.0f} MB", flush=True)
            print("  peak RSS MB after each phase: " + ", ".join(
                f"{name} {v['peak_rss_mb']}" for name, v in result["phases"].items()))
            top = sorted(result["rss_samples"], key=lambda s: -s[1])[:3]
            print("  highest RSS samples (s in, MB): " + ", ".join(
                f"{t:.0f}s {mb:.0f}" for t, mb in top))
            if not args.no_doc:
                stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
                add_table_row(DOC, (
                    f"| {stamp} | `{git_commit()}` | {m['nproc']}× {m['cpu'][:20]}, load "
                    f"{m['load_avg_1m_at_end']} | {keys} | {result['records']} | "
                    f"{result['wall_s']:.1f} | {result['read_s']:.1f} | {result['list_s']:.1f} "
                    f"({result['pages']}) | {result['classify_s']:.1f} | {result['rss_mb']:.0f} | "
                    f"{result['join_mb']:.0f} | {result['verdict']} |"), TABLE_START, SECTION)
    return 0 if all(r["verdict"] == "PASS" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
