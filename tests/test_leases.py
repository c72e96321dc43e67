"""Leases: live workers are counted right, and the log line says what the numbers are."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
import redis.asyncio as aredis

from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.worker.leases import Leases


def test_workers_on_hosts_with_skewed_clocks_count_each_other(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="oprc_redis_events")
    partitions = {
        p.outbox: p for p in (PartitionKeys.of("orders", 0), PartitionKeys.of("orders", 1))
    }
    real = time.time

    async def scenario() -> tuple[int, int]:
        client = aredis.Redis.from_url(redis_url)
        a = Leases(client, "g", "a", 15_000)
        b = Leases(client, "g", "b", 15_000)
        try:
            await a.heartbeat()
            with monkeypatch.context() as m:  # b's host clock is an hour behind
                m.setattr(time, "time", lambda: real() - 3600)
                await b.rebalance(partitions)
            return await a.heartbeat(), len(b.owned)
        finally:
            await client.aclose()

    alive, taken = asyncio.run(scenario())
    assert alive == 2
    assert taken == 1  # its share of two partitions over two workers
    [line] = [r.getMessage() for r in caplog.records if "took partition" in r.getMessage()]
    assert line.endswith("(now 1 of 2 partition(s); up to 1 each for 2 live worker(s))")


@pytest.mark.parametrize("direct", [True, False])
def test_renewal_keeps_held_leases_and_drops_lost_and_broken_ones(
    redis_url: str, caplog: pytest.LogCaptureFixture, direct: bool
) -> None:
    """Every held lease is renewed (on one Redis in one buffer; one call each where the
    script is redis-py's, as on a cluster); one taken by another worker, or whose key is
    of the wrong type, is dropped with a warning."""
    caplog.set_level(logging.WARNING, logger="oprc_redis_events")
    parts = [PartitionKeys.of("leased", pid) for pid in range(3)]

    async def scenario() -> tuple[list[str], list[int]]:
        client = aredis.Redis.from_url(redis_url)
        leases = Leases(client, "g", "a", 15_000)
        if not direct:
            leases._script = client.register_script(leases._script.script)
        try:
            await leases.rebalance({p.outbox: p for p in parts})
            assert len(leases.owned) == 3
            await client.set(parts[1].lease("g"), "b", px=60_000)  # another worker's now
            await client.delete(parts[2].lease("g"))
            await client.hset(parts[2].lease("g"), "x", "1")  # of the wrong type
            await client.pexpire(parts[0].lease("g"), 1_000)
            await leases.rebalance({p.outbox: p for p in parts}, renew=True)
            return list(leases.owned), [await client.pttl(p.lease("g")) for p in parts[:1]]
        finally:
            await client.delete(*(p.lease("g") for p in parts))
            await client.aclose()

    owned, ttl = asyncio.run(scenario())
    assert owned == [parts[0].outbox] and ttl[0] > 10_000  # renewed to 15 s
    lost = sorted(r.getMessage() for r in caplog.records if "lost the lease" in r.getMessage())
    assert lost[0] == f"lost the lease of partition {parts[1].member}"
    assert lost[1].startswith(f"lost the lease of partition {parts[2].member}: ")
    assert "WRONGTYPE" in lost[1] and len(lost) == 2


@pytest.mark.quick
def test_a_renewal_refused_by_the_server_stops_the_others_at_once() -> None:
    """One call each (a cluster's script): an error about the server (a read-only replica,
    a cluster down) is raised at the first lease instead of being met by every other."""
    import redis

    calls: list[object] = []

    async def refused(keys: object = None, args: object = None) -> object:
        calls.append(keys)
        raise redis.ResponseError("READONLY You can't write against a read only replica.")

    leases = Leases(aredis.Redis(), "g", "a", 15_000)  # never connected
    leases._script = refused
    for pid in range(5):
        p = PartitionKeys.of("leased", pid)
        leases.owned[p.outbox] = p
    with pytest.raises(redis.ResponseError, match="READONLY"):
        asyncio.run(leases._renew())
    assert len(calls) == 1 and len(leases.owned) == 5


@pytest.mark.quick
def test_resend_lost_asks_again_only_what_lost_its_reply() -> None:
    import redis

    from oprc_redis_events.worker.broken import resend_lost

    refusal = redis.ResponseError("WRONGTYPE")
    replies = [1, redis.ConnectionError("lost"), refusal, redis.TimeoutError("late"), 2]
    asked: list[int] = []

    async def send(i: int) -> object:
        asked.append(i)
        if i == 3:
            raise redis.ResponseError("NOGROUP")
        return f"again {i}"

    out = asyncio.run(resend_lost(replies, send))
    assert asked == [1, 3]
    assert out[:3] == [1, "again 1", refusal] and out[4] == 2
    assert isinstance(out[3], redis.ResponseError) and str(out[3]) == "NOGROUP"

    async def down(i: int) -> object:
        raise redis.ConnectionError("still down")

    with pytest.raises(redis.ConnectionError, match="still down"):
        asyncio.run(resend_lost([redis.ConnectionError("lost")], down))
