"""Benchmarks: each row is a ratio against a baseline measured in the same run.

Every row gives its name, its unit, the measured figure, the baseline figure and their ratio
(measured / baseline), which way is better and the goal of issue 12 / 16 it answers.  The rows,
in order (see :data:`ROWS` and the README's "Performance"):

* write path (:mod:`.bench_write`): ``write``, ``write_pipelined``, ``write_batch``,
  ``write_events_disabled``, ``payload_json``, ``payload_protobuf`` (and
  ``payload_{json,protobuf}_new_objects``), ``match_redis_time``, and the growth rows
  ``write_triggers_{1,10,100}``, ``write_targets_{1,10,100}``, ``write_condition``,
  ``condition_eval``;
* worker (:mod:`.bench_e2e`, :mod:`.bench_worker`): ``dispatch`` (in process), ``worker`` and
  ``worker_x2`` (the CLI worker in its own process, the subscriber in another),
  ``latency_p50``/``latency_p99``/``latency_p999`` at a steady ``--rate``,
  ``new_partition_first_event``, ``worker_partitions_{1,16,256}``;
* memory (:mod:`.bench_memory`, :mod:`.bench_e2e`): ``memory_config_index``,
  ``memory_shadow``, ``outbox_length``, ``worker_rss``.

Everything runs on loopback against a private ``redis-server`` (or ``--redis-url``).  With
``cluster`` and no URL a private 3-primary cluster is started beside it and
:mod:`.bench_cluster` adds rows that run the same workloads on both.  In a Redis it is given,
the bench keeps to names of its own (:mod:`.bench_keys`): it refuses to start when one of
their keys exists, deletes exactly those keys at the end, and never flushes anything.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..config import Settings
from ..pb.oprc_data_pb2 import ObjectEvent, TriggerTarget
from ..worker.loop import Worker
from .demo import DemoWorker

__all__ = [
    "CLASSES", "GROUP", "RAW", "Result", "Sizes", "run_benchmarks", "step", "table", "to_json",
]  # fmt: skip

#: the bench's classes, by benchmark (every class name starts with ``oprc-bench-``)
CLASSES = {
    "write": "oprc-bench-write",
    "pipelined": "oprc-bench-pipelined",
    "dispatch": "oprc-bench-dispatch",
    "zenoh": "oprc-bench-zenoh",
    "e2e": "oprc-bench-e2e",
    "new": "oprc-bench-new",
    "growth": "oprc-bench-growth",
    "memory": "oprc-bench-memory",
}
#: the bench's plain keys (the baselines'; every one starts with ``oprc-bench:``)
RAW = {"write": "oprc-bench:plain:1", "pipelined": "oprc-bench:plain:2", "stream": "oprc-bench:raw"}
GROUP = "oprc-bench"


@dataclass
class Result:
    name: str
    unit: str
    baseline: float
    measured: float
    baseline_what: str
    measured_what: str
    better: str = "higher"  # which way the measured figure is better: "higher" or "lower"
    goal: str = ""  # the goal for the ratio, e.g. "<= 1.3"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.measured / self.baseline if self.baseline else 0.0


@dataclass(frozen=True)
class Sizes:
    """How much each benchmark does: ``quick`` for a smoke run of seconds, ``full`` for the
    long run (the worker's RSS over 1M triggers unless ``rss_triggers`` says otherwise)."""

    quick: bool = False
    full: bool = False
    rate: float = 1000.0
    rss_triggers: int | None = None

    @property
    def scale(self) -> int:
        return 1 if self.quick else 5

    @property
    def writes(self) -> int:
        return 100 if self.quick else 3000

    @property
    def entries(self) -> int:
        return 1000 if self.quick else 20000

    @property
    def latency_writes(self) -> int:
        return max(20, int(self.rate * (0.2 if self.quick else 5)))

    @property
    def rss(self) -> int:
        if self.rss_triggers is not None:
            return self.rss_triggers
        return 2000 if self.quick else (1_000_000 if self.full else 100_000)


def step(name: str) -> contextlib.AbstractContextManager[None]:
    """A progress line on stderr as the benchmark ``name`` starts and as it ends."""
    return _step(name)


@contextlib.contextmanager
def _step(name: str) -> Iterator[None]:
    print(f"bench: {name} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    yield
    print(
        f"bench: {name} done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True
    )


def rate(count: int, fn: Callable[[], object]) -> float:
    """``count`` / the seconds ``fn`` took."""
    started = time.perf_counter()
    fn()
    return count / (time.perf_counter() - started)


def per_op_us(count: int, op: Callable[[int], object]) -> float:
    """Microseconds per call of ``op(0) .. op(count - 1)``, their results dropped (kept in
    a list, they would make the garbage collector's work and the memory part of what is
    timed)."""

    def each() -> None:
        for i in range(count):
            op(i)

    return 1e6 / rate(count, each)


def fill(client: Any, stream: str, n: int, fields: dict[bytes, bytes]) -> None:
    """XADD ``n`` copies of ``fields`` to ``stream``, pipelined 1000 at a time."""
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.xadd(stream, fields)
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()


def config(targets: int = 1, triggers: int = 1) -> ObjectEvent:
    """Field 1's updates go to ``targets`` targets; ``triggers`` - 1 more fields have one."""
    ev = ObjectEvent()
    for t in range(targets):
        ev.data_trigger[1].on_update.append(
            TriggerTarget(cls_id="svc", partition_id=0, fn_id=f"f{t}" if t else "f")
        )
    for k in range(2, triggers + 1):
        ev.data_trigger[k].on_update.append(TriggerTarget(cls_id="svc", partition_id=0, fn_id="g"))
    return ev


def burst_worker(settings: Settings, cls_id: str, publisher: Any, partitions: Any = (0,)) -> Worker:
    """A burst worker of the bench's own group that reads the bench's own outboxes only."""
    return DemoWorker(
        settings.replace(group=GROUP), [cls_id], partitions=partitions, publisher=publisher
    )


def run_benchmarks(
    redis_url: str | None = None,
    *,
    quick: bool = False,
    cluster: bool = False,
    sizes: Sizes | None = None,
) -> list[Result]:
    """Run every benchmark on a private ``redis-server``, or on ``redis_url`` keeping to the
    bench's own keys (refused when one exists; deleted at the end).  With ``cluster`` and
    no URL, also the cluster rows (a private 3-primary cluster beside the single Redis);
    with a URL, ``cluster`` says it is a seed node of a Redis Cluster."""
    from .bench_keys import owned_keys
    from .bench_run import run_all
    from .servers import RedisServer

    sizes = sizes or Sizes(quick=quick)
    if redis_url is None:
        with RedisServer() as server:
            results = run_all(server.url, sizes, cluster=False, private=True)
            if cluster:
                from .bench_cluster import cluster_rows  # it builds on this module

                with step("cluster rows"):
                    results += cluster_rows(server.url, quick=sizes.quick)
            return results
    with owned_keys(redis_url, cluster=cluster):
        return run_all(redis_url, sizes, cluster=cluster, private=False)


def table(results: list[Result]) -> str:
    """The results as a table, then what each row measures and the machine
    (:func:`.bench_run.table`)."""
    from .bench_run import table as render

    return render(results)


def to_json(results: list[Result]) -> str:
    """``{"machine": {...}, "rows": [...]}`` (:func:`.bench_run.to_json`)."""
    from .bench_run import to_json as render

    return render(results)
