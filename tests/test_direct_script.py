"""Script calls sent directly on a connection of the client's pool (lua/direct.py): on
plain clients only, NOSCRIPT recovered, a write sent once, a cancelled call never leaving its
reply for the next one."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
import redis
import redis.asyncio as aredis
from redis.commands.core import AsyncScript, Script

from oprc_redis_events import AsyncObjectStore, EventedRedis, ObjectStore, Settings
from oprc_redis_events.dev.servers import RedisServer
from oprc_redis_events.errors import RedisUnavailableError, WriteOutcomeUnknownError
from oprc_redis_events.lua.direct import AsyncDirectScript, DirectScript, direct_usable
from oprc_redis_events.lua.loader import register

from .helpers import watch_all


def test_only_plain_clients_send_directly(redis_url: str) -> None:
    plain = redis.Redis.from_url(redis_url)
    assert isinstance(register(plain, "write"), DirectScript)
    assert isinstance(register(aredis.Redis.from_url(redis_url), "write"), AsyncDirectScript)
    single = redis.Redis.from_url(redis_url, single_connection_client=True)
    latin = redis.Redis.from_url(redis_url, encoding="latin-1")
    for other in (single, latin, plain.pipeline()):
        assert not direct_usable(other)
        script = register(other, "write")
        assert isinstance(script, Script) and not isinstance(script, DirectScript)
    assert type(register(aredis.Redis.from_url(redis_url, encoding="latin-1"), "write")) is (
        AsyncScript
    )
    # an asyncio client's one connection is made on its first command: refused before it too
    one = aredis.Redis.from_url(redis_url, single_connection_client=True)
    assert type(register(one, "write")) is AsyncScript

    class Prefixing(redis.Redis):  # sends its commands its own way
        def execute_command(self, *args: Any, **options: Any) -> Any:
            return super().execute_command(*args, **options)

    assert not direct_usable(Prefixing.from_url(redis_url))
    for c in (plain, single, latin):
        c.close()


def test_scripts_flushed_between_calls_of_a_batch_are_loaded_again(redis_url: str) -> None:
    store = ObjectStore.from_url(redis_url)
    store.create("d", 0, 1, {1: b"a"}, event=watch_all([1]))
    store.create("d", 1, 1, {1: b"a"}, event=watch_all([1]))
    store.client.script_flush()
    with store.batch() as batch:
        for n, pid in enumerate((0, 1, 0)):  # three runs: three calls, all refused at first
            batch.update("d", pid, 1, {1: b"b%d" % n})
    assert [r.version for r in batch.results] == [2, 2, 3]  # type: ignore[union-attr]
    store.client.script_flush()
    assert store.update("d", 1, 1, {1: b"c"}).version == 3
    store.close()


#: keeps Redis busy for about 0.6 s (other clients' commands wait in their sockets)
BUSY = """
local function now() local t = redis.call('TIME') return t[1] * 1e6 + t[2] end
local start = now()
while now() - start < 600000 do end
return 1
"""


class KeptOnError(redis.Connection):
    """A connection that stays open when a read fails (as Sentinel's connections do)."""

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("disconnect_on_error", False)
        return super().read_response(*args, **kwargs)


@pytest.mark.parametrize("connection_class", [redis.Connection, KeptOnError])
def test_a_write_whose_reply_came_too_late_is_reported_and_applied_once(
    redis_url: str, redis_server: RedisServer, connection_class: type[redis.Connection]
) -> None:
    """redis-py (a client built with its default Retry) sends a command again when its
    reply is late, so a slow write would be applied twice; a direct write is sent once and
    says its outcome is unknown.  Its connection is dropped even where the connection class
    would keep it (the late reply must never be the next caller's), and the next write gets a
    fresh one."""
    pool = redis.ConnectionPool(
        port=redis_server.port, socket_timeout=0.3, connection_class=connection_class
    )
    client = redis.Redis(connection_pool=pool)
    store = ObjectStore(client, Settings.from_env({}, redis_url=redis_server.url))
    store.create("d", 0, 1, {1: b"a"}, event=watch_all([1]))
    other = redis.Redis(port=redis_server.port)
    busy = threading.Thread(target=other.eval, args=(BUSY, 0))
    busy.start()
    time.sleep(0.05)
    with pytest.raises(WriteOutcomeUnknownError, match="may or may not have been applied"):
        store.update("d", 0, 1, {1: b"b"})
    busy.join()
    assert store.update("d", 0, 1, {1: b"c"}).version == 3  # "b" applied once, then "c"
    assert client.xlen("oprc:{d:0}:outbox") == 3
    assert client.ping() is True and client.get("nokey") is None
    other.close()
    store.close()


def test_a_cancelled_async_write_leaves_no_reply_behind(redis_url: str) -> None:
    async def scenario() -> list[int]:
        store = AsyncObjectStore.from_url(redis_url)
        await store.create("d", 0, 1, {1: b"a"}, event=watch_all([1]))
        await store.create("d", 0, 2, {1: b"a"}, event=watch_all([1]))
        pauser = aredis.Redis.from_url(redis_url)
        await pauser.execute_command("CLIENT", "PAUSE", "300", "WRITE")
        task = asyncio.create_task(store.update("d", 0, 1, {1: b"b"}))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.3)
        # each later call reads its own reply: object 2's versions, not object 1's
        versions = [(await store.update("d", 0, 2, {1: b"x%d" % i})).version for i in range(3)]
        await pauser.aclose()
        await store.close()
        return versions

    assert asyncio.run(scenario()) == [2, 3, 4]


def test_threads_sharing_a_store_each_get_their_own_replies(redis_url: str) -> None:
    store = ObjectStore.from_url(redis_url)
    for oid in range(4):
        store.create("d", 0, oid, {1: b"0"})
    errors: list[BaseException] = []

    def writer(oid: int) -> None:
        try:
            for i in range(1, 51):
                assert store.update("d", 0, oid, {1: b"%d" % i}).version == i + 1
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(oid,)) for oid in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store.close()


def test_an_empty_batch_needs_no_connection() -> None:
    store = ObjectStore.from_url("redis://127.0.0.1:1/0")  # nothing listens there
    with store.batch() as batch:
        pass
    assert batch.results == []
    store.close()


def test_a_write_that_got_no_connection_was_not_sent(redis_url: str) -> None:
    pool = redis.BlockingConnectionPool.from_url(redis_url, max_connections=1, timeout=0.1)
    store = ObjectStore(redis.Redis(connection_pool=pool), Settings.from_env({}))
    store.create("d", 0, 1, {1: b"a"})
    held = pool.get_connection()
    with pytest.raises(RedisUnavailableError) as caught:
        store.update("d", 0, 1, {1: b"b"})
    assert not isinstance(caught.value, WriteOutcomeUnknownError), caught.value
    pool.release(held)
    assert store.update("d", 0, 1, {1: b"b"}).version == 2
    store.close()


def test_arguments_are_taken_as_redis_py_takes_them(redis_url: str) -> None:
    """The wrapper passes a user's arguments on to its scripts (EXPIRE of an object)."""
    r = EventedRedis(redis.Redis.from_url(redis_url))
    r.store.create("d", 0, 1, {1: b"a"})
    assert r.execute_command("EXPIRE", "oprc:{d:0}:obj:1", bytearray(b"10")) is True
    with pytest.raises(redis.DataError):
        r.execute_command("EXPIRE", "oprc:{d:0}:obj:1", None)
    r.close()
