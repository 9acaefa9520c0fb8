"""Generated from proto/prism/payout_service.proto by `make proto` -- do not edit.

tests/unit/test_prism_proto.py fails when these files differ from a fresh generation.
"""
