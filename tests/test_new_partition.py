"""A brand-new partition is served at once: the write script announces its outbox on
``oprc:new-outbox`` and the running worker takes it without waiting for discovery."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
import redis.asyncio as aredis

from oprc_redis_events import ObjectEvent, ObjectStore, Settings, TriggerTarget
from oprc_redis_events.protocol.acl import rules
from oprc_redis_events.protocol.keys import NEW_OUTBOX_CHANNEL
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.publisher import MemoryPublisher
from oprc_redis_events.worker.waking import WakeableRead

from .helpers import RunningWorker, watch_all


def _wait(check: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def test_a_new_partition_is_dispatched_without_waiting_for_discovery(
    settings: Settings, store: ObjectStore, redis_url: str
) -> None:
    publisher = MemoryPublisher()
    settings = settings.replace(claim_idle_ms=600_000)  # else the lease time caps the interval
    worker = Worker(settings, publisher=publisher, discover_interval=60.0)
    assert worker.discover_interval == 60.0
    running = RunningWorker(worker)
    try:
        assert _wait(lambda: worker.announcements.listening)
        client = redis.Redis.from_url(redis_url)
        # anyone may publish: what names no outbox is ignored
        client.publish(NEW_OUTBOX_CHANNEL, "not a key")
        client.publish(NEW_OUTBOX_CHANNEL, "oprc:{orders:1}:obj:1")
        client.close()
        for partition in (3, 4):
            store.create("orders", partition, 1, {1: b"a"}, event=watch_all([1]))
            store.update("orders", partition, 1, {1: b"b"})
        # the discovery interval is 60 s: only the announcement can bring them this soon
        assert _wait(lambda: len(publisher.sent) == 4), publisher.sent
        assert sorted(worker.states) == ["oprc:{orders:3}:outbox", "oprc:{orders:4}:outbox"]
    finally:
        running.stop()


@pytest.mark.parametrize("granted", [True, False], ids=["rules-now", "rules-before"])
def test_writer_and_worker_users_with_the_role_rules(
    granted: bool, settings: Settings, client: redis.Redis, redis_url: str
) -> None:
    """With the roles' rules, the announcement works under least privilege; with rules
    granted before it (no channel), the write does not fail, the worker is told once and
    finds new partitions by discovery, and it does not fail over."""
    channel = f"&{NEW_OUTBOX_CHANNEL}"
    for role in ("writer", "worker"):
        role_rules = rules(role) if granted else rules(role).replace(channel, "")
        client.acl_setuser(f"u-{role}", enabled=True, passwords=[f"+pw-{role}"], reset=True)
        client.execute_command("ACL", "SETUSER", f"u-{role}", *role_rules.split())
    url = redis_url.replace("redis://", "redis://u-{}:pw-{}@")
    writer = ObjectStore.from_url(url.format("writer", "writer"))
    publisher = MemoryPublisher()
    config = Settings.from_env({}, redis_url=url.format("worker", "worker"))
    worker = Worker(
        config.replace(claim_idle_ms=600_000) if granted else config,
        publisher=publisher,
        discover_interval=60.0 if granted else 0.05,
    )
    running = RunningWorker(worker)
    try:
        assert _wait(lambda: worker.announcements.listening, 5 if granted else 1) == granted
        writer.create("orders", 7, 1, {1: b"a"}, event=watch_all([1]))
        writer.update("orders", 7, 1, {1: b"b"})
        assert _wait(lambda: len(publisher.sent) == 2, 15), publisher.sent
        assert worker.supervisor.healthy
    finally:
        running.stop()
        writer.close()
        for role in ("writer", "worker"):
            client.acl_deluser(f"u-{role}")


def test_keyspace_capture_s_first_entry_in_a_partition_is_taken_at_once(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    """A write that bypassed the library makes the partition's first outbox entry through
    capture, inside the worker: the worker takes the partition without discovery, and the
    other workers hear of it on ``oprc:new-outbox``."""
    ev = ObjectEvent()
    ev.data_trigger[1].on_update.append(TriggerTarget(cls_id="svc", partition_id=0, fn_id="f"))
    store.create("orders", 8, 1, {1: b"a"}, event=ev)  # no CREATE trigger: no outbox yet
    assert not client.exists("oprc:{orders:8}:outbox")
    publisher = MemoryPublisher()
    config = settings.replace(capture="keyspace", claim_idle_ms=600_000)
    worker = Worker(config, publisher=publisher, discover_interval=60.0)
    running = RunningWorker(worker)
    try:
        assert _wait(lambda: worker.capture is not None and worker.capture.stats.reconciles > 0)
        pubsub = client.pubsub()
        pubsub.subscribe(NEW_OUTBOX_CHANNEL)
        client.hset("oprc:{orders:8}:obj:1", "1", "b")
        assert _wait(lambda: len(publisher.sent) == 1), publisher.sent
        heard = [pubsub.get_message(timeout=1.0) for _ in range(2)]  # subscribe, then it
        assert heard[1] is not None and heard[1]["data"] == b"oprc:{orders:8}:outbox", heard
        pubsub.close()
    finally:
        running.stop()


def test_the_loop_s_blocking_read_is_woken(redis_url: str) -> None:
    """``CLIENT UNBLOCK`` ends a read that would block 30 s; it returns nothing."""

    async def main() -> tuple[float, object]:
        client = aredis.Redis.from_url(redis_url)
        await client.xgroup_create("oprc:{orders:9}:outbox", "g", id="0", mkstream=True)
        reads = WakeableRead(client)
        started = time.monotonic()
        task = asyncio.ensure_future(
            reads.xreadgroup("g", "c", {"oprc:{orders:9}:outbox": ">"}, 10, 30_000)
        )
        while not task.done() and time.monotonic() - started < 1:  # blocked by now
            await asyncio.sleep(0.05)
        await reads.wake()
        reply = await asyncio.wait_for(task, 10)
        await reads.aclose()
        await client.aclose()
        return time.monotonic() - started, reply

    took, reply = asyncio.run(main())
    assert took < 10 and not reply


@pytest.mark.quick
def test_the_listener_waits_out_a_cluster_no_node_of_which_answers() -> None:
    """An unreachable cluster is not a RedisError (RedisClusterException): the listener
    warns and tries again, it does not end with a traceback."""
    from redis.asyncio.cluster import RedisCluster

    from oprc_redis_events.dev.servers import free_port
    from oprc_redis_events.worker.announce import OutboxAnnouncements

    warned: list[object] = []

    class Problems:
        def warning(self, key: object, *args: object) -> None:
            warned.append(args)

    async def main() -> None:
        client = RedisCluster(host="127.0.0.1", port=free_port())
        listener = OutboxAnnouncements(client, lambda outbox: None, Problems())  # type: ignore[arg-type]
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.5, stop.set)
        await asyncio.wait_for(listener.run(stop), 10)  # returns once stopped, no exception
        await client.aclose()

    asyncio.run(main())
    assert warned and "Redis unavailable" in str(warned[0])
