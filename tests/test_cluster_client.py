"""The writer's side on a 3-primary Redis Cluster: the stores, the wrapper and its
pipelines grouped per node (the shared session cluster: nothing here reshards)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.cluster
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oprc_redis_events import (
    AsyncEventedRedis,
    AsyncObjectStore,
    EventedRedis,
    ObjectStore,
    UnsupportedCommandError,
)
from oprc_redis_events.client.sync_generated import cluster_pipeline
from oprc_redis_events.dev.cluster import RedisCluster
from oprc_redis_events.protocol.keys import PartitionKeys

from .helpers import events, watch_all
from .test_events_model import OPS, Model, run


@pytest.fixture
def store(cluster_url: str) -> Iterator[ObjectStore]:
    s = ObjectStore.from_url(cluster_url, cluster=True)
    yield s
    s.close()


@pytest.fixture
def wrapped(cluster_url: str) -> Iterator[EventedRedis]:
    r = EventedRedis(redis.cluster.RedisCluster.from_url(cluster_url))
    yield r
    r.client.close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(OPS, min_size=1, max_size=10))
def test_events_equal_the_reference_model_on_the_cluster(
    store: ObjectStore, ops: list[tuple[str, Any]]
) -> None:
    client = store.client
    client.flushdb()  # every primary
    model = Model()
    for op, arg in ops:
        expected_error, expected = model.apply(op, arg)
        last = client.xrevrange("oprc:{orders:0}:outbox", count=1)
        after = last[0][0].decode() if last else "-"
        if expected_error is not None:
            with pytest.raises(expected_error):
                run(store, op, arg)
        else:
            run(store, op, arg)
        assert sorted(events(client, after=after), key=repr) == sorted(expected, key=repr)
        record = store.get("orders", 0, 1)
        assert (record is not None) == model.exists
        if record is not None:
            assert {str(k): v for k, v in record.entries.items()} == model.fields


def test_writes_over_64_partitions_land_on_all_three_primaries(
    store: ObjectStore, redis_cluster_server: RedisCluster
) -> None:
    for pid in range(64):
        store.create("orders", pid, 1, {1: b"a"}, event=watch_all([1]))
    per_node = {}
    for port in redis_cluster_server.primary_ports():
        with redis_cluster_server.client(port) as node:
            per_node[port] = set(node.scan_iter(match="oprc:{*}:outbox", _type="stream"))
    assert len(per_node) == 3 and all(per_node.values()), per_node
    assert sum(len(keys) for keys in per_node.values()) == 64
    assert len(store.partitions()) == 64
    with redis_cluster_server.client(redis_cluster_server.primary_ports()[0]) as node:
        assert node.execute_command("DBSIZE") > 0


def test_the_async_store_works_through_one_seed_node(cluster_url: str) -> None:
    async def main() -> None:
        async with AsyncObjectStore.from_url(cluster_url, cluster=True) as s:
            assert isinstance(s.client, redis.asyncio.RedisCluster)
            await s.create("orders", 7, 1, {1: b"a"}, event=watch_all([1]))
            assert (await s.update("orders", 7, 1, {1: b"b"})).events == 1
            record = await s.get("orders", 7, 1)
            assert record is not None and record.entries == {1: b"b"}
            assert await s.delete("orders", 7, 1)

    asyncio.run(main())


def _ops(r: Any, key: str, other: str) -> list[Any]:
    """The same commands on an object key (through the wrapper) or a plain hash key."""
    return [
        r.hset(key, mapping={"1": "a", "2": "b"}),
        r.hset(key, "1", "a"),
        r.hsetnx(key, "3", "c"),
        r.hsetnx(key, "3", "d"),
        r.hincrby(key, "4", 5),
        r.hincrbyfloat(key, "5", 1.5),
        r.hdel(key, "1", "9"),
        r.expire(key, 100),
        r.persist(key),
        r.delete(key, other),
        r.delete(key),
    ]


def test_the_wrapper_answers_as_redis_py_on_a_plain_hash(wrapped: EventedRedis) -> None:
    raw = wrapped.client
    raw.set("plain-other", "x")
    wrapped.set("other", "x")
    on_object = _ops(wrapped, "oprc:{orders:3}:obj:5", "other")
    on_hash = _ops(raw, "plain-hash", "plain-other")
    assert on_object == on_hash
    assert len(events(raw, "orders", 3)) == 0  # no triggers were set: nothing queued


def test_the_wrapper_refuses_as_on_one_redis(wrapped: EventedRedis) -> None:
    wrapped.hset("oprc:{orders:3}:obj:5", "1", "a")
    for call in (
        lambda: wrapped.rename("oprc:{orders:3}:obj:5", "oprc:{orders:3}:obj:6"),
        lambda: wrapped.copy("oprc:{orders:3}:obj:5", "oprc:{orders:3}:x"),
        lambda: wrapped.set("oprc:{orders:3}:obj:5", "x"),
        lambda: wrapped.hset("oprc:{orders:3}:meta:5", "v", "1"),
    ):
        with pytest.raises(UnsupportedCommandError):
            call()
    with pytest.raises(UnsupportedCommandError, match="transaction=False"):
        wrapped.pipeline(transaction=True)
    assert wrapped.hgetall("oprc:{orders:3}:obj:5") == {b"1": b"a"}


def _pipeline_ops(pipe: Any, keys: list[str]) -> None:
    for i, key in enumerate(keys):
        pipe.hset(key, mapping={"1": str(i), "2": "x"})
        pipe.hincrby(key, "3", i)
        pipe.hgetall(key)  # sees the writes queued before it
        pipe.hdel(key, "2")
    pipe.delete(keys[0])
    pipe.exists(keys[0])


def test_a_pipeline_is_sent_per_node_and_answers_as_redis_py(
    wrapped: EventedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[int] = []
    real = cluster_pipeline.send_to_node

    def counting(client: Any, node: Any, commands: Any) -> list[Any]:
        sent.append(len(commands))
        return real(client, node, commands)

    monkeypatch.setattr(cluster_pipeline, "send_to_node", counting)
    objects = [f"oprc:{{orders:{pid}}}:obj:1" for pid in range(30)]
    pipe = wrapped.pipeline()
    _pipeline_ops(pipe, objects)
    got = pipe.execute()
    assert len(sent) == 3  # one pipeline per primary, for 30 partitions

    raw_pipe = wrapped.client.pipeline()
    _pipeline_ops(raw_pipe, [f"plain:{{{pid}}}" for pid in range(30)])
    assert got == raw_pipe.execute()
    assert {p.partition_id for p in ObjectStore(wrapped.client).partitions()} == set(range(30))


def test_a_pipeline_retries_what_a_node_refused(
    wrapped: EventedRedis, redis_cluster_server: RedisCluster
) -> None:
    key = "oprc:{orders:1}:obj:1"
    wrapped.store.create("orders", 1, 1, {1: b"a"}, event=watch_all([1]))
    pipe = wrapped.pipeline()
    pipe.hset(key, "1", "b")
    assert pipe.execute() == [0]
    for port in redis_cluster_server.primary_ports():  # NOSCRIPT next time
        with redis_cluster_server.client(port) as node:
            node.script_flush()
    # MOVED: the client believes the slot lives on another primary
    manager = wrapped.client.nodes_manager
    slot = wrapped.client.keyslot(key)
    owner = manager.slots_cache[slot][0]
    stranger = next(n for n in wrapped.client.get_primaries() if n.name != owner.name)
    manager.slots_cache[slot] = [stranger]
    pipe.hset(key, "1", "c")
    pipe.hget(key, "1")
    pipe.hset(key, "1", "d")
    assert pipe.execute() == [0, b"c", 0]
    assert [e[2] for e in events(wrapped.client, "orders", 1)] == [b"a", b"b", b"c", b"d"]


def test_the_async_wrapper_and_its_pipeline(cluster_url: str) -> None:
    async def main() -> list[Any]:
        r = AsyncEventedRedis(redis.asyncio.RedisCluster.from_url(cluster_url))
        try:
            assert await r.hset("oprc:{orders:2}:obj:1", "1", "a") == 1
            pipe = r.pipeline()
            for pid in range(12):
                pipe.hset(f"oprc:{{orders:{pid}}}:obj:9", "1", "x")
                pipe.hget(f"oprc:{{orders:{pid}}}:obj:9", "1")
            pipe.delete("oprc:{orders:2}:obj:1", "oprc:{orders:3}:obj:9")
            return list(await pipe.execute())
        finally:
            await r.client.aclose()

    assert asyncio.run(main()) == [1, b"x"] * 12 + [2]
    assert PartitionKeys.of("orders", 0).member == "orders:0"
