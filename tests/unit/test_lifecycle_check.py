"""The lifecycle checker counts what it must: drift, two contents under one id,
duplicate changes; re-publications are allowed."""
from __future__ import annotations

from typing import Any

from streams.devkit.lifecycle_check import check_lifecycle

CREATED = [{"link_key": "m:1", "reference": "r1", "connector_status": "issued"},
           {"link_key": "m:2", "reference": "r2", "connector_status": "ACTIVE"}]


def change(key: str, status: str, n: int, attempt: int = 0, **extra: Any) -> dict[str, Any]:
    return {"event_id": f"{key}-{status}-{attempt}", "link_key": key, "connector_status": status,
            "attempt": attempt, "source": "webhook", "n": n, **extra}


def test_links_at_their_providers_final_status_pass() -> None:
    events = [change("m:1", "processing", 1, 1), change("m:1", "issued", 2, 1),
              change("m:1", "processing", 3, 2), change("m:2", "REDEEMED", 1)]
    verdict = check_lifecycle(CREATED, events, {"r1": "processing", "r2": "REDEEMED"})
    assert verdict.ok and verdict.matched == 2 and verdict.changes == 4


def test_drift_duplicates_and_two_contents_fail() -> None:
    events = [change("m:1", "processing", 1, 1), change("m:1", "processing", 1, 1),  # re-published
              {**change("m:2", "REDEEMED", 1), "event_id": "dup"},
              {**change("m:2", "REDEEMED", 2), "event_id": "dup2"},  # the same change again
              {**change("m:2", "REDEEMED", 3), "event_id": "dup"}]  # same id, other content
    verdict = check_lifecycle(CREATED, events, {"r1": "processed", "r2": "REDEEMED"})
    assert not verdict.ok
    assert verdict.drift == [("m:1", "processing", "processed")]
    assert verdict.republished == 1 and verdict.same_id_different_content == 1
    assert verdict.duplicate_changes == 1


def test_a_link_that_never_moved_is_judged_by_its_created_status() -> None:
    verdict = check_lifecycle(CREATED, [], {"r1": "issued", "r2": "EXPIRED"})
    assert verdict.matched == 1 and verdict.drift == [("m:2", "ACTIVE", "EXPIRED")]
