"""``GET /v1/links/{merchant_id}/{merchant_payout_id}``: where a link is, asked of any worker.

A link's record lives in the table partition of its reference's home partition, on the
worker that owns it (streams.lifecycle). The worker asked answers from its own table
when it owns that partition, and otherwise forwards the request once to the owner it
finds in Faust's table routing (``app.router.table_metadata``); a forwarded request that
reaches a worker that no longer owns the partition (ownership moved meanwhile) is a
503, never a second hop. While a rebalance or table recovery is under way the answer
is a 503 with ``Retry-After``: a record may not be there yet, and "not found" would be
a lie.
"""
from __future__ import annotations

import logging
from typing import Any

import aiohttp
from faust import web
from faust.types import TP

from streams import events, lookup
from streams.app import app, links, settings, unresolved
from streams.lifecycle import LinkRecord
from streams.partitioning import home_partition
from streams.web.errors import error_body

log = logging.getLogger(__name__)

FORWARDED = "x-payout-forwarded-by"
FORWARD_TIMEOUT_S = 5.0


@app.page("/v1/links/{merchant_id}/{merchant_payout_id}")
class LinkLookup(web.View):
    async def get(self, request: web.Request, merchant_id: str, merchant_payout_id: str) -> Any:
        problem = lookup.invalid_identifier(merchant_id, merchant_payout_id)
        if problem is not None:
            field, message = problem
            return self.json(error_body("invalid_link_key", message, field), status=400)
        link_key = events.link_key(merchant_id, merchant_payout_id)
        partition = home_partition(link_key, settings.partitions)
        if app.rebalancing or app.in_recovery:
            return _unavailable(self, "recovering", "the worker's partitions are moving or "
                                "being recovered; ask again shortly")
        changelog = links.changelog_topic.get_topic_name()
        if TP(changelog, partition) in app.assignor.assigned_actives():
            found = _local(link_key)
            if found is None:
                return self.json(error_body("link_not_found", f"no link is known for "
                                            f"{link_key}", None), status=404)
            return self.json(found)
        raw: Any = request
        if raw.headers.get(FORWARDED):
            return _unavailable(self, "not_owner", "ownership of this link's partition moved "
                                "while the request was forwarded; ask again")
        owner = _owner_url(changelog, partition)
        if owner is None:
            return _unavailable(self, "no_owner", "no worker owns this link's partition "
                                "right now; ask again shortly")
        return await _forward(self, owner, raw)


def _local(link_key: str) -> dict[str, Any] | None:
    table_key, raw = links.find(link_key)
    if raw is None:
        return None
    body = lookup.describe(LinkRecord.from_bytes(raw))
    doubt = unresolved.get(link_key)
    body["in_doubt"] = None if doubt is None else lookup.describe_in_doubt(doubt)
    body["served_by"] = settings.advertised_url
    return body


def _owner_url(changelog: str, partition: int) -> str | None:
    for host, topics in app.router.table_metadata(links.name).items():
        if partition in topics.get(changelog, ()):
            return str(host).rstrip("/")
    return None


async def _forward(view: web.View, owner: str, request: Any) -> Any:
    url = f"{owner}{request.path_qs}"
    try:
        async with app.http_client.get(
                url, headers={FORWARDED: settings.advertised_url},
                timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)) as answer:
            body = await answer.read()
            return view.bytes(body, content_type="application/json", status=answer.status)
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("forwarding a link lookup to %s failed: %s", owner, type(exc).__name__)
        return _unavailable(view, "owner_unreachable", "the worker that owns this link did "
                            "not answer; ask again shortly")


def _unavailable(view: web.View, code: str, message: str) -> Any:
    return view.json(error_body(code, message, None), status=503, headers={"Retry-After": "2"})
