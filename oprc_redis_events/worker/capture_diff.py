"""Running capture's diff script (``lua/capture.lua``) for many objects at once.

redis-py's cluster pipeline refuses EVALSHA, so the calls are grouped by the primary that
serves each object's slot (:meth:`CaptureNodes.node_of`) and pipelined on that node's own
client, the nodes side by side.  On a cluster, a call the node answered with a redirection
(``MOVED``, ``ASK``: the slot moved or is moving), ``TRYAGAIN`` (a migration holds part of
its keys) or ``CLUSTERDOWN``, or whose node could not be reached, runs again through the
cluster client, which follows redirections and retries ``TRYAGAIN`` a few times.  What
still fails is a :data:`TRANSIENT` error that the caller queues again for later.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis
import redis.asyncio as aredis
from redis.exceptions import AskError, ClusterDownError, RedisClusterException, TryAgainError

from ..client.core import ObjectRef
from ..protocol.switch import switch_key
from .capture_nodes import CaptureNode, CaptureNodes

__all__ = ["TRANSIENT", "Call", "diff_call", "run_diffs"]

#: errors that say "not here, or not now": the call is run again later
TRANSIENT: tuple[type[BaseException], ...] = (
    AskError,  # and MovedError
    TryAgainError,
    ClusterDownError,
    RedisClusterException,
    redis.ConnectionError,
    redis.TimeoutError,
)

Call = tuple[list[str], list[str]]  # KEYS, ARGV of one script call


def diff_call(ref: ObjectRef, drop: bool, events: bool, *, cluster: bool) -> Call:
    """The call of the diff script for ``ref`` (see ``lua/capture.lua``'s header)."""
    keys = [*ref.script_keys[:4], switch_key(ref.keys, cluster=cluster)]
    return keys, [ref.segment, "drop" if drop else "keep", "1" if events else "0"]


async def run_diffs(nodes: CaptureNodes, script: Any, calls: list[Call]) -> list[Any]:
    """The reply to each call, in order: the script's result or the error it got."""
    groups: dict[CaptureNode, list[int]] = {}
    for i, (keys, _) in enumerate(calls):
        groups.setdefault(nodes.node_of(keys[0]), []).append(i)
    replies: list[Any] = [None] * len(calls)
    results = await asyncio.gather(
        *(
            _pipelined(node.client, script, [calls[i] for i in idx], nodes.cluster)
            for node, idx in groups.items()
        )
    )
    for indexes, got in zip(groups.values(), results, strict=True):
        for i, reply in zip(indexes, got, strict=True):
            replies[i] = reply
    if nodes.cluster:
        for i, reply in enumerate(replies):
            if isinstance(reply, TRANSIENT):
                replies[i] = await _through_cluster(nodes.client, script, calls[i])
    return replies


async def _pipelined(
    client: aredis.Redis, script: Any, calls: list[Call], catch: bool
) -> list[Any]:
    """The calls in one pipeline on one node; with ``catch`` a connection failure becomes
    every call's reply instead of being raised."""
    pipe = client.pipeline(transaction=False)
    pipe.scripts.add(script)
    for keys, args in calls:
        pipe.evalsha(script.sha, len(keys), *keys, *args)
    try:
        return list(await pipe.execute(raise_on_error=False))
    except (redis.ConnectionError, redis.TimeoutError) as err:
        if not catch:
            raise
        return [err] * len(calls)


async def _through_cluster(client: aredis.Redis, script: Any, call: Call) -> Any:
    keys, args = call
    try:
        return await script(keys=keys, args=args, client=client)
    except (redis.RedisError, RedisClusterException) as err:
        return err
