"""What the bench owns in a Redis it is given, and the guard that keeps it to that.

The bench's keys are the keys of its classes (every partition of every class whose name starts
with ``oprc-bench-``: ``oprc:{oprc-bench-...:N}:...``), its plain keys ``oprc-bench:*`` and the
worker registry of its consumer groups ``oprc:workers:oprc-bench``.  :func:`owned_keys` refuses
to start when one of them exists, and at the end deletes exactly them and the bench classes'
members of ``oprc:partitions`` (never a flush).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import redis

from ..connect.redis_client import redis_client
from ..errors import OprcEventsError
from ..protocol.keys import PARTITIONS_KEY, PREFIX, workers_key
from .bench import GROUP

__all__ = ["CLASS_PREFIX", "PATTERNS", "bench_keys", "owned_keys"]

CLASS_PREFIX = "oprc-bench-"
#: SCAN patterns of the bench's keys (``{`` is not special in Redis' glob)
PATTERNS = (f"{PREFIX}:{{{CLASS_PREFIX}*", "oprc-bench:*")


def bench_keys(client: redis.Redis) -> list[bytes]:
    """Every key of the bench in ``client`` (on a cluster, on every primary)."""
    found: list[bytes] = []
    for pattern in PATTERNS:
        found += client.scan_iter(match=pattern, count=1000)
    if client.exists(workers_key(GROUP)):
        found.append(workers_key(GROUP).encode())
    return found


def _members(client: redis.Redis) -> set[bytes]:
    found: Any = client.sscan_iter(PARTITIONS_KEY, match=f"{CLASS_PREFIX}*", count=1000)
    return set(found)


@contextlib.contextmanager
def owned_keys(url: str, *, cluster: bool = False) -> Iterator[None]:
    """Refuse when a key of the bench exists; at the end delete exactly the bench's keys and
    the bench classes' registry members that were not there before."""
    client = redis_client(url, cluster=cluster)
    try:
        taken = bench_keys(client)
        if taken:
            shown = ", ".join(k.decode(errors="replace") for k in sorted(taken)[:3])
            raise OprcEventsError(
                f"this Redis already has keys of the bench's classes, consumer group or own "
                f"keys ({shown}{', ...' if len(taken) > 3 else ''}) and the bench touches "
                "nothing it did not create: delete them (e.g. with redis-cli) if they are a "
                "bench's leftovers"
            )
        registered = _members(client)
        try:
            yield
        finally:
            for key in bench_keys(client):
                client.unlink(key)
            new = _members(client) - registered
            if new:
                client.srem(PARTITIONS_KEY, *new)
    finally:
        client.close()
