"""The chaos scenario, small enough for every test run, and two workers losing one.

Each test gets its own broker because the scenario stops and restarts Kafka.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.connectors.registry import PROVIDERS
from streams.devkit.broker import Broker, broker_from_environment
from streams.devkit.chaos import ChaosConfig, run
from streams.devkit.sims.fleet import SimulatorFleet

pytestmark = pytest.mark.integration
FAULTS = ChaosConfig().faults


@pytest.fixture()
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    with broker_from_environment(tmp_path / "kafka") as broker:
        yield broker


@pytest.fixture()
def faulty_simulator() -> Iterator[SimulatorFleet]:
    with SimulatorFleet(latency_ms=40, jitter_ms=20, hang_ms=3000, seed=11,
                        faults={p: FAULTS for p in PROVIDERS},
                        options={"cashfree": {"token_ttl_s": 20},
                                 "revolut": {"honour_request_id": False}}) as fleet:
        yield fleet


async def test_small_chaos_run_loses_and_duplicates_nothing(own_broker, faulty_simulator,
                                                            tmp_path) -> None:
    cfg = ChaosConfig(requests=800, kills=5, kafka_restarts=1, produce_seconds=15, seed=3)
    report = await run(cfg, own_broker, faulty_simulator, tmp_path)
    assert len(report.answered_at_kills) == 5
    assert min(report.answered_at_kills) < cfg.requests  # kills landed mid-run
    assert report.lost == [] and report.duplicate_links == [] and report.unaccounted == []
    assert report.false_failures == []
    assert report.poison_injected == report.poison_accounted == 4 and report.stalls == []
    assert report.one_outcome == sum(report.inputs.values()) and report.ok


async def test_two_workers_one_dies_survivor_takes_over(own_broker, faulty_simulator,
                                                        tmp_path) -> None:
    cfg = ChaosConfig(requests=800, workers=2, kills=1, restart_killed=False,
                      kafka_restarts=0, standby_replicas=1, produce_seconds=15, seed=5)
    report = await run(cfg, own_broker, faulty_simulator, tmp_path)
    [answered_at_kill] = report.answered_at_kills
    assert answered_at_kill < cfg.requests  # the survivor finished the victim's work
    assert report.lost == [] and report.duplicate_links == [] and report.unaccounted == []
    assert report.one_outcome == sum(report.inputs.values()) and report.ok
