"""All settings, read once from the environment.

Credentials live here and only here: they are loaded per merchant and provider, each
parsed by its provider's own account type (whose ``repr`` hides secrets), and never
copied into events or logs. Nothing here names a provider: providers come from
:mod:`streams.connectors.registry`.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson


class ConfigError(ValueError):
    """Bad configuration: one line for the operator, never a value of a secret."""


@dataclass(frozen=True)
class Topics:
    requested: str = "payout-link-requested"
    routed: str = "payout-link-requested-routed"
    created: str = "payout-link-created"
    failed: str = "payout-link-failed"
    dead_letter: str = "payout-link-dead-letter"
    status_changed: str = "payout-link-status-changed"
    # Verified provider webhooks, polls due and expiries to enforce, each on its link's
    # home partition (internal: written only by the workers, streams.link_tracking).
    reports: str = "payout-link-provider-reports"
    cancel_requested: str = "payout-link-cancel-requested"
    cancel_failed: str = "payout-link-cancel-failed"


@dataclass(frozen=True)
class Settings:
    bootstrap_servers: str
    app_id: str
    partitions: int
    data_dir: Path
    web_port: int
    max_in_flight: int
    connect_timeout_s: float
    read_timeout_s: float
    # merchant id or "*" -> provider name -> that provider's parsed account type
    credentials: Mapping[str, Mapping[str, Any]] = field(repr=False)
    # provider name -> base URL (each provider's own variable, else its default)
    base_urls: Mapping[str, str] = field(default_factory=dict)
    # merchant id or "*" -> providers in order of preference, for requests naming none
    routing: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
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
    # Tests only: "off" turns fencing (streams.ownership) off, to show what it prevents.
    fencing: bool = True
    web_host: str = "127.0.0.1"
    # After creation (streams.polling): a link is polled every min..max seconds, the
    # interval growing with its age; the sweep asks each provider for at most
    # poll_rate_per_s statuses a second per worker.
    poll_min_s: float = 30.0
    poll_max_s: float = 900.0
    poll_rate_per_s: float = 20.0
    reversal_watch_s: float = 7 * 86400.0
    reversal_poll_s: float = 6 * 3600.0

    @property
    def heartbeat_interval_s(self) -> float:
        """The group heartbeat: a third of the session, at most 3 s (Kafka's default)."""
        return min(3.0, self.session_timeout_s / 3)

    def account(self, merchant_id: str, provider: str) -> Any | None:
        """The merchant's account at ``provider``, falling back to the ``*`` entry."""
        own = self.credentials.get(merchant_id)
        if own is not None and provider in own:
            return own[provider]
        return (self.credentials.get("*") or {}).get(provider)

    def preference(self, merchant_id: str) -> tuple[str, ...]:
        return self.routing.get(merchant_id) or self.routing.get("*") or ()


def _json_setting(name: str, raw: str) -> Any:
    """A JSON value, or a path to a JSON file (secrets can come from a mounted file)."""
    try:
        if raw.lstrip().startswith(("{", "[")):
            return orjson.loads(raw)
        return orjson.loads(Path(raw).read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{name}: not valid JSON ({exc.msg} at position {exc.pos})") from None
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {raw!r}: {exc.strerror}") from None


def _load_credentials(raw: str | None) -> dict[str, dict[str, Any]]:
    """``{merchant_id|*: {provider: {...that provider's fields}}}``, each entry parsed by
    its provider's own account type; errors name the merchant, provider and field."""
    from streams.connectors.provider import CredentialError
    from streams.connectors.registry import PROVIDERS

    if raw is None:  # development: every provider's simulator account, for any merchant
        data: Any = {"*": {name: p.dev_account for name, p in PROVIDERS.items()
                           if p.dev_account is not None}}
    else:
        data = _json_setting("PAYOUT_CREDENTIALS", raw)
    if not isinstance(data, dict):
        raise ConfigError("PAYOUT_CREDENTIALS: must be an object {merchant_id: {provider: {...}}}")
    out: dict[str, dict[str, Any]] = {}
    for merchant_id, providers in data.items():
        if not isinstance(providers, dict):
            raise ConfigError(f"PAYOUT_CREDENTIALS: merchant {merchant_id!r}: must be an object "
                              f"{{provider: {{...}}}}")
        out[merchant_id] = {}
        for name, entry in providers.items():
            provider = PROVIDERS.get(name)
            if provider is None:
                raise ConfigError(f"PAYOUT_CREDENTIALS: merchant {merchant_id!r}: unknown provider "
                                  f"{name!r} (known: {', '.join(sorted(PROVIDERS))})")
            try:
                out[merchant_id][name] = provider.parse_account(entry)
            except CredentialError as exc:
                raise ConfigError(f"PAYOUT_CREDENTIALS: merchant {merchant_id!r}, provider "
                                  f"{name!r}, field {exc.field!r}: {exc.problem}") from None
    return out


def _load_routing(raw: str | None) -> dict[str, tuple[str, ...]]:
    """``{merchant_id|*: [provider, ...]}``: the order providers are tried in."""
    from streams.connectors.registry import PROVIDERS

    if raw is None:
        return {}
    data = _json_setting("PAYOUT_ROUTING", raw)
    if not isinstance(data, dict):
        raise ConfigError("PAYOUT_ROUTING: must be an object {merchant_id: [provider, ...]}")
    out: dict[str, tuple[str, ...]] = {}
    for merchant_id, names in data.items():
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"PAYOUT_ROUTING: merchant {merchant_id!r}: must be a list of "
                              f"provider names")
        unknown = [n for n in names if n not in PROVIDERS]
        if unknown:
            raise ConfigError(f"PAYOUT_ROUTING: merchant {merchant_id!r}: unknown provider "
                              f"{unknown[0]!r} (known: {', '.join(sorted(PROVIDERS))})")
        out[merchant_id] = tuple(names)
    return out


_BASE_URL = re.compile(r"https?://[^/\s?#]+(/[^\s?#]*)?")


def _base_urls(env: Mapping[str, str]) -> dict[str, str]:
    """Each provider's base URL (for Prism, where its gRPC server listens: the scheme
    says plaintext or TLS); a malformed one is a configuration error, not a first call
    that fails."""
    from streams.connectors.registry import PROVIDERS

    out = {}
    for name, p in PROVIDERS.items():
        url = env.get(p.base_url_env, p.default_base_url).strip().rstrip("/")
        if not _BASE_URL.fullmatch(url):
            raise ConfigError(f"{p.base_url_env}: {url[:200]!r} is not an http:// or https:// URL "
                              f"with a host")
        out[name] = url
    return out


def _number(env: Mapping[str, str], name: str, default: str, kind: type) -> Any:
    raw = env.get(name, default)
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not {'an integer' if kind is int else 'a number'}")\
            from None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    return Settings(
        bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        app_id=env.get("PAYOUT_APP_ID", "payout-links"),
        partitions=_number(env, "PAYOUT_TOPIC_PARTITIONS", "8", int),
        data_dir=Path(env.get("PAYOUT_DATA_DIR", "./var/worker")),
        web_port=_number(env, "PAYOUT_WEB_PORT", "6066", int),
        max_in_flight=_number(env, "PAYOUT_MAX_IN_FLIGHT", "512", int),
        connect_timeout_s=_number(env, "PAYOUT_CONNECT_TIMEOUT_S", "2", float),
        read_timeout_s=_number(env, "PAYOUT_READ_TIMEOUT_S", "10", float),
        credentials=_load_credentials(env.get("PAYOUT_CREDENTIALS")),
        base_urls=_base_urls(env),
        routing=_load_routing(env.get("PAYOUT_ROUTING")),
        table_standby_replicas=_number(env, "PAYOUT_STANDBY_REPLICAS", "0", int),
        session_timeout_s=_number(env, "PAYOUT_SESSION_TIMEOUT_S", "10", float),
        provider_rate_per_s=_number(env, "PAYOUT_PROVIDER_RATE_PER_S", "5000", float),
        breaker_failure_threshold=_number(env, "PAYOUT_BREAKER_FAILURES", "50", int),
        breaker_open_s=_number(env, "PAYOUT_BREAKER_OPEN_S", "5", float),
        retry_max_attempts=_number(env, "PAYOUT_RETRY_MAX_ATTEMPTS", "8", int),
        retry_max_s=_number(env, "PAYOUT_RETRY_MAX_S", "60", float),
        producer_linger_ms=_number(env, "PAYOUT_PRODUCER_LINGER_MS", "5", float),
        producer_compression=env.get("PAYOUT_PRODUCER_COMPRESSION", "lz4"),
        rocksdb_write_buffer_mb=_number(env, "PAYOUT_ROCKSDB_WRITE_BUFFER_MB", "8", int),
        rocksdb_block_cache_mb=_number(env, "PAYOUT_ROCKSDB_BLOCK_CACHE_MB", "64", int),
        changelog_buffer_max=_number(env, "PAYOUT_CHANGELOG_BUFFER_MAX", "1000", int),
        fault_lose_deliveries=env.get("PAYOUT_FAULT_LOSE_DELIVERIES", ""),
        faults=env.get("PAYOUT_FAULTS", ""),
        producer_max_request_bytes=_number(env, "PAYOUT_PRODUCER_MAX_REQUEST_BYTES", "1000000", int),
        unresolved_retry_s=_number(env, "PAYOUT_UNRESOLVED_RETRY_S", "30", float),
        unresolved_retry_max_s=_number(env, "PAYOUT_UNRESOLVED_RETRY_MAX_S", "900", float),
        fencing=_switch(env, "PAYOUT_FENCING", "on"),
        web_host=env.get("PAYOUT_WEB_HOST", "127.0.0.1"),
        poll_min_s=_number(env, "PAYOUT_POLL_MIN_S", "30", float),
        poll_max_s=_number(env, "PAYOUT_POLL_MAX_S", "900", float),
        poll_rate_per_s=_number(env, "PAYOUT_POLL_RATE_PER_S", "20", float),
        reversal_watch_s=_number(env, "PAYOUT_REVERSAL_WATCH_S", "604800", float),
        reversal_poll_s=_number(env, "PAYOUT_REVERSAL_POLL_S", "21600", float),
    )


def _switch(env: Mapping[str, str], name: str, default: str) -> bool:
    raw = env.get(name, default).strip().lower()
    if raw not in ("on", "off"):
        raise ConfigError(f"{name}: {raw!r} is not on or off")
    return raw == "on"
