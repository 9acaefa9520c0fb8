"""Every provider the processor can create links at, by the name requests and records use.

Adding a provider is one line here (plus its package, its simulator, the request
schema's ``connector`` enum and docs). The order is the default routing order among
providers that pay out in a request's currency.
"""
from __future__ import annotations

from collections.abc import Mapping

from streams.connectors.cashfree import PROVIDER as CASHFREE
from streams.connectors.prism import PROVIDER as PRISM
from streams.connectors.provider import Provider
from streams.connectors.razorpay import PROVIDER as RAZORPAY
from streams.connectors.revolut import PROVIDER as REVOLUT

PROVIDERS: Mapping[str, Provider] = {
    RAZORPAY.name: RAZORPAY,
    CASHFREE.name: CASHFREE,
    REVOLUT.name: REVOLUT,
    PRISM.name: PRISM,
}
