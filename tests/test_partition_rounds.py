"""A worker's upkeep of many partitions goes out in a few round trips (pipelines), and
still blames a partition whose key is broken alone: trimming, claims, lease takes and
releases, group creation, and the re-read of pending entries."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
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
from oprc_redis_events.worker.retention import acknowledged_bound, trim_outboxes

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


class Tampered:
    """A client whose next pipeline of ``command`` has its replies passed through
    ``tamper`` (a reply lost and the command sent again, a cluster error in place...)."""

    def __init__(
        self, client: aredis.Redis, tamper: Callable[[list[Any]], list[Any]], command: str
    ) -> None:
        self.client, self.tamper, self.command = client, tamper, command

    def pipeline(self, *args: Any, **kw: Any) -> Any:
        pipe = self.client.pipeline(*args, **kw)
        execute = pipe.execute

        async def tampered(*a: Any, **k: Any) -> list[Any]:
            replies = await execute(*a, **k)
            if self.tamper is None or pipe_command != self.command:
                return replies
            tamper, self.tamper = self.tamper, None  # once
            return tamper(replies)

        pipe_command = ""

        def first(*a: Any, **k: Any) -> Any:
            nonlocal pipe_command
            pipe_command = pipe_command or str(a[0])
            return queue(*a, **k)

        queue = pipe.execute_command
        pipe.execute_command = first  # type: ignore[method-assign]
        pipe.execute = tampered  # type: ignore[method-assign]
        return pipe

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


class Crashing(MemoryPublisher):
    """A publisher that fails and stops its worker at the first PUT: a crash, what the
    worker read stays pending."""

    worker: Worker

    def put(self, key: str, payload: bytes) -> None:
        self.worker.stop()
        raise ZenohUnavailableError("zenoh is down")


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


def _three_and_a_broken(store: ObjectStore, client: redis.Redis) -> tuple[list[str], str]:
    """The outboxes of three partitions with an entry each, and a fourth outbox key that is
    not a stream."""
    good = [PartitionKeys.of("orders", pid).outbox for pid in range(3)]
    for pid in range(3):
        store.create("orders", pid, 1, {1: b"0"}, event=watch_all([1]))
    bad = PartitionKeys.of("orders", 9).outbox
    client.set(bad, "not a stream")
    return good, bad


def test_a_claim_failing_on_one_partition_blames_it_alone(
    settings: Settings, store: ObjectStore, client: redis.Redis
) -> None:
    good, bad = _three_and_a_broken(store, client)
    worker = Worker(settings.replace(claim_idle_ms=500), publisher=MemoryPublisher())

    async def claim() -> None:
        try:
            await worker.discover()  # the group on each good outbox
            for stream in good:  # read by a worker that died since
                client.xreadgroup(settings.group, "dead", {stream: ">"})
            await asyncio.sleep(0.6)  # idle for claim_idle_ms
            for stream in [*good, bad]:
                worker.states[stream] = PartitionState(PartitionKeys.from_key(stream))
            await worker._claim([*good, bad])
        finally:
            await worker.client.aclose()

    asyncio.run(claim())
    assert bad in worker.broken and bad not in worker.states
    assert worker.stats.claimed == 3
    assert all(worker.states[s].retry_at is not None for s in good)  # to be read now


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
    good, bad = _three_and_a_broken(store, client)
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


PARTS = {p.outbox: p for p in (PartitionKeys.of("leased", pid) for pid in range(3))}


def _take(url: str, tamper: Callable[[list[Any]], list[Any]]) -> tuple[Any, set[str], list[Any]]:
    """Leases for 3 partitions taken by ``a`` through a client whose SET NX pipeline's
    replies are tampered with: what it raised, what it owns, who holds each lease."""

    async def scenario() -> tuple[Any, set[str], list[Any]]:
        client = aredis.Redis.from_url(url)
        leases = Leases(client, "g", "a", 15_000)
        leases.client = Tampered(client, tamper, "SET")  # type: ignore[assignment]
        raised: Any = None
        try:
            await leases.rebalance(PARTS)
        except redis.RedisError as err:
            raised = err
        try:
            return (
                raised,
                set(leases.owned),
                [await client.get(p.lease("g")) for p in PARTS.values()],
            )
        finally:
            await client.delete(*(p.lease("g") for p in PARTS.values()))
            await client.aclose()

    return asyncio.run(scenario())


def test_a_take_with_a_cluster_error_in_place_records_the_others_and_raises(
    redis_url: str,
) -> None:
    """redis-py's cluster pipeline returns an error about the cluster in place: that lease is
    not ours (it was never set), the others are recorded, and the error is raised."""

    def tamper(replies: list[Any]) -> list[Any]:
        return [replies[0], redis.exceptions.ClusterError("TTL exhausted."), replies[2]]

    raised, owned, holders = _take(redis_url, tamper)
    assert isinstance(raised, redis.exceptions.ClusterError)
    assert len(owned) == 2  # the one whose reply was an error is not read
    assert holders == [b"a"] * 3  # (this fake one was set: it expires, then is taken)


def test_a_release_that_could_not_be_sent_keeps_the_leases(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> tuple[set[str], set[str]]:
        client = aredis.Redis.from_url(redis_url)
        leases = Leases(client, "g", "a", 15_000)
        try:
            await leases.rebalance(PARTS)
            before = set(leases.owned)

            async def down(action: str, partitions: list[PartitionKeys]) -> list[Any]:
                raise redis.ConnectionError("connection lost")

            monkeypatch.setattr(leases, "_calls", down)
            with pytest.raises(redis.ConnectionError):
                await leases.release_all()
            return before, set(leases.owned)
        finally:
            await client.delete(*(p.lease("g") for p in PARTS.values()))
            await client.aclose()

    before, after = asyncio.run(scenario())
    assert before == after == set(PARTS)  # released, or renewed, next round


def test_trimming_raises_a_cluster_error_returned_in_place(redis_url: str) -> None:
    async def trim() -> None:
        client = aredis.Redis.from_url(redis_url)
        await client.xadd("t:c", {"n": "1"})
        tamper = lambda replies: [redis.exceptions.ClusterError("TTL exhausted.")] * len(replies)  # noqa: E731
        try:
            with pytest.raises(redis.exceptions.ClusterError):
                await trim_outboxes(Tampered(client, tamper, "XINFO GROUPS"), ["t:c", "t:d"])
        finally:
            await client.delete("t:c")
            await client.aclose()

    asyncio.run(trim())


@pytest.mark.quick
def test_a_group_whose_pending_entries_were_acknowledged_between_the_phases() -> None:
    """XINFO GROUPS said pending, XPENDING then found none: the group needs what it was
    not delivered yet, nothing more."""
    group = {"name": b"g", "pending": 2, "last-delivered-id": b"5-0"}
    assert acknowledged_bound([group], {b"g": None}) == "5-1"
    assert acknowledged_bound([group], {b"g": b"3-0"}) == "3-0"


def test_a_partition_taken_is_read_only_after_its_claim(
    settings: Settings, store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the claim of a partition just taken is in flight, the loop must not read its
    new entries before the older ones the claim takes: it is not among the partitions read
    until then, and then its pending entries are read first."""
    for pid in range(3):
        store.create("orders", pid, 1, {1: b"0"}, event=watch_all([1]))
    worker = Worker(settings, publisher=MemoryPublisher())
    seen: list[set[str]] = []
    claim = worker._claim

    async def watched(streams: list[str]) -> None:
        seen.append(set(streams) & set(worker.states))
        await claim(streams)

    monkeypatch.setattr(worker, "_claim", watched)

    async def take() -> None:
        try:
            await worker.maintain(quick=True)
        finally:
            await worker.client.aclose()

    asyncio.run(take())
    assert seen == [set()] and len(worker.states) == 3
    assert all(state.retry_at is not None for state in worker.states.values())
