"""Writes sent together (store.batch(), the wrapper's pipelines) give, write by write, the
results, errors and events the same writes give one at a time, in one script call per run
of writes of one partition."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.exceptions import ResponseError

from oprc_redis_events import (
    AsyncEventedRedis,
    AsyncObjectStore,
    CorruptedStateError,
    EventedRedis,
    ObjectNotFoundError,
    ObjectStore,
    OprcEventsError,
    Settings,
)
from oprc_redis_events.client.batch_core import MAX_WRITES_PER_CALL, batch_replies, groups
from oprc_redis_events.client.core import ObjectRef, build_write
from oprc_redis_events.protocol.keys import PartitionKeys

from .helpers import watch_all

#: one sequence of writes, as (method, args after cls): run in a batch and one at a time
WRITES: list[tuple[str, tuple[Any, ...]]] = [
    ("create", (0, 1, {1: b"a", "s": "x"})),
    ("update", (0, 1, {1: b"b"})),
    ("update", (0, 2, {1: b"b"})),  # missing: ObjectNotFoundError, the rest still runs
    ("upsert", (0, 2, {1: b"c", 2: b"d"})),
    ("create", (0, 1, {1: b"a"})),  # exists: ObjectExistsError
    ("replace", (0, 1, {2: b"e"})),
    ("delete_fields", (0, 2, [1, 7])),
    ("set_field", (1, 5, "s", b"other partition")),
    ("update", (0, 1, {2: b"e"})),  # unchanged: no event, no new version
    ("delete_field", (0, 1, 2)),
    ("delete", (0, 2)),
    ("delete", (0, 9)),
]


def _entries(client: redis.Redis, cls: str, pid: int) -> list[dict[bytes, bytes]]:
    out = []
    for _, fields in client.xrange(PartitionKeys.of(cls, pid).outbox):  # type: ignore[union-attr]
        out.append({k: v for k, v in fields.items() if k not in (b"ts", b"o")})
    return out


def _same(result: Any) -> Any:
    """A result without what differs between two classes (entry ids)."""
    if isinstance(result, Exception):
        return type(result), str(result).replace("single/", "batched/")
    if isinstance(result, bool):
        return result
    return result.version, result.entry_id is None, result.events, result.existed, result.created


def _one_by_one(store: ObjectStore, cls: str) -> list[Any]:
    out: list[Any] = []
    for method, args in WRITES:
        kwargs = {"event": watch_all([1, 2, "s"])} if method == "create" else {}
        try:
            out.append(getattr(store, method)(cls, *args, **kwargs))
        except OprcEventsError as err:
            out.append(err)
    return out


def test_a_batch_gives_what_the_writes_give_one_at_a_time(
    store: ObjectStore, client: redis.Redis
) -> None:
    single = _one_by_one(store, "single")
    batch = store.batch()
    for method, args in WRITES:
        kwargs = {"event": watch_all([1, 2, "s"])} if method == "create" else {}
        getattr(batch, method)("batched", *args, **kwargs)
    assert len(batch) == len(WRITES)
    client.config_resetstat()
    results = batch.execute(raise_on_error=False)
    assert [_same(r) for r in results] == [_same(r) for r in single]
    assert isinstance(results[2], ObjectNotFoundError)
    # runs of one partition: [0..6], [7] (partition 1), [8..11]
    assert client.info("commandstats")["cmdstat_evalsha"]["calls"] == 3
    for pid in (0, 1):
        assert _entries(client, "batched", pid) == _entries(client, "single", pid)
    for oid in (1, 2, 5):
        a, b = (
            store.get("single", (oid % 5 and 0) or 1, oid),
            store.get("batched", (oid % 5 and 0) or 1, oid),
        )
        assert (a and (a.entries, a.version)) == (b and (b.entries, b.version))
    assert b"batched:0" in client.smembers("oprc:partitions")  # type: ignore[operator]


def test_a_batch_raises_its_first_error_after_sending_every_write(
    store: ObjectStore, client: redis.Redis
) -> None:
    store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1]))
    client.set("oprc:{orders:0}:meta:2", "not a hash")
    refused = pytest.raises(CorruptedStateError, match="meta:2 is a string, not a hash")
    with refused, store.batch() as batch:
        batch.update("orders", 0, 1, {1: b"b"})
        batch.upsert("orders", 0, 2, {1: b"x"})  # refused, alone
        batch.update("orders", 0, 1, {1: b"c"})
    assert store.get("orders", 0, 1).version == 3  # type: ignore[union-attr]
    assert client.get("oprc:{orders:0}:meta:2") == b"not a hash"
    assert client.xlen("oprc:{orders:0}:outbox") == 3  # the CREATE, two UPDATEs


def test_an_async_batch(redis_url: str, client: redis.Redis) -> None:
    async def run() -> list[Any]:
        store = AsyncObjectStore(redis.asyncio.Redis.from_url(redis_url), Settings.from_env({}))
        async with store:
            async with store.batch() as batch:
                batch.create("orders", 0, 1, {1: b"a"}, event=watch_all([1]))
                batch.update("orders", 0, 1, {1: b"b"})
                batch.delete("orders", 0, 1)
            return batch.results

    created, updated, deleted = asyncio.run(run())
    assert (created.version, updated.version, updated.events, deleted) == (1, 2, 1, True)  # type: ignore[union-attr]
    assert client.xlen("oprc:{orders:0}:outbox") == 3


def _commands(
    obj: Callable[[str], str], oid: str
) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    """A run of writes to object ``oid``, one refused (object 2's meta is broken), a read."""
    return [
        ("hset", (obj(oid), "1", "a"), {}),
        ("hset", (obj(oid),), {"mapping": {"1": "b", "2": "c"}}),
        ("hset", (obj("2"), "1", "x"), {}),
        ("hsetnx", (obj(oid), "1", "z"), {}),
        ("hdel", (obj(oid), "2", "9"), {}),
        ("get", ("plain",), {}),
        ("hset", (obj(oid), "3", "d"), {}),
        ("delete", (obj(oid),), {}),
        ("hincrby", (obj(oid), "n", 2), {}),
    ]


@pytest.mark.parametrize("transaction", [False, True])
def test_a_pipeline_answers_and_fires_as_its_commands_one_at_a_time(
    client: redis.Redis, store: ObjectStore, transaction: bool
) -> None:
    obj = PartitionKeys.of("orders", 0).obj
    store.create("orders", 0, 1, {}, event=watch_all([1, 2, 3, "n"]))
    store.create("orders", 0, 3, {}, event=watch_all([1, 2, 3, "n"]))
    client.set("oprc:{orders:0}:meta:2", "not a hash")
    wrapped = EventedRedis(client)
    one_by_one: list[Any] = []
    for name, args, kw in _commands(obj, "3"):
        try:
            one_by_one.append(getattr(wrapped, name)(*args, **kw))
        except ResponseError as err:
            one_by_one.append(err)
    alone = _entries(client, "orders", 0)
    client.delete("oprc:{orders:0}:outbox")
    client.config_resetstat()
    pipe = wrapped.pipeline(transaction=transaction)
    for name, args, kw in _commands(obj, "1"):
        getattr(pipe, name)(*args, **kw)
    assert len(pipe) == 9
    results = pipe.execute(raise_on_error=False)
    assert [str(r) if isinstance(r, Exception) else r for r in results] == [
        str(r) if isinstance(r, Exception) else r for r in one_by_one
    ]
    assert isinstance(results[2], ResponseError)
    assert _entries(client, "orders", 0) == alone
    # one script call per run of writes of one partition: [hset hset hset hsetnx hdel]
    # [get] [hset del] [hincrby]
    assert client.info("commandstats")["cmdstat_evalsha"]["calls"] == 3
    pipe.hset(obj("1"), "1", "q")
    pipe.hset(obj("2"), "1", "q")
    with pytest.raises(ResponseError, match="meta:2 is a string"):
        pipe.execute()


def _writes_only(pipe: Any, obj: Callable[[str], str], round_: int) -> None:
    """Writes only, over two partitions: a run of two, one of the other, one refused."""
    pipe.hset(obj("1"), "1", f"a{round_}")
    pipe.hset(obj("1"), mapping={"2": f"b{round_}", "3": "c"})
    pipe.hset(PartitionKeys.of("orders", 1).obj("5"), "1", f"d{round_}")
    pipe.hset(obj("2"), "1", "refused: meta:2 is a string")


@pytest.mark.parametrize("is_async", [False, True])
def test_a_pipeline_of_writes_only_goes_out_in_one_buffer(
    redis_url: str, client: redis.Redis, is_async: bool
) -> None:
    """Off redis-py's pipeline (no SCRIPT EXISTS first), answering as that pipeline would:
    results in place, the first error raised after all were sent, annotated with the
    command's name and key; scripts flushed meanwhile are loaded again; a transaction
    keeps redis-py's pipeline."""
    obj = PartitionKeys.of("orders", 0).obj
    client.set("oprc:{orders:0}:meta:2", "not a hash")

    async def rounds(wrapped: Any) -> list[Any]:
        out: list[Any] = []
        for round_, transaction in enumerate((False, False, False, True)):
            if round_ == 2:
                client.script_flush()
            client.config_resetstat()
            pipe = wrapped.pipeline(transaction=transaction)
            _writes_only(pipe, obj, round_)
            results = pipe.execute(raise_on_error=False)
            results = await results if is_async else results
            stats = client.info("commandstats")
            out.append((results, "cmdstat_script|exists" in stats, len(pipe)))
            _writes_only(pipe, obj, round_)
            direct = not transaction  # redis-py names the EVALSHA it sent
            named = r"Command # 4 \(HSET .*" if direct else r"Command # \d \(EVALSHA .*"
            with pytest.raises(ResponseError, match=named + "meta:2 is a string"):
                await pipe.execute() if is_async else pipe.execute()
            pipe.hset(obj("1"), "1", f"a{round_}")  # usable again after a failed execute
            again = pipe.execute()
            assert (await again if is_async else again) == [0]
        return out

    async def on_asyncio() -> list[Any]:
        async with redis.asyncio.Redis.from_url(redis_url) as aclient:
            return await rounds(AsyncEventedRedis(aclient))

    out = asyncio.run(on_asyncio() if is_async else rounds(EventedRedis(client)))
    # the first round registers the partitions (SADD: redis-py's pipeline); then directly
    # until the transaction
    assert [asked for _, asked, _ in out] == [True, False, False, True]
    for round_, (results, _, left) in enumerate(out):
        assert results[:3] == ([1, 2, 1] if round_ == 0 else [0, 0, 0])
        assert isinstance(results[3], ResponseError)
        assert left == 0  # reset after execute, as redis-py's pipeline is
    assert client.hgetall(obj("1")) == {b"1": b"a3", b"2": b"b3", b"3": b"c"}


def test_a_direct_pipeline_names_every_command_and_registers_what_it_sent(
    redis_url: str, client: redis.Redis
) -> None:
    """An increment refused in a pipeline of writes only is named as queued; a partition
    whose registration was queued in a pipeline dropped unsent is registered later."""
    wrapped = EventedRedis(client)
    obj = PartitionKeys.of("orders", 0).obj
    wrapped.hset(obj("1"), "n", "not a number")
    warm = wrapped.pipeline(transaction=False)
    warm.hset(obj("1"), "a", "1")
    warm.execute()  # the partition registered: what follows goes out directly
    pipe = wrapped.pipeline(transaction=False)
    pipe.hset(obj("1"), "a", "2")
    pipe.hincrby(obj("1"), "n", 1)
    with pytest.raises(ResponseError, match=r"Command # 2 \(HINCRBY oprc:\{orders:0\}:obj:1\)"):
        pipe.execute()
    fresh = PartitionKeys.of("orders", 7)
    dropped = wrapped.pipeline(transaction=False)
    dropped.hset(fresh.obj("1"), "a", "1")
    dropped.reset()  # its SADD never went out
    assert not client.sismember("oprc:partitions", fresh.member)
    again = wrapped.pipeline(transaction=False)
    again.hset(fresh.obj("1"), "a", "1")
    assert again.execute() == [1]
    assert client.sismember("oprc:partitions", fresh.member)


@pytest.mark.quick
def test_a_sync_pipeline_of_an_asyncio_client_is_not_sent_directly() -> None:
    """redis.asyncio's json().pipeline() gives a sync pipeline on the asyncio pool: its
    calls cannot be awaited, so they are left to it (which refuses them before writing)."""
    from oprc_redis_events.lua.direct import pipeline_calls
    from oprc_redis_events.lua.loader import register

    aclient = redis.asyncio.Redis()  # never connected
    script = register(aclient, "write")
    pipe: Any = aclient.json().pipeline(transaction=False)
    pipe.execute_command("EVALSHA", script.sha, 1, "k", "a")
    assert pipeline_calls(pipe, script) is None
    apipe: Any = aclient.pipeline(transaction=False)
    apipe.execute_command("EVALSHA", script.sha, 1, "k", "a")
    assert pipeline_calls(apipe, script) == [(("k",), ("a",))]


@pytest.mark.quick
def test_groups_cut_runs_of_one_partition() -> None:
    def call(cls: str, mode: str = "upsert") -> Any:
        return build_write(
            ObjectRef.of(cls, 0, 1), mode, entries={1: b"x"} if mode != "delete" else None
        )

    calls = [call("a"), call("a"), call("b"), None, call("b"), call("b", "incr"), call("b")]
    calls[5] = build_write(ObjectRef.of("b", 0, 1), "incr", entries={1: 1})
    assert groups(calls) == [[0, 1], [2], [3], [4], [5], [6]]
    many = [call("a")] * (MAX_WRITES_PER_CALL + 1)
    assert [len(g) for g in groups(many)] == [MAX_WRITES_PER_CALL, 1]


@pytest.mark.quick
def test_batch_replies_split_refusals_and_whole_errors() -> None:
    ok = [0, 1, b"", 0, 1, 0, b"", 0]
    got = batch_replies([ok, [-1, b"CORRUPT broken"]], 2)
    assert got[0] == ok and isinstance(got[1], ResponseError) and str(got[1]) == "CORRUPT broken"
    whole = ResponseError("NOSCRIPT")
    assert batch_replies(whole, 3) == [whole] * 3
    assert all(isinstance(r, ResponseError) for r in batch_replies([ok], 2))


def test_a_batch_on_a_cluster(cluster_url: str) -> None:
    store = ObjectStore.from_url(cluster_url, cluster=True)
    try:
        batch = store.batch()
        for pid in range(6):
            batch.create("orders", pid, 1, {1: b"a"}, event=watch_all([1]))
            batch.update("orders", pid, 1, {1: b"b"})
        batch.update("orders", 0, 2, {1: b"b"})
        batch.delete("orders", 5, 1)
        results: list[Any] = batch.execute(raise_on_error=False)
        assert [r.version for r in results[:12]] == [1, 2] * 6
        assert isinstance(results[12], ObjectNotFoundError) and results[13] is True
        assert {p.partition_id for p in store.partitions()} == set(range(6))
        assert store.get("orders", 3, 1).entries == {1: b"b"}  # type: ignore[union-attr]
    finally:
        store.close()


def test_a_cluster_batch_cut_short_after_a_call_was_applied_is_of_unknown_outcome(
    redis_url: str, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a cluster the runs go one call at a time: a call without a reply after another
    was applied cannot be 'nothing sent' (RedisUnavailableError); the applied partitions
    are registered as single writes register them."""
    from oprc_redis_events.client.sync_generated import batch as module
    from oprc_redis_events.errors import WriteOutcomeUnknownError

    calls = 0
    real_one = module.WriteBatch._one

    def one(script: Any, run: Any, target: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")
        return real_one(script, run, target)

    monkeypatch.setattr(module, "is_cluster", lambda _client: True)
    monkeypatch.setattr(module.WriteBatch, "_one", staticmethod(one))
    store = ObjectStore.from_url(redis_url)
    try:
        with pytest.raises(WriteOutcomeUnknownError, match="1 were applied"), store.batch() as b:
            b.create("c", 0, 1, {1: b"a"}, event=watch_all([1]))
            b.create("c", 1, 1, {1: b"a"}, event=watch_all([1]))
    finally:
        store.close()
    assert client.hget(PartitionKeys.of("c", 0).obj(1), "1") == b"a"
    assert client.smembers("oprc:partitions") == {b"c:0"}
