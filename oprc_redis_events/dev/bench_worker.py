"""The bench's in-process worker rows: ``dispatch`` (a burst worker against raw
``XREADGROUP`` + ``XACK`` of entries of the same size) and ``worker_partitions_{1,16,256}``;
and the raw ``XREADGROUP`` + ``XACK`` floor the end-to-end rows use too."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import redis

from ..client.sync_generated.store import ObjectStore
from ..config import Settings
from ..errors import ObjectExistsError
from ..protocol.keys import PartitionKeys
from ..worker.publisher import MemoryPublisher
from .bench import CLASSES, RAW, Result, Sizes, burst_worker, config, fill, rate, step

__all__ = ["raw_read_ack", "sample_entry", "worker_rows"]


def sample_entry(client: redis.Redis, cls_id: str, pid: int = 0) -> dict[bytes, bytes]:
    """The fields of a real outbox entry of an update with one matching trigger (the object
    ``cls_id``/``pid``/1 is created, updated once, and its outbox emptied)."""
    store, keys = ObjectStore(client, Settings.from_env({})), PartitionKeys.of(cls_id, pid)
    with contextlib.suppress(ObjectExistsError):
        store.create(cls_id, pid, 1, {1: b"0"}, event=config())
    store.update(cls_id, pid, 1, {1: str(time.time_ns()).encode()})  # a write time, as in e2e
    first: Any = client.xrange(keys.outbox, count=1)
    client.xtrim(keys.outbox, maxlen=0)
    return dict(first[0][1])


def raw_read_ack(client: redis.Redis, fields: dict[bytes, bytes], n: int) -> float:
    """Entries/s of raw ``XREADGROUP`` (500 at a time) + ``XACK`` of ``n`` such entries."""
    stream = RAW["stream"]
    client.delete(stream)
    fill(client, stream, n, fields)
    client.xgroup_create(stream, "g", id="0")

    def drain() -> None:
        while True:
            reply: Any = client.xreadgroup("g", "c", {stream: ">"}, count=500)
            if not reply:
                return
            ids = [i for _, entries in reply for i, _ in entries]
            client.xack(stream, "g", *ids)

    try:
        return rate(n, drain)
    finally:
        client.delete(stream)


def _burst(
    client: redis.Redis, base: Settings, cls_id: str, pids: list[int], n: int, *, warm: bool
) -> float:
    """Entries/s of a burst worker delivering ``n`` entries queued over ``pids``; with
    ``warm``, a first burst over the empty outboxes has created the groups and leases, so the
    timed one measures delivery rather than a worker's start on that many partitions."""
    each = max(1, n // len(pids))
    fields = sample_entry(client, cls_id, pids[0])
    for pid in pids[1:]:
        sample_entry(client, cls_id, pid)
    if warm:
        asyncio.run(burst_worker(base, cls_id, MemoryPublisher(), pids).run_async(burst=True))
    pipe = client.pipeline(transaction=False)
    for pid in pids:
        for _ in range(each):
            pipe.xadd(PartitionKeys.of(cls_id, pid).outbox, fields)  # type: ignore[arg-type]
        if len(pipe) >= 1000:
            pipe.execute()
    pipe.execute()
    worker = burst_worker(base, cls_id, MemoryPublisher(), pids)
    return rate(each * len(pids), lambda: asyncio.run(worker.run_async(burst=True)))


def worker_rows(client: redis.Redis, base: Settings, sizes: Sizes) -> list[Result]:
    n = sizes.entries
    with step("dispatch"):
        fields = sample_entry(client, CLASSES["dispatch"])
        floor = raw_read_ack(client, fields, n)
        ours = _burst(client, base, CLASSES["dispatch"], [0], n, warm=not sizes.quick)
    rows = [
        Result(
            "dispatch",
            "entries/s",
            floor,
            ours,
            "raw XREADGROUP (500) + XACK, same entries",
            "worker in process (burst): read, decode, build JSON payload + wrapper, ack",
            "higher",
            ">= 0.5",
        )
    ]
    for count in (1, 16, 256):
        with step(f"worker_partitions_{count}"):
            cls_id = f"{CLASSES['growth']}-p{count}"
            pids, size = list(range(count)), max(n, count * 4)
            ours = _burst(client, base, cls_id, pids, size, warm=not sizes.quick)
        rows.append(
            Result(
                f"worker_partitions_{count}",
                "entries/s",
                floor,
                ours,
                "raw XREADGROUP (500) + XACK, one stream",
                f"worker in process (burst) over {count} partition(s)",
                "higher",
                "flat in partitions",
            )
        )
    return rows
