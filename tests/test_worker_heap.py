"""The worker's heap in a process of its own: what is loaded is frozen, young collections
are small, full collections are the maintenance's; a worker in the user's own process
leaves the collector alone."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys

import pytest

from oprc_redis_events import Settings
from oprc_redis_events.worker import maintenance
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.publisher import MemoryPublisher

PROBE = """
import gc, sys
from oprc_redis_events.worker.waking import OLDEST_THRESHOLD, YOUNG_THRESHOLD, freeze_loaded_heap
before = gc.get_threshold()
tended = freeze_loaded_heap()
after = gc.get_threshold()
assert gc.get_freeze_count() > 10000, gc.get_freeze_count()  # zenoh, redis-py, protobuf
if sys.version_info < (3, 14):
    assert tended
    assert after == (YOUNG_THRESHOLD, before[1], OLDEST_THRESHOLD), (before, after)
    assert YOUNG_THRESHOLD < before[0], before
else:
    assert not tended and after == before, (before, after)
print("ok")
"""


@pytest.mark.quick
def test_the_loaded_heap_is_frozen_and_young_collections_are_small() -> None:
    """In a process of its own: freezing is for the whole interpreter."""
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.quick
def test_the_maintenance_freezes_once_then_collects_after_every_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(maintenance, "freeze_warm_heap", lambda: calls.append("freeze"))
    monkeypatch.setattr(maintenance, "collect_heap", lambda: calls.append("collect"))
    worker = Worker(Settings.from_env({}, redis_url="redis://127.0.0.1:1/0"))

    async def rounds() -> None:
        worker._tend_heap(ok=False)  # Redis away at the start: collect, freeze nothing yet
        await asyncio.sleep(0)
        for _ in range(3):
            worker._tend_heap(ok=True)
            await asyncio.sleep(0)  # the collection runs in a loop step of its own
        worker._tend_heap(ok=False)  # Redis away later: still collected
        await asyncio.sleep(0)

    asyncio.run(rounds())
    assert calls == ["collect", "freeze", "collect", "collect", "collect"]


def test_a_worker_in_the_users_own_process_leaves_the_collector_alone(redis_url: str) -> None:
    before = (gc.get_threshold(), gc.get_freeze_count(), gc.isenabled())
    worker = Worker(Settings.from_env({}, redis_url=redis_url), publisher=MemoryPublisher())
    asyncio.run(worker.run_async(burst=True))
    assert (gc.get_threshold(), gc.get_freeze_count(), gc.isenabled()) == before
    assert not worker._own_heap
