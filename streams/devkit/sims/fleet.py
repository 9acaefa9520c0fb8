"""Every provider's simulator as a child process: what demo, chaos and tests run against.

One process per provider (each with its own port), started and stopped by pid. The
fleet names no provider: it runs one simulator per name in the provider registry,
``streams/devkit/sims/<name>.py``, each built by that module's ``fleet_process(...)``
from the shared knobs (latency, jitter, hang, seed), that provider's fault
probabilities and its own options. It tells a worker where each provider is (each
provider's own base-URL variable) and reads every ledger in one shape: links per *our*
reference, so one checker counts links per link key at every provider.
"""
from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
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
    """

    def __init__(self, *, latency_ms: float = 0.0, jitter_ms: float = 0.0,
                 faults: Mapping[str, Mapping[str, float]] | None = None,
                 hang_ms: float | None = None, seed: int | None = None,
                 options: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        faults = faults or {}
        options = options or {}
        unknown = sorted((set(faults) | set(options)) - set(PROVIDERS))
        if unknown:
            raise ValueError(f"no such provider: {', '.join(unknown)} (known: {', '.join(PROVIDERS)})")
        self.by_provider: dict[str, SimulatorProcess] = {}
        for name in PROVIDERS:
            module = importlib.import_module(simulator_module(name))
            sim = module.fleet_process(latency_ms=latency_ms, jitter_ms=jitter_ms, faults=faults.get(name),
                                       hang_ms=hang_ms, seed=seed, **options.get(name, {}))
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
