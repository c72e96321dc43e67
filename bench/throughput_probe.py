"""Worker throughput as a user runs it, against the Redis and Zenoh floors (not part of the
package or the tests).

Fills the outboxes of ``--partitions`` partitions with ``--count`` copies of a real entry
(one JSON trigger each), then measures, at a subscriber in another process (first to last
receipt): the CLI worker (``--workers`` of them, one group) draining them; raw Zenoh puts of
bodies of the same size from another process; and, in this process, raw redis-py
``XREADGROUP`` + ``XACK`` of the same entries (batches of 500).  The entries name one
object per partition, or ``--objects`` distinct ones in turn (a new object per event).

    .venv/bin/python -m bench.throughput_probe --count 40000 --workers 1
    .venv/bin/python -m bench.throughput_probe --count 40000 --objects 20000
    .venv/bin/python -m bench.throughput_probe --profile worker.svg   # py-spy the worker
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from oprc_redis_events import ObjectStore, Settings
from oprc_redis_events.dev.servers import RedisServer, free_port

from .latency_probe import watch

COUNTER = r"""
import json, sys, time, signal, threading
import zenoh
endpoint, expect = sys.argv[1], int(sys.argv[2])
conf = zenoh.Config()
conf.insert_json5("mode", '"peer"')
conf.insert_json5("listen/endpoints", json.dumps([endpoint]))
conf.insert_json5("scouting/multicast/enabled", "false")
session = zenoh.open(conf)
state = {"n": 0, "first": 0.0, "last": 0.0, "size": 0}
done = threading.Event()
def on(sample):
    now = time.perf_counter()
    if state["n"] == 0:
        state["first"] = now
        state["size"] = len(sample.payload.to_bytes())
    state["n"] += 1
    state["last"] = now
    if state["n"] >= expect:
        done.set()
sub = session.declare_subscriber("oprc/**", on)
print("ready", flush=True)
done.wait(600)
n = state["n"]
rate = (n - 1) / max(1e-9, state["last"] - state["first"])
print(json.dumps({"n": n, "rate": rate, "size": state["size"]}), flush=True)
session.close()
"""

PUTTER = r"""
import json, sys, time
import zenoh
endpoint, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conf = zenoh.Config()
conf.insert_json5("mode", '"peer"')
conf.insert_json5("connect/endpoints", json.dumps([endpoint]))
conf.insert_json5("scouting/multicast/enabled", "false")
session = zenoh.open(conf)
time.sleep(1.0)
body = b"x" * size
block = zenoh.CongestionControl.BLOCK
for i in range(n):
    session.put(f"oprc/svc/0/async/f/{i}", body, congestion_control=block)
time.sleep(2)
session.close()
"""


def start_counter(endpoint: str, expect: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-c", COUNTER, endpoint, str(expect)], stdout=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    return proc


def counted(proc: subprocess.Popen[bytes]) -> tuple[float, int]:
    assert proc.stdout is not None
    line = json.loads(proc.stdout.readline())
    proc.wait(30)
    return float(line["rate"]), int(line["size"])


def fill(
    client: redis.Redis, store: ObjectStore, partitions: int, count: int, objects: int = 1
) -> list[str]:
    """``count`` copies of a real one-trigger entry, spread over the partitions; with
    ``objects`` > 1 the copies name that many distinct objects in turn (a worker meeting a
    new object per event, as with many objects written at random)."""
    streams = []
    for p in range(partitions):
        store.create("tp", p, 1, {1: b"0"}, event=watch(1))
        store.update("tp", p, 1, {1: b"a value of some thirty bytes.."})
        stream = f"oprc:{{tp:{p}}}:outbox"
        streams.append(stream)
    fields = client.xrevrange(streams[0], count=1)[0][1]
    pipe = client.pipeline(transaction=False)
    for i in range(count - 2 * partitions):
        copy = fields if objects <= 1 else {**fields, b"o": b"%d" % (2 + i % objects)}
        pipe.xadd(streams[i % partitions], copy)
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    return streams


def raw_redis(client: redis.Redis, streams: list[str], count: int) -> float:
    for s in streams:
        client.xgroup_create(s, "raw", id="0")
    done, start = 0, time.perf_counter()
    while done < count:
        reply = client.xreadgroup("raw", "c", {s: ">" for s in streams}, count=500)
        for stream, entries in reply:
            client.xack(stream, "raw", *[e[0] for e in entries])
            done += len(entries)
        if not reply:
            break
    return done / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=40000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--objects", type=int, default=1, help="distinct objects the entries name")
    ap.add_argument("--profile", default="", help="py-spy record the (first) worker to this file")
    args = ap.parse_args()
    spy = str(Path(sys.executable).with_name("py-spy"))
    if args.profile and not Path(spy).exists():
        raise SystemExit(f"Error: {spy} is missing: pip install py-spy into this venv")
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    server = RedisServer().start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        url = server.url
        client = redis.Redis.from_url(url)
        store = ObjectStore(client, Settings.from_env({}, redis_url=url))
        streams = fill(client, store, args.partitions, args.count, args.objects)
        total = sum(int(client.xlen(s)) for s in streams)
        raw = raw_redis(client, streams, total)
        counter = start_counter(endpoint, total)
        procs.append(counter)
        exe = str(Path(sys.executable).with_name("oprc-redis-events"))
        start = time.perf_counter()
        worker_cmd = [exe, "worker", "--redis-url", url, "--zenoh-mode", "peer"]
        worker_cmd += ["--zenoh-connect", endpoint, "--log-level", "warning"]
        workers = [subprocess.Popen(worker_cmd) for _ in range(args.workers)]
        procs += workers
        if args.profile:
            spy_cmd = [spy, "record", "-o", args.profile, "-p", str(workers[0].pid)]
            spy_cmd += ["-d", "20", "-r", "500", "--nonblocking"]
            if args.profile.endswith(".txt"):
                spy_cmd += ["--format", "raw"]
            procs.append(subprocess.Popen(spy_cmd))
        ours, body = counted(counter)
        elapsed = time.perf_counter() - start
        counter = start_counter(endpoint, total)
        procs.append(counter)
        putter = subprocess.Popen([sys.executable, "-c", PUTTER, endpoint, str(total), str(body)])
        procs.append(putter)
        zenoh_rate, _ = counted(counter)
        putter.wait(60)
        floor = min(raw, zenoh_rate)
        print(
            json.dumps(
                {
                    "triggers": total,
                    "workers": args.workers,
                    "worker_per_s": round(ours),
                    "worker_wall_s": round(elapsed, 2),
                    "raw_xreadgroup_xack_per_s": round(raw),
                    "raw_zenoh_put_per_s": round(zenoh_rate),
                    "ratio_to_floor": round(ours / floor, 2),
                    "body_bytes": body,
                }
            )
        )
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGINT if "py-spy" in str(p.args) else signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
        server.stop()


if __name__ == "__main__":
    main()
