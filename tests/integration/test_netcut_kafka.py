"""The launcher's cuttable listener cuts one Kafka client off and no other (issue 10).

A client bootstrapped at ``broker.cuttable_bootstrap`` is told the proxy's address for
every broker connection (Kafka advertises per listener), so cutting the proxy cuts it
alone; a client on the plain listener goes on. Chaos's fencing phase relies on this.
"""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

pytestmark = pytest.mark.integration


def producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=3000,
                            metadata_max_age_ms=1000)


async def test_a_cut_client_times_out_while_a_plain_one_goes_on(broker) -> None:
    if not getattr(broker, "cuttable_bootstrap", ""):
        pytest.skip("a broker run by someone else has no cuttable listener")
    # A topic of its own (auto-created, one partition), so reading it back is exact.
    topic, key = f"netcut-{uuid.uuid4().hex[:8]}", b"k"
    cut, plain = producer(broker.cuttable_bootstrap), producer(broker.bootstrap_servers)
    await cut.start()
    await plain.start()
    try:
        await cut.send_and_wait(topic, b"before", key=key)
        proxy_port = int(broker.cuttable_bootstrap.rsplit(":", 1)[1])
        assert {b.port for b in cut.client.cluster.brokers()} == {proxy_port}
        broker.proxy.cut("blackhole")
        try:
            with pytest.raises(KafkaError):
                await asyncio.wait_for(cut.send_and_wait(topic, b"during", key=key), 30)
            await plain.send_and_wait(topic, b"other", key=key)  # not cut off
        finally:
            broker.proxy.restore()
        deadline = time.monotonic() + 60
        while True:  # the cut client reconnects by itself once the partition heals
            try:
                await cut.send_and_wait(topic, b"after", key=key)
                break
            except KafkaError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        # A consumer through the proxy reads back what both producers wrote; the send
        # that timed out in the blackhole never reached the broker.
        assert await read_all(broker.cuttable_bootstrap, topic, 3) == [b"before", b"other", b"after"]
    finally:
        await cut.stop()
        await plain.stop()


async def read_all(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        values: list[bytes] = []
        deadline = time.monotonic() + 20
        while await consumer.position(tp) < end and time.monotonic() < deadline:
            for records in (await consumer.getmany(tp, timeout_ms=500)).values():
                values += [r.value for r in records if r.value is not None]
        assert end == count, values
        return values
    finally:
        await consumer.stop()
