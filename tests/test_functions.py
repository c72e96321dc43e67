"""Function events, the function host, depth and trace propagation, invoke delivery."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from oprc_redis_events import (
    ObjectEvent,
    ObjectStore,
    ResponseStatus,
    Settings,
    TriggerTarget,
)
from oprc_redis_events.functions.host import FunctionHost, InvocationContext
from oprc_redis_events.worker.loop import Worker
from oprc_redis_events.worker.publisher import ZenohPublisher

from .conftest import ZenohHub
from .helpers import RunningWorker, events, outbox


@pytest.fixture
def zstore(redis_url: str, settings: Settings, zenoh_hub: ZenohHub) -> Iterator[ObjectStore]:
    store = ObjectStore(
        redis.Redis.from_url(redis_url), settings, zenoh_session=zenoh_hub.session()
    )
    yield store
    store.close()


def target(cls_id: str = "notify", fn_id: str = "send", **kw: Any) -> TriggerTarget:
    return TriggerTarget(cls_id=cls_id, partition_id=0, fn_id=fn_id, **kw)


def slow(ctx: InvocationContext) -> bytes:
    time.sleep(1.0)
    return b"late"


def fail(ctx: InvocationContext) -> bytes:
    raise ValueError(f"bad input {ctx.payload!r}")


async def ok(ctx: InvocationContext) -> bytes:  # async handlers work too
    return b"done:" + ctx.payload


def test_invoke_records_complete_and_error_events(
    zstore: ObjectStore, client: redis.Redis, zenoh_hub: ZenohHub
) -> None:
    ev = ObjectEvent()
    for fn in ("ok", "fail", "slow", "absent"):
        ev.func_trigger[fn].on_complete.append(target(fn_id=f"{fn}-done"))
        ev.func_trigger[fn].on_error.append(target(fn_id=f"{fn}-failed"))
    zstore.create("acct", 0, 1, {"balance": b"10"}, event=ev)
    host = FunctionHost(
        zstore, zenoh_hub.session(), "acct", [0], {"ok": ok, "fail": fail, "slow": slow}
    ).start()
    try:
        time.sleep(0.3)
        response = zstore.invoke("acct", 0, "ok", b"x", object_id=1)
        assert response.status == ResponseStatus.OKAY and response.payload == b"done:x"
        response = zstore.invoke("acct", 0, "fail", b"y", object_id=1)
        assert response.status == ResponseStatus.APP_ERROR
        assert response.payload == b"ValueError: bad input b'y'"
        response = zstore.invoke("acct", 0, "slow", object_id=1, timeout=0.3)
        assert response.status == ResponseStatus.SYSTEM_ERROR and b"Timeout" in response.payload
        response = zstore.invoke("acct", 0, "absent", object_id=1, timeout=0.3)
        assert response.payload == b"no function answered on oprc/acct/0/objects/1/invokes/absent"
        assert zstore.invoke("acct", 0, "ok", b"z").payload == b"done:z"  # stateless: no event
        assert host.stats.errors == 1  # the host kept serving after the failure
    finally:
        host.close()
    got = events(client, "acct", 0)
    assert [(kind, key) for kind, key, _ in got] == [
        ("COMPLETE", "ok"),
        ("ERROR", "fail"),
        ("ERROR", "slow"),
        ("ERROR", "absent"),
    ]
    assert got[0][2] == b"done:x" and got[1][2] == b"ValueError: bad input b'y'"
    assert b"Timeout" in got[2][2]
    entries = outbox(client, "acct", 0)
    assert [e.events[0].targets[0].fn_id for e in entries] == [
        "ok-done",
        "fail-failed",
        "slow-failed",
        "absent-failed",
    ]
    assert zstore.get("acct", 0, 1).version == 1  # function events change no data


def test_report_function_result(store: ObjectStore, client: redis.Redis) -> None:
    from oprc_redis_events import InvocationResponse

    ev = ObjectEvent()
    ev.func_trigger["job"].on_error.append(target())
    store.create("acct", 0, 2, {}, event=ev)
    store.report_function_result(
        "acct", 0, 2, "job", InvocationResponse(status=ResponseStatus.OKAY)
    )
    store.report_function_result(
        "acct",
        0,
        2,
        "job",
        InvocationResponse(status=ResponseStatus.SYSTEM_ERROR, headers={"error": "disk full"}),
    )
    assert events(client, "acct", 0) == [("ERROR", "job", b"disk full")]  # no on_complete target


def counter_loop(
    zstore: ObjectStore, zenoh_hub: ZenohHub, settings: Settings, max_depth: int
) -> tuple[list[InvocationContext], Worker]:
    seen: list[InvocationContext] = []

    def incr(ctx: InvocationContext) -> None:
        seen.append(ctx)
        record = ctx.store.get("counter", 0, 1)
        assert record is not None
        ctx.store.update("counter", 0, 1, {"count": str(int(record.entries["count"]) + 1)})

    ev = ObjectEvent()
    loop = target("counter", "incr", object_id=1)
    ev.data_trigger_str["count"].on_create.append(loop)
    ev.data_trigger_str["count"].on_update.append(loop)
    host = FunctionHost(zstore, zenoh_hub.session(), "counter", [0], {"incr": incr}).start()
    worker = Worker(
        settings.replace(max_trigger_depth=max_depth),
        publisher=ZenohPublisher(zenoh_hub.session()),
        block_ms=20,
        discover_interval=0.05,
    )
    running = RunningWorker(worker)
    try:
        time.sleep(0.3)
        tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        zstore.with_context(depth=0, traceparent=tp).create(
            "counter", 0, 1, {"count": b"0"}, event=ev
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and worker.stats.depth_stops == 0:
            time.sleep(0.05)
        time.sleep(0.5)  # nothing more happens
    finally:
        running.stop()
        host.close()
    return seen, worker


@pytest.mark.parametrize("max_depth", [3, 10])
def test_a_trigger_loop_stops_at_the_depth_limit(
    zstore: ObjectStore, zenoh_hub: ZenohHub, settings: Settings, max_depth: int
) -> None:
    seen, worker = counter_loop(zstore, zenoh_hub, settings, max_depth)
    record = zstore.get("counter", 0, 1)
    assert record is not None and record.entries["count"] == str(max_depth).encode()
    assert len(seen) == max_depth
    assert [ctx.depth for ctx in seen] == list(range(max_depth))
    assert worker.stats.depth_stops == 1
    # the W3C trace of the first write reaches every hop
    trace_ids = {ctx.traceparent.split("-")[1] for ctx in seen if ctx.traceparent}
    assert trace_ids == {"4bf92f3577b34da6a3ce929d0e0e4736"}
    assert seen[2].traceparent is not None and seen[2].event is not None


def test_invoke_delivery_end_to_end(
    zstore: ObjectStore, client: redis.Redis, settings: Settings, zenoh_hub: ZenohHub
) -> None:
    inbox = zenoh_hub.subscribe("oprc/notify/**")
    svc = ObjectEvent()  # the target object: its function's outcome notifies, by PUT
    svc.func_trigger["work"].on_complete.append(
        target(fn_id="done", req_options={"oprc.delivery": "put"})
    )
    zstore.create("svc", 0, 5, {}, event=svc)
    orders = ObjectEvent()
    orders.data_trigger[1].on_update.append(target("svc", "work", object_id=5))
    orders.data_trigger[2].on_update.append(target("svc", "slow", object_id=5))
    zstore.create("orders", 0, 1, {1: b"a", 2: b"a"}, event=orders)

    def work(ctx: InvocationContext) -> bytes:
        assert ctx.event is not None and ctx.sync
        return b"worked on " + (ctx.value or b"")

    host = FunctionHost(zstore, zenoh_hub.session(), "svc", [0], {"work": work, "slow": slow})
    worker = Worker(
        settings.replace(trigger_timeout_ms=300, max_deliveries=2, retry_base_ms=50),
        delivery="invoke",
        publisher=ZenohPublisher(zenoh_hub.session()),
        block_ms=20,
        discover_interval=0.05,
    )
    with host:
        running = RunningWorker(worker)
        try:
            time.sleep(0.3)
            zstore.update("orders", 0, 1, {1: b"b"})
            [done] = inbox.wait_for(1)
            assert done.event_name == "FUNC_COMPLETE"
            assert done.payload.event_info.fn_id == "work"
            assert done.payload.original_payload == b"worked on b"
            assert done.depth == 1
            zstore.update("orders", 0, 1, {2: b"b"})  # a slow function: retried, then dead
            deadline = time.monotonic() + 15
            while not client.xlen("oprc:{orders:0}:dlq") and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            running.stop()
    [(_, fields)] = client.xrange("oprc:{orders:0}:dlq")
    assert fields[b"dlq:reason"] == b"delivery failed 2 times"
    assert b"Timeout" in fields[b"dlq:error"]
    assert worker.stats.retries == 1


def test_serve_command(
    tmp_path: Path, redis_url: str, zstore: ObjectStore, zenoh_hub: ZenohHub
) -> None:
    (tmp_path / "myfuncs.py").write_text(
        "def greet(ctx):\n    return b'hello ' + ctx.payload + b' at depth %d' % ctx.depth\n"
    )
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "oprc_redis_events.cli",
            "serve",
            "myfuncs:greet",
            "--cls",
            "greeter",
            "--partition",
            "0",
            "--fn",
            "greet",
            "--redis-url",
            redis_url,
            "--zenoh-connect",
            zenoh_hub.endpoint,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    try:
        deadline = time.monotonic() + 20
        response = None
        while time.monotonic() < deadline:
            response = zstore.invoke("greeter", 0, "greet", b"ann", timeout=1)
            if response.status == ResponseStatus.OKAY:
                break
            time.sleep(0.2)
        assert response is not None and response.payload == b"hello ann at depth 0"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        log.close()


def test_async_store_invokes_and_records(
    redis_url: str,
    settings: Settings,
    zstore: ObjectStore,
    client: redis.Redis,
    zenoh_hub: ZenohHub,
) -> None:
    import asyncio

    import redis.asyncio as aredis

    from oprc_redis_events import AsyncObjectStore

    ev = ObjectEvent()
    ev.func_trigger["ok"].on_complete.append(target(fn_id="ok-done"))
    zstore.create("acct", 0, 3, {}, event=ev)
    with FunctionHost(zstore, zenoh_hub.session(), "acct", [0], {"ok": ok}):
        time.sleep(0.3)

        async def run() -> Any:
            store = AsyncObjectStore(
                aredis.Redis.from_url(redis_url), settings, zenoh_session=zenoh_hub.session()
            )
            try:
                return await store.invoke("acct", 0, "ok", b"async", object_id=3)
            finally:
                await store.close()

        response = asyncio.run(run())
    assert response.status == ResponseStatus.OKAY and response.payload == b"done:async"
    assert events(client, "acct", 0) == [("COMPLETE", "ok", b"done:async")]


def test_report_function_result_from_a_plain_outcome(
    store: ObjectStore, client: redis.Redis
) -> None:
    ev = ObjectEvent()
    ev.func_trigger["job"].on_complete.append(target(fn_id="ok"))
    ev.func_trigger["job"].on_error.append(target(fn_id="err"))
    store.create("acct", 0, 4, {}, event=ev)
    store.report_function_result("acct", 0, 4, "job", ok=True, output=b"42")
    store.report_function_result("acct", 0, 4, "job", error="out of stock")
    assert events(client, "acct", 0) == [
        ("COMPLETE", "job", b"42"),
        ("ERROR", "job", b"out of stock"),
    ]
