"""The bench's cluster rows: the same workloads on one Redis and on a 3-primary cluster.

Each row's baseline is the workload on the private single ``redis-server``, its measured
figure the same workload on a private loopback cluster of 3 primaries (:class:`.RedisCluster`),
so the ratio is what the cluster adds on this machine.  The work is spread over
:data:`PER_NODE` partitions per primary (the same partition numbers on both):

=========================  ===================================================================
row                        workload
=========================  ===================================================================
cluster_write              ``store.update`` with a matching trigger, one per call, round robin
cluster_write_pipelined    ``EventedRedis`` pipelines of 100 ``hset`` (grouped per node)
cluster_dispatch           a burst worker delivering the partitions' queued outbox entries
=========================  ===================================================================

One client writes one call at a time, and the three primaries, the bench and its worker
share the machine's cores: on a small machine the ratio says little about a cluster of
real machines (the table prints the core count).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import redis
import redis.cluster

from ..client.sync_generated.store import ObjectStore
from ..client.sync_generated.wrapper import EventedRedis
from ..config import Settings
from ..connect.redis_client import redis_client
from ..protocol.keys import PartitionKeys
from ..worker.publisher import MemoryPublisher
from .bench import GROUP, Result, fill, rate
from .bench import config as _config
from .cluster import RedisCluster
from .demo import DemoWorker

__all__ = ["PER_NODE", "SPREAD", "cluster_rows", "spread_partitions"]

#: the cluster rows' classes, by workload
SPREAD = {
    "write": "oprc-bench-spread-write",
    "pipelined": "oprc-bench-spread-pipelined",
    "dispatch": "oprc-bench-spread-dispatch",
}
PER_NODE = 2  # partitions per primary


def spread_partitions(cluster: redis.cluster.RedisCluster, cls_id: str, per_node: int) -> list[int]:
    """``per_node`` partition numbers of ``cls_id`` on each primary of ``cluster``."""
    primaries = len(cluster.get_primaries())  # type: ignore[no-untyped-call]
    by_node: dict[str, list[int]] = defaultdict(list)
    for pid in range(16384):
        key = PartitionKeys.of(cls_id, pid).outbox
        node = cluster.get_node_from_key(key)  # type: ignore[no-untyped-call]
        if len(by_node[node.name]) < per_node:
            by_node[node.name].append(pid)
        if len(by_node) == primaries and all(len(p) == per_node for p in by_node.values()):
            break
    return sorted(pid for pids in by_node.values() for pid in pids)


def _write(client: redis.Redis, pids: list[int], n: int) -> float:
    store, cls = ObjectStore(client, Settings.from_env({})), SPREAD["write"]
    for pid in pids:
        store.create(cls, pid, 1, {1: b"0"}, event=_config())
    return rate(
        n,
        lambda: (
            [store.update(cls, pids[i % len(pids)], 1, {1: str(i).encode()}) for i in range(n)]
            and None
        ),
    )


def _pipelined(client: redis.Redis, pids: list[int], batches: int) -> float:
    cls = SPREAD["pipelined"]
    store = ObjectStore(client, Settings.from_env({}))
    for pid in pids:
        store.create(cls, pid, 1, {1: b"0"}, event=_config())
    objects = [PartitionKeys.of(cls, pid).obj("1") for pid in pids]
    wrapped = EventedRedis(client, Settings.from_env({}))  # not the user's environment

    def run() -> None:
        for b in range(batches):
            pipe = wrapped.pipeline(transaction=False)
            for i in range(100):
                pipe.hset(objects[i % len(objects)], "1", f"{b}-{i}")
            pipe.execute()

    return rate(batches * 100, run)


def _dispatch(client: redis.Redis, base: Settings, pids: list[int], n: int) -> float:
    """Queue ``n`` entries over the partitions' outboxes, then time a burst worker."""
    cls, store = SPREAD["dispatch"], ObjectStore(client, Settings.from_env({}))
    each = max(1, n // len(pids))
    for pid in pids:
        keys = PartitionKeys.of(cls, pid)
        store.create(cls, pid, 1, {1: b"0"}, event=_config())
        store.update(cls, pid, 1, {1: b"x" * 100})
        first: Any = client.xrange(keys.outbox, count=1)
        fill(client, keys.outbox, each - 1, first[0][1])
    worker = DemoWorker(
        base.replace(group=GROUP), [cls], partitions=pids, publisher=MemoryPublisher()
    )
    return rate(each * len(pids), lambda: asyncio.run(worker.run_async(burst=True)))


def _figures(url: str, pids: dict[str, list[int]], scale: int, *, cluster: bool) -> list[float]:
    client = redis_client(url, cluster=cluster)
    base = Settings.from_env({}, redis_url=url, cluster=cluster, ack_delay_ms=0)
    try:
        return [
            _write(client, pids["write"], 600 * scale),
            _pipelined(client, pids["pipelined"], 10 * scale),
            _dispatch(client, base, pids["dispatch"], 4000 * scale),
        ]
    finally:
        client.close()


def cluster_rows(single_url: str, *, quick: bool = False) -> list[Result]:
    """The cluster rows: a private 3-primary cluster is started (and stopped) here; the
    single Redis at ``single_url`` is the baseline (it holds nothing of these classes)."""
    scale = 1 if quick else 5
    with RedisCluster(primaries=3) as multi:
        seed = redis_client(multi.url, cluster=True)
        try:  # the partition numbers differ by class: the hash tag holds both
            pids = {w: spread_partitions(seed, c, PER_NODE) for w, c in SPREAD.items()}  # type: ignore[arg-type]
        finally:
            seed.close()
        one = _figures(single_url, pids, scale, cluster=False)
        three = _figures(multi.url, pids, scale, cluster=True)
    return [
        Result(name, unit, a, b, "on 1 Redis", f"{what}, {PER_NODE * 3} partitions, on 3 primaries")
        for (name, unit, what), a, b in zip(
            [
                ("cluster_write", "writes/s", "store.update + event"),
                ("cluster_write_pipelined", "writes/s", "EventedRedis hset x100"),
                ("cluster_dispatch", "entries/s", "worker burst"),
            ],
            one,
            three,
            strict=True,
        )
    ]
