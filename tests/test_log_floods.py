"""The worker's log says each thing once: a broken partition's retries do not log a take and
a release each time, and every dead letter is accounted for (not throttled away)."""

from __future__ import annotations

import asyncio
import logging
import re
import time

import pytest
import redis

from oprc_redis_events import ObjectStore, Settings
from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.worker.handling import POISON_LINES
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.publisher import MemoryPublisher

from .helpers import RunningWorker, watch_all

KEYS = PartitionKeys.of("orders", 0)


def messages(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level]


@pytest.mark.parametrize("poison", [11, 3 * POISON_LINES])
def test_every_dead_letter_is_in_the_log(
    settings: Settings,
    store: ObjectStore,
    client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    poison: int,
) -> None:
    caplog.set_level(logging.INFO, logger="oprc_redis_events")
    store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1]))
    ids = [client.xadd(KEYS.outbox, {"o": "1", "n": "x"}).decode() for _ in range(poison)]
    worker = Worker(settings, publisher=MemoryPublisher())
    asyncio.run(worker.run_async(burst=True))
    assert worker.stats.dead_letters == poison and client.xlen(KEYS.dead_letters) == poison
    lines = [m for m in messages(caplog, logging.ERROR) if "dead-lettering" in m]
    one_each = {i for i in ids for m in lines if f"entry {i} of orders:0" in m}
    summed = sum(int(n) for m in lines for n in re.findall(r"dead-lettering (\d+) more", m))
    assert len(one_each) + summed == poison, lines
    assert len(lines) <= POISON_LINES + 1  # a flood is summarised, with its count


def test_a_broken_partition_s_retries_log_no_take_and_release(
    settings: Settings,
    store: ObjectStore,
    client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="oprc_redis_events")
    store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1]))
    client.set(KEYS.dead_letters, "not a stream")
    client.xadd(KEYS.outbox, {"o": "1", "n": "x"})  # a poison entry with nowhere to go
    worker = Worker(settings, publisher=MemoryPublisher(), block_ms=50, discover_interval=0.05)
    worker.broken.retry_s = 0.2
    running = RunningWorker(worker)
    try:
        deadline = time.monotonic() + 30
        while worker.broken.errors < 6 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert worker.broken.errors >= 6  # retried (and failed) again and again
    finally:
        running.stop()
    during = messages(caplog)
    stop = next(i for i, m in enumerate(during) if m.startswith("stopping"))
    assert sum("took partition orders:0" in m for m in during[:stop]) == 1, during
    assert sum("released partition orders:0" in m for m in during[:stop]) == 1, during
    assert sum("skipping" in m and KEYS.outbox in m for m in during) == 1, during
    poison = [m for m in during if "dead-lettering entry" in m]
    assert len(poison) == 1, during  # the same entry, read again, is not logged again


def test_a_full_stream_s_reason_says_what_to_do() -> None:
    from oprc_redis_events.worker.broken import full_stream

    text = full_stream("Invalid stream ID specified as stream command argument")
    assert "18446744073709551615-18446744073709551615" in text
    assert "`oprc-redis-events trim`" in text and "delete it" in text
