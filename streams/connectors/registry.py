"""Every provider the processor can create links at, by the name requests and records use.

Adding a provider is one line here (plus its package, its simulator, the request
schema's ``connector`` enum and docs). The order is the default routing order among
providers that pay out in a request's currency.
"""
from __future__ import annotations

from typing import Mapping

from streams.connectors.provider import Provider
from streams.connectors.razorpay import PROVIDER as RAZORPAY

PROVIDERS: Mapping[str, Provider] = {
    RAZORPAY.name: RAZORPAY,
}
