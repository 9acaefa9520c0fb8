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
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

pytestmark = pytest.mark.integration
TOPIC = "payout-link-requested"


def producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=3000,
                            metadata_max_age_ms=1000)


async def test_a_cut_client_times_out_while_a_plain_one_goes_on(broker) -> None:
    if not getattr(broker, "cuttable_bootstrap", ""):
        pytest.skip("a broker run by someone else has no cuttable listener")
    key = uuid.uuid4().hex.encode()
    cut, plain = producer(broker.cuttable_bootstrap), producer(broker.bootstrap_servers)
    await cut.start()
    await plain.start()
    try:
        await cut.send_and_wait(TOPIC, b"before", key=key)
        proxy_port = int(broker.cuttable_bootstrap.rsplit(":", 1)[1])
        assert {b.port for b in cut.client.cluster.brokers()} == {proxy_port}
        broker.proxy.cut("blackhole")
        try:
            with pytest.raises(KafkaError):
                await asyncio.wait_for(cut.send_and_wait(TOPIC, b"during", key=key), 30)
            await plain.send_and_wait(TOPIC, b"other", key=key)  # not cut off
        finally:
            broker.proxy.restore()
        deadline = time.monotonic() + 60
        while True:  # the cut client reconnects by itself once the partition heals
            try:
                await cut.send_and_wait(TOPIC, b"after", key=key)
                break
            except KafkaError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
    finally:
        await cut.stop()
        await plain.stop()
