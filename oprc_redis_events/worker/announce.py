"""New outboxes announced by the write script: the worker takes a new partition at once.

``write.lua`` publishes an outbox's key on :data:`~..protocol.keys.NEW_OUTBOX_CHANNEL` when it
appends the outbox's first entry.  :class:`OutboxAnnouncements` listens to that channel (on
a Redis Cluster, through redis-py's cluster Pub/Sub: a PUBLISH reaches every node) and hands
each outbox key to the worker, which wakes its maintenance (discovery, leases) and its
dispatch loop instead of waiting for the next discovery interval.

It is only a hint: a message that does not name an outbox is ignored, a message lost (the
listener was reconnecting) is found by the next discovery, and a user whose ACL does not
allow ``SUBSCRIBE`` on the channel is told once and served by discovery alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio as aredis
from redis.exceptions import RedisClusterException

from ..connect.cluster import is_cluster
from ..errors import InvalidIdError
from ..protocol.keys import NEW_OUTBOX_CHANNEL, PartitionKeys, as_text
from .broken import TOPOLOGY_ERRORS
from .logonce import ThrottledLog

__all__ = ["OutboxAnnouncements"]

log = logging.getLogger("oprc_redis_events.worker.loop")

#: how long one wait for a message lasts (the stop flag is checked in between)
LISTEN_S = 0.5


class OutboxAnnouncements:
    """Calls ``announced(outbox key)`` for each new outbox published (see the module)."""

    def __init__(
        self,
        client: aredis.Redis,
        announced: Callable[[str], None],
        problems: ThrottledLog,
    ) -> None:
        self.client = client
        self.announced = announced
        self.problems = problems
        self.listening = False  # subscribed now (tests wait for it)

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until ``stop``; Redis going away is waited out, then listened again."""
        backoff = 0.1
        while not stop.is_set():
            try:
                await self._listen(stop)
                return
            except redis.exceptions.NoPermissionError as err:
                log.warning(
                    "cannot subscribe to %s (%s): new partitions are found by discovery "
                    "only; apply the role's ACL rules again (`oprc-redis-events acl`)",
                    NEW_OUTBOX_CHANNEL,
                    err,
                )
                await stop.wait()  # not an error of the worker's: nothing to restart
                return
            except (redis.RedisError, RedisClusterException, *TOPOLOGY_ERRORS) as err:
                # only a hint: never fatal (a cluster no node of which answers is not a
                # RedisError, but is waited out the same way)
                self.problems.warning(
                    ("announce", "redis"), "new-outbox listener: Redis unavailable (%s)", err
                )
            self.listening = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, 5.0)

    async def _listen(self, stop: asyncio.Event) -> None:
        if is_cluster(self.client):  # its Pub/Sub picks a node from the slots it has read
            await self.client.initialize()
        pubsub: Any = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(NEW_OUTBOX_CHANNEL)
            self.listening = True
            self.announced("")  # (re)subscribed: whatever came meanwhile, discover now
            while not stop.is_set():
                message = await pubsub.get_message(timeout=LISTEN_S)
                if message is not None and message.get("type") == "message":
                    self._received(message.get("data"))
        finally:
            self.listening = False
            with contextlib.suppress(redis.RedisError, OSError):
                await pubsub.aclose()

    def _received(self, data: Any) -> None:
        """An outbox key, checked: anyone may publish on the channel."""
        try:
            key = as_text(data)
            outbox = PartitionKeys.from_key(key).outbox
        except (InvalidIdError, ValueError, AttributeError):
            outbox = None
        if outbox is None or outbox != key:
            log.debug("ignored a message on %s that names no outbox: %r", NEW_OUTBOX_CHANNEL, data)
            return
        self.announced(key)
