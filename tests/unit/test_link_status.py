"""A created link's life: the pure transition, the tracker, the poll sweep, webhook intake.

The transition is property-tested on each provider's real lifecycle: a provider walks a
link along a legal path and reports each step (webhooks may be duplicated, reordered,
dropped); whatever order the reports arrive in, the link ends in the provider's last
state, and a duplicate changes nothing.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from streams import events, lifecycle
from streams.config import load_settings
from streams.connectors.base import (
    Cancelled,
    LinkRef,
    NotCancellable,
    StatusReport,
    Unknown,
    link_reference,
    reference_partition,
)
from streams.connectors.registry import PROVIDERS
from streams.link_tracking import EXPIRE, POLL, REPORT, LinkTracker, TrackingMessage
from streams.polling import PollPolicy, next_poll_at
from streams.polls import PollSweep, SweepLimits, due_kind, resend_after
from streams.webhooks import WebhookCounts, receive
from tests.unit.test_processor import FakeTopic

NOW = 1_800_000_000.0

# --- each provider's real lifecycle, as (status, attempt) steps --------------------------

RAZORPAY_PATHS = [
    [("issued", 0), ("processing", 1), ("processed", 1)],
    [("issued", 0), ("processing", 1), ("issued", 1), ("processing", 2), ("processed", 2)],
    [("issued", 0), ("processing", 1), ("processed", 1), ("issued", 1), ("expired", 1)],
    [("issued", 0), ("expired", 0)],
    [("issued", 0), ("cancelled", 0)],
    [("pending", 0), ("rejected", 0)],
    [("pending", 0), ("issued", 0), ("processing", 1), ("issued", 1), ("cancelled", 1)],
]
CASHFREE_PATHS = [
    [("ACTIVE", 0), ("REDEEMED", 0)],
    [("ACTIVE", 0), ("PENDING", 0), ("REDEEMED", 0), ("REVERSED", 0)],
    [("ACTIVE", 0), ("PENDING", 0), ("FAILED", 0)],
    [("ACTIVE", 0), ("EXPIRED", 0)],
    [("ACTIVE", 0), ("DEACTIVATED", 0)],
]
REVOLUT_PATHS = [
    [("active", 0), ("processing", 0), ("processed", 0)],
    [("awaiting", 0), ("active", 0), ("expired", 0)],
    [("active", 0), ("cancelled", 0)],
    [("active", 0), ("processing", 0), ("failed", 0)],
]
PRISM_PATHS = [
    [("REQUIRES_PAYOUT_METHOD_DATA", 0), ("INITIATED", 0), ("PENDING", 0), ("SUCCESS", 0)],
    [("REQUIRES_PAYOUT_METHOD_DATA", 0), ("PENDING", 0), ("SUCCESS", 0), ("REVERSED", 0)],
    [("REQUIRES_PAYOUT_METHOD_DATA", 0), ("EXPIRED", 0)],
    [("REQUIRES_PAYOUT_METHOD_DATA", 0), ("CANCELLED", 0)],
]
PATHS = {"razorpay": RAZORPAY_PATHS, "cashfree": CASHFREE_PATHS, "revolut": REVOLUT_PATHS,
         "prism": PRISM_PATHS}


def created_record(connector: str, first: tuple[str, int]) -> lifecycle.LinkRecord:
    key = f"m_{connector}:p1"
    provider = PROVIDERS[connector]
    state = lifecycle.link_state(provider.lifecycle, StatusReport(first[0], first[1]),
                                 source=lifecycle.CREATE, received_at="2026-12-07T10:00:00.000Z")
    return lifecycle.LinkRecord(
        link_key=key, status=lifecycle.LinkStatus.CREATED, fingerprint="f", connector=connector,
        reference=link_reference(key), source=lifecycle.SourceOffset("t", 0, 0),
        outcome={"connector_payout_id": "po_1", "expires_at": None}, outcome_published=True,
        started_at="2026-12-07T10:00:00.000Z", state=state, next_poll_at=NOW + 30)


def reports_of(path: list[tuple[str, int]]) -> list[StatusReport]:
    return [StatusReport(status, attempt, event_id=f"evt_{i}",
                         occurred_at=f"2026-12-07T10:{i:02d}:00Z")
            for i, (status, attempt) in enumerate(path)]


@st.composite
def delivered(draw: Any) -> tuple[str, list[tuple[str, int]], list[StatusReport]]:
    connector = draw(st.sampled_from(sorted(PATHS)))
    path = draw(st.sampled_from(PATHS[connector]))
    reports = reports_of(path)
    # Webhooks: some duplicated, some dropped (never the last: polling would find it),
    # all in any order.
    kept = [r for r in reports[:-1] if not draw(st.booleans())] + [reports[-1]]
    copies = kept + [r for r in kept if draw(st.booleans())]
    return connector, path, draw(st.permutations(copies))


@settings(max_examples=300, deadline=None)
@given(delivered())
def test_any_order_of_reports_ends_in_the_providers_last_state(case: Any) -> None:
    connector, path, arrivals = case
    lifecycle_ = PROVIDERS[connector].lifecycle
    record = created_record(connector, path[0])
    changes = 0
    for report in arrivals:
        decision = lifecycle.apply_report(record, report, lifecycle_, source=lifecycle.WEBHOOK,
                                          received_at="2026-12-07T11:00:00.000Z")
        if isinstance(decision, lifecycle.StatusChanged):
            record, changes = decision.record, changes + 1
    assert record.state is not None
    assert record.state.connector_status == path[-1][0]
    assert changes <= len(set(path[1:])) + path.count(path[-1])  # never more than real moves


@settings(max_examples=100, deadline=None)
@given(delivered())
def test_a_duplicate_report_is_a_no_op(case: Any) -> None:
    connector, _, arrivals = case
    lifecycle_ = PROVIDERS[connector].lifecycle
    record = created_record(connector, PATHS[connector][0][0])
    for report in arrivals:
        decision = lifecycle.apply_report(record, report, lifecycle_, source=lifecycle.WEBHOOK,
                                          received_at="2026-12-07T11:00:00.000Z")
        if isinstance(decision, lifecycle.StatusChanged):
            record = decision.record
        again = lifecycle.apply_report(record, report, lifecycle_, source=lifecycle.WEBHOOK,
                                       received_at="2026-12-07T11:00:00.000Z")
        assert isinstance(again, lifecycle.StatusIgnored)


def test_razorpay_back_edges_are_changes_and_late_reports_are_stale() -> None:
    lifecycle_ = PROVIDERS["razorpay"].lifecycle
    record = created_record("razorpay", ("issued", 0))
    steps = [("processing", 1, "changed"), ("issued", 1, "changed"),  # payout failed: reopened
             ("processing", 1, "stale"),  # the first attempt's late webhook
             ("processing", 2, "changed"), ("processed", 2, "changed"),
             ("issued", 2, "changed"),  # reversed
             ("processed", 2, "stale")]
    for status, attempt, expected in steps:
        decision = lifecycle.apply_report(record, StatusReport(status, attempt), lifecycle_,
                                          source=lifecycle.POLL, received_at="t")
        assert (decision.reason if isinstance(decision, lifecycle.StatusIgnored)
                else "changed") == expected, (status, attempt)
        if isinstance(decision, lifecycle.StatusChanged):
            record = decision.record


def test_reports_for_a_link_not_created_or_of_unknown_status_change_nothing() -> None:
    lifecycle_ = PROVIDERS["razorpay"].lifecycle
    creating = replace(created_record("razorpay", ("issued", 0)),
                       status=lifecycle.LinkStatus.CREATING)
    assert lifecycle.apply_report(creating, StatusReport("processed", 1), lifecycle_,
                                  source=lifecycle.WEBHOOK, received_at="t") == \
        lifecycle.StatusIgnored("not_created")
    created = created_record("razorpay", ("issued", 0))
    assert lifecycle.apply_report(created, StatusReport("teleported", 1), lifecycle_,
                                  source=lifecycle.WEBHOOK, received_at="t") == \
        lifecycle.StatusIgnored("unknown_status")


def test_the_record_round_trips_with_its_state() -> None:
    record = created_record("cashfree", ("ACTIVE", 0))
    record = lifecycle.with_status_event(record, {"event_id": "e"})
    record = replace(record, provider_events=("a", "b"))
    assert lifecycle.LinkRecord.from_bytes(record.to_bytes()) == record
    old = lifecycle.LinkRecord.from_bytes(orjson.dumps({
        **{k: v for k, v in orjson.loads(record.to_bytes()).items()
           if k not in ("state", "status_event", "status_event_published", "provider_events",
                        "next_poll_at")}}))
    assert old.state is None and old.status_event_published


# --- the poll cadence ----------------------------------------------------------------------

POLICY = PollPolicy(min_s=30, max_s=900, age_factor=0.1, reversal_watch_s=86400, jitter=0.2)


def test_polls_grow_with_age_within_bounds_and_stop_when_final() -> None:
    state = created_record("razorpay", ("issued", 0)).state
    assert state is not None
    young = next_poll_at(NOW, NOW - 10, state, POLICY, lambda: 0.0) - NOW
    old = next_poll_at(NOW, NOW - 86400, state, POLICY, lambda: 0.0) - NOW
    assert young == 30 and old == 900
    assert 0.8 * 900 <= next_poll_at(NOW, NOW - 86400, state, POLICY, lambda: 1.0) - NOW <= 900
    final = replace(state, final=True)
    assert next_poll_at(NOW, NOW, final, POLICY, random.random) is None


def test_a_paid_out_link_is_watched_for_reversals_for_a_while() -> None:
    state = replace(created_record("razorpay", ("issued", 0)).state,  # type: ignore[type-var]
                    reversible=True, changed_at="2026-12-07T10:00:00Z")
    paid_at = 1_796_637_600.0  # 2026-12-07T10:00:00Z
    # Polled rarely (the webhook tells a reversal; the poll is for a lost one).
    assert next_poll_at(paid_at + 60, paid_at, state, POLICY, lambda: 0.0) == \
        paid_at + 60 + POLICY.reversal_poll_s
    assert next_poll_at(paid_at + 86401, paid_at, state, POLICY, lambda: 0.0) is None


# --- the tracker, with Kafka and the provider faked ----------------------------------------


class Table(dict):  # type: ignore[type-arg]
    unrecovered = None

    def find(self, link_key: str) -> tuple[str, bytes | None]:
        return lifecycle.find_record(self.get, link_key)

    async def put_durably(self, key: str, value: bytes) -> None:
        self[key] = value


class FakeClient:
    def __init__(self) -> None:
        self.status_answers: list[Any] = []
        self.cancel_answers: list[Any] = []
        self.calls: list[str] = []

    async def status(self, link: LinkRef, account: Any) -> Any:
        self.calls.append("status")
        return self.status_answers.pop(0)

    async def cancel(self, link: LinkRef, account: Any) -> Any:
        self.calls.append("cancel")
        return self.cancel_answers.pop(0)


class FakeCreator:
    def __init__(self, connector: str) -> None:
        self.provider = PROVIDERS[connector]
        self.client = FakeClient()

    async def guarded(self, send: Any, account: Any) -> Any:
        return await send()


class Sender:
    def __init__(self) -> None:
        self.sent: list[tuple[Any, bytes | None, bytes]] = []
        self.fail_next = False

    async def __call__(self, topic: Any, key: bytes | None, value: bytes | None,
                       partition: int | None, headers: Any = None) -> None:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("broker gone")
        assert value is not None
        self.sent.append((topic, key, value))


def tracker(connector: str = "razorpay") -> tuple[LinkTracker, Table, Sender, FakeCreator]:
    table, sender, creator = Table(), Sender(), FakeCreator(connector)
    t = LinkTracker(settings=load_settings({}), links=table, status_changed=FakeTopic(),
                    cancel_failed=FakeTopic(), creators={connector: creator},  # type: ignore[dict-item]
                    send=sender, policy=POLICY, clock=lambda: NOW, rand=lambda: 0.0)
    return t, table, sender, creator


def plant(table: Table, record: lifecycle.LinkRecord) -> str:
    table[record.reference] = record.to_bytes()
    return record.reference


def webhook(record: lifecycle.LinkRecord, status: str, attempt: int = 0,
            event_id: str | None = None, merchant: str | None = None) -> TrackingMessage:
    return TrackingMessage(kind=REPORT, connector=record.connector, reference=record.reference,
                           link_key=None, received_at="2026-12-07T11:00:00.000Z",
                           report=StatusReport(status, attempt, event_id=event_id),
                           merchant_id=merchant or record.link_key.split(":")[0])


async def test_a_change_is_stored_then_published_once_and_duplicates_publish_nothing() -> None:
    t, table, sender, _ = tracker()
    record = created_record("razorpay", ("issued", 0))
    key = plant(table, record)
    await t.on_message(webhook(record, "processing", 1, "evt_a"))
    await t.on_message(webhook(record, "processing", 1, "evt_a"))  # duplicate delivery
    await t.on_message(webhook(record, "processing", 1, "evt_b"))  # same change, other id
    [(topic, link_key, value)] = sender.sent
    event = orjson.loads(value)
    assert topic is t.status_changed and link_key == record.link_key.encode()
    assert not list(events.validator_for(events.STATUS_CHANGED).iter_errors(event))
    assert (event["payout_status"], event["previous_payout_status"], event["source"]) == \
        ("INITIATED", "REQUIRES_PAYOUT_METHOD_DATA", "webhook")
    stored = lifecycle.LinkRecord.from_bytes(table[key])
    assert stored.status_event == event and stored.status_event_published
    assert t.counts["changed"] == 1 and t.counts["duplicate"] == 1 and t.counts["stale"] == 1


async def test_a_change_stored_but_not_told_is_told_again_byte_for_byte() -> None:
    t, table, sender, _ = tracker()
    record = created_record("razorpay", ("issued", 0))
    key = plant(table, record)
    sender.fail_next = True
    with pytest.raises(ConnectionError):
        await t.on_message(webhook(record, "processing", 1, "evt_a"))
    stored = lifecycle.LinkRecord.from_bytes(table[key])
    assert stored.status_event is not None and not stored.status_event_published
    assert due_kind(stored, PROVIDERS["razorpay"], NOW) == POLL  # the sweep asks again
    await t.on_message(webhook(record, "processing", 1, "evt_a"))  # the provider retries
    [(_, _, value)] = sender.sent
    assert orjson.loads(value) == stored.status_event
    assert lifecycle.LinkRecord.from_bytes(table[key]).status_event_published


async def test_a_webhook_naming_another_payout_id_changes_nothing() -> None:
    t, table, sender, _ = tracker()
    record = created_record("razorpay", ("issued", 0))
    plant(table, record)
    report = replace(webhook(record, "processed", 1), report=StatusReport(
        "processed", 1, connector_payout_id="poutlk_not_ours"))
    await t.on_message(report)
    assert sender.sent == [] and t.counts == {"payout_id_mismatch": 1}


async def test_a_report_from_another_connector_than_the_records_changes_nothing() -> None:
    """The record's connector is authoritative after creation too: a report (webhook or
    poll) naming another provider never moves the link nor calls that provider."""
    t, table, sender, creator = tracker("razorpay")
    record = created_record("razorpay", ("issued", 0))
    plant(table, record)
    await t.on_message(replace(webhook(record, "processed", 1), connector="cashfree"))
    assert sender.sent == [] and t.counts == {"connector_mismatch": 1}
    assert lifecycle.LinkRecord.from_bytes(table[record.reference]).state == record.state


async def test_nothing_is_applied_from_a_table_that_could_not_be_recovered() -> None:
    from streams.ownership import Fenced

    t, table, sender, _ = tracker()
    record = created_record("razorpay", ("issued", 0))
    plant(table, record)
    table.unrecovered = ValueError("a changelog record that does not decode")  # type: ignore[assignment]
    with pytest.raises(Fenced):
        await t.on_message(webhook(record, "processed", 1))
    assert sender.sent == []


def test_a_record_without_a_known_status_keeps_its_schedule_and_answers() -> None:
    record = replace(created_record("razorpay", ("issued", 0)), state=None, next_poll_at=None)
    assert due_kind(record, PROVIDERS["razorpay"], NOW) == POLL  # never scheduled: ask
    kept = lifecycle.answered(lifecycle.polled(record, NOW + 60), "c1", {"event_id": "e"})
    again = lifecycle.LinkRecord.from_bytes(kept.to_bytes())
    assert again.next_poll_at == NOW + 60 and lifecycle.answer_to(again, "c1") == {"event_id": "e"}
    many = kept
    for n in range(20):
        many = lifecycle.answered(many, f"c{n + 2}", {"event_id": str(n)})
    assert lifecycle.answer_to(many, "c21") == {"event_id": "19"}
    assert lifecycle.answer_to(many, "c1") is None  # only the last few are kept


async def test_another_merchants_webhook_or_an_unknown_reference_changes_nothing() -> None:
    t, table, sender, _ = tracker()
    record = created_record("razorpay", ("issued", 0))
    plant(table, record)
    await t.on_message(webhook(record, "processed", 1, merchant="m_other"))
    await t.on_message(replace(webhook(record, "processed", 1), reference=link_reference("x:y")))
    assert sender.sent == [] and t.counts == {"merchant_mismatch": 1, "unknown_link": 1}


async def test_a_poll_applies_what_the_provider_says_and_reschedules() -> None:
    t, table, sender, creator = tracker()
    record = replace(created_record("razorpay", ("issued", 0)), next_poll_at=NOW - 1)
    key = plant(table, record)
    creator.client.status_answers = [Unknown("timeout"), StatusReport("processed", 1)]
    poll = TrackingMessage(kind=POLL, connector="razorpay", reference=record.reference,
                           link_key=record.link_key, received_at="t")
    await t.on_message(poll)
    # An old link (created weeks before NOW): polled at the longest interval.
    assert sender.sent == [] and lifecycle.LinkRecord.from_bytes(table[key]).next_poll_at == NOW + 900
    await t.on_message(poll)  # asked again before it is due (a lagging agent): not polled
    assert creator.client.calls == ["status"] and t.counts["not_due"] == 1
    table[key] = lifecycle.polled(lifecycle.LinkRecord.from_bytes(table[key]), NOW - 1).to_bytes()
    await t.on_message(poll)
    [(_, _, value)] = sender.sent
    assert orjson.loads(value)["payout_status"] == "SUCCESS"
    assert orjson.loads(value)["source"] == "poll"


async def test_cancel_publishes_the_change_or_a_clear_refusal() -> None:
    t, table, sender, creator = tracker()
    record = created_record("razorpay", ("issued", 0))
    plant(table, record)
    source = lifecycle.SourceOffset("payout-link-cancel-requested", 0, 5, NOW)
    creator.client.cancel_answers = [Cancelled(StatusReport("cancelled", 0))]
    await t.on_cancel({"event_id": "c1", "merchant_id": "m_razorpay", "merchant_payout_id": "p1"},
                      source)
    [(topic, _, value)] = sender.sent
    assert topic is t.status_changed
    assert (orjson.loads(value)["payout_status"], orjson.loads(value)["source"]) == \
        ("CANCELLED", "command")
    # Now final: a second cancel is refused without a provider call.
    await t.on_cancel({"event_id": "c2", "merchant_id": "m_razorpay", "merchant_payout_id": "p1"},
                      source)
    assert creator.client.calls == ["cancel"]
    refusal = orjson.loads(sender.sent[-1][2])
    assert sender.sent[-1][0] is t.cancel_failed
    assert refusal["error"]["code"] == "not_cancellable"
    assert refusal["connector_status"] == "cancelled"
    assert not list(events.validator_for(events.CANCEL_FAILED).iter_errors(refusal))


async def test_a_cancel_racing_a_claim_ends_in_the_providers_state() -> None:
    t, table, sender, creator = tracker()
    record = created_record("razorpay", ("issued", 0))
    key = plant(table, record)
    creator.client.cancel_answers = [NotCancellable("not in issued", "processing")]
    creator.client.status_answers = [StatusReport("processing", 1)]
    await t.on_cancel({"event_id": "c1", "merchant_id": "m_razorpay", "merchant_payout_id": "p1"},
                      lifecycle.SourceOffset("payout-link-cancel-requested", 0, 5, NOW))
    change, refusal = (orjson.loads(v) for _, _, v in sender.sent)
    assert change["payout_status"] == "INITIATED" and change["source"] == "poll"
    assert refusal["error"]["code"] == "not_cancellable"
    assert refusal["payout_status"] == "INITIATED"
    assert lifecycle.LinkRecord.from_bytes(table[key]).state.connector_status == "processing"  # type: ignore[union-attr]


async def test_a_redelivered_cancel_is_answered_again_with_the_same_event() -> None:
    t, table, sender, creator = tracker()
    record = created_record("razorpay", ("issued", 0))
    plant(table, record)
    source = lifecycle.SourceOffset("payout-link-cancel-requested", 0, 5, NOW)
    command = {"event_id": "c1", "merchant_id": "m_razorpay", "merchant_payout_id": "p1"}
    creator.client.cancel_answers = [Cancelled(StatusReport("cancelled", 0))]
    await t.on_cancel(command, source)
    await t.on_cancel(command, source)  # the same command after a crash
    assert creator.client.calls == ["cancel"]
    first, again = (orjson.loads(v) for _, _, v in sender.sent)
    assert first == again and first["command_event_id"] == "c1"
    # A refusal is remembered too.
    await t.on_cancel({**command, "event_id": "c2"}, source)
    await t.on_cancel({**command, "event_id": "c2"}, source)
    refusal, refusal_again = (orjson.loads(v) for _, _, v in sender.sent[2:])
    assert refusal == refusal_again and refusal["error"]["code"] == "not_cancellable"


async def test_a_cancel_whose_answer_was_lost_is_settled_by_reading_the_status() -> None:
    t, table, sender, creator = tracker()
    t._cancel_retry = replace(t._cancel_retry, backoff_s=0.0)
    record = created_record("razorpay", ("issued", 0))
    plant(table, record)
    creator.client.cancel_answers = [Unknown("lost")] * 4
    creator.client.status_answers = [StatusReport("cancelled", 0)]
    await t.on_cancel({"event_id": "c1", "merchant_id": "m_razorpay", "merchant_payout_id": "p1"},
                      lifecycle.SourceOffset("payout-link-cancel-requested", 0, 5, NOW))
    [(topic, _, value)] = sender.sent
    change = orjson.loads(value)
    assert topic is t.status_changed and change["source"] == "command"
    assert change["command_event_id"] == "c1" and change["payout_status"] == "CANCELLED"


async def test_a_link_past_its_expiry_is_cancelled_where_the_provider_does_not_expire_it() -> None:
    t, table, sender, creator = tracker()
    record = replace(created_record("razorpay", ("issued", 0)),
                     outcome={"connector_payout_id": "po_1", "expires_at": "2026-12-07T10:00:00Z"})
    plant(table, record)
    assert due_kind(record, PROVIDERS["razorpay"], NOW) == EXPIRE
    creator.client.cancel_answers = [Cancelled(StatusReport("cancelled", 0))]
    await t.on_message(TrackingMessage(kind=EXPIRE, connector="razorpay",
                                       reference=record.reference, link_key=record.link_key,
                                       received_at="t"))
    [(topic, _, value)] = sender.sent
    change = orjson.loads(value)
    assert topic is t.status_changed
    assert (change["payout_status"], change["source"], change["final"]) == \
        ("CANCELLED", "expiry", True)
    # Claimed meanwhile: the refusal is read back, the claim published, nothing failed.
    t, table, sender, creator = tracker()
    plant(table, record)
    creator.client.cancel_answers = [NotCancellable("not in issued", "processing")]
    creator.client.status_answers = [StatusReport("processing", 1)]
    await t.on_message(TrackingMessage(kind=EXPIRE, connector="razorpay",
                                       reference=record.reference, link_key=record.link_key,
                                       received_at="t"))
    [(topic, _, value)] = sender.sent
    assert topic is t.status_changed and orjson.loads(value)["source"] == "poll"


async def test_cancel_of_an_unknown_link_is_refused() -> None:
    t, _, sender, creator = tracker()
    await t.on_cancel({"event_id": "c1", "merchant_id": "m", "merchant_payout_id": "nope"},
                      lifecycle.SourceOffset("payout-link-cancel-requested", 0, 5, NOW))
    [(_, _, value)] = sender.sent
    assert orjson.loads(value)["error"]["code"] == "link_not_found" and creator.client.calls == []


# --- the poll sweep ---------------------------------------------------------------------


def test_due_kinds() -> None:
    provider = PROVIDERS["razorpay"]
    record = created_record("razorpay", ("issued", 0))
    assert due_kind(record, provider, NOW) is None  # next poll in 30 s
    assert due_kind(record, provider, NOW + 31) == POLL
    expiring = replace(record, outcome={"connector_payout_id": "po_1",
                                        "expires_at": "2026-12-07T10:00:00Z"})
    assert due_kind(expiring, provider, NOW) == EXPIRE  # razorpay does not expire links
    assert due_kind(expiring, PROVIDERS["cashfree"], NOW) is None  # cashfree does
    final = replace(record, state=replace(record.state, final=True))  # type: ignore[type-var]
    assert due_kind(final, provider, NOW + 10**6) is None


async def test_the_sweep_is_rate_bound_per_provider_and_resumes_where_it_stopped() -> None:
    rows = []
    for i in range(50):
        r = created_record("razorpay", ("issued", 0))
        key = f"m_r:p{i:03d}"
        r = replace(r, link_key=key, reference=link_reference(key), next_poll_at=NOW - 1)
        rows.append((r.reference.encode(), r.to_bytes()))
    rows.sort()
    sent: list[tuple[bytes, bytes, int]] = []

    def items(partition: int, after: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        return [row for row in rows if after is None or row[0] > after][:limit]

    async def send(key: bytes, value: bytes, partition: int) -> None:
        sent.append((key, value, partition))

    clock = [NOW]
    sweep = PollSweep(items=items, owned_partitions=lambda: [3], send=send,
                      providers=PROVIDERS, limits=SweepLimits(scan_per_tick=1000, rate_per_s=10),
                      clock=lambda: clock[0])
    assert await sweep.run_once() == 10  # the provider's rate for one second
    clock[0] += 1
    assert await sweep.run_once() == 10
    assert len({k for k, _, _ in sent}) == 20  # resumed: no link asked twice
    assert {p for _, _, p in sent} == {3}
    message = TrackingMessage.from_bytes(sent[0][1])
    assert message.kind == POLL and message.link_key is not None
    clock[0] += 10
    assert await sweep.run_once() == 10


@dataclass
class OneLinkSweep:
    """A sweep over a table of one link, on a clock the test moves."""

    record: lifecycle.LinkRecord
    limits: SweepLimits = field(default_factory=SweepLimits)
    now: float = NOW
    sent: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sweep = PollSweep(items=self._items, owned_partitions=lambda: [0], send=self._send,
                               providers=PROVIDERS, limits=self.limits, clock=lambda: self.now)

    def _items(self, partition: int, after: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        row = (self.record.reference.encode(), self.record.to_bytes())
        return [row] if after is None or row[0] > after else []

    async def _send(self, key: bytes, value: bytes, partition: int) -> None:
        self.sent.append(key)


async def test_a_link_polled_since_it_was_asked_about_is_asked_again_when_due() -> None:
    """Found by the lifecycle integration test: a link was not asked about again for
    resend_after_s (120 s) after its poll, so a webhook dropped after that poll was
    caught only minutes later."""
    r = replace(created_record("razorpay", ("issued", 0)), next_poll_at=NOW - 1)
    table = OneLinkSweep(r)
    assert await table.sweep.run_once() == 1
    table.now += 2
    assert await table.sweep.run_once() == 0  # asked, not done yet: not asked twice
    table.record = lifecycle.polled(r, NOW + 1)  # polled: next in 1 s
    assert await table.sweep.run_once() == 1  # due again (NOW + 2 > NOW + 1), and asked at once


async def test_a_link_whose_poll_was_lost_is_asked_again_within_a_few_poll_intervals() -> None:
    """A poll can be lost on the way (its handling raised and was contained, leaving the
    record as it was): the link is asked again after four of the shortest intervals,
    not after a fixed 120 s, which with 1-3 s polls was forty of them."""
    assert resend_after(1.0) == 10.0 and resend_after(30.0) == 120.0  # the default policy
    assert resend_after(3600.0) == 120.0 and resend_after(5.0) == 20.0
    r = replace(created_record("revolut", ("processing", 0)), next_poll_at=NOW - 1)
    table = OneLinkSweep(r, SweepLimits(resend_after_s=resend_after(1.0)))
    assert await table.sweep.run_once() == 1
    table.now += 9.5
    assert await table.sweep.run_once() == 0  # the record shows no poll yet: maybe only late
    table.now += 1
    assert await table.sweep.run_once() == 1  # 10.5 s on, still no poll: lost, ask again
    assert len(table.sent) == 2


async def test_the_sweep_gives_every_link_its_turn_and_a_rebalance_keeps_its_place() -> None:
    """A spent provider's links wait for the next pass, other providers' go on, and the
    cursor always moves on (restarting from the first due links each tick starved the
    rest: the demo's Prism links were never polled)."""
    rows = []
    for i, connector in enumerate(["razorpay"] * 5 + ["cashfree"] * 5):
        r = created_record(connector, ("issued", 0) if connector == "razorpay" else ("ACTIVE", 0))
        key = f"m_{i}:p{i:03d}"
        r = replace(r, link_key=key, reference=f"k{i:03d}", next_poll_at=NOW - 1)
        rows.append((r.reference.encode(), r.to_bytes()))
    sent: list[str] = []
    rebalancing = [False]
    clock = [NOW]

    def items(partition: int, after: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        return [row for row in rows if after is None or row[0] > after][:limit]

    async def send(key: bytes, value: bytes, partition: int) -> None:
        sent.append(TrackingMessage.from_bytes(value).reference)

    sweep = PollSweep(items=items, owned_partitions=lambda: None if rebalancing[0] else [0],
                      send=send, providers=PROVIDERS,
                      limits=SweepLimits(scan_per_tick=4, rate_per_s=2), clock=lambda: clock[0])
    assert await sweep.run_once() == 2  # k000, k001: razorpay's rate for the second
    rebalancing[0] = True
    assert await sweep.run_once() == 0 and sweep._cursors == {0: b"k003"}  # kept its place
    rebalancing[0] = False
    assert await sweep.run_once() == 2  # k004 waits (razorpay spent); cashfree goes on
    assert sent == ["k000", "k001", "k005", "k006"]
    for _ in range(6):
        clock[0] += 1
        await sweep.run_once()
    assert set(sent) == {f"k{i:03d}" for i in range(10)}  # every link had its turn


async def test_when_a_provider_cannot_serve_every_due_link_the_most_overdue_go_first() -> None:
    """Measured in the demo: whole partitions are read every tick, and in scan order
    the first partitions' links (due every few seconds) took every token while links
    late in the scan showed their creation status at the deadline."""
    by_partition: dict[int, list[tuple[bytes, bytes]]] = {0: [], 1: []}
    for i in range(6):
        partition = 0 if i < 4 else 1
        r = created_record("razorpay", ("issued", 0))
        # partition 0: due just now; partition 1: due long ago
        r = replace(r, link_key=f"m_{i}:p{i:03d}", reference=f"k{i:03d}",
                    next_poll_at=NOW - (1 if partition == 0 else 500 + i))
        by_partition[partition].append((r.reference.encode(), r.to_bytes()))
    sent: list[str] = []

    def items(partition: int, after: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
        return [row for row in by_partition[partition] if after is None or row[0] > after][:limit]

    async def send(key: bytes, value: bytes, partition: int) -> None:
        sent.append(TrackingMessage.from_bytes(value).reference)

    sweep = PollSweep(items=items, owned_partitions=lambda: [0, 1], send=send,
                      providers=PROVIDERS, limits=SweepLimits(scan_per_tick=100, rate_per_s=2),
                      clock=lambda: NOW)
    assert await sweep.run_once() == 2
    assert sent == ["k005", "k004"]  # the longest overdue, though scanned last


# --- receiving a webhook ----------------------------------------------------------------


def razorpay_body(reference: str, event: str = "payout_link.processed") -> bytes:
    entity = {"id": "poutlk_1", "entity": "payout_link", "status": "processed",
              "attempt_count": 1, "receipt": reference}
    return orjson.dumps({"entity": "event", "account_id": "acc_1", "event": event,
                         "contains": ["payout_link"],
                         "payload": {"payout_link": {"entity": entity}}, "created_at": 1_800_000_000})


def signed(body: bytes, secret: str = "demo_webhook_secret") -> dict[str, str]:
    return {"X-Razorpay-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
            "X-Razorpay-Event-Id": "evt_1"}


async def test_a_verified_webhook_is_written_to_its_home_partition_before_it_is_answered() -> None:
    settings_ = load_settings({"PAYOUT_TOPIC_PARTITIONS": "8"})
    reference = link_reference("m_acme:refund-42")
    written: list[tuple[bytes, bytes, int | None]] = []

    async def send(key: bytes, value: bytes, partition: int | None) -> None:
        written.append((key, value, partition))

    counts = WebhookCounts()
    body = razorpay_body(reference)
    answer = await receive("razorpay", "m_acme", signed(body), body, settings=settings_,
                           providers=PROVIDERS, send=send, counts=counts)
    assert answer.status == 200
    [(key, value, partition)] = written
    assert key == reference.encode() and partition == reference_partition(reference, 8)
    message = TrackingMessage.from_bytes(value)
    assert message.report is not None and message.report.connector_status == "processed"
    assert message.merchant_id == "m_acme" and message.report.event_id == "evt_1"


@pytest.mark.parametrize("case,status,code", [
    ("forged", 401, "signature_invalid"),
    ("unsigned", 401, "signature_missing"),
    ("unknown_event", 400, "unknown_event"),
    ("unknown_provider", 404, "unknown_provider"),
    ("no_webhooks_at_prism", 404, "unknown_provider"),
    ("bad_merchant", 404, "unknown_merchant"),
    ("too_large", 413, "body_too_large"),
])
async def test_refused_webhooks_are_never_written(case: str, status: int, code: str) -> None:
    settings_ = load_settings({})
    written: list[Any] = []

    async def send(key: bytes, value: bytes, partition: int | None) -> None:
        written.append(key)

    body = razorpay_body(link_reference("m:1"))
    headers: Mapping[str, str] = signed(body)
    provider, merchant = "razorpay", "m_acme"
    if case == "forged":
        headers = signed(body, "not_the_secret")
    elif case == "unsigned":
        headers = {}
    elif case == "unknown_event":
        body = razorpay_body(link_reference("m:1"), "payout.processed")
        headers = signed(body)
    elif case == "unknown_provider":
        provider = "paypal"
    elif case == "no_webhooks_at_prism":
        provider = "prism"
    elif case == "bad_merchant":
        merchant = "not a merchant"
    elif case == "too_large":
        body = b" " * (64 * 1024 + 1)
    counts = WebhookCounts()
    answer = await receive(provider, merchant, headers, body, settings=settings_,
                           providers=PROVIDERS, send=send, counts=counts)
    assert (answer.status, answer.body["error"]["code"]) == (status, code)
    assert written == []
    assert "not_the_secret" not in orjson.dumps(answer.body).decode()


async def test_a_webhook_kafka_does_not_take_in_time_is_answered_503() -> None:
    async def send(key: bytes, value: bytes, partition: int | None) -> None:
        await asyncio.sleep(3600)

    import streams.webhooks as webhooks_module
    body = razorpay_body(link_reference("m:1"))
    original = webhooks_module.WRITE_TIMEOUT_S
    webhooks_module.WRITE_TIMEOUT_S = 0.05
    try:
        answer = await receive("razorpay", "m_acme", signed(body), body,
                               settings=load_settings({}), providers=PROVIDERS, send=send,
                               counts=WebhookCounts())
    finally:
        webhooks_module.WRITE_TIMEOUT_S = original
    assert answer.status == 503


async def test_failing_status_reads_never_open_the_creates_circuit() -> None:
    """Review finding: polls shared the creates' breaker, so a status endpoint answering
    5xx refused new links (then retries_exhausted)."""
    from streams.connectors.base import LinkCreated
    from streams.connectors.guard import ProviderGuard
    from streams.link_creation import LinkCreator

    guard = ProviderGuard("razorpay", rate_per_s=0, failure_threshold=2, open_seconds=60)
    creator = LinkCreator(PROVIDERS["razorpay"], FakeClient(), guard=guard)  # type: ignore[arg-type]

    async def failing() -> Any:
        return Unknown("provider_unavailable", 503)

    from streams.connectors.base import Transient

    answers = [await creator.guarded(failing, None) for _ in range(4)]
    assert [type(a) for a in answers[:2]] == [Unknown, Unknown]
    assert isinstance(answers[3], Transient)  # its own circuit opened: refused before sending
    assert answers[3].reason == "circuit_open:razorpay:after-creation"

    async def create() -> Any:
        return LinkCreated("poutlk_1", None, "issued", "REQUIRES_PAYOUT_METHOD_DATA", None)

    assert isinstance(await guard.call(create, "razorpay"), LinkCreated)  # creates go on
