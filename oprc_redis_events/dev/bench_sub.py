"""The bench's helper processes: ``python -m oprc_redis_events.dev.bench_sub ROLE ...``.

* ``listen ENDPOINT``: a Zenoh subscriber in a process of its own (a router session listening on
  ``ENDPOINT``, which the worker and the raw publisher connect to), driven by lines on stdin:
  ``count N`` answers ``done FIRST_NS LAST_NS BYTES`` once N messages arrived (receipt times,
  ``time.time_ns()``), ``lat N`` answers ``lat NS NS ...``: for each of the next N messages its
  receipt time minus the write time it carries (the trigger's value, or a raw put's body).
* ``put ENDPOINT N RATE SIZE``: raw Zenoh puts to that subscriber (``RATE`` 0: as fast as it
  can), each body the write time padded to ``SIZE`` bytes.
* ``write URL CLS PARTITIONS N RATE [--cluster]``: ``store.update`` of object 1 in each of the
  partitions in turn at a steady rate, the value the write time (``time.time_ns()``).
* ``worker URL GROUP ENDPOINT CLS PARTITIONS``: a worker that serves only those partitions of
  the bench's class (used on a Redis given with ``--redis-url``, where the CLI worker would
  read the user's outboxes too).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from ..config import Settings

RAW_KEY = "oprc-bench-raw"


class Listener:
    """Counts arrivals, or records latencies, for the command in hand."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.expected = 0
        self.latency = False
        self.first = 0
        self.size = 0
        self.seen: list[int] = []

    def arm(self, n: int, latency: bool) -> None:
        with self.lock:
            self.expected, self.latency, self.first, self.size = n, latency, 0, 0
            self.seen = []
            print("armed", flush=True)  # before any answer; only now may the bench start

    def __call__(self, sample: Any) -> None:
        now = time.time_ns()
        body = sample.payload.to_bytes()
        with self.lock:
            if not self.expected:
                return
            self.first = self.first or now
            self.size += len(body)
            self.seen.append(now - _written(str(sample.key_expr), body) if self.latency else now)
            if len(self.seen) < self.expected:
                return
            line = self._answer()
        print(line, flush=True)

    def _answer(self) -> str:
        self.expected = 0
        if self.latency:
            return "lat " + " ".join(map(str, self.seen))
        return f"done {self.first} {self.seen[-1] if self.seen else 0} {self.size} {len(self.seen)}"

    def flush(self) -> None:
        """Answer now with what arrived (the bench gave up waiting for the rest)."""
        with self.lock:
            line = self._answer() if self.expected else ""
        if line:
            print(line, flush=True)


def _written(key: str, body: bytes) -> int:
    if key.startswith(RAW_KEY):
        return int(body.split(b" ", 1)[0])
    from ..protocol.decode import decode_trigger

    return int(decode_trigger(key, body).payload.original_payload)


def listen(endpoint: str) -> None:
    from ..connect.zenoh_session import open_session

    session = open_session(Settings.from_env({}), mode="router", listen=(endpoint,), connect=())
    listener = Listener()
    subs = [session.declare_subscriber(k, listener) for k in ("oprc/**", f"{RAW_KEY}/**")]
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            what, n = line.split()
            if what == "flush":
                listener.flush()
            else:
                listener.arm(int(n), what == "lat")
    finally:
        for sub in subs:
            sub.undeclare()
        session.close()


def _paced(n: int, rate: float) -> Any:
    """Yield 0..n-1, sleeping so that item i starts at i / rate (rate 0: no pacing)."""
    start = time.perf_counter()
    for i in range(n):
        if rate > 0:
            wait = start + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        yield i


def _matched(publisher: Any) -> None:
    """Wait (up to 10 s) until the subscriber is known to the publisher."""
    deadline = time.monotonic() + 10
    while not publisher.matching_status.matching and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)


def put(endpoint: str, n: int, rate: float, size: int) -> None:
    import zenoh

    from ..connect.zenoh_session import open_session

    session = open_session(Settings.from_env({}), mode="client", connect=(endpoint,), listen=())
    try:
        publisher = session.declare_publisher(
            f"{RAW_KEY}/put", congestion_control=zenoh.CongestionControl.BLOCK
        )
        _matched(publisher)
        print("ready", flush=True)
        sys.stdin.readline()
        for _ in _paced(n, rate):
            publisher.put(f"{time.time_ns()} ".encode().ljust(size, b"x"))
        print("sent", flush=True)
        sys.stdin.readline()
    finally:
        session.close()


def write(url: str, cls_id: str, partitions: int, n: int, rate: float, cluster: bool) -> None:
    from ..client.sync_generated.store import ObjectStore
    from ..connect.redis_client import redis_client

    client = redis_client(url, cluster=cluster)
    store = ObjectStore(client, Settings.from_env({}))
    print("ready", flush=True)
    sys.stdin.readline()
    try:
        for i in _paced(n, rate):
            store.update(cls_id, i % partitions, 1, {1: str(time.time_ns()).encode()})
        print("sent", flush=True)
    finally:
        client.close()


def worker(
    url: str, group: str, endpoint: str, cls_id: str, partitions: int, cluster: bool
) -> None:
    from ..worker.publisher import ZenohPublisher
    from .demo import DemoWorker

    settings = Settings.from_env(
        {}, redis_url=url, group=group, zenoh_connect=(endpoint,), cluster=cluster
    )
    from ..connect.zenoh_session import open_session

    session = open_session(settings, mode="client", connect=(endpoint,), listen=())
    try:
        DemoWorker(
            settings, [cls_id], partitions=range(partitions), publisher=ZenohPublisher(session)
        ).run()
    finally:
        session.close()


def main(argv: list[str]) -> None:
    role, args = argv[0], argv[1:]
    if role == "listen":
        listen(args[0])
    elif role == "put":
        put(args[0], int(args[1]), float(args[2]), int(args[3]))
    elif role == "write":
        write(args[0], args[1], int(args[2]), int(args[3]), float(args[4]), "--cluster" in args)
    elif role == "worker":
        worker(args[0], args[1], args[2], args[3], int(args[4]), "--cluster" in args)
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
