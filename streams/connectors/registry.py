"""Every provider the processor can create links at, by the name requests and records use.

Adding a provider is one line here (plus its package, simulator, schema enum and docs).
"""
from __future__ import annotations

from typing import Mapping

from streams.connectors.base import Connector
from streams.connectors.razorpay import RazorpayConnector

CONNECTORS: Mapping[str, Connector] = {
    RazorpayConnector.name: RazorpayConnector(),
}
