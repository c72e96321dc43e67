"""How long each step of a running worker's event loop holds its thread (not part of the
package or the tests): the check that nothing periodic (discovery, heartbeat and lease
renewal, claims, lag, trimming, the new-outbox listener) stalls dispatch.

A worker runs in this process (an in-memory publisher) while a writer in another process
updates 4 partitions at a steady ``--rate`` for ``--seconds`` (past 30 s, the run includes a
SCAN of discovery).  Every loop step's thread CPU time (``time.thread_time()``, so waiting
for a core does not count) is recorded per task or callback; the table lists the largest.
A control runs beside them: an empty callback every 2 ms, whose steps do no work at all, so
its largest step is what the machine itself adds to any step (interrupts, page faults, a
virtual machine's stolen time, which a thread's CPU clock cannot tell from its own work).
Garbage collections in the loop's thread are counted by generation, and each step over 1 ms
outside the dispatch loop is listed with the collection time inside it.  The samples are kept
in arrays, out of the collector's sight: lists of tens of thousands of floats made every full
collection of the worker's heap slower (3.5 ms after 30 s instead of 0.3-0.7 ms).

    .venv/bin/python -m bench.loop_steps --rate 1000 --seconds 35
"""

from __future__ import annotations

import argparse
import asyncio
import asyncio.events
import gc
import subprocess
import sys
import threading
import time
from array import array
from collections import Counter, defaultdict
from typing import Any

from oprc_redis_events import ObjectEvent, ObjectStore, Settings, TriggerTarget
from oprc_redis_events.dev.servers import RedisServer
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.publisher import MemoryPublisher
from oprc_redis_events.worker.waking import freeze_loaded_heap

WRITER = """
import sys, time
from oprc_redis_events import ObjectStore
store = ObjectStore.from_url(sys.argv[1])
rate, seconds = float(sys.argv[2]), float(sys.argv[3])
start, n = time.monotonic(), 0
while time.monotonic() - start < seconds:
    store.update("orders", n % 4, 1, {"s": str(n).encode()})
    n += 1
    time.sleep(max(0.0, start + n / rate - time.monotonic()))
print(n)
"""

#: (an array: a list of 50,000 floats would slow the worker's garbage collections down)
steps: dict[str, array[float]] = defaultdict(lambda: array("d"))
_run = asyncio.events.Handle._run
_loop_thread: list[threading.Thread] = []


def _name(callback: Any) -> str:
    task = getattr(callback, "__self__", None)
    if isinstance(task, asyncio.Task):
        coro = getattr(task.get_coro(), "__qualname__", "?")
        return coro if task.get_name().startswith("Task-") else f"{task.get_name()}: {coro}"
    if callback is _control:
        return CONTROL
    return str(getattr(callback, "__qualname__", repr(callback)))


#: the thread CPU time garbage collection took in the current step of the loop
_gc = {"started": 0.0, "in_step": 0.0}
#: every step over 1 ms outside the dispatch loop: (name, thread CPU, of which collecting)
slow: list[tuple[str, float, float]] = []  # (few: the collections stay as in the worker)


#: thread CPU of each garbage collection in the loop's thread, by generation
collections: dict[int, array[float]] = defaultdict(lambda: array("d"))


def _collecting(phase: str, info: dict[str, int]) -> None:
    if not _loop_thread or threading.current_thread() is not _loop_thread[0]:
        return
    if phase == "start":
        _gc["started"] = time.thread_time()
    else:
        took = time.thread_time() - _gc["started"]
        _gc["in_step"] += took
        collections[info["generation"]].append(took)


def _heap() -> str:
    """What the collector tracks (frozen objects apart), the most common types first."""
    counts = Counter(type(o).__name__ for o in gc.get_objects())
    top = ", ".join(f"{name} {n}" for name, n in counts.most_common(5))
    return f"{sum(counts.values())} objects tracked ({top}); {gc.get_freeze_count()} frozen"


def _timed(self: asyncio.Handle) -> None:
    if not _loop_thread or threading.current_thread() is not _loop_thread[0]:
        return _run(self)
    _gc["in_step"] = 0.0
    started = time.thread_time()
    try:
        return _run(self)
    finally:
        took = time.thread_time() - started
        name = _name(self._callback)  # type: ignore[attr-defined]
        steps[name].append(took)
        if took > 0.001 and not name.startswith("dispatch loop"):
            slow.append((name, took, _gc["in_step"]))


CONTROL = "control: an empty callback every 2 ms"


def _control(loop: asyncio.AbstractEventLoop) -> None:
    """Does nothing but come back: its steps measure the machine, not the worker."""
    loop.call_later(0.002, _control, loop)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=35.0)
    args = parser.parse_args()
    asyncio.events.Handle._run = _timed  # type: ignore[method-assign]
    with RedisServer() as server:
        store = ObjectStore.from_url(server.url)
        config = ObjectEvent()
        config.data_trigger_str["s"].on_update.append(TriggerTarget(cls_id="svc", fn_id="f"))
        for pid in range(4):
            store.create("orders", pid, 1, {"s": b"0"}, event=config)
        worker = Worker(Settings.from_env({}, redis_url=server.url), publisher=MemoryPublisher())
        worker._own_heap = freeze_loaded_heap()  # as Worker.run() (the CLI) does
        gc.callbacks.append(_collecting)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_until_complete, args=(worker.run_async(),))
        _loop_thread.append(thread)
        thread.start()
        loop.call_soon_threadsafe(_control, loop)
        time.sleep(3)  # started, partitions taken
        steps.clear()
        slow.clear()
        collections.clear()
        writer = [sys.executable, "-c", WRITER, server.url, str(args.rate), str(args.seconds)]
        writes = subprocess.run(writer, capture_output=True, text=True, check=True).stdout.strip()
        time.sleep(1)
        heap = _heap()
        loop.call_soon_threadsafe(worker.stop)
        thread.join(15)
        store.close()
    print(
        f"{writes} writes at {args.rate:.0f}/s over {args.seconds:.0f} s; loop steps by thread CPU:"
    )
    head = f"{'task or callback':58s} {'steps':>7s} {'median':>9s} {'p99.9':>9s} {'max':>9s}"
    print(f"{head} {'> 1 ms':>7s}")
    rows = sorted(steps.items(), key=lambda item: -max(item[1]))
    shown = rows[:15] + [row for row in rows[15:] if row[0] == CONTROL]
    for name, times in shown:
        times = array("d", sorted(times))
        over = sum(t > 0.001 for t in times)
        median, most = times[len(times) // 2] * 1e3, times[-1] * 1e3
        tail = times[min(len(times) - 1, len(times) * 999 // 1000)] * 1e3
        print(
            f"{name[:58]:58s} {len(times):7d} {median:7.3f}ms {tail:7.3f}ms {most:7.3f}ms {over:7d}"
        )
    for generation, times in sorted(collections.items()):
        most = max(times) * 1e3
        print(f"garbage collections of generation {generation}: {len(times)}, max {most:.3f}ms")
    print(f"the heap at the end: {heap}")
    print(f"steps over 1 ms outside the dispatch loop: {len(slow)}")
    for name, took, collecting in slow:
        print(
            f"  {name[:58]:58s} {took * 1e3:7.3f}ms, of which collecting garbage"
            f" {collecting * 1e3:.3f}ms"
        )


if __name__ == "__main__":
    main()
