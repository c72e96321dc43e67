"""An outbox entry's time (the trigger's ``timestamp``) is its id's milliseconds, or its
``src``'s for a replayed entry; an entry that carries ``ts`` (an older version's, another
tool's) keeps it."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
import redis.asyncio as aredis

from oprc_redis_events import ObjectStore
from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.protocol.outbox import PoisonEntryError, decode_entry
from oprc_redis_events.protocol.targets import Target, encode_targets
from oprc_redis_events.worker.deadletters import dead_letter, replay

from .helpers import outbox, watch_all

KEYS = PartitionKeys.of("c", 0)
BLOB = encode_targets([Target("svc", 0, None, None, "f", {})])


def fields(**extra: bytes) -> dict[bytes, bytes]:
    base = {b"o": b"7", b"v": b"1", b"d": b"0", b"n": b"1", b"e1": b"4", b"k1": b"1"}
    base.update({b"p1": b"x", b"t1": BLOB})
    base.update({k.encode(): v for k, v in extra.items()})
    return base


@pytest.mark.quick
def test_the_time_is_the_entry_ids_milliseconds() -> None:
    assert decode_entry(KEYS, "1732680000123-7", fields()).timestamp == 1732680000123


@pytest.mark.quick
def test_a_replayed_entry_keeps_its_first_ids_time() -> None:
    entry = decode_entry(KEYS, "1732680009999-0", fields(src=b"1732680000123-4"))
    assert (entry.timestamp, entry.origin_id) == (1732680000123, "1732680000123-4")


@pytest.mark.quick
def test_an_entry_that_carries_ts_keeps_it() -> None:
    assert decode_entry(KEYS, "1732680000123-0", fields(ts=b"5")).timestamp == 5
    replayed = decode_entry(KEYS, "9-0", fields(ts=b"5", src=b"7-0"))
    assert replayed.timestamp == 5


@pytest.mark.quick
def test_an_id_beyond_the_range_of_times_is_refused() -> None:
    with pytest.raises(PoisonEntryError, match="not a stream entry id"):
        decode_entry(KEYS, "1-0", fields(src=b"%d-0" % 2**64))


def test_writes_append_no_ts_and_a_replayed_letter_keeps_the_writes_time(
    store: ObjectStore, client: redis.Redis, redis_url: str
) -> None:
    before = int(time.time() * 1000)
    store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1]))  # the general path
    store.update("orders", 0, 1, {1: b"b"})  # the quick path
    keys = PartitionKeys.of("orders", 0)
    raw = client.xrange(keys.outbox)
    assert len(raw) == 2 and all(b"ts" not in fields for _, fields in raw)
    entries = outbox(client)
    for entry in entries:
        assert entry.timestamp == int(entry.entry_id.split("-")[0])
        assert before - 5000 <= entry.timestamp <= time.time() * 1000 + 5000

    async def dead_letter_and_replay() -> None:
        aclient = aredis.Redis.from_url(redis_url)
        await aclient.xgroup_create(keys.outbox, "g", "0")
        await aclient.xreadgroup("g", "c", {keys.outbox: ">"})
        first_id, first_fields = raw[0]
        record = (first_id.decode(), first_fields, "test", "", 1)
        await dead_letter(aclient, keys, "g", [record])
        assert await replay(aclient, keys) == 1
        await aclient.aclose()

    asyncio.run(dead_letter_and_replay())
    replayed = outbox(client)[-1]
    assert replayed.entry_id != entries[0].entry_id
    assert (replayed.origin_id, replayed.timestamp) == (entries[0].entry_id, entries[0].timestamp)
