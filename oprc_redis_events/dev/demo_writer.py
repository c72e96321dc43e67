"""``oprc-redis-events demo --write-only``: keep updating the demo order (compose's writer).

It writes the demo's own order, ``demo-orders/0/1001``, in the Redis (or Redis Cluster) it
is given, whose triggers target the demo's functions; when interrupted it deletes every key
of that class (:func:`.demo_names.written_keys`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..client.sync_generated.store import ObjectStore
from .demo_names import SHARED_PREFIX, DemoNames, written_keys

__all__ = ["run_writer"]


def run_writer(
    redis_url: str,
    *,
    interval: float,
    count: int | None = None,
    echo: Callable[[str], None] = print,
    cluster: bool = False,
) -> int:
    """Keep writing the status of the writer's own order, demo-orders/0/1001, whose
    triggers target the demo's functions (for compose): one update per ``interval``.  When
    interrupted (Ctrl-C) it deletes every key of its class (see ``written_keys``)."""
    statuses = [b"pending", b"paid", b"packed", b"shipped", b"delivered"]
    orders = DemoNames.prefixed(SHARED_PREFIX).orders
    made = 0
    with (
        written_keys(redis_url, orders, cluster=cluster),
        ObjectStore.from_url(redis_url, cluster=cluster) as store,
    ):
        store.upsert(orders, 0, 1001, {42: statuses[0]})
        store.set_triggers(orders, 0, 1001, DemoNames().order_triggers())
        echo(f"writer: updating {orders}/0/1001 every {interval:g}s")
        while count is None or made < count:
            made += 1
            status = statuses[made % len(statuses)]
            result = store.update(orders, 0, 1001, {42: status})
            echo(
                f"writer: status = {status.decode()} (version {result.version}, "
                f"{result.events} event(s) queued)"
            )
            time.sleep(interval)
    return made
