"""No record may stop a partition: every stage that raises ends in a definite place.

Before a provider call may have been made → ``processing_error`` (a request failure, or
the link's failure when its ``creating`` record was written), or a dead letter when the
request can't be identified; after → the link stays unresolved and is re-driven, never
failed. The record is acked either way. Kafka is faked here; the real-broker poison
suite is tests/integration/test_poison.py.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams import events, lifecycle
from streams.config import load_settings
from streams.connectors.base import LinkCreated, Rejected, link_reference
from streams.devkit.traffic import key_of, valid_request
from streams.faults import Faults, InjectedFault
from streams.link_creation import CallCount
from streams.poison import CrashMarker, Stage, isolate
from streams.processor import RequestProcessor, home_partition
from streams.unresolved import Redriver, UnresolvedEntry, due, parked
from tests.unit.test_processor import FakeEvent, FakeMessage, FakeTopic

PARTITIONS = 8
REQUESTED = "payout-link-requested"


class FakeTable(dict):
    unrecovered: BaseException | None = None

    async def put_durably(self, key: str, value: bytes) -> None:
        self[key] = value

    def find(self, link_key: str) -> tuple[str, bytes | None]:
        return lifecycle.find_record(self.get, link_key)


class FakeSettler:
    """Answers with ``result``; counts a call first, like the real settler, unless told."""

    def __init__(self, result: Any = None, *, raise_before_call: bool = False,
                 raise_after_call: bool | str = False) -> None:
        self.result = result or LinkCreated("poutlk_1", "https://rzp.io/i/x", "issued",
                                            "REQUIRES_PAYOUT_METHOD_DATA", None)
        self.raise_before_call = raise_before_call
        self.raise_after_call = raise_after_call
        self.calls: list[bool] = []

    async def create_link(self, request: Any, reference: str, account: Any, *,
                          lookup_first: bool, prepared: Any = None,
                          progress: CallCount | None = None) -> tuple[Any, int]:
        if self.raise_before_call:
            raise InjectedFault("bug before the call")
        if progress is not None:
            progress.started += 1
        self.calls.append(lookup_first)
        if self.raise_after_call is True or self.raise_after_call == request["merchant_payout_id"]:
            raise InjectedFault("bug reading the answer")
        return self.result, 1


def build(settler: FakeSettler | None = None, faults: str = "",
          marker: CrashMarker | None = None) -> tuple[RequestProcessor, dict[str, FakeTopic],
                                                      FakeTable, FakeTable]:
    topics = {n: FakeTopic() for n in ("routed", "created", "failed", "dead_letter")}
    links, unresolved = FakeTable(), FakeTable()
    p = RequestProcessor(settings=load_settings({"PAYOUT_TOPIC_PARTITIONS": str(PARTITIONS)}),
                         links=links, unresolved=unresolved,  # type: ignore[arg-type]
                         creators={"razorpay": settler or FakeSettler()},  # type: ignore[dict-item]
                         on_fatal=_never, marker=marker, faults=Faults(faults),
                         **topics)  # type: ignore[arg-type]
    return p, topics, links, unresolved


async def _never(exc: BaseException) -> None:
    raise AssertionError(f"on_fatal called: {exc!r}")


async def drain(p: RequestProcessor) -> None:
    while p.in_flight.in_flight():
        await asyncio.sleep(0)


def record_for(request: dict[str, Any], offset: int = 0) -> FakeEvent:
    key = key_of(request)
    # A Kafka record always has a timestamp; outcomes about one record are dated by it.
    return FakeEvent(FakeMessage(REQUESTED, home_partition(key.decode(), PARTITIONS), offset, key,
                                 orjson.dumps(request), timestamp=1_795_348_607.306), [])


async def feed(p: RequestProcessor, *records: FakeEvent) -> None:
    for r in records:
        await p.accept(r)
    await drain(p)


def valid(n: int, payout_id: str | None = None) -> dict[str, Any]:
    r = valid_request(n, run="c")
    if payout_id:
        r["merchant_payout_id"] = payout_id
    return r


def assert_schema_valid(event: dict[str, Any]) -> None:
    errors = [e.message for e in events.validator_for(event["event_type"]).iter_errors(event)]
    assert errors == [], errors


# --- before any provider call ----------------------------------------------------------


@pytest.mark.parametrize("stage", ["validate", "transform"])
async def test_intake_raising_fails_the_request_and_moves_on(stage: str) -> None:
    p, topics, links, _ = build(faults=f"raise:{stage}:poison-x")
    bad, good = record_for(valid(1, "poison-x"), 0), record_for(valid(2), 1)
    good.message.partition = bad.message.partition = 0
    good.message.key = bad.message.key = None  # both forwarded: same partition, in order
    await feed(p, bad, good)
    [(key, failure)] = topics["failed"].sent
    assert failure["error"]["code"] == "processing_error" and failure["scope"] == "request"
    assert failure["payout_status"] is None and "InjectedFault" in failure["error"]["message"]
    assert failure["source"] == {"topic": REQUESTED, "partition": 0, "offset": 0}
    assert key == b"m_demo:poison-x"
    assert_schema_valid(failure)
    assert len(topics["routed"].sent) == 1  # the next record went on
    assert bad.acked == [0] and good.acked == [1] and not links


async def test_parse_raising_dead_letters_the_record() -> None:
    p, topics, _, _ = build(faults="raise:parse:poison-p")
    bad = FakeEvent(FakeMessage(REQUESTED, 0, 3, b"k", b'{"x": "poison-p"}'), [])
    await feed(p, bad)
    [(key, dead)] = topics["dead_letter"].sent
    assert key == b"k" and dead["error"]["code"] == "processing_error" and bad.acked == [3]
    assert_schema_valid(dead)


async def test_route_raising_for_a_new_link_fails_the_request_without_touching_the_table() -> None:
    p, topics, links, unresolved = build(faults="raise:route:poison-r")
    await feed(p, record_for(valid(1, "poison-r")))
    [(_, failure)] = topics["failed"].sent
    assert failure["error"]["code"] == "processing_error" and failure["scope"] == "request"
    assert not links and not unresolved


async def test_a_bug_after_creating_is_written_but_before_any_call_fails_the_link() -> None:
    settler = FakeSettler(raise_before_call=True)
    p, topics, links, unresolved = build(settler)
    request = valid(1)
    event = record_for(request)
    await feed(p, event)
    [(_, failure)] = topics["failed"].sent
    assert failure["scope"] == "link" and failure["payout_status"] == "FAILED"
    assert failure["error"]["code"] == "processing_error"
    assert_schema_valid(failure)
    record = lifecycle.LinkRecord.from_bytes(links.find(key_of(request).decode())[1])
    assert record.status is lifecycle.LinkStatus.FAILED and record.outcome_published
    assert not unresolved and event.acked == [0]
    # A re-send gets the same failure, unchanged: one outcome for the link.
    settler.raise_before_call = False
    await feed(p, record_for(dict(request, event_id="again"), 1))
    assert [e["event_id"] for _, e in topics["failed"].sent] == [failure["event_id"]] * 2
    assert settler.calls == []


# --- after a provider call may have been made ------------------------------------------


async def test_a_bug_after_a_provider_call_leaves_the_link_unresolved_never_failed() -> None:
    settler = FakeSettler(raise_after_call="c-0000001")
    p, topics, links, unresolved = build(settler)
    request, nxt = valid(1), valid(2)
    first, second = record_for(request, 0), record_for(nxt, 1)
    second.message.partition = first.message.partition
    await feed(p, first, second)
    assert topics["failed"].sent == []  # never failed: a link may exist
    key = key_of(request).decode()
    assert lifecycle.LinkRecord.from_bytes(links.find(key)[1]).status is lifecycle.LinkStatus.CREATING
    entry = UnresolvedEntry.from_bytes(unresolved[key])
    assert entry.attempts == 1 and "InjectedFault" in entry.reason and entry.request == request
    assert first.acked == [0] and second.acked == [1]  # the partition moved on
    assert p.parked == 1
    # The re-drive meets `creating`: lookup first, then the one outcome; entry removed.
    settler.raise_after_call = False
    await feed(p, FakeEvent(FakeMessage("payout-link-requested-routed", first.message.partition,
                                        0, key.encode(), orjson.dumps(entry.request)), []))
    assert settler.calls[-1] is True
    assert [e["link_key"] for _, e in topics["created"].sent if e["link_key"] == key] == [key]
    assert key not in unresolved


async def test_a_publish_failure_after_creation_is_parked_then_published_once() -> None:
    p, topics, links, unresolved = build(faults="raise:publish:poison-pub")
    request = valid(1, "poison-pub")
    await feed(p, record_for(request))
    key = key_of(request).decode()
    assert topics["created"].sent == [] and key in unresolved
    p.faults = Faults("")
    entry = UnresolvedEntry.from_bytes(unresolved[key])
    await feed(p, record_for(entry.request, 7))
    [(_, created)] = topics["created"].sent
    assert created["link_key"] == key and key not in unresolved


async def test_a_failure_stored_but_not_published_is_republished_not_retried() -> None:
    settler = FakeSettler(Rejected("provider_rejected", "no", None, 400, {}))
    p, topics, links, unresolved = build(settler, faults="raise:publish:poison-f")
    request = valid(1, "poison-f")
    await feed(p, record_for(request))
    key = key_of(request).decode()
    assert lifecycle.LinkRecord.from_bytes(links.find(key)[1]).status is lifecycle.LinkStatus.FAILED
    assert key in unresolved and topics["failed"].sent == []
    p.faults = Faults("")
    await feed(p, record_for(request, 1))
    [(_, failure)] = topics["failed"].sent
    assert failure["error"]["code"] == "provider_rejected" and len(settler.calls) == 1
    assert key not in unresolved


async def test_an_in_doubt_link_whose_provider_is_no_longer_configured_is_parked() -> None:
    p, topics, links, unresolved = build()
    request = valid(1)
    key = key_of(request).decode()
    links[key] = lifecycle.LinkRecord(
        link_key=key, status=lifecycle.LinkStatus.CREATING,
        fingerprint=events.request_fingerprint(request), connector="razorpay",
        reference=link_reference(key), source=lifecycle.SourceOffset(REQUESTED, 0, 0)).to_bytes()
    p.settings = load_settings({"PAYOUT_TOPIC_PARTITIONS": str(PARTITIONS),
                                "PAYOUT_CREDENTIALS": '{"other": {}}'})
    await feed(p, record_for(request, 1))
    assert topics["failed"].sent == [] and key in unresolved


# --- the unresolved cadence --------------------------------------------------------------


def test_parking_backs_off_up_to_a_bound() -> None:
    entry = parked(None, {"a": 1}, "r", now=100.0, base_s=30, max_s=200)
    waits = []
    for _ in range(6):
        waits.append(entry.retry_at - 100.0)
        entry = parked(entry, {"a": 1}, "r", now=100.0, base_s=30, max_s=200)
    assert waits == [30, 60, 120, 200, 200, 200] and entry.since == 100.0


async def test_the_redriver_sends_each_due_entry_once_per_retry_time() -> None:
    now = [1000.0]
    table = {"m:a": parked(None, {"n": 1}, "r", 900.0, 30, 900).to_bytes(),
             "m:b": parked(None, {"n": 2}, "r", 999.0, 30, 900).to_bytes()}
    sent: list[tuple[str, bytes]] = []

    async def send(key: str, value: bytes) -> None:
        sent.append((key, value))

    redriver = Redriver(lambda: list(table.items()), send, clock=lambda: now[0])
    assert await redriver.run_once() == 1 and sent == [("m:a", b'{"n":1}')]
    assert await redriver.run_once() == 0  # same retry time: not again
    table["m:a"] = parked(UnresolvedEntry.from_bytes(table["m:a"]), {"n": 1}, "r", 1000.0, 30,
                          900).to_bytes()
    now[0] = 1100.0
    assert await redriver.run_once() == 2
    assert due([], 0, {}) == []


# --- the crash marker ---------------------------------------------------------------------


def test_the_marker_names_the_record_in_the_risky_step_after_a_death(tmp_path: Path) -> None:
    path = tmp_path / "crash-marker"
    marker = CrashMarker(path)
    assert marker.suspect is None
    marker.enter(REQUESTED, 5, 1234567890123)
    marker.stage(Stage.VALIDATE)
    # The process dies here: a new one maps the same file.
    after = CrashMarker(path)
    assert after.is_suspect(REQUESTED, 5, 1234567890123) is not None
    assert after.suspect.stage is Stage.VALIDATE
    assert after.is_suspect(REQUESTED, 5, 1) is None
    # A suspect is kept until judged, even through another death before it comes back.
    again = CrashMarker(path)
    assert again.is_suspect(REQUESTED, 5, 1234567890123) is not None
    again.enter(REQUESTED, 0, 7)  # then dies again, in another record's risky step
    third = CrashMarker(path)
    assert third.is_suspect(REQUESTED, 5, 1234567890123) is not None
    assert third.is_suspect(REQUESTED, 0, 7) is not None
    third.judged(third.is_suspect(REQUESTED, 5, 1234567890123), poison=False)
    third.judged(third.is_suspect(REQUESTED, 0, 7), poison=True)
    # Poison stays known (the worker may die before its offset is committed); the
    # acquitted one is forgotten.
    fourth = CrashMarker(path)
    assert fourth.is_suspect(REQUESTED, 5, 1234567890123) is None
    assert fourth.is_suspect(REQUESTED, 0, 7).confirmed


async def test_isolation_tells_a_killer_record_from_an_innocent_one(monkeypatch) -> None:
    env = {"PAYOUT_FAULTS": "crash:validate:poison-crash", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    killer = await isolate(orjson.dumps(valid(1, "poison-crash")), env=env)
    assert killer.poison and killer.stage is Stage.VALIDATE and "signal" in killer.detail
    innocent = await isolate(orjson.dumps(valid(2)), env=env)
    assert not innocent.poison


async def test_a_record_that_killed_the_worker_is_routed_without_being_handled(
        tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "crash-marker"
    request = valid(1, "poison-crash")
    event = record_for(request, 42)
    CrashMarker(path).enter(REQUESTED, event.message.partition, 42)  # then "died"
    monkeypatch.setenv("PAYOUT_FAULTS", "crash:validate:poison-crash")
    p, topics, links, _ = build(marker=CrashMarker(path), faults="")
    await feed(p, event)
    [(key, failure)] = topics["failed"].sent
    assert failure["error"]["code"] == "processing_error" and failure["scope"] == "request"
    assert "validate" in failure["error"]["message"] and event.acked == [42] and not links
    # Killed before the offset was committed: the record comes again to a new process,
    # which routes it again at once (same event), without running it or isolating it.
    monkeypatch.setenv("PAYOUT_FAULTS", "")  # an isolated run would survive now
    again, topics2, _, _ = build(marker=CrashMarker(path))
    await feed(again, record_for(request, 42))
    [(_, failure2)] = topics2["failed"].sent
    assert failure2 == failure  # the same event: one id, one content (issue 10)


async def test_a_link_still_in_doubt_after_the_budget_is_parked_not_failed() -> None:
    from streams.link_creation import InDoubt
    settler = FakeSettler(InDoubt("unknown: lookup_refused:provider_authentication_failed", 9))
    p, topics, links, unresolved = build(settler)
    request = valid(1)
    event = record_for(request)
    await feed(p, event)
    key = key_of(request).decode()
    assert topics["failed"].sent == [] and topics["created"].sent == []
    assert lifecycle.LinkRecord.from_bytes(links.find(key)[1]).status is lifecycle.LinkStatus.CREATING
    assert "lookup_refused" in UnresolvedEntry.from_bytes(unresolved[key]).reason
    assert event.acked == [0]


# --- issue 9, bug 2: once a record exists, its connector and account decide -------------


async def test_a_duplicate_of_a_settled_link_is_republished_even_if_now_unroutable() -> None:
    p, topics, links, _ = build()
    request = valid(1)
    await feed(p, record_for(request))
    [(_, created)] = topics["created"].sent
    # The merchant loses its credentials; a re-send of the same request arrives.
    p.settings = load_settings({"PAYOUT_TOPIC_PARTITIONS": str(PARTITIONS),
                                "PAYOUT_CREDENTIALS": '{"someone-else": {}}'})
    await feed(p, record_for(dict(request, event_id="again"), 1))
    assert topics["failed"].sent == []  # no connector_not_configured for a link that exists
    assert [e["event_id"] for _, e in topics["created"].sent] == [created["event_id"]] * 2


async def test_a_recovered_link_is_looked_up_at_the_connector_its_record_names() -> None:
    routed_to, recorded = FakeSettler(), FakeSettler()
    p, topics, links, _ = build()
    p.creators = {"razorpay": routed_to, "other": recorded}  # type: ignore[dict-item]
    account = p.settings.account("m_demo", "razorpay")
    p.settings = p.settings.model_copy(
        update={"credentials": {"*": {"razorpay": account, "other": account}}})
    request = valid(1)
    key = key_of(request).decode()
    links[key] = lifecycle.LinkRecord(
        link_key=key, status=lifecycle.LinkStatus.CREATING,
        fingerprint=events.request_fingerprint(request), connector="other",
        reference=link_reference(key), source=lifecycle.SourceOffset(REQUESTED, 0, 0)).to_bytes()
    await feed(p, record_for(request, 1))
    assert routed_to.calls == [] and recorded.calls == [True]  # a lookup, where it was made
    [(_, created)] = topics["created"].sent
    assert created["connector"] == "other"


async def test_a_request_re_driven_with_lookup_first_writes_its_record_then_looks_up() -> None:
    """``reconcile --repair``: a link the provider holds that no record remembers is
    adopted through a lookup, never created again; the record is durable before it."""
    settler = FakeSettler()
    p, topics, links, _ = build(settler)
    request = valid(1)
    record = record_for(request, 1)
    record.message.headers = [(events.LOOKUP_FIRST_HEADER, b"1")]
    await feed(p, record)
    assert settler.calls == [True]
    [(_, created)] = topics["created"].sent
    assert created["event_id"] == events.deterministic_event_id(key_of(request).decode(),
                                                                events.CREATED)
    stored = lifecycle.LinkRecord.from_bytes(links[link_reference(key_of(request).decode())])
    assert stored.status is lifecycle.LinkStatus.CREATED


async def test_a_lookup_first_header_on_a_misrouted_request_travels_with_it() -> None:
    p, topics, _, _ = build()
    request = valid(2)
    record = record_for(request, 1)
    record.message.partition = (record.message.partition + 1) % PARTITIONS
    record.message.headers = [(events.LOOKUP_FIRST_HEADER, b"1")]
    await feed(p, record)
    [(_, _forwarded)] = topics["routed"].sent
    assert topics["routed"].headers[-1] == [(events.LOOKUP_FIRST_HEADER, b"1")]


# --- fencing: not the owner any more ------------------------------------------------------


async def test_a_fenced_link_is_neither_failed_nor_parked_and_stays_creating() -> None:
    """Fenced mid-call: the next owner decides (lookup first). Containment must not turn
    it into a failure (unknown is never failed) nor park it here (not ours to re-drive)."""
    from streams import intake
    from streams.ownership import Fenced

    class FencedSettler(FakeSettler):
        async def create_link(self, request: Any, reference: str, account: Any, *,
                              lookup_first: bool, prepared: Any = None,
                              progress: CallCount | None = None) -> tuple[Any, int]:
            if progress is not None:
                progress.started += 1  # the call may have left
            raise Fenced(None, "the ownership lease lapsed")

    p, topics, links, unresolved = build(FencedSettler())
    result = intake.classify(orjson.dumps(valid(1)), p.settings)
    assert isinstance(result, intake.Valid)
    with pytest.raises(Fenced):
        await p.handle(result, lifecycle.SourceOffset(REQUESTED, 0, 0))
    assert topics["failed"].sent == [] and topics["created"].sent == []
    assert dict(unresolved) == {}
    [raw] = links.values()
    assert lifecycle.LinkRecord.from_bytes(raw).status is lifecycle.LinkStatus.CREATING


async def test_nothing_is_decided_from_a_table_that_could_not_be_recovered() -> None:
    """Faust's recovery logs a changelog it could not apply and declares the table
    recovered without the records after it; a link the table does not know would be
    created again. The worker is crashing by then: its work is abandoned, unacked."""
    settler = FakeSettler()
    p, topics, links, unresolved = build(settler)
    links.unrecovered = ValueError("a changelog record that does not decode")
    await feed(p, record_for(valid(1)))
    assert settler.calls == [] and dict(links) == {} and dict(unresolved) == {}
    assert all(t.sent == [] for t in topics.values())


# --- links created before references carried the link key's hash -------------------------


class RecordingSettler(FakeSettler):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, Any]] = []

    async def create_link(self, request: Any, reference: str, account: Any, *,
                          lookup_first: bool, prepared: Any = None,
                          progress: CallCount | None = None) -> tuple[Any, int]:
        self.seen.append((reference, prepared))
        return await super().create_link(request, reference, account, lookup_first=lookup_first,
                                         prepared=prepared, progress=progress)


async def test_a_legacy_link_in_doubt_is_looked_up_and_created_under_its_own_reference() -> None:
    """Review finding: the dry run builds the create for a new link's pl2_ reference; a
    link whose record (written before) names a pl_ reference must be looked up and, if
    absent, created under that one, never under another (a second link)."""
    from streams.connectors.base import legacy_link_reference

    settler = RecordingSettler()
    p, topics, links, _ = build(settler)
    request = valid(1)
    key = key_of(request).decode()
    legacy = legacy_link_reference(key)
    links[key] = lifecycle.LinkRecord(
        link_key=key, status=lifecycle.LinkStatus.CREATING,
        fingerprint=events.request_fingerprint(request), connector="razorpay",
        reference=legacy, source=lifecycle.SourceOffset(REQUESTED, 0, 0)).to_bytes()
    await feed(p, record_for(request, 1))
    assert settler.seen == [(legacy, None)]  # its own reference; the call built for it
    [(_, created)] = topics["created"].sent
    assert created["reference"] == legacy
    assert link_reference(key) not in links  # kept under its link key
    assert lifecycle.LinkRecord.from_bytes(links[key]).status is lifecycle.LinkStatus.CREATED


async def test_a_cancel_on_the_wrong_partition_is_carried_to_its_links_home() -> None:
    p, topics, _, _ = build()
    reports = FakeTopic()
    p.reports = reports  # type: ignore[assignment]
    command = {"event_id": "c1", "event_type": "payout-link-cancel-requested",
               "merchant_id": "m_demo", "merchant_payout_id": "c-0000001"}
    key = "m_demo:c-0000001"
    home = home_partition(key, PARTITIONS)
    wrong = FakeEvent(FakeMessage("payout-link-cancel-requested", (home + 1) % PARTITIONS, 3,
                                  None, orjson.dumps(command), timestamp=1_795_348_607.0), [])
    await feed(p, wrong)
    [(forward_key, forward)] = reports.sent
    assert forward_key == link_reference(key).encode()
    assert forward["kind"] == "cancel" and forward["link_key"] == key
    assert forward["command"] == command
    assert forward["source"][:3] == ["payout-link-cancel-requested", (home + 1) % PARTITIONS, 3]
    assert wrong.acked == [3]
