"""``python -m streams worker`` runs a worker (Faust's CLI) on uvloop; ``config``,
``link``, ``reconcile`` (and every other command of streams.cli) are operator commands
that never start one.

Before a worker starts: ``streams.preflight`` refuses (exit 2) a worker that could not
decode every Kafka codec, the settings are read and checked (a bad value: one line,
exit 2), ``streams.faust_internals`` refuses a Faust, mode or aiokafka other than the
versions its private-API reaches were written against, and ``streams.topology``
creates the missing topics the production way and refuses existing ones with another
partition count. Faust's own ``--loop`` option is ignored by this faust-streaming
release, so the loop policy is set here; ``PAYOUT_EVENT_LOOP=asyncio`` compares.
"""
import asyncio
import os
import sys

from streams.config import ConfigError, load_settings
from streams.faust_internals import check_versions
from streams.preflight import require_codecs


def _refuse(exc: ConfigError) -> None:
    print(f"payout worker: configuration error: {exc}", file=sys.stderr)
    sys.exit(2)


from streams.cli import cli as operator_commands  # noqa: E402

if len(sys.argv) > 1 and sys.argv[1] in operator_commands.commands:
    from streams.cli import main as operator_main

    sys.exit(operator_main(sys.argv[1:]))

# Before the app is imported (which reads the settings and builds the producer): a
# worker that could not decode a compressed batch would crash-loop on it instead.
require_codecs("payout worker")
try:
    _settings = load_settings()
except ConfigError as exc:  # one line for the operator, no traceback
    _refuse(exc)
# The Faust internals the worker reaches into must be those it was written against
# (PAYOUT_ALLOW_UNTESTED_FAUST=1 makes an untested version a warning).
check_versions("payout worker")

if len(sys.argv) > 1 and sys.argv[1] == "worker":
    from streams.topology import prepare

    try:
        asyncio.run(prepare(_settings))
    except ConfigError as exc:
        _refuse(exc)

if os.environ.get("PAYOUT_EVENT_LOOP", "uvloop") == "uvloop":
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

try:
    from streams.app import app  # noqa: E402  (reads the settings again: same values)
except ConfigError as exc:  # one line for the operator, no traceback
    _refuse(exc)
import streams.agents.polls  # noqa: E402,F401  (registers the poll sweep)
import streams.agents.requests  # noqa: E402,F401  (registers the agent)
import streams.agents.unresolved  # noqa: E402,F401  (registers the re-drive timer)
import streams.web.links  # noqa: E402,F401  (GET /v1/links/{merchant_id}/{merchant_payout_id})
import streams.web.ops  # noqa: E402,F401  (/metrics, /health/live, /health/ready)
import streams.web.webhooks  # noqa: E402,F401  (registers the provider webhook routes)

if __name__ == "__main__":
    app.main()
