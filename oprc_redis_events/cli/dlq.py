"""Dead-letter and retention commands of the CLI: dlq list|replay|purge, trim."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from ..connect.redis_client import async_redis_client
from ..protocol.keys import PartitionKeys
from .base import redis_settings, redis_url_option

__all__ = ["Skipped", "admin_run", "dlq", "trim"]

T = TypeVar("T")

_cls_option = click.option("--cls", "cls_id", help="Only this class (with --partition).")
_partition_option = click.option(
    "--partition", type=click.IntRange(min=0), help="Only this partition (with --cls)."
)
_group_option = click.option(
    "--group", help="Only the dead letters of this consumer group (dlq list shows each one's)."
)


def admin_run(
    redis_url: str | None, cluster: bool | None, work: Callable[[Any], Awaitable[T]]
) -> T:
    """Run ``work(client)`` with an asyncio Redis client for ``redis_url`` (a cluster
    client with ``cluster``, or as the environment says), then close it."""

    async def main() -> T:
        client = async_redis_client(redis_settings(redis_url, cluster))
        try:
            return await work(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


class Skipped:
    """The keys an admin command skipped (``worker.inventory``): one warning line each as it
    happens, the rest is served, and :meth:`finish` exits non-zero when there were any."""

    def __init__(self) -> None:
        self.keys: dict[str, str] = {}

    def __call__(self, key: str, why: str) -> None:
        if key not in self.keys:
            self.keys[key] = why
            click.echo(f"warning: skipping {key}: {why}", err=True)

    def finish(self) -> None:
        if self.keys:
            raise click.ClickException(
                f"{len(self.keys)} key(s) were skipped (see the warnings above); the rest was "
                "done: fix or delete those keys, then run the command again"
            )


def _guard(key: str, skip: Skipped) -> Any:
    """``worker.inventory.skipping``: a refusal of Redis about ``key`` goes to ``skip``."""
    from ..worker.inventory import skipping

    return skipping(key, skip)


def _one_partition(cls_id: str | None, partition: int | None, ids: tuple[str, ...]) -> None:
    if (cls_id is None) != (partition is None):
        raise click.UsageError("--cls and --partition go together")
    if ids and cls_id is None:
        raise click.UsageError(
            "dead letter ids belong to one partition: give --cls and --partition"
        )


async def _partitions(
    client: Any, cls_id: str | None, partition: int | None, skip: Skipped
) -> list[Any]:
    from ..worker.deadletters import partitions_with_dlq

    if cls_id is not None:
        return [PartitionKeys.of(cls_id, partition)]
    return await partitions_with_dlq(client, skip)


async def _check_exist(client: Any, keys: PartitionKeys, ids: tuple[str, ...]) -> None:
    from ..worker.deadletters import missing_ids

    missing = await missing_ids(client, keys, ids)
    if missing:
        raise click.ClickException(
            f"no dead letter {', '.join(missing)} in partition {keys.member}: nothing was "
            f"changed (`oprc-redis-events dlq list --cls {keys.cls_id} --partition "
            f"{keys.partition_id}` shows its letters)"
        )


@click.group()
def dlq() -> None:
    """Inspect, replay or purge the dead-letter streams (oprc:{cls:pid}:dlq)."""


@dlq.command("list")
@redis_url_option()
@_cls_option
@_partition_option
@_group_option
@click.option("--count", type=click.IntRange(min=1), default=100, show_default=True)
def dlq_list(
    redis_url: str | None,
    cluster: bool | None,
    cls_id: str | None,
    partition: int | None,
    group: str | None,
    count: int,
) -> None:
    """Print dead letters: partition, id, source entry, group, attempts, reason, error."""
    from ..worker.deadletters import list_dead_letters

    _one_partition(cls_id, partition, ())
    skip = Skipped()

    async def run(client: Any) -> int:
        total = 0
        for keys in await _partitions(client, cls_id, partition, skip):
            letters: list[Any] = []
            async with _guard(keys.dead_letters, skip):
                letters = await list_dead_letters(client, keys, count)
            for letter in letters:
                if group is None or letter.group == group:
                    total += 1
                    click.echo(_letter_line(keys, letter))
        return total

    click.echo(f"{admin_run(redis_url, cluster, run)} dead letter(s)", err=True)
    skip.finish()


def _letter_line(keys: PartitionKeys, letter: Any) -> str:
    return (
        f"{keys.member} {letter.id} source={letter.source_id} group={letter.group or '?'} "
        f"attempts={letter.attempts} reason={letter.reason!r}"
        + (f" error={letter.error!r}" if letter.error else "")
    )


@dlq.command("replay")
@redis_url_option()
@_cls_option
@_partition_option
@_group_option
@click.argument("ids", nargs=-1)
def dlq_replay(
    redis_url: str | None,
    cluster: bool | None,
    cls_id: str | None,
    partition: int | None,
    group: str | None,
    ids: tuple[str, ...],
) -> None:
    """Put dead letters back into their outbox (all of them, or the given IDS of the
    partition named by --cls/--partition). Each is sent again by the consumer group that
    dead-lettered it only, with its invocation ids; a letter that records no group (written
    by an older version) is read by every group."""
    from ..worker.deadletters import replay

    _one_partition(cls_id, partition, ids)
    skip = Skipped()

    async def run(client: Any) -> int:
        done = 0
        for keys in await _partitions(client, cls_id, partition, skip):
            if ids:
                await _check_exist(client, keys, ids)
            async with _guard(keys.dead_letters, skip):
                done += await replay(client, keys, list(ids) or None, group=group)
        return done

    click.echo(f"replayed {admin_run(redis_url, cluster, run)} dead letter(s)")
    skip.finish()


@dlq.command("purge")
@redis_url_option()
@_cls_option
@_partition_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.argument("ids", nargs=-1)
def dlq_purge(
    redis_url: str | None,
    cluster: bool | None,
    cls_id: str | None,
    partition: int | None,
    yes: bool,
    ids: tuple[str, ...],
) -> None:
    """Delete dead letters (all of them, or the given IDS of one partition). Asks first,
    unless --yes or there is nothing to delete."""
    from ..worker.deadletters import last_id, purge

    _one_partition(cls_id, partition, ids)
    skip = Skipped()

    async def survey(client: Any) -> dict[PartitionKeys, tuple[str, int]]:
        """partition -> (its newest letter, how many it has): what the question counts."""
        found: dict[PartitionKeys, tuple[str, int]] = {}
        for keys in await _partitions(client, cls_id, partition, skip):
            if ids:
                await _check_exist(client, keys, ids)
            async with _guard(keys.dead_letters, skip):
                newest = await last_id(client, keys)
                if newest is not None:
                    found[keys] = (newest, int(await client.xlen(keys.dead_letters)))
        return found

    found = admin_run(redis_url, cluster, survey)
    total = len(ids) if ids else sum(n for _, n in found.values())
    if total and not yes:
        click.confirm(f"Delete {total} dead letter(s) for good?", abort=True)

    async def run(client: Any) -> int:
        done = 0
        for keys, (newest, _) in found.items():
            done += await purge(client, keys, list(ids) or None, up_to=newest)
        return done

    click.echo(f"purged {admin_run(redis_url, cluster, run) if total else 0} dead letter(s)")
    skip.finish()


@click.command()
@redis_url_option()
@click.option(
    "--maxlen",
    type=click.IntRange(min=0),
    help="Also require each outbox to hold at most this many entries; refused with "
    "an error when that would drop unacknowledged entries.",
)
def trim(redis_url: str | None, cluster: bool | None, maxlen: int | None) -> None:
    """Remove outbox entries every consumer group has acknowledged (workers do this too)."""
    from ..protocol.keys import PREFIX
    from ..worker.retention import trim_outbox

    skip = Skipped()

    async def run(client: Any) -> int:
        removed = 0
        async for key in client.scan_iter(match=f"{PREFIX}:{{*}}:outbox", _type="stream"):
            name = key.decode("utf-8", "backslashreplace")
            async with _guard(name, skip):
                removed += await trim_outbox(client, key, maxlen=maxlen)
        return removed

    click.echo(f"removed {admin_run(redis_url, cluster, run)} acknowledged entries")
    skip.finish()
