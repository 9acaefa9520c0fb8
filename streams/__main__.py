"""``python -m streams worker`` runs a worker (Faust's CLI) on uvloop.

Faust's own ``--loop`` option is accepted but ignored by this faust-streaming release,
so the policy is set here. uvloop measurably lowers the event loop's share of the
worker's CPU (docs/benchmarks.md); set ``PAYOUT_EVENT_LOOP=asyncio`` to compare.
"""
import asyncio
import os

if os.environ.get("PAYOUT_EVENT_LOOP", "uvloop") == "uvloop":
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

from streams.app import app  # noqa: E402
import streams.agents.requests  # noqa: E402,F401  (registers the agent)

if __name__ == "__main__":
    app.main()
