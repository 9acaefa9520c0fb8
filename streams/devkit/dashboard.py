"""``python -m streams.devkit.dashboard``: writes docs/grafana-dashboard.json from the
panels below, each with the question it answers (docs/operations.md lists them). A test
checks every query names only metrics the worker exports, so the dashboard cannot
drift from streams/metrics.py unnoticed."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"

# (title, question it answers, unit, [(query, legend)], kind)
PANELS: list[tuple[str, str, str, list[tuple[str, str]], str]] = [
    ("Requests by intake result",
     "Is traffic arriving, and how much of it is invalid, unparseable or poison?", "reqps",
     [("sum by (result) (rate(payout_requests_total[1m]))", "{{result}}")], "timeseries"),
    ("Outcomes by type and code",
     "What are we telling upstream: links created, failures by code, dead letters?", "ops",
     [("sum by (event_type, code) (rate(payout_outcomes_published_total[5m]))",
       "{{event_type}} {{code}}")], "timeseries"),
    ("Failure ratio",
     "Of the links settled, what share failed (a provider or credential problem shows "
     "here first)?", "percentunit",
     [("sum(rate(payout_outcomes_published_total{event_type=\"payout-link-failed\"}[5m])) / "
       "clamp_min(sum(rate(payout_outcomes_published_total{event_type=~\"payout-link-"
       "(created|failed)\"}[5m])), 1e-9)", "failed / settled")], "stat"),
    ("Links in doubt (unresolved)",
     "How many links have an unknown outcome at their provider right now? Non-zero for "
     "long means a provider is not answering lookups: page someone.", "short",
     [("sum(payout_links_unresolved)", "in doubt"),
      ("sum by (reason) (increase(payout_links_parked_total[15m]))", "parked: {{reason}}")],
     "timeseries"),
    ("Provider calls by result and status",
     "Is each provider answering, refusing, throttling, or timing out?", "ops",
     [("sum by (provider, result, status) (rate(payout_provider_calls_total[5m]))",
       "{{provider}} {{result}} {{status}}")], "timeseries"),
    ("Provider latency p50 / p95 / p99",
     "How slow is each provider (the rate limit's wait included)?", "s",
     [(f"histogram_quantile({q}, sum by (le, provider) "
       f"(rate(payout_provider_call_seconds_bucket[5m])))", f"{{{{provider}}}} p{int(q * 100)}")
      for q in (0.5, 0.95, 0.99)], "timeseries"),
    ("Circuit breakers",
     "Which provider circuits are open (2) or probing (1)? Open means calls are refused "
     "without being sent.", "short",
     [("max by (provider, circuit) (payout_breaker_state)", "{{circuit}}"),
      ("sum by (provider) (rate(payout_breaker_refusals_total[5m]))", "{{provider}} refused/s")],
     "timeseries"),
    ("Retries and rate-limit waits",
     "Are we retrying a lot, or queueing behind our own rate limit?", "short",
     [("sum by (provider) (rate(payout_provider_retries_total[5m]))", "{{provider}} retries/s"),
      ("histogram_quantile(0.95, sum by (le, provider) "
       "(rate(payout_rate_limit_wait_seconds_bucket[5m])))", "{{provider}} wait p95 (s)")],
     "timeseries"),
    ("Consumer lag per partition",
     "Are the workers keeping up? A partition whose lag only grows is stuck.", "short",
     [("sum by (topic, partition) (payout_consumer_lag)", "{{topic}}/{{partition}}")],
     "timeseries"),
    ("In flight",
     "How much provider work is running now, against PAYOUT_MAX_IN_FLIGHT?", "short",
     [("sum(payout_in_flight)", "in flight")], "timeseries"),
    ("Dead letters",
     "Are records arriving that cannot be read at all (they need a redrive)?", "ops",
     [("sum(rate(payout_outcomes_published_total{event_type=\"payout-link-dead-letter\"}[5m]))",
       "dead letters/s")], "timeseries"),
    ("Delivery-guard seeks",
     "Did Faust lose records between fetch and agent (each seek fetched them again)?", "short",
     [("sum(increase(payout_delivery_seeks_total[15m]))", "seeks / 15 min")], "timeseries"),
    ("Webhooks by result",
     "Are providers' webhooks arriving and verifying? Bad signatures mean a wrong secret "
     "or forgery.", "ops",
     [("sum by (provider, result) (rate(payout_webhooks_total[5m]))", "{{provider}} {{result}}")],
     "timeseries"),
    ("Status changes",
     "How do links move after creation: claimed, paid, expired, cancelled, reversed?", "ops",
     [("sum by (provider, payout_status) (rate(payout_status_changes_total[5m]))",
       "{{provider}} {{payout_status}}")], "timeseries"),
]


def dashboard() -> dict[str, Any]:
    panels = []
    for n, (title, question, unit, targets, kind) in enumerate(PANELS):
        panels.append({
            "id": n + 1, "type": kind, "title": title, "description": question,
            "datasource": {"type": "prometheus", "uid": "${DS_PROMETHEUS}"},
            "gridPos": {"h": 8, "w": 12, "x": 12 * (n % 2), "y": 8 * (n // 2)},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": chr(65 + i), "expr": expr, "legendFormat": legend}
                        for i, (expr, legend) in enumerate(targets)],
        })
    return {
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource",
                      "pluginId": "prometheus"}],
        "title": "Payout links", "uid": "payout-links", "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"}, "refresh": "30s", "tags": ["payouts"],
        "panels": panels,
    }


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (words starting payout_)."""
    bare = re.sub(r"\{[^}]*\}|by \([^)]*\)", " ", expr)  # label selectors and groupings
    return set(re.findall(r"\b(payout_[a-z_]+?)(?:_bucket|_count|_sum)?\b(?=[\[ )]|$)", bare))


def main() -> None:
    OUT.write_text(json.dumps(dashboard(), indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
