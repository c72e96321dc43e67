"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import redis

from oprc_redis_events import ObjectEvent, TriggerTarget
from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.protocol.outbox import OutboxEntry, decode_entry
from oprc_redis_events.worker.loop import Worker

NAMES = {3: "CREATE", 4: "UPDATE", 5: "DELETE", 1: "COMPLETE", 2: "ERROR"}


def outbox(
    client: redis.Redis, cls_id: str = "orders", pid: int = 0, after: str = "-"
) -> list[OutboxEntry]:
    keys = PartitionKeys.of(cls_id, pid)
    start = after if after == "-" else f"({after}"
    return [decode_entry(keys, i.decode(), f) for i, f in client.xrange(keys.outbox, start, "+")]


def events(
    client: redis.Redis, cls_id: str = "orders", pid: int = 0, after: str = "-"
) -> list[tuple[str, str, bytes | None]]:
    return [
        (NAMES[e.event_type], e.key, e.payload)
        for entry in outbox(client, cls_id, pid, after)
        for e in entry.events
    ]


def watch_all(keys: list[int | str], fn: str = "f") -> ObjectEvent:
    """A configuration with one target for every event of every key."""
    ev = ObjectEvent()
    for key in keys:
        dt = ev.data_trigger[key] if isinstance(key, int) else ev.data_trigger_str[key]
        for name in ("on_create", "on_update", "on_delete"):
            getattr(dt, name).append(TriggerTarget(cls_id="svc", partition_id=0, fn_id=fn))
    return ev


class RunningWorker:
    """A worker running in its own thread and event loop; ``stop()`` always ends it."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_until_complete, args=(worker.run_async(),), daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.worker.stop)
        self.thread.join(15)
        assert not self.thread.is_alive(), "the worker did not stop"
        self.loop.close()


def wait_for_text(path: Path, text: str, timeout: float = 30.0) -> bool:
    """Whether ``text`` appears in the file at ``path`` within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text():
            return True
        time.sleep(0.05)
    return False
