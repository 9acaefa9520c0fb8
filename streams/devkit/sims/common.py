"""What every provider simulator shares: fault kinds, counters, the URL line, process control.

Each simulator (``streams/devkit/sims/<provider name>.py``) is its own module and its
own process; this module names no provider. A simulator prints one line
``SIMULATOR_URL=http://127.0.0.1:<port>`` on stdout once listening, and
:class:`SimulatorProcess` (subclassed by each simulator) starts one as a child process,
waits for that line and for its health path, and stops it.

For the fleet (:mod:`streams.devkit.sims.fleet`), each simulator module also exposes
``fleet_process(*, latency_ms, jitter_ms, faults, hang_ms, seed, **options)`` returning
its process, whose :meth:`SimulatorProcess.links_by_reference` reads its ledger in one
shape: our reference -> link ids at that provider.

Two more things every simulator that stands for a provider with a link lifecycle shares:

* **Webhook delivery** (:class:`WebhookDispatcher`): a simulator says *what* happened (an
  event of one link, its payload, how to serialize and sign it for that provider); the
  dispatcher delivers it to ``webhook_url`` with retries and backoff, injects the
  delivery faults (``webhook_duplicate``, ``webhook_drop``, ``webhook_delay_ms``,
  ``webhook_forge``, ``webhook_reserialize``: :data:`WEBHOOK_KNOBS`) and records every
  delivery for checkers (``GET <control prefix>/webhooks``; ``POST …/webhooks/drain``
  waits until none is in flight).
* **Walks** (:class:`LinkWalker`): ``POST <control prefix>/lifecycle/walk`` moves links
  through random legal paths of the provider's lifecycle (each step a real transition,
  with its webhook), deterministically from a seed; ``GET …/lifecycle/statuses`` is the
  provider's truth per reference. A simulator supplies the provider's steps
  (:class:`LifecycleSubject`).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import random
import selectors
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self

import aiohttp
import orjson
from aiohttp import web

URL_LINE_PREFIX = "SIMULATOR_URL="
FAULT_KINDS: tuple[str, ...] = (
    "error_5xx",
    "throttle_429",
    "slow",
    "timeout_before_create",
    "lost_after_create",
)
_JSON_HEADERS = {"Content-Type": "application/json"}


def _probability(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{key} must be a number in [0, 1]")
    return float(value)


def _non_negative(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{key} must be a non-negative number")
    return float(value)


class _Stats:
    __slots__ = ("requests", "statuses", "faults", "events")

    def __init__(self) -> None:
        self.requests: dict[str, int] = {}
        self.statuses: dict[str, int] = {}
        self.faults: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        # links_created, idempotent_replays, client_gone, insufficient_funds, ...
        self.events: dict[str, int] = {}

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "statuses": dict(self.statuses),
            "faults": dict(self.faults),
            "events": dict(self.events),
        }


def _bump(counter: dict[str, int], key: str) -> None:
    counter[key] = counter.get(key, 0) + 1


def json_response(payload: Any, status: int = 200) -> web.Response:
    """A control endpoint's JSON answer."""
    return web.Response(status=status, body=orjson.dumps(payload), headers=_JSON_HEADERS)


async def json_object(request: web.Request) -> dict[str, Any] | None:
    """A control request's JSON object body ({} when empty), or None when it is not one."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


# ------------------------------------------------------------------ webhook delivery

# The knobs every webhook-sending simulator accepts (in its config, at runtime through
# its config endpoint, and from its process's constructor). The last four are per-event
# probabilities; each simulator may keep older names of its own as aliases.
WEBHOOK_FAULT_KNOBS: tuple[str, ...] = (
    "webhook_duplicate",  # a second delivery of the same event (same event id, if any)
    "webhook_drop",  # the event is never delivered: only polling can learn of it
    "webhook_forge",  # an EXTRA delivery with a wrong signature (the receiver must 401 it;
    #                   sent even when the event itself is dropped, sent once, same event id)
    "webhook_reserialize",  # the body serialized differently, signed over those bytes
)
WEBHOOK_KNOBS: tuple[str, ...] = (
    "webhook_url",  # where to POST (None: no webhook is sent)
    "webhook_retries",  # re-sends after a non-2xx or no answer
    "webhook_retry_ms",  # the first re-send's delay (then the provider's backoff)
    "webhook_timeout_s",  # how long one attempt waits for the receiver's answer
    "webhook_delay_ms",  # a random delay in [0, this) before a delivery's first attempt
    *WEBHOOK_FAULT_KNOBS,
)
MAX_WEBHOOK_RETRIES = 10
WEBHOOK_LOG_MAX = 100_000  # delivery and event records kept (the counts stay exact)
WEBHOOK_COUNTS: tuple[str, ...] = (
    "events",  # events emitted
    "deliveries",  # genuine deliveries planned (originals and duplicates, dropped ones not)
    "duplicates",
    "dropped",
    "reserialized",
    "attempts",  # HTTP attempts, every kind
    "delivered",  # genuine deliveries the receiver answered 2xx
    "undelivered",  # genuine deliveries given up (retries exhausted) or never sendable
    "forged_sent",
    "forged_answered_401",
    "forged_answered_other",  # any other HTTP status (2xx included: a receiver bug)
    "forged_accepted",  # of those, 2xx
    "forged_unanswered",  # no answer at all (timeout, connection refused)
)
_FORGERIES = ("wrong_secret", "tampered")
_JSON_VARIANTS = 4


def _optional_http_url(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ValueError(f"{key} must be null or an http(s) URL")
    return value


def _webhook_retries(key: str, value: Any) -> int:
    if type(value) is not int or not 0 <= value <= MAX_WEBHOOK_RETRIES:
        raise ValueError(f"{key} must be an integer in [0, {MAX_WEBHOOK_RETRIES}]")
    return value


def _positive(key: str, value: Any) -> float:
    number = _non_negative(key, value)
    if number <= 0:
        raise ValueError(f"{key} must be a positive number")
    return number


# knob -> validator (raises ValueError naming the knob, returns the stored value)
WEBHOOK_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "webhook_url": _optional_http_url,
    "webhook_retries": _webhook_retries,
    "webhook_retry_ms": _non_negative,
    "webhook_timeout_s": _positive,
    "webhook_delay_ms": _non_negative,
    **dict.fromkeys(WEBHOOK_FAULT_KNOBS, _probability),
}


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """One simulator's webhook knobs at the moment an event is emitted."""

    url: str | None
    retries: int = 0
    retry_interval_s: float = 1.0
    backoff: float = 2.0  # the n-th re-send waits retry_interval_s * backoff ** (n - 1)
    timeout_s: float = 5.0
    duplicate: float = 0.0
    drop: float = 0.0
    delay_ms: float = 0.0
    forge: float = 0.0
    reserialize: float = 0.0

    def retry_delay_s(self, retry: int) -> float:
        return self.retry_interval_s * self.backoff ** (retry - 1)

    @classmethod
    def of(cls, config: Any, *, retry_interval_s: float | None = None, backoff: float = 2.0) -> WebhookSettings:
        """From a simulator config holding the :data:`WEBHOOK_KNOBS` as attributes
        (``retry_interval_s`` overrides ``webhook_retry_ms`` for a provider that names
        its interval otherwise)."""
        interval = config.webhook_retry_ms / 1000.0 if retry_interval_s is None else retry_interval_s
        return cls(url=config.webhook_url, retries=config.webhook_retries, retry_interval_s=interval,
                   backoff=backoff, timeout_s=config.webhook_timeout_s,
                   duplicate=config.webhook_duplicate, drop=config.webhook_drop,
                   delay_ms=config.webhook_delay_ms, forge=config.webhook_forge,
                   reserialize=config.webhook_reserialize)


@dataclass(frozen=True, slots=True)
class RenderSpec:
    """How one delivery of an event is written (a provider's render function obeys it)."""

    secret: bytes  # what to sign with: the account's secret, or a wrong one (forged)
    variant: int  # 0: the provider's canonical serialization; n > 0: another one, same data
    tamper: bool  # forged by tampering: the body is changed after it was signed
    event_id: str | None  # the provider's event id (kept by duplicates and retries)


# (payload, spec) -> (the exact body bytes, the headers). Called once per attempt, so a
# provider whose signature covers a timestamp signs each attempt afresh.
Render = Callable[[Any, RenderSpec], tuple[bytes, Mapping[str, str]]]


def _reversed_keys(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _reversed_keys(node[k]) for k in reversed(list(node))}
    if isinstance(node, list):
        return [_reversed_keys(v) for v in node]
    return node


def json_body(payload: Any, variant: int = 0) -> bytes:
    """``payload`` as JSON bytes: variant 0 is compact, in insertion order, raw UTF-8 (what
    the simulators answer with); every other variant writes the same data differently
    (sorted and indented with ``\\uXXXX`` escapes; keys reversed with spaces; ``/``
    escaped as ``\\/``; letters ``o`` escaped as ``\\u006f`` with CRLF around) and never
    equals variant 0, so a receiver that re-serializes before verifying fails on it."""
    canonical = orjson.dumps(payload)
    if variant <= 0:
        return canonical
    kind = (variant - 1) % _JSON_VARIANTS
    if kind == 0:
        text = json.dumps(payload, sort_keys=True, indent=2, ensure_ascii=True)
    elif kind == 1:
        text = json.dumps(_reversed_keys(payload), separators=(", ", " : "), ensure_ascii=True)
    elif kind == 2:
        # "/" occurs only inside strings in JSON text, where "\/" is a legal escape
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).replace("/", "\\/")
    else:
        # "o" occurs only inside strings too (not in true/false/null, numbers or escapes)
        text = "\r\n" + json.dumps(payload, sort_keys=True, ensure_ascii=True).replace("o", "\\u006f") + "\r\n"
    body = text.encode()
    return body if body != canonical else body + b"\n"


def _tamper_amount(node: Any) -> bool:
    if isinstance(node, dict):
        value = node.get("amount")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            node["amount"] = value * 100 + 1
            return True
        return any(_tamper_amount(v) for v in node.values())
    if isinstance(node, list):
        return any(_tamper_amount(v) for v in node)
    return False


def _tamper_status(node: Any) -> bool:
    if isinstance(node, dict):
        for key in ("status", "new_state", "state"):
            value = node.get(key)
            if isinstance(value, str):
                node[key] = "processed" if value != "processed" else "cancelled"
                return True
        return any(_tamper_status(v) for v in node.values())
    if isinstance(node, list):
        return any(_tamper_status(v) for v in node)
    return False


def tamper_json(payload: Any) -> Any:
    """What an attacker would change in a JSON event: a copy with its amount raised (or,
    without one, its status changed to "processed"; else a key added)."""
    copy = orjson.loads(orjson.dumps(payload))
    if _tamper_amount(copy) or _tamper_status(copy):
        return copy
    if isinstance(copy, dict):
        copy["tampered"] = True
        return copy
    return {"tampered": copy}


class WebhookDispatcher:
    """Delivers a simulator's webhook events, with faults, and records every delivery.

    :meth:`emit` is synchronous and cheap: it draws the faults (one seeded RNG, in a
    fixed order per event: drop, duplicate, forge, then per delivery reserialize and
    delay) and schedules one task per delivery. A genuine delivery is retried on a
    non-2xx or no answer (``retries``, ``retry_interval_s``, ``backoff``); a forged one
    is sent once. Records (``GET <control prefix>/webhooks``):

    * ``webhooks``: one per delivery -- ``event``, ``event_id``, ``reference`` (ours),
      ``link_id`` (the provider's), ``kind`` (original | duplicate | forged),
      ``duplicate``, ``forged``, ``forgery`` (wrong_secret | tampered), ``reserialized``,
      ``dropped``, ``delay_ms``, ``attempts``, ``statuses`` (per attempt; null: no
      answer), ``last_status``, ``delivered`` (2xx; null when no URL was set), ``done``;
    * ``events``: one per event, the genuine deliveries summed up (``deliveries``,
      ``dropped``, ``forged``, ``attempts``, ``statuses``, ``delivered``: any 2xx);
    * ``counts``: :data:`WEBHOOK_COUNTS` plus ``in_flight``.

    A simulator's own fields (``extra``) are added to both records.
    """

    def __init__(self, seed: int | None = None, *, max_records: int = WEBHOOK_LOG_MAX) -> None:
        self._rng = random.Random(seed)
        self._max_records = max_records
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._clear()

    def _clear(self) -> None:
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=self._max_records)
        self.events: deque[dict[str, Any]] = deque(maxlen=self._max_records)
        self.counts: dict[str, int] = dict.fromkeys(WEBHOOK_COUNTS, 0)
        self._event_seq = 0
        self._delivery_seq = 0

    def reseed(self, seed: int | None) -> None:
        self._rng.seed(seed)

    def reset(self, seed: int | None) -> None:
        """Forget every record and count and stop deliveries in flight (a simulator reset)."""
        for task in self._tasks:
            task.cancel()
        self._clear()
        self.reseed(seed)

    @property
    def in_flight(self) -> int:
        return sum(1 for task in self._tasks if not task.done())

    def snapshot(self, *, since: int = 0, reference: str | None = None) -> dict[str, Any]:
        """The records (those after delivery/event number ``since``, of one reference if
        given) and the counts."""
        deliveries = [r for r in self.deliveries
                      if r["delivery"] > since and (reference is None or r["reference"] == reference)]
        events = [e for e in self.events
                  if e["seq"] > since and (reference is None or e["reference"] == reference)]
        return {"webhooks": deliveries, "events": events,
                "counts": {**self.counts, "in_flight": self.in_flight}}

    def emit(
        self,
        settings: WebhookSettings,
        *,
        event: str,
        link_id: str,
        reference: str | None,
        payload: Any,
        secret: bytes,
        render: Render,
        counters: dict[str, int],
        event_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record one event and schedule its deliveries; returns the event record.

        ``counters`` (the simulator's ``stats.events``) gets ``webhooks_emitted``,
        ``webhooks_delivered``, ``webhooks_undelivered``, ``webhooks_dropped``,
        ``webhooks_duplicated``, ``webhooks_forged``, ``webhooks_reserialized`` and
        ``webhook_attempts_failed``. With no URL the event is only recorded.
        """
        self._event_seq += 1
        extra = dict(extra or {})
        record: dict[str, Any] = {
            "seq": self._event_seq, "event": event, "event_id": event_id, "reference": reference,
            "link_id": link_id, **extra, "deliveries": 1, "dropped": False, "forged": 0,
            "attempts": 0, "statuses": [], "delivered": False,
        }
        self.events.append(record)
        self.counts["events"] += 1
        _bump(counters, "webhooks_emitted")
        if settings.url is None:
            record["delivered"] = None
            self._new_delivery(record, extra, "original", dropped=False, forgery=None, variant=0,
                               delay_ms=0.0, delivered=None)
            return record
        rng = self._rng
        dropped = bool(settings.drop) and rng.random() < settings.drop
        duplicate = not dropped and bool(settings.duplicate) and rng.random() < settings.duplicate
        forged = bool(settings.forge) and rng.random() < settings.forge
        kinds = ["original"] + (["duplicate"] if duplicate else []) + (["forged"] if forged else [])
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # emitted from synchronous code: nothing can be sent
            loop = None
        for kind in kinds:
            forgery = rng.choice(_FORGERIES) if kind == "forged" else None
            variant = 0
            if kind != "forged" and settings.reserialize and rng.random() < settings.reserialize:
                variant = 1 + rng.randrange(12)
            delay_ms = rng.random() * settings.delay_ms if settings.delay_ms else 0.0
            is_dropped = dropped and kind == "original"
            delivery = self._new_delivery(record, extra, kind, dropped=is_dropped, forgery=forgery,
                                          variant=variant, delay_ms=delay_ms, delivered=False)
            if kind == "duplicate":
                record["deliveries"] = 2
                self.counts["duplicates"] += 1
                _bump(counters, "webhooks_duplicated")
            if variant:
                self.counts["reserialized"] += 1
                _bump(counters, "webhooks_reserialized")
            if kind == "forged":
                record["forged"] += 1
                self.counts["forged_sent"] += 1
                _bump(counters, "webhooks_forged")
            elif not is_dropped:
                self.counts["deliveries"] += 1
            if is_dropped:
                record["dropped"] = True
                self.counts["dropped"] += 1
                _bump(counters, "webhooks_dropped")
                continue
            if loop is None:
                self._finish(delivery, record, counters)
                continue
            if forgery == "wrong_secret":
                wrong = b"forged_" + f"{rng.getrandbits(64):016x}".encode()
                spec = RenderSpec(secret=wrong, variant=0, tamper=False, event_id=event_id)
            else:
                spec = RenderSpec(secret=secret, variant=variant, tamper=forgery == "tampered",
                                  event_id=event_id)
            task = loop.create_task(self._deliver(settings, delivery, record, payload, spec, render, counters))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return record

    def _new_delivery(self, record: dict[str, Any], extra: dict[str, Any], kind: str, *,
                      dropped: bool, forgery: str | None, variant: int, delay_ms: float,
                      delivered: bool | None) -> dict[str, Any]:
        self._delivery_seq += 1
        delivery: dict[str, Any] = {
            "delivery": self._delivery_seq, "seq": record["seq"], "event": record["event"],
            "event_id": record["event_id"], "reference": record["reference"],
            "link_id": record["link_id"], **extra, "kind": kind, "duplicate": kind == "duplicate",
            "forged": kind == "forged", "forgery": forgery, "reserialized": variant > 0,
            "dropped": dropped, "delay_ms": round(delay_ms, 3), "attempts": 0, "statuses": [],
            "last_status": None, "delivered": delivered, "done": dropped or delivered is None,
        }
        self.deliveries.append(delivery)
        return delivery

    def _session_for(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _deliver(self, settings: WebhookSettings, delivery: dict[str, Any], record: dict[str, Any],
                       payload: Any, spec: RenderSpec, render: Render, counters: dict[str, int]) -> None:
        forged = delivery["forged"]
        if delivery["delay_ms"]:
            await asyncio.sleep(delivery["delay_ms"] / 1000.0)
        session = self._session_for()
        url = settings.url
        assert url is not None
        attempts = 1 if forged else 1 + settings.retries
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(settings.retry_delay_s(attempt))
            body, headers = render(payload, spec)
            status: int | None = None
            try:
                async with session.post(url, data=body, headers=dict(headers),
                                        timeout=aiohttp.ClientTimeout(total=settings.timeout_s)) as resp:
                    status = resp.status
                    await resp.read()
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                delivery["last_error"] = type(exc).__name__
            delivery["attempts"] += 1
            delivery["statuses"].append(status)
            delivery["last_status"] = status
            self.counts["attempts"] += 1
            if not forged:
                record["attempts"] += 1
                record["statuses"].append(status)
            if status is not None and 200 <= status < 300:
                delivery["delivered"] = True
                break
            if not forged:
                _bump(counters, "webhook_attempts_failed")
        self._finish(delivery, record, counters)

    def _finish(self, delivery: dict[str, Any], record: dict[str, Any], counters: dict[str, int]) -> None:
        delivery["done"] = True
        status = delivery["last_status"]
        if delivery["forged"]:
            if status is None:
                self.counts["forged_unanswered"] += 1
            elif status == 401:
                self.counts["forged_answered_401"] += 1
            else:
                self.counts["forged_answered_other"] += 1
                if 200 <= status < 300:
                    self.counts["forged_accepted"] += 1
                    _bump(counters, "webhooks_forged_accepted")
        elif delivery["delivered"]:
            record["delivered"] = True
            self.counts["delivered"] += 1
            _bump(counters, "webhooks_delivered")
        else:
            self.counts["undelivered"] += 1
            _bump(counters, "webhooks_undelivered")

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until no delivery is in flight (new ones included); False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            pending = [task for task in self._tasks if not task.done()]
            if not pending:
                return True
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            await asyncio.wait(pending, timeout=remaining)

    async def aclose(self) -> None:
        """Stop deliveries in flight and close the HTTP session."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- control endpoints ------------------------------------------------------------
    async def handle_list(self, request: web.Request) -> web.Response:
        """``GET <prefix>/webhooks[?since=N&reference=R]``."""
        try:
            since = int(request.query.get("since", "0"))
        except ValueError:
            return json_response({"error": "since must be an integer"}, 400)
        return json_response(self.snapshot(since=since, reference=request.query.get("reference")))

    async def handle_drain(self, request: web.Request) -> web.Response:
        """``POST <prefix>/webhooks/drain {"timeout_s": 60}``: answers once none is in flight."""
        body = await json_object(request)
        timeout = (body or {}).get("timeout_s", 60.0)
        if body is None or isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            return json_response({"error": "timeout_s must be a non-negative number"}, 400)
        drained = await self.drain(float(timeout))
        return json_response({"drained": drained, "counts": {**self.counts, "in_flight": self.in_flight}})


# ---------------------------------------------------------------------------- walks

# The paths a walk may take, named alike at every provider (each simulator maps them
# onto its own lifecycle; where a provider has no such move, the nearest one it has).
WALK_PATHS: tuple[str, ...] = (
    "processed", "expired", "cancelled", "reversed", "failed_then_processed", "failed",
)
DEFAULT_WALK_PLAN: Mapping[str, float] = {
    "processed": 0.5, "expired": 0.2, "cancelled": 0.1, "reversed": 0.1, "failed_then_processed": 0.1,
}
# tried in this order when the chosen path cannot start from a link's status
_WALK_FALLBACK: tuple[str, ...] = ("processed", "failed", "expired", "cancelled")


@dataclass(frozen=True)
class WalkRequest:
    """A ``POST <prefix>/lifecycle/walk`` body, validated."""

    seed: int
    references: tuple[str, ...] | None = None
    plan: tuple[tuple[str, float], ...] = tuple(DEFAULT_WALK_PLAN.items())
    step_delay_s: float = 0.0

    @classmethod
    def parse(cls, body: Any) -> WalkRequest:
        if not isinstance(body, dict):
            raise ValueError("the walk must be a JSON object")
        unknown = sorted(set(body) - {"seed", "references", "plan", "step_delay_ms"})
        if unknown:
            raise ValueError(f"unknown walk field(s): {', '.join(unknown)}")
        seed = body.get("seed")
        if type(seed) is not int:
            raise ValueError("seed must be an integer")
        refs = body.get("references")
        if refs is not None and (not isinstance(refs, list) or not all(isinstance(r, str) for r in refs)):
            raise ValueError("references must be a list of strings (or absent: every link not final)")
        raw_plan = body.get("plan")
        if raw_plan is None:
            plan = tuple(DEFAULT_WALK_PLAN.items())
        else:
            if not isinstance(raw_plan, dict) or not raw_plan:
                raise ValueError(f"plan must be an object of weights over {', '.join(WALK_PATHS)}")
            for name, weight in raw_plan.items():
                if name not in WALK_PATHS:
                    raise ValueError(f"unknown path {name!r} (known: {', '.join(WALK_PATHS)})")
                _non_negative(f"plan.{name}", weight)
            plan = tuple((name, float(raw_plan[name])) for name in WALK_PATHS if name in raw_plan)
            if sum(w for _, w in plan) <= 0:
                raise ValueError("plan weights must not all be 0")
        delay = body.get("step_delay_ms")
        step_delay_s = 0.0 if delay is None else _non_negative("step_delay_ms", delay) / 1000.0
        return cls(seed, tuple(refs) if refs is not None else None, plan, step_delay_s)

    def pick(self, rng: random.Random) -> str:
        total = sum(w for _, w in self.plan)
        r = rng.random() * total
        acc = 0.0
        for name, weight in self.plan:
            acc += weight
            if r < acc:
                return name
        return next(name for name, weight in reversed(self.plan) if weight > 0)


class LifecycleSubject(Protocol):
    """What a simulator gives :class:`LinkWalker`: its links and its lifecycle's moves."""

    def walk_candidates(self, references: Sequence[str] | None) -> list[tuple[str, str]]:
        """(our reference, link id), oldest first: every link of ``references``, or every
        link whose status is not final when None."""
        ...

    def walk_steps(self, link_id: str, path: str, rng: random.Random) -> list[str]:
        """The actions of ``path`` (one of :data:`WALK_PATHS`) for this link, from its
        status (``rng`` decides the path's own coin flips)."""
        ...

    def walk_legal(self, link_id: str, action: str) -> bool:
        """Whether ``action`` is a legal move from the link's status now."""
        ...

    def walk_apply(self, link_id: str, action: str) -> bool:
        """Make the move (with its webhook) if legal now; False (nothing done) if not."""
        ...

    def walk_status(self, link_id: str) -> str:
        """The link's raw status now."""
        ...

    def lifecycle_links(self) -> list[tuple[str, str, str, bool]]:
        """Every link, oldest first: (our reference, link id, raw status, status is final)."""
        ...


class LinkWalker:
    """Walks links of one simulator to a final state (``POST <prefix>/lifecycle/walk``).

    Each link's path is drawn from ``random.Random(f"{seed}:{reference}:{n}")`` (n: the
    link's index among the walk's links of that reference), so the same seed gives the
    same paths whatever else the walk holds. A path starts at its first action legal
    from the link's status (a link already claimed skips the claim); when none is, the
    next of processed, failed, expired, cancelled that can start is taken. A step that
    became illegal meanwhile (the processor cancelled the link) ends that link's walk
    where it is (a link gone with a reset ends as ``"gone"``). Links in a walk are not final for :meth:`statuses` until it ends.
    """

    def __init__(self, subject: LifecycleSubject) -> None:
        self._subject = subject
        self.walking: set[str] = set()

    def _steps(self, link_id: str, path: str, rng: random.Random) -> tuple[str, list[str]]:
        subject = self._subject
        for name in (path, *(p for p in _WALK_FALLBACK if p != path)):
            steps = subject.walk_steps(link_id, name, rng)
            for i, action in enumerate(steps):
                if subject.walk_legal(link_id, action):
                    return name, steps[i:]
        return path, []

    async def _run(self, link_id: str, steps: Sequence[str], delay_s: float) -> None:
        for i, action in enumerate(steps):
            if i and delay_s:
                await asyncio.sleep(delay_s)
            try:
                if not self._subject.walk_apply(link_id, action):
                    return
            except KeyError:  # the simulator was reset meanwhile: the link is gone
                return

    def _status(self, link_id: str) -> str:
        try:
            return self._subject.walk_status(link_id)
        except KeyError:
            return "gone"

    async def walk(self, request: WalkRequest) -> dict[str, Any]:
        """Apply every step; returns ``{"links": {reference: final status}, "paths":
        {reference: path}, "unknown": [references without a link]}`` (for a reference
        with several links: its newest)."""
        subject = self._subject
        targets = [(ref, lid) for ref, lid in subject.walk_candidates(request.references)
                   if lid not in self.walking]
        ids = [lid for _, lid in targets]
        self.walking.update(ids)
        jobs: list[tuple[str, str, str, list[str]]] = []
        try:
            seen: dict[str, int] = {}
            for ref, lid in targets:
                n = seen.get(ref, 0)
                seen[ref] = n + 1
                rng = random.Random(f"{request.seed}:{ref}:{n}")
                name, steps = self._steps(lid, request.pick(rng), rng)
                jobs.append((ref, lid, name, steps))
            if request.step_delay_s:
                await asyncio.gather(*(self._run(lid, steps, request.step_delay_s) for _, lid, _, steps in jobs))
            else:
                for i, (_, lid, _, steps) in enumerate(jobs):
                    await self._run(lid, steps, 0.0)
                    if i % 64 == 63:
                        await asyncio.sleep(0)  # let deliveries and API calls in between
        finally:
            self.walking.difference_update(ids)
        links = {ref: self._status(lid) for ref, lid, _, _ in jobs}
        paths = {ref: name for ref, _, name, _ in jobs}
        unknown = sorted(set(request.references or ()) - set(links))
        return {"links": links, "paths": paths, "unknown": unknown}

    def statuses(self) -> dict[str, dict[str, Any]]:
        """Our reference -> ``{"status", "final", "id"}`` of its newest link (with
        ``"links": [{"id", "status", "final"}, ...]`` when it has several)."""
        out: dict[str, dict[str, Any]] = {}
        for ref, lid, status, final in self._subject.lifecycle_links():
            entry: dict[str, Any] = {"status": status, "final": final and lid not in self.walking, "id": lid}
            prev = out.get(ref)
            if prev is not None:
                links = prev.pop("links", None) or [dict(prev)]
                entry["links"] = [*links, dict(entry)]
            out[ref] = entry
        return out

    async def handle_walk(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        try:
            walk = WalkRequest.parse(body)
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response(await self.walk(walk))

    async def handle_statuses(self, request: web.Request) -> web.Response:
        return json_response(self.statuses())


def add_lifecycle_routes(router: web.UrlDispatcher, prefix: str, walker: LinkWalker,
                         webhooks: WebhookDispatcher) -> None:
    """``POST {prefix}/lifecycle/walk``, ``GET {prefix}/lifecycle/statuses``,
    ``GET {prefix}/webhooks``, ``POST {prefix}/webhooks/drain``."""
    router.add_post(f"{prefix}/lifecycle/walk", walker.handle_walk)
    router.add_get(f"{prefix}/lifecycle/statuses", walker.handle_statuses, allow_head=False)
    router.add_get(f"{prefix}/webhooks", webhooks.handle_list, allow_head=False)
    router.add_post(f"{prefix}/webhooks/drain", webhooks.handle_drain)


def parse_move(body: Any) -> tuple[str, bool]:
    """A ``POST …/lifecycle {"action": …, "force": false}`` body -> (action, force)."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    action, force = body.get("action"), body.get("force", False)
    if not isinstance(action, str):
        raise ValueError("action must be a string")
    if not isinstance(force, bool):
        raise ValueError("force must be a boolean")
    return action, force


# ------------------------------------------------------------------ process control

_REPO_ROOT = Path(__file__).resolve().parents[3]


class SimulatorProcess:
    """Runs a simulator as a child process (its own session) for tests and benchmarks.

    A separate process keeps the simulator's CPU off the caller's event loop, as a
    real provider would be. Credentials travel via the ``SIM_CREDENTIALS`` env var, not
    argv, so they never show in ``ps``. ``stop()`` is idempotent and registered with
    atexit, so a crashed test run does not leave a listener behind.

    A subclass sets ``argv`` (the command that runs its simulator module) and
    ``health_path`` (under its own control prefix), and reads its own ledger.
    """

    control_prefix = "/_sim"  # each provider's simulator names its own control prefix
    health_path = "/_sim/health"
    links_path = "/links"  # under control_prefix: where one link's lifecycle endpoint lives

    def __init__(
        self,
        *,
        argv: Sequence[str] = (),
        credentials: Mapping[str, Mapping[str, Any]] | None = None,
        startup_timeout: float = 15.0,
        stop_timeout: float = 5.0,
        stderr: Any = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.argv = list(argv)
        self._credentials = credentials
        self._env = dict(env or {})  # extra environment (secrets that must not be in argv)
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._stderr = stderr
        self._proc: subprocess.Popen[bytes] | None = None
        self.url: str = ""

    @property
    def worker_url(self) -> str:
        """What a worker's base-URL variable for this provider is set to: the API URL
        (the Prism server overrides it with its gRPC target, the control URL apart)."""
        return self.url

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> Self:
        if self._proc is not None:
            raise RuntimeError("simulator already started")
        if not self.argv:
            raise RuntimeError("no simulator command (argv) to run")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self._env)
        if self._credentials is not None:
            env["SIM_CREDENTIALS"] = json.dumps({k: dict(v) for k, v in self._credentials.items()})
        self._proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr,
            env=env, cwd=str(_REPO_ROOT), start_new_session=True,
        )
        atexit.register(self.stop)
        try:
            deadline = time.monotonic() + self._startup_timeout
            self.url = self._read_url_line(deadline)
            self._wait_healthy(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _read_url_line(self, deadline: float) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(stdout, selectors.EVENT_READ)
            while b"\n" not in buf:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("simulator did not print its URL in time")
                if sel.select(remaining):
                    chunk = os.read(stdout.fileno(), 4096)
                    if not chunk:
                        raise RuntimeError(f"simulator exited early (code {self._proc.wait()})")
                    buf += chunk
        line = buf.split(b"\n", 1)[0].decode().strip()
        if not line.startswith(URL_LINE_PREFIX):
            raise RuntimeError(f"unexpected simulator output: {line!r}")
        return line[len(URL_LINE_PREFIX):]

    def _wait_healthy(self, deadline: float) -> None:
        while True:
            try:
                with urllib.request.urlopen(self.url + self.health_path, timeout=1.0) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"simulator exited (code {self._proc.returncode})")
            if time.monotonic() > deadline:
                raise TimeoutError("simulator not healthy in time")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout``. Safe to call any number of times."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        atexit.unregister(self.stop)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(self._stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    # small synchronous conveniences (stdlib only, so usable anywhere)
    def _call(self, method: str, path: str, payload: Any = None, *, timeout: float = 10.0) -> dict[str, Any]:
        data = orjson.dumps(payload) if payload is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                result: dict[str, Any] = orjson.loads(resp.read())
        except urllib.error.HTTPError as exc:
            # a control endpoint rejected the request (400) or the move (409): say why
            if exc.code in (400, 409):
                raise ValueError(orjson.loads(exc.read()).get("error", "rejected")) from None
            raise
        return result

    def configure(self, **patch: Any) -> dict[str, Any]:
        """Change behaviour at runtime, e.g. ``configure(error_5xx=0.1, latency_ms=50)``;
        a patch the simulator refuses raises ValueError naming why."""
        return self._call("POST", self.control_prefix + "/config", patch)

    def stats(self) -> dict[str, Any]:
        """The simulator's request, status, fault and event counters."""
        raise NotImplementedError

    # link lifecycle and webhooks (every simulator; Prism's sends no webhooks)
    def walk(self, *, seed: int, references: Sequence[str] | None = None,
             plan: Mapping[str, float] | None = None, step_delay_ms: float | None = None,
             timeout: float = 600.0) -> dict[str, str]:
        """Walk links to a final state (``POST <prefix>/lifecycle/walk``): every link not
        final, or those of ``references``, each along a path drawn by ``seed`` with the
        weights of ``plan`` (:data:`WALK_PATHS`; default :data:`DEFAULT_WALK_PLAN`).
        Returns our reference -> the status it ended in, once every step is applied
        (webhooks may still be in flight: :meth:`drain_webhooks`)."""
        links: dict[str, str] = self.walk_details(seed=seed, references=references, plan=plan,
                                                  step_delay_ms=step_delay_ms, timeout=timeout)["links"]
        return links

    def walk_details(self, *, seed: int, references: Sequence[str] | None = None,
                     plan: Mapping[str, float] | None = None, step_delay_ms: float | None = None,
                     timeout: float = 600.0) -> dict[str, Any]:
        """:meth:`walk`'s whole answer: ``links``, ``paths`` (reference -> path taken) and
        ``unknown`` (references given that have no link)."""
        body: dict[str, Any] = {"seed": seed}
        if references is not None:
            body["references"] = list(references)
        if plan is not None:
            body["plan"] = dict(plan)
        if step_delay_ms is not None:
            body["step_delay_ms"] = step_delay_ms
        return self._call("POST", self.control_prefix + "/lifecycle/walk", body, timeout=timeout)

    def statuses(self) -> dict[str, dict[str, Any]]:
        """The provider's truth: our reference -> ``{"status": raw status, "final": bool,
        "id": provider link id}`` for every link (``GET <prefix>/lifecycle/statuses``)."""
        return self._call("GET", self.control_prefix + "/lifecycle/statuses", timeout=60.0)

    def webhooks(self, *, since: int = 0, reference: str | None = None) -> dict[str, Any]:
        """Every webhook delivery and event record with the counts (``GET <prefix>/webhooks``)."""
        query = {"since": str(since)} | ({"reference": reference} if reference is not None else {})
        return self._call("GET", f"{self.control_prefix}/webhooks?{urllib.parse.urlencode(query)}",
                          timeout=60.0)

    def drain_webhooks(self, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until no webhook delivery is in flight (at most ``timeout`` s); returns
        ``{"drained": bool, "counts": {...}}``."""
        return self._call("POST", self.control_prefix + "/webhooks/drain", {"timeout_s": timeout},
                          timeout=timeout + 10.0)

    def lifecycle(self, link_id: str, action: str, *, force: bool = False) -> dict[str, Any]:
        """One lifecycle move of one link (``POST <prefix><links_path>/{id}/lifecycle``);
        an illegal move raises ValueError (the endpoint's 409) unless ``force``."""
        path = f"{self.control_prefix}{self.links_path}/{urllib.parse.quote(link_id, safe='')}/lifecycle"
        return self._call("POST", path, {"action": action, "force": force})

    def links_by_reference(self) -> dict[str, list[str]]:
        """Our reference -> link ids at this provider (duplicates visible), from its ledger."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start() if self._proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
