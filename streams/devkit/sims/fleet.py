"""Every provider's simulator as a child process: what demo, chaos and tests run against.

One process per provider (each with its own port), started and stopped by pid. The
fleet tells a worker where each provider is (each provider's own base-URL variable)
and reads every ledger in one shape: links per *our* reference, so one checker counts
links per link key at every provider.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

from streams.connectors.registry import PROVIDERS
from streams.devkit.sims import revolut
from streams.devkit.sims.cashfree import CashfreeSimulatorProcess
from streams.devkit.simulator import SimulatorProcess


class RevolutSimulatorProcess(SimulatorProcess):
    """The Revolut simulator as a child process (start/stop/URL as the other two)."""

    health_path = revolut.SIM_PREFIX + "/health"

    def __init__(self, *, latency_ms: float = 0.0, jitter_ms: float = 0.0,
                 faults: Mapping[str, float] | None = None, hang_ms: float | None = None,
                 seed: int | None = None, honour_request_id: bool = True,
                 token_ttl_s: float | None = None, python: str = sys.executable,
                 startup_timeout: float = 15.0, stderr: Any = None) -> None:
        super().__init__(python=python, startup_timeout=startup_timeout, stderr=stderr)
        argv = [python, "-m", "streams.devkit.sims.revolut", "--host", "127.0.0.1", "--port", "0",
                "--latency-ms", str(latency_ms), "--jitter-ms", str(jitter_ms),
                "--honour-request-id" if honour_request_id else "--no-request-id"]
        for flag, value in (("--hang-ms", hang_ms), ("--seed", seed), ("--token-ttl-s", token_ttl_s)):
            if value is not None:
                argv += [flag, str(value)]
        for kind, p in (faults or {}).items():
            argv += ["--" + kind.replace("_", "-"), str(p)]
        self.argv = argv

    def ledger(self) -> dict[str, Any]:
        return self._call("GET", revolut.SIM_PREFIX + "/ledger")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", revolut.SIM_PREFIX + "/stats")

    def configure(self, **patch: Any) -> dict[str, Any]:
        return self._call("POST", revolut.SIM_PREFIX + "/config", patch)

    def revoke_tokens(self) -> dict[str, Any]:
        return self._call("POST", revolut.SIM_PREFIX + "/tokens/revoke", {"access_tokens": True})


class SimulatorFleet:
    """All provider simulators; ``with SimulatorFleet(...) as fleet:`` starts and stops them."""

    def __init__(self, *, latency_ms: float = 0.0, jitter_ms: float = 0.0,
                 faults: Mapping[str, Mapping[str, float]] | None = None,
                 hang_ms: float | None = None, seed: int | None = None,
                 cashfree_token_ttl_s: float | None = None,
                 revolut_honour_request_id: bool = True) -> None:
        faults = faults or {}
        self.razorpay = SimulatorProcess(latency_ms=latency_ms, jitter_ms=jitter_ms,
                                         faults=faults.get("razorpay"), hang_ms=hang_ms, seed=seed)
        cashfree_config: dict[str, Any] = {"latency_ms": latency_ms, "jitter_ms": jitter_ms,
                                           **faults.get("cashfree", {})}
        if hang_ms is not None:
            cashfree_config["hang_ms"] = hang_ms
        if seed is not None:
            cashfree_config["seed"] = seed
        if cashfree_token_ttl_s is not None:
            cashfree_config["token_ttl_s"] = cashfree_token_ttl_s
        self.cashfree = CashfreeSimulatorProcess(config=cashfree_config)
        self.revolut = RevolutSimulatorProcess(
            latency_ms=latency_ms, jitter_ms=jitter_ms, faults=faults.get("revolut"),
            hang_ms=hang_ms, seed=seed, honour_request_id=revolut_honour_request_id)
        self.by_provider: dict[str, SimulatorProcess] = {
            "razorpay": self.razorpay, "cashfree": self.cashfree, "revolut": self.revolut}

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
        return {PROVIDERS[name].base_url_env: sim.url for name, sim in self.by_provider.items()
                if name in PROVIDERS}

    def links_by_reference(self) -> dict[str, dict[str, list[str]]]:
        """provider -> our reference -> link ids at that provider (duplicates visible)."""
        razorpay = self.razorpay.ledger().get("by_receipt", {})
        cashfree = self.cashfree.ledger().get("by_reference", {})
        revolut_ledger = self.revolut.ledger()
        revolut_links = revolut_ledger.get("by_request_id", {})
        return {"razorpay": {k: list(v) for k, v in razorpay.items()},
                "cashfree": {k: [str(i) for i in v] for k, v in cashfree.items()},
                "revolut": {k: list(v) for k, v in revolut_links.items()}}

    def describe(self) -> str:
        return json.dumps({name: sim.url for name, sim in self.by_provider.items()})
