"""``groups list`` and ``groups drop``: the consumer groups that hold the outboxes."""

from __future__ import annotations

from typing import Any

import click

from .base import redis_settings, redis_url_option
from .dlq import Skipped, admin_run

__all__ = ["groups"]


@click.group()
def groups() -> None:
    """List or drop the consumer groups of the outbox streams.

    Every group keeps the outbox entries it has not acknowledged, so a group nobody
    reads any more holds them forever (and makes trim --maxlen refuse): drop it.
    """


@groups.command("list")
@redis_url_option()
def groups_list(redis_url: str | None, cluster: bool | None) -> None:
    """Print each consumer group per partition: consumers, pending (delivered, not
    acknowledged) and lag (not delivered yet; ? when Redis cannot tell)."""
    from ..worker.groups import list_groups

    skip = Skipped()
    rows = admin_run(redis_url, cluster, lambda client: list_groups(client, skip))
    table = [("PARTITION", "GROUP", "CONSUMERS", "PENDING", "LAG")] + [
        (
            r.partition,
            r.group,
            str(r.consumers),
            str(r.pending),
            "?" if r.lag is None else str(r.lag),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table if rows else []:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if not rows:
        click.echo("no consumer groups", err=True)
    skip.finish()


@groups.command("drop")
@redis_url_option()
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def groups_drop(redis_url: str | None, cluster: bool | None, name: str, yes: bool) -> None:
    """Drop consumer group NAME from every outbox, with its leases and workers set.

    Refused while a worker of NAME is alive (it would create the group again): stop it
    first. What the group had not delivered is not delivered by it any more.
    """
    from ..worker.groups import drop_group, list_groups, live_workers

    settings = redis_settings(redis_url, cluster)
    skip = Skipped()

    async def survey(client: Any) -> tuple[list[Any], list[str]]:
        rows = [r for r in await list_groups(client, skip) if r.group == name]
        return rows, await live_workers(client, name, settings.claim_idle_ms)

    rows, alive = admin_run(redis_url, cluster, survey)
    if not rows:
        skipped = f" ({len(skip.keys)} key(s) skipped, see the warnings above)" if skip.keys else ""
        raise click.ClickException(
            f"no consumer group {name!r} on any outbox{skipped} (`oprc-redis-events groups "
            "list` shows them)"
        )
    if alive:
        raise click.ClickException(
            f"{len(alive)} worker(s) of group {name!r} are running ({', '.join(alive)}); stop "
            "them first, or they will create the group again"
        )
    pending = sum(r.pending + (r.lag or 0) for r in rows)
    if not yes:
        click.confirm(
            f"Drop consumer group {name!r} from {len(rows)} outbox(es)? It will not deliver "
            f"its {pending} undelivered or unacknowledged entries.",
            abort=True,
        )
    dropped = admin_run(redis_url, cluster, lambda client: drop_group(client, name, skip))
    click.echo(f"dropped consumer group {name} from {dropped} outbox(es)")
    skip.finish()
