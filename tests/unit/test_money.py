"""Amounts are exact: minor ↔ major by ISO 4217 exponent, integers and Decimal only."""
from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from hypothesis import given, strategies as st

from streams import events, money

SCHEMA_CURRENCIES = orjson.loads(
    (events.SCHEMA_DIR / "payout-link-requested.schema.json").read_bytes())["$defs"]["currency"]["enum"]


@given(minor=st.integers(min_value=1, max_value=100_000_000_000_000),
       currency=st.sampled_from(SCHEMA_CURRENCIES))
def test_round_trip_is_exact_for_every_schema_currency(minor: int, currency: str) -> None:
    major = money.to_major(minor, currency)
    assert isinstance(major, Decimal)
    assert money.to_minor(major, currency) == minor
    assert money.to_minor(money.major_text(minor, currency), currency) == minor
    text = money.major_text(minor, currency)
    places = money.exponent(currency)
    assert (len(text.split(".")[1]) if "." in text else 0) == places


def test_exponents_follow_iso_4217() -> None:
    assert money.major_text(12345, "INR") == "123.45"
    assert money.major_text(1000, "JPY") == "1000"
    assert money.major_text(1234, "KWD") == "1.234"
    assert money.major_text(5, "GBP") == "0.05"
    assert money.major_text(100, "EUR") == "1.00"


@pytest.mark.parametrize("bad", [1.5, float("nan"), True, "1.001", "abc", "Infinity"])
def test_floats_and_inexact_amounts_are_refused(bad: object) -> None:
    with pytest.raises(money.AmountError):
        money.to_minor(bad, "INR")  # type: ignore[arg-type]
    with pytest.raises(money.AmountError):
        money.to_major(bad, "INR")  # type: ignore[arg-type]


def test_no_float_on_the_money_path() -> None:
    """No function that touches an amount, in the providers or here, calls float()."""
    roots = [Path(money.__file__)] + sorted(Path(money.__file__).parent.joinpath(
        "connectors").rglob("*.py"))
    offenders = []
    for path in roots:
        source = path.read_text()
        for fn in ast.walk(ast.parse(source)):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if "amount" not in (ast.get_source_segment(source, fn) or ""):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "float":
                    offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == [], f"float() on the money path: {offenders}"
