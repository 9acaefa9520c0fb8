"""The whole pipeline on a real broker: requests in, exactly one outcome each out."""
from __future__ import annotations

import base64

import orjson
import pytest

from streams import events
from streams.connectors.base import link_reference
from streams.devkit.harness import TOPICS, OutcomeReader, produce
from streams.devkit.traffic import GARBAGE, INVALID_VARIANTS, invalid_request, key_of, valid_request
from streams.partitioning import home_partition
from tests.integration.conftest import PARTITIONS

pytestmark = pytest.mark.integration
DEADLINE_S = 120


def assert_schema_valid(event: dict) -> None:
    errors = [e.message for e in events.validator_for(event["event_type"]).iter_errors(event)]
    assert errors == [], errors


def links_at_provider(simulator, keys) -> dict[str, list[str]]:
    by_receipt = simulator.ledger()["by_receipt"]
    return {k: by_receipt.get(link_reference(k), []) for k in keys}


async def test_valid_requests_each_create_one_link(broker, simulator, worker, run_id) -> None:
    requests = [valid_request(n, run=run_id) for n in range(200)]
    keys = [key_of(r).decode() for r in requests]
    async with OutcomeReader(broker.bootstrap_servers) as reader:
        await produce(broker.bootstrap_servers, [(key_of(r), orjson.dumps(r)) for r in requests])
        assert await reader.wait_for(keys, DEADLINE_S) == set()
        outcomes = {k: reader.outcomes.for_key(k) for k in keys}
    for key, request in zip(keys, requests):
        [created] = outcomes[key]
        assert created["event_type"] == TOPICS.created
        assert created["url"].startswith("http")
        assert created["payout_status"] == "REQUIRES_PAYOUT_METHOD_DATA"
        assert created["request_event_id"] == request["event_id"]
        assert created["amount"] == request["amount"]
        assert_schema_valid(created)
    ledger = links_at_provider(simulator, keys)
    assert all(len(ids) == 1 for ids in ledger.values()), ledger
    assert {outcomes[k][0]["connector_payout_id"] for k in keys} == {ids[0] for ids in ledger.values()}


async def test_invalid_requests_fail_naming_the_field(broker, simulator, worker, run_id) -> None:
    bad = [invalid_request(n, run=run_id) for n in range(len(INVALID_VARIANTS))]
    keys = [key_of(r).decode() for r, _ in bad]
    async with OutcomeReader(broker.bootstrap_servers) as reader:
        await produce(broker.bootstrap_servers, [(key_of(r), orjson.dumps(r)) for r, _ in bad])
        assert await reader.wait_for(keys, DEADLINE_S) == set()
        for (_request, field), key in zip(bad, keys):
            [failed] = reader.outcomes.for_key(key)
            assert failed["event_type"] == TOPICS.failed
            assert failed["error"]["code"] == "invalid_request"
            assert failed["error"]["field"] == field
            assert failed["error"]["retryable"] is False
            assert_schema_valid(failed)
    assert all(ids == [] for ids in links_at_provider(simulator, keys).values())


async def test_garbage_bytes_are_dead_lettered_whole(broker, worker, run_id) -> None:
    records = [(f"garbage-{run_id}-{i}".encode(), raw) for i, raw in enumerate(GARBAGE)]
    async with OutcomeReader(broker.bootstrap_servers) as reader:
        await produce(broker.bootstrap_servers, records)
        keys = [k.decode() for k, _ in records]
        assert await reader.wait_for(keys, DEADLINE_S) == set()
        for key, raw in records:
            [dead] = reader.outcomes.for_key(key.decode())
            assert dead["event_type"] == TOPICS.dead_letter
            assert base64.b64decode(dead["raw_value_b64"]) == raw
            assert dead["source"]["topic"] == TOPICS.requested and dead["source"]["offset"] >= 0
            assert dead["error"]["code"] in ("unparseable", "not_an_object")
            assert_schema_valid(dead)


async def test_missing_or_wrong_key_is_still_processed_once(broker, simulator, worker,
                                                            run_id) -> None:
    requests = [valid_request(n, run=run_id) for n in range(12)]
    keys = [key_of(r).decode() for r in requests]

    def wrong_partition(key: bytes | None) -> int | None:
        return None if key is None else (home_partition(key.decode(), PARTITIONS) + 1) % PARTITIONS

    records = []
    for n, r in enumerate(requests):
        kafka_key = [None, b"not-the-link-key", key_of(r)][n % 3]
        records.append((kafka_key, orjson.dumps(r)))
    async with OutcomeReader(broker.bootstrap_servers) as reader:
        # the keyed third lands on a wrong partition on purpose
        await produce(broker.bootstrap_servers, records[2::3], partition_of=wrong_partition)
        await produce(broker.bootstrap_servers, [r for i, r in enumerate(records) if i % 3 != 2])
        assert await reader.wait_for(keys, DEADLINE_S) == set()
        for key in keys:
            assert [e["event_type"] for e in reader.outcomes.for_key(key)] == [TOPICS.created]
    assert all(len(ids) == 1 for ids in links_at_provider(simulator, keys).values())


async def test_duplicate_republishes_and_conflict_fails(broker, simulator, worker, run_id) -> None:
    original = valid_request(1, run=run_id)
    key = key_of(original).decode()
    async with OutcomeReader(broker.bootstrap_servers) as reader:
        await produce(broker.bootstrap_servers, [(key_of(original), orjson.dumps(original))])
        assert await reader.wait_for([key], DEADLINE_S) == set()
        [first] = reader.outcomes.for_key(key)

        resent = dict(original, event_id="resent-with-new-envelope")
        conflicting = orjson.loads(orjson.dumps(original))
        conflicting["amount"]["minor_amount"] += 100
        await produce(broker.bootstrap_servers, [(key_of(original), orjson.dumps(resent)),
                                                 (key_of(original), orjson.dumps(conflicting))])

        async def settled() -> bool:
            return len(reader.outcomes.for_key(key)) >= 3

        missing = await reader.wait_until(settled, DEADLINE_S)
        assert missing is True
        again, conflict = reader.outcomes.for_key(key)[1:]
    if again["event_type"] != TOPICS.created:
        again, conflict = conflict, again
    assert again == first  # byte-for-byte the same event, same event_id
    assert conflict["event_type"] == TOPICS.failed
    assert conflict["error"]["code"] == "idempotency_conflict"
    assert conflict["event_id"] != first["event_id"]
    assert links_at_provider(simulator, [key])[key] == [first["connector_payout_id"]]
