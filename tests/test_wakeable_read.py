"""The dispatch loop's blocking read sent directly (worker/waking.py): the same entries as
redis-py's reply gives, over RESP2 and RESP3; a Redis error keeps the connection; a read
that failed or was cancelled never leaves its reply for the next one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
import redis.asyncio as aredis

from oprc_redis_events.worker.waking import WakeableRead, entries, raw_entries


@pytest.mark.quick
def test_raw_replies_of_both_protocols_give_the_same_entries() -> None:
    one = [b"1-0", [b"o", b"7", b"n", b"1"]]
    gone = [b"2-0", None]  # a pending entry deleted since: its fields are nil
    expected = [("s", "1-0", {b"o": b"7", b"n": b"1"}), ("s", "2-0", {}), ("t", "3-0", {})]
    resp2 = [[b"s", [one, gone]], [b"t", [[b"3-0", []]]]]
    resp3 = {b"s": [one, gone], b"t": [[b"3-0", []]]}
    assert raw_entries(resp2) == raw_entries(resp3) == expected
    assert raw_entries(None) == raw_entries([]) == raw_entries({}) == []
    # redis-py's own shapes (RESP3 converted: {stream: [entries]})
    parsed = [("1-0", {b"o": b"7", b"n": b"1"}), ("2-0", None)]
    assert entries([[b"s", parsed]]) == entries({b"s": [parsed]}) == expected[:2]


async def _read_both_ways(url: str, protocol: int) -> tuple[list[Any], list[Any]]:
    client = aredis.Redis.from_url(url, protocol=protocol)
    streams = {"wr:a": ">", "wr:b": ">"}
    for stream in streams:
        await client.delete(stream)
        await client.xgroup_create(stream, "g", id="0", mkstream=True)
    out = []
    for direct in (True, False):
        for n in range(3):
            await client.xadd("wr:a" if n % 2 else "wr:b", {"n": str(n), "v": b"\xff"})
        read = WakeableRead(client)
        read.direct = direct
        out.append(await read.xreadgroup("g", "c", streams, 10, 100))
        assert await read.xreadgroup("g", "c", streams, 10, 10) == []  # nothing new: nil
        await read.aclose()
    await client.aclose()
    return out[0], out[1]


async def _pending_both_ways(url: str, protocol: int) -> list[list[Any]]:
    client = aredis.Redis.from_url(url, protocol=protocol)
    await client.delete("wr:p")
    await client.xgroup_create("wr:p", "g", id="0", mkstream=True)
    ids = [await client.xadd("wr:p", {"n": str(n)}) for n in range(3)]
    out = []
    for direct in (True, False):
        read = WakeableRead(client)
        read.direct = direct
        if direct:  # new entries, without BLOCK
            assert len(await read.xreadgroup("g", "c", {"wr:p": ">"}, 10, None)) == 3
            await client.xdel("wr:p", ids[1])  # pending, deleted since: nil fields
        out.append(await read.xreadgroup("g", "c", {"wr:p": "0"}, 10, None))
        await read.aclose()
    await client.aclose()
    return out


@pytest.mark.parametrize("protocol", [2, 3])
def test_a_read_without_block_gives_pending_entries_as_redis_py_does(
    redis_url: str, protocol: int
) -> None:
    """The worker's reads that do not block (pending entries, a burst run) go on the same
    connection, directly, without BLOCK."""
    direct, through_redis_py = asyncio.run(_pending_both_ways(redis_url, protocol))
    assert direct == through_redis_py
    assert [fields for _, _, fields in direct] == [{b"n": b"0"}, {}, {b"n": b"2"}]


@pytest.mark.parametrize("protocol", [2, 3])
def test_a_direct_read_gives_what_redis_py_gives(redis_url: str, protocol: int) -> None:
    direct, through_redis_py = asyncio.run(_read_both_ways(redis_url, protocol))
    strip = [(s, fields) for s, _, fields in direct]
    assert strip == [(s, fields) for s, _, fields in through_redis_py]
    assert strip == [  # in the order the streams were asked for
        ("wr:a", {b"n": b"1", b"v": b"\xff"}),
        ("wr:b", {b"n": b"0", b"v": b"\xff"}),
        ("wr:b", {b"n": b"2", b"v": b"\xff"}),
    ]


def test_a_failed_or_cancelled_read_leaves_no_reply_behind(redis_url: str) -> None:
    async def run() -> None:
        client = aredis.Redis.from_url(redis_url, socket_timeout=0.3)
        stream = "wr:late"
        await client.delete(stream)
        await client.xgroup_create(stream, "g", id="0", mkstream=True)
        read = WakeableRead(client)
        assert read.direct
        with pytest.raises(redis.TimeoutError):  # BLOCK longer than the socket timeout
            await read.xreadgroup("g", "c", {stream: ">"}, 10, 2000)
        task = asyncio.ensure_future(read.xreadgroup("g", "c", {stream: ">"}, 10, 250))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.4)  # both blocked reads ended at Redis meanwhile
        await client.xadd(stream, {"n": "1"})
        got = await read.xreadgroup("g", "c", {stream: ">"}, 10, 100)
        assert [fields for _, _, fields in got] == [{b"n": b"1"}]  # not a stale nil
        with pytest.raises(redis.ResponseError, match="NOGROUP"):  # an error reply
            await read.xreadgroup("g", "c", {"wr:nogroup": ">"}, 10, 10)
        await client.xadd(stream, {"n": "2"})
        got = await read.xreadgroup("g", "c", {stream: ">"}, 10, 100)
        assert [fields for _, _, fields in got] == [{b"n": b"2"}]  # still in step
        await read.aclose()
        await client.aclose()

    asyncio.run(run())


def test_a_client_not_sending_utf8_names_reads_through_redis_py(redis_url: str) -> None:
    assert not WakeableRead(aredis.Redis.from_url(redis_url, encoding="latin-1")).direct
    assert WakeableRead(aredis.Redis.from_url(redis_url)).direct


def test_a_lost_connection_forgets_its_client_id_until_the_next_one_is_known(
    redis_url: str, client: redis.Redis
) -> None:
    """CLIENT IDs start again from 1 when Redis restarts: a read whose connection was lost
    must not leave its old id for wake() to CLIENT UNBLOCK; the next read learns the new
    one before it blocks, so it can be woken from its start."""

    async def run() -> None:
        aclient = aredis.Redis.from_url(redis_url)
        stream = "wr:lost"
        await aclient.delete(stream)
        await aclient.xgroup_create(stream, "g", id="0", mkstream=True)
        read = WakeableRead(aclient)
        assert await read.xreadgroup("g", "c", {stream: ">"}, 10, 10) == []
        old = read._id
        assert old and client.client_kill_filter(_id=old) == 1
        with pytest.raises(redis.ConnectionError):
            await read.xreadgroup("g", "c", {stream: ">"}, 10, 10)
        assert read._id is None  # wake() now does nothing
        blocked = asyncio.ensure_future(read.xreadgroup("g", "c", {stream: ">"}, 10, 20_000))
        for _ in range(200):  # the new id is learnt on the new connection before the read
            await asyncio.sleep(0.01)
            if read._id not in (None, old):
                break
        assert read._id not in (None, old)
        await asyncio.sleep(0.1)
        await read.wake()
        assert await asyncio.wait_for(blocked, 10) == []  # woken, long before 20 s
        await read.aclose()
        await aclient.aclose()

    asyncio.run(run())
