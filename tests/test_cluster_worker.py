"""The worker on a Redis Cluster: reads per partition on every primary, follows slots
that move and primaries that fail over, and hands a killed worker's entries to another.

The non-destructive tests share the session cluster; those that reshard or fail over
start their own (and stop it).  Writes go through ``ObjectStore`` on a cluster client.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.cluster

from oprc_redis_events import ObjectStore, Settings
from oprc_redis_events.connect.redis_client import redis_client
from oprc_redis_events.dev.cluster import RedisCluster
from oprc_redis_events.protocol.decode import ReceivedTrigger, decode_trigger
from oprc_redis_events.protocol.keys import PARTITIONS_KEY, PartitionKeys
from oprc_redis_events.worker.loop import Worker, WorkerStats
from oprc_redis_events.worker.publisher import MemoryPublisher

from .conftest import ZenohHub
from .helpers import RunningWorker, watch_all
from .test_reliability import Processes

PARTITIONS = 64


def settings_for(url: str, **kw: object) -> Settings:
    return Settings.from_env({}, redis_url=url, cluster=True, claim_idle_ms=1000, **kw)


@contextmanager
def cluster_store(url: str) -> Iterator[ObjectStore]:
    store = ObjectStore(redis_client(url, cluster=True), settings_for(url))
    try:
        yield store
    finally:
        store.close()


@contextmanager
def workers(url: str, count: int, **kw: object) -> Iterator[list[MemoryPublisher]]:
    """``count`` workers on the cluster in threads, each with its own in-memory publisher."""
    running: list[RunningWorker] = []
    publishers = [MemoryPublisher() for _ in range(count)]
    try:
        for publisher in publishers:
            worker = Worker(
                settings_for(url, **kw), publisher=publisher, block_ms=50, discover_interval=0.05
            )
            running.append(RunningWorker(worker))
        yield publishers
    finally:
        for r in running:
            r.stop()


def received(publishers: list[MemoryPublisher]) -> list[ReceivedTrigger]:
    return [decode_trigger(key, body) for p in publishers for key, body in list(p.sent)]


def values(publishers: list[MemoryPublisher]) -> set[bytes]:
    return {bytes(t.payload.original_payload) for t in received(publishers)}


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


def burst(worker: Worker) -> WorkerStats:
    return asyncio.run(asyncio.wait_for(worker.run_async(burst=True), 60))


def create_partitions(store: ObjectStore, count: int = PARTITIONS) -> None:
    for pid in range(count):
        store.create("orders", pid, 1, {1: b"start"}, event=watch_all([1]))


def unsettled(client: redis.cluster.RedisCluster, group: str = "oprc-events") -> dict[str, int]:
    """Outboxes whose group has entries pending or not yet read (every primary)."""
    late: dict[str, int] = {}
    for pid in range(PARTITIONS):
        stream = PartitionKeys.of("orders", pid).outbox
        for info in client.xinfo_groups(stream):
            if info["name"] in (group, group.encode()):
                behind = int(info["pending"]) + int(info.get("lag") or 0)
                if behind:
                    late[stream] = behind
    return late


class Writer:
    """Updates objects of the 64 partitions in a thread, recording each acknowledged value;
    a write refused while the cluster changes is counted, and not acknowledged."""

    def __init__(self, store: ObjectStore, limit: int) -> None:
        self.store = store
        self.limit = limit
        self.acknowledged: list[bytes] = []
        self.refused = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for i in range(self.limit):
            if self._stop.is_set():
                return
            value = f"w{i}".encode()
            try:
                self.store.update("orders", i % PARTITIONS, 1, {1: value})
            except Exception:
                self.refused += 1
                continue
            self.acknowledged.append(value)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive()


def test_writes_over_64_partitions_land_on_every_primary_and_two_workers_deliver_each_once(
    cluster_url: str, redis_cluster_server: RedisCluster
) -> None:
    with cluster_store(cluster_url) as store, workers(cluster_url, 2) as pubs:
        client = store.client
        owners = {
            client.get_node_from_key(PartitionKeys.of("orders", p).outbox).port  # type: ignore[attr-defined]
            for p in range(PARTITIONS)
        }
        assert owners == set(redis_cluster_server.primary_ports())
        create_partitions(store)
        for pid in range(PARTITIONS):
            store.update("orders", pid, 1, {1: f"u{pid}".encode()})
        expected = {b"start"} | {f"u{p}".encode() for p in range(PARTITIONS)}
        assert wait_until(lambda: len(received(pubs)) >= 2 * PARTITIONS)
        time.sleep(0.5)  # anything sent twice would show up by now
        got = received(pubs)
        assert len(got) == 2 * PARTITIONS, "none twice while both workers stay up"
        assert len({t.invocation_id for t in got}) == 2 * PARTITIONS
        assert values(pubs) == expected
        assert all(p.sent for p in pubs), "both workers took a share of the partitions"


def test_discovery_scans_every_primary_when_the_registry_is_gone(cluster_url: str) -> None:
    with cluster_store(cluster_url) as store:
        create_partitions(store)
        store.client.delete(PARTITIONS_KEY)
        publisher = MemoryPublisher()
        worker = Worker(settings_for(cluster_url), publisher=publisher)
        stats = burst(worker)
    assert stats.triggers_sent == PARTITIONS
    assert len(worker.partitions) == PARTITIONS


def test_a_new_partition_is_taken_at_once_not_at_the_next_discovery(cluster_url: str) -> None:
    """The write script's announcement reaches a worker subscribed through another node."""
    publisher = MemoryPublisher()
    settings = settings_for(cluster_url).replace(claim_idle_ms=600_000)  # else leases cap it
    worker = Worker(settings, publisher=publisher, discover_interval=60.0)
    running = RunningWorker(worker)
    try:
        assert wait_until(lambda: worker.announcements.listening, 10)
        with cluster_store(cluster_url) as store:
            for pid in (5, 9, 13):  # slots on different primaries
                store.create("fresh", pid, 1, {1: b"a"}, event=watch_all([1]))
        # discovery runs every 60 s: only the announcement can bring them this soon
        assert wait_until(lambda: len(publisher.sent) == 3, 10), publisher.sent
    finally:
        running.stop()


def test_an_outbox_of_the_wrong_type_skips_its_partition_only(cluster_url: str) -> None:
    with cluster_store(cluster_url) as store, workers(cluster_url, 1) as pubs:
        create_partitions(store, 8)
        assert wait_until(lambda: len(received(pubs)) >= 8)
        bad = PartitionKeys.of("orders", 3).outbox
        store.client.delete(bad)
        store.client.set(bad, "not a stream")
        for pid in range(8):
            if pid != 3:
                store.update("orders", pid, 1, {1: f"after{pid}".encode()})
        assert wait_until(lambda: len(received(pubs)) >= 15)
        assert values(pubs) >= {f"after{p}".encode() for p in range(8) if p != 3}


def test_a_slot_moving_under_a_function_result_is_retried_not_dead_lettered(
    cluster_url: str,
) -> None:
    """A write the worker makes (invoke delivery records the function's result) refused
    while a slot moves is waited out and retried: no failed attempt, no dead letter."""
    with cluster_store(cluster_url) as store:
        ev = watch_all([1])
        for dt in ev.data_trigger.values():
            for target in dt.on_update:
                target.cls_id, target.object_id = "orders", 1  # stateful: result recorded
        store.create("orders", 0, 1, {1: b"a"}, event=ev)
        store.update("orders", 0, 1, {1: b"b"})
        worker = Worker(settings_for(cluster_url), publisher=MemoryPublisher(), delivery="invoke")
        record = worker.dispatcher._record
        refused: list[int] = []

        async def moving(*args: object) -> None:
            if not refused:
                refused.append(1)
                raise redis.exceptions.TryAgainError("Multiple keys request during rehashing")
            await record(*args)  # type: ignore[arg-type]

        worker.dispatcher._record = moving  # type: ignore[method-assign]
        burst(worker)
    assert refused
    assert worker.stats.retries == 0 and worker.stats.dead_letters == 0
    assert worker.stats.triggers_sent >= 1
    assert not store.client.exists(PartitionKeys.of("orders", 0).dead_letters)


def run_under_load(
    cluster: RedisCluster, change: Callable[[], None], writes: int
) -> tuple[Writer, list[MemoryPublisher], dict[str, int]]:
    """Write ``writes`` times and dispatch (two workers) while ``change`` runs; wait until
    every acknowledged write's trigger arrived; return the writer, the publishers and the
    outboxes still behind."""
    with cluster_store(cluster.url) as store, workers(cluster.url, 2) as pubs:
        create_partitions(store)
        writer = Writer(store, writes)
        assert wait_until(lambda: len(writer.acknowledged) >= 100)
        before = len(writer.acknowledged)
        change()
        during = len(writer.acknowledged) - before
        writer.thread.join(120)
        writer.stop()
        wanted = set(writer.acknowledged) | {b"start"}
        wait_until(lambda: values(pubs) >= wanted, timeout=90)
        client = store.client
        assert isinstance(client, redis.cluster.RedisCluster)
        wait_until(lambda: not unsettled(client), timeout=30)
        got = received(pubs)
        print(
            f"\n{len(writer.acknowledged)} writes acknowledged ({during} while the cluster "
            f"changed), {writer.refused} refused, "
            f"{len(got) - len({t.invocation_id for t in got})} duplicate trigger(s)"
        )
        return writer, pubs, unsettled(client)


def partition_ports(url: str) -> dict[int, int]:
    """The port of the primary that serves each partition now (a fresh client asks)."""
    client = redis_client(url, cluster=True)
    try:
        return {
            p: client.get_node_from_key(PartitionKeys.of("orders", p).outbox).port  # type: ignore[attr-defined]
            for p in range(PARTITIONS)
        }
    finally:
        client.close()


def test_slots_moving_while_writes_and_dispatch_go_on() -> None:
    with RedisCluster(primaries=3) as cluster:
        source, target = cluster.primary_ports()[:2]
        before = partition_ports(cluster.url)
        writer, pubs, late = run_under_load(
            cluster, lambda: cluster.reshard(source, target, 3000), writes=3000
        )
        moved = [p for p, port in partition_ports(cluster.url).items() if port != before[p]]
        assert moved, "the reshard moved some of the partitions"
        print(f"{len(moved)} of {PARTITIONS} partitions moved to another primary")
    missing = set(writer.acknowledged) - values(pubs)
    assert not missing, f"{len(missing)} acknowledged write(s) without their trigger"
    assert not late, f"partitions stuck after the reshard: {late}"


def test_a_primary_failed_over_to_its_replica_under_load() -> None:
    with RedisCluster(primaries=3, replicas=1) as cluster:
        replica = cluster.ports[3]  # the replica of the first primary
        writer, pubs, late = run_under_load(cluster, lambda: cluster.failover(replica), writes=1500)
        assert replica in cluster.primary_ports()
    # A coordinated CLUSTER FAILOVER waits for the replica to catch up: nothing is lost.
    missing = set(writer.acknowledged) - values(pubs)
    assert not missing, f"{len(missing)} acknowledged write(s) without their trigger"
    assert not late, f"partitions stuck after the failover: {late}"


def test_a_killed_worker_s_pending_entries_are_claimed_by_the_other(
    cluster_url: str, zenoh_hub: ZenohHub, tmp_path: Path
) -> None:
    inbox = zenoh_hub.subscribe()
    total = 8 * 250
    with cluster_store(cluster_url) as store:
        create_partitions(store, 8)
        for i in range(total - 8):
            store.update("orders", i % 8, 1, {1: f"w{i}".encode()})
    procs = Processes(tmp_path)
    try:
        # OPRC_EVENTS_CLUSTER: the environment's name for `worker --cluster`
        env = {"OPRC_EVENTS_CLUSTER": "true", "OPRC_EVENTS_CLAIM_IDLE_MS": "1000"}
        first = procs.worker(cluster_url, zenoh_hub.endpoint, "--batch-size", "20", **env)
        assert wait_until(lambda: len(inbox.items) >= 100, timeout=60)
        procs.worker(cluster_url, zenoh_hub.endpoint, **env)
        first.kill()  # SIGKILL: nothing acknowledged or released
        first.wait(10)
        at_kill = len({t.invocation_id for t in inbox.items})
        assert at_kill < total, "killed mid-stream"
        done = wait_until(lambda: len({t.invocation_id for t in inbox.items}) >= total, 60)
        assert done, procs.log(1)[-3000:]
        claims = [line for line in procs.log(1).splitlines() if "claimed" in line]
        print(f"\nkilled after {at_kill} of {total} triggers; {len(claims)} claim(s) by the other")
        assert "claimed" in procs.log(1), "the other worker claimed what the killed one held"
    finally:
        procs.stop()
    got = {bytes(t.payload.original_payload) for t in inbox.items}
    assert got == {b"start"} | {f"w{i}".encode() for i in range(total - 8)}


# redis-py's cluster pipeline drops the connections CLIENT KILL closed without closing them
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_acknowledgements_of_many_partitions_survive_lost_connections_and_slots(
    cluster_url: str, redis_cluster_server: RedisCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The due acknowledgements of every partition go out in one cluster pipeline: a reply
    lost with its connection is asked again (redis-py returns it in place), and a slot no
    node serves puts every acknowledgement back for the next flush (none is lost)."""
    import redis.asyncio as aredis_
    from redis.exceptions import SlotNotCoveredError

    from oprc_redis_events.worker.acks import FLUSH_INTERVAL_S, DeferredAck
    from oprc_redis_events.worker.discovery import PartitionState

    async def scenario() -> list[int]:
        worker = Worker(settings_for(cluster_url), publisher=MemoryPublisher())
        client: aredis_.RedisCluster = worker.client  # type: ignore[assignment]
        parts = [PartitionKeys.of("acked", pid) for pid in range(6)]
        group = worker.settings.group

        async def deliver() -> None:
            for p in parts:
                entry = (await client.xadd(p.outbox, {"a": "1"})).decode()
                await client.xreadgroup(group, "c1", {p.outbox: ">"})
                worker.acks.add(DeferredAck.of(time.monotonic() - 1, p, [entry], []))

        for p in parts:
            await client.xgroup_create(p.outbox, group, id="0", mkstream=True)
            worker.states[p.outbox] = PartitionState(p)
            worker.partitions[p.outbox] = p
        await deliver()
        for port in redis_cluster_server.primary_ports():  # every pooled connection dropped
            with redis_cluster_server.client(port) as node:
                node.client_kill_filter(_type="normal", skipme=True)
        await worker._flush_acks()
        assert worker.acks.items == []
        await deliver()

        async def uncovered(ready: Any) -> Any:  # a slot no node serves (not a RedisError)
            raise SlotNotCoveredError("slot 1 is not covered")

        monkeypatch.setattr(worker, "_acknowledge", uncovered)
        await asyncio.sleep(FLUSH_INTERVAL_S)  # acknowledgements flush at most this often
        with pytest.raises(SlotNotCoveredError):
            await worker._flush_acks()
        assert len(worker.acks.items) == len(parts)  # all put back
        monkeypatch.undo()
        await asyncio.sleep(FLUSH_INTERVAL_S)
        await worker._flush_acks()
        pending = [(await client.xpending(p.outbox, group))["pending"] for p in parts]
        await client.delete(*(p.outbox for p in parts))
        await client.aclose()
        return pending

    assert asyncio.run(scenario()) == [0] * 6
