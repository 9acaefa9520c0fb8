"""Every topic the worker needs, created the production way or checked, before it starts.

Faust would create missing topics itself, but with one replication factor for all and
no ``min.insync.replicas``, and it never checks an existing topic: a request topic with
another partition count than the table's breaks co-partitioning (a link's request and
its record on different partitions, so two owners) without an error. So a worker first
plans its topics (:func:`plan`, pure), then :func:`prepare` creates the missing ones
with the configured replication factor and ``min.insync.replicas`` (changelogs
compacted, like Faust's), and refuses to start, naming the topic, when an existing one
has another partition count or the cluster has fewer brokers than the replication
factor (unless ``PAYOUT_ALLOW_FEWER_BROKERS=on``, for development clusters).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.config import ConfigError, Settings

log = logging.getLogger(__name__)

# The tables' names, used by streams.app to declare them; their changelogs are
# ``{app_id}-{table}-changelog``.
LINK_TABLE = "payout-links"
UNRESOLVED_TABLE = "payout-links-unresolved"
TABLES = (LINK_TABLE, UNRESOLVED_TABLE)
TOPIC_ALREADY_EXISTS = 36  # Kafka's error code: another worker created it first


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False


@dataclass(frozen=True)
class TopicPlan:
    topics: tuple[TopicSpec, ...]
    replication_factor: int
    min_insync_replicas: int
    warning: str | None = None  # a development cluster with fewer brokers, allowed


def plan(settings: Settings, brokers: int) -> TopicPlan:
    """The topics and how to create them on a cluster of ``brokers`` brokers."""
    rf, isr = settings.replication_factor, settings.min_insync_replicas
    warning = None
    if brokers < rf:
        if not settings.allow_fewer_brokers:
            raise ConfigError(
                f"PAYOUT_REPLICATION_FACTOR: the cluster has {brokers} broker(s), fewer than "
                f"the replication factor {rf}; add brokers, lower it, or (development only) "
                f"set PAYOUT_ALLOW_FEWER_BROKERS=on")
        warning = (f"the cluster has {brokers} broker(s), fewer than the replication factor "
                   f"{rf}: topics are created with {brokers} replica(s) "
                   f"(PAYOUT_ALLOW_FEWER_BROKERS=on; development only)")
        rf, isr = brokers, min(isr, brokers)
    n = settings.partitions
    specs = [TopicSpec(name, n) for name in settings.topics.all()]
    specs += [TopicSpec(f"{settings.app_id}-{table}-changelog", n, compacted=True)
              for table in TABLES]
    # Faust's partition assignor's own topic: one partition.
    specs.append(TopicSpec(f"{settings.app_id}-__assignor-__leader", 1))
    return TopicPlan(tuple(specs), rf, isr, warning)


def mismatches(plan: TopicPlan, existing: dict[str, int]) -> list[str]:
    """One line per existing topic whose partition count is not the planned one."""
    return [f"topic {spec.name!r} has {existing[spec.name]} partition(s), the worker needs "
            f"{spec.partitions} (PAYOUT_TOPIC_PARTITIONS): co-partitioned topics must match"
            for spec in plan.topics
            if spec.name in existing and existing[spec.name] != spec.partitions]


def new_topics(plan: TopicPlan, existing: dict[str, int],
               max_message_bytes: int) -> list[NewTopic]:
    out = []
    for spec in plan.topics:
        if spec.name in existing:
            continue
        config = {"min.insync.replicas": str(plan.min_insync_replicas),
                  # Every record the worker writes is bounded below its producer limit.
                  "max.message.bytes": str(max(max_message_bytes + 100_000, 1_048_588))}
        if spec.compacted:
            config["cleanup.policy"] = "compact"
        out.append(NewTopic(spec.name, spec.partitions, plan.replication_factor,
                            topic_configs=config))
    return out


async def prepare(settings: Settings) -> TopicPlan:
    """Create what is missing, check what exists; ConfigError when the worker must not run."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                request_timeout_ms=15_000)
    try:
        await admin.start()
    except Exception as exc:
        raise ConfigError(f"KAFKA_BOOTSTRAP_SERVERS: cannot reach "
                          f"{settings.bootstrap_servers!r}: {type(exc).__name__}") from None
    try:
        cluster = await admin.describe_cluster()
        topology = plan(settings, len(cluster.get("brokers") or ()))
        if topology.warning:
            log.warning("%s", topology.warning)
        # Only topics that exist are described: naming a missing one in a metadata
        # request lets a broker with auto-create on create it with its own defaults.
        wanted = {spec.name for spec in topology.topics} & set(await admin.list_topics())
        existing = {t["topic"]: len(t["partitions"])
                    for t in (await admin.describe_topics(sorted(wanted)) if wanted else [])
                    if t.get("error_code", 0) == 0 and t.get("partitions")}
        wrong = mismatches(topology, existing)
        if wrong:
            raise ConfigError(wrong[0] + (f" (and {len(wrong) - 1} more)" if len(wrong) > 1
                                          else ""))
        create = new_topics(topology, existing, settings.producer_max_request_bytes)
        for topic in create:
            try:
                response = await admin.create_topics([topic])
            except TopicAlreadyExistsError:  # another worker starting at the same time
                continue
            for name, code, *message in getattr(response, "topic_errors", ()):
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise ConfigError(f"topic {name!r}: the cluster refused to create it "
                                      f"(error {code}: {(message or [''])[0]})")
        if create:
            log.info("created topics %s with replication factor %d, min.insync.replicas %d",
                     ", ".join(t.name for t in create), topology.replication_factor,
                     topology.min_insync_replicas)
        return topology
    finally:
        await admin.close()
