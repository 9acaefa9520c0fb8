"""Did every created link end where its provider says it is? (the lifecycle checker)

Pure: the created events, the status-changed events in the order they were read (one
link's events share a partition, so read order is publication order), and each
provider's truth (our reference -> its status, from the simulators) in; a verdict out.
Used by the integration test, ``make chaos``'s lifecycle phase and the demo.

* **drift**: a link whose last status (its created status, then each change) is not
  the provider's final status;
* **same id, different content**: one ``event_id`` carrying two contents (DESIGN.md
  rule 5); the same id with the same bytes is a re-publication, counted but allowed;
* **duplicate changes**: an event announcing the status (and provider attempt) the
  link already had (a duplicated or stale report that got through).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass
class LifeVerdict:
    links: int = 0
    matched: int = 0
    drift: list[tuple[str, str | None, str]] = field(default_factory=list)
    same_id_different_content: int = 0
    republished: int = 0
    duplicate_changes: int = 0
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (link key, status)
    changes: int = 0
    by_source: dict[str, int] = field(default_factory=dict)
    finals: dict[str, int] = field(default_factory=dict)  # provider final status -> links

    @property
    def ok(self) -> bool:
        return (not self.drift and self.same_id_different_content == 0
                and self.duplicate_changes == 0)

    def line(self) -> str:
        sources = ", ".join(f"{k} {v}" for k, v in sorted(self.by_source.items()))
        return (f"lifecycle: {self.links} links, {self.matched} at their provider's final "
                f"status, {len(self.drift)} drifted, {self.changes} changes ({sources}), "
                f"{self.duplicate_changes} duplicate changes, {self.same_id_different_content} "
                f"same-id different-content, {self.republished} re-published")


def check_lifecycle(created: Iterable[Mapping[str, Any]],
                    status_events: Iterable[Mapping[str, Any]],
                    truth: Mapping[str, str]) -> LifeVerdict:
    """``truth``: our reference -> the provider's status, for the links to check."""
    verdict = LifeVerdict()
    last: dict[str, tuple[str, int]] = {}
    reference_of: dict[str, str] = {}
    for event in created:
        key = str(event["link_key"])
        if event["reference"] in truth:
            last.setdefault(key, (str(event["connector_status"]), 0))
            reference_of[key] = str(event["reference"])
    seen: dict[str, bytes] = {}
    for event in status_events:
        key = str(event["link_key"])
        body = orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
        previous_body = seen.get(str(event["event_id"]))
        if previous_body is not None:
            if previous_body == body:
                verdict.republished += 1
            else:
                verdict.same_id_different_content += 1
            continue
        seen[str(event["event_id"])] = body
        if key not in last:
            continue
        verdict.changes += 1
        source = str(event["source"])
        verdict.by_source[source] = verdict.by_source.get(source, 0) + 1
        now = (str(event["connector_status"]), int(event.get("attempt") or 0))
        if last[key] == now:
            verdict.duplicate_changes += 1
            verdict.duplicates.append((key, now[0]))
        last[key] = now
    for key, reference in sorted(reference_of.items()):
        verdict.links += 1
        final = truth[reference]
        verdict.finals[final] = verdict.finals.get(final, 0) + 1
        ours = last[key][0] if key in last else None
        if ours == final:
            verdict.matched += 1
        else:
            verdict.drift.append((key, ours, final))
    return verdict
