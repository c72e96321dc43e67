"""The ODGM data API served from Redis, seen by a Zenoh client that knows only the wire
contract (WIRE.md, "What real OPRC clients do"): GET, GET .../set with an ObjData, DELETE.

Writes through it fire their triggers: a worker started with ``serve_objects`` serves the
API and dispatches the triggers, which a subscriber receives as PUTs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from oprc_redis_events import ObjData, ObjectStore, Settings, TriggerTarget
from oprc_redis_events.client.aio.store import AsyncObjectStore
from oprc_redis_events.pb.oprc_data_pb2 import ObjMeta
from oprc_redis_events.protocol.objdata import WriteRateGuard
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.metrics import WorkerCollector
from oprc_redis_events.worker.objects_api import ObjectsApi

from .conftest import ZenohHub
from .helpers import serving_worker

NOTIFY = TriggerTarget(cls_id="notify", partition_id=0, fn_id="seen")


def zget(session: Any, key: str, payload: bytes | None = None) -> list[tuple[bool, bytes]]:
    """Every reply to a GET: (ok, payload)."""
    out = []
    for reply in session.get(key, payload=payload, timeout=5.0):
        if reply.ok is not None:
            out.append((True, reply.ok.payload.to_bytes()))
        else:
            out.append((False, reply.err.payload.to_bytes()))
    return out


def obj_data(entries: dict[int | str, bytes], *, triggers: bool = True) -> ObjData:
    data = ObjData(metadata=ObjMeta(cls_id="acct", partition_id=0, object_id=7))
    for key, value in entries.items():
        (data.entries[key] if isinstance(key, int) else data.entries_str[key]).data = value
    if triggers:
        for slot in ("on_create", "on_update", "on_delete"):
            getattr(data.event.data_trigger[1], slot).append(NOTIFY)
            getattr(data.event.data_trigger_str["name"], slot).append(NOTIFY)
    return data


@pytest.fixture
def serving(settings: Settings, zenoh_hub: ZenohHub) -> Iterator[Worker]:
    running = serving_worker(settings.replace(serve_objects=("acct",)), zenoh_hub.session())
    yield running.worker
    running.stop()


def test_set_get_update_delete_fire_triggers(
    serving: Worker, zenoh_hub: ZenohHub, store: ObjectStore
) -> None:
    inbox = zenoh_hub.subscribe("oprc/notify/**")
    client = zenoh_hub.session()
    key = "oprc/acct/0/objects/7"
    assert zget(client, key) == [(True, b"")]  # absent: an empty reply, as ODGM
    first = obj_data({1: b"pending", "name": b"ann"})
    assert zget(client, key + "/set", first.SerializeToString()) == [(True, b"")]
    [(ok, body)] = zget(client, key)
    got = ObjData.FromString(body)
    assert ok and got.metadata == ObjMeta(cls_id="acct", partition_id=0, object_id=7)
    assert got.entries[1].data == b"pending" and got.entries_str["name"].data == b"ann"
    assert got.event == first.event
    # a full replace: 1 changes (UPDATE), name disappears (DELETE), 2 appears (no trigger)
    second = obj_data({1: b"paid", 2: b"x"})
    assert zget(client, key + "/set", second.SerializeToString()) == [(True, b"")]
    assert store.get("acct", 0, 7).entries == {1: b"paid", 2: b"x"}  # type: ignore[union-attr]
    client.delete(key)
    seen = inbox.wait_for(5)
    assert sorted((t.payload.event_info.event_type, str(t.field)) for t in seen) == [
        (3, "1"),  # CREATE by the first set
        (3, "name"),
        (4, "1"),  # UPDATE by the second
        (5, "1"),  # DELETE of 1 by the object delete
        (5, "name"),  # DELETE: removed by the second set (a full replace)
    ]
    deadline = time.monotonic() + 5
    while store.get("acct", 0, 7) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert store.get("acct", 0, 7) is None
    assert zget(client, key) == [(True, b"")]


def test_bad_requests_get_an_error_naming_the_problem(
    serving: Worker, zenoh_hub: ZenohHub, store: ObjectStore, client: redis.Redis
) -> None:
    session = zenoh_hub.session()
    store.create("acct", 0, 7, {1: b"kept"})
    before = client.hgetall("oprc:{acct:0}:obj:7")
    cases = [
        ("oprc/acct/0/objects/7/set", b"\xff\xff\xff", "not an ObjData"),
        ("oprc/acct/0/objects/7/set", None, "payload is required"),
        ("oprc/acct/0/objects/007/set", obj_data({1: b"x"}).SerializeToString(), "leading zero"),
        ("oprc/acct/0/objects/007", None, "invalid object id"),
        ("oprc/acct/0/objects/7/set", obj_data({"5": b"x"}).SerializeToString(), "'5'"),
    ]
    for key, payload, named in cases:
        [(ok, text)] = zget(session, key, payload)
        assert not ok and named in text.decode(), (key, text)
    assert client.hgetall("oprc:{acct:0}:obj:7") == before  # nothing written
    assert serving.objects_api.stats.errors == len(cases)
    metrics = {m.name: m for m in WorkerCollector(serving).collect()}
    assert metrics["oprc_events_objects_errors"].samples[0].value == len(cases)
    [(ok, body)] = zget(session, "oprc/acct/0/objects/7")  # still serving
    assert ok and ObjData.FromString(body).entries[1].data == b"kept"
    named = obj_data({"name": b"str"}).SerializeToString()  # a string object id
    assert zget(session, "oprc/acct/0/objects/order-a/set", named) == [(True, b"")]
    [(ok, body)] = zget(session, "oprc/acct/0/objects/order-a")
    meta = ObjData.FromString(body).metadata
    assert ok and (meta.object_id, meta.object_id_str) == (0, "order-a")


class LoopThread:
    """An asyncio loop in a thread, for an ObjectsApi served without a worker."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def test_rate_guard_and_size_limit(redis_url: str, settings: Settings, zenoh_hub: ZenohHub) -> None:
    loop = LoopThread()
    store = AsyncObjectStore.from_url(redis_url)
    api = ObjectsApi(
        store,
        zenoh_hub.session(),
        ["acct"],
        partitions=[0],
        max_writes_per_s=3,
        max_object_bytes=1000,
    )
    try:
        loop.run(api.start())
        time.sleep(0.3)
        session = zenoh_hub.session()
        body = obj_data({1: b"v"}, triggers=False).SerializeToString()
        api.guard = WriteRateGuard(3, clock=lambda: 5.0)  # one second, whatever the time
        replies = [zget(session, "oprc/acct/0/objects/9/set", body)[0] for _ in range(5)]
        assert [ok for ok, _ in replies] == [True, True, True, False, False]
        assert "too many writes: acct/0/9" in replies[3][1].decode()
        assert api.stats.rate_limited == 2
        big = obj_data({1: b"v" * 2000}, triggers=False).SerializeToString()
        [(ok, text)] = zget(session, "oprc/acct/0/objects/10/set", big)
        assert not ok and "object too large" in text.decode()
        assert zget(session, "oprc/acct/1/objects/10") == []  # partition 1 is not served
    finally:
        loop.run(api.close())
        loop.run(store.close())
        loop.close()


def test_several_servers_answer_a_query_once(
    redis_url: str, zenoh_hub: ZenohHub, client: redis.Redis
) -> None:
    """Two processes serving one class: a set, sent as the SDK sends it (default target,
    no consolidation), is applied and answered by one of them."""
    import zenoh

    loop = LoopThread()
    stores = [AsyncObjectStore.from_url(redis_url) for _ in range(2)]
    apis = [ObjectsApi(s, zenoh_hub.session(), ["acct"]) for s in stores]
    try:
        for api in apis:
            loop.run(api.start())
        time.sleep(0.3)
        session = zenoh_hub.session()
        body = obj_data({1: b"v"}).SerializeToString()
        for _ in range(3):
            replies = session.get(
                "oprc/acct/0/objects/3/set",
                payload=body,
                consolidation=zenoh.ConsolidationMode.NONE,
                timeout=5.0,
            )
            assert [r.ok is not None for r in replies] == [True]
        assert sum(api.stats.requests.get("set", 0) for api in apis) == 3
        assert client.xlen("oprc:{acct:0}:outbox") == 1  # one CREATE, nothing after
    finally:
        for api, store in zip(apis, stores, strict=True):
            loop.run(api.close())
            loop.run(store.close())
        loop.close()


def test_put_samples_set_and_bad_ones_are_counted(
    serving: Worker, zenoh_hub: ZenohHub, store: ObjectStore
) -> None:
    """A Zenoh PUT of an ObjData on the object key is a set, as ODGM takes it; a bad one
    has no reply to carry its error: it is logged and counted."""
    session = zenoh_hub.session()
    session.put("oprc/acct/0/objects/8", obj_data({1: b"put"}).SerializeToString())
    session.put("oprc/acct/0/objects/9", b"\xff\xff\xff")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (
        serving.objects_api.stats.errors and store.get("acct", 0, 8) is not None
    ):
        time.sleep(0.02)
    record = store.get("acct", 0, 8)
    assert record is not None and record.entries == {1: b"put"} and record.event is not None
    assert store.get("acct", 0, 9) is None
    assert serving.objects_api.stats.requests["put"] == 2
    assert serving.objects_api.stats.errors == 1


def test_served_from_a_redis_cluster(cluster_url: str, zenoh_hub: ZenohHub) -> None:
    """On Redis Cluster a set is one script call in its object's slot, like any write."""
    loop = LoopThread()
    store = AsyncObjectStore.from_url(cluster_url, cluster=True)
    api = ObjectsApi(store, zenoh_hub.session(), ["acct"])
    try:
        loop.run(api.start())
        time.sleep(0.3)
        session = zenoh_hub.session()
        for pid in range(4):  # partitions in different slots
            key = f"oprc/acct/{pid}/objects/7"
            assert zget(session, key + "/set", obj_data({1: b"v"}).SerializeToString()) == [
                (True, b"")
            ]
            [(ok, body)] = zget(session, key)
            assert ok and ObjData.FromString(body).metadata.partition_id == pid
    finally:
        loop.run(api.close())
        loop.run(store.close())
        loop.close()


def test_the_objects_command_serves_until_sigterm(
    redis_url: str, zenoh_hub: ZenohHub, store: ObjectStore
) -> None:
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "oprc_redis_events.cli", "objects", "--serve", "acct"),
            *("--redis-url", redis_url, "--zenoh-connect", zenoh_hub.endpoint),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        while "serving the objects of acct" not in (line := proc.stderr.readline()):
            assert line, "objects exited before serving"
        time.sleep(0.3)
        session = zenoh_hub.session()
        body = obj_data({1: b"cli"}).SerializeToString()
        assert zget(session, "oprc/acct/3/objects/7/set", body) == [(True, b"")]
        assert store.get("acct", 3, 7).entries == {1: b"cli"}  # type: ignore[union-attr]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "Traceback" not in rest, rest
