"""Operator commands that never start a worker: ``python -m streams config --check``
validates a configuration (exit 2 and one line when it is bad), ``config --doc`` prints
the settings table the README carries, ``link <merchant_id> <merchant_payout_id>`` asks
any worker where a link is (``GET /v1/links/...``; the worker forwards to the owner).
"""
from __future__ import annotations

import json
import os

import click
import httpx

from streams.config import ConfigError, load_settings, markdown_table


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


def main(argv: list[str]) -> int:
    try:
        cli.main(args=argv, prog_name="python -m streams", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return 2
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
