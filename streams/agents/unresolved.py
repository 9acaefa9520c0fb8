"""A timer re-drives the unresolved links of the partitions this worker owns.

See :mod:`streams.unresolved`. The re-driven request goes through the routed topic to
the link's home partition, so it is settled by the agent like any other request, in
order with everything else for that link key.
"""
from __future__ import annotations

from streams.app import app, routed_topic, settings, unresolved
from streams.partitioning import home_partition
from streams.unresolved import Redriver

SWEEP_INTERVAL_S = max(0.5, min(5.0, settings.unresolved_retry_s / 2))


async def _send_to_home(key: str, value: bytes) -> None:
    delivery = await routed_topic.send(key=key.encode(), value=value,
                                       partition=home_partition(key, settings.partitions))
    await delivery


redriver = Redriver(lambda: list(unresolved.items()), _send_to_home)


@app.timer(interval=SWEEP_INTERVAL_S, name="redrive-unresolved-links")  # type: ignore[untyped-decorator]  # faust's timer() is unannotated
async def redrive_unresolved() -> None:
    await redriver.run_once()
