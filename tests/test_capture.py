"""Keyspace capture: writes that bypass the library still fire their triggers."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from oprc_redis_events import EventedRedis, ObjectStore, Settings
from oprc_redis_events.dev.servers import RedisServer
from oprc_redis_events.protocol.decode import decode_trigger
from oprc_redis_events.worker.capture import merged_flags
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.publisher import MemoryPublisher

from .helpers import RunningWorker, events, watch_all

KEY = "oprc:{orders:0}:obj:1"


def redis_cli(url: str, *args: str) -> str:
    port = url.rsplit(":", 1)[1].split("/")[0]
    cli = shutil.which("redis-cli")
    assert cli is not None, "redis-cli is installed with redis-server"
    out = subprocess.run(
        [cli, "-h", "127.0.0.1", "-p", port, *args], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.fixture
def capturing(settings: Settings) -> Iterator[Callable[[], tuple[RunningWorker, MemoryPublisher]]]:
    running: list[RunningWorker] = []

    def start() -> tuple[RunningWorker, MemoryPublisher]:
        publisher = MemoryPublisher()
        worker = Worker(
            settings.replace(capture="keyspace"),
            publisher=publisher,
            block_ms=20,
            discover_interval=0.05,
        )
        running.append(RunningWorker(worker))
        deadline = time.monotonic() + 10
        while (
            worker.capture is None or worker.capture.stats.reconciles == 0
        ) and time.monotonic() < deadline:
            time.sleep(0.01)
        return running[-1], publisher

    yield start
    for r in running:
        r.stop()


def received(publisher: MemoryPublisher) -> list[tuple[str, object, bytes | None]]:
    out = []
    for key, body in list(publisher.sent):
        t = decode_trigger(key, body)
        value = t.payload.original_payload if t.payload.HasField("original_payload") else None
        out.append((t.event_name, t.field, value))
    return out


def wait_for(
    publisher: MemoryPublisher, count: int, timeout: float = 10
) -> list[tuple[str, object, bytes | None]]:
    deadline = time.monotonic() + timeout
    while len(publisher.sent) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)  # and nothing more
    return received(publisher)


def test_flags_are_merged() -> None:
    assert merged_flags("") == "Khgxe"
    assert merged_flags("KA") is None
    assert merged_flags("Ex") == "ExKhge"


def test_redis_cli_writes_fire_triggers(store: ObjectStore, redis_url: str, capturing) -> None:  # type: ignore[no-untyped-def]
    store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1, 2, "name"]))
    _, publisher = capturing()
    assert "K" in redis_cli(redis_url, "config", "get", "notify-keyspace-events")
    redis_cli(redis_url, "HSET", KEY, "1", "b", "name", "ann")
    assert wait_for(publisher, 3) == [
        ("DATA_CREATE", 1, b"a"),
        ("DATA_UPDATE", 1, b"b"),
        ("DATA_CREATE", "name", b"ann"),
    ]
    redis_cli(redis_url, "HDEL", KEY, "name")
    assert wait_for(publisher, 4)[3:] == [("DATA_DELETE", "name", None)]
    redis_cli(redis_url, "HSET", KEY, "2", "x")
    redis_cli(redis_url, "DEL", KEY)
    got = wait_for(publisher, 7)[4:]
    assert got[0] == ("DATA_CREATE", 2, b"x")
    assert sorted(got[1:], key=repr) == [("DATA_DELETE", 1, None), ("DATA_DELETE", 2, None)]


def test_wrapper_write_with_capture_on_is_reported_once(
    store: ObjectStore, client: redis.Redis, capturing
) -> None:  # type: ignore[no-untyped-def]
    store.create("orders", 0, 1, {}, event=watch_all([1, 2]))
    running, publisher = capturing()
    wrapped = EventedRedis(client)
    wrapped.hset(KEY, mapping={"1": "a", "2": "b"})
    wrapped.hset(KEY, "1", "c")
    wrapped.hdel(KEY, "2")
    got = wait_for(publisher, 4, timeout=5)
    time.sleep(0.5)
    assert (
        received(publisher)
        == got
        == [
            ("DATA_CREATE", 1, b"a"),
            ("DATA_CREATE", 2, b"b"),
            ("DATA_UPDATE", 1, b"c"),
            ("DATA_DELETE", 2, None),
        ]
    )
    assert running.worker.capture.stats.notifications >= 3  # they were seen, and found no change


def test_raw_writes_while_the_worker_is_down_are_reconciled(
    store: ObjectStore, settings: Settings, redis_url: str
) -> None:
    store.create("orders", 0, 1, {1: b"a", 2: b"b"}, event=watch_all([1, 2, 3]))
    capture = settings.replace(capture="keyspace")
    asyncio.run(Worker(capture, publisher=MemoryPublisher()).run_async(burst=True))  # baseline
    redis_cli(redis_url, "HSET", KEY, "1", "changed", "3", "new")
    redis_cli(redis_url, "HDEL", KEY, "2")
    publisher = MemoryPublisher()
    asyncio.run(Worker(capture, publisher=publisher).run_async(burst=True))
    assert sorted(received(publisher), key=repr) == sorted(
        [
            ("DATA_UPDATE", 1, b"changed"),
            ("DATA_CREATE", 3, b"new"),
            ("DATA_DELETE", 2, None),
        ],
        key=repr,
    )


def test_an_expiring_object_fires_delete_triggers(
    store: ObjectStore, client: redis.Redis, capturing
) -> None:  # type: ignore[no-untyped-def]
    store.create("orders", 0, 1, {1: b"a", "name": b"n"}, event=watch_all([1, "name"]))
    _, publisher = capturing()
    wait_for(publisher, 2)
    assert EventedRedis(client).pexpire(KEY, 100) is True  # capture on: triggers stay for it
    got = wait_for(publisher, 4)[2:]
    assert sorted(got, key=repr) == [("DATA_DELETE", "name", None), ("DATA_DELETE", 1, None)]
    assert not client.exists("oprc:{orders:0}:meta:1")  # its triggers ended with it


def test_a_fast_raw_writer_loses_no_change(tmp_path) -> None:  # type: ignore[no-untyped-def]
    objects, fields = 3_000, 10  # 30,000 raw HSETs: far past the pub/sub buffer below
    # A tiny pub/sub output buffer: Redis cuts the subscriber off under this load, redis-py
    # reconnects silently, and only reconciling after the reconnection finds what was missed.
    with RedisServer(extra=["--client-output-buffer-limit", "pubsub 256kb 64kb 1"]) as server:
        client = redis.Redis.from_url(server.url)
        settings = Settings.from_env({}, redis_url=server.url, capture="keyspace")
        store = ObjectStore(client, settings)
        client.set("oprc:{orders:0}:capture", "1")
        config = watch_all(list(range(fields)))
        for oid in range(objects):
            store.create("orders", 0, oid, {}, event=config)
        worker = Worker(settings, publisher=MemoryPublisher(), block_ms=20, discover_interval=0.05)
        running = RunningWorker(worker)
        try:
            while worker.capture is None or worker.capture.stats.reconciles == 0:
                time.sleep(0.01)
            started = time.monotonic()
            pipe = client.pipeline(transaction=False)
            for f in range(fields):
                for oid in range(objects):
                    pipe.hset(f"oprc:{{orders:0}}:obj:{oid}", str(f), b"v")
                pipe.execute()
            write_s = time.monotonic() - started
            expected = objects * fields
            deadline = time.monotonic() + 120
            found = 0
            while time.monotonic() < deadline:
                found = sum(1 for kind, _, _ in events(client) if kind == "CREATE")
                if found >= expected:
                    break
                time.sleep(0.5)
            stats = worker.capture.stats
            print(
                f"\n{expected} raw writes in {write_s:.1f}s: {found} CREATE events; "
                f"{stats.notifications} notifications received, {stats.reconciles} "
                f"reconcile(s) found {stats.reconciled_changes} change(s)"
            )
            assert found == expected
            assert sorted(
                {(e.object_segment, ev.key) for e in _entries(client) for ev in e.events}
            ) == sorted({(str(o), str(f)) for o in range(objects) for f in range(fields)})
        finally:
            running.stop()
            client.close()


def _entries(client: redis.Redis):  # type: ignore[no-untyped-def]
    from .helpers import outbox

    return outbox(client)


def test_a_silently_reconnected_subscriber_reconciles(
    store: ObjectStore, client: redis.Redis, capturing
) -> None:  # type: ignore[no-untyped-def]
    store.create("orders", 0, 1, {}, event=watch_all(list(range(50))))
    running, publisher = capturing()
    capture = running.worker.capture
    before = capture.stats.reconciles
    client.client_kill_filter(_type="pubsub")  # as Redis does at the output-buffer limit
    for f in range(50):  # written while the subscriber is away: no notification reaches it
        client.hset(KEY, str(f), b"v")
    got = wait_for(publisher, 50)
    assert sorted(field for _, field, _ in got) == list(range(50))
    assert capture.stats.reconciles > before  # redis-py reconnected silently; we noticed
