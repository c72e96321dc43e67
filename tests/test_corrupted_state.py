"""Corrupted state in Redis: a write is refused whole (nothing changes, byte for byte) and
reads raise CorruptedStateError naming the key, never a foreign error."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.asyncio
from click.testing import CliRunner

from oprc_redis_events import (
    AsyncObjectStore,
    EventedRedis,
    ObjectEvent,
    ObjectStore,
    Settings,
    TriggerTarget,
)
from oprc_redis_events.cli import main
from oprc_redis_events.errors import CorruptedStateError
from oprc_redis_events.lua.loader import register
from oprc_redis_events.protocol.switch import SWITCH_KEY

from .helpers import outbox, watch_all

OBJ, META = "oprc:{orders:0}:obj:1", "oprc:{orders:0}:meta:1"
OUTBOX, SHADOW, FLAG = (
    "oprc:{orders:0}:outbox",
    "oprc:{orders:0}:shadow:1",
    "oprc:{orders:0}:capture",
)
KEYS = [OBJ, META, OUTBOX, SHADOW, FLAG, "oprc:{orders:0}:obj:2", "oprc:{orders:0}:meta:2"]
MAX = "18446744073709551615"
TARGET = TriggerTarget(cls_id="svc", partition_id=0, fn_id="h")


def config() -> ObjectEvent:
    ev = watch_all([1, 2])
    ev.func_trigger["fn"].on_complete.append(TriggerTarget(cls_id="svc", partition_id=0, fn_id="g"))
    return ev


def content(client: redis.Redis, key: str) -> Any:
    kind = client.type(key).decode()
    if kind == "stream":
        return client.xrange(key), client.xinfo_stream(key)["last-generated-id"]
    read = {"hash": client.hgetall, "string": client.get, "set": client.smembers}
    return kind, read[kind](key) if kind in read else client.dump(key)


def snapshot(client: redis.Redis) -> dict[str, Any]:
    """Every key of the partition, byte for byte (not DUMP: a hash table's order may change
    on a read, while Redis rehashes it)."""
    return {key: content(client, key) for key in KEYS}


def full_outbox(client: redis.Redis) -> None:
    client.xadd(OUTBOX, {"x": "1"}, id=f"{MAX}-{MAX}")


CORRUPTIONS: dict[str, tuple[Callable[[redis.Redis], Any], str]] = {
    "outbox is a string": (
        lambda c: (c.delete(OUTBOX), c.set(OUTBOX, "x")),
        "oprc:{orders:0}:outbox is a string, not a stream: fix or delete it",
    ),
    "outbox at the largest id": (
        full_outbox,
        re.escape(f"oprc:{{orders:0}}:outbox has reached the largest stream id ({MAX}-{MAX})"),
    ),
    "last id deleted": (
        lambda c: (full_outbox(c), c.xtrim(OUTBOX, maxlen=0)),
        "has reached the largest stream id",
    ),
    "garbage version": (
        lambda c: c.hset(META, "v", "abc"),
        "field v \\(the version\\) of oprc:{orders:0}:meta:1 is 'abc', not a non-negative",
    ),
    "fractional version": (lambda c: c.hset(META, "v", "1.5"), "is '1.5', not a non-negative"),
    "version at its largest": (
        lambda c: c.hset(META, "v", "999999999999999"),
        "is 999999999999999, the largest version there is, and this write would take it past",
    ),
    "object is a string": (
        lambda c: (c.delete(OBJ), c.set(OBJ, "x")),
        "oprc:{orders:0}:obj:1 is a string, not a hash",
    ),
    "meta is a list": (
        lambda c: (c.delete(META), c.rpush(META, "x")),
        "oprc:{orders:0}:meta:1 is a list, not a hash",
    ),
    "shadow is a set": (
        lambda c: (c.set(FLAG, "1"), c.sadd(SHADOW, "x")),
        "oprc:{orders:0}:shadow:1 is a set, not a hash",
    ),
}

WRITES: dict[str, Callable[[ObjectStore], Any]] = {
    "update": lambda s: s.update("orders", 0, 1, {1: b"new"}),
    "upsert": lambda s: s.upsert("orders", 0, 1, {2: b"x"}),
    "replace": lambda s: s.replace("orders", 0, 1, {2: b"x"}),
    "delete_fields": lambda s: s.delete_fields("orders", 0, 1, [1]),
    "delete": lambda s: s.delete("orders", 0, 1),
    "function result": lambda s: s.report_function_result("orders", 0, 1, "fn", ok=True),
    "set_triggers": lambda s: s.set_triggers("orders", 0, 1, None),
    "add_trigger": lambda s: s.add_trigger("orders", 0, 1, "on_update", 1, TARGET),
}

NO_EVENTS = {"set_triggers", "add_trigger"}  # these never append to the outbox


@pytest.mark.parametrize("write", list(WRITES))
@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_a_write_on_corrupted_state_is_refused_whole(
    store: ObjectStore, client: redis.Redis, corruption: str, write: str
) -> None:
    store.create("orders", 0, 1, {1: b"a"}, event=config())
    store.update("orders", 0, 1, {1: b"b"})  # an outbox entry, and version 2
    corrupt, message = CORRUPTIONS[corruption]
    corrupt(client)
    before = snapshot(client)
    if "largest" in message and write in NO_EVENTS:  # no entry to add: the write is fine
        WRITES[write](store)
        return
    if corruption == "version at its largest" and write in {*NO_EVENTS, "function result"}:
        WRITES[write](store)  # it does not raise the version
        return
    if "version" in corruption and write == "delete":  # delete works whatever the version
        assert WRITES[write](store) is True
        assert client.exists(OBJ, META) == 0
        return
    with pytest.raises(CorruptedStateError, match=message):
        WRITES[write](store)
    assert snapshot(client) == before


def test_create_in_a_partition_with_a_broken_outbox_creates_nothing(
    store: ObjectStore, client: redis.Redis
) -> None:
    client.set(OUTBOX, "x")
    with pytest.raises(CorruptedStateError, match=r"refused, nothing was changed: .*outbox"):
        store.create("orders", 0, 2, {1: b"a"}, event=config())
    assert client.dbsize() == 1


def test_a_full_outbox_refuses_only_writes_that_queue_an_entry(
    store: ObjectStore, client: redis.Redis
) -> None:
    store.create("orders", 0, 1, {1: b"a", 3: b"c"}, event=config())
    client.xadd(OUTBOX, {"x": "1"}, id=f"{MAX}-{int(MAX) - 1}")  # room for one more entry
    assert store.update("orders", 0, 1, {3: b"no trigger"}).entry_id is None  # no entry needed
    assert store.update("orders", 0, 1, {1: b"b"}).entry_id == f"{MAX}-{MAX}"  # the last id
    before = snapshot(client)
    with pytest.raises(CorruptedStateError, match="largest stream id"):
        store.update("orders", 0, 1, {1: b"c"})
    assert snapshot(client) == before


def test_a_write_needing_two_entries_checks_room_for_both(
    store: ObjectStore, client: redis.Redis
) -> None:
    ev = ObjectEvent()
    for key in range(600):
        ev.data_trigger[key].on_create.append(TriggerTarget(cls_id="s", partition_id=0, fn_id="f"))
    store.create("orders", 0, 1, {}, event=ev)
    client.xadd(OUTBOX, {"x": "1"}, id=f"{MAX}-{int(MAX) - 1}")  # room for one entry only
    before = snapshot(client)
    with pytest.raises(CorruptedStateError, match="largest stream id"):
        store.update("orders", 0, 1, {k: b"v" for k in range(600)})  # 600 events: 2 entries
    assert snapshot(client) == before


def test_events_disabled_never_touch_the_outbox(redis_url: str, client: redis.Redis) -> None:
    client.set(OUTBOX, "x")
    off = Settings.from_env({"ODGM_EVENTS_ENABLED": "false"}, redis_url=redis_url)
    with ObjectStore(redis.Redis.from_url(redis_url), off) as store:
        store.create("orders", 0, 1, {1: b"a"}, event=config())
        assert store.update("orders", 0, 1, {1: b"b"}).version == 2


def test_increments_through_the_wrapper_are_refused_whole(
    store: ObjectStore, client: redis.Redis
) -> None:
    store.create("orders", 0, 1, {1: b"not a number", 2: b"5"}, event=config())
    wrapped = EventedRedis(client)
    before = snapshot(client)
    with pytest.raises(redis.ResponseError, match="not an integer"):
        wrapped.hincrby(OBJ, "1", 1)
    assert snapshot(client) == before
    full_outbox(client)
    before = snapshot(client)
    with pytest.raises(redis.ResponseError, match=r"CORRUPT .*largest stream id"):
        wrapped.hincrby(OBJ, "2", 1)  # field 2 has an on_update target: an entry is needed
    with pytest.raises(redis.ResponseError, match=r"CORRUPT .*largest stream id"):
        wrapped.hincrbyfloat(OBJ, "2", 1.5)
    assert snapshot(client) == before
    assert wrapped.hincrby(OBJ, "7", 1) == 1  # no trigger on field 7: nothing to queue


def test_capture_diff_is_refused_whole(store: ObjectStore, client: redis.Redis) -> None:
    store.create("orders", 0, 1, {1: b"a"}, event=config())
    script = register(client, "capture")
    keys = [OBJ, META, OUTBOX, SHADOW, SWITCH_KEY]
    assert script(keys=keys, args=["1", "keep", "1"]) == [0, 0, b""]  # the shadow is made
    client.hset(OBJ, "1", "changed behind the library's back")
    client.set(OUTBOX, "x")
    before = snapshot(client)
    with pytest.raises(redis.ResponseError, match=r"WRONGTYPE .*outbox is a string, not a str"):
        script(keys=keys, args=["1", "keep", "1"])
    assert snapshot(client) == before
    client.delete(OUTBOX)
    client.hset(META, "v", "x")
    with pytest.raises(redis.ResponseError, match="CORRUPT field v"):
        script(keys=keys, args=["1", "keep", "1"])
    assert client.hget(SHADOW, "1") == b"a"


READS: dict[str, tuple[Callable[[redis.Redis], Any], str]] = {
    "undecodable triggers": (
        lambda c: c.hset(META, "ev", b"\xff\xff\xff"),
        "field ev \\(the triggers\\) of oprc:{orders:0}:meta:1 is not a serialized ObjectEvent",
    ),
    "garbage version": (
        lambda c: c.hset(META, "v", "-3"),
        "field v \\(the version\\) of oprc:{orders:0}:meta:1 is b'-3', not a non-negative",
    ),
    "garbage value type": (
        lambda c: c.hset(META, "y:1", "crdt"),
        "field y:1 \\(a value type\\) of oprc:{orders:0}:meta:1 is b'crdt', not a ValType",
    ),
    "object is a string": (
        lambda c: (c.delete(OBJ), c.set(OBJ, "x")),
        "oprc:{orders:0}:obj:1 is a string, not a hash: fix or delete it",
    ),
    "meta is a zset": (
        lambda c: (c.delete(META), c.zadd(META, {"x": 1})),
        "oprc:{orders:0}:meta:1 is a zset, not a hash",
    ),
    "field name not UTF-8": (
        lambda c: c.hset(OBJ, b"\xff", "x"),
        "oprc:{orders:0}:obj:1 has a field b'\\\\xff' whose name is not UTF-8",
    ),
}


@pytest.mark.parametrize("corruption", list(READS))
def test_reads_of_corrupted_state_raise_corrupted_state_error(
    store: ObjectStore, client: redis.Redis, corruption: str
) -> None:
    store.create("orders", 0, 1, {1: b"a"}, event=config())
    corrupt, message = READS[corruption]
    corrupt(client)
    with pytest.raises(CorruptedStateError, match=message):
        store.get("orders", 0, 1)
    if corruption != "field name not UTF-8":
        with pytest.raises(CorruptedStateError, match=message):
            store.get_triggers("orders", 0, 1)


def test_async_get_of_corrupted_triggers(redis_url: str, client: redis.Redis) -> None:
    async def main() -> None:
        async with AsyncObjectStore(redis.asyncio.Redis.from_url(redis_url)) as store:
            await store.create("orders", 0, 1, {1: b"a"})
            client.hset(META, "ev", b"\x0a\xff")
            with pytest.raises(CorruptedStateError, match="not a serialized ObjectEvent"):
                await store.get_triggers("orders", 0, 1)
            with pytest.raises(CorruptedStateError, match="not a serialized ObjectEvent"):
                await store.add_trigger("orders", 0, 1, "on_update", 1, TARGET)

    asyncio.run(main())


@pytest.mark.parametrize("version", ["abc", "999999999999999", "-3"])
def test_delete_of_an_object_whatever_its_version_emits_its_deletes(
    store: ObjectStore, client: redis.Redis, redis_url: str, version: str
) -> None:
    """The advice of a bad version ("... or delete the object") can be followed: through
    the store, the wrapper's DEL and the CLI."""
    for how in ("store", "wrapper", "cli"):
        store.create("orders", 0, 1, {1: b"a"}, event=config())
        client.hset(META, "v", version)
        start = client.xrevrange(OUTBOX, count=1)[0][0].decode()
        if how == "store":
            assert store.delete("orders", 0, 1) is True
        elif how == "wrapper":
            assert EventedRedis(client).delete(OBJ) == 1
        else:
            out = CliRunner().invoke(main, ["delete", "orders", "0", "1", "--redis-url", redis_url])
            assert out.exit_code == 0 and "deleted" in out.output, out.output
        assert client.exists(OBJ, META) == 0
        (entry,) = outbox(client, after=start)
        expected = int(version) + 1 if version.isdigit() else 0
        assert [e.event_type for e in entry.events] == [5] and entry.version == expected, how


def test_a_version_at_its_largest_stays_readable(store: ObjectStore, client: redis.Redis) -> None:
    store.create("orders", 0, 1, {1: b"a"}, event=config())
    client.hset(META, "v", "999999999999998")
    assert store.update("orders", 0, 1, {1: b"b"}).version == 999999999999999
    with pytest.raises(CorruptedStateError, match="the largest version there is"):
        store.update("orders", 0, 1, {1: b"c"})
    with pytest.raises(redis.ResponseError, match=r"CORRUPT .*the largest version"):
        EventedRedis(client).hincrby(OBJ, "2", 1)
    record = store.get("orders", 0, 1)
    assert record is not None and record.version == 999999999999999
    assert record.entries == {1: b"b"}
