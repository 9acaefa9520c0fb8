"""Settling one link: lookup-before-create, retries, and unknown outcomes.

Scripted answers cover exact sequences; the project's simulator (in-process, real
HTTP on loopback) covers what only a real socket shows, such as a response lost
after the link was created.
"""
from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Sequence

import pytest
import pytest_asyncio

from streams.connectors.base import (
    HttpAnswer,
    HttpCall,
    LinkCreated,
    Rejected,
    Transient,
    Unknown,
    link_reference,
)
from streams.connectors.http import HttpProviderClient, StaticHeaders
from streams.connectors.razorpay import PROVIDER, RazorpayAccount, RazorpayConnector
from streams.connectors.transport import ProviderTransport
from streams.devkit.sims.razorpay import PayoutLinkSimulator, SimConfig, start_server
from streams.devkit.traffic import valid_request
from streams.link_creation import InDoubt, LinkCreator, RetriesExhausted, RetryPolicy
from streams.ownership import Fenced

ACCOUNT = RazorpayAccount("rzp_test_demo", "demo_secret", "2323230041626905")
BASIC = StaticHeaders(lambda account: {"Authorization": account.basic_header})
FAST = RetryPolicy(max_attempts=3, max_seconds=30, backoff_base_s=0.001, backoff_max_s=0.005)
REQUEST = valid_request(1)
REF = link_reference("m_demo:run-0000001")

LINK = (b'{"id":"poutlk_1","entity":"payout_link","status":"issued",'
        b'"short_url":"https://rzp.io/i/a","receipt":"' + REF.encode() + b'","created_at":1}')
EMPTY = b'{"entity":"collection","count":0,"items":[]}'
FOUND = b'{"entity":"collection","count":1,"items":[' + LINK + b']}'


class ScriptedTransport:
    """Answers calls from a script, recording what was asked."""

    def __init__(self, script: Sequence[HttpAnswer | Transient | Unknown]) -> None:
        self.script = list(script)
        self.calls: list[HttpCall] = []

    async def send(self, call: HttpCall,
                   headers: object = None) -> HttpAnswer | Transient | Unknown:
        self.calls.append(call)
        return self.script.pop(0)

    def kinds(self) -> list[str]:
        return ["create" if c.method == "POST" else "lookup" for c in self.calls]


def ok(body: bytes) -> HttpAnswer:
    return HttpAnswer(200, {}, body)


def creator(transport, policy=FAST, **kw) -> LinkCreator:
    """The Razorpay provider's creator over a given transport (scripted or real)."""
    client = HttpProviderClient(transport, PROVIDER.transformers, BASIC)  # type: ignore[arg-type]
    return LinkCreator(PROVIDER, client, policy, **kw)


async def settle(script, *, lookup_first=False, policy=FAST):
    transport = ScriptedTransport(script)
    result, calls = await creator(transport, policy).create_link(
        REQUEST, REF, ACCOUNT, lookup_first=lookup_first)
    assert calls == len(transport.calls)
    return result, transport


async def test_first_create_succeeds_with_one_call() -> None:
    result, t = await settle([ok(LINK)])
    assert isinstance(result, LinkCreated) and t.kinds() == ["create"]


async def test_unknown_outcome_is_looked_up_and_the_found_link_is_used() -> None:
    result, t = await settle([Unknown("no_answer:ReadTimeout"), ok(FOUND)])
    assert isinstance(result, LinkCreated) and result.connector_payout_id == "poutlk_1"
    assert t.kinds() == ["create", "lookup"]


async def test_unknown_then_not_found_creates_again() -> None:
    result, t = await settle([Unknown("no_answer"), ok(EMPTY), ok(LINK)])
    assert isinstance(result, LinkCreated) and t.kinds() == ["create", "lookup", "create"]


async def test_resumed_link_looks_up_before_any_create() -> None:
    result, t = await settle([ok(FOUND)], lookup_first=True)
    assert isinstance(result, LinkCreated) and t.kinds() == ["lookup"]


async def test_server_error_is_never_a_failure_and_is_looked_up() -> None:
    result, t = await settle([HttpAnswer(503, {}, b"{}"), ok(EMPTY), ok(LINK)])
    assert isinstance(result, LinkCreated) and t.kinds() == ["create", "lookup", "create"]


async def test_rejection_is_definite_and_not_retried() -> None:
    body = (b'{"error":{"code":"BAD_REQUEST_ERROR","description":"bad amount",'
            b'"reason":"input_validation_failed","field":"amount"}}')
    result, t = await settle([HttpAnswer(400, {}, body)])
    assert isinstance(result, Rejected) and result.field == "amount.minor_amount"
    assert t.kinds() == ["create"]


async def test_throttling_exhausts_into_a_definite_failure() -> None:
    result, t = await settle([HttpAnswer(429, {}, b"{}")] * 3)
    assert isinstance(result, RetriesExhausted) and result.attempts == 3
    assert result.last.reason == "throttled" and t.kinds() == ["create"] * 3


async def test_the_time_budget_counts_the_first_attempt() -> None:
    """A first call that used up the budget leaves room for one more try, not a fresh budget."""
    clock = iter([0.0, 100.0, 100.0])  # settle starts; then every stop check is later
    transport = ScriptedTransport([HttpAnswer(429, {}, b"{}")] * 50)
    policy = RetryPolicy(max_attempts=50, max_seconds=60, backoff_base_s=0.001,
                         backoff_max_s=0.001)
    settler = creator(transport, policy, clock=lambda: next(clock))
    result, _ = await settler.create_link(REQUEST, REF, ACCOUNT, lookup_first=False)
    assert isinstance(result, RetriesExhausted) and result.attempts == 2
    assert transport.kinds() == ["create"] * 2


async def test_unknown_outcomes_never_exhaust_into_failure() -> None:
    # Budget is 3 attempts, but every create might have worked: keep looking up.
    script = [Unknown("x"), ok(EMPTY), Unknown("x"), ok(EMPTY), Unknown("x"), HttpAnswer(
        503, {}, b""), Transient("not_sent"), ok(FOUND)]
    result, t = await settle(script)
    assert isinstance(result, LinkCreated)
    assert t.kinds() == ["create", "lookup", "create", "lookup", "create", "lookup", "lookup",
                         "lookup"]


async def test_retry_after_is_honoured(monkeypatch) -> None:
    waits: list[float] = []
    settler = creator(ScriptedTransport(
        [HttpAnswer(429, {"retry-after": "2"}, b"{}"), ok(LINK)]), FAST)
    original = settler._delay

    def spy(attempts_made: int, last: object) -> float:
        waits.append(original(attempts_made, last))
        return 0.0

    monkeypatch.setattr(settler, "_delay", spy)
    result, _ = await settler.create_link(REQUEST, REF, ACCOUNT, lookup_first=False)
    assert isinstance(result, LinkCreated) and waits == [2.0]


def test_backoff_is_jittered_exponential_and_capped() -> None:
    settler = creator(ScriptedTransport([]), RetryPolicy(backoff_base_s=0.2, backoff_max_s=10.0))
    for attempts in range(1, 12):
        delays = [settler._delay(attempts, None) for _ in range(200)]
        cap = min(10.0, 0.2 * 2 ** attempts)
        assert all(0 <= d <= cap for d in delays)
        assert max(delays) > cap / 2  # spread across the window, not a constant


# --- over real HTTP, against the simulator ----------------------------------------


@pytest_asyncio.fixture
async def simulator() -> AsyncIterator[tuple[PayoutLinkSimulator, str]]:
    sim = PayoutLinkSimulator(SimConfig(latency_ms=0, jitter_ms=0))
    runner, port = await start_server(sim)
    try:
        yield sim, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_lost_response_after_create_yields_exactly_one_link(simulator) -> None:
    sim, url = simulator
    sim.config.apply({"lost_after_create": 1.0})  # create calls only; lookups are clean
    transport = ProviderTransport(url, connect_timeout_s=1, read_timeout_s=5, max_connections=4)
    try:
        result, calls = await creator(transport).create_link(
            REQUEST, REF, ACCOUNT, lookup_first=False)
    finally:
        await transport.aclose()
    assert isinstance(result, LinkCreated) and calls == 2
    assert sim.ledger()["by_receipt"] == {REF: [result.connector_payout_id]}


async def test_timeout_before_create_is_unknown_then_resolved_by_lookup(simulator) -> None:
    sim, url = simulator
    sim.config.apply({"timeout_before_create": 1.0, "hang_ms": 2000})
    transport = ProviderTransport(url, connect_timeout_s=1, read_timeout_s=0.2, max_connections=4)
    try:
        outcome = await transport.send(RazorpayConnector().create_call(REQUEST, REF, ACCOUNT),
                                       {"Authorization": ACCOUNT.basic_header})
        assert isinstance(outcome, Unknown)
        sim.config.apply({"timeout_before_create": 0.0})
        result, calls = await creator(transport).create_link(
            REQUEST, REF, ACCOUNT, lookup_first=True)
    finally:
        await transport.aclose()
    assert isinstance(result, LinkCreated) and calls == 2  # lookup (absent) + create
    assert len(sim.ledger()["by_receipt"][REF]) == 1


async def test_connection_refused_is_provably_not_sent() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nobody listens
    transport = ProviderTransport(f"http://127.0.0.1:{port}", connect_timeout_s=1,
                                  read_timeout_s=1, max_connections=2)
    try:
        result, calls = await creator(transport).create_link(
            REQUEST, REF, ACCOUNT, lookup_first=False)
    finally:
        await transport.aclose()
    assert isinstance(result, RetriesExhausted) and calls == 3
    assert result.last.reason.startswith("not_sent")


async def test_wrong_credentials_are_a_definite_authentication_failure(simulator) -> None:
    _, url = simulator
    transport = ProviderTransport(url, connect_timeout_s=1, read_timeout_s=5, max_connections=2)
    try:
        wrong = RazorpayAccount("rzp_test_demo", "wrong", ACCOUNT.account_number)
        result, _ = await creator(transport).create_link(REQUEST, REF, wrong, lookup_first=False)
    finally:
        await transport.aclose()
    assert isinstance(result, Rejected) and result.code == "provider_authentication_failed"
    assert "wrong" not in repr(wrong)


# --- the per-connector guard --------------------------------------------------------


async def test_circuit_opens_after_consecutive_failures_and_refusals_are_transient() -> None:
    from streams.connectors.guard import ProviderGuard

    guard = ProviderGuard("razorpay", rate_per_s=0, failure_threshold=3, open_seconds=60)
    transport = ScriptedTransport([HttpAnswer(503, {}, b"")] * 3 + [ok(LINK)])
    client = creator(transport).client
    call = RazorpayConnector().create_call(REQUEST, REF, ACCOUNT)
    answers = [await guard.call(lambda: client.create(call, ACCOUNT)) for _ in range(5)]
    assert all(isinstance(a, Unknown) and a.status_code == 503 for a in answers[:3])
    assert answers[3:] == [Transient("circuit_open:razorpay")] * 2
    assert len(transport.calls) == 3  # the refused calls never reached the provider


async def test_rejections_do_not_open_the_circuit() -> None:
    from streams.connectors.guard import ProviderGuard

    guard = ProviderGuard("razorpay", rate_per_s=0, failure_threshold=2, open_seconds=60)
    transport = ScriptedTransport([HttpAnswer(400, {}, b"{}")] * 4)
    client = creator(transport).client
    call = RazorpayConnector().create_call(REQUEST, REF, ACCOUNT)
    answers = [await guard.call(lambda: client.create(call, ACCOUNT)) for _ in range(4)]
    assert all(isinstance(a, Rejected) and a.status_code == 400 for a in answers)
    assert len(transport.calls) == 4


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_a_refused_lookup_after_an_unknown_create_is_never_a_failure(status: int) -> None:
    """Issue 9, bug 1: create → 504, lookup → 401 (a rotated key) used to end `failed`."""
    refused = HttpAnswer(status, {}, b'{"error":{"code":"BAD_REQUEST_ERROR","description":"no"}}')
    result, t = await settle([HttpAnswer(504, {}, b""), refused, refused, ok(FOUND)])
    assert isinstance(result, LinkCreated)  # it kept asking, and the link was there
    assert t.kinds() == ["create", "lookup", "lookup", "lookup"]


async def test_a_link_in_doubt_past_the_budget_is_handed_over_never_failed() -> None:
    clock = iter([0.0] + [30.0] * 3 + [61.0] * 10)
    refused = HttpAnswer(401, {}, b'{"error":{"code":"BAD_REQUEST_ERROR"}}')
    transport = ScriptedTransport([HttpAnswer(504, {}, b"")] + [refused] * 20)
    settler = creator(transport, RetryPolicy(max_attempts=3, max_seconds=5, backoff_base_s=0.001,
                                             backoff_max_s=0.001, in_doubt_max_s=60),
                      clock=lambda: next(clock))
    result, _ = await settler.create_link(REQUEST, REF, ACCOUNT, lookup_first=False)
    assert isinstance(result, InDoubt) and "lookup_refused" in result.reason
    assert "create" not in transport.kinds()[1:]  # never a second create while in doubt


class RaisingTransport(ScriptedTransport):
    """Answers from the script; an exception in it is raised, as a fence or an abandon
    (cancellation) would be in the middle of a call."""

    async def send(self, call: HttpCall, headers: object = None) -> HttpAnswer | Transient | Unknown:
        self.calls.append(call)
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step


@pytest.mark.parametrize("stop", [Fenced(None, "lost the partition"), asyncio.CancelledError()])
async def test_a_fence_or_an_abandon_during_a_retry_ends_the_settlement(stop) -> None:
    """Issue 10, found by chaos: tenacity's attempt manager recorded the exception as the
    attempt's outcome and the retry went on with the previous answer; once the worker
    owned the partition again, the abandoned work created a second link."""
    transport = RaisingTransport([HttpAnswer(503, {}, b"{}"), stop, ok(EMPTY), ok(LINK)])
    with pytest.raises(type(stop)):
        await creator(transport).create_link(REQUEST, REF, ACCOUNT, lookup_first=False)
    assert transport.kinds() == ["create", "lookup"]  # nothing after the stop
