"""How throughput grows with partitions and with a second worker process.

``python -m bench.scaleout`` drains the same burst of requests through one or two
workers (one consumer group) on topics with 4, 8 or 16 partitions, against the
simulator at 100 ms, and prints links/s for each layout. Each layout gets fresh
topics (a run id in their names is not possible: topic names are the product's), so
each layout runs on its own broker.
"""
from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from streams.devkit.broker import broker_from_environment
from streams.devkit.harness import OutcomeReader, WorkerProcess, create_topics, produce
from streams.devkit.sims.razorpay import RazorpaySimulatorProcess
from streams.devkit.traffic import key_of, valid_request


async def drain(bootstrap: str, n: int, run: str) -> float:
    requests = [valid_request(i, run=run) for i in range(n)]
    keys = [key_of(r).decode() for r in requests]
    async with OutcomeReader(bootstrap) as reader:
        started = time.monotonic()
        await produce(bootstrap, [(key_of(r), orjson.dumps(r)) for r in requests])
        missing = await reader.wait_for(keys, 600)
        if missing:
            raise RuntimeError(f"{len(missing)} requests unanswered")
        return n / (max(reader.outcomes.arrival.values()) - started)


def measure(partitions: int, workers: int, n: int, latency_ms: float, workdir: Path) -> float:
    run = uuid.uuid4().hex[:8]
    with broker_from_environment(workdir / f"kafka-{run}") as broker, RazorpaySimulatorProcess(
            latency_ms=latency_ms, jitter_ms=20) as sim:
        asyncio.run(create_topics(broker.bootstrap_servers, partitions))
        procs = [WorkerProcess(bootstrap=broker.bootstrap_servers, provider_url=sim.url,
                               data_dir=workdir / f"w{i}-{run}", log_path=workdir / f"w{i}-{run}.log",
                               app_id=f"scale-{run}", partitions=partitions)
                 for i in range(workers)]
        try:
            for p in procs:
                p.start()
            if workers > 1:  # let the group settle on its final assignment first
                asyncio.run(drain(broker.bootstrap_servers, 200, run + "w"))
            return asyncio.run(drain(broker.bootstrap_servers, n, run))
        finally:
            for p in procs:
                p.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--links", type=int, default=20000)
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--layouts", default="4x1,8x1,16x1,8x2",
                        help="partitions x worker processes, comma separated")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="payout-scale-"))
    rows = []
    try:
        for layout in args.layouts.split(","):
            partitions, workers = (int(x) for x in layout.split("x"))
            rate = measure(partitions, workers, args.links, args.latency_ms, workdir)
            rows.append((partitions, workers, rate))
            print(f"{partitions:>3} partitions, {workers} worker(s): {rate:7.1f} links/s",
                  flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n| partitions | worker processes | links/s |\n|---|---|---|")
    for partitions, workers, rate in rows:
        print(f"| {partitions} | {workers} | {rate:.0f} |")


if __name__ == "__main__":
    main()
