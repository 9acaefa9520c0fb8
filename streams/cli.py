"""Operator commands that never start a worker: ``python -m streams config --check``
validates a configuration (exit 2 and one line when it is bad), ``config --doc`` prints
the settings table the README carries, ``link <merchant_id> <merchant_payout_id>`` asks
any worker where a link is (``GET /v1/links/...``; the worker forwards to the owner);
``reconcile`` joins a window of the topics with the providers' records
(:mod:`streams.reconcile`).
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import datetime
from pathlib import Path

import click
import httpx
from aiokafka.errors import KafkaError

from streams.config import ConfigError, Settings, load_settings, markdown_table


@click.group()
def cli() -> None:
    """Payout-link stream processor: operator commands."""


@cli.command()
@click.option("--check", is_flag=True, help="Validate the environment's configuration.")
@click.option("--doc", is_flag=True, help="Print every variable as the README's table.")
def config(check: bool, doc: bool) -> None:
    """Validate the configuration without starting, or print its documentation."""
    if doc:
        click.echo(markdown_table(), nl=False)
    if check or not doc:
        try:
            settings = load_settings()
        except ConfigError as exc:
            click.echo(f"payout config: configuration error: {exc}", err=True)
            raise SystemExit(2) from None
        accounts = sum(len(p) for p in settings.credentials.values())
        click.echo(f"configuration OK: {accounts} provider account(s) for "
                   f"{len(settings.credentials)} merchant entr(ies); {settings.partitions} "
                   f"partitions, replication factor {settings.replication_factor}, "
                   f"min.insync.replicas {settings.min_insync_replicas}")


@cli.command()
@click.argument("merchant_id")
@click.argument("merchant_payout_id")
@click.option("--url", default=lambda: f"http://127.0.0.1:{os.environ.get('PAYOUT_WEB_PORT', '6066')}",
              show_default="http://127.0.0.1:$PAYOUT_WEB_PORT", help="Any worker's web server.")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait.")
def link(merchant_id: str, merchant_payout_id: str, url: str, timeout: float) -> None:
    """Where a link is: its status, provider id, URL, outcome and attempts.

    Exit 0 when found, 1 when no link is known, 2 for a malformed key, 3 when no
    worker could answer (moving partitions, unreachable).
    """
    target = f"{url.rstrip('/')}/v1/links/{merchant_id}/{merchant_payout_id}"
    try:
        answer = httpx.get(target, timeout=timeout)
    except httpx.HTTPError as exc:
        click.echo(f"payout link: {url} did not answer: {type(exc).__name__}", err=True)
        raise SystemExit(3) from None
    try:
        body = answer.json()
    except ValueError:
        click.echo(f"payout link: {url} answered {answer.status_code} without JSON", err=True)
        raise SystemExit(3) from None
    if answer.status_code == 200:
        click.echo(json.dumps(body, indent=2, sort_keys=False))
        return
    error = body.get("error", {}) if isinstance(body, dict) else {}
    click.echo(f"payout link: {answer.status_code} {error.get('code')}: {error.get('message')}"
               + (f" (field {error['field']})" if error.get("field") else ""), err=True)
    raise SystemExit({404: 1, 400: 2}.get(answer.status_code, 3))


def _instant(text: str, option: str) -> int:
    """An RFC 3339 date-time with its offset, as Kafka's milliseconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an RFC 3339 date-time "
                                 "(2026-12-07T10:00:00Z)", param_hint=option) from None
    if moment.tzinfo is None:
        raise click.BadParameter(f"{text!r} has no offset: add Z or +hh:mm",
                                 param_hint=option)
    return int(moment.timestamp() * 1000)


@cli.command()
@click.option("--since", required=True, help="Window start, RFC 3339 (2026-12-07T10:00:00Z).")
@click.option("--until", default=None, help="Window end, RFC 3339 [default: now].")
@click.option("--grace", default=300.0, show_default=True,
              help="Seconds after --until in which outcomes still answer the window's requests.")
@click.option("--merchant", "merchants", multiple=True, help="Only this merchant (repeatable).")
@click.option("--provider", "providers", multiple=True, help="Only this provider (repeatable).")
@click.option("--out", "out_dir", default="reconcile-report", show_default=True,
              type=click.Path(file_okay=False), help="Where the JSON, CSV and HTML go.")
@click.option("--skip-providers", is_flag=True,
              help="Do not ask the providers (our topics only: no orphan can be seen).")
@click.option("--rate", default=None, type=float,
              help="Provider calls a second per provider [default: PAYOUT_RECONCILE_RATE_PER_S].")
@click.option("--progress/--no-progress", default=None,
              help="A progress bar [default: on a terminal only; plain lines otherwise].")
@click.option("--repair", is_flag=True,
              help="Re-drive lost and orphaned links through the pipeline (lookup first).")
@click.option("--wait", "wait_s", default=0.0, show_default=True,
              help="With --repair: seconds to wait for the re-driven links' outcomes.")
def reconcile(since: str, until: str | None, grace: float, merchants: tuple[str, ...],
              providers: tuple[str, ...], out_dir: str, skip_providers: bool,
              rate: float | None, progress: bool | None, repair: bool, wait_s: float) -> None:
    """What was asked, what we said and what each provider holds, per link in a window.

    Exit 0 when every link matched, 1 when a money-danger class (orphan, duplicate,
    false failure, mismatch) is non-empty, 4 for other exceptions (lost, unknown at the
    provider, drift, unverified), 2 for bad arguments or configuration, 3 when the
    broker could not be read.
    """
    from streams.connectors.registry import PROVIDERS
    from streams.reconcile import repair as repairing, report
    from streams.reconcile.run import Options, reconcile as run

    since_ms = _instant(since, "--since")
    until_ms = _instant(until, "--until") if until else int(time.time() * 1000)
    if until_ms < since_ms:
        raise click.BadParameter("the window ends before it starts", param_hint="--until")
    unknown = sorted(set(providers) - set(PROVIDERS))
    if unknown:
        raise click.BadParameter(f"no provider named {', '.join(unknown)} (known: "
                                 f"{', '.join(PROVIDERS)})", param_hint="--provider")
    settings = _settings_or_exit("reconcile")
    opts = Options(since_ms=since_ms, until_ms=until_ms, grace_ms=int(grace * 1000),
                   merchants=frozenset(merchants), providers=frozenset(providers),
                   ask_providers=not skip_providers,
                   rate_per_s=rate if rate is not None else settings.reconcile_rate_per_s,
                   concurrency=settings.reconcile_concurrency, out_dir=Path(out_dir),
                   progress=progress)
    try:
        result = asyncio.run(run(settings, opts))
    except KafkaError as exc:
        click.echo(f"payout reconcile: the broker at {settings.bootstrap_servers} could not "
                   f"be read: {type(exc).__name__}", err=True)
        raise SystemExit(report.EXIT_UNAVAILABLE) from None
    tally = result.tally
    click.echo(tally.verdict())
    if tally.unverified_line():
        click.echo(f"  {tally.unverified_line()}")
    for name, path in result.files.items():
        click.echo(f"  {name}: {path}")
    if repair:
        started_ms = int(time.time() * 1000)
        run_id = f"reconcile-{started_ms}"
        done = asyncio.run(repairing.redrive(
            settings, repairing.repairables(result.files["repairs"]), run_id))
        if wait_s > 0:
            asyncio.run(repairing.wait_settled(settings, done, started_ms, wait_s))
        click.echo(done.line())
    raise SystemExit(tally.exit_code)


@cli.command()
@click.option("--to-datetime", "to_datetime", default=None,
              help="Move to the first request at or after this RFC 3339 time.")
@click.option("--to-offset", "to_offset", default=None, type=click.IntRange(min=0),
              help="Move every partition to this offset (clamped to what it holds).")
@click.option("--to-earliest", is_flag=True, help="Move to the first offset each partition holds.")
@click.option("--topic", "topics", multiple=True,
              type=click.Choice(["requested", "routed", "reports", "cancel-requested"]),
              help="Which of the group's topics to move [default: requested and routed].")
@click.option("--execute", is_flag=True,
              help="Commit the moves; without it, only print them (a dry run).")
def replay(to_datetime: str | None, to_offset: int | None, to_earliest: bool,
           topics: tuple[str, ...], execute: bool) -> None:
    """Move the processor's consumer group on the request topics (workers stopped).

    Requests read again re-publish their links' stored outcomes unchanged (same event
    ids, same bytes) with no provider call; see docs/operations.md. Exit 0 when moved
    (or, without --execute, planned), 2 for bad arguments, 3 when the broker could not
    be read, 5 while workers are in the group.
    """
    from streams import replay as replaying

    chosen = [x for x in (to_datetime is not None, to_offset is not None, to_earliest) if x]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --to-datetime, --to-offset, --to-earliest")
    to_ms = _instant(to_datetime, "--to-datetime") if to_datetime is not None else None
    settings = _settings_or_exit("replay")
    names = {"requested": settings.topics.requested, "routed": settings.topics.routed,
             "reports": settings.topics.reports,
             "cancel-requested": settings.topics.cancel_requested}
    wanted = [names[t] for t in (topics or ("requested", "routed"))]
    try:
        moves = asyncio.run(replaying.plan(settings, wanted, to_ms=to_ms, to_offset=to_offset))
        click.echo(f"consumer group {settings.app_id}: {len(moves)} partition(s)")
        for move in moves:
            click.echo(move.line())
        if not execute:
            click.echo("dry run: nothing moved (add --execute)")
            return
        asyncio.run(replaying.apply(settings, moves))
    except replaying.GroupActive as exc:
        click.echo(f"payout replay: workers are running in group {settings.app_id} ({exc}); "
                   "stop them first", err=True)
        raise SystemExit(5) from None
    except KafkaError as exc:
        click.echo(f"payout replay: the broker at {settings.bootstrap_servers} could not be "
                   f"read: {type(exc).__name__}", err=True)
        raise SystemExit(3) from None
    click.echo(f"moved {len(moves)} partition(s)")


@cli.command()
@click.option("--since", default=None, help="Dead letters from this RFC 3339 time [default: all].")
@click.option("--until", default=None, help="Dead letters up to this RFC 3339 time [default: now].")
@click.option("--code", "codes", multiple=True,
              help="Only this error code (unparseable, processing_error, ...; repeatable).")
@click.option("--source-topic", "sources", multiple=True,
              help="Only dead letters of records from this topic (repeatable).")
@click.option("--limit", default=50, show_default=True, help="Previews printed.")
@click.option("--execute", is_flag=True,
              help="Re-produce the selected records; without it, only list them (a dry run).")
@click.option("--confirm", "confirm", default=None, type=int,
              help="With --execute: the number of dead letters you expect to re-drive.")
def redrive(since: str | None, until: str | None, codes: tuple[str, ...],
            sources: tuple[str, ...], limit: int, execute: bool, confirm: int | None) -> None:
    """List dead letters, and re-produce chosen ones to their source topic.

    Each record goes back with its original key, value, headers and partition, plus a
    payout-redrive-of header naming its dead letter. Exit 0 when listed or re-driven,
    2 for bad arguments (or a --confirm that is not the count selected), 3 when the
    broker could not be read, 6 when an original could not be re-driven whole.
    """
    from streams import redrive as redriving

    since_ms = _instant(since, "--since") if since else 0
    until_ms = _instant(until, "--until") if until else int(time.time() * 1000)
    settings = _settings_or_exit("redrive")

    async def select() -> list[redriving.DeadLetter]:
        return [letter async for letter in redriving.letters(
            settings, since_ms, until_ms, codes=frozenset(codes), sources=frozenset(sources))]

    try:
        chosen = asyncio.run(select())
        by_code: dict[str, int] = {}
        for letter in chosen:
            by_code[letter.code] = by_code.get(letter.code, 0) + 1
        click.echo(f"{len(chosen)} dead letter(s) selected"
                   + (f" ({', '.join(f'{n} {c}' for c, n in sorted(by_code.items()))})"
                      if by_code else ""))
        for letter in chosen[:limit]:
            click.echo("  " + letter.preview())
        if len(chosen) > limit:
            click.echo(f"  … {len(chosen) - limit} more (--limit)")
        if not execute:
            click.echo(f"dry run: nothing re-driven (add --execute --confirm {len(chosen)})")
            return
        if confirm != len(chosen):
            click.echo(f"payout redrive: --confirm {confirm} is not the {len(chosen)} selected: "
                       "nothing re-driven", err=True)
            raise SystemExit(2)
        sent = asyncio.run(redriving.redrive(settings, chosen))
    except KafkaError as exc:
        click.echo(f"payout redrive: the broker at {settings.bootstrap_servers} could not be "
                   f"read: {type(exc).__name__}", err=True)
        raise SystemExit(3) from None
    click.echo(f"re-driven {len(sent.redriven)} ({len(sent.from_dead_letter)} from the dead "
               f"letter's own copy: the original was gone); {len(sent.refused)} refused: the "
               "original is gone and the dead letter holds only part of it")
    if sent.refused:
        raise SystemExit(6)


def _settings_or_exit(command: str) -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        click.echo(f"payout {command}: configuration error: {exc}", err=True)
        raise SystemExit(2) from None


def main(argv: list[str]) -> int:
    try:
        cli.main(args=argv, prog_name="python -m streams", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return 2
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
