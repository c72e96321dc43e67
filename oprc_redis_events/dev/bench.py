"""Benchmarks: each result is a ratio against a baseline measured in the same run.

=================  ====================================  ===========================================
benchmark          baseline                              measured
=================  ====================================  ===========================================
write              raw redis-py ``HSET`` (one per call)  ``store.update`` with a matching trigger
write_pipelined    raw ``HSET`` x100 in a pipeline       ``EventedRedis`` pipeline of 100 ``hset``
dispatch           raw ``XREADGROUP`` + ``XACK``         worker: read, decode, build payloads, ack
zenoh_end_to_end   raw Zenoh put to a subscriber         write -> worker -> Zenoh -> subscriber
=================  ====================================  ===========================================

Everything runs on loopback against a private ``redis-server`` (or ``--redis-url``).
With ``cluster`` and no URL a private 3-primary cluster is started beside it and
:mod:`.bench_cluster` adds rows that run the same workloads on both; with a URL and
``cluster`` the URL is a seed node of the user's cluster, benched as a single Redis is.
``python -m bench`` or ``oprc-redis-events bench``; ``--json PATH`` also writes the results.
In a Redis it is given, the bench keeps to names of its own (:data:`CLASSES`, :data:`RAW`,
consumer group :data:`GROUP`): it refuses to start when one of their keys exists, deletes
exactly those keys at the end, and never flushes anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import redis

from ..client.sync_generated.store import ObjectStore
from ..client.sync_generated.wrapper import EventedRedis
from ..config import Settings
from ..connect.redis_client import redis_client
from ..connect.zenoh_session import open_session
from ..pb.oprc_data_pb2 import ObjectEvent, TriggerTarget
from ..protocol.keys import PartitionKeys
from ..worker.loop import Worker
from ..worker.publisher import MemoryPublisher, ZenohPublisher
from .demo import DemoWorker
from .demo_names import owned_keys
from .servers import RedisServer, free_port

__all__ = ["CLASSES", "GROUP", "RAW", "Result", "run_benchmarks"]

#: the bench's classes (partition 0 of each), by benchmark
CLASSES = {
    "write": "oprc-bench-write",
    "pipelined": "oprc-bench-pipelined",
    "dispatch": "oprc-bench-dispatch",
    "zenoh": "oprc-bench-zenoh",
}
#: the bench's plain keys (the baselines')
RAW = {"write": "oprc-bench:plain:1", "pipelined": "oprc-bench:plain:2", "stream": "oprc-bench:raw"}
GROUP = "oprc-bench"


def _worker(settings: Settings, bench: str, publisher: Any) -> Worker:
    """A burst worker of the bench's own group that reads the bench's own outbox only."""
    return DemoWorker(settings.replace(group=GROUP), [CLASSES[bench]], publisher=publisher)


@dataclass
class Result:
    name: str
    unit: str
    baseline: float  # ops/s
    measured: float  # ops/s
    baseline_what: str
    measured_what: str

    @property
    def ratio(self) -> float:
        return self.measured / self.baseline if self.baseline else 0.0


def _rate(count: int, fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return count / (time.perf_counter() - started)


def _config() -> ObjectEvent:
    ev = ObjectEvent()
    ev.data_trigger[1].on_update.append(TriggerTarget(cls_id="svc", partition_id=0, fn_id="f"))
    return ev


def bench_write(client: redis.Redis, n: int) -> Result:
    store, cls = ObjectStore(client, Settings.from_env({})), CLASSES["write"]
    store.create(cls, 0, 1, {1: b"0"}, event=_config())
    raw = _rate(n, lambda: [client.hset(RAW["write"], "1", str(i)) for i in range(n)] and None)
    ours = _rate(
        n, lambda: [store.update(cls, 0, 1, {1: str(i).encode()}) for i in range(n)] and None
    )
    return Result("write", "writes/s", raw, ours, "redis-py HSET", "store.update + event")


def bench_write_pipelined(client: redis.Redis, batches: int) -> Result:
    wrapped = EventedRedis(client)
    cls = CLASSES["pipelined"]
    ObjectStore(client, Settings.from_env({})).create(cls, 0, 2, {1: b"0"}, event=_config())

    def run(target: Any, key: str) -> None:
        for b in range(batches):
            pipe = target.pipeline(transaction=False)
            for i in range(100):
                pipe.hset(key, "1", f"{b}-{i}")
            pipe.execute()

    raw = _rate(batches * 100, lambda: run(client, RAW["pipelined"]))
    ours = _rate(batches * 100, lambda: run(wrapped, PartitionKeys.of(cls, 0).obj("2")))
    return Result(
        "write_pipelined",
        "writes/s",
        raw,
        ours,
        "HSET x100 pipelined",
        "EventedRedis hset x100 pipelined",
    )


def _fill(client: redis.Redis, stream: str, n: int, fields: dict[bytes, bytes]) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.xadd(stream, fields)  # type: ignore[arg-type]
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()


def bench_dispatch(client: redis.Redis, base: Settings, n: int) -> Result:
    store, keys = (
        ObjectStore(client, Settings.from_env({})),
        PartitionKeys.of(CLASSES["dispatch"], 0),
    )
    store.create(keys.cls_id, 0, 1, {1: b"0"}, event=_config())
    store.update(keys.cls_id, 0, 1, {1: b"x" * 100})
    first: Any = client.xrange(keys.outbox, count=1)
    fields: dict[bytes, bytes] = first[0][1]
    client.delete(keys.outbox)
    stream = RAW["stream"]
    _fill(client, stream, n, fields)
    client.xgroup_create(stream, "g", id="0")

    def raw() -> None:
        while True:
            reply: Any = client.xreadgroup("g", "c", {stream: ">"}, count=500)
            if not reply:
                return
            ids = [i for _, entries in reply for i, _ in entries]
            client.xack(stream, "g", *ids)

    baseline = _rate(n, raw)
    _fill(client, keys.outbox, n, fields)
    worker = _worker(base, "dispatch", MemoryPublisher())
    ours = _rate(n, lambda: asyncio.run(worker.run_async(burst=True)))
    return Result(
        "dispatch",
        "entries/s",
        baseline,
        ours,
        "XREADGROUP+XACK (500)",
        "worker burst (decode, build, ack)",
    )


class _Arrivals:
    """Counts samples until ``expected`` have arrived."""

    def __init__(self) -> None:
        self.got = 0
        self.expected = 0
        self.done = threading.Event()

    def expect(self, n: int) -> None:
        self.got, self.expected = 0, n
        self.done.clear()

    def __call__(self, _: Any) -> None:
        self.got += 1
        if self.got >= self.expected:
            self.done.set()


def _raw_puts(sender: Any, n: int, arrivals: _Arrivals) -> None:
    import zenoh

    body = b"x" * 300
    arrivals.expect(n)
    for i in range(n):
        sender.put(
            f"oprc/svc/0/async/f/{i}", body, congestion_control=zenoh.CongestionControl.BLOCK
        )
    arrivals.done.wait(60)


def _worker_puts(
    client: redis.Redis, base: Settings, sender: Any, n: int, arrivals: _Arrivals
) -> float:
    """Queue ``n`` triggers, then time a burst worker delivering them."""
    store = ObjectStore(client, Settings.from_env({}))
    keys = PartitionKeys.of(CLASSES["zenoh"], 0)
    store.create(keys.cls_id, 0, 1, {1: b"0"}, event=_config())
    pipe = EventedRedis(client).pipeline(transaction=False)
    for i in range(n):
        pipe.hset(keys.obj("1"), "1", str(i + 1))
    pipe.execute()
    worker = _worker(base, "zenoh", ZenohPublisher(sender))
    arrivals.expect(n)

    def ours() -> None:
        asyncio.run(worker.run_async(burst=True))
        arrivals.done.wait(60)

    return _rate(n, ours)


def bench_zenoh(client: redis.Redis, base: Settings, n: int) -> Result:
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    with contextlib.ExitStack() as resources:
        router = open_session(base, mode="router", listen=(endpoint,), connect=())
        resources.callback(router.close)
        sender = open_session(base, connect=(endpoint,), listen=())
        resources.callback(sender.close)
        receiver = open_session(base, connect=(endpoint,), listen=())
        resources.callback(receiver.close)
        arrivals = _Arrivals()
        resources.callback(receiver.declare_subscriber("oprc/**", arrivals).undeclare)
        time.sleep(0.3)
        baseline = _rate(n, lambda: _raw_puts(sender, n, arrivals))
        measured = _worker_puts(client, base, sender, n, arrivals)
    return Result(
        "zenoh_end_to_end",
        "triggers/s",
        baseline,
        measured,
        "Zenoh put -> subscriber",
        "outbox -> worker -> Zenoh -> subscriber",
    )


def run_benchmarks(
    redis_url: str | None = None, *, quick: bool = False, cluster: bool = False
) -> list[Result]:
    """Run every benchmark on a private ``redis-server``, or on ``redis_url`` keeping to the
    bench's own keys (refused when one exists; deleted at the end).  With ``cluster`` and
    no URL, also the cluster rows (a private 3-primary cluster beside the single Redis);
    with a URL, ``cluster`` says it is a seed node of a Redis Cluster."""
    if redis_url is None:
        with RedisServer() as server:
            results = _run(server.url, quick, cluster=False)
            if cluster:
                from .bench_cluster import cluster_rows  # it builds on this module

                results += cluster_rows(server.url, quick=quick)
            return results
    with owned_keys(
        redis_url, list(CLASSES.values()), GROUP, list(RAW.values()), tool="bench", cluster=cluster
    ):
        return _run(redis_url, quick, cluster=cluster)


def _run(url: str, quick: bool, *, cluster: bool) -> list[Result]:
    scale = 1 if quick else 5
    client = redis_client(url, cluster=cluster)
    base = Settings.from_env({}, redis_url=url, cluster=cluster, ack_delay_ms=0)
    try:
        return [
            bench_write(client, 600 * scale),
            bench_write_pipelined(client, 10 * scale),
            bench_dispatch(client, base, 4000 * scale),
            bench_zenoh(client, base, 4000 * scale),
        ]
    finally:
        client.close()


def table(results: list[Result]) -> str:
    lines = [f"{'benchmark':<23} {'baseline':>12} {'ours':>12} {'ratio':>7}  unit / what", "-" * 95]
    for r in results:
        lines.append(
            f"{r.name:<23} {r.baseline:>12,.0f} {r.measured:>12,.0f} {r.ratio:>7.2f}  "
            f"{r.unit}: {r.measured_what} vs {r.baseline_what}"
        )
    lines.append(f"machine: {os.cpu_count()} CPU core(s) (os.cpu_count())")
    if any(r.name.startswith("cluster_") for r in results):
        lines.append(
            "cluster rows: the three primaries, the bench and its worker share those cores, "
            "so on a small machine the ratio says little about a cluster of real machines"
        )
    return "\n".join(lines)


def to_json(results: list[Result]) -> str:
    """The results as a JSON list, each with its ratio and the machine's core count."""
    cores = os.cpu_count()
    rows = [{**asdict(r), "ratio": round(r.ratio, 3), "cpu_count": cores} for r in results]
    return json.dumps(rows, indent=2)
