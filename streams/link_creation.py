"""Create one link at its provider: lookup-before-create, retries, definite answers.

Called only after the link's ``creating`` record is durable in the changelog. It
returns a definite outcome: :class:`LinkCreated` or :class:`Rejected`, or
:class:`RetriesExhausted` when every attempt provably created nothing, or
:class:`InDoubt` when a link may exist and the provider would not say within the
budget. An unknown outcome is never turned into a failure: only a found link or the
provider's proof of absence ends it. Provider-agnostic: it speaks the
:class:`~streams.connectors.provider.ProviderClient` protocol (create / look up).
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_result

from streams import metrics
from streams.connectors.base import (
    LinkCreated,
    NotFound,
    ProviderOutcome,
    Rejected,
    Transient,
    Unknown,
)
from streams.connectors.guard import ProviderGuard
from streams.connectors.provider import Provider, ProviderClient
from streams.faults import NO_FAULTS, Faults
from streams.ownership import require_ownership

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetriesExhausted:
    last: Transient
    attempts: int


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    max_seconds: float = 60.0
    backoff_base_s: float = 0.2
    backoff_max_s: float = 10.0
    # How long one settlement keeps asking about a link that may exist before handing
    # it to the unresolved re-drive (which keeps asking, on a slower cadence).
    in_doubt_max_s: float = 60.0


@dataclass(frozen=True)
class InDoubt:
    """A link may exist, and the provider would not say within the time budget.

    Only a found link or the provider's proof of absence may end it (DESIGN.md rule 2):
    the caller parks it as unresolved and re-drives it later; it is never a failure.
    """

    reason: str
    attempts: int


CreationResult = LinkCreated | Rejected | RetriesExhausted | InDoubt


@dataclass
class CallCount:
    """How many provider calls were started: once it is non-zero, a link may exist."""

    started: int = 0


@dataclass
class _Attempts:
    lookup_first: bool
    calls: int = 0
    last: ProviderOutcome | None = None
    started: float = 0.0  # the time budget covers the first attempt, run before tenacity
    progress: CallCount | None = None
    prepared: Any = None  # the create call, when the caller built it already
    link_key: str = ""  # for fault knobs only


class LinkCreator:
    """One per provider per worker."""

    def __init__(self, provider: Provider, client: ProviderClient,
                 policy: RetryPolicy = RetryPolicy(), guard: ProviderGuard | None = None,
                 clock: Callable[[], float] = time.monotonic, faults: Faults = NO_FAULTS) -> None:
        self.provider = provider
        self.client = client
        self._faults = faults
        self.policy = policy
        self.guard = guard
        self._clock = clock

    async def create_link(self, request: Mapping[str, Any], reference: str, account: Any, *,
                          lookup_first: bool, prepared: Any = None,
                          progress: CallCount | None = None) -> tuple[CreationResult, int]:
        """Return the definite outcome and the number of provider calls made.

        ``progress`` counts calls as they start, so a caller whose creation raised
        knows whether a link may exist.
        """
        state = _Attempts(lookup_first=lookup_first, started=self._clock(), progress=progress,
                          prepared=prepared)
        if self._faults:
            state.link_key = f"{request.get('merchant_id')}:{request.get('merchant_payout_id')}"
        state.last = await self._attempt(request, reference, account, state)
        if isinstance(state.last, (LinkCreated, Rejected)):
            return state.last, state.calls  # nearly every link: no retry machinery at all
        await asyncio.sleep(self._delay(1, state.last))
        retrying = AsyncRetrying(
            retry=retry_if_result(lambda o: isinstance(o, (Transient, Unknown))),
            stop=self._stop_when(state, reference),
            wait=lambda rs: self._delay(rs.attempt_number + 1,
                                        rs.outcome.result() if rs.outcome else None),
            retry_error_callback=lambda rs: rs.outcome.result() if rs.outcome else None,
            reraise=True,
        )
        async for attempt in retrying:
            metrics.child(metrics.RETRIES, self.provider.name).inc()
            # Not ``with attempt:``: tenacity's attempt manager records any exception
            # (Fenced, a cancellation when the work is abandoned) as the attempt's
            # outcome, and the retry went on with the last answer (measured in chaos:
            # work abandoned at a rebalance kept retrying, and once its worker owned
            # the partition again it created a second link). Exceptions end it here.
            state.last = await self._attempt(request, reference, account, state)
            attempt.retry_state.set_result(state.last)
        last = state.last
        attempts = attempt.retry_state.attempt_number + 1
        if isinstance(last, (Transient, Unknown)) and state.lookup_first:
            return InDoubt(f"{type(last).__name__.lower()}: {last.reason}", attempts), state.calls
        if isinstance(last, Transient):
            return RetriesExhausted(last, attempts), state.calls
        assert isinstance(last, (LinkCreated, Rejected)), last
        return last, state.calls

    async def _attempt(self, request: Mapping[str, Any], reference: str, account: Any,
                       state: _Attempts) -> ProviderOutcome:
        if state.lookup_first:
            if state.prepared is None:  # what the create would say; a lookup may need it
                state.prepared = self.provider.prepare(request, reference, account)
            prepared = state.prepared
            found = await self._call(
                lambda: self.client.lookup(reference, account, sent=prepared), state, account)
            if isinstance(found, Rejected):
                # A refused lookup (a rotated key, 400, 404) proves nothing about whether
                # the earlier call created a link: never a failure (DESIGN.md rule 2).
                log.warning("lookup of %s refused (%s, HTTP %s): the link stays in doubt",
                            reference, found.code, found.status_code)
                return Unknown(f"lookup_refused:{found.code}", found.status_code)
            if not isinstance(found, NotFound):
                # Transient/Unknown lookups leave lookup_first set: ask again next time.
                return found
            state.lookup_first = False
        if state.prepared is None:
            state.prepared = self.provider.prepare(request, reference, account)
        prepared = state.prepared
        outcome = await self._call(lambda: self.client.create(prepared, account), state,
                                   account)
        if isinstance(outcome, Unknown):
            state.lookup_first = True
        return outcome

    async def _call(self, send: Callable[[], Awaitable[ProviderOutcome]],
                    state: _Attempts, account: Any) -> ProviderOutcome:
        require_ownership()  # again right before the send, in the transport
        state.calls += 1
        if state.progress is not None:
            state.progress.started += 1
        if self._faults:
            self._faults.hit("provider_call", state.link_key)
        answer = await (send() if self.guard is None else
                        self.guard.call(send, self.provider.circuit(account)))
        if self._faults:
            self._faults.hit("provider_answer", state.link_key)
        return answer

    async def guarded(self, send: Callable[[], Awaitable[T]], account: Any) -> T | Transient:
        """A call about an existing link (a status read, a cancel): only while the link's
        partition is provably ours, behind a circuit breaker of its own. Not the
        creates' breaker nor their rate limit (the poll sweep bounds its own rate): a
        status endpoint that fails must not refuse new links, which would end in
        ``retries_exhausted``."""
        require_ownership()  # and again in the transport, right before the send
        if self.guard is None:
            return await send()
        return await self.guard.call(send, f"{self.provider.circuit(account)}:after-creation",
                                     limited=False)

    def _stop_when(self, state: _Attempts, reference: str) -> Callable[[RetryCallState], bool]:
        policy = self.policy

        def stop(rs: RetryCallState) -> bool:
            attempts = rs.attempt_number + 1  # the first attempt ran before tenacity
            # Only provable no-ops may end in failure; a link in doubt is handed over to
            # the unresolved re-drive once the budget is spent, never failed.
            if state.lookup_first or not isinstance(state.last, Transient):
                return self._clock() - state.started >= policy.in_doubt_max_s
            return (attempts >= policy.max_attempts
                    or self._clock() - state.started >= policy.max_seconds)

        return stop

    def _delay(self, attempts_made: int, last: Any) -> float:
        """Full-jitter exponential backoff, never shorter than the provider's Retry-After."""
        cap = min(self.policy.backoff_max_s, self.policy.backoff_base_s * 2 ** attempts_made)
        delay = random.uniform(0, cap)
        if isinstance(last, Transient) and last.retry_after_s is not None:
            delay = max(delay, last.retry_after_s)
        return delay

