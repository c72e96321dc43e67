"""The rows of :mod:`.bench_e2e`: worker throughput (one and two processes) against the raw
floor, latency at a steady rate against raw Zenoh puts, outbox length, worker RSS."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import redis

from ..protocol.keys import PartitionKeys
from .bench import GROUP, Result, step
from .bench_procs import rss_bytes
from .bench_worker import raw_read_ack

if TYPE_CHECKING:
    from .bench_e2e import E2E

__all__ = ["latency_rows", "rss_row", "worker_row", "worker_x2_row"]


class OutboxWatch:
    """The largest total length of ``streams`` and the largest number of their entries not
    yet acknowledged by the bench's group (pending + lag), sampled every 20 ms while it runs."""

    def __init__(self, client: redis.Redis, streams: list[str]) -> None:
        self.client, self.streams, self.most, self.waiting = client, streams, 0, 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.done.wait(0.02):
            pipe = self.client.pipeline(transaction=False)
            for stream in self.streams:
                pipe.xlen(stream)
                pipe.xinfo_groups(stream)
            replies = pipe.execute()
            self.most = max(self.most, sum(replies[0::2]))
            self.waiting = max(self.waiting, sum(_unacked(groups) for groups in replies[1::2]))

    def __enter__(self) -> OutboxWatch:
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.done.set()
        self.thread.join()


def _unacked(groups: list[dict[str, Any]]) -> int:
    for group in groups:
        if group.get("name") in (GROUP, GROUP.encode()):
            return int(group.get("pending") or 0) + int(group.get("lag") or 0)
    return 0


def _zenoh_floor(e2e: E2E, n: int, size: int) -> float:
    """Messages/s of raw Zenoh puts of ``size`` bytes from a process to the subscriber."""
    putter = e2e.helper("put", e2e.sub.endpoint, n, 0, size)
    started = 0

    def go() -> None:
        nonlocal started
        started = time.time_ns()
        putter.send("go")

    _, last, _, got = e2e.delivered(n, go, 30 + n / 1000)
    putter.send("end")
    putter.stop()
    return got / ((last - started) / 1e9)


def _paused_run(e2e: E2E, n: int) -> float:
    """Triggers/s of the workers delivering ``n`` entries queued while they were paused."""
    for proc in e2e.workers:
        proc.pause(True)
    count = e2e.fill(n)
    started = 0

    def resume() -> None:
        nonlocal started
        started = time.time_ns()
        for proc in e2e.workers:
            proc.pause(False)

    _, last, _, got = e2e.delivered(count, resume, 30 + count / 1000)
    return got / ((last - started) / 1e9)


def worker_row(e2e: E2E, size: int) -> Result:
    n = e2e.sizes.entries
    with step("worker (floors: raw XREADGROUP+XACK, raw Zenoh put to another process)"):
        redis_floor = raw_read_ack(e2e.client, e2e.fields, n)
        zenoh_floor = _zenoh_floor(e2e, n, size)
    with step("worker"):
        ours = _paused_run(e2e, n)
    floor = min(redis_floor, zenoh_floor)
    return Result(
        "worker",
        "triggers/s",
        floor,
        ours,
        f"min(raw XREADGROUP+XACK {redis_floor:,.0f}/s, raw Zenoh put of {size} B to "
        f"a subscriber process {zenoh_floor:,.0f}/s)",
        "CLI worker process -> subscriber process, JSON payloads",
        "higher",
        ">= 0.5",
        {"redis_floor": redis_floor, "zenoh_floor": zenoh_floor, "payload_bytes": size},
    )


def worker_x2_row(e2e: E2E, one: Result) -> Result:
    with step("worker_x2 (a second worker process)"):
        e2e.start_worker()
        split = _wait_split(e2e, 5 if e2e.sizes.quick else 30)
        ours = _paused_run(e2e, e2e.sizes.entries)
    return Result(
        "worker_x2",
        "triggers/s",
        one.baseline,
        ours,
        one.baseline_what,
        f"two CLI worker processes of one group, {_partitions()} partitions"
        + ("" if split else " (the leases had not split yet)"),
        "higher",
        ">= 0.5",
        {"one_worker": one.measured, "leases_split": split},
    )


def _partitions() -> int:
    from .bench_e2e import PARTITIONS

    return PARTITIONS


def _wait_split(e2e: E2E, timeout: float) -> bool:
    """Whether the partitions' leases came to be held by two workers within ``timeout``."""
    leases = [PartitionKeys.of(e2e.cls, p).lease(GROUP) for p in range(_partitions())]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holders = {e2e.client.get(k) for k in leases} - {None}
        if len(holders) >= 2:
            return True
        time.sleep(0.2)
    return False


def _percentile(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return 0.0
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


def _latencies(e2e: E2E, proc: Any, n: int) -> list[float]:
    """Milliseconds from write to receipt of the ``n`` messages ``proc`` sends."""
    e2e.sub.latencies(n)
    proc.send("go")
    found = sorted(v / 1e6 for v in e2e.sub.latencies_ns(n / e2e.sizes.rate + 120))
    proc.stop()
    return found


def latency_rows(e2e: E2E, size: int, first_ms: float, arrived: bool) -> list[Result]:
    rate, n = e2e.sizes.rate, e2e.sizes.latency_writes
    with step(f"latency_p50/p99/p999 (raw Zenoh put at {rate:,.0f}/s)"):
        raw = _latencies(e2e, e2e.helper("put", e2e.sub.endpoint, n, rate, size), n)
    with step(f"latency_p50/p99/p999, outbox_length ({n} writes at {rate:,.0f}/s)"):
        cluster = ["--cluster"] if e2e.cluster else []
        writer = e2e.helper("write", e2e.url, e2e.cls, _partitions(), n, rate, *cluster)
        with OutboxWatch(e2e.client, e2e.outboxes()) as watch:
            ours = _latencies(e2e, writer, n)
    what = f"at {rate:,.0f}/s, {n} writes, {len(ours)} received"
    goal = "measured <= 2 ms at 5,000/s" if rate >= 5000 else "measured <= 5 ms at 1,000/s"
    rows = _percentile_rows(raw, ours, what, goal)
    rows.append(_first_event_row(_percentile(ours, 0.5), first_ms, arrived))
    rows.append(
        Result(
            "outbox_length",
            "entries",
            rate,
            watch.most,
            "writes in one second at the rate",
            f"largest total length (XLEN) of the {_partitions()} outboxes meanwhile (extra: "
            "most entries not yet acknowledged)",
            "lower",
            "stays small while the worker keeps up",
            {"most_unacknowledged": watch.waiting},
        )
    )
    return rows


def _percentile_rows(raw: list[float], ours: list[float], what: str, p99: str) -> list[Result]:
    return [
        Result(
            f"latency_{name}",
            "ms",
            _percentile(raw, q),
            _percentile(ours, q),
            f"raw Zenoh put from a process to the subscriber process, {what}",
            f"write (writer process) -> CLI worker -> subscriber process, {what}",
            "lower",
            goal,
        )
        for name, q, goal in (
            ("p50", 0.5, ""),
            ("p99", 0.99, p99),
            ("p999", 0.999, ""),
        )
    ]


def _first_event_row(steady_ms: float, first_ms: float, arrived: bool) -> Result:
    return Result(
        "new_partition_first_event",
        "ms",
        steady_ms,
        first_ms,
        "steady write -> receipt p50 (latency_p50)",
        "first write of a brand-new partition -> receipt, worker already running"
        + ("" if arrived else " (did not arrive within 10 s)"),
        "lower",
        "measured <= 100 ms",
        {"arrived": arrived},
    )


def rss_row(e2e: E2E) -> Result:
    total = e2e.sizes.rss
    rounds = 10
    each = max(1, total // rounds // _partitions()) * _partitions()
    worker = e2e.workers[0]
    with step(f"worker_rss ({each * rounds:,} triggers)"):
        samples = []
        for _ in range(rounds):
            e2e.delivered(each, lambda: e2e.fill(each), 30 + each / 1000)
            samples.append(rss_bytes(worker.pid))
            if each >= 10_000:  # keep Redis small: drop what was delivered and acknowledged
                time.sleep(0.3)  # the acks (delayed 200 ms)
                for stream in e2e.outboxes():
                    e2e.client.xtrim(stream, maxlen=0)
    mib = 1024 * 1024
    return Result(
        "worker_rss",
        "MiB",
        samples[0] / mib,
        samples[-1] / mib,
        f"worker RSS after the first tenth (warm-up, {each:,} triggers)",
        f"worker RSS after {each * rounds:,} triggers",
        "lower",
        "flat: ratio ~ 1",
        {"samples_mib": [round(s / mib, 1) for s in samples]},
    )
