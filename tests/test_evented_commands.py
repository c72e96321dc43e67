"""Every redis-py hash, key and JSON command on an object key is routed through the write
path, refused, or (when it only reads) passed through: a method redis-py adds fails
``test_every_method_is_classified`` until it is listed here."""

from __future__ import annotations

import asyncio
import inspect
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aredis
import redis.commands.core as core
from redis.commands.json import JSON, AsyncJSON
from redis.commands.json.commands import JSONCommands

from oprc_redis_events import (
    AsyncEventedRedis,
    EventedRedis,
    ObjectStore,
    Settings,
    UnsupportedCommandError,
)
from oprc_redis_events.dev.servers import RedisServer

from .helpers import watch_all

K = "oprc:{orders:0}:obj:1"
ROUTED, REFUSED, READ, LOCAL = "routed", "refused", "read", "local"
DELEGATES = "delegates"  # only calls other methods of the table
FAR = 4_000_000_000
ITEM_METHODS = {"__getitem__", "__setitem__", "__delitem__", "__contains__"}
JSON_FILE: list[Path] = []

Call = Callable[[Any], Any]
KEY_CASES: dict[str, tuple[str, Call]] = {
    "append": (REFUSED, lambda r: r.append(K, "x")),
    "bitcount": (READ, lambda r: r.bitcount(K)),
    "bitfield": (REFUSED, lambda r: r.bitfield(K).get("u8", 0).execute()),
    "bitfield_ro": (READ, lambda r: r.bitfield_ro(K, "u8", 0)),
    "bitop": (REFUSED, lambda r: r.bitop("AND", K, "a")),
    "bitpos": (READ, lambda r: r.bitpos(K, 1)),
    "copy": (REFUSED, lambda r: r.copy(K, "copy")),
    "decrby": (REFUSED, lambda r: r.decrby(K)),
    "decr": (REFUSED, lambda r: r.decr(K)),
    "delete": (ROUTED, lambda r: r.delete(K)),
    "__delitem__": (ROUTED, lambda r: r.__delitem__(K)),
    "delex": (REFUSED, lambda r: r.delex(K)),
    "dump": (READ, lambda r: r.dump(K)),
    "exists": (READ, lambda r: r.exists(K)),
    "__contains__": (READ, lambda r: r.__contains__(K)),
    "expire": (ROUTED, lambda r: r.expire(K, 100)),
    "expireat": (ROUTED, lambda r: r.expireat(K, FAR)),
    "expiretime": (READ, lambda r: r.expiretime(K)),
    "digest_local": (LOCAL, lambda r: r.digest_local("x")),
    "digest": (READ, lambda r: r.digest(K)),
    "get": (READ, lambda r: r.get(K)),
    "getdel": (REFUSED, lambda r: r.getdel(K)),
    "getex": (REFUSED, lambda r: r.getex(K, ex=5)),
    "__getitem__": (READ, lambda r: r.__getitem__(K)),
    "getbit": (READ, lambda r: r.getbit(K, 0)),
    "getrange": (READ, lambda r: r.getrange(K, 0, 1)),
    "getset": (REFUSED, lambda r: r.getset(K, "x")),
    "incrby": (REFUSED, lambda r: r.incrby(K)),
    "incr": (REFUSED, lambda r: r.incr(K)),
    "incrbyfloat": (REFUSED, lambda r: r.incrbyfloat(K)),
    "increx": (REFUSED, lambda r: r.increx(K, byint=1)),
    "keys": (READ, lambda r: r.keys("oprc:*")),
    "lmove": (REFUSED, lambda r: r.lmove(K, "list")),
    "blmove": (REFUSED, lambda r: r.blmove(K, "list", 0.01)),
    "lmovem": (REFUSED, lambda r: r.lmovem(K, "list")),
    "blmovem": (REFUSED, lambda r: r.blmovem(K, "list", 0.01)),
    "mget": (READ, lambda r: r.mget([K])),
    "mset": (REFUSED, lambda r: r.mset({"a": "1", K: "x"})),
    "msetex": (REFUSED, lambda r: r.msetex({"a": "1", K: "x"}, ex=5)),
    "msetnx": (REFUSED, lambda r: r.msetnx({K: "x"})),
    "move": (REFUSED, lambda r: r.move(K, 1)),
    "persist": (ROUTED, lambda r: r.persist(K)),
    "pexpire": (ROUTED, lambda r: r.pexpire(K, 100_000)),
    "pexpireat": (ROUTED, lambda r: r.pexpireat(K, FAR * 1000)),
    "pexpiretime": (READ, lambda r: r.pexpiretime(K)),
    "psetex": (REFUSED, lambda r: r.psetex(K, 1000, "x")),
    "pttl": (READ, lambda r: r.pttl(K)),
    "hrandfield": (READ, lambda r: r.hrandfield(K)),
    "randomkey": (READ, lambda r: r.randomkey()),
    "rename": (REFUSED, lambda r: r.rename(K, "elsewhere")),
    "renamenx": (REFUSED, lambda r: r.renamenx(K, "elsewhere")),
    "restore": (REFUSED, lambda r: r.restore(K, 0, b"x", replace=True)),
    "set": (REFUSED, lambda r: r.set(K, "x")),
    "__setitem__": (REFUSED, lambda r: r.__setitem__(K, "x")),
    "setbit": (REFUSED, lambda r: r.setbit(K, 0, 1)),
    "setex": (REFUSED, lambda r: r.setex(K, 10, "x")),
    "setnx": (REFUSED, lambda r: r.setnx(K, "x")),
    "setrange": (REFUSED, lambda r: r.setrange(K, 0, "x")),
    "stralgo": (READ, lambda r: r.stralgo("LCS", K, "b", specific_argument="keys")),
    "strlen": (READ, lambda r: r.strlen(K)),
    "substr": (READ, lambda r: r.substr(K, 0)),
    "touch": (READ, lambda r: r.touch(K)),
    "ttl": (READ, lambda r: r.ttl(K)),
    "type": (READ, lambda r: r.type(K)),
    "watch": (LOCAL, lambda r: r.watch(K)),  # outside a pipeline redis-py only warns
    "unwatch": (LOCAL, lambda r: r.unwatch()),
    "unlink": (ROUTED, lambda r: r.unlink(K)),
    "lcs": (READ, lambda r: r.lcs(K, "b")),
    # HashCommands
    "hdel": (ROUTED, lambda r: r.hdel(K, "1")),
    "hexists": (READ, lambda r: r.hexists(K, "1")),
    "hget": (READ, lambda r: r.hget(K, "1")),
    "hgetall": (READ, lambda r: r.hgetall(K)),
    "hgetdel": (REFUSED, lambda r: r.hgetdel(K, "1")),
    "hgetex": (REFUSED, lambda r: r.hgetex(K, "1", ex=5)),
    "hincrby": (ROUTED, lambda r: r.hincrby(K, "n", 2)),
    "hincrbyfloat": (ROUTED, lambda r: r.hincrbyfloat(K, "x", 1.5)),
    "hkeys": (READ, lambda r: r.hkeys(K)),
    "hlen": (READ, lambda r: r.hlen(K)),
    "hset": (ROUTED, lambda r: r.hset(K, "1", "b")),
    "hsetex": (REFUSED, lambda r: r.hsetex(K, "1", "b", ex=5)),
    "hsetnx": (ROUTED, lambda r: r.hsetnx(K, "2", "b")),
    "hmset": (ROUTED, lambda r: r.hmset(K, {"1": "b"})),
    "hmget": (READ, lambda r: r.hmget(K, ["1"])),
    "hvals": (READ, lambda r: r.hvals(K)),
    "hstrlen": (READ, lambda r: r.hstrlen(K, "1")),
    "hexpire": (REFUSED, lambda r: r.hexpire(K, 10, "1")),
    "hpexpire": (REFUSED, lambda r: r.hpexpire(K, 10_000, "1")),
    "hexpireat": (REFUSED, lambda r: r.hexpireat(K, FAR, "1")),
    "hpexpireat": (REFUSED, lambda r: r.hpexpireat(K, FAR * 1000, "1")),
    "hpersist": (REFUSED, lambda r: r.hpersist(K, "1")),
    "hexpiretime": (READ, lambda r: r.hexpiretime(K, "1")),
    "hpexpiretime": (READ, lambda r: r.hpexpiretime(K, "1")),
    "httl": (READ, lambda r: r.httl(K, "1")),
    "hpttl": (READ, lambda r: r.hpttl(K, "1")),
    "himport_prepare_internal": (READ, lambda r: r.himport_prepare_internal("fs", ["1"])),
    "himport_set": (REFUSED, lambda r: r.himport_set(K, "fs", ["b"])),
    "himport_discard_internal": (READ, lambda r: r.himport_discard_internal("fs")),
    "himport_discard_all_internal": (READ, lambda r: r.himport_discard_all_internal()),
}

JSON_CASES: dict[str, tuple[str, Call]] = {
    "arrappend": (REFUSED, lambda j: j.arrappend(K, "$", 1)),
    "arrindex": (READ, lambda j: j.arrindex(K, "$", 1)),
    "arrinsert": (REFUSED, lambda j: j.arrinsert(K, "$", 0, 1)),
    "arrlen": (READ, lambda j: j.arrlen(K)),
    "arrpop": (REFUSED, lambda j: j.arrpop(K)),
    "arrtrim": (REFUSED, lambda j: j.arrtrim(K, "$", 0, 1)),
    "type": (READ, lambda j: j.type(K)),
    "resp": (READ, lambda j: j.resp(K)),
    "objkeys": (READ, lambda j: j.objkeys(K)),
    "objlen": (READ, lambda j: j.objlen(K)),
    "numincrby": (REFUSED, lambda j: j.numincrby(K, "$", 1)),
    "nummultby": (REFUSED, lambda j: j.nummultby(K, "$", 2)),
    "clear": (REFUSED, lambda j: j.clear(K)),
    "delete": (REFUSED, lambda j: j.delete(K)),
    "forget": (REFUSED, lambda j: j.forget(K)),
    "get": (READ, lambda j: j.get(K)),
    "mget": (READ, lambda j: j.mget([K], "$")),
    "set": (REFUSED, lambda j: j.set(K, "$", {"a": 1})),
    "mset": (REFUSED, lambda j: j.mset([("a", "$", 1), (K, "$", 1)])),
    "merge": (REFUSED, lambda j: j.merge(K, "$", {"a": 1})),
    "set_file": (REFUSED, lambda j: j.set_file(K, "$", str(JSON_FILE[0]))),
    "set_path": (DELEGATES, lambda j: None),  # set_file on keys made of file names
    "strlen": (READ, lambda j: j.strlen(K)),
    "toggle": (REFUSED, lambda j: j.toggle(K, "$.a")),
    "strappend": (REFUSED, lambda j: j.strappend(K, "x")),
    "debug": (READ, lambda j: j.debug("MEMORY", K)),
    "jsonget": (READ, lambda j: j.jsonget(K)),
    "jsonmget": (READ, lambda j: j.jsonmget([K], "$")),
    "jsonset": (REFUSED, lambda j: j.jsonset(K, "$", {"a": 1})),
    "pipeline": (LOCAL, lambda j: j.pipeline()),
}


def methods(*classes: type) -> set[str]:
    """The public command methods (and item access) the classes define or inherit from
    redis-py's command mixins."""
    names: set[str] = set()
    for cls in classes:
        for klass in cls.__mro__:
            if not klass.__module__.startswith("redis.commands"):
                continue
            if klass.__name__ == "CommandsProtocol":
                continue
            for name, value in vars(klass).items():
                public = not name.startswith("_") or name in ITEM_METHODS
                if public and callable(value):
                    names.add(name)
    return names


def test_every_method_is_classified() -> None:
    key_classes = [core.HashCommands, core.BasicKeyCommands, core.AsyncBasicKeyCommands]
    key_classes += [getattr(core, "AsyncHashCommands", core.HashCommands)]
    assert methods(*key_classes) == set(KEY_CASES)
    assert methods(JSONCommands, JSON, AsyncJSON) == set(JSON_CASES)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    path = tmp_path_factory.mktemp("json") / "doc.json"
    path.write_text('{"a": 1}')
    JSON_FILE[:] = [path]
    with RedisServer() as s:
        yield s


def snapshot(raw: redis.Redis) -> tuple[Any, ...]:
    return (
        raw.hgetall(K),
        raw.hgetall("oprc:{orders:0}:meta:1"),
        raw.xlen("oprc:{orders:0}:outbox"),
        sorted(raw.keys()),
    )


class Spy:
    """Records the commands the wrapped client sends (a script sent directly, see
    lua/direct.py, as its EVALSHA)."""

    def __init__(self, client: Any, is_async: bool, scripts: tuple[Any, ...] = ()) -> None:
        self.sent: list[tuple[Any, ...]] = []
        self.scripts = [s for s in scripts if hasattr(s, "many")]
        for script in self.scripts:
            self._spy_direct(script, is_async)
        real = client.execute_command

        def record(*args: Any, **kwargs: Any) -> Any:
            self.sent.append(args)
            return real(*args, **kwargs)

        async def record_async(*args: Any, **kwargs: Any) -> Any:
            self.sent.append(args)
            return await real(*args, **kwargs)

        client.execute_command = record_async if is_async else record

    def _spy_direct(self, script: Any, is_async: bool) -> None:
        real = script.many

        def many(calls: Any) -> Any:
            self.sent += [("EVALSHA", script.sha) for _ in calls]
            return real(calls)

        async def many_async(calls: Any) -> Any:
            self.sent += [("EVALSHA", script.sha) for _ in calls]
            return await real(calls)

        script.many = many_async if is_async else many

    def stop(self, client: Any) -> None:
        del client.execute_command
        for script in self.scripts:
            del script.many

    def outcome(self, scripts: set[str]) -> str:
        if any(str(a[0]).upper() == "EVALSHA" and a[1] in scripts for a in self.sent):
            return ROUTED
        return READ if self.sent else LOCAL


class _Bound:
    """The wrapper (for the spy and its scripts) called through ``target`` (itself or
    its ``json()`` namespace)."""

    def __init__(self, wrapped: Any, target: Any) -> None:
        self.client = wrapped.client
        self.store = wrapped.store
        self._expire_script = wrapped._expire_script
        self.target = target

    def __call__(self, call: Call) -> Any:
        return call(self.target)


def run_case(wrapped: _Bound, call: Call, loop: asyncio.AbstractEventLoop | None = None) -> str:
    spy = Spy(wrapped.client, loop is not None, (wrapped.store._write, wrapped._expire_script))
    scripts = {wrapped.store._write.sha, wrapped._expire_script.sha}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # hmset is deprecated, some methods experimental
            result = wrapped(call)
            if inspect.isawaitable(result):
                assert loop is not None
                loop.run_until_complete(result)
    except UnsupportedCommandError as err:
        assert not spy.sent, spy.sent
        assert K in str(err)
        return REFUSED
    except (redis.RedisError, KeyError, TypeError, NotImplementedError):
        pass  # the server's answer (WRONGTYPE, unknown command...) or redis-py's own
    finally:
        spy.stop(wrapped.client)
    return spy.outcome(scripts)


@pytest.fixture
def raw(server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(server.url)
    client.flushall()
    store = ObjectStore(client, Settings.from_env({}))
    store.create("orders", 0, 1, {1: b"a", "n": b"1", "x": b"1"}, event=watch_all([1]))
    yield client
    client.close()


def _cases() -> list[Any]:
    keyed = [("key", name, KEY_CASES[name][1]) for name in sorted(KEY_CASES)]
    json_ = [("json", name, JSON_CASES[name][1]) for name in sorted(JSON_CASES)]
    return [pytest.param(*case, id=f"{case[0]}.{case[1]}") for case in keyed + json_]


def _expected(group: str, name: str) -> str:
    return (KEY_CASES if group == "key" else JSON_CASES)[name][0]


@pytest.mark.parametrize(("group", "name", "call"), _cases())
def test_sync_wrapper(raw: redis.Redis, group: str, name: str, call: Call) -> None:
    expected = _expected(group, name)
    if expected == DELEGATES:
        return
    wrapped = EventedRedis(redis.Redis(connection_pool=raw.connection_pool))
    target = wrapped.json() if group == "json" else wrapped
    before = snapshot(raw)
    assert run_case(_Bound(wrapped, target), call) == expected
    if expected != ROUTED:
        assert snapshot(raw) == before


@pytest.mark.parametrize(("group", "name", "call"), _cases())
def test_async_wrapper(
    raw: redis.Redis, server: RedisServer, group: str, name: str, call: Call
) -> None:
    expected = _expected(group, name)
    if expected == DELEGATES:
        return
    if name in ITEM_METHODS:
        expected = LOCAL  # the asyncio client does not support item access
    loop = asyncio.new_event_loop()
    client = aredis.Redis.from_url(server.url)
    try:
        wrapped = AsyncEventedRedis(client)
        if (group, name) == ("json", "pipeline"):  # a sync pipeline (redis-py): refused
            with pytest.raises(UnsupportedCommandError, match=r"pipe = r\.pipeline\(\)"):
                wrapped.json().pipeline()
            return
        target = wrapped.json() if group == "json" else wrapped
        before = snapshot(raw)
        assert run_case(_Bound(wrapped, target), call, loop) == expected
        if expected != ROUTED:
            assert snapshot(raw) == before
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()


def test_the_command_table_is_what_the_generator_makes(server: RedisServer) -> None:
    import importlib.util

    from oprc_redis_events.client import command_table

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("gen", root / "scripts" / "command_table.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    client = redis.Redis.from_url(server.url)
    version = str(client.info("server")["redis_version"])
    if f"Redis {version}" not in (command_table.__doc__ or ""):
        client.close()
        pytest.skip(f"the table was made from another Redis than {version}")
    text = gen._format(gen.render(version, gen.command_reply(client)))
    client.close()
    assert text == (root / "oprc_redis_events" / "client" / "command_table.py").read_text()
