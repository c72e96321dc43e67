"""A worker's upkeep of many partitions goes out in a few round trips (pipelines), and
still blames a partition whose key is broken alone: trimming, claims, lease takes and
releases, group creation, and the re-read of pending entries."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
import redis
import redis.asyncio as aredis

from oprc_redis_events import ObjectStore, Settings
from oprc_redis_events.errors import ZenohUnavailableError
from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.worker.discovery import PartitionState
from oprc_redis_events.worker.leases import Leases
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.publisher import MemoryPublisher
from oprc_redis_events.worker.retention import trim_outboxes

from .helpers import watch_all


class CountingPipelines:
    """A client whose pipelines are counted (every other call goes to the client)."""

    def __init__(self, client: aredis.Redis) -> None:
        self.client, self.pipelines = client, 0

    def pipeline(self, *args: Any, **kw: Any) -> Any:
        self.pipelines += 1
        return self.client.pipeline(*args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def _fill(client: redis.Redis, stream: str, count: int) -> list[bytes]:
    return [client.xadd(stream, {"n": str(i)}) for i in range(count)]  # type: ignore[misc]


def test_trimming_many_outboxes_takes_three_pipelines_and_keeps_what_a_group_needs(
    redis_url: str, client: redis.Redis
) -> None:
    """Each stream is trimmed as ``trim_outbox`` trims it alone; a stream that does not
    exist counts 0; one of the wrong type gets its error reply in its place."""
    acked, pending, nogroup, two, missing, wrong = (f"t:{n}" for n in range(6))
    ids = {s: _fill(client, s, 5) for s in (acked, pending, nogroup, two)}
    client.xgroup_create(acked, "g", id="0")
    client.xreadgroup("g", "c", {acked: ">"})
    client.xack(acked, "g", *ids[acked])  # every entry acknowledged: all go
    client.xgroup_create(pending, "g", id="0")
    client.xreadgroup("g", "c", {pending: ">"})
    client.xack(pending, "g", *ids[pending][:2])  # the third is the oldest still needed
    client.xgroup_create(two, "a", id="0")
    client.xgroup_create(two, "b", id=ids[two][2])  # b needs the last two
    client.xreadgroup("a", "c", {two: ">"}, count=4)
    client.xack(two, "a", *ids[two][:3])  # and a still needs the fourth
    client.set(wrong, "not a stream")
    streams = [acked, pending, nogroup, two, missing, wrong]

    async def trim() -> tuple[list[Any], int]:
        counting = CountingPipelines(aredis.Redis.from_url(redis_url))
        try:
            return await trim_outboxes(counting, streams), counting.pipelines
        finally:
            await counting.client.aclose()

    results, pipelines = asyncio.run(trim())
    assert results[:5] == [5, 2, 0, 3, 0]
    assert isinstance(results[5], redis.ResponseError) and "WRONGTYPE" in str(results[5])
    assert pipelines == 3  # XINFO GROUPS, XPENDING, XTRIM: whatever the number of streams
    assert [client.xlen(s) for s in (acked, pending, nogroup, two)] == [0, 3, 5, 2]
    assert client.xrange(pending)[0][0] == ids[pending][2]
    client.delete(*streams)


def test_a_worker_claims_what_a_dead_one_left_on_many_partitions_in_pages(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    """A page of claims of every partition goes in one pipeline; a partition with more
    than a page (batch_size 3, 7 entries) is claimed over several; everything is sent
    once, in each partition's order."""
    counts = {0: 7, 1: 1, 2: 1, 3: 2}
    for pid, n in counts.items():
        store.create("orders", pid, 1, {1: b"0"}, event=watch_all([1]))
        for i in range(1, n):
            store.update("orders", pid, 1, {1: str(i).encode()})

    class Crashing(MemoryPublisher):
        worker: Worker

        def put(self, key: str, payload: bytes) -> None:
            self.worker.stop()  # a crash: what it read stays pending
            raise ZenohUnavailableError("zenoh is down")

    config = settings.replace(batch_size=3)
    crashing = Crashing()
    crashed = Worker(config.replace(consumer="w1"), publisher=crashing)
    crashing.worker = crashed
    asyncio.run(crashed.run_async(burst=True))
    outbox = {pid: PartitionKeys.of("orders", pid).outbox for pid in counts}
    held = {pid: int(client.xpending(outbox[pid], config.group)["pending"]) for pid in counts}
    assert sum(held.values()) > 0

    time.sleep(0.6)  # idle for claim_idle_ms
    rescued = MemoryPublisher()
    rescuer = Worker(config.replace(consumer="w2", claim_idle_ms=500), publisher=rescued)
    stats = asyncio.run(rescuer.run_async(burst=True))
    assert stats.claimed == sum(held.values())
    assert len(rescued.sent) == sum(counts.values())
    assert all(client.xpending(outbox[pid], config.group)["pending"] == 0 for pid in counts)


def test_a_claim_failing_on_one_partition_blames_it_alone(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    good = [PartitionKeys.of("orders", pid).outbox for pid in range(3)]
    for pid in range(3):
        store.create("orders", pid, 1, {1: b"0"}, event=watch_all([1]))
    bad = PartitionKeys.of("orders", 9).outbox
    client.set(bad, "not a stream")
    worker = Worker(settings, publisher=MemoryPublisher())

    async def claim() -> None:
        try:
            await worker.discover()  # the group on each good outbox
            for stream in [*good, bad]:
                worker.states[stream] = PartitionState(PartitionKeys.from_key(stream))
            await worker._claim([*good, bad], force=True)
        finally:
            await worker.client.aclose()

    asyncio.run(claim())
    assert bad in worker.broken and bad not in worker.states
    assert all(worker.states[s].retry_at is not None for s in good)  # force: read them


def test_pending_entries_of_many_partitions_are_read_again_page_by_page(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    """A worker restarted under its name reads its pending entries of every partition
    again: the first page of each in one pipeline, further pages alone; each entry is
    sent once and a partition's entries in order."""
    counts = {0: 5, 1: 1, 2: 3}
    for pid, n in counts.items():
        store.create("orders", pid, 1, {1: b"0"}, event=watch_all([1]))
        for i in range(1, n):
            store.update("orders", pid, 1, {1: str(i).encode()})
    config = settings.replace(batch_size=2, consumer="w1")

    class Crashing(MemoryPublisher):
        worker: Worker

        def put(self, key: str, payload: bytes) -> None:
            self.worker.stop()
            raise ZenohUnavailableError("zenoh is down")

    crashing = Crashing()
    crashed = Worker(config, publisher=crashing)
    crashing.worker = crashed
    asyncio.run(crashed.run_async(burst=True))
    for pid in counts:  # everything read, nothing acknowledged
        client.xreadgroup(config.group, "w1", {PartitionKeys.of("orders", pid).outbox: ">"})

    again = MemoryPublisher()
    stats = asyncio.run(Worker(config, publisher=again).run_async(burst=True))
    assert stats.claimed == 0 and len(again.sent) == sum(counts.values())
    keys = [key for key, _ in again.sent]
    assert len(set(keys)) == len(keys)  # each once
    for pid in counts:
        assert client.xpending(PartitionKeys.of("orders", pid).outbox, config.group)["pending"] == 0


def test_leases_are_taken_up_to_the_share_around_those_held_by_others(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Free partitions are tried as many at a time as the share lacks, again while some
    were held by another worker; all leases go back in one call at the end."""
    caplog.set_level(logging.INFO, logger="oprc_redis_events")
    parts = {p.outbox: p for p in (PartitionKeys.of("leased", pid) for pid in range(6))}
    held = list(parts.values())[:2]

    async def scenario() -> tuple[set[str], list[int]]:
        client = aredis.Redis.from_url(redis_url)
        a, b = Leases(client, "g", "a", 15_000), Leases(client, "g", "b", 15_000)
        try:
            await b.heartbeat()  # two live workers: a share of 3 each
            for p in held:
                await client.set(p.lease("g"), "b", px=60_000)
            await a.rebalance(parts)
            owned = set(a.owned)
            await a.release_all()
            return owned, [await client.exists(p.lease("g")) for p in parts.values()]
        finally:
            await client.delete(*(p.lease("g") for p in parts.values()))
            await client.aclose()

    owned, exist = asyncio.run(scenario())
    assert len(owned) == 3 and not owned & {p.outbox for p in held}
    assert exist == [1, 1, 0, 0, 0, 0]  # b's kept, a's all released
    released = [r for r in caplog.records if "released partition" in r.getMessage()]
    assert len(released) == 3


def test_a_worker_s_round_trips_do_not_grow_with_its_partitions(
    settings: Settings, store: ObjectStore, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst worker over 4 and over 32 partitions (one entry each): the groups, leases,
    claims, pending reads, acknowledgements, trimming and releases of the 28 more go out
    in the same pipelines (it was about 9 round trips per partition)."""
    import redis.asyncio.connection as connection

    sends = [0]
    send = connection.AbstractConnection.send_packed_command

    async def counted(self: Any, *args: Any, **kw: Any) -> None:
        sends[0] += 1
        await send(self, *args, **kw)

    monkeypatch.setattr(connection.AbstractConnection, "send_packed_command", counted)

    def burst(partitions: int) -> int:
        client.flushdb()
        for pid in range(partitions):
            store.create("orders", pid, 1, {1: b"0"}, event=watch_all([1]))
        sent = MemoryPublisher()
        sends[0] = 0
        asyncio.run(Worker(settings.replace(ack_delay_ms=0), publisher=sent).run_async(burst=True))
        assert len(sent.sent) == partitions
        return sends[0]

    few, many = burst(4), burst(32)
    assert many - few < 28, (few, many)


def test_a_pending_read_failing_on_one_partition_blames_it_alone(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    good = [PartitionKeys.of("orders", pid).outbox for pid in range(3)]
    for pid in range(3):
        store.create("orders", pid, 1, {1: b"0"}, event=watch_all([1]))
    bad = PartitionKeys.of("orders", 9).outbox
    client.set(bad, "not a stream")
    sent = MemoryPublisher()
    worker = Worker(settings, publisher=sent)

    async def reread() -> int:
        try:
            await worker.discover()
            for stream in good:  # read once, not acknowledged: pending
                client.xreadgroup(settings.group, settings.consumer, {stream: ">"})
            for stream in [*good, bad]:
                worker.states[stream] = PartitionState(PartitionKeys.from_key(stream))
            return await worker._read_pending([bad, *good])
        finally:
            await worker.client.aclose()

    assert asyncio.run(reread()) == 3 and len(sent.sent) == 3
    assert bad in worker.broken and bad not in worker.states
