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
