"""Dead-letter and retention commands of the CLI: dlq list|replay|purge, trim."""

from __future__ import annotations

from typing import Any

import click

from .config import Settings, env_hint
from .errors import OprcEventsError

__all__ = ["dlq", "trim"]


def _admin(redis_url: str | None) -> Any:
    import redis.asyncio as aredis

    return aredis.Redis.from_url(Settings.from_env(redis_url=redis_url).redis_url)


_redis_option = click.option("--redis-url", help=f"Redis to use. {env_hint('redis_url')}")
_cls_option = click.option("--cls", "cls_id", help="Only this class (with --partition).")
_partition_option = click.option("--partition", type=int, help="Only this partition.")


@click.group()
def dlq() -> None:
    """Inspect, replay or purge the dead-letter streams (oprc:{cls:pid}:dlq)."""


@dlq.command("list")
@_redis_option
@_cls_option
@_partition_option
@click.option("--count", type=int, default=100, show_default=True, help="Per partition.")
def dlq_list(redis_url: str | None, cls_id: str | None, partition: int | None, count: int) -> None:
    """Print dead letters: partition, id, reason, error, attempts, source entry."""

    from .deadletters import list_dead_letters

    async def run() -> int:
        client = _admin(redis_url)
        try:
            total = 0
            for keys in await _partitions_async(client, cls_id, partition):
                for letter in await list_dead_letters(client, keys, count):
                    total += 1
                    click.echo(
                        f"{keys.member} {letter.id} source={letter.source_id} "
                        f"attempts={letter.attempts} reason={letter.reason!r}"
                        + (f" error={letter.error!r}" if letter.error else "")
                    )
            return total
        finally:
            await client.aclose()

    total = _run(run())
    click.echo(f"{total} dead letter(s)", err=True)


@dlq.command("replay")
@_redis_option
@_cls_option
@_partition_option
@click.argument("ids", nargs=-1)
def dlq_replay(
    redis_url: str | None, cls_id: str | None, partition: int | None, ids: tuple[str, ...]
) -> None:
    """Put dead letters back into their outbox (all of them, or the given IDS of the
    partition named by --cls/--partition); they keep their invocation ids."""

    from .deadletters import replay

    if ids and cls_id is None:
        raise click.UsageError("replaying given ids needs --cls and --partition")

    async def run() -> int:
        client = _admin(redis_url)
        try:
            done = 0
            for keys in await _partitions_async(client, cls_id, partition):
                done += await replay(client, keys, list(ids) or None)
            return done
        finally:
            await client.aclose()

    click.echo(f"replayed {_run(run())} dead letter(s)")


@dlq.command("purge")
@_redis_option
@_cls_option
@_partition_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.argument("ids", nargs=-1)
def dlq_purge(
    redis_url: str | None,
    cls_id: str | None,
    partition: int | None,
    yes: bool,
    ids: tuple[str, ...],
) -> None:
    """Delete dead letters (all of them, or the given IDS of one partition)."""

    from .deadletters import purge

    if ids and cls_id is None:
        raise click.UsageError("purging given ids needs --cls and --partition")
    if not yes:
        click.confirm("Delete these dead letters for good?", abort=True)

    async def run() -> int:
        client = _admin(redis_url)
        try:
            done = 0
            for keys in await _partitions_async(client, cls_id, partition):
                done += await purge(client, keys, list(ids) or None)
            return done
        finally:
            await client.aclose()

    click.echo(f"purged {_run(run())} dead letter(s)")


@click.command()
@_redis_option
@click.option(
    "--maxlen",
    type=int,
    help="Also require each outbox to hold at most this many entries; refused with "
    "an error when that would drop unacknowledged entries.",
)
def trim(redis_url: str | None, maxlen: int | None) -> None:
    """Remove outbox entries every consumer group has acknowledged (workers do this too)."""
    from .keys import PREFIX
    from .retention import trim_outbox

    async def run() -> int:
        client = _admin(redis_url)
        try:
            removed = 0
            async for key in client.scan_iter(match=f"{PREFIX}:{{*}}:outbox", _type="stream"):
                removed += await trim_outbox(client, key.decode(), maxlen=maxlen)
            return removed
        finally:
            await client.aclose()

    click.echo(f"removed {_run(run())} acknowledged entries")


async def _partitions_async(client: Any, cls_id: str | None, partition: int | None) -> list[Any]:
    from .deadletters import partitions_with_dlq
    from .keys import PartitionKeys

    if cls_id is not None:
        if partition is None:
            raise click.UsageError("--cls needs --partition")
        return [PartitionKeys.of(cls_id, partition)]
    return await partitions_with_dlq(client)


def _run(coro: Any) -> Any:
    import asyncio

    try:
        return asyncio.run(coro)
    except OprcEventsError as err:
        raise click.ClickException(str(err)) from err
