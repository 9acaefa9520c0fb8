"""Issue 13: the worker creates its topics the production way and refuses mismatches."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams.config import load_settings
from streams.devkit.broker import Broker
from streams.devkit.harness import REPO_ROOT, run_worker_expecting_exit
from streams.topology import prepare
from tests.integration.conftest import PARTITIONS


def worker_env(broker: Broker, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYOUT_")}
    env.update({"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                "PAYOUT_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(REPO_ROOT),
                "PAYOUT_TOPIC_PARTITIONS": str(PARTITIONS), **extra})
    return env


def test_a_single_broker_cluster_is_refused_by_default(broker: Broker, tmp_path: Path,
                                                       run_id: str) -> None:
    done = run_worker_expecting_exit(worker_env(broker, tmp_path, PAYOUT_APP_ID=f"rf-{run_id}"))
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "fewer than the replication factor 3" in lines[0]
    assert "PAYOUT_ALLOW_FEWER_BROKERS=on" in lines[0]


def test_an_existing_topic_with_another_partition_count_is_refused_naming_it(
        broker: Broker, tmp_path: Path, run_id: str) -> None:
    done = run_worker_expecting_exit(worker_env(broker, tmp_path, PAYOUT_APP_ID=f"pc-{run_id}",
                                 PAYOUT_ALLOW_FEWER_BROKERS="on",
                                 PAYOUT_TOPIC_PARTITIONS=str(PARTITIONS + 1)))
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]  # (after the fewer-brokers warning)
    assert "Traceback" not in done.stderr
    assert f"topic 'payout-link-requested' has {PARTITIONS} partition(s), the worker needs " \
           f"{PARTITIONS + 1}" in last


def test_missing_topics_are_created_with_min_insync_replicas_and_compacted_changelogs(
        broker: Broker, run_id: str) -> None:
    settings = load_settings({"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                              "PAYOUT_APP_ID": f"mk-{run_id}", "PAYOUT_ALLOW_FEWER_BROKERS": "on",
                              "PAYOUT_TOPIC_PARTITIONS": str(PARTITIONS)})

    async def check() -> dict[str, dict[str, str]]:
        topology = await prepare(settings)
        assert (topology.replication_factor, topology.min_insync_replicas) == (1, 1)
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        await admin.start()
        try:
            changelog = f"mk-{run_id}-payout-links-changelog"
            described = {t["topic"]: len(t["partitions"])
                         for t in await admin.describe_topics([changelog])}
            assert described == {changelog: PARTITIONS}
            answers = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, changelog)])
            return {r[3]: {c[0]: c[1] for c in r[4]} for a in answers for r in a.resources}
        finally:
            await admin.close()

    configs = asyncio.run(check())
    changelog = configs[f"mk-{run_id}-payout-links-changelog"]
    assert changelog["cleanup.policy"] == "compact"
    assert changelog["min.insync.replicas"] == "1"
