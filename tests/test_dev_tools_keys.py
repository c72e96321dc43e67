"""The dev tools pointed at a user's Redis (bench --redis-url, demo --write-only) touch only
the keys they create, refuse to start over keys of theirs, and leave nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import redis

from oprc_redis_events import ObjectStore
from oprc_redis_events.dev import bench
from oprc_redis_events.dev.bench_run import ROWS
from oprc_redis_events.dev.cluster import RedisCluster
from oprc_redis_events.errors import OprcEventsError

from .helpers import watch_all

CLI = [sys.executable, "-m", "oprc_redis_events.cli"]
TINY = bench.Sizes(quick=True, rss_triggers=40)


def users_data(client: redis.Redis, store: ObjectStore) -> dict[bytes, object]:
    """An application's objects, outbox with a consumer group and pending entries, and a
    plain key; returns a dump of everything."""
    store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1]))
    store.update("orders", 0, 1, {1: b"b"})
    client.xgroup_create("oprc:{orders:0}:outbox", "oprc-events", id="0")
    client.set("plain:1", "mine")
    return dump(client)


def dump(client: redis.Redis) -> dict[bytes, object]:
    return {k: client.dump(k) for k in sorted(client.keys("*"))}


def test_bench_on_a_users_redis_keeps_to_its_own_keys(
    client: redis.Redis, store: ObjectStore, redis_url: str
) -> None:
    before = users_data(client, store)
    results = bench.run_benchmarks(redis_url, sizes=TINY)
    assert [r.name for r in results] == list(ROWS)
    assert dump(client) == before  # nothing of the user's read, changed or flushed; ours gone
    assert client.xpending("oprc:{orders:0}:outbox", "oprc-events")["pending"] == 0


def test_bench_refuses_a_redis_that_has_keys_of_its_own(
    client: redis.Redis, redis_url: str
) -> None:
    client.set(bench.RAW["write"], "left over")
    with pytest.raises(OprcEventsError, match="already has keys of the bench's"):
        bench.run_benchmarks(redis_url, sizes=TINY)
    assert client.get(bench.RAW["write"]) == b"left over"


def cluster_dump(cluster: RedisCluster) -> dict[bytes, object]:
    """Every key of every primary of ``cluster``, dumped (a set by its members: one that
    had members added and removed dumps differently)."""
    found: dict[bytes, object] = {}
    for port in cluster.primary_ports():
        with redis.Redis(port=port) as node:
            for k in node.keys("*"):
                found[k] = node.smembers(k) if node.type(k) == b"set" else node.dump(k)
    return dict(sorted(found.items()))


def test_bench_on_a_users_cluster_keeps_to_its_own_keys(
    cluster_url: str, redis_cluster_server: RedisCluster
) -> None:
    with ObjectStore.from_url(cluster_url, cluster=True) as store:
        for pid in range(6):  # the user's partitions, on every primary
            store.create("orders", pid, 1, {1: b"a"}, event=watch_all([1]))
            store.update("orders", pid, 1, {1: b"b"})
            store.client.xgroup_create(f"oprc:{{orders:{pid}}}:outbox", "oprc-events", id="0")
        store.client.set("plain:1", "mine")
    before = cluster_dump(redis_cluster_server)
    results = bench.run_benchmarks(cluster_url, cluster=True, sizes=TINY)
    assert [r.name for r in results] == list(ROWS)
    assert all(r.measured > 0 for r in results)
    assert cluster_dump(redis_cluster_server) == before  # nothing of the user's touched; ours gone
    with ObjectStore.from_url(cluster_url, cluster=True) as store:
        store.client.set(bench.RAW["write"], "left over")
        with pytest.raises(OprcEventsError, match="already has keys of the bench's"):
            bench.run_benchmarks(cluster_url, quick=True, cluster=True)
        assert store.client.get(bench.RAW["write"]) == b"left over"


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_the_demo_writer_cleans_up_when_stopped(
    client: redis.Redis, store: ObjectStore, redis_url: str, stop: signal.Signals
) -> None:
    before = users_data(client, store)
    writer = subprocess.Popen(
        [*CLI, "demo", "--write-only", "--redis-url", redis_url, "--interval", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not client.exists("oprc:{demo-orders:0}:obj:1001") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.exists("oprc:{demo-orders:0}:obj:1001")
        writer.send_signal(stop)
        _, err = writer.communicate(timeout=60)
    finally:
        if writer.poll() is None:
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait()
    assert "Traceback" not in err, err
    assert writer.returncode in (0, 130, 143), err
    assert dump(client) == before  # the writer's object, outbox and registry entry are gone
