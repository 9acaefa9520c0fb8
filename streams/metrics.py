"""The worker's Prometheus metrics (``GET /metrics``), all declared here.

Labels are bounded: provider, result, HTTP status, outcome code, status, topic and
partition, never a link key or merchant id (a label per link would grow the registry
without bound). Code records through the small functions below, so the hot path pays
one dict lookup and an increment; values that already exist elsewhere (in-flight,
links in doubt, breaker state, consumer lag, delivery seeks) are read
at scrape time by :class:`WorkerCollector` instead of being copied on every change.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

REQUESTS = Counter("payout_requests", "Request and command records by intake result "
                   "(valid, invalid, unparseable, rekeyed, poison, cancel, invalid_command).",
                   ["result"], registry=REGISTRY)
OUTCOMES = Counter("payout_outcomes_published", "Events published, by type and error code "
                   "('' when none); a re-published outcome counts again.",
                   ["event_type", "code"], registry=REGISTRY)
PROVIDER_CALLS = Counter("payout_provider_calls", "Provider calls by provider, result "
                         "(the outcome's kind) and HTTP or gRPC status ('' when none).",
                         ["provider", "result", "status"], registry=REGISTRY)
PROVIDER_LATENCY = Histogram("payout_provider_call_seconds", "Provider call latency, "
                             "including the rate limit's wait.", ["provider"],
                             buckets=(.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30),
                             registry=REGISTRY)
RATE_LIMIT_WAIT = Histogram("payout_rate_limit_wait_seconds", "Time a provider call waited "
                            "for the worker's rate limit.", ["provider"],
                            buckets=(.001, .01, .05, .1, .5, 1, 5, 30), registry=REGISTRY)
BREAKER_REFUSALS = Counter("payout_breaker_refusals", "Calls refused by an open circuit "
                           "breaker (never sent).", ["provider"], registry=REGISTRY)
RETRIES = Counter("payout_provider_retries", "Provider calls retried after an answer that "
                  "proved nothing was created.", ["provider"], registry=REGISTRY)
UNRESOLVED = Counter("payout_links_parked", "Links left in doubt (unresolved) and parked "
                     "for re-drive, by reason (in_doubt, connector_unreachable, "
                     "unexpected_error).", ["reason"], registry=REGISTRY)
STATUS_CHANGES = Counter("payout_status_changes", "payout-link-status-changed events "
                         "published, by provider and Prism status.",
                         ["provider", "payout_status"], registry=REGISTRY)
WEBHOOKS = Counter("payout_webhooks", "Webhook deliveries by provider and verification "
                   "result.", ["provider", "result"], registry=REGISTRY)


_children: dict[tuple[Any, ...], Any] = {}


def child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, kept: ``labels()`` takes a lock and builds a tuple
    every call (1 % of the worker's CPU at full load, bench profile); the label sets
    are bounded, so the cache is too."""
    key = (id(metric), *labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found


def outcome_published(event: Mapping[str, Any]) -> None:
    try:
        _outcome_published(event)
    except Exception:  # counting must never turn a published outcome into a failure
        log.exception("counting a published event failed")


def _outcome_published(event: Mapping[str, Any]) -> None:
    error = event.get("error")
    code = error.get("code") if isinstance(error, Mapping) else event.get("code")
    child(OUTCOMES, str(event.get("event_type", "")), str(code or "")).inc()
    if event.get("event_type") == "payout-link-status-changed":
        child(STATUS_CHANGES, str(event.get("connector") or ""),
              str(event.get("payout_status") or "")).inc()


def provider_call(provider: str, answer: object, seconds: float) -> None:
    """Never raises: it runs between a provider's answer and its return, where an
    exception would turn a created link into one in doubt."""
    try:
        _provider_call(provider, answer, seconds)
    except Exception:
        log.exception("counting a provider call failed")


def _provider_call(provider: str, answer: object, seconds: float) -> None:
    status = getattr(answer, "status_code", None)
    child(PROVIDER_CALLS, provider, type(answer).__name__.lower(),
          "" if status is None else str(status)).inc()
    child(PROVIDER_LATENCY, provider).observe(seconds)


Gauges = Callable[[], Iterable[tuple[str, str, Mapping[str, str], float]]]


class WorkerCollector(Collector):
    """Gauges read at scrape time from the running worker: each source yields
    ``(name, help, labels, value)``; a source that fails is skipped, never the scrape."""

    def __init__(self) -> None:
        self._sources: list[Gauges] = []

    def add(self, source: Gauges) -> None:
        self._sources.append(source)

    def collect(self) -> Iterable[Metric]:
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
        for source in list(self._sources):
            try:
                samples = list(source())
            except Exception:  # a half-started worker: report what can be read
                continue
            for name, help_text, labels, value in samples:
                family = families.get(name)
                if family is None:
                    # A name ending in _total is a counter kept elsewhere (e.g. seeks).
                    kind = CounterMetricFamily if name.endswith("_total") else GaugeMetricFamily
                    family = families[name] = kind(name, help_text, labels=sorted(labels))
                family.add_metric([labels[k] for k in sorted(labels)], value)
        return list(families.values())


WORKER = WorkerCollector()
REGISTRY.register(WORKER)


def exposition() -> bytes:
    return generate_latest(REGISTRY)
