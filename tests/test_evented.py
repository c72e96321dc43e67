"""The drop-in wrappers: same events as the typed API, same return values as redis-py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oprc_redis_events import (
    AsyncEventedRedis,
    AsyncObjectStore,
    EventedRedis,
    InvalidIdError,
    ObjectStore,
    Settings,
)
from oprc_redis_events.dev.servers import RedisServer

from .helpers import events, watch_all

KEY = "oprc:{orders:0}:obj:1"
PLAIN = "plain:1"
FIELDS = st.sampled_from(["1", "2", "a", "b"])
VALUES = st.sampled_from([b"x", b"y", "z", 7, 1.5])
COMMANDS = st.one_of(
    st.tuples(st.just("hset"), st.dictionaries(FIELDS, VALUES, min_size=1, max_size=3)),
    st.tuples(st.just("hsetnx"), st.tuples(FIELDS, VALUES)),
    st.tuples(st.just("hdel"), st.lists(FIELDS, min_size=1, max_size=3, unique=True)),
    st.tuples(st.just("delete"), st.none()),
    st.tuples(st.just("unlink"), st.none()),
    st.tuples(st.just("hincrby"), st.tuples(st.sampled_from(["n", "m"]), st.integers(-3, 3))),
    st.tuples(st.just("hincrbyfloat"), st.tuples(st.just("f"), st.sampled_from([0.5, -1.25]))),
)
WATCHED: list[int | str] = [1, 2, "a", "b", "n", "m", "f"]


class HashModel:
    """What the events should be: the plain hash before and after, diffed field by field."""

    def __init__(self) -> None:
        self.watched = True

    def expected(
        self, before: dict[bytes, bytes], after: dict[bytes, bytes], command: str
    ) -> list[tuple[str, str, bytes | None]]:
        if not self.watched:
            return []
        out: list[tuple[str, str, bytes | None]] = []
        for name, value in after.items():
            if name not in before:
                out.append(("CREATE", name.decode(), value))
            elif before[name] != value:
                out.append(("UPDATE", name.decode(), value))
        out += [("DELETE", n.decode(), None) for n in before if n not in after]
        if command in ("delete", "unlink"):
            self.watched = False  # the object's triggers went with it
        return out


def call(client: Any, key: str, command: str, arg: Any) -> Any:
    if command == "hset":
        return client.hset(key, mapping=arg)
    if command in ("hsetnx", "hincrby", "hincrbyfloat"):
        return getattr(client, command)(key, *arg)
    if command == "hdel":
        return client.hdel(key, *arg)
    return getattr(client, command)(key)


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer() as s:
        yield s


def reset(raw: redis.Redis, store: ObjectStore) -> None:
    raw.flushdb()
    store.create("orders", 0, 1, {}, event=watch_all(WATCHED))


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(COMMANDS, min_size=1, max_size=10))
def test_sync_wrapper_matches_redis_and_the_model(server: RedisServer, commands: list[Any]) -> None:
    raw = redis.Redis.from_url(server.url)
    store = ObjectStore(raw, Settings.from_env({}))
    wrapped = EventedRedis(raw, store.settings)
    reset(raw, store)
    model = HashModel()
    try:
        for command, arg in commands:
            before = raw.hgetall(KEY)
            last = raw.xrevrange("oprc:{orders:0}:outbox", count=1)
            after_id = last[0][0].decode() if last else "-"
            expected_result = _plain_result(raw, command, arg)
            assert call(wrapped, KEY, command, arg) == expected_result, (command, arg)
            after = raw.hgetall(KEY)
            assert after == raw.hgetall(PLAIN)
            got = events(raw, after=after_id)
            assert sorted(got, key=repr) == sorted(model.expected(before, after, command), key=repr)
    finally:
        raw.close()


def _plain_result(raw: redis.Redis, command: str, arg: Any) -> Any:
    try:
        return call(raw, PLAIN, command, arg)
    except redis.ResponseError as err:  # e.g. HINCRBY on a non-integer: same error expected
        return type(err)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(COMMANDS, min_size=1, max_size=10))
def test_async_wrapper_matches_redis_and_the_model(
    server: RedisServer, commands: list[Any]
) -> None:
    async def run() -> None:
        raw = aredis.Redis.from_url(server.url)
        sync_raw = redis.Redis.from_url(server.url)
        store = AsyncObjectStore(raw, Settings.from_env({}))
        wrapped = AsyncEventedRedis(raw)
        try:
            await raw.flushdb()
            await store.create("orders", 0, 1, {}, event=watch_all(WATCHED))
            model = HashModel()
            for command, arg in commands:
                before = await raw.hgetall(KEY)
                last = sync_raw.xrevrange("oprc:{orders:0}:outbox", count=1)
                after_id = last[0][0].decode() if last else "-"
                try:
                    expected_result: Any = await call(raw, PLAIN, command, arg)
                except redis.ResponseError as err:
                    expected_result = type(err)
                assert await call(wrapped, KEY, command, arg) == expected_result, (command, arg)
                after = await raw.hgetall(KEY)
                assert after == await raw.hgetall(PLAIN)
                got = events(sync_raw, after=after_id)
                expected = model.expected(before, after, command)
                assert sorted(got, key=repr) == sorted(expected, key=repr)
        finally:
            await raw.aclose()
            sync_raw.close()

    asyncio.run(run())


def test_pipeline_results_and_events(client: redis.Redis, store: ObjectStore) -> None:
    store.create("orders", 0, 1, {}, event=watch_all(WATCHED))
    wrapped = EventedRedis(client)
    for target in (wrapped, client):
        key = KEY if target is wrapped else PLAIN
        pipe = target.pipeline()
        pipe.hset(key, mapping={"1": "a", "2": "b"}).set("other", "v").hincrby(key, "n", 5)
        pipe.hdel(key, "2").get("other").delete(key, "other").hset(key, "1", "z")
        assert pipe.execute() == [2, True, 5, 1, b"v", 2, 1]
    assert events(client) == [
        ("CREATE", "1", b"a"),
        ("CREATE", "2", b"b"),
        ("CREATE", "n", b"5"),
        ("DELETE", "2", None),
        ("DELETE", "1", None),
        ("DELETE", "n", None),
    ]  # the last HSET re-created the object without triggers: no event
    assert client.hgetall(KEY) == {b"1": b"z"}


def test_other_commands_pass_through(client: redis.Redis) -> None:
    wrapped = EventedRedis(client)
    assert wrapped.set("k", "v") is True
    assert wrapped.get("k") == b"v"
    assert wrapped.hset("user:1", "name", "ann") == 1
    assert wrapped.hgetall("user:1") == {b"name": b"ann"}
    assert wrapped.delete("k", "user:1") == 2
    assert wrapped.hgetall("oprc:{orders:0}:meta:1") == {}  # reads of any key pass through
    assert wrapped.xadd("oprc:{orders:0}:outbox", {"x": "y"})  # a partition key, not an object's
    assert wrapped.hset("oprc:{orders:0}:objects", "x", "y") == 1  # not an object key


def test_bad_object_keys_and_fields_are_errors(client: redis.Redis) -> None:
    wrapped = EventedRedis(client)
    with pytest.raises(InvalidIdError, match="'a b'"):
        wrapped.hset("oprc:{orders:0}:obj:1", "a b", "x")
    with pytest.raises(InvalidIdError, match="object_id"):
        wrapped.hset("oprc:{orders:0}:obj:a*b", "f", "x")
    assert client.dbsize() == 0


def test_expire_family_takes_the_triggers_along_without_capture(
    client: redis.Redis, store: ObjectStore
) -> None:
    import datetime

    store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1]))
    wrapped = EventedRedis(client)
    assert wrapped.expire(KEY, datetime.timedelta(seconds=100)) is True
    assert 0 < client.ttl("oprc:{orders:0}:meta:1") <= 100  # the triggers expire with it
    assert wrapped.persist(KEY) is True
    assert client.ttl("oprc:{orders:0}:meta:1") == -1
    assert wrapped.expire("plain:1", 10) is False  # no such key, passed through
    pipe = wrapped.pipeline()
    pipe.pexpire(KEY, 100).set("x", "1")
    assert pipe.execute() == [True, True]
    time.sleep(0.4)
    assert not client.exists(KEY, "oprc:{orders:0}:meta:1")
    wrapped.hset(KEY, "1", "again")  # a new object: the old triggers are gone
    assert events(client) == [("CREATE", "1", b"a")]


def test_execute_command_and_hmset_are_routed_like_the_methods(
    client: redis.Redis, store: ObjectStore
) -> None:
    store.create("orders", 0, 1, {}, event=watch_all(WATCHED))
    wrapped = EventedRedis(client)
    calls: list[tuple[Any, ...]] = [
        ("HSET", "1", "a", "2", "b"),
        ("hset", "1", "c"),
        (b"HSETNX", "a", "x"),
        ("HINCRBY", "n", 3),
        ("HINCRBYFLOAT", "f", "0.5"),
        ("HDEL", "2", "zz"),
        ("EXPIRE", 100, "NX"),
        ("PERSIST",),
    ]
    for command, *args in calls:
        got = wrapped.execute_command(command, KEY, *args)
        assert got == client.execute_command(command, PLAIN, *args), command
        assert type(got) is type(client.execute_command(command, "other", *args)), command
    with pytest.warns(DeprecationWarning):
        assert wrapped.hmset(KEY, {"1": "d", "b": "e"}) is True
    assert wrapped.execute_command("HMSET", KEY, "1", "f") is True
    assert wrapped.execute_command("DEL", KEY, PLAIN, "nothing") == 2
    assert events(client) == [
        ("CREATE", "1", b"a"),
        ("CREATE", "2", b"b"),
        ("UPDATE", "1", b"c"),
        ("CREATE", "a", b"x"),
        ("CREATE", "n", b"3"),
        ("CREATE", "f", b"0.5"),
        ("DELETE", "2", None),
        ("UPDATE", "1", b"d"),
        ("CREATE", "b", b"e"),
        ("UPDATE", "1", b"f"),
        *[("DELETE", name, None) for name in ("1", "a", "n", "f", "b")],
    ]


def test_pipelines_route_refuse_and_watch_like_the_client(
    client: redis.Redis, store: ObjectStore
) -> None:
    from oprc_redis_events import UnsupportedCommandError

    store.create("orders", 0, 1, {}, event=watch_all(WATCHED))
    wrapped = EventedRedis(client)
    pipe = wrapped.pipeline()
    with pytest.raises(UnsupportedCommandError, match="RENAME"):
        pipe.rename(KEY, "elsewhere")
    with pytest.warns(DeprecationWarning):
        pipe.hmset(KEY, {"1": "a"})
    pipe.execute_command("HSET", KEY, "2", "b").hincrbyfloat(KEY, "f", 1.5).hlen(KEY)
    assert len(pipe) == 4
    assert pipe.execute() == [True, 1, 1.5, 3]

    def bump(p: Any) -> None:
        value = p.hget(KEY, "1")  # runs at once: the pipeline watches KEY
        p.multi()
        p.hset(KEY, "1", value + b"!")

    assert wrapped.transaction(bump, KEY) == [0]
    with wrapped.pipeline() as watching:
        watching.watch(KEY)
        assert watching.hset(KEY, "a", "1") == 1  # immediate mode: through the write path
        watching.multi()
        watching.hdel(KEY, "a").get("other")
        with pytest.raises(redis.WatchError):
            watching.execute()  # its own write changed the watched key, as in redis-py
    assert events(client)[-2:] == [("UPDATE", "1", b"a!"), ("CREATE", "a", b"1")]
    assert client.hgetall(KEY) == {b"1": b"a!", b"2": b"b", b"f": b"1.5", b"a": b"1"}


def test_json_namespace_and_its_pipeline_refuse_object_keys(client: redis.Redis) -> None:
    from oprc_redis_events import UnsupportedCommandError

    wrapped = EventedRedis(client)
    with pytest.raises(UnsupportedCommandError, match=r"JSON\.SET"):
        wrapped.json().set(KEY, "$", {"a": 1})
    pipe = wrapped.json().pipeline()
    with pytest.raises(UnsupportedCommandError, match=r"JSON\.MERGE"):
        pipe.merge(KEY, "$", {"a": 1})
    pipe.hset(KEY, "1", "a").hgetall(KEY)
    assert pipe.execute() == [1, {b"1": b"a"}]


def test_asyncio_json_pipeline_is_refused_before_anything_is_queued(
    server: RedisServer,
) -> None:
    """redis.asyncio's json().pipeline() is a sync pipeline on the asyncio pool (redis-py),
    which fails once sent: it is refused at once with the way that works; a json()
    namespace of the wrapper's own pipeline queues as any command."""
    from oprc_redis_events import UnsupportedCommandError

    async def run() -> None:
        raw = aredis.Redis.from_url(server.url)
        try:
            await raw.flushdb()
            wrapped = AsyncEventedRedis(raw)
            with pytest.raises(UnsupportedCommandError, match=r"pipe = r.pipeline\(\), then"):
                wrapped.json().pipeline()
            pipe = wrapped.pipeline(transaction=False)
            with pytest.raises(UnsupportedCommandError, match=r"JSON\.SET"):
                pipe.json().set(KEY, "$", {"a": 1})
            pipe.json().set("doc", "$", {"a": 1}).set("plain", "1")
            replies = await pipe.execute(raise_on_error=False)
            assert replies[1] is True  # (this redis-server has no JSON module)
            assert isinstance(replies[0], redis.ResponseError) and "JSON.SET" in str(replies[0])
        finally:
            await raw.aclose()

    asyncio.run(run())


def test_async_pipeline_and_execute_command(server: RedisServer) -> None:
    from oprc_redis_events import UnsupportedCommandError

    async def run() -> None:
        raw = aredis.Redis.from_url(server.url)
        try:
            await raw.flushdb()
            await AsyncObjectStore(raw).create("orders", 0, 1, {}, event=watch_all(WATCHED))
            wrapped = AsyncEventedRedis(raw)
            assert await wrapped.execute_command("HSET", KEY, "1", "a") == 1
            with pytest.raises(UnsupportedCommandError, match="COPY"):
                await wrapped.copy(KEY, "elsewhere")
            async with wrapped.pipeline() as pipe:
                with pytest.raises(UnsupportedCommandError, match="SET"):
                    pipe.set(KEY, "x")
                pipe.hincrby(KEY, "n", 2).execute_command("UNLINK", KEY).exists(KEY)
                assert await pipe.execute() == [2, 1, 0]
        finally:
            await raw.aclose()

    asyncio.run(run())
    sync_raw = redis.Redis.from_url(server.url)
    assert events(sync_raw) == [
        ("CREATE", "1", b"a"),
        ("CREATE", "n", b"2"),
        ("DELETE", "1", None),
        ("DELETE", "n", None),
    ]
    sync_raw.close()
