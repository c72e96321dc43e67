"""The runtime switch's commands (``oprc-redis-events events off|on|status``), on one
Redis or every slot's copy on Redis Cluster (see :mod:`..protocol.switch`).

Each command touches each copy with one atomic command (``HSET``, ``HDEL``, ``DEL``), in
one pipeline (grouped per node on a cluster), so a copy is always whole; copies that
disagree (a command interrupted, or ``off`` and ``on`` run at the same time) are what
:func:`read_switch` reports as ``disagreeing``: running the command again settles them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from ..connect.cluster import is_cluster
from ..errors import ConfigError, CorruptedStateError
from ..protocol.switch import ALL_CLASSES, OFF, SwitchState, switch_keys

__all__ = ["check_reply", "read_switch", "switch_events"]


async def switch_events(client: Any, *, enabled: bool, classes: Sequence[str] = ()) -> SwitchState:
    """Turn events off (``enabled=False``) or on for ``classes`` (none: every class) for
    every writer, and return the state read back.  ``on`` without classes clears every
    class's flag too."""
    keys = await _copies(client)
    pipe = client.pipeline(transaction=False)
    for key in keys:
        if not enabled:
            pipe.hset(key, mapping=dict.fromkeys(classes or (ALL_CLASSES,), OFF))
        elif classes:
            pipe.hdel(key, *classes)
        else:
            pipe.delete(key)
    await _execute(pipe, keys)
    return await _read(client, keys)


async def read_switch(client: Any) -> SwitchState:
    """What the switch says (on a cluster, what every slot's copy says)."""
    return await _read(client, await _copies(client))


async def _read(client: Any, keys: list[str]) -> SwitchState:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    return SwitchState.read(await _execute(pipe, keys))


async def _execute(pipe: Any, keys: list[str]) -> list[Any]:
    """The replies of one command per key; a key of the wrong type is named."""
    replies = await pipe.execute(raise_on_error=False)
    for key, reply in zip(keys, replies, strict=True):
        check_reply(key, reply)
    return list(replies)


def check_reply(key: str, reply: Any) -> Any:
    """``reply`` to a command on the switch copy ``key``; an error raised (one of the wrong
    type as :class:`CorruptedStateError` naming the key)."""
    if isinstance(reply, redis.ResponseError) and str(reply).startswith("WRONGTYPE"):
        raise CorruptedStateError(f"{key} (the runtime switch) is not a hash: fix or delete it")
    if isinstance(reply, Exception):
        raise reply
    return reply


async def _copies(client: Any) -> list[str]:
    """The switch's keys for ``client``; a plain client on a cluster node is refused (its
    writes to ``oprc:switch`` would reach no writer of the cluster)."""
    if is_cluster(client):
        return switch_keys(cluster=True)
    try:
        await client.execute_command("CLUSTER", "INFO")  # not @dangerous, as INFO is
    except redis.ResponseError:  # "cluster support disabled" (or not allowed: cannot tell)
        return switch_keys(cluster=False)
    raise ConfigError(
        "this Redis is a node of a Redis Cluster: pass --cluster (or set "
        "OPRC_EVENTS_CLUSTER=true) so that every slot's copy of the switch is set"
    )
