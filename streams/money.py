"""Exact amounts: minor units (our integers) ↔ a provider's decimal major units.

Requests carry ``minor_amount`` as an integer, as Prism does. Providers differ: some
take minor units as they are, some rupees with two decimals, some major units with as
many decimals as the currency has (JPY none, KWD three). Conversion is
by the currency's ISO 4217 exponent, with integers and :class:`~decimal.Decimal` only:
no float ever holds an amount, so no amount is ever rounded.
"""
from __future__ import annotations

from decimal import Decimal

# ISO 4217 minor-unit exponents that are not 2, for the currencies the request schema
# accepts (everything else in it has 2).
_EXPONENTS: dict[str, int] = {
    **{c: 0 for c in ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF",
                      "UGX", "VND", "VUV", "XAF", "XOF", "XPF")},
    **{c: 3 for c in ("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND")},
}


class AmountError(ValueError):
    """An amount that cannot be represented exactly in the asked form."""


def exponent(currency: str) -> int:
    """Decimal places of the currency's major unit (ISO 4217)."""
    return _EXPONENTS.get(currency, 2)


def to_major(minor: int, currency: str) -> Decimal:
    """``12345`` INR → ``Decimal("123.45")``; exact, with the currency's places."""
    if type(minor) is not int:
        raise AmountError(f"minor amount must be an integer, got {type(minor).__name__}")
    places = exponent(currency)
    return Decimal(minor).scaleb(-places).quantize(Decimal(1).scaleb(-places))


def major_text(minor: int, currency: str) -> str:
    """The major-unit amount as JSON number text: ``"123.45"``, ``"1000"`` for JPY."""
    return format(to_major(minor, currency), "f")


def to_minor(major: Decimal | str | int, currency: str) -> int:
    """``"123.45"`` INR → ``12345``; refuses floats and extra decimal places."""
    if isinstance(major, float) or isinstance(major, bool):
        raise AmountError("amounts are never floats")
    try:
        value = Decimal(major) if not isinstance(major, Decimal) else major
    except ArithmeticError as exc:
        raise AmountError(f"not a decimal amount: {major!r}") from exc
    if not value.is_finite():
        raise AmountError(f"not a finite amount: {major!r}")
    scaled = value.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise AmountError(f"{major} {currency} has more than {exponent(currency)} decimal places")
    return int(scaled)
