"""A worker that loses no trigger: crashes, restarts, retries, dead letters, hold mode.

Real processes on loopback; every process started here is stopped at the end.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from oprc_redis_events import ObjectEvent, ObjectStore, Settings, TriggerTarget
from oprc_redis_events.dev.servers import RedisServer
from oprc_redis_events.errors import ZenohUnavailableError
from oprc_redis_events.protocol.decode import decode_trigger
from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.publisher import MemoryPublisher, ZenohPublisher
from oprc_redis_events.worker.retention import OutboxBoundError, trim_outbox

from .conftest import Inbox, ZenohHub
from .helpers import RunningWorker, watch_all

CLI = [sys.executable, "-m", "oprc_redis_events.cli"]


class Processes:
    """Worker processes started by a test, always stopped."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def worker(
        self, redis_url: str, endpoint: str, *args: str, **env: str
    ) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"worker{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            [*CLI, "worker", "--redis-url", redis_url, "--zenoh-connect", endpoint, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "OPRC_EVENTS_CLAIM_IDLE_MS": "1000", **env},
        )
        log.close()
        self.procs.append(proc)
        return proc

    def log(self, index: int) -> str:
        return (self.tmp / f"worker{index}.log").read_text()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.stop()


def unique(inbox: Inbox) -> int:
    return len({t.invocation_id for t in inbox.items})


def wait_unique(inbox: Inbox, count: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while unique(inbox) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return unique(inbox)


def test_kill_9_mid_stream_loses_nothing(
    store: ObjectStore, redis_url: str, zenoh_hub: ZenohHub, processes: Processes
) -> None:
    inbox = zenoh_hub.subscribe()
    store.create("orders", 0, 1, {1: b"0"}, event=watch_all([1]))
    for i in range(1, 10_000):
        store.update("orders", 0, 1, {1: str(i).encode()})
    first = processes.worker(redis_url, zenoh_hub.endpoint, "--batch-size", "50")
    deadline = time.monotonic() + 60
    while len(inbox.items) < 300 and time.monotonic() < deadline:
        time.sleep(0.001)
    first.kill()  # SIGKILL: no chance to acknowledge or release anything
    first.wait(10)
    at_kill = unique(inbox)
    assert 0 < at_kill < 10_000, "the worker must be killed mid-stream"
    processes.worker(redis_url, zenoh_hub.endpoint)
    got = wait_unique(inbox, 10_000, timeout=30)
    if got < 10_000:
        seen = {int(t.payload.original_payload) for t in inbox.items}
        print("MISSING", sorted(set(range(10_000)) - seen), "at_kill", at_kill)
        print(processes.log(1)[-3000:])
    assert got == 10_000
    counts = Counter(t.invocation_id for t in inbox.items)
    duplicates = sum(n - 1 for n in counts.values())
    bodies: dict[str, bytes] = {}
    for key, body in inbox.raw:
        assert bodies.setdefault(key, body) == body  # a duplicate is the same message
    print(f"\nkill -9 after {at_kill} of 10000 triggers: {duplicates} duplicate(s) after restart")
    values = sorted({int(t.payload.original_payload) for t in inbox.items})
    assert values == list(range(10_000))


def test_two_workers_share_partitions_without_loss_or_duplicates(
    store: ObjectStore,
    client: redis.Redis,
    redis_url: str,
    zenoh_hub: ZenohHub,
    processes: Processes,
) -> None:
    inbox = zenoh_hub.subscribe()
    for pid in range(4):
        store.create("orders", pid, 1, {1: b"0"}, event=watch_all([1]))
    processes.worker(redis_url, zenoh_hub.endpoint)
    processes.worker(redis_url, zenoh_hub.endpoint)
    leases = [PartitionKeys.of("orders", pid).lease("oprc-events") for pid in range(4)]
    deadline = time.monotonic() + 60  # two CLI processes starting on a busy machine
    while time.monotonic() < deadline:  # both heartbeat, leases spread 2 + 2
        owners = [client.get(lease) for lease in leases]
        if None not in owners and sorted(owners.count(o) for o in set(owners)) == [2, 2]:
            break
        time.sleep(0.1)
    assert None not in owners and len(set(owners)) == 2, owners
    for i in range(1, 1001):
        for pid in range(4):
            store.update("orders", pid, 1, {1: str(i).encode()})
    assert wait_unique(inbox, 4004, timeout=60) == 4004
    time.sleep(0.5)
    assert len(inbox.items) == 4004, "no trigger delivered twice while both workers are up"
    for pid in range(4):
        values = [
            int(t.payload.original_payload)
            for t in inbox.items
            if t.payload.event_info.source_partition_id == pid
        ]
        assert values == list(range(1001)), f"partition {pid} out of order"


def test_redis_killed_and_restarted_with_aof(
    tmp_path: Path, zenoh_hub: ZenohHub, processes: Processes
) -> None:
    inbox = zenoh_hub.subscribe()
    (tmp_path / "redis").mkdir()
    server = RedisServer(
        extra=["--appendonly", "yes", "--appendfsync", "always"], directory=str(tmp_path / "redis")
    ).start()
    try:
        store = ObjectStore(
            redis.Redis.from_url(server.url, socket_timeout=2),
            Settings.from_env({}, redis_url=server.url),
        )
        store.create("orders", 0, 1, {1: b"0"}, event=watch_all([1]))
        processes.worker(server.url, zenoh_hub.endpoint)
        acknowledged: list[int] = [0]
        stop = threading.Event()

        def writer() -> None:
            i = 0
            while not stop.is_set() and i < 100_000:
                i += 1
                try:
                    store.update("orders", 0, 1, {1: str(i).encode()})
                    acknowledged.append(i)
                except Exception:
                    time.sleep(0.05)  # Redis is down: this write may or may not have happened

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            while len(acknowledged) < 1500:
                time.sleep(0.01)
            server.kill()
            time.sleep(0.5)
            server.start()
            before = len(acknowledged)
            while len(acknowledged) < before + 500:
                time.sleep(0.01)
        finally:
            stop.set()
            thread.join(30)
        received = {int(t.payload.original_payload) for t in inbox.wait_for(len(acknowledged), 60)}
        deadline = time.monotonic() + 60
        while not set(acknowledged) <= received and time.monotonic() < deadline:
            time.sleep(0.1)
            received = {int(t.payload.original_payload) for t in inbox.items}
        missing = sorted(set(acknowledged) - received)
        assert not missing, f"{len(missing)} acknowledged writes lost their trigger: {missing[:10]}"
        store.close()
    finally:
        processes.stop()
        server.stop()


def test_hold_mode_waits_for_a_late_target(
    settings: Settings, store: ObjectStore, zenoh_hub: ZenohHub
) -> None:
    store.create("orders", 0, 1, {1: b"0"}, event=watch_all([1]))
    running = RunningWorker(
        Worker(
            settings.replace(hold=True),
            block_ms=50,
            discover_interval=0.05,
            publisher=ZenohPublisher(zenoh_hub.session()),
        )
    )
    try:
        for i in range(1, 50):
            store.update("orders", 0, 1, {1: str(i).encode()})
        time.sleep(2)  # the target starts 2 s later
        inbox = zenoh_hub.subscribe("oprc/svc/0/async/f/*")
        got = inbox.wait_for(50, timeout=20)
        assert [int(t.payload.original_payload) for t in got] == list(range(50))
        assert running.worker.stats.held > 0
    finally:
        running.stop()


def test_without_hold_mode_triggers_before_the_target_are_gone(
    settings: Settings, store: ObjectStore, client: redis.Redis, zenoh_hub: ZenohHub
) -> None:
    store.create("orders", 0, 1, {1: b"0"}, event=watch_all([1]))
    publisher = ZenohPublisher(zenoh_hub.session())
    stats = asyncio.run(Worker(settings, publisher=publisher).run_async(burst=True))
    assert stats.triggers_sent == 1
    assert client.xpending("oprc:{orders:0}:outbox", "oprc-events")["pending"] == 0
    inbox = zenoh_hub.subscribe()
    time.sleep(0.5)
    assert inbox.items == []  # Zenoh dropped the PUT: nobody was subscribed


def test_hold_max_age_dead_letters_and_replay_redelivers(
    settings: Settings, store: ObjectStore, client: redis.Redis, redis_url: str, zenoh_hub: ZenohHub
) -> None:
    store.create("orders", 0, 1, {1: b"0"}, event=watch_all([1]))
    publisher = MemoryPublisher()
    publisher.subscribed = False
    worker = Worker(settings.replace(hold=True, hold_max_age_ms=300), publisher=publisher)
    stats = asyncio.run(worker.run_async(burst=True))
    assert stats.dead_letters == 1 and publisher.sent == []
    [(dlq_id, fields)] = client.xrange("oprc:{orders:0}:dlq")
    assert fields[b"dlq:reason"].startswith(b"no subscriber for oprc/svc/0/async/f/")
    first_key = fields[b"dlq:reason"].split(b" ")[3].decode()
    listing = subprocess.run(
        [*CLI, "dlq", "list", "--redis-url", redis_url], capture_output=True, text=True, check=True
    )
    assert "orders:0" in listing.stdout and "no subscriber" in listing.stdout
    replay = subprocess.run(
        [
            *CLI,
            "dlq",
            "replay",
            "--redis-url",
            redis_url,
            "--cls",
            "orders",
            "--partition",
            "0",
            dlq_id.decode(),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "replayed 1" in replay.stdout
    assert client.xlen("oprc:{orders:0}:dlq") == 0
    fixed = MemoryPublisher()
    asyncio.run(Worker(settings, publisher=fixed).run_async(burst=True))
    assert [k for k, _ in fixed.sent] == [first_key]  # same key: same invocation id


def test_poison_entry_then_fixed_and_replayed(
    settings: Settings, store: ObjectStore, client: redis.Redis, redis_url: str
) -> None:
    keys = PartitionKeys.of("orders", 0)
    store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1]))
    client.xadd(
        keys.outbox,
        {
            "o": "1",
            "v": "1",
            "d": "0",
            "ts": "1",
            "n": "1",
            "e1": "4",
            "k1": "1",
            "p1": "x",
            "t1": b"\xc1",
        },
    )
    store.update("orders", 0, 1, {1: b"b"})
    publisher = MemoryPublisher()
    stats = asyncio.run(Worker(settings, publisher=publisher).run_async(burst=True))
    assert stats.dead_letters == 1 and len(publisher.sent) == 2  # the partition kept flowing
    [(dlq_id, fields)] = client.xrange(keys.dead_letters)
    assert b"targets of event 1 cannot be decoded" in fields[b"dlq:reason"]
    # fix the entry in place (as an operator would), then replay it
    from oprc_redis_events.protocol.triggers import Target, encode_targets

    fixed = {k: v for k, v in fields.items()}
    fixed[b"t1"] = encode_targets([Target("svc", 0, None, None, "f", {})])
    pipe = client.pipeline()
    pipe.xdel(keys.dead_letters, dlq_id)
    pipe.xadd(keys.dead_letters, fixed)  # type: ignore[arg-type]
    pipe.execute()
    out = subprocess.run(
        [*CLI, "dlq", "replay", "--redis-url", redis_url],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "replayed 1" in out.stdout
    replayed = MemoryPublisher()
    asyncio.run(Worker(settings, publisher=replayed).run_async(burst=True))
    [(key, body)] = replayed.sent
    assert decode_trigger(key, body).payload.original_payload == b"x"
    purge = subprocess.run(
        [*CLI, "dlq", "purge", "--redis-url", redis_url, "--yes"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "purged 0" in purge.stdout


def test_retries_back_off_then_dead_letter_and_the_partition_flows(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    ev = ObjectEvent()
    ev.data_trigger[1].on_update.append(TriggerTarget(cls_id="svc", partition_id=0, fn_id="broken"))
    ev.data_trigger[2].on_update.append(TriggerTarget(cls_id="svc", partition_id=0, fn_id="ok"))
    store.create("orders", 0, 1, {1: b"a", 2: b"a"}, event=ev)
    store.update("orders", 0, 1, {1: b"b"})
    store.update("orders", 0, 1, {2: b"b"})

    class Flaky(MemoryPublisher):
        attempts = 0

        def put(self, key: str, payload: bytes) -> None:
            if "/broken/" in key:
                self.attempts += 1
                raise ZenohUnavailableError("target refused")
            super().put(key, payload)

    publisher = Flaky()
    worker = Worker(settings.replace(max_deliveries=3, retry_base_ms=20), publisher=publisher)
    started = time.monotonic()
    stats = asyncio.run(worker.run_async(burst=True))
    assert publisher.attempts == 3 and stats.retries == 2 and stats.dead_letters == 1
    assert time.monotonic() - started >= 0.06  # 20 ms + 40 ms of backoff
    assert len(publisher.sent) == 1 and "/ok/" in publisher.sent[0][0]
    [(_, fields)] = client.xrange("oprc:{orders:0}:dlq")
    assert fields[b"dlq:reason"] == b"delivery failed 3 times"
    assert b"target refused" in fields[b"dlq:error"]
    assert fields[b"dlq:attempts"] == b"3"
    assert fields[b"p1"] == b"b" and fields[b"k1"] == b"1"  # the original entry


def test_a_dispatch_past_the_timeout_is_retried(settings: Settings, store: ObjectStore) -> None:
    store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1]))

    class Slow(MemoryPublisher):
        calls = 0

        def put(self, key: str, payload: bytes) -> None:
            self.calls += 1
            if self.calls == 1:
                time.sleep(0.3)
                raise ZenohUnavailableError("too late")  # the stuck put finally fails
            super().put(key, payload)

    publisher = Slow()
    stats = asyncio.run(
        Worker(
            settings.replace(trigger_timeout_ms=100, retry_base_ms=10), publisher=publisher
        ).run_async(burst=True)
    )
    assert stats.retries == 1 and len(publisher.sent) == 1


def test_trimming_keeps_unacknowledged_entries(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    stream = "oprc:{orders:0}:outbox"
    store.create("orders", 0, 1, {1: b"0"}, event=watch_all([1]))
    for i in range(1, 10):
        store.update("orders", 0, 1, {1: str(i).encode()})
    client.xgroup_create(stream, "audit-group", id="0")
    client.xreadgroup("audit-group", "a", {stream: ">"}, count=4)  # 4 pending, 6 unread
    asyncio.run(Worker(settings, publisher=MemoryPublisher()).run_async(burst=True))

    async def trim(maxlen: int | None = None) -> int:
        import redis.asyncio as aredis

        c = aredis.Redis.from_url(settings.redis_url)
        try:
            return await trim_outbox(c, stream, maxlen=maxlen)
        finally:
            await c.aclose()

    assert asyncio.run(trim()) == 0  # audit-group still needs everything
    first_four = [i for i, _ in client.xrange(stream, count=4)]
    client.xack(stream, "audit-group", *first_four)
    assert asyncio.run(trim()) == 4
    assert client.xlen(stream) == 6
    with pytest.raises(OutboxBoundError, match="would drop 4 of them"):
        asyncio.run(trim(maxlen=2))
    assert client.xlen(stream) == 6
    out = subprocess.run(
        [*CLI, "trim", "--redis-url", settings.redis_url, "--maxlen", "2"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and "would drop 4 of them" in out.stderr
    assert out.stderr.startswith(f"Error: {stream} holds 6 entries")  # the name, not b'...'


def test_sigterm_releases_partitions_at_once(
    store: ObjectStore, redis_url: str, zenoh_hub: ZenohHub, processes: Processes
) -> None:
    inbox = zenoh_hub.subscribe()
    store.create("orders", 0, 1, {1: b"0"}, event=watch_all([1]))
    slow = {"OPRC_EVENTS_CLAIM_IDLE_MS": "20000"}
    first = processes.worker(redis_url, zenoh_hub.endpoint, **slow)
    assert len(inbox.wait_for(1, timeout=20)) == 1
    processes.worker(redis_url, zenoh_hub.endpoint, **slow)
    first.send_signal(signal.SIGTERM)
    assert first.wait(15) == 0
    assert "released partition orders:0" in processes.log(0)
    started = time.monotonic()
    store.update("orders", 0, 1, {1: b"1"})
    assert len(inbox.wait_for(2, timeout=15)) == 2
    assert time.monotonic() - started < 10  # well before the 20 s lease would expire


def test_a_redis_that_lost_its_data_is_served_again(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    store.create("orders", 0, 1, {1: b"a"}, event=watch_all([1]))
    publisher = MemoryPublisher()
    worker = Worker(settings, publisher=publisher, block_ms=20, discover_interval=0.05)
    running = RunningWorker(worker)
    try:
        deadline = time.monotonic() + 10
        while len(publisher.sent) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        client.flushall()  # as a restart without persistence: streams and groups are gone
        store.known_partitions.clear()
        store.create("orders", 0, 1, {1: b"b"}, event=watch_all([1]))
        deadline = time.monotonic() + 15
        while len(publisher.sent) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(publisher.sent) == 2
    finally:
        running.stop()
