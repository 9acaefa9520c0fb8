"""Records lost between Kafka and the agent are fetched again, on a real broker.

Faust lost records this way around rebalances (streams/delivery.py has the story); the
worker here loses two on purpose (PAYOUT_FAULT_LOSE_DELIVERIES): one in the middle of
a partition, revealed by the next offset, and the last one of another partition, which
nothing after it reveals.
"""
from __future__ import annotations

from collections import Counter

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.connectors.base import link_reference
from streams.devkit.harness import TOPICS, OutcomeReader, WorkerProcess, produce
from streams.devkit.traffic import key_of, valid_request
from streams.partitioning import home_partition
from tests.integration.conftest import PARTITIONS

pytestmark = pytest.mark.integration
DEADLINE_S = 120


async def end_offsets(bootstrap: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(TOPICS.requested, p) for p in range(PARTITIONS)]
        return {tp.partition: o for tp, o in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def test_lost_deliveries_are_fetched_again_and_settled_once(broker, simulator, tmp_path,
                                                                  run_id) -> None:
    requests = [valid_request(n, run=run_id) for n in range(60)]
    keys = [key_of(r).decode() for r in requests]
    per_partition = Counter(home_partition(k, PARTITIONS) for k in keys)
    middle_p, tail_p = [p for p, n in per_partition.most_common(2)]
    start = await end_offsets(broker.bootstrap_servers)
    middle = start[middle_p] + per_partition[middle_p] // 2
    tail = start[tail_p] + per_partition[tail_p] - 1
    lose = f"{TOPICS.requested}/{middle_p}/{middle},{TOPICS.requested}/{tail_p}/{tail}"

    worker = WorkerProcess(bootstrap=broker.bootstrap_servers, provider_url=simulator.url,
                           data_dir=tmp_path / "data", log_path=tmp_path / "worker.log",
                           app_id=f"holes-{run_id}", partitions=PARTITIONS,
                           extra_env={"PAYOUT_FAULT_LOSE_DELIVERIES": lose})
    try:
        async with OutcomeReader(broker.bootstrap_servers) as reader:
            await produce(broker.bootstrap_servers,
                          [(key_of(r), orjson.dumps(r)) for r in requests])
            worker.start()
            missing = await reader.wait_for(keys, DEADLINE_S)
            assert missing == set(), worker.log_tail(40)
            outcomes = {k: reader.outcomes.for_key(k) for k in keys}
        log = worker.log_path.read_text()
    finally:
        worker.stop()
    assert log.count("fault injection: losing") == 2  # the fault really happened
    assert f"got offset {middle + 1} but {middle} was never delivered" in log
    assert f"offsets from {tail} never reached the agent" in log
    for key in keys:
        assert {e["event_type"] for e in outcomes[key]} == {TOPICS.created}, key
        assert len({e["event_id"] for e in outcomes[key]}) == 1, key
    by_receipt = simulator.ledger()["by_receipt"]
    assert all(len(by_receipt.get(link_reference(k), [])) == 1 for k in keys)
