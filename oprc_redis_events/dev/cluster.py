"""A Redis Cluster on loopback for the tests, the benchmarks and the demo.

:class:`RedisCluster` starts ``primaries`` cluster-enabled ``redis-server`` processes (and
``replicas`` per primary) on free 127.0.0.1 ports, joins them as ``redis-cli --cluster
create`` would (slots spread evenly, CLUSTER MEET, CLUSTER REPLICATE), waits until every
node reports ``cluster_state:ok``, and always stops them all.  :meth:`reshard` moves slots
between primaries with ``redis-cli --cluster reshard``; :meth:`failover` promotes a replica.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from types import TracebackType

import redis

from ..errors import OprcEventsError
from .servers import RedisServer, free_port

__all__ = ["RedisCluster"]

SLOTS = 16384


class RedisCluster:
    """A loopback Redis Cluster for as long as the context lasts (see the module docstring)."""

    def __init__(self, primaries: int = 3, replicas: int = 0, *, node_timeout_ms: int = 2000):
        self.primaries = primaries
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.nodes: list[RedisServer] = []
        self.bus_ports: list[int] = []

    @property
    def url(self) -> str:
        """A seed node's URL (the first primary): a cluster client finds the rest."""
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    @property
    def ports(self) -> list[int]:
        return [n.port for n in self.nodes]

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=5, decode_responses=True)

    def start(self) -> RedisCluster:
        try:
            for _ in range(self.primaries * (1 + self.replicas)):
                bus = free_port()
                self.nodes.append(RedisServer(extra=self._node_args(bus)).start())
                self.bus_ports.append(bus)
            self._assign_slots()
            self._meet()
            self._wait(lambda info: info["cluster_known_nodes"] == str(len(self.nodes)))
            self._attach_replicas()
            self._wait(lambda info: info["cluster_state"] == "ok")
            self._wait_replicas()
        except BaseException:
            self.stop()
            raise
        return self

    def _node_args(self, bus: int) -> list[str]:
        # The bus port defaults to port + 10000, which a high free port overflows: pick one.
        return [
            "--cluster-port",
            str(bus),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(self.node_timeout_ms),
            "--repl-diskless-sync-delay",
            "0",  # a replica syncs at once (the default waits 5 s for more replicas)
        ]

    def _assign_slots(self) -> None:
        for i in range(self.primaries):
            first, last = SLOTS * i // self.primaries, SLOTS * (i + 1) // self.primaries - 1
            with self.client(self.nodes[i].port) as c:
                c.execute_command("CLUSTER ADDSLOTS", *range(first, last + 1))
                c.execute_command("CLUSTER SET-CONFIG-EPOCH", i + 1)

    def _meet(self) -> None:
        with self.client(self.nodes[0].port) as c:
            for node, bus in zip(self.nodes[1:], self.bus_ports[1:], strict=True):
                c.execute_command("CLUSTER MEET", "127.0.0.1", node.port, bus)

    def node_id(self, port: int) -> str:
        with self.client(port) as c:
            return str(c.execute_command("CLUSTER MYID"))

    def _attach_replicas(self) -> None:
        for r, node in enumerate(self.nodes[self.primaries :]):
            primary = self.node_id(self.nodes[r % self.primaries].port)
            with self.client(node.port) as c:
                c.execute_command("CLUSTER REPLICATE", primary)

    def _info(self, port: int) -> dict[str, str]:
        with self.client(port) as c:
            reply = c.execute_command("CLUSTER INFO")  # parsed into a dict by redis-py
        if isinstance(reply, dict):
            return {str(k): str(v) for k, v in reply.items()}
        return dict(line.split(":", 1) for line in str(reply).split() if ":" in line)

    def _wait(self, ready: object, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(ready(self._info(p)) for p in self.ports):  # type: ignore[operator]
                return
            time.sleep(0.05)
        raise OprcEventsError(f"the cluster on ports {self.ports} did not form in {timeout}s")

    def _wait_replicas(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for node in self.nodes[self.primaries :]:
            while time.monotonic() < deadline:
                with self.client(node.port) as c:
                    if c.info("replication").get("master_link_status") == "up":
                        break
                time.sleep(0.05)

    def primary_ports(self) -> list[int]:
        """The ports of the nodes that are primaries now (after failovers too)."""
        with self.client(self.nodes[0].port) as c:
            shards = c.execute_command("CLUSTER SLOTS")
        return sorted({int(shard[2][1]) for shard in shards})

    def reshard(self, source: int, target: int, slots: int) -> None:
        """Move ``slots`` slots (and their keys) from primary ``source`` to ``target``."""
        cli = shutil.which("redis-cli")
        if cli is None:
            raise OprcEventsError("redis-cli is needed to reshard (apt-get install redis-tools)")
        subprocess.run(
            [
                cli,
                "--cluster",
                "reshard",
                f"127.0.0.1:{source}",
                "--cluster-from",
                self.node_id(source),
                "--cluster-to",
                self.node_id(target),
                "--cluster-slots",
                str(slots),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )

    def failover(self, replica_port: int, timeout: float = 30.0) -> None:
        """Promote the replica on ``replica_port``.

        A manual CLUSTER FAILOVER (its primary agreeing) gives up after 5 s inside Redis when
        the replica cannot catch up or the vote does not come, which a busy machine sees: it is
        asked again, then FORCE (no agreement of the primary), then TAKEOVER (no vote).
        """
        modes = [(), (), ("FORCE",), ("TAKEOVER",)]
        deadline = time.monotonic() + timeout
        with self.client(replica_port) as c:
            for mode in modes:
                c.execute_command("CLUSTER FAILOVER", *mode)
                give_up = min(deadline, time.monotonic() + 6.0)  # Redis gives up after 5 s
                while time.monotonic() < give_up:
                    if c.info("replication").get("role") == "master":
                        return
                    time.sleep(0.05)
        raise OprcEventsError(f"the replica on port {replica_port} was not promoted in {timeout}s")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.nodes, self.bus_ports = [], []

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
