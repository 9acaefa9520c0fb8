"""Worker restarts: the table comes back from its changelog, and no link is made twice."""
from __future__ import annotations

import shutil
from collections import Counter

import orjson
import pytest

from streams.connectors.base import link_reference
from streams.devkit.harness import TOPICS, OutcomeReader, produce
from streams.devkit.traffic import key_of, valid_request
from tests.integration.conftest import new_worker

pytestmark = pytest.mark.integration
DEADLINE_S = 120


def provider_links(simulator, keys) -> Counter:
    by_receipt = simulator.ledger()["by_receipt"]
    return Counter({k: len(by_receipt.get(link_reference(k), [])) for k in keys})


async def test_wiped_local_store_is_rebuilt_from_the_changelog(broker, simulator, tmp_path,
                                                               run_id) -> None:
    worker = new_worker(broker, simulator, tmp_path, app_id=f"recovery-{run_id}")
    requests = [valid_request(n, run=run_id) for n in range(50)]
    keys = [key_of(r).decode() for r in requests]
    try:
        worker.start()
        async with OutcomeReader(broker.bootstrap_servers) as reader:
            await produce(broker.bootstrap_servers,
                          [(key_of(r), orjson.dumps(r)) for r in requests])
            assert await reader.wait_for(keys, DEADLINE_S) == set()
            first = {k: reader.outcomes.for_key(k)[0] for k in keys}

            worker.stop()
            shutil.rmtree(worker.data_dir)  # the local RocksDB store is gone
            worker.start()

            # The same requests again, as an upstream replay would send them.
            await produce(broker.bootstrap_servers,
                          [(key_of(r), orjson.dumps(dict(r, event_id=f"replay-{n}")))
                           for n, r in enumerate(requests)])

            async def all_answered_twice() -> bool:
                return all(len(reader.outcomes.for_key(k)) >= 2 for k in keys)

            assert await reader.wait_until(all_answered_twice, DEADLINE_S)
            for key in keys:
                events = reader.outcomes.for_key(key)
                assert all(e == first[key] for e in events), key  # re-published unchanged
    finally:
        worker.stop()
    assert all(e["event_type"] == TOPICS.created for e in first.values())
    assert provider_links(simulator, keys) == Counter({k: 1 for k in keys})


async def test_worker_killed_mid_flight_resumes_without_duplicate_links(broker, simulator,
                                                                       tmp_path, run_id) -> None:
    worker = new_worker(broker, simulator, tmp_path, app_id=f"crash-{run_id}")
    requests = [valid_request(n, run=run_id) for n in range(400)]
    keys = [key_of(r).decode() for r in requests]
    simulator.configure(latency_ms=150, jitter_ms=50)  # keep calls in flight at the kill
    try:
        worker.start()
        async with OutcomeReader(broker.bootstrap_servers) as reader:
            await produce(broker.bootstrap_servers,
                          [(key_of(r), orjson.dumps(r)) for r in requests])

            def settled() -> int:  # this test's keys only: the topics are shared
                return sum(1 for k in keys if k in reader.outcomes.arrival)

            async def some_settled() -> bool:
                return settled() >= 20

            assert await reader.wait_until(some_settled, DEADLINE_S)
            worker.kill()  # SIGKILL: no clean shutdown, calls in flight are lost
            settled_before_kill = settled()
            worker.start()
            missing = await reader.wait_for(keys, DEADLINE_S)
            assert missing == set(), f"{len(missing)} unanswered; worker log:\n{worker.log_tail(80)}"
            outcomes = {k: reader.outcomes.for_key(k) for k in keys}
    finally:
        simulator.configure(latency_ms=5, jitter_ms=5)
        worker.stop()
    assert settled_before_kill < len(keys)  # the kill really interrupted the run
    for key in keys:
        assert {e["event_type"] for e in outcomes[key]} == {TOPICS.created}
        assert len({e["event_id"] for e in outcomes[key]}) == 1, key
    assert provider_links(simulator, keys) == Counter({k: 1 for k in keys})
