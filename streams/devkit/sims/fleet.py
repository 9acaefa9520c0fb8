"""Every provider's simulator as a child process: what demo, chaos and tests run against.

One process per provider (each with its own port), started and stopped by pid. The
fleet names no provider: it runs one simulator per name in the provider registry,
``streams/devkit/sims/<name>.py``, each built by that module's ``fleet_process(...)``
from the shared knobs (latency, jitter, hang, seed), that provider's fault
probabilities and its own options. It tells a worker where each provider is (each
provider's own base-URL variable) and reads every ledger in one shape: links per *our*
reference, so one checker counts links per link key at every provider.

After creation it drives and reads the links' life the same way at every provider:
:meth:`SimulatorFleet.walk` (every link to a final state), :meth:`~SimulatorFleet.statuses`
(the providers' truth), :meth:`~SimulatorFleet.webhooks` and
:meth:`~SimulatorFleet.drain_webhooks` (what was delivered to the receivers). Simulators
whose module says ``WEBHOOKS = True`` get ``webhook_url`` and the webhook knobs.
"""
from __future__ import annotations

import importlib
import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from streams.connectors.registry import PROVIDERS
from streams.devkit.sims.common import SimulatorProcess


def simulator_module(name: str) -> str:
    """The module of provider ``name``'s simulator (it also runs as ``python -m <module>``)."""
    return f"{__package__}.{name}"


class SimulatorFleet:
    """All provider simulators; ``with SimulatorFleet(...) as fleet:`` starts and stops them.

    ``faults`` and ``options`` are keyed by provider name: ``faults={name: {kind: p}}``,
    ``options={name: {...}}`` for that simulator's own knobs (its ``fleet_process``
    keywords), e.g. a token lifetime or whether it honours an idempotency key.

    ``webhook_url``: where the webhook-sending simulators POST, one URL for all (a
    ``{provider}`` in it becomes each provider's name) or ``{name: url}``; ``webhook``:
    webhook knobs for all of them (common.WEBHOOK_KNOBS, e.g. ``{"webhook_drop": 0.05,
    "webhook_forge": 0.1, "webhook_retry_ms": 100}``); ``options[name]["webhook"]``
    overrides them per provider. Both can be changed later with each simulator's
    ``configure(...)``.
    """

    def __init__(self, *, latency_ms: float = 0.0, jitter_ms: float = 0.0,
                 faults: Mapping[str, Mapping[str, float]] | None = None,
                 hang_ms: float | None = None, seed: int | None = None,
                 options: Mapping[str, Mapping[str, Any]] | None = None,
                 webhook_url: str | Mapping[str, str] | None = None,
                 webhook: Mapping[str, Any] | None = None) -> None:
        faults = faults or {}
        options = options or {}
        urls = webhook_url if isinstance(webhook_url, Mapping) else {}
        unknown = sorted((set(faults) | set(options) | set(urls)) - set(PROVIDERS))
        if unknown:
            raise ValueError(f"no such provider: {', '.join(unknown)} (known: {', '.join(PROVIDERS)})")
        self.by_provider: dict[str, SimulatorProcess] = {}
        for name in PROVIDERS:
            module = importlib.import_module(simulator_module(name))
            own = dict(options.get(name, {}))
            if getattr(module, "WEBHOOKS", False):
                url = urls.get(name) if isinstance(webhook_url, Mapping) else webhook_url
                if url is not None:
                    own.setdefault("webhook_url", url.replace("{provider}", name))
                if webhook:
                    own["webhook"] = {**webhook, **own.get("webhook", {})}
            sim = module.fleet_process(latency_ms=latency_ms, jitter_ms=jitter_ms, faults=faults.get(name),
                                       hang_ms=hang_ms, seed=seed, **own)
            if not isinstance(sim, SimulatorProcess):
                raise TypeError(f"{module.__name__}.fleet_process returned {type(sim).__name__}, "
                                "not a SimulatorProcess")
            self.by_provider[name] = sim

    def __getitem__(self, name: str) -> SimulatorProcess:
        """Provider ``name``'s simulator process."""
        return self.by_provider[name]

    def start(self) -> SimulatorFleet:
        try:
            for sim in self.by_provider.values():
                sim.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for sim in self.by_provider.values():
            sim.stop()

    def __enter__(self) -> SimulatorFleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def worker_env(self) -> dict[str, str]:
        """Each provider's base-URL variable, pointing at its simulator."""
        return {PROVIDERS[name].base_url_env: sim.worker_url for name, sim in self.by_provider.items()}

    def links_by_reference(self) -> dict[str, dict[str, list[str]]]:
        """provider -> our reference -> link ids at that provider (duplicates visible)."""
        return {name: sim.links_by_reference() for name, sim in self.by_provider.items()}

    def describe(self) -> str:
        return json.dumps({name: sim.url for name, sim in self.by_provider.items()})

    # -- the links' life after creation, at every provider ----------------------------
    def walk(self, *, seed: int, references: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
             plan: Mapping[str, float] | None = None, step_delay_ms: float | None = None,
             timeout: float = 600.0) -> dict[str, dict[str, str]]:
        """Walk links to a final state at every provider at once (:meth:`SimulatorProcess.walk`):
        provider -> our reference -> final status. ``references``: a list for all, or
        ``{provider: [...]}`` (a provider left out walks every link not final)."""

        def one(item: tuple[str, SimulatorProcess]) -> tuple[str, dict[str, str]]:
            name, sim = item
            refs = references.get(name) if isinstance(references, Mapping) else references
            return name, sim.walk(seed=seed, references=refs, plan=plan, step_delay_ms=step_delay_ms,
                                  timeout=timeout)

        with ThreadPoolExecutor(max_workers=len(self.by_provider) or 1) as pool:
            return dict(pool.map(one, self.by_provider.items()))

    def send_webhooks_to(self, url: str | None, **knobs: Any) -> None:
        """Point every webhook-sending simulator at ``url`` (``{provider}`` becomes its
        name; None: send none), with webhook ``knobs``: e.g. a worker's web server once
        it has a port."""
        for name, sim in self.by_provider.items():
            if getattr(importlib.import_module(simulator_module(name)), "WEBHOOKS", False):
                sim.configure(webhook_url=None if url is None else url.replace("{provider}", name),
                              **knobs)

    def statuses(self) -> dict[str, dict[str, dict[str, Any]]]:
        """provider -> our reference -> ``{"status", "final", "id"}``: the providers' truth."""
        return {name: sim.statuses() for name, sim in self.by_provider.items()}

    def webhooks(self) -> dict[str, dict[str, Any]]:
        """provider -> its webhook records and counts (``{"webhooks", "events", "counts"}``)."""
        return {name: sim.webhooks() for name, sim in self.by_provider.items()}

    def drain_webhooks(self, timeout: float = 60.0) -> dict[str, dict[str, Any]]:
        """Wait until no simulator has a webhook delivery in flight; provider -> ``{"drained", "counts"}``."""
        with ThreadPoolExecutor(max_workers=len(self.by_provider) or 1) as pool:
            return dict(pool.map(lambda item: (item[0], item[1].drain_webhooks(timeout)),
                                 self.by_provider.items()))
