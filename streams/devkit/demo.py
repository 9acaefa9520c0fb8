"""``make demo``: the real pipeline end to end, with a printed summary.

Starts what isn't running (a Kafka broker unless KAFKA_BOOTSTRAP_SERVERS is set, every
provider's simulator, one worker), produces sample requests for merchants in India
(INR: one on the default provider, one preferring Cashgram links), Europe (GBP, EUR),
and behind Prism (USD, EUR; and one whose Prism connector has no payout-link flow), waits for every outcome with a deadline, prints a summary with a row per
provider, then lets the providers walk some links to an end (paid out, expired,
cancelled, reversed) with webhooks to the worker and cancels a few by command, prints
the final statuses, reconciles the demo's window against every provider
(``python -m streams reconcile``; the report goes to ``var/demo-reconcile/``), and stops
everything it started.
"""
from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from streams.connectors.base import link_reference
from streams.devkit.broker import broker_from_environment
from streams.devkit.harness import (
    REPO_ROOT,
    TOPICS,
    OutcomeReader,
    WorkerProcess,
    create_topics,
    produce,
)
from streams.devkit.lifecycle_check import LifeVerdict, check_lifecycle
from streams.devkit.sims.fleet import SimulatorFleet
from streams.devkit.traffic import DEMO_ROUTING, demo_worker_env, mixed_records
from streams.preflight import require_codecs

__all__ = ["DEMO_ROUTING", "drive", "main"]  # bench --mix routes as the demo does


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]




# The demo's walks after creation: every kind of ending a notification service must
# handle, a few links each.
DEMO_WALK_PLAN = {"processed": 0.4, "expired": 0.2, "cancelled": 0.1, "reversed": 0.15,
                  "failed_then_processed": 0.15}


async def follow_links(bootstrap: str, fleet: SimulatorFleet, worker: WorkerProcess, run: str,
                       links: int, deadline_s: float) -> int:
    """After creation: the providers walk ``links`` of the demo's links to an end (paid
    out, expired, cancelled by the provider, reversed, a failed payout retried) and send
    their webhooks to the worker; a few more are cancelled by command. Prints the final
    statuses and whether every link's last status is its provider's; 0 when it is."""
    fleet.send_webhooks_to(
        f"http://127.0.0.1:{worker.env['PAYOUT_WEB_PORT']}/webhooks/{{provider}}")
    async with OutcomeReader(bootstrap, (TOPICS.created, TOPICS.status_changed,
                                         TOPICS.cancel_failed)) as reader:
        async def all_created() -> bool:
            return sum(1 for e in reader.outcomes.by_topic.get(TOPICS.created, [])
                       if run in e["link_key"]) > 0

        await reader.wait_until(all_created, 30)
        created = list({e["event_id"]: e for e in reader.outcomes.by_topic[TOPICS.created]
                        if run in e["link_key"]}.values())
        created.sort(key=lambda e: e["link_key"])
        by_connector: dict[str, list[dict[str, Any]]] = {}
        for e in created:
            by_connector.setdefault(str(e["connector"]), []).append(e)
        share = max(1, links // max(1, len(by_connector)))
        walked = [e for group in by_connector.values() for e in group[:share]]
        to_cancel = [e for group in by_connector.values()
                     for e in group[share:share + max(1, share // 20)]]
        print(f"\nafter creation: the providers walk {len(walked)} links to an end, "
              f"{len(to_cancel)} more are cancelled by command…", flush=True)
        started = time.monotonic()
        finals = await asyncio.to_thread(fleet.walk, seed=7, plan=DEMO_WALK_PLAN,
                                         references=[e["reference"] for e in walked])
        commands = []
        for n, e in enumerate(to_cancel):
            merchant, payout = e["merchant_id"], e["merchant_payout_id"]
            commands.append((e["link_key"].encode(), orjson.dumps({
                "event_id": f"demo-cancel-{run}-{n}", "event_type": "payout-link-cancel-requested",
                "schema_version": 1, "merchant_id": merchant, "merchant_payout_id": payout})))
        await produce(bootstrap, commands, topic=TOPICS.cancel_requested)
        followed = walked + to_cancel
        references = {e["reference"] for e in followed}

        def verdict() -> LifeVerdict:
            truth = {ref: info["status"] for by_ref in fleet.statuses().values()
                     for ref, info in by_ref.items() if ref in references}
            return check_lifecycle(followed, reader.outcomes.by_topic.get(
                TOPICS.status_changed, []), truth)

        async def settled() -> bool:
            return not (await asyncio.to_thread(verdict)).drift

        await reader.wait_until(settled, deadline_s)
        result = await asyncio.to_thread(verdict)
        changes = [e for e in reader.outcomes.by_topic.get(TOPICS.status_changed, [])
                   if e["link_key"] in {f["link_key"] for f in followed}]
    last: dict[str, dict[str, object]] = {}
    for e in changes:
        last[str(e["link_key"])] = e
    ends: dict[str, dict[str, int]] = {}
    for e in last.values():
        label = "reversed, reopened" if e.get("reversal") and e["payout_status"] != "REVERSED" \
            else str(e["payout_status"])
        per = ends.setdefault(str(e["connector"]), {})
        per[label] = per.get(label, 0) + 1
    print("final statuses (Prism names) by provider:")
    for connector in sorted(ends):
        walked_here = len(finals.get(connector, {}))
        print(f"  {connector:<22} {walked_here:>3} walked: "
              f"{', '.join(f'{n} {k}' for k, n in sorted(ends[connector].items()))}")
    reversals = sum(1 for e in changes if e.get("reversal"))
    print(f"reversals seen           {reversals} (a paid-out link whose money came back)")
    print(f"status changes           {result.changes} "
          f"({', '.join(f'{n} by {k}' for k, n in sorted(result.by_source.items()))}) "
          f"in {time.monotonic() - started:.1f}s")
    print(f"{result.line()}", flush=True)
    for key, ours, theirs in result.drift[:10]:
        print(f"  drift: {key}: last told {ours}, the provider's {theirs}")
    return 0 if result.ok else 1


async def drive(bootstrap: str, fleet: SimulatorFleet, total: int, run: str,
                deadline_s: float, web_url: str | None = None) -> int:
    records = list(mixed_records(total, run=run))
    kinds = {key.decode(): kind for key, _, kind in records}
    async with OutcomeReader(bootstrap) as reader:
        started = time.monotonic()
        sent = await produce(bootstrap, [(k, v) for k, v, _ in records])
        produced = time.monotonic()
        print(f"produced {total} requests in {produced - started:.1f}s; waiting for outcomes "
              f"(deadline {deadline_s:.0f}s)…", flush=True)
        missing = await reader.wait_for(kinds, deadline_s)
        finished = max(reader.outcomes.arrival.values(), default=produced)
        outcomes = reader.outcomes

    answered = {k: outcomes.for_key(k) for k in kinds}
    created = {k for k, evs in answered.items() if evs and evs[0]["event_type"] == TOPICS.created}
    failed = {k for k, evs in answered.items() if evs and evs[0]["event_type"] == TOPICS.failed}
    dead = {k for k, evs in answered.items()
            if evs and evs[0]["event_type"] == TOPICS.dead_letter}
    several = {k for k, evs in answered.items() if len({e["event_id"] for e in evs}) > 1}
    latencies = [(outcomes.arrival[k] - sent[k.encode()]) * 1000 for k in kinds
                 if k in outcomes.arrival]
    links = fleet.links_by_reference()  # provider -> our reference -> link ids
    at_provider = {k: sum(len(by_ref.get(link_reference(k), [])) for by_ref in links.values())
                   for k in kinds}
    duplicate_links = sum(1 for n in at_provider.values() if n > 1)
    # A failure for a key that has a link at a provider would be a false failure.
    false_failures = sum(1 for k in failed if at_provider.get(k, 0) > 0
                         and answered[k][0].get("scope") == "link")
    by_connector: dict[str, int] = {}
    for k in created:
        connector = answered[k][0]["connector"]
        by_connector[connector] = by_connector.get(connector, 0) + 1
    elapsed = max(finished - started, 1e-9)

    print()
    print("payout-link demo summary")
    print("------------------------")
    print(f"requests produced        {total:>8}  ({sum(1 for k in kinds.values() if k == 'valid')}"
          f" valid, {sum(1 for k in kinds.values() if k == 'invalid')} invalid, "
          f"{sum(1 for k in kinds.values() if k == 'garbage')} unparseable)")
    print(f"payout-link-created      {len(created):>8}")
    codes: dict[str, int] = {}
    for k in failed:
        err = answered[k][0]["error"]
        label = f"{answered[k][0].get('scope')}:{err['code']}"
        codes[label] = codes.get(label, 0) + 1
    print(f"payout-link-failed       {len(failed):>8}  "
          f"({', '.join(f'{n} {c}' for c, n in sorted(codes.items()))})")
    print(f"payout-link-dead-letter  {len(dead):>8}")
    print(f"links at the providers   {sum(at_provider.values()):>8}  "
          f"({duplicate_links} link keys with more than one, {false_failures} false failures)")
    for provider in sorted(links):
        held = sum(len(ids) for ref, ids in links[provider].items()
                   if ref in {link_reference(k) for k in kinds})
        print(f"  {provider:<22} {by_connector.get(provider, 0):>8} created, {held} links held")
    print(f"requests with >1 outcome {len(several):>8}")
    print(f"throughput               {len(created) / elapsed:>8.1f} links/s "
          f"({len(answered) - len(missing)} outcomes in {elapsed:.1f}s)")
    print(f"request→outcome latency  p50 {percentile(latencies, 50):.0f} ms, "
          f"p99 {percentile(latencies, 99):.0f} ms")
    for connector in sorted(by_connector):  # one created link per provider
        k = min(k for k in created if answered[k][0]["connector"] == connector)
        url = answered[k][0]["url"] or (f"no URL ({answered[k][0]['payout_status']}; the "
                                        f"provider's answer carries none)")
        print(f"  {k:<28} {connector}: {url}")
    link_failures = sorted(k for k in failed if answered[k][0].get("scope") == "link")
    shown: dict[str, str] = {}  # one failed link per code, then request failures
    for k in link_failures:
        shown.setdefault(answered[k][0]["error"]["code"], k)
    for k in list(dict.fromkeys([*shown.values(), *sorted(failed)]))[:4]:
        err = answered[k][0]["error"]
        print(f"  {k:<28} failed ({answered[k][0].get('connector') or 'no connector'}): "
              f"{err['code']} field={err['field']}: {err['message'][:80]}")
    if web_url is not None and created:
        await look_up(web_url, min(created))
    unaccounted = len(missing) + len(several) + duplicate_links + false_failures
    print(f"demo: {total} requested, {len(created)} created, {len(failed)} failed, "
          f"{len(dead)} dead-lettered, {unaccounted} unaccounted", flush=True)
    return 0 if unaccounted == 0 else 1


async def look_up(web_url: str, link_key: str) -> None:
    """One link through the lookup API, the way on-call would ask, and /metrics' count."""
    merchant_id, payout_id = link_key.split(":")
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(f"{web_url}/v1/links/{merchant_id}/{payout_id}")
        metrics_text = (await client.get(f"{web_url}/metrics")).text
    print(f"lookup API               GET {web_url}/v1/links/{merchant_id}/{payout_id} -> "
          f"{answer.status_code}")
    if answer.status_code == 200:
        link = answer.json()
        print(f"  status {link['status']}, {link['connector']} {link['connector_payout_id']}, "
              f"{link['payout_status']}, {link['attempts']} provider call(s), outcome "
              f"{link['outcome']['event_id']} (published: {link['outcome']['published']})")
    created = sum(sample.value for family in text_string_to_metric_families(metrics_text)
                  for sample in family.samples
                  if sample.name == "payout_outcomes_published_total"
                  and sample.labels.get("event_type") == TOPICS.created)
    print(f"/metrics                 payout_outcomes_published_total(created) = {created:.0f}")


def reconcile_window(env: dict[str, str], since: str, out: Path) -> int:
    """The operator's reconciliation over the demo's window, through its real command:
    the topics against every provider's own record. 0 unless it finds money danger
    (Stripe behind Prism has no payout Get: its failed links can only be unverified)."""
    print(f"\nreconciling the demo's window from {since} (python -m streams reconcile)…",
          flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "streams", "reconcile", "--since", since, "--grace", "0",
         "--out", str(out), "--no-progress", "--rate", "200"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
        stdin=subprocess.DEVNULL)
    print(done.stdout.rstrip(), flush=True)
    if done.returncode not in (0, 4):
        print(done.stderr[-2000:], file=sys.stderr)
    return 1 if done.returncode not in (0, 4) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--jitter-ms", type=float, default=20.0)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--deadline-s", type=float, default=300.0)
    parser.add_argument("--walk", type=int, default=100,
                        help="links the providers walk to an end after creation")
    args = parser.parse_args(argv)
    require_codecs("payout demo")
    workdir = Path(tempfile.mkdtemp(prefix="payout-demo-"))
    run = uuid.uuid4().hex[:8]
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, True)
        print("starting Kafka…", flush=True)
        broker = stack.enter_context(broker_from_environment(workdir / "kafka"))
        bootstrap = broker.bootstrap_servers
        asyncio.run(create_topics(bootstrap, args.partitions))
        print(f"Kafka at {bootstrap}; starting the provider simulators "
              f"({args.latency_ms:.0f}±{args.jitter_ms:.0f} ms)…", flush=True)
        fleet = stack.enter_context(
            SimulatorFleet(latency_ms=args.latency_ms, jitter_ms=args.jitter_ms))
        worker = WorkerProcess(bootstrap=bootstrap, provider_url="",
                               data_dir=workdir / "worker", log_path=workdir / "worker.log",
                               partitions=args.partitions, app_id=f"payout-links-demo-{run}",
                               extra_env={**fleet.worker_env(), **demo_worker_env(),
                                          # a demo's minutes, not production's hours
                                          "PAYOUT_POLL_MIN_S": "2", "PAYOUT_POLL_MAX_S": "10",
                                          "PAYOUT_REVERSAL_POLL_S": "10"})
        stack.callback(worker.stop)
        print("starting the worker…", flush=True)
        worker.start()
        web_url = f"http://127.0.0.1:{worker.env['PAYOUT_WEB_PORT']}"
        print(f"worker web server at {web_url}: lookup API {web_url}/v1/links/{{merchant_id}}/"
              f"{{merchant_payout_id}} (python -m streams link m id --url {web_url}), "
              f"metrics {web_url}/metrics, health {web_url}/health/live and /health/ready",
              flush=True)
        try:
            created = asyncio.run(drive(bootstrap, fleet, args.requests, run, args.deadline_s,
                                        web_url))
            followed = asyncio.run(follow_links(bootstrap, fleet, worker, run, args.walk,
                                                args.deadline_s))
            reconciled = reconcile_window(worker.env, since, REPO_ROOT / "var" / "demo-reconcile")
            return created or followed or reconciled
        except BaseException:
            print(f"worker log tail:\n{worker.log_tail()}", file=sys.stderr)
            raise
    return 1


if __name__ == "__main__":
    sys.exit(main())
