"""Where a key lives: Kafka's default partitioner, with each key hashed once.

Every link key is hashed twice on its way through a worker: to find its home
partition when its request arrives, and by the producer when its outcome is
published. aiokafka's murmur2 is pure Python (~2.6 µs a key on the bench machine),
so the hash is cached for recently seen keys and the producer is given a partitioner
(Faust's public ``producer_partitioner`` setting) that reads the same cache. The
result is Kafka's ``DefaultPartitioner`` to the bit: downstream consumers that
partition by key, in any language, agree with it.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from functools import lru_cache
from typing import cast

from aiokafka.partitioner import murmur2


@lru_cache(maxsize=16_384)
def key_hash(key: bytes) -> int:
    """Kafka's positive murmur2 of a key (Java client ``Utils.toPositive(murmur2)``)."""
    return cast(int, murmur2(key)) & 0x7FFFFFFF


def home_partition(link_key: str, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives the link key."""
    return key_hash(link_key.encode("utf-8")) % partitions


def kafka_default_partitioner(key: bytes | None, all_partitions: Sequence[int],
                              available: Sequence[int]) -> int:
    """aiokafka's ``DefaultPartitioner``, reading the cache above."""
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[key_hash(key) % len(all_partitions)]
