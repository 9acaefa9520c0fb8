"""Issue 13: typed settings documented from one place, one-line errors, production topics."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from streams.config import ConfigError, load_settings, markdown_table, variables
from streams.topology import mismatches, new_topics, plan

REPO = Path(__file__).resolve().parents[2]


def test_the_readme_table_is_the_generated_one() -> None:
    readme = (REPO / "README.md").read_text()
    found = re.search(r"<!-- settings:begin[^>]*-->\n(.*?)<!-- settings:end -->", readme, re.S)
    assert found, "README.md lost its settings markers"
    assert found.group(1) == markdown_table(), \
        "README's settings table is stale: python -m streams config --doc"


def test_every_variable_the_worker_reads_is_documented() -> None:
    documented = {v.name for v in variables()}
    read: set[str] = set()
    for path in (REPO / "streams").rglob("*.py"):
        if "devkit" in path.parts:
            continue
        read |= set(re.findall(r"\"((?:PAYOUT|KAFKA)_[A-Z0-9_]+)\"", path.read_text()))
    assert read - documented == set()


@pytest.mark.parametrize("env, says", [
    ({"PAYOUT_TOPIC_PARTITIONS": "abc"}, "PAYOUT_TOPIC_PARTITIONS: 'abc' is not an integer"),
    ({"PAYOUT_TOPIC_PARTITIONS": "0"}, "PAYOUT_TOPIC_PARTITIONS: '0' should be greater"),
    ({"PAYOUT_READ_TIMEOUT_S": "nan"}, "PAYOUT_READ_TIMEOUT_S: 'nan'"),
    ({"PAYOUT_FENCING": "maybe"}, "PAYOUT_FENCING: 'maybe' is not on or off"),
    ({"PAYOUT_PRODUCER_COMPRESSION": "brotli"}, "PAYOUT_PRODUCER_COMPRESSION: 'brotli' should be"),
    ({"PAYOUT_LOG_FORMAT": "xml"}, "PAYOUT_LOG_FORMAT: 'xml' should be"),
    ({"PAYOUT_MIN_INSYNC_REPLICAS": "4"}, "PAYOUT_MIN_INSYNC_REPLICAS (4) must not exceed "
                                          "PAYOUT_REPLICATION_FACTOR (3)"),
    ({"PAYOUT_POLL_MIN_S": "1000"}, "PAYOUT_POLL_MIN_S (1000) must not exceed PAYOUT_POLL_MAX_S"),
    ({"PAYOUT_SHUTDOWN_DRAIN_S": "28"}, "PAYOUT_SHUTDOWN_DRAIN_S (28) must be at least 5 s"),
    ({"PAYOUT_APP_ID": "a b"}, "PAYOUT_APP_ID: 'a b' should match"),
])
def test_a_bad_value_is_one_line_naming_the_variable(env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert says in str(caught.value) and "\n" not in str(caught.value)


def test_defaults_and_values_are_typed() -> None:
    s = load_settings({"PAYOUT_TOPIC_PARTITIONS": " 12 ", "PAYOUT_FENCING": "off",
                       "PAYOUT_ALLOW_FEWER_BROKERS": "on", "PAYOUT_READ_TIMEOUT_S": "2.5"})
    assert (s.partitions, s.fencing, s.allow_fewer_brokers, s.read_timeout_s) == \
        (12, False, True, 2.5)
    d = load_settings({})
    assert (d.replication_factor, d.min_insync_replicas, d.web_host) == (3, 2, "0.0.0.0")


def test_config_check_exits_2_with_one_line_and_0_when_good() -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "PAYOUT_TOPIC_PARTITIONS": "abc"}
    bad = subprocess.run([sys.executable, "-m", "streams", "config", "--check"], env=env,
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [
        "payout config: configuration error: PAYOUT_TOPIC_PARTITIONS: 'abc' is not an integer"]
    env["PAYOUT_TOPIC_PARTITIONS"] = "4"
    good = subprocess.run([sys.executable, "-m", "streams", "config", "--check"], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert good.returncode == 0 and "configuration OK" in good.stdout, good.stderr


# --- production topics --------------------------------------------------------------

def test_fewer_brokers_than_the_replication_factor_refuses_unless_allowed() -> None:
    with pytest.raises(ConfigError, match="the cluster has 1 broker\\(s\\), fewer than the "
                                          "replication factor 3"):
        plan(load_settings({}), brokers=1)
    dev = plan(load_settings({"PAYOUT_ALLOW_FEWER_BROKERS": "on"}), brokers=1)
    assert (dev.replication_factor, dev.min_insync_replicas) == (1, 1) and dev.warning
    prod = plan(load_settings({}), brokers=5)
    assert (prod.replication_factor, prod.min_insync_replicas, prod.warning) == (3, 2, None)


def test_every_topic_is_planned_and_created_with_min_insync_replicas() -> None:
    settings = load_settings({"PAYOUT_APP_ID": "acme", "PAYOUT_TOPIC_PARTITIONS": "6"})
    topology = plan(settings, brokers=3)
    names = {spec.name for spec in topology.topics}
    assert set(settings.topics.all()) <= names
    assert {"acme-payout-links-changelog", "acme-payout-links-unresolved-changelog",
            "acme-__assignor-__leader"} <= names
    created = {t.name: t for t in new_topics(topology, {"payout-link-requested": 6}, 1_000_000)}
    assert "payout-link-requested" not in created  # exists: left alone
    changelog = created["acme-payout-links-changelog"]
    assert (changelog.num_partitions, changelog.replication_factor) == (6, 3)
    assert changelog.topic_configs["cleanup.policy"] == "compact"
    assert all(t.topic_configs["min.insync.replicas"] == "2" for t in created.values())
    assert "cleanup.policy" not in created["payout-link-created"].topic_configs


def test_an_existing_topic_with_another_partition_count_is_named() -> None:
    topology = plan(load_settings({}), brokers=3)
    wrong = mismatches(topology, {"payout-link-requested": 8, "payout-link-created": 3})
    assert wrong == ["topic 'payout-link-created' has 3 partition(s), the worker needs 8 "
                     "(PAYOUT_TOPIC_PARTITIONS): co-partitioned topics must match"]
