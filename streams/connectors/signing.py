"""What every provider's webhook receiver shares (pure): header lookup, a constant-time
match against every current secret, and reading a JSON event's name.

The provider packages keep what differs (which header, what is signed, which events).
"""
from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from streams.connectors.base import WebhookRejected

_EVENT_NAME = re.compile(r"[A-Za-z0-9_.]{1,64}", re.ASCII)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by its lower-case name (the caller lower-cases names; any other spelling
    is found too), or None when absent or not text."""
    value = headers.get(name)
    if value is None:
        for key, candidate in headers.items():
            if isinstance(key, str) and key.lower() == name:
                value = candidate
                break
    return value if isinstance(value, str) else None


def matches_any(expected: Iterable[bytes], sent: Iterable[bytes]) -> bool:
    """Whether any sent signature equals any expected one, comparing every pair in
    constant time (no early exit: the time says nothing about which secret matched)."""
    sent = list(sent)
    matched = False
    for want in expected:
        for value in sent:
            matched |= hmac.compare_digest(want, value)
    return matched


def shown_event(name: str) -> str:
    """An event name fit for a log line or an error message."""
    return name if _EVENT_NAME.fullmatch(name) else "(unprintable)"


def json_event(body: bytes) -> tuple[dict[str, Any], str] | WebhookRejected:
    """The event object and its ``event`` name, or why the body is not one (400)."""
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        return WebhookRejected(400, "malformed_body", "the body is not JSON")
    if not isinstance(event, dict):
        return WebhookRejected(400, "malformed_body", "the body is not a JSON object")
    name = event.get("event")
    if not isinstance(name, str) or not name:
        return WebhookRejected(400, "malformed_body", "event is missing or not a string")
    return event, name
