"""Write -> subscriber latency as a user runs it (not part of the package or the tests).

Four processes: a redis-server of its own, the CLI worker (``oprc-redis-events worker``), a
Zenoh subscriber that records receipt time minus the write time carried in the value, and
this writer (a sync ``ObjectStore`` writing at a steady ``--rate``).  Then, with the worker
idle, the first event of brand-new partitions.

    .venv/bin/python -m bench.latency_probe --rate 1000 --count 5000
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from oprc_redis_events import ObjectEvent, ObjectStore, Settings, TriggerTarget
from oprc_redis_events.dev.servers import RedisServer, free_port

SUBSCRIBER = r"""
import json, sys, time, signal, threading
import zenoh
from oprc_redis_events.protocol.decode import decode_trigger
endpoint, out = sys.argv[1], sys.argv[2]
conf = zenoh.Config()
conf.insert_json5("mode", '"peer"')
conf.insert_json5("listen/endpoints", json.dumps([endpoint]))
conf.insert_json5("scouting/multicast/enabled", "false")
session = zenoh.open(conf)
got = []
def on(sample):
    now = time.time_ns()
    got.append((now, str(sample.key_expr), sample.payload.to_bytes()))
sub = session.declare_subscriber("oprc/**", on)
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: done.set())
print("ready", flush=True)
done.wait()
rows = []
for now, key, body in got:
    t = decode_trigger(key, body)
    rows.append((now, t.payload.original_payload.decode()))
json.dump(rows, open(out, "w"))
session.close()
"""


def watch(field: int) -> ObjectEvent:
    ev = ObjectEvent()
    dt = ev.data_trigger[field]
    for name in ("on_create", "on_update"):
        getattr(dt, name).append(TriggerTarget(cls_id="svc", partition_id=0, fn_id="f"))
    return ev


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--new", type=int, default=5, help="brand-new partitions to time")
    ap.add_argument("--worker-args", default="")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="latency-probe-"))
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    procs: list[subprocess.Popen[bytes]] = []
    server = RedisServer().start()
    try:
        url = server.url
        client = redis.Redis.from_url(url)
        out = tmp / "received.json"
        sub = subprocess.Popen(
            [sys.executable, "-c", SUBSCRIBER, endpoint, str(out)], stdout=subprocess.PIPE
        )
        procs.append(sub)
        assert sub.stdout is not None and sub.stdout.readline().strip() == b"ready"
        exe = str(Path(sys.executable).with_name("oprc-redis-events"))
        worker = subprocess.Popen(
            [exe, "worker", "--redis-url", url, "--zenoh-mode", "peer",
             "--zenoh-connect", endpoint, "--log-level", "warning", *args.worker_args.split()],
        )  # fmt: skip
        procs.append(worker)
        store = ObjectStore(client, Settings.from_env({}, redis_url=url))
        for p in range(args.partitions):
            store.create("lat", p, 1, {1: b"0"}, event=watch(1))
        time.sleep(2.0)  # the worker takes the partitions; the subscription settles
        period = 1.0 / args.rate
        start = time.perf_counter() + 0.1
        for i in range(args.count):
            target = start + i * period
            while (now := time.perf_counter()) < target:
                if target - now > 0.0005:
                    time.sleep(target - now - 0.0004)
            store.update("lat", i % args.partitions, 1, {1: str(time.time_ns()).encode()})
        time.sleep(1.5)
        news: list[str] = []
        for k in range(args.new):
            news.append(str(time.time_ns()))
            store.create("latnew", 100 + k, 1, {1: news[-1].encode()}, event=watch(1))
            time.sleep(1.5)
        sub.send_signal(signal.SIGTERM)
        sub.wait(30)
        rows = json.loads(out.read_text())
        steady = [(r - int(v)) / 1e6 for r, v in rows if v not in news and v != "0"]
        fresh = [(r - int(v)) / 1e6 for r, v in rows if v in news]
        print(
            json.dumps(
                {
                    "rate": args.rate,
                    "sent": args.count,
                    "received": len(steady),
                    "p50_ms": round(pct(steady, 0.5), 2),
                    "p99_ms": round(pct(steady, 0.99), 2),
                    "p999_ms": round(pct(steady, 0.999), 2),
                    "max_ms": round(max(steady), 2),
                    "new_partition_first_event_ms": [round(x, 1) for x in fresh],
                }
            )
        )
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
