"""Poison records on a real broker: no record stops its partition.

Each poison record is followed on its partition by a plain request, and the test
asserts the poison's one outcome (or dead letter, or -- after a provider call -- its
unresolved entry) *and* the follower's outcome: the worker kept consuming. Stages are
made to raise or to kill the process through the test-only ``PAYOUT_FAULTS`` knob,
never by weakening validation. Compression codecs are covered by test_codecs.py.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams import events
from streams.connectors.base import link_reference
from streams.devkit.harness import TOPICS, OutcomeReader, WorkerProcess
from streams.devkit.traffic import key_of, valid_request
from streams.partitioning import home_partition
from tests.integration.conftest import PARTITIONS

pytestmark = pytest.mark.integration
DEADLINE_S = 120

FAULTS = ",".join([
    "raise:parse:px-parse", "raise:validate:px-validate", "raise:route:px-route",
    "raise:transform:px-transform", "raise_once:provider_answer:px-answer1",
    "raise:provider_answer:px-answerX", "raise_once:publish:px-publish",
    "crash:validate:px-crash",
])


@pytest.fixture(scope="module")
def poison_worker(broker, simulator, tmp_path_factory) -> Iterator[WorkerProcess]:
    workdir = tmp_path_factory.mktemp("poison")
    app_id = f"poison-{time.time_ns()}"
    w = WorkerProcess(bootstrap=broker.bootstrap_servers, provider_url=simulator.url,
                      data_dir=workdir / "data", log_path=workdir / "worker.log", app_id=app_id,
                      partitions=PARTITIONS,
                      extra_env={"PAYOUT_FAULTS": FAULTS, "PAYOUT_UNRESOLVED_RETRY_S": "1",
                                 "PAYOUT_UNRESOLVED_RETRY_MAX_S": "4"})
    try:
        w.start()
        yield w
    finally:
        w.stop()


def request(run_id: str, payout_id: str, n: int = 1) -> dict[str, Any]:
    r = valid_request(n, run=run_id)
    r["merchant_payout_id"] = payout_id
    return r


def follower_on(partition: int, run_id: str, tag: str) -> dict[str, Any]:
    """A plain request whose link key lives on ``partition``."""
    for n in range(10_000):
        r = request(run_id, f"{run_id}-{tag}-f{n}", n)
        if home_partition(key_of(r).decode(), PARTITIONS) == partition:
            return r
    raise AssertionError("no follower key found")


async def produce_in_order(bootstrap: str, records: list[tuple[bytes | None, bytes, int]],
                           max_request_size: int = 1_048_576) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                max_request_size=max_request_size, enable_idempotence=True)
    await producer.start()
    try:
        for key, value, partition in records:
            await (await producer.send(TOPICS.requested, value, key=key, partition=partition))
    finally:
        await producer.stop()


async def unresolved_entry(bootstrap: str, app_id: str, key: str,
                           timeout: float) -> dict[str, Any] | None:
    """The link's entry in the unresolved table's changelog, as a new owner would see it."""
    consumer = AIOKafkaConsumer(f"{app_id}-payout-links-unresolved-changelog",
                                bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                metadata_max_age_ms=1000)
    await consumer.start()
    found: dict[str, Any] | None = None
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and found is None:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    if r.key == orjson.dumps(key) and r.value is not None:  # Faust JSON-encodes
                        found = orjson.loads(r.value)
    finally:
        await consumer.stop()
    return found


def links_at_provider(simulator, key: str) -> list[str]:
    return simulator.ledger()["by_receipt"].get(link_reference(key), [])


async def test_each_stage_that_raises_ends_in_one_place_and_the_partition_moves_on(
        broker, simulator, poison_worker, run_id) -> None:
    stages = ["parse", "validate", "route", "transform", "answer1", "answerX", "publish"]
    plan: list[tuple[bytes | None, bytes, int]] = []
    poison: dict[str, dict[str, Any]] = {}
    followers: dict[str, dict[str, Any]] = {}
    for stage in stages:
        r = request(run_id, f"{run_id}-px-{stage}")
        key = key_of(r)
        partition = home_partition(key.decode(), PARTITIONS)
        follower = follower_on(partition, run_id, stage)
        poison[stage], followers[stage] = r, follower
        plan += [(key, orjson.dumps(r), partition),
                 (key_of(follower), orjson.dumps(follower), partition)]
    async with OutcomeReader(broker.bootstrap_servers) as reader:
        await produce_in_order(broker.bootstrap_servers, plan)
        expected = {key_of(f).decode() for f in followers.values()} | {
            key_of(poison[s]).decode() for s in stages if s not in ("parse", "answerX")}
        missing = await reader.wait_for(expected | {key_of(poison["parse"]).decode()}, DEADLINE_S)
        assert missing == set(), f"{missing}\n{poison_worker.log_tail(60)}"
        for follower in followers.values():
            [created] = reader.outcomes.for_key(key_of(follower).decode())
            assert created["event_type"] == TOPICS.created  # the next record was consumed
        [dead] = reader.outcomes.for_key(key_of(poison["parse"]).decode())
        assert dead["event_type"] == TOPICS.dead_letter
        assert dead["error"]["code"] == "processing_error"
        for stage in ("validate", "route", "transform"):
            [failed] = reader.outcomes.for_key(key_of(poison[stage]).decode())
            assert failed["event_type"] == TOPICS.failed, stage
            assert (failed["scope"], failed["error"]["code"]) == ("request", "processing_error")
            assert failed["payout_status"] is None
            assert links_at_provider(simulator, key_of(poison[stage]).decode()) == []
        for stage in ("answer1", "publish"):  # after a call: unresolved, re-driven, created
            key = key_of(poison[stage]).decode()
            outcomes = reader.outcomes.for_key(key)
            assert {e["event_type"] for e in outcomes} == {TOPICS.created}, stage
            assert len(links_at_provider(simulator, key)) == 1
            assert outcomes[0]["connector_payout_id"] == links_at_provider(simulator, key)[0]
        for evs in reader.outcomes.by_topic.values():
            for e in evs:
                errors = list(events.validator_for(e["event_type"]).iter_errors(e))
                assert errors == [], errors
        # A link whose every answer raises: never failed, kept unresolved, one link only.
        key_x = key_of(poison["answerX"]).decode()
        entry = await unresolved_entry(broker.bootstrap_servers, poison_worker.env["PAYOUT_APP_ID"],
                                       key_x, 30)
        assert entry is not None and "InjectedFault" in entry["reason"]
        assert reader.outcomes.for_key(key_x) == []
        assert len(links_at_provider(simulator, key_x)) == 1


async def test_a_record_that_kills_the_worker_does_not_kill_it_twice(
        broker, simulator, poison_worker, run_id) -> None:
    r = request(run_id, f"{run_id}-px-crash")
    key = key_of(r)
    partition = home_partition(key.decode(), PARTITIONS)
    follower = follower_on(partition, run_id, "crash")
    async with OutcomeReader(broker.bootstrap_servers) as reader:
        await produce_in_order(broker.bootstrap_servers, [
            (key, orjson.dumps(r), partition),
            (key_of(follower), orjson.dumps(follower), partition)])
        deadline = time.monotonic() + DEADLINE_S
        while not poison_worker.exited_unexpectedly() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)  # polling a process's exit, with a deadline
        assert poison_worker.exited_unexpectedly(), "the crash fault did not kill the worker"
        await asyncio.to_thread(poison_worker.start)  # as a supervisor would
        missing = await reader.wait_for({key.decode(), key_of(follower).decode()}, DEADLINE_S)
        assert missing == set(), poison_worker.log_tail(60)
        [failed] = reader.outcomes.for_key(key.decode())
        assert (failed["scope"], failed["error"]["code"]) == ("request", "processing_error")
        assert "validate" in failed["error"]["message"]
        [created] = reader.outcomes.for_key(key_of(follower).decode())
        assert created["event_type"] == TOPICS.created
    assert not poison_worker.exited_unexpectedly()
    assert links_at_provider(simulator, key.decode()) == []


async def test_records_at_and_above_the_producer_limit_are_dead_lettered_or_settled(
        broker, simulator, poison_worker, run_id) -> None:
    """The topic may accept bigger records than our producer may send (1 MB)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, TOPICS.requested,
                                                  configs={"max.message.bytes": "3000000"})])
    finally:
        await admin.close()
    big_garbage = b"\xff" + b"x" * 2_500_000
    valid_padded = request(run_id, f"{run_id}-padded")
    padded = orjson.dumps(valid_padded)[:-1] + b" " * 2_000_000 + b"}"  # valid JSON, 2 MB
    garbage_key = f"{run_id}-garbage".encode() * 1000  # a 20 KB key
    wrong_key = f"{run_id}-wrong-key".encode()
    async with OutcomeReader(broker.bootstrap_servers) as reader:
        await produce_in_order(broker.bootstrap_servers, [
            (garbage_key, big_garbage, 0), (wrong_key, padded, 1)], max_request_size=4_000_000)
        dead_key = events.outcome_record_key(garbage_key).decode()
        key = key_of(valid_padded).decode()
        assert await reader.wait_for({dead_key, key}, DEADLINE_S) == set(), \
            poison_worker.log_tail(60)
        [dead] = reader.outcomes.for_key(dead_key)
        assert dead["raw_value_size"] == len(big_garbage) and dead["raw_value_truncated"]
        assert dead["raw_key_size"] == len(garbage_key)
        [created] = reader.outcomes.for_key(key)
        assert created["event_type"] == TOPICS.created
