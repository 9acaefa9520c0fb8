"""``/metrics`` (Prometheus), ``/health/live`` and ``/health/ready`` on the worker's web
server. Thin: the facts come from the pipeline, the verdicts from :mod:`streams.health`,
the metrics from :mod:`streams.metrics`."""
from __future__ import annotations

from typing import Any

from faust import web
from prometheus_client import CONTENT_TYPE_LATEST

from streams import health, metrics
from streams.app import app
from streams.pipeline import pipeline


@app.page("/metrics")
class Metrics(web.View):
    async def get(self, request: web.Request) -> Any:
        return self.bytes(metrics.exposition(), content_type=CONTENT_TYPE_LATEST.split(";")[0])


@app.page("/health/live")
class Liveness(web.View):
    async def get(self, request: web.Request) -> Any:
        verdict = health.liveness(pipeline.facts())
        return self.json(verdict.body(), status=200 if verdict.ok else 503)


@app.page("/health/ready")
class Readiness(web.View):
    async def get(self, request: web.Request) -> Any:
        verdict = health.readiness(pipeline.facts())
        return self.json(verdict.body(), status=200 if verdict.ok else 503)
