"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

from oprc_redis_events import ObjectEvent, Settings, TriggerTarget
from oprc_redis_events.errors import ZenohUnavailableError
from oprc_redis_events.protocol.keys import PartitionKeys
from oprc_redis_events.protocol.outbox import OutboxEntry, decode_entry
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.publisher import MemoryPublisher, ZenohPublisher

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


def one_target(**options: str) -> ObjectEvent:
    """Field "status" with one on_update target, billing.sum, with ``options``."""
    ev = ObjectEvent()
    target = ev.data_trigger_str["status"].on_update.add()
    target.cls_id, target.fn_id = "billing", "sum"
    target.req_options.update(options)
    return ev


def pending_while_running(
    worker: Worker, sent: list[Any], client: redis.Redis, stream: str, count: int
) -> int:
    """Run ``worker`` until ``count`` PUTs were made (``sent``: its publisher's list) and
    its due acknowledgements went out; return the entries still pending on ``stream``."""

    async def run() -> int:
        task = asyncio.ensure_future(worker.run_async())
        deadline = time.monotonic() + 10
        while len(sent) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # acknowledgements due by now went out
        pending = int(client.xpending(stream, worker.settings.group)["pending"])  # type: ignore[index]
        worker.stop()
        await task
        return pending

    return asyncio.run(run())


class RefusingPublisher(MemoryPublisher):
    """Records PUTs as a MemoryPublisher, but those to function ``fn`` fail as Zenoh's."""

    def __init__(self, fn: str) -> None:
        super().__init__()
        self.fn = fn

    def put(self, key: str, payload: bytes) -> None:
        if self.fn in key.split("/"):
            raise ZenohUnavailableError("no route")
        super().put(key, payload)


def dead_letter_reasons(client: redis.Redis, keys: PartitionKeys) -> list[str]:
    return [f[b"dlq:reason"].decode() for _, f in client.xrange(keys.dead_letters)]  # type: ignore[union-attr]


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


def serving_worker(settings: Settings, session: Any, **options: Any) -> RunningWorker:
    """A running worker that serves the data API of ``settings.serve_objects`` and publishes
    on ``session``, once its queryables are declared (and have had time to reach the router)."""
    worker = Worker(
        settings,
        publisher=ZenohPublisher(session),
        block_ms=20,
        discover_interval=0.05,
        **options,
    )
    running = RunningWorker(worker)
    deadline = time.monotonic() + 10
    while worker.objects_api is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # the queryables reach the router
    return running


@contextmanager
def ready_process(args: list[str], env: dict[str, str], what: str) -> Iterator[Any]:
    """A process that prints a line with ``ready`` once it serves; stopped at the end."""
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "ready" not in line:
        proc.kill()
        proc.wait(5)
        proc.stdout.close()
        pytest.fail(f"{what} did not start: {line}")
    time.sleep(0.5)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
