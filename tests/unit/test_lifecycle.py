"""The link state machine: every decision and transition."""
from __future__ import annotations

from streams import lifecycle as lc

SRC = lc.SourceOffset("payout-link-requested", 3, 42)


def decide(record: lc.LinkRecord | None, fingerprint: str = "fp1",
           source: lc.SourceOffset = SRC) -> lc.Decision:
    return lc.decide(record, link_key="m:p", fingerprint=fingerprint, connector="razorpay",
                     reference="pl_REF", source=source)


def creating() -> lc.LinkRecord:
    decision = decide(None)
    assert isinstance(decision, lc.StartCreation)
    return decision.record


def test_new_link_starts_creation_without_lookup() -> None:
    decision = decide(None)
    assert isinstance(decision, lc.StartCreation) and not decision.lookup_first
    assert decision.record.status is lc.LinkStatus.CREATING
    assert (decision.record.reference, decision.record.source) == ("pl_REF", SRC)


def test_a_new_link_re_driven_by_reconciliation_is_written_then_looked_up_first() -> None:
    decision = lc.decide(None, link_key="m:p", fingerprint="fp1", connector="razorpay",
                         reference="pl_REF", source=SRC, lookup_first=True)
    assert isinstance(decision, lc.StartCreation)
    assert decision.lookup_first and decision.fresh
    assert decision.record.status is lc.LinkStatus.CREATING


def test_only_a_new_record_is_fresh() -> None:
    assert isinstance(first := decide(None), lc.StartCreation) and first.fresh
    again = decide(creating())
    assert isinstance(again, lc.StartCreation) and not again.fresh


def test_record_left_creating_means_unknown_outcome_so_lookup_first() -> None:
    decision = decide(creating(), source=lc.SourceOffset("payout-link-requested", 3, 42))
    assert isinstance(decision, lc.StartCreation) and decision.lookup_first


def test_duplicate_of_settled_link_republishes_the_same_outcome() -> None:
    outcome = {"event_id": "e-1", "event_type": "payout-link-created"}
    record = lc.published(lc.settled(creating(), outcome, created=True, provider_calls=1))
    decision = decide(record, source=lc.SourceOffset("payout-link-requested", 3, 99))
    assert decision == lc.Republish(outcome)


def test_the_very_record_that_settled_the_link_republishes_its_outcome_when_read_again(
) -> None:
    """A redelivery after a crash, or a replay: the stored outcome, not nothing."""
    outcome = {"event_id": "e", "event_type": "payout-link-created"}
    record = lc.published(lc.settled(creating(), outcome, created=True, provider_calls=1))
    assert decide(record) == lc.Republish(outcome)


def test_outcome_stored_but_not_published_is_published_on_redelivery() -> None:
    outcome = {"event_id": "e-2", "event_type": "payout-link-failed"}
    record = lc.settled(creating(), outcome, created=False, provider_calls=2)
    assert record.status is lc.LinkStatus.FAILED
    assert decide(record) == lc.Republish(outcome)


def test_same_key_different_content_is_a_conflict_in_every_status() -> None:
    settled = lc.settled(creating(), {"event_id": "e"}, created=True, provider_calls=1)
    for record in (creating(), settled, lc.published(settled)):
        decision = decide(record, fingerprint="other")
        assert isinstance(decision, lc.Conflict) and decision.existing is record


def test_record_round_trips_through_changelog_bytes() -> None:
    record = lc.published(lc.settled(creating(), {"event_id": "e", "url": "https://x"},
                                     created=True, provider_calls=3))
    assert lc.LinkRecord.from_bytes(record.to_bytes()) == record
    assert lc.LinkRecord.from_bytes(creating().to_bytes()) == creating()
