"""Keyspace capture on a Redis Cluster: a raw write on any primary is reported, also after
its slot moved to a primary that joined later, and on a promoted replica."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from oprc_redis_events import ObjectStore
from oprc_redis_events.connect.redis_client import async_redis_client, redis_client
from oprc_redis_events.dev.cluster import RedisCluster
from oprc_redis_events.dev.servers import RedisServer, free_port
from oprc_redis_events.worker.capture import KeyspaceCapture

from .helpers import events, watch_all


def key_of(pid: int) -> str:
    return f"oprc:{{orders:{pid}}}:obj:1"


def cli(port: int, *args: str) -> str:
    """``redis-cli -c`` (follows MOVED) against the node on ``port``."""
    exe = shutil.which("redis-cli")
    assert exe is not None, "redis-cli is installed with redis-server"
    out = subprocess.run(
        [exe, "-c", "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return out.stdout.strip()


def wait(ready: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


class RunningCapture:
    """A :class:`KeyspaceCapture` on a cluster client, in its own thread and event loop."""

    def __init__(self, url: str) -> None:
        self.capture: KeyspaceCapture | None = None
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.thread = threading.Thread(
            target=self.loop.run_until_complete, args=(self._main(url),), daemon=True
        )
        self.thread.start()
        wait(lambda: self.capture is not None and self.capture.stats.reconciles > 0, "a reconcile")

    async def _main(self, url: str) -> None:
        client = async_redis_client(url, cluster=True)
        try:
            self.capture = KeyspaceCapture(client)
            await self.capture.run(self.stop)
        finally:
            await client.aclose()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(30)
        assert not self.thread.is_alive(), "the capture did not stop"
        self.loop.close()


def listening(capture: KeyspaceCapture, cluster: RedisCluster, port: int) -> bool:
    """The capture is subscribed at the node on ``port`` and turned notifications on there."""
    node = capture.nodes.nodes.get(f"127.0.0.1:{port}")
    if node is None or node.pubsub is None:
        return False
    with cluster.client(port) as c:
        return "K" in str(c.config_get("notify-keyspace-events"))


@pytest.fixture
def capturing() -> Iterator[Callable[[str], KeyspaceCapture]]:
    running: list[RunningCapture] = []

    def start(url: str) -> KeyspaceCapture:
        running.append(RunningCapture(url))
        assert running[-1].capture is not None
        return running[-1].capture

    yield start
    for r in running:
        r.close()


def test_a_redis_cli_hset_on_each_primary_is_reported(
    cluster_url: str, redis_cluster_server: RedisCluster, capturing
) -> None:  # type: ignore[no-untyped-def]
    client = redis_client(cluster_url, cluster=True)
    store = ObjectStore.from_url(cluster_url, cluster=True)
    try:
        on: dict[int, int] = {}  # primary port -> a partition whose keys live there
        for pid in range(64):
            on.setdefault(client.get_node_from_key(key_of(pid)).port, pid)  # type: ignore[attr-defined]
        assert sorted(on) == redis_cluster_server.primary_ports()
        for pid in on.values():
            store.create("orders", pid, 1, {1: b"a"}, event=watch_all([1, "name"]))
        capture = capturing(cluster_url)
        for port, pid in on.items():
            cli(port, "HSET", key_of(pid), "1", "b", "name", "ann")
            assert "K" in cli(port, "CONFIG", "GET", "notify-keyspace-events")
        expected = [("CREATE", "1", b"a"), ("UPDATE", "1", b"b"), ("CREATE", "name", b"ann")]
        for pid in on.values():
            wait(lambda p=pid: len(events(client, "orders", p)) >= 3, f"partition {pid}")  # type: ignore[misc]
            assert events(client, "orders", pid) == expected
        # Reported from each primary's notifications, not by a later reconcile.
        assert capture.stats.reconciles == 1 and capture.stats.notifications >= 3
        assert sorted(capture.nodes.nodes) == [f"127.0.0.1:{p}" for p in sorted(on)]
    finally:
        store.close()
        client.close()


def reshard(cluster: RedisCluster, source: int, target: int, slots: int) -> None:
    exe = shutil.which("redis-cli")
    assert exe is not None
    args = ["--cluster-from", cluster.node_id(source), "--cluster-to", cluster.node_id(target)]
    cmd = [exe, "--cluster", "reshard", f"127.0.0.1:{source}", *args]
    out = subprocess.run(
        [*cmd, "--cluster-slots", str(slots), "--cluster-yes"], capture_output=True, text=True
    )
    lines = [line for line in out.stdout.splitlines() if "Moving slot" not in line]
    assert out.returncode == 0, "\n".join(lines[-30:]) + out.stderr


def add_primary(cluster: RedisCluster) -> RedisServer:
    """A new, empty cluster node that every node knows (stopped with the cluster)."""
    bus = free_port()
    node = RedisServer(extra=cluster._node_args(bus)).start()
    cluster.nodes.append(node)
    cluster.bus_ports.append(bus)
    with cluster.client(cluster.nodes[0].port) as c:
        c.execute_command("CLUSTER MEET", "127.0.0.1", node.port, bus)
    cluster._wait(lambda info: info["cluster_known_nodes"] == str(len(cluster.nodes)))
    cluster._wait(lambda info: info["cluster_state"] == "ok")  # the new node too
    exe = shutil.which("redis-cli")
    assert exe is not None
    check = [exe, "--cluster", "check", f"127.0.0.1:{node.port}"]
    wait(lambda: subprocess.run(check, capture_output=True).returncode == 0, "nodes to agree")
    return node


def test_a_slot_moved_to_a_primary_added_later_is_still_reported() -> None:
    with RedisCluster(primaries=3) as cluster:
        client = redis_client(cluster.url, cluster=True)
        store = ObjectStore.from_url(cluster.url, cluster=True)
        running: RunningCapture | None = None
        try:
            source = cluster.ports[0]  # slots 0-5460; a reshard moves the first ones
            pid = next(p for p in range(1000) if client.keyslot(key_of(p)) < 2000)  # type: ignore[attr-defined]
            store.create("orders", pid, 1, {1: b"a"}, event=watch_all([1]))
            running = RunningCapture(cluster.url)
            capture = running.capture
            assert capture is not None
            new = add_primary(cluster)
            name = f"127.0.0.1:{new.port}"
            reshard(cluster, source, new.port, 2000)
            slot = client.keyslot(key_of(pid))  # type: ignore[attr-defined]
            with cluster.client(new.port) as c:
                assert c.execute_command("CLUSTER COUNTKEYSINSLOT", slot) > 0  # it moved
            wait(
                lambda: (
                    name in capture.nodes.nodes
                    and capture.nodes.nodes[name].pubsub is not None
                    and capture.nodes.node_of(key_of(pid)).name == name
                ),
                "the capture to follow the new primary",
            )
            cli(new.port, "HSET", key_of(pid), "1", "moved")
            wait(lambda: len(events(client, "orders", pid)) >= 2, "the raw write's event")
            assert events(client, "orders", pid) == [
                ("CREATE", "1", b"a"),
                ("UPDATE", "1", b"moved"),
            ]
        finally:
            if running is not None:
                running.close()  # before the cluster stops
            store.close()
            client.close()


def test_a_promoted_replica_is_listened_on() -> None:
    with RedisCluster(primaries=3, replicas=1) as cluster:
        client = redis_client(cluster.url, cluster=True)
        store = ObjectStore.from_url(cluster.url, cluster=True)
        running: RunningCapture | None = None
        try:
            primary, replica = cluster.ports[0], cluster.ports[3]  # the replica of the first
            pid = next(p for p in range(64) if client.get_node_from_key(key_of(p)).port == primary)  # type: ignore[attr-defined]
            store.create("orders", pid, 1, {1: b"a"}, event=watch_all([1]))
            running = RunningCapture(cluster.url)
            capture = running.capture
            assert capture is not None
            assert "K" not in cli(replica, "CONFIG", "GET", "notify-keyspace-events")
            cluster.failover(replica)
            wait(lambda: listening(capture, cluster, replica), "the promoted replica")
            assert f"127.0.0.1:{primary}" not in capture.nodes.nodes  # a replica now
            cli(replica, "HSET", key_of(pid), "1", "promoted")
            wait(lambda: len(events(client, "orders", pid)) >= 2, "the raw write's event")
            assert events(client, "orders", pid) == [
                ("CREATE", "1", b"a"),
                ("UPDATE", "1", b"promoted"),
            ]
        finally:
            if running is not None:
                running.close()
            store.close()
            client.close()
