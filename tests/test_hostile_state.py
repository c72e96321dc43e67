"""Bad state written behind the library's back, beside healthy partitions: the healthy
ones keep flowing, the bad one is reported (logged once, counted) and retried, and the
worker keeps running.  Real Redis, real Zenoh on loopback."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from oprc_redis_events import ObjectStore, Settings
from oprc_redis_events.protocol.keys import PARTITIONS_KEY, PartitionKeys
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.publisher import MemoryPublisher, ZenohPublisher

from .conftest import Inbox, ZenohHub
from .helpers import RunningWorker, watch_all

Wait = Callable[[Callable[[], bool], float], bool]
OUTBOX0 = PartitionKeys.of("orders", 0).outbox


@pytest.fixture
def running(zenoh_hub: ZenohHub) -> Iterator[Callable[..., Worker]]:
    started: list[RunningWorker] = []

    def start(settings: Settings, *, retry_s: float = 0.3, repeat_s: float = 60.0) -> Worker:
        worker = Worker(
            settings,
            publisher=ZenohPublisher(zenoh_hub.session()),
            block_ms=50,
            discover_interval=0.05,
        )
        worker.broken.retry_s = retry_s
        worker.problems.interval_s = repeat_s
        started.append(RunningWorker(worker))
        return worker

    yield start
    for r in started:
        assert r.thread.is_alive(), "the worker exited"
        r.stop()


def metric(worker: Worker, name: str) -> float | None:
    return worker.metrics.registry.get_sample_value(name)


def lines(caplog: pytest.LogCaptureFixture, *words: str) -> list[str]:
    found = [r.getMessage() for r in caplog.records]
    return [m for m in found if all(w in m for w in words)]


def payloads(inbox: Inbox) -> list[bytes]:
    return [t.payload.original_payload for t in inbox.items]


def write_healthy(store: ObjectStore, pids: tuple[int, ...], count: int) -> None:
    for i in range(count):
        for pid in pids:
            store.update("orders", pid, 1, {1: f"{pid}-{i}".encode()})


def create(store: ObjectStore, pids: range) -> None:
    for pid in pids:
        store.create("orders", pid, 1, {1: b"a"}, event=watch_all([1]))


def test_an_outbox_turned_into_a_string_under_a_running_worker(
    settings: Settings,
    store: ObjectStore,
    client: redis.Redis,
    zenoh_hub: ZenohHub,
    running: Callable[..., Worker],
    caplog: pytest.LogCaptureFixture,
    wait: Wait,
) -> None:
    caplog.set_level(logging.INFO, logger="oprc_redis_events")
    inbox = zenoh_hub.subscribe()
    create(store, range(4))
    worker = running(settings, repeat_s=0.5)
    assert len(inbox.wait_for(4)) == 4
    client.delete(OUTBOX0)
    client.set(OUTBOX0, "oops")
    write_healthy(store, (1, 2, 3), 30)
    assert len(inbox.wait_for(4 + 90, timeout=30)) == 4 + 90
    assert wait(lambda: metric(worker, "oprc_events_broken_partitions") == 1, 10)
    # tried again every 0.3 s: logged once, then only with a count (every 0.5 s here)
    assert wait(lambda: len(lines(caplog, "skipping", OUTBOX0, "more time(s)")) >= 1, 10)
    first, *repeats = lines(caplog, "skipping", OUTBOX0)
    assert f"{OUTBOX0} is a string, not a stream" in first
    assert "more time(s)" not in first
    assert all("more time(s)" in line for line in repeats)
    assert metric(worker, "oprc_events_partition_errors_total")
    # repaired: served again, nothing lost
    client.delete(OUTBOX0)
    store.update("orders", 0, 1, {1: b"back"})
    assert wait(lambda: b"back" in payloads(inbox), 15)
    assert wait(lambda: metric(worker, "oprc_events_broken_partitions") == 0, 10)
    assert lines(caplog, OUTBOX0, "works again")


def test_a_restarted_worker_serves_every_healthy_partition_beside_bad_names(
    settings: Settings,
    store: ObjectStore,
    client: redis.Redis,
    zenoh_hub: ZenohHub,
    running: Callable[..., Worker],
    caplog: pytest.LogCaptureFixture,
    wait: Wait,
) -> None:
    caplog.set_level(logging.INFO, logger="oprc_redis_events")
    inbox = zenoh_hub.subscribe()
    create(store, range(4))
    client.delete(OUTBOX0)
    client.set(OUTBOX0, "oops")  # a wrong-type outbox, still named by the registry
    client.sadd(PARTITIONS_KEY, "nocolon", "a/b:0", "x:-1", b"\xff:1")  # malformed members
    client.xadd("oprc:{a/b:0}:outbox", {"x": "1"})  # a stream SCAN finds, named wrongly
    worker = running(settings)
    write_healthy(store, (1, 2, 3), 30)
    assert len(inbox.wait_for(3 + 90, timeout=30)) == 3 + 90
    assert sorted(payloads(inbox)) == sorted(
        [b"a"] * 3 + [f"{p}-{i}".encode() for p in (1, 2, 3) for i in range(30)]
    )
    assert wait(lambda: metric(worker, "oprc_events_broken_partitions") == 6, 10)
    time.sleep(1.0)  # ~20 discovery rounds: each problem is still logged once
    for name in (OUTBOX0, "'nocolon'", "'a/b:0'", "'x:-1'", "'\\\\xff:1'", "oprc:{a/b:0}:outbox"):
        assert len(lines(caplog, "skipping", name)) == 1, (name, lines(caplog, "skipping"))
    assert not [r for r in caplog.records if r.exc_info]  # no traceback for bad state


def test_a_dead_letter_stream_of_the_wrong_type_keeps_the_entry_pending(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    create(store, range(2))
    bad = PartitionKeys.of("orders", 0)
    client.set(bad.dead_letters, "oops")
    client.xadd(bad.outbox, {"o": "1", "n": "x"})  # a poison entry
    write_healthy(store, (0, 1), 2)
    publisher = MemoryPublisher()
    worker = Worker(settings, publisher=publisher)
    asyncio.run(worker.run_async(burst=True))
    assert len(publisher.sent) == 6  # every healthy entry, of both partitions
    assert bad.outbox in worker.broken  # the partition is skipped, its dead-letter key named
    pending = client.xpending_range(bad.outbox, "oprc-events", min="-", max="+", count=10)
    assert [p["message_id"] for p in pending] == [client.xrange(bad.outbox)[1][0]]  # not lost
    # repaired: the poison entry is dead-lettered by the next run
    client.delete(bad.dead_letters)
    stats = asyncio.run(Worker(settings, publisher=publisher).run_async(burst=True))
    assert stats.dead_letters == 1 and len(publisher.sent) == 6
    [(_, letter)] = client.xrange(bad.dead_letters)
    assert b"'n'" in letter[b"dlq:reason"]
    assert client.xpending(bad.outbox, "oprc-events")["pending"] == 0


def test_a_broken_dead_letter_key_under_a_running_worker_is_logged_once(
    settings: Settings,
    store: ObjectStore,
    client: redis.Redis,
    zenoh_hub: ZenohHub,
    running: Callable[..., Worker],
    caplog: pytest.LogCaptureFixture,
    wait: Wait,
) -> None:
    caplog.set_level(logging.INFO, logger="oprc_redis_events")
    inbox = zenoh_hub.subscribe()
    create(store, range(2))
    bad = PartitionKeys.of("orders", 0)
    client.set(bad.dead_letters, "oops")
    client.xadd(bad.outbox, {"o": "1", "n": "x"})  # a poison entry, with nowhere to go
    worker = running(settings, retry_s=0.2)
    assert wait(lambda: len(lines(caplog, "skipping", bad.outbox)) == 1, 10)
    write_healthy(store, (1,), 20)
    assert len(inbox.wait_for(2 + 20)) == 2 + 20  # the other partition flows
    time.sleep(1.0)  # ~5 more tries of the broken partition
    assert len(lines(caplog, "skipping", bad.outbox)) == 1
    assert not lines(caplog, "works again")
    assert client.xpending(bad.outbox, "oprc-events")["pending"] == 1  # kept, not lost
    client.delete(bad.dead_letters)  # repaired: the entry is dead-lettered, the rest flows
    store.update("orders", 0, 1, {1: b"later"})
    assert wait(lambda: b"later" in payloads(inbox), 15)
    assert client.xlen(bad.dead_letters) == 1
    assert len(lines(caplog, bad.outbox, "works again")) == 1
    assert worker.stats.dead_letters == 1


def test_a_registry_of_the_wrong_type_leaves_discovery_to_scan(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    create(store, range(3))
    client.delete(PARTITIONS_KEY)
    client.set(PARTITIONS_KEY, "oops")
    publisher = MemoryPublisher()
    worker = Worker(settings, publisher=publisher)
    asyncio.run(worker.run_async(burst=True))
    assert len(publisher.sent) == 3
    assert PARTITIONS_KEY in worker.broken


def test_a_lost_consumer_group_does_not_wait_for_our_own_lease(
    settings: Settings,
    store: ObjectStore,
    client: redis.Redis,
    zenoh_hub: ZenohHub,
    running: Callable[..., Worker],
    wait: Wait,
) -> None:
    inbox = zenoh_hub.subscribe()
    create(store, range(2))
    # a lease of 10 minutes: a partition waiting for it would never be served in this test
    worker = running(settings.replace(claim_idle_ms=600_000))
    assert len(inbox.wait_for(2)) == 2
    client.xgroup_destroy(OUTBOX0, "oprc-events")
    store.update("orders", 0, 1, {1: b"after"})
    store.update("orders", 1, 1, {1: b"after"})
    assert wait(lambda: payloads(inbox).count(b"after") == 2, 20)
    assert client.get(PartitionKeys.of("orders", 0).lease("oprc-events")) in (
        None,
        worker.settings.consumer.encode(),
    )


def test_a_failing_maintenance_step_is_logged_once_then_counted(
    settings: Settings,
    store: ObjectStore,
    zenoh_hub: ZenohHub,
    running: Callable[..., Worker],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    wait: Wait,
) -> None:
    import oprc_redis_events.worker.maintenance as maintenance

    async def on_fire(client: object, streams: object) -> int:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(maintenance, "trim_outboxes", on_fire)
    monkeypatch.setattr(maintenance, "TRIM_INTERVAL_S", 0.0)  # every round
    caplog.set_level(logging.INFO, logger="oprc_redis_events")
    inbox = zenoh_hub.subscribe()
    create(store, range(2))
    running(settings, repeat_s=0.5)
    assert len(inbox.wait_for(2)) == 2
    assert wait(lambda: len(lines(caplog, "disk on fire", "more time(s)")) >= 2, 10)
    failures = [r for r in caplog.records if "disk on fire" in r.getMessage()]
    assert len([r for r in failures if r.exc_info]) == 1  # one traceback, not one a round
    write_healthy(store, (0, 1), 5)  # and the worker still serves
    assert len(inbox.wait_for(12)) == 12


def test_acknowledgements_of_many_partitions_blame_a_broken_one_alone(
    settings: Settings,
    store: ObjectStore,
    client: redis.Redis,
    running: Callable[..., Worker],
    zenoh_hub: ZenohHub,
    wait: Wait,
) -> None:
    """The due acknowledgements of every partition go out in one pipeline: an outbox
    broken between its PUTs and its XACK is blamed alone, the others are acknowledged."""
    inbox = zenoh_hub.subscribe()
    create(store, range(4))
    worker = running(settings.replace(ack_delay_ms=1500))
    assert len(inbox.wait_for(4)) == 4

    def pending(pid: int) -> int:
        return int(
            client.xpending(PartitionKeys.of("orders", pid).outbox, settings.group)["pending"]
        )

    assert all(pending(pid) == 1 for pid in range(4))  # sent, not acknowledged yet
    client.delete(OUTBOX0)
    client.set(OUTBOX0, "oops")
    assert wait(lambda: all(pending(pid) == 0 for pid in (1, 2, 3)), 15)
    assert wait(lambda: metric(worker, "oprc_events_broken_partitions") == 1, 10)
    write_healthy(store, (1, 2, 3), 5)
    assert len(inbox.wait_for(4 + 15, timeout=30)) == 4 + 15
