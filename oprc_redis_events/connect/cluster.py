"""What the writer's side needs of redis-py's Redis Cluster clients, sync and asyncio.

redis-py's cluster pipeline refuses EVALSHA, so the wrappers send a batch of script calls
themselves, one pipeline per owning node: :func:`slot_of` / :func:`slot_of_async` say
which slot a command goes to, and :func:`send_to_node` / :func:`send_to_node_async` send
one node's commands as one pipeline on that node's own connection and return each
command's reply, or the exception it got, in order.  The sync and asyncio cluster clients
keep their nodes differently (a ``redis.Redis`` per node, or connections on the
``ClusterNode``), hence a function for each.

Scanning needs nothing here: redis-py's ``RedisCluster.scan_iter`` (both flavours) scans
every primary, one cursor per node, until each is done.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis.exceptions import RedisClusterException

__all__ = [
    "CLUSTER_CLIENTS",
    "initialized",
    "initialized_async",
    "is_cluster",
    "node_of_slot",
    "response_callbacks",
    "send_to_node",
    "send_to_node_async",
    "slot_of",
    "slot_of_async",
]

#: redis-py's cluster clients (and their pipelines, which subclass them)
CLUSTER_CLIENTS: tuple[type, ...] = (
    redis.cluster.RedisCluster,
    redis.asyncio.cluster.RedisCluster,
    redis.asyncio.cluster.ClusterPipeline,
)


def is_cluster(client: Any) -> bool:
    """Whether ``client`` is one of redis-py's Redis Cluster clients (sync or asyncio)."""
    return isinstance(client, CLUSTER_CLIENTS)


def response_callbacks(client: Any) -> Mapping[Any, Any]:
    """The reply parsers redis-py applies to one command of ``client``: a sync cluster
    client keeps them on its nodes' clients, not on itself."""
    callbacks = getattr(client, "response_callbacks", None)
    if callbacks is not None:
        return callbacks  # type: ignore[no-any-return]
    node = client.get_default_node()
    return client.get_redis_connection(node).response_callbacks  # type: ignore[no-any-return]


def initialized(client: redis.cluster.RedisCluster) -> None:
    """Nothing to do: a sync cluster client learns the topology as it is made."""


async def initialized_async(client: redis.asyncio.cluster.RedisCluster) -> None:
    """Let an asyncio cluster client learn the topology (it does so on first use)."""
    if client._initialize:
        await client.initialize()


def node_of_slot(client: Any, slot: int) -> Any:
    """The primary that serves ``slot``, as the client knows it now."""
    return client.nodes_manager.get_node_from_slot(slot)


def slot_of(client: redis.cluster.RedisCluster, args: Sequence[Any]) -> int | None:
    """The slot every key of command ``args`` is in; ``None`` when it names no key or keys
    of several slots (such a command goes through the cluster client itself)."""
    try:
        return client.determine_slot(*args)
    except RedisClusterException:
        return None


async def slot_of_async(
    client: redis.asyncio.cluster.RedisCluster, args: Sequence[Any]
) -> int | None:
    """:func:`slot_of` for an asyncio cluster client."""
    try:
        return await client._determine_slot(*args)
    except RedisClusterException:
        return None


def send_to_node(
    client: redis.cluster.RedisCluster,
    node: Any,
    commands: Sequence[tuple[Sequence[Any], Mapping[str, Any]]],
) -> list[Any]:
    """Send ``commands`` (args, options) as one pipeline on ``node``'s connection; the
    replies (or the exception of each command) in order.  A connection failure gives
    that exception for every command."""
    pipe = client.get_redis_connection(node).pipeline(transaction=False)
    for args, options in commands:
        pipe.execute_command(*args, **options)  # type: ignore[no-untyped-call]
    try:
        return pipe.execute(raise_on_error=False)
    except (redis.ConnectionError, redis.TimeoutError) as err:
        return [err] * len(commands)


async def send_to_node_async(
    client: redis.asyncio.cluster.RedisCluster,
    node: Any,
    commands: Sequence[tuple[Sequence[Any], Mapping[str, Any]]],
) -> list[Any]:
    """:func:`send_to_node` for an asyncio cluster client."""
    queued = [
        redis.asyncio.cluster.PipelineCommand(i, *args, **options)
        for i, (args, options) in enumerate(commands)
    ]
    try:
        await node.execute_pipeline(queued)
    except (redis.ConnectionError, redis.TimeoutError, OSError) as err:
        with contextlib.suppress(redis.RedisError, RedisClusterException, OSError):
            await client.nodes_manager.initialize()
        return [err] * len(commands)
    return [command.result for command in queued]
