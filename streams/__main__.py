"""``python -m streams worker`` runs a worker (Faust's CLI) on uvloop.

Faust's own ``--loop`` option is accepted but ignored by this faust-streaming release,
so the policy is set here. uvloop measurably lowers the event loop's share of the
worker's CPU (docs/benchmarks.md); set ``PAYOUT_EVENT_LOOP=asyncio`` to compare.
Before anything else, ``streams.preflight`` refuses to start (exit 2) a worker that
could not decode every Kafka codec or is configured with an unknown one, and
``streams.faust_internals`` one whose Faust, mode or aiokafka is not the version its
private-API reaches were written against.
"""
import asyncio
import os
import sys

from streams.config import Settings
from streams.faust_internals import check_versions
from streams.preflight import COMPRESSION_ENV, require_codecs, require_valid_compression

# Before the app is imported (which reads the settings and builds the producer): a
# worker that could not decode a compressed batch would crash-loop on it instead.
require_codecs("payout worker")
require_valid_compression(os.environ.get(COMPRESSION_ENV, Settings.producer_compression))
# The Faust internals the worker reaches into must be those it was written against
# (PAYOUT_ALLOW_UNTESTED_FAUST=1 makes an untested version a warning).
check_versions("payout worker")

if os.environ.get("PAYOUT_EVENT_LOOP", "uvloop") == "uvloop":
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

from streams.config import ConfigError  # noqa: E402

try:
    from streams.app import app  # noqa: E402  (reads and checks the settings)
except ConfigError as exc:  # one line for the operator, no traceback
    print(f"payout worker: configuration error: {exc}", file=sys.stderr)
    sys.exit(2)
import streams.agents.polls  # noqa: E402,F401  (registers the poll sweep)
import streams.agents.requests  # noqa: E402,F401  (registers the agent)
import streams.agents.unresolved  # noqa: E402,F401  (registers the re-drive timer)
import streams.web.webhooks  # noqa: E402,F401  (registers the provider webhook routes)

if __name__ == "__main__":
    app.main()
