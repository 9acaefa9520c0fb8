"""Per-connector protection: a rate limit and a circuit breaker around every call.

Both come from maintained libraries (aiolimiter, purgatory). A call refused by an open
circuit never leaves the worker, so it is a :class:`Transient` outcome: provably
nothing was created, and the settlement's backoff decides when to try again.
"""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiolimiter import AsyncLimiter
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from streams import metrics
from streams.connectors.base import ProviderOutcome, Transient, Unknown
from streams.ownership import Fenced

Send = Callable[[], Awaitable[ProviderOutcome]]
T = TypeVar("T")


class _ProviderUnhealthy(Exception):
    """Raised inside the breaker so it counts the answer as a failure."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer


def unhealthy(answer: object) -> bool:
    """Server errors and calls that got no answer; a rejection or throttling is not the
    provider being down, and the breaker's own refusals are not counted again."""
    if isinstance(answer, Unknown):
        return True
    if isinstance(answer, Transient):
        return not answer.reason.startswith(("circuit_open", "throttled", "auth_unavailable"))
    return False


class ProviderGuard:
    def __init__(self, connector: str, *, rate_per_s: float, failure_threshold: int,
                 open_seconds: float) -> None:
        self.connector = connector
        self._limiter = AsyncLimiter(rate_per_s, 1.0) if rate_per_s > 0 else None
        self._breakers = AsyncCircuitBreakerFactory(default_threshold=failure_threshold,
                                                    default_ttl=open_seconds)
        # Bounded: a provider's circuits are its own and its follow-up calls' (and, for
        # Prism, one per connector), never one per link or merchant.
        self.circuit_states: dict[str, str] = {}

    async def call(self, send: Callable[[], Awaitable[T]],
                   circuit: str | None = None, *, limited: bool = True) -> T | Transient:
        """``send`` under the rate limit (unless ``limited`` is off) and the breaker of
        ``circuit`` (default: the connector's own;
        :meth:`~streams.connectors.provider.Provider.circuit`)."""
        fenced: Fenced | None = None
        circuit = circuit or self.connector
        breaker = await self._breakers.get_breaker(circuit)
        started = time.perf_counter()
        try:
            async with breaker:
                try:
                    if self._limiter is not None and limited:
                        async with self._limiter:
                            metrics.child(metrics.RATE_LIMIT_WAIT, self.connector).observe(
                                time.perf_counter() - started)
                            answer = await send()
                    else:
                        answer = await send()
                except Fenced as exc:
                    fenced = exc  # not the provider's doing: re-raised past the breaker
                else:
                    metrics.provider_call(self.connector, answer, time.perf_counter() - started)
                    if unhealthy(answer):
                        raise _ProviderUnhealthy(answer)
                    return answer
        except _ProviderUnhealthy as failure:
            answer_: T = failure.answer
            return answer_
        except OpenedState:
            metrics.child(metrics.BREAKER_REFUSALS, self.connector).inc()
            return Transient(f"circuit_open:{circuit}")
        finally:
            self.circuit_states[circuit] = breaker.context.state
        assert fenced is not None  # the only way out of the block without returning
        raise fenced

    def gauges(self) -> list[tuple[str, str, dict[str, str], float]]:
        """Each circuit's breaker state for /metrics: 0 closed, 1 half-open, 2 open."""
        level = {"closed": 0.0, "half-opened": 1.0, "opened": 2.0}
        return [("payout_breaker_state", "Circuit breaker state per provider circuit: "
                 "0 closed, 1 half-open, 2 open (as of its last call).",
                 {"provider": self.connector, "circuit": circuit}, level.get(state, 2.0))
                for circuit, state in self.circuit_states.items()]
