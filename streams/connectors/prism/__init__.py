"""Hyperswitch Prism: the payout API of Juspay's unified connector service, over gRPC.

So far only the wire contract lives here: ``gen/`` holds the Python code generated from
``proto/prism/payout_service.proto`` (``make proto``). The provider itself (transformers,
status mapping, transport) comes later; the Prism-compatible server it is tested
against is :mod:`streams.devkit.sims.prism`.
"""
