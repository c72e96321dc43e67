"""Bad keys and field names: a clear OprcEventsError naming what was wrong, nothing written."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import redis

from oprc_redis_events import (
    EventedRedis,
    InvalidIdError,
    InvalidValueError,
    ObjectStore,
    OprcEventsError,
)

from .helpers import events, watch_all

KEY = "oprc:{orders:0}:obj:1"
CLI = [sys.executable, "-m", "oprc_redis_events.cli"]


@pytest.mark.parametrize(
    ("key", "named"),
    [
        ("oprc:{orders:x}:obj:1", "'x'"),
        ("oprc:{orders:01}:obj:1", "'01'"),
        ("oprc:{orders}:obj:1", "'orders'"),
        ("oprc:{orders:0}:obj:", "must not be empty"),
        ("oprc:{orders:0}:obj:a*b", "'a*b'"),
        ("oprc:{a b:0}:obj:1", "'a b'"),
    ],
)
def test_malformed_keys_in_the_object_namespace_are_refused(
    client: redis.Redis, key: str, named: str
) -> None:
    wrapped = EventedRedis(client)
    for write in (
        lambda: wrapped.hset(key, "f", "x"),
        lambda: wrapped.delete(key),
        lambda: wrapped.expire(key, 10),
        lambda: wrapped.set(key, "x"),
    ):
        with pytest.raises(InvalidIdError) as info:
            write()
        assert named in str(info.value)
        assert repr(key) in str(info.value)
    assert client.dbsize() == 0
    assert wrapped.hgetall(key) == {}  # reads pass through


def test_a_non_utf8_object_key_is_refused_not_rewritten(client: redis.Redis) -> None:
    wrapped = EventedRedis(client)
    for key in (b"oprc:{orders:0}:obj:\xff\xfe", b"oprc:{orders:0}:obj:\xfe\xff"):
        with pytest.raises(InvalidIdError, match="not valid UTF-8") as info:
            wrapped.hset(key, "f", "x")
        assert repr(key) in str(info.value)
    assert client.dbsize() == 0
    assert wrapped.hset(b"plain:\xff", "f", "x") == 1  # outside the namespace: any bytes


@pytest.mark.parametrize(
    ("field", "message"),
    [
        (b"\xff", "not valid UTF-8"),
        (True, "bool"),
        ([1], "list"),
        ("a b", "'a b'"),
        ("042", "leading zero"),
        ("4294967296", "above 4294967295"),
    ],
)
def test_bad_field_names_are_refused(client: redis.Redis, field: Any, message: str) -> None:
    wrapped = EventedRedis(client)
    attempts = [
        lambda: wrapped.hset(KEY, field, "x"),
        lambda: wrapped.hsetnx(KEY, field, "x"),
        lambda: wrapped.hincrby(KEY, field, 1),
        lambda: wrapped.hdel(KEY, field),
        lambda: wrapped.execute_command("HSET", KEY, field, "x"),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidIdError, match=message):
            attempt()
    assert client.dbsize() == 0


def test_bad_values_on_object_keys_are_oprc_errors(client: redis.Redis) -> None:
    wrapped = EventedRedis(client)
    for value in (None, True, {"a": 1}):
        with pytest.raises(InvalidValueError, match="'f'"):
            wrapped.hset(KEY, "f", value)
    with pytest.raises(InvalidValueError, match="HSET"):
        wrapped.execute_command("HSET", KEY, "f")
    with pytest.raises(OprcEventsError):
        wrapped.execute_command("HINCRBY", KEY, "f")
    assert client.dbsize() == 0


def test_all_digit_names_that_are_not_canonical_numbers_are_refused_everywhere(
    client: redis.Redis, store: ObjectStore, redis_url: str
) -> None:
    store.create("orders", 0, 1, {42: b"a"}, event=watch_all([42]))
    for field in ("042", "00", "4294967296"):
        with pytest.raises(InvalidIdError, match=repr(field)):
            store.update("orders", 0, 1, {field: b"x"})
        with pytest.raises(InvalidIdError, match=repr(field)):
            EventedRedis(client).hset(KEY, field, "x")
        out = subprocess.run(
            [*CLI, "put", "orders", "0", "1", f"{field}=x", "--redis-url", redis_url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode in (1, 2), out
        lines = (out.stdout + out.stderr).strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), lines
        assert repr(field) in lines[0]
    with pytest.raises(InvalidIdError, match="leading zero"):
        store.create("orders", 0, "007", {1: b"x"})
    assert client.hgetall(KEY) == {b"42": b"a"}
    assert events(client) == [("CREATE", "42", b"a")]
    EventedRedis(client).hset(KEY, "42", "b")  # the canonical spelling is the numeric key
    assert events(client)[-1] == ("UPDATE", "42", b"b")
    assert EventedRedis(client).hset(KEY, mapping={42: "c", 1.5: "x", b"name": 7}) == 2
    assert store.get("orders", 0, 1).entries == {42: b"c", "1.5": b"x", "name": b"7"}
