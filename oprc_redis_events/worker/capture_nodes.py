"""The Redis nodes keyspace capture listens on: the one Redis, or every primary of a cluster.

Keyspace notifications are node-local, so on a Redis Cluster capture needs one pub/sub
connection per primary.  :class:`CaptureNodes` reads the slot map (``CLUSTER SLOTS``, at
most every ``refresh_s`` seconds), keeps one plain ``redis.asyncio.Redis`` per primary (built
from the cluster client's own connection settings, so credentials and TLS carry over),
subscribes on each, and drops a node that is no longer a primary; :meth:`check_notifications`
checks ``notify-keyspace-events`` on all of them (capture calls it at every change of
:attr:`~CaptureNodes.epoch`, so a promoted replica is checked too).  On a
single Redis there is one node: the client itself.

:attr:`CaptureNodes.epoch` changes whenever notifications may have been lost or keys may
have moved: a subscription re-connected, a primary came or went, slots moved.  Capture then
reconciles.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aredis
import redis.asyncio.client
from redis.asyncio.connection import Connection, ConnectionPool

from ..errors import ConfigError
from ..protocol.keys import as_text

__all__ = [
    "REQUIRED_FLAGS",
    "CaptureNode",
    "CaptureNodes",
    "db_of",
    "ensure_notifications",
    "merged_flags",
]

#: K keyspace channel, h hash commands, g generic (del, rename...), x expired, e evicted
REQUIRED_FLAGS = "Khgxe"
_ALL = "g$lshzxet"  # what "A" stands for
TOPOLOGY_S = 1.0  # how often a cluster's slot map is read again

Slots = tuple[tuple[int, int, str], ...]  # (first slot, last slot, primary "host:port")


def merged_flags(current: str) -> str | None:
    """``current`` plus what capture needs, or ``None`` when nothing is missing."""
    have = set(current.replace("A", _ALL))
    missing = [f for f in REQUIRED_FLAGS if f not in have]
    return None if not missing else current + "".join(missing)


async def ensure_notifications(client: aredis.Redis, where: str, log: Any) -> None:
    """Make sure ``notify-keyspace-events`` on ``client``'s node includes what capture needs."""
    try:
        config = await client.config_get("notify-keyspace-events")
        current = as_text(config.get("notify-keyspace-events") or "")
        wanted = merged_flags(current)
        if wanted is not None:
            await client.config_set("notify-keyspace-events", wanted)
            log.info("set notify-keyspace-events on %s from %r to %r", where, current, wanted)
    except redis.ResponseError as err:
        raise ConfigError(
            f"keyspace capture needs notify-keyspace-events to include {REQUIRED_FLAGS} "
            f"and {where} refused to read or set it ({err}); set it in redis.conf "
            f"(notify-keyspace-events {REQUIRED_FLAGS}) or allow CONFIG SET"
        ) from err


class _PubSub(redis.asyncio.client.PubSub):
    """A PubSub that counts its (re)connections: each one may have lost notifications."""

    connections = 0

    async def on_connect(self, connection: Any) -> None:
        self.connections += 1
        await super().on_connect(connection)


@dataclass(eq=False)
class CaptureNode:
    """One node capture listens on: its client, and its subscription while listening."""

    name: str
    client: aredis.Redis
    owned: bool  # a client of our own (a cluster primary), closed with the node
    pubsub: _PubSub | None = None

    async def unsubscribe(self) -> None:
        if self.pubsub is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                await self.pubsub.aclose()  # type: ignore[no-untyped-call]
            self.pubsub = None

    async def close(self) -> None:
        await self.unsubscribe()
        if self.owned:
            with contextlib.suppress(redis.RedisError, OSError):
                await self.client.aclose()


class CaptureNodes:
    """The primaries capture listens on (see the module docstring)."""

    def __init__(self, client: aredis.Redis, log: Any, *, refresh_s: float = TOPOLOGY_S) -> None:
        self.client = client
        self.log = log
        self.refresh_s = refresh_s
        self.cluster = isinstance(client, aredis.RedisCluster)
        self.nodes: dict[str, CaptureNode] = {}
        self._slots: Slots = ()
        self._firsts: list[int] = []
        self._changes = 0  # topology changes seen
        self._read_at = -float("inf")

    @property
    def epoch(self) -> Hashable:
        """Changes when notifications may have been lost or slots moved (see the module)."""
        return self._changes, tuple(
            (n, x.pubsub and x.pubsub.connections) for n, x in self.nodes.items()
        )

    async def update(self, *, force: bool = False) -> bool:
        """Read the topology again (at most every ``refresh_s`` unless ``force``): open new
        primaries, drop the ones that went away.
        ``True`` when it changed."""
        if not force and time.monotonic() - self._read_at < self.refresh_s:
            return False
        self._read_at = time.monotonic()
        slots = await self._read_slots()
        if slots == self._slots and self.nodes:
            return False
        wanted = {name for _, _, name in slots}
        for name in set(self.nodes) - wanted:
            self.log.info("capture: %s is no longer a primary; not listening there", name)
            await self.nodes.pop(name).close()
        for name in sorted(wanted - set(self.nodes)):
            self.nodes[name] = self._open(name)
        self._slots, self._firsts = slots, [first for first, _, _ in slots]
        self._changes += 1
        return True

    async def _read_slots(self) -> Slots:
        if not self.cluster:
            return ((0, 0, "redis"),)
        reply = await self.client.cluster_slots()  # type: ignore[attr-defined]
        return tuple(
            sorted(
                (int(first), int(last), _name(*shard["primary"]))
                for (first, last), shard in reply.items()
            )
        )

    async def check_notifications(self) -> None:
        """:func:`ensure_notifications` on every node."""
        for node in self.nodes.values():
            where = f"the cluster primary {node.name}" if self.cluster else "this Redis"
            await ensure_notifications(node.client, where, self.log)

    def _open(self, name: str) -> CaptureNode:
        if not self.cluster:
            return CaptureNode(name, self.client, owned=False)
        kwargs = dict(self.client.get_connection_kwargs())  # type: ignore[no-untyped-call]
        kwargs.pop("response_callbacks", None)
        host, port = name.rsplit(":", 1)
        kwargs.update(host=host, port=int(port))
        connection_class = kwargs.pop("connection_class", Connection)
        pool = ConnectionPool(connection_class=connection_class, **kwargs)
        return CaptureNode(name, aredis.Redis.from_pool(pool), owned=True)

    async def subscribe(self, pattern: str) -> None:
        """Subscribe to ``pattern`` on every node not yet subscribed."""
        for node in self.nodes.values():
            if node.pubsub is None:
                pubsub = _PubSub(node.client.connection_pool, ignore_subscribe_messages=True)
                node.pubsub = pubsub
                await pubsub.psubscribe(pattern)

    async def unsubscribe(self) -> None:
        for node in self.nodes.values():
            await node.unsubscribe()

    async def close(self) -> None:
        """Unsubscribe and close every client of our own."""
        nodes, self.nodes, self._slots = list(self.nodes.values()), {}, ()
        for node in nodes:
            await node.close()

    async def poll(self, timeout: float, on_message: Callable[[dict[str, Any]], None]) -> None:
        """Hand every message that arrives on any node within ``timeout`` to ``on_message``;
        raise the first error (after the other nodes were read)."""
        pubsubs = [n.pubsub for n in self.nodes.values() if n.pubsub is not None]
        results = await asyncio.gather(
            *(_read(p, timeout, on_message) for p in pubsubs), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def scan(self, match: str) -> AsyncIterator[bytes | str]:
        """The keys matching ``match`` on every node (SCAN, node by node)."""
        for node in list(self.nodes.values()):
            async for key in node.client.scan_iter(match=match, count=1000):
                yield key

    def node_of(self, key: str) -> CaptureNode:
        """The node that serves ``key`` as far as the last slot map read says."""
        if not self.cluster:
            return next(iter(self.nodes.values()))
        slot = self.client.keyslot(key)  # type: ignore[attr-defined]
        i = bisect.bisect_right(self._firsts, slot) - 1
        first, last, name = self._slots[i] if i >= 0 else (0, -1, "")
        node = self.nodes.get(name) if first <= slot <= last else None
        return node if node is not None else next(iter(self.nodes.values()))


def db_of(client: aredis.Redis) -> int:
    """The database ``client`` uses (a cluster has only 0)."""
    pool = getattr(client, "connection_pool", None)
    return int(pool.connection_kwargs.get("db", 0)) if pool is not None else 0


def _name(host: bytes | str, port: int) -> str:
    return f"{as_text(host)}:{int(port)}"


async def _read(
    pubsub: _PubSub, timeout: float, on_message: Callable[[dict[str, Any]], None]
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (left := deadline - loop.time()) > 0:
        message = await pubsub.get_message(timeout=left)
        if message is not None:
            on_message(message)
