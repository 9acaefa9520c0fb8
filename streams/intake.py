"""The serialized, input-dependent step every request record goes through first.

Parsing, schema validation and a dry run of the provider transform are the only work
whose behaviour depends on a record's bytes and that runs C/Rust code on them
(orjson, the stdlib decoder, jsonschema-rs). They run here, one record at a time in
the agent's loop, under the crash marker (:mod:`streams.poison`), so a record that
takes the process down is known by its coordinates at the next start. Everything
here is pure: bytes and settings in, a classification out.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from streams import events
from streams.config import Settings
from streams.connectors.base import link_reference
from streams.connectors.registry import PROVIDERS
from streams.connectors.routing import Route, Unroutable, route
from streams.faults import NO_FAULTS, Faults
from streams.poison import Stage


@dataclass(frozen=True)
class Invalid:
    """A JSON object that breaks the request schema."""

    request: dict[str, Any]
    problem: events.InvalidRequest


@dataclass(frozen=True)
class Valid:
    """A valid request, its link key, and where it would go if its link is new.

    ``call`` is the provider call built in the dry run, reused when the link is new;
    for an existing link the record's connector decides (DESIGN.md rule 3).
    """

    request: dict[str, Any]
    key: str
    routing: Route | Unroutable
    call: Any  # the provider's prepared create call, or None when unroutable
    reference: str = ""  # the link's reference: its table key and its in-flight key
    # The record carried events.LOOKUP_FIRST_HEADER: look up by reference before any
    # create even for a link no record remembers (a reconciliation re-drive).
    lookup_first: bool = False


@dataclass(frozen=True)
class InvalidCommand:
    """A JSON object that breaks a command's schema."""

    command: dict[str, Any]
    problem: events.InvalidRequest


@dataclass(frozen=True)
class ValidCancel:
    """A cancel command for the link of ``key``."""

    command: dict[str, Any]
    key: str
    reference: str


Intake = events.Unparseable | Invalid | Valid
CommandIntake = events.Unparseable | InvalidCommand | ValidCancel


def _no_report(stage: Stage) -> None:
    return None


def classify(value: bytes | None, settings: Settings, faults: Faults = NO_FAULTS,
             report: Callable[[Stage], None] = _no_report) -> Intake:
    """Parse, validate and dry-run the transform. Raises only on a bug (or a fault)."""
    report(Stage.PARSE)
    if faults:
        faults.hit("parse", value)
    request = events.parse_request(value)
    if isinstance(request, events.Unparseable):
        return request
    report(Stage.VALIDATE)
    key = events.request_link_key(request)
    if faults:
        faults.hit("validate", key if key is not None else value)
    problem = events.validate_request(request)
    if problem is not None:
        return Invalid(request, problem)
    assert key is not None  # the schema requires identifiers
    report(Stage.TRANSFORM)
    if faults:
        faults.hit("transform", key)
    routing = route(request, settings)
    reference = link_reference(key)
    call = None
    if isinstance(routing, Route):
        call = PROVIDERS[routing.connector].prepare(request, reference, routing.account)
        body = getattr(call, "json", None)
        if body is not None:
            orjson.dumps(body)  # the body must encode; this is where it would fail
    return Valid(request, key, routing, call, reference)


def classify_cancel(value: bytes | None, report: Callable[[Stage], None] = _no_report,
                    ) -> CommandIntake:
    """Parse and validate a ``payout-link-cancel-requested`` command (upstream input)."""
    report(Stage.PARSE)
    command = events.parse_request(value)
    if isinstance(command, events.Unparseable):
        return command
    report(Stage.VALIDATE)
    problem = events.validate_command(command, events.CANCEL_REQUESTED)
    if problem is not None:
        return InvalidCommand(command, problem)
    key = events.link_key(command["merchant_id"], command["merchant_payout_id"])
    return ValidCancel(command, key, link_reference(key))


REQUEST, COMMAND = "request", "command"


def risky_step(value: bytes, report: Callable[[Stage], None], kind: str = REQUEST) -> None:
    """What ``python -m streams.poison`` runs in isolation: the same step, same settings."""
    if kind == COMMAND:
        classify_cancel(value, report)
        return
    from streams.config import load_settings
    settings = load_settings()
    classify(value, settings, Faults(settings.faults), report)
