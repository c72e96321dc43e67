"""Writes to an object's keys that would bypass its events are refused in every key
position, for known and unknown commands; reads and values that merely name an object key
pass through."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import redis

from oprc_redis_events import EventedRedis, ObjectStore, UnsupportedCommandError

from .helpers import events, watch_all

K = "oprc:{orders:0}:obj:1"
META = "oprc:{orders:0}:meta:1"
SHADOW = "oprc:{orders:0}:shadow:1"
SHA = "a" * 40

SECOND_POSITIONS: dict[str, Callable[[Any], Any]] = {
    "RENAME": lambda r: r.rename("a", K),
    "RENAMENX": lambda r: r.renamenx("a", K),
    "COPY": lambda r: r.copy("a", K),
    "LMOVE": lambda r: r.lmove("a", K),
    "SMOVE": lambda r: r.smove("a", K, "m"),
    "SORT": lambda r: r.sort("a", by="w_*", store=K),
    "ZUNIONSTORE": lambda r: r.zunionstore("d", ["a", K]),
    "SINTERSTORE": lambda r: r.sinterstore(K, ["a"]),
    "BITOP": lambda r: r.bitop("OR", "d", "a", K),
    "GEORADIUS": lambda r: r.georadius("g", 0, 0, 1, store=K),
    "EVAL": lambda r: r.eval("return 1", 2, "a", K),
    "EVALSHA": lambda r: r.evalsha(SHA, 1, K),
    "FCALL": lambda r: r.fcall("f", 2, "a", K),
    "MIGRATE": lambda r: r.migrate("127.0.0.1", 1, ["a", K], 0, 100),
    "MSET": lambda r: r.mset({"a": "1", K: "2"}),
    "PFMERGE": lambda r: r.pfmerge("d", "a", K),
    "XGROUP CREATE": lambda r: r.xgroup_create(K, "g", mkstream=True),
}


@pytest.mark.parametrize("command", sorted(SECOND_POSITIONS))
def test_every_key_position_is_checked(
    client: redis.Redis, store: ObjectStore, command: str
) -> None:
    store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1]))
    client.rpush("a", "x")
    wrapped = EventedRedis(client)
    with pytest.raises(UnsupportedCommandError) as info:
        SECOND_POSITIONS[command](wrapped)
    message = str(info.value)
    assert message.startswith(f"{command} on object key {K!r} is not supported by EventedRedis")
    assert client.hgetall(K) == {b"1": b"a"}
    assert client.lrange("a", 0, -1) == [b"x"]


def test_messages_say_what_to_use_instead(client: redis.Redis) -> None:
    wrapped = EventedRedis(client)
    expected = {
        lambda: wrapped.rename(K, "b"): "ObjectStore.create",
        lambda: wrapped.copy(K, "b"): "ObjectStore.get",
        lambda: wrapped.execute_command("HSETEX", K, "FIELDS", 1, "f", "v"): "use hset",
        lambda: wrapped.execute_command("HGETDEL", K, "FIELDS", 1, "f"): "hmget, then",
        lambda: wrapped.hexpire(K, 5, "f"): "expire the whole object",
        lambda: wrapped.set(K, "x"): "hset, hdel, hincrby, delete or expire",
        lambda: wrapped.json().set(K, "$", 1): "write their fields with hset",
        lambda: wrapped.hset(META, "ev", "x"): "ObjectStore.set_triggers",
        lambda: wrapped.delete(SHADOW): "only the worker writes it",
    }
    for call, hint in expected.items():
        with pytest.raises(UnsupportedCommandError, match=re.escape(hint)):
            call()


def test_the_keys_of_an_object_are_protected_and_readable(
    client: redis.Redis, store: ObjectStore
) -> None:
    store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1]))
    before = (client.hgetall(META), client.exists(K))
    wrapped = EventedRedis(client)
    for write in (
        lambda: wrapped.hset(META, "v", "99"),
        lambda: wrapped.hdel(META, "ev"),
        lambda: wrapped.delete(META),
        lambda: wrapped.delete("plain", META),
        lambda: wrapped.expire(META, 1),
        lambda: wrapped.rename(META, "x"),
        lambda: wrapped.hset(SHADOW, "1", "x"),
        lambda: wrapped.execute_command("UNLINK", SHADOW),
    ):
        with pytest.raises(UnsupportedCommandError, match=r"object (meta|shadow) key"):
            write()
    assert (client.hgetall(META), client.exists(K)) == before
    assert wrapped.hget(META, "v") == b"1"  # reads pass through
    assert wrapped.type(SHADOW) == b"none"


def test_values_that_name_an_object_key_are_not_keys(client: redis.Redis) -> None:
    wrapped = EventedRedis(client)
    assert wrapped.sadd("index", K) == 1
    assert wrapped.set("pointer", K) is True
    assert wrapped.lpush("queue", K) == 1
    assert wrapped.hset("names", K, K) == 1
    assert wrapped.xadd("oprc:{orders:0}:outbox", {"o": K})
    assert wrapped.sort("queue", by="nosort", get="oprc:{orders:0}:obj:*->f") == [None]
    assert client.exists(K) == 0


def test_unknown_commands_naming_an_object_key_are_refused(client: redis.Redis) -> None:
    wrapped = EventedRedis(client)
    with pytest.raises(UnsupportedCommandError, match="not a command EventedRedis knows"):
        wrapped.execute_command("FOO.SET", K, "x")
    with pytest.raises(UnsupportedCommandError, match=re.escape("EventedRedis.client")):
        wrapped.execute_command("NEWCMD", "a", b"oprc:{orders:0}:obj:1")
    for args in [("FOO.SET", "a", "x"), ("FT.CREATE", "i", "PREFIX", 1, "oprc:{orders:0}:obj:")]:
        with pytest.raises(redis.ResponseError, match="unknown command"):
            wrapped.execute_command(*args)  # passed on: this server does not know them


def test_writes_that_name_no_object_key_and_reads_pass_through(client: redis.Redis) -> None:
    wrapped = EventedRedis(client)
    wrapped.hset(K, "1", "a")
    assert wrapped.execute_command("OBJECT ENCODING", K) == b"listpack"
    assert wrapped.execute_command("OBJECT", "ENCODING", K) == b"listpack"
    assert wrapped.set("x", 1) is True
    assert wrapped.rename("x", "y") is True
    assert wrapped.copy("y", "z") is True
    assert wrapped.execute_command("SORT_RO", "none") == []
    assert wrapped.eval("return redis.call('HGET', KEYS[1], '1')", 1, "none") is None
    assert wrapped.eval_ro("return redis.call('HGET', KEYS[1], '1')", 1, K) == b"a"
    assert events(client) == []  # created without triggers
    assert wrapped.flushdb() is True  # names no key: the whole database, as documented
    assert client.dbsize() == 0


SCRIPT_ARGV: dict[str, Callable[[Any], Any]] = {
    "EVAL": lambda r: r.eval("return redis.call('HSET', ARGV[1], '1', 'x')", 0, K),
    "EVALSHA": lambda r: r.evalsha(SHA, 1, "a", META),
    "FCALL": lambda r: r.fcall("f", 0, "x", SHADOW),
}


@pytest.mark.parametrize("command", sorted(SCRIPT_ARGV))
def test_a_script_given_an_object_key_as_an_argument_is_refused(
    client: redis.Redis, store: ObjectStore, command: str
) -> None:
    store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1]))
    wrapped = EventedRedis(client)
    with pytest.raises(UnsupportedCommandError, match=f"^{command} on object") as info:
        SCRIPT_ARGV[command](wrapped)
    assert "EVAL_RO" in str(info.value) or "not supported" in str(info.value)
    assert client.hgetall(K) == {b"1": b"a"}


def test_read_only_scripts_may_name_object_keys_anywhere(client: redis.Redis) -> None:
    wrapped = EventedRedis(client)
    wrapped.hset(K, "1", "a")
    assert wrapped.eval_ro("return redis.call('HGET', ARGV[1], '1')", 0, K) == b"a"
    assert wrapped.eval("return ARGV[1]", 0, "oprc:{orders:0}:outbox") == b"oprc:{orders:0}:outbox"
