"""Keyspace capture beside bad state: a bad key is logged once and skipped, never fatal."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
import redis
import redis.asyncio as aredis

from oprc_redis_events import ObjectStore, Settings
from oprc_redis_events.errors import CaptureError
from oprc_redis_events.protocol.decode import decode_trigger
from oprc_redis_events.worker.capture import KeyspaceCapture
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.publisher import MemoryPublisher

from .helpers import RunningWorker, watch_all

#: bad state -> (the key logged, what the line says, how to plant it, writes that notify)
Command = tuple[str | bytes, ...]
BAD_STATE: dict[str, tuple[str, str, list[Command], list[Command]]] = {
    "object of the wrong type": (
        "oprc:{orders:0}:obj:5",
        "oprc:{orders:0}:obj:5 is a string, not a hash",
        [("SET", "oprc:{orders:0}:obj:5", "a string")],
        [("EXPIRE", "oprc:{orders:0}:obj:5", "1000")],
    ),
    "shadow of the wrong type": (
        "oprc:{orders:0}:obj:6",
        "oprc:{orders:0}:shadow:6 is a string, not a hash",
        [("HSET", "oprc:{orders:0}:obj:6", "1", "x"), ("SET", "oprc:{orders:0}:shadow:6", "s")],
        [("HSET", "oprc:{orders:0}:obj:6", "1", "y")],
    ),
    "version that is not a number": (
        "oprc:{orders:0}:obj:7",
        "is 'x1', not a non-negative integer",
        [
            ("HSET", "oprc:{orders:0}:obj:7", "1", "x"),
            ("HSET", "oprc:{orders:0}:meta:7", "v", "x1"),
        ],
        [("HSET", "oprc:{orders:0}:obj:7", "1", "y")],
    ),
    "name that does not parse": (
        "oprc:{orders:0}:obj:a b",
        "not a valid object key",
        [("HSET", "oprc:{orders:0}:obj:a b", "1", "x")],
        [("HSET", "oprc:{orders:0}:obj:a b", "1", "y")],
    ),
    "name that is not UTF-8": (
        repr("oprc:{orders:0}:obj:\\xff"),  # as logged: escaped
        "not a valid object key",
        [("HSET", b"oprc:{orders:0}:obj:\xff", "1", "x")],
        [("HSET", b"oprc:{orders:0}:obj:\xff", "1", "y")],
    ),
    "malformed partition member": (
        "'garbage'",
        "malformed member of oprc:partitions",
        [("SADD", "oprc:partitions", "garbage")],
        [],
    ),
    "invalid partition member": (
        "'bad cls:0'",
        "malformed member of oprc:partitions",
        [("SADD", "oprc:partitions", "bad cls:0")],
        [],
    ),
}


@pytest.mark.parametrize("bad", [[name] for name in BAD_STATE] + [list(BAD_STATE)], ids=repr)
def test_bad_keys_are_logged_once_and_the_rest_is_captured(
    bad: list[str],
    store: ObjectStore,
    client: redis.Redis,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="oprc_redis_events")
    for pid in (0, 1):
        for oid in (1, 2, 3):
            store.create("orders", pid, oid, {}, event=watch_all([1, 2, 3]))
    for name in bad:
        for command in BAD_STATE[name][2]:
            client.execute_command(*command)
    publisher = MemoryPublisher()
    worker = Worker(
        settings.replace(capture="keyspace"),
        publisher=publisher,
        block_ms=20,
        discover_interval=0.05,
    )
    running = RunningWorker(worker)
    try:
        deadline = time.monotonic() + 15
        while (
            worker.capture is None or worker.capture.stats.reconciles == 0
        ) and time.monotonic() < deadline:
            time.sleep(0.01)
        writes = 0
        for i in range(3):
            for name in bad:
                for command in BAD_STATE[name][3]:
                    client.execute_command(*command)
            for pid in (0, 1):
                for oid in (1, 2, 3):
                    if writes < 15:  # raw HSETs, as redis-cli makes them
                        client.hset(f"oprc:{{orders:{pid}}}:obj:{oid}", str(i + 1), f"v{i}")
                        writes += 1
            time.sleep(0.2)
        while len(publisher.sent) < 15 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)  # and nothing more
        capture, ready = worker.capture, worker.ready()
    finally:
        running.stop()
    got = sorted(
        (t.payload.event_info.source_partition_id, t.payload.event_info.source_object_id, t.field)
        for t in (decode_trigger(key, body) for key, body in publisher.sent)
    )
    assert len(got) == 15 and len(set(got)) == 15
    assert capture is not None and capture.healthy and capture.failed is None and ready
    messages = [r.getMessage() for r in caplog.records if r.name.endswith("capture")]
    for name in bad:
        key, why, _, _ = BAD_STATE[name]
        logged = [m for m in messages if key in m and "skipping" in m]
        assert len(logged) == 1, (key, logged)
        assert why in logged[0]


def test_a_failure_is_logged_and_recovered_from(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="oprc_redis_events")

    async def run() -> KeyspaceCapture:
        client = aredis.Redis.from_url(redis_url)
        capture = KeyspaceCapture(client)
        real = capture.reconcile
        calls = 0

        async def flaky() -> int:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("something unexpected")
            return await real()

        capture.reconcile = flaky  # type: ignore[method-assign]
        stop = asyncio.Event()
        task = asyncio.create_task(capture.run(stop))
        for _ in range(500):
            if capture.stats.reconciles:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await task
        await client.aclose()
        return capture

    capture = asyncio.run(run())
    assert capture.stats.reconciles == 1 and capture.healthy and capture.failed is None
    [failure] = [r for r in caplog.records if "something unexpected" in r.getMessage()]
    assert failure.levelno == logging.ERROR and failure.exc_info is not None


def test_a_capture_that_cannot_recover_says_so(redis_url: str) -> None:
    async def run() -> KeyspaceCapture:
        client = aredis.Redis.from_url(redis_url)
        capture = KeyspaceCapture(client, retry_base_s=0.01)

        async def broken() -> int:
            raise RuntimeError("always")

        capture.reconcile = broken  # type: ignore[method-assign]
        try:
            with pytest.raises(CaptureError, match="always"):
                await capture.run(asyncio.Event())
        finally:
            await client.aclose()
        return capture

    capture = asyncio.run(run())
    assert not capture.healthy and isinstance(capture.failed, CaptureError)
