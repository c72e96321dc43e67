"""The bench's end-to-end rows, run as users run the system: the CLI worker in a process of its
own (``oprc-redis-events worker``, JSON payloads), the subscriber in another
(:mod:`.bench_sub`), a writer in a third for the latency rows.

* ``new_partition_first_event``: with the worker up and idle, a write to a brand-new partition
  until the subscriber has its trigger (baseline: the steady p50 latency);
* ``worker``: the worker delivering entries queued while it was paused (SIGSTOP, fill,
  SIGCONT), from its resumption to the last receipt, against min(raw ``XREADGROUP`` + ``XACK``
  of entries of the same size, raw Zenoh puts of the same size to the subscriber process);
* ``latency_p50``/``latency_p99``/``latency_p999``: write to receipt at a steady rate, against
  raw Zenoh puts at the same rate from a process to the subscriber process; ``outbox_length``:
  the outboxes' largest total length meanwhile;
* ``worker_rss``: the worker's RSS after delivering ``Sizes.rss`` triggers against its RSS
  after the first tenth (the warm-up);
* ``worker_x2``: two worker processes of one group sharing the partitions.

On a Redis given with ``--redis-url`` the CLI worker would read the user's outboxes too, so
there the worker process serves only the bench's class (``bench_sub worker``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from ..client.sync_generated.store import ObjectStore
from ..config import Settings
from ..errors import OprcEventsError
from ..pb.oprc_data_pb2 import ObjectEvent, TriggerTarget
from ..protocol.keys import PartitionKeys
from .bench import CLASSES, GROUP, Result, Sizes, step
from .bench_e2e_rows import latency_rows, rss_row, worker_row, worker_x2_row
from .bench_procs import HELPER, Proc, Subscriber, cli_worker, own_worker, processes
from .bench_worker import sample_entry

__all__ = ["E2E", "e2e_rows"]

PARTITIONS = 4  # of the class the workers serve
NEW = 3  # brand-new partitions written in turn (1 with --quick)


class E2E:
    """The processes and Redis of the end-to-end rows."""

    def __init__(
        self,
        url: str,
        client: redis.Redis,
        sizes: Sizes,
        procs: list[Proc],
        *,
        private: bool,
        cluster: bool,
    ) -> None:
        self.url, self.client, self.sizes, self.procs = url, client, sizes, procs
        self.private, self.cluster = private, cluster
        self.cls = CLASSES["e2e"]
        self.sub = Subscriber()
        procs.append(self.sub)
        self.fields = {}
        for pid in range(PARTITIONS):
            self.fields = sample_entry(client, self.cls, pid)
        self.workers: list[Proc] = []

    def start_worker(self) -> Proc:
        if self.private:
            proc = cli_worker(self.url, GROUP, self.sub.endpoint)
        else:
            extra = ["--cluster"] if self.cluster else []
            served = PARTITIONS + NEW
            proc = own_worker(self.url, GROUP, self.sub.endpoint, self.cls, served, *extra)
        self.procs.append(proc)
        self.workers.append(proc)
        return proc

    def helper(self, *args: object) -> Proc:
        proc = Proc([*HELPER, *map(str, args)])
        self.procs.append(proc)
        proc.expect("ready", 60)
        return proc

    def outboxes(self) -> list[str]:
        return [PartitionKeys.of(self.cls, p).outbox for p in range(PARTITIONS)]

    def fill(self, n: int) -> int:
        """Queue ``n`` entries (at least one per partition) over the partitions."""
        each = max(1, n // PARTITIONS)
        pipe = self.client.pipeline(transaction=False)
        for _ in range(each):
            for stream in self.outboxes():
                pipe.xadd(stream, self.fields)  # type: ignore[arg-type]
            if len(pipe) >= 1000:
                pipe.execute()
        pipe.execute()
        return each * PARTITIONS

    def delivered(
        self, n: int, start: Callable[[], object], timeout: float
    ) -> tuple[int, int, int, int]:
        """Arm the subscriber for ``n``, call ``start``: (first, last receipt ns, bytes,
        messages); fewer than ``n`` messages when the rest did not come within ``timeout``."""
        self.sub.count(n)
        start()
        return self.sub.counted(timeout)

    def warm(self) -> int:
        """Wait until the workers deliver one write per partition; the payload's size."""
        store = ObjectStore(self.client, Settings.from_env({}))

        def writes() -> None:
            for pid in range(PARTITIONS):
                store.update(self.cls, pid, 1, {1: str(time.time_ns()).encode()})

        _, _, size, count = self.delivered(PARTITIONS, writes, 120)
        if count < PARTITIONS:
            raise OprcEventsError("bench: the worker process delivered nothing in 120 s")
        return size // PARTITIONS


def new_partition(e2e: E2E, tries: int) -> tuple[float, bool]:
    """Milliseconds from the first write of a brand-new partition to its receipt (the
    largest of ``tries``); ``False`` when one did not arrive within 10 s (then 10 s)."""
    store = ObjectStore(e2e.client, Settings.from_env({}))
    worst, arrived = 0.0, True
    for k in range(tries):
        ev = ObjectEvent()
        ev.data_trigger[1].on_create.append(TriggerTarget(cls_id="svc", partition_id=0, fn_id="f"))
        time.sleep(0.3)  # the worker idle
        e2e.sub.latencies(1)
        store.create(e2e.cls, PARTITIONS + k, 1, {1: str(time.time_ns()).encode()}, event=ev)
        got = e2e.sub.latencies_ns(10)
        if not got:
            worst, arrived = 10_000.0, False
            break
        worst = max(worst, got[0] / 1e6)
    return worst, arrived


def e2e_rows(
    url: str, client: redis.Redis, sizes: Sizes, *, private: bool, cluster: bool
) -> list[Result]:
    """Every end-to-end row; each process started here is stopped here."""
    with processes() as procs:
        with step("end-to-end setup (subscriber, worker)"):
            e2e = E2E(url, client, sizes, procs, private=private, cluster=cluster)
            e2e.start_worker()
            size = e2e.warm()
        with step("new_partition_first_event"):
            first_ms, arrived = new_partition(e2e, 1 if sizes.quick else NEW)
        rows = [worker_row(e2e, size)]
        rows += latency_rows(e2e, size, first_ms, arrived)
        rows.append(rss_row(e2e))
        rows.append(worker_x2_row(e2e, rows[0]))
    return rows
