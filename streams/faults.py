"""Test-only fault knobs: make one processing stage misbehave for chosen records.

The poison-record suite and ``make chaos`` need records that make a given stage raise,
or kill the process outright, without weakening validation to let such records in.
``PAYOUT_FAULTS`` lists ``action:stage:marker`` triples, comma-separated:

* ``raise``  -- raise :class:`InjectedFault` (an unexpected bug in that stage);
* ``raise_once`` -- the same, the first time each matching text passes in this process
  (a bug that a retry gets past);
* ``crash``  -- ``os.abort()``: the process dies on the spot, as on a segfault, with no
  Python cleanup, so only a crash marker written before the stage can tell why;
* ``fatal``  -- the caller treats it as a fatal internal error (the worker must exit).

A record is hit when ``marker`` occurs in the text the stage passes (the raw value
before parsing, the link key after). Empty in production: one falsy check per call.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

log = logging.getLogger(__name__)

ACTIONS = frozenset({"raise", "raise_once", "crash", "fatal"})
STAGES = frozenset({"parse", "validate", "route", "transform", "provider_call",
                    "provider_answer", "publish", "agent"})


class InjectedFault(RuntimeError):
    """An exception no real code path raises: the stand-in for an unforeseen bug."""


class FaultSpecError(ValueError):
    pass


@dataclass(frozen=True)
class Fault:
    action: str
    stage: str
    marker: str


class Faults:
    def __init__(self, spec: str = "") -> None:
        self._by_stage: dict[str, list[Fault]] = {}
        self._fired: set[tuple[str, str | bytes]] = set()
        for item in filter(None, (part.strip() for part in spec.split(","))):
            try:
                action, stage, marker = item.split(":", 2)
            except ValueError:
                raise FaultSpecError(
                    f"PAYOUT_FAULTS entry {item!r} is not action:stage:marker") from None
            if action not in ACTIONS or stage not in STAGES or not marker:
                raise FaultSpecError(
                    f"PAYOUT_FAULTS entry {item!r}: action must be one of {sorted(ACTIONS)}, "
                    f"stage one of {sorted(STAGES)}, marker non-empty")
            self._by_stage.setdefault(stage, []).append(Fault(action, stage, marker))

    def __bool__(self) -> bool:
        return bool(self._by_stage)

    def hit(self, stage: str, text: str | bytes | None) -> str | None:
        """Act on a matching fault; returns ``"fatal"`` for the caller to handle."""
        if not self._by_stage:
            return None
        for fault in self._by_stage.get(stage, ()):
            if text is None:
                continue
            needle: str | bytes = fault.marker.encode() if isinstance(text, bytes) else fault.marker
            if needle not in text:  # type: ignore[operator]
                continue
            if fault.action == "raise_once":
                if (stage, text) in self._fired:
                    continue
                self._fired.add((stage, text))
                raise InjectedFault(f"injected fault in stage {stage} (once)")
            if fault.action == "raise":
                raise InjectedFault(f"injected fault in stage {stage}")
            if fault.action == "crash":
                log.critical("fault injection: aborting the process in stage %s", stage)
                logging.shutdown()
                os.abort()
            return fault.action
        return None


NO_FAULTS = Faults()
