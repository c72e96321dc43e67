"""The bench's Redis memory rows (``MEMORY USAGE``): what an object costs beyond its own
fields.

* ``memory_config_index``: every key of N objects with one trigger each (the object hash, its
  meta hash with the version and trigger configuration, any index) minus N plain hashes of the
  same fields, per object; the baseline is such a plain hash.
* ``memory_shadow``: the shadow keyspace capture keeps of each object (its partition marked as
  served by capture, as a ``--capture keyspace`` worker marks it), per object; the baseline is
  the plain hash again.
"""

from __future__ import annotations

from typing import Any

import redis

from ..client.sync_generated.store import ObjectStore
from ..config import Settings
from ..protocol.keys import PREFIX, PartitionKeys
from .bench import CLASSES, RAW, Result, Sizes, config, step

__all__ = ["memory_rows"]

FIELDS: dict[int | str, bytes | str] = {1: b"pending", 2: b"x" * 32, 3: b"1000"}


def _usage(client: redis.Redis, keys: list[Any]) -> int:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    return sum(v or 0 for v in pipe.execute())


def _keys(client: redis.Redis, pid: int, kind: str | None = None) -> list[bytes]:
    tag = PartitionKeys.of(CLASSES["memory"], pid).tag
    return list(client.scan_iter(match=f"{PREFIX}:{tag}:{kind or '*'}", count=1000))


def memory_rows(client: redis.Redis, sizes: Sizes) -> list[Result]:
    n = 50 if sizes.quick else 1000
    store, cls = ObjectStore(client, Settings.from_env({})), CLASSES["memory"]
    with step("memory_config_index, memory_shadow"):
        plain = [f"{RAW['write']}:m{i}" for i in range(n)]
        for key in plain:
            client.hset(key, mapping={str(k): v for k, v in FIELDS.items()})
        own = _usage(client, plain) / n
        client.delete(*plain)
        for oid in range(1, n + 1):
            store.create(cls, 0, oid, FIELDS, event=config())
        outbox = PartitionKeys.of(cls, 0).outbox.encode()
        ours = _usage(client, [k for k in _keys(client, 0) if k != outbox]) / n - own
        client.set(PartitionKeys.of(cls, 1).capture_flag, "1")
        for oid in range(1, n + 1):  # the shadow is written by a write while capture serves
            store.create(cls, 1, oid, FIELDS, event=config())
            store.update(cls, 1, oid, {1: b"paid"})
        shadow = _usage(client, _keys(client, 1, "shadow:*")) / n
    return [
        Result(
            "memory_config_index",
            "bytes/object",
            own,
            ours,
            f"a plain hash of the same {len(FIELDS)} fields",
            "every key of an object with one trigger, minus that plain hash",
            "lower",
            "small against the object",
        ),
        Result(
            "memory_shadow",
            "bytes/object",
            own,
            shadow,
            f"a plain hash of the same {len(FIELDS)} fields",
            "the shadow keyspace capture keeps of the object",
            "lower",
            "about the object's own size",
        ),
    ]
