"""Sample ``payout-link-requested`` traffic for the demo, the tests and the benchmark."""
from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any

import orjson

from streams.events import REQUESTED, link_key, now_iso

FIRST = ["Asha", "Ravi", "Meera", "Kabir", "Anika", "Vikram", "Isha", "Arjun"]
LAST = ["Rao", "Iyer", "Shah", "Gupta", "Nair", "Kapoor", "Das", "Menon"]


def valid_request(n: int, *, merchant_id: str = "m_demo", run: str = "run",
                  rng: random.Random | None = None) -> dict[str, Any]:
    rng = rng or random.Random(n)
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": REQUESTED,
        "schema_version": 1,
        "occurred_at": now_iso(),
        "merchant_id": merchant_id,
        "merchant_payout_id": f"{run}-{n:07d}",
        "amount": {"minor_amount": rng.randint(100, 5_000_000), "currency": "INR"},
        "customer": {
            "name": f"{first} {last}",
            "email": f"{first.lower()}.{last.lower()}{n}@example.com",
            "phone_number": f"9{rng.randint(100000000, 999999999)}",
            "phone_country_code": "+91",
        },
        "description": f"Refund for order {run}-{n}",
        "purpose": "refund",
        "notify": {"sms": True, "email": True},
        "metadata": {"order_id": f"ord_{n}"},
    }


# Each invalid variant names the field the failure must point at.
INVALID_VARIANTS: list[tuple[str, Any]] = [
    ("amount.minor_amount", lambda r: r["amount"].update(minor_amount=-5)),
    ("amount.currency", lambda r: r["amount"].update(currency="XYZ")),
    ("customer", lambda r: r.pop("customer")),
    ("customer.email", lambda r: r["customer"].update(email="not-an-email")),
    ("purpose", lambda r: r.update(purpose="x" * 31)),
]

GARBAGE = [b"\xff\xfe not json", b"{\"merchant_id\": \"m_demo\", ", b"[1, 2, 3]"]


def invalid_request(n: int, *, run: str = "run") -> tuple[dict[str, Any], str]:
    request = valid_request(n, run=run)
    field, mutate = INVALID_VARIANTS[n % len(INVALID_VARIANTS)]
    mutate(request)
    return request, field


def demo_records(total: int, *, run: str, invalid_every: int = 97,
                 garbage_at: tuple[int, ...] = (333, 666)) -> Iterator[tuple[bytes, bytes, str]]:
    """(key, value, kind) records: mostly valid, a few invalid, one or two garbage."""
    for n in range(total):
        if n in garbage_at:
            yield f"garbage-{n}".encode(), GARBAGE[n % len(GARBAGE)], "garbage"
        elif invalid_every and n % invalid_every == invalid_every - 1:
            request, _ = invalid_request(n, run=run)
            yield key_of(request), orjson.dumps(request), "invalid"
        else:
            request = valid_request(n, run=run)
            yield key_of(request), orjson.dumps(request), "valid"


def key_of(request: dict[str, Any]) -> bytes:
    return link_key(request["merchant_id"], request["merchant_payout_id"]).encode()


# The demo's merchants: two in India (one prefers Cashgram links, see DEMO_ROUTING; the
# other takes the registry's default for INR), two in Europe (GBP, EUR: Revolut by the
# registry's order), two routed through Prism (USD, EUR: its simulated Adyen) and one
# whose Prism connector (Stripe) has no payout-link flow: Prism answers
# FAILED_PRECONDITION and its links fail with connector_flow_not_supported.
DEMO_MERCHANTS: tuple[tuple[str, str], ...] = (
    ("m_in_default", "INR"), ("m_in_cashgram", "INR"), ("m_eu_gbp", "GBP"), ("m_eu_eur", "EUR"),
    ("m_us_prism", "USD"), ("m_eu_prism", "EUR"), ("m_us_stripe", "USD"))
DEMO_ROUTING = orjson.dumps({"m_in_cashgram": ["cashfree"], "m_us_prism": ["prism"],
                             "m_eu_prism": ["prism"], "m_us_stripe": ["prism"]}).decode()
# Merchants whose links a crash can leave in doubt for good: Stripe behind Prism has no
# payout Get either, so a worker killed between its FAILED_PRECONDITION and the failure's
# write leaves a `creating` link that no lookup can end (DESIGN.md rule 2: it stays
# unresolved, alerted). Chaos and soak, which kill workers, route no traffic there.
NO_LOOKUP_MERCHANTS = frozenset({"m_us_stripe"})
# Stripe is known to Prism without payout flows (the Prism simulator's default
# unsupported connector); the key is a placeholder the simulator never sees accepted.
STRIPE_ROUTE: dict[str, Any] = {"connector": "Stripe",
                                "connector_config": {"api_key": "sk_test_demo_placeholder"},
                                "currencies": ["USD"]}


def demo_worker_env() -> dict[str, str]:
    """The demo merchants' routing and accounts: every provider's simulator account for
    any merchant, and the Stripe-behind-Prism route for ``m_us_stripe``."""
    from streams.connectors.registry import PROVIDERS

    accounts: dict[str, Any] = {"*": {name: p.dev_account for name, p in PROVIDERS.items()
                                      if p.dev_account is not None}}
    if "prism" in PROVIDERS:
        accounts["m_us_stripe"] = {"prism": STRIPE_ROUTE}
    return {"PAYOUT_ROUTING": DEMO_ROUTING, "PAYOUT_CREDENTIALS": orjson.dumps(accounts).decode()}


def mixed_records(total: int, *, run: str, invalid_every: int = 97,
                  garbage_at: tuple[int, ...] = (333, 666)) -> Iterator[tuple[bytes, bytes, str]]:
    """Like :func:`demo_records`, with requests spread over the demo's merchants."""
    for key, value, kind in demo_records(total, run=run, invalid_every=invalid_every,
                                         garbage_at=garbage_at):
        if kind != "valid":
            yield key, value, kind
            continue
        request = orjson.loads(value)
        n = int(request["merchant_payout_id"].rsplit("-", 1)[1])
        merchant, currency = DEMO_MERCHANTS[n % len(DEMO_MERCHANTS)]
        request["merchant_id"] = merchant
        if currency != "INR":
            request["amount"] = {"minor_amount": 500 + n % 200_000, "currency": currency}
        if currency != "INR":
            request.pop("purpose", None)
            request["notify"] = {"sms": False, "email": False}  # the link goes out by us
        yield key_of(request), orjson.dumps(request), "valid"
