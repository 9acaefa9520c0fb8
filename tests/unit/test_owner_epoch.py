"""A stale owner's table write never replaces a later owner's (issue 10, owner epochs).

A worker paused past its lease can still flush a table write after the new owner's
write for the same key; Faust applies a changelog in log order on recovery and on
standby replicas. These apply changelog batches to a real RocksDB store, in the order a
stale write would land, and check which record survives.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.types import TP

from streams import lifecycle, ownership
from streams.faust_internals import AwaitableWritesTable
from streams.ownership import LeaseTerms, OwnershipLease

CHANGELOG = "epoch-test-payout-links-changelog"
KEY = "m_1:payout_1"


@dataclass
class Msg:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes | None

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)


@dataclass
class Ev:
    message: Msg


def record(link: str, epoch: int) -> lifecycle.LinkRecord:
    return lifecycle.LinkRecord(
        link_key=KEY, status=lifecycle.LinkStatus.CREATED, fingerprint="f", connector="razorpay",
        reference="ref", source=lifecycle.SourceOffset("payout-link-requested", 0, 1),
        outcome={"connector_payout_id": link}, outcome_published=True, owner_epoch=epoch)


def batch(start: int, *values: bytes | None) -> list[Ev]:
    return [Ev(Msg(CHANGELOG, 0, start + n, KEY.encode(), v)) for n, v in enumerate(values)]


@pytest.fixture()
def tables(tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """The worker's link table and, as the control, the same table without the guard."""
    from streams.app import LinkTable

    app = faust.App("epoch-test", store="rocksdb://", datadir=str(tmp_path))
    guarded = LinkTable(app, name="payout-links", partitions=1, key_type=str, value_type=bytes)
    plain = AwaitableWritesTable(app, name="plain", partitions=1, key_type=str,
                                 value_type=bytes)
    yield guarded, plain
    for table in (guarded, plain):
        table.data.reset_state()


def stored(table: Any) -> lifecycle.LinkRecord:
    raw = table.data._db_for_partition(0).get(KEY.encode())
    return lifecycle.LinkRecord.from_bytes(raw)


def test_a_stale_write_after_the_new_owners_loses_in_one_batch(tables) -> None:
    guarded, plain = tables
    new_owner, stale = record("plink_B", 6).to_bytes(), record("plink_A", 5).to_bytes()
    for table in (guarded, plain):
        table.apply_changelog_batch(batch(10, new_owner, stale))
    assert stored(guarded).outcome == {"connector_payout_id": "plink_B"}
    assert stored(plain).outcome == {"connector_payout_id": "plink_A"}  # the hole it closes
    # The refused record was read all the same: recovery resumes after it.
    assert guarded.data.persisted_offset(TP(CHANGELOG, 0)) == 11


def test_a_stale_write_in_a_later_batch_loses_to_the_stored_record(tables) -> None:
    guarded, _ = tables
    guarded.apply_changelog_batch(batch(0, record("plink_B", 6).to_bytes()))
    guarded.apply_changelog_batch(batch(1, record("plink_A", 5).to_bytes()))
    assert stored(guarded).outcome == {"connector_payout_id": "plink_B"}


def test_the_same_or_a_later_owner_replaces_in_log_order(tables) -> None:
    guarded, _ = tables
    first = record("plink_B", 6)
    guarded.apply_changelog_batch(batch(0, replace(first, outcome_published=False).to_bytes(),
                                        first.to_bytes()))
    assert stored(guarded).outcome_published
    guarded.apply_changelog_batch(batch(2, record("plink_C", 7).to_bytes()))
    assert stored(guarded).outcome == {"connector_payout_id": "plink_C"}


def test_records_from_before_epochs_count_as_epoch_0(tables) -> None:
    guarded, _ = tables
    legacy = record("plink_old", 0).to_bytes().replace(b',"owner_epoch":0', b"")
    assert b"owner_epoch" not in legacy
    guarded.apply_changelog_batch(batch(0, legacy, record("plink_new", 1).to_bytes()))
    assert stored(guarded).outcome == {"connector_payout_id": "plink_new"}


def test_a_record_never_moves_to_an_earlier_epoch() -> None:
    # A group whose metadata expired starts its generations at 1 again: the record
    # keeps the epoch it had, so the new owner's writes still win over old ones.
    assert lifecycle.stored_epoch(record("l", 57).to_bytes(owner_epoch=1)) == 57
    assert lifecycle.stored_epoch(record("l", 5).to_bytes(owner_epoch=6)) == 6
    assert lifecycle.stored_epoch(None) == 0


def test_work_runs_under_the_epoch_of_the_assignment_it_began_in() -> None:
    lease = OwnershipLease(LeaseTerms(lease_s=6, call_window_s=12))
    tp = TP("payout-link-requested", 0)
    lease.assigned([tp], epoch=5)
    ownership.install(lease)
    try:
        token = ownership.working_on(tp)
        lease.assigned([tp], epoch=6)  # a later assignment does not re-date begun work
        assert ownership.current_epoch() == 5 and ownership.current_partition() == tp
        ownership.reset(token)
        assert ownership.current_epoch() == 0 and ownership.current_partition() is None
    finally:
        ownership.install(None)
    assert ownership.supersedes(6, 5) and ownership.supersedes(5, 5)
    assert not ownership.supersedes(5, 6)


# --- the persisted offset: recovery starts from it ------------------------------------


@dataclass
class Ack:
    """What Faust's changelog send callback is given: a future with the write's place."""

    offset: int

    def result(self) -> Any:
        return type("RecordMetadata", (), {"topic_partition": TP(CHANGELOG, 0),
                                           "offset": self.offset})()


def persisted(table: Any) -> int | None:
    return table.data.persisted_offset(TP(CHANGELOG, 0))


def test_own_consecutive_writes_move_the_persisted_offset(tables) -> None:
    guarded, _ = tables
    guarded.apply_changelog_batch(batch(0, record("plink_A", 1).to_bytes()))
    for offset in (1, 2, 3):
        guarded._on_changelog_sent(Ack(offset))
    assert persisted(guarded) == 3
    assert guarded.interleaved_writes == 0


def test_a_fresh_partition_moves_from_its_first_write(tables) -> None:
    guarded, _ = tables
    guarded._on_changelog_sent(Ack(0))
    assert persisted(guarded) == 0


def test_an_own_write_after_another_writers_records_does_not_skip_them(tables) -> None:
    """Chaos seed 190594487: a paused worker's late write landed after the new owner's
    records; its ack moved the persisted offset past them, and once the partition came
    back, recovery skipped them and the worker created those links again."""
    guarded, _ = tables
    plain = faust.Table(guarded.app, name="faust-own", partitions=1, key_type=str,
                        value_type=bytes)  # the control: Faust's own rule
    for table in (guarded, plain):
        table.apply_changelog_batch(batch(0, record("plink_A", 1).to_bytes()))
        # Offsets 1..4 hold the other owner's records; this worker's write lands at 5.
        table._on_changelog_sent(Ack(5))
    assert persisted(plain) == 5  # Faust's own rule: the next recovery skips 1..4
    plain.data.reset_state()
    assert persisted(guarded) == 0  # recovery reads 1..4 next time
    guarded._on_changelog_sent(Ack(6))  # and stays there while this worker writes on
    assert persisted(guarded) == 0
    assert guarded.interleaved_writes == 2
    guarded.apply_changelog_batch(batch(1, *(record("plink_B", 2).to_bytes(),) * 6))
    assert persisted(guarded) == 6  # a recovery read them all
    guarded._on_changelog_sent(Ack(7))
    assert persisted(guarded) == 7


def test_a_changelog_batch_that_cannot_be_applied_marks_the_table_unrecovered(tables) -> None:
    guarded, _ = tables
    assert guarded.unrecovered is None
    with pytest.raises(ValueError):  # orjson's decode error is a ValueError
        guarded.apply_changelog_batch(batch(0, b"not a link record"))
    assert guarded.unrecovered is not None


async def test_in_a_worker_a_changelog_that_cannot_be_applied_crashes_it(tables) -> None:
    guarded, _ = tables
    crashed: list[BaseException] = []

    async def crash(reason: BaseException) -> None:
        crashed.append(reason)

    guarded.app.crash = crash
    for _ in range(2):  # once: the first failure is the one reported
        with pytest.raises(ValueError):
            guarded.apply_changelog_batch(batch(0, b"not a link record"))
    await guarded._crashing
    assert len(crashed) == 1 and crashed[0] is guarded.unrecovered
