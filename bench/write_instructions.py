"""The write script's cost, two ways (not part of the package or the tests).

``callgrind``: Redis instructions per write, counted by ``valgrind --tool=callgrind`` inside
``evalShaCommand`` (the script call all told: its arguments, the Lua, the commands it runs,
not the network), which does not depend on the machine's load.  A redis-server of its own
runs under valgrind; per scenario a warm-up, then the counters are zeroed, N writes made and
the counters dumped: ``store.update`` of one field with one matching trigger (events on),
the same with ``events_enabled=False``, and per write of ``store.batch()`` of 100 updates.

``ratio``: one process interleaving op by op a raw redis-py ``HSET`` and ``store.update``
(events on, then events disabled), N of each, on a redis-server of its own; the medians and
their ratios (measured in the same run, so a burst of other work hits all alike).

Run it with the venv of the tree to measure (another tree's venv measures that tree):

    .venv/bin/python bench/write_instructions.py callgrind
    .venv/bin/python bench/write_instructions.py ratio --count 8000 --runs 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

from oprc_redis_events import ObjectEvent, ObjectStore, Settings, TriggerTarget
from oprc_redis_events.dev.servers import RedisServer

CLS = "oprc-bench-wi"


def config() -> ObjectEvent:
    ev = ObjectEvent()
    for name in ("on_create", "on_update"):
        getattr(ev.data_trigger[1], name).append(TriggerTarget(cls_id="svc", fn_id="f"))
    return ev


def stores(client: redis.Redis) -> tuple[ObjectStore, ObjectStore]:
    on = ObjectStore(client, Settings.from_env({}))
    off = ObjectStore(client, Settings.from_env({}, events_enabled=False))
    on.create(CLS, 0, 1, {1: b"a"}, event=config())  # also the outbox
    on.create(CLS, 0, 2, {1: b"a"}, event=config())
    return on, off


def scenarios(on: ObjectStore, off: ObjectStore) -> dict[str, tuple[Callable[[int], None], int]]:
    """name -> (one step, given a counter; writes per step)."""

    def events_on(i: int) -> None:
        on.update(CLS, 0, 1, {1: b"x%d" % i})

    def events_off(i: int) -> None:
        off.update(CLS, 0, 2, {1: b"x%d" % i})

    def batch(i: int) -> None:
        b = on.batch()
        for j in range(100):
            b.update(CLS, 0, 1, {1: b"b%d-%d" % (i, j)})
        b.execute()

    return {
        "update": (events_on, 1),
        "update_events_disabled": (events_off, 1),
        "batch_100": (batch, 100),
    }


def _total(out: Path) -> int:
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {out}")


def callgrind(args: argparse.Namespace) -> None:
    if not shutil.which("valgrind"):
        sys.exit("valgrind is not installed")
    work = Path(tempfile.mkdtemp(prefix="wi-cg-"))
    valgrind = [
        "valgrind",
        "--tool=callgrind",
        "--toggle-collect=evalShaCommand",
        f"--callgrind-out-file={work}/cg.out",
        f"--log-file={work}/valgrind.log",
    ]
    with RedisServer(directory=str(work), wrapper=valgrind, ready_timeout=60) as server:
        assert server.process is not None
        pid = str(server.process.pid)  # valgrind runs the server in its own process
        client = redis.Redis.from_url(server.url)
        on, off = stores(client)
        for name, (step, per) in scenarios(on, off).items():
            calls = max(1, args.count // per)
            for i in range(5):
                step(-1 - i)
            subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
            for i in range(calls):
                step(i)
            before = set(work.glob("cg.out*"))
            subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
            dumped = sorted(set(work.glob("cg.out*")) - before, key=os.path.getmtime)
            total = _total(dumped[-1])
            print(
                f"{name:24} {total / (calls * per):10,.0f} instructions per write"
                f"  ({calls * per} writes; {dumped[-1]})"
            )
        client.close()
    if not args.keep:
        shutil.rmtree(work)


def ratio(args: argparse.Namespace) -> None:
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        on, off = stores(client)
        steps = scenarios(on, off)
        sides: dict[str, Callable[[int], None]] = {
            "raw_hset": lambda i: client.hset("oprc-bench:raw", "1", b"x%d" % i) and None,
            "update": steps["update"][0],
            "update_events_disabled": steps["update_events_disabled"][0],
        }
        for run in range(args.runs):
            times: dict[str, list[int]] = {k: [] for k in sides}
            for i in range(args.count):
                for k, step in sides.items():
                    t0 = time.perf_counter_ns()
                    step(i)
                    times[k].append(time.perf_counter_ns() - t0)
            med = {k: statistics.median(v) / 1000 for k, v in times.items()}
            load = os.getloadavg()[0]
            print(
                f"run {run + 1}: raw HSET {med['raw_hset']:.1f} us; "
                f"update {med['update']:.1f} us = {med['update'] / med['raw_hset']:.2f}x; "
                f"events disabled {med['update_events_disabled']:.1f} us = "
                f"{med['update_events_disabled'] / med['raw_hset']:.2f}x  (load {load:.2f})"
            )
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    cg = sub.add_parser("callgrind", help="Redis instructions per write")
    cg.add_argument("--count", type=int, default=300, help="writes per scenario")
    cg.add_argument("--keep", action="store_true", help="keep the callgrind files")
    ra = sub.add_parser("ratio", help="interleaved client latency against a raw HSET")
    ra.add_argument("--count", type=int, default=8000)
    ra.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    callgrind(args) if args.what == "callgrind" else ratio(args)


if __name__ == "__main__":
    main()
