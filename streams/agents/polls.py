"""A timer sweeps the link-table partitions this worker owns for links due a poll.

See :mod:`streams.polls`. What it finds due goes to the provider-reports topic on the
link's home partition, where the request agent asks the provider in order with
everything else about that link; the timer itself calls no provider and writes no
table.
"""
from __future__ import annotations

from collections.abc import Iterable

from streams import metrics
from streams.app import app, links, reports_topic, settings
from streams.connectors.registry import PROVIDERS
from streams.faust_internals import active_partition_items
from streams.polls import PollSweep, SweepLimits, resend_after

SWEEP_INTERVAL_S = 1.0


def _owned_partitions() -> Iterable[int] | None:
    if app.rebalancing:  # tables recovering: read nothing until they know every record
        return None
    topic = links.changelog_topic.get_topic_name()
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}


async def _send(key: bytes, value: bytes, partition: int) -> None:
    delivery = await reports_topic.send(key=key, value=value, partition=partition)
    await delivery


sweep = PollSweep(
    items=lambda partition, after, limit: active_partition_items(links, partition, after, limit),
    owned_partitions=_owned_partitions, send=_send, providers=PROVIDERS,
    limits=SweepLimits(rate_per_s=settings.poll_rate_per_s,
                       resend_after_s=resend_after(settings.poll_min_s)))
metrics.WORKER.add(lambda: [
    ("payout_polls_asked_total", "Polls and expiries the sweep asked the request agent for.",
     {}, float(sweep.asked_total)),
    ("payout_poll_sweep_scanned_total", "Link records the poll sweep read.", {},
     float(sweep.scanned_total))])


@app.timer(interval=SWEEP_INTERVAL_S, name="poll-sweep")  # type: ignore[untyped-decorator]  # faust's timer() is unannotated
async def sweep_for_polls() -> None:
    await sweep.run_once()
