"""Consumer groups of the outbox streams: list them, and drop one with its bookkeeping.

A consumer group holds the outbox: entries it has not acknowledged are never trimmed.
Dropping a group destroys it on every outbox (``XGROUP DESTROY``) and deletes its
partition leases (``oprc:{cls:pid}:lease:<group>``) and its workers set
(``oprc:workers:<group>``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aredis

from ..protocol.keys import PREFIX, PartitionKeys, as_text, workers_key
from .inventory import Skip, find_partitions, ignore, skipping

__all__ = ["GroupInfo", "drop_group", "list_groups", "live_workers", "outboxes"]


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """One consumer group on one partition's outbox."""

    partition: str  # cls:pid
    group: str
    consumers: int
    pending: int  # delivered to a consumer, not acknowledged yet
    lag: int | None  # entries not delivered yet (None: Redis cannot tell, e.g. before 7.0)


async def outboxes(client: aredis.Redis, skip: Skip = ignore) -> list[PartitionKeys]:
    """Every partition whose outbox key exists (a bad registry member goes to ``skip``)."""
    return await find_partitions(client, "outbox", skip)


def _info(partition: PartitionKeys, group: dict[Any, Any]) -> GroupInfo:
    lag = group.get("lag")
    return GroupInfo(
        partition=partition.member,
        group=as_text(group["name"]),
        consumers=int(group["consumers"]),
        pending=int(group["pending"]),
        lag=int(lag) if lag is not None else None,
    )


async def list_groups(client: aredis.Redis, skip: Skip = ignore) -> list[GroupInfo]:
    """Every consumer group of every outbox, by partition then group; an outbox Redis
    cannot list (not a stream) goes to ``skip``."""
    rows: list[GroupInfo] = []
    for partition in await outboxes(client, skip):
        async with skipping(partition.outbox, skip):
            groups: Any = await client.xinfo_groups(partition.outbox)
            rows += sorted((_info(partition, g) for g in groups), key=lambda r: r.group)
    return rows


async def live_workers(client: aredis.Redis, group: str, within_ms: int) -> list[str]:
    """Workers of ``group`` that sent a heartbeat in the last ``within_ms``."""
    since = int(time.time() * 1000) - within_ms
    names: Any = await client.zrangebyscore(workers_key(group), since, "+inf")
    return sorted(as_text(n) for n in names)


def _glob_escape(text: str) -> str:
    return re.sub(r"([\\*?\[\]])", r"\\\1", text)


async def drop_group(client: aredis.Redis, group: str, skip: Skip = ignore) -> int:
    """Destroy ``group`` on every outbox and delete its leases and workers set; return on
    how many outboxes it existed (an outbox that is not a stream goes to ``skip``)."""
    dropped = 0
    for partition in await outboxes(client, skip):
        async with skipping(partition.outbox, skip):
            pipe = client.pipeline(transaction=True)  # one slot: the outbox and its lease
            pipe.xgroup_destroy(partition.outbox, group)
            pipe.delete(partition.lease(group))
            destroyed, _ = await pipe.execute()
            dropped += int(destroyed)
    pattern = f"{PREFIX}:{{*}}:lease:{_glob_escape(group)}"
    async for key in client.scan_iter(match=pattern):  # leases of outboxes gone since
        await client.delete(key)
    await client.delete(workers_key(group))
    return dropped
