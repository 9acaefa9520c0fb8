"""Worker restarts: the table comes back from its changelog, and no link is made twice."""
from __future__ import annotations

import shutil
from collections import Counter

import orjson
import pytest

from streams import events, lifecycle
from streams.connectors.base import link_reference
from streams.devkit.harness import TOPICS, OutcomeReader, produce
from streams.devkit.traffic import key_of, valid_request
from streams.partitioning import home_partition
from tests.integration.conftest import PARTITIONS, new_worker

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


async def test_recovery_reads_another_owners_records_between_this_workers_writes(
        broker, simulator, tmp_path, run_id) -> None:
    """Chaos seed 190594487: a paused worker's late table write landed after the records
    the new owner wrote meanwhile; Faust moved the paused worker's persisted offset to
    its own write, so when the partition came back, recovery started past the new
    owner's records and the worker created those links a second time.

    Here the other owner's record is written straight into the changelog between two
    of the worker's own writes; after a restart, its link must be found, not created.
    """
    app_id = f"interleaved-{run_id}"
    worker = new_worker(broker, simulator, tmp_path, app_id=app_id)
    candidates = [valid_request(n, run=run_id) for n in range(64)]
    partition = home_partition(key_of(candidates[0]).decode(), PARTITIONS)
    # Three links whose records share one changelog partition.
    before, elsewhere, after = [r for r in candidates
                                if home_partition(key_of(r).decode(), PARTITIONS) == partition][:3]
    keys = {name: key_of(r).decode() for name, r in
            (("before", before), ("elsewhere", elsewhere), ("after", after))}
    other_owners_outcome = events.created_event(
        elsewhere, connector="razorpay", connector_payout_id="plink_OtherOwner01",
        url="https://rzp.io/i/other-owner", payout_status="issued",
        connector_status="issued", reference=link_reference(keys["elsewhere"]),
        expires_at=None)
    other_owners_record = lifecycle.LinkRecord(
        link_key=keys["elsewhere"], status=lifecycle.LinkStatus.CREATED,
        fingerprint=events.request_fingerprint(elsewhere), connector="razorpay",
        reference=link_reference(keys["elsewhere"]),
        source=lifecycle.SourceOffset(TOPICS.requested, partition, 0),
        outcome=other_owners_outcome, outcome_published=True, provider_calls=1,
        owner_epoch=1_000)
    changelog = f"{app_id}-payout-links-changelog"

    async def send(request: dict) -> None:
        await produce(broker.bootstrap_servers, [(key_of(request), orjson.dumps(request))])

    try:
        worker.start()
        async with OutcomeReader(broker.bootstrap_servers) as reader:
            await send(before)
            assert await reader.wait_for([keys["before"]], DEADLINE_S) == set()
            await produce(broker.bootstrap_servers,
                          # Faust's table keys are JSON strings in the changelog.
                          [(orjson.dumps(keys["elsewhere"]), other_owners_record.to_bytes(1_000))],
                          topic=changelog, partition_of=lambda _key: partition)
            await send(after)  # this worker's write lands after the other owner's
            assert await reader.wait_for([keys["after"]], DEADLINE_S) == set()

            worker.stop()
            worker.start()  # the same local store: recovery starts at its persisted offset
            await send(elsewhere)
            assert await reader.wait_for([keys["elsewhere"]], DEADLINE_S) == set()
            told = reader.outcomes.for_key(keys["elsewhere"])
    finally:
        worker.stop()
    assert provider_links(simulator, [keys["elsewhere"]])[keys["elsewhere"]] == 0
    assert [e["connector_payout_id"] for e in told] == ["plink_OtherOwner01"]
    assert told[0] == other_owners_outcome
