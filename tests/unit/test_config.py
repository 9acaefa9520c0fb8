"""Credentials and routing from configuration: per merchant and provider, checked at startup."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from streams.config import ConfigError, load_settings
from streams.connectors.routing import Route, Unroutable, route, route_existing
from streams.devkit.traffic import valid_request

RZP = {"key_id": "rzp_live_k", "key_secret": "s3cret-value", "account_number": "2323230041626905"}
REPO = Path(__file__).resolve().parents[2]


def settings(credentials: object, routing: object = None, **env: str):
    values = {"PAYOUT_CREDENTIALS": orjson.dumps(credentials).decode(), **env}
    if routing is not None:
        values["PAYOUT_ROUTING"] = orjson.dumps(routing).decode()
    return load_settings(values)


@pytest.mark.parametrize("credentials, says", [
    ({"m1": {"cashflow": RZP}}, "merchant 'm1': unknown provider 'cashflow'"),
    ({"m1": {"razorpay": {**RZP, "key_secret": ""}}},
     "merchant 'm1', provider 'razorpay', field 'key_secret'"),
    ({"m1": {"razorpay": {**RZP, "account_number": "no!"}}}, "field 'account_number'"),
    ({"m1": {"razorpay": {**RZP, "extra": "x"}}}, "field 'extra'"),
    ({"m1": ["razorpay"]}, "merchant 'm1': must be an object"),
    ([1], "must be an object"),
])
def test_bad_credentials_name_merchant_provider_and_field_never_a_secret(credentials: object,
                                                                         says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(credentials)
    assert says in str(caught.value) and "s3cret-value" not in str(caught.value)


def test_credentials_are_per_merchant_with_a_star_fallback_and_hidden_in_repr() -> None:
    s = settings({"*": {"razorpay": RZP}, "m2": {"razorpay": {**RZP, "key_id": "other"}}})
    assert s.account("m1", "razorpay").key_id == "rzp_live_k"
    assert s.account("m2", "razorpay").key_id == "other"
    assert "s3cret-value" not in repr(s) and "s3cret-value" not in repr(s.account("m1", "razorpay"))


def test_routing_explicit_then_preference_then_registry_order() -> None:
    s = settings({"m1": {"razorpay": RZP}}, {"m1": ["razorpay"]})
    request = valid_request(1, merchant_id="m1")
    assert isinstance(route(request, s), Route) and route(request, s).connector == "razorpay"
    xcd = dict(request, amount={"minor_amount": 100, "currency": "XCD"})
    unroutable = route(xcd, s)
    # Only a Prism route could pay out in XCD, and this merchant has none.
    assert isinstance(unroutable, Unroutable) and unroutable.field == "merchant_id"
    assert unroutable.code == "connector_not_configured" and "(prism)" in unroutable.message
    named = route(dict(xcd, connector="razorpay"), s)
    assert isinstance(named, Unroutable) and named.field == "amount.currency"
    stranger = valid_request(1, merchant_id="m9")
    missing = route(stranger, s)
    assert isinstance(missing, Unroutable) and missing.code == "connector_not_configured"
    assert isinstance(route_existing("razorpay", stranger, s), Unroutable)


def test_bad_routing_and_numbers_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="PAYOUT_ROUTING: merchant 'm1': unknown provider 'x'"):
        settings({"m1": {"razorpay": RZP}}, {"m1": ["x"]})
    with pytest.raises(ConfigError, match="PAYOUT_TOPIC_PARTITIONS: 'abc' is not an integer"):
        load_settings({"PAYOUT_TOPIC_PARTITIONS": "abc"})


def test_the_worker_refuses_bad_configuration_with_one_line_and_exit_code_2() -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
           "PAYOUT_CREDENTIALS": orjson.dumps({"m1": {"razorpay": {**RZP, "key_id": ""}}}).decode()}
    done = subprocess.run([sys.executable, "-m", "streams", "worker"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "field 'key_id'" in lines[0] and "Traceback" not in done.stderr
    assert "s3cret-value" not in done.stderr


@pytest.mark.parametrize("value", ["127.0.0.1:8000", "grpc://prism:8000", "http://", "ftp://x"])
def test_a_malformed_provider_url_is_one_line_naming_its_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="^PRISM_URL: .* is not an http:// or https:// URL"):
        load_settings({"PRISM_URL": value})


# Prism's PayoutStatus names are the outcome events' vocabulary (DESIGN.md), so "prism"
# is a word of the domain everywhere; every other provider is named only by its own.
NAMED_ONLY_AT_HOME = {"razorpay": ("razorpay",), "cashfree": ("cashfree", "cashgram"),
                      "revolut": ("revolut",)}


@pytest.mark.parametrize("provider", sorted(NAMED_ONLY_AT_HOME))
def test_nothing_outside_a_providers_package_names_it(provider: str) -> None:
    """Issue 9: adding a provider touches its package, one registration line, the schema
    enum and docs. Its simulator and the dev tools that drive every provider (demo,
    chaos, traffic) may name it; the worker's modules may not, comments included."""
    streams = REPO / "streams"
    home = {streams / "connectors" / provider, streams / "devkit",
            streams / "connectors" / "registry.py"}
    naming = sorted(
        str(path.relative_to(REPO)) for path in streams.rglob("*.py")
        if not any(path == h or h in path.parents for h in home)
        and any(word in path.read_text().lower() for word in NAMED_ONLY_AT_HOME[provider]))
    assert naming == []


def test_the_credentials_and_routing_docs_come_from_the_registry() -> None:
    from streams.config import variables
    from streams.connectors.registry import PROVIDERS

    doc = {v.name: v.meaning for v in variables()}
    for p in PROVIDERS.values():
        assert p.credentials_doc.startswith(f"`{p.name}: {{")
        assert p.credentials_doc in doc["PAYOUT_CREDENTIALS"]
    assert f"({', '.join(PROVIDERS)})" in doc["PAYOUT_ROUTING"]
