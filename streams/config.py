"""All settings, read once from the environment, typed and validated in one place.

Every variable the worker reads is a field of :class:`Settings` (its environment name,
type, bounds, default and meaning), or, for the few read before the settings exist, a
row of :data:`EARLY_VARIABLES`; ``python -m streams config --doc`` prints the README's
table from them (a test keeps the README equal to it), ``python -m streams config
--check`` validates a configuration without starting. A bad value is one
:class:`ConfigError` line naming the variable, never a traceback and never a secret.

Credentials live here and only here: they are loaded per merchant and provider, each
parsed by its provider's own account type (whose ``repr`` hides secrets), and never
copied into events or logs. Nothing here names a provider: providers come from
:mod:`streams.connectors.registry`.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


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

    def all(self) -> tuple[str, ...]:
        return (self.requested, self.routed, self.created, self.failed, self.dead_letter,
                self.status_changed, self.reports, self.cancel_requested, self.cancel_failed)


def variable(name: str, doc: str, default: Any, *, shown: str | None = None, **bounds: Any) -> Any:
    """A field read from the environment variable ``name``; ``doc`` is its README row."""
    return Field(default, validation_alias=name, description=doc,
                 json_schema_extra={"env": name, "shown": shown}, **bounds)


Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeSeconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class Settings(BaseModel):
    """The worker's configuration. Field order is the README table's order."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True,
                              arbitrary_types_allowed=True)

    bootstrap_servers: str = variable("KAFKA_BOOTSTRAP_SERVERS", "the cluster", "127.0.0.1:9092",
                                 min_length=1)
    app_id: str = variable("PAYOUT_APP_ID", "consumer group and changelog prefix", "payout-links",
                      pattern=r"^[A-Za-z0-9._-]{1,200}$")
    partitions: int = variable("PAYOUT_TOPIC_PARTITIONS",
                          "partitions of every pipeline topic and table; a worker refuses to "
                          "start when an existing topic has another count (naming it)", 8,
                          ge=1, le=10000)
    replication_factor: int = variable(
        "PAYOUT_REPLICATION_FACTOR",
        "replication factor of every topic the worker creates (pipeline and changelog)", 3,
        ge=1, le=32)
    min_insync_replicas: int = variable(
        "PAYOUT_MIN_INSYNC_REPLICAS",
        "`min.insync.replicas` of every topic the worker creates (with `acks=all`, a write "
        "survives the loss of all but this many replicas); at most the replication factor",
        2, ge=1, le=32)
    allow_fewer_brokers: bool = variable(
        "PAYOUT_ALLOW_FEWER_BROKERS",
        "development only: `on` lets a worker start on a cluster with fewer brokers than the "
        "replication factor, creating its topics with as many replicas as there are brokers "
        "(one warning line); `off` refuses to start (exit 2)", False, shown="off")
    data_dir: Path = variable("PAYOUT_DATA_DIR", "local RocksDB table store", Path("./var/worker"),
                         shown="./var/worker")
    max_in_flight: int = variable("PAYOUT_MAX_IN_FLIGHT", "provider calls in flight per worker", 512,
                             ge=1, le=100_000)
    table_standby_replicas: int = variable("PAYOUT_STANDBY_REPLICAS", "table standby replicas", 0,
                                      ge=0, le=16)
    # merchant id or "*" -> provider name -> that provider's parsed account type
    credentials: Mapping[str, Mapping[str, Any]] = Field(default_factory=dict, repr=False,
                                                         exclude=True)
    # provider name -> base URL (each provider's own variable, else its default)
    base_urls: Mapping[str, str] = Field(default_factory=dict)
    # merchant id or "*" -> providers in order of preference, for requests naming none
    routing: Mapping[str, tuple[str, ...]] = Field(default_factory=dict)
    session_timeout_s: Seconds = variable(
        "PAYOUT_SESSION_TIMEOUT_S",
        "how long a crashed worker holds its partitions; also sets the ownership lease "
        "(0.6–0.8 of it) and, with the provider timeouts, how long a new owner waits before "
        "looking up a link the old one may have been creating (lease + connect + read: 19.5 s "
        "by default; [fencing](docs/architecture.md#fencing-a-paused-or-cut-off-worker-never-"
        "sends-a-second-create))", 10.0, shown="10", ge=3, le=3600)
    fencing: bool = variable("PAYOUT_FENCING",
                        "tests only: `off` lets a paused worker send the creates it had queued "
                        "after it lost its partitions (second links); the fencing test uses it "
                        "as its control", True, shown="on")
    provider_rate_per_s: NonNegativeSeconds = variable(
        "PAYOUT_PROVIDER_RATE_PER_S", "per-connector call rate limit (0 = none)", 5000.0,
        shown="5000")
    breaker_failure_threshold: int = variable(
        "PAYOUT_BREAKER_FAILURES", "consecutive provider failures that open the circuit", 50,
        ge=1)
    breaker_open_s: Seconds = variable("PAYOUT_BREAKER_OPEN_S", "how long an open circuit stays open",
                                  5.0, shown="5")
    retry_max_attempts: int = variable(
        "PAYOUT_RETRY_MAX_ATTEMPTS",
        "attempts for calls that provably created nothing, then `retries_exhausted`", 8,
        ge=1, le=1000)
    retry_max_s: Seconds = variable("PAYOUT_RETRY_MAX_S",
                               "time budget for those attempts, then `retries_exhausted`", 60.0,
                               shown="60")
    connect_timeout_s: Seconds = variable(
        "PAYOUT_CONNECT_TIMEOUT_S",
        "provider connect timeout; with the read timeout it bounds a whole call (the call "
        "window a new owner waits out)", 2.0, shown="2")
    read_timeout_s: Seconds = variable("PAYOUT_READ_TIMEOUT_S", "provider read timeout", 10.0,
                                  shown="10")
    rocksdb_write_buffer_mb: int = variable(
        "PAYOUT_ROCKSDB_WRITE_BUFFER_MB",
        "per table partition (×2 write buffers); bounds the worker's memory as the table grows",
        8, ge=1, le=4096)
    rocksdb_block_cache_mb: int = variable("PAYOUT_ROCKSDB_BLOCK_CACHE_MB",
                                      "RocksDB block cache per table partition", 64,
                                      ge=1, le=65536)
    changelog_buffer_max: int = variable(
        "PAYOUT_CHANGELOG_BUFFER_MAX",
        "changelog writes Faust may queue before it pauses the streams", 1000, ge=1)
    shutdown_timeout_s: Seconds = variable(
        "PAYOUT_SHUTDOWN_TIMEOUT_S",
        "from SIGTERM or a fatal error to the end of the process, whatever happens (then "
        "`os._exit`)", 30.0, shown="30")
    shutdown_drain_s: NonNegativeSeconds = variable(
        "PAYOUT_SHUTDOWN_DRAIN_S",
        "how long provider calls in flight may finish after SIGTERM before they are abandoned "
        "(must be ≥ 5 s below the timeout)", 10.0, shown="10")
    producer_max_request_bytes: int = variable(
        "PAYOUT_PRODUCER_MAX_REQUEST_BYTES",
        "the producer's record limit; every topic the worker writes must accept at least this "
        "(`max.message.bytes`)", 1_000_000, ge=10_000, le=100_000_000)
    unresolved_retry_s: Seconds = variable(
        "PAYOUT_UNRESOLVED_RETRY_S",
        "a link left in doubt by an unexpected error or a provider that would not answer "
        "(after 60 s of asking) is re-driven after this wait, doubling up to the max; never "
        "failed", 30.0, shown="30")
    unresolved_retry_max_s: Seconds = variable("PAYOUT_UNRESOLVED_RETRY_MAX_S",
                                          "the longest wait between re-drives of a link in doubt",
                                          900.0, shown="900")
    producer_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = variable(
        "PAYOUT_PRODUCER_COMPRESSION",
        "codec of the worker's own batches (outcomes, changelog): `none`, `gzip`, `snappy`, "
        "`lz4` or `zstd`. Reading accepts every codec whatever this is "
        "([docs/benchmarks.md](docs/benchmarks.md#producer-compression-2026-11-22))", "lz4")
    producer_linger_ms: NonNegativeSeconds = variable(
        "PAYOUT_PRODUCER_LINGER_MS",
        "how long the producer waits to batch records (ms)", 5.0, shown="5")
    web_host: str = variable(
        "PAYOUT_WEB_HOST",
        "the address the worker's web server binds: provider webhooks, the link lookup API, "
        "health and `/metrics` (docs/operations.md). Providers must reach it: put an ingress "
        "in front", "0.0.0.0", min_length=1)
    web_port: int = variable("PAYOUT_WEB_PORT", "the web server's port", 6066, ge=1, le=65535)
    web_advertised_url: str = variable(
        "PAYOUT_WEB_ADVERTISED_URL",
        "the URL other workers reach this one at (a lookup of a link owned elsewhere is "
        "forwarded there); default `http://<hostname>:<port>`", "", shown="")
    log_format: Literal["text", "json"] = variable(
        "PAYOUT_LOG_FORMAT",
        "`json`: one JSON object per log line (with the link's correlation id), for log "
        "pipelines; `text`: Faust's human format", "text")
    poll_min_s: Seconds = variable(
        "PAYOUT_POLL_MIN_S",
        "a created link that can still change is polled every min…max seconds, growing with "
        "its age: a missed webhook is caught within the max plus one pass of the sweep", 30.0,
        shown="30")
    poll_max_s: Seconds = variable("PAYOUT_POLL_MAX_S", "the longest interval between polls of a link",
                              900.0, shown="900")
    poll_rate_per_s: Seconds = variable(
        "PAYOUT_POLL_RATE_PER_S",
        "status polls a second per provider per worker (the sweep spreads links due at once)",
        20.0, shown="20")
    reconcile_rate_per_s: Seconds = variable(
        "PAYOUT_RECONCILE_RATE_PER_S",
        "provider calls a second per provider made by `python -m streams reconcile` (lists "
        "and lookups; each provider's published limit is far above)", 20.0, shown="20")
    reconcile_concurrency: int = variable(
        "PAYOUT_RECONCILE_CONCURRENCY",
        "provider calls in flight at once per provider during a reconciliation", 8, ge=1,
        le=256)
    reversal_watch_s: Seconds = variable(
        "PAYOUT_REVERSAL_WATCH_S",
        "how long a paid-out link that a reversal could still undo (each provider's "
        "lifecycle names those statuses, e.g. Prism `SUCCESS`) is still polled (the "
        "provider's webhook tells a reversal; the poll is for a lost one)", 7 * 86400.0,
        shown="604800")
    reversal_poll_s: Seconds = variable("PAYOUT_REVERSAL_POLL_S",
                                   "how often such a link is polled", 6 * 3600.0, shown="21600")
    # Links whose handling failed after a provider call may have been made stay
    # unresolved and are re-driven on the cadence above (doubling up to the max).
    fault_lose_deliveries: str = variable("PAYOUT_FAULT_LOSE_DELIVERIES",
                                     "tests only: see `streams.delivery.InjectedLoss`", "")
    faults: str = variable("PAYOUT_FAULTS", "tests only: see `streams.faults`", "")
    topics: Topics = Field(default_factory=Topics)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(f"PAYOUT_MIN_INSYNC_REPLICAS ({self.min_insync_replicas}) must "
                             f"not exceed PAYOUT_REPLICATION_FACTOR ({self.replication_factor})")
        if self.poll_min_s > self.poll_max_s:
            raise ValueError(f"PAYOUT_POLL_MIN_S ({self.poll_min_s:g}) must not exceed "
                             f"PAYOUT_POLL_MAX_S ({self.poll_max_s:g})")
        if self.unresolved_retry_s > self.unresolved_retry_max_s:
            raise ValueError("PAYOUT_UNRESOLVED_RETRY_S must not exceed "
                             "PAYOUT_UNRESOLVED_RETRY_MAX_S")
        if self.shutdown_drain_s + 5.0 >= self.shutdown_timeout_s:
            raise ValueError(f"PAYOUT_SHUTDOWN_DRAIN_S ({self.shutdown_drain_s:g}) must be at "
                             f"least 5 s below PAYOUT_SHUTDOWN_TIMEOUT_S "
                             f"({self.shutdown_timeout_s:g})")
        return self

    @property
    def heartbeat_interval_s(self) -> float:
        """The group heartbeat: a third of the session, at most 3 s (Kafka's default)."""
        return min(3.0, self.session_timeout_s / 3)

    @property
    def advertised_url(self) -> str:
        if self.web_advertised_url:
            return self.web_advertised_url.rstrip("/")
        import socket
        host = self.web_host if self.web_host not in ("0.0.0.0", "::", "") \
            else socket.gethostname()
        return f"http://{host}:{self.web_port}"

    def account(self, merchant_id: str, provider: str) -> Any | None:
        """The merchant's account at ``provider``, falling back to the ``*`` entry."""
        own = self.credentials.get(merchant_id)
        if own is not None and provider in own:
            return own[provider]
        return (self.credentials.get("*") or {}).get(provider)

    def preference(self, merchant_id: str) -> tuple[str, ...]:
        return self.routing.get(merchant_id) or self.routing.get("*") or ()


@dataclass(frozen=True)
class Variable:
    """One documented environment variable."""

    name: str
    default: str
    meaning: str


# Read before the settings exist (the event loop, the Faust version check), or owned by
# a provider package (each provider's base URL, see ``base_url_variables``).
EARLY_VARIABLES: tuple[Variable, ...] = (
    Variable("PAYOUT_ALLOW_UNTESTED_FAUST", "unset",
             "`1` lets a worker start, with one warning line, on faust-streaming / "
             "mode-streaming / aiokafka versions other than those its Faust internals were "
             "written against (0.15.3 / 0.7.1 / 0.14.0); otherwise it stops at startup "
             "(exit 2). A missing internal stops it always "
             "([streams/faust_internals.py](streams/faust_internals.py))"),
    Variable("PAYOUT_EVENT_LOOP", "uvloop",
             "`asyncio` runs the worker on the standard event loop instead (for comparison)"),
)

def _credentials_doc(entries: list[str]) -> str:
    return ('JSON, or a path to JSON: `{"<merchant_id>" or "*": {"<provider>": {...}}}` with '
            + ", ".join(entries)
            + '; each entry is checked at startup (a bad one: one line naming merchant, '
            'provider and field, exit 2)')


def _routing_doc(order: list[str]) -> str:
    return ('`{"<merchant_id>" or "*": ["<provider>", ...]}`: the order providers are tried '
            "in for a merchant's requests that name no `connector`; else the registry's "
            f"order ({', '.join(order)}), among those paying out in the request's currency "
            "for which the merchant has an account (an account may narrow its provider's "
            "currencies, as a Prism entry's `currencies` does)")


def variables() -> list[Variable]:
    """Every variable the worker reads, in the README table's order."""
    from streams.connectors.registry import PROVIDERS

    out: list[Variable] = []
    for name, info in Settings.model_fields.items():
        extra = info.json_schema_extra
        if not isinstance(extra, dict) or "env" not in extra:
            continue
        shown = extra.get("shown")
        default = shown if isinstance(shown, str) else _shown(info.default)
        out.append(Variable(str(extra["env"]), default, info.description or ""))
        if name == "table_standby_replicas":
            out.append(Variable("PAYOUT_CREDENTIALS", "every simulator's dev account",
                                _credentials_doc([p.credentials_doc
                                                  for p in PROVIDERS.values()])))
            out.append(Variable("PAYOUT_ROUTING", "none", _routing_doc(list(PROVIDERS))))
            for p in PROVIDERS.values():
                out.append(Variable(p.base_url_env, p.default_base_url, p.base_url_doc))
    return out + list(EARLY_VARIABLES)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def markdown_table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for v in variables():
        default = f"`{v.default}`" if v.default and v.default not in ("unset", "none") \
            else (v.default or "unset")
        rows.append(f"| `{v.name}` | {default} | {v.meaning} |")
    return "\n".join(rows) + "\n"


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


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """The settings from ``env`` (default: the process environment); ConfigError on any
    bad value, naming the variable."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for info in Settings.model_fields.values():
        name = (info.json_schema_extra or {}).get("env") \
            if isinstance(info.json_schema_extra, dict) else None
        if isinstance(name, str) and name in env:
            values[name] = env[name].strip()
    values["credentials"] = _load_credentials(env.get("PAYOUT_CREDENTIALS"))
    values["base_urls"] = _base_urls(env)
    values["routing"] = _load_routing(env.get("PAYOUT_ROUTING"))
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None


def _one_line(exc: ValidationError) -> str:
    """The first problem as ``VARIABLE: 'value' problem`` (values of these variables are
    never secrets: credentials are parsed, and reported, by their providers)."""
    error = exc.errors(include_url=False)[0]
    where = str(error["loc"][0]) if error.get("loc") else ""
    message = error["msg"].removeprefix("Value error, ")
    if not where:  # a rule across variables: the message names them
        return message
    value = error.get("input")
    shown = f"{value[:60]!r} " if isinstance(value, str) else ""
    problem = {"int_parsing": "is not an integer", "float_parsing": "is not a number",
               "bool_parsing": "is not on or off"}.get(error["type"], message)
    problem = re.sub(r"^(Input|String|Value) should", "should", problem)
    return f"{where}: {shown}{problem}"
