"""Two baseline Faust apps, measured exactly like the real worker (requests in, outcomes out).

``python -m bench.baselines bare worker``
    Faust's ceiling on this machine: one agent over a raw-bytes topic that writes the
    record into a RocksDB table and sends one output record per event. No parsing, no
    HTTP. Whatever the real worker does beyond this costs throughput.

``python -m bench.baselines records worker``
    The Kafka records every link costs under DESIGN.md's money-safety rules, and nothing
    else: per event the ``creating`` table write (durable before any provider call,
    so a crash never leaves a link no record remembers), one outcome record, and the
    settled table write, each of a real record's size
    (~770 bytes: docs/benchmarks.md, "Producer compression"). No parsing, no HTTP, no
    decisions. The worker can never beat this; issue 9's floor (0.45 x bare) read against
    it says how little the rest of a link (provider call, validation, events) may cost.

``python -m bench.baselines naive worker``
    What a first-try agent would do: one event at a time, parse it, ``await`` one httpx
    POST to the provider's create endpoint, then send the outcome. Bounded by the
    provider's latency (~10 links/s at 100 ms).

Both are configured from the environment, like the real worker:

=======================  ===========================================================
``KAFKA_BOOTSTRAP_SERVERS``  broker
``BENCH_APP_ID``         Faust app id (= consumer group; the table changelog is named after it)
``BENCH_IN_TOPIC``       requests topic (payout-link-requested records)
``BENCH_OUT_TOPIC``      outcomes topic (keyed by the request's key)
``BENCH_PARTITIONS``     partitions of both topics and the table
``BENCH_DATA_DIR``       Faust data dir (RocksDB)
``BENCH_WEB_PORT``       Faust web port
``RAZORPAY_BASE_URL``    provider (naive only)
=======================  ===========================================================
"""
from __future__ import annotations

import os
import sys
from typing import Any

import faust
import orjson

KIND = sys.argv.pop(1) if len(sys.argv) > 1 and sys.argv[1] in ("bare", "records", "naive") else "bare"

env = os.environ
PARTITIONS = int(env.get("BENCH_PARTITIONS", "8"))

app = faust.App(
    env.get("BENCH_APP_ID", f"bench-{KIND}"),
    broker=f"kafka://{env.get('KAFKA_BOOTSTRAP_SERVERS', '127.0.0.1:9092')}",
    store="rocksdb://",
    datadir=env.get("BENCH_DATA_DIR", f"./var/bench-{KIND}"),
    topic_partitions=PARTITIONS,
    topic_replication_factor=1,
    producer_acks=-1,  # as the real worker
    consumer_auto_offset_reset="earliest",
    web_port=int(env.get("BENCH_WEB_PORT", "6067")),
    web_host="127.0.0.1",
    key_serializer="raw",
    value_serializer="raw",
)
requests = app.topic(env.get("BENCH_IN_TOPIC", f"bench-{KIND}-in"), key_type=bytes,
                     value_type=bytes, partitions=PARTITIONS)
outcomes = app.topic(env.get("BENCH_OUT_TOPIC", f"bench-{KIND}-out"), key_type=bytes,
                     value_type=bytes, partitions=PARTITIONS)
table = app.Table("bench-links", key_type=bytes, value_type=bytes, partitions=PARTITIONS)


if KIND == "bare":
    @app.agent(requests, name="bench-bare")
    async def bare(stream: Any) -> None:
        async for event in stream.events():
            key, value = event.key, event.value
            table[key] = value                       # a table write (changelog record)
            await outcomes.send(key=key, value=b'{"ok":true}')  # and one output record

elif KIND == "records":
    RECORD = b"r" * 770  # the size of a creating record, an outcome, a settled record

    @app.agent(requests, name="bench-records")
    async def records(stream: Any) -> None:
        async for event in stream.events():
            key = event.key
            table[key] = RECORD                      # `creating`, before the provider call
            await outcomes.send(key=key, value=RECORD)  # payout-link-created
            table[key] = RECORD                      # settled, outcome published

else:
    import httpx

    from streams.config import load_settings
    from streams.connectors.base import link_reference
    from streams.connectors.razorpay import PROVIDER

    @app.agent(requests, name="bench-naive")
    async def naive(stream: Any) -> None:
        settings = load_settings()
        account = settings.account("*", PROVIDER.name)
        assert account is not None
        async with httpx.AsyncClient(base_url=settings.base_urls[PROVIDER.name],
                                     headers={"Authorization": account.basic_header},
                                     timeout=10.0) as client:
            async for event in stream.events():
                request = orjson.loads(event.value)
                key = event.key.decode()
                call = PROVIDER.prepare(request, link_reference(key), account)
                response = await client.request(call.method, call.path, json=call.json,
                                                headers=call.headers)
                link = response.json()
                table[event.key] = orjson.dumps({"status": "created", "id": link.get("id")})
                await outcomes.send(key=event.key, value=orjson.dumps(
                    {"link_key": key, "status": response.status_code, "url": link.get("short_url")}))


if __name__ == "__main__":
    app.main()
