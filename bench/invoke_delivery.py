"""``python -m bench.invoke_delivery``: the two ways of keeping ``invoke`` delivery from
running a function twice after a failure, measured against each other.

* ``batch`` (what the worker does): the GETs of a whole batch start together, at most
  ``max_concurrent_triggers`` at once; after a failure the retry reuses what went out.
* ``in-order``: an entry's GETs start only once the entry before it in its partition
  was answered (``Dispatcher.lookahead = False``).

A real ``redis-server``, an embedded Zenoh router, the function host in a process of its
own (``oprc-redis-events serve``) answering GETs, and a real worker in burst mode, timed
from its start until every entry is acknowledged.  Options: ``--entries N``,
``--partitions P`` (repeatable), ``--delay-ms D`` (repeatable: the function's own time),
``--rounds R``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from oprc_redis_events import ObjectEvent, ObjectStore, Settings, TriggerTarget
from oprc_redis_events.connect.zenoh_session import open_session
from oprc_redis_events.dev.servers import RedisServer, free_port
from oprc_redis_events.worker.dispatch import Dispatcher
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.publisher import ZenohPublisher

ROOT = Path(__file__).resolve().parent.parent


def answer(ctx: Any) -> bytes:
    """The function served: waits ``OPRC_BENCH_DELAY_MS``, answers OKAY."""
    time.sleep(int(os.environ.get("OPRC_BENCH_DELAY_MS", "0")) / 1000)
    return b"ok"


def serve(url: str, endpoint: str, partitions: int, delay_ms: int) -> subprocess.Popen[bytes]:
    args = [
        sys.executable,
        "-m",
        "oprc_redis_events.cli",
        "serve",
        "bench.invoke_delivery:answer",
    ]
    args += ["--cls", "svc", "--fn", "work", "--redis-url", url, "--zenoh-connect", endpoint]
    for p in range(partitions):
        args += ["--partition", str(p)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPRC_BENCH_DELAY_MS": str(delay_ms)}
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def write(client: redis.Redis, entries: int, partitions: int) -> None:
    client.flushdb()
    store = ObjectStore(client, Settings.from_env({}))
    for p in range(partitions):
        ev = ObjectEvent()
        ev.data_trigger[1].on_update.append(
            TriggerTarget(cls_id="svc", partition_id=p, fn_id="work")
        )
        store.create("orders", p, 1, {1: b"0"}, event=ev)
    for i in range(entries):
        store.update("orders", i % partitions, 1, {1: str(i + 1).encode()})


def deliver(url: str, session: Any, lookahead: bool) -> tuple[float, int]:
    """(seconds, triggers sent) of one burst of the worker."""
    worker = Worker(
        Settings.from_env({}, redis_url=url, ack_delay_ms=0),
        delivery="invoke",
        publisher=ZenohPublisher(session),
    )
    worker.dispatcher.lookahead = lookahead
    started = time.perf_counter()
    stats = asyncio.run(worker.run_async(burst=True))
    return time.perf_counter() - started, stats.triggers_sent


def wait_served(session: Any) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(r.ok is not None for r in session.get("oprc/svc/0/invokes/work", timeout=1)):
            return
        time.sleep(0.2)
    raise SystemExit("the function host did not come up")


def measure(server: RedisServer, endpoint: str, args: argparse.Namespace) -> None:
    client = redis.Redis.from_url(server.url)
    session = open_session(Settings.from_env({}), mode="client", connect=(endpoint,), listen=())
    print(f"{'partitions':>10} {'fn ms':>6} {'batch /s':>10} {'in-order /s':>12} {'ratio':>6}")
    try:
        for partitions in args.partitions:
            for delay in args.delay_ms:
                host = serve(server.url, endpoint, partitions, delay)
                try:
                    wait_served(session)
                    rates: dict[bool, list[float]] = {True: [], False: []}
                    for _ in range(args.rounds):
                        for lookahead in (True, False):
                            write(client, args.entries, partitions)
                            seconds, sent = deliver(server.url, session, lookahead)
                            assert sent == args.entries, (sent, args.entries)
                            rates[lookahead].append(sent / seconds)
                finally:
                    host.terminate()
                    host.wait(15)
                batch, ordered = (statistics.median(rates[k]) for k in (True, False))
                print(
                    f"{partitions:>10} {delay:>6} {batch:>10,.0f} {ordered:>12,.0f} "
                    f"{batch / ordered:>6.1f}"
                )
    finally:
        session.close()
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--partitions", type=int, action="append")
    parser.add_argument("--delay-ms", type=int, action="append")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    args.partitions = args.partitions or [1, 8]
    args.delay_ms = args.delay_ms or [0, 5]
    # Back-to-back burst workers hand leases over, which the worker logs as a warning.
    logging.getLogger("oprc_redis_events").setLevel(logging.ERROR)
    print(f"default Dispatcher.lookahead = {Dispatcher.lookahead}; {args.entries} entries")
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    router = open_session(Settings.from_env({}), mode="router", listen=(endpoint,), connect=())
    try:
        with RedisServer() as server:
            measure(server, endpoint, args)
    finally:
        router.close()


if __name__ == "__main__":
    main()
