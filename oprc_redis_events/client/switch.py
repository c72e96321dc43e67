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

from ..connect.cluster import is_cluster
from ..protocol.switch import ALL_CLASSES, OFF, SwitchState, switch_keys

__all__ = ["read_switch", "switch_events"]


async def switch_events(client: Any, *, enabled: bool, classes: Sequence[str] = ()) -> SwitchState:
    """Turn events off (``enabled=False``) or on for ``classes`` (none: every class) for
    every writer, and return the state read back.  ``on`` without classes clears every
    class's flag too."""
    keys = switch_keys(cluster=is_cluster(client))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        if not enabled:
            pipe.hset(key, mapping=dict.fromkeys(classes or (ALL_CLASSES,), OFF))
        elif classes:
            pipe.hdel(key, *classes)
        else:
            pipe.delete(key)
    await pipe.execute()
    return await read_switch(client)


async def read_switch(client: Any) -> SwitchState:
    """What the switch says (on a cluster, what every slot's copy says)."""
    keys = switch_keys(cluster=is_cluster(client))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    return SwitchState.read(await pipe.execute())
