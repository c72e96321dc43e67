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
