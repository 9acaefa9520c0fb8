"""The Faust application: every topic and the table, declared in one place."""
from __future__ import annotations

from typing import Any, cast

import faust
from faust.sensors import Monitor
from faust.types import TP, CollectionT, EventT, Message, ProducerT, RecordMetadata, StreamT
from faust.types.tuples import PendingMessage

from streams import lifecycle, ownership
from streams.config import Settings, load_settings
from streams.faust_internals import GuardedChangelogTable, RecoverableTable
from streams.partitioning import kafka_default_partitioner
from streams.preflight import compression_type
from streams.shutdown import BoundedShutdownApp, PayoutWorker, ShutdownBounds
from streams.topology import LINK_TABLE, UNRESOLVED_TABLE
from streams.web.errors import json_errors


class LeanMonitor(Monitor):
    """Faust's monitor without its per-record bookkeeping (Faust's public ``Monitor`` setting).

    Faust's monitor updates counters, per-stream dicts and latency deques for every
    record in, event, table read and write and send: 1.2 % of the worker's CPU at full
    load (bench profile). Nothing here reads those (they feed Faust's ``/stats`` pages);
    the read offsets it keeps for lag are kept.
    """

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        self.tp_read_offsets[tp] = offset

    def on_stream_event_in(self, tp: TP, offset: int, stream: StreamT[Any],
                           event: EventT[Any]) -> dict[str, Any] | None:
        return None

    def on_stream_event_out(self, tp: TP, offset: int, stream: StreamT[Any],
                            event: EventT[Any], state: dict[str, Any] | None = None) -> None:
        return None

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        return None

    def on_table_get(self, table: CollectionT, key: Any) -> None:
        return None

    def on_table_set(self, table: CollectionT, key: Any, value: Any) -> None:
        return None

    def on_send_initiated(self, producer: ProducerT, topic: str, message: PendingMessage,
                          keysize: int, valsize: int) -> Any:
        return None

    def on_send_completed(self, producer: ProducerT, state: Any,
                          metadata: RecordMetadata) -> None:
        return None


settings: Settings = load_settings()
# How long a stop may take (streams.shutdown): PAYOUT_SHUTDOWN_DRAIN_S for in-flight
# provider calls, PAYOUT_SHUTDOWN_TIMEOUT_S from SIGTERM or a fatal error to exit.
shutdown_bounds = ShutdownBounds(drain_s=settings.shutdown_drain_s,
                                 timeout_s=settings.shutdown_timeout_s)

app = BoundedShutdownApp(
    settings.app_id,
    shutdown=shutdown_bounds,
    log_format=settings.log_format,
    Worker=PayoutWorker,
    Monitor=LeanMonitor,
    broker=f"kafka://{settings.bootstrap_servers}",
    store="rocksdb://",
    datadir=str(settings.data_dir),
    topic_partitions=settings.partitions,
    # Every topic is created before Faust would, with min.insync.replicas too, and
    # existing ones checked (streams.topology); this is what Faust would create with.
    topic_replication_factor=settings.replication_factor,
    table_standby_replicas=settings.table_standby_replicas,
    producer_acks=-1,
    consumer_auto_offset_reset="earliest",
    stream_wait_empty=True,
    # A crashed worker's partitions move once its session expires; Faust's 60 s
    # default would hold a crashed worker's links that long.
    broker_session_timeout=settings.session_timeout_s,
    broker_heartbeat_interval=settings.heartbeat_interval_s,
    # Batch changelog and outcome records: at hundreds of links/s, one produce request
    # per record cost more CPU than anything but the HTTP calls (bench profile).
    producer_linger=settings.producer_linger_ms / 1000,
    producer_compression_type=compression_type(settings.producer_compression),
    # Every record the worker produces is bounded far below this (docs/architecture.md,
    # "Record sizes"), and every topic it writes accepts at least this much.
    producer_max_request_size=settings.producer_max_request_bytes,
    # Kafka's default partitioner, each link key hashed once (streams.partitioning).
    producer_partitioner=kafka_default_partitioner,
    web_port=settings.web_port,
    # JSON for every error answer: unknown paths, wrong methods, views that raised.
    web_application_options={"middlewares": [json_errors]},
    web_host=settings.web_host,
    # Where the other workers reach this one: a link lookup asked of a worker that does
    # not own the link is forwarded to its owner (streams.web.links).
    canonical_url=settings.advertised_url,
    # Faust's own JSON codec is never used: values are bytes, (de)coded by streams.events.
    key_serializer="raw",
    value_serializer="raw",
)


class LinkTable(GuardedChangelogTable):
    """A table whose writes can be awaited until the changelog holds them, and whose
    changelog never lets a stale owner's record replace a later owner's.

    The ``creating`` record must be durable *before* a provider call, or a crash
    could leave a link at the provider that no record remembers.
    """

    def keeps(self, stored: bytes | None, incoming: bytes) -> bool:
        return ownership.supersedes(lifecycle.stored_epoch(incoming),
                                    lifecycle.stored_epoch(stored))

    async def put_durably(self, key: str, value: bytes) -> None:
        self[key] = value
        await self.last_write

    def find(self, link_key: str) -> tuple[str, bytes | None]:
        """The table key and stored record of a link (lifecycle.find_record)."""
        return lifecycle.find_record(self.get, link_key)


def _topic(name: str, internal: bool = False) -> faust.TopicT:
    return app.topic(name, key_type=bytes, value_type=bytes, partitions=settings.partitions,
                     internal=internal)


topics = settings.topics
# Upstream writes `requested`; a record whose key or partition is not the link key's
# home is re-keyed into `routed`, co-partitioned with it, so one worker owns a link.
request_channel = app.topic(topics.requested, topics.routed, topics.reports,
                            topics.cancel_requested, key_type=bytes, value_type=bytes)
routed_topic = _topic(topics.routed, internal=True)
created_topic = _topic(topics.created)
failed_topic = _topic(topics.failed)
dead_letter_topic = _topic(topics.dead_letter)
status_changed_topic = _topic(topics.status_changed)
cancel_failed_topic = _topic(topics.cancel_failed)
# After creation (streams.link_tracking): verified webhooks, polls and expiries on the
# link's home partition, and cancel commands from upstream; both co-partitioned with
# the requests, so the owner of a link's record handles them in order with it.
reports_topic = _topic(topics.reports, internal=True)
cancel_topic = _topic(topics.cancel_requested)

links = cast(LinkTable, app.tables.add(LinkTable(
    app,
    name=LINK_TABLE,
    beacon=app.tables.beacon,
    partitions=settings.partitions,
    key_type=str,
    value_type=bytes,
    help="One LinkRecord per link, keyed by its reference (streams.lifecycle).",
    # Faust's defaults (64 MB write buffer x3 and a 2 GB block cache, per partition)
    # keep every value in memtables until a partition's buffer fills: RSS grew with
    # links written, 338 MB at 150k links vs 209 MB with these (docs/benchmarks.md).
    options={
        "write_buffer_size": settings.rocksdb_write_buffer_mb * 1024 * 1024,
        "max_write_buffer_number": 2,
        "block_cache_size": settings.rocksdb_block_cache_mb * 1024 * 1024,
    },
)))

unresolved = cast("faust.Table[str, bytes]", app.tables.add(RecoverableTable(
    app,
    name=UNRESOLVED_TABLE,
    beacon=app.tables.beacon,
    partitions=settings.partitions,
    key_type=str,
    value_type=bytes,
    help="Links in doubt after an unexpected error, and when to re-drive them "
         "(streams.unresolved). Small: an entry exists only while a link is unresolved.",
    options={
        "write_buffer_size": 1024 * 1024,
        "max_write_buffer_number": 2,
        "block_cache_size": 4 * 1024 * 1024,
    },
)))
