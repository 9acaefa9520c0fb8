"""All settings, read once from the environment.

Credentials live here and only here: they are loaded per merchant and connector,
kept in objects whose ``repr`` hides them, and never copied into events or logs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import orjson

DEFAULT_CREDENTIALS = {
    # The simulator's development credential (see streams/devkit/simulator.py).
    "*": {
        "razorpay": {
            "key_id": "rzp_test_demo",
            "key_secret": "demo_secret",
            "account_number": "2323230041626905",
        }
    }
}


@dataclass(frozen=True)
class RazorpayCredentials:
    key_id: str
    key_secret: str = field(repr=False)
    account_number: str = field(repr=False)


@dataclass(frozen=True)
class Topics:
    requested: str = "payout-link-requested"
    routed: str = "payout-link-requested-routed"
    created: str = "payout-link-created"
    failed: str = "payout-link-failed"
    dead_letter: str = "payout-link-dead-letter"
    status_changed: str = "payout-link-status-changed"


@dataclass(frozen=True)
class Settings:
    bootstrap_servers: str
    app_id: str
    partitions: int
    data_dir: Path
    web_port: int
    razorpay_base_url: str
    max_in_flight: int
    connect_timeout_s: float
    read_timeout_s: float
    credentials: Mapping[str, Mapping[str, RazorpayCredentials]] = field(repr=False)
    topics: Topics = Topics()
    table_standby_replicas: int = 0
    session_timeout_s: float = 10.0
    provider_rate_per_s: float = 5000.0
    breaker_failure_threshold: int = 50
    breaker_open_s: float = 5.0
    retry_max_attempts: int = 8
    retry_max_s: float = 60.0
    producer_linger_ms: float = 5.0
    producer_compression: str = "lz4"  # none|gzip|snappy|lz4|zstd (docs/benchmarks.md)
    rocksdb_write_buffer_mb: int = 8
    rocksdb_block_cache_mb: int = 64
    changelog_buffer_max: int = 1000
    fault_lose_deliveries: str = ""  # tests only: see streams.delivery.InjectedLoss
    faults: str = ""  # tests only: see streams.faults
    producer_max_request_bytes: int = 1_000_000  # Faust's default; topics accept 1,048,588
    # Links whose handling failed after a provider call may have been made stay
    # unresolved and are re-driven on this cadence (doubling up to the max).
    unresolved_retry_s: float = 30.0
    unresolved_retry_max_s: float = 900.0

    def razorpay_credentials(self, merchant_id: str) -> RazorpayCredentials | None:
        """Per-merchant credentials, falling back to the ``*`` entry."""
        merchant = self.credentials.get(merchant_id) or self.credentials.get("*") or {}
        return merchant.get("razorpay")


def _load_credentials(raw: str | None) -> dict[str, dict[str, RazorpayCredentials]]:
    """Parse ``{merchant_id|*: {razorpay: {key_id, key_secret, account_number}}}``.

    ``raw`` is a JSON string or a path to a JSON file (so secrets can come from a
    mounted file instead of the environment).
    """
    if raw is None:
        data = DEFAULT_CREDENTIALS
    elif raw.lstrip().startswith("{"):
        data = orjson.loads(raw)
    else:
        data = orjson.loads(Path(raw).read_bytes())
    out: dict[str, dict[str, RazorpayCredentials]] = {}
    for merchant_id, connectors in data.items():
        out[merchant_id] = {}
        if "razorpay" in connectors:
            c = connectors["razorpay"]
            out[merchant_id]["razorpay"] = RazorpayCredentials(
                key_id=c["key_id"], key_secret=c["key_secret"], account_number=c["account_number"]
            )
    return out


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    return Settings(
        bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        app_id=env.get("PAYOUT_APP_ID", "payout-links"),
        partitions=int(env.get("PAYOUT_TOPIC_PARTITIONS", "8")),
        data_dir=Path(env.get("PAYOUT_DATA_DIR", "./var/worker")),
        web_port=int(env.get("PAYOUT_WEB_PORT", "6066")),
        razorpay_base_url=env.get("RAZORPAY_BASE_URL", "http://127.0.0.1:8081").rstrip("/"),
        max_in_flight=int(env.get("PAYOUT_MAX_IN_FLIGHT", "512")),
        connect_timeout_s=float(env.get("PAYOUT_CONNECT_TIMEOUT_S", "2")),
        read_timeout_s=float(env.get("PAYOUT_READ_TIMEOUT_S", "10")),
        credentials=_load_credentials(env.get("PAYOUT_CREDENTIALS")),
        table_standby_replicas=int(env.get("PAYOUT_STANDBY_REPLICAS", "0")),
        session_timeout_s=float(env.get("PAYOUT_SESSION_TIMEOUT_S", "10")),
        provider_rate_per_s=float(env.get("PAYOUT_PROVIDER_RATE_PER_S", "5000")),
        breaker_failure_threshold=int(env.get("PAYOUT_BREAKER_FAILURES", "50")),
        breaker_open_s=float(env.get("PAYOUT_BREAKER_OPEN_S", "5")),
        retry_max_attempts=int(env.get("PAYOUT_RETRY_MAX_ATTEMPTS", "8")),
        retry_max_s=float(env.get("PAYOUT_RETRY_MAX_S", "60")),
        producer_linger_ms=float(env.get("PAYOUT_PRODUCER_LINGER_MS", "5")),
        producer_compression=env.get("PAYOUT_PRODUCER_COMPRESSION", "lz4"),
        rocksdb_write_buffer_mb=int(env.get("PAYOUT_ROCKSDB_WRITE_BUFFER_MB", "8")),
        rocksdb_block_cache_mb=int(env.get("PAYOUT_ROCKSDB_BLOCK_CACHE_MB", "64")),
        changelog_buffer_max=int(env.get("PAYOUT_CHANGELOG_BUFFER_MAX", "1000")),
        fault_lose_deliveries=env.get("PAYOUT_FAULT_LOSE_DELIVERIES", ""),
        faults=env.get("PAYOUT_FAULTS", ""),
        producer_max_request_bytes=int(env.get("PAYOUT_PRODUCER_MAX_REQUEST_BYTES", "1000000")),
        unresolved_retry_s=float(env.get("PAYOUT_UNRESOLVED_RETRY_S", "30")),
        unresolved_retry_max_s=float(env.get("PAYOUT_UNRESOLVED_RETRY_MAX_S", "900")),
    )
