"""Which classes one link falls in, from every fact about it (pure, no I/O).

The model is ``lifecycle.decide``: facts in, one :class:`Finding` out. A link may fall
in several exception classes at once (a mismatched amount and a drifted status); a link
in none of them is ``matched``. The classes:

* ``lost`` -- a request with no outcome at all (no created, no failure of the link or
  of the request) and no link at the provider;
* ``duplicate`` -- more than one terminal outcome (two event ids, or one event id with
  two contents: DESIGN.md rule 5), or more than one link at the provider;
* ``orphan`` -- the provider holds a link under our reference and we never said
  created (nor failed): **money danger**, a recipient can claim a link nobody knows of;
* ``unknown_at_provider`` -- we said created and the provider proves it holds nothing;
* ``false_failure`` -- we said the link failed and the provider holds it: **money danger**;
* ``mismatch`` -- the provider's amount, currency or link id differ from what we said:
  **money danger**;
* ``drift`` -- the provider is done with the link (a final status, or paid out) and our
  last status is another;
* ``unverified`` -- the provider could not be asked (no answer, refused, no account):
  nothing about the link at the provider is known, so nothing is claimed.

``request_failed`` (every request refused before any link existed, nothing at the
provider) is not an exception: it is the outcome those requests were given.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.reconcile.facts import Fact, Kind

MATCHED = "matched"
REQUEST_FAILED = "request_failed"
LOST = "lost"
DUPLICATE = "duplicate"
ORPHAN = "orphan"
UNKNOWN_AT_PROVIDER = "unknown_at_provider"
FALSE_FAILURE = "false_failure"
MISMATCH = "mismatch"
DRIFT = "drift"
UNVERIFIED = "unverified"

MONEY_DANGER = (ORPHAN, DUPLICATE, FALSE_FAILURE, MISMATCH)
EXCEPTIONS = (*MONEY_DANGER, LOST, UNKNOWN_AT_PROVIDER, DRIFT, UNVERIFIED)
CLASSES = (MATCHED, REQUEST_FAILED, *EXCEPTIONS)


@dataclass(frozen=True)
class Finding:
    """One link's verdict: its classes and what an operator needs to act on it."""

    reference: str
    link_key: str | None  # None: a provider link whose request we never read
    merchant_id: str | None
    connector: str | None
    classes: tuple[str, ...]
    at_ms: int  # when the link entered the window (first request, else first sign of it)
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def exceptional(self) -> bool:
        return any(c in EXCEPTIONS for c in self.classes)

    @property
    def money_danger(self) -> bool:
        return any(c in MONEY_DANGER for c in self.classes)


def _first(facts: list[Fact], key: str) -> Any:
    return next((f.data.get(key) for f in facts if f.data.get(key) is not None), None)


def classify(reference: str, facts: Iterable[Fact],
             in_scope: Callable[[int], bool] = lambda at_ms: True) -> Finding | None:
    """The link's finding, or None when it is not in the window's scope: only status
    changes of a link created before it, or a request before it (``in_scope`` of the
    link's first sign decides)."""
    by: dict[Kind, list[Fact]] = {kind: [] for kind in Kind}
    for fact in facts:
        by[fact.kind].append(fact)
    requests, created, failed = by[Kind.REQUEST], by[Kind.CREATED], by[Kind.FAILED_LINK]
    refused, held = by[Kind.FAILED_REQUEST], by[Kind.HELD]
    # When the link entered the window: its first request; without one (read), its
    # first outcome; without one, when the provider says it created the link.
    signs = requests or (created + failed + refused) or held
    if not signs:
        return None
    at_ms = min(f.at_ms for f in signs)
    if not in_scope(at_ms):
        return None
    ours = requests + created + failed + refused + by[Kind.STATUS]
    link_key = _first(ours, "k")
    merchant_id = _first(requests + created + failed + refused, "m")
    connector = _first(created + failed + held + by[Kind.ABSENT] + by[Kind.UNVERIFIED], "cn")
    detail: dict[str, Any] = {}
    classes: list[str] = []

    contents: dict[str, set[str]] = {}
    for fact in created + failed:
        contents.setdefault(str(fact.data.get("e")), set()).add(str(fact.data.get("h")))
    held_ids = sorted({str(f.data.get("id")) for f in held})
    if len(contents) > 1 or any(len(h) > 1 for h in contents.values()) or len(held_ids) > 1:
        classes.append(DUPLICATE)
        detail["outcome_event_ids"] = sorted(contents)
        if len(held_ids) > 1:
            detail["provider_link_ids"] = held_ids

    if held:
        link = held[0].data
        detail.update(provider_link_id=link.get("id"), provider_status=link.get("s"))
        if failed and not created:
            classes.append(FALSE_FAILURE)
            detail["failure_code"] = failed[0].data.get("code")
        elif not created:
            classes.append(ORPHAN)
        else:
            said = created[0].data
            amount = said.get("a") if said.get("a") is not None else _first(requests, "a")
            currency = said.get("c") or _first(requests, "c")
            wrong = [name for name, ours_, theirs in (
                ("amount", amount, link.get("a")), ("currency", currency, link.get("c")),
                ("connector_payout_id", said.get("id"), link.get("id")))
                if theirs is not None and ours_ != theirs]
            if wrong:
                classes.append(MISMATCH)
                detail["mismatched"] = {name: {"ours": v1, "provider": v2} for name, v1, v2 in (
                    ("amount", amount, link.get("a")), ("currency", currency, link.get("c")),
                    ("connector_payout_id", said.get("id"), link.get("id"))) if name in wrong}
            last = _last_status(created, by[Kind.STATUS])
            if link.get("fin") and last != link.get("s"):
                classes.append(DRIFT)
                detail["our_status"] = last
    elif by[Kind.ABSENT]:
        if created:
            classes.append(UNKNOWN_AT_PROVIDER)
            detail["our_link_id"] = created[0].data.get("id")
        elif requests and not failed and not refused:
            classes.append(LOST)
    else:
        if requests and not created and not failed and not refused:
            classes.append(LOST)
        if by[Kind.UNVERIFIED]:
            classes.append(UNVERIFIED)
            detail["unverified_because"] = by[Kind.UNVERIFIED][0].data.get("why")
    if not classes:
        classes.append(REQUEST_FAILED if refused and not created and not failed else MATCHED)
    if requests and (LOST in classes or ORPHAN in classes):  # what a re-drive would send
        first = min(requests, key=lambda f: f.at_ms).data
        detail["request_at"] = {"topic": first.get("t"), "partition": first.get("p"),
                                "offset": first.get("o")}
    return Finding(reference, link_key, merchant_id, connector, tuple(classes), at_ms, detail)


def _last_status(created: list[Fact], changes: list[Fact]) -> Any:
    """Our last word on the link's status: the latest change (one link's events share a
    partition, so offsets order them), else what the created event said."""
    if changes:
        return max(changes, key=lambda f: (f.data.get("o") or 0, f.at_ms)).data.get("s")
    return created[0].data.get("s")
