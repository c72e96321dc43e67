"""Dead letters per consumer group, and the consumer-group commands (groups list|drop,
worker --from-now), run as an operator would."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import redis

from oprc_redis_events import ObjectStore, Settings
from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.publisher import MemoryPublisher

from .helpers import RunningWorker, watch_all

CLI = [sys.executable, "-m", "oprc_redis_events.cli"]
KEYS = PartitionKeys.of("orders", 0)


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, input=stdin)


def burst(settings: Settings, group: str, publisher: MemoryPublisher, **changes: object) -> Worker:
    worker = Worker(settings.replace(group=group, **changes), publisher=publisher)
    asyncio.run(worker.run_async(burst=True))
    return worker


def dead_letter_of_group_a(settings: Settings, store: ObjectStore) -> MemoryPublisher:
    """Group A cannot deliver (hold mode, no subscriber) and dead-letters the entry; group B
    delivers it.  Returns B's publisher."""
    store.create("orders", 0, 1, {1: b"0"}, event=watch_all([1]))
    store.update("orders", 0, 1, {1: b"1"})
    silent = MemoryPublisher()
    silent.subscribed = False
    assert burst(settings, "a", silent, hold=True, hold_max_age_ms=300).stats.dead_letters == 2
    delivered = MemoryPublisher()
    burst(settings, "b", delivered)
    assert len(delivered.sent) == 2
    return delivered


def test_replay_sends_again_only_for_the_group_that_dead_lettered(
    settings: Settings, store: ObjectStore, client: redis.Redis, redis_url: str
) -> None:
    dead_letter_of_group_a(settings, store)
    listing = cli("dlq", "list", "--redis-url", redis_url)
    assert listing.stdout.count("group=a ") == 2, listing.stdout
    out = cli("dlq", "replay", "--redis-url", redis_url)
    assert out.returncode == 0 and "replayed 2 dead letter(s)" in out.stdout, out.stderr
    again_a, again_b = MemoryPublisher(), MemoryPublisher()
    burst(settings, "a", again_a)
    burst(settings, "b", again_b)
    assert len(again_a.sent) == 2  # the group that failed sends them now
    assert again_b.sent == []  # the group that delivered them does not send them twice
    assert client.xlen(KEYS.dead_letters) == 0


def test_replay_group_narrows_to_one_group(
    settings: Settings, store: ObjectStore, client: redis.Redis, redis_url: str
) -> None:
    dead_letter_of_group_a(settings, store)
    assert "replayed 0" in cli("dlq", "replay", "--group", "b", "--redis-url", redis_url).stdout
    assert client.xlen(KEYS.dead_letters) == 2
    assert "replayed 2" in cli("dlq", "replay", "--group", "a", "--redis-url", redis_url).stdout


def test_replay_of_an_id_that_does_not_exist_fails(
    settings: Settings, store: ObjectStore, client: redis.Redis, redis_url: str
) -> None:
    dead_letter_of_group_a(settings, store)
    where = ["--cls", "orders", "--partition", "0", "--redis-url", redis_url]
    for bad, says in (
        ("1-0", "no dead letter 1-0 in partition orders:0"),
        ("bogus-id", "not a dead letter id"),
    ):
        out = cli("dlq", "replay", *where, bad)
        assert out.returncode == 1 and says in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    real = client.xrange(KEYS.dead_letters)[0][0].decode()
    out = cli("dlq", "replay", *where, real, "1-0")  # one bad id: nothing is replayed
    assert out.returncode == 1 and client.xlen(KEYS.dead_letters) == 2
    assert "replayed 1" in cli("dlq", "replay", *where, real).stdout
    assert cli("dlq", "purge", *where, "1-0").returncode == 1


def test_purge_asks_only_when_there_is_something_to_purge(
    settings: Settings, store: ObjectStore, client: redis.Redis, redis_url: str
) -> None:
    out = cli("dlq", "purge", "--redis-url", redis_url)  # no --yes, nothing to answer with
    assert out.returncode == 0 and "purged 0 dead letter(s)" in out.stdout, out.stderr
    assert "[y/N]" not in out.stdout + out.stderr
    dead_letter_of_group_a(settings, store)
    refused = cli("dlq", "purge", "--redis-url", redis_url, stdin="n\n")
    assert "Delete 2 dead letter(s) for good?" in refused.stdout and refused.returncode == 1
    assert client.xlen(KEYS.dead_letters) == 2
    done = cli("dlq", "purge", "--redis-url", redis_url, stdin="y\n")
    assert "purged 2 dead letter(s)" in done.stdout and client.xlen(KEYS.dead_letters) == 0


def test_groups_list_shows_each_group_per_partition(
    settings: Settings, store: ObjectStore, redis_url: str
) -> None:
    store.create("orders", 0, 1, {1: b"0"}, event=watch_all([1]))
    burst(settings, "seen", MemoryPublisher())
    store.update("orders", 0, 1, {1: b"1"})
    store.update("orders", 0, 1, {1: b"2"})
    out = cli("groups", "list", "--redis-url", redis_url)
    rows = [line.split() for line in out.stdout.splitlines()]
    assert rows == [
        ["PARTITION", "GROUP", "CONSUMERS", "PENDING", "LAG"],
        ["orders:0", "seen", "1", "0", "2"],
    ]


def test_groups_drop_removes_the_group_its_leases_and_workers(
    settings: Settings, store: ObjectStore, client: redis.Redis, redis_url: str
) -> None:
    store.create("orders", 0, 1, {1: b"0"}, event=watch_all([1]))
    running = RunningWorker(Worker(settings.replace(group="x"), publisher=MemoryPublisher()))
    deadline = time.monotonic() + 10
    while not client.exists(KEYS.lease("x")) and time.monotonic() < deadline:
        time.sleep(0.05)
    busy = cli("groups", "drop", "x", "--yes", "--redis-url", redis_url)
    assert busy.returncode == 1 and "stop them first" in busy.stderr, busy.stderr
    running.stop()
    client.zadd("oprc:workers:x", {"long-gone": 1})  # a worker that died long ago
    client.set(KEYS.lease("x"), "long-gone")
    store.update("orders", 0, 1, {1: b"1"})  # unread by x: holds the outbox
    burst(settings, "oprc-events", MemoryPublisher())  # the group in use has read everything
    refused = cli("trim", "--maxlen", "0", "--redis-url", redis_url)
    assert refused.returncode == 1, refused.stdout
    assert cli("groups", "drop", "x", "--redis-url", redis_url, stdin="n\n").returncode == 1
    assert len(client.xinfo_groups(KEYS.outbox)) == 2
    out = cli("groups", "drop", "x", "--yes", "--redis-url", redis_url)
    assert out.returncode == 0 and "dropped consumer group x from 1 outbox(es)" in out.stdout
    assert [g["name"] for g in client.xinfo_groups(KEYS.outbox)] == [b"oprc-events"]
    assert not client.exists(KEYS.lease("x"), "oprc:workers:x")
    assert cli("trim", "--maxlen", "0", "--redis-url", redis_url).returncode == 0
    missing = cli("groups", "drop", "x", "--yes", "--redis-url", redis_url)
    assert missing.returncode == 1 and "no consumer group 'x'" in missing.stderr


def test_worker_from_now_skips_what_was_written_before_it_started(
    settings: Settings, store: ObjectStore
) -> None:
    store.create("orders", 0, 1, {1: b"0"}, event=watch_all([1]))
    store.update("orders", 0, 1, {1: b"before"})
    publisher = MemoryPublisher()
    worker = Worker(
        settings.replace(from_now=True), publisher=publisher, block_ms=20, discover_interval=0.05
    )
    running = RunningWorker(worker)
    try:
        deadline = time.monotonic() + 10
        while not worker.partitions and time.monotonic() < deadline:
            time.sleep(0.02)
        store.update("orders", 0, 1, {1: b"after"})
        store.create("fresh", 0, 1, {1: b"new"}, event=watch_all([1]))  # a new partition
        deadline = time.monotonic() + 10
        while len(publisher.sent) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
    finally:
        running.stop()
    from oprc_redis_events.protocol.decode import decode_trigger

    values = sorted(decode_trigger(k, b).payload.original_payload for k, b in publisher.sent)
    assert values == [b"after", b"new"]


def test_from_now_is_read_from_the_environment() -> None:
    assert Settings.from_env({"OPRC_EVENTS_FROM_NOW": "true"}).from_now is True
    assert Settings.from_env({}).from_now is False
    out = subprocess.run([*CLI, "worker", "--help"], capture_output=True, text=True, check=True)
    assert "--from-now" in out.stdout and "OPRC_EVENTS_FROM_NOW" in out.stdout
