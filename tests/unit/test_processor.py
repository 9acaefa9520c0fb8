"""The processor's classification and the in-flight ack order, with Kafka faked.

Integration tests cover the same paths on a real broker; these pin the corner cases
that are hard to provoke there (an internal bug, completion out of order).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from faust.types import TP

from streams import events
from streams.config import load_settings
from streams.inflight import KeyedInFlight, guard_acks
from streams.processor import RequestProcessor


@dataclass(eq=False)
class FakeMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list = field(default_factory=list)
    timestamp: float = 0.0

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)


@dataclass
class FakeEvent:
    message: FakeMessage
    acked: list[int]

    def ack(self) -> None:
        self.acked.append(self.message.offset)


class FakeTopic:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, dict[str, Any]]] = []
        self.headers: list[Any] = []

    async def send(self, key: bytes | None, value: bytes | None, partition: int | None,
                   headers: Any = None) -> Any:
        self.sent.append((key, orjson.loads(value) if value else None))
        self.headers.append(headers)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def processor() -> tuple[RequestProcessor, dict[str, FakeTopic]]:
    topics = {n: FakeTopic() for n in ("routed", "created", "failed", "dead_letter")}
    p = RequestProcessor(settings=load_settings({}), links=None,  # type: ignore[arg-type]
                         creators={}, on_fatal=_never, **topics)  # type: ignore[arg-type]
    return p, topics


async def _never(exc: BaseException) -> None:
    raise AssertionError(f"on_fatal called: {exc!r}")


async def drain(p: RequestProcessor) -> None:
    while p.in_flight.in_flight():
        await asyncio.sleep(0)


async def test_garbage_is_dead_lettered_and_acked() -> None:
    p, topics = processor()
    acked: list[int] = []
    await p.accept(FakeEvent(FakeMessage("payout-link-requested", 0, 5, b"k", b"\xff"), acked))
    await drain(p)
    [(key, dead)] = topics["dead_letter"].sent
    assert key == b"k" and dead["error"]["code"] == "unparseable" and acked == [5]


async def test_an_internal_bug_dead_letters_the_record_instead_of_crashing(monkeypatch) -> None:
    def broken(request: Any) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(events, "validate_request", broken)
    p, topics = processor()
    acked: list[int] = []
    raw = orjson.dumps({"merchant_id": "m"})
    await p.accept(FakeEvent(FakeMessage("payout-link-requested", 1, 9, b"k", raw), acked))
    await drain(p)
    [(_, dead)] = topics["dead_letter"].sent
    assert dead["error"]["code"] == "processing_error" and "KeyError" in dead["error"]["message"]
    assert events.validator_for(events.DEAD_LETTER).is_valid(dead)
    assert acked == [9]


async def test_acks_follow_offset_order_whatever_the_completion_order() -> None:
    in_flight = KeyedInFlight(8, _never)
    acked: list[int] = []
    gates = {n: asyncio.Event() for n in range(3)}
    for n in range(3):
        async def work(n: int = n) -> None:
            await gates[n].wait()

        await in_flight.submit(FakeEvent(FakeMessage("t", 0, n, None, None), acked), f"k{n}", work)
    gates[2].set()
    gates[1].set()
    await asyncio.wait([in_flight._tails["k1"], in_flight._tails["k2"]])
    await asyncio.sleep(0)  # let their done-callbacks run
    assert acked == []  # offset 0 still in flight: nothing may be committed past it
    gates[0].set()
    while in_flight.in_flight():
        await asyncio.sleep(0)
    assert acked == [0, 1, 2]


async def test_work_for_one_key_runs_in_order_and_backpressure_bounds_it() -> None:
    in_flight = KeyedInFlight(2, _never)
    order: list[str] = []
    release = asyncio.Event()

    async def slow() -> None:
        await release.wait()
        order.append("first")

    async def fast() -> None:
        order.append("second")

    acked: list[int] = []
    await in_flight.submit(FakeEvent(FakeMessage("t", 0, 0, None, None), acked), "same", slow)
    await in_flight.submit(FakeEvent(FakeMessage("t", 0, 1, None, None), acked), "same", fast)
    third = asyncio.ensure_future(in_flight.submit(
        FakeEvent(FakeMessage("t", 0, 2, None, None), acked), "other", fast))
    for _ in range(5):
        await asyncio.sleep(0)  # give the third submit every chance to get through
    assert not third.done()  # two slots taken: the agent waits
    release.set()
    await third
    while in_flight.in_flight():
        await asyncio.sleep(0)
    assert order[:2] == ["first", "second"] and acked == [0, 1, 2]


async def test_a_failed_task_is_never_acked_and_stops_the_worker() -> None:
    failures: list[BaseException] = []

    async def on_fatal(exc: BaseException) -> None:
        failures.append(exc)

    in_flight = KeyedInFlight(4, on_fatal)
    acked: list[int] = []

    async def boom() -> None:
        raise RuntimeError("producer gone")

    await in_flight.submit(FakeEvent(FakeMessage("t", 0, 0, None, None), acked), "k", boom)
    while not failures:
        await asyncio.sleep(0)
    assert acked == [] and isinstance(failures[0], RuntimeError)


def test_ack_guard_refuses_acks_for_records_nobody_settled() -> None:
    recorded: list[int] = []

    class FakeConsumer:
        _unacked_messages: set = set()

        def ack(self, message: FakeMessage) -> bool:
            recorded.append(message.offset)
            return True

    consumer = FakeConsumer()
    guard_acks(consumer, {"payout-link-requested"})  # type: ignore[arg-type]
    skipped = FakeMessage("payout-link-requested", 0, 7, None, None)
    consumer._unacked_messages.add(skipped)
    assert consumer.ack(skipped) is False  # Faust acking a record it skipped
    assert skipped not in consumer._unacked_messages
    assert consumer.ack(FakeMessage("other-topic", 0, 3, None, None)) is True

    in_flight = KeyedInFlight(4, _never)
    mine = FakeMessage("payout-link-requested", 0, 8, None, None)

    class Event:
        message = mine

        def ack(self) -> None:
            consumer.ack(mine)

    in_flight.complete_now(Event())  # type: ignore[arg-type]
    assert recorded == [3, 8]


async def test_every_emitted_event_carries_cloudevents_binary_mode_headers_and_is_counted(
) -> None:
    from streams import metrics

    before = metrics.OUTCOMES.labels("payout-link-dead-letter", "unparseable")._value.get()
    p, topics = processor()
    await p.accept(FakeEvent(FakeMessage("payout-link-requested", 0, 5, b"k", b"\xff"), []))
    await drain(p)
    [(_, dead)] = topics["dead_letter"].sent
    [headers] = topics["dead_letter"].headers
    ce = dict(headers)
    assert ce["ce_specversion"] == b"1.0" and ce["ce_id"] == dead["event_id"].encode()
    assert ce["ce_type"] == b"payout-link-dead-letter" and ce["content-type"] == b"application/json"
    assert ce["ce_time"] == dead["occurred_at"].encode() and ce["ce_source"].startswith(b"urn:")
    after = metrics.OUTCOMES.labels("payout-link-dead-letter", "unparseable")._value.get()
    assert after == before + 1
    assert b'payout_requests_total{result="unparseable"}' in metrics.exposition()


async def test_a_provider_reports_record_that_is_not_one_is_dead_lettered_not_stopping_the_partition(
) -> None:
    p, topics = processor()
    acked: list[int] = []
    await p.accept(FakeEvent(FakeMessage("payout-link-provider-reports", 2, 7, b"k", b"{\"x\":1}"),
                             acked))
    await drain(p)
    [(_, dead)] = topics["dead_letter"].sent
    assert dead["error"]["code"] == "unparseable" and acked == [7]


async def test_a_report_whose_handling_raises_is_contained_and_acked() -> None:
    from streams.link_tracking import POLL, TrackingMessage

    class Exploding:
        async def on_message(self, message: object) -> None:
            raise KeyError("a bug in the tracker")

    p, _ = processor()
    p.tracker = Exploding()  # type: ignore[assignment]
    message = TrackingMessage(kind=POLL, connector="razorpay", reference="pl2_x",
                              link_key="m_a:p1", received_at="2026-12-07T10:00:00.000Z")
    acked: list[int] = []
    await p.accept(FakeEvent(FakeMessage("payout-link-provider-reports", 2, 8, b"k",
                                         message.to_bytes()), acked))
    await drain(p)
    assert acked == [8] and p.contained == 1
