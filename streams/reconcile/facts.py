"""Facts about one link, from our topics and from a provider's answers (pure).

Every fact is keyed by the link's provider reference (``link_reference(link key)``),
the one key our events, our table and every provider share: a provider's list names
our reference, never our link key. A fact is small and flat, so a window of a million
links spills to disk compactly (``streams.reconcile.join``). A :class:`Kind`'s number is the order in
which one link's facts reach :func:`streams.reconcile.classify.classify`.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import orjson

from streams import events
from streams.connectors.base import link_reference
from streams.connectors.ledger import HeldLink


class Kind(IntEnum):
    REQUEST = 1  # a payout-link-requested record (or its re-keyed copy)
    CREATED = 2  # a payout-link-created event
    FAILED_LINK = 3  # a payout-link-failed event of scope link: the link's terminal outcome
    FAILED_REQUEST = 4  # a payout-link-failed event of scope request: one request not acted on
    STATUS = 5  # a payout-link-status-changed event
    HELD = 6  # the provider holds a link under the reference
    ABSENT = 7  # the provider said it holds none (proof of absence)
    UNVERIFIED = 8  # the provider could not be asked, or did not answer


@dataclass(frozen=True)
class Fact:
    reference: str
    kind: Kind
    at_ms: int  # the record's timestamp (ms), or the provider's creation time
    data: Mapping[str, Any]

    def row(self) -> tuple[str, int, int, bytes]:
        return (self.reference, int(self.kind), self.at_ms, orjson.dumps(self.data))


def digest(raw: bytes) -> str:
    """What tells two contents apart under one event id (rule 5: a re-publish is
    byte-identical)."""
    return hashlib.sha256(raw).hexdigest()[:24]


@dataclass(frozen=True)
class Coordinates:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int


def from_request(value: bytes | None, where: Coordinates) -> Fact | None:
    """A request's fact, or None for a record that is not a request with a link key
    (its dead letter or request failure speaks for it)."""
    parsed = events.parse_request(value)
    if not isinstance(parsed, dict):
        return None
    key = events.request_link_key(parsed)
    amount = parsed.get("amount")
    if key is None or not isinstance(amount, dict):
        return None
    return Fact(link_reference(key), Kind.REQUEST, where.timestamp_ms, {
        "k": key, "m": parsed.get("merchant_id"),
        "a": amount.get("minor_amount"), "c": amount.get("currency"),
        "n": parsed.get("connector"), "t": where.topic, "p": where.partition, "o": where.offset})


def from_outcome(value: bytes | None, where: Coordinates) -> Fact | None:
    """A created, failed or status-changed event's fact; None for one naming no link."""
    if value is None:
        return None
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("link_key"), str):
        return None
    key: str = event["link_key"]
    common = {"k": key, "e": event.get("event_id"), "h": digest(value), "o": where.offset}
    kind = event.get("event_type")
    if kind == events.CREATED:
        amount: dict[str, Any] = event["amount"] if isinstance(event.get("amount"), dict) else {}
        return Fact(link_reference(key), Kind.CREATED, where.timestamp_ms, {
            **common, "m": event.get("merchant_id"), "cn": event.get("connector"),
            "id": event.get("connector_payout_id"), "s": event.get("connector_status"),
            "r": event.get("reference"), "a": amount.get("minor_amount"),
            "c": amount.get("currency")})
    if kind == events.FAILED:
        error: dict[str, Any] = event["error"] if isinstance(event.get("error"), dict) else {}
        scope = Kind.FAILED_LINK if event.get("scope") == events.LINK else Kind.FAILED_REQUEST
        return Fact(link_reference(key), scope, where.timestamp_ms, {
            **common, "m": event.get("merchant_id"), "cn": event.get("connector"),
            "code": error.get("code")})
    if kind == events.STATUS_CHANGED:
        return Fact(link_reference(key), Kind.STATUS, where.timestamp_ms, {
            **common, "s": event.get("connector_status"), "at": event.get("attempt"),
            "r": event.get("reference")})
    return None


def held(reference: str, connector: str, link: HeldLink, settled: bool) -> Fact:
    """``settled``: the provider is done moving the link (final, or paid out)."""
    return Fact(reference, Kind.HELD, link.created_at_ms or 0, {
        "cn": connector, "id": link.connector_payout_id, "s": link.connector_status,
        "a": link.amount_minor, "c": link.currency, "fin": settled})


def absent(reference: str, connector: str) -> Fact:
    return Fact(reference, Kind.ABSENT, 0, {"cn": connector})


def unverified(reference: str, connector: str, reason: str) -> Fact:
    return Fact(reference, Kind.UNVERIFIED, 0, {"cn": connector, "why": reason})
