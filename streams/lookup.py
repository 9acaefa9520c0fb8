"""What an operator sees of one link: its record, described (pure).

Everything here comes from the link's record in the table (streams.lifecycle), which
holds no PII and no secret: identifiers, the provider's link id and URL, amounts,
statuses, event ids, counts and times. The customer's contact details live only in
the request, which the table does not keep.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from streams import events, lifecycle


def invalid_identifier(merchant_id: str, merchant_payout_id: str) -> tuple[str, str] | None:
    """``(field, message)`` for the first malformed part of a link key, else None."""
    for field, value in (("merchant_id", merchant_id),
                         ("merchant_payout_id", merchant_payout_id)):
        if not events.is_identifier(value):
            return field, (f"{field} must be 1-64 characters of A-Z, a-z, 0-9, '_', '.' "
                           f"or '-'")
    return None


def describe(record: lifecycle.LinkRecord) -> dict[str, Any]:
    outcome = record.outcome or {}
    state = record.state
    merchant_id, merchant_payout_id = events.split_link_key(record.link_key)
    error = outcome.get("error") if isinstance(outcome.get("error"), dict) else None
    return {
        "link_key": record.link_key,
        "merchant_id": merchant_id,
        "merchant_payout_id": merchant_payout_id,
        "reference": record.reference,
        "status": record.status.value,
        "connector": record.connector,
        "connector_payout_id": outcome.get("connector_payout_id"),
        "url": outcome.get("url"),
        "amount": outcome.get("amount"),
        "expires_at": outcome.get("expires_at"),
        "payout_status": state.payout_status if state else outcome.get("payout_status"),
        "connector_status": state.connector_status if state
        else outcome.get("connector_status"),
        "final": state.final if state else None,
        "status_changed_at": state.changed_at if state else None,
        "status_source": state.source if state else None,
        "outcome": None if not outcome else {
            "event_type": outcome.get("event_type"),
            "event_id": outcome.get("event_id"),
            "published": record.outcome_published,
            "occurred_at": outcome.get("occurred_at"),
            "error": None if error is None else {k: error.get(k)
                                                 for k in ("code", "message", "field")},
        },
        "last_status_event_id": (record.status_event or {}).get("event_id"),
        "request_event_id": record.request_event_id,
        "attempts": record.provider_calls,
        "started_at": record.started_at,
        "next_poll_at": None if record.next_poll_at is None else _iso(record.next_poll_at),
        "source": {"topic": record.source.topic, "partition": record.source.partition,
                   "offset": record.source.offset},
        "owner_epoch": record.owner_epoch,
    }


def describe_in_doubt(raw: bytes) -> dict[str, Any]:
    """A link's unresolved entry (streams.unresolved), without its request (PII)."""
    from streams.unresolved import UnresolvedEntry

    entry = UnresolvedEntry.from_bytes(raw)
    return {"reason": entry.reason[:500], "attempts": entry.attempts,
            "since": _iso(entry.since), "retry_at": _iso(entry.retry_at)}


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat().replace("+00:00", "Z")
