"""``oprc-redis-events demo --write-only``: keep updating the demo order (compose's writer).

It writes the demo's own order, ``demo-orders/0/1001``, in the Redis (or Redis Cluster) it
is given, whose triggers target the demo's functions; when interrupted it deletes every key
of that class (:func:`.demo_names.written_keys`).

Ctrl-C and SIGTERM stop it between two writes, never inside one: an interrupt raised in the
middle of a Redis call could leave the connection pool's lock held, and the cleanup would
then wait for it forever.  A second one while a call hangs interrupts at once.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

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
        _stopped_between_writes() as stop,
        written_keys(redis_url, orders, cluster=cluster),
        ObjectStore.from_url(redis_url, cluster=cluster) as store,
    ):
        store.upsert(orders, 0, 1001, {42: statuses[0]})
        store.set_triggers(orders, 0, 1001, DemoNames().order_triggers())
        echo(f"writer: updating {orders}/0/1001 every {interval:g}s")
        while count is None or made < count:
            if stop.requested:
                raise KeyboardInterrupt
            made += 1
            status = statuses[made % len(statuses)]
            result = store.update(orders, 0, 1001, {42: status})
            echo(
                f"writer: status = {status.decode()} (version {result.version}, "
                f"{result.events} event(s) queued)"
            )
            time.sleep(interval)  # a signal's handler runs, then the sleep goes on
        if stop.requested:
            raise KeyboardInterrupt
    return made


@dataclass
class _Stop:
    requested: bool = False


@contextmanager
def _stopped_between_writes() -> Iterator[_Stop]:
    """A flag that SIGINT and SIGTERM set (a second one raises ``KeyboardInterrupt`` at
    once); the handlers before are put back at the end.  Off the main thread, where no
    handler can be set, it is never set.  (Only a plain flag: a handler runs between two
    bytecodes of the main thread, which may hold any lock, an Event's included.)"""
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum: int, frame: object) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = True

    before = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
