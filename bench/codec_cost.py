"""What each Kafka codec costs on the batches a worker really writes, without the noise.

A worker's CPU per link moves by ±10 % between runs on a shared machine, more than any
codec costs, so the end-to-end comparison (``bench.run --compression none,lz4,…``) is
backed by this one: it takes the *uncompressed* batches a ``none`` worker stored at the
broker (its changelog and its outcomes, as the broker's segment files hold them, batch
sizes included), re-encodes each with every codec through aiokafka's own batch builder
(what the worker's producer runs), decodes them as a consumer would, and reports CPU µs
per record (best of several repeats, ``time.process_time``) and bytes per record.

``python -m bench.codec_cost <partition dir or segment file>...`` (a broker's
``log.dirs`` entries, e.g. ``…/payout-link-created-0``).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords

CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
Record = tuple[int, int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]


def uncompressed_batches(segments: Iterable[Path]) -> list[list[Record]]:
    """The records of every uncompressed, non-control batch in the segment files."""
    batches: list[list[Record]] = []
    for segment in segments:
        records = MemoryRecords(segment.read_bytes())
        while (batch := records.next_batch()) is not None:
            if batch.is_control_batch or batch.compression_type != 0:
                continue
            batches.append([(i, r.timestamp, r.key, r.value, list(r.headers))
                            for i, r in enumerate(batch)])
    return batches


def segment_files(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        out += sorted(path.glob("*.log")) if path.is_dir() else [path]
    return out


def encode(batch: Sequence[Record], codec: int) -> bytes:
    """One batch as the producer builds it (aiokafka's C builder when compiled)."""
    builder = DefaultRecordBatchBuilder(2, codec, 0, -1, -1, 0, 1 << 24)
    for offset, timestamp, key, value, headers in batch:
        builder.append(offset, timestamp, key, value, headers)
    return bytes(builder.build())


def decode(encoded: bytes) -> int:
    """Read every record back, as a consumer does; returns the record count."""
    return sum(1 for _ in DefaultRecordBatch(encoded))


def best_cpu_s(work: Any, repeats: int, min_s: float = 0.3) -> float:
    """CPU seconds of one ``work()``: the best of ``repeats``, each looped ≥ ``min_s``."""
    best = float("inf")
    for _ in range(repeats):
        loops, t0 = 0, time.process_time()
        while True:
            work()
            loops += 1
            spent = time.process_time() - t0
            if spent >= min_s:
                break
        best = min(best, spent / loops)
    return best


def first_records(batches: list[list[Record]], limit: int) -> list[list[Record]]:
    """Whole batches from the start, until they hold at least ``limit`` records."""
    out, n = [], 0
    for batch in batches:
        if n >= limit:
            break
        out.append(batch)
        n += len(batch)
    return out


def measure(batches: list[list[Record]], codecs: Sequence[str] = tuple(CODEC_IDS),
            repeats: int = 5) -> dict[str, Any]:
    """Per codec: encode/decode CPU µs per record, bytes per record, ratios to ``none``."""
    n = sum(len(b) for b in batches)
    if not n:
        raise ValueError("no uncompressed batches to measure")
    out: dict[str, Any] = {
        "batches": len(batches), "records": n,
        "records_per_batch": {"median": statistics.median(len(b) for b in batches),
                              "mean": round(n / len(batches), 2),
                              "max": max(len(b) for b in batches)},
        "codecs": {},
    }
    for name in ("none", *[c for c in codecs if c != "none"]):
        codec = CODEC_IDS[name]
        encoded = [encode(b, codec) for b in batches]
        # Both lambdas run to completion inside best_cpu_s, within this iteration.
        enc_s = best_cpu_s(lambda: [encode(b, codec) for b in batches], repeats)  # noqa: B023
        dec_s = best_cpu_s(lambda: [decode(e) for e in encoded], repeats)  # noqa: B023
        out["codecs"][name] = {"encode_us_per_record": round(enc_s / n * 1e6, 2),
                               "decode_us_per_record": round(dec_s / n * 1e6, 2),
                               "bytes_per_record": round(sum(map(len, encoded)) / n, 1)}
    base = out["codecs"]["none"]
    for c in out["codecs"].values():
        c["extra_encode_us_per_record"] = round(c["encode_us_per_record"]
                                                - base["encode_us_per_record"], 2)
        c["bytes_ratio_to_none"] = round(c["bytes_per_record"] / base["bytes_per_record"], 3)
    return out


def table(result: dict[str, Any]) -> str:
    lines = ["| codec | encode µs/record (extra over none) | decode µs/record | bytes/record (× none) |",
             "|---|---|---|---|"]
    for name, c in result["codecs"].items():
        lines.append(f"| {name} | {c['encode_us_per_record']:.1f} "
                     f"({c['extra_encode_us_per_record']:+.1f}) | {c['decode_us_per_record']:.1f} | "
                     f"{c['bytes_per_record']:.0f} ({c['bytes_ratio_to_none']:.2f}×) |")
    rpb = result["records_per_batch"]
    lines.append(f"\n{result['records']} records in {result['batches']} batches "
                 f"(records per batch: median {rpb['median']}, mean {rpb['mean']}, max {rpb['max']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.codec_cost", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", type=Path, help="partition directories or .log files")
    p.add_argument("--codecs", default="none,gzip,snappy,lz4,zstd")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--records", type=int, default=20_000, help="measure at most about this many")
    args = p.parse_args(argv)
    batches = first_records(uncompressed_batches(segment_files(args.paths)), args.records)
    if not batches:
        print("no uncompressed batches in the given segments", file=sys.stderr)
        return 2
    print(table(measure(batches, args.codecs.split(","), args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
