"""Partition leases: which worker of a group consumes which partition.

Each partition's outbox is consumed by one worker of a group at a time, so dispatch
follows write order even with several workers; the partitions are spread evenly over
the live workers.  A worker heartbeats into ``oprc:workers:<group>`` and holds a lease
``oprc:{cls:pid}:lease:<group>`` per partition it owns (SET NX PX, renewed by
``lua/lease.lua``).  When a worker dies its leases expire after ``lease_ms`` and the
others take its partitions, claiming what it left pending (XAUTOCLAIM).
"""

from __future__ import annotations

import functools
import logging
import math
import random
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio as aredis

from ..lua.loader import register
from ..protocol.keys import PartitionKeys, as_text, workers_key
from .broken import BrokenKeyError, is_server_wide, pipelined

__all__ = ["Leases"]

log = logging.getLogger("oprc_redis_events.worker.loop")


class Leases:
    """The leases one worker holds, and the rebalancing that keeps shares even."""

    def __init__(self, client: aredis.Redis, group: str, consumer: str, lease_ms: int) -> None:
        self.client = client
        self.group = group
        self.consumer = consumer
        self.lease_ms = lease_ms
        self.owned: dict[str, PartitionKeys] = {}  # outbox stream -> partition
        self._script: Any = register(client, "lease")
        #: a stream whose take and release are routine (broken and retried): DEBUG lines
        self.quiet: Callable[[str], bool] = lambda stream: False
        self._told: set[str] = set()  # quiet streams whose release was logged once

    def _level(self, stream: str, taking: bool) -> int:
        """INFO for a take or release, but for a broken stream's retries: its first release
        only (the warning about it says it is retried), then DEBUG."""
        if not self.quiet(stream):
            self._told.discard(stream)
            return logging.INFO
        if taking or stream in self._told:
            return logging.DEBUG
        self._told.add(stream)
        return logging.INFO

    async def heartbeat(self) -> int:
        """Record that we are alive; return how many workers of the group are (us included).

        Heartbeats are scored with Redis' clock, not ours: workers on hosts whose clocks
        disagree would otherwise not count each other (and print "share 2 of 1")."""
        seconds, micros = await self.client.time()
        now = int(seconds) * 1000 + int(micros) // 1000
        key = workers_key(self.group)
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(key, {self.consumer: now})
        pipe.zremrangebyscore(key, "-inf", now - 2 * self.lease_ms)
        pipe.zcount(key, now - self.lease_ms, "+inf")
        pipe.pexpire(key, 10 * self.lease_ms)
        try:
            replies = await pipe.execute()
        except redis.ResponseError as err:
            if is_server_wide(err) or "WRONGTYPE" not in str(err):
                raise
            kind = as_text(await self.client.type(key))
            raise BrokenKeyError(
                f"{key} is a {kind}, not the sorted set of the live workers of group "
                f"{self.group!r}: no partition can be shared; delete that key"
            ) from err
        return max(1, int(replies[2]))

    async def rebalance(
        self,
        partitions: dict[str, PartitionKeys],
        busy: set[str] = frozenset(),  # type: ignore[assignment]
        *,
        renew: bool = True,
    ) -> list[PartitionKeys]:
        """Renew our leases (unless not ``renew``: an extra round between regular ones),
        give up those above our share (not ``busy`` ones first), take free ones up to it.
        Returns the partitions newly acquired."""
        alive = await self.heartbeat()
        if renew:
            await self._renew()
        await self.release(*[s for s in self.owned if s not in partitions])  # gone, or broken
        share = math.ceil(len(partitions) / alive) if partitions else 0
        if len(self.owned) > share:
            extra = sorted(self.owned, key=lambda s: (s in busy, s))[: len(self.owned) - share]
            await self.release(*extra)
        return await self._take(partitions, share, alive)

    async def _take(
        self, partitions: dict[str, PartitionKeys], share: int, alive: int
    ) -> list[PartitionKeys]:
        """Take free partitions (in random order) until we hold ``share``: as many SET NX as
        we lack in one pipeline, again while some were held by others.  Every lease taken
        is recorded before an error in a reply is raised.  (A SET sent again after its
        reply was lost finds the lease it set: that partition waits for it to expire.  It
        is not read back: workers of one consumer name, two in one process, would then
        both take it.)"""
        acquired: list[PartitionKeys] = []
        free = [s for s in partitions if s not in self.owned]
        random.shuffle(free)
        while free and len(self.owned) < share:
            trying, free = free[: share - len(self.owned)], free[share - len(self.owned) :]
            keys = [partitions[s].lease(self.group) for s in trying]
            replies = await pipelined(self.client, len(keys), functools.partial(self._set, keys))
            for stream, took in zip(trying, replies, strict=True):
                if took is True:  # (an error about the cluster may come in place)
                    self._took(stream, partitions, share, alive)
                    acquired.append(partitions[stream])
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply  # SET refuses no key: about the server or the cluster
        return acquired

    def _set(self, keys: list[str], target: Any, i: int) -> Any:
        return target.set(keys[i], self.consumer, nx=True, px=self.lease_ms)

    def _took(
        self, stream: str, partitions: dict[str, PartitionKeys], share: int, alive: int
    ) -> None:
        partition = self.owned[stream] = partitions[stream]
        log.log(
            self._level(stream, taking=True),
            "took partition %s (now %d of %d partition(s); up to %d each for %d live worker(s))",
            partition.member,
            len(self.owned),
            len(partitions),
            share,
            alive,
        )

    async def _renew(self) -> None:
        """Renew every lease we hold (see :meth:`_calls`); a lease lost or broken is
        dropped."""
        owned = list(self.owned.items())
        replies = await self._calls("renew", [p for _, p in owned])
        for (stream, partition), held in zip(owned, replies, strict=True):
            if isinstance(held, redis.ResponseError):  # a lease key of the wrong type
                del self.owned[stream]
                key = partition.lease(self.group)
                log.warning("lost the lease of partition %s: %s (%s)", partition.member, key, held)
            elif not held:
                del self.owned[stream]
                log.warning("lost the lease of partition %s", partition.member)

    async def _calls(self, action: str, partitions: list[PartitionKeys]) -> list[Any]:
        """The lease script's ``action`` on each of ``partitions``: on one Redis all in one
        buffer (one round trip for hundreds of partitions), else one call each; an error
        reply about a lease key in its place, one about the server raised at once (the
        other leases would fail alike)."""
        if not partitions:
            return []
        argv = [action, self.consumer, self.lease_ms]
        calls = [([p.lease(self.group)], argv) for p in partitions]
        many = getattr(self._script, "many", None)
        replies: list[Any] = []
        if many is not None:
            replies = await many(calls)
        else:
            for keys, args in calls:
                try:
                    replies.append(await self._script(keys=keys, args=args))
                except redis.ResponseError as err:
                    if is_server_wide(err):
                        raise
                    replies.append(err)
        for reply in replies:
            if isinstance(reply, redis.ResponseError) and is_server_wide(reply):
                raise reply
        return replies

    async def release(self, *streams: str) -> None:
        """Give the leases of ``streams`` back (those we hold), all in one round trip on
        one Redis; a lease key of the wrong type is not ours and is left alone.  A lease
        whose release could not be sent stays ours (released, or renewed, next round)."""
        gone = [(s, self.owned[s]) for s in streams if s in self.owned]
        await self._calls("release", [p for _, p in gone])
        for stream, partition in gone:
            self.owned.pop(stream, None)
            log.log(self._level(stream, taking=False), "released partition %s", partition.member)

    async def release_all(self) -> None:
        """Give every lease back and leave the heartbeat set (graceful shutdown)."""
        await self.release(*self.owned)
        await self.client.zrem(workers_key(self.group), self.consumer)
