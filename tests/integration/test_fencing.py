"""A paused owner must never make a second link (issue 10): SIGSTOP on a real worker.

Worker A owns every partition and has creates in flight and queued behind its rate
limit when it is frozen (SIGSTOP: what a long GC or VM pause looks like from outside).
Worker B joins, takes the partitions over once A's session expires, and settles every
request. Then A is resumed. The simulator honours no idempotency key (Razorpay's link
API documents none), so anything A sends after resuming is a second link.

With fencing (streams.ownership) A's lease has lapsed and nothing of its queue leaves
the worker; with the test-only ``PAYOUT_FENCING=off`` the same run makes second links,
which shows the test can fail. Sized for 2 cores: 4 partitions, 80 requests.
"""
from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Iterator

import orjson
import pytest

from streams.connectors.base import link_reference
from streams.devkit.harness import (
    OUTCOME_TOPICS,
    OutcomeReader,
    WorkerProcess,
    outcome_key,
    produce,
)
from streams.devkit.sims.razorpay import RazorpaySimulatorProcess
from streams.devkit.traffic import key_of, valid_request
from tests.integration.conftest import PARTITIONS

pytestmark = pytest.mark.integration
REQUESTS = 80
DEADLINE_S = 180
# After A is back in the group: longer than a provider call may take (connect + read
# timeouts below), so a send A made on waking has surely reached the provider.
OBSERVE_AFTER_REJOIN_S = 8
# A short session keeps the test short; the lease, the handover wait and the call
# window are derived from it and from the timeouts (streams.ownership.LeaseTerms).
WORKER_ENV = {
    "PAYOUT_SESSION_TIMEOUT_S": "6",
    "PAYOUT_CONNECT_TIMEOUT_S": "1",
    "PAYOUT_READ_TIMEOUT_S": "5",
    "PAYOUT_PROVIDER_RATE_PER_S": "10",  # A's creates queue behind its limiter
    "PAYOUT_SHUTDOWN_DRAIN_S": "1",
}


@pytest.fixture()
def slow_provider() -> Iterator[RazorpaySimulatorProcess]:
    with RazorpaySimulatorProcess(latency_ms=1500, jitter_ms=200,
                                  honour_idempotency_header=False) as sim:
        yield sim


def worker(broker, sim, tmp_path, name: str, app_id: str, fencing: bool) -> WorkerProcess:
    return WorkerProcess(bootstrap=broker.bootstrap_servers, provider_url=sim.url,
                         data_dir=tmp_path / name / "data", log_path=tmp_path / name / "w.log",
                         app_id=app_id, partitions=PARTITIONS,
                         extra_env={**WORKER_ENV, "PAYOUT_FENCING": "on" if fencing else "off"})


def links_per_key(sim: RazorpaySimulatorProcess, keys: list[str]) -> Counter[str]:
    by_receipt = sim.ledger()["by_receipt"]
    return Counter({k: len(by_receipt.get(link_reference(k), [])) for k in keys})


async def until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.2)


async def pause_owner_with_work_queued(broker, sim, tmp_path, run_id: str,
                                       fencing: bool) -> tuple[Counter[str], dict[str, list[dict]], str]:
    """Returns links per key at the provider, outcome ids with two contents, A's log."""
    app_id = f"fencing-{run_id}"
    a = worker(broker, sim, tmp_path, "a", app_id, fencing)
    b = worker(broker, sim, tmp_path, "b", app_id, fencing)
    requests = [valid_request(n, run=run_id) for n in range(REQUESTS)]
    keys = [key_of(r).decode() for r in requests]
    references = {link_reference(k) for k in keys}

    def created_at_provider() -> int:
        return sum(1 for r in sim.ledger()["by_receipt"] if r in references)

    paused = False
    try:
        a.start()
        async with OutcomeReader(broker.bootstrap_servers) as reader:
            await produce(broker.bootstrap_servers,
                          [(key_of(r), orjson.dumps(r)) for r in requests])
            # Some of A's creates reached the provider, the rest are in flight or queued.
            await until(lambda: created_at_provider() >= 5, 60, "A's first creates")
            assert a.pid is not None
            joins = a.run_log().count("Joined group")
            os.kill(a.pid, signal.SIGSTOP)
            paused = True
            b.start()  # B joins; it gets A's partitions once A's session expires
            assert await reader.wait_for(keys, DEADLINE_S) == set(), "B settled not all"
            # B's creates are done: anything A adds from now on is a second link.
            os.kill(a.pid, signal.SIGCONT)
            paused = False
            # A was dropped from the group while frozen and rejoins; whatever it had
            # queued goes out (or is fenced) long before that, and the observation
            # window after the rejoin covers its slowest possible call.
            await until(lambda: a.run_log().count("Joined group") > joins, 90,
                        "A to rejoin the group")
            window_ends = time.monotonic() + OBSERVE_AFTER_REJOIN_S
            await until(lambda: time.monotonic() > window_ends, OBSERVE_AFTER_REJOIN_S + 5,
                        "the observation window")
            wanted = set(keys)
            contents: dict[str, set[bytes]] = defaultdict(set)
            for topic in OUTCOME_TOPICS:
                for event in reader.outcomes.by_topic[topic]:
                    if outcome_key(event) in wanted:
                        contents[event["event_id"]].add(
                            orjson.dumps(event, option=orjson.OPT_SORT_KEYS))
            clashing = {eid: [orjson.loads(b) for b in bodies]
                        for eid, bodies in contents.items() if len(bodies) > 1}
            return links_per_key(sim, keys), clashing, a.run_log()
    finally:
        if paused and a.pid is not None:
            os.kill(a.pid, signal.SIGCONT)
        b.stop()
        a.stop()


async def test_a_paused_owner_never_makes_a_second_link(broker, slow_provider, tmp_path,
                                                        run_id) -> None:
    links, clashing, a_log = await pause_owner_with_work_queued(
        broker, slow_provider, tmp_path, run_id, fencing=True)
    duplicates = {k: n for k, n in links.items() if n != 1}
    assert duplicates == {}, f"{len(duplicates)} keys with != 1 link: {duplicates}"
    differing = {eid: sorted(k for k in versions[0] if any(v.get(k) != versions[0].get(k)
                                                          for v in versions))
                 for eid, versions in clashing.items()}
    assert differing == {}, f"one event_id, different content (fields): {differing}"
    assert "fenced:" in a_log or "rebalance: abandoned" in a_log  # A had work to give up


async def test_without_fencing_the_same_pause_makes_second_links(broker, slow_provider,
                                                                 tmp_path, run_id) -> None:
    """The control: the test above fails when fencing is off."""
    links, _, _ = await pause_owner_with_work_queued(
        broker, slow_provider, tmp_path, run_id, fencing=False)
    assert sum(1 for n in links.values() if n > 1) > 0
