"""The devkit broker is a real Kafka whose data survives a restart (chaos tests rely on it)."""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.devkit.broker import Broker, broker_from_environment

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of our own (not the session one): this test restarts it."""
    broker = broker_from_environment(tmp_path)
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


async def read_first(bootstrap: str, topic: str) -> tuple[bytes | None, bytes | None]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
        return record.key, record.value
    finally:
        await consumer.stop()


@pytest.mark.asyncio
@pytest.mark.timeout(300)
async def test_message_survives_restart(fresh_broker: Broker) -> None:
    bootstrap = fresh_broker.bootstrap_servers
    topic = f"devkit-broker-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"payout-1", key=b"link-1")
    finally:
        await producer.stop()
    assert await read_first(bootstrap, topic) == (b"link-1", b"payout-1")

    # restart() blocks until the broker answers again: keep the event loop free.
    await asyncio.to_thread(fresh_broker.restart)
    assert fresh_broker.bootstrap_servers == bootstrap
    assert await read_first(bootstrap, topic) == (b"link-1", b"payout-1")
