"""Liveness and readiness, decided from plain facts (pure; the web view gathers them).

Live: the event loop ran within the bound (a loop blocked longer is not serving its
partitions: a supervisor should restart it), the request agent's actors run, and the
pipeline has not crashed. Ready: the pipeline started, no rebalance or table recovery
is under way (a lookup would miss records, a request would wait), and this worker owns
request partitions. A worker in a group with more members than partitions owns none:
it is live but not ready, which is the truth.
"""
from __future__ import annotations

from dataclasses import dataclass

LOOP_BLOCK_BOUND_S = 10.0
LOOP_TICK_S = 0.5


@dataclass(frozen=True)
class Facts:
    now: float
    last_loop_tick: float
    agent_running: bool
    pipeline_crashed: bool
    pipeline_started: bool
    rebalancing: bool
    recovering: bool
    owned_request_partitions: int


@dataclass(frozen=True)
class Verdict:
    ok: bool
    checks: dict[str, object]

    def body(self) -> dict[str, object]:
        return {"status": "ok" if self.ok else "fail", "checks": self.checks}


def liveness(f: Facts, bound_s: float = LOOP_BLOCK_BOUND_S) -> Verdict:
    loop_lag = max(0.0, f.now - f.last_loop_tick - LOOP_TICK_S)
    checks: dict[str, object] = {
        "event_loop_lag_s": round(loop_lag, 3),
        "event_loop": "ok" if loop_lag <= bound_s else f"blocked over {bound_s:g}s",
        "agent": "running" if f.agent_running else "dead",
        "pipeline": "crashed" if f.pipeline_crashed else "ok",
    }
    return Verdict(loop_lag <= bound_s and f.agent_running and not f.pipeline_crashed, checks)


def readiness(f: Facts) -> Verdict:
    checks: dict[str, object] = {
        "pipeline": "started" if f.pipeline_started else "starting",
        "rebalance": "in progress" if f.rebalancing else "none",
        "tables": "recovering" if f.recovering else "recovered",
        "request_partitions": f.owned_request_partitions,
    }
    ok = f.pipeline_started and not f.rebalancing and not f.recovering \
        and f.owned_request_partitions > 0
    return Verdict(ok, checks)
